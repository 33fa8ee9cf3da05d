//! Personal fields, encrypted under the subject's data key, and blind-index lookups.
//!
//! Writing requires a [`Permit`] from the purpose gate that covers the subject and the
//! field's category; there is no other way in:
//!
//! ```compile_fail
//! # use custos_core::{Personal, SubjectId};
//! # use custos_store::personal::{Field, PersonalStore};
//! # async fn f(store: PersonalStore, s: SubjectId) {
//! // No permit, no write: `put` wants `&Permit`, and only the gate makes one.
//! store.put(&s, &Field::new("nickname", "user.name"), &Personal::new(b"x".to_vec()), 0, None).await.unwrap();
//! # }
//! ```
//!
//! The same call with a permit from the gate compiles:
//!
//! ```no_run
//! # use custos_core::{Gate, GateContext, Personal, SubjectId};
//! # use custos_store::personal::{Field, PersonalStore};
//! # async fn f(store: PersonalStore, gate: Gate, s: SubjectId) {
//! let permit = gate.check_named(s, "profile", &["user.name"], &GateContext::default()).unwrap();
//! store.put(&permit, &Field::new("nickname", "user.name"), &Personal::new(b"x".to_vec()), 0, None).await.unwrap();
//! # }
//! ```

use custos_core::{Permit, Personal, SubjectId};
use custos_crypto::{Keyring, OsRng};
use std::sync::Arc;

use crate::vault::Vault;
use crate::{ledger, on_db, Db, StoreError, StoreResult};

/// A personal field: its storage name and the declared category it belongs to.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub category: String,
}

impl Field {
    pub fn new(name: &str, category: &str) -> Field {
        Field {
            name: name.to_owned(),
            category: category.to_owned(),
        }
    }
}

/// Metadata of a stored field (no value), for listings and exports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldInfo {
    pub field: String,
    pub purpose: String,
    pub category: String,
    pub updated_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct PersonalStore {
    db: Db,
    vault: Vault,
    ring: Arc<Keyring>,
}

fn binding(subject: SubjectId, field: &str) -> Vec<u8> {
    let mut b = subject.as_bytes().to_vec();
    b.push(b'/');
    b.extend_from_slice(field.as_bytes());
    b
}

impl PersonalStore {
    pub fn new(db: Db, vault: Vault, ring: Arc<Keyring>) -> PersonalStore {
        PersonalStore { db, vault, ring }
    }

    /// Checks that the permit covers `category` for `subject`, and that no consent record
    /// newer than the one the gate saw exists: a withdrawal committed by any process
    /// before this write stops it (P39).
    async fn check_permit(
        &self,
        permit: &Permit,
        subject: SubjectId,
        category: &str,
    ) -> StoreResult<()> {
        if !permit.covers(subject, category) {
            return Err(StoreError::PermitMismatch);
        }
        if permit.basis() == custos_policy::LegalBasis::Consent
            && ledger::subject_head(&self.db, subject).await? > permit.seen_seq()
        {
            return Err(StoreError::StaleConsent);
        }
        Ok(())
    }

    /// Stores (or overwrites in place) one field, encrypted under the subject's key.
    pub async fn put(
        &self,
        permit: &Permit,
        field: &Field,
        value: &Personal<Vec<u8>>,
        now_ms: i64,
        expires_at_ms: Option<i64>,
    ) -> StoreResult<()> {
        let subject = permit.subject();
        self.check_permit(permit, subject, &field.category).await?;
        let key = self.vault.get_or_create(subject, now_ms).await?;
        let sealed = key
            .cipher()
            .seal(&binding(subject, &field.name), value.expose(), &mut OsRng);
        on_db!(&self.db, p => sqlx::query(
            "INSERT INTO personal_fields (subject, field, purpose, category, sealed, updated_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (subject, field) DO UPDATE SET purpose = excluded.purpose, \
             category = excluded.category, sealed = excluded.sealed, \
             updated_at = excluded.updated_at, expires_at = excluded.expires_at")
            .bind(subject.to_string())
            .bind(&field.name)
            .bind(permit.purpose())
            .bind(&field.category)
            .bind(sealed)
            .bind(now_ms)
            .bind(expires_at_ms)
            .execute(p)
            .await.map(|_| ())?);
        Ok(())
    }

    /// Reads and decrypts one field. `None` if absent, expired, or the key is destroyed.
    pub async fn get(
        &self,
        subject: SubjectId,
        field: &str,
        now_ms: i64,
    ) -> StoreResult<Option<Personal<Vec<u8>>>> {
        let row: Option<(Vec<u8>, Option<i64>)> = on_db!(&self.db, p => sqlx::query_as(
            "SELECT sealed, expires_at FROM personal_fields WHERE subject = $1 AND field = $2")
            .bind(subject.to_string())
            .bind(field)
            .fetch_optional(p)
            .await?);
        let Some((sealed, expires)) = row else {
            return Ok(None);
        };
        if expires.is_some_and(|e| e <= now_ms) {
            return Ok(None);
        }
        let Some(key) = self.vault.get(subject).await? else {
            return Ok(None);
        };
        let plain = key.cipher().open(&binding(subject, field), &sealed)?;
        Ok(Some(Personal::new(plain)))
    }

    /// Lists the subject's stored fields (names and metadata only).
    pub async fn list(&self, subject: SubjectId) -> StoreResult<Vec<FieldInfo>> {
        let rows: Vec<(String, String, String, i64, Option<i64>)> = on_db!(&self.db, p => sqlx::query_as(
            "SELECT field, purpose, category, updated_at, expires_at FROM personal_fields \
             WHERE subject = $1 ORDER BY field")
            .bind(subject.to_string())
            .fetch_all(p)
            .await?);
        Ok(rows
            .into_iter()
            .map(
                |(field, purpose, category, updated_at_ms, expires_at_ms)| FieldInfo {
                    field,
                    purpose,
                    category,
                    updated_at_ms,
                    expires_at_ms,
                },
            )
            .collect())
    }

    /// Deletes one field. Returns whether it existed.
    pub async fn delete(&self, subject: SubjectId, field: &str) -> StoreResult<bool> {
        let n = on_db!(&self.db, p => sqlx::query("DELETE FROM personal_fields WHERE subject = $1 AND field = $2")
            .bind(subject.to_string())
            .bind(field)
            .execute(p)
            .await?
            .rows_affected());
        Ok(n > 0)
    }

    /// Deletes every field stored under `purpose` for the subject (withdrawal, P39).
    pub async fn delete_purpose(&self, subject: SubjectId, purpose: &str) -> StoreResult<u64> {
        Ok(
            on_db!(&self.db, p => sqlx::query("DELETE FROM personal_fields WHERE subject = $1 AND purpose = $2")
            .bind(subject.to_string())
            .bind(purpose)
            .execute(p)
            .await?
            .rows_affected()),
        )
    }

    /// Deletes fields whose retention ended. Returns how many.
    pub async fn purge_expired(&self, now_ms: i64) -> StoreResult<u64> {
        Ok(
            on_db!(&self.db, p => sqlx::query("DELETE FROM personal_fields WHERE expires_at IS NOT NULL AND expires_at <= $1")
            .bind(now_ms)
            .execute(p)
            .await?
            .rows_affected()),
        )
    }

    /// Records a blind-index lookup (`domain`, value) → subject, e.g. a phone number.
    pub async fn put_lookup(
        &self,
        permit: &Permit,
        category: &str,
        domain: &str,
        value: &Personal<Vec<u8>>,
        now_ms: i64,
    ) -> StoreResult<()> {
        let subject = permit.subject();
        self.check_permit(permit, subject, category).await?;
        self.put_lookup_unchecked(domain, value, subject, now_ms)
            .await
    }

    /// A lookup that carries no personal data (a random anonymous token), so no permit.
    pub async fn put_token_lookup(
        &self,
        domain: &str,
        token: &[u8],
        subject: SubjectId,
        now_ms: i64,
    ) -> StoreResult<()> {
        self.put_lookup_unchecked(domain, &Personal::new(token.to_vec()), subject, now_ms)
            .await
    }

    async fn put_lookup_unchecked(
        &self,
        domain: &str,
        value: &Personal<Vec<u8>>,
        subject: SubjectId,
        now_ms: i64,
    ) -> StoreResult<()> {
        let blind = self.ring.blind_index(domain, value.expose()).to_vec();
        on_db!(&self.db, p => sqlx::query(
            "INSERT INTO subject_lookups (domain, blind, subject, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (domain, blind) DO UPDATE SET subject = excluded.subject")
            .bind(domain)
            .bind(blind)
            .bind(subject.to_string())
            .bind(now_ms)
            .execute(p)
            .await.map(|_| ())?);
        Ok(())
    }

    /// Finds the subject a value is indexed under.
    pub async fn find(&self, domain: &str, value: &[u8]) -> StoreResult<Option<SubjectId>> {
        let blind = self.ring.blind_index(domain, value).to_vec();
        let row: Option<(String,)> = on_db!(&self.db, p => sqlx::query_as(
            "SELECT subject FROM subject_lookups WHERE domain = $1 AND blind = $2")
            .bind(domain)
            .bind(blind)
            .fetch_optional(p)
            .await?);
        row.map(|(s,)| {
            s.parse()
                .map_err(|_| StoreError::Corrupt("lookup subject".into()))
        })
        .transpose()
    }

    /// Erases the subject: deletes fields and lookups, then destroys the key, so any
    /// copy of the data made before now can no longer be decrypted (P19, L8).
    pub async fn erase(&self, subject: SubjectId) -> StoreResult<ErasureCounts> {
        let s = subject.to_string();
        let (fields, lookups) = on_db!(&self.db, p => {
            let mut tx = p.begin().await?;
            let f = sqlx::query("DELETE FROM personal_fields WHERE subject = $1").bind(&s).execute(&mut *tx).await?.rows_affected();
            let l = sqlx::query("DELETE FROM subject_lookups WHERE subject = $1").bind(&s).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            (f, l)
        });
        let key_destroyed = self.vault.destroy(subject).await?;
        Ok(ErasureCounts {
            fields,
            lookups,
            key_destroyed,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ErasureCounts {
    pub fields: u64,
    pub lookups: u64,
    pub key_destroyed: bool,
}
