//! The purpose gate (P1, P15, P28, DESIGN invariant 1).
//!
//! Given a subject, a purpose, the categories to be processed and the request context,
//! the gate returns a [`Permit`] or a typed [`Denial`]. Storage functions that write
//! personal data take a `&Permit`; `Permit` has private fields and no public constructor,
//! so code outside this module cannot make one:
//!
//! ```compile_fail
//! # fn f(s: custos_core::SubjectId, p: custos_core::PurposeRef, c: custos_core::CategoryMask) {
//! // A permit cannot be forged: its fields are private and it has no public constructor.
//! let forged = custos_core::Permit { subject: s, purpose: p, categories: c };
//! # }
//! ```
//!
//! Decisions read an in-memory view of each subject's current consent, one hash lookup
//! and a few bit operations, kept consistent with the ledger by [`Gate::apply`] (records
//! this process wrote, and records other processes wrote, delivered by the store).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use custos_policy::LegalBasis;
use dashmap::DashMap;

use crate::consent::{ConsentRecord, Decision};
use crate::regime::{PurposeInfo, Regime};
use crate::SubjectId;

pub use crate::regime::{CategoryMask, PurposeRef};

/// Age and guardian status of the subject (P36, L12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgeStatus {
    /// Not known to be a minor (the default until a birth date is given).
    #[default]
    Adult,
    /// 14 to 17.
    Minor { guardian_consent: bool },
    /// Under 14: every consent-based purpose is sensitive and needs the guardian.
    Child { guardian_consent: bool },
}

/// The circumstances of one decision.
#[derive(Debug, Clone, Copy, Default)]
pub struct GateContext<'a> {
    pub age: AgeStatus,
    /// The request carried `Sec-GPC: 1` (L14).
    pub gpc: bool,
    /// Region the data would be stored in, when not the deployment's own.
    pub storage_region: Option<&'a str>,
}

/// Why processing is not allowed. Each has a stable code for API errors and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("the purpose is not declared in the current policy")]
    UnknownPurpose,
    #[error("the purpose does not declare category `{0}`")]
    UndeclaredCategory(String),
    #[error("the service this purpose belongs to has ceased")]
    ServiceCeased,
    #[error("a Global Privacy Control signal objects to this purpose")]
    GpcObjection,
    #[error("a guardian's consent is required for a minor")]
    GuardianConsentRequired,
    #[error("data may not be stored in region `{0}` under this policy")]
    RegionNotAllowed(String),
    #[error("no consent has been given for this purpose")]
    ConsentMissing,
    #[error("consent for this purpose was refused")]
    ConsentRefused,
    #[error("consent for this purpose was withdrawn")]
    ConsentWithdrawn,
    #[error("the policy changed this purpose since consent was given; fresh consent is needed")]
    ConsentOutdated,
}

impl Denial {
    pub fn code(&self) -> &'static str {
        match self {
            Denial::UnknownPurpose => "unknown_purpose",
            Denial::UndeclaredCategory(_) => "undeclared_category",
            Denial::ServiceCeased => "service_ceased",
            Denial::GpcObjection => "gpc_objection",
            Denial::GuardianConsentRequired => "guardian_consent_required",
            Denial::RegionNotAllowed(_) => "region_not_allowed",
            Denial::ConsentMissing => "consent_missing",
            Denial::ConsentRefused => "consent_refused",
            Denial::ConsentWithdrawn => "consent_withdrawn",
            Denial::ConsentOutdated => "consent_outdated",
        }
    }
}

/// Proof that the gate allowed (subject, purpose, categories). Only the gate builds one.
#[derive(Debug)]
pub struct Permit {
    subject: SubjectId,
    purpose: PurposeRef,
    categories: CategoryMask,
    basis: LegalBasis,
    /// Ledger sequence of the subject's newest consent record the decision saw; a write
    /// compares it with the database so a withdrawal from another process always wins.
    seen_seq: i64,
    regime: Arc<Regime>,
}

impl Permit {
    pub fn subject(&self) -> SubjectId {
        self.subject
    }
    pub fn purpose(&self) -> &str {
        &self.regime.info(self.purpose).id
    }
    pub fn purpose_ref(&self) -> PurposeRef {
        self.purpose
    }
    pub fn basis(&self) -> LegalBasis {
        self.basis
    }
    pub fn seen_seq(&self) -> i64 {
        self.seen_seq
    }
    /// Whether this permit covers writing `category` for `subject`.
    pub fn covers(&self, subject: SubjectId, category: &str) -> bool {
        subject == self.subject
            && self
                .regime
                .categories(&[category])
                .is_ok_and(|m| self.categories.contains(m))
    }
}

/// Per-subject consent state against the current regime: one bit per purpose.
#[derive(Debug, Clone, Copy, Default)]
struct SubjectState {
    current: u64,
    outdated: u64,
    refused: u64,
    withdrawn: u64,
    last_seq: i64,
}

type FastHasher = foldhash::fast::RandomState;

/// The purpose gate and its in-memory consent view.
pub struct Gate {
    regime: RwLock<Arc<Regime>>,
    view: DashMap<u128, SubjectState, FastHasher>,
    ceased: AtomicU64,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("subjects", &self.view.len())
            .finish_non_exhaustive()
    }
}

impl Gate {
    pub fn new(regime: Regime) -> Gate {
        Gate {
            regime: RwLock::new(Arc::new(regime)),
            view: DashMap::with_hasher(FastHasher::default()),
            ceased: AtomicU64::new(0),
        }
    }

    pub fn regime(&self) -> Arc<Regime> {
        self.regime
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Switches to a new regime; the caller re-applies every subject's latest records
    /// (their validity depends on the regime) after this returns.
    pub fn replace_regime(&self, regime: Regime) {
        *self.regime.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(regime);
        self.view.clear();
    }

    /// Marks purposes whose service has ceased (P18): every decision for them is denied.
    pub fn set_ceased(&self, purposes: &[PurposeRef]) {
        let mask = purposes.iter().fold(0u64, |m, p| m | (1u64 << p.0));
        self.ceased.store(mask, Ordering::SeqCst);
    }

    /// Folds one ledger record into the view. Records older than what the view has seen
    /// for the subject are ignored, so replays and duplicate notifications are harmless.
    pub fn apply(&self, record: &ConsentRecord) {
        let regime = self.regime();
        self.apply_with(&regime, record);
    }

    /// Like [`Gate::apply`] for many records, reading the regime once.
    pub fn apply_all<'a>(&self, records: impl IntoIterator<Item = &'a ConsentRecord>) {
        let regime = self.regime();
        for r in records {
            self.apply_with(&regime, r);
        }
    }

    fn apply_with(&self, regime: &Regime, record: &ConsentRecord) {
        let mut st = self.view.entry(record.subject.as_u128()).or_default();
        if record.seq <= st.last_seq {
            return;
        }
        st.last_seq = record.seq;
        let Some(p) = regime.purpose(&record.purpose) else {
            return;
        };
        let bit = 1u64 << p.0;
        st.current &= !bit;
        st.outdated &= !bit;
        st.refused &= !bit;
        st.withdrawn &= !bit;
        match record.decision {
            Decision::Given if regime.consent_current(p, &record.policy_hash) => st.current |= bit,
            Decision::Given => st.outdated |= bit,
            Decision::Refused => st.refused |= bit,
            Decision::Withdrawn => st.withdrawn |= bit,
        }
    }

    /// Forgets a subject (after erasure).
    pub fn forget(&self, subject: SubjectId) {
        self.view.remove(&subject.as_u128());
    }

    /// The newest ledger sequence the view has applied for this subject (0 if none).
    pub fn seen_seq(&self, subject: SubjectId) -> i64 {
        self.view
            .get(&subject.as_u128())
            .map(|s| s.last_seq)
            .unwrap_or(0)
    }

    /// The consent status of each purpose for a subject, for display.
    pub fn status(&self, subject: SubjectId, purpose: PurposeRef) -> Result<(), Denial> {
        let regime = self.regime();
        let info = regime.info(purpose);
        self.consent_state(subject, purpose, info)
    }

    fn state(&self, subject: SubjectId) -> SubjectState {
        self.view
            .get(&subject.as_u128())
            .map(|s| *s)
            .unwrap_or_default()
    }

    fn consent_state(
        &self,
        subject: SubjectId,
        p: PurposeRef,
        info: &PurposeInfo,
    ) -> Result<(), Denial> {
        consent_of(&self.state(subject), p, info)
    }

    /// Decides with keys, resolving them against the current regime.
    pub fn check_named(
        &self,
        subject: SubjectId,
        purpose: &str,
        categories: &[&str],
        ctx: &GateContext<'_>,
    ) -> Result<Permit, Denial> {
        let regime = self.regime();
        let p = regime.purpose(purpose).ok_or(Denial::UnknownPurpose)?;
        let mask = regime
            .categories(categories)
            .map_err(|k| Denial::UndeclaredCategory(k.to_owned()))?;
        self.decide(regime, subject, p, mask, ctx)
    }

    /// Decides with resolved handles (the hot path: no allocation unless denied).
    pub fn check(
        &self,
        subject: SubjectId,
        purpose: PurposeRef,
        categories: CategoryMask,
        ctx: &GateContext<'_>,
    ) -> Result<Permit, Denial> {
        self.decide(self.regime(), subject, purpose, categories, ctx)
    }

    fn decide(
        &self,
        regime: Arc<Regime>,
        subject: SubjectId,
        p: PurposeRef,
        categories: CategoryMask,
        ctx: &GateContext<'_>,
    ) -> Result<Permit, Denial> {
        if p.index() >= regime.purpose_count() {
            return Err(Denial::UnknownPurpose);
        }
        let info = regime.info(p);
        if !info.categories.contains(categories) {
            let extra = CategoryMask(categories.0 & !info.categories.0);
            let key = regime.category_keys(extra).first().map(|k| k.to_string());
            return Err(Denial::UndeclaredCategory(key.unwrap_or_default()));
        }
        if self.ceased.load(Ordering::Relaxed) & (1u64 << p.0) != 0 {
            return Err(Denial::ServiceCeased);
        }
        if let Some(region) = ctx.storage_region {
            if region != regime.region() {
                return Err(Denial::RegionNotAllowed(region.to_owned()));
            }
        }
        if ctx.gpc && info.gpc_objectable {
            return Err(Denial::GpcObjection);
        }
        let needs_guardian = matches!(
            ctx.age,
            AgeStatus::Minor {
                guardian_consent: false
            } | AgeStatus::Child {
                guardian_consent: false
            }
        );
        if needs_guardian && !exempt_from_guardian(info.basis) {
            return Err(Denial::GuardianConsentRequired);
        }
        // One lookup serves both the decision and the sequence the permit remembers.
        let st = self.state(subject);
        consent_of(&st, p, info)?;
        Ok(Permit {
            subject,
            purpose: p,
            categories,
            basis: info.basis,
            seen_seq: st.last_seq,
            regime,
        })
    }
}

fn consent_of(st: &SubjectState, p: PurposeRef, info: &PurposeInfo) -> Result<(), Denial> {
    if info.basis != LegalBasis::Consent {
        return Ok(());
    }
    let bit = 1u64 << p.0;
    if st.current & bit != 0 {
        Ok(())
    } else if st.outdated & bit != 0 {
        Err(Denial::ConsentOutdated)
    } else if st.withdrawn & bit != 0 {
        Err(Denial::ConsentWithdrawn)
    } else if st.refused & bit != 0 {
        Err(Denial::ConsentRefused)
    } else {
        Err(Denial::ConsentMissing)
    }
}

/// Bases that apply whatever the subject's age: the law itself requires the processing.
fn exempt_from_guardian(basis: LegalBasis) -> bool {
    matches!(
        basis,
        LegalBasis::LegalObligation
            | LegalBasis::VitalInterests
            | LegalBasis::PublicHealth
            | LegalBasis::NationalSecurity
            | LegalBasis::CriminalInvestigation
            | LegalBasis::OtherLaw
    )
}
