//! The kernel: one per process. Opening it connects the databases, loads the master key,
//! publishes the bundled declaration on a fresh database, builds the gate from the ledger
//! and starts the ledger writer (and, on PostgreSQL, the listener that folds other
//! processes' decisions into this process's gate).

use std::path::Path;
use std::sync::Arc;

use custos_core::{Clock, Gate, GateContext, Permit, Personal, Regime, SubjectId};
use custos_crypto::{Keyring, MasterKey, OsRng, ReceiptSigner};
use custos_policy::Policy;
use custos_store::db::Schema;
use custos_store::personal::{Field, PersonalStore};
use custos_store::vault::Vault;
use custos_store::{ledger, policy_versions, secrets, Db, StoreError};

use crate::config::{Config, MasterKeySource};
use crate::ledger_writer::LedgerWriter;
use crate::{AppError, AppResult};

/// Domain of the blind index that maps anonymous tokens to subjects.
pub const ANON_DOMAIN: &str = "anonymous-token";

pub struct Kernel {
    pub db: Db,
    pub vault: Vault,
    pub personal: PersonalStore,
    pub gate: Arc<Gate>,
    pub ring: Arc<Keyring>,
    pub signer: Arc<ReceiptSigner>,
    pub clock: Arc<dyn Clock>,
    pub(crate) ledger: LedgerWriter,
    /// Anonymous token (by blind index) → subject; tokens never change owner, and
    /// erasure evicts the subject's entries.
    anon_cache: std::sync::RwLock<std::collections::HashMap<[u8; 16], SubjectId>>,
}

/// Entries in the anonymous-token cache before it starts over.
const ANON_CACHE_MAX: usize = 100_000;

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("backend", &self.db.backend())
            .finish_non_exhaustive()
    }
}

/// Loads the master key, generating it into the data directory on the embedded default.
pub fn load_master_key(cfg: &Config) -> anyhow::Result<MasterKey> {
    match &cfg.master_key {
        MasterKeySource::Inline(text) => MasterKey::from_base64(text)
            .map_err(|e| anyhow::anyhow!("CUSTOS_MASTER_KEY: {e}; expected 32 bytes in base64")),
        MasterKeySource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("cannot read master key file {}: {e}", path.display())
            })?;
            MasterKey::from_base64(&text).map_err(|e| {
                anyhow::anyhow!("{}: {e}; expected 32 bytes in base64", path.display())
            })
        }
        MasterKeySource::DataDir => {
            let path = cfg.data_dir.join("master.key");
            if path.exists() {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                return MasterKey::from_base64(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
            }
            let key = MasterKey::generate(&mut OsRng);
            write_private(&path, key.to_base64().as_bytes())?;
            tracing::warn!(
                path = %path.display(),
                "generated a new master key in the data directory; back it up separately from the \
                 database, and in production supply it with CUSTOS_MASTER_KEY or --master-key-file"
            );
            Ok(key)
        }
    }
}

/// Writes a file readable by its owner only (0600), refusing to overwrite.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

impl Kernel {
    /// Opens the kernel with the system clock.
    pub async fn open(cfg: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<Kernel>> {
        if !cfg.is_postgres() || !cfg.vault_url.starts_with("postgres") {
            create_private_dir(&cfg.data_dir)?;
        }
        if cfg.is_postgres() && cfg.vault_url == cfg.database_url {
            tracing::warn!(
                "the key vault shares the data database: a dump of it holds the wrapped subject keys, \
                 so erasure cannot reach copies made before it; set --vault-url to a separate database"
            );
        }
        let master = load_master_key(cfg)?;
        let ring = Arc::new(Keyring::new(&master));
        drop(master);
        let db = Db::connect(&cfg.database_url, Schema::Data)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
        let vault_db = if cfg.vault_url == cfg.database_url {
            db.migrate(Schema::Vault).await?;
            db.clone()
        } else {
            Db::connect(&cfg.vault_url, Schema::Vault)
                .await
                .map_err(|e| anyhow::anyhow!("cannot open the key vault: {e}"))?
        };
        let vault = Vault::new(vault_db, ring.clone());
        let personal = PersonalStore::new(db.clone(), vault.clone(), ring.clone());

        let signer_secret = secrets::get_or_create(&db, &ring, "receipt-signing-key", || {
            ReceiptSigner::generate(&mut OsRng).secret_bytes().to_vec()
        })
        .await?;
        let signer = Arc::new(ReceiptSigner::from_secret(&signer_secret)?);

        let mut history = policy_versions::load_all(&db).await?;
        if history.is_empty() {
            let (policy, origin) = match &cfg.policy {
                Some(path) => (read_policy(path)?, path.display().to_string()),
                None => (
                    Policy::parse(custos_policy::BUNDLED_DECLARATION)?,
                    "the bundled declaration".into(),
                ),
            };
            policy_versions::publish(&db, &policy, clock.now_ms()).await?;
            tracing::info!(hash = %policy.hash(), %origin, "published the first policy version");
            history.push(policy);
        } else if let Some(path) = &cfg.policy {
            let file = read_policy(path)?;
            if history.last().map(|p| p.hash()) != Some(file.hash()) {
                tracing::warn!(file = %path.display(), "the policy file differs from the latest published version; \
                    run `custos policy publish` to publish it");
            }
        }
        let regime = Regime::new(history.into_iter().map(Arc::new).collect())?;
        let gate = Arc::new(Gate::new(regime));
        // Head first: records committed meanwhile are then applied twice, never missed.
        let start_seq = ledger::head(&db).await?;
        gate.apply_all(&ledger::latest_decisions(&db).await?);
        let ledger = LedgerWriter::start(db.clone(), gate.clone(), start_seq);
        let kernel = Arc::new(Kernel {
            db,
            vault,
            personal,
            gate,
            ring,
            signer,
            clock,
            ledger,
            anon_cache: Default::default(),
        });
        kernel
            .ledger
            .adopt(tokio::spawn(watch_policy(Arc::downgrade(&kernel))))
            .await;
        Ok(kernel)
    }

    /// Stops background tasks and closes pools.
    pub async fn shutdown(&self) {
        self.ledger.stop().await;
        self.db.close().await;
        self.vault.db().close().await;
    }

    /// Publishes a declaration and switches this process's gate to it.
    pub async fn publish(
        &self,
        policy: &Policy,
    ) -> AppResult<(policy_versions::VersionInfo, bool)> {
        let out = policy_versions::publish(&self.db, policy, self.clock.now_ms()).await?;
        self.reload_policy().await?;
        Ok(out)
    }

    /// Rebuilds the regime from the stored versions and the gate's view from the ledger.
    pub async fn reload_policy(&self) -> AppResult<()> {
        let history = policy_versions::load_all(&self.db).await?;
        let regime = Regime::new(history.into_iter().map(Arc::new).collect())
            .map_err(|e| AppError::Internal(e.to_string()))?;
        self.gate.replace_regime(regime);
        self.gate
            .apply_all(&ledger::latest_decisions(&self.db).await?);
        Ok(())
    }

    /// Folds the subject's newest ledger records into the gate (used when a write finds
    /// that another process recorded a decision the gate has not seen yet).
    pub async fn refresh_subject(&self, subject: SubjectId) -> AppResult<()> {
        let recs = ledger::for_subject(&self.db, subject).await?;
        self.gate.apply_all(&recs);
        Ok(())
    }

    /// The subject an anonymous token belongs to, if any.
    pub async fn anonymous_subject(&self, token: &str) -> AppResult<Option<SubjectId>> {
        if token.len() != 43
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Ok(None);
        }
        let key = self.ring.blind_index(ANON_DOMAIN, token.as_bytes());
        if let Some(s) = self
            .anon_cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(Some(*s));
        }
        let found = self.personal.find(ANON_DOMAIN, token.as_bytes()).await?;
        if let Some(s) = found {
            let mut cache = self.anon_cache.write().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= ANON_CACHE_MAX {
                cache.clear();
            }
            cache.insert(key, s);
        }
        Ok(found)
    }

    /// Creates an anonymous subject and its bearer token (256 random bits, base64url).
    /// The database keeps only a keyed hash of the token.
    pub async fn new_anonymous_subject(&self) -> AppResult<(String, SubjectId)> {
        use base64::Engine;
        use rand_core::RngCore;
        let mut raw = [0u8; 32];
        OsRng.fill_bytes(&mut raw);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let subject = SubjectId::random();
        self.personal
            .put_token_lookup(ANON_DOMAIN, token.as_bytes(), subject, self.clock.now_ms())
            .await?;
        Ok((token, subject))
    }

    /// Asks the gate, with resolved keys.
    pub fn permit(
        &self,
        subject: SubjectId,
        purpose: &str,
        categories: &[&str],
        ctx: &GateContext<'_>,
    ) -> AppResult<Permit> {
        Ok(self.gate.check_named(subject, purpose, categories, ctx)?)
    }

    /// Stores a personal field for `purpose` through the gate. If another process recorded
    /// a newer decision for the subject, the gate catches up and decides again.
    pub async fn store_field(
        &self,
        subject: SubjectId,
        purpose: &str,
        field: &Field,
        value: &Personal<Vec<u8>>,
        ctx: &GateContext<'_>,
    ) -> AppResult<()> {
        let now = self.clock.now_ms();
        let expires = self.retention_end(purpose, now);
        for attempt in 0..2 {
            let permit = self.permit(subject, purpose, &[&field.category], ctx)?;
            match self.personal.put(&permit, field, value, now, expires).await {
                Err(StoreError::StaleConsent) if attempt == 0 => {
                    self.refresh_subject(subject).await?
                }
                other => return Ok(other?),
            }
        }
        Err(AppError::Internal("consent view did not converge".into()))
    }

    /// Makes sure the gate has seen every decision recorded for `subject`, by any process.
    /// On PostgreSQL (several processes may share the database) this costs one indexed
    /// query; on the embedded SQLite default this process is the only writer.
    pub async fn fresh(&self, subject: SubjectId) -> AppResult<()> {
        if self.db.backend() == custos_store::Backend::Postgres
            && ledger::subject_head(&self.db, subject).await? > self.gate.seen_seq(subject)
        {
            self.refresh_subject(subject).await?;
        }
        Ok(())
    }

    /// Stores the subject's present position, coarsened to a geohash of at most five
    /// characters before it leaves this function; it overwrites the previous one (P8, L16).
    pub async fn store_location(
        &self,
        subject: SubjectId,
        lat: f64,
        lon: f64,
        ctx: &GateContext<'_>,
    ) -> AppResult<String> {
        let hash =
            custos_core::location::coarse_geohash(lat, lon, custos_core::location::MAX_PRECISION)
                .map_err(|e| AppError::bad("invalid_location", e.to_string()))?;
        let field = Field::new("location", "user.location.imprecise");
        self.store_field(
            subject,
            "location",
            &field,
            &Personal::new(hash.clone().into_bytes()),
            ctx,
        )
        .await?;
        Ok(hash)
    }

    /// Erases a subject's personal data: fields, lookups and the data key (crypto-shredding).
    /// Ledger records stay (the law requires them) but name only the random subject id.
    pub async fn erase_subject(
        &self,
        subject: SubjectId,
    ) -> AppResult<custos_store::personal::ErasureCounts> {
        let counts = self.personal.erase(subject).await?;
        self.gate.forget(subject);
        self.anon_cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| *s != subject);
        Ok(counts)
    }

    /// When data collected now for `purpose` must be gone, if retention runs from collection.
    pub fn retention_end(&self, purpose: &str, now_ms: i64) -> Option<i64> {
        let regime = self.gate.regime();
        let p = regime.current().purpose(purpose)?;
        let r = p.retention?;
        (r.from == custos_policy::RetentionFrom::Collection)
            .then(|| now_ms + i64::from(r.days) * 86_400_000)
    }
}

/// How often a process looks for versions published by another process or the CLI.
pub const POLICY_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Switches the gate to versions published elsewhere (another server, `custos policy
/// publish`), within [`POLICY_POLL`].
async fn watch_policy(kernel: std::sync::Weak<Kernel>) {
    loop {
        tokio::time::sleep(POLICY_POLL).await;
        let Some(k) = kernel.upgrade() else { return };
        match policy_versions::count(&k.db).await {
            Ok(n) if n != k.gate.regime().versions().len() as i64 => {
                match k.reload_policy().await {
                    Ok(()) => {
                        tracing::info!(hash = %k.gate.regime().current().hash(), "switched to a newly published policy version")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot load a newly published policy version")
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot check for new policy versions"),
        }
    }
}

/// Creates the data directory readable by its owner only.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| anyhow::anyhow!("cannot create data directory {}: {e}", dir.display()))
}

/// Reads and validates a declaration file.
pub fn read_policy(path: &Path) -> anyhow::Result<Policy> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    Policy::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
