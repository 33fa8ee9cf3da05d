//! Every service of one process, opened together.

use std::sync::Arc;

use custos_core::Clock;

use crate::catalog::Catalog;
use crate::identity::Identity;
use crate::ops::Ops;
use crate::rights::Rights;
use crate::signals::Signals;
use crate::{Config, Kernel};

/// The kernel and the services built on it; cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    pub kernel: Arc<Kernel>,
    pub identity: Arc<Identity>,
    pub catalog: Arc<Catalog>,
    pub signals: Arc<Signals>,
    pub rights: Arc<Rights>,
    pub ops: Arc<Ops>,
    /// Revisions, residency, cessation, change of controller (issue 7).
    pub policy_ops: Arc<crate::ops::revisions::PolicyOps>,
    /// Settings of the web app (`[web]`).
    pub web: crate::config::WebConfig,
}

impl App {
    pub async fn open(cfg: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        cfg.web.validate()?;
        let kernel = Kernel::open(cfg, clock).await?;
        let identity = Identity::open(kernel.clone(), &cfg.identity, &cfg.data_dir).await?;
        let catalog = Catalog::open(kernel.clone(), &cfg.catalog, &cfg.data_dir).await?;
        let signals = Signals::open(kernel.clone(), &cfg.signals).await?;
        let rights = Rights::open(
            kernel.clone(),
            identity.clone(),
            catalog.clone(),
            signals.clone(),
            &cfg.rights,
        )
        .await?;
        let ops = Ops::open(kernel.clone(), rights.clone(), &cfg.ops).await?;
        let policy_ops = crate::ops::revisions::PolicyOps::open(
            kernel.clone(),
            identity.clone(),
            catalog.clone(),
            signals.clone(),
            rights.clone(),
            cfg,
        )
        .await?;
        Ok(App {
            kernel,
            identity,
            catalog,
            signals,
            rights,
            ops,
            policy_ops,
            web: cfg.web.clone(),
        })
    }

    /// Stops background work and closes pools.
    pub async fn shutdown(&self) {
        self.kernel.shutdown().await;
    }
}
