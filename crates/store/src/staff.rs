//! Staff accounts and staff sessions (issue 7, P24). Staff are not users: they have a
//! username, an Argon2id password hash, a TOTP secret wrapped by the master key and one
//! role. Changes to an account commit together with their audit entry ([`append_tx!`]).
//! Sign-in attempts are claimed atomically before the password is checked, so parallel
//! guesses cannot pass a lockout; a TOTP time step is consumed atomically, so a code works
//! once.

use crate::audit::{HeadSigning, NewEntry};
use crate::{append_tx, on_db, Db, StoreResult};

/// One staff account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffRow {
    pub id: i64,
    pub username: String,
    pub role: String,
    pub password_hash: String,
    pub totp_wrapped: Vec<u8>,
    pub totp_last_step: i64,
    pub failures: i32,
    pub locked_until: i64,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
}

type Row = (
    i64,
    String,
    String,
    String,
    Vec<u8>,
    i64,
    i32,
    i64,
    Option<i64>,
    i64,
);

const COLS: &str = "id, username, role, password_hash, totp_wrapped, totp_last_step, failures, \
                    locked_until, disabled_at, created_at";

fn row(r: Row) -> StaffRow {
    StaffRow {
        id: r.0,
        username: r.1,
        role: r.2,
        password_hash: r.3,
        totp_wrapped: r.4,
        totp_last_step: r.5,
        failures: r.6,
        locked_until: r.7,
        disabled_at: r.8,
        created_at: r.9,
    }
}

/// A new account's fields.
#[derive(Debug, Clone)]
pub struct NewStaff<'a> {
    pub username: &'a str,
    pub role: &'a str,
    pub password_hash: &'a str,
    pub totp_wrapped: &'a [u8],
    pub now_ms: i64,
}

/// Creates an account and appends its audit entry in one transaction; `None` when the
/// username is taken (nothing is written then).
pub async fn create(
    db: &Db,
    s: &NewStaff<'_>,
    audit: &NewEntry,
    signing: &HeadSigning<'_>,
) -> StoreResult<Option<StaffRow>> {
    let sql = format!(
        "INSERT INTO staff_accounts (username, role, password_hash, totp_wrapped, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (username) DO NOTHING RETURNING {COLS}"
    );
    on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        let r: Option<Row> = sqlx::query_as(&sql)
            .bind(s.username)
            .bind(s.role)
            .bind(s.password_hash)
            .bind(s.totp_wrapped)
            .bind(s.now_ms)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(r) = r else {
            return Ok(None);
        };
        append_tx!(&mut tx, std::slice::from_ref(audit), signing, false, s.now_ms)?;
        tx.commit().await?;
        Ok(Some(row(r)))
    })
}

pub async fn by_username(db: &Db, username: &str) -> StoreResult<Option<StaffRow>> {
    let sql = format!("SELECT {COLS} FROM staff_accounts WHERE username = $1");
    let r: Option<Row> =
        on_db!(db, pool => sqlx::query_as(&sql).bind(username).fetch_optional(pool).await?);
    Ok(r.map(row))
}

/// Every account, by username.
pub async fn list(db: &Db) -> StoreResult<Vec<StaffRow>> {
    let sql = format!("SELECT {COLS} FROM staff_accounts ORDER BY username");
    let r: Vec<Row> = on_db!(db, pool => sqlx::query_as(&sql).fetch_all(pool).await?);
    Ok(r.into_iter().map(row).collect())
}

/// Enabled accounts with `role`.
pub async fn count_enabled_with_role(db: &Db, role: &str) -> StoreResult<i64> {
    let (n,): (i64,) = on_db!(db, pool => sqlx::query_as(
        "SELECT COUNT(*) FROM staff_accounts WHERE role = $1 AND disabled_at IS NULL")
        .bind(role)
        .fetch_one(pool)
        .await?);
    Ok(n)
}

/// Claims one sign-in attempt: counts it as a failure until [`succeeded`] takes it back.
/// Returns the failures counted including this one, or `None` when the account is locked
/// (or already at `max_failures` attempts in flight).
pub async fn claim_attempt(
    db: &Db,
    id: i64,
    max_failures: i32,
    now_ms: i64,
) -> StoreResult<Option<i32>> {
    let r: Option<(i32,)> = on_db!(db, pool => sqlx::query_as(
        "UPDATE staff_accounts SET failures = failures + 1 \
         WHERE id = $1 AND locked_until <= $2 AND failures < $3 RETURNING failures")
        .bind(id)
        .bind(now_ms)
        .bind(max_failures)
        .fetch_optional(pool)
        .await?);
    Ok(r.map(|(n,)| n))
}

/// Locks the account until `until_ms` and starts counting failures afresh.
pub async fn lock(db: &Db, id: i64, until_ms: i64) -> StoreResult<()> {
    on_db!(db, pool => sqlx::query(
        "UPDATE staff_accounts SET locked_until = $2, failures = 0 WHERE id = $1")
        .bind(id)
        .bind(until_ms)
        .execute(pool)
        .await.map(|_| ())?);
    Ok(())
}

/// A successful sign-in: failures go back to zero.
pub async fn succeeded(db: &Db, id: i64) -> StoreResult<()> {
    on_db!(db, pool => sqlx::query("UPDATE staff_accounts SET failures = 0 WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await.map(|_| ())?);
    Ok(())
}

/// Consumes TOTP time step `step`: false when that step or a later one was used already
/// (a replayed code).
pub async fn use_totp_step(db: &Db, id: i64, step: i64) -> StoreResult<bool> {
    let n = on_db!(db, pool => sqlx::query(
        "UPDATE staff_accounts SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2")
        .bind(id)
        .bind(step)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(n == 1)
}

/// Changes an account's role and/or enabled state with its audit entry, in one
/// transaction. Disabling ends the account's sessions. Returns the account as it is now,
/// `None` if there is no such username.
pub async fn update(
    db: &Db,
    username: &str,
    role: Option<&str>,
    disabled_at: Option<Option<i64>>,
    audit: &NewEntry,
    signing: &HeadSigning<'_>,
) -> StoreResult<Option<StaffRow>> {
    let sql = format!(
        "UPDATE staff_accounts SET role = COALESCE($2, role), \
         disabled_at = CASE WHEN $3 THEN $4 ELSE disabled_at END \
         WHERE username = $1 RETURNING {COLS}"
    );
    on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        let r: Option<Row> = sqlx::query_as(&sql)
            .bind(username)
            .bind(role)
            .bind(disabled_at.is_some())
            .bind(disabled_at.flatten())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(r) = r else {
            return Ok(None);
        };
        let r = row(r);
        if r.disabled_at.is_some() {
            sqlx::query("DELETE FROM staff_sessions WHERE staff_id = $1")
                .bind(r.id)
                .execute(&mut *tx)
                .await?;
        }
        append_tx!(&mut tx, std::slice::from_ref(audit), signing, false, audit.at_ms)?;
        tx.commit().await?;
        Ok(Some(r))
    })
}

/// Stores a new session (by the keyed hash of its token).
pub async fn insert_session(
    db: &Db,
    token_hash: &[u8],
    staff_id: i64,
    now_ms: i64,
    expires_ms: i64,
) -> StoreResult<()> {
    on_db!(db, pool => sqlx::query(
        "INSERT INTO staff_sessions (token_hash, staff_id, created_at, last_seen_at, expires_at) \
         VALUES ($1, $2, $3, $3, $4)")
        .bind(token_hash)
        .bind(staff_id)
        .bind(now_ms)
        .bind(expires_ms)
        .execute(pool)
        .await.map(|_| ())?);
    Ok(())
}

/// A session and its account: (created, last seen, expires, account).
pub async fn session(db: &Db, token_hash: &[u8]) -> StoreResult<Option<(i64, i64, i64, StaffRow)>> {
    let cols: String = COLS
        .split(", ")
        .map(|c| format!("a.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT s.created_at, s.last_seen_at, s.expires_at, {cols} FROM staff_sessions s \
         JOIN staff_accounts a ON a.id = s.staff_id WHERE s.token_hash = $1"
    );
    type Joined = (
        i64,
        i64,
        i64,
        i64,
        String,
        String,
        String,
        Vec<u8>,
        i64,
        i32,
        i64,
        Option<i64>,
        i64,
    );
    let r: Option<Joined> =
        on_db!(db, pool => sqlx::query_as(&sql).bind(token_hash).fetch_optional(pool).await?);
    Ok(r.map(|j| {
        (
            j.0,
            j.1,
            j.2,
            row((j.3, j.4, j.5, j.6, j.7, j.8, j.9, j.10, j.11, j.12)),
        )
    }))
}

pub async fn touch_session(db: &Db, token_hash: &[u8], now_ms: i64) -> StoreResult<()> {
    on_db!(db, pool => sqlx::query("UPDATE staff_sessions SET last_seen_at = $2 WHERE token_hash = $1")
        .bind(token_hash)
        .bind(now_ms)
        .execute(pool)
        .await.map(|_| ())?);
    Ok(())
}

/// Ends a session; false if there was none.
pub async fn delete_session(db: &Db, token_hash: &[u8]) -> StoreResult<bool> {
    let n = on_db!(db, pool => sqlx::query("DELETE FROM staff_sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(n == 1)
}

/// Removes sessions past their expiry or idle since before `idle_before_ms`.
pub async fn purge_sessions(db: &Db, now_ms: i64, idle_before_ms: i64) -> StoreResult<u64> {
    let n = on_db!(db, pool => sqlx::query(
        "DELETE FROM staff_sessions WHERE expires_at <= $1 OR last_seen_at < $2")
        .bind(now_ms)
        .bind(idle_before_ms)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(n)
}

/// Replaces an account's password hash with its audit entry in one transaction, and ends
/// every other session of the account (the one with `keep_session` stays).
pub async fn set_password(
    db: &Db,
    id: i64,
    password_hash: &str,
    keep_session: &[u8],
    audit: &NewEntry,
    signing: &HeadSigning<'_>,
) -> StoreResult<()> {
    on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        sqlx::query("UPDATE staff_accounts SET password_hash = $2 WHERE id = $1")
            .bind(id)
            .bind(password_hash)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM staff_sessions WHERE staff_id = $1 AND token_hash <> $2")
            .bind(id)
            .bind(keep_session)
            .execute(&mut *tx)
            .await?;
        append_tx!(&mut tx, std::slice::from_ref(audit), signing, false, audit.at_ms)?;
        tx.commit().await?;
        Ok(())
    })
}
