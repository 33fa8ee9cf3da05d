//! Signals and personalization (issue 5): current-only location, device information,
//! pseudonymized service logs, cookies and identifiers, preference profiles, personalized
//! feed, push and ads with an off switch. Every write passes the kernel's purpose gate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use custos_core::{GateContext, SubjectId};
use custos_store::signals::{EventStore, StoredEvent, SwitchStore};
use serde::{Deserialize, Serialize};

use crate::{AppError, AppResult, Kernel};

pub mod ads;
pub mod device;
pub mod feed;
pub mod profile;
pub mod push;

/// The purpose (separate consent) under which the present location is kept.
pub const LOCATION_PURPOSE: &str = "location";
/// The personal field holding the subject's one coarse geohash.
pub const LOCATION_FIELD: &str = "location";
/// The user's location switch.
pub const LOCATION_SWITCH: &str = "location";

/// `[signals]` in `custos.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalsConfig {
    /// Audience segments (P12), see [`profile::SegmentConfig`]; validated at start.
    #[serde(default)]
    pub segments: Vec<profile::SegmentConfig>,
    /// k: ad effectiveness counts are released only for groups of at least this many
    /// distinct users (default 10, at least 2).
    pub ads_min_group_users: Option<u32>,
    /// `none` (default: messages stay in the inbox) or `http` (the push channel's webhook).
    pub push_gateway: Option<String>,
    /// The webhook URL for `push_gateway = "http"`.
    pub push_http_url: Option<String>,
    /// A file holding the webhook's bearer token.
    pub push_http_token_file: Option<std::path::PathBuf>,
    /// Per-attempt timeout of the webhook (default 5000 ms).
    pub push_http_timeout_ms: Option<u64>,
}

/// The signals service.
#[derive(Debug)]
pub struct Signals {
    pub kernel: Arc<Kernel>,
    pub switches: SwitchStore,
    pub events: EventStore,
    /// Service-log events dropped because their purpose was not consented (P10).
    pub dropped_unconsented: AtomicU64,
    /// Profile reads made for ranking (a counter the tests use as a spy, L5).
    pub profile_reads: AtomicU64,
    /// The configured audience segments (P12).
    pub segments: Vec<profile::SegmentConfig>,
    /// Ad impressions and clicks, de-identified (P27).
    pub ads: custos_store::signals2::AdStore,
    /// k of the ad effectiveness release rule.
    pub ads_min_group_users: u32,
    /// Serializes recording GPC objections, so one signal is recorded once (L14).
    pub gpc_lock: tokio::sync::Mutex<()>,
    /// The per-user inbox.
    pub inbox: custos_store::signals2::InboxStore,
    /// Where pushes go.
    pub push: Arc<dyn push::PushGateway>,
    /// Residency (P20): checks each push against the push sink's region and declared
    /// transfer; set by `PolicyOps::open` (issue 7).
    pub(crate) transfer_check:
        std::sync::OnceLock<std::sync::Weak<crate::ops::revisions::PolicyOps>>,
}

/// The subject's location state as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocationState {
    /// The user's location switch (off until turned on).
    pub enabled: bool,
    /// The present coarse area (geohash of at most 5 characters), if known.
    pub geohash: Option<String>,
}

/// The purpose preference traits are derived and used under (P12).
pub const TRAITS_PURPOSE: &str = "personalized_feed";
/// The category of a derived preference trait.
pub const TRAIT_CATEGORY: &str = "user.demographic.profile";
const TRAIT_PREFIX: &str = "trait:";
/// The user's personalization switch (L5); on unless turned off (consent still needed).
pub const PERSONALIZATION_SWITCH: &str = "personalization";

/// One preference trait with its lineage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trait {
    /// What it is an affinity for, e.g. `tag:连衣裙` or `category:shoes`.
    pub key: String,
    pub weight: f64,
    /// The purpose under which it was derived (withdrawing it deletes the trait).
    pub purpose: String,
    pub updated_at_ms: i64,
}

/// The purpose service-log events are collected under (P10).
pub const LOGS_PURPOSE: &str = "service_logs_analytics";
/// The pseudonym domain of service-log subjects (P11).
pub const EVENTS_DOMAIN: &str = "events";
/// Most events in one batch.
pub const MAX_BATCH: usize = 1_000;
/// How far in the future an event's time may be (client clocks drift a little).
pub const MAX_FUTURE_SKEW_MS: i64 = 5 * 60 * 1_000;
/// How old an event may be when it arrives (offline clients send late).
pub const MAX_AGE_MS: i64 = 7 * 24 * 60 * 60 * 1_000;
const MAX_TEXT: usize = 256;

/// One service-log event as a client sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// `browse`, `click`, `search`, `bookmark`, `share` or `download`.
    pub kind: String,
    /// When it happened, in milliseconds since the epoch (client clock).
    pub at_ms: i64,
    /// What it concerned (an item id, a query).
    #[serde(default)]
    pub target: Option<String>,
    /// The client's address as it saw it; the server-observed address is used otherwise.
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub carrier: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
}

/// What an ingest did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    pub accepted: u64,
    /// Events whose purpose is not consented: dropped, never stored.
    pub dropped_unconsented: u64,
}

/// The data category an event kind records, or `None` for an unknown kind.
pub fn event_category(kind: &str) -> Option<&'static str> {
    match kind {
        "browse" | "click" | "bookmark" | "share" => Some("user.behavior.browsing_history"),
        "search" => Some("user.behavior.search_history"),
        "download" => Some("user.behavior.media_consumption"),
        _ => None,
    }
}

/// Drops the IPv4 last octet or the IPv6 last 80 bits (P11, L16).
pub fn truncate_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], 0))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return truncate_ip(IpAddr::V4(v4));
            }
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
    }
}

fn text(field: &'static str, v: &Option<String>) -> AppResult<Option<String>> {
    match v {
        Some(t) if t.chars().count() > MAX_TEXT || t.chars().any(char::is_control) => {
            Err(AppError::bad(
                "invalid_event",
                format!("`{field}` is too long or malformed"),
            ))
        }
        Some(t) if t.is_empty() => Ok(None),
        other => Ok(other.clone()),
    }
}

impl Signals {
    pub async fn open(kernel: Arc<Kernel>, cfg: &SignalsConfig) -> anyhow::Result<Arc<Signals>> {
        profile::validate_segments(&cfg.segments)?;
        let switches = SwitchStore::new(kernel.db.clone());
        let events = EventStore::new(kernel.db.clone());
        let kernel_db = kernel.db.clone();
        Ok(Arc::new(Signals {
            kernel,
            switches,
            events,
            dropped_unconsented: AtomicU64::new(0),
            profile_reads: AtomicU64::new(0),
            segments: cfg.segments.clone(),
            ads: custos_store::signals2::AdStore::new(kernel_db.clone()),
            ads_min_group_users: ads::min_group_users(cfg)?,
            gpc_lock: tokio::sync::Mutex::new(()),
            inbox: custos_store::signals2::InboxStore::new(kernel_db),
            push: push::gateway_from_config(cfg)?,
            transfer_check: std::sync::OnceLock::new(),
        }))
    }

    /// Whether the subject's location switch is on (off unless turned on).
    pub async fn location_enabled(&self, subject: SubjectId) -> AppResult<bool> {
        Ok(self
            .switches
            .get(subject, LOCATION_SWITCH)
            .await?
            .unwrap_or(false))
    }

    /// Turns the location switch on or off. Off deletes the stored area at once and stops
    /// intake (P8, L16).
    pub async fn set_location_enabled(&self, subject: SubjectId, enabled: bool) -> AppResult<()> {
        let now = self.kernel.clock.now_ms();
        self.switches
            .set(subject, LOCATION_SWITCH, enabled, now)
            .await?;
        if !enabled {
            self.kernel.personal.delete(subject, LOCATION_FIELD).await?;
        }
        Ok(())
    }

    /// Takes a reported position: refused unless the switch is on and the `location`
    /// purpose is consented; coarsened to a geohash of at most 5 characters before it is
    /// stored, overwriting the previous one. Returns the stored area.
    pub async fn report_location(
        &self,
        subject: SubjectId,
        lat: f64,
        lon: f64,
        ctx: &GateContext<'_>,
    ) -> AppResult<String> {
        if !self.location_enabled(subject).await? {
            return Err(AppError::bad(
                "location_off",
                "the location switch is off; turn it on to share your area",
            ));
        }
        self.kernel.fresh(subject).await?;
        let hash = self.kernel.store_location(subject, lat, lon, ctx).await?;
        // A switch-off that raced with this report wins: nothing survives it.
        if !self.location_enabled(subject).await? {
            self.kernel.personal.delete(subject, LOCATION_FIELD).await?;
            return Err(AppError::bad(
                "location_off",
                "the location switch is off; turn it on to share your area",
            ));
        }
        Ok(hash)
    }

    /// The switch and the present area. The area is shown only while the switch is on and
    /// the stored value has not expired.
    pub async fn location(&self, subject: SubjectId) -> AppResult<LocationState> {
        let enabled = self.location_enabled(subject).await?;
        let geohash = if enabled {
            let now = self.kernel.clock.now_ms();
            self.kernel
                .personal
                .get(subject, LOCATION_FIELD, now)
                .await?
                .map(|v| String::from_utf8_lossy(v.expose()).into_owned())
        } else {
            None
        };
        Ok(LocationState { enabled, geohash })
    }

    /// The present area for a location-based feature, or `location_required` when the
    /// switch is off or no area is known; other features never call this.
    pub async fn require_location(&self, subject: SubjectId) -> AppResult<String> {
        self.location(subject).await?.geohash.ok_or_else(|| {
            AppError::bad(
                "location_required",
                "this feature needs your location; turn location on and share it",
            )
        })
    }

    /// Takes a batch of service-log events (P10, P11, L16). The whole batch is refused with
    /// a stable code if it is empty, larger than [`MAX_BATCH`], or holds a malformed or
    /// clock-skewed event. Each event passes the purpose gate for its category; events
    /// not consented are dropped and counted. Kept events lose the subject (a keyed
    /// pseudonym replaces it) and the IP host part; attributes whose category the purpose
    /// does not declare are not kept. One multi-row INSERT stores the batch.
    pub async fn ingest(
        &self,
        subject: Option<SubjectId>,
        observed_ip: Option<IpAddr>,
        batch: &[EventInput],
        ctx: &GateContext<'_>,
    ) -> AppResult<IngestOutcome> {
        if batch.is_empty() {
            return Err(AppError::bad("batch_empty", "send at least one event"));
        }
        if batch.len() > MAX_BATCH {
            return Err(AppError::bad(
                "batch_too_large",
                format!("send at most {MAX_BATCH} events per batch"),
            ));
        }
        let now = self.kernel.clock.now_ms();
        let mut checked = Vec::with_capacity(batch.len());
        for (i, e) in batch.iter().enumerate() {
            let category = event_category(&e.kind).ok_or_else(|| {
                AppError::bad(
                    "invalid_event",
                    format!("event {i}: unknown kind `{}`", e.kind),
                )
            })?;
            if e.at_ms > now + MAX_FUTURE_SKEW_MS || e.at_ms < now - MAX_AGE_MS {
                return Err(AppError::bad(
                    "clock_skew",
                    format!("event {i}: its time is too far from the server's clock"),
                ));
            }
            let ip = match &e.ip {
                Some(t) => Some(t.trim().parse::<IpAddr>().map_err(|_| {
                    AppError::bad(
                        "invalid_event",
                        format!("event {i}: `ip` is not an address"),
                    )
                })?),
                None => observed_ip,
            };
            let target = text("target", &e.target)?;
            let carrier = text("carrier", &e.carrier)?;
            let language = text("language", &e.language)?;
            checked.push((category, e, ip, target, carrier, language));
        }
        let Some(subject) = subject else {
            // No identifier, so no consent: nothing may be kept.
            let n = checked.len() as u64;
            self.dropped_unconsented.fetch_add(n, Ordering::Relaxed);
            return Ok(IngestOutcome {
                accepted: 0,
                dropped_unconsented: n,
            });
        };
        self.kernel.fresh(subject).await?;
        // Preference traits, under their own purpose and switch (P12).
        self.derive_traits(subject, batch, ctx).await?;
        let pseudonym = self
            .kernel
            .ring
            .pseudonym(EVENTS_DOMAIN, subject.to_string().as_bytes());
        let expires = self.kernel.retention_end(LOGS_PURPOSE, now);
        let allowed = |cats: &[&str]| self.kernel.permit(subject, LOGS_PURPOSE, cats, ctx).is_ok();
        const PSEUDO: &str = "user.unique_id.pseudonymous";
        let keep_ip = allowed(&[PSEUDO, "user.device.ip_address"]);
        let keep_device = allowed(&[PSEUDO, "user.device"]);
        let mut rows = Vec::with_capacity(checked.len());
        let mut dropped = 0u64;
        let mut verdicts: Vec<(&str, bool)> = Vec::new();
        for (category, e, ip, target, carrier, language) in checked {
            let ok = match verdicts.iter().find(|(c, _)| *c == category) {
                Some((_, ok)) => *ok,
                None => {
                    let ok = allowed(&[PSEUDO, category]);
                    verdicts.push((category, ok));
                    ok
                }
            };
            if !ok {
                dropped += 1;
                continue;
            }
            rows.push(StoredEvent {
                pseudonym,
                purpose: LOGS_PURPOSE.to_owned(),
                kind: e.kind.clone(),
                target,
                ip_prefix: ip.filter(|_| keep_ip).map(|ip| truncate_ip(ip).to_string()),
                carrier: carrier.filter(|_| keep_device),
                language: language.filter(|_| keep_device),
                at_ms: e.at_ms,
                expires_at_ms: expires,
            });
        }
        let accepted = if rows.is_empty() {
            0
        } else {
            self.events.append(&rows).await?
        };
        self.dropped_unconsented
            .fetch_add(dropped, Ordering::Relaxed);
        Ok(IngestOutcome {
            accepted,
            dropped_unconsented: dropped,
        })
    }

    /// The stored events of a subject (for its own access and tests).
    pub async fn events_of(&self, subject: SubjectId) -> AppResult<Vec<StoredEvent>> {
        let pseudonym = self
            .kernel
            .ring
            .pseudonym(EVENTS_DOMAIN, subject.to_string().as_bytes());
        Ok(self.events.for_pseudonym(&pseudonym).await?)
    }

    /// Deletes events past their retention.
    pub async fn purge_expired_events(&self) -> AppResult<u64> {
        Ok(self
            .events
            .purge_expired(self.kernel.clock.now_ms())
            .await?)
    }

    /// Adds `delta` to the affinity trait `key`, derived under the personalization purpose
    /// (the gate refuses it without consent), keeping that purpose as its lineage (P12).
    pub async fn add_affinity(
        &self,
        subject: SubjectId,
        key: &str,
        delta: f64,
        ctx: &GateContext<'_>,
    ) -> AppResult<f64> {
        if key.is_empty()
            || key.chars().count() > 64
            || key.chars().any(|c| c.is_control() || c.is_whitespace())
            || !delta.is_finite()
        {
            return Err(AppError::bad(
                "invalid_trait",
                "a trait key is 1–64 visible characters",
            ));
        }
        let field_name = format!("{TRAIT_PREFIX}{key}");
        let now = self.kernel.clock.now_ms();
        let current = self
            .kernel
            .personal
            .get(subject, &field_name, now)
            .await?
            .and_then(|v| std::str::from_utf8(v.expose()).ok()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        let weight = current + delta;
        let field = custos_store::personal::Field::new(&field_name, TRAIT_CATEGORY);
        self.kernel
            .store_field(
                subject,
                TRAITS_PURPOSE,
                &field,
                &custos_core::Personal::new(weight.to_string().into_bytes()),
                ctx,
            )
            .await?;
        Ok(weight)
    }

    /// The subject's traits with where each came from (P12).
    pub async fn traits(&self, subject: SubjectId) -> AppResult<Vec<Trait>> {
        let now = self.kernel.clock.now_ms();
        let mut out = Vec::new();
        for info in self.kernel.personal.list(subject).await? {
            let Some(key) = info.field.strip_prefix(TRAIT_PREFIX) else {
                continue;
            };
            let Some(v) = self.kernel.personal.get(subject, &info.field, now).await? else {
                continue;
            };
            let weight = std::str::from_utf8(v.expose())
                .ok()
                .and_then(|t| t.parse::<f64>().ok())
                .unwrap_or(0.0);
            out.push(Trait {
                key: key.to_owned(),
                weight,
                purpose: info.purpose,
                updated_at_ms: info.updated_at_ms,
            });
        }
        Ok(out)
    }

    /// Deletes one trait; `not_found` if there is none.
    pub async fn delete_trait(&self, subject: SubjectId, key: &str) -> AppResult<()> {
        if self
            .kernel
            .personal
            .delete(subject, &format!("{TRAIT_PREFIX}{key}"))
            .await?
        {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }

    /// Deletes every trait of the subject; returns how many there were.
    pub async fn reset_traits(&self, subject: SubjectId) -> AppResult<u64> {
        let mut n = 0;
        for info in self.kernel.personal.list(subject).await? {
            if info.field.starts_with(TRAIT_PREFIX)
                && self.kernel.personal.delete(subject, &info.field).await?
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The personalization switch (L5): on unless the user turned it off.
    pub async fn personalization_enabled(&self, subject: SubjectId) -> AppResult<bool> {
        Ok(self
            .switches
            .get(subject, PERSONALIZATION_SWITCH)
            .await?
            .unwrap_or(true))
    }

    /// Turns personalization on or off; the very next response follows it.
    pub async fn set_personalization_enabled(
        &self,
        subject: SubjectId,
        enabled: bool,
    ) -> AppResult<()> {
        let now = self.kernel.clock.now_ms();
        self.switches
            .set(subject, PERSONALIZATION_SWITCH, enabled, now)
            .await?;
        Ok(())
    }

    /// Whether a response for `subject` may be personalized: the switch is on and the
    /// personalization purpose is consented. Reads no profile.
    pub async fn personalized(
        &self,
        subject: Option<SubjectId>,
        ctx: &GateContext<'_>,
    ) -> AppResult<bool> {
        let Some(subject) = subject else {
            return Ok(false);
        };
        if !self.personalization_enabled(subject).await? {
            return Ok(false);
        }
        self.kernel.fresh(subject).await?;
        Ok(self
            .kernel
            .permit(subject, TRAITS_PURPOSE, &[TRAIT_CATEGORY], ctx)
            .is_ok())
    }

    /// The profile to rank with, or `None` (and no profile read at all) when the response
    /// must not be personalized (L5).
    pub async fn profile_for_ranking(
        &self,
        subject: Option<SubjectId>,
        ctx: &GateContext<'_>,
    ) -> AppResult<Option<Vec<Trait>>> {
        match subject {
            Some(s) if self.personalized(Some(s), ctx).await? => {
                self.profile_reads.fetch_add(1, Ordering::Relaxed);
                Ok(Some(self.traits(s).await?))
            }
            _ => Ok(None),
        }
    }
}
