//! Security incidents (issue 7, P25, L11): the incident record with what its notices must
//! say, its append-only timeline (database triggers refuse UPDATE and DELETE), who was
//! told individually, public announcements, and the queries that find affected subjects
//! in the data map (personal fields by category and time; sessions by time).

use std::collections::BTreeSet;

use custos_core::SubjectId;

use crate::{on_db, Db, StoreError, StoreResult};

/// What an incident record holds (categories and stores are declared keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIncident {
    pub title: String,
    pub cause: String,
    pub categories: Vec<String>,
    pub stores: Vec<String>,
    pub possible_harm: String,
    pub remedies: String,
    pub user_actions: String,
    pub contact: String,
    pub detected_ms: i64,
}

/// A stored incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub id: i64,
    pub fields: NewIncident,
    pub created_ms: i64,
    pub regulator_reported_ms: Option<i64>,
    pub regulator_reference: Option<String>,
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    pub seq: i64,
    pub at_ms: i64,
    pub action: String,
    pub actor: String,
    pub detail: String,
}

/// A public announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub id: i64,
    pub incident_id: Option<i64>,
    pub title: String,
    pub body: String,
    pub published_ms: i64,
}

type Row = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
);

const COLS: &str = "id, title, cause, categories, stores, possible_harm, remedies, user_actions, \
                    contact, detected_ms, created_ms, regulator_reported_ms, regulator_reference";

fn list_of(json: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(json).map_err(|_| StoreError::Corrupt("incident key list".into()))
}

fn to_json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

fn incident(r: Row) -> StoreResult<Incident> {
    Ok(Incident {
        id: r.0,
        fields: NewIncident {
            title: r.1,
            cause: r.2,
            categories: list_of(&r.3)?,
            stores: list_of(&r.4)?,
            possible_harm: r.5,
            remedies: r.6,
            user_actions: r.7,
            contact: r.8,
            detected_ms: r.9,
        },
        created_ms: r.10,
        regulator_reported_ms: r.11,
        regulator_reference: r.12,
    })
}

/// Records an incident and the first timeline entry (`recorded`) in one transaction.
pub async fn create(db: &Db, new: &NewIncident, actor: &str, now_ms: i64) -> StoreResult<Incident> {
    let sql = format!(
        "INSERT INTO incidents (title, cause, categories, stores, possible_harm, remedies, \
         user_actions, contact, detected_ms, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLS}"
    );
    let row: Row = on_db!(db, p => {
        let mut tx = p.begin().await?;
        let row: Row = sqlx::query_as(&sql)
            .bind(&new.title).bind(&new.cause).bind(to_json(&new.categories))
            .bind(to_json(&new.stores)).bind(&new.possible_harm).bind(&new.remedies)
            .bind(&new.user_actions).bind(&new.contact).bind(new.detected_ms).bind(now_ms)
            .fetch_one(&mut *tx).await?;
        sqlx::query("INSERT INTO incident_timeline (incident_id, at_ms, action, actor, detail) \
                     VALUES ($1, $2, 'recorded', $3, $4)")
            .bind(row.0).bind(now_ms).bind(actor)
            .bind(format!("detected {}", custos_core::clock::rfc3339(new.detected_ms)))
            .execute(&mut *tx).await?;
        tx.commit().await?;
        row
    });
    incident(row)
}

pub async fn get(db: &Db, id: i64) -> StoreResult<Option<Incident>> {
    let sql = format!("SELECT {COLS} FROM incidents WHERE id = $1");
    let row: Option<Row> = on_db!(db, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await?);
    row.map(incident).transpose()
}

/// Every incident, newest first.
pub async fn list(db: &Db) -> StoreResult<Vec<Incident>> {
    let sql = format!("SELECT {COLS} FROM incidents ORDER BY id DESC");
    let rows: Vec<Row> = on_db!(db, p => sqlx::query_as(&sql).fetch_all(p).await?);
    rows.into_iter().map(incident).collect()
}

/// Incidents detected at or before `detected_before_ms` with no regulator report.
pub async fn unreported(db: &Db, detected_before_ms: i64) -> StoreResult<Vec<Incident>> {
    let sql = format!(
        "SELECT {COLS} FROM incidents WHERE regulator_reported_ms IS NULL AND detected_ms <= $1 \
         ORDER BY detected_ms, id"
    );
    let rows: Vec<Row> =
        on_db!(db, p => sqlx::query_as(&sql).bind(detected_before_ms).fetch_all(p).await?);
    rows.into_iter().map(incident).collect()
}

/// Appends one timeline entry.
pub async fn append(
    db: &Db,
    incident_id: i64,
    action: &str,
    actor: &str,
    detail: &str,
    now_ms: i64,
) -> StoreResult<TimelineEntry> {
    let row: (i64,) = on_db!(db, p => sqlx::query_as(
        "INSERT INTO incident_timeline (incident_id, at_ms, action, actor, detail) \
         VALUES ($1, $2, $3, $4, $5) RETURNING seq")
        .bind(incident_id).bind(now_ms).bind(action).bind(actor).bind(detail)
        .fetch_one(p).await?);
    Ok(TimelineEntry {
        seq: row.0,
        at_ms: now_ms,
        action: action.to_owned(),
        actor: actor.to_owned(),
        detail: detail.to_owned(),
    })
}

/// The incident's timeline, oldest first.
pub async fn timeline(db: &Db, incident_id: i64) -> StoreResult<Vec<TimelineEntry>> {
    let rows: Vec<(i64, i64, String, String, String)> = on_db!(db, p => sqlx::query_as(
        "SELECT seq, at_ms, action, actor, detail FROM incident_timeline \
         WHERE incident_id = $1 ORDER BY seq")
        .bind(incident_id).fetch_all(p).await?);
    Ok(rows
        .into_iter()
        .map(|(seq, at_ms, action, actor, detail)| TimelineEntry {
            seq,
            at_ms,
            action,
            actor,
            detail,
        })
        .collect())
}

/// Records the report to the regulator and its timeline entry in one transaction; false
/// when it was already recorded (the first report stands).
pub async fn record_regulator_report(
    db: &Db,
    incident_id: i64,
    reference: &str,
    reported_ms: i64,
    actor: &str,
    now_ms: i64,
) -> StoreResult<bool> {
    let done = on_db!(db, p => {
        let mut tx = p.begin().await?;
        let n = sqlx::query("UPDATE incidents SET regulator_reported_ms = $1, regulator_reference = $2 \
                             WHERE id = $3 AND regulator_reported_ms IS NULL")
            .bind(reported_ms).bind(reference).bind(incident_id)
            .execute(&mut *tx).await?.rows_affected();
        if n == 1 {
            sqlx::query("INSERT INTO incident_timeline (incident_id, at_ms, action, actor, detail) \
                         VALUES ($1, $2, 'regulator_reported', $3, $4)")
                .bind(incident_id).bind(now_ms).bind(actor)
                .bind(format!("reference {reference}; reported {}", custos_core::clock::rfc3339(reported_ms)))
                .execute(&mut *tx).await?;
        }
        tx.commit().await?;
        n == 1
    });
    Ok(done)
}

/// Subjects holding personal fields of `categories` written between `from_ms` and `to_ms`
/// (inclusive).
pub async fn subjects_with_fields(
    db: &Db,
    categories: &[String],
    from_ms: i64,
    to_ms: i64,
) -> StoreResult<BTreeSet<SubjectId>> {
    let mut out = BTreeSet::new();
    for c in categories {
        let rows: Vec<(String,)> = on_db!(db, p => sqlx::query_as(
            "SELECT DISTINCT subject FROM personal_fields \
             WHERE category = $1 AND updated_at >= $2 AND updated_at <= $3")
            .bind(c).bind(from_ms).bind(to_ms).fetch_all(p).await?);
        for (s,) in rows {
            out.insert(parse_subject(&s)?);
        }
    }
    Ok(out)
}

/// Subjects with a session open at some moment between `from_ms` and `to_ms`.
pub async fn subjects_with_sessions(
    db: &Db,
    from_ms: i64,
    to_ms: i64,
) -> StoreResult<BTreeSet<SubjectId>> {
    let rows: Vec<(String,)> = on_db!(db, p => sqlx::query_as(
        "SELECT DISTINCT subject FROM sessions WHERE created_at <= $1 AND last_seen_at >= $2")
        .bind(to_ms).bind(from_ms).fetch_all(p).await?);
    rows.iter().map(|(s,)| parse_subject(s)).collect()
}

/// Per (purpose, category, field name): how many subjects hold such a field. Field names
/// of per-key fields (`trait:…`, `inbound.…`) are cut at their first separator.
pub async fn field_census(db: &Db) -> StoreResult<Vec<(String, String, String, i64)>> {
    let rows: Vec<(String, String, String)> = on_db!(db, p => sqlx::query_as(
        "SELECT purpose, category, field FROM personal_fields")
        .fetch_all(p).await?);
    let mut counts: std::collections::BTreeMap<(String, String, String), i64> = Default::default();
    for (purpose, category, field) in rows {
        let name = field.split([':', '.']).next().unwrap_or(&field).to_owned();
        *counts.entry((purpose, category, name)).or_default() += 1;
    }
    Ok(counts
        .into_iter()
        .map(|((p, c, f), n)| (p, c, f, n))
        .collect())
}

fn parse_subject(s: &str) -> StoreResult<SubjectId> {
    s.parse()
        .map_err(|_| StoreError::Corrupt("subject id".into()))
}

/// Records that `subject` was told of the incident; false if it already was.
pub async fn add_notice(
    db: &Db,
    incident_id: i64,
    subject: SubjectId,
    message_id: i64,
    now_ms: i64,
) -> StoreResult<bool> {
    let n = on_db!(db, p => sqlx::query(
        "INSERT INTO incident_notices (incident_id, subject, message_id, notified_ms) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (incident_id, subject) DO NOTHING")
        .bind(incident_id).bind(subject.to_string()).bind(message_id).bind(now_ms)
        .execute(p).await?.rows_affected());
    Ok(n == 1)
}

/// Whether `subject` was already told of the incident.
pub async fn was_notified(db: &Db, incident_id: i64, subject: SubjectId) -> StoreResult<bool> {
    let row: Option<(i64,)> = on_db!(db, p => sqlx::query_as(
        "SELECT message_id FROM incident_notices WHERE incident_id = $1 AND subject = $2")
        .bind(incident_id).bind(subject.to_string()).fetch_optional(p).await?);
    Ok(row.is_some())
}

/// How many subjects were told of the incident individually.
pub async fn notice_count(db: &Db, incident_id: i64) -> StoreResult<i64> {
    let row: (i64,) = on_db!(db, p => sqlx::query_as(
        "SELECT COUNT(*) FROM incident_notices WHERE incident_id = $1")
        .bind(incident_id).fetch_one(p).await?);
    Ok(row.0)
}

/// Forgets which incidents the subject was told of (erasure, L8): the count stays in the
/// timeline.
pub async fn delete_subject(db: &Db, subject: SubjectId) -> StoreResult<u64> {
    Ok(
        on_db!(db, p => sqlx::query("DELETE FROM incident_notices WHERE subject = $1")
        .bind(subject.to_string()).execute(p).await?.rows_affected()),
    )
}

/// Publishes an announcement and its timeline entry (when tied to an incident).
pub async fn publish_announcement(
    db: &Db,
    incident_id: Option<i64>,
    title: &str,
    body: &str,
    actor: &str,
    now_ms: i64,
) -> StoreResult<Announcement> {
    let id = on_db!(db, p => {
        let mut tx = p.begin().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO announcements (incident_id, title, body, published_ms) \
             VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(incident_id).bind(title).bind(body).bind(now_ms)
            .fetch_one(&mut *tx).await?;
        if let Some(iid) = incident_id {
            sqlx::query("INSERT INTO incident_timeline (incident_id, at_ms, action, actor, detail) \
                         VALUES ($1, $2, 'announced', $3, $4)")
                .bind(iid).bind(now_ms).bind(actor).bind(format!("announcement {id}"))
                .execute(&mut *tx).await?;
        }
        tx.commit().await?;
        id
    });
    Ok(Announcement {
        id,
        incident_id,
        title: title.to_owned(),
        body: body.to_owned(),
        published_ms: now_ms,
    })
}

/// Published announcements, newest first.
pub async fn announcements(db: &Db, limit: i64) -> StoreResult<Vec<Announcement>> {
    let rows: Vec<(i64, Option<i64>, String, String, i64)> = on_db!(db, p => sqlx::query_as(
        "SELECT id, incident_id, title, body, published_ms FROM announcements \
         ORDER BY id DESC LIMIT $1")
        .bind(limit).fetch_all(p).await?);
    Ok(rows
        .into_iter()
        .map(
            |(id, incident_id, title, body, published_ms)| Announcement {
                id,
                incident_id,
                title,
                body,
                published_ms,
            },
        )
        .collect())
}
