//! Data leaving and entering through partners (issue 7): the log of every share with a
//! partner or public disclosure (P29, P30, P32) — field names and basis, never values —
//! and the records of data received from third parties (P16), whose values are personal
//! fields encrypted under the subject's key like first-party data.

use custos_core::SubjectId;

use crate::{on_db, Db, StoreError, StoreResult};

/// One logged share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub id: i64,
    pub subject: SubjectId,
    pub partner: String,
    /// The consent purpose it served; `None` under a legal exception.
    pub purpose: Option<String>,
    /// `consent`, or the legal basis key of the exception (P32).
    pub basis: String,
    pub exception_ref: Option<String>,
    pub exception_reason: Option<String>,
    /// Field names sent.
    pub fields: Vec<String>,
    /// Field names withheld: not on the partner's allow-list.
    pub stripped: Vec<String>,
    pub policy_hash: String,
    pub actor: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub at_ms: i64,
}

type ShareRow = (
    i64,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
    i64,
);

const SHARE_COLS: &str = "id, subject, partner, purpose, basis, exception_ref, exception_reason, \
                          fields, stripped, policy_hash, actor, status, at_ms";

fn names(json: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(json).map_err(|_| StoreError::Corrupt("share field list".into()))
}

fn subject_of(s: &str) -> StoreResult<SubjectId> {
    s.parse()
        .map_err(|_| StoreError::Corrupt("subject id".into()))
}

fn share(r: ShareRow) -> StoreResult<Share> {
    Ok(Share {
        id: r.0,
        subject: subject_of(&r.1)?,
        partner: r.2,
        purpose: r.3,
        basis: r.4,
        exception_ref: r.5,
        exception_reason: r.6,
        fields: names(&r.7)?,
        stripped: names(&r.8)?,
        policy_hash: r.9,
        actor: r.10,
        status: r.11,
        at_ms: r.12,
    })
}

/// Logs a share as `pending`, before anything leaves; returns its id.
pub async fn log_share(db: &Db, s: &Share) -> StoreResult<i64> {
    let fields = serde_json::to_string(&s.fields).unwrap_or_else(|_| "[]".into());
    let stripped = serde_json::to_string(&s.stripped).unwrap_or_else(|_| "[]".into());
    let (id,): (i64,) = on_db!(db, p => sqlx::query_as(
        "INSERT INTO partner_shares (subject, partner, purpose, basis, exception_ref, \
         exception_reason, fields, stripped, policy_hash, actor, status, at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id")
        .bind(s.subject.to_string()).bind(&s.partner).bind(&s.purpose).bind(&s.basis)
        .bind(&s.exception_ref).bind(&s.exception_reason).bind(fields).bind(stripped)
        .bind(&s.policy_hash).bind(&s.actor).bind(&s.status).bind(s.at_ms)
        .fetch_one(p).await?);
    Ok(id)
}

/// Sets the delivery outcome of a logged share.
pub async fn set_status(db: &Db, id: i64, status: &str) -> StoreResult<()> {
    on_db!(db, p => sqlx::query("UPDATE partner_shares SET status = $1 WHERE id = $2")
        .bind(status).bind(id).execute(p).await.map(|_| ())?);
    Ok(())
}

/// The subject's shares, oldest first (for the user and the export).
pub async fn shares_of(db: &Db, subject: SubjectId) -> StoreResult<Vec<Share>> {
    let sql = format!("SELECT {SHARE_COLS} FROM partner_shares WHERE subject = $1 ORDER BY id");
    let rows: Vec<ShareRow> = on_db!(db, p => sqlx::query_as(&sql)
        .bind(subject.to_string()).fetch_all(p).await?);
    rows.into_iter().map(share).collect()
}

/// Partners that received the subject's data (delivered shares), for erasure notices (L8).
pub async fn partners_of(db: &Db, subject: SubjectId) -> StoreResult<Vec<String>> {
    let rows: Vec<(String,)> = on_db!(db, p => sqlx::query_as(
        "SELECT DISTINCT partner FROM partner_shares WHERE subject = $1 AND status = 'delivered' \
         ORDER BY partner")
        .bind(subject.to_string()).fetch_all(p).await?);
    Ok(rows.into_iter().map(|(p,)| p).collect())
}

/// Subjects whose data was delivered to `partner` between `from_ms` and `to_ms`.
pub async fn subjects_shared_with(
    db: &Db,
    partner: &str,
    from_ms: i64,
    to_ms: i64,
) -> StoreResult<std::collections::BTreeSet<SubjectId>> {
    let rows: Vec<(String,)> = on_db!(db, p => sqlx::query_as(
        "SELECT DISTINCT subject FROM partner_shares WHERE partner = $1 AND status = 'delivered' \
         AND at_ms >= $2 AND at_ms <= $3")
        .bind(partner).bind(from_ms).bind(to_ms).fetch_all(p).await?);
    rows.iter().map(|(s,)| subject_of(s)).collect()
}

/// At erasure: the share log stays as the record that shares happened, under a random id
/// (`replacement`); inbound records are deleted (their values went with the subject's key).
pub async fn erase_subject(
    db: &Db,
    subject: SubjectId,
    replacement: SubjectId,
) -> StoreResult<(u64, u64)> {
    let s = subject.to_string();
    Ok(on_db!(db, p => {
        let mut tx = p.begin().await?;
        let a = sqlx::query("UPDATE partner_shares SET subject = $1 WHERE subject = $2")
            .bind(replacement.to_string()).bind(&s).execute(&mut *tx).await?.rows_affected();
        sqlx::query("DELETE FROM inbound_fields WHERE record_id IN \
                     (SELECT id FROM inbound_records WHERE subject = $1)")
            .bind(&s).execute(&mut *tx).await?;
        let b = sqlx::query("DELETE FROM inbound_records WHERE subject = $1")
            .bind(&s).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        (a, b)
    }))
}

/// One field received from a third party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundField {
    /// The name the source gave it.
    pub name: String,
    /// The personal field it is stored under.
    pub stored_as: String,
    pub category: String,
    pub sensitive: bool,
    pub confirmed_ms: Option<i64>,
}

/// One delivery of data from a third party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRecord {
    pub id: i64,
    pub subject: SubjectId,
    pub source: String,
    pub consent_commitment: String,
    pub purpose: String,
    pub received_ms: i64,
    pub fields: Vec<InboundField>,
}

/// Records a delivery (the values are stored as personal fields by the caller, after).
pub async fn add_inbound(
    db: &Db,
    subject: SubjectId,
    source: &str,
    consent_commitment: &str,
    purpose: &str,
    fields: &[InboundField],
    now_ms: i64,
) -> StoreResult<i64> {
    Ok(on_db!(db, p => {
        let mut tx = p.begin().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO inbound_records (subject, source, consent_commitment, purpose, received_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id")
            .bind(subject.to_string()).bind(source).bind(consent_commitment).bind(purpose)
            .bind(now_ms).fetch_one(&mut *tx).await?;
        for f in fields {
            sqlx::query("INSERT INTO inbound_fields (record_id, name, stored_as, category, sensitive, confirmed_ms) \
                         VALUES ($1, $2, $3, $4, $5, NULL)")
                .bind(id).bind(&f.name).bind(inbound_field_name(id, &f.name))
                .bind(&f.category).bind(f.sensitive)
                .execute(&mut *tx).await?;
        }
        tx.commit().await?;
        id
    }))
}

/// Personal fields received from third parties are named `inbound.<record>.<name>`, apart
/// from first-party fields, so nothing reads them by accident.
pub const INBOUND_PREFIX: &str = "inbound.";

/// The personal field a received field of record `id` is stored under.
pub fn inbound_field_name(id: i64, name: &str) -> String {
    format!("{INBOUND_PREFIX}{id}.{name}")
}

/// Removes a delivery whose values could not be stored.
pub async fn delete_inbound(db: &Db, id: i64) -> StoreResult<()> {
    on_db!(db, p => {
        let mut tx = p.begin().await?;
        sqlx::query("DELETE FROM inbound_fields WHERE record_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM inbound_records WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// The subject's deliveries, oldest first, with their fields.
pub async fn inbound_of(db: &Db, subject: SubjectId) -> StoreResult<Vec<InboundRecord>> {
    let rows: Vec<(i64, String, String, String, String, i64)> = on_db!(db, p => sqlx::query_as(
        "SELECT id, subject, source, consent_commitment, purpose, received_ms FROM inbound_records \
         WHERE subject = $1 ORDER BY id")
        .bind(subject.to_string()).fetch_all(p).await?);
    let mut out = Vec::with_capacity(rows.len());
    for (id, s, source, consent_commitment, purpose, received_ms) in rows {
        out.push(InboundRecord {
            id,
            subject: subject_of(&s)?,
            source,
            consent_commitment,
            purpose,
            received_ms,
            fields: inbound_fields(db, id).await?,
        });
    }
    Ok(out)
}

/// One delivery of the subject's, if it is theirs.
pub async fn inbound_record(
    db: &Db,
    subject: SubjectId,
    id: i64,
) -> StoreResult<Option<InboundRecord>> {
    Ok(inbound_of(db, subject)
        .await?
        .into_iter()
        .find(|r| r.id == id))
}

async fn inbound_fields(db: &Db, record_id: i64) -> StoreResult<Vec<InboundField>> {
    let rows: Vec<(String, String, String, bool, Option<i64>)> = on_db!(db, p => sqlx::query_as(
        "SELECT name, stored_as, category, sensitive, confirmed_ms FROM inbound_fields \
         WHERE record_id = $1 ORDER BY name")
        .bind(record_id).fetch_all(p).await?);
    Ok(rows
        .into_iter()
        .map(
            |(name, stored_as, category, sensitive, confirmed_ms)| InboundField {
                name,
                stored_as,
                category,
                sensitive,
                confirmed_ms,
            },
        )
        .collect())
}

/// Confirms the record's sensitive fields (the subject's own delivery only); returns how
/// many were confirmed now.
pub async fn confirm_inbound(
    db: &Db,
    subject: SubjectId,
    id: i64,
    now_ms: i64,
) -> StoreResult<u64> {
    Ok(on_db!(db, p => sqlx::query(
        "UPDATE inbound_fields SET confirmed_ms = $1 WHERE record_id = $2 AND confirmed_ms IS NULL \
         AND sensitive AND record_id IN (SELECT id FROM inbound_records WHERE subject = $3)")
        .bind(now_ms).bind(id).bind(subject.to_string())
        .execute(p).await?.rows_affected()))
}
