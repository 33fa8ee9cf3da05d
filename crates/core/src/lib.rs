//! # custos-core — the privacy kernel's domain, without I/O
//!
//! Owns the rules that decide whether personal data may be processed, and the types that
//! carry personal data safely. Nothing here touches a network, a file or a database, so
//! every rule is tested by calling functions with a fake clock.
//!
//! ## Layout
//! - [`clock`]: the injected [`Clock`] (system and fake).
//! - [`personal`]: [`Personal<T>`], a wrapper whose `Debug`/`Display` never show the value.
//! - [`subject`]: [`SubjectId`], the random id of a data subject.
//! - [`consent`]: decisions, methods and the ledger record with its canonical bytes.
//! - [`regime`]: the published policy versions and, per purpose, the version since which
//!   consent must have been given (re-consent on change, L4).
//! - [`gate`]: the purpose gate and its [`Permit`], which only the gate can construct.
//! - [`location`]: coarse geohash of a position (≤ 5 characters, L16).
//!
//! Must not import: HTTP, SQL, async runtimes.

pub mod clock;
pub mod consent;
pub mod gate;
pub mod location;
pub mod personal;
pub mod regime;
pub mod subject;

pub use clock::{Clock, FakeClock, SystemClock};
pub use consent::{ConsentMethod, ConsentRecord, Decision};
pub use gate::{AgeStatus, CategoryMask, Denial, Gate, GateContext, Permit, PurposeRef};
pub use personal::Personal;
pub use regime::Regime;
pub use subject::SubjectId;
