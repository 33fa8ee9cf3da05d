//! The consent ledger (P38, L3): append-only records, each chained to its predecessor by
//! hash. Appends from any number of connections or processes serialize on the single
//! `ledger_head` row, so the chain never forks; a batch of decisions commits in one
//! transaction (group commit) to keep SQLite's per-commit cost off the hot path.

use custos_core::{ConsentMethod, ConsentRecord, Decision, SubjectId};
use custos_crypto::{chain_hash, GENESIS};
use uuid::Uuid;

use crate::{on_db, Db, StoreError, StoreResult};

/// A decision to append; the ledger assigns `seq` and the hashes.
#[derive(Debug, Clone)]
pub struct NewDecision {
    pub subject: SubjectId,
    pub purpose: String,
    pub decision: Decision,
    pub policy_hash: String,
    pub method: ConsentMethod,
    pub receipt_id: Uuid,
    pub at_ms: i64,
}

/// The PostgreSQL channel on which every committed append announces its last `seq`.
pub const NOTIFY_CHANNEL: &str = "custos_ledger";

/// Rows per multi-row INSERT (10 parameters each: 5,000, under both backends' limits).
const ROWS_PER_STATEMENT: usize = 500;

/// Subject and receipt ids are stored as 16 raw bytes: compact index keys keep batched
/// appends cheap.
type Row = (
    i64,
    Vec<u8>,
    String,
    String,
    String,
    String,
    i64,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
);

const COLUMNS: &str =
    "seq, subject, purpose, decision, policy_hash, method, at_ms, receipt_id, prev_hash, hash";

fn hash32(v: &[u8], seq: i64) -> StoreResult<[u8; 32]> {
    v.try_into()
        .map_err(|_| StoreError::Corrupt(format!("ledger record {seq} has a malformed hash")))
}

fn from_row(r: Row) -> StoreResult<ConsentRecord> {
    let (seq, subject, purpose, decision, policy_hash, method, at_ms, receipt_id, prev, hash) = r;
    let bad =
        |what: &str| StoreError::Corrupt(format!("ledger record {seq} has a malformed {what}"));
    Ok(ConsentRecord {
        seq,
        subject: SubjectId::from_bytes(subject.as_slice().try_into().map_err(|_| bad("subject"))?),
        purpose,
        decision: Decision::parse(&decision).ok_or_else(|| bad("decision"))?,
        policy_hash,
        method: ConsentMethod::parse(&method).ok_or_else(|| bad("method"))?,
        at_ms,
        receipt_id: Uuid::from_slice(&receipt_id).map_err(|_| bad("receipt id"))?,
        prev_hash: hash32(&prev, seq)?,
        hash: hash32(&hash, seq)?,
    })
}

/// A multi-row INSERT. SQLite gets anonymous `?` placeholders: sqlx looks up the name of
/// every numbered parameter, which costs quadratic time over a 1,000-parameter statement.
fn insert_sql(rows: usize, backend: crate::Backend) -> String {
    let mut sql = format!("INSERT INTO consent_ledger ({COLUMNS}) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        if backend == crate::Backend::Sqlite {
            sql.push_str("(?,?,?,?,?,?,?,?,?,?)");
            continue;
        }
        let b = i * 10;
        sql.push('(');
        for c in 1..=10 {
            if c > 1 {
                sql.push(',');
            }
            sql.push_str(&format!("${}", b + c));
        }
        sql.push(')');
    }
    sql
}

/// Binds one record's ten columns onto a query, for either backend.
macro_rules! bind_record {
    ($q:expr, $r:expr) => {
        $q.bind($r.seq)
            .bind($r.subject.as_bytes().to_vec())
            .bind($r.purpose.clone())
            .bind($r.decision.as_str())
            .bind($r.policy_hash.clone())
            .bind($r.method.as_str())
            .bind($r.at_ms)
            .bind($r.receipt_id.as_bytes().to_vec())
            .bind($r.prev_hash.to_vec())
            .bind($r.hash.to_vec())
    };
}

/// Appends decisions in one transaction and returns the chained records, in order.
pub async fn append(db: &Db, batch: &[NewDecision]) -> StoreResult<Vec<ConsentRecord>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        // Writing first takes the write lock (SQLite) or the row lock (PostgreSQL) before
        // reading the head, so concurrent appenders queue instead of forking the chain.
        sqlx::query("UPDATE ledger_head SET seq = seq WHERE id = 1").execute(&mut *tx).await?;
        let (mut seq, head): (i64, Vec<u8>) =
            sqlx::query_as("SELECT seq, hash FROM ledger_head WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        let mut prev = hash32(&head, seq)?;
        let mut out = Vec::with_capacity(batch.len());
        for d in batch {
            seq += 1;
            let mut rec = ConsentRecord {
                seq,
                subject: d.subject,
                purpose: d.purpose.clone(),
                decision: d.decision,
                policy_hash: d.policy_hash.clone(),
                method: d.method,
                at_ms: d.at_ms,
                receipt_id: d.receipt_id,
                prev_hash: prev,
                hash: [0; 32],
            };
            rec.hash = chain_hash(&prev, &rec.canonical_bytes());
            prev = rec.hash;
            out.push(rec);
        }
        for chunk in out.chunks(ROWS_PER_STATEMENT) {
            let sql = insert_sql(chunk.len(), db.backend());
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = bind_record!(q, r);
            }
            q.execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE ledger_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(seq)
            .bind(prev.to_vec())
            .execute(&mut *tx)
            .await?;
        if matches!(db, Db::Postgres(_)) {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(seq.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(out)
    })
}

async fn fetch(
    db: &Db,
    sql: &str,
    arg: Option<Vec<u8>>,
    arg2: Option<i64>,
) -> StoreResult<Vec<ConsentRecord>> {
    let rows: Vec<Row> = on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, Row>(sql);
        if let Some(a) = arg { q = q.bind(a); }
        if let Some(b) = arg2 { q = q.bind(b); }
        q.fetch_all(pool).await?
    });
    rows.into_iter().map(from_row).collect()
}

/// Every record of one subject, oldest first.
pub async fn for_subject(db: &Db, subject: SubjectId) -> StoreResult<Vec<ConsentRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM consent_ledger WHERE subject = $1 ORDER BY seq");
    fetch(db, &sql, Some(subject.as_bytes().to_vec()), None).await
}

/// The records that make up one receipt.
pub async fn for_receipt(db: &Db, receipt_id: Uuid) -> StoreResult<Vec<ConsentRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM consent_ledger WHERE receipt_id = $1 ORDER BY seq");
    fetch(db, &sql, Some(receipt_id.as_bytes().to_vec()), None).await
}

/// Up to `limit` records after `seq`, for catching up with other processes' appends.
pub async fn after(db: &Db, seq: i64, limit: i64) -> StoreResult<Vec<ConsentRecord>> {
    let sql =
        format!("SELECT {COLUMNS} FROM consent_ledger WHERE seq > $1 ORDER BY seq LIMIT {limit}");
    let rows: Vec<Row> =
        on_db!(db, pool => sqlx::query_as::<_, Row>(&sql).bind(seq).fetch_all(pool).await?);
    rows.into_iter().map(from_row).collect()
}

/// The latest record per (subject, purpose), in ledger order: enough to rebuild the
/// gate's view after a start or a policy change.
pub async fn latest_decisions(db: &Db) -> StoreResult<Vec<ConsentRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM consent_ledger WHERE seq IN \
         (SELECT MAX(seq) FROM consent_ledger GROUP BY subject, purpose) ORDER BY seq"
    );
    fetch(db, &sql, None, None).await
}

/// The newest sequence number recorded for a subject (0 if none).
pub async fn subject_head(db: &Db, subject: SubjectId) -> StoreResult<i64> {
    let (seq,): (i64,) = on_db!(db, pool => sqlx::query_as(
        "SELECT COALESCE(MAX(seq), 0) FROM consent_ledger WHERE subject = $1")
        .bind(subject.as_bytes().to_vec())
        .fetch_one(pool)
        .await?);
    Ok(seq)
}

/// The ledger's newest sequence number (0 if empty).
pub async fn head(db: &Db) -> StoreResult<i64> {
    let (seq,): (i64,) = on_db!(db, pool => sqlx::query_as("SELECT seq FROM ledger_head WHERE id = 1").fetch_one(pool).await?);
    Ok(seq)
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verification {
    pub records_checked: i64,
    pub head_seq: i64,
    /// The first record that does not verify, and why; `None` if the chain is intact.
    pub first_bad: Option<BadRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BadRecord {
    pub seq: i64,
    pub reason: String,
}

/// Walks the chain from the start and reports the first altered, removed or reordered
/// record, and a truncated tail (head says more records than exist). `progress` is
/// called after each page with the number of records checked so far.
pub async fn verify(db: &Db, mut progress: impl FnMut(i64)) -> StoreResult<Verification> {
    const PAGE: i64 = 10_000;
    let (head_seq, head_hash): (i64, Vec<u8>) = on_db!(db, pool =>
        sqlx::query_as("SELECT seq, hash FROM ledger_head WHERE id = 1").fetch_one(pool).await?);
    let mut prev = GENESIS;
    let mut expected = 1i64;
    let mut checked = 0i64;
    let bad = |seq: i64, reason: String| BadRecord { seq, reason };
    loop {
        let sql = format!(
            "SELECT {COLUMNS} FROM consent_ledger WHERE seq >= $1 ORDER BY seq LIMIT {PAGE}"
        );
        let rows: Vec<Row> = on_db!(db, pool => sqlx::query_as::<_, Row>(&sql).bind(expected).fetch_all(pool).await?);
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let seq = row.0;
            let rec = match from_row(row) {
                Ok(r) => r,
                Err(e) => {
                    return Ok(Verification {
                        records_checked: checked,
                        head_seq,
                        first_bad: Some(bad(seq, e.to_string())),
                    })
                }
            };
            if rec.seq != expected {
                return Ok(Verification {
                    records_checked: checked,
                    head_seq,
                    first_bad: Some(bad(
                        expected,
                        format!("record {expected} is missing (next present is {})", rec.seq),
                    )),
                });
            }
            if rec.prev_hash != prev {
                return Ok(Verification {
                    records_checked: checked,
                    head_seq,
                    first_bad: Some(bad(
                        rec.seq,
                        "its link to the previous record does not match (removed or reordered)"
                            .into(),
                    )),
                });
            }
            if chain_hash(&prev, &rec.canonical_bytes()) != rec.hash {
                return Ok(Verification {
                    records_checked: checked,
                    head_seq,
                    first_bad: Some(bad(
                        rec.seq,
                        "its content does not match its hash (altered)".into(),
                    )),
                });
            }
            prev = rec.hash;
            expected += 1;
            checked += 1;
        }
        progress(checked);
    }
    let first_bad = if checked != head_seq {
        Some(bad(
            checked + 1,
            format!(
                "the head records {head_seq} entries but only {checked} are present (tail removed)"
            ),
        ))
    } else if head_hash != prev.to_vec() {
        Some(bad(
            head_seq,
            "the head hash does not match the last record".into(),
        ))
    } else {
        None
    };
    Ok(Verification {
        records_checked: checked,
        head_seq,
        first_bad,
    })
}

/// Follows appends made by other processes (PostgreSQL `LISTEN/NOTIFY`), calling `apply`
/// with each new run of records in order. `applied` is the highest sequence number up to
/// which this process has applied *every* record; the caller's own writer advances it
/// when its batch directly follows, so notices of this process's own appends cost no
/// query. Returns at once on SQLite, where one process owns the database. Notices lost
/// while disconnected are covered by reading everything after `applied` on reconnect.
pub async fn follow(
    db: Db,
    applied: std::sync::Arc<std::sync::atomic::AtomicI64>,
    apply: impl Fn(&[ConsentRecord]) + Send + Sync + 'static,
) {
    use std::sync::atomic::Ordering;
    let Db::Postgres(pool) = &db else { return };
    let catch_up = || async {
        loop {
            let from = applied.load(Ordering::SeqCst);
            match after(&db, from, 5_000).await {
                Ok(recs) if recs.is_empty() => return,
                Ok(recs) => {
                    apply(&recs);
                    let last = recs.last().map(|r| r.seq).unwrap_or(from);
                    applied.fetch_max(last, Ordering::SeqCst);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ledger catch-up failed");
                    return;
                }
            }
        }
    };
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "ledger listener cannot connect; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(NOTIFY_CHANNEL).await {
            tracing::warn!(error = %e, "ledger listener cannot subscribe; retrying");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        }
        catch_up().await;
        loop {
            match listener.try_recv().await {
                Ok(Some(notice)) => {
                    let seq: i64 = notice.payload().parse().unwrap_or(i64::MAX);
                    if seq > applied.load(Ordering::SeqCst) {
                        catch_up().await;
                    }
                }
                // The connection was lost and is re-established on the next call; notices
                // sent meanwhile are lost, so read whatever is new.
                Ok(None) => catch_up().await,
                Err(e) => {
                    tracing::warn!(error = %e, "ledger listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}
