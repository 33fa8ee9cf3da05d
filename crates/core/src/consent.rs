//! Consent decisions and the ledger record (P38, L3).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::SubjectId;

/// What the subject decided for one purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Given,
    Refused,
    Withdrawn,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Given => "given",
            Decision::Refused => "refused",
            Decision::Withdrawn => "withdrawn",
        }
    }
    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "given" => Some(Decision::Given),
            "refused" => Some(Decision::Refused),
            "withdrawn" => Some(Decision::Withdrawn),
            _ => None,
        }
    }
}

/// How the decision was collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMethod {
    /// The first-visit or re-consent dialog.
    Dialog,
    /// The privacy settings page.
    Settings,
    /// A client calling the API directly.
    Api,
    /// A Global Privacy Control signal (`Sec-GPC: 1`), recorded as an objection.
    Gpc,
}

impl ConsentMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentMethod::Dialog => "dialog",
            ConsentMethod::Settings => "settings",
            ConsentMethod::Api => "api",
            ConsentMethod::Gpc => "gpc",
        }
    }
    pub fn parse(s: &str) -> Option<ConsentMethod> {
        match s {
            "dialog" => Some(ConsentMethod::Dialog),
            "settings" => Some(ConsentMethod::Settings),
            "api" => Some(ConsentMethod::Api),
            "gpc" => Some(ConsentMethod::Gpc),
            _ => None,
        }
    }
}

/// One append-only ledger record. `hash` chains it to its predecessor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    pub seq: i64,
    pub subject: SubjectId,
    pub purpose: String,
    pub decision: Decision,
    /// Hash of the policy version the decision was made under.
    pub policy_hash: String,
    pub method: ConsentMethod,
    pub at_ms: i64,
    /// Decisions made together share a receipt.
    pub receipt_id: Uuid,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// The fields a record's hash covers, in a fixed order.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: i64,
    subject: &'a SubjectId,
    purpose: &'a str,
    decision: Decision,
    policy_hash: &'a str,
    method: ConsentMethod,
    at_ms: i64,
    receipt_id: &'a Uuid,
}

impl ConsentRecord {
    /// The bytes the chain hash covers: every field except the hashes themselves.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&Canonical {
            seq: self.seq,
            subject: &self.subject,
            purpose: &self.purpose,
            decision: self.decision,
            policy_hash: &self.policy_hash,
            method: self.method,
            at_ms: self.at_ms,
            receipt_id: &self.receipt_id,
        })
        .expect("plain struct serializes")
    }
}
