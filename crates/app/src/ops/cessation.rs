//! Cessation and shutdown (P18, P22). An operator discontinues a declared feature or the
//! whole service: collection stops at once — the gate denies its purposes
//! (`service_ceased`) and its HTTP endpoints answer `410 feature_discontinued` (one
//! route table, [`FEATURE_ROUTES`], read by one middleware) — the affected users are
//! told, and once the configured period has passed its data is deleted: the purposes'
//! personal fields and purpose-specific stores for a feature, every account and its data
//! for the service. Progress is kept with the cessation for operators.
//!
//! Every process follows the cessations table (about once a second), so a cessation
//! made through one process or the CLI stops collection in all of them.

use std::collections::BTreeSet;
use std::sync::Weak;
use std::time::Duration;

use custos_policy::{LegalBasis, Policy};
pub use custos_store::cessation::Cessation;
use custos_store::cessation::{self as store, NewCessation, SERVICE};
use custos_store::revisions::{account_subjects, subjects_with_fields};

use super::revisions::PolicyOps;
use crate::signals::push::Notice;
use crate::{AppError, AppResult};

/// The feature that stays when the whole service stops: users keep their privacy center
/// (consents, receipts, rights, export) until their data is erased.
pub const KEPT_ON_SHUTDOWN: &str = "privacy_center";

/// Path patterns of each feature's endpoints (`*` matches one segment), most specific
/// first. A request under a discontinued feature answers `410 feature_discontinued`,
/// except `DELETE`: users can always remove what they stored.
pub const FEATURE_ROUTES: &[(&str, &str)] = &[
    ("/api/v1/items/*/comments", "bookmarks_comments"),
    ("/api/v1/me/bookmarks", "bookmarks_comments"),
    ("/api/v1/me/downloads", "bookmarks_comments"),
    ("/api/v1/downloads", "bookmarks_comments"),
    ("/api/v1/me/shares", "bookmarks_comments"),
    ("/api/v1/shares", "bookmarks_comments"),
    ("/api/v1/me/comments", "bookmarks_comments"),
    ("/api/v1/location", "location_nearby"),
    ("/api/v1/feed", "personalized_feed"),
    ("/api/v1/me/traits", "personalized_feed"),
    ("/api/v1/me/segments", "personalized_feed"),
    ("/api/v1/me/push", "push"),
    ("/api/v1/ads", "ads"),
    ("/api/v1/me/partner-shares", "partner_offers"),
    ("/api/v1/events", "improve_app"),
    ("/api/v1/device", "improve_app"),
    ("/api/v1/me/device", "improve_app"),
    ("/api/v1/me/profile", "profile"),
    ("/api/v1/auth/oidc", "external_login"),
    ("/api/v1/me/oidc", "external_login"),
    ("/api/v1/me/guardian", "guardian"),
    ("/api/v1/guardian", "guardian"),
    ("/api/v1/me/birth-date", "guardian"),
    ("/api/v1/auth/sms", "account"),
    ("/api/v1/auth/password", "account"),
    ("/api/v1/items", "browse_search"),
    ("/api/v1/media", "browse_search"),
];

/// Whether `path` falls under `pattern` (segment-wise prefix; `*` is any one segment).
fn matches(pattern: &str, path: &str) -> bool {
    let mut segs = path.trim_end_matches('/').split('/');
    for want in pattern.split('/') {
        match segs.next() {
            Some(got) if want == "*" || want == got => {}
            _ => return false,
        }
    }
    true
}

/// The feature an API path belongs to, if any.
pub fn feature_of_path(path: &str) -> Option<&'static str> {
    FEATURE_ROUTES
        .iter()
        .find(|(pattern, _)| matches(pattern, path))
        .map(|(_, f)| *f)
}

/// What this process knows of the cessations, for the gate and the middleware.
#[derive(Debug, Clone, Default)]
pub struct CessationView {
    /// Discontinued feature → when its data goes (ms).
    pub features: Vec<(String, i64)>,
    /// The whole service stopped; data goes at this time.
    pub service: Option<i64>,
    /// Purposes whose collection stopped.
    pub purposes: BTreeSet<String>,
}

impl CessationView {
    /// The discontinued feature a request hits, with the erasure time.
    pub fn blocks(&self, feature: &str) -> Option<i64> {
        if let Some(at) = self.features.iter().find(|(f, _)| f == feature) {
            return Some(at.1);
        }
        self.service.filter(|_| feature != KEPT_ON_SHUTDOWN)
    }
}

/// What to discontinue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CessationTarget {
    Feature(String),
    Service,
}

/// The purposes whose collection stops: for a feature, those no running feature still
/// relies on; for the service, every purpose not required by law (the privacy center's
/// records and security logs keep their legal duties).
fn ceased_purposes(policy: &Policy, discontinued: &[String], service: bool) -> Vec<String> {
    policy
        .purposes()
        .iter()
        .filter(|p| {
            if service {
                return p.basis != LegalBasis::LegalObligation;
            }
            let users: Vec<&str> = policy
                .features()
                .iter()
                .filter(|f| f.purposes.contains(&p.id))
                .map(|f| f.id.as_str())
                .collect();
            !users.is_empty() && users.iter().all(|f| discontinued.iter().any(|d| d == f))
        })
        .map(|p| p.id.clone())
        .collect()
}

/// Parses `30d`, `12h`, `90m`, `45s` or plain seconds into milliseconds (at most 10 years).
pub fn parse_period(s: &str) -> AppResult<i64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| AppError::bad("invalid_period", "a period is like 30d, 12h, 90m or 45s"))?;
    let unit_ms = match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        "s" => 1_000,
        _ => {
            return Err(AppError::bad(
                "invalid_period",
                "a period is like 30d, 12h, 90m or 45s",
            ))
        }
    };
    let ms = n.saturating_mul(unit_ms);
    if ms > 3_650 * 86_400_000 {
        return Err(AppError::bad(
            "invalid_period",
            "a period is at most 3650 days",
        ));
    }
    Ok(ms)
}

impl PolicyOps {
    /// Discontinues a feature or the service: collection stops in this process at once
    /// (and in the others within about a second), affected users are told, and their data
    /// is erased once `erase_after_ms` has passed ([`PolicyOps::run_due_cessations`]).
    pub async fn discontinue(
        &self,
        target: &CessationTarget,
        erase_after_ms: i64,
        reason: &str,
    ) -> AppResult<Cessation> {
        let regime = self.kernel.gate.regime();
        let policy = regime.current();
        let reason = reason.trim();
        if reason.chars().count() > 500 || reason.chars().any(char::is_control) {
            return Err(AppError::bad(
                "invalid_reason",
                "the reason is at most 500 characters on one line",
            ));
        }
        if erase_after_ms < 0 {
            return Err(AppError::bad(
                "invalid_period",
                "the period cannot be negative",
            ));
        }
        let existing = store::list(&self.kernel.db).await?;
        let mut discontinued: Vec<String> = existing
            .iter()
            .filter(|c| c.scope == "feature")
            .map(|c| c.feature.clone())
            .collect();
        let (scope, feature, purposes) = match target {
            CessationTarget::Feature(f) => {
                if policy.feature(f).is_none() {
                    return Err(AppError::bad(
                        "unknown_feature",
                        format!("feature `{f}` is not declared in the current policy"),
                    ));
                }
                if f == KEPT_ON_SHUTDOWN {
                    return Err(AppError::bad(
                        "feature_required",
                        "the privacy center stays while any data is kept (P33)",
                    ));
                }
                discontinued.push(f.clone());
                let own: Vec<String> = ceased_purposes(policy, &discontinued, false)
                    .into_iter()
                    .filter(|p| policy.feature(f).is_some_and(|x| x.purposes.contains(p)))
                    .collect();
                ("feature", f.as_str(), own)
            }
            CessationTarget::Service => ("service", SERVICE, ceased_purposes(policy, &[], true)),
        };
        let now = self.kernel.clock.now_ms();
        let c = store::insert(
            &self.kernel.db,
            &NewCessation {
                scope,
                feature,
                purposes: &purposes,
                reason,
                ceased_at_ms: now,
                erase_after_ms: now + erase_after_ms,
            },
        )
        .await?
        .ok_or_else(|| {
            AppError::bad(
                "already_discontinued",
                format!("`{feature}` is already discontinued"),
            )
        })?;
        self.refresh_cessations().await?;

        let subjects = self.affected_subjects(&c).await?;
        let notice = cessation_notice(policy, &c, reason);
        let notified = self.notify_all(&subjects, &notice).await;
        store::set_notified(&self.kernel.db, c.id, notified).await?;
        tracing::info!(feature = %c.feature, purposes = ?c.purposes, notified, "collection stopped");
        Ok(Cessation { notified, ..c })
    }

    /// Every cessation with its erasure progress.
    pub async fn cessations(&self) -> AppResult<Vec<Cessation>> {
        Ok(store::list(&self.kernel.db).await?)
    }

    /// The erasure time of the discontinued feature a request path falls under.
    pub fn discontinued_path(&self, path: &str) -> Option<(&'static str, i64)> {
        let feature = feature_of_path(path)?;
        let view = self.cessations.read().unwrap_or_else(|e| e.into_inner());
        view.blocks(feature).map(|at| (feature, at))
    }

    /// Reloads the cessations and applies them to the gate.
    pub async fn refresh_cessations(&self) -> AppResult<()> {
        let all = store::list(&self.kernel.db).await?;
        let mut view = CessationView::default();
        for c in &all {
            if c.scope == "service" {
                view.service = Some(c.erase_after_ms);
            } else {
                view.features.push((c.feature.clone(), c.erase_after_ms));
            }
            view.purposes.extend(c.purposes.iter().cloned());
        }
        *self.cessations.write().unwrap_or_else(|e| e.into_inner()) = view;
        self.apply_cessations();
        Ok(())
    }

    /// Sets the gate's ceased purposes from the view, against the current regime (purpose
    /// handles change with the regime, so this runs after every policy switch too).
    pub(crate) fn apply_cessations(&self) {
        let regime = self.kernel.gate.regime();
        let view = self.cessations.read().unwrap_or_else(|e| e.into_inner());
        let refs: Vec<_> = view
            .purposes
            .iter()
            .filter_map(|p| regime.purpose(p))
            .collect();
        self.kernel.gate.set_ceased(&refs);
    }

    async fn affected_subjects(&self, c: &Cessation) -> AppResult<Vec<custos_core::SubjectId>> {
        let regime = self.kernel.gate.regime();
        let policy = regime.current();
        let mut out = if c.scope == "service"
            || c.purposes.iter().any(|p| {
                policy
                    .purpose(p)
                    .is_some_and(|pp| pp.basis != LegalBasis::Consent)
            }) {
            // A basic purpose concerns every account.
            account_subjects(&self.kernel.db).await?
        } else {
            self.consenting_subjects(&c.purposes).await?
        };
        out.extend(subjects_with_fields(&self.kernel.db, &c.purposes).await?);
        out.sort_by_key(|s| s.as_u128());
        out.dedup();
        Ok(out)
    }

    /// Erases the data of every cessation whose period has passed and records progress.
    /// Idempotent: a run interrupted half-way is completed by the next.
    pub async fn run_due_cessations(&self) -> AppResult<Vec<Cessation>> {
        let now = self.kernel.clock.now_ms();
        let mut done = Vec::new();
        for c in store::list(&self.kernel.db).await? {
            if c.completed_at_ms.is_some() || c.erase_after_ms > now {
                continue;
            }
            let subjects = self.affected_subjects(&c).await?;
            let total = subjects.len() as i64;
            store::set_progress(&self.kernel.db, c.id, total, 0, None).await?;
            for (i, s) in subjects.iter().enumerate() {
                if c.scope == "service" {
                    self.erase_everything(*s).await?;
                } else {
                    self.erase_purposes(*s, &c.purposes).await?;
                }
                if (i + 1) % 100 == 0 {
                    store::set_progress(&self.kernel.db, c.id, total, i as i64 + 1, None).await?;
                }
            }
            store::set_progress(&self.kernel.db, c.id, total, total, Some(now)).await?;
            tracing::info!(feature = %c.feature, subjects = total, "discontinued data erased");
            done.push(c.id);
        }
        let all = store::list(&self.kernel.db).await?;
        Ok(all.into_iter().filter(|c| done.contains(&c.id)).collect())
    }

    /// Deletes what a subject holds for the ceased purposes, in every store that keeps
    /// data per purpose.
    async fn erase_purposes(
        &self,
        s: custos_core::SubjectId,
        purposes: &[String],
    ) -> AppResult<()> {
        for p in purposes {
            self.kernel.personal.delete_purpose(s, p).await?;
            match p.as_str() {
                "interactions" => {
                    self.catalog.erase_subject(s).await?;
                }
                crate::signals::TRAITS_PURPOSE => {
                    self.signals.reset_traits(s).await?;
                }
                crate::signals::LOCATION_PURPOSE => {
                    self.signals.set_location_enabled(s, false).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Erases an account and everything kept about it (shutdown, P22), by the same step
    /// as an account cancellation ([`crate::rights::Rights::erase_subject`]): personal
    /// data, interactions, inbox, ad events, export files, inbound records, incident
    /// notices; rights tickets and complaints de-identified, security logs unlinked.
    async fn erase_everything(&self, s: custos_core::SubjectId) -> AppResult<()> {
        let (_erasure_ref, _partners) = self.rights.erase_subject(s, None).await?;
        Ok(())
    }
}

/// The notice to users of a discontinued feature or service.
fn cessation_notice(policy: &Policy, c: &Cessation, reason: &str) -> Notice {
    let date = custos_core::clock::rfc3339(c.erase_after_ms);
    let date = date.get(..10).unwrap_or(&date).to_owned();
    let (zh, en) = if c.scope == "service" {
        (
            format!(
                "{}即将停止运营，已停止收集个人信息。",
                policy.declaration().app.zh
            ),
            format!(
                "{} is shutting down and has stopped collecting personal data.",
                policy.declaration().app.en
            ),
        )
    } else {
        let f = policy.feature(&c.feature);
        (
            format!(
                "“{}”功能已停止，相关个人信息已停止收集。",
                f.map_or(c.feature.as_str(), |f| f.name.zh.as_str())
            ),
            format!(
                "The feature “{}” was discontinued; collection for it has stopped.",
                f.map_or(c.feature.as_str(), |f| f.name.en.as_str())
            ),
        )
    };
    let why = if reason.is_empty() {
        String::new()
    } else {
        format!("\n{reason}")
    };
    Notice::new(
        "服务变更通知 / Service discontinued",
        format!(
            "{zh}相关数据将于 {date} 后删除或匿名化，在此之前您可以在隐私中心导出。\n\
             {en} Its data will be deleted or anonymized after {date}; until then you can \
             export it from the privacy center.{why}"
        ),
    )
}

/// Follows cessations made elsewhere and erases due data, until the service is dropped.
pub(crate) async fn follow(ops: Weak<PolicyOps>) {
    let mut tick: u64 = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(o) = ops.upgrade() else { return };
        if let Err(e) = o.refresh_cessations().await {
            tracing::warn!(error = %e, "cannot read cessations");
        }
        tick += 1;
        if tick.is_multiple_of(60) {
            if let Err(e) = o.run_due_cessations().await {
                tracing::error!(error = %e, "erasing discontinued data failed");
            }
        }
        drop(o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_features_most_specific_first() {
        assert_eq!(
            feature_of_path("/api/v1/items/42/comments"),
            Some("bookmarks_comments")
        );
        assert_eq!(feature_of_path("/api/v1/items/42"), Some("browse_search"));
        assert_eq!(
            feature_of_path("/api/v1/location/nearby"),
            Some("location_nearby")
        );
        assert_eq!(feature_of_path("/api/v1/locations"), None);
        assert_eq!(feature_of_path("/api/v1/consents"), None);
    }

    #[test]
    fn periods_parse_with_units() {
        assert_eq!(parse_period("30d").unwrap(), 30 * 86_400_000);
        assert_eq!(parse_period("90").unwrap(), 90_000);
        assert!(parse_period("3 weeks").is_err());
        assert!(parse_period("99999d").is_err());
    }
}
