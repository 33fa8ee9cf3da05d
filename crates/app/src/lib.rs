//! # custos-app — the privacy kernel's use cases
//!
//! Wires the declaration ([`custos_policy`]), the gate ([`custos_core`]), cryptography
//! ([`custos_crypto`]) and storage ([`custos_store`]) into the operations the HTTP API and
//! the CLI call: publish a policy, record and withdraw consent, issue signed receipts,
//! store and read personal fields through the gate, erase a subject.
//!
//! ## Layout
//! - [`config`]: typed configuration from flags, `CUSTOS_*` variables and `custos.toml`.
//! - [`kernel`]: [`Kernel`], opened once per process, holding pools, keys and the gate.
//! - [`consent`]: recording decisions, receipts (Kantara CR v1.1 fields, Ed25519 JWS).
//! - [`ledger_writer`]: group commit of ledger appends and cross-process catch-up.
//! - [`error`]: [`AppError`] with stable codes.
//! - [`services`]: [`App`], the kernel plus the services built on it.
//! - [`identity`]: accounts, SMS codes, sessions, profile, third-party login, minors.
//! - [`catalog`]: items, media, search, interactions.
//! - [`jobs`]: the retention purge and due cancellations, on a schedule, one runner at a time.
//!
//! Must not import: HTTP.

pub mod catalog;
pub mod config;
pub mod consent;
pub mod error;
pub mod identity;
pub mod jobs;
pub mod kernel;
pub mod ledger_writer;
pub mod ops;
pub mod rights;
pub mod services;
pub mod signals;

pub use config::Config;
pub use error::{AppError, AppResult};
pub use kernel::Kernel;
pub use services::App;
