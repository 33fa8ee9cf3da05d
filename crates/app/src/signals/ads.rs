//! Ads, identifiers and Global Privacy Control (P27, L14).
//!
//! - An ad slot is **targeted** (chosen from the viewer's preference traits) only when the
//!   `personalized_ads` purpose is allowed by the gate for the viewer, the request carries
//!   no `Sec-GPC: 1`, and the personalization switch is on; otherwise it is **contextual**
//!   (chosen from the page's context alone). Either way the ad shows the catalog's own
//!   price: nothing about the viewer changes prices or terms (L13).
//! - A GPC signal from a signed-in user is recorded once in the ledger as an objection
//!   (method `gpc`) to every purpose GPC objects to (ads, sharing with partners).
//! - Effectiveness: impressions and clicks of consenting viewers are kept under a keyed
//!   pseudonym of their own domain and the day only; the operator report releases a
//!   group's counts only when at least k distinct users are in it ([`release`]).
//! - Anonymous identifiers: one is needed only while a consent-based purpose that works
//!   without an account is allowed for the subject ([`Signals::identifier_needed`]).

use custos_core::{ConsentMethod, Decision, GateContext, SubjectId};
use custos_policy::LegalBasis;
use custos_store::signals2::{AdEvent, AdGroupStats};
use serde::Serialize;

use super::{Signals, SignalsConfig};
use crate::consent::DecisionInput;
use crate::{AppError, AppResult};

/// The purpose targeted ads and their measurement rest on.
pub const ADS_PURPOSE: &str = "personalized_ads";
/// The pseudonym domain of ad viewers (apart from service-log pseudonyms).
pub const ADS_DOMAIN: &str = "ads";
/// The category of the identifier an ad viewer is counted under.
pub const ADS_ID_CATEGORY: &str = "user.device.cookie_id";
/// Default k of the release rule.
pub const DEFAULT_MIN_GROUP_USERS: u32 = 10;
const MAX_CONTEXT: usize = 64;
const DAY_MS: i64 = 86_400_000;

/// k from `[signals] ads_min_group_users`, checked at start.
pub fn min_group_users(cfg: &SignalsConfig) -> anyhow::Result<u32> {
    let k = cfg.ads_min_group_users.unwrap_or(DEFAULT_MIN_GROUP_USERS);
    if k < 2 {
        anyhow::bail!(
            "[signals] ads_min_group_users must be at least 2 (a group of one is one person); got {k}"
        );
    }
    Ok(k)
}

/// The ad in a slot: a catalog item, at the catalog's price.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdCreative {
    pub ad_id: i64,
    pub item_id: i64,
    pub title_zh: String,
    pub title_en: String,
    pub category: String,
    /// Minor units (fen), as on the item page.
    pub price_min: i64,
    pub price_max: i64,
    pub currency: String,
}

/// An ad slot's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdSlot {
    /// Chosen from the viewer's traits (`true`) or from the context alone (`false`).
    pub targeted: bool,
    /// None when the catalog has nothing to show.
    pub ad: Option<AdCreative>,
}

/// One group of the effectiveness report: counts only for groups of at least k users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdGroupReport {
    pub ad_id: i64,
    pub targeted: bool,
    /// Fewer than k distinct users: no count of any kind is released.
    pub suppressed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impressions: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clicks: Option<i64>,
}

/// The effectiveness report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdReport {
    pub min_group_users: u32,
    pub groups: Vec<AdGroupReport>,
}

/// The release rule: a group's counts are released only when it has at least `k` distinct
/// users; a smaller group is reported as suppressed, with no count at all.
pub fn release(stats: &[AdGroupStats], k: u32) -> Vec<AdGroupReport> {
    stats
        .iter()
        .map(|g| {
            let ok = g.users >= i64::from(k);
            AdGroupReport {
                ad_id: g.ad_id,
                targeted: g.targeted,
                suppressed: !ok,
                users: ok.then_some(g.users),
                impressions: ok.then_some(g.impressions),
                clicks: ok.then_some(g.clicks),
            }
        })
        .collect()
}

fn creative(summary: &str) -> Option<AdCreative> {
    let v: serde_json::Value = serde_json::from_str(summary).ok()?;
    let id = v["id"].as_i64()?;
    Some(AdCreative {
        ad_id: id,
        item_id: id,
        title_zh: v["title_zh"].as_str()?.to_owned(),
        title_en: v["title_en"].as_str()?.to_owned(),
        category: v["category"].as_str()?.to_owned(),
        price_min: v["price_min"].as_i64()?,
        price_max: v["price_max"].as_i64()?,
        currency: v["currency"].as_str()?.to_owned(),
    })
}

async fn first_hit(
    catalog: &crate::catalog::Catalog,
    q: Option<String>,
    filters: custos_search::Filters,
) -> AppResult<Option<AdCreative>> {
    let req = custos_search::SearchRequest {
        q,
        filters,
        sort: None,
        cursor: None,
        limit: 1,
    };
    let out = catalog.search(&req).await?;
    Ok(out.items.first().and_then(|s| creative(s)))
}

impl Signals {
    /// Whether ads may be targeted at, and measured for, `subject` in this request: an
    /// identifier, no GPC, and the gate allows `personalized_ads` for `categories`.
    async fn ads_allowed(
        &self,
        subject: Option<SubjectId>,
        categories: &[&str],
        ctx: &GateContext<'_>,
    ) -> AppResult<Option<SubjectId>> {
        let Some(s) = subject else { return Ok(None) };
        if ctx.gpc {
            return Ok(None);
        }
        self.kernel.fresh(s).await?;
        Ok(self
            .kernel
            .permit(s, ADS_PURPOSE, categories, ctx)
            .is_ok()
            .then_some(s))
    }

    /// Fills an ad slot (P27, L14). `context` is what the page is about (a search, a
    /// category); `account` says the subject is signed in (GPC is then recorded once as an
    /// objection). Targeted only when allowed and the viewer has traits; contextual
    /// otherwise. An impression is recorded only for a viewer the gate allows measuring.
    pub async fn ad_slot(
        &self,
        catalog: &crate::catalog::Catalog,
        subject: Option<SubjectId>,
        account: bool,
        context: Option<&str>,
        ctx: &GateContext<'_>,
    ) -> AppResult<AdSlot> {
        let context = match context.map(str::trim) {
            Some(c) if c.chars().count() > MAX_CONTEXT || c.chars().any(char::is_control) => {
                return Err(AppError::bad(
                    "invalid_context",
                    format!("`context` is at most {MAX_CONTEXT} visible characters"),
                ))
            }
            Some("") | None => None,
            Some(c) => Some(c.to_owned()),
        };
        if let (Some(s), true, true) = (subject, account, ctx.gpc) {
            self.record_gpc_objection(s).await?;
        }
        let mut slot = AdSlot {
            targeted: false,
            ad: None,
        };
        let targeting = self
            .ads_allowed(subject, &[super::TRAIT_CATEGORY], ctx)
            .await?;
        if let Some(s) = targeting {
            if self.personalization_enabled(s).await? {
                let mut traits = self.traits(s).await?;
                traits.retain(|t| t.weight > 0.0);
                traits.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(a.key.cmp(&b.key)));
                for t in traits.iter().take(3) {
                    let mut f = custos_search::Filters::default();
                    if let Some(c) = t.key.strip_prefix("category:") {
                        f.category = Some(c.to_owned());
                    } else if let Some(tag) = t.key.strip_prefix("tag:") {
                        f.tags = vec![tag.to_owned()];
                    } else {
                        continue;
                    }
                    if let Some(ad) = first_hit(catalog, None, f).await? {
                        slot = AdSlot {
                            targeted: true,
                            ad: Some(ad),
                        };
                        break;
                    }
                }
            }
        }
        if slot.ad.is_none() {
            if let Some(c) = &context {
                slot.ad = first_hit(catalog, Some(c.clone()), Default::default()).await?;
            }
            if slot.ad.is_none() {
                slot.ad = first_hit(catalog, None, Default::default()).await?;
            }
        }
        if let Some(ad) = &slot.ad {
            self.record_ad_event(subject, ad.ad_id, slot.targeted, "impression", ctx)
                .await?;
        }
        Ok(slot)
    }

    /// Records a click on an ad shown in a slot (`targeted` as the slot said); kept only
    /// for a viewer the gate allows measuring. Returns whether it was kept.
    pub async fn ad_click(
        &self,
        catalog: &crate::catalog::Catalog,
        subject: Option<SubjectId>,
        ad_id: i64,
        targeted: bool,
        ctx: &GateContext<'_>,
    ) -> AppResult<bool> {
        catalog.item(ad_id).await?;
        self.record_ad_event(subject, ad_id, targeted, "click", ctx)
            .await
    }

    async fn record_ad_event(
        &self,
        subject: Option<SubjectId>,
        ad_id: i64,
        targeted: bool,
        kind: &str,
        ctx: &GateContext<'_>,
    ) -> AppResult<bool> {
        let Some(s) = self.ads_allowed(subject, &[ADS_ID_CATEGORY], ctx).await? else {
            return Ok(false);
        };
        let now = self.kernel.clock.now_ms();
        self.ads
            .record(&AdEvent {
                ad_id,
                targeted,
                kind: kind.to_owned(),
                user_key: self.ads_user_key(s),
                day_ms: now.div_euclid(DAY_MS) * DAY_MS,
                expires_at_ms: self.kernel.retention_end(ADS_PURPOSE, now),
            })
            .await?;
        Ok(true)
    }

    /// The keyed pseudonym a subject's ad events are kept under.
    pub fn ads_user_key(&self, subject: SubjectId) -> [u8; 16] {
        self.kernel
            .ring
            .pseudonym(ADS_DOMAIN, subject.to_string().as_bytes())
    }

    /// The operator's effectiveness report: per ad and targeting, counts only for groups
    /// of at least k distinct users; smaller groups only as suppressed.
    pub async fn ad_report(&self) -> AppResult<AdReport> {
        let stats = self.ads.group_stats().await?;
        Ok(AdReport {
            min_group_users: self.ads_min_group_users,
            groups: release(&stats, self.ads_min_group_users),
        })
    }

    /// Records a GPC signal of a signed-in subject in the ledger as an objection (method
    /// `gpc`) to each purpose GPC objects to, unless the newest decision about that purpose
    /// already is one: a signal repeated on every request is recorded once. Returns how
    /// many decisions were recorded.
    pub async fn record_gpc_objection(&self, subject: SubjectId) -> AppResult<usize> {
        let _one_at_a_time = self.gpc_lock.lock().await;
        self.kernel.fresh(subject).await?;
        let history = self.kernel.consent_history(subject).await?;
        let regime = self.kernel.gate.regime();
        let mut decisions = Vec::new();
        for (r, info) in regime.purposes() {
            if !info.gpc_objectable || info.basis != LegalBasis::Consent {
                continue;
            }
            let newest = history.iter().rev().find(|rec| rec.purpose == info.id);
            if newest.is_some_and(|rec| rec.method == ConsentMethod::Gpc) {
                continue;
            }
            let decision = if self.kernel.gate.status(subject, r).is_ok() {
                Decision::Withdrawn
            } else {
                Decision::Refused
            };
            decisions.push(DecisionInput {
                purpose: info.id.clone(),
                decision,
            });
        }
        if decisions.is_empty() {
            return Ok(0);
        }
        self.kernel
            .record_decisions(subject, false, &decisions, ConsentMethod::Gpc)
            .await?;
        self.after_decisions(subject, &decisions).await?;
        Ok(decisions.len())
    }

    /// Whether the subject still needs an anonymous identifier: some consent-based purpose
    /// that works without an account is allowed for it. Without one, no cookie is set, and
    /// an existing one is cleared (P27).
    pub async fn identifier_needed(&self, subject: SubjectId) -> AppResult<bool> {
        self.kernel.fresh(subject).await?;
        let regime = self.kernel.gate.regime();
        let needed = regime.purposes().any(|(r, info)| {
            info.basis == LegalBasis::Consent
                && info.anonymous
                && self.kernel.gate.status(subject, r).is_ok()
        });
        Ok(needed)
    }

    /// Follows recorded decisions: a purpose no longer given loses what this module kept
    /// under it (ad events under `personalized_ads`, personalized inbox messages under
    /// `personalized_push`).
    pub async fn after_decisions(
        &self,
        subject: SubjectId,
        decisions: &[DecisionInput],
    ) -> AppResult<()> {
        // The kernel already did this when it recorded them; kept (idempotent) for callers
        // that record through other means. One code path: `push::forget_withdrawn`.
        for d in decisions.iter().filter(|d| d.decision != Decision::Given) {
            super::push::forget_withdrawn(&self.kernel, subject, &d.purpose).await?;
        }
        Ok(())
    }

    /// Erasure: the subject's inbox and ad events (devices are personal fields, erased
    /// with the subject's key by the kernel).
    pub async fn erase_inbox_and_ads(&self, subject: SubjectId) -> AppResult<u64> {
        let a = self.inbox.delete_subject(subject).await?;
        let b = self.ads.delete_user(&self.ads_user_key(subject)).await?;
        Ok(a + b)
    }
}
