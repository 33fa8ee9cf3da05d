//! The catalog (issue 4): items with media, import, full-text search with filters, and
//! the interactions signed-in users keep (bookmarks, downloads, shares, comments).

use std::sync::Arc;

use serde::Deserialize;

use crate::Kernel;

/// `[catalog]` in `custos.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {}

/// The catalog service.
#[derive(Debug)]
pub struct Catalog {
    pub kernel: Arc<Kernel>,
}

impl Catalog {
    pub async fn open(kernel: Arc<Kernel>, _cfg: &CatalogConfig) -> anyhow::Result<Arc<Catalog>> {
        Ok(Arc::new(Catalog { kernel }))
    }
}
