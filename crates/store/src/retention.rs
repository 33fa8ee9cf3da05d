//! Retention (L9): the statements behind the purge job, the PostgreSQL monthly partitions
//! of the service log, and the lock that keeps one instance of a job running at a time
//! across processes.
//!
//! Which purpose governs which table, and so which declared retention applies, is decided
//! by the caller (`custos_app::jobs`); here every deletion takes the cut-off instant.
//!
//! - Deletions by declared retention: [`purge_fields_collected_before`],
//!   [`purge_events_before`], [`purge_interactions_before`], [`purge_closed_tickets_before`],
//!   [`delete_orphan_bookmarks`].
//! - Partitions (PostgreSQL only; SQLite keeps a plain table and these do nothing):
//!   [`event_partitions`], [`ensure_event_partitions`], [`drop_expired_event_partitions`].
//! - Locks: [`try_lock`] → [`JobLock`]: `pg_try_advisory_lock` on a connection held for the
//!   run on PostgreSQL; a lock row with a lease on SQLite.

use sqlx::pool::PoolConnection;
use sqlx::{Postgres, SqlitePool};
use time::OffsetDateTime;

use crate::{on_db, Db, StoreError, StoreResult};

// ---------------------------------------------------------------------------------------
// Deletions by declared retention
// ---------------------------------------------------------------------------------------

/// Deletes personal fields of `purpose` written (collected) at or before `before_ms`.
pub async fn purge_fields_collected_before(
    db: &Db,
    purpose: &str,
    before_ms: i64,
) -> StoreResult<u64> {
    Ok(on_db!(db, p => sqlx::query(
        "DELETE FROM personal_fields WHERE purpose = $1 AND updated_at <= $2")
        .bind(purpose)
        .bind(before_ms)
        .execute(p)
        .await?
        .rows_affected()))
}

/// Deletes service-log events of `purpose` that happened at or before `before_ms`.
pub async fn purge_events_before(db: &Db, purpose: &str, before_ms: i64) -> StoreResult<u64> {
    Ok(on_db!(db, p => sqlx::query(
        "DELETE FROM service_events WHERE purpose = $1 AND at_ms <= $2")
        .bind(purpose)
        .bind(before_ms)
        .execute(p)
        .await?
        .rows_affected()))
}

/// Deletes bookmarks, download records, shares and comments created at or before
/// `before_ms` (when their purpose's retention runs from collection).
pub async fn purge_interactions_before(db: &Db, before_ms: i64) -> StoreResult<u64> {
    let mut n = 0;
    for table in ["bookmarks", "downloads", "shares", "comments"] {
        let sql = format!("DELETE FROM {table} WHERE created_ms <= $1");
        n += on_db!(db, p => sqlx::query(&sql).bind(before_ms).execute(p).await?.rows_affected());
    }
    Ok(n)
}

/// Deletes closed rights tickets (with their history) opened at or before `before_ms`, and
/// partner notifications already sent by then. Open tickets and notifications still owed
/// stay whatever their age: they are obligations not yet met.
pub async fn purge_closed_tickets_before(db: &Db, before_ms: i64) -> StoreResult<u64> {
    on_db!(db, p => {
        let mut tx = p.begin().await?;
        sqlx::query(
            "DELETE FROM rights_ticket_events WHERE ticket_id IN \
             (SELECT id FROM rights_tickets WHERE closed_ms IS NOT NULL AND created_ms <= $1)")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?;
        let t = sqlx::query(
            "DELETE FROM rights_tickets WHERE closed_ms IS NOT NULL AND created_ms <= $1")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let n = sqlx::query(
            "DELETE FROM partner_notifications WHERE notified_ms IS NOT NULL AND created_ms <= $1")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(t + n)
    })
}

/// Deletes bookmarks of items that no longer exist (a trigger does it when an item is
/// deleted; this catches any left behind).
pub async fn delete_orphan_bookmarks(db: &Db) -> StoreResult<u64> {
    Ok(on_db!(db, p => sqlx::query(
        "DELETE FROM bookmarks WHERE NOT EXISTS \
         (SELECT 1 FROM catalog_items i WHERE i.id = bookmarks.item_id)")
        .execute(p)
        .await?
        .rows_affected()))
}

// ---------------------------------------------------------------------------------------
// Monthly partitions of the service log (PostgreSQL)
// ---------------------------------------------------------------------------------------

/// One monthly partition of `service_events`: rows with `from_ms <= at_ms < to_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub name: String,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// The table catching events outside every monthly partition.
pub const DEFAULT_PARTITION: &str = "service_events_default";

/// Lock key of partition maintenance (transaction-scoped advisory lock).
const PARTITION_LOCK: i64 = 0x4355_5354_5041_5254; // "CUSTPART"

/// The UTC month holding `ms`: its first instant and the next month's, and its name.
pub fn month_of(ms: i64) -> StoreResult<Partition> {
    let bad = |_| StoreError::Invalid(format!("instant {ms} is out of range"));
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_err(bad)?;
    let start = time::Date::from_calendar_date(t.year(), t.month(), 1)
        .map_err(|_| StoreError::Invalid("month".into()))?;
    let (ny, nm) = match t.month() {
        time::Month::December => (t.year() + 1, time::Month::January),
        m => (t.year(), m.next()),
    };
    let next = time::Date::from_calendar_date(ny, nm, 1)
        .map_err(|_| StoreError::Invalid("month".into()))?;
    let ms_of =
        |d: time::Date| (d.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    Ok(Partition {
        name: format!("service_events_y{:04}m{:02}", t.year(), u8::from(t.month())),
        from_ms: ms_of(start),
        to_ms: ms_of(next),
    })
}

/// The monthly partitions that exist, oldest first (none on SQLite).
pub async fn event_partitions(db: &Db) -> StoreResult<Vec<Partition>> {
    let Db::Postgres(p) = db else {
        return Ok(Vec::new());
    };
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i \
         JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'service_events'::regclass",
    )
    .fetch_all(p)
    .await?;
    let mut out: Vec<Partition> = rows
        .into_iter()
        .filter_map(|(name, bound)| {
            // `FOR VALUES FROM ('1767225600000') TO ('1769904000000')`, or `DEFAULT`.
            let nums: Vec<i64> = bound
                .split(|c: char| !c.is_ascii_digit() && c != '-')
                .filter_map(|t| t.parse().ok())
                .collect();
            match nums.as_slice() {
                [from_ms, to_ms] => Some(Partition {
                    name,
                    from_ms: *from_ms,
                    to_ms: *to_ms,
                }),
                _ => None,
            }
        })
        .collect();
    out.sort_by_key(|p| p.from_ms);
    Ok(out)
}

/// Creates the partitions of the month holding `now_ms` and of the `months_ahead` months
/// after it, when missing. Rows of such a month that meanwhile landed in the default
/// partition are moved into it. Returns the names created (none on SQLite).
pub async fn ensure_event_partitions(
    db: &Db,
    now_ms: i64,
    months_ahead: u32,
) -> StoreResult<Vec<String>> {
    let Db::Postgres(pool) = db else {
        return Ok(Vec::new());
    };
    let mut wanted = vec![month_of(now_ms)?];
    for _ in 0..months_ahead {
        let last = wanted.last().map(|p| p.to_ms).unwrap_or(now_ms);
        wanted.push(month_of(last)?);
    }
    let existing = event_partitions(db).await?;
    let mut created = Vec::new();
    for m in wanted {
        if existing
            .iter()
            .any(|e| e.from_ms < m.to_ms && m.from_ms < e.to_ms)
        {
            continue;
        }
        let mut tx = pool.begin().await?;
        // One process at a time; the others find the partition made when they get here.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PARTITION_LOCK)
            .execute(&mut *tx)
            .await?;
        let (exists,): (bool,) = sqlx::query_as("SELECT to_regclass($1) IS NOT NULL")
            .bind(&m.name)
            .fetch_one(&mut *tx)
            .await?;
        if exists {
            tx.rollback().await?;
            continue;
        }
        sqlx::query(
            "CREATE TEMP TABLE custos_moving (LIKE service_events INCLUDING DEFAULTS) ON COMMIT DROP",
        )
        .execute(&mut *tx)
        .await?;
        let moved = sqlx::query(&format!(
            "WITH m AS (DELETE FROM {DEFAULT_PARTITION} WHERE at_ms >= {} AND at_ms < {} RETURNING *) \
             INSERT INTO custos_moving SELECT * FROM m",
            m.from_ms, m.to_ms
        ))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(&format!(
            "CREATE TABLE \"{}\" PARTITION OF service_events FOR VALUES FROM ({}) TO ({})",
            m.name, m.from_ms, m.to_ms
        ))
        .execute(&mut *tx)
        .await?;
        if moved > 0 {
            sqlx::query("INSERT INTO service_events SELECT * FROM custos_moving")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        created.push(m.name);
    }
    Ok(created)
}

/// A partition dropped by [`drop_expired_event_partitions`], with its row count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub name: String,
    pub rows: u64,
}

/// Drops every monthly partition entirely past retention: its month ended at least
/// `settle_ms` before `now_ms` (no late event can still arrive for it) and none of its
/// rows expires after `now_ms` (or lacks an expiry). The boundary months are left to a
/// row DELETE. Nothing on SQLite.
pub async fn drop_expired_event_partitions(
    db: &Db,
    now_ms: i64,
    settle_ms: i64,
) -> StoreResult<Vec<Dropped>> {
    let Db::Postgres(pool) = db else {
        return Ok(Vec::new());
    };
    let mut dropped = Vec::new();
    for part in event_partitions(db).await? {
        if part.to_ms.saturating_add(settle_ms) > now_ms {
            continue;
        }
        let mut tx = pool.begin().await?;
        // Nothing is written to the month while it is checked and dropped.
        sqlx::query(&format!("LOCK TABLE \"{}\" IN EXCLUSIVE MODE", part.name))
            .execute(&mut *tx)
            .await?;
        let (live,): (bool,) = sqlx::query_as(&format!(
            "SELECT EXISTS (SELECT 1 FROM \"{}\" WHERE expires_at IS NULL OR expires_at > $1)",
            part.name
        ))
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?;
        if live {
            tx.rollback().await?;
            continue;
        }
        let (rows,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM \"{}\"", part.name))
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(&format!("DROP TABLE \"{}\"", part.name))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        dropped.push(Dropped {
            name: part.name,
            rows: rows as u64,
        });
    }
    Ok(dropped)
}

// ---------------------------------------------------------------------------------------
// One job instance at a time
// ---------------------------------------------------------------------------------------

/// First key of the two-key advisory locks of jobs ("CUST").
const JOB_LOCK_CLASS: i32 = 0x4355_5354;

/// A stable 31-bit key for a job name (FNV-1a).
fn job_key(job: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in job.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h & 0x7fff_ffff) as i32
}

/// A held job lock; [`JobLock::release`] gives it back. Dropped without release, the
/// PostgreSQL lock goes with its connection (which is closed, not returned to the pool),
/// and the SQLite lease runs out.
#[derive(Debug)]
pub struct JobLock {
    held: Option<Held>,
}

#[derive(Debug)]
enum Held {
    Postgres {
        conn: PoolConnection<Postgres>,
        key: i32,
    },
    Sqlite {
        pool: SqlitePool,
        job: String,
        holder: String,
    },
}

/// Takes the lock of `job` if no other process (or task) holds it. On SQLite the lock is
/// a lease until `now_ms + lease_ms`, taken over once it has run out.
pub async fn try_lock(
    db: &Db,
    job: &str,
    now_ms: i64,
    lease_ms: i64,
) -> StoreResult<Option<JobLock>> {
    match db {
        Db::Postgres(pool) => {
            let key = job_key(job);
            let mut conn = pool.acquire().await?;
            let (ok,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1, $2)")
                .bind(JOB_LOCK_CLASS)
                .bind(key)
                .fetch_one(&mut *conn)
                .await?;
            Ok(ok.then_some(JobLock {
                held: Some(Held::Postgres { conn, key }),
            }))
        }
        Db::Sqlite(pool) => {
            let holder = uuid::Uuid::new_v4().to_string();
            let n = sqlx::query(
                "INSERT INTO job_locks (job, holder, expires_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, \
                 expires_ms = excluded.expires_ms WHERE job_locks.expires_ms <= $4",
            )
            .bind(job)
            .bind(&holder)
            .bind(now_ms.saturating_add(lease_ms))
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected();
            Ok((n == 1).then(|| JobLock {
                held: Some(Held::Sqlite {
                    pool: pool.clone(),
                    job: job.to_owned(),
                    holder,
                }),
            }))
        }
    }
}

impl JobLock {
    /// Gives the lock back.
    pub async fn release(mut self) -> StoreResult<()> {
        match self.held.take() {
            Some(Held::Postgres { mut conn, key }) => {
                sqlx::query("SELECT pg_advisory_unlock($1, $2)")
                    .bind(JOB_LOCK_CLASS)
                    .bind(key)
                    .execute(&mut *conn)
                    .await?;
            }
            Some(Held::Sqlite { pool, job, holder }) => {
                sqlx::query("DELETE FROM job_locks WHERE job = $1 AND holder = $2")
                    .bind(job)
                    .bind(holder)
                    .execute(&pool)
                    .await?;
            }
            None => {}
        }
        Ok(())
    }
}

impl Drop for JobLock {
    fn drop(&mut self) {
        if let Some(Held::Postgres { conn, .. }) = self.held.take() {
            // Closing the session releases its advisory locks; returning it to the pool
            // would keep the lock held by an idle connection.
            drop(conn.detach());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_utc_calendar_months() {
        // 2026-01-01T00:00:00Z
        let jan = month_of(1_767_225_600_000).unwrap();
        assert_eq!(jan.name, "service_events_y2026m01");
        assert_eq!(jan.from_ms, 1_767_225_600_000);
        assert_eq!(jan.to_ms, 1_767_225_600_000 + 31 * 86_400_000);
        let last_ms_of_jan = month_of(jan.to_ms - 1).unwrap();
        assert_eq!(last_ms_of_jan, jan);
        let dec = month_of(1_796_083_200_000 + 5).unwrap();
        assert_eq!(dec.name, "service_events_y2026m12");
        assert_eq!(month_of(dec.to_ms).unwrap().name, "service_events_y2027m01");
    }

    #[test]
    fn job_keys_are_stable_and_distinct() {
        assert_eq!(job_key("purge"), job_key("purge"));
        assert_ne!(job_key("purge"), job_key("cancellations"));
        assert!(job_key("purge") >= 0);
    }
}
