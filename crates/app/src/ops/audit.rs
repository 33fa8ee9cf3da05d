//! The audit log (P24, L3) as the use cases see it: recording what staff and operators
//! do, checking permissions (and recording the decision), verifying the chain and its
//! signed heads, and exporting it for auditors.
//!
//! Users appear in the log only as keyed pseudonyms (`subject:` + 32 hex digits), never
//! by their id: the log is append-only, and erasing a user must leave nothing that names
//! them. An auditor who is asked about one user computes the pseudonym with
//! [`subject_ref`] (or filters `GET /api/v1/operator/audit?subject=ID`).

use std::sync::Arc;

use custos_core::SubjectId;
use custos_store::audit::{self as store, AuditVerification, Entry, NewEntry, SignedHead};

use super::{audit_signer, Actor, Ops, Permission};
use crate::{AppResult, Kernel};

/// How the audit log refers to a user.
pub fn subject_ref(kernel: &Kernel, subject: SubjectId) -> String {
    format!(
        "subject:{}",
        hex::encode(kernel.ring.pseudonym("audit-subject", subject.as_bytes()))
    )
}

/// The longest reason (purpose or ticket) kept with an entry.
pub const MAX_REASON_CHARS: usize = 500;

/// One page of the log for auditors, with the signed heads and the key that verifies them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditPage {
    pub entries: Vec<Entry>,
    pub signed_heads: Vec<SignedHead>,
    /// The Ed25519 public key (JWK) the heads are signed with.
    pub key: serde_json::Value,
    /// The log's newest sequence number.
    pub head_seq: i64,
}

impl Ops {
    /// Appends one entry (its own transaction; the head is signed when due).
    pub async fn record(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
        reason: &str,
        detail: serde_json::Value,
    ) -> AppResult<()> {
        let e = self.entry(actor, action, target, outcome, reason, detail);
        store::append(&self.kernel.db, &[e], &self.signing(), self.now_ms()).await?;
        Ok(())
    }

    pub(crate) fn entry(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
        reason: &str,
        detail: serde_json::Value,
    ) -> NewEntry {
        NewEntry {
            at_ms: self.now_ms(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome: outcome.to_owned(),
            reason: reason.chars().take(MAX_REASON_CHARS).collect(),
            detail: detail.to_string(),
        }
    }

    /// Whether `actor` may do what `perm` covers to `target` (such as `POST
    /// /api/v1/operator/items`); the decision, either way, is written to the audit log
    /// first, so no operator action happens unrecorded.
    pub async fn authorize(
        &self,
        actor: &Actor,
        perm: Permission,
        target: &str,
    ) -> AppResult<bool> {
        let allowed = actor.can(perm);
        let role = match actor {
            Actor::Staff(s) => s.role.as_str(),
            Actor::OperatorToken | Actor::Cli => "full",
        };
        self.record(
            &actor.name(),
            &format!("operator.{}", perm.as_str()),
            target,
            if allowed { "allowed" } else { "denied" },
            "",
            serde_json::json!({ "role": role }),
        )
        .await?;
        Ok(allowed)
    }

    /// Entries after `after` (at most `limit`, up to 1000), optionally only those about one
    /// user, with every signed head; the current head is signed first so the page can be
    /// verified to its end.
    pub async fn audit_page(
        &self,
        after: i64,
        limit: i64,
        subject: Option<SubjectId>,
    ) -> AppResult<AuditPage> {
        store::checkpoint(&self.kernel.db, &self.signing(), self.now_ms()).await?;
        let target = subject.map(|s| subject_ref(&self.kernel, s));
        Ok(AuditPage {
            entries: store::entries(
                &self.kernel.db,
                after.max(0),
                limit.clamp(1, 1000),
                target.as_deref(),
            )
            .await?,
            signed_heads: store::signed_heads(&self.kernel.db).await?,
            key: self.audit_public_jwk(),
            head_seq: store::head(&self.kernel.db).await?,
        })
    }
}

/// Verifies the whole log: chain links, entry hashes, and every signed head's signature
/// and hash (for `custos audit verify`).
pub async fn verify(
    kernel: &Kernel,
    progress: impl FnMut(i64),
) -> anyhow::Result<AuditVerification> {
    let key = audit_signer(kernel).await?.verifying_key();
    let open = move |jws: &str| custos_crypto::verify_jws(&key, jws).ok();
    Ok(store::verify(&kernel.db, &open, progress).await?)
}

/// Writes the whole log as JSON lines for auditors (for `custos audit export`): first a
/// line with the verification key, then every entry, then every signed head (after
/// signing the current head). Returns the number of entries.
pub async fn export(
    kernel: &Arc<Kernel>,
    sign_every: i64,
    mut line: impl FnMut(String) -> std::io::Result<()>,
) -> anyhow::Result<i64> {
    let signer = audit_signer(kernel).await?;
    let signing = store::HeadSigning {
        signer: &signer,
        every: sign_every,
        interval_ms: i64::MAX,
    };
    store::checkpoint(&kernel.db, &signing, kernel.clock.now_ms()).await?;
    line(serde_json::json!({ "type": "key", "key": signer.public_jwk() }).to_string())?;
    let mut after = 0;
    let mut n = 0;
    loop {
        let page = store::entries(&kernel.db, after, 5_000, None).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            let mut v = serde_json::to_value(e)?;
            v["type"] = "entry".into();
            line(v.to_string())?;
            n += 1;
        }
    }
    for h in store::signed_heads(&kernel.db).await? {
        let mut v = serde_json::to_value(&h)?;
        v["type"] = "signed_head".into();
        line(v.to_string())?;
    }
    Ok(n)
}
