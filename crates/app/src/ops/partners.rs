//! Partners and sharing (P16, P29, P30, P32, L1).
//!
//! - The partner registry is the declaration's `[[partners]]`: name, contact, region, the
//!   purposes naming it, its allow-list of categories and its contract reference.
//! - [`Ops::share`] is the one egress path for a subject's data to a partner. It checks,
//!   in order: a registered partner bound by a contract; the basis (the subject's consent
//!   for a purpose that names the partner — separate consent for an independent
//!   controller or a partner abroad (L1) — or a legal exception from the sharing subset of
//!   P17, recorded with the share, P32); a Global Privacy Control signal or a recorded GPC
//!   objection (L14); the partner's region (a partner outside the declared region needs
//!   the subject's separate cross-border consent, P20); then it strips every field whose
//!   category is not on the partner's allow-list, logs the share (field names, never
//!   values) and hands it to the [`PartnerSink`]. [`Ops::shares_of`] lists the log for the
//!   user and the export.
//! - [`Ops::disclose_publicly`] (P30) needs a consent-based, separate-consent purpose with
//!   method `disclosure` and the subject's current consent record for it.
//! - Inbound data (P16): [`Ops::receive_inbound`] records source and the source's consent
//!   commitment and stores the values as personal fields through the gate, encrypted like
//!   first-party data; the user sees them ([`Ops::inbound_of`]) and sensitive fields stay
//!   unusable ([`Ops::inbound_value`]) until the user confirms them.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use custos_core::{ConsentMethod, Decision, Denial, GateContext, Personal, SubjectId};
use custos_policy::{LegalBasis, Method, Partner};
use custos_store::personal::Field;
use custos_store::shares as store;
use serde::{Deserialize, Serialize};

use super::{Actor, Ops};
use crate::signals::push::Notice;
use crate::{AppError, AppResult};

/// The virtual field carrying the subject's pseudonym for one partner.
pub const PSEUDONYM_FIELD: &str = "pseudonymous_id";
/// The virtual field carrying the subject's preference traits (key → weight).
pub const TRAITS_FIELD: &str = "interest_traits";
/// The recipient named in the log for public disclosures (P30).
pub const PUBLIC: &str = "public";

/// `[ops.partners]` in `custos.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnersConfig {
    /// Partner id → webhook URL that receives shares (`https://…`).
    #[serde(default)]
    pub webhooks: BTreeMap<String, String>,
    /// Milliseconds per delivery attempt (default 5000).
    pub timeout_ms: Option<u64>,
}

/// One share on its way to a partner.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub share_id: i64,
    pub partner: String,
    pub purpose: Option<String>,
    /// `consent` or the legal basis of the exception.
    pub basis: String,
    /// The subject's pseudonym for this partner (never the internal subject id).
    pub subject_ref: String,
    /// Field name → value.
    pub fields: Vec<(String, Personal<String>)>,
    pub policy_hash: String,
}

impl Delivery {
    /// The JSON a webhook receives.
    pub fn to_json(&self) -> serde_json::Value {
        let fields: serde_json::Map<String, serde_json::Value> = self
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.expose().clone())))
            .collect();
        serde_json::json!({
            "share_id": self.share_id,
            "partner": self.partner,
            "purpose": self.purpose,
            "basis": self.basis,
            "subject": self.subject_ref,
            "fields": fields,
            "policy_hash": self.policy_hash,
        })
    }
}

/// Why a delivery failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    #[error("no delivery channel is configured for partner `{0}`")]
    NotConfigured(String),
    #[error("the partner is unavailable: {0}")]
    Unavailable(String),
}

pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;

/// Delivers shares to partners.
pub trait PartnerSink: Send + Sync + std::fmt::Debug {
    /// Whether a delivery to `partner` can be attempted (checked before anything is logged).
    fn reaches(&self, partner: &str) -> bool;
    fn deliver<'a>(&'a self, d: &'a Delivery) -> SinkFuture<'a>;
}

/// HTTP webhooks: `POST` the [`Delivery`] as JSON to the partner's URL.
#[derive(Debug)]
pub struct HttpPartnerSink {
    client: reqwest::Client,
    urls: BTreeMap<String, String>,
}

impl HttpPartnerSink {
    pub fn new(urls: BTreeMap<String, String>, timeout: Duration) -> anyhow::Result<Self> {
        for (id, u) in &urls {
            if !u.starts_with("https://") && !u.starts_with("http://") {
                anyhow::bail!("ops.partners.webhooks.{id} must be an http:// or https:// URL");
            }
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the partner HTTP client: {e}"))?;
        Ok(HttpPartnerSink { client, urls })
    }
}

impl PartnerSink for HttpPartnerSink {
    fn reaches(&self, partner: &str) -> bool {
        self.urls.contains_key(partner)
    }
    fn deliver<'a>(&'a self, d: &'a Delivery) -> SinkFuture<'a> {
        Box::pin(async move {
            let url = self
                .urls
                .get(&d.partner)
                .ok_or_else(|| SinkError::NotConfigured(d.partner.clone()))?;
            match self.client.post(url).json(&d.to_json()).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(SinkError::Unavailable(format!(
                    "answered {}",
                    r.status().as_u16()
                ))),
                // Neither URL nor body belongs in a log.
                Err(e) if e.is_timeout() => Err(SinkError::Unavailable("timed out".into())),
                Err(_) => Err(SinkError::Unavailable("unreachable".into())),
            }
        })
    }
}

/// Keeps deliveries in memory (tests, demonstrations).
#[derive(Debug, Default)]
pub struct RecordingSink {
    pub deliveries: std::sync::Mutex<Vec<Delivery>>,
}

impl PartnerSink for RecordingSink {
    fn reaches(&self, _partner: &str) -> bool {
        true
    }
    fn deliver<'a>(&'a self, d: &'a Delivery) -> SinkFuture<'a> {
        self.deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(d.clone());
        Box::pin(async { Ok(()) })
    }
}

/// The sharing state of [`Ops`].
#[derive(Debug)]
pub struct Sharing {
    sink: RwLock<Arc<dyn PartnerSink>>,
}

impl Sharing {
    pub fn new(cfg: &PartnersConfig) -> anyhow::Result<Sharing> {
        let timeout = Duration::from_millis(cfg.timeout_ms.unwrap_or(5_000).max(1));
        Ok(Sharing {
            sink: RwLock::new(Arc::new(HttpPartnerSink::new(
                cfg.webhooks.clone(),
                timeout,
            )?)),
        })
    }
    fn sink(&self) -> Arc<dyn PartnerSink> {
        self.sink.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A partner as the registry shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PartnerEntry {
    pub id: String,
    pub name_en: String,
    pub name_zh: String,
    pub contact: String,
    pub region: String,
    pub cross_border: bool,
    pub independent_controller: bool,
    /// Purposes naming it as a recipient.
    pub purposes: Vec<String>,
    /// Categories it may receive.
    pub allowed_fields: Vec<String>,
    pub contract: Option<String>,
}

/// On what ground a share happens.
#[derive(Debug, Clone)]
pub enum ShareBasis {
    /// The subject's consent for this purpose (it must name the partner).
    Consent { purpose: String },
    /// A legal exception of the sharing subset of P17 (P32), recorded with the share.
    Exception {
        basis: LegalBasis,
        /// The case, order or request it answers.
        reference: String,
        reason: String,
    },
}

/// The legal bases under which data may be shared without consent (P32): the sharing
/// subset of P17. Contract, service safety, journalism and research are not among them.
pub const SHARING_EXCEPTIONS: &[LegalBasis] = &[
    LegalBasis::LegalObligation,
    LegalBasis::NationalSecurity,
    LegalBasis::PublicHealth,
    LegalBasis::CriminalInvestigation,
    LegalBasis::VitalInterests,
    LegalBasis::MadePublicBySubject,
    LegalBasis::LawfulPublicSource,
    LegalBasis::OtherLaw,
];

/// What a share did.
#[derive(Debug, Clone, Serialize)]
pub struct ShareOutcome {
    pub share_id: i64,
    pub partner: String,
    pub sent: Vec<String>,
    /// Requested fields withheld: not on the partner's allow-list.
    pub stripped: Vec<String>,
    pub status: String,
}

/// One logged share, for the user and the export.
#[derive(Debug, Clone, Serialize)]
pub struct ShareRecord {
    pub id: i64,
    pub partner: String,
    pub purpose: Option<String>,
    pub basis: String,
    pub exception_ref: Option<String>,
    pub exception_reason: Option<String>,
    pub fields: Vec<String>,
    pub stripped: Vec<String>,
    pub policy_hash: String,
    pub status: String,
    pub at_ms: i64,
}

/// A public disclosure that was allowed: what may be published.
#[derive(Debug)]
pub struct Disclosure {
    pub share_id: i64,
    pub fields: Vec<(String, Personal<String>)>,
}

/// One field received from a third party.
#[derive(Debug, Clone)]
pub struct InboundFieldInput {
    pub name: String,
    pub category: String,
    pub value: Personal<String>,
}

/// A delivery of data about a subject from a third party.
#[derive(Debug, Clone)]
pub struct InboundInput {
    pub subject: SubjectId,
    /// Who sent it.
    pub source: String,
    /// The source's statement that it had the subject's consent to give it to us.
    pub consent_commitment: String,
    /// The purpose it is received for; the gate decides as for first-party data.
    pub purpose: String,
    pub fields: Vec<InboundFieldInput>,
}

/// A received field as the user sees it.
#[derive(Debug, Clone, Serialize)]
pub struct InboundFieldView {
    pub name: String,
    pub category: String,
    pub sensitive: bool,
    /// Sensitive fields are used only once confirmed.
    pub confirmed: bool,
    /// The value (the user's own data), when still stored.
    pub value: Option<String>,
}

/// A delivery as the user sees it.
#[derive(Debug, Clone, Serialize)]
pub struct InboundView {
    pub id: i64,
    pub source: String,
    pub consent_commitment: String,
    pub purpose: String,
    pub received_ms: i64,
    pub fields: Vec<InboundFieldView>,
}

fn text(field: &str, value: &str, max: usize) -> AppResult<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(AppError::bad(
            "missing_field",
            format!("`{field}` is required"),
        ));
    }
    if v.chars().count() > max || v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::bad(
            "invalid_field",
            format!("`{field}` must be at most {max} characters of text"),
        ));
    }
    Ok(v.to_owned())
}

fn utf8_or_base64(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            use base64::Engine;
            format!(
                "base64:{}",
                base64::engine::general_purpose::STANDARD.encode(bytes)
            )
        }
    }
}

/// A requested field resolved to its category (values are read only once allowed).
struct Resolved {
    name: String,
    category: String,
}

impl Ops {
    /// Replaces the delivery channel (tests; a deployment configures webhooks).
    pub fn set_partner_sink(&self, sink: Arc<dyn PartnerSink>) {
        *self.sharing.sink.write().unwrap_or_else(|e| e.into_inner()) = sink;
    }

    /// The partner registry, from the current declaration.
    pub fn partners(&self) -> Vec<PartnerEntry> {
        let regime = self.kernel.gate.regime();
        let d = regime.current().declaration();
        d.partners
            .iter()
            .map(|p| PartnerEntry {
                id: p.id.clone(),
                name_en: p.name.en.clone(),
                name_zh: p.name.zh.clone(),
                contact: p.contact.clone(),
                region: p.region.clone(),
                cross_border: p.cross_border,
                independent_controller: p.independent_controller,
                purposes: d
                    .purposes
                    .iter()
                    .filter(|u| u.recipients.contains(&p.id))
                    .map(|u| u.id.clone())
                    .collect(),
                allowed_fields: p.fields.clone(),
                contract: p.contract.clone(),
            })
            .collect()
    }

    /// Resolves requested field names: the two virtual fields, or the subject's stored
    /// personal fields (received fields only once usable).
    async fn resolve(&self, subject: SubjectId, names: &[String]) -> AppResult<Vec<Resolved>> {
        let stored = self.kernel.personal.list(subject).await?;
        let mut out: Vec<Resolved> = Vec::new();
        for n in names {
            if out.iter().any(|r| &r.name == n) {
                continue;
            }
            let category = match n.as_str() {
                PSEUDONYM_FIELD => "user.unique_id.pseudonymous".to_owned(),
                TRAITS_FIELD => crate::signals::TRAIT_CATEGORY.to_owned(),
                _ => {
                    let Some(f) = stored.iter().find(|f| &f.field == n) else {
                        return Err(AppError::bad(
                            "unknown_field",
                            format!("the subject has no field `{n}`"),
                        ));
                    };
                    if n.starts_with(store::INBOUND_PREFIX) {
                        self.check_inbound_usable(subject, n).await?;
                    }
                    f.category.clone()
                }
            };
            out.push(Resolved {
                name: n.clone(),
                category,
            });
        }
        Ok(out)
    }

    async fn value_of(
        &self,
        subject: SubjectId,
        partner: &str,
        name: &str,
    ) -> AppResult<Personal<String>> {
        let now = self.now_ms();
        match name {
            PSEUDONYM_FIELD => {
                let p = self
                    .kernel
                    .ring
                    .pseudonym(&format!("partner:{partner}"), subject.as_bytes().as_slice());
                Ok(Personal::new(hex::encode(p)))
            }
            TRAITS_FIELD => {
                let traits = self.rights.signals.traits(subject).await?;
                let map: BTreeMap<String, f64> =
                    traits.into_iter().map(|t| (t.key, t.weight)).collect();
                Ok(Personal::new(
                    serde_json::to_string(&map).unwrap_or_else(|_| "{}".into()),
                ))
            }
            _ => {
                let v = self
                    .kernel
                    .personal
                    .get(subject, name, now)
                    .await?
                    .ok_or_else(|| {
                        AppError::bad(
                            "unknown_field",
                            format!("the subject has no field `{name}`"),
                        )
                    })?;
                Ok(Personal::new(utf8_or_base64(v.expose())))
            }
        }
    }

    fn partner(&self, id: &str) -> AppResult<Partner> {
        let regime = self.kernel.gate.regime();
        regime
            .current()
            .declaration()
            .partners
            .iter()
            .find(|p| p.id == id)
            .cloned()
            .ok_or_else(|| {
                AppError::bad(
                    "unknown_partner",
                    format!("`{id}` is not a registered partner"),
                )
            })
    }

    /// Whether the subject's newest decision about `purpose` is a GPC objection.
    async fn gpc_objected(&self, subject: SubjectId, purpose: &str) -> AppResult<bool> {
        let history = self.kernel.consent_history(subject).await?;
        Ok(history
            .iter()
            .rev()
            .find(|r| r.purpose == purpose)
            .is_some_and(|r| r.method == ConsentMethod::Gpc && r.decision != Decision::Given))
    }

    /// Shares fields of the subject's data with a partner: the only way data leaves for a
    /// partner (see the module documentation for the checks, in order).
    pub async fn share(
        &self,
        actor: &Actor,
        subject: SubjectId,
        partner_id: &str,
        fields: &[String],
        basis: &ShareBasis,
        ctx: &GateContext<'_>,
    ) -> AppResult<ShareOutcome> {
        let partner = self.partner(partner_id)?;
        if partner
            .contract
            .as_deref()
            .is_none_or(|c| c.trim().is_empty())
        {
            return Err(AppError::bad(
                "partner_contract_missing",
                format!("partner `{partner_id}` is bound by no recorded contract (P29)"),
            ));
        }
        if fields.is_empty() || fields.len() > 50 {
            return Err(AppError::bad(
                "invalid_field",
                "`fields` must name 1 to 50 fields",
            ));
        }
        let regime = self.kernel.gate.regime();
        let decl = regime.current().declaration();
        let abroad = partner.region != decl.region;
        self.kernel.fresh(subject).await?;

        // The allow-list first: stripped fields are never read.
        let resolved = self.resolve(subject, fields).await?;
        let (sent, stripped): (Vec<Resolved>, Vec<Resolved>) = resolved
            .into_iter()
            .partition(|r| partner.fields.contains(&r.category));
        if sent.is_empty() {
            return Err(AppError::bad(
                "nothing_to_share",
                format!(
                    "no requested field is on the allow-list of partner `{partner_id}` ({})",
                    partner.fields.join(", ")
                ),
            ));
        }
        let categories: Vec<&str> = sent.iter().map(|r| r.category.as_str()).collect();

        let (purpose, basis_key, exception_ref, exception_reason) = match basis {
            ShareBasis::Consent { purpose } => {
                let Some(p) = decl.purposes.iter().find(|p| &p.id == purpose) else {
                    return Err(Denial::UnknownPurpose.into());
                };
                if !p.recipients.contains(&partner.id) {
                    return Err(AppError::bad(
                        "partner_not_recipient",
                        format!("purpose `{purpose}` does not name partner `{partner_id}` as a recipient"),
                    ));
                }
                if (partner.independent_controller || abroad)
                    && !(p.basis == LegalBasis::Consent && p.separate_consent)
                {
                    return Err(AppError::bad(
                        "separate_consent_required",
                        format!("giving data to `{partner_id}` needs a purpose with separate consent (L1)"),
                    ));
                }
                if ctx.gpc || self.gpc_objected(subject, purpose).await? {
                    return Err(Denial::GpcObjection.into());
                }
                match self.kernel.permit(subject, purpose, &categories, ctx) {
                    Ok(_) => {}
                    Err(AppError::Denied(
                        Denial::ConsentMissing
                        | Denial::ConsentRefused
                        | Denial::ConsentWithdrawn
                        | Denial::ConsentOutdated,
                    )) if abroad => {
                        return Err(AppError::bad(
                            "cross_border_consent_required",
                            format!(
                            "partner `{partner_id}` keeps data in {}, outside {}: the subject's \
                                 separate consent to `{purpose}` is required (P20, L1)",
                            partner.region, decl.region
                        ),
                        ))
                    }
                    Err(e) => return Err(e),
                }
                (Some(purpose.clone()), "consent".to_owned(), None, None)
            }
            ShareBasis::Exception {
                basis,
                reference,
                reason,
            } => {
                if !SHARING_EXCEPTIONS.contains(basis) {
                    return Err(AppError::bad(
                        "basis_not_allowed",
                        format!(
                            "`{}` is not a legal basis for sharing without consent (P32)",
                            basis.as_str()
                        ),
                    ));
                }
                let reference = text("reference", reference, 200)?;
                let reason = text("reason", reason, 1000)?;
                if abroad {
                    return Err(AppError::bad(
                        "cross_border_consent_required",
                        format!(
                            "partner `{partner_id}` keeps data in {}, outside {}: no exception \
                             covers a transfer abroad without separate consent (P20)",
                            partner.region, decl.region
                        ),
                    ));
                }
                (
                    None,
                    basis.as_str().to_owned(),
                    Some(reference),
                    Some(reason),
                )
            }
        };

        let sink = self.sharing.sink();
        if !sink.reaches(&partner.id) {
            return Err(AppError::bad(
                "partner_not_configured",
                format!("no delivery channel is configured for partner `{partner_id}`"),
            ));
        }
        let now = self.now_ms();
        let policy_hash = regime.current().hash().to_string();
        let mut record = store::Share {
            id: 0,
            subject,
            partner: partner.id.clone(),
            purpose: purpose.clone(),
            basis: basis_key.clone(),
            exception_ref,
            exception_reason,
            fields: sent.iter().map(|r| r.name.clone()).collect(),
            stripped: stripped.iter().map(|r| r.name.clone()).collect(),
            policy_hash: policy_hash.clone(),
            actor: actor.name(),
            status: "pending".into(),
            at_ms: now,
        };
        let mut values = Vec::with_capacity(sent.len());
        for r in &sent {
            values.push((
                r.name.clone(),
                self.value_of(subject, &partner.id, &r.name).await?,
            ));
        }
        record.id = store::log_share(&self.kernel.db, &record).await?;
        let delivery = Delivery {
            share_id: record.id,
            partner: partner.id.clone(),
            purpose,
            basis: basis_key,
            subject_ref: hex::encode(self.kernel.ring.pseudonym(
                &format!("partner:{}", partner.id),
                subject.as_bytes().as_slice(),
            )),
            fields: values,
            policy_hash,
        };
        let status = match sink.deliver(&delivery).await {
            Ok(()) => "delivered",
            Err(e) => {
                tracing::warn!(share = record.id, partner = %partner.id, error = %e, "share not delivered");
                "failed"
            }
        };
        store::set_status(&self.kernel.db, record.id, status).await?;
        if status == "failed" {
            return Err(AppError::Unavailable(format!(
                "partner {} did not accept share {}",
                partner.id, record.id
            )));
        }
        tracing::info!(share = record.id, partner = %partner.id, fields = record.fields.len(), "data shared with a partner");
        Ok(ShareOutcome {
            share_id: record.id,
            partner: partner.id,
            sent: record.fields,
            stripped: record.stripped,
            status: status.into(),
        })
    }

    /// Every share of the subject's data (P29), oldest first; for the user and the export.
    pub async fn shares_of(&self, subject: SubjectId) -> AppResult<Vec<ShareRecord>> {
        Ok(store::shares_of(&self.kernel.db, subject)
            .await?
            .into_iter()
            .map(|s| ShareRecord {
                id: s.id,
                partner: s.partner,
                purpose: s.purpose,
                basis: s.basis,
                exception_ref: s.exception_ref,
                exception_reason: s.exception_reason,
                fields: s.fields,
                stripped: s.stripped,
                policy_hash: s.policy_hash,
                status: s.status,
                at_ms: s.at_ms,
            })
            .collect())
    }

    /// Releases fields of the subject's data for publication (P30): only under a purpose
    /// that declares the `disclosure` method on separate consent, and only while the
    /// subject's consent record for it stands. Logged like a share, to `public`.
    pub async fn disclose_publicly(
        &self,
        actor: &Actor,
        subject: SubjectId,
        purpose: &str,
        fields: &[String],
        ctx: &GateContext<'_>,
    ) -> AppResult<Disclosure> {
        let regime = self.kernel.gate.regime();
        let decl = regime.current().declaration();
        let Some(p) = decl.purposes.iter().find(|p| p.id == purpose) else {
            return Err(Denial::UnknownPurpose.into());
        };
        if !p.methods.contains(&Method::Disclosure)
            || p.basis != LegalBasis::Consent
            || !p.separate_consent
            || !p.recipients.is_empty()
        {
            return Err(AppError::bad(
                "separate_consent_required",
                format!(
                    "purpose `{purpose}` is not a public disclosure on separate consent: it must \
                     declare method `disclosure`, basis consent, separate_consent and no recipients (P30, L1)"
                ),
            ));
        }
        if fields.is_empty() || fields.len() > 50 {
            return Err(AppError::bad(
                "invalid_field",
                "`fields` must name 1 to 50 fields",
            ));
        }
        self.kernel.fresh(subject).await?;
        // The explicit record: the newest decision about the purpose must be a consent.
        let history = self.kernel.consent_history(subject).await?;
        let given = history
            .iter()
            .rev()
            .find(|r| r.purpose == purpose)
            .is_some_and(|r| r.decision == Decision::Given);
        if !given {
            return Err(Denial::ConsentMissing.into());
        }
        let resolved = self.resolve(subject, fields).await?;
        let categories: Vec<&str> = resolved.iter().map(|r| r.category.as_str()).collect();
        self.kernel.permit(subject, purpose, &categories, ctx)?;
        let mut values = Vec::new();
        for r in &resolved {
            values.push((
                r.name.clone(),
                self.value_of(subject, PUBLIC, &r.name).await?,
            ));
        }
        let record = store::Share {
            id: 0,
            subject,
            partner: PUBLIC.into(),
            purpose: Some(purpose.to_owned()),
            basis: "consent".into(),
            exception_ref: None,
            exception_reason: None,
            fields: resolved.iter().map(|r| r.name.clone()).collect(),
            stripped: Vec::new(),
            policy_hash: regime.current().hash().to_string(),
            actor: actor.name(),
            status: "delivered".into(),
            at_ms: self.now_ms(),
        };
        let share_id = store::log_share(&self.kernel.db, &record).await?;
        Ok(Disclosure {
            share_id,
            fields: values,
        })
    }

    /// Records data received from a third party about a subject (P16): source and consent
    /// commitment, values stored through the gate under the subject's key; the subject is
    /// told by an inbox message. Sensitive fields wait for the subject's confirmation.
    pub async fn receive_inbound(
        &self,
        actor: &Actor,
        input: &InboundInput,
    ) -> AppResult<InboundView> {
        let source = text("source", &input.source, 200)?;
        let commitment = text("consent_commitment", &input.consent_commitment, 1000)?;
        if input.fields.is_empty() || input.fields.len() > 50 {
            return Err(AppError::bad(
                "invalid_field",
                "`fields` must hold 1 to 50 fields",
            ));
        }
        let regime = self.kernel.gate.regime();
        let decl = regime.current().declaration();
        let Some(purpose) = decl.purposes.iter().find(|p| p.id == input.purpose) else {
            return Err(Denial::UnknownPurpose.into());
        };
        let mut rows = Vec::new();
        for f in &input.fields {
            let ok_name = !f.name.is_empty()
                && f.name.len() <= 64
                && f.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok_name || rows.iter().any(|r: &store::InboundField| r.name == f.name) {
                return Err(AppError::bad(
                    "invalid_field",
                    "each field needs a distinct `name` of 1–64 characters a–z, 0–9 and _",
                ));
            }
            if f.value.expose().is_empty() || f.value.expose().len() > 4096 {
                return Err(AppError::bad(
                    "invalid_field",
                    format!("the value of `{}` must be 1–4096 bytes", f.name),
                ));
            }
            let sensitive = purpose.sensitive
                || decl
                    .categories
                    .iter()
                    .any(|c| c.key == f.category && c.sensitive);
            rows.push(store::InboundField {
                name: f.name.clone(),
                stored_as: String::new(),
                category: f.category.clone(),
                sensitive,
                confirmed_ms: None,
            });
        }
        // The gate decides before anything is recorded: the same rules as first-party data.
        let ctx = GateContext::default();
        self.kernel.fresh(input.subject).await?;
        let cats: Vec<&str> = rows.iter().map(|r| r.category.as_str()).collect();
        self.kernel
            .permit(input.subject, &purpose.id, &cats, &ctx)?;
        let now = self.now_ms();
        let db = &self.kernel.db;
        let id = store::add_inbound(
            db,
            input.subject,
            &source,
            &commitment,
            &purpose.id,
            &rows,
            now,
        )
        .await?;
        for f in &input.fields {
            let field = Field::new(&store::inbound_field_name(id, &f.name), &f.category);
            let value = Personal::new(f.value.expose().as_bytes().to_vec());
            if let Err(e) = self
                .kernel
                .store_field(input.subject, &purpose.id, &field, &value, &ctx)
                .await
            {
                for g in &input.fields {
                    self.kernel
                        .personal
                        .delete(input.subject, &store::inbound_field_name(id, &g.name))
                        .await?;
                }
                store::delete_inbound(db, id).await?;
                return Err(e);
            }
        }
        tracing::info!(record = id, actor = %actor.name(), fields = rows.len(), "data received from a third party");
        let notice = Notice::new(
            "我们收到了关于您的信息 / Data about you received",
            format!(
                "来源 / Source: {source}\n项目 / Fields: {}\n在隐私中心查看；敏感信息经您确认后才会使用。 / See them in the privacy center; sensitive ones are used only after you confirm them.",
                input.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        );
        self.notify_subject(input.subject, &notice).await?;
        self.inbound_view(input.subject, id).await
    }

    async fn inbound_view(&self, subject: SubjectId, id: i64) -> AppResult<InboundView> {
        let r = store::inbound_record(&self.kernel.db, subject, id)
            .await?
            .ok_or(AppError::NotFound)?;
        self.view_of(r).await
    }

    async fn view_of(&self, r: store::InboundRecord) -> AppResult<InboundView> {
        let now = self.now_ms();
        let mut fields = Vec::new();
        for f in r.fields {
            let value = self
                .kernel
                .personal
                .get(r.subject, &f.stored_as, now)
                .await?
                .map(|v| utf8_or_base64(v.expose()));
            fields.push(InboundFieldView {
                name: f.name,
                category: f.category,
                sensitive: f.sensitive,
                confirmed: f.confirmed_ms.is_some(),
                value,
            });
        }
        Ok(InboundView {
            id: r.id,
            source: r.source,
            consent_commitment: r.consent_commitment,
            purpose: r.purpose,
            received_ms: r.received_ms,
            fields,
        })
    }

    /// What third parties sent about the subject, with the values (P16).
    pub async fn inbound_of(&self, subject: SubjectId) -> AppResult<Vec<InboundView>> {
        let mut out = Vec::new();
        for r in store::inbound_of(&self.kernel.db, subject).await? {
            out.push(self.view_of(r).await?);
        }
        Ok(out)
    }

    /// The subject confirms the sensitive fields of one delivery; another subject's
    /// delivery is `not_found`.
    pub async fn confirm_inbound(&self, subject: SubjectId, id: i64) -> AppResult<InboundView> {
        store::inbound_record(&self.kernel.db, subject, id)
            .await?
            .ok_or(AppError::NotFound)?;
        store::confirm_inbound(&self.kernel.db, subject, id, self.now_ms()).await?;
        self.inbound_view(subject, id).await
    }

    async fn check_inbound_usable(&self, subject: SubjectId, stored_as: &str) -> AppResult<()> {
        for r in store::inbound_of(&self.kernel.db, subject).await? {
            if let Some(f) = r.fields.iter().find(|f| f.stored_as == stored_as) {
                if f.sensitive && f.confirmed_ms.is_none() {
                    return Err(AppError::bad(
                        "confirmation_required",
                        format!(
                            "`{}` from {} is sensitive and the user has not confirmed it (P16)",
                            f.name, r.source
                        ),
                    ));
                }
                return Ok(());
            }
        }
        Err(AppError::NotFound)
    }

    /// Reads one received field for use: refused with `confirmation_required` while it
    /// is sensitive and unconfirmed.
    pub async fn inbound_value(
        &self,
        subject: SubjectId,
        id: i64,
        name: &str,
    ) -> AppResult<Personal<Vec<u8>>> {
        let stored_as = store::inbound_field_name(id, name);
        self.check_inbound_usable(subject, &stored_as).await?;
        self.kernel
            .personal
            .get(subject, &stored_as, self.now_ms())
            .await?
            .ok_or(AppError::NotFound)
    }
}
