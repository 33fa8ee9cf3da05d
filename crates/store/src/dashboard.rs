//! Read-only aggregates for the operator console's dashboard: consent decisions per
//! purpose and day (from the ledger), open and overdue rights tickets, catalog ingest per
//! day, and the share log without subject ids. Nothing here writes; no row names a user.

use crate::{on_db, Db, StoreResult};

/// Milliseconds in a day (UTC days: `at_ms / DAY_MS`).
pub const DAY_MS: i64 = 86_400_000;

/// Consent decisions recorded for one purpose on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionsPerDay {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub purpose: String,
    /// `given`, `refused` or `withdrawn`.
    pub decision: String,
    pub count: i64,
}

/// Ledger records at or after `from_ms`, counted per day, purpose and decision; ordered
/// by day, purpose, decision.
pub async fn decisions_per_day(db: &Db, from_ms: i64) -> StoreResult<Vec<DecisionsPerDay>> {
    let rows: Vec<(i64, String, String, i64)> = on_db!(db, p => sqlx::query_as(
        "SELECT at_ms / 86400000 AS day, purpose, decision, COUNT(*) AS n FROM consent_ledger \
         WHERE at_ms >= $1 GROUP BY at_ms / 86400000, purpose, decision \
         ORDER BY day, purpose, decision")
        .bind(from_ms).fetch_all(p).await?);
    Ok(rows
        .into_iter()
        .map(|(day, purpose, decision, count)| DecisionsPerDay {
            day,
            purpose,
            decision,
            count,
        })
        .collect())
}

/// Open rights tickets (complaints and reports included) and how many of them are past
/// their deadline at `now_ms`.
pub async fn ticket_counts(db: &Db, now_ms: i64) -> StoreResult<(i64, i64)> {
    let (open, overdue): (i64, i64) = on_db!(db, p => sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN due_ms <= $1 THEN 1 ELSE 0 END), 0) \
         FROM rights_tickets WHERE closed_ms IS NULL")
        .bind(now_ms).fetch_one(p).await?);
    Ok((open, overdue))
}

/// Catalog items written (imported, edited or deleted) per UTC day at or after
/// `from_ms`, each item once a day: `(day, items)`, oldest first.
pub async fn ingest_per_day(db: &Db, from_ms: i64) -> StoreResult<Vec<(i64, i64)>> {
    let rows: Vec<(i64, i64)> = on_db!(db, p => sqlx::query_as(
        "SELECT at_ms / 86400000 AS day, COUNT(DISTINCT item_id) AS n FROM catalog_changes WHERE at_ms >= $1 \
         GROUP BY at_ms / 86400000 ORDER BY day")
        .bind(from_ms).fetch_all(p).await?);
    Ok(rows)
}

/// One entry of the share log as operators see it: what went to whom, never about whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareLogRow {
    pub id: i64,
    pub partner: String,
    pub purpose: Option<String>,
    pub basis: String,
    /// JSON array of field names sent.
    pub fields: String,
    /// JSON array of field names withheld.
    pub stripped: String,
    pub actor: String,
    pub status: String,
    pub at_ms: i64,
}

type ShareLogTuple = (
    i64,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
    i64,
);

/// The newest `limit` shares before id `before` (all when `None`), newest first.
pub async fn share_log(db: &Db, before: Option<i64>, limit: i64) -> StoreResult<Vec<ShareLogRow>> {
    let rows: Vec<ShareLogTuple> = on_db!(db, p => sqlx::query_as(
        "SELECT id, partner, purpose, basis, fields, stripped, actor, status, at_ms \
         FROM partner_shares WHERE id < $1 ORDER BY id DESC LIMIT $2")
        .bind(before.unwrap_or(i64::MAX)).bind(limit.clamp(1, 500)).fetch_all(p).await?);
    Ok(rows
        .into_iter()
        .map(
            |(id, partner, purpose, basis, fields, stripped, actor, status, at_ms)| ShareLogRow {
                id,
                partner,
                purpose,
                basis,
                fields,
                stripped,
                actor,
                status,
                at_ms,
            },
        )
        .collect())
}
