//! # custos-store — persistence on SQLite and PostgreSQL
//!
//! Owns every SQL statement Custos runs and the migrations for both backends. One
//! [`Db`] handle wraps either pool; each repository writes its statements once, with
//! `$n` placeholders that both SQLite and PostgreSQL accept, and the [`on_db!`] macro
//! type-checks them against each backend.
//!
//! ## Layout
//! - [`db`]: connecting, pool settings (SQLite WAL), migrations.
//! - [`ledger`]: the append-only, hash-chained consent ledger and its verification.
//! - [`vault`]: wrapped per-subject data keys, in a separate database (crypto-shredding).
//! - [`personal`]: encrypted personal fields and blind-index lookups; writes need a
//!   [`custos_core::Permit`].
//! - [`policy_versions`]: immutable published declarations.
//! - [`identity`]: accounts, SMS challenges, throttle events, sessions (issue 3).
//! - [`secrets`]: installation secrets (the receipt signing key), wrapped by the master key.
//! - [`retention`]: deletions past declared retention, monthly partitions of the service
//!   log on PostgreSQL, one-instance job locks.
//! - [`staff`], [`audit`]: staff accounts and sessions; the hash-chained audit log with
//!   signed heads (issue 7).
//! - [`incidents`]: incidents, their append-only timeline, notices and announcements;
//!   [`shares`]: the log of data shared with partners and data received from them (issue 7).
//!
//! Must not import: HTTP.

pub mod audit;
pub mod catalog;
pub mod cessation;
pub mod dashboard;
pub mod db;
pub mod identity;
pub mod incidents;
pub mod interactions;
pub mod ledger;
pub mod personal;
pub mod policy_versions;
pub mod retention;
pub mod revisions;
pub mod rights;
pub mod secrets;
pub mod shares;
pub mod signals;
pub mod signals2;
pub mod staff;
pub mod vault;

pub use db::{Backend, Db};

/// Errors from the storage layer. Database causes are kept for the log, never shown to
/// API clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the permit does not cover this subject and category")]
    PermitMismatch,
    #[error("consent changed after the permit was issued; decide again")]
    StaleConsent,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("cryptographic failure: {0}")]
    Crypto(#[from] custos_crypto::CryptoError),
    #[error("{0}")]
    Invalid(String),
}

pub type StoreResult<T> = Result<T, StoreError>;
