//! Deleting one item (P21, P33, P39): a bookmark, comment, download record, share link,
//! preference trait or device record, through one use case that answers `not_found` for
//! another user's item exactly as for a missing one, and records each deletion that took
//! effect as a deletion ticket answered at once (naming the kind and the row, never a
//! value).
//!
//! Where each deletion lands (L8), so that the very next request no longer sees it:
//! - the row or the encrypted personal fields, in the database (the only copy: comments,
//!   bookmarks and the rest are not in the catalog search index, which holds catalog items
//!   only, and the search page cache holds item pages, never user data);
//! - a share link stops opening at once (its keyed hash goes with the row);
//! - a trait leaves the derived profile: the next ranking, segment match and export no
//!   longer use it; a device's push token goes with the device, so nothing is pushed to it;
//! - media: bookmarks, downloads and shares point at catalog media, which belong to the
//!   catalog, not to the user; the user's own picture (avatar) is deleted with
//!   `DELETE /api/v1/me/profile/avatar`.

use custos_core::SubjectId;

use super::{Rights, Ticket, TicketKind};
use crate::catalog::interactions::Kind;
use crate::{AppError, AppResult};

/// One item to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Bookmark(i64),
    Comment(i64),
    Download(i64),
    Share(i64),
    /// A preference trait by its key, e.g. `tag:连衣裙`.
    Trait(String),
    /// A device record by its id.
    Device(String),
}

/// The kinds of item [`Item::parse`] knows.
pub const KINDS: [&str; 6] = [
    "bookmark", "comment", "download", "share", "trait", "device",
];

impl Item {
    /// Parses `kind` and `id` from a request: an unknown kind is `unknown_item_kind`, a
    /// malformed id `invalid_id`.
    pub fn parse(kind: &str, id: &str) -> AppResult<Item> {
        let num = || {
            id.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                AppError::bad("invalid_id", format!("`{kind}` ids are positive integers"))
            })
        };
        let text = || {
            if id.is_empty() || id.chars().count() > 256 || id.chars().any(char::is_control) {
                Err(AppError::bad(
                    "invalid_id",
                    "the id is 1 to 256 visible characters",
                ))
            } else {
                Ok(id.to_owned())
            }
        };
        Ok(match kind {
            "bookmark" => Item::Bookmark(num()?),
            "comment" => Item::Comment(num()?),
            "download" => Item::Download(num()?),
            "share" => Item::Share(num()?),
            "trait" => Item::Trait(text()?),
            "device" => Item::Device(text()?),
            other => {
                return Err(AppError::bad(
                    "unknown_item_kind",
                    format!(
                        "`{other}` is not a kind of item; use one of {}",
                        KINDS.join(", ")
                    ),
                ))
            }
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Item::Bookmark(_) => "bookmark",
            Item::Comment(_) => "comment",
            Item::Download(_) => "download",
            Item::Share(_) => "share",
            Item::Trait(_) => "trait",
            Item::Device(_) => "device",
        }
    }

    /// What the audit ticket names: numeric ids (random to anyone else), not trait keys
    /// or device ids, which say something about the user.
    fn detail(&self) -> String {
        match self {
            Item::Bookmark(id) | Item::Comment(id) | Item::Download(id) | Item::Share(id) => {
                format!("{} {id}", self.kind())
            }
            other => other.kind().to_owned(),
        }
    }
}

impl Rights {
    /// Deletes one of the subject's items everywhere it is kept and records the deletion.
    pub async fn delete_item(&self, subject: SubjectId, item: &Item) -> AppResult<Ticket> {
        let c = &self.catalog;
        match item {
            Item::Bookmark(id) => c.remove(subject, Kind::Bookmark, *id).await?,
            Item::Comment(id) => c.remove(subject, Kind::Comment, *id).await?,
            Item::Download(id) => c.remove(subject, Kind::Download, *id).await?,
            Item::Share(id) => c.remove(subject, Kind::Share, *id).await?,
            Item::Trait(key) => self.signals.delete_trait(subject, key).await?,
            Item::Device(id) => self.signals.delete_device(subject, id).await?,
        }
        self.record_fulfilled(
            subject,
            TicketKind::Deletion,
            &item.detail(),
            &format!("{} deleted by the user", item.kind()),
        )
        .await
    }
}
