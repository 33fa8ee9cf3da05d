//! Complaints and reports (issue 6, P34): each is a rights ticket (deadline, status
//! history) with a row saying what it is about, the operator's answer and, for an
//! anonymous filer, the keyed hash of the follow-up secret that reads the answer.

use custos_core::SubjectId;

use super::{ticket, Row, Ticket, COLS};
use crate::{on_db, Db, StoreResult};

/// What a complaint adds to its ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complaint {
    pub ticket_id: i64,
    /// `complaint` or `report`.
    pub kind: String,
    /// `content`, `data_handling` or `service`.
    pub topic: String,
    /// What it concerns, e.g. `item:42` or `comment:7`.
    pub about: Option<String>,
    pub anonymous: bool,
    pub answer: Option<String>,
    pub answered_ms: Option<i64>,
}

type CRow = (
    i64,
    String,
    String,
    Option<String>,
    i64,
    Option<String>,
    Option<i64>,
);

const CCOLS: &str = "ticket_id, kind, topic, about, anonymous, answer, answered_ms";

fn complaint(r: CRow) -> Complaint {
    Complaint {
        ticket_id: r.0,
        kind: r.1,
        topic: r.2,
        about: r.3,
        anonymous: r.4 != 0,
        answer: r.5,
        answered_ms: r.6,
    }
}

/// A complaint to file.
#[derive(Debug, Clone)]
pub struct NewComplaint<'a> {
    pub subject: SubjectId,
    pub kind: &'a str,
    pub topic: &'a str,
    pub about: Option<&'a str>,
    pub detail: &'a str,
    pub anonymous: bool,
    /// Keyed hash of the anonymous filer's follow-up secret.
    pub follow_up: Option<[u8; 16]>,
}

/// Files a complaint: its ticket (status `open`, first history entry) and its row, in one
/// transaction.
pub async fn file(
    db: &Db,
    c: &NewComplaint<'_>,
    now_ms: i64,
    due_ms: i64,
) -> StoreResult<(Ticket, Complaint)> {
    let tsql = format!(
        "INSERT INTO rights_tickets (subject, kind, status, detail, created_ms, due_ms) \
         VALUES ($1, $2, 'open', $3, $4, $5) RETURNING {COLS}"
    );
    let csql = format!(
        "INSERT INTO complaints (ticket_id, kind, topic, about, anonymous, follow_up) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {CCOLS}"
    );
    let (t, row): (Row, CRow) = on_db!(db, p => {
        let mut tx = p.begin().await?;
        let t: Row = sqlx::query_as(&tsql)
            .bind(c.subject.as_bytes().to_vec()).bind(c.kind).bind(c.detail)
            .bind(now_ms).bind(due_ms)
            .fetch_one(&mut *tx).await?;
        sqlx::query("INSERT INTO rights_ticket_events (ticket_id, status, note, at_ms) VALUES ($1, 'open', '', $2)")
            .bind(t.0).bind(now_ms).execute(&mut *tx).await?;
        let row: CRow = sqlx::query_as(&csql)
            .bind(t.0).bind(c.kind).bind(c.topic).bind(c.about).bind(i64::from(c.anonymous))
            .bind(c.follow_up.map(|h| h.to_vec()))
            .fetch_one(&mut *tx).await?;
        tx.commit().await?;
        (t, row)
    });
    Ok((ticket(t), complaint(row)))
}

/// The complaint row of ticket `ticket_id`.
pub async fn get(db: &Db, ticket_id: i64) -> StoreResult<Option<Complaint>> {
    let sql = format!("SELECT {CCOLS} FROM complaints WHERE ticket_id = $1");
    let row: Option<CRow> =
        on_db!(db, p => sqlx::query_as(&sql).bind(ticket_id).fetch_optional(p).await?);
    Ok(row.map(complaint))
}

/// The complaint whose follow-up secret hashes to `follow_up`.
pub async fn by_follow_up(db: &Db, follow_up: &[u8; 16]) -> StoreResult<Option<Complaint>> {
    let sql = format!("SELECT {CCOLS} FROM complaints WHERE follow_up = $1");
    let row: Option<CRow> = on_db!(db, p => sqlx::query_as(&sql)
        .bind(follow_up.to_vec()).fetch_optional(p).await?);
    Ok(row.map(complaint))
}

/// Records the operator's answer and closes the ticket as `answered`, with the answer in
/// its history, in one transaction; `false` when the ticket is not an open complaint.
pub async fn answer(db: &Db, ticket_id: i64, answer: &str, now_ms: i64) -> StoreResult<bool> {
    on_db!(db, p => {
        let mut tx = p.begin().await?;
        let n = sqlx::query(
            "UPDATE rights_tickets SET status = 'answered', closed_ms = $1 \
             WHERE id = $2 AND closed_ms IS NULL \
             AND EXISTS (SELECT 1 FROM complaints c WHERE c.ticket_id = $2)")
            .bind(now_ms).bind(ticket_id).execute(&mut *tx).await?.rows_affected();
        if n == 1 {
            sqlx::query("UPDATE complaints SET answer = $1, answered_ms = $2 WHERE ticket_id = $3")
                .bind(answer).bind(now_ms).bind(ticket_id).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO rights_ticket_events (ticket_id, status, note, at_ms) VALUES ($1, 'answered', $2, $3)")
                .bind(ticket_id).bind(answer).bind(now_ms).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    })
}

/// Erasure: the subject's complaints lose the operator's answer (it may repeat what the
/// filer wrote) and the anonymous follow-up hash. Run before the tickets are
/// de-identified ([`super::deidentify_tickets`]), which clears what the filer wrote.
pub async fn deidentify_subject(db: &Db, subject: SubjectId) -> StoreResult<u64> {
    Ok(on_db!(db, p => sqlx::query(
        "UPDATE complaints SET answer = NULL, follow_up = NULL \
         WHERE ticket_id IN (SELECT id FROM rights_tickets WHERE subject = $1)")
        .bind(subject.as_bytes().to_vec())
        .execute(p)
        .await?
        .rows_affected()))
}
