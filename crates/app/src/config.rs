//! Typed configuration. Each setting comes, in order of precedence, from a command-line
//! flag, a `CUSTOS_*` environment variable, `custos.toml`, or the default. Unknown keys in
//! the file are errors naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Settings read from `custos.toml`; every field optional, unknown keys rejected.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub vault_url: Option<String>,
    pub master_key_file: Option<PathBuf>,
    pub policy: Option<PathBuf>,
    pub demo: Option<bool>,
    pub log_format: Option<String>,
    pub write_rate_limit: Option<u32>,
    #[serde(default)]
    pub identity: crate::identity::IdentityConfig,
    #[serde(default)]
    pub catalog: crate::catalog::CatalogConfig,
    #[serde(default)]
    pub signals: crate::signals::SignalsConfig,
    #[serde(default)]
    pub rights: crate::rights::RightsConfig,
    #[serde(default)]
    pub jobs: crate::jobs::JobsConfig,
    #[serde(default)]
    pub ops: crate::ops::OpsConfig,
    #[serde(default)]
    pub residency: crate::ops::residency::ResidencyConfig,
    #[serde(default)]
    pub web: WebConfig,
}

impl FileConfig {
    /// Reads `path`; a missing file is an empty configuration only when `required` is false.
    pub fn load(path: &Path, required: bool) -> anyhow::Result<FileConfig> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{}: {e}\n  valid keys: listen, data_dir, database_url, vault_url, \
                     master_key_file, policy, demo, log_format, write_rate_limit, [identity], [catalog], [signals], [rights], [jobs], [ops], [residency], [web]",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                Ok(FileConfig::default())
            }
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }
}

/// The resolved configuration the kernel opens with.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; defaults to `custos.db` inside the data directory.
    pub database_url: String,
    /// Where wrapped subject keys live; defaults to `keys.db` in the data directory for
    /// SQLite, and to the data database for PostgreSQL.
    pub vault_url: String,
    pub master_key: MasterKeySource,
    /// The declaration to publish when the database has no version yet.
    pub policy: Option<PathBuf>,
    pub identity: crate::identity::IdentityConfig,
    pub catalog: crate::catalog::CatalogConfig,
    pub signals: crate::signals::SignalsConfig,
    pub rights: crate::rights::RightsConfig,
    pub jobs: crate::jobs::JobsConfig,
    pub ops: crate::ops::OpsConfig,
    /// Region of each sink personal data reaches (P20).
    pub residency: crate::ops::residency::ResidencyConfig,
    pub web: WebConfig,
}

impl Default for Config {
    /// The embedded default in the current directory; tests override the storage fields
    /// and take every service section's default with `..Default::default()`.
    fn default() -> Config {
        Config {
            data_dir: PathBuf::from("."),
            database_url: "sqlite://custos.db".to_owned(),
            vault_url: "sqlite://keys.db".to_owned(),
            master_key: MasterKeySource::DataDir,
            policy: None,
            identity: Default::default(),
            catalog: Default::default(),
            signals: Default::default(),
            rights: Default::default(),
            jobs: Default::default(),
            ops: Default::default(),
            residency: Default::default(),
            web: Default::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// Base64 text from `CUSTOS_MASTER_KEY`.
    Inline(String),
    /// A file holding the base64 key.
    File(PathBuf),
    /// `master.key` in the data directory, generated on first run (embedded default only).
    DataDir,
}

impl Config {
    /// Resolves the storage settings shared by every command that touches data.
    pub fn resolve(
        data_dir: Option<PathBuf>,
        database_url: Option<String>,
        vault_url: Option<String>,
        master_key_file: Option<PathBuf>,
        policy: Option<PathBuf>,
    ) -> anyhow::Result<Config> {
        let data_dir = data_dir.unwrap_or_else(|| PathBuf::from("custos-data"));
        let database_url = database_url.unwrap_or_else(|| sqlite_url(&data_dir.join("custos.db")));
        let is_pg =
            database_url.starts_with("postgres://") || database_url.starts_with("postgresql://");
        if !is_pg && !database_url.starts_with("sqlite:") {
            anyhow::bail!("database_url must start with sqlite:// or postgres:// (got a value starting with {:?})",
                database_url.split(':').next().unwrap_or(""));
        }
        let vault_url = vault_url.unwrap_or_else(|| {
            if is_pg {
                database_url.clone()
            } else {
                sqlite_url(&data_dir.join("keys.db"))
            }
        });
        let master_key = match (std::env::var("CUSTOS_MASTER_KEY").ok(), master_key_file) {
            (Some(k), _) => MasterKeySource::Inline(k),
            (None, Some(f)) => MasterKeySource::File(f),
            (None, None) if is_pg => anyhow::bail!(
                "a PostgreSQL deployment needs its master key from CUSTOS_MASTER_KEY or --master-key-file \
                 (generate one with `custos keygen`); it is never generated implicitly outside the embedded default"),
            (None, None) => MasterKeySource::DataDir,
        };
        Ok(Config {
            data_dir,
            database_url,
            vault_url,
            master_key,
            policy,
            identity: Default::default(),
            catalog: Default::default(),
            signals: Default::default(),
            rights: Default::default(),
            jobs: Default::default(),
            ops: Default::default(),
            residency: Default::default(),
            web: Default::default(),
        })
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres")
    }
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// `[web]`: the web app.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Days after a first-visit consent decision during which the dialog is not shown
    /// again (L2); 1–365, default 30.
    pub consent_quiet_days: u32,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            consent_quiet_days: 30,
        }
    }
}

impl WebConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=365).contains(&self.consent_quiet_days) {
            anyhow::bail!(
                "[web] consent_quiet_days must be between 1 and 365 (got {})",
                self.consent_quiet_days
            );
        }
        Ok(())
    }
}
