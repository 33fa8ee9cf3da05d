//! Staff reads of one user's data (P24): each names a rights ticket of that user or a
//! purpose in words, and is written to the audit log (user by pseudonym) before any data
//! is gathered; without a reason the read is refused. Analysts get aggregate figures only,
//! with small counts suppressed.

use std::collections::BTreeMap;

use custos_core::clock::rfc3339;
use custos_core::SubjectId;
use serde::Serialize;

use super::audit::{subject_ref, MAX_REASON_CHARS};
use super::{Actor, Ops};
use crate::{AppError, AppResult};

/// Why staff read a user's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessReason {
    /// A rights ticket of that user.
    Ticket(i64),
    /// A purpose in words (`X-Custos-Purpose`), at least 8 characters.
    Purpose(String),
}

impl AccessReason {
    /// From the `ticket` parameter and the `X-Custos-Purpose` header; refused without
    /// either (`purpose_required`).
    pub fn parse(ticket: Option<&str>, purpose: Option<&str>) -> AppResult<AccessReason> {
        if let Some(t) = ticket.map(str::trim).filter(|t| !t.is_empty()) {
            return t.parse::<i64>().map(AccessReason::Ticket).map_err(|_| {
                AppError::bad(
                    "invalid_ticket",
                    "`ticket` is the number of a rights ticket",
                )
            });
        }
        let p = purpose.map(str::trim).unwrap_or_default();
        let n = p.chars().count();
        if n < 8 {
            return Err(AppError::bad(
                "purpose_required",
                "name the rights ticket (`ticket=`) or the purpose (X-Custos-Purpose, at least 8 characters) of this read",
            ));
        }
        if n > MAX_REASON_CHARS {
            return Err(AppError::bad(
                "purpose_too_long",
                format!("a purpose has at most {MAX_REASON_CHARS} characters"),
            ));
        }
        Ok(AccessReason::Purpose(p.to_owned()))
    }

    fn text(&self) -> String {
        match self {
            AccessReason::Ticket(t) => format!("ticket {t}"),
            AccessReason::Purpose(p) => p.clone(),
        }
    }
}

/// Counts below this are shown as `null` in aggregate figures.
pub const MIN_REPORTED_COUNT: usize = 5;

/// Latest decisions per purpose, over every subject.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PurposeCounts {
    pub purpose: String,
    /// `null` when fewer than [`MIN_REPORTED_COUNT`].
    pub given: Option<usize>,
    pub refused: Option<usize>,
    pub withdrawn: Option<usize>,
}

impl Ops {
    /// A summary of what Custos holds about `subject` (account, profile, consents, counts
    /// of interactions, rights tickets). The read is audited first, naming `reason`; a
    /// ticket must be one of this user's (`ticket_mismatch`).
    pub async fn subject_data(
        &self,
        actor: &Actor,
        subject: SubjectId,
        reason: &AccessReason,
    ) -> AppResult<serde_json::Value> {
        if let AccessReason::Ticket(id) = reason {
            match self.rights.ticket(subject, *id).await {
                Ok(_) => {}
                Err(AppError::NotFound) => {
                    return Err(AppError::bad(
                        "ticket_mismatch",
                        format!("ticket {id} is not a request of this user"),
                    ))
                }
                Err(e) => return Err(e),
            }
        }
        self.record(
            &actor.name(),
            "subject.data.read",
            &subject_ref(&self.kernel, subject),
            "allowed",
            &reason.text(),
            serde_json::json!({ "scope": "summary" }),
        )
        .await?;
        let identity = &self.rights.identity;
        let catalog = &self.rights.catalog;
        let account = match identity.account(subject).await {
            Ok(a) => serde_json::json!({
                "created_at": rfc3339(a.created_at_ms),
                "age_band": a.age_band,
                "guardian_consent": a.guardian_consent,
            }),
            Err(AppError::NotFound) => serde_json::Value::Null,
            Err(e) => return Err(e),
        };
        let profile = match identity.profile(subject).await {
            Ok(p) => serde_json::json!({
                "nickname": p.nickname,
                "has_avatar": p.has_avatar,
                "has_password": p.has_password,
            }),
            Err(AppError::NotFound) => serde_json::Value::Null,
            Err(e) => return Err(e),
        };
        let mut latest: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        for r in self.kernel.consent_history(subject).await? {
            latest.insert(
                r.purpose.clone(),
                serde_json::json!({
                    "purpose": r.purpose,
                    "decision": r.decision.as_str(),
                    "at": rfc3339(r.at_ms),
                }),
            );
        }
        let tickets: Vec<serde_json::Value> = self
            .rights
            .tickets(subject)
            .await?
            .into_iter()
            .map(|t| {
                serde_json::json!({
                    "id": t.id,
                    "kind": t.kind.as_str(),
                    "status": t.status,
                    "due_at": rfc3339(t.due_ms),
                })
            })
            .collect();
        Ok(serde_json::json!({
            "subject": subject.to_string(),
            "account": account,
            "profile": profile,
            "consents": latest.into_values().collect::<Vec<_>>(),
            "counts": {
                "bookmarks": catalog.bookmarks(subject).await?.len(),
                "downloads": catalog.downloads(subject).await?.len(),
                "shares": catalog.shares(subject).await?.len(),
                "comments": catalog.my_comments(subject).await?.len(),
            },
            "rights_tickets": tickets,
            "access": { "reason": reason.text(), "by": actor.name() },
        }))
    }

    /// Per purpose, how many subjects' latest decision is given, refused or withdrawn;
    /// counts under [`MIN_REPORTED_COUNT`] are suppressed.
    pub async fn consent_counts(&self) -> AppResult<Vec<PurposeCounts>> {
        let mut by: BTreeMap<String, [usize; 3]> = BTreeMap::new();
        for r in custos_store::ledger::latest_decisions(&self.kernel.db).await? {
            let slot = match r.decision.as_str() {
                "given" => 0,
                "refused" => 1,
                _ => 2,
            };
            by.entry(r.purpose).or_default()[slot] += 1;
        }
        let shown = |n: usize| (n >= MIN_REPORTED_COUNT).then_some(n);
        Ok(by
            .into_iter()
            .map(|(purpose, [g, r, w])| PurposeCounts {
                purpose,
                given: shown(g),
                refused: shown(r),
                withdrawn: shown(w),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_needs_a_ticket_number_or_a_purpose_in_words() {
        assert_eq!(
            AccessReason::parse(Some("42"), None).unwrap(),
            AccessReason::Ticket(42)
        );
        assert_eq!(
            AccessReason::parse(None, Some("  user asked by phone why ads changed ")).unwrap(),
            AccessReason::Purpose("user asked by phone why ads changed".into())
        );
        for (t, p, code) in [
            (None, None, "purpose_required"),
            (Some(""), Some("short"), "purpose_required"),
            (Some("abc"), None, "invalid_ticket"),
        ] {
            assert_eq!(AccessReason::parse(t, p).unwrap_err().code(), code);
        }
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        assert_eq!(
            AccessReason::parse(None, Some(&long)).unwrap_err().code(),
            "purpose_too_long"
        );
    }
}
