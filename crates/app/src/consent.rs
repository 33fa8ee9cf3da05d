//! Recording consent decisions and issuing receipts (P38, P39, L1, L2, L3).
//!
//! Receipts carry the Kantara Consent Receipt v1.1 fields (which ISO/IEC TS 27560 builds
//! on) plus a `custos` member with the ledger sequence and hash of each decision, and are
//! signed as a compact JWS (Ed25519). A receipt is derived from immutable ledger records
//! and the policy version they name, so fetching it again yields the same bytes.

use std::collections::HashSet;

use custos_core::clock::rfc3339;
use custos_core::{ConsentMethod, ConsentRecord, Decision, Denial, SubjectId};
use custos_policy::{LegalBasis, Policy};
use custos_store::ledger::{self, NewDecision};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::{AppError, AppResult, Kernel};

/// Most decisions accepted in one request.
pub const MAX_DECISIONS: usize = 64;

/// One decision as asked for by a caller.
#[derive(Debug, Clone)]
pub struct DecisionInput {
    pub purpose: String,
    pub decision: Decision,
}

/// A signed receipt.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    pub receipt_id: Uuid,
    pub receipt: serde_json::Value,
    /// Compact JWS (`alg: EdDSA`) whose payload is `receipt`.
    pub jws: String,
}

/// Where a purpose stands for a subject.
#[derive(Debug, Clone, Serialize)]
pub struct PurposeStatus {
    pub purpose: String,
    pub tier: custos_policy::Tier,
    pub basis: LegalBasis,
    pub separate_consent: bool,
    pub anonymous: bool,
    /// `active` (may be processed), `not_applicable` … or a denial code such as
    /// `consent_missing`, `consent_withdrawn`, `consent_outdated`.
    pub status: &'static str,
}

impl Kernel {
    /// Records decisions made together and returns their signed receipt.
    pub async fn record_decisions(
        &self,
        subject: SubjectId,
        anonymous: bool,
        decisions: &[DecisionInput],
        method: ConsentMethod,
    ) -> AppResult<Receipt> {
        let regime = self.gate.regime();
        let policy = regime.current().clone();
        self.validate_decisions(&policy, anonymous, decisions)?;
        let receipt_id = Uuid::new_v4();
        let at_ms = self.clock.now_ms();
        let batch: Vec<NewDecision> = decisions
            .iter()
            .map(|d| NewDecision {
                subject,
                purpose: d.purpose.clone(),
                decision: d.decision,
                policy_hash: policy.hash().as_str().to_owned(),
                method,
                receipt_id,
                at_ms,
            })
            .collect();
        let records = self
            .ledger
            .append(batch)
            .await
            .map_err(AppError::Internal)?;
        // Withdrawal and refusal stop processing at once: data held for the purpose goes.
        for d in decisions.iter().filter(|d| d.decision != Decision::Given) {
            self.personal.delete_purpose(subject, &d.purpose).await?;
            // So do the service-log events kept under it, found by the subject's pseudonym.
            let pseudonym = self.ring.pseudonym(
                crate::signals::EVENTS_DOMAIN,
                subject.to_string().as_bytes(),
            );
            custos_store::signals::EventStore::new(self.db.clone())
                .delete_for(&pseudonym, &d.purpose)
                .await?;
            // And ad events and personalized messages kept under it (issue 7: every path).
            crate::signals::push::forget_withdrawn(self, subject, &d.purpose).await?;
        }
        self.sign_receipt(&records)
    }

    /// Checks decisions against the current policy without recording them.
    pub fn check_decisions(&self, anonymous: bool, decisions: &[DecisionInput]) -> AppResult<()> {
        self.validate_decisions(self.gate.regime().current(), anonymous, decisions)
    }

    fn validate_decisions(
        &self,
        policy: &Policy,
        anonymous: bool,
        decisions: &[DecisionInput],
    ) -> AppResult<()> {
        if decisions.is_empty() {
            return Err(AppError::bad("no_decisions", "give at least one decision"));
        }
        if decisions.len() > MAX_DECISIONS {
            return Err(AppError::bad(
                "too_many_decisions",
                format!("at most {MAX_DECISIONS} decisions per request"),
            ));
        }
        let mut seen = HashSet::new();
        for d in decisions {
            if !seen.insert(d.purpose.as_str()) {
                return Err(AppError::bad(
                    "duplicate_purpose",
                    format!("purpose `{}` appears twice", d.purpose),
                ));
            }
            let p = policy.purpose(&d.purpose).ok_or_else(|| {
                AppError::bad(
                    "unknown_purpose",
                    format!("purpose `{}` is not declared", d.purpose),
                )
            })?;
            if p.basis != LegalBasis::Consent {
                return Err(AppError::bad(
                    "consent_not_applicable",
                    format!(
                        "purpose `{}` does not rest on consent (basis: {})",
                        p.id,
                        p.basis.as_str()
                    ),
                ));
            }
            if anonymous && !p.anonymous {
                return Err(AppError::AccountRequired(p.id.clone()));
            }
            // L1: a separate consent is never part of a bundle.
            if p.separate_consent && d.decision == Decision::Given && decisions.len() > 1 {
                return Err(AppError::bad(
                    "separate_consent_bundled",
                    format!(
                        "purpose `{}` needs its own, separate consent; send it alone",
                        p.id
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Withdraws consent for one purpose: one call, as easy as giving it (P39).
    pub async fn withdraw(
        &self,
        subject: SubjectId,
        anonymous: bool,
        purpose: &str,
        method: ConsentMethod,
    ) -> AppResult<Receipt> {
        self.record_decisions(
            subject,
            anonymous,
            &[DecisionInput {
                purpose: purpose.to_owned(),
                decision: Decision::Withdrawn,
            }],
            method,
        )
        .await
    }

    /// Every decision the subject made, oldest first.
    pub async fn consent_history(&self, subject: SubjectId) -> AppResult<Vec<ConsentRecord>> {
        Ok(ledger::for_subject(&self.db, subject).await?)
    }

    /// Each current purpose and whether it may be processed for the subject now.
    pub async fn purpose_statuses(&self, subject: SubjectId) -> AppResult<Vec<PurposeStatus>> {
        self.fresh(subject).await?;
        let regime = self.gate.regime();
        Ok(regime
            .purposes()
            .map(|(r, info)| PurposeStatus {
                purpose: info.id.clone(),
                tier: info.tier,
                basis: info.basis,
                separate_consent: info.separate_consent,
                anonymous: info.anonymous,
                status: if info.basis != LegalBasis::Consent {
                    "not_applicable"
                } else {
                    match self.gate.status(subject, r) {
                        Ok(()) => "active",
                        Err(d) => Denial::code(&d),
                    }
                },
            })
            .collect())
    }

    /// The signed receipt `receipt_id`, if it belongs to `subject`.
    pub async fn receipt(&self, subject: SubjectId, receipt_id: Uuid) -> AppResult<Receipt> {
        let records = ledger::for_receipt(&self.db, receipt_id).await?;
        if records.is_empty() || records.iter().any(|r| r.subject != subject) {
            return Err(AppError::NotFound);
        }
        self.sign_receipt(&records)
    }

    fn sign_receipt(&self, records: &[ConsentRecord]) -> AppResult<Receipt> {
        let first = records.first().ok_or(AppError::NotFound)?;
        let regime = self.gate.regime();
        let policy = regime
            .versions()
            .iter()
            .find(|p| p.hash().as_str() == first.policy_hash)
            .cloned()
            .unwrap_or_else(|| regime.current().clone());
        let receipt = receipt_json(&policy, records);
        let payload =
            serde_json::to_vec(&receipt).map_err(|e| AppError::Internal(e.to_string()))?;
        Ok(Receipt {
            receipt_id: first.receipt_id,
            jws: self.signer.sign_jws(&payload),
            receipt,
        })
    }
}

/// The Kantara Consent Receipt v1.1 document for records sharing one receipt id.
fn receipt_json(policy: &Policy, records: &[ConsentRecord]) -> serde_json::Value {
    let d = policy.declaration();
    let first = &records[0];
    let purposes: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            let p = policy.purpose(&r.purpose);
            let recipients: Vec<String> = p
                .map(|p| p.recipients.iter().filter_map(|id| policy.partner(id)).map(|x| x.name.en.clone()).collect())
                .unwrap_or_default();
            json!({
                "purpose": p.map(|p| p.name.en.clone()).unwrap_or_else(|| r.purpose.clone()),
                "purposeCategory": [p.map(|p| p.data_use.clone()).unwrap_or_default()],
                "consentType": "EXPLICIT",
                "piiCategory": p.map(|p| p.categories.clone()).unwrap_or_default(),
                "primaryPurpose": p.is_some_and(|p| p.tier == custos_policy::Tier::Basic),
                "termination": p.and_then(|p| p.retention).map(|r| format!("{} days", r.days)).unwrap_or_default(),
                "thirdPartyDisclosure": !recipients.is_empty(),
                "thirdPartyName": recipients.join(", "),
            })
        })
        .collect();
    let sensitive = records
        .iter()
        .any(|r| policy.purpose(&r.purpose).is_some_and(|p| p.sensitive));
    json!({
        "version": "KI-CR-v1.1.0",
        "jurisdiction": d.region,
        "consentTimestamp": first.at_ms / 1000,
        "collectionMethod": first.method.as_str(),
        "consentReceiptID": first.receipt_id.to_string(),
        "language": "en",
        "piiPrincipalId": first.subject.to_string(),
        "piiControllers": [{
            "piiController": d.controller.name.en,
            "onBehalf": false,
            "contact": d.controller.email,
            "address": { "streetAddress": d.controller.address.en, "addressCountry": d.region },
            "email": d.controller.email,
            "phone": d.controller.phone,
        }],
        "policyUrl": format!("/policy/{}", policy.hash()),
        "services": [{ "service": d.app.en, "purposes": purposes }],
        "sensitive": sensitive,
        "spiCat": [],
        "custos": {
            "policyHash": policy.hash().as_str(),
            "recordedAt": rfc3339(first.at_ms),
            "decisions": records.iter().map(|r| json!({
                "purpose": r.purpose,
                "decision": r.decision.as_str(),
                "ledgerSeq": r.seq,
                "ledgerHash": hex::encode(r.hash),
            })).collect::<Vec<_>>(),
        },
    })
}
