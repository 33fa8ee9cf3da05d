//! Access and portability (P33, L7): everything Custos holds about a user as one JSON
//! document following `docs/export.schema.json`, with a human-readable HTML summary.
//!
//! Small exports are answered at once ([`Rights::export`]). Large ones run as a background
//! job ([`Rights::start_export`]): the job records its progress (`done` of `total` steps:
//! one per section, one per page of service-log events, one to seal the result), then
//! stores the JSON and the HTML sealed under the subject's data key (erasure shreds them
//! with everything else). The finished job offers a download link: the job id, its expiry
//! and a keyed MAC over both and the subject, so a link is useless to anyone but its
//! owner's session and after its time (`export_expired`); the job is deleted at that time.
//! Every export is an access ticket, answered when the export is ready.

use std::sync::Arc;

use base64::Engine;
use custos_core::clock::rfc3339;
use custos_core::SubjectId;
use custos_crypto::OsRng;
pub use custos_store::rights::exports::Rendering;
use custos_store::rights::exports::{self as jobs, ExportJob};
use custos_store::rights::{self as store, complaints, Transition};
use serde_json::{json, Value};

use super::{Rights, TicketKind};
use crate::identity::Reauthenticated;
use crate::{AppError, AppResult};

/// The `format` of an export document.
pub const FORMAT: &str = "custos-export-v1";
/// Service-log events read per page (one progress step each).
pub const EVENTS_PAGE: i64 = 10_000;
/// Sections before the events, each one progress step.
const SECTIONS: i64 = 11;
const LINK_DOMAIN: &str = "export-link";
const JSON_BINDING: &str = "rights/export-json/";
const HTML_BINDING: &str = "rights/export-html/";

/// A background export as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportJobView {
    pub id: String,
    /// `running`, `ready` or `failed`.
    pub state: String,
    pub done: i64,
    pub total: i64,
    pub created_ms: i64,
    pub ready_ms: Option<i64>,
    /// When the job and its file are deleted (the link's expiry once ready).
    pub expires_ms: i64,
    /// The download token, once ready.
    pub token: Option<String>,
    /// The stable code of what went wrong, if it failed.
    pub error: Option<String>,
    /// The access ticket of this export.
    pub ticket_id: i64,
}

struct Progress<'a> {
    rights: &'a Rights,
    job: Option<&'a str>,
    done: i64,
    total: i64,
}

impl Progress<'_> {
    async fn step(&mut self) -> AppResult<()> {
        self.done += 1;
        if let Some(id) = self.job {
            jobs::progress(&self.rights.kernel.db, id, self.done, self.total).await?;
        }
        Ok(())
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> AppResult<Value> {
    serde_json::to_value(v).map_err(|e| AppError::Internal(format!("export serialization: {e}")))
}

fn or_null<T: serde::Serialize>(r: AppResult<T>) -> AppResult<Value> {
    match r {
        Ok(v) => to_json(&v),
        Err(AppError::NotFound) => Ok(Value::Null),
        Err(e) => Err(e),
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

impl Rights {
    /// Everything Custos holds about the caller, at once. The request is itself recorded
    /// as an access ticket, answered at once.
    pub async fn export(&self, who: &Reauthenticated) -> AppResult<Value> {
        let subject = who.subject();
        self.record_fulfilled(
            subject,
            TicketKind::Access,
            "self-service export",
            "exported to the user",
        )
        .await?;
        self.export_document(subject, None).await
    }

    /// The export document of `subject`: account, profile, consents with their signed
    /// receipts, bookmarks, downloads, shares, comments, present location, devices, traits
    /// with their lineage, matching segments, service-log events under the subject's
    /// pseudonym, rights tickets and complaints. With `job`, progress is recorded there.
    pub async fn export_document(&self, subject: SubjectId, job: Option<&str>) -> AppResult<Value> {
        let db = &self.kernel.db;
        let pseudonym = self.events_pseudonym(subject);
        let event_count = jobs::count_events(db, &pseudonym).await?;
        let pages = (event_count + EVENTS_PAGE - 1) / EVENTS_PAGE;
        let mut progress = Progress {
            rights: self,
            job,
            done: 0,
            total: SECTIONS + pages + 1,
        };
        let mut doc = serde_json::Map::new();
        doc.insert("format".into(), FORMAT.into());
        doc.insert("generated_at".into(), rfc3339(self.now_ms()).into());
        doc.insert("subject".into(), subject.to_string().into());

        doc.insert(
            "account".into(),
            or_null(self.identity.account(subject).await)?,
        );
        progress.step().await?;
        doc.insert(
            "profile".into(),
            or_null(self.identity.profile(subject).await)?,
        );
        progress.step().await?;

        let records = self.kernel.consent_history(subject).await?;
        let mut receipt_ids: Vec<uuid::Uuid> = records.iter().map(|r| r.receipt_id).collect();
        receipt_ids.sort();
        receipt_ids.dedup();
        let mut receipts = Vec::with_capacity(receipt_ids.len());
        for id in receipt_ids {
            receipts.push(to_json(&self.kernel.receipt(subject, id).await?)?);
        }
        let consents: Vec<Value> = records
            .iter()
            .map(|r| {
                json!({
                    "purpose": r.purpose,
                    "decision": r.decision.as_str(),
                    "method": r.method.as_str(),
                    "at": rfc3339(r.at_ms),
                    "policy_hash": r.policy_hash,
                    "receipt_id": r.receipt_id.to_string(),
                })
            })
            .collect();
        doc.insert("consents".into(), consents.into());
        doc.insert("receipts".into(), receipts.into());
        progress.step().await?;

        let c = &self.catalog;
        doc.insert("bookmarks".into(), to_json(&c.bookmarks(subject).await?)?);
        progress.step().await?;
        doc.insert("downloads".into(), to_json(&c.downloads(subject).await?)?);
        progress.step().await?;
        doc.insert("shares".into(), to_json(&c.shares(subject).await?)?);
        progress.step().await?;
        doc.insert("comments".into(), to_json(&c.my_comments(subject).await?)?);
        progress.step().await?;

        let s = &self.signals;
        doc.insert("location".into(), to_json(&s.location(subject).await?)?);
        progress.step().await?;
        let devices: Vec<Value> = s
            .devices(subject)
            .await?
            .iter()
            .map(|d| {
                let mut v = to_json(d)?;
                v["updated_at"] = rfc3339(d.updated_at_ms).into();
                Ok(v)
            })
            .collect::<AppResult<_>>()?;
        doc.insert("devices".into(), devices.into());
        progress.step().await?;
        let traits = s.traits(subject).await?;
        let segments: Vec<Value> = crate::signals::profile::segments_matching(&s.segments, &traits)
            .into_iter()
            .map(|g| json!({"id": g.id, "name": g.name}))
            .collect();
        let traits_json: Vec<Value> = traits
            .iter()
            .map(|t| {
                json!({
                    "key": t.key,
                    "weight": t.weight,
                    "lineage": {
                        "purpose": t.purpose,
                        "derived_from": "your service-log events about catalog items, and your own changes",
                        "updated_at": rfc3339(t.updated_at_ms),
                    },
                })
            })
            .collect();
        doc.insert("traits".into(), traits_json.into());
        doc.insert("segments".into(), segments.into());
        progress.step().await?;

        let tickets: Vec<Value> = self
            .tickets(subject)
            .await?
            .into_iter()
            .map(|t| {
                json!({
                    "id": t.id,
                    "kind": t.kind.as_str(),
                    "status": t.status,
                    "detail": t.detail,
                    "created_at": rfc3339(t.created_ms),
                    "due_at": rfc3339(t.due_ms),
                    "closed_at": t.closed_ms.map(rfc3339),
                    "refusal_reason": t.refusal_reason,
                    "refusal_legal_basis": t.refusal_basis,
                    "history": t.history.iter().map(|e| json!({
                        "status": e.status, "note": e.note, "at": rfc3339(e.at_ms)
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let mut complaint_rows = Vec::new();
        for t in &tickets {
            if matches!(t["kind"].as_str(), Some("complaint" | "report")) {
                if let Some(c) = complaints::get(db, t["id"].as_i64().unwrap_or_default()).await? {
                    complaint_rows.push(json!({
                        "ticket_id": c.ticket_id,
                        "kind": c.kind,
                        "topic": c.topic,
                        "about": c.about,
                        "answer": c.answer,
                        "answered_at": c.answered_ms.map(rfc3339),
                    }));
                }
            }
        }
        doc.insert("rights_tickets".into(), tickets.into());
        doc.insert("complaints".into(), complaint_rows.into());
        // What the egress path gave partners (P29) and what third parties sent (P16).
        let partner_shares: Vec<Value> = custos_store::shares::shares_of(db, subject)
            .await?
            .into_iter()
            .map(|s| {
                json!({
                    "partner": s.partner,
                    "purpose": s.purpose,
                    "basis": s.basis,
                    "fields": s.fields,
                    "withheld": s.stripped,
                    "status": s.status,
                    "at": rfc3339(s.at_ms),
                })
            })
            .collect();
        doc.insert("partner_shares".into(), partner_shares.into());
        let inbound: Vec<Value> = custos_store::shares::inbound_of(db, subject)
            .await?
            .into_iter()
            .map(|r| {
                json!({
                    "source": r.source,
                    "consent_commitment": r.consent_commitment,
                    "purpose": r.purpose,
                    "received_at": rfc3339(r.received_ms),
                    "fields": r.fields.iter().map(|f| json!({
                        "name": f.name,
                        "category": f.category,
                        "sensitive": f.sensitive,
                        "confirmed_at": f.confirmed_ms.map(rfc3339),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        doc.insert("inbound_data".into(), inbound.into());
        progress.step().await?;

        let mut events = Vec::with_capacity(usize::try_from(event_count).unwrap_or(0));
        let mut after = 0i64;
        loop {
            let page = jobs::events_page(db, &pseudonym, after, EVENTS_PAGE).await?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = *last;
            let full = page.len() as i64 == EVENTS_PAGE;
            for (_, e) in page {
                events.push(json!({
                    "kind": e.kind,
                    "at": rfc3339(e.at_ms),
                    "target": e.target,
                    "ip_prefix": e.ip_prefix,
                    "carrier": e.carrier,
                    "language": e.language,
                    "purpose": e.purpose,
                    "expires_at": e.expires_at_ms.map(rfc3339),
                }));
            }
            if progress.done < progress.total - 1 {
                progress.step().await?;
            }
            if !full {
                break;
            }
        }
        doc.insert(
            "service_events".into(),
            json!({
                "pseudonym": hex::encode(pseudonym),
                "count": events.len(),
                "events": events,
            }),
        );
        Ok(Value::Object(doc))
    }

    fn link_mac(&self, id: &[u8; 16], expires_ms: i64, subject: SubjectId) -> [u8; 16] {
        let mut msg = Vec::with_capacity(40);
        msg.extend_from_slice(id);
        msg.extend_from_slice(&expires_ms.to_be_bytes());
        msg.extend_from_slice(subject.as_bytes());
        self.kernel.ring.blind_index(LINK_DOMAIN, &msg)
    }

    fn link_token(&self, id: &str, expires_ms: i64, subject: SubjectId) -> Option<String> {
        let uuid = uuid::Uuid::parse_str(id).ok()?;
        let mut raw = Vec::with_capacity(40);
        raw.extend_from_slice(uuid.as_bytes());
        raw.extend_from_slice(&expires_ms.to_be_bytes());
        raw.extend_from_slice(&self.link_mac(uuid.as_bytes(), expires_ms, subject));
        Some(b64().encode(raw))
    }

    fn job_view(&self, j: ExportJob, subject: SubjectId) -> ExportJobView {
        let token = (j.state == "ready")
            .then(|| self.link_token(&j.id, j.expires_ms, subject))
            .flatten();
        ExportJobView {
            id: j.id,
            state: j.state,
            done: j.done,
            total: j.total,
            created_ms: j.created_ms,
            ready_ms: j.ready_ms,
            expires_ms: j.expires_ms,
            token,
            error: j.error,
            ticket_id: j.ticket_id,
        }
    }

    /// Deletes export jobs whose time is up (also done by every export request).
    pub async fn purge_expired_exports(&self) -> AppResult<u64> {
        Ok(jobs::purge_expired(&self.kernel.db, self.now_ms()).await?)
    }

    /// Starts a background export of the caller's data and returns the job at once. A job
    /// still running for the caller is returned instead of starting another.
    pub async fn start_export(self: &Arc<Self>, who: &Reauthenticated) -> AppResult<ExportJobView> {
        let subject = who.subject();
        let db = &self.kernel.db;
        let now = self.now_ms();
        jobs::purge_expired(db, now).await?;
        if let Some(j) = jobs::of_subject(db, subject)
            .await?
            .into_iter()
            .find(|j| j.state == "running")
        {
            return Ok(self.job_view(j, subject));
        }
        let ticket = self
            .open_ticket(
                subject,
                TicketKind::Access,
                "self-service export (background)",
            )
            .await?;
        store::transition(
            db,
            ticket.id,
            &Transition {
                status: "in_progress",
                note: "preparing the export",
                ..Default::default()
            },
            now,
        )
        .await?;
        let id = uuid::Uuid::new_v4().to_string();
        let job = jobs::create(
            db,
            &id,
            subject,
            ticket.id,
            now,
            now.saturating_add(self.export_link_ttl_ms),
        )
        .await?;
        let this = Arc::clone(self);
        tokio::spawn(async move { this.run_export(subject, id, ticket.id).await });
        Ok(self.job_view(job, subject))
    }

    async fn run_export(&self, subject: SubjectId, id: String, ticket_id: i64) {
        let result: AppResult<bool> = async {
            let doc = self.export_document(subject, Some(&id)).await?;
            let html = export_html(&doc);
            let json = serde_json::to_vec(&doc)
                .map_err(|e| AppError::Internal(format!("export serialization: {e}")))?;
            // A subject with nothing encrypted yet gets its key now, unless it was erased
            // meanwhile (erasure deletes the job): an export never re-creates an erased
            // subject's key.
            let key = match self.kernel.vault.get(subject).await? {
                Some(k) => k,
                None => {
                    if jobs::get(&self.kernel.db, &id, subject).await?.is_none() {
                        return Err(AppError::bad("subject_erased", "the account was erased"));
                    }
                    self.kernel
                        .vault
                        .get_or_create(subject, self.now_ms())
                        .await?
                }
            };
            let cipher = key.cipher();
            let json = cipher.seal(format!("{JSON_BINDING}{id}").as_bytes(), &json, &mut OsRng);
            let html = cipher.seal(
                format!("{HTML_BINDING}{id}").as_bytes(),
                html.as_bytes(),
                &mut OsRng,
            );
            let ready = self.now_ms();
            Ok(jobs::finish(
                &self.kernel.db,
                &id,
                json,
                html,
                ready,
                ready.saturating_add(self.export_link_ttl_ms),
                "export ready for download",
            )
            .await?)
        }
        .await;
        let outcome = match result {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(code = e.code(), error = %e, "export job failed");
                let _ = jobs::fail(&self.kernel.db, &id, e.code()).await;
                self.close_ticket(
                    ticket_id,
                    "failed",
                    "the export could not be produced; please ask again",
                )
                .await
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(code = e.code(), "export job: closing its ticket failed");
        }
    }

    /// One of the caller's export jobs; another user's job is not found.
    pub async fn export_job(&self, subject: SubjectId, id: &str) -> AppResult<ExportJobView> {
        let db = &self.kernel.db;
        jobs::purge_expired(db, self.now_ms()).await?;
        let j = jobs::get(db, id, subject)
            .await?
            .ok_or(AppError::NotFound)?;
        Ok(self.job_view(j, subject))
    }

    /// The caller's export jobs, newest first.
    pub async fn export_jobs(&self, subject: SubjectId) -> AppResult<Vec<ExportJobView>> {
        let db = &self.kernel.db;
        jobs::purge_expired(db, self.now_ms()).await?;
        Ok(jobs::of_subject(db, subject)
            .await?
            .into_iter()
            .map(|j| self.job_view(j, subject))
            .collect())
    }

    /// The file behind a download token, for the token's owner only: `not_found` for a
    /// forged token or another user's, `export_expired` once its time is up.
    pub async fn open_export(
        &self,
        subject: SubjectId,
        token: &str,
        which: Rendering,
    ) -> AppResult<Vec<u8>> {
        let raw = b64()
            .decode(token.trim())
            .ok()
            .filter(|r| r.len() == 40)
            .ok_or(AppError::NotFound)?;
        let mut id = [0u8; 16];
        id.copy_from_slice(&raw[..16]);
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&raw[16..24]);
        let expires_ms = i64::from_be_bytes(exp);
        let mac = self.link_mac(&id, expires_ms, subject);
        if raw[24..].iter().zip(mac).fold(0u8, |a, (x, y)| a | (x ^ y)) != 0 {
            return Err(AppError::NotFound);
        }
        let now = self.now_ms();
        if now >= expires_ms {
            jobs::purge_expired(&self.kernel.db, now).await?;
            return Err(AppError::bad(
                "export_expired",
                "this export link has expired; start a new export",
            ));
        }
        let id = uuid::Uuid::from_bytes(id).to_string();
        let sealed = jobs::payload(&self.kernel.db, &id, subject, which)
            .await?
            .ok_or(AppError::NotFound)?;
        let key = self
            .kernel
            .vault
            .get(subject)
            .await?
            .ok_or(AppError::NotFound)?;
        let binding = match which {
            Rendering::Json => JSON_BINDING,
            Rendering::Html => HTML_BINDING,
        };
        key.cipher()
            .open(format!("{binding}{id}").as_bytes(), &sealed)
            .map_err(|_| AppError::Internal("a stored export cannot be opened".into()))
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Service-log events listed one by one in the HTML summary; the rest are counted.
const HTML_EVENTS: usize = 100;

/// A human-readable HTML summary of an export document.
pub fn export_html(export: &Value) -> String {
    let mut out = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Your data</title></head><body>",
    );
    out.push_str("<h1>Your data in Custos</h1>");
    out.push_str(&format!(
        "<p>Generated {} for account {}.</p>",
        escape(export["generated_at"].as_str().unwrap_or("")),
        escape(export["subject"].as_str().unwrap_or(""))
    ));
    let list = |out: &mut String, items: &[Value]| {
        out.push_str(&format!("<p>{} entries.</p><ul>", items.len()));
        for it in items {
            out.push_str(&format!(
                "<li><code>{}</code></li>",
                escape(&it.to_string())
            ));
        }
        out.push_str("</ul>");
    };
    for (key, title) in [
        ("account", "Account"),
        ("profile", "Profile"),
        ("consents", "Consent decisions"),
        ("bookmarks", "Bookmarks"),
        ("downloads", "Downloads"),
        ("shares", "Share links"),
        ("comments", "Comments"),
        ("location", "Present location"),
        ("devices", "Devices"),
        ("traits", "Preference traits and where they come from"),
        ("segments", "Audience segments your traits match"),
        ("rights_tickets", "Your rights requests"),
        ("complaints", "Your complaints and reports"),
        ("partner_shares", "What was shared with partners"),
        ("inbound_data", "Data about you received from third parties"),
        ("receipts", "Signed consent receipts"),
    ] {
        out.push_str(&format!("<h2>{title}</h2>"));
        match &export[key] {
            Value::Array(items) if items.is_empty() => out.push_str("<p>None.</p>"),
            Value::Array(items) => list(&mut out, items),
            Value::Null => out.push_str("<p>None.</p>"),
            v => out.push_str(&format!("<pre>{}</pre>", escape(&v.to_string()))),
        }
    }
    out.push_str("<h2>Service-log events</h2>");
    let events = export["service_events"]["events"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if events.is_empty() {
        out.push_str("<p>None.</p>");
    } else {
        let mut by_kind: std::collections::BTreeMap<&str, usize> = Default::default();
        for e in events {
            *by_kind
                .entry(e["kind"].as_str().unwrap_or("?"))
                .or_default() += 1;
        }
        out.push_str(&format!(
            "<p>{} events under the pseudonym <code>{}</code> (the JSON file lists them all):</p><ul>",
            events.len(),
            escape(export["service_events"]["pseudonym"].as_str().unwrap_or(""))
        ));
        for (k, n) in by_kind {
            out.push_str(&format!("<li>{}: {n}</li>", escape(k)));
        }
        out.push_str("</ul>");
        let shown = &events[events.len().saturating_sub(HTML_EVENTS)..];
        out.push_str(&format!("<p>The latest {}:</p>", shown.len()));
        list(&mut out, shown);
    }
    out.push_str("</body></html>");
    out
}
