//! Policy announcements (issue 7: P31, P35, L4): which published versions users were told
//! about, what each paused, and how many users were notified. Users' agreements are
//! consent decisions in the ledger ([`crate::ledger`]), not rows here.

use custos_core::SubjectId;

use crate::{on_db, Db, StoreResult};

/// What an announcement was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnouncementKind {
    /// A revised declaration (P35).
    Revision,
    /// A new controller, nothing else changed (P31).
    ControllerChange,
}

impl AnnouncementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnnouncementKind::Revision => "revision",
            AnnouncementKind::ControllerChange => "controller_change",
        }
    }
    fn parse(s: &str) -> AnnouncementKind {
        if s == "controller_change" {
            AnnouncementKind::ControllerChange
        } else {
            AnnouncementKind::Revision
        }
    }
}

/// One announced version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Announcement {
    pub hash: String,
    pub kind: AnnouncementKind,
    pub previous_hash: Option<String>,
    /// Purposes paused for users until they agree to this version.
    pub paused_purposes: Vec<String>,
    pub announced_at_ms: i64,
    pub notified: i64,
}

type Row = (String, String, Option<String>, String, i64, i64);

fn from_row((hash, kind, previous_hash, paused, announced_at_ms, notified): Row) -> Announcement {
    Announcement {
        hash,
        kind: AnnouncementKind::parse(&kind),
        previous_hash,
        paused_purposes: split(&paused),
        announced_at_ms,
        notified,
    }
}

pub(crate) fn split(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Records an announcement; announcing the same version again returns `false`.
pub async fn record(db: &Db, a: &Announcement) -> StoreResult<bool> {
    let n = on_db!(db, p => sqlx::query(
        "INSERT INTO policy_announcements (hash, kind, previous_hash, paused_purposes, announced_at, notified) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO NOTHING")
        .bind(&a.hash)
        .bind(a.kind.as_str())
        .bind(&a.previous_hash)
        .bind(a.paused_purposes.join(","))
        .bind(a.announced_at_ms)
        .bind(a.notified)
        .execute(p)
        .await?
        .rows_affected());
    Ok(n > 0)
}

/// Sets how many users were notified of an announcement.
pub async fn set_notified(db: &Db, hash: &str, notified: i64) -> StoreResult<()> {
    on_db!(db, p => sqlx::query("UPDATE policy_announcements SET notified = $1 WHERE hash = $2")
        .bind(notified)
        .bind(hash)
        .execute(p)
        .await
        .map(|_| ())?);
    Ok(())
}

/// Every announcement, oldest first.
pub async fn list(db: &Db) -> StoreResult<Vec<Announcement>> {
    let rows: Vec<Row> = on_db!(db, p => sqlx::query_as(
        "SELECT hash, kind, previous_hash, paused_purposes, announced_at, notified \
         FROM policy_announcements ORDER BY announced_at, hash")
        .fetch_all(p)
        .await?);
    Ok(rows.into_iter().map(from_row).collect())
}

/// Every account's subject: whom an announcement reaches.
pub async fn account_subjects(db: &Db) -> StoreResult<Vec<SubjectId>> {
    let rows: Vec<(String,)> = on_db!(db, p => sqlx::query_as(
        "SELECT subject FROM accounts ORDER BY created_at")
        .fetch_all(p)
        .await?);
    Ok(rows
        .into_iter()
        .filter_map(|(s,)| s.parse::<SubjectId>().ok())
        .collect())
}

/// Subjects holding personal fields stored for any of `purposes`.
pub async fn subjects_with_fields(db: &Db, purposes: &[String]) -> StoreResult<Vec<SubjectId>> {
    let mut out = Vec::new();
    for purpose in purposes {
        let rows: Vec<(String,)> = on_db!(db, p => sqlx::query_as(
            "SELECT DISTINCT subject FROM personal_fields WHERE purpose = $1")
            .bind(purpose)
            .fetch_all(p)
            .await?);
        out.extend(
            rows.into_iter()
                .filter_map(|(s,)| s.parse::<SubjectId>().ok()),
        );
    }
    out.sort_by_key(|s| s.as_u128());
    out.dedup();
    Ok(out)
}
