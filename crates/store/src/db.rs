//! Connecting to SQLite or PostgreSQL and running the migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::StoreResult;

/// Runs the same expression against whichever pool the [`Db`] holds, binding it to
/// `$pool`. The body is compiled once per backend.
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::Db::Sqlite($pool) => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool to one of the supported databases.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Which migration set a database gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Everything but the key vault.
    Data,
    /// The wrapped subject keys.
    Vault,
}

impl Db {
    /// Connects to `url` (`sqlite://PATH` or `postgres://…`), creating a SQLite file if
    /// missing, and applies the migrations of `schema`.
    pub async fn connect(url: &str, schema: Schema) -> StoreResult<Db> {
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)?;
            Db::Postgres(
                PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await?,
            )
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(15))
                // Fewer, larger checkpoints: batched ledger appends write many pages.
                .pragma("wal_autocheckpoint", "10000")
                .foreign_keys(true);
            Db::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(15))
                    .connect_with(opts)
                    .await?,
            )
        } else {
            return Err(crate::StoreError::Invalid(
                "database URL must start with sqlite:// or postgres://".into(),
            ));
        };
        db.migrate(schema).await?;
        Ok(db)
    }

    pub async fn migrate(&self, schema: Schema) -> StoreResult<()> {
        // Data and vault may share one PostgreSQL database, so each migrator ignores the
        // other's applied versions.
        let mut m = match (self.backend(), schema) {
            (Backend::Sqlite, Schema::Data) => sqlx::migrate!("./migrations/sqlite"),
            (Backend::Postgres, Schema::Data) => sqlx::migrate!("./migrations/postgres"),
            (Backend::Sqlite, Schema::Vault) => sqlx::migrate!("./migrations/vault-sqlite"),
            (Backend::Postgres, Schema::Vault) => sqlx::migrate!("./migrations/vault-postgres"),
        };
        m.set_ignore_missing(true);
        match self {
            Db::Sqlite(p) => m.run(p).await?,
            Db::Postgres(p) => m.run(p).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> StoreResult<()> {
        on_db!(self, p => { sqlx::query("SELECT 1").execute(p).await?; });
        Ok(())
    }

    pub async fn close(&self) {
        on_db!(self, p => p.close().await)
    }
}

pub use sqlx::Error as SqlxError;
