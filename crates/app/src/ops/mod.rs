//! Operations (issue 7): staff accounts with roles and TOTP, the tamper-evident audit
//! log of staff access, and the operator's obligations built on them.
//!
//! ## Layout
//! - [`rbac`]: [`Role`], [`Permission`] and the least-privilege matrix.
//! - [`staff`]: staff accounts (Argon2id password + RFC 6238 TOTP, both required),
//!   sign-in with lockout and replay refusal, hashed expiring session tokens, management.
//! - [`audit`]: appending to the hash-chained log with signed heads, verification, export.
//! - [`incidents`]: security incidents, affected subjects from the data map, notices,
//!   announcements, the 72-hour regulator alarm (P25, L11).
//! - [`partners`]: the partner registry, the one egress path [`Ops::share`], public
//!   disclosure, data received from third parties (P16, P29, P30, P32, L1).
//! - [`revisions`], [`residency`], [`cessation`], [`controller`]: the policy's lifecycle
//!   obligations (P18, P20, P22, P31, P35, L4), served by [`revisions::PolicyOps`].
//! - [`subjects`]: staff reads of one user's data, each naming a ticket or purpose and
//!   audited; aggregate figures for analysts.
//!
//! Who acts is an [`Actor`]: a signed-in staff member, or the legacy operator token
//! (`[catalog] operator_token`), a bootstrap/automation credential with every permission
//! whose every use is audited as `operator-token`.

use std::sync::Arc;

use custos_crypto::{OsRng, ReceiptSigner};
use custos_store::audit::HeadSigning;
use custos_store::secrets;
use serde::Deserialize;

use crate::rights::Rights;
use crate::Kernel;

pub mod audit;
pub mod cessation;
pub mod controller;
pub mod dashboard;
pub mod incidents;
pub mod partners;
pub mod rbac;
pub mod residency;
pub mod revisions;
pub mod staff;
pub mod subjects;

pub use rbac::{Permission, Role};
pub use staff::{NewStaffAccount, StaffMember, StaffSession};

/// `[ops]` in `custos.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsConfig {
    /// Minutes a staff session may stay unused (default 30).
    pub staff_session_idle_minutes: Option<u32>,
    /// Hours a staff session lasts at most (default 12).
    pub staff_session_hours: Option<u32>,
    /// Failed sign-ins in a row before an account locks (default 5).
    pub staff_max_failures: Option<u32>,
    /// Minutes a locked account stays locked (default 15).
    pub staff_lockout_minutes: Option<u32>,
    /// Failed staff sign-ins from one client address (any username, known or not)
    /// before that address is refused for a while (default 10; 0 turns it off).
    pub staff_ip_max_failures: Option<u32>,
    /// The window those failures count in, in minutes (default 15).
    pub staff_ip_window_minutes: Option<u32>,
    /// Sign the audit head every this many entries (default 64).
    pub audit_sign_every: Option<u32>,
    /// …or when the last signed head is this old (seconds, default 3600).
    pub audit_sign_interval_secs: Option<u64>,
    /// Issuer shown by authenticator apps (default `Custos`; no `:`).
    pub totp_issuer: Option<String>,
    /// `[ops.partners]`: where shares with partners are delivered.
    #[serde(default)]
    pub partners: partners::PartnersConfig,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub idle_ms: i64,
    pub absolute_ms: i64,
    pub max_failures: i32,
    pub lockout_ms: i64,
    pub ip_max_failures: u32,
    pub ip_window_ms: i64,
    pub sign_every: i64,
    pub sign_interval_ms: i64,
    pub issuer: String,
}

impl Settings {
    fn from_config(cfg: &OpsConfig) -> anyhow::Result<Settings> {
        let issuer = cfg.totp_issuer.clone().unwrap_or_else(|| "Custos".into());
        if issuer.contains(':') || issuer.trim().is_empty() {
            anyhow::bail!("ops.totp_issuer must be non-empty and must not contain `:`");
        }
        let positive = |v: Option<u32>, default: u32, key: &str| -> anyhow::Result<i64> {
            match v.unwrap_or(default) {
                0 => anyhow::bail!("ops.{key} must be at least 1"),
                n => Ok(i64::from(n)),
            }
        };
        Ok(Settings {
            idle_ms: positive(
                cfg.staff_session_idle_minutes,
                30,
                "staff_session_idle_minutes",
            )? * 60_000,
            absolute_ms: positive(cfg.staff_session_hours, 12, "staff_session_hours")? * 3_600_000,
            max_failures: positive(cfg.staff_max_failures, 5, "staff_max_failures")? as i32,
            lockout_ms: positive(cfg.staff_lockout_minutes, 15, "staff_lockout_minutes")? * 60_000,
            ip_max_failures: cfg.staff_ip_max_failures.unwrap_or(10),
            ip_window_ms: positive(cfg.staff_ip_window_minutes, 15, "staff_ip_window_minutes")?
                * 60_000,
            sign_every: positive(cfg.audit_sign_every, 64, "audit_sign_every")?,
            sign_interval_ms: i64::try_from(cfg.audit_sign_interval_secs.unwrap_or(3600))
                .unwrap_or(i64::MAX / 1000)
                .max(1)
                * 1000,
            issuer,
        })
    }
}

/// Who performs an operator action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in staff member.
    Staff(StaffMember),
    /// The legacy operator token: every permission, audited as `operator-token`.
    OperatorToken,
    /// A command run on the server (`custos admin …`, `custos audit …`).
    Cli,
}

impl Actor {
    /// How the audit log names the actor.
    pub fn name(&self) -> String {
        match self {
            Actor::Staff(s) => format!("staff:{}", s.username),
            Actor::OperatorToken => "operator-token".into(),
            Actor::Cli => "cli".into(),
        }
    }

    pub fn can(&self, p: Permission) -> bool {
        match self {
            Actor::Staff(s) => s.role.can(p),
            Actor::OperatorToken | Actor::Cli => true,
        }
    }
}

/// The operations service.
pub struct Ops {
    pub kernel: Arc<Kernel>,
    pub rights: Arc<Rights>,
    /// Signs audit heads; a key of its own, apart from the receipt key.
    audit_key: ReceiptSigner,
    pub(crate) settings: Settings,
    /// Bounds the Argon2 work running at once.
    argon2: tokio::sync::Semaphore,
    /// The delivery channel of shares with partners ([`partners`]).
    pub(crate) sharing: partners::Sharing,
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops")
            .field("audit_key", &self.audit_key.kid())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The installation secret that holds the audit head signing key.
pub const AUDIT_KEY_NAME: &str = "audit-signing-key";

impl Ops {
    pub async fn open(
        kernel: Arc<Kernel>,
        rights: Arc<Rights>,
        cfg: &OpsConfig,
    ) -> anyhow::Result<Arc<Ops>> {
        let settings = Settings::from_config(cfg)?;
        let audit_key = audit_signer(&kernel).await?;
        Ok(Arc::new(Ops {
            kernel,
            rights,
            audit_key,
            settings,
            argon2: tokio::sync::Semaphore::new(2),
            sharing: partners::Sharing::new(&cfg.partners)?,
        }))
    }

    fn now_ms(&self) -> i64 {
        self.kernel.clock.now_ms()
    }

    pub(crate) fn signing(&self) -> HeadSigning<'_> {
        HeadSigning {
            signer: &self.audit_key,
            every: self.settings.sign_every,
            interval_ms: self.settings.sign_interval_ms,
        }
    }

    /// The public key that verifies signed audit heads, as a JWK.
    pub fn audit_public_jwk(&self) -> serde_json::Value {
        self.audit_key.public_jwk()
    }
}

/// The audit head signing key of this installation (created on first use, wrapped by
/// the master key like the receipt key).
pub async fn audit_signer(kernel: &Kernel) -> anyhow::Result<ReceiptSigner> {
    let secret = secrets::get_or_create(&kernel.db, &kernel.ring, AUDIT_KEY_NAME, || {
        ReceiptSigner::generate(&mut OsRng).secret_bytes().to_vec()
    })
    .await?;
    Ok(ReceiptSigner::from_secret(&secret)?)
}
