//! The policy regime: every published version in order, the current one, and for each
//! current purpose the version since which a consent must date to count (P3, P35, L4).
//!
//! A consent given under version *v* for purpose *p* stays valid while no later version
//! widened *p* (added categories, methods, recipients, longer retention, changed basis):
//! the diff between consecutive versions decides, so unrelated edits pause nothing.

use std::collections::HashMap;
use std::sync::Arc;

use custos_policy::{LegalBasis, Policy, Tier};

/// Resolved handle of a purpose in a regime (its bit in consent masks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PurposeRef(pub(crate) u16);

impl PurposeRef {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A set of declared categories, one bit per category of the current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CategoryMask(pub(crate) u128);

impl CategoryMask {
    pub fn contains(self, other: CategoryMask) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// What the gate needs to know about one purpose, precomputed.
#[derive(Debug, Clone)]
pub struct PurposeInfo {
    pub id: String,
    pub tier: Tier,
    pub basis: LegalBasis,
    pub separate_consent: bool,
    pub anonymous: bool,
    /// Objected to by a Global Privacy Control signal (ads and sharing, L14).
    pub gpc_objectable: bool,
    pub categories: CategoryMask,
    /// Index into [`Regime::versions`] of the version that last widened this purpose.
    pub since: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum RegimeError {
    #[error("no policy version has been published")]
    Empty,
    #[error("the policy declares {0} purposes; the gate supports at most 64")]
    TooManyPurposes(usize),
    #[error("the policy declares {0} categories; the gate supports at most 128")]
    TooManyCategories(usize),
}

/// The published versions and the current declaration, resolved for fast decisions.
#[derive(Debug)]
pub struct Regime {
    versions: Vec<Arc<Policy>>,
    version_index: HashMap<String, u32>,
    purposes: Vec<PurposeInfo>,
    purpose_index: HashMap<String, PurposeRef>,
    category_index: HashMap<String, u8>,
    region: String,
}

impl Regime {
    /// Builds the regime from every published version, oldest first.
    pub fn new(history: Vec<Arc<Policy>>) -> Result<Regime, RegimeError> {
        let current = history.last().ok_or(RegimeError::Empty)?.clone();
        let decl = current.declaration();
        if decl.purposes.len() > 64 {
            return Err(RegimeError::TooManyPurposes(decl.purposes.len()));
        }
        if decl.categories.len() > 128 {
            return Err(RegimeError::TooManyCategories(decl.categories.len()));
        }
        let category_index: HashMap<String, u8> = decl
            .categories
            .iter()
            .enumerate()
            .map(|(i, c)| (c.key.clone(), i as u8))
            .collect();
        let version_index = history
            .iter()
            .enumerate()
            .map(|(i, p)| (p.hash().as_str().to_owned(), i as u32))
            .collect();
        // For each purpose, the last version (index) at which a diff said it needs consent.
        let mut since: HashMap<String, u32> = HashMap::new();
        for (i, pair) in history.windows(2).enumerate() {
            let d = custos_policy::diff(&pair[0], &pair[1]);
            for id in d.needs_consent() {
                since.insert(id.to_owned(), i as u32 + 1);
            }
        }
        let mut purposes = Vec::with_capacity(decl.purposes.len());
        let mut purpose_index = HashMap::new();
        for (i, p) in decl.purposes.iter().enumerate() {
            let mut mask = 0u128;
            for c in &p.categories {
                if let Some(&b) = category_index.get(c) {
                    mask |= 1u128 << b;
                }
            }
            let independent_recipient = p.recipients.iter().any(|r| {
                current
                    .partner(r)
                    .is_some_and(|partner| partner.independent_controller)
            });
            purposes.push(PurposeInfo {
                id: p.id.clone(),
                tier: p.tier,
                basis: p.basis,
                separate_consent: p.separate_consent,
                anonymous: p.anonymous,
                gpc_objectable: p.data_use.starts_with("marketing.advertising")
                    || p.data_use.starts_with("third_party_sharing")
                    || independent_recipient,
                categories: CategoryMask(mask),
                since: since.get(p.id.as_str()).copied().unwrap_or(0),
            });
            purpose_index.insert(p.id.clone(), PurposeRef(i as u16));
        }
        Ok(Regime {
            region: decl.region.clone(),
            versions: history,
            version_index,
            purposes,
            purpose_index,
            category_index,
        })
    }

    pub fn current(&self) -> &Arc<Policy> {
        self.versions
            .last()
            .expect("a regime has at least one version")
    }
    pub fn versions(&self) -> &[Arc<Policy>] {
        &self.versions
    }
    pub fn region(&self) -> &str {
        &self.region
    }
    pub fn purpose(&self, id: &str) -> Option<PurposeRef> {
        self.purpose_index.get(id).copied()
    }
    pub fn info(&self, p: PurposeRef) -> &PurposeInfo {
        &self.purposes[p.index()]
    }
    pub fn purposes(&self) -> impl Iterator<Item = (PurposeRef, &PurposeInfo)> {
        self.purposes
            .iter()
            .enumerate()
            .map(|(i, info)| (PurposeRef(i as u16), info))
    }
    pub fn purpose_count(&self) -> usize {
        self.purposes.len()
    }
    pub fn version_index(&self, hash: &str) -> Option<u32> {
        self.version_index.get(hash).copied()
    }
    /// Resolves category keys; `Err(key)` names the first key not declared.
    pub fn categories<'a>(&self, keys: &[&'a str]) -> Result<CategoryMask, &'a str> {
        let mut mask = 0u128;
        for k in keys {
            let b = self.category_index.get(*k).ok_or(*k)?;
            mask |= 1u128 << b;
        }
        Ok(CategoryMask(mask))
    }
    /// The category keys of a mask, in declaration order.
    pub fn category_keys(&self, mask: CategoryMask) -> Vec<&str> {
        self.current()
            .declaration()
            .categories
            .iter()
            .enumerate()
            .filter(|(i, _)| mask.0 & (1u128 << i) != 0)
            .map(|(_, c)| c.key.as_str())
            .collect()
    }
    /// Whether a consent given under `policy_hash` still covers `p` in this regime.
    pub fn consent_current(&self, p: PurposeRef, policy_hash: &str) -> bool {
        self.version_index(policy_hash)
            .is_some_and(|v| v >= self.info(p).since)
    }
}
