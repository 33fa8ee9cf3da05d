//! The declaration's data model, exactly as written in `policy/*.toml`.
//!
//! Every struct denies unknown keys so a typo in the declaration is an error, not a
//! silently ignored promise. Optional-looking fields that the law requires (retention)
//! are `Option` here only so validation can name the offending entry in its message.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A text in both languages the product speaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Text {
    pub en: String,
    pub zh: String,
}

impl Text {
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.en,
            Lang::Zh => &self.zh,
        }
    }
}

/// The languages policy texts are rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }
    pub fn parse(s: &str) -> Option<Lang> {
        match s.to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        }
    }
}

/// The whole declaration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declaration {
    /// Format version of this file; only 1 exists.
    pub schema: u32,
    /// The app's name as users know it.
    pub app: Text,
    /// A human label for this revision ("2026-11 revision"); the identity is the hash.
    pub revision: String,
    /// ISO 3166-1 alpha-2 code of the region data is stored in ("CN").
    pub region: String,
    pub controller: Controller,
    #[serde(default)]
    pub categories: Vec<Category>,
    #[serde(default)]
    pub purposes: Vec<Purpose>,
    #[serde(default)]
    pub features: Vec<Feature>,
    #[serde(default)]
    pub partners: Vec<Partner>,
    /// Personal-information impact assessment records (PIPL 55-56, L10); every purpose
    /// names one. Omitted from the canonical form when empty, so declarations written
    /// before this section existed keep their content hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assessments: Vec<Assessment>,
    /// Cross-border transfers to infrastructure sinks outside `region` (P20, PIPL 39).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transfers: Vec<Transfer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Controller {
    pub name: Text,
    pub address: Text,
    pub email: String,
    pub phone: String,
    /// Where complaints go when the controller's answer does not satisfy (P17, L6).
    pub complaint_route: Text,
    /// Personal information protection officer contact, if appointed.
    #[serde(default)]
    pub dpo_email: Option<String>,
}

/// A data category: a fideslang `user.*` key with its W3C DPV term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    /// fideslang data-category key, e.g. `user.contact.phone_number`.
    pub key: String,
    /// W3C DPV personal-data term, e.g. `dpv-pd:TelephoneNumber`.
    pub dpv: String,
    pub name: Text,
    /// Sensitive personal information (PIPL 28): needs separate consent wherever used.
    #[serde(default)]
    pub sensitive: bool,
}

/// Whether a feature or purpose is part of the basic service or an optional addition (P1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Basic,
    Additional,
}

impl Tier {
    /// The key as written in the declaration.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Basic => "basic",
            Tier::Additional => "additional",
        }
    }
}

/// Lawful basis for processing (P17, PIPL 13, GDPR 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    Consent,
    Contract,
    LegalObligation,
    VitalInterests,
    PublicHealth,
    NationalSecurity,
    CriminalInvestigation,
    MadePublicBySubject,
    LawfulPublicSource,
    ServiceSafety,
    Journalism,
    Research,
    OtherLaw,
}

impl LegalBasis {
    /// The W3C DPV legal-basis term closest to this basis.
    pub fn dpv(self) -> &'static str {
        match self {
            LegalBasis::Consent => "dpv:Consent",
            LegalBasis::Contract => "dpv:Contract",
            LegalBasis::LegalObligation
            | LegalBasis::NationalSecurity
            | LegalBasis::CriminalInvestigation
            | LegalBasis::OtherLaw => "dpv:LegalObligation",
            LegalBasis::VitalInterests | LegalBasis::PublicHealth => "dpv:VitalInterest",
            LegalBasis::MadePublicBySubject | LegalBasis::LawfulPublicSource => {
                "dpv:LegitimateInterest"
            }
            LegalBasis::ServiceSafety => "dpv:LegitimateInterestOfController",
            LegalBasis::Journalism | LegalBasis::Research => "dpv:PublicInterest",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            LegalBasis::Consent => "consent",
            LegalBasis::Contract => "contract",
            LegalBasis::LegalObligation => "legal_obligation",
            LegalBasis::VitalInterests => "vital_interests",
            LegalBasis::PublicHealth => "public_health",
            LegalBasis::NationalSecurity => "national_security",
            LegalBasis::CriminalInvestigation => "criminal_investigation",
            LegalBasis::MadePublicBySubject => "made_public_by_subject",
            LegalBasis::LawfulPublicSource => "lawful_public_source",
            LegalBasis::ServiceSafety => "service_safety",
            LegalBasis::Journalism => "journalism",
            LegalBasis::Research => "research",
            LegalBasis::OtherLaw => "other_law",
        }
    }
}

/// What the processing does with the data ("method" in PIPL 14 / L4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Collection,
    Storage,
    Use,
    Profiling,
    AutomatedDecision,
    Disclosure,
    Transfer,
    Pseudonymization,
}

impl Method {
    /// The key as written in the declaration.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Collection => "collection",
            Method::Storage => "storage",
            Method::Use => "use",
            Method::Profiling => "profiling",
            Method::AutomatedDecision => "automated_decision",
            Method::Disclosure => "disclosure",
            Method::Transfer => "transfer",
            Method::Pseudonymization => "pseudonymization",
        }
    }
}

/// From which moment the retention period runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RetentionFrom {
    /// Each record is kept `days` after it was collected.
    #[default]
    Collection,
    /// Kept while the account exists, then at most `days` after cancellation.
    AccountClosed,
    /// Kept at most `days` after the consent for the purpose is withdrawn.
    Withdrawal,
}

impl RetentionFrom {
    /// The key as written in the declaration.
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionFrom::Collection => "collection",
            RetentionFrom::AccountClosed => "account_closed",
            RetentionFrom::Withdrawal => "withdrawal",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub days: u32,
    #[serde(default)]
    pub from: RetentionFrom,
}

/// A purpose of processing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purpose {
    /// Local identifier used by the API and the ledger (`personalized_feed`).
    pub id: String,
    /// fideslang data-use key (`personalize.content.profiled`).
    pub data_use: String,
    pub name: Text,
    pub description: Text,
    pub tier: Tier,
    pub basis: LegalBasis,
    /// fideslang category keys this purpose processes; each must be declared above.
    pub categories: Vec<String>,
    #[serde(default)]
    pub methods: Vec<Method>,
    /// Required: validation names the purpose when it is missing.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// Partner ids the data goes to.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Needs its own consent, never covered by a general agreement (L1).
    #[serde(default)]
    pub separate_consent: bool,
    /// Processes sensitive personal information (PIPL 28).
    #[serde(default)]
    pub sensitive: bool,
    /// May be used with an anonymous identifier (no account).
    #[serde(default)]
    pub anonymous: bool,
    /// Impact assessment reference (PIPL 55-56, L10).
    #[serde(default)]
    pub impact_assessment: Option<String>,
}

/// A feature of the product, basic or additional, and the purposes it relies on (P1, P2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    pub id: String,
    pub name: Text,
    pub description: Text,
    pub tier: Tier,
    pub purposes: Vec<String>,
}

/// A recipient outside the controller (P29).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partner {
    pub id: String,
    pub name: Text,
    /// ISO 3166-1 alpha-2 code of where the partner stores the data.
    pub region: String,
    pub contact: String,
    /// Why the partner receives data and how it protects it.
    pub description: Text,
    pub security_measures: Text,
    /// Set when the partner is outside the declaration's region (PIPL 39).
    #[serde(default)]
    pub cross_border: bool,
    /// Receives data as a separate controller (PIPL 23) rather than a processor.
    #[serde(default)]
    pub independent_controller: bool,
    /// The risks of the transfer, which users must be told before a cross-border transfer
    /// (P20); required when the partner is outside the declared region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risks: Option<Text>,
    /// The data categories the partner may receive, its allow-list (P29): a share strips
    /// every other field. Each must be a category of a purpose naming the partner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// Reference of the contract that binds the partner to protection equal to ours (P29);
    /// nothing is shared with a partner without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
}

/// How much risk an impact assessment found left after its measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
}

impl RiskLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
        }
    }
}

/// A personal-information impact assessment record (PIPL 55-56, L10): what PIPL 56 asks
/// an assessment to cover, kept with the declaration so the records cannot drift from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assessment {
    /// Referenced by `purposes[].impact_assessment` (`PIA-2026-02-location`).
    pub id: String,
    /// The date the assessment was made or last reviewed (`YYYY-MM-DD`).
    pub assessed_on: String,
    /// Who made it (a role or team, not a person's private data).
    pub assessor: String,
    /// Whether purpose and method are lawful, legitimate and necessary (PIPL 56 (1)).
    pub lawfulness: Text,
    /// The impact on individuals' rights and the security risks (PIPL 56 (2)).
    pub risks: Text,
    /// The protective measures and why they are lawful, effective and proportionate (56 (3)).
    pub measures: Text,
    /// The risk that remains with the measures in place.
    pub residual_risk: RiskLevel,
}

/// The infrastructure sinks personal data can flow to, each with a configured region.
pub const SINKS: &[&str] = &["database", "vault", "object_storage", "sms", "push"];

/// A declared cross-border transfer to an infrastructure sink (P20, PIPL 38-39): purpose,
/// recipient, security measures and risks as users are told them, and the separate
/// consent purpose users agree to before their data goes there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    /// One of [`SINKS`].
    pub sink: String,
    /// ISO 3166-1 alpha-2 code of where the sink keeps the data.
    pub region: String,
    /// Purposes whose data the sink receives.
    pub purposes: Vec<String>,
    /// Who operates the sink abroad.
    pub recipient: Text,
    pub security_measures: Text,
    pub risks: Text,
    /// The consent-based, separate-consent purpose (method `transfer`) a user must have
    /// agreed to before their data goes to the sink.
    pub consent_purpose: String,
}

/// Keys from the fideslang 3.1.4 default taxonomy.
pub mod taxonomy {
    pub const DATA_CATEGORIES: &str =
        include_str!("../taxonomy/fideslang-3.1.4-data-categories.txt");
    pub const DATA_USES: &str = include_str!("../taxonomy/fideslang-3.1.4-data-uses.txt");
    pub const DATA_SUBJECTS: &str = include_str!("../taxonomy/fideslang-3.1.4-data-subjects.txt");

    pub fn is_category(key: &str) -> bool {
        DATA_CATEGORIES.lines().any(|l| l.trim() == key)
    }
    pub fn is_data_use(key: &str) -> bool {
        DATA_USES.lines().any(|l| l.trim() == key)
    }
}

/// Labels per language, used by renderers for enum values.
pub type Labels = BTreeMap<&'static str, Text>;
