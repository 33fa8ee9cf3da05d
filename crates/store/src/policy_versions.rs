//! Published policy versions: immutable, identified by content hash (P3, P35, L4).

use custos_policy::Policy;

use crate::{on_db, Db, StoreError, StoreResult};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VersionInfo {
    pub seq: i64,
    pub hash: String,
    pub revision: String,
    pub published_at_ms: i64,
}

/// Stores a version. Publishing the same content again is a no-op that returns the
/// existing entry and `false`.
pub async fn publish(db: &Db, policy: &Policy, now_ms: i64) -> StoreResult<(VersionInfo, bool)> {
    if let Some(v) = find(db, policy.hash().as_str()).await? {
        return Ok((v, false));
    }
    let inserted = on_db!(db, p => sqlx::query(
        "INSERT INTO policy_versions (hash, revision, source, published_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (hash) DO NOTHING")
        .bind(policy.hash().as_str())
        .bind(&policy.declaration().revision)
        .bind(policy.source())
        .bind(now_ms)
        .execute(p)
        .await?
        .rows_affected())
        > 0;
    let v = find(db, policy.hash().as_str())
        .await?
        .ok_or_else(|| StoreError::Corrupt("published version not found".into()))?;
    Ok((v, inserted))
}

/// Every version, oldest first.
pub async fn list(db: &Db) -> StoreResult<Vec<VersionInfo>> {
    let rows: Vec<(i64, String, String, i64)> = on_db!(db, p => sqlx::query_as(
        "SELECT seq, hash, revision, published_at FROM policy_versions ORDER BY seq")
        .fetch_all(p)
        .await?);
    Ok(rows
        .into_iter()
        .map(|(seq, hash, revision, published_at_ms)| VersionInfo {
            seq,
            hash,
            revision,
            published_at_ms,
        })
        .collect())
}

/// Finds a version by full hash or unique prefix (at least 6 hex digits).
pub async fn find(db: &Db, hash_or_prefix: &str) -> StoreResult<Option<VersionInfo>> {
    if hash_or_prefix.len() < 6 || !hash_or_prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let pattern = format!("{}%", hash_or_prefix.to_ascii_lowercase());
    let rows: Vec<(i64, String, String, i64)> = on_db!(db, p => sqlx::query_as(
        "SELECT seq, hash, revision, published_at FROM policy_versions WHERE hash LIKE $1 ORDER BY seq LIMIT 2")
        .bind(pattern)
        .fetch_all(p)
        .await?);
    if rows.len() > 1 {
        return Err(StoreError::Invalid(format!(
            "`{hash_or_prefix}` matches more than one version; give more digits"
        )));
    }
    Ok(rows
        .into_iter()
        .next()
        .map(|(seq, hash, revision, published_at_ms)| VersionInfo {
            seq,
            hash,
            revision,
            published_at_ms,
        }))
}

/// Every version's parsed declaration, oldest first.
pub async fn load_all(db: &Db) -> StoreResult<Vec<Policy>> {
    let rows: Vec<(String, String)> = on_db!(db, p => sqlx::query_as(
        "SELECT hash, source FROM policy_versions ORDER BY seq")
        .fetch_all(p)
        .await?);
    rows.into_iter()
        .map(|(hash, source)| {
            let policy = Policy::parse_published(&source).map_err(|e| {
                StoreError::Corrupt(format!("stored policy {hash} no longer parses: {e}"))
            })?;
            if policy.hash().as_str() != hash {
                return Err(StoreError::Corrupt(format!(
                    "stored policy {hash} does not match its hash"
                )));
            }
            Ok(policy)
        })
        .collect()
}

/// The source text of one version.
pub async fn source(db: &Db, hash: &str) -> StoreResult<Option<String>> {
    let row: Option<(String,)> = on_db!(db, p => sqlx::query_as("SELECT source FROM policy_versions WHERE hash = $1")
        .bind(hash)
        .fetch_optional(p)
        .await?);
    Ok(row.map(|(s,)| s))
}

/// How many versions have been published.
pub async fn count(db: &Db) -> StoreResult<i64> {
    let (n,): (i64,) =
        on_db!(db, p => sqlx::query_as("SELECT COUNT(*) FROM policy_versions").fetch_one(p).await?);
    Ok(n)
}
