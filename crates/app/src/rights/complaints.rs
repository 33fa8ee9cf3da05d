//! Complaints and reports (P34) and the controller's contact (P37).
//!
//! Anyone files a complaint (about how the service treats them or their data) or a
//! report (about content or conduct), signed in or not. Each is a rights ticket with a
//! deadline (the one-month rule of `[rights] deadline_months`), shown to operators among
//! the overdue and near-due tickets, and answered by an operator; the answer closes the
//! ticket as `answered`. A signed-in filer reads it among their tickets; an anonymous
//! filer gets a follow-up secret once (256 random bits, of which only a keyed hash is
//! kept) and reads the answer with it. An anonymous complaint is filed under a fresh
//! random subject id that nothing else links to.

use base64::Engine;
use custos_core::SubjectId;
use custos_store::rights::complaints::{self as store, NewComplaint};
use rand_core::RngCore;
use serde::Serialize;

use super::{ComplaintRoute, Rights, Ticket, TicketKind, MAX_DETAIL};
use crate::{AppError, AppResult};

const FOLLOW_UP_DOMAIN: &str = "complaint-follow-up";
/// Topics a complaint or report can be about.
pub const TOPICS: [&str; 3] = ["content", "data_handling", "service"];
/// Longest operator answer, in characters.
pub const MAX_ANSWER: usize = 4000;

/// A complaint to file, as parsed from a request.
#[derive(Debug, Clone)]
pub struct ComplaintInput {
    /// [`TicketKind::Complaint`] or [`TicketKind::Report`].
    pub kind: TicketKind,
    pub topic: String,
    /// What it concerns: `item:42`, `comment:7`, `media:3`, `ad:5` or `account`.
    pub about: Option<String>,
    pub detail: String,
}

impl ComplaintInput {
    /// Validates a request: `unknown_kind`, `unknown_topic`, `invalid_about`,
    /// `detail_required`, `detail_too_long`.
    pub fn parse(
        kind: &str,
        topic: &str,
        about: Option<&str>,
        detail: &str,
    ) -> AppResult<ComplaintInput> {
        let kind = match kind {
            "complaint" => TicketKind::Complaint,
            "report" => TicketKind::Report,
            other => {
                return Err(AppError::bad(
                    "unknown_kind",
                    format!("`{other}` is neither `complaint` nor `report`"),
                ))
            }
        };
        if !TOPICS.contains(&topic) {
            return Err(AppError::bad(
                "unknown_topic",
                format!("the topic is one of {}", TOPICS.join(", ")),
            ));
        }
        let about = match about.map(str::trim).filter(|a| !a.is_empty()) {
            None => None,
            Some("account") => Some("account".to_owned()),
            Some(a) => {
                let ok = a.split_once(':').is_some_and(|(k, n)| {
                    matches!(k, "item" | "comment" | "media" | "ad")
                        && n.len() <= 18
                        && !n.is_empty()
                        && n.bytes().all(|b| b.is_ascii_digit())
                });
                if !ok {
                    return Err(AppError::bad(
                        "invalid_about",
                        "`about` is `item:<id>`, `comment:<id>`, `media:<id>`, `ad:<id>` or `account`",
                    ));
                }
                Some(a.to_owned())
            }
        };
        let detail = detail.trim();
        if detail.is_empty() {
            return Err(AppError::bad(
                "detail_required",
                "say what the complaint or report is about",
            ));
        }
        if detail.chars().count() > MAX_DETAIL {
            return Err(AppError::bad(
                "detail_too_long",
                format!("the detail may have at most {MAX_DETAIL} characters"),
            ));
        }
        Ok(ComplaintInput {
            kind,
            topic: topic.to_owned(),
            about,
            detail: detail.to_owned(),
        })
    }
}

/// A complaint with its ticket, as the filer (or an operator) sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ComplaintView {
    pub ticket: Ticket,
    pub topic: String,
    pub about: Option<String>,
    pub anonymous: bool,
    pub answer: Option<String>,
    pub answered_ms: Option<i64>,
}

/// What filing returns.
#[derive(Debug, Clone)]
pub struct Filed {
    pub complaint: ComplaintView,
    /// For an anonymous filer only: the secret that reads the answer (shown once).
    pub follow_up_secret: Option<String>,
}

/// How to reach the controller, from the published declaration (P37).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contact {
    pub name: ComplaintRoute,
    pub address: ComplaintRoute,
    pub email: String,
    pub phone: String,
    pub dpo_email: Option<String>,
    /// Where to turn when the controller's answer does not settle the matter.
    pub complaint_route: ComplaintRoute,
}

impl Rights {
    /// The controller's contact details and complaint route, from the current declaration.
    pub fn contact(&self) -> Contact {
        let regime = self.kernel.gate.regime();
        let c = &regime.current().declaration().controller;
        let text = |t: &custos_policy::model::Text| ComplaintRoute {
            en: t.en.clone(),
            zh: t.zh.clone(),
        };
        Contact {
            name: text(&c.name),
            address: text(&c.address),
            email: c.email.clone(),
            phone: c.phone.clone(),
            dpo_email: c.dpo_email.clone(),
            complaint_route: text(&c.complaint_route),
        }
    }

    fn follow_up_hash(&self, secret: &str) -> [u8; 16] {
        self.kernel
            .ring
            .blind_index(FOLLOW_UP_DOMAIN, secret.trim().as_bytes())
    }

    /// Files a complaint or report; `filer` is the signed-in account, `None` for an
    /// anonymous filer (who gets a follow-up secret).
    pub async fn file_complaint(
        &self,
        filer: Option<SubjectId>,
        input: &ComplaintInput,
    ) -> AppResult<Filed> {
        let (subject, secret) = match filer {
            Some(s) => (s, None),
            None => {
                let mut raw = [0u8; 32];
                rand_core::OsRng.fill_bytes(&mut raw);
                let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
                (SubjectId::random(), Some(secret))
            }
        };
        let now = self.now_ms();
        let (t, c) = store::file(
            &self.kernel.db,
            &NewComplaint {
                subject,
                kind: input.kind.as_str(),
                topic: &input.topic,
                about: input.about.as_deref(),
                detail: &input.detail,
                anonymous: filer.is_none(),
                follow_up: secret.as_deref().map(|s| self.follow_up_hash(s)),
            },
            now,
            self.deadline(input.kind, now),
        )
        .await?;
        let ticket = self.with_history(t).await?;
        Ok(Filed {
            complaint: view(ticket, c),
            follow_up_secret: secret,
        })
    }

    async fn complaint_view(&self, ticket: Ticket) -> AppResult<ComplaintView> {
        let c = store::get(&self.kernel.db, ticket.id)
            .await?
            .ok_or(AppError::NotFound)?;
        Ok(view(ticket, c))
    }

    /// One of the signed-in filer's complaints; anything else is not found.
    pub async fn complaint(&self, subject: SubjectId, id: i64) -> AppResult<ComplaintView> {
        let t = self.ticket(subject, id).await?;
        self.complaint_view(t).await
    }

    /// The signed-in filer's complaints and reports, newest first.
    pub async fn complaints(&self, subject: SubjectId) -> AppResult<Vec<ComplaintView>> {
        let mut out = Vec::new();
        for t in self.tickets(subject).await? {
            if matches!(t.kind, TicketKind::Complaint | TicketKind::Report) {
                out.push(self.complaint_view(t).await?);
            }
        }
        Ok(out)
    }

    /// An anonymous filer's complaint, by its follow-up secret.
    pub async fn complaint_by_secret(&self, secret: &str) -> AppResult<ComplaintView> {
        if secret.trim().is_empty() || secret.len() > 128 {
            return Err(AppError::NotFound);
        }
        let c = store::by_follow_up(&self.kernel.db, &self.follow_up_hash(secret))
            .await?
            .ok_or(AppError::NotFound)?;
        let t = self.ticket_for_operator(c.ticket_id).await?;
        Ok(view(t, c))
    }

    /// For operators: answers an open complaint or report and closes it as `answered`.
    pub async fn answer_complaint(&self, id: i64, answer: &str) -> AppResult<ComplaintView> {
        let answer = answer.trim();
        if answer.is_empty() {
            return Err(AppError::bad("answer_required", "write an answer"));
        }
        if answer.chars().count() > MAX_ANSWER {
            return Err(AppError::bad(
                "answer_too_long",
                format!("an answer may have at most {MAX_ANSWER} characters"),
            ));
        }
        if !store::answer(&self.kernel.db, id, answer, self.now_ms()).await? {
            return match store::get(&self.kernel.db, id).await? {
                None => Err(AppError::NotFound),
                Some(_) => Err(AppError::bad(
                    "ticket_closed",
                    "the complaint is already closed",
                )),
            };
        }
        let t = self.ticket_for_operator(id).await?;
        self.complaint_view(t).await
    }
}

fn view(ticket: Ticket, c: store::Complaint) -> ComplaintView {
    ComplaintView {
        ticket,
        topic: c.topic,
        about: c.about,
        anonymous: c.anonymous,
        answer: c.answer,
        answered_ms: c.answered_ms,
    }
}
