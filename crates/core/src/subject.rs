//! The data subject's identifier: random, meaningless, never derived from personal data.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubjectId(Uuid);

impl SubjectId {
    /// A new random (version 4) id from the operating system's CSPRNG.
    pub fn random() -> SubjectId {
        SubjectId(Uuid::new_v4())
    }
    pub fn from_u128(v: u128) -> SubjectId {
        SubjectId(Uuid::from_u128(v))
    }
    pub fn from_bytes(b: [u8; 16]) -> SubjectId {
        SubjectId(Uuid::from_bytes(b))
    }
    pub fn as_u128(&self) -> u128 {
        self.0.as_u128()
    }
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
    pub fn uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectId({})", self.0.hyphenated())
    }
}

impl FromStr for SubjectId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(SubjectId)
    }
}
