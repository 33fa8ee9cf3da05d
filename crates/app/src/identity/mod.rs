//! Accounts and identity (issue 3): phone + SMS sign-up, sessions, optional profile,
//! third-party login, minors with guardian consent. Every personal value goes through
//! the kernel's purpose gate and is encrypted per subject.
//!
//! ## Layout
//! - [`phone`]: [`PhoneNumber`], E.164 parsing at the edge.
//! - [`sms`]: the [`SmsGateway`](sms::SmsGateway) trait, the development outbox and the
//!   provider (HTTP) gateway.
//! - [`throttle`]: per-phone, per-address and per-account limits kept in the database,
//!   so every process and a fake clock see the same counts.
//! - [`challenge`]: one-time SMS codes: issued, hashed, bound to their challenge, limited.
//! - [`sessions`]: opaque session tokens stored hashed, expiry, revocation, CSRF tokens,
//!   re-authentication for sensitive actions.
//! - [`account`]: sign-in or sign-up with a code, the account's phone and its change.
//! - [`profile`]: the optional nickname, avatar and password; password sign-in.
//! - [`minors`]: birth date to age band, guardian consent by SMS with a signed receipt.
//! - [`oidc`]: third-party sign-in (OpenID Connect), per-field consent, unlinking.

pub mod account;
pub mod challenge;
pub mod minors;
pub mod oidc;
pub mod phone;
pub mod profile;
pub mod sessions;
pub mod sms;
pub mod throttle;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::Kernel;

pub use account::SignedIn;
pub use challenge::{Challenge, ChallengePurpose};
pub use phone::PhoneNumber;
pub use sessions::{AuthSession, NewSession, Reauthenticated, SessionInfo};

/// `[identity]` in `custos.toml`. Every limit of 0 turns that limit off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// How long an SMS code stays valid.
    pub code_ttl_secs: u64,
    /// Verification attempts per code, right or wrong; then the code is dead.
    pub code_max_attempts: u32,
    pub sms_per_phone_per_minute: u32,
    pub sms_per_phone_per_day: u32,
    pub sms_per_ip_per_hour: u32,
    pub sms_per_account_per_day: u32,
    /// Code verifications per client address per hour (guessing across challenges).
    pub verify_per_ip_per_hour: u32,
    /// A session unused this long ends.
    pub session_idle_days: u32,
    /// A session ends this long after sign-in, used or not.
    pub session_absolute_days: u32,
    /// How long a fresh SMS code counts as re-authentication for sensitive actions.
    pub reauth_window_secs: u64,
    /// Wrong passwords per number per hour before password sign-in pauses for it.
    pub password_failures_per_phone_per_hour: u32,
    /// Largest avatar upload, in bytes.
    pub avatar_max_bytes: usize,
    /// Tests only: lets a provider's picture come over plain `http://` and from loopback
    /// or private addresses. Off, only `https://` to public addresses is fetched.
    pub avatar_fetch_allow_insecure: bool,
    /// The text sent; `{code}` and `{minutes}` are replaced.
    pub sms_template: String,
    /// The text sent to a guardian's phone: it says that the code approves a minor's
    /// account, so a code is never given away as a "sign-in" one.
    pub sms_guardian_template: String,
    /// Country calling codes (without `+`) texts may go to; others get
    /// `phone_country_not_allowed` before anything is sent (SMS pumping). Empty = any.
    pub sms_allowed_country_codes: Vec<String>,
    /// Texts per hour for the whole service, whoever asks (SMS pumping); `0` = off.
    pub sms_per_hour_global: u32,
    /// `outbox` (development) or `http` (a provider endpoint).
    pub sms_gateway: String,
    /// The outbox file; defaults to `sms-outbox.jsonl` in the data directory.
    pub sms_outbox_path: Option<std::path::PathBuf>,
    /// Messages older than this are dropped from the outbox.
    pub sms_outbox_retention_secs: u64,
    /// Provider endpoint for the `http` gateway.
    pub sms_http_url: Option<String>,
    /// File holding a bearer token for the provider (read at start).
    pub sms_http_token_file: Option<std::path::PathBuf>,
    pub sms_http_timeout_ms: u64,
    pub sms_http_retries: u32,
    pub sms_http_backoff_ms: u64,
    /// Identity providers (`[[identity.oidc]]`).
    pub oidc: Vec<oidc::OidcProviderConfig>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            code_ttl_secs: 600,
            code_max_attempts: 5,
            sms_per_phone_per_minute: 1,
            sms_per_phone_per_day: 10,
            sms_per_ip_per_hour: 30,
            sms_per_account_per_day: 10,
            verify_per_ip_per_hour: 60,
            session_idle_days: 30,
            session_absolute_days: 90,
            reauth_window_secs: 300,
            password_failures_per_phone_per_hour: 5,
            avatar_max_bytes: 1024 * 1024,
            sms_template: "【好物视界】验证码 {code}，{minutes} 分钟内有效。请勿告诉他人。".into(),
            sms_guardian_template: "【好物视界】监护人同意验证码 {code}：有未成年人申请使用好物视界账号，输入此码即表示您作为监护人同意其使用。{minutes} 分钟内有效。如非您本人同意，请勿告诉他人。".into(),
            sms_allowed_country_codes: vec!["86".into()],
            sms_per_hour_global: 1_000,
            avatar_fetch_allow_insecure: false,
            sms_gateway: "outbox".into(),
            sms_outbox_path: None,
            sms_outbox_retention_secs: 600,
            sms_http_url: None,
            sms_http_token_file: None,
            sms_http_timeout_ms: 5_000,
            sms_http_retries: 2,
            sms_http_backoff_ms: 200,
            oidc: Vec::new(),
        }
    }
}

/// The identity service.
#[derive(Debug)]
pub struct Identity {
    pub kernel: Arc<Kernel>,
    pub cfg: IdentityConfig,
    pub gateway: Arc<dyn sms::SmsGateway>,
    pub oidc: oidc::Providers,
    /// Bounds the Argon2 work running at once, so a burst of password attempts cannot
    /// take every blocking thread.
    pub(crate) argon2: tokio::sync::Semaphore,
}

/// How many Argon2 hashes or verifications run at once.
pub const ARGON2_PERMITS: usize = 4;

impl Identity {
    /// Opens the service with the gateway the configuration names.
    pub async fn open(
        kernel: Arc<Kernel>,
        cfg: &IdentityConfig,
        data_dir: &Path,
    ) -> anyhow::Result<Arc<Identity>> {
        let gateway: Arc<dyn sms::SmsGateway> = match cfg.sms_gateway.as_str() {
            "outbox" => Arc::new(sms::Outbox::new(
                cfg.sms_outbox_path
                    .clone()
                    .unwrap_or_else(|| data_dir.join("sms-outbox.jsonl")),
                Duration::from_secs(cfg.sms_outbox_retention_secs),
            )),
            "http" => {
                let url = cfg.sms_http_url.clone().ok_or_else(|| {
                    anyhow::anyhow!("[identity] sms_gateway = \"http\" needs sms_http_url")
                })?;
                if !url.starts_with("http://") && !url.starts_with("https://") {
                    anyhow::bail!("[identity] sms_http_url must be an http:// or https:// URL");
                }
                let bearer = match &cfg.sms_http_token_file {
                    Some(p) => Some(custos_core::Personal::new(
                        std::fs::read_to_string(p)
                            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?
                            .trim()
                            .to_owned(),
                    )),
                    None => None,
                };
                Arc::new(sms::HttpGateway::new(
                    url,
                    bearer,
                    Duration::from_millis(cfg.sms_http_timeout_ms),
                    cfg.sms_http_retries,
                    Duration::from_millis(cfg.sms_http_backoff_ms),
                )?)
            }
            other => anyhow::bail!(
                "[identity] sms_gateway = {other:?} is not known; use \"outbox\" or \"http\""
            ),
        };
        let identity = Identity::with_gateway(kernel, cfg.clone(), gateway)?;
        tokio::spawn(purge_periodically(Arc::downgrade(&identity)));
        Ok(identity)
    }

    /// Opens the service with a given gateway.
    pub fn with_gateway(
        kernel: Arc<Kernel>,
        cfg: IdentityConfig,
        gateway: Arc<dyn sms::SmsGateway>,
    ) -> anyhow::Result<Arc<Identity>> {
        Ok(Arc::new(Identity {
            oidc: oidc::Providers::new(cfg.oidc.clone())?,
            kernel,
            cfg,
            gateway,
            argon2: tokio::sync::Semaphore::new(ARGON2_PERMITS),
        }))
    }

    /// Deletes what outlived its retention: expired challenges, throttle events past
    /// every window, expired sessions, outbox messages. Returns how many rows and messages.
    pub async fn purge_expired(&self) -> crate::AppResult<u64> {
        let now = self.kernel.clock.now_ms();
        let db = &self.kernel.db;
        let mut n = custos_store::identity::purge_challenges(db, now).await?;
        n += custos_store::identity::purge_throttle(db, now - throttle::LONGEST_WINDOW_MS).await?;
        n += custos_store::identity::purge_sessions(db, now, self.idle_ms()).await?;
        n += self.purge_oidc_flows().await?;
        n += self
            .gateway
            .purge(now)
            .map_err(|e| crate::AppError::GatewayUnavailable(e.to_string()))?;
        Ok(n)
    }

    fn idle_ms(&self) -> i64 {
        i64::from(self.cfg.session_idle_days) * 86_400_000
    }
}

/// How often expired challenges, throttle events, sessions, flows and outbox messages go.
pub const PURGE_EVERY: Duration = Duration::from_secs(600);

async fn purge_periodically(identity: std::sync::Weak<Identity>) {
    loop {
        tokio::time::sleep(PURGE_EVERY).await;
        let Some(id) = identity.upgrade() else { return };
        match id.purge_expired().await {
            Ok(n) if n > 0 => tracing::debug!(removed = n, "purged expired identity records"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot purge expired identity records"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::FileConfig;

    #[test]
    fn identity_settings_parse_from_custos_toml_and_unknown_keys_are_named() {
        let cfg: FileConfig = toml::from_str(
            r#"
            [identity]
            sms_per_phone_per_day = 5
            sms_gateway = "http"
            sms_http_url = "https://sms.example/send"

            [[identity.oidc]]
            name = "wechat"
            issuer = "https://idp.example"
            client_id = "custos"
            client_secret = "s3cret"
            redirect_uri = "https://custos.example/api/v1/auth/oidc/wechat/callback"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.identity.sms_per_phone_per_day, 5);
        assert_eq!(
            cfg.identity.sms_per_phone_per_minute, 1,
            "defaults fill the rest"
        );
        assert_eq!(cfg.identity.oidc[0].name, "wechat");
        let e = toml::from_str::<FileConfig>("[identity]\nsms_per_phone = 3\n").unwrap_err();
        assert!(e.to_string().contains("sms_per_phone"), "{e}");
    }
}
