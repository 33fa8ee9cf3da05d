//! Signals storage, second part (issue 5): ad effectiveness events and the per-user inbox.
//!
//! Device information is not stored here: each reported field is a personal field
//! ([`crate::personal`]), encrypted under the subject's key and written through the gate.
//! Ad events carry no subject: a keyed pseudonym (HMAC, its own domain) and the day.

use custos_core::SubjectId;

use crate::{on_db, Db, StoreResult};

/// One impression or click as stored: de-identified before it gets here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdEvent {
    /// The ad shown (the catalog item it promotes).
    pub ad_id: i64,
    /// Whether the ad was chosen from the viewer's traits.
    pub targeted: bool,
    /// `impression` or `click`.
    pub kind: String,
    /// Keyed pseudonym of the viewer (never the subject id).
    pub user_key: [u8; 16],
    /// The start of the UTC day it happened (no finer time is kept).
    pub day_ms: i64,
    pub expires_at_ms: Option<i64>,
}

/// Counts of one ad group (ad, targeted or not) before any release rule is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdGroupStats {
    pub ad_id: i64,
    pub targeted: bool,
    pub impressions: i64,
    pub clicks: i64,
    /// Distinct pseudonyms with at least one event in the group.
    pub users: i64,
}

/// Ad effectiveness events.
#[derive(Debug, Clone)]
pub struct AdStore {
    db: Db,
}

impl AdStore {
    pub fn new(db: Db) -> AdStore {
        AdStore { db }
    }

    /// Appends one event.
    pub async fn record(&self, e: &AdEvent) -> StoreResult<()> {
        on_db!(&self.db, p => sqlx::query(
            "INSERT INTO ad_events (ad_id, targeted, kind, user_key, day_ms, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(e.ad_id)
            .bind(i64::from(e.targeted))
            .bind(&e.kind)
            .bind(e.user_key.to_vec())
            .bind(e.day_ms)
            .bind(e.expires_at_ms)
            .execute(p)
            .await.map(|_| ())?);
        Ok(())
    }

    /// Per-group counts, with the number of distinct pseudonyms in each group.
    pub async fn group_stats(&self) -> StoreResult<Vec<AdGroupStats>> {
        let rows: Vec<(i64, i64, i64, i64, i64)> = on_db!(&self.db, p => sqlx::query_as(
            "SELECT ad_id, targeted, \
             CAST(SUM(CASE WHEN kind = 'impression' THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN kind = 'click' THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(COUNT(DISTINCT user_key) AS BIGINT) \
             FROM ad_events GROUP BY ad_id, targeted ORDER BY ad_id, targeted")
            .fetch_all(p)
            .await?);
        Ok(rows
            .into_iter()
            .map(
                |(ad_id, targeted, impressions, clicks, users)| AdGroupStats {
                    ad_id,
                    targeted: targeted != 0,
                    impressions,
                    clicks,
                    users,
                },
            )
            .collect())
    }

    /// Deletes every event of one pseudonym (withdrawal, erasure).
    pub async fn delete_user(&self, user_key: &[u8; 16]) -> StoreResult<u64> {
        Ok(
            on_db!(&self.db, p => sqlx::query("DELETE FROM ad_events WHERE user_key = $1")
            .bind(user_key.to_vec())
            .execute(p)
            .await?
            .rows_affected()),
        )
    }

    /// Deletes events past their retention.
    pub async fn purge_expired(&self, now_ms: i64) -> StoreResult<u64> {
        Ok(on_db!(&self.db, p => sqlx::query(
            "DELETE FROM ad_events WHERE expires_at IS NOT NULL AND expires_at <= $1")
            .bind(now_ms)
            .execute(p)
            .await?
            .rows_affected()))
    }

    /// Deletes every event (tests reuse one database across property-test cases).
    pub async fn clear(&self) -> StoreResult<u64> {
        Ok(on_db!(&self.db, p => sqlx::query("DELETE FROM ad_events")
            .execute(p)
            .await?
            .rows_affected()))
    }

    /// Every stored event.
    pub async fn count(&self) -> StoreResult<i64> {
        let (n,): (i64,) = on_db!(&self.db, p => sqlx::query_as(
            "SELECT COUNT(*) FROM ad_events")
            .fetch_one(p)
            .await?);
        Ok(n)
    }
}

/// One inbox message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxMessage {
    pub id: i64,
    /// `system` (service notices) or `personalized` (under its own purpose).
    pub kind: String,
    /// Empty for sealed messages (issue 7); a message stored before sealing keeps its
    /// text here until the purge job seals it.
    pub title: String,
    pub body: String,
    /// Title and body sealed under the subject's key (the caller seals and opens them).
    pub sealed: Option<Vec<u8>>,
    pub created_ms: i64,
    pub read_ms: Option<i64>,
}

/// Most messages an inbox listing returns (newest first).
pub const INBOX_PAGE: i64 = 200;

/// The per-user inbox.
#[derive(Debug, Clone)]
pub struct InboxStore {
    db: Db,
}

impl InboxStore {
    pub fn new(db: Db) -> InboxStore {
        InboxStore { db }
    }

    /// Adds a message, sealed by the caller under the subject's key; returns its id.
    pub async fn add(
        &self,
        subject: SubjectId,
        kind: &str,
        sealed: &[u8],
        now_ms: i64,
        expires_ms: Option<i64>,
    ) -> StoreResult<i64> {
        let (id,): (i64,) = on_db!(&self.db, p => sqlx::query_as(
            "INSERT INTO inbox_messages (subject, kind, title, body, sealed, created_ms, expires_ms) \
             VALUES ($1, $2, '', '', $3, $4, $5) RETURNING id")
            .bind(subject.to_string())
            .bind(kind)
            .bind(sealed)
            .bind(now_ms)
            .bind(expires_ms)
            .fetch_one(p)
            .await?);
        Ok(id)
    }

    /// The subject's messages, newest first, at most [`INBOX_PAGE`].
    pub async fn list(&self, subject: SubjectId) -> StoreResult<Vec<InboxMessage>> {
        type Row = (
            i64,
            String,
            String,
            String,
            Option<Vec<u8>>,
            i64,
            Option<i64>,
        );
        let rows: Vec<Row> = on_db!(&self.db, p => sqlx::query_as(
            "SELECT id, kind, title, body, sealed, created_ms, read_ms FROM inbox_messages \
             WHERE subject = $1 ORDER BY id DESC LIMIT $2")
            .bind(subject.to_string())
            .bind(INBOX_PAGE)
            .fetch_all(p)
            .await?);
        Ok(rows
            .into_iter()
            .map(
                |(id, kind, title, body, sealed, created_ms, read_ms)| InboxMessage {
                    id,
                    kind,
                    title,
                    body,
                    sealed,
                    created_ms,
                    read_ms,
                },
            )
            .collect())
    }

    /// Deletes messages past their own expiry or created before `created_before_ms`
    /// (the inbox's retention).
    pub async fn purge(&self, now_ms: i64, created_before_ms: i64) -> StoreResult<u64> {
        Ok(on_db!(&self.db, p => sqlx::query(
            "DELETE FROM inbox_messages WHERE (expires_ms IS NOT NULL AND expires_ms <= $1) \
             OR created_ms < $2")
            .bind(now_ms)
            .bind(created_before_ms)
            .execute(p)
            .await?
            .rows_affected()))
    }

    /// Up to `limit` messages stored in clear before sealing: (id, subject, title, body).
    pub async fn unsealed(&self, limit: i64) -> StoreResult<Vec<(i64, String, String, String)>> {
        Ok(on_db!(&self.db, p => sqlx::query_as(
            "SELECT id, subject, title, body FROM inbox_messages WHERE sealed IS NULL \
             ORDER BY id LIMIT $1")
            .bind(limit)
            .fetch_all(p)
            .await?))
    }

    /// Replaces a clear message's text by its sealed form.
    pub async fn seal(&self, id: i64, sealed: &[u8]) -> StoreResult<()> {
        on_db!(&self.db, p => sqlx::query(
            "UPDATE inbox_messages SET sealed = $2, title = '', body = '' WHERE id = $1")
            .bind(id)
            .bind(sealed)
            .execute(p)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Marks the subject's message read (kept at the first read); false if the subject
    /// has no such message, whoever else may have it.
    pub async fn mark_read(&self, subject: SubjectId, id: i64, now_ms: i64) -> StoreResult<bool> {
        let n = on_db!(&self.db, p => sqlx::query(
            "UPDATE inbox_messages SET read_ms = COALESCE(read_ms, $3) WHERE subject = $1 AND id = $2")
            .bind(subject.to_string())
            .bind(id)
            .bind(now_ms)
            .execute(p)
            .await?
            .rows_affected());
        Ok(n > 0)
    }

    /// Deletes the subject's messages of one kind (withdrawing the personalized-push
    /// purpose deletes the personalized ones).
    pub async fn delete_kind(&self, subject: SubjectId, kind: &str) -> StoreResult<u64> {
        Ok(on_db!(&self.db, p => sqlx::query(
            "DELETE FROM inbox_messages WHERE subject = $1 AND kind = $2")
            .bind(subject.to_string())
            .bind(kind)
            .execute(p)
            .await?
            .rows_affected()))
    }

    /// Deletes every message of the subject (erasure).
    pub async fn delete_subject(&self, subject: SubjectId) -> StoreResult<u64> {
        Ok(
            on_db!(&self.db, p => sqlx::query("DELETE FROM inbox_messages WHERE subject = $1")
            .bind(subject.to_string())
            .execute(p)
            .await?
            .rows_affected()),
        )
    }
}
