//! Cessations (issue 7: P18, P22): a discontinued feature or the whole service, the
//! purposes whose collection stopped, when its data is erased, and the erasure's progress.

use crate::revisions::split;
use crate::{on_db, Db, StoreResult};

/// The `feature` column of a whole-service cessation.
pub const SERVICE: &str = "*";

/// One cessation as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Cessation {
    pub id: i64,
    /// `feature` or `service`.
    pub scope: String,
    /// The feature id, or `*` for the whole service.
    pub feature: String,
    /// Purposes whose collection stopped.
    pub purposes: Vec<String>,
    pub reason: String,
    pub ceased_at_ms: i64,
    /// When erasure of the data may start.
    pub erase_after_ms: i64,
    /// `collection_stopped`, `erasing` or `completed`.
    pub status: String,
    pub notified: i64,
    pub subjects_total: i64,
    pub subjects_done: i64,
    pub completed_at_ms: Option<i64>,
}

/// What a new cessation needs.
#[derive(Debug, Clone)]
pub struct NewCessation<'a> {
    pub scope: &'a str,
    pub feature: &'a str,
    pub purposes: &'a [String],
    pub reason: &'a str,
    pub ceased_at_ms: i64,
    pub erase_after_ms: i64,
}

const COLUMNS: &str = "id, scope, feature, purposes, reason, ceased_at, erase_after, status, \
                       notified, subjects_total, subjects_done, completed_at";

type Row = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
);

fn from_row(r: Row) -> Cessation {
    Cessation {
        id: r.0,
        scope: r.1,
        feature: r.2,
        purposes: split(&r.3),
        reason: r.4,
        ceased_at_ms: r.5,
        erase_after_ms: r.6,
        status: r.7,
        notified: r.8,
        subjects_total: r.9,
        subjects_done: r.10,
        completed_at_ms: r.11,
    }
}

/// Records a cessation. `None` when that feature (or the service) already ceased.
pub async fn insert(db: &Db, c: &NewCessation<'_>) -> StoreResult<Option<Cessation>> {
    let n = on_db!(db, p => sqlx::query(
        "INSERT INTO cessations (scope, feature, purposes, reason, ceased_at, erase_after, status) \
         VALUES ($1, $2, $3, $4, $5, $6, 'collection_stopped') ON CONFLICT (scope, feature) DO NOTHING")
        .bind(c.scope)
        .bind(c.feature)
        .bind(c.purposes.join(","))
        .bind(c.reason)
        .bind(c.ceased_at_ms)
        .bind(c.erase_after_ms)
        .execute(p)
        .await?
        .rows_affected());
    if n == 0 {
        return Ok(None);
    }
    let sql = format!("SELECT {COLUMNS} FROM cessations WHERE scope = $1 AND feature = $2");
    let row: Row = on_db!(db, p => sqlx::query_as(&sql)
        .bind(c.scope)
        .bind(c.feature)
        .fetch_one(p)
        .await?);
    Ok(Some(from_row(row)))
}

/// Every cessation, oldest first.
pub async fn list(db: &Db) -> StoreResult<Vec<Cessation>> {
    let sql = format!("SELECT {COLUMNS} FROM cessations ORDER BY id");
    let rows: Vec<Row> = on_db!(db, p => sqlx::query_as(&sql).fetch_all(p).await?);
    Ok(rows.into_iter().map(from_row).collect())
}

/// Sets how many users were told.
pub async fn set_notified(db: &Db, id: i64, notified: i64) -> StoreResult<()> {
    on_db!(db, p => sqlx::query("UPDATE cessations SET notified = $1 WHERE id = $2")
        .bind(notified)
        .bind(id)
        .execute(p)
        .await
        .map(|_| ())?);
    Ok(())
}

/// Records erasure progress; `completed_at_ms` set means done.
pub async fn set_progress(
    db: &Db,
    id: i64,
    total: i64,
    done: i64,
    completed_at_ms: Option<i64>,
) -> StoreResult<()> {
    let status = if completed_at_ms.is_some() {
        "completed"
    } else {
        "erasing"
    };
    on_db!(db, p => sqlx::query(
        "UPDATE cessations SET status = $1, subjects_total = $2, subjects_done = $3, completed_at = $4 \
         WHERE id = $5")
        .bind(status)
        .bind(total)
        .bind(done)
        .bind(completed_at_ms)
        .bind(id)
        .execute(p)
        .await
        .map(|_| ())?);
    Ok(())
}
