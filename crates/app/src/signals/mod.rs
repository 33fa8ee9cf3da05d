//! Signals and personalization (issue 5): current-only location, device information,
//! pseudonymized service logs, cookies and identifiers, preference profiles, personalized
//! feed, push and ads with an off switch. Every write passes the kernel's purpose gate.

use std::sync::Arc;

use serde::Deserialize;

use crate::Kernel;

/// `[signals]` in `custos.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalsConfig {}

/// The signals service.
#[derive(Debug)]
pub struct Signals {
    pub kernel: Arc<Kernel>,
}

impl Signals {
    pub async fn open(kernel: Arc<Kernel>, _cfg: &SignalsConfig) -> anyhow::Result<Arc<Signals>> {
        Ok(Arc::new(Signals { kernel }))
    }
}
