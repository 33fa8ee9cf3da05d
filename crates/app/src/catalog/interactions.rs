//! What signed-in users keep (P13, P14, P21): bookmarks in collections, downloads through
//! time-limited signed links, revocable share links, and comments with a moderation
//! status. Each write passes the purpose gate (`interactions`, a basic purpose under the
//! contract); free text is sealed under the subject's key; each row is listed in the
//! user's own data and deleted by the user alone.

use base64::Engine;
use custos_core::{GateContext, SubjectId};
use custos_crypto::OsRng;
use custos_store::catalog as items;
pub use custos_store::interactions::Kind;
use custos_store::interactions::{self as store, PRIVATE, PUBLIC};
use serde::Serialize;

use super::Catalog;
use crate::{AppError, AppResult};

const PURPOSE: &str = "interactions";
/// Longest comment, in characters.
pub const MAX_COMMENT: usize = 2_000;
/// Longest collection name, in characters.
pub const MAX_COLLECTION: usize = 60;
/// How long a download link works.
pub const DOWNLOAD_TTL_MS: i64 = 15 * 60 * 1_000;
const COLLECTION_BINDING: &[u8] = b"interactions/collection";
const COMMENT_BINDING: &[u8] = b"interactions/comment";
const SHARE_DOMAIN: &str = "share-token";
const DOWNLOAD_DOMAIN: &str = "download-link";

#[derive(Debug, Clone, Serialize)]
pub struct BookmarkView {
    pub id: i64,
    pub item_id: i64,
    pub collection: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShareView {
    pub id: i64,
    pub item_id: i64,
    pub created_at: String,
    pub revoked: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DownloadView {
    pub id: i64,
    pub item_id: i64,
    pub media_id: i64,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommentView {
    pub id: i64,
    pub item_id: i64,
    pub body: String,
    /// `published` or `hidden`.
    pub status: String,
    /// Kinds of mention the author attested they may share (`mention`, `phone`, `name`).
    pub attested: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A signed download link.
#[derive(Debug, Clone)]
pub struct DownloadLink {
    pub record: DownloadView,
    pub token: String,
    pub expires_ms: i64,
}

/// What in a comment may be about someone else (P14): `@name` mentions, phone numbers,
/// and names with a form of address (张先生, 王女士, Mr Smith).
pub fn mentions(text: &str) -> Vec<&'static str> {
    let mut kinds = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    if chars
        .windows(2)
        .any(|w| w[0] == '@' && (w[1].is_alphanumeric() || w[1] == '_'))
    {
        kinds.push("mention");
    }
    let mut digits = 0;
    let mut phone = false;
    for c in &chars {
        if c.is_ascii_digit() {
            digits += 1;
            phone |= digits >= 7;
        } else if !matches!(c, ' ' | '-' | '+' | '(' | ')') {
            digits = 0;
        }
    }
    if phone {
        kinds.push("phone");
    }
    let titled = ["先生", "女士", "小姐", "老师", "同学"].iter().any(|t| {
        text.match_indices(t).any(|(i, _)| {
            text[..i]
                .chars()
                .next_back()
                .is_some_and(custos_search::tokenize::is_cjk)
        })
    }) || text.char_indices().any(|(i, _)| {
        // An English form of address (ASCII, matched without case) before a capital.
        let rest = &text[i..];
        let word_start = !text[..i]
            .chars()
            .next_back()
            .is_some_and(char::is_alphabetic);
        word_start
            && ["mr ", "mr. ", "mrs ", "mrs. ", "ms ", "ms. ", "dr. "]
                .iter()
                .any(|t| {
                    rest.len() > t.len()
                        && rest.as_bytes()[..t.len()].eq_ignore_ascii_case(t.as_bytes())
                        && rest[t.len()..]
                            .chars()
                            .next()
                            .is_some_and(char::is_uppercase)
                })
    });
    if titled {
        kinds.push("name");
    }
    kinds
}

fn comment_text(body: &str) -> AppResult<String> {
    let b = body.trim();
    if b.is_empty() || b.chars().count() > MAX_COMMENT {
        return Err(AppError::bad(
            "invalid_comment",
            format!("a comment has 1 to {MAX_COMMENT} characters"),
        ));
    }
    if b.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::bad(
            "invalid_comment",
            "a comment may not contain control characters",
        ));
    }
    Ok(b.to_owned())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn stamp(ms: i64) -> String {
    custos_core::clock::rfc3339(ms)
}

impl Catalog {
    async fn seal(&self, subject: SubjectId, binding: &[u8], text: &str) -> AppResult<Vec<u8>> {
        let key = self
            .kernel
            .vault
            .get_or_create(subject, self.kernel.clock.now_ms())
            .await?;
        Ok(key.cipher().seal(binding, text.as_bytes(), &mut OsRng))
    }

    async fn unseal(
        &self,
        subject: SubjectId,
        binding: &[u8],
        sealed: &[u8],
    ) -> AppResult<Option<String>> {
        let Some(key) = self.kernel.vault.get(subject).await? else {
            return Ok(None);
        };
        Ok(key
            .cipher()
            .open(binding, sealed)
            .ok()
            .and_then(|b| String::from_utf8(b).ok()))
    }

    async fn require_item(&self, item_id: i64) -> AppResult<()> {
        match items::get_item(&self.kernel.db, item_id).await? {
            Some(_) => Ok(()),
            None => Err(AppError::NotFound),
        }
    }

    /// Bookmarks an item in a collection (default `默认收藏`), or moves the bookmark.
    pub async fn bookmark(
        &self,
        subject: SubjectId,
        ctx: &GateContext<'_>,
        item_id: i64,
        collection: Option<&str>,
    ) -> AppResult<BookmarkView> {
        let name = collection
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .unwrap_or("默认收藏");
        if name.chars().count() > MAX_COLLECTION || name.chars().any(char::is_control) {
            return Err(AppError::bad(
                "invalid_collection",
                format!("a collection name has 1 to {MAX_COLLECTION} characters"),
            ));
        }
        let permit = self.kernel.permit(subject, PURPOSE, &[PRIVATE], ctx)?;
        self.require_item(item_id).await?;
        let sealed = self.seal(subject, COLLECTION_BINDING, name).await?;
        let b = store::put_bookmark(
            &self.kernel.db,
            &permit,
            item_id,
            sealed,
            self.kernel.clock.now_ms(),
        )
        .await?;
        Ok(BookmarkView {
            id: b.id,
            item_id: b.item_id,
            collection: name.to_owned(),
            created_at: stamp(b.created_ms),
        })
    }

    pub async fn bookmarks(&self, subject: SubjectId) -> AppResult<Vec<BookmarkView>> {
        let mut out = Vec::new();
        for b in store::bookmarks(&self.kernel.db, subject).await? {
            let collection = self
                .unseal(subject, COLLECTION_BINDING, &b.collection_sealed)
                .await?
                .unwrap_or_default();
            out.push(BookmarkView {
                id: b.id,
                item_id: b.item_id,
                collection,
                created_at: stamp(b.created_ms),
            });
        }
        Ok(out)
    }

    /// Deletes one of the subject's bookmarks, downloads, shares or comments; another
    /// user's id is `not_found`, exactly like an id that does not exist.
    pub async fn remove(&self, subject: SubjectId, kind: Kind, id: i64) -> AppResult<()> {
        if store::delete(&self.kernel.db, subject, kind, id).await? {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }

    /// Creates a share link for an item: 256 random bits, of which only a keyed hash is kept.
    pub async fn share(
        &self,
        subject: SubjectId,
        ctx: &GateContext<'_>,
        item_id: i64,
    ) -> AppResult<(ShareView, String)> {
        let permit = self.kernel.permit(subject, PURPOSE, &[PRIVATE], ctx)?;
        self.require_item(item_id).await?;
        let mut raw = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut OsRng, &mut raw);
        let token = b64(&raw);
        let hash = self.kernel.ring.blind_index(SHARE_DOMAIN, token.as_bytes());
        let s = store::add_share(
            &self.kernel.db,
            &permit,
            item_id,
            &hash,
            self.kernel.clock.now_ms(),
        )
        .await?;
        Ok((
            ShareView {
                id: s.id,
                item_id,
                created_at: stamp(s.created_ms),
                revoked: false,
            },
            token,
        ))
    }

    /// The item a live share link points to.
    pub async fn open_share(&self, token: &str) -> AppResult<items::Item> {
        if token.len() != 43 {
            return Err(AppError::NotFound);
        }
        let hash = self.kernel.ring.blind_index(SHARE_DOMAIN, token.as_bytes());
        let s = store::share_by_token(&self.kernel.db, &hash)
            .await?
            .ok_or(AppError::NotFound)?;
        self.item(s.item_id).await
    }

    pub async fn revoke_share(&self, subject: SubjectId, id: i64) -> AppResult<()> {
        if store::revoke_share(&self.kernel.db, subject, id, self.kernel.clock.now_ms()).await? {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }

    pub async fn shares(&self, subject: SubjectId) -> AppResult<Vec<ShareView>> {
        Ok(store::shares(&self.kernel.db, subject)
            .await?
            .into_iter()
            .map(|s| ShareView {
                id: s.id,
                item_id: s.item_id,
                created_at: stamp(s.created_ms),
                revoked: s.revoked_ms.is_some(),
            })
            .collect())
    }

    fn link_mac(&self, media_id: i64, expires_ms: i64) -> [u8; 16] {
        let mut msg = [0u8; 16];
        msg[..8].copy_from_slice(&media_id.to_be_bytes());
        msg[8..].copy_from_slice(&expires_ms.to_be_bytes());
        self.kernel.ring.blind_index(DOWNLOAD_DOMAIN, &msg)
    }

    /// Records a download and returns a link to the file that works for
    /// [`DOWNLOAD_TTL_MS`].
    pub async fn download(
        &self,
        subject: SubjectId,
        ctx: &GateContext<'_>,
        media_id: i64,
    ) -> AppResult<DownloadLink> {
        let permit = self.kernel.permit(subject, PURPOSE, &[PRIVATE], ctx)?;
        let m = self.media(media_id).await?;
        let now = self.kernel.clock.now_ms();
        let d = store::add_download(&self.kernel.db, &permit, m.item_id, media_id, now).await?;
        let expires_ms = now + DOWNLOAD_TTL_MS;
        let mut raw = Vec::with_capacity(32);
        raw.extend_from_slice(&media_id.to_be_bytes());
        raw.extend_from_slice(&expires_ms.to_be_bytes());
        raw.extend_from_slice(&self.link_mac(media_id, expires_ms));
        Ok(DownloadLink {
            record: DownloadView {
                id: d.id,
                item_id: d.item_id,
                media_id,
                created_at: stamp(now),
            },
            token: b64(&raw),
            expires_ms,
        })
    }

    /// The media file a download link names, if the link is genuine and not expired.
    pub async fn open_download(&self, token: &str) -> AppResult<items::Media> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .filter(|r| r.len() == 32)
            .ok_or(AppError::NotFound)?;
        let media_id = i64::from_be_bytes(raw[..8].try_into().map_err(|_| AppError::NotFound)?);
        let expires_ms = i64::from_be_bytes(raw[8..16].try_into().map_err(|_| AppError::NotFound)?);
        let mac = self.link_mac(media_id, expires_ms);
        if raw[16..].iter().zip(mac).fold(0u8, |a, (x, y)| a | (x ^ y)) != 0 {
            return Err(AppError::NotFound);
        }
        if self.kernel.clock.now_ms() >= expires_ms {
            return Err(AppError::bad(
                "link_expired",
                "this download link has expired",
            ));
        }
        self.media(media_id).await
    }

    pub async fn downloads(&self, subject: SubjectId) -> AppResult<Vec<DownloadView>> {
        Ok(store::downloads(&self.kernel.db, subject)
            .await?
            .into_iter()
            .map(|d| DownloadView {
                id: d.id,
                item_id: d.item_id,
                media_id: d.media_id,
                created_at: stamp(d.created_ms),
            })
            .collect())
    }

    /// The attestation to record for `body`, or `attestation_required` when the comment
    /// mentions someone and the author has not confirmed they may share it (P14).
    fn attestation(&self, body: &str, attested: bool) -> AppResult<Option<String>> {
        let kinds = mentions(body);
        if kinds.is_empty() {
            return Ok(None);
        }
        if !attested {
            return Err(AppError::bad(
                "attestation_required",
                format!(
                    "the comment seems to mention another person ({}); confirm that you may share it",
                    kinds.join(", ")
                ),
            ));
        }
        Ok(Some(
            serde_json::json!({
                "kinds": kinds,
                "attested_at": stamp(self.kernel.clock.now_ms()),
                "policy": self.kernel.gate.regime().current().hash().to_string(),
            })
            .to_string(),
        ))
    }

    async fn comment_view(&self, c: store::Comment) -> AppResult<Option<CommentView>> {
        let Some(body) = self
            .unseal(c.subject, COMMENT_BINDING, &c.body_sealed)
            .await?
        else {
            // The author's key is gone (erased): the comment can no longer be read.
            return Ok(None);
        };
        let attested = c
            .attestation
            .as_deref()
            .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
            .and_then(|v| {
                v["kinds"].as_array().map(|k| {
                    k.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
            })
            .unwrap_or_default();
        Ok(Some(CommentView {
            id: c.id,
            item_id: c.item_id,
            body,
            status: c.status,
            attested,
            created_at: stamp(c.created_ms),
            updated_at: stamp(c.updated_ms),
        }))
    }

    /// Posts a comment on an item.
    pub async fn comment(
        &self,
        subject: SubjectId,
        ctx: &GateContext<'_>,
        item_id: i64,
        body: &str,
        attested: bool,
    ) -> AppResult<CommentView> {
        let body = comment_text(body)?;
        let attestation = self.attestation(&body, attested)?;
        let permit = self.kernel.permit(subject, PURPOSE, &[PUBLIC], ctx)?;
        self.require_item(item_id).await?;
        let sealed = self.seal(subject, COMMENT_BINDING, &body).await?;
        let c = store::add_comment(
            &self.kernel.db,
            &permit,
            item_id,
            sealed,
            attestation,
            self.kernel.clock.now_ms(),
        )
        .await?;
        self.comment_view(c)
            .await?
            .ok_or_else(|| AppError::Internal("a new comment cannot be read back".into()))
    }

    /// Changes the body of one of the subject's comments.
    pub async fn edit_comment(
        &self,
        subject: SubjectId,
        ctx: &GateContext<'_>,
        id: i64,
        body: &str,
        attested: bool,
    ) -> AppResult<CommentView> {
        let body = comment_text(body)?;
        let attestation = self.attestation(&body, attested)?;
        let permit = self.kernel.permit(subject, PURPOSE, &[PUBLIC], ctx)?;
        let sealed = self.seal(subject, COMMENT_BINDING, &body).await?;
        let c = store::edit_comment(
            &self.kernel.db,
            &permit,
            id,
            sealed,
            attestation,
            self.kernel.clock.now_ms(),
        )
        .await?
        .ok_or(AppError::NotFound)?;
        self.comment_view(c)
            .await?
            .ok_or_else(|| AppError::Internal("an edited comment cannot be read back".into()))
    }

    /// Published comments on an item, oldest first (at most 200).
    pub async fn comments_on(&self, item_id: i64) -> AppResult<Vec<CommentView>> {
        self.require_item(item_id).await?;
        let mut out = Vec::new();
        for c in store::comments_on(&self.kernel.db, item_id, 200).await? {
            out.extend(self.comment_view(c).await?);
        }
        Ok(out)
    }

    /// The subject's own comments, whatever their moderation status.
    pub async fn my_comments(&self, subject: SubjectId) -> AppResult<Vec<CommentView>> {
        let mut out = Vec::new();
        for c in store::comments_of(&self.kernel.db, subject).await? {
            out.extend(self.comment_view(c).await?);
        }
        Ok(out)
    }

    /// Moderation: `published` or `hidden`.
    pub async fn moderate(&self, id: i64, status: &str) -> AppResult<()> {
        if !matches!(status, "published" | "hidden") {
            return Err(AppError::bad(
                "invalid_status",
                "status must be published or hidden",
            ));
        }
        if store::set_comment_status(&self.kernel.db, id, status).await? {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }

    /// Deletes everything the subject kept here (account erasure).
    pub async fn erase_subject(&self, subject: SubjectId) -> AppResult<u64> {
        Ok(store::erase(&self.kernel.db, subject).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn mentions_of_other_people_are_recognised() {
        assert_eq!(mentions("@小王 你看这个"), vec!["mention"]);
        assert_eq!(mentions("call 138 1234 5678 for one"), vec!["phone"]);
        assert_eq!(mentions("张先生推荐的"), vec!["name"]);
        assert_eq!(mentions("Ask Mr. Smith about it"), vec!["name"]);
        assert!(mentions("很好看，颜色正 great colour, 5 stars, size 38").is_empty());
        assert!(mentions("email me@ home").is_empty());
        assert!(mentions("先生").is_empty());
        // Letters whose lower case is longer must not shift anything.
        assert_eq!(mentions("İİİ mr. Smith"), vec!["name"]);
        assert!(mentions("İstanbul hummr. x").is_empty());
    }
}
