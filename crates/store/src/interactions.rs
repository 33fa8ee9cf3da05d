//! What signed-in users keep about catalog items (P13, P21): bookmarks in named
//! collections, downloads, share links and comments. Every write takes a
//! [`custos_core::Permit`] for the subject; every read, change and deletion of one row is
//! scoped to its subject in the statement itself (`… AND subject = $n`), so one user can
//! never reach another's rows by guessing ids. Free text arrives already sealed under the
//! subject's key; share tokens arrive as keyed hashes.

use custos_core::{Permit, SubjectId};

use crate::{on_db, Db, StoreError, StoreResult};

/// The category every interaction row is stored under.
pub const PRIVATE: &str = "user.content.private";
/// The category of comments, which others read.
pub const PUBLIC: &str = "user.content.public";

fn check(permit: &Permit, category: &str) -> StoreResult<Vec<u8>> {
    if !permit.covers(permit.subject(), category) || permit.purpose() != "interactions" {
        return Err(StoreError::PermitMismatch);
    }
    Ok(permit.subject().as_bytes().to_vec())
}

fn subj(s: SubjectId) -> Vec<u8> {
    s.as_bytes().to_vec()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bookmark {
    pub id: i64,
    pub item_id: i64,
    pub collection_sealed: Vec<u8>,
    pub created_ms: i64,
}

/// Bookmarks an item (or moves its bookmark to another collection).
pub async fn put_bookmark(
    db: &Db,
    permit: &Permit,
    item_id: i64,
    collection_sealed: Vec<u8>,
    now_ms: i64,
) -> StoreResult<Bookmark> {
    let s = check(permit, PRIVATE)?;
    let row: (i64, i64, Vec<u8>, i64) = on_db!(db, p => sqlx::query_as(
        "INSERT INTO bookmarks (subject, item_id, collection_sealed, created_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (subject, item_id) DO UPDATE SET collection_sealed = excluded.collection_sealed \
         RETURNING id, item_id, collection_sealed, created_ms")
        .bind(s).bind(item_id).bind(collection_sealed).bind(now_ms)
        .fetch_one(p).await?);
    Ok(Bookmark {
        id: row.0,
        item_id: row.1,
        collection_sealed: row.2,
        created_ms: row.3,
    })
}

/// The subject's bookmarks, newest first.
pub async fn bookmarks(db: &Db, subject: SubjectId) -> StoreResult<Vec<Bookmark>> {
    let rows: Vec<(i64, i64, Vec<u8>, i64)> = on_db!(db, p => sqlx::query_as(
        "SELECT id, item_id, collection_sealed, created_ms FROM bookmarks WHERE subject = $1 ORDER BY id DESC")
        .bind(subj(subject)).fetch_all(p).await?);
    Ok(rows
        .into_iter()
        .map(|r| Bookmark {
            id: r.0,
            item_id: r.1,
            collection_sealed: r.2,
            created_ms: r.3,
        })
        .collect())
}

/// A recorded download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub id: i64,
    pub item_id: i64,
    pub media_id: i64,
    pub created_ms: i64,
}

pub async fn add_download(
    db: &Db,
    permit: &Permit,
    item_id: i64,
    media_id: i64,
    now_ms: i64,
) -> StoreResult<Download> {
    let s = check(permit, PRIVATE)?;
    let (id,): (i64,) = on_db!(db, p => sqlx::query_as(
        "INSERT INTO downloads (subject, item_id, media_id, created_ms) VALUES ($1, $2, $3, $4) RETURNING id")
        .bind(s).bind(item_id).bind(media_id).bind(now_ms).fetch_one(p).await?);
    Ok(Download {
        id,
        item_id,
        media_id,
        created_ms: now_ms,
    })
}

pub async fn downloads(db: &Db, subject: SubjectId) -> StoreResult<Vec<Download>> {
    let rows: Vec<(i64, i64, i64, i64)> = on_db!(db, p => sqlx::query_as(
        "SELECT id, item_id, media_id, created_ms FROM downloads WHERE subject = $1 ORDER BY id DESC")
        .bind(subj(subject)).fetch_all(p).await?);
    Ok(rows
        .into_iter()
        .map(|r| Download {
            id: r.0,
            item_id: r.1,
            media_id: r.2,
            created_ms: r.3,
        })
        .collect())
}

/// A share link; the token itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub id: i64,
    pub item_id: i64,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

type ShareRow = (i64, i64, i64, Option<i64>);

fn share(r: ShareRow) -> Share {
    Share {
        id: r.0,
        item_id: r.1,
        created_ms: r.2,
        revoked_ms: r.3,
    }
}

pub async fn add_share(
    db: &Db,
    permit: &Permit,
    item_id: i64,
    token_hash: &[u8],
    now_ms: i64,
) -> StoreResult<Share> {
    let s = check(permit, PRIVATE)?;
    let (id,): (i64,) = on_db!(db, p => sqlx::query_as(
        "INSERT INTO shares (subject, item_id, token_hash, created_ms) VALUES ($1, $2, $3, $4) RETURNING id")
        .bind(s).bind(item_id).bind(token_hash.to_vec()).bind(now_ms).fetch_one(p).await?);
    Ok(Share {
        id,
        item_id,
        created_ms: now_ms,
        revoked_ms: None,
    })
}

/// The live (not revoked) share with this token hash.
pub async fn share_by_token(db: &Db, token_hash: &[u8]) -> StoreResult<Option<Share>> {
    let row: Option<ShareRow> = on_db!(db, p => sqlx::query_as(
        "SELECT id, item_id, created_ms, revoked_ms FROM shares WHERE token_hash = $1 AND revoked_ms IS NULL")
        .bind(token_hash.to_vec()).fetch_optional(p).await?);
    Ok(row.map(share))
}

pub async fn shares(db: &Db, subject: SubjectId) -> StoreResult<Vec<Share>> {
    let rows: Vec<ShareRow> = on_db!(db, p => sqlx::query_as(
        "SELECT id, item_id, created_ms, revoked_ms FROM shares WHERE subject = $1 ORDER BY id DESC")
        .bind(subj(subject)).fetch_all(p).await?);
    Ok(rows.into_iter().map(share).collect())
}

/// Revokes one of the subject's share links; false if it has no such link.
pub async fn revoke_share(db: &Db, subject: SubjectId, id: i64, now_ms: i64) -> StoreResult<bool> {
    let r = on_db!(db, p => sqlx::query(
        "UPDATE shares SET revoked_ms = $1 WHERE id = $2 AND subject = $3 AND revoked_ms IS NULL")
        .bind(now_ms).bind(id).bind(subj(subject)).execute(p).await?.rows_affected());
    Ok(r == 1)
}

/// A comment; the body is sealed under its author's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: i64,
    pub subject: SubjectId,
    pub item_id: i64,
    pub body_sealed: Vec<u8>,
    /// `published` or `hidden` (moderation).
    pub status: String,
    /// What the author attested about people the comment mentions (P14), as JSON.
    pub attestation: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

type CommentRow = (i64, Vec<u8>, i64, Vec<u8>, String, Option<String>, i64, i64);
const COMMENT_COLUMNS: &str =
    "id, subject, item_id, body_sealed, status, attestation, created_ms, updated_ms";

fn comment(r: CommentRow) -> StoreResult<Comment> {
    let subject: [u8; 16] =
        r.1.as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("comment {} has a malformed subject", r.0)))?;
    Ok(Comment {
        id: r.0,
        subject: SubjectId::from_bytes(subject),
        item_id: r.2,
        body_sealed: r.3,
        status: r.4,
        attestation: r.5,
        created_ms: r.6,
        updated_ms: r.7,
    })
}

pub async fn add_comment(
    db: &Db,
    permit: &Permit,
    item_id: i64,
    body_sealed: Vec<u8>,
    attestation: Option<String>,
    now_ms: i64,
) -> StoreResult<Comment> {
    let s = check(permit, PUBLIC)?;
    let sql = format!(
        "INSERT INTO comments (subject, item_id, body_sealed, status, attestation, created_ms, updated_ms) \
         VALUES ($1, $2, $3, 'published', $4, $5, $5) RETURNING {COMMENT_COLUMNS}"
    );
    let row: CommentRow = on_db!(db, p => sqlx::query_as(&sql)
        .bind(s).bind(item_id).bind(body_sealed).bind(attestation).bind(now_ms)
        .fetch_one(p).await?);
    comment(row)
}

/// Replaces the body of one of the subject's comments; `None` if it has no such comment.
pub async fn edit_comment(
    db: &Db,
    permit: &Permit,
    id: i64,
    body_sealed: Vec<u8>,
    attestation: Option<String>,
    now_ms: i64,
) -> StoreResult<Option<Comment>> {
    let s = check(permit, PUBLIC)?;
    let sql = format!(
        "UPDATE comments SET body_sealed = $1, attestation = $2, updated_ms = $3 \
         WHERE id = $4 AND subject = $5 RETURNING {COMMENT_COLUMNS}"
    );
    let row: Option<CommentRow> = on_db!(db, p => sqlx::query_as(&sql)
        .bind(body_sealed).bind(attestation).bind(now_ms).bind(id).bind(s)
        .fetch_optional(p).await?);
    row.map(comment).transpose()
}

/// Published comments on an item, oldest first.
pub async fn comments_on(db: &Db, item_id: i64, limit: i64) -> StoreResult<Vec<Comment>> {
    let sql = format!(
        "SELECT {COMMENT_COLUMNS} FROM comments WHERE item_id = $1 AND status = 'published' ORDER BY id LIMIT $2"
    );
    let rows: Vec<CommentRow> =
        on_db!(db, p => sqlx::query_as(&sql).bind(item_id).bind(limit).fetch_all(p).await?);
    rows.into_iter().map(comment).collect()
}

/// The subject's comments, whatever their status, newest first.
pub async fn comments_of(db: &Db, subject: SubjectId) -> StoreResult<Vec<Comment>> {
    let sql = format!("SELECT {COMMENT_COLUMNS} FROM comments WHERE subject = $1 ORDER BY id DESC");
    let rows: Vec<CommentRow> =
        on_db!(db, p => sqlx::query_as(&sql).bind(subj(subject)).fetch_all(p).await?);
    rows.into_iter().map(comment).collect()
}

/// Sets a comment's moderation status; false if there is no such comment.
pub async fn set_comment_status(db: &Db, id: i64, status: &str) -> StoreResult<bool> {
    let r = on_db!(db, p => sqlx::query("UPDATE comments SET status = $1 WHERE id = $2")
        .bind(status).bind(id).execute(p).await?.rows_affected());
    Ok(r == 1)
}

/// Which of the subject's things to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bookmark,
    Download,
    Share,
    Comment,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Kind::Bookmark => "bookmarks",
            Kind::Download => "downloads",
            Kind::Share => "shares",
            Kind::Comment => "comments",
        }
    }
}

/// Deletes one of the subject's rows; false if the subject has no such row.
pub async fn delete(db: &Db, subject: SubjectId, kind: Kind, id: i64) -> StoreResult<bool> {
    let sql = format!(
        "DELETE FROM {} WHERE id = $1 AND subject = $2",
        kind.table()
    );
    let r = on_db!(db, p => sqlx::query(&sql).bind(id).bind(subj(subject)).execute(p).await?.rows_affected());
    Ok(r == 1)
}

/// Deletes everything the subject kept (account erasure); returns the rows removed.
pub async fn erase(db: &Db, subject: SubjectId) -> StoreResult<u64> {
    let s = subj(subject);
    on_db!(db, p => {
        let mut tx = p.begin().await?;
        let mut n = 0;
        for k in [Kind::Bookmark, Kind::Download, Kind::Share, Kind::Comment] {
            let sql = format!("DELETE FROM {} WHERE subject = $1", k.table());
            n += sqlx::query(&sql).bind(s.clone()).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    })
}
