//! Security incidents (P25, L11).
//!
//! An incident is recorded with everything its notices must carry (L11): the cause, the
//! categories of data affected, the possible harm, the remedies taken, what the person can
//! do, and a contact; plus when it was detected and which stores it touched. The affected
//! subjects are found from the data map ([`Ops::data_map`]: which categories live in which
//! store, by purpose, derived from the declaration and the personal-fields table). They
//! are told individually (inbox message and push, through [`Ops::notify_subject`]) or,
//! when individual notice is impractical, by a public announcement served at
//! `GET /api/v1/announcements`. Every step lands in the incident's append-only timeline.
//! Seventy-two hours after detection without a recorded regulator report, the incident
//! raises an alarm ([`Ops::incident_alarms`]): listed for operators, counted in the
//! `custos_incident_alarms` gauge and logged as a warning.

use std::collections::BTreeSet;

use custos_core::clock::rfc3339;
use custos_core::SubjectId;
use custos_store::incidents as store;
use serde::Serialize;

use super::{Actor, Ops};
use crate::signals::push::Notice;
use crate::{AppError, AppResult};

/// The regulator must hear of an incident within this long of its detection (PIPL 57,
/// GDPR 33).
pub const REGULATOR_DEADLINE_MS: i64 = 72 * 3_600_000;

/// Stores of the data map besides the declared partners (each partner id is a store too).
pub const LOCAL_STORES: &[&str] = &["database", "vault", "object_storage", "search_index"];

const MAX_TITLE: usize = 60;
const MAX_TEXT: usize = 240;

/// An incident as the operator reports it; an empty text counts as missing.
#[derive(Debug, Clone, Default)]
pub struct IncidentInput {
    pub title: String,
    pub cause: String,
    pub categories: Vec<String>,
    pub stores: Vec<String>,
    pub possible_harm: String,
    pub remedies: String,
    pub user_actions: String,
    pub contact: String,
    pub detected_ms: Option<i64>,
}

/// A recorded incident with its timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    pub id: i64,
    pub title: String,
    pub cause: String,
    pub categories: Vec<String>,
    pub stores: Vec<String>,
    pub possible_harm: String,
    pub remedies: String,
    pub user_actions: String,
    pub contact: String,
    pub detected_ms: i64,
    pub created_ms: i64,
    pub regulator_reported_ms: Option<i64>,
    pub regulator_reference: Option<String>,
    /// When the regulator report is due (detection + 72 h).
    pub regulator_due_ms: i64,
    /// Subjects told individually so far.
    pub notified: i64,
    pub timeline: Vec<TimelineEntry>,
}

/// One step taken about an incident.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    pub seq: i64,
    pub at_ms: i64,
    pub action: String,
    pub actor: String,
    pub detail: String,
}

/// Which subjects to look for: by category, time window and store.
#[derive(Debug, Clone, Default)]
pub struct AffectedQuery {
    /// Declared category keys; empty = the incident's categories.
    pub categories: Vec<String>,
    /// Data-map stores; empty = the incident's stores.
    pub stores: Vec<String>,
    /// Window start (inclusive); `0` reaches back to the beginning.
    pub from_ms: i64,
    /// Window end (inclusive).
    pub to_ms: i64,
    /// Also everyone with a session open during the window.
    pub sessions: bool,
}

/// The answer to an [`AffectedQuery`].
#[derive(Debug, Clone, Serialize)]
pub struct Affected {
    pub count: usize,
    pub subjects: Vec<SubjectId>,
}

/// What a notification round did.
#[derive(Debug, Clone, Serialize)]
pub struct NotifyReport {
    /// Subjects told now (inbox message, and push to their devices).
    pub notified: usize,
    /// Affected subjects told before, not again.
    pub already_notified: usize,
    /// Devices the push channel accepted / refused.
    pub pushed: u32,
    pub push_failed: u32,
}

/// A public announcement.
#[derive(Debug, Clone, Serialize)]
pub struct Announcement {
    pub id: i64,
    pub incident_id: Option<i64>,
    pub title: String,
    pub body: String,
    pub published_ms: i64,
}

/// An incident whose regulator report is overdue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentAlarm {
    pub incident_id: i64,
    pub title: String,
    pub detected_ms: i64,
    pub due_ms: i64,
    /// How long past the deadline, in milliseconds.
    pub overdue_ms: i64,
}

/// The timeline action of a raised 72-hour alarm.
pub const ALARM_ACTION: &str = "alarm_raised";

/// One row of the data map: a store holds these categories for a purpose.
#[derive(Debug, Clone, Serialize)]
pub struct DataMapEntry {
    pub store: String,
    pub purpose: String,
    pub categories: Vec<String>,
    /// Personal fields stored (database and vault only): name, category, subjects holding it.
    pub fields: Vec<FieldCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldCount {
    pub field: String,
    pub category: String,
    pub subjects: i64,
}

fn missing(field: &str) -> AppError {
    AppError::bad(
        "missing_field",
        format!("`{field}` is required: every incident notice carries it (L11)"),
    )
}

fn text(field: &str, value: &str, max: usize) -> AppResult<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(missing(field));
    }
    if v.chars().count() > max || v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::bad(
            "invalid_field",
            format!("`{field}` must be at most {max} characters of text"),
        ));
    }
    Ok(v.to_owned())
}

fn view(i: store::Incident, notified: i64, timeline: Vec<store::TimelineEntry>) -> Incident {
    let f = i.fields;
    Incident {
        id: i.id,
        title: f.title,
        cause: f.cause,
        categories: f.categories,
        stores: f.stores,
        possible_harm: f.possible_harm,
        remedies: f.remedies,
        user_actions: f.user_actions,
        contact: f.contact,
        detected_ms: f.detected_ms,
        created_ms: i.created_ms,
        regulator_reported_ms: i.regulator_reported_ms,
        regulator_reference: i.regulator_reference,
        regulator_due_ms: f.detected_ms + REGULATOR_DEADLINE_MS,
        notified,
        timeline: timeline.into_iter().map(entry).collect(),
    }
}

fn entry(e: store::TimelineEntry) -> TimelineEntry {
    TimelineEntry {
        seq: e.seq,
        at_ms: e.at_ms,
        action: e.action,
        actor: e.actor,
        detail: e.detail,
    }
}

impl Ops {
    /// The data map: for each store, which categories it holds for which purpose, from
    /// the declaration (purposes, partners and their allow-lists) and the personal-fields
    /// table (which fields exist, for how many subjects).
    pub async fn data_map(&self) -> AppResult<Vec<DataMapEntry>> {
        let regime = self.kernel.gate.regime();
        let d = regime.current().declaration();
        let census = store::field_census(&self.kernel.db).await?;
        let mut out = Vec::new();
        for p in &d.purposes {
            let fields: Vec<FieldCount> = census
                .iter()
                .filter(|(purpose, ..)| purpose == &p.id)
                .map(|(_, category, field, n)| FieldCount {
                    field: field.clone(),
                    category: category.clone(),
                    subjects: *n,
                })
                .collect();
            for s in ["database", "vault"] {
                out.push(DataMapEntry {
                    store: s.into(),
                    purpose: p.id.clone(),
                    categories: p.categories.clone(),
                    fields: fields.clone(),
                });
            }
            for r in &p.recipients {
                let allowed = d
                    .partners
                    .iter()
                    .find(|x| &x.id == r)
                    .map(|x| x.fields.clone())
                    .unwrap_or_default();
                out.push(DataMapEntry {
                    store: r.clone(),
                    purpose: p.id.clone(),
                    categories: p
                        .categories
                        .iter()
                        .filter(|c| allowed.contains(c))
                        .cloned()
                        .collect(),
                    fields: Vec::new(),
                });
            }
        }
        Ok(out)
    }

    fn check_incident(&self, input: &IncidentInput) -> AppResult<store::NewIncident> {
        let regime = self.kernel.gate.regime();
        let d = regime.current().declaration();
        let title = text("title", &input.title, MAX_TITLE)?;
        let cause = text("cause", &input.cause, MAX_TEXT)?;
        if input.categories.is_empty() {
            return Err(missing("categories"));
        }
        for c in &input.categories {
            if !d.categories.iter().any(|x| &x.key == c) {
                return Err(AppError::bad(
                    "unknown_category",
                    format!("`categories`: `{c}` is not a declared category"),
                ));
            }
        }
        if input.stores.is_empty() {
            return Err(missing("stores"));
        }
        self.check_stores(&input.stores)?;
        let possible_harm = text("possible_harm", &input.possible_harm, MAX_TEXT)?;
        let remedies = text("remedies", &input.remedies, MAX_TEXT)?;
        let user_actions = text("user_actions", &input.user_actions, MAX_TEXT)?;
        let contact = text("contact", &input.contact, MAX_TEXT)?;
        let detected_ms = input.detected_ms.ok_or_else(|| missing("detected_at"))?;
        if detected_ms > self.kernel.clock.now_ms() {
            return Err(AppError::bad(
                "invalid_field",
                "`detected_at` lies in the future",
            ));
        }
        let dedup = |v: &[String]| -> Vec<String> {
            v.iter()
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        Ok(store::NewIncident {
            title,
            cause,
            categories: dedup(&input.categories),
            stores: dedup(&input.stores),
            possible_harm,
            remedies,
            user_actions,
            contact,
            detected_ms,
        })
    }

    fn check_stores(&self, stores: &[String]) -> AppResult<()> {
        let regime = self.kernel.gate.regime();
        let d = regime.current().declaration();
        for s in stores {
            if !LOCAL_STORES.contains(&s.as_str()) && !d.partners.iter().any(|p| &p.id == s) {
                return Err(AppError::bad(
                    "unknown_store",
                    format!(
                        "`stores`: `{s}` is not in the data map ({} or a declared partner)",
                        LOCAL_STORES.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Records an incident; every L11 field is required (`missing_field` names the first
    /// one absent).
    pub async fn record_incident(
        &self,
        actor: &Actor,
        input: &IncidentInput,
    ) -> AppResult<Incident> {
        let new = self.check_incident(input)?;
        let i = store::create(&self.kernel.db, &new, &actor.name(), self.now_ms()).await?;
        tracing::warn!(incident = i.id, "security incident recorded");
        self.incident(i.id).await
    }

    /// One incident with its timeline.
    pub async fn incident(&self, id: i64) -> AppResult<Incident> {
        let db = &self.kernel.db;
        let i = store::get(db, id).await?.ok_or(AppError::NotFound)?;
        let n = store::notice_count(db, id).await?;
        Ok(view(i, n, store::timeline(db, id).await?))
    }

    /// Every incident, newest first (each with its timeline).
    pub async fn incidents(&self) -> AppResult<Vec<Incident>> {
        let mut out = Vec::new();
        for i in store::list(&self.kernel.db).await? {
            out.push(self.incident(i.id).await?);
        }
        Ok(out)
    }

    /// Appends a step to the incident's timeline.
    pub async fn add_incident_action(
        &self,
        actor: &Actor,
        id: i64,
        action: &str,
        detail: &str,
    ) -> AppResult<TimelineEntry> {
        store::get(&self.kernel.db, id)
            .await?
            .ok_or(AppError::NotFound)?;
        let ok_action = !action.is_empty()
            && action.len() <= 40
            && action
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok_action {
            return Err(AppError::bad(
                "invalid_field",
                "`action` must be 1–40 characters of a–z, 0–9 and _",
            ));
        }
        let detail = text("detail", detail, 1000)?;
        let e = store::append(
            &self.kernel.db,
            id,
            action,
            &actor.name(),
            &detail,
            self.now_ms(),
        )
        .await?;
        Ok(entry(e))
    }

    /// Records the report to the regulator (once); it ends the incident's alarm.
    pub async fn record_regulator_report(
        &self,
        actor: &Actor,
        id: i64,
        reference: &str,
        reported_ms: Option<i64>,
    ) -> AppResult<Incident> {
        let now = self.now_ms();
        let i = store::get(&self.kernel.db, id)
            .await?
            .ok_or(AppError::NotFound)?;
        let reference = text("reference", reference, 200)?;
        let at = reported_ms.unwrap_or(now);
        if at > now || at < i.fields.detected_ms {
            return Err(AppError::bad(
                "invalid_field",
                "`reported_at` must lie between the detection and now",
            ));
        }
        let done =
            store::record_regulator_report(&self.kernel.db, id, &reference, at, &actor.name(), now)
                .await?;
        if !done {
            return Err(AppError::bad(
                "already_reported",
                "the regulator report of this incident is already recorded",
            ));
        }
        self.incident(id).await
    }

    /// The subjects an incident may have affected, from the data map: personal fields of
    /// the categories written in the window, in the stores named (the database and vault
    /// hold every field; a processor holds its allow-listed categories; any partner holds
    /// what was delivered to it in the window), and, when asked, everyone with a session
    /// open during the window.
    pub async fn affected_subjects(&self, id: i64, q: &AffectedQuery) -> AppResult<Affected> {
        let i = store::get(&self.kernel.db, id)
            .await?
            .ok_or(AppError::NotFound)?;
        let categories = if q.categories.is_empty() {
            i.fields.categories.clone()
        } else {
            q.categories.clone()
        };
        let stores = if q.stores.is_empty() {
            i.fields.stores.clone()
        } else {
            q.stores.clone()
        };
        self.check_stores(&stores)?;
        if q.from_ms > q.to_ms {
            return Err(AppError::bad("invalid_field", "`from` is after `to`"));
        }
        let regime = self.kernel.gate.regime();
        let d = regime.current().declaration();
        let db = &self.kernel.db;
        let mut found: BTreeSet<SubjectId> = BTreeSet::new();
        for s in &stores {
            match s.as_str() {
                "database" | "vault" => {
                    found.extend(
                        store::subjects_with_fields(db, &categories, q.from_ms, q.to_ms).await?,
                    );
                }
                "object_storage" | "search_index" => {} // catalog media and text: no personal data
                partner => {
                    let Some(p) = d.partners.iter().find(|p| p.id == partner) else {
                        continue;
                    };
                    let held: Vec<String> = categories
                        .iter()
                        .filter(|c| p.fields.contains(c))
                        .cloned()
                        .collect();
                    if held.is_empty() {
                        continue;
                    }
                    found.extend(
                        custos_store::shares::subjects_shared_with(db, partner, q.from_ms, q.to_ms)
                            .await?,
                    );
                    if !p.independent_controller {
                        // A processor handles these categories whenever they are used.
                        found.extend(
                            store::subjects_with_fields(db, &held, q.from_ms, q.to_ms).await?,
                        );
                    }
                }
            }
        }
        if q.sessions {
            found.extend(store::subjects_with_sessions(db, q.from_ms, q.to_ms).await?);
        }
        let subjects: Vec<SubjectId> = found.into_iter().collect();
        Ok(Affected {
            count: subjects.len(),
            subjects,
        })
    }

    /// The notice of an incident: title and a body with every L11 field.
    pub async fn incident_notice(&self, id: i64) -> AppResult<Notice> {
        let i = store::get(&self.kernel.db, id)
            .await?
            .ok_or(AppError::NotFound)?;
        let regime = self.kernel.gate.regime();
        let d = regime.current().declaration();
        let f = &i.fields;
        let names: Vec<String> = f
            .categories
            .iter()
            .map(|k| {
                d.categories
                    .iter()
                    .find(|c| &c.key == k)
                    .map(|c| format!("{}（{}）", c.name.zh, c.name.en))
                    .unwrap_or_else(|| k.clone())
            })
            .collect();
        let body = format!(
            "发生了什么 / What happened: {}\n\
             涉及的信息 / Data affected: {}\n\
             可能的影响 / Possible harm: {}\n\
             我们已采取的措施 / What we have done: {}\n\
             您可以做什么 / What you can do: {}\n\
             联系我们 / Contact: {}\n\
             发现时间 / Detected: {}",
            f.cause,
            names.join("；"),
            f.possible_harm,
            f.remedies,
            f.user_actions,
            f.contact,
            rfc3339(f.detected_ms),
        );
        Ok(Notice::new(
            format!("安全事件通知 / Security incident: {}", f.title),
            body,
        ))
    }

    /// Tells every affected subject not told before, by inbox message and push; records
    /// each, and the round in the timeline.
    pub async fn notify_affected(
        &self,
        actor: &Actor,
        id: i64,
        q: &AffectedQuery,
    ) -> AppResult<NotifyReport> {
        let notice = self.incident_notice(id).await?;
        let affected = self.affected_subjects(id, q).await?;
        let db = &self.kernel.db;
        let mut r = NotifyReport {
            notified: 0,
            already_notified: 0,
            pushed: 0,
            push_failed: 0,
        };
        for s in affected.subjects {
            if store::was_notified(db, id, s).await? {
                r.already_notified += 1;
                continue;
            }
            let (message_id, pushed, failed) = self.notify_subject(s, &notice).await?;
            store::add_notice(db, id, s, message_id, self.now_ms()).await?;
            r.notified += 1;
            r.pushed += pushed;
            r.push_failed += failed;
        }
        store::append(
            db,
            id,
            "notified_individually",
            &actor.name(),
            &format!(
                "{} subject(s) told by inbox message and push ({} device push(es) accepted, {} \
                 failed); {} told before",
                r.notified, r.pushed, r.push_failed, r.already_notified
            ),
            self.now_ms(),
        )
        .await?;
        Ok(r)
    }

    /// Publishes the incident's notice as a public announcement, for when individual
    /// notice is impractical.
    pub async fn announce_incident(&self, actor: &Actor, id: i64) -> AppResult<Announcement> {
        let n = self.incident_notice(id).await?;
        let a = store::publish_announcement(
            &self.kernel.db,
            Some(id),
            &n.title,
            &n.body,
            &actor.name(),
            self.now_ms(),
        )
        .await?;
        Ok(announcement(a))
    }

    /// Published announcements, newest first (public).
    pub async fn announcements(&self, limit: u32) -> AppResult<Vec<Announcement>> {
        let limit = i64::from(limit.clamp(1, 200));
        Ok(store::announcements(&self.kernel.db, limit)
            .await?
            .into_iter()
            .map(announcement)
            .collect())
    }

    /// Incidents 72 hours past detection without a regulator report. Each is logged as a
    /// warning and the count is the `custos_incident_alarms` gauge, so the jobs scheduler
    /// or a scrape that calls this raises the alarm too.
    pub async fn incident_alarms(&self) -> AppResult<Vec<IncidentAlarm>> {
        let now = self.now_ms();
        let due = store::unreported(&self.kernel.db, now - REGULATOR_DEADLINE_MS).await?;
        let alarms: Vec<IncidentAlarm> = due
            .into_iter()
            .map(|i| {
                let due_ms = i.fields.detected_ms + REGULATOR_DEADLINE_MS;
                IncidentAlarm {
                    incident_id: i.id,
                    title: i.fields.title,
                    detected_ms: i.fields.detected_ms,
                    due_ms,
                    overdue_ms: now - due_ms,
                }
            })
            .collect();
        for a in &alarms {
            tracing::warn!(
                incident = a.incident_id,
                overdue_hours = a.overdue_ms / 3_600_000,
                "incident not reported to the regulator 72 hours after detection"
            );
        }
        metrics::gauge!("custos_incident_alarms").set(alarms.len() as f64);
        Ok(alarms)
    }

    /// What the jobs scheduler runs ([`crate::jobs::Job::IncidentAlarms`]): every overdue
    /// incident ([`Ops::incident_alarms`], which sets the gauge and logs), and for each one
    /// not alarmed before, an `alarm_raised` timeline entry, an `incident.alarm` audit
    /// entry and the `custos_incident_alarms_raised_total` counter. Returns the alarms
    /// raised by this run (each incident once). Nothing personal is logged or audited:
    /// the incident id and how overdue it is.
    pub async fn raise_incident_alarms(&self) -> AppResult<Vec<IncidentAlarm>> {
        let mut raised = Vec::new();
        for a in self.incident_alarms().await? {
            let timeline = store::timeline(&self.kernel.db, a.incident_id).await?;
            if timeline.iter().any(|t| t.action == ALARM_ACTION) {
                continue;
            }
            let detail = format!(
                "no regulator report 72 hours after detection (due {})",
                custos_core::clock::rfc3339(a.due_ms)
            );
            store::append(
                &self.kernel.db,
                a.incident_id,
                ALARM_ACTION,
                "jobs",
                &detail,
                self.now_ms(),
            )
            .await?;
            self.record(
                "jobs",
                "incident.alarm",
                &format!("incident:{}", a.incident_id),
                "raised",
                "regulator report overdue",
                serde_json::json!({ "due_ms": a.due_ms, "overdue_ms": a.overdue_ms }),
            )
            .await?;
            metrics::counter!("custos_incident_alarms_raised_total").increment(1);
            tracing::error!(
                incident = a.incident_id,
                overdue_hours = a.overdue_ms / 3_600_000,
                "incident alarm raised: report it to the regulator"
            );
            raised.push(a);
        }
        Ok(raised)
    }

    /// The one place service notices of this module reach a user: an inbox message and a
    /// push to each device kept for service notices ([`crate::signals::Signals::notify`]).
    /// Returns (message id, pushes accepted, pushes failed).
    pub async fn notify_subject(
        &self,
        subject: SubjectId,
        notice: &Notice,
    ) -> AppResult<(i64, u32, u32)> {
        let out = self.rights.signals.notify(subject, notice).await?;
        Ok((out.message_id, out.pushed, out.failed))
    }
}

fn announcement(a: store::Announcement) -> Announcement {
    Announcement {
        id: a.id,
        incident_id: a.incident_id,
        title: a.title,
        body: a.body,
        published_ms: a.published_ms,
    }
}
