//! Rights and lifecycle (issue 6): access and export, correction, deletion, withdrawal,
//! account cancellation with erasure, rights tickets with deadlines, complaints, retention.
//!
//! Rights tickets (P17, L6): every request a user makes about their data is a ticket
//! with a deadline computed from a configurable calendar, a status history, and, when
//! refused, a mandatory reason, legal basis and the complaint route of the published
//! declaration. Operators list overdue and near-due tickets.
//!
//! ## Layout
//! - this file: tickets, account cancellation with cooling-off, erasure (L8).
//! - `calendar`: working days and months for deadlines.
//! - [`export`]: the export document (P33, L7), synchronous or as a background job with
//!   progress and a signed, time-limited download link.
//! - [`correction`]: correcting user-provided fields, each an answered correction ticket.
//! - [`deletion`]: deleting one item of any kind, each an answered deletion ticket.
//! - [`complaints`]: complaints and reports (P34), signed in or anonymous, answered by an
//!   operator; the controller's contact (P37).

mod calendar;
pub mod complaints;
pub mod correction;
pub mod deletion;
pub mod export;

use std::sync::Arc;

use custos_core::SubjectId;
use custos_store::rights::{self as store, Transition};
use serde::Deserialize;
use serde::Serialize;

pub use calendar::Calendar;
pub use export::export_html;

use crate::catalog::Catalog;
use crate::identity::{Identity, Reauthenticated};
use crate::signals::Signals;
use crate::{AppError, AppResult, Kernel};

/// `[rights]` in `custos.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RightsConfig {
    /// Working days to answer an account cancellation (default: 15).
    pub cancellation_working_days: Option<u32>,
    /// Calendar months to answer every other request (default: 1).
    pub deadline_months: Option<u32>,
    /// Tickets due within this many days are "near due" for operators (default: 3).
    pub near_due_days: Option<u32>,
    /// Days that are not working days (default: `["sat", "sun"]`).
    pub weekend: Option<Vec<String>>,
    /// Public holidays, `YYYY-MM-DD`, that are not working days either.
    pub holidays: Option<Vec<String>>,
    /// Working days that fall on the weekend (make-up days), `YYYY-MM-DD`.
    pub extra_working_days: Option<Vec<String>>,
    /// Offset of the calendar's local time from UTC in minutes (default: 480, China).
    pub utc_offset_minutes: Option<i32>,
    /// Days after an account cancellation request during which the user can revoke it
    /// (default: 7).
    pub cooling_off_days: Option<u32>,
    /// Seconds a background export's download link works; the export is deleted then
    /// (default: 86400, one day).
    pub export_link_ttl_secs: Option<u64>,
}

/// What a user can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketKind {
    Access,
    Correction,
    Deletion,
    Withdrawal,
    Cancellation,
    Explanation,
    /// A complaint about how the service treats the user or their data (P34).
    Complaint,
    /// A report about content or conduct (P34).
    Report,
}

impl TicketKind {
    pub const ALL: [TicketKind; 6] = [
        TicketKind::Access,
        TicketKind::Correction,
        TicketKind::Deletion,
        TicketKind::Withdrawal,
        TicketKind::Cancellation,
        TicketKind::Explanation,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            TicketKind::Access => "access",
            TicketKind::Correction => "correction",
            TicketKind::Deletion => "deletion",
            TicketKind::Withdrawal => "withdrawal",
            TicketKind::Cancellation => "cancellation",
            TicketKind::Explanation => "explanation",
            TicketKind::Complaint => "complaint",
            TicketKind::Report => "report",
        }
    }
    /// One of the six rights request kinds (complaints and reports have their own route).
    pub fn parse(s: &str) -> Option<TicketKind> {
        TicketKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// Any kind, including complaints and reports.
    pub fn parse_any(s: &str) -> Option<TicketKind> {
        TicketKind::parse(s).or(match s {
            "complaint" => Some(TicketKind::Complaint),
            "report" => Some(TicketKind::Report),
            _ => None,
        })
    }
}

/// Where an operator moves a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Being worked on.
    InProgress { note: String },
    /// Done.
    Completed { note: String },
    /// Refused: the reason and the legal basis are mandatory (P17).
    Refused { reason: String, legal_basis: String },
}

/// The complaint route a refusal names, in both languages of the declaration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct ComplaintRoute {
    pub en: String,
    pub zh: String,
}

/// A ticket as the use cases see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: i64,
    pub subject: Option<SubjectId>,
    pub kind: TicketKind,
    pub status: String,
    pub detail: String,
    pub created_ms: i64,
    pub due_ms: i64,
    pub closed_ms: Option<i64>,
    pub refusal_reason: Option<String>,
    pub refusal_basis: Option<String>,
    pub complaint_route: Option<ComplaintRoute>,
    pub history: Vec<store::TicketEvent>,
}

impl Ticket {
    /// Open and past its deadline at `now_ms`.
    pub fn overdue(&self, now_ms: i64) -> bool {
        self.closed_ms.is_none() && self.due_ms <= now_ms
    }
}

/// The rights service.
pub struct Rights {
    pub kernel: Arc<Kernel>,
    pub identity: Arc<Identity>,
    pub catalog: Arc<Catalog>,
    pub signals: Arc<Signals>,
    calendar: Calendar,
    cancellation_working_days: u32,
    deadline_months: u32,
    near_due_ms: i64,
    cooling_off_ms: i64,
    export_link_ttl_ms: i64,
}

impl std::fmt::Debug for Rights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rights")
            .field("calendar", &self.calendar)
            .field("cancellation_working_days", &self.cancellation_working_days)
            .field("deadline_months", &self.deadline_months)
            .finish_non_exhaustive()
    }
}

/// Longest detail a user may attach to a request.
pub const MAX_DETAIL: usize = 4000;

impl Rights {
    pub async fn open(
        kernel: Arc<Kernel>,
        identity: Arc<Identity>,
        catalog: Arc<Catalog>,
        signals: Arc<Signals>,
        cfg: &RightsConfig,
    ) -> anyhow::Result<Arc<Rights>> {
        let calendar = Calendar::from_config(cfg)?;
        let deadline_months = cfg.deadline_months.unwrap_or(1);
        let cancellation_working_days = cfg.cancellation_working_days.unwrap_or(15);
        if deadline_months == 0 || cancellation_working_days == 0 {
            anyhow::bail!(
                "rights.deadline_months and rights.cancellation_working_days must be at least 1"
            );
        }
        let ttl = cfg.export_link_ttl_secs.unwrap_or(86_400);
        if ttl == 0 || ttl > 30 * 86_400 {
            anyhow::bail!("rights.export_link_ttl_secs must be between 1 and 2592000 (30 days)");
        }
        Ok(Arc::new(Rights {
            kernel,
            identity,
            catalog,
            signals,
            calendar,
            cancellation_working_days,
            deadline_months,
            near_due_ms: i64::from(cfg.near_due_days.unwrap_or(3)) * 86_400_000,
            cooling_off_ms: i64::from(cfg.cooling_off_days.unwrap_or(7)) * 86_400_000,
            export_link_ttl_ms: i64::try_from(ttl).unwrap_or(86_400) * 1_000,
        }))
    }

    fn now_ms(&self) -> i64 {
        self.kernel.clock.now_ms()
    }

    /// How long a cancelled account may still be revoked before erasure (`[rights]
    /// cooling_off_days`), in milliseconds.
    pub fn cooling_off_ms(&self) -> i64 {
        self.cooling_off_ms
    }

    /// The calendar deadlines are computed with.
    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    /// When a request of `kind` made at `at_ms` must be answered.
    pub fn deadline(&self, kind: TicketKind, at_ms: i64) -> i64 {
        match kind {
            TicketKind::Cancellation => self
                .calendar
                .add_working_days(at_ms, self.cancellation_working_days),
            _ => self.calendar.add_months(at_ms, self.deadline_months),
        }
    }

    /// The complaint route of the current declaration.
    pub fn complaint_route(&self) -> ComplaintRoute {
        let regime = self.kernel.gate.regime();
        let c = &regime.current().declaration().controller.complaint_route;
        ComplaintRoute {
            en: c.en.clone(),
            zh: c.zh.clone(),
        }
    }

    /// Opens a ticket for the subject's request.
    pub async fn open_ticket(
        &self,
        subject: SubjectId,
        kind: TicketKind,
        detail: &str,
    ) -> AppResult<Ticket> {
        if detail.chars().count() > MAX_DETAIL {
            return Err(AppError::bad(
                "detail_too_long",
                format!("the detail may have at most {MAX_DETAIL} characters"),
            ));
        }
        let now = self.now_ms();
        let due = self.deadline(kind, now);
        let t = store::open(&self.kernel.db, subject, kind.as_str(), detail, now, due).await?;
        self.with_history(t).await
    }

    /// One of the subject's tickets; another subject's ticket is not found.
    pub async fn ticket(&self, subject: SubjectId, id: i64) -> AppResult<Ticket> {
        let t = store::get(&self.kernel.db, id, Some(subject))
            .await?
            .ok_or(AppError::NotFound)?;
        self.with_history(t).await
    }

    /// The subject's tickets, newest first, with their history.
    pub async fn tickets(&self, subject: SubjectId) -> AppResult<Vec<Ticket>> {
        let mut history: std::collections::HashMap<i64, Vec<store::TicketEvent>> =
            std::collections::HashMap::new();
        for (id, e) in store::events_of_subject(&self.kernel.db, subject).await? {
            history.entry(id).or_default().push(e);
        }
        store::of_subject(&self.kernel.db, subject)
            .await?
            .into_iter()
            .map(|t| {
                let h = history.remove(&t.id).unwrap_or_default();
                self.ticket_view(t, h)
            })
            .collect()
    }

    /// For operators: open tickets that are overdue or due within the near-due window
    /// (or within `within_ms` when given), soonest first.
    pub async fn due_soon(&self, within_ms: Option<i64>) -> AppResult<Vec<Ticket>> {
        let until = self
            .now_ms()
            .saturating_add(within_ms.unwrap_or(self.near_due_ms));
        let mut out = Vec::new();
        for t in store::open_due_before(&self.kernel.db, until).await? {
            out.push(self.with_history(t).await?);
        }
        Ok(out)
    }

    /// For operators: any ticket by id.
    pub async fn ticket_for_operator(&self, id: i64) -> AppResult<Ticket> {
        let t = store::get(&self.kernel.db, id, None)
            .await?
            .ok_or(AppError::NotFound)?;
        self.with_history(t).await
    }

    /// For operators: moves an open ticket on. A refusal without a reason or a legal basis
    /// is rejected; it records the declaration's complaint route.
    pub async fn decide(&self, id: i64, decision: &Decision) -> AppResult<Ticket> {
        let route;
        let t = match decision {
            Decision::InProgress { note } => Transition {
                status: "in_progress",
                note,
                ..Default::default()
            },
            Decision::Completed { note } => Transition {
                status: "completed",
                note,
                closes: true,
                ..Default::default()
            },
            Decision::Refused {
                reason,
                legal_basis,
            } => {
                if reason.trim().is_empty() {
                    return Err(AppError::bad(
                        "refusal_reason_required",
                        "a refusal needs a reason",
                    ));
                }
                if legal_basis.trim().is_empty() {
                    return Err(AppError::bad(
                        "refusal_basis_required",
                        "a refusal needs the legal basis it rests on",
                    ));
                }
                route = serde_json::to_string(&self.complaint_route())
                    .map_err(|e| AppError::Internal(e.to_string()))?;
                Transition {
                    status: "refused",
                    note: reason,
                    closes: true,
                    refusal_reason: Some(reason),
                    refusal_basis: Some(legal_basis),
                    complaint_route: Some(&route),
                }
            }
        };
        if !store::transition(&self.kernel.db, id, &t, self.now_ms()).await? {
            // Missing, or already closed.
            let existing = store::get(&self.kernel.db, id, None).await?;
            return match existing {
                None => Err(AppError::NotFound),
                Some(_) => Err(AppError::bad(
                    "ticket_closed",
                    "the ticket is already closed",
                )),
            };
        }
        self.ticket_for_operator(id).await
    }

    /// Requests the cancellation of the caller's account (P19): self-service, after
    /// re-authentication, with no other condition. Opens a cancellation ticket; the account
    /// is erased when the cooling-off period ends unless the user revokes first.
    pub async fn request_cancellation(&self, who: &Reauthenticated) -> AppResult<Cancellation> {
        let subject = who.subject();
        if let Some(c) = store::cancellation_of(&self.kernel.db, subject).await? {
            return Ok(self.cancellation_view(c));
        }
        let now = self.now_ms();
        let effective = now.saturating_add(self.cooling_off_ms);
        let t = self
            .open_ticket(subject, TicketKind::Cancellation, "")
            .await?;
        let note = format!(
            "cooling-off until {}; the user can revoke until then",
            custos_core::clock::rfc3339(effective)
        );
        store::transition(
            &self.kernel.db,
            t.id,
            &Transition {
                status: "in_progress",
                note: &note,
                ..Default::default()
            },
            now,
        )
        .await?;
        if !store::put_cancellation(&self.kernel.db, subject, t.id, now, effective).await? {
            // A concurrent request won; keep its ticket.
            self.close_ticket(t.id, "withdrawn", "a concurrent request is pending")
                .await?;
        }
        store::cancellation_of(&self.kernel.db, subject)
            .await?
            .map(|c| self.cancellation_view(c))
            .ok_or_else(|| AppError::Internal("cancellation vanished".into()))
    }

    /// The caller's pending cancellation, if any.
    pub async fn cancellation(&self, subject: SubjectId) -> AppResult<Option<Cancellation>> {
        Ok(store::cancellation_of(&self.kernel.db, subject)
            .await?
            .map(|c| self.cancellation_view(c)))
    }

    /// Revokes a pending cancellation during its cooling-off period; not found when
    /// there is none (or it was already carried out).
    pub async fn revoke_cancellation(&self, subject: SubjectId) -> AppResult<()> {
        let c = store::cancellation_of(&self.kernel.db, subject)
            .await?
            .ok_or(AppError::NotFound)?;
        if c.effective_ms <= self.now_ms() {
            return Err(AppError::bad(
                "cooling_off_over",
                "the cooling-off period is over; the account is being erased",
            ));
        }
        if store::delete_cancellation(&self.kernel.db, subject).await? {
            self.close_ticket(c.ticket_id, "withdrawn", "revoked by the user")
                .await?;
        }
        Ok(())
    }

    /// Carries out every cancellation whose cooling-off period is over.
    pub async fn run_due_cancellations(&self) -> AppResult<Vec<ErasureReport>> {
        let mut out = Vec::new();
        for c in store::due_cancellations(&self.kernel.db, self.now_ms()).await? {
            let Ok(bytes) = <[u8; 16]>::try_from(c.subject.as_slice()) else {
                continue;
            };
            out.push(
                self.erase(SubjectId::from_bytes(bytes), c.ticket_id)
                    .await?,
            );
        }
        Ok(out)
    }

    /// Erases a cancelled account from every store (L8): the account, sessions and
    /// personal rows (profile, location, devices, traits) with the subject's key
    /// (crypto-shredding), its bookmarks, downloads, shares, comments, switches, inbox,
    /// ad events, export jobs, inbound third-party records and incident notices; the
    /// partner-share log is kept under a random id; its analytics events are deleted and its other
    /// service-log events (security logs) unlinked from it, kept de-identified; its
    /// tickets are unlinked; partners that received its data are recorded as owed a
    /// notification.
    async fn erase(&self, subject: SubjectId, ticket_id: i64) -> AppResult<ErasureReport> {
        let (erasure_ref, partners) = self.erase_subject(subject, Some(ticket_id)).await?;
        store::delete_cancellation(&self.kernel.db, subject).await?;
        Ok(ErasureReport {
            subject,
            erasure_ref,
            ticket_id,
            kept_deidentified: kept_deidentified(),
            partners_to_notify: partners,
        })
    }

    /// The erasure step shared by account cancellation and the shutdown of the service
    /// (`ops::cessation`, P22): everything `Rights::erase` lists, the subject's rights
    /// tickets and complaints de-identified (after closing `closing_ticket`, when given)
    /// and its export files deleted. Returns the erasure reference and the partners
    /// recorded as owed a notification.
    pub async fn erase_subject(
        &self,
        subject: SubjectId,
        closing_ticket: Option<i64>,
    ) -> AppResult<(String, Vec<String>)> {
        let now = self.now_ms();
        let erasure_ref = SubjectId::random().to_string();
        // Partners that may have received data: recipients of every purpose the gate
        // allows for this subject, decided before its consents are forgotten.
        let regime = self.kernel.gate.regime();
        let mut partners: Vec<String> = regime
            .purposes()
            .filter(|(p, _)| self.kernel.gate.status(subject, *p).is_ok())
            .filter_map(|(_, info)| {
                regime
                    .current()
                    .declaration()
                    .purposes
                    .iter()
                    .find(|d| d.id == info.id)
            })
            .flat_map(|d| d.recipients.iter().cloned())
            .collect();
        // Partners the egress path actually delivered this subject's data to.
        partners.extend(custos_store::shares::partners_of(&self.kernel.db, subject).await?);
        partners.sort();
        partners.dedup();
        self.catalog.erase_subject(subject).await?;
        // The share log stays as the record that shares happened, under a random id;
        // inbound third-party records and incident notices addressed to it go.
        custos_store::shares::erase_subject(&self.kernel.db, subject, SubjectId::random()).await?;
        custos_store::incidents::delete_subject(&self.kernel.db, subject).await?;
        // The subject's location and personalization switches, inbox and ad events.
        self.signals.switches.delete_subject(subject).await?;
        self.signals.erase_inbox_and_ads(subject).await?;
        store::exports::delete_subject(&self.kernel.db, subject).await?;
        self.unlink_events(subject).await?;
        self.identity.erase_account(subject).await?;
        for p in &partners {
            store::add_partner_notification(&self.kernel.db, &erasure_ref, p, now).await?;
        }
        if let Some(ticket_id) = closing_ticket {
            let note = format!("account erased; erasure reference {erasure_ref}");
            self.close_ticket(ticket_id, "completed", &note).await?;
        }
        store::complaints::deidentify_subject(&self.kernel.db, subject).await?;
        store::deidentify_tickets(&self.kernel.db, subject, SubjectId::random()).await?;
        Ok((erasure_ref, partners))
    }

    async fn close_ticket(&self, id: i64, status: &str, note: &str) -> AppResult<()> {
        store::transition(
            &self.kernel.db,
            id,
            &Transition {
                status,
                note,
                closes: true,
                ..Default::default()
            },
            self.now_ms(),
        )
        .await?;
        Ok(())
    }

    fn cancellation_view(&self, c: store::Cancellation) -> Cancellation {
        Cancellation {
            ticket_id: c.ticket_id,
            requested_ms: c.requested_ms,
            effective_ms: c.effective_ms,
            kept_deidentified: kept_deidentified(),
        }
    }

    async fn with_history(&self, t: store::Ticket) -> AppResult<Ticket> {
        let history = store::events(&self.kernel.db, t.id).await?;
        self.ticket_view(t, history)
    }

    fn ticket_view(&self, t: store::Ticket, history: Vec<store::TicketEvent>) -> AppResult<Ticket> {
        let kind = TicketKind::parse_any(&t.kind)
            .ok_or_else(|| AppError::Internal(format!("unknown ticket kind {}", t.kind)))?;
        Ok(Ticket {
            id: t.id,
            subject: <[u8; 16]>::try_from(t.subject.as_slice())
                .ok()
                .map(SubjectId::from_bytes),
            kind,
            status: t.status,
            detail: t.detail,
            created_ms: t.created_ms,
            due_ms: t.due_ms,
            closed_ms: t.closed_ms,
            refusal_reason: t.refusal_reason,
            refusal_basis: t.refusal_basis,
            complaint_route: t
                .complaint_route
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok()),
            history,
        })
    }
}

/// What erasure keeps, and in which form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub what: &'static str,
    pub form: &'static str,
    pub why: &'static str,
}

/// What the law requires to be kept after an account is erased, only in de-identified
/// form (P19, L8).
pub fn kept_deidentified() -> Vec<Kept> {
    vec![
        Kept {
            what: "consent ledger records",
            form: "under the account's random subject id only, with no account, phone or key left to link it to a person",
            why: "proof of the consent decisions that were made (PIPL art. 14, 15)",
        },
        Kept {
            what: "security logs",
            form: "pseudonymized request logs with no account identifier",
            why: "network security obligations: at least six months (Cybersecurity Law art. 21)",
        },
        Kept {
            what: "rights tickets",
            form: "kind, deadlines and status history under a new random id, without the request text",
            why: "record of how rights requests were answered (PIPL art. 50)",
        },
    ]
}

/// A pending account cancellation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancellation {
    pub ticket_id: i64,
    pub requested_ms: i64,
    /// When the account is erased unless the user revokes before.
    pub effective_ms: i64,
    pub kept_deidentified: Vec<Kept>,
}

/// What erasing a cancelled account did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureReport {
    pub subject: SubjectId,
    /// A random reference for the erasure, by which partner notifications are tracked.
    pub erasure_ref: String,
    pub ticket_id: i64,
    pub kept_deidentified: Vec<Kept>,
    /// Partners that received data and must be told (recorded until the partner
    /// mechanism exists).
    pub partners_to_notify: Vec<String>,
}

/// Unlinks the subject's service-log events (see [`store::exports::unlink_events`]).
impl Rights {
    pub(crate) async fn unlink_events(&self, subject: SubjectId) -> AppResult<(u64, u64)> {
        let pseudonym = self.events_pseudonym(subject);
        let replacement = *SubjectId::random().as_bytes();
        Ok(store::exports::unlink_events(
            &self.kernel.db,
            &pseudonym,
            &replacement,
            crate::signals::LOGS_PURPOSE,
        )
        .await?)
    }

    /// The pseudonym the subject's service-log events carry.
    pub(crate) fn events_pseudonym(&self, subject: SubjectId) -> [u8; 16] {
        self.kernel.ring.pseudonym(
            crate::signals::EVENTS_DOMAIN,
            subject.to_string().as_bytes(),
        )
    }
}
