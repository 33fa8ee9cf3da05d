//! # custos-policy — the declaration
//!
//! Owns the privacy declaration (`policy/*.toml`): parsing, validation against the
//! fideslang taxonomy and the law's structural rules, content-hash versions, diffs between
//! versions (and which purposes they pause until fresh consent), and rendering the policy
//! page (HTML, Markdown; Chinese and English) and records of processing (JSON).
//!
//! ## Layout
//! - [`model`]: the TOML data model, denying unknown keys.
//! - [`validate`]: structural and legal checks; each violation names its entry.
//! - [`diff`](mod@diff): per-purpose changes between two versions and the re-consent rule (L4).
//! - [`render`]: policy page and records of processing (P40, L10).
//! - [`records`]: records of processing as CSV/HTML, impact assessment records (L10),
//!   cross-border transfers (P20), rendered changes between versions (P35).
//!
//! Must not import: I/O beyond reading a file, HTTP, SQL.

pub mod diff;
pub mod model;
pub mod records;
pub mod render;
pub mod validate;

use std::fmt;

pub use diff::{diff, ChangeStatus, FieldChange, PolicyDiff, PurposeChange};
pub use model::*;
pub use validate::Violation;

use sha2::{Digest, Sha256};

/// Why a declaration was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("the declaration is not valid TOML for the schema: {0}")]
    Parse(String),
    #[error("the declaration breaks {} rule(s):\n{}", .0.len(), violations_list(.0))]
    Invalid(Vec<Violation>),
}

fn violations_list(v: &[Violation]) -> String {
    v.iter()
        .map(|v| format!("  - {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The content hash identifying a version: SHA-256 over the canonical JSON form of the
/// parsed declaration, so comments and formatting do not create new versions.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct PolicyHash(String);

impl PolicyHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The first 12 hex digits, for display (the whole value if it is shorter, which only
    /// a hash deserialized from untrusted input can be).
    pub fn short(&self) -> &str {
        self.0.get(..12).unwrap_or(&self.0)
    }
    /// Accepts a full 64-digit lowercase hex hash.
    pub fn parse(s: &str) -> Option<PolicyHash> {
        (s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        .then(|| PolicyHash(s.to_owned()))
    }
}

impl fmt::Display for PolicyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed, validated declaration with its content hash.
#[derive(Debug, Clone)]
pub struct Policy {
    decl: Declaration,
    hash: PolicyHash,
    source: String,
}

impl Policy {
    /// Parses and validates a declaration. Every violation is reported, not just the first.
    pub fn parse(source: &str) -> Result<Policy, PolicyError> {
        let decl: Declaration =
            toml::from_str(source).map_err(|e| PolicyError::Parse(e.to_string()))?;
        let violations = validate::validate(&decl);
        if !violations.is_empty() {
            return Err(PolicyError::Invalid(violations));
        }
        Policy::hashed(decl, source)
    }

    /// Parses a version that was validated when it was published, without validating it
    /// again: validation rules only ever get stricter, and a published version is an
    /// immutable fact users consented to, so a newer rule must not stop the server from
    /// loading it (the next publish is held to the new rules).
    pub fn parse_published(source: &str) -> Result<Policy, PolicyError> {
        let decl: Declaration =
            toml::from_str(source).map_err(|e| PolicyError::Parse(e.to_string()))?;
        Policy::hashed(decl, source)
    }

    fn hashed(decl: Declaration, source: &str) -> Result<Policy, PolicyError> {
        // Serializing plain structs of strings and enums cannot fail; map it anyway so a
        // future field type with a fallible `Serialize` surfaces as an error, not a panic.
        let canonical = serde_json::to_vec(&decl).map_err(|e| PolicyError::Parse(e.to_string()))?;
        let hash = PolicyHash(hex::encode(Sha256::digest(&canonical)));
        Ok(Policy {
            decl,
            hash,
            source: source.to_owned(),
        })
    }

    pub fn declaration(&self) -> &Declaration {
        &self.decl
    }
    pub fn hash(&self) -> &PolicyHash {
        &self.hash
    }
    /// The TOML text this version was parsed from (stored with the version).
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn purpose(&self, id: &str) -> Option<&Purpose> {
        self.decl.purposes.iter().find(|p| p.id == id)
    }
    pub fn category(&self, key: &str) -> Option<&Category> {
        self.decl.categories.iter().find(|c| c.key == key)
    }
    pub fn partner(&self, id: &str) -> Option<&Partner> {
        self.decl.partners.iter().find(|p| p.id == id)
    }
    pub fn purposes(&self) -> &[Purpose] {
        &self.decl.purposes
    }
    pub fn feature(&self, id: &str) -> Option<&Feature> {
        self.decl.features.iter().find(|f| f.id == id)
    }
    pub fn features(&self) -> &[Feature] {
        &self.decl.features
    }
    /// The impact assessment record a purpose names (L10).
    pub fn assessment_for(&self, purpose: &str) -> Option<&Assessment> {
        let id = self.purpose(purpose)?.impact_assessment.as_deref()?;
        self.decl.assessments.iter().find(|a| a.id == id)
    }
    /// Declared cross-border transfers that carry a purpose's data (P20).
    pub fn transfers_for<'a>(&'a self, purpose: &'a str) -> impl Iterator<Item = &'a Transfer> {
        self.decl
            .transfers
            .iter()
            .filter(move |t| t.purposes.iter().any(|p| p == purpose))
    }
    /// Parses [`BUNDLED_DECLARATION`].
    pub fn bundled() -> Result<Policy, PolicyError> {
        Policy::parse(BUNDLED_DECLARATION)
    }
}

/// The declaration shipped with Custos for the demo app described in CLAUSES.md.
pub const BUNDLED_DECLARATION: &str = include_str!("../../../policy/custos-app.toml");
