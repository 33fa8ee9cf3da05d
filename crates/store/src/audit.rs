//! The audit log of staff and operator actions (P24, L3): append-only (database triggers
//! refuse UPDATE and DELETE), every entry chained to its predecessor by hash, and the
//! chain's head signed (Ed25519 JWS) every `every` entries or `interval_ms`, whichever
//! comes first, and on demand before an export. A signed head pins everything before it:
//! rewriting history and recomputing the chain still breaks the signature's hash, and
//! only the holder of the master key can sign a new head.
//!
//! Appends serialize on the single `audit_head` row, like the consent ledger's, so the
//! chain never forks across connections or processes. `append_tx!` appends inside a
//! caller's transaction, so a change and its audit entry commit together.

use custos_crypto::ReceiptSigner;
use sha2::{Digest, Sha256};

use crate::{on_db, Db, StoreError, StoreResult};

/// An entry to append; the log assigns `seq` and the hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub at_ms: i64,
    /// Who acted: `staff:NAME`, `operator-token`, `cli`, `anonymous`.
    pub actor: String,
    /// What was done: `staff.sign_in`, `operator.catalog.write`, `subject.data.read`, ….
    pub action: String,
    /// What it was done to: `POST /api/v1/operator/items`, `staff:NAME`, `subject:PSEUDONYM`.
    pub target: String,
    /// `allowed`, `denied`, `succeeded`, `failed`, `locked`, ….
    pub outcome: String,
    /// The purpose or ticket a read of personal data names; empty otherwise.
    pub reason: String,
    /// Further facts as JSON (never personal data of users).
    pub detail: String,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub reason: String,
    pub detail: String,
    #[serde(with = "hex32")]
    pub prev_hash: [u8; 32],
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
}

/// A signed head of the chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignedHead {
    pub seq: i64,
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
    pub signed_at_ms: i64,
    /// Compact JWS (EdDSA) over `{"typ":"custos-audit-head","seq":…,"hash":…,"signed_at":…}`.
    pub jws: String,
}

mod hex32 {
    pub fn serialize<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
}

/// When heads get signed.
#[derive(Debug, Clone, Copy)]
pub struct HeadSigning<'a> {
    pub signer: &'a ReceiptSigner,
    /// Sign once this many entries follow the last signed head (at least 1).
    pub every: i64,
    /// Sign once the last signed head is this old.
    pub interval_ms: i64,
}

/// The link function: `SHA-256("custos-audit-v1" || prev || seq || at || each field
/// length-prefixed)`. Any change to an entry, or its removal or reordering, changes every
/// later link.
pub fn entry_hash(prev: &[u8; 32], seq: i64, e: &NewEntry) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"custos-audit-v1");
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(e.at_ms.to_be_bytes());
    for f in [
        &e.actor, &e.action, &e.target, &e.outcome, &e.reason, &e.detail,
    ] {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f.as_bytes());
    }
    h.finalize().into()
}

/// The payload a head signature covers.
pub fn head_payload(seq: i64, hash: &[u8; 32], signed_at_ms: i64) -> String {
    format!(
        r#"{{"typ":"custos-audit-head","seq":{seq},"hash":"{}","signed_at":{signed_at_ms}}}"#,
        hex::encode(hash)
    )
}

fn hash32(v: &[u8], seq: i64) -> StoreResult<[u8; 32]> {
    v.try_into()
        .map_err(|_| StoreError::Corrupt(format!("audit entry {seq} has a malformed hash")))
}

type Row = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    Vec<u8>,
    Vec<u8>,
);

const COLUMNS: &str = "seq, at_ms, actor, action, target, outcome, reason, detail, prev_hash, hash";

fn from_row(r: Row) -> StoreResult<Entry> {
    let (seq, at_ms, actor, action, target, outcome, reason, detail, prev, hash) = r;
    Ok(Entry {
        seq,
        at_ms,
        actor,
        action,
        target,
        outcome,
        reason,
        detail,
        prev_hash: hash32(&prev, seq)?,
        hash: hash32(&hash, seq)?,
    })
}

impl Entry {
    fn fields(&self) -> NewEntry {
        NewEntry {
            at_ms: self.at_ms,
            actor: self.actor.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            outcome: self.outcome.clone(),
            reason: self.reason.clone(),
            detail: self.detail.clone(),
        }
    }
}

/// Appends `$entries` (`&[NewEntry]`) inside the open transaction `$tx` and signs the
/// head when due (`$signing: &HeadSigning`, `$force: bool` signs regardless). Evaluates
/// to `StoreResult<Vec<Entry>>`. Used inside `on_db!` bodies, so it compiles for both
/// backends.
#[macro_export]
macro_rules! append_tx {
    ($tx:expr, $entries:expr, $signing:expr, $force:expr, $now_ms:expr) => {{
        async {
            let entries: &[$crate::audit::NewEntry] = $entries;
            let signing: &$crate::audit::HeadSigning = $signing;
            let tx = $tx;
            // Writing first takes the write lock (SQLite) or the row lock (PostgreSQL)
            // before reading the head, so concurrent appenders queue.
            sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
                .execute(&mut **tx)
                .await?;
            let (mut seq, head): (i64, Vec<u8>) =
                sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_one(&mut **tx)
                    .await?;
            let mut prev: [u8; 32] = head.as_slice().try_into().map_err(|_| {
                $crate::StoreError::Corrupt("the audit head has a malformed hash".into())
            })?;
            let mut out = Vec::with_capacity(entries.len());
            for e in entries {
                seq += 1;
                let hash = $crate::audit::entry_hash(&prev, seq, e);
                sqlx::query(
                    "INSERT INTO audit_log (seq, at_ms, actor, action, target, outcome, reason, \
                     detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(seq)
                .bind(e.at_ms)
                .bind(&e.actor)
                .bind(&e.action)
                .bind(&e.target)
                .bind(&e.outcome)
                .bind(&e.reason)
                .bind(&e.detail)
                .bind(prev.to_vec())
                .bind(hash.to_vec())
                .execute(&mut **tx)
                .await?;
                out.push($crate::audit::Entry {
                    seq,
                    at_ms: e.at_ms,
                    actor: e.actor.clone(),
                    action: e.action.clone(),
                    target: e.target.clone(),
                    outcome: e.outcome.clone(),
                    reason: e.reason.clone(),
                    detail: e.detail.clone(),
                    prev_hash: prev,
                    hash,
                });
                prev = hash;
            }
            sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                .bind(seq)
                .bind(prev.to_vec())
                .execute(&mut **tx)
                .await?;
            let last: Option<(i64, i64)> = sqlx::query_as(
                "SELECT seq, signed_at FROM audit_signed_heads ORDER BY seq DESC LIMIT 1",
            )
            .fetch_optional(&mut **tx)
            .await?;
            let now: i64 = $now_ms;
            let due = match last {
                None => seq > 0,
                Some((s, at)) => {
                    seq > s
                        && ($force
                            || seq - s >= signing.every.max(1)
                            || now - at >= signing.interval_ms)
                }
            };
            if due {
                let payload = $crate::audit::head_payload(seq, &prev, now);
                let jws = signing.signer.sign_jws(payload.as_bytes());
                sqlx::query(
                    "INSERT INTO audit_signed_heads (seq, hash, signed_at, jws) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (seq) DO NOTHING",
                )
                .bind(seq)
                .bind(prev.to_vec())
                .bind(now)
                .bind(jws)
                .execute(&mut **tx)
                .await?;
            }
            Ok::<_, $crate::StoreError>(out)
        }
        .await
    }};
}

/// Appends entries in their own transaction, signing the head when due.
pub async fn append(
    db: &Db,
    entries: &[NewEntry],
    signing: &HeadSigning<'_>,
    now_ms: i64,
) -> StoreResult<Vec<Entry>> {
    on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        let out = append_tx!(&mut tx, entries, signing, false, now_ms)?;
        tx.commit().await?;
        Ok(out)
    })
}

/// Signs the current head unless it is signed already (before an export, so the export
/// ends with a head covering every entry). Returns the newest signed head.
pub async fn checkpoint(
    db: &Db,
    signing: &HeadSigning<'_>,
    now_ms: i64,
) -> StoreResult<Option<SignedHead>> {
    on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        append_tx!(&mut tx, &[], signing, true, now_ms)?;
        tx.commit().await?;
    });
    Ok(signed_heads(db).await?.pop())
}

/// Up to `limit` entries after `after`, oldest first; only those whose target is
/// `target` when given.
pub async fn entries(
    db: &Db,
    after: i64,
    limit: i64,
    target: Option<&str>,
) -> StoreResult<Vec<Entry>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 AND ($2 = '' OR target = $2) \
         ORDER BY seq LIMIT $3"
    );
    let rows: Vec<Row> = on_db!(db, pool => sqlx::query_as::<_, Row>(&sql)
        .bind(after)
        .bind(target.unwrap_or(""))
        .bind(limit)
        .fetch_all(pool)
        .await?);
    rows.into_iter().map(from_row).collect()
}

/// Every signed head, oldest first.
pub async fn signed_heads(db: &Db) -> StoreResult<Vec<SignedHead>> {
    let rows: Vec<(i64, Vec<u8>, i64, String)> = on_db!(db, pool => sqlx::query_as(
        "SELECT seq, hash, signed_at, jws FROM audit_signed_heads ORDER BY seq")
        .fetch_all(pool)
        .await?);
    rows.into_iter()
        .map(|(seq, hash, signed_at_ms, jws)| {
            Ok(SignedHead {
                seq,
                hash: hash32(&hash, seq)?,
                signed_at_ms,
                jws,
            })
        })
        .collect()
}

/// The log's newest sequence number (0 if empty).
pub async fn head(db: &Db) -> StoreResult<i64> {
    let (seq,): (i64,) = on_db!(db, pool => sqlx::query_as("SELECT seq FROM audit_head WHERE id = 1").fetch_one(pool).await?);
    Ok(seq)
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditVerification {
    pub entries_checked: i64,
    pub head_seq: i64,
    pub signed_heads_checked: usize,
    /// The first entry that does not verify, and why; `None` if the log is intact.
    pub first_bad: Option<BadEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BadEntry {
    pub seq: i64,
    pub reason: String,
}

/// A signed head's claim, read from its verified signature.
fn signed_claim(
    open: &dyn Fn(&str) -> Option<Vec<u8>>,
    h: &SignedHead,
) -> Result<(i64, String), String> {
    let payload = open(&h.jws).ok_or_else(|| {
        format!(
            "the signature of the head at entry {} does not verify",
            h.seq
        )
    })?;
    let v: serde_json::Value = serde_json::from_slice(&payload)
        .map_err(|_| format!("the signed head at entry {} is malformed", h.seq))?;
    let seq = v["seq"].as_i64().unwrap_or(-1);
    let hash = v["hash"].as_str().unwrap_or_default().to_owned();
    if v["typ"] != "custos-audit-head" || seq != h.seq || hash != hex::encode(h.hash) {
        return Err(format!(
            "the signed head at entry {} does not match its signature (altered)",
            h.seq
        ));
    }
    Ok((seq, hash))
}

/// Walks the chain from the start and reports the first altered, removed or reordered
/// entry; checks every signed head's signature with `open` (which verifies a JWS and
/// returns its payload, e.g. `custos_crypto::verify_jws` with the published key) and that the chain passes
/// through the hash it signed; reports a removed tail (the head, or a signed head, names
/// more entries than exist).
pub async fn verify(
    db: &Db,
    open: &(dyn Fn(&str) -> Option<Vec<u8>> + Sync),
    mut progress: impl FnMut(i64),
) -> StoreResult<AuditVerification> {
    const PAGE: i64 = 10_000;
    let (head_seq, head_hash): (i64, Vec<u8>) = on_db!(db, pool =>
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(pool).await?);
    let heads = signed_heads(db).await?;
    let mut result = AuditVerification {
        entries_checked: 0,
        head_seq,
        signed_heads_checked: 0,
        first_bad: None,
    };
    let mut claims = Vec::with_capacity(heads.len());
    for h in &heads {
        match signed_claim(open, h) {
            Ok(c) => claims.push(c),
            Err(reason) => {
                result.first_bad = Some(BadEntry { seq: h.seq, reason });
                return Ok(result);
            }
        }
    }
    let mut next_claim = 0usize;
    let mut prev = [0u8; 32];
    let mut expected = 1i64;
    let fail = |mut r: AuditVerification, seq: i64, reason: String| {
        r.first_bad = Some(BadEntry { seq, reason });
        Ok(r)
    };
    loop {
        let sql =
            format!("SELECT {COLUMNS} FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT {PAGE}");
        let rows: Vec<Row> = on_db!(db, pool => sqlx::query_as::<_, Row>(&sql).bind(expected).fetch_all(pool).await?);
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let seq = row.0;
            let e = match from_row(row) {
                Ok(e) => e,
                Err(err) => return fail(result, seq, err.to_string()),
            };
            if e.seq != expected {
                return fail(
                    result,
                    expected,
                    format!(
                        "entry {expected} is missing (removed; next present is {})",
                        e.seq
                    ),
                );
            }
            if e.prev_hash != prev {
                return fail(
                    result,
                    e.seq,
                    "its link to the previous entry does not match (removed or reordered)".into(),
                );
            }
            if entry_hash(&prev, e.seq, &e.fields()) != e.hash {
                return fail(
                    result,
                    e.seq,
                    "its content does not match its hash (altered)".into(),
                );
            }
            while next_claim < claims.len() && claims[next_claim].0 == e.seq {
                if claims[next_claim].1 != hex::encode(e.hash) {
                    return fail(
                        result,
                        e.seq,
                        format!(
                            "the chain up to entry {} differs from the head signed there \
                             (entries at or before it were altered, removed or reordered)",
                            e.seq
                        ),
                    );
                }
                next_claim += 1;
                result.signed_heads_checked += 1;
            }
            prev = e.hash;
            expected += 1;
            result.entries_checked += 1;
        }
        progress(result.entries_checked);
    }
    let checked = result.entries_checked;
    if let Some((seq, _)) = claims.get(next_claim) {
        return fail(
            result,
            checked + 1,
            format!("a head signed at entry {seq} covers entries that are missing (removed)"),
        );
    }
    if checked != head_seq {
        return fail(
            result,
            checked + 1,
            format!("the head records {head_seq} entries but only {checked} are present (removed)"),
        );
    }
    if head_hash != prev.to_vec() {
        return fail(
            result,
            head_seq,
            "the head hash does not match the last entry (altered)".into(),
        );
    }
    Ok(result)
}
