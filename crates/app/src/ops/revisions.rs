//! Policy revisions (P35, L4) and the [`PolicyOps`] service that also carries residency
//! ([`super::residency`]), cessation ([`super::cessation`]) and change of controller
//! ([`super::controller`]).
//!
//! Publishing a version through [`PolicyOps::publish_revision`] records an announcement
//! and notifies every account by inbox message (and push where the user allowed it).
//! Which processing pauses is the regime's decision ([`custos_core::Regime`]): a purpose
//! whose consent predates the last version that widened it counts as outdated in the gate,
//! so exactly the changed purposes stop, per user, and every other purpose keeps running.
//! A user agrees to a version with [`PolicyOps::agree`], which records fresh consent
//! decisions in the ledger (with a signed receipt); the gate resumes those purposes at once.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use custos_core::{ConsentMethod, Decision, Denial, SubjectId};
use custos_policy::{LegalBasis, Policy, PolicyDiff};
use custos_store::revisions::{self as store, Announcement, AnnouncementKind};
use custos_store::{ledger, policy_versions};
use serde::Serialize;

use super::cessation::CessationView;
use super::residency::Residency;
use crate::catalog::Catalog;
use crate::consent::{DecisionInput, Receipt};
use crate::identity::Identity;
use crate::signals::push::Notice;
use crate::signals::Signals;
use crate::{AppError, AppResult, Config, Kernel};

/// The operator's policy obligations: revisions, residency, cessation, controller.
pub struct PolicyOps {
    pub kernel: Arc<Kernel>,
    pub(crate) identity: Arc<Identity>,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) signals: Arc<Signals>,
    /// The erasure step shared with account cancellation (shutdown, P22).
    pub(crate) rights: Arc<crate::rights::Rights>,
    /// Every sink's region, checked at startup (P20).
    pub residency: Residency,
    pub(crate) cessations: RwLock<CessationView>,
}

impl std::fmt::Debug for PolicyOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyOps")
            .field("residency", &self.residency)
            .finish_non_exhaustive()
    }
}

/// What publishing a version did.
#[derive(Debug, Clone, Serialize)]
pub struct RevisionOutcome {
    pub hash: String,
    pub revision: String,
    /// False when the same content was already published (nothing announced again).
    pub published: bool,
    /// Per-purpose changes from the previous version, if there was one.
    pub diff: Option<PolicyDiff>,
    /// Purposes paused until each user agrees to this version.
    pub paused_purposes: Vec<String>,
    /// Accounts notified.
    pub notified: i64,
}

/// Purposes a user must agree to again, grouped by the version that changed them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingReconsent {
    /// The version that widened the purposes (agree with this hash).
    pub version: String,
    pub revision: String,
    /// Purposes a plain Agree resumes.
    pub purposes: Vec<String>,
    /// Purposes needing their own, separate agreement (L1): agree to each alone.
    pub separate: Vec<String>,
}

/// What an Agree recorded.
#[derive(Debug, Clone, Serialize)]
pub struct AgreeOutcome {
    pub version: String,
    pub agreed: Vec<String>,
    pub receipt: Option<Receipt>,
    /// Purposes still paused for the user (separate consents not yet given).
    pub still_pending: Vec<String>,
}

impl PolicyOps {
    /// Opens the service: refuses a residency configuration that sends personal data out
    /// of the declared region without a declared transfer (naming the sink), applies the
    /// recorded cessations to the gate and starts following them.
    pub async fn open(
        kernel: Arc<Kernel>,
        identity: Arc<Identity>,
        catalog: Arc<Catalog>,
        signals: Arc<Signals>,
        rights: Arc<crate::rights::Rights>,
        cfg: &Config,
    ) -> anyhow::Result<Arc<PolicyOps>> {
        let residency = Residency::check(
            &cfg.residency,
            kernel.gate.regime().current(),
            &cfg.database_url,
            &cfg.vault_url,
        )?;
        let ops = Arc::new(PolicyOps {
            kernel: kernel.clone(),
            identity,
            catalog,
            signals,
            rights,
            residency,
            cessations: RwLock::new(CessationView::default()),
        });
        // Every push goes through the transfer check of the push sink (P20).
        let _ = ops.signals.transfer_check.set(Arc::downgrade(&ops));
        ops.refresh_cessations().await?;
        kernel
            .ledger
            .adopt(tokio::spawn(super::cessation::follow(Arc::downgrade(&ops))))
            .await;
        Ok(ops)
    }

    /// Publishes a version, records its announcement and notifies every account. The
    /// gate switches at once; consents to purposes the version widened stop counting.
    pub async fn publish_revision(&self, policy: &Policy) -> AppResult<RevisionOutcome> {
        self.publish_as(policy, AnnouncementKind::Revision).await
    }

    pub(crate) async fn publish_as(
        &self,
        policy: &Policy,
        kind: AnnouncementKind,
    ) -> AppResult<RevisionOutcome> {
        let previous = self.kernel.gate.regime().current().clone();
        let (info, inserted) = self.kernel.publish(policy).await?;
        self.apply_cessations();
        let diff =
            (previous.hash() != policy.hash()).then(|| custos_policy::diff(&previous, policy));
        let paused: Vec<String> = diff
            .as_ref()
            .map(|d| d.needs_consent().into_iter().map(str::to_owned).collect())
            .unwrap_or_default();
        let mut notified = 0;
        if inserted {
            let announcement = Announcement {
                hash: info.hash.clone(),
                kind,
                previous_hash: Some(previous.hash().to_string()),
                paused_purposes: paused.clone(),
                announced_at_ms: self.kernel.clock.now_ms(),
                notified: 0,
            };
            if store::record(&self.kernel.db, &announcement).await? {
                let notice = revision_notice(policy, kind, &paused);
                let subjects = store::account_subjects(&self.kernel.db).await?;
                notified = self.notify_all(&subjects, &notice).await;
                store::set_notified(&self.kernel.db, &info.hash, notified).await?;
            }
        }
        Ok(RevisionOutcome {
            hash: info.hash,
            revision: info.revision,
            published: inserted,
            diff,
            paused_purposes: paused,
            notified,
        })
    }

    /// Tells each subject; returns how many were reached. The one place notices leave
    /// this module, so every obligation notifies the same way (inbox, then push).
    pub(crate) async fn notify_all(&self, subjects: &[SubjectId], notice: &Notice) -> i64 {
        let mut n = 0;
        for s in subjects {
            match self.signals.notify(*s, notice).await {
                Ok(_) => n += 1,
                Err(e) => tracing::warn!(error = %e, "a notice could not be delivered"),
            }
        }
        n
    }

    /// Every announcement, oldest first.
    pub async fn announcements(&self) -> AppResult<Vec<Announcement>> {
        Ok(store::list(&self.kernel.db).await?)
    }

    /// Finds a published version by hash or unique prefix.
    pub fn version(&self, hash_or_prefix: &str) -> AppResult<Arc<Policy>> {
        let regime = self.kernel.gate.regime();
        let needle = hash_or_prefix.trim().to_ascii_lowercase();
        if needle.len() < 6 || !needle.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AppError::bad(
                "invalid_version",
                "give a version's content hash (at least 6 hex digits)",
            ));
        }
        let mut found = regime
            .versions()
            .iter()
            .filter(|p| p.hash().as_str().starts_with(&needle));
        match (found.next(), found.next()) {
            (Some(p), None) => Ok(p.clone()),
            (Some(_), Some(_)) => Err(AppError::bad(
                "ambiguous_version",
                "the prefix matches several versions; give more digits",
            )),
            _ => Err(AppError::bad(
                "unknown_version",
                format!("no published version matches `{needle}`"),
            )),
        }
    }

    /// What changed from `since` to the current version, purpose by purpose.
    pub fn changes_since(&self, since: &str) -> AppResult<(Arc<Policy>, Arc<Policy>, PolicyDiff)> {
        let old = self.version(since)?;
        let new = self.kernel.gate.regime().current().clone();
        let d = custos_policy::diff(&old, &new);
        Ok((old, new, d))
    }

    /// The purposes whose consent the subject must renew, grouped by the version that
    /// widened them: the dialog shown on the next sign-in.
    pub async fn pending_reconsent(&self, subject: SubjectId) -> AppResult<Vec<PendingReconsent>> {
        self.kernel.fresh(subject).await?;
        let regime = self.kernel.gate.regime();
        let mut groups: BTreeMap<u32, PendingReconsent> = BTreeMap::new();
        for (r, info) in regime.purposes() {
            if info.basis != LegalBasis::Consent {
                continue;
            }
            if self.kernel.gate.status(subject, r) != Err(Denial::ConsentOutdated) {
                continue;
            }
            let v = &regime.versions()[info.since as usize];
            let g = groups
                .entry(info.since)
                .or_insert_with(|| PendingReconsent {
                    version: v.hash().to_string(),
                    revision: v.declaration().revision.clone(),
                    purposes: Vec::new(),
                    separate: Vec::new(),
                });
            if info.separate_consent {
                g.separate.push(info.id.clone());
            } else {
                g.purposes.push(info.id.clone());
            }
        }
        Ok(groups.into_values().collect())
    }

    /// Agree to version `version`: records fresh consent for the purposes it paused for
    /// the subject (plain Agree: those without separate consent), or for exactly
    /// `purposes` — which may also name consent purposes that version added or widened,
    /// and a separate-consent purpose, alone. Returns the signed receipt.
    pub async fn agree(
        &self,
        subject: SubjectId,
        anonymous: bool,
        version: &str,
        purposes: Option<&[String]>,
    ) -> AppResult<AgreeOutcome> {
        let target = self.version(version)?;
        let regime = self.kernel.gate.regime();
        let idx = regime
            .version_index(target.hash().as_str())
            .ok_or(AppError::NotFound)?;
        let pending = self.pending_reconsent(subject).await?;
        let mine = pending.iter().find(|p| p.version == target.hash().as_str());
        let chosen: Vec<String> = match purposes {
            None => mine.map(|p| p.purposes.clone()).unwrap_or_default(),
            Some(list) => {
                // What this version asked consent for: its diff to the version before.
                let asked: Vec<String> = match idx.checked_sub(1) {
                    Some(prev) => custos_policy::diff(&regime.versions()[prev as usize], &target)
                        .needs_consent()
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                    None => Vec::new(),
                };
                for p in list {
                    let paused_here =
                        mine.is_some_and(|m| m.purposes.contains(p) || m.separate.contains(p));
                    if !paused_here && !asked.contains(p) {
                        return Err(AppError::bad(
                            "not_in_version",
                            format!(
                                "version {} neither added, widened nor paused purpose `{p}`",
                                target.hash().short()
                            ),
                        ));
                    }
                }
                list.to_vec()
            }
        };
        let receipt = if chosen.is_empty() {
            None
        } else {
            let decisions: Vec<DecisionInput> = chosen
                .iter()
                .map(|p| DecisionInput {
                    purpose: p.clone(),
                    decision: Decision::Given,
                })
                .collect();
            if !anonymous {
                self.identity
                    .check_minor_decisions(subject, &decisions)
                    .await?;
            }
            Some(
                self.kernel
                    .record_decisions(subject, anonymous, &decisions, ConsentMethod::Dialog)
                    .await?,
            )
        };
        let still_pending = self
            .pending_reconsent(subject)
            .await?
            .into_iter()
            .flat_map(|p| p.purposes.into_iter().chain(p.separate))
            .collect();
        Ok(AgreeOutcome {
            version: target.hash().to_string(),
            agreed: chosen,
            receipt,
            still_pending,
        })
    }

    /// Published versions (for the CLI).
    pub async fn versions(&self) -> AppResult<Vec<policy_versions::VersionInfo>> {
        Ok(policy_versions::list(&self.kernel.db).await?)
    }

    /// Subjects whose newest decision for one of `purposes` is a consent.
    pub(crate) async fn consenting_subjects(
        &self,
        purposes: &[String],
    ) -> AppResult<Vec<SubjectId>> {
        let mut out: Vec<SubjectId> = ledger::latest_decisions(&self.kernel.db)
            .await?
            .into_iter()
            .filter(|r| r.decision == Decision::Given && purposes.contains(&r.purpose))
            .map(|r| r.subject)
            .collect();
        out.sort_by_key(|s| s.as_u128());
        out.dedup();
        Ok(out)
    }
}

/// The inbox message announcing a version.
fn revision_notice(policy: &Policy, kind: AnnouncementKind, paused: &[String]) -> Notice {
    let d = policy.declaration();
    match kind {
        AnnouncementKind::ControllerChange => Notice::new(
            "隐私政策更新：个人信息处理者变更 / Privacy policy: new controller",
            format!(
                "您的个人信息今后由{}处理，其受本隐私政策同等约束，您作出的同意继续有效。\n\
                 From now on {} processes your data, bound by this same policy; every consent \
                 you gave stays in force. Version {}.",
                d.controller.name.zh,
                d.controller.name.en,
                policy.hash().short()
            ),
        ),
        AnnouncementKind::Revision => {
            let names = |lang: custos_policy::Lang| {
                paused
                    .iter()
                    .filter_map(|id| policy.purpose(id))
                    .map(|p| p.name.get(lang).to_owned())
                    .collect::<Vec<_>>()
            };
            let (zh, en) = if paused.is_empty() {
                (
                    "您已同意的处理均未改变，无需再次同意。".to_owned(),
                    "Nothing you agreed to changed; no action is needed.".to_owned(),
                )
            } else {
                (
                    format!(
                        "以下处理在您同意新版本前暂停：{}。",
                        names(custos_policy::Lang::Zh).join("、")
                    ),
                    format!(
                        "Paused until you agree to the new version: {}.",
                        names(custos_policy::Lang::En).join(", ")
                    ),
                )
            };
            Notice::new(
                "隐私政策已更新 / Our privacy policy was revised",
                format!(
                    "{zh}\n{en}\n查看变更 / See what changed: /api/v1/policy/changes?since=… \
                     (revision {}, version {}).",
                    d.revision,
                    policy.hash().short()
                ),
            )
        }
    }
}
