//! The inbox and push (issue 5, P12): every user has an inbox of messages; service notices
//! (account, incidents, policy changes) go there and to the user's devices under the basic
//! `service_notices` purpose, without any consent to personalization. A personalized push
//! (built from preference traits) needs its own `personalized_push` consent, asked of the
//! gate at the moment of sending. Delivery goes through a [`PushGateway`]: `none`, or an
//! HTTP webhook (the push channel declared as the recipient).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use custos_core::{GateContext, Personal, SubjectId};
use serde::Serialize;

use super::device::{DEVICE_ID_CATEGORY, NOTICES_PURPOSE, PUSH_PURPOSE};
use super::{Signals, SignalsConfig};
use crate::{AppError, AppResult};

/// What an inbox message's ciphertext is bound to (not stored): its owner.
fn inbox_binding(subject: SubjectId) -> Vec<u8> {
    let mut b = subject.as_bytes().to_vec();
    b.extend_from_slice(b"/inbox-message");
    b
}

/// The residency sink pushes leave through (`[residency] push`).
pub const PUSH_SINK: &str = "push";

/// Inbox message kinds.
pub const KIND_SYSTEM: &str = "system";
pub const KIND_PERSONALIZED: &str = "personalized";
const MAX_TITLE: usize = 100;
const MAX_BODY: usize = 2_000;

/// A message to a user: a short title and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub title: String,
    pub body: String,
}

impl Notice {
    pub fn new(title: impl Into<String>, body: impl Into<String>) -> Notice {
        Notice {
            title: title.into(),
            body: body.into(),
        }
    }
    fn check(&self) -> AppResult<()> {
        let ok = |s: &str, max: usize| {
            !s.trim().is_empty()
                && s.chars().count() <= max
                && !s.chars().any(|c| c.is_control() && c != '\n')
        };
        if !ok(&self.title, MAX_TITLE) || !ok(&self.body, MAX_BODY) {
            return Err(AppError::bad(
                "invalid_message",
                format!(
                    "a message has a title of 1–{MAX_TITLE} and a body of 1–{MAX_BODY} characters"
                ),
            ));
        }
        Ok(())
    }
}

/// One push to one device, as the gateway sends it.
#[derive(Debug, Clone)]
pub struct PushMessage {
    /// The device's push token.
    pub to: Personal<String>,
    /// The inbox message it announces.
    pub message_id: i64,
    /// `system` or `personalized` (shown as such on the device).
    pub kind: &'static str,
    pub title: String,
    pub body: String,
}

/// Why a push was not delivered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PushError {
    #[error("the push channel is unavailable: {0}")]
    Unavailable(String),
}

pub type PushFuture<'a> = Pin<Box<dyn Future<Output = Result<(), PushError>> + Send + 'a>>;

/// Delivers pushes to devices.
pub trait PushGateway: Send + Sync + std::fmt::Debug {
    fn send<'a>(&'a self, msg: &'a PushMessage) -> PushFuture<'a>;
    /// Whether pushes leave the server at all (`none` does not send).
    fn delivers(&self) -> bool {
        true
    }
}

/// No push channel configured: messages stay in the inbox only.
#[derive(Debug, Default)]
pub struct NoPush;

impl PushGateway for NoPush {
    fn send<'a>(&'a self, _msg: &'a PushMessage) -> PushFuture<'a> {
        Box::pin(async { Ok(()) })
    }
    fn delivers(&self) -> bool {
        false
    }
}

/// The push channel's webhook: `POST {"to","message_id","kind","title","body"}` as JSON,
/// with a bearer token when configured; one retry after a transient failure.
#[derive(Debug)]
pub struct HttpPushGateway {
    client: reqwest::Client,
    url: String,
    bearer: Option<Personal<String>>,
    retries: u32,
}

impl HttpPushGateway {
    pub fn new(
        url: String,
        bearer: Option<Personal<String>>,
        timeout: Duration,
        retries: u32,
    ) -> anyhow::Result<HttpPushGateway> {
        if !url.starts_with("http://") && !url.starts_with("https://") {
            anyhow::bail!("[signals] push_http_url must be an http:// or https:// URL");
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the push HTTP client: {e}"))?;
        Ok(HttpPushGateway {
            client,
            url,
            bearer,
            retries,
        })
    }

    async fn attempt(&self, body: &serde_json::Value) -> Result<(), (bool, String)> {
        let mut req = self.client.post(&self.url).json(body);
        if let Some(b) = &self.bearer {
            req = req.bearer_auth(b.expose());
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => {
                let s = resp.status();
                let transient = s.is_server_error() || s.as_u16() == 429 || s.as_u16() == 408;
                Err((transient, format!("push channel answered {}", s.as_u16())))
            }
            // Without the URL or the token: neither belongs in a log.
            Err(e) if e.is_timeout() => Err((true, "push channel timed out".into())),
            Err(_) => Err((true, "push channel unreachable".into())),
        }
    }
}

impl PushGateway for HttpPushGateway {
    fn send<'a>(&'a self, msg: &'a PushMessage) -> PushFuture<'a> {
        Box::pin(async move {
            let body = serde_json::json!({
                "to": msg.to.expose(),
                "message_id": msg.message_id,
                "kind": msg.kind,
                "title": msg.title,
                "body": msg.body,
            });
            let mut tries = 0;
            loop {
                tries += 1;
                match self.attempt(&body).await {
                    Ok(()) => return Ok(()),
                    Err((transient, cause)) if !transient || tries > self.retries => {
                        tracing::warn!(%cause, tries, "push not delivered");
                        return Err(PushError::Unavailable(cause));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100 * tries as u64)).await,
                }
            }
        })
    }
}

/// The gateway `[signals]` names.
pub fn gateway_from_config(cfg: &SignalsConfig) -> anyhow::Result<Arc<dyn PushGateway>> {
    match cfg.push_gateway.as_deref().unwrap_or("none") {
        "none" => Ok(Arc::new(NoPush)),
        "http" => {
            let url = cfg.push_http_url.clone().ok_or_else(|| {
                anyhow::anyhow!("[signals] push_gateway = \"http\" needs push_http_url")
            })?;
            let bearer = match &cfg.push_http_token_file {
                Some(p) => Some(Personal::new(
                    std::fs::read_to_string(p)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?
                        .trim()
                        .to_owned(),
                )),
                None => None,
            };
            Ok(Arc::new(HttpPushGateway::new(
                url,
                bearer,
                Duration::from_millis(cfg.push_http_timeout_ms.unwrap_or(5_000)),
                1,
            )?))
        }
        other => anyhow::bail!(
            "[signals] push_gateway = {other:?} is not known; use \"none\" or \"http\""
        ),
    }
}

/// What the signals module keeps under a purpose the subject no longer gives: ad events
/// under `personalized_ads`, personalized inbox messages under `personalized_push`. Called
/// by the kernel for every withdrawal or refusal it records
/// ([`crate::Kernel::record_decisions`]), whatever path it came by (consent API, GPC,
/// guardian, OIDC unlink, policy revision), so no path can skip it.
pub(crate) async fn forget_withdrawn(
    kernel: &crate::Kernel,
    subject: SubjectId,
    purpose: &str,
) -> AppResult<()> {
    match purpose {
        super::ads::ADS_PURPOSE => {
            let key = kernel
                .ring
                .pseudonym(super::ads::ADS_DOMAIN, subject.to_string().as_bytes());
            custos_store::signals2::AdStore::new(kernel.db.clone())
                .delete_user(&key)
                .await?;
        }
        PUSH_PURPOSE => {
            custos_store::signals2::InboxStore::new(kernel.db.clone())
                .delete_kind(subject, KIND_PERSONALIZED)
                .await?;
        }
        _ => {}
    }
    Ok(())
}

/// What a notification did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NotifyOutcome {
    /// The inbox message.
    pub message_id: i64,
    /// Devices the push channel accepted the push for.
    pub pushed: u32,
    /// Devices it could not be delivered to (the message stays in the inbox).
    pub failed: u32,
    /// Devices not pushed to because the push channel is abroad and the user has not
    /// given the declared transfer's separate consent (P20); the message stays in the inbox.
    pub withheld: u32,
}

/// An inbox message as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboxEntry {
    pub id: i64,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub created_at_ms: i64,
    pub read: bool,
}

impl Signals {
    /// A service notice (account, incident, policy change) to the subject: into the inbox,
    /// and pushed to each device whose push token is kept for service notices. Needs no
    /// consent to personalization; never fails because a device is unreachable.
    pub async fn notify(&self, subject: SubjectId, message: &Notice) -> AppResult<NotifyOutcome> {
        message.check()?;
        let id = self
            .add_to_inbox(subject, KIND_SYSTEM, NOTICES_PURPOSE, message)
            .await?;
        let tokens: Vec<Personal<String>> = self
            .push_tokens(subject)
            .await?
            .into_iter()
            .filter(|(_, purpose)| purpose == NOTICES_PURPOSE)
            .map(|(t, _)| t)
            .collect();
        self.push_to(subject, NOTICES_PURPOSE, tokens, id, KIND_SYSTEM, message)
            .await
    }

    /// A personalized push (items matching the subject's traits): only with the
    /// `personalized_push` purpose allowed by the gate for the subject now; otherwise the
    /// gate's denial, and nothing is stored or sent.
    pub async fn notify_personalized(
        &self,
        subject: SubjectId,
        message: &Notice,
        ctx: &GateContext<'_>,
    ) -> AppResult<NotifyOutcome> {
        message.check()?;
        self.kernel.fresh(subject).await?;
        self.kernel.permit(
            subject,
            PUSH_PURPOSE,
            &[DEVICE_ID_CATEGORY, super::TRAIT_CATEGORY],
            ctx,
        )?;
        let id = self
            .add_to_inbox(subject, KIND_PERSONALIZED, PUSH_PURPOSE, message)
            .await?;
        let tokens = self
            .push_tokens(subject)
            .await?
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        self.push_to(
            subject,
            PUSH_PURPOSE,
            tokens,
            id,
            KIND_PERSONALIZED,
            message,
        )
        .await
    }

    async fn push_to(
        &self,
        subject: SubjectId,
        purpose: &str,
        tokens: Vec<Personal<String>>,
        message_id: i64,
        kind: &'static str,
        message: &Notice,
    ) -> AppResult<NotifyOutcome> {
        let mut out = NotifyOutcome {
            message_id,
            pushed: 0,
            failed: 0,
            withheld: 0,
        };
        if !self.push.delivers() || tokens.is_empty() {
            return Ok(out);
        }
        // Residency (P20): a push channel abroad only under a declared transfer covering
        // the purpose, with the user's separate consent to it.
        if let Some(residency) = self.transfer_check.get().and_then(std::sync::Weak::upgrade) {
            match residency.check_transfer(subject, PUSH_SINK, purpose, &GateContext::default()) {
                Ok(()) => {}
                Err(AppError::Denied(_)) => {
                    out.withheld = u32::try_from(tokens.len()).unwrap_or(u32::MAX);
                    metrics::counter!("custos_push_withheld_cross_border_total")
                        .increment(u64::from(out.withheld));
                    tracing::info!(
                        purpose,
                        devices = out.withheld,
                        "push withheld: the push channel is abroad and the transfer is not agreed"
                    );
                    return Ok(out);
                }
                Err(e) => return Err(e),
            }
        }
        for to in tokens {
            let msg = PushMessage {
                to,
                message_id,
                kind,
                title: message.title.clone(),
                body: message.body.clone(),
            };
            match self.push.send(&msg).await {
                Ok(()) => out.pushed += 1,
                Err(_) => out.failed += 1,
            }
        }
        Ok(out)
    }

    /// Stores a message in the subject's inbox, its title and body sealed under the
    /// subject's key (erasure destroys the key, and with it every message), expiring
    /// with the purpose's retention when that runs from collection.
    async fn add_to_inbox(
        &self,
        subject: SubjectId,
        kind: &str,
        purpose: &str,
        message: &Notice,
    ) -> AppResult<i64> {
        let now = self.kernel.clock.now_ms();
        let key = self.kernel.vault.get_or_create(subject, now).await?;
        let plain = serde_json::json!({ "title": message.title, "body": message.body }).to_string();
        let sealed = key.cipher().seal(
            &inbox_binding(subject),
            plain.as_bytes(),
            &mut custos_crypto::OsRng,
        );
        Ok(self
            .inbox
            .add(
                subject,
                kind,
                &sealed,
                now,
                self.kernel.retention_end(purpose, now),
            )
            .await?)
    }

    /// The subject's inbox, newest first. Messages whose key was destroyed (erasure) do
    /// not open and are left out.
    pub async fn inbox(&self, subject: SubjectId) -> AppResult<Vec<InboxEntry>> {
        let messages = self.inbox.list(subject).await?;
        let key = if messages.iter().any(|m| m.sealed.is_some()) {
            self.kernel.vault.get(subject).await?
        } else {
            None
        };
        let cipher = key.as_ref().map(|k| k.cipher());
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            let (title, body) = match (&m.sealed, &cipher) {
                (None, _) => (m.title, m.body),
                (Some(_), None) => continue,
                (Some(sealed), Some(c)) => {
                    let plain = c
                        .open(&inbox_binding(subject), sealed)
                        .map_err(|e| AppError::Internal(format!("inbox message {}: {e}", m.id)))?;
                    let v: serde_json::Value = serde_json::from_slice(&plain)
                        .map_err(|e| AppError::Internal(format!("inbox message {}: {e}", m.id)))?;
                    let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
                    (text("title"), text("body"))
                }
            };
            out.push(InboxEntry {
                id: m.id,
                kind: m.kind,
                title,
                body,
                created_at_ms: m.created_ms,
                read: m.read_ms.is_some(),
            });
        }
        Ok(out)
    }

    /// Seals messages stored in clear before inbox sealing (migration 000101); run by
    /// the purge job (erasure deletes a subject's messages, so each one still has an
    /// owner to seal it for). Returns the messages handled.
    pub async fn seal_legacy_inbox(&self) -> AppResult<u64> {
        let mut n = 0;
        loop {
            let batch = self.inbox.unsealed(500).await?;
            if batch.is_empty() {
                return Ok(n);
            }
            for (id, subject, title, body) in batch {
                n += 1;
                let subject: SubjectId = match subject.parse() {
                    Ok(s) => s,
                    Err(_) => {
                        self.inbox.seal(id, b"").await?;
                        continue;
                    }
                };
                let now = self.kernel.clock.now_ms();
                let key = self.kernel.vault.get_or_create(subject, now).await?;
                let plain = serde_json::json!({ "title": title, "body": body }).to_string();
                let sealed = key.cipher().seal(
                    &inbox_binding(subject),
                    plain.as_bytes(),
                    &mut custos_crypto::OsRng,
                );
                self.inbox.seal(id, &sealed).await?;
            }
        }
    }

    /// Marks one of the subject's messages read; `not_found` for another's or none.
    pub async fn mark_read(&self, subject: SubjectId, id: i64) -> AppResult<()> {
        let now = self.kernel.clock.now_ms();
        if self.inbox.mark_read(subject, id, now).await? {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }
}
