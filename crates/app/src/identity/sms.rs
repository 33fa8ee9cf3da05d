//! Text message gateways (P4, L15). A code leaves the server only through a
//! [`SmsGateway`]; neither implementation ever logs the number or the text.
//!
//! - [`Outbox`] (development): appends each message to a JSON-lines file in the data
//!   directory, readable by the operator only (0600), and drops messages older than its
//!   retention on every write and on [`SmsGateway::purge`].
//! - [`HttpGateway`]: POSTs `{"to": "+86…", "text": "…"}` to a provider endpoint with a
//!   per-attempt timeout and bounded retries with exponential backoff; when the provider
//!   stays unreachable the caller gets [`SmsError::Unavailable`] (HTTP 503), not a hang.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use custos_core::Personal;
use serde::{Deserialize, Serialize};

use super::phone::PhoneNumber;

/// One message: the number it goes to and its text (both personal).
#[derive(Debug, Clone)]
pub struct SmsMessage {
    pub to: PhoneNumber,
    pub text: Personal<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// The provider could not be reached or kept failing; the cause carries no personal data.
    #[error("the text message gateway is unavailable: {0}")]
    Unavailable(String),
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SmsError>> + Send + 'a>>;

/// Delivers text messages.
pub trait SmsGateway: Send + Sync + std::fmt::Debug {
    fn send<'a>(&'a self, msg: &'a SmsMessage, now_ms: i64) -> SendFuture<'a>;
    /// Drops whatever the gateway keeps past its retention. Returns how many messages.
    fn purge(&self, _now_ms: i64) -> Result<u64, SmsError> {
        Ok(0)
    }
}

/// One line of the outbox file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutboxEntry {
    pub at_ms: i64,
    pub to: String,
    pub text: String,
}

/// The development gateway: an owner-only file of pending messages.
#[derive(Debug)]
pub struct Outbox {
    path: PathBuf,
    retention_ms: i64,
    lock: Mutex<()>,
}

fn io(e: std::io::Error) -> SmsError {
    SmsError::Unavailable(format!("outbox: {}", e.kind()))
}

fn open_private(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

impl Outbox {
    pub fn new(path: PathBuf, retention: Duration) -> Outbox {
        Outbox {
            path,
            retention_ms: i64::try_from(retention.as_millis()).unwrap_or(i64::MAX),
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The messages in an outbox file (for the operator and for tests).
    pub fn read(path: &Path) -> Vec<OutboxEntry> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn purge_locked(&self, now_ms: i64) -> Result<u64, SmsError> {
        let all = Outbox::read(&self.path);
        let keep: Vec<&OutboxEntry> = all
            .iter()
            .filter(|e| e.at_ms > now_ms.saturating_sub(self.retention_ms))
            .collect();
        let dropped = (all.len() - keep.len()) as u64;
        if dropped > 0 {
            let tmp = self.path.with_extension("tmp");
            let mut f = open_private(&tmp, false).map_err(io)?;
            for e in keep {
                let line = serde_json::to_string(e)
                    .map_err(|_| SmsError::Unavailable("outbox: encode".into()))?;
                writeln!(f, "{line}").map_err(io)?;
            }
            f.sync_all().map_err(io)?;
            std::fs::rename(&tmp, &self.path).map_err(io)?;
        }
        Ok(dropped)
    }
}

impl SmsGateway for Outbox {
    fn send<'a>(&'a self, msg: &'a SmsMessage, now_ms: i64) -> SendFuture<'a> {
        Box::pin(async move {
            let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.purge_locked(now_ms)?;
            let line = serde_json::to_string(&OutboxEntry {
                at_ms: now_ms,
                to: msg.to.e164().to_owned(),
                text: msg.text.expose().clone(),
            })
            .map_err(|_| SmsError::Unavailable("outbox: encode".into()))?;
            let mut f = open_private(&self.path, true).map_err(io)?;
            writeln!(f, "{line}").map_err(io)?;
            Ok(())
        })
    }

    fn purge(&self, now_ms: i64) -> Result<u64, SmsError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.purge_locked(now_ms)
    }
}

/// The provider gateway.
#[derive(Debug)]
pub struct HttpGateway {
    client: reqwest::Client,
    url: String,
    bearer: Option<Personal<String>>,
    retries: u32,
    backoff: Duration,
}

impl HttpGateway {
    /// `timeout` bounds each attempt; `retries` more attempts follow a failure that may be
    /// transient (no answer, 429, 5xx), waiting `backoff`, then twice that, and so on.
    pub fn new(
        url: String,
        bearer: Option<Personal<String>>,
        timeout: Duration,
        retries: u32,
        backoff: Duration,
    ) -> anyhow::Result<HttpGateway> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the SMS HTTP client: {e}"))?;
        Ok(HttpGateway {
            client,
            url,
            bearer,
            retries,
            backoff,
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
                Err((transient, format!("provider answered {}", s.as_u16())))
            }
            // Without the URL: reqwest's message names it, and it may carry credentials.
            Err(e) if e.is_timeout() => Err((true, "provider timed out".into())),
            Err(e) if e.is_connect() => Err((true, "provider unreachable".into())),
            Err(_) => Err((true, "request to the provider failed".into())),
        }
    }
}

impl SmsGateway for HttpGateway {
    fn send<'a>(&'a self, msg: &'a SmsMessage, _now_ms: i64) -> SendFuture<'a> {
        Box::pin(async move {
            let body = serde_json::json!({ "to": msg.to.e164(), "text": msg.text.expose() });
            let mut wait = self.backoff;
            let mut tries = 0;
            loop {
                tries += 1;
                match self.attempt(&body).await {
                    Ok(()) => return Ok(()),
                    Err((transient, cause)) if !transient || tries > self.retries => {
                        tracing::warn!(%cause, tries, "text message not delivered");
                        return Err(SmsError::Unavailable(cause));
                    }
                    Err(_) => {
                        tokio::time::sleep(wait).await;
                        wait = wait.saturating_mul(2);
                    }
                }
            }
        })
    }
}
