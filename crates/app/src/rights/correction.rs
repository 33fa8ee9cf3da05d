//! Correction (P33) of every field the user provided: nickname, avatar, birth date (only
//! towards a younger age once under 18 was declared: `birth_date_locked`), the body of
//! one of their comments and the name of one of their bookmark collections. The phone
//! number is corrected through its own flow (`/api/v1/me/phone/{start,verify}`), which
//! needs a code sent to the new number.
//!
//! Audit: each correction that took effect is recorded as a correction ticket opened and
//! answered at once, with its two-entry status history, written in one transaction right
//! after the change (the change itself belongs to the identity or catalog service and
//! commits there). The ticket names the field and the row, never the value. The user
//! reads it among their rights tickets, or as `GET /api/v1/me/corrections`. A correction
//! that is refused (bad value, another user's row, a locked birth date) changes nothing
//! and records nothing.

use custos_core::{Personal, SubjectId};
use custos_store::rights as store;

use super::{Rights, Ticket, TicketKind};
use crate::identity::profile::Nickname;
use crate::{AppError, AppResult};

/// One correction.
#[derive(Debug, Clone)]
pub enum Correction {
    Nickname(Personal<String>),
    /// The uploaded picture (re-encoded as PNG like any avatar).
    Avatar(Personal<Vec<u8>>),
    /// `YYYY-MM-DD`.
    BirthDate(Personal<String>),
    CommentBody {
        id: i64,
        body: Personal<String>,
        /// The author confirms they may share what the comment says about someone (P14).
        attest_may_share: bool,
    },
    CollectionName {
        bookmark_id: i64,
        name: Personal<String>,
    },
}

/// The fields a correction can name.
pub const FIELDS: [&str; 5] = [
    "nickname",
    "avatar",
    "birth_date",
    "comment",
    "bookmark_collection",
];

impl Correction {
    /// The field it corrects.
    pub fn field(&self) -> &'static str {
        match self {
            Correction::Nickname(_) => "nickname",
            Correction::Avatar(_) => "avatar",
            Correction::BirthDate(_) => "birth_date",
            Correction::CommentBody { .. } => "comment",
            Correction::CollectionName { .. } => "bookmark_collection",
        }
    }

    /// What the audit ticket says: the field and the row, never the value.
    fn detail(&self) -> String {
        match self {
            Correction::CommentBody { id, .. } => format!("comment {id}"),
            Correction::CollectionName { bookmark_id, .. } => {
                format!("bookmark_collection of bookmark {bookmark_id}")
            }
            other => other.field().to_owned(),
        }
    }
}

impl Rights {
    /// Applies a correction and records it as an answered correction ticket.
    pub async fn correct(&self, subject: SubjectId, c: &Correction) -> AppResult<Ticket> {
        match c {
            Correction::Nickname(v) => {
                let nick = Nickname::parse(v.expose())?;
                self.identity.set_nickname(subject, &nick).await?;
            }
            Correction::Avatar(bytes) => {
                self.identity
                    .set_avatar(subject, bytes.expose().clone())
                    .await?;
            }
            Correction::BirthDate(v) => {
                self.identity
                    .declare_birth_date(subject, v.expose())
                    .await?;
            }
            Correction::CommentBody {
                id,
                body,
                attest_may_share,
            } => {
                let ctx = self.identity.gate_context(subject).await?;
                self.catalog
                    .edit_comment(subject, &ctx, *id, body.expose(), *attest_may_share)
                    .await?;
            }
            Correction::CollectionName { bookmark_id, name } => {
                let b = self
                    .catalog
                    .bookmarks(subject)
                    .await?
                    .into_iter()
                    .find(|b| b.id == *bookmark_id)
                    .ok_or(AppError::NotFound)?;
                if name.expose().trim().is_empty() {
                    return Err(AppError::bad(
                        "invalid_collection",
                        "a collection name cannot be empty",
                    ));
                }
                let ctx = self.identity.gate_context(subject).await?;
                self.catalog
                    .bookmark(subject, &ctx, b.item_id, Some(name.expose()))
                    .await?;
            }
        }
        self.record_fulfilled(
            subject,
            TicketKind::Correction,
            &c.detail(),
            &format!("{} corrected by the user", c.field()),
        )
        .await
    }

    /// Records a change the user made through a per-field route (`PUT
    /// /api/v1/me/profile/nickname`, `PATCH /api/v1/me/comments/{id}`, ...) as an answered
    /// correction ticket, so every correction is audited whichever route made it. `field`
    /// is one of [`FIELDS`]; `detail` names the row, never the value.
    pub async fn record_correction(
        &self,
        subject: SubjectId,
        field: &'static str,
        detail: &str,
    ) -> AppResult<Ticket> {
        debug_assert!(FIELDS.contains(&field));
        self.record_fulfilled(
            subject,
            TicketKind::Correction,
            detail,
            &format!("{field} corrected by the user"),
        )
        .await
    }

    /// The caller's corrections (answered correction tickets and any filed by hand).
    pub async fn corrections(&self, subject: SubjectId) -> AppResult<Vec<Ticket>> {
        Ok(self
            .tickets(subject)
            .await?
            .into_iter()
            .filter(|t| t.kind == TicketKind::Correction)
            .collect())
    }

    /// Records a request carried out at once as a ticket answered at once.
    pub(crate) async fn record_fulfilled(
        &self,
        subject: SubjectId,
        kind: TicketKind,
        detail: &str,
        note: &str,
    ) -> AppResult<Ticket> {
        let now = self.now_ms();
        let t = store::open_fulfilled(
            &self.kernel.db,
            subject,
            kind.as_str(),
            detail,
            note,
            now,
            self.deadline(kind, now),
        )
        .await?;
        self.with_history(t).await
    }
}
