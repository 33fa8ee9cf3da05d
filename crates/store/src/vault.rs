//! The key vault: each subject's data key, wrapped by the master key's key-encryption key.
//!
//! The vault lives in its own database (by default `keys.db` beside the SQLite data file),
//! so a copy or backup of the data database holds no keys at all; destroying a subject's
//! key here makes that subject's fields unreadable in every copy (crypto-shredding).

use std::sync::Arc;

use custos_core::SubjectId;
use custos_crypto::OsRng;
use custos_crypto::{DataKey, Keyring};

use crate::{on_db, Db, StoreResult};

#[derive(Debug, Clone)]
pub struct Vault {
    db: Db,
    ring: Arc<Keyring>,
}

impl Vault {
    pub fn new(db: Db, ring: Arc<Keyring>) -> Vault {
        Vault { db, ring }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The subject's key, if it exists (it does not after erasure).
    pub async fn get(&self, subject: SubjectId) -> StoreResult<Option<DataKey>> {
        let row: Option<(Vec<u8>,)> = on_db!(&self.db, p => sqlx::query_as(
            "SELECT wrapped FROM subject_keys WHERE subject = $1")
            .bind(subject.to_string())
            .fetch_optional(p)
            .await?);
        match row {
            Some((w,)) => Ok(Some(self.ring.unwrap(&w, subject.as_bytes())?)),
            None => Ok(None),
        }
    }

    /// The subject's key, created on first use. Concurrent creators agree on one key.
    pub async fn get_or_create(&self, subject: SubjectId, now_ms: i64) -> StoreResult<DataKey> {
        if let Some(k) = self.get(subject).await? {
            return Ok(k);
        }
        let wrapped = self.ring.wrap(
            &DataKey::generate(&mut OsRng),
            subject.as_bytes(),
            &mut OsRng,
        );
        on_db!(&self.db, p => sqlx::query(
            "INSERT INTO subject_keys (subject, wrapped, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (subject) DO NOTHING")
            .bind(subject.to_string())
            .bind(wrapped)
            .bind(now_ms)
            .execute(p)
            .await.map(|_| ())?);
        self.get(subject)
            .await?
            .ok_or_else(|| crate::StoreError::Corrupt("subject key vanished after creation".into()))
    }

    /// Destroys the subject's key. Returns whether a key existed.
    pub async fn destroy(&self, subject: SubjectId) -> StoreResult<bool> {
        let done = on_db!(&self.db, p => sqlx::query("DELETE FROM subject_keys WHERE subject = $1")
            .bind(subject.to_string())
            .execute(p)
            .await?
            .rows_affected());
        Ok(done > 0)
    }
}
