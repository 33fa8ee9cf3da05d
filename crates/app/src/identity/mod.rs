//! Accounts and identity (issue 3): phone + SMS sign-up, sessions, optional profile,
//! third-party login, minors with guardian consent. Every personal value goes through
//! the kernel's purpose gate and is encrypted per subject.

use std::sync::Arc;

use serde::Deserialize;

use crate::Kernel;

/// `[identity]` in `custos.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {}

/// The identity service.
#[derive(Debug)]
pub struct Identity {
    pub kernel: Arc<Kernel>,
}

impl Identity {
    pub async fn open(kernel: Arc<Kernel>, _cfg: &IdentityConfig) -> anyhow::Result<Arc<Identity>> {
        Ok(Arc::new(Identity { kernel }))
    }
}
