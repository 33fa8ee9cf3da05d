//! Accounts, SMS challenges, throttle events and sessions (issue 3).
//!
//! Nothing here holds a personal value in clear: phone numbers appear as blind indexes
//! or sealed under an installation key, codes and session tokens as keyed hashes, client
//! addresses only inside keyed throttle buckets. The callers compute those values; this
//! module only stores and compares them.

use custos_core::{Permit, SubjectId};

use crate::{on_db, Db, StoreError, StoreResult};

// ---------------------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------------------

/// An account row: the subject and what the gate needs to know about its age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub subject: SubjectId,
    pub created_at_ms: i64,
    /// `adult`, `minor` or `child`.
    pub age_band: String,
}

fn subject_of(s: &str) -> StoreResult<SubjectId> {
    s.parse()
        .map_err(|_| StoreError::Corrupt("malformed subject id".into()))
}

/// Creates the account row (idempotent: an existing row is left alone).
pub async fn create_account(db: &Db, subject: SubjectId, now_ms: i64) -> StoreResult<()> {
    on_db!(db, p => sqlx::query(
        "INSERT INTO accounts (subject, created_at) VALUES ($1, $2) ON CONFLICT (subject) DO NOTHING")
        .bind(subject.to_string())
        .bind(now_ms)
        .execute(p)
        .await
        .map(|_| ())?);
    Ok(())
}

pub async fn account(db: &Db, subject: SubjectId) -> StoreResult<Option<AccountRow>> {
    let row: Option<(String, i64, String)> = on_db!(db, p => sqlx::query_as(
        "SELECT subject, created_at, age_band FROM accounts WHERE subject = $1")
        .bind(subject.to_string())
        .fetch_optional(p)
        .await?);
    row.map(|(s, created_at_ms, age_band)| {
        Ok(AccountRow {
            subject: subject_of(&s)?,
            created_at_ms,
            age_band,
        })
    })
    .transpose()
}

/// Sets the age band of an account.
pub async fn set_age_band(db: &Db, subject: SubjectId, age_band: &str) -> StoreResult<bool> {
    let n = on_db!(db, p => sqlx::query("UPDATE accounts SET age_band = $2 WHERE subject = $1")
        .bind(subject.to_string())
        .bind(age_band)
        .execute(p)
        .await?
        .rows_affected());
    Ok(n > 0)
}

/// Deletes the account row, its sessions and its pending challenges.
pub async fn delete_account(db: &Db, subject: SubjectId) -> StoreResult<()> {
    let s = subject.to_string();
    on_db!(db, p => {
        let mut tx = p.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE subject = $1").bind(&s).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM sms_challenges WHERE subject = $1").bind(&s).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM accounts WHERE subject = $1").bind(&s).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM guardianships WHERE minor = $1").bind(&s).execute(&mut *tx).await?;
        tx.commit().await?;
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------
// SMS challenges
// ---------------------------------------------------------------------------------------

/// A challenge to store: the code exists only as `code_mac`.
#[derive(Debug, Clone)]
pub struct NewChallenge {
    pub id: String,
    pub purpose: String,
    pub subject: Option<SubjectId>,
    pub phone_blind: Vec<u8>,
    pub phone_sealed: Vec<u8>,
    pub code_mac: Vec<u8>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// A stored challenge.
#[derive(Debug, Clone)]
pub struct ChallengeRow {
    pub id: String,
    pub purpose: String,
    pub subject: Option<SubjectId>,
    pub phone_blind: Vec<u8>,
    pub phone_sealed: Vec<u8>,
    pub code_mac: Vec<u8>,
    pub expires_at_ms: i64,
    pub attempts: i32,
    pub consumed: bool,
}

pub async fn insert_challenge(db: &Db, c: &NewChallenge) -> StoreResult<()> {
    on_db!(db, p => sqlx::query(
        "INSERT INTO sms_challenges (id, purpose, subject, phone_blind, phone_sealed, code_mac, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(&c.id)
        .bind(&c.purpose)
        .bind(c.subject.map(|s| s.to_string()))
        .bind(&c.phone_blind)
        .bind(&c.phone_sealed)
        .bind(&c.code_mac)
        .bind(c.created_at_ms)
        .bind(c.expires_at_ms)
        .execute(p)
        .await
        .map(|_| ())?);
    Ok(())
}

type ChallengeTuple = (
    String,
    String,
    Option<String>,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
    i64,
    i32,
    Option<i64>,
);

pub async fn challenge(db: &Db, id: &str) -> StoreResult<Option<ChallengeRow>> {
    let row: Option<ChallengeTuple> = on_db!(db, p => sqlx::query_as(
        "SELECT id, purpose, subject, phone_blind, phone_sealed, code_mac, expires_at, attempts, \
         consumed_at FROM sms_challenges WHERE id = $1")
        .bind(id)
        .fetch_optional(p)
        .await?);
    row.map(
        |(
            id,
            purpose,
            subject,
            phone_blind,
            phone_sealed,
            code_mac,
            expires_at_ms,
            attempts,
            consumed,
        )| {
            Ok(ChallengeRow {
                id,
                purpose,
                subject: subject.as_deref().map(subject_of).transpose()?,
                phone_blind,
                phone_sealed,
                code_mac,
                expires_at_ms,
                attempts,
                consumed: consumed.is_some(),
            })
        },
    )
    .transpose()
}

/// Claims one verification attempt: succeeds only while the challenge is live (not
/// consumed, not expired, fewer than `max_attempts` tries). Counting the attempt before
/// comparing the code means concurrent guesses can never exceed the limit.
pub async fn claim_attempt(db: &Db, id: &str, max_attempts: i32, now_ms: i64) -> StoreResult<bool> {
    let n = on_db!(db, p => sqlx::query(
        "UPDATE sms_challenges SET attempts = attempts + 1 \
         WHERE id = $1 AND consumed_at IS NULL AND expires_at > $2 AND attempts < $3")
        .bind(id)
        .bind(now_ms)
        .bind(max_attempts)
        .execute(p)
        .await?
        .rows_affected());
    Ok(n == 1)
}

/// Marks the challenge used; true for exactly one caller.
pub async fn consume_challenge(db: &Db, id: &str, now_ms: i64) -> StoreResult<bool> {
    let n = on_db!(db, p => sqlx::query(
        "UPDATE sms_challenges SET consumed_at = $2 WHERE id = $1 AND consumed_at IS NULL")
        .bind(id)
        .bind(now_ms)
        .execute(p)
        .await?
        .rows_affected());
    Ok(n == 1)
}

/// Deletes challenges that expired before `before_ms`. Returns how many.
pub async fn purge_challenges(db: &Db, before_ms: i64) -> StoreResult<u64> {
    Ok(
        on_db!(db, p => sqlx::query("DELETE FROM sms_challenges WHERE expires_at <= $1")
        .bind(before_ms)
        .execute(p)
        .await?
        .rows_affected()),
    )
}

// ---------------------------------------------------------------------------------------
// Throttle events
// ---------------------------------------------------------------------------------------

/// Records one event in `bucket` and tells whether it fits the limit of `max` events per
/// window. An event that does not fit is removed again, so refused requests do not push
/// the limit further out. Under concurrency the check may refuse more than necessary,
/// never admit more than `max`. `Err(oldest)` gives the oldest counted event's time.
pub async fn throttle_hit(
    db: &Db,
    bucket: &[u8],
    max: i64,
    window_start_ms: i64,
    now_ms: i64,
) -> StoreResult<Result<(), i64>> {
    on_db!(db, p => {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO throttle_events (bucket, at_ms) VALUES ($1, $2) RETURNING id")
            .bind(bucket)
            .bind(now_ms)
            .fetch_one(p)
            .await?;
        let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(at_ms) FROM throttle_events WHERE bucket = $1 AND at_ms > $2")
            .bind(bucket)
            .bind(window_start_ms)
            .fetch_one(p)
            .await?;
        if count > max {
            sqlx::query("DELETE FROM throttle_events WHERE id = $1").bind(id).execute(p).await?;
            return Ok(Err(oldest.unwrap_or(now_ms)));
        }
    });
    Ok(Ok(()))
}

/// Counts the events in `bucket` since `window_start_ms` without adding one.
pub async fn throttle_count(
    db: &Db,
    bucket: &[u8],
    window_start_ms: i64,
) -> StoreResult<(i64, Option<i64>)> {
    Ok(on_db!(db, p => sqlx::query_as(
        "SELECT COUNT(*), MIN(at_ms) FROM throttle_events WHERE bucket = $1 AND at_ms > $2")
        .bind(bucket)
        .bind(window_start_ms)
        .fetch_one(p)
        .await?))
}

/// Adds an event without checking (a failure that counts against a later check).
pub async fn throttle_record(db: &Db, bucket: &[u8], now_ms: i64) -> StoreResult<()> {
    on_db!(db, p => sqlx::query("INSERT INTO throttle_events (bucket, at_ms) VALUES ($1, $2)")
        .bind(bucket)
        .bind(now_ms)
        .execute(p)
        .await
        .map(|_| ())?);
    Ok(())
}

/// Removes the newest event of `bucket` (an attempt counted up front that succeeded).
pub async fn throttle_forget_newest(db: &Db, bucket: &[u8]) -> StoreResult<()> {
    on_db!(db, p => sqlx::query(
        "DELETE FROM throttle_events WHERE id = \
         (SELECT MAX(id) FROM throttle_events WHERE bucket = $1)")
        .bind(bucket)
        .execute(p)
        .await
        .map(|_| ())?);
    Ok(())
}

/// Deletes events older than every window (`before_ms`). Returns how many.
pub async fn purge_throttle(db: &Db, before_ms: i64) -> StoreResult<u64> {
    Ok(
        on_db!(db, p => sqlx::query("DELETE FROM throttle_events WHERE at_ms <= $1")
        .bind(before_ms)
        .execute(p)
        .await?
        .rows_affected()),
    )
}

// ---------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------

/// A session row; the token exists only as `token_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: String,
    pub subject: SubjectId,
    pub created_at_ms: i64,
    pub last_seen_at_ms: i64,
    pub expires_at_ms: i64,
    pub reauth_at_ms: Option<i64>,
}

type SessionTuple = (String, String, i64, i64, i64, Option<i64>);

fn session_of(t: SessionTuple) -> StoreResult<SessionRow> {
    let (id, subject, created_at_ms, last_seen_at_ms, expires_at_ms, reauth_at_ms) = t;
    Ok(SessionRow {
        id,
        subject: subject_of(&subject)?,
        created_at_ms,
        last_seen_at_ms,
        expires_at_ms,
        reauth_at_ms,
    })
}

pub async fn insert_session(db: &Db, row: &SessionRow, token_hash: &[u8]) -> StoreResult<()> {
    on_db!(db, p => sqlx::query(
        "INSERT INTO sessions (id, token_hash, subject, created_at, last_seen_at, expires_at, reauth_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(&row.id)
        .bind(token_hash)
        .bind(row.subject.to_string())
        .bind(row.created_at_ms)
        .bind(row.last_seen_at_ms)
        .bind(row.expires_at_ms)
        .bind(row.reauth_at_ms)
        .execute(p)
        .await
        .map(|_| ())?);
    Ok(())
}

pub async fn session_by_token(db: &Db, token_hash: &[u8]) -> StoreResult<Option<SessionRow>> {
    let row: Option<SessionTuple> = on_db!(db, p => sqlx::query_as(
        "SELECT id, subject, created_at, last_seen_at, expires_at, reauth_at FROM sessions \
         WHERE token_hash = $1")
        .bind(token_hash)
        .fetch_optional(p)
        .await?);
    row.map(session_of).transpose()
}

/// The subject's sessions, newest first.
pub async fn sessions_of(db: &Db, subject: SubjectId) -> StoreResult<Vec<SessionRow>> {
    let rows: Vec<SessionTuple> = on_db!(db, p => sqlx::query_as(
        "SELECT id, subject, created_at, last_seen_at, expires_at, reauth_at FROM sessions \
         WHERE subject = $1 ORDER BY created_at DESC, id")
        .bind(subject.to_string())
        .fetch_all(p)
        .await?);
    rows.into_iter().map(session_of).collect()
}

pub async fn touch_session(db: &Db, id: &str, now_ms: i64) -> StoreResult<()> {
    on_db!(db, p => sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now_ms)
        .execute(p)
        .await
        .map(|_| ())?);
    Ok(())
}

pub async fn mark_reauthenticated(db: &Db, id: &str, now_ms: i64) -> StoreResult<()> {
    on_db!(db, p => sqlx::query("UPDATE sessions SET reauth_at = $2, last_seen_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now_ms)
        .execute(p)
        .await
        .map(|_| ())?);
    Ok(())
}

/// Deletes one session of `subject`; a session of anyone else is untouched (false).
pub async fn delete_session(db: &Db, subject: SubjectId, id: &str) -> StoreResult<bool> {
    let n = on_db!(db, p => sqlx::query("DELETE FROM sessions WHERE id = $1 AND subject = $2")
        .bind(id)
        .bind(subject.to_string())
        .execute(p)
        .await?
        .rows_affected());
    Ok(n > 0)
}

/// Deletes sessions past their idle or absolute expiry. Returns how many.
pub async fn purge_sessions(db: &Db, now_ms: i64, idle_ms: i64) -> StoreResult<u64> {
    Ok(on_db!(db, p => sqlx::query(
        "DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
        .bind(now_ms)
        .bind(now_ms - idle_ms)
        .execute(p)
        .await?
        .rows_affected()))
}

/// Removes one blind-index lookup of `subject` (a phone number it no longer uses).
pub async fn delete_lookup(
    db: &Db,
    domain: &str,
    blind: &[u8],
    subject: SubjectId,
) -> StoreResult<bool> {
    let n = on_db!(db, p => sqlx::query(
        "DELETE FROM subject_lookups WHERE domain = $1 AND blind = $2 AND subject = $3")
        .bind(domain)
        .bind(blind)
        .bind(subject.to_string())
        .execute(p)
        .await?
        .rows_affected());
    Ok(n > 0)
}

// ---------------------------------------------------------------------------------------
// OpenID Connect flows
// ---------------------------------------------------------------------------------------

/// A pending authorization at an identity provider.
#[derive(Debug, Clone)]
pub struct OidcFlow {
    pub state_hash: Vec<u8>,
    pub provider: String,
    /// The account linking the provider; `None` to sign in.
    pub subject: Option<SubjectId>,
    pub binding_hash: Vec<u8>,
    pub secrets_sealed: Vec<u8>,
    /// The fields the user agreed to have pulled, comma-separated.
    pub fields: String,
    pub expires_at_ms: i64,
}

pub async fn insert_oidc_flow(db: &Db, f: &OidcFlow) -> StoreResult<()> {
    on_db!(db, p => sqlx::query(
        "INSERT INTO oidc_flows (state_hash, provider, subject, binding_hash, secrets_sealed, fields, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(&f.state_hash)
        .bind(&f.provider)
        .bind(f.subject.map(|s| s.to_string()))
        .bind(&f.binding_hash)
        .bind(&f.secrets_sealed)
        .bind(&f.fields)
        .bind(f.expires_at_ms)
        .execute(p)
        .await
        .map(|_| ())?);
    Ok(())
}

type FlowTuple = (
    Vec<u8>,
    String,
    Option<String>,
    Vec<u8>,
    Vec<u8>,
    String,
    i64,
);

/// Removes and returns the flow: a state works once, whatever happens next.
pub async fn take_oidc_flow(db: &Db, state_hash: &[u8]) -> StoreResult<Option<OidcFlow>> {
    let row: Option<FlowTuple> = on_db!(db, p => sqlx::query_as(
        "DELETE FROM oidc_flows WHERE state_hash = $1 RETURNING state_hash, provider, subject, \
         binding_hash, secrets_sealed, fields, expires_at")
        .bind(state_hash)
        .fetch_optional(p)
        .await?);
    row.map(
        |(state_hash, provider, subject, binding_hash, secrets_sealed, fields, expires_at_ms)| {
            Ok(OidcFlow {
                state_hash,
                provider,
                subject: subject.as_deref().map(subject_of).transpose()?,
                binding_hash,
                secrets_sealed,
                fields,
                expires_at_ms,
            })
        },
    )
    .transpose()
}

pub async fn purge_oidc_flows(db: &Db, now_ms: i64) -> StoreResult<u64> {
    Ok(
        on_db!(db, p => sqlx::query("DELETE FROM oidc_flows WHERE expires_at <= $1")
        .bind(now_ms)
        .execute(p)
        .await?
        .rows_affected()),
    )
}

/// Records a blind-index lookup only if the value is not indexed yet, so two concurrent
/// sign-ups of one number cannot both own it. Needs a permit covering `category` for the
/// subject, like every personal-data write. Returns whether this call claimed it.
pub async fn claim_lookup(
    db: &Db,
    permit: &Permit,
    category: &str,
    domain: &str,
    blind: &[u8],
    now_ms: i64,
) -> StoreResult<bool> {
    let subject = permit.subject();
    if !permit.covers(subject, category) {
        return Err(StoreError::PermitMismatch);
    }
    let n = on_db!(db, p => sqlx::query(
        "INSERT INTO subject_lookups (domain, blind, subject, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (domain, blind) DO NOTHING")
        .bind(domain)
        .bind(blind)
        .bind(subject.to_string())
        .bind(now_ms)
        .execute(p)
        .await?
        .rows_affected());
    Ok(n == 1)
}

// ---------------------------------------------------------------------------------------
// Guardianships
// ---------------------------------------------------------------------------------------

/// Records that the guardian whose phone has blind index `guardian_blind` consented for
/// the permit's subject (a minor). The permit must cover the phone category.
pub async fn put_guardianship(
    db: &Db,
    permit: &Permit,
    category: &str,
    guardian_blind: &[u8],
    now_ms: i64,
) -> StoreResult<()> {
    let minor = permit.subject();
    if !permit.covers(minor, category) {
        return Err(StoreError::PermitMismatch);
    }
    on_db!(db, p => sqlx::query(
        "INSERT INTO guardianships (minor, guardian_blind, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (minor) DO UPDATE SET guardian_blind = excluded.guardian_blind, \
         created_at = excluded.created_at")
        .bind(minor.to_string())
        .bind(guardian_blind)
        .bind(now_ms)
        .execute(p)
        .await
        .map(|_| ())?);
    Ok(())
}

/// The minors a guardian (by phone blind index) consented for.
pub async fn minors_of(db: &Db, guardian_blind: &[u8]) -> StoreResult<Vec<SubjectId>> {
    let rows: Vec<(String,)> = on_db!(db, p => sqlx::query_as(
        "SELECT minor FROM guardianships WHERE guardian_blind = $1 ORDER BY created_at")
        .bind(guardian_blind)
        .fetch_all(p)
        .await?);
    rows.iter().map(|(s,)| subject_of(s)).collect()
}

/// Whether the guardian (by phone blind index) consented for `minor`.
pub async fn is_guardian(db: &Db, guardian_blind: &[u8], minor: SubjectId) -> StoreResult<bool> {
    let row: Option<(String,)> = on_db!(db, p => sqlx::query_as(
        "SELECT minor FROM guardianships WHERE minor = $1 AND guardian_blind = $2")
        .bind(minor.to_string())
        .bind(guardian_blind)
        .fetch_optional(p)
        .await?);
    Ok(row.is_some())
}

/// Whether a guardian's flow recorded a guardianship for `minor`.
pub async fn has_guardianship(db: &Db, minor: SubjectId) -> StoreResult<bool> {
    let row: Option<(String,)> = on_db!(db, p => sqlx::query_as(
        "SELECT minor FROM guardianships WHERE minor = $1")
        .bind(minor.to_string())
        .fetch_optional(p)
        .await?);
    Ok(row.is_some())
}

/// Deletes every guardianship of the guardian with phone index `guardian_blind` (their
/// account is erased). Returns how many.
pub async fn delete_guardianships_of(db: &Db, guardian_blind: &[u8]) -> StoreResult<u64> {
    Ok(
        on_db!(db, p => sqlx::query("DELETE FROM guardianships WHERE guardian_blind = $1")
        .bind(guardian_blind)
        .execute(p)
        .await
        .map(|r| r.rows_affected())?),
    )
}

/// Deletes the subject's sessions except `keep_id` (after a password or phone change).
pub async fn delete_other_sessions(db: &Db, subject: SubjectId, keep_id: &str) -> StoreResult<u64> {
    Ok(
        on_db!(db, p => sqlx::query("DELETE FROM sessions WHERE subject = $1 AND id <> $2")
        .bind(subject.to_string())
        .bind(keep_id)
        .execute(p)
        .await
        .map(|r| r.rows_affected())?),
    )
}

pub async fn delete_guardianship(db: &Db, minor: SubjectId) -> StoreResult<()> {
    on_db!(db, p => sqlx::query("DELETE FROM guardianships WHERE minor = $1")
        .bind(minor.to_string())
        .execute(p)
        .await
        .map(|_| ())?);
    Ok(())
}
