//! Rights and lifecycle (issue 6): access and export, correction, deletion, withdrawal,
//! account cancellation with erasure, rights tickets with deadlines, complaints, retention.

use std::sync::Arc;

use serde::Deserialize;

use crate::Kernel;

/// `[rights]` in `custos.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RightsConfig {}

/// The rights service.
#[derive(Debug)]
pub struct Rights {
    pub kernel: Arc<Kernel>,
}

impl Rights {
    pub async fn open(kernel: Arc<Kernel>, _cfg: &RightsConfig) -> anyhow::Result<Arc<Rights>> {
        Ok(Arc::new(Rights { kernel }))
    }
}
