//! Installation secrets (the receipt signing key), stored wrapped by the master key so
//! every instance sharing the database signs with the same key.

use custos_crypto::{Keyring, OsRng};

use crate::{on_db, Db, StoreResult};

/// Returns the secret called `name`, creating it with `make` on first use. Concurrent
/// first uses agree on one value.
pub async fn get_or_create(
    db: &Db,
    ring: &Keyring,
    name: &str,
    make: impl FnOnce() -> Vec<u8>,
) -> StoreResult<Vec<u8>> {
    let existing: Option<(Vec<u8>,)> = on_db!(db, p => sqlx::query_as("SELECT wrapped FROM installation_secrets WHERE name = $1")
        .bind(name)
        .fetch_optional(p)
        .await?);
    if let Some((w,)) = existing {
        return Ok(ring.unwrap_secret(name, &w)?);
    }
    let wrapped = ring.wrap_secret(name, &make(), &mut OsRng);
    on_db!(db, p => sqlx::query("INSERT INTO installation_secrets (name, wrapped) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(wrapped)
        .execute(p)
        .await.map(|_| ())?);
    let (w,): (Vec<u8>,) = on_db!(db, p => sqlx::query_as("SELECT wrapped FROM installation_secrets WHERE name = $1")
        .bind(name)
        .fetch_one(p)
        .await?);
    Ok(ring.unwrap_secret(name, &w)?)
}
