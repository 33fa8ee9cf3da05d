//! Background export jobs (issue 6, P33, L7) and the reads and writes of the service log
//! that exports and erasure need. A job row is read and changed by its subject only
//! (`… AND subject = $n` in the statement) except by the purge; its payload arrives
//! already sealed under the subject's key.

use custos_core::SubjectId;

use crate::signals::StoredEvent;
use crate::{on_db, Db, StoreError, StoreResult};

/// One export job as stored (without its payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportJob {
    pub id: String,
    pub subject: Vec<u8>,
    pub ticket_id: i64,
    /// `running`, `ready` or `failed`.
    pub state: String,
    pub done: i64,
    pub total: i64,
    pub created_ms: i64,
    pub ready_ms: Option<i64>,
    /// The job (and its payload) is deleted at this time.
    pub expires_ms: i64,
    pub error: Option<String>,
}

type Row = (
    String,
    Vec<u8>,
    i64,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    i64,
    Option<String>,
);

const COLS: &str =
    "id, subject, ticket_id, state, done, total, created_ms, ready_ms, expires_ms, error";

fn job(r: Row) -> ExportJob {
    ExportJob {
        id: r.0,
        subject: r.1,
        ticket_id: r.2,
        state: r.3,
        done: r.4,
        total: r.5,
        created_ms: r.6,
        ready_ms: r.7,
        expires_ms: r.8,
        error: r.9,
    }
}

fn subj(s: SubjectId) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Records a new running job.
pub async fn create(
    db: &Db,
    id: &str,
    subject: SubjectId,
    ticket_id: i64,
    now_ms: i64,
    expires_ms: i64,
) -> StoreResult<ExportJob> {
    let sql = format!(
        "INSERT INTO export_jobs (id, subject, ticket_id, state, done, total, created_ms, expires_ms) \
         VALUES ($1, $2, $3, 'running', 0, 0, $4, $5) RETURNING {COLS}"
    );
    let row: Row = on_db!(db, p => sqlx::query_as(&sql)
        .bind(id).bind(subj(subject)).bind(ticket_id).bind(now_ms).bind(expires_ms)
        .fetch_one(p).await?);
    Ok(job(row))
}

/// One of the subject's jobs; another subject's job is `None` like a missing one.
pub async fn get(db: &Db, id: &str, subject: SubjectId) -> StoreResult<Option<ExportJob>> {
    let sql = format!("SELECT {COLS} FROM export_jobs WHERE id = $1 AND subject = $2");
    let row: Option<Row> = on_db!(db, p => sqlx::query_as(&sql)
        .bind(id).bind(subj(subject)).fetch_optional(p).await?);
    Ok(row.map(job))
}

/// The subject's jobs, newest first.
pub async fn of_subject(db: &Db, subject: SubjectId) -> StoreResult<Vec<ExportJob>> {
    let sql =
        format!("SELECT {COLS} FROM export_jobs WHERE subject = $1 ORDER BY created_ms DESC, id");
    let rows: Vec<Row> =
        on_db!(db, p => sqlx::query_as(&sql).bind(subj(subject)).fetch_all(p).await?);
    Ok(rows.into_iter().map(job).collect())
}

/// Records progress of a running job.
pub async fn progress(db: &Db, id: &str, done: i64, total: i64) -> StoreResult<()> {
    on_db!(db, p => sqlx::query(
        "UPDATE export_jobs SET done = $1, total = $2 WHERE id = $3 AND state = 'running'")
        .bind(done).bind(total).bind(id).execute(p).await?.rows_affected());
    Ok(())
}

/// Stores the sealed payload, marks the job ready until `expires_ms` and answers its
/// access ticket (`completed`, with `note`), in one transaction; `false` when the job is
/// gone (its subject was erased meanwhile).
pub async fn finish(
    db: &Db,
    id: &str,
    json_sealed: Vec<u8>,
    html_sealed: Vec<u8>,
    ready_ms: i64,
    expires_ms: i64,
    note: &str,
) -> StoreResult<bool> {
    on_db!(db, p => {
        let mut tx = p.begin().await?;
        let ticket: Option<(i64,)> = sqlx::query_as(
            "UPDATE export_jobs SET state = 'ready', done = total, json_sealed = $1, html_sealed = $2, \
             ready_ms = $3, expires_ms = $4 WHERE id = $5 AND state = 'running' RETURNING ticket_id")
            .bind(json_sealed).bind(html_sealed).bind(ready_ms).bind(expires_ms).bind(id)
            .fetch_optional(&mut *tx).await?;
        if let Some((t,)) = ticket {
            let n = sqlx::query(
                "UPDATE rights_tickets SET status = 'completed', closed_ms = $1 WHERE id = $2 AND closed_ms IS NULL")
                .bind(ready_ms).bind(t).execute(&mut *tx).await?.rows_affected();
            if n == 1 {
                sqlx::query("INSERT INTO rights_ticket_events (ticket_id, status, note, at_ms) VALUES ($1, 'completed', $2, $3)")
                    .bind(t).bind(note).bind(ready_ms).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(ticket.is_some())
    })
}

/// Marks a running job failed with a stable code.
pub async fn fail(db: &Db, id: &str, code: &str) -> StoreResult<()> {
    on_db!(db, p => sqlx::query(
        "UPDATE export_jobs SET state = 'failed', error = $1 WHERE id = $2 AND state = 'running'")
        .bind(code).bind(id).execute(p).await?.rows_affected());
    Ok(())
}

/// Which stored rendering of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendering {
    Json,
    Html,
}

/// The sealed payload of one of the subject's ready jobs.
pub async fn payload(
    db: &Db,
    id: &str,
    subject: SubjectId,
    which: Rendering,
) -> StoreResult<Option<Vec<u8>>> {
    let col = match which {
        Rendering::Json => "json_sealed",
        Rendering::Html => "html_sealed",
    };
    let sql =
        format!("SELECT {col} FROM export_jobs WHERE id = $1 AND subject = $2 AND state = 'ready'");
    let row: Option<(Option<Vec<u8>>,)> = on_db!(db, p => sqlx::query_as(&sql)
        .bind(id).bind(subj(subject)).fetch_optional(p).await?);
    Ok(row.and_then(|r| r.0))
}

/// Deletes every job whose time is up at `now_ms` (ready, failed or abandoned).
pub async fn purge_expired(db: &Db, now_ms: i64) -> StoreResult<u64> {
    Ok(
        on_db!(db, p => sqlx::query("DELETE FROM export_jobs WHERE expires_ms <= $1")
        .bind(now_ms).execute(p).await?.rows_affected()),
    )
}

/// Deletes one of the subject's jobs.
pub async fn delete(db: &Db, id: &str, subject: SubjectId) -> StoreResult<bool> {
    let n = on_db!(db, p => sqlx::query("DELETE FROM export_jobs WHERE id = $1 AND subject = $2")
        .bind(id).bind(subj(subject)).execute(p).await?.rows_affected());
    Ok(n == 1)
}

/// Deletes every job of the subject (erasure).
pub async fn delete_subject(db: &Db, subject: SubjectId) -> StoreResult<u64> {
    Ok(
        on_db!(db, p => sqlx::query("DELETE FROM export_jobs WHERE subject = $1")
        .bind(subj(subject)).execute(p).await?.rows_affected()),
    )
}

/// How many service-log events carry `pseudonym`.
pub async fn count_events(db: &Db, pseudonym: &[u8; 16]) -> StoreResult<i64> {
    let (n,): (i64,) = on_db!(db, p => sqlx::query_as(
        "SELECT COUNT(*) FROM service_events WHERE pseudonym = $1")
        .bind(pseudonym.to_vec()).fetch_one(p).await?);
    Ok(n)
}

type EventRow = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
);

/// Up to `limit` events of `pseudonym` with an id above `after_id`, in id order, with
/// their ids (to ask for the next page).
pub async fn events_page(
    db: &Db,
    pseudonym: &[u8; 16],
    after_id: i64,
    limit: i64,
) -> StoreResult<Vec<(i64, StoredEvent)>> {
    let rows: Vec<EventRow> = on_db!(db, p => sqlx::query_as(
        "SELECT id, purpose, kind, target, ip_prefix, carrier, language, at_ms, expires_at \
         FROM service_events WHERE pseudonym = $1 AND id > $2 ORDER BY id LIMIT $3")
        .bind(pseudonym.to_vec()).bind(after_id).bind(limit).fetch_all(p).await?);
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.0,
                StoredEvent {
                    pseudonym: *pseudonym,
                    purpose: r.1,
                    kind: r.2,
                    target: r.3,
                    ip_prefix: r.4,
                    carrier: r.5,
                    language: r.6,
                    at_ms: r.7,
                    expires_at_ms: r.8,
                },
            )
        })
        .collect())
}

/// Unlinks a subject's service-log events at erasure, in one transaction: events kept for
/// `delete_purpose` (the analytics log, which has no use without the account) are deleted;
/// every other event (security logs, which the law keeps) gets `replacement` as its
/// pseudonym (random, recorded nowhere) and keeps its retention, de-identified. Returns
/// (deleted, unlinked).
pub async fn unlink_events(
    db: &Db,
    pseudonym: &[u8; 16],
    replacement: &[u8; 16],
    delete_purpose: &str,
) -> StoreResult<(u64, u64)> {
    if pseudonym == replacement {
        return Err(StoreError::Corrupt(
            "replacement pseudonym equals the old one".into(),
        ));
    }
    on_db!(db, p => {
        let mut tx = p.begin().await?;
        let deleted = sqlx::query(
            "DELETE FROM service_events WHERE pseudonym = $1 AND purpose = $2")
            .bind(pseudonym.to_vec()).bind(delete_purpose)
            .execute(&mut *tx).await?.rows_affected();
        let unlinked = sqlx::query(
            "UPDATE service_events SET pseudonym = $1 WHERE pseudonym = $2")
            .bind(replacement.to_vec()).bind(pseudonym.to_vec())
            .execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok((deleted, unlinked))
    })
}
