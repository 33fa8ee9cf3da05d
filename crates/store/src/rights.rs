//! Rights tickets (issue 6, P17, L6): every request a user makes about their data, with
//! its deadline, status history and, when refused, the reason, legal basis and complaint
//! route. Reads and changes of one ticket by its user are scoped to the subject in the
//! statement itself.
//!
//! - [`exports`]: background export jobs and the subject's service-log events read in
//!   pages for them; unlinking those events at erasure.
//! - [`complaints`]: complaints and reports, each tied to a ticket.

pub mod complaints;
pub mod exports;

use custos_core::SubjectId;

use crate::{on_db, Db, StoreResult};

/// One ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: i64,
    pub subject: Vec<u8>,
    pub kind: String,
    pub status: String,
    pub detail: String,
    pub created_ms: i64,
    pub due_ms: i64,
    pub closed_ms: Option<i64>,
    pub refusal_reason: Option<String>,
    pub refusal_basis: Option<String>,
    pub complaint_route: Option<String>,
}

/// One change of a ticket's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketEvent {
    pub status: String,
    pub note: String,
    pub at_ms: i64,
}

pub(crate) type Row = (
    i64,
    Vec<u8>,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub(crate) const COLS: &str = "id, subject, kind, status, detail, created_ms, due_ms, closed_ms, \
                    refusal_reason, refusal_basis, complaint_route";

pub(crate) fn ticket(r: Row) -> Ticket {
    Ticket {
        id: r.0,
        subject: r.1,
        kind: r.2,
        status: r.3,
        detail: r.4,
        created_ms: r.5,
        due_ms: r.6,
        closed_ms: r.7,
        refusal_reason: r.8,
        refusal_basis: r.9,
        complaint_route: r.10,
    }
}

/// Opens a ticket with status `open` and its first history entry.
pub async fn open(
    db: &Db,
    subject: SubjectId,
    kind: &str,
    detail: &str,
    now_ms: i64,
    due_ms: i64,
) -> StoreResult<Ticket> {
    let s = subject.as_bytes().to_vec();
    let sql = format!(
        "INSERT INTO rights_tickets (subject, kind, status, detail, created_ms, due_ms) \
         VALUES ($1, $2, 'open', $3, $4, $5) RETURNING {COLS}"
    );
    let row: Row = on_db!(db, p => {
        let mut tx = p.begin().await?;
        let row: Row = sqlx::query_as(&sql)
            .bind(s).bind(kind).bind(detail).bind(now_ms).bind(due_ms)
            .fetch_one(&mut *tx).await?;
        sqlx::query("INSERT INTO rights_ticket_events (ticket_id, status, note, at_ms) VALUES ($1, 'open', '', $2)")
            .bind(row.0).bind(now_ms).execute(&mut *tx).await?;
        tx.commit().await?;
        row
    });
    Ok(ticket(row))
}

/// Records a request that was carried out at once (a self-service correction or
/// deletion): the ticket, opened and closed as `completed` with `note`, and both history
/// entries, in one transaction.
pub async fn open_fulfilled(
    db: &Db,
    subject: SubjectId,
    kind: &str,
    detail: &str,
    note: &str,
    now_ms: i64,
    due_ms: i64,
) -> StoreResult<Ticket> {
    let s = subject.as_bytes().to_vec();
    let sql = format!(
        "INSERT INTO rights_tickets (subject, kind, status, detail, created_ms, due_ms, closed_ms) \
         VALUES ($1, $2, 'completed', $3, $4, $5, $4) RETURNING {COLS}"
    );
    let row: Row = on_db!(db, p => {
        let mut tx = p.begin().await?;
        let row: Row = sqlx::query_as(&sql)
            .bind(s).bind(kind).bind(detail).bind(now_ms).bind(due_ms)
            .fetch_one(&mut *tx).await?;
        sqlx::query("INSERT INTO rights_ticket_events (ticket_id, status, note, at_ms) VALUES ($1, 'open', '', $2), ($1, 'completed', $3, $2)")
            .bind(row.0).bind(now_ms).bind(note).execute(&mut *tx).await?;
        tx.commit().await?;
        row
    });
    Ok(ticket(row))
}

/// One ticket; `subject` restricts it to its owner.
pub async fn get(db: &Db, id: i64, subject: Option<SubjectId>) -> StoreResult<Option<Ticket>> {
    let row: Option<Row> = match subject {
        Some(s) => {
            let sql = format!("SELECT {COLS} FROM rights_tickets WHERE id = $1 AND subject = $2");
            on_db!(db, p => sqlx::query_as(&sql).bind(id).bind(s.as_bytes().to_vec()).fetch_optional(p).await?)
        }
        None => {
            let sql = format!("SELECT {COLS} FROM rights_tickets WHERE id = $1");
            on_db!(db, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await?)
        }
    };
    Ok(row.map(ticket))
}

/// The subject's tickets, newest first.
pub async fn of_subject(db: &Db, subject: SubjectId) -> StoreResult<Vec<Ticket>> {
    let sql = format!("SELECT {COLS} FROM rights_tickets WHERE subject = $1 ORDER BY id DESC");
    let rows: Vec<Row> = on_db!(db, p => sqlx::query_as(&sql)
        .bind(subject.as_bytes().to_vec()).fetch_all(p).await?);
    Ok(rows.into_iter().map(ticket).collect())
}

/// Open tickets due before `due_before_ms`, soonest first.
pub async fn open_due_before(db: &Db, due_before_ms: i64) -> StoreResult<Vec<Ticket>> {
    let sql = format!(
        "SELECT {COLS} FROM rights_tickets WHERE closed_ms IS NULL AND due_ms < $1 ORDER BY due_ms, id"
    );
    let rows: Vec<Row> =
        on_db!(db, p => sqlx::query_as(&sql).bind(due_before_ms).fetch_all(p).await?);
    Ok(rows.into_iter().map(ticket).collect())
}

/// The status history of a ticket, oldest first.
pub async fn events(db: &Db, id: i64) -> StoreResult<Vec<TicketEvent>> {
    let rows: Vec<(String, String, i64)> = on_db!(db, p => sqlx::query_as(
        "SELECT status, note, at_ms FROM rights_ticket_events WHERE ticket_id = $1 ORDER BY id")
        .bind(id).fetch_all(p).await?);
    Ok(rows
        .into_iter()
        .map(|r| TicketEvent {
            status: r.0,
            note: r.1,
            at_ms: r.2,
        })
        .collect())
}

/// The status history of every ticket of the subject, oldest first, with the ticket id:
/// one query for a whole list of tickets.
pub async fn events_of_subject(
    db: &Db,
    subject: SubjectId,
) -> StoreResult<Vec<(i64, TicketEvent)>> {
    let rows: Vec<(i64, String, String, i64)> = on_db!(db, p => sqlx::query_as(
        "SELECT e.ticket_id, e.status, e.note, e.at_ms FROM rights_ticket_events e \
         JOIN rights_tickets t ON t.id = e.ticket_id WHERE t.subject = $1 ORDER BY e.id")
        .bind(subject.as_bytes().to_vec()).fetch_all(p).await?);
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.0,
                TicketEvent {
                    status: r.1,
                    note: r.2,
                    at_ms: r.3,
                },
            )
        })
        .collect())
}

/// What a status change writes.
#[derive(Debug, Clone, Default)]
pub struct Transition<'a> {
    pub status: &'a str,
    pub note: &'a str,
    pub closes: bool,
    pub refusal_reason: Option<&'a str>,
    pub refusal_basis: Option<&'a str>,
    pub complaint_route: Option<&'a str>,
}

/// Moves an open ticket to a new status and records it; `false` when the ticket does not
/// exist or is already closed.
pub async fn transition(db: &Db, id: i64, t: &Transition<'_>, now_ms: i64) -> StoreResult<bool> {
    let closed = t.closes.then_some(now_ms);
    on_db!(db, p => {
        let mut tx = p.begin().await?;
        let n = sqlx::query(
            "UPDATE rights_tickets SET status = $1, closed_ms = $2, refusal_reason = $3, \
             refusal_basis = $4, complaint_route = $5 WHERE id = $6 AND closed_ms IS NULL")
            .bind(t.status).bind(closed).bind(t.refusal_reason).bind(t.refusal_basis)
            .bind(t.complaint_route).bind(id)
            .execute(&mut *tx).await?.rows_affected();
        if n == 1 {
            sqlx::query("INSERT INTO rights_ticket_events (ticket_id, status, note, at_ms) VALUES ($1, $2, $3, $4)")
                .bind(id).bind(t.status).bind(t.note).bind(now_ms).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    })
}

/// A pending account cancellation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancellation {
    pub subject: Vec<u8>,
    pub ticket_id: i64,
    pub requested_ms: i64,
    pub effective_ms: i64,
}

type CancelRow = (Vec<u8>, i64, i64, i64);

fn cancellation(r: CancelRow) -> Cancellation {
    Cancellation {
        subject: r.0,
        ticket_id: r.1,
        requested_ms: r.2,
        effective_ms: r.3,
    }
}

/// Records a pending cancellation; `false` when one is already pending.
pub async fn put_cancellation(
    db: &Db,
    subject: SubjectId,
    ticket_id: i64,
    requested_ms: i64,
    effective_ms: i64,
) -> StoreResult<bool> {
    let n = on_db!(db, p => sqlx::query(
        "INSERT INTO account_cancellations (subject, ticket_id, requested_ms, effective_ms) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (subject) DO NOTHING")
        .bind(subject.as_bytes().to_vec()).bind(ticket_id).bind(requested_ms).bind(effective_ms)
        .execute(p).await?.rows_affected());
    Ok(n == 1)
}

/// The subject's pending cancellation.
pub async fn cancellation_of(db: &Db, subject: SubjectId) -> StoreResult<Option<Cancellation>> {
    let row: Option<CancelRow> = on_db!(db, p => sqlx::query_as(
        "SELECT subject, ticket_id, requested_ms, effective_ms FROM account_cancellations WHERE subject = $1")
        .bind(subject.as_bytes().to_vec()).fetch_optional(p).await?);
    Ok(row.map(cancellation))
}

/// Cancellations whose cooling-off ended at `now_ms`.
pub async fn due_cancellations(db: &Db, now_ms: i64) -> StoreResult<Vec<Cancellation>> {
    let rows: Vec<CancelRow> = on_db!(db, p => sqlx::query_as(
        "SELECT subject, ticket_id, requested_ms, effective_ms FROM account_cancellations \
         WHERE effective_ms <= $1 ORDER BY effective_ms")
        .bind(now_ms).fetch_all(p).await?);
    Ok(rows.into_iter().map(cancellation).collect())
}

/// Removes the subject's pending cancellation; `false` when there was none.
pub async fn delete_cancellation(db: &Db, subject: SubjectId) -> StoreResult<bool> {
    let n = on_db!(db, p => sqlx::query("DELETE FROM account_cancellations WHERE subject = $1")
        .bind(subject.as_bytes().to_vec()).execute(p).await?.rows_affected());
    Ok(n == 1)
}

/// Unlinks the subject's tickets: their subject becomes `replacement` (a random id) and
/// the user's own words are dropped; deadlines, statuses and history stay as the record
/// of how the requests were handled.
pub async fn deidentify_tickets(
    db: &Db,
    subject: SubjectId,
    replacement: SubjectId,
) -> StoreResult<u64> {
    Ok(on_db!(db, p => sqlx::query(
        "UPDATE rights_tickets SET subject = $1, detail = '' WHERE subject = $2")
        .bind(replacement.as_bytes().to_vec()).bind(subject.as_bytes().to_vec())
        .execute(p).await?.rows_affected()))
}

/// Records that `partner` must be told of erasure `erasure_ref`.
pub async fn add_partner_notification(
    db: &Db,
    erasure_ref: &str,
    partner: &str,
    now_ms: i64,
) -> StoreResult<()> {
    on_db!(db, p => sqlx::query(
        "INSERT INTO partner_notifications (erasure_ref, partner, created_ms) VALUES ($1, $2, $3)")
        .bind(erasure_ref).bind(partner).bind(now_ms).execute(p).await?.rows_affected());
    Ok(())
}

/// Partners still to be told of erasure `erasure_ref`.
pub async fn pending_partner_notifications(db: &Db, erasure_ref: &str) -> StoreResult<Vec<String>> {
    let rows: Vec<(String,)> = on_db!(db, p => sqlx::query_as(
        "SELECT partner FROM partner_notifications WHERE erasure_ref = $1 AND notified_ms IS NULL ORDER BY partner")
        .bind(erasure_ref).fetch_all(p).await?);
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Where a scan found one of its needles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanHit {
    pub table: String,
    pub column: String,
    pub rows: i64,
}

/// Scans every column of every table for rows containing any of `needles` (raw bytes,
/// and their text forms): the check behind `custos erasure verify`.
pub async fn scan(
    db: &Db,
    byte_needles: &[Vec<u8>],
    text_needles: &[String],
) -> StoreResult<Vec<ScanHit>> {
    let mut hits = Vec::new();
    match db {
        Db::Sqlite(p) => {
            let tables: Vec<(String,)> = sqlx::query_as(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
                 AND name NOT LIKE '_sqlx%' ORDER BY name",
            )
            .fetch_all(p)
            .await?;
            for (t,) in tables {
                let cols: Vec<(String,)> = sqlx::query_as("SELECT name FROM pragma_table_info($1)")
                    .bind(&t)
                    .fetch_all(p)
                    .await?;
                for (c,) in cols {
                    let sql = format!(
                        "SELECT COUNT(*) FROM \"{t}\" WHERE \"{c}\" IS NOT NULL AND instr(CAST(\"{c}\" AS BLOB), $1) > 0"
                    );
                    let mut rows = 0i64;
                    let all = byte_needles
                        .iter()
                        .cloned()
                        .chain(text_needles.iter().map(|s| s.as_bytes().to_vec()));
                    for n in all {
                        let (k,): (i64,) = sqlx::query_as(&sql).bind(n).fetch_one(p).await?;
                        rows += k;
                    }
                    if rows > 0 {
                        hits.push(ScanHit {
                            table: t.clone(),
                            column: c,
                            rows,
                        });
                    }
                }
            }
        }
        Db::Postgres(p) => {
            let cols: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name NOT LIKE '\\_sqlx%' \
                 ORDER BY table_name, ordinal_position",
            )
            .fetch_all(p)
            .await?;
            for (t, c, ty) in cols {
                let mut rows = 0i64;
                if ty == "bytea" {
                    let sql = format!(
                        "SELECT COUNT(*) FROM \"{t}\" WHERE position($1::bytea in \"{c}\") > 0"
                    );
                    let all = byte_needles
                        .iter()
                        .cloned()
                        .chain(text_needles.iter().map(|s| s.as_bytes().to_vec()));
                    for n in all {
                        let (k,): (i64,) = sqlx::query_as(&sql).bind(n).fetch_one(p).await?;
                        rows += k;
                    }
                } else if ty == "text"
                    || ty.starts_with("character")
                    || ty == "jsonb"
                    || ty == "json"
                {
                    let sql =
                        format!("SELECT COUNT(*) FROM \"{t}\" WHERE strpos(\"{c}\"::text, $1) > 0");
                    for n in text_needles {
                        let (k,): (i64,) = sqlx::query_as(&sql).bind(n).fetch_one(p).await?;
                        rows += k;
                    }
                } else {
                    continue;
                }
                if rows > 0 {
                    hits.push(ScanHit {
                        table: t,
                        column: c,
                        rows,
                    });
                }
            }
        }
    }
    Ok(hits)
}
