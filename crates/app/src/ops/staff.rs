//! Staff accounts (P24): separate from users, a username, an Argon2id password and an
//! RFC 6238 TOTP second factor, both required at every sign-in. A TOTP code works once
//! (its time step is consumed atomically); failed sign-ins count per account and lock it
//! for `staff_lockout_minutes` after `staff_max_failures` in a row, counted before the
//! password is checked so parallel guesses cannot slip past. Sessions are 256-bit tokens
//! (prefixed `staff_`), kept only as a keyed hash, ending after `staff_session_idle_minutes`
//! unused or `staff_session_hours` at most, on sign-out, or when the account is disabled.
//! Failures also count per client address, whatever the username (unknown ones too):
//! after `staff_ip_max_failures` within `staff_ip_window_minutes` that address gets
//! `429 staff_sign_in_throttled` with `Retry-After` until the window moves on.
//! A staff member changes their own password with the current one and a fresh TOTP code.
//! Every sign-in, failed or not, every account change and every sign-out is audited.

use std::net::IpAddr;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use custos_core::Personal;
use custos_crypto::OsRng;
use custos_store::audit::NewEntry;
use custos_store::staff::{self as store, NewStaff, StaffRow};
use rand_core::RngCore;
use serde::Serialize;
use totp_rs::TOTP;

use super::{Actor, Ops, Role};
use crate::{AppError, AppResult};

/// Staff session tokens start with this, so the operator guard tells them from the
/// legacy operator token.
pub const STAFF_TOKEN_PREFIX: &str = "staff_";

/// TOTP parameters (the authenticator-app defaults): SHA-1, 6 digits, 30-second steps,
/// one step of clock skew either way.
const TOTP_DIGITS: usize = 6;
const TOTP_STEP_SECS: i64 = 30;
const TOTP_SECRET_BYTES: usize = 20;

const PASSWORD_MIN_CHARS: usize = 12;
const PASSWORD_MAX_CHARS: usize = 128;

/// A signed-in staff member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffMember {
    #[serde(skip)]
    pub id: i64,
    pub username: String,
    pub role: Role,
}

/// A staff account as administrators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffView {
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at_ms: i64,
    /// Set while the account is locked after failed sign-ins.
    pub locked_until_ms: Option<i64>,
}

/// A new account's credentials, shown once.
#[derive(Debug, Clone)]
pub struct NewStaffAccount {
    pub username: String,
    pub role: Role,
    /// The initial password (generated unless one was given).
    pub password: Personal<String>,
    /// The TOTP secret in base32, for manual entry in an authenticator app.
    pub totp_secret: Personal<String>,
    /// `otpauth://totp/…` for a QR code.
    pub otpauth_uri: Personal<String>,
}

/// A session just created: the token is shown once.
#[derive(Debug, Clone)]
pub struct StaffSession {
    pub token: Personal<String>,
    pub expires_at_ms: i64,
    pub staff: StaffMember,
}

/// Parses a username: 3–32 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn parse_username(s: &str) -> AppResult<String> {
    let ok = (3..=32).contains(&s.len())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(s.to_owned())
    } else {
        Err(AppError::bad(
            "invalid_username",
            "a username has 3 to 32 of a-z, 0-9, `.`, `_`, `-`, and starts with a letter or digit",
        ))
    }
}

fn argon2() -> AppResult<Argon2<'static>> {
    let params = Params::new(19 * 1024, 2, 1, None)
        .map_err(|e| AppError::Internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_password(pw: &str) -> AppResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2()?
        .hash_password(pw.as_bytes(), &salt)
        .map_err(|e| AppError::Internal(format!("argon2: {e}")))?
        .to_string())
}

fn verify_password(pw: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    argon2().is_ok_and(|a| a.verify_password(pw.as_bytes(), &parsed).is_ok())
}

/// Verified against for unknown or disabled usernames, so they cost the same time.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        hash_password(&random_b64(16)).unwrap_or_else(|_| "$argon2id$v=19$invalid".into())
    })
}

fn random_b64(n: usize) -> String {
    let mut raw = vec![0u8; n];
    OsRng.fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// The throttle key of a client address (per IPv4 address, per IPv6 /64); requests
/// without a known address share one key.
fn ip_bucket(ip: Option<IpAddr>) -> Vec<u8> {
    ip.map_or_else(|| b"unknown".to_vec(), crate::identity::throttle::ip_key)
}

/// Failures that count against the client address: wrong or missing credentials.
fn is_credential_failure(e: &AppError) -> bool {
    matches!(
        e.code(),
        "invalid_credentials" | "totp_replayed" | "totp_required" | "staff_locked"
    )
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn invalid_credentials() -> AppError {
    AppError::bad(
        "invalid_credentials",
        "the username, the password or the one-time code is wrong",
    )
}

/// The TOTP generator of an account.
pub fn totp(secret: Vec<u8>, issuer: &str, username: &str) -> AppResult<TOTP> {
    TOTP::new(
        totp_rs::Algorithm::SHA1,
        TOTP_DIGITS,
        1,
        TOTP_STEP_SECS as u64,
        secret,
        Some(issuer.to_owned()),
        username.to_owned(),
    )
    .map_err(|e| AppError::Internal(format!("totp: {e}")))
}

/// The time step (within one step of `now_ms`) whose code is `code`, if any.
fn matching_step(t: &TOTP, code: &str, now_ms: i64) -> Option<i64> {
    let now_step = now_ms.div_euclid(1000) / TOTP_STEP_SECS;
    // Every candidate is computed, so the time taken does not tell which one matched.
    let mut found = None;
    for step in [now_step - 1, now_step, now_step + 1] {
        let Ok(secs) = u64::try_from(step * TOTP_STEP_SECS) else {
            continue;
        };
        if ct_eq(t.generate(secs).as_bytes(), code.as_bytes()) {
            found = Some(step);
        }
    }
    found
}

fn secret_label(username: &str) -> String {
    format!("staff-totp:{username}")
}

impl Ops {
    fn token_hash(&self, token: &str) -> Vec<u8> {
        self.kernel
            .ring
            .blind_index("staff-session", token.as_bytes())
            .to_vec()
    }

    async fn hash_blocking(&self, pw: Personal<String>) -> AppResult<String> {
        let _permit = self
            .argon2
            .acquire()
            .await
            .map_err(|e| AppError::Internal(format!("argon2 permits: {e}")))?;
        tokio::task::spawn_blocking(move || hash_password(pw.expose()))
            .await
            .map_err(|e| AppError::Internal(format!("hash task: {e}")))?
    }

    async fn verify_blocking(&self, pw: Personal<String>, phc: String) -> AppResult<bool> {
        let _permit = self
            .argon2
            .acquire()
            .await
            .map_err(|e| AppError::Internal(format!("argon2 permits: {e}")))?;
        tokio::task::spawn_blocking(move || {
            pw.expose().chars().count() <= PASSWORD_MAX_CHARS && verify_password(pw.expose(), &phc)
        })
        .await
        .map_err(|e| AppError::Internal(format!("verify task: {e}")))
    }

    /// Creates a staff account with a fresh TOTP secret; the password is generated unless
    /// given. The credentials are returned once and never shown again. The caller checks
    /// [`super::Permission::StaffManage`]; `custos admin create-staff` acts as [`Actor::Cli`].
    pub async fn create_staff(
        &self,
        actor: &Actor,
        username: &str,
        role: Role,
        password: Option<Personal<String>>,
    ) -> AppResult<NewStaffAccount> {
        let username = parse_username(username)?;
        let password = match password {
            Some(p) => {
                let n = p.expose().chars().count();
                if !(PASSWORD_MIN_CHARS..=PASSWORD_MAX_CHARS).contains(&n) {
                    return Err(AppError::bad(
                        "invalid_password",
                        format!(
                            "a staff password has {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters"
                        ),
                    ));
                }
                p
            }
            None => Personal::new(random_b64(18)),
        };
        let mut secret = vec![0u8; TOTP_SECRET_BYTES];
        OsRng.fill_bytes(&mut secret);
        let t = totp(secret.clone(), &self.settings.issuer, &username)?;
        let wrapped = self
            .kernel
            .ring
            .wrap_secret(&secret_label(&username), &secret, &mut OsRng);
        let phc = self.hash_blocking(password.clone()).await?;
        let now = self.now_ms();
        let audit = self.entry(
            &actor.name(),
            "staff.create",
            &format!("staff:{username}"),
            "succeeded",
            "",
            serde_json::json!({ "role": role.as_str() }),
        );
        let created = store::create(
            &self.kernel.db,
            &NewStaff {
                username: &username,
                role: role.as_str(),
                password_hash: &phc,
                totp_wrapped: &wrapped,
                now_ms: now,
            },
            &audit,
            &self.signing(),
        )
        .await?;
        if created.is_none() {
            return Err(AppError::bad(
                "username_taken",
                "a staff account with this username exists",
            ));
        }
        Ok(NewStaffAccount {
            username,
            role,
            password,
            totp_secret: Personal::new(t.get_secret_base32()),
            otpauth_uri: Personal::new(t.get_url()),
        })
    }

    /// The TOTP generator of an account (tests and enrolment checks).
    pub async fn staff_totp(&self, username: &str) -> AppResult<TOTP> {
        let row = store::by_username(&self.kernel.db, username)
            .await?
            .ok_or(AppError::NotFound)?;
        let secret = self
            .kernel
            .ring
            .unwrap_secret(&secret_label(&row.username), &row.totp_wrapped)
            .map_err(|e| AppError::Internal(format!("totp secret: {e}")))?;
        totp(secret, &self.settings.issuer, &row.username)
    }

    /// Signs a staff member in with password and TOTP code. Unknown, disabled and wrong
    /// credentials all answer `invalid_credentials`; a code already used answers
    /// `totp_replayed`; a locked account answers 429 `staff_locked`.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &Personal<String>,
        code: Option<&str>,
        ip: Option<IpAddr>,
    ) -> AppResult<StaffSession> {
        let limit = self.ip_limit();
        let key = ip_bucket(ip);
        let identity = &self.rights.identity;
        if let Err(e) = identity.check(limit, &key).await {
            self.append(self.entry(
                "anonymous",
                "staff.sign_in",
                "staff:(unknown)",
                "throttled",
                "",
                serde_json::json!({ "why": "address_throttled", "ip": ip.map(|i| i.to_canonical().to_string()) }),
            ))
            .await?;
            return Err(e);
        }
        let out = self.sign_in_unthrottled(username, password, code, ip).await;
        if matches!(&out, Err(e) if is_credential_failure(e)) {
            identity.record_failure(limit, &key).await?;
        }
        out
    }

    fn ip_limit(&self) -> crate::identity::throttle::Limit {
        crate::identity::throttle::Limit {
            name: "staff/sign-in/ip",
            max: self.settings.ip_max_failures,
            window_ms: self.settings.ip_window_ms,
            code: "staff_sign_in_throttled",
        }
    }

    /// Changes the signed-in staff member's own password: needs the current password and
    /// a fresh TOTP code (each code works once). The change and its audit entry commit
    /// together; the member's other sessions end, this one stays. Wrong credentials count
    /// against the client address like failed sign-ins.
    pub async fn change_own_password(
        &self,
        session_token: &str,
        current: &Personal<String>,
        new: &Personal<String>,
        code: &str,
        ip: Option<IpAddr>,
    ) -> AppResult<()> {
        let me = self.authenticate_staff(session_token).await?;
        let limit = self.ip_limit();
        let key = ip_bucket(ip);
        self.rights.identity.check(limit, &key).await?;
        let n = new.expose().chars().count();
        if !(PASSWORD_MIN_CHARS..=PASSWORD_MAX_CHARS).contains(&n) {
            return Err(AppError::bad(
                "invalid_password",
                format!(
                    "a staff password has {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters"
                ),
            ));
        }
        if new.expose() == current.expose() {
            return Err(AppError::bad(
                "password_unchanged",
                "the new password must differ from the current one",
            ));
        }
        let code = code.trim();
        if code.is_empty() {
            return Err(AppError::bad(
                "totp_required",
                "changing the password needs the one-time code from the authenticator app",
            ));
        }
        let row = store::by_username(&self.kernel.db, &me.username)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        let actor = format!("staff:{}", me.username);
        let now = self.now_ms();
        let password_ok = self
            .verify_blocking(current.clone(), row.password_hash.clone())
            .await?;
        let step = self
            .totp_of(&row)
            .and_then(|t| matching_step(&t, code, now));
        let why = match (password_ok, step) {
            (false, _) => Some("password"),
            (true, None) => Some("totp"),
            (true, Some(step)) => (!store::use_totp_step(&self.kernel.db, row.id, step).await?)
                .then_some("totp_replayed"),
        };
        if let Some(why) = why {
            self.rights.identity.record_failure(limit, &key).await?;
            self.append(self.entry(
                &actor,
                "staff.password_change",
                &actor,
                "failed",
                "",
                serde_json::json!({ "why": why }),
            ))
            .await?;
            return Err(if why == "totp_replayed" {
                AppError::bad(
                    "totp_replayed",
                    "this one-time code was used already; wait for the next one",
                )
            } else {
                invalid_credentials()
            });
        }
        let phc = self.hash_blocking(new.clone()).await?;
        let audit = self.entry(
            &actor,
            "staff.password_change",
            &actor,
            "succeeded",
            "",
            serde_json::json!({ "other_sessions_ended": true }),
        );
        store::set_password(
            &self.kernel.db,
            row.id,
            &phc,
            &self.token_hash(session_token),
            &audit,
            &self.signing(),
        )
        .await?;
        Ok(())
    }

    async fn sign_in_unthrottled(
        &self,
        username: &str,
        password: &Personal<String>,
        code: Option<&str>,
        ip: Option<IpAddr>,
    ) -> AppResult<StaffSession> {
        let now = self.now_ms();
        let row = match parse_username(username) {
            Ok(u) => store::by_username(&self.kernel.db, &u).await?,
            Err(_) => None,
        };
        let target = row.as_ref().map_or_else(
            || "staff:(unknown)".to_owned(),
            |r| format!("staff:{}", r.username),
        );
        let actor = row.as_ref().map_or_else(
            || "anonymous".to_owned(),
            |r| format!("staff:{}", r.username),
        );
        let ip = ip.map(|i| i.to_canonical().to_string());
        let fail = |outcome: &str, why: &str| {
            self.entry(
                &actor,
                "staff.sign_in",
                &target,
                outcome,
                "",
                serde_json::json!({ "why": why, "ip": ip }),
            )
        };
        let code = code.map(str::trim).unwrap_or_default();
        if code.is_empty() {
            self.append(fail("failed", "totp_missing")).await?;
            return Err(AppError::bad(
                "totp_required",
                "staff sign-in needs the one-time code from the authenticator app",
            ));
        }
        let Some(row) = row.filter(|r| r.disabled_at.is_none()) else {
            // Same Argon2 work as a real account.
            self.verify_blocking(password.clone(), decoy_hash().to_owned())
                .await?;
            self.append(fail("failed", "unknown_or_disabled")).await?;
            return Err(invalid_credentials());
        };
        let Some(failures) =
            store::claim_attempt(&self.kernel.db, row.id, self.settings.max_failures, now).await?
        else {
            self.append(fail("locked", "locked")).await?;
            let until = store::by_username(&self.kernel.db, &row.username)
                .await?
                .map_or(now, |r| r.locked_until);
            let wait_ms = if until > now {
                until - now
            } else {
                self.settings.lockout_ms
            };
            return Err(AppError::Throttled {
                code: "staff_locked",
                retry_after_secs: u64::try_from((wait_ms + 999) / 1000).unwrap_or(1),
            });
        };
        let password_ok = self
            .verify_blocking(password.clone(), row.password_hash.clone())
            .await?;
        let step = self
            .totp_of(&row)
            .map(|t| matching_step(&t, code, now))
            .unwrap_or(None);
        let outcome: Result<i64, &str> = match (password_ok, step) {
            (false, _) => Err("password"),
            (true, None) => Err("totp"),
            (true, Some(step)) => {
                if store::use_totp_step(&self.kernel.db, row.id, step).await? {
                    Ok(step)
                } else {
                    Err("totp_replayed")
                }
            }
        };
        if let Err(why) = outcome {
            let locks = failures >= self.settings.max_failures;
            if locks {
                store::lock(&self.kernel.db, row.id, now + self.settings.lockout_ms).await?;
            }
            let mut e = fail("failed", why);
            e.detail = serde_json::json!({ "why": why, "ip": ip, "locked": locks }).to_string();
            self.append(e).await?;
            return Err(if why == "totp_replayed" {
                AppError::bad(
                    "totp_replayed",
                    "this one-time code was used already; wait for the next one",
                )
            } else {
                invalid_credentials()
            });
        }
        store::succeeded(&self.kernel.db, row.id).await?;
        let role = Role::parse(&row.role)
            .ok_or_else(|| AppError::Internal(format!("unknown staff role {}", row.role)))?;
        let token = format!("{STAFF_TOKEN_PREFIX}{}", random_b64(32));
        let expires = now + self.settings.absolute_ms;
        store::insert_session(
            &self.kernel.db,
            &self.token_hash(&token),
            row.id,
            now,
            expires,
        )
        .await?;
        self.append(self.entry(
            &actor,
            "staff.sign_in",
            &target,
            "succeeded",
            "",
            serde_json::json!({ "ip": ip, "role": role.as_str() }),
        ))
        .await?;
        Ok(StaffSession {
            token: Personal::new(token),
            expires_at_ms: expires,
            staff: StaffMember {
                id: row.id,
                username: row.username,
                role,
            },
        })
    }

    fn totp_of(&self, row: &StaffRow) -> Option<TOTP> {
        let secret = self
            .kernel
            .ring
            .unwrap_secret(&secret_label(&row.username), &row.totp_wrapped)
            .ok()?;
        totp(secret, &self.settings.issuer, &row.username).ok()
    }

    async fn append(&self, e: NewEntry) -> AppResult<()> {
        custos_store::audit::append(&self.kernel.db, &[e], &self.signing(), self.now_ms()).await?;
        Ok(())
    }

    /// The staff member a session token belongs to; `unauthenticated` when the token is
    /// unknown, expired, idle too long, or its account is disabled.
    pub async fn authenticate_staff(&self, token: &str) -> AppResult<StaffMember> {
        let well_formed = token.strip_prefix(STAFF_TOKEN_PREFIX).is_some_and(|t| {
            t.len() == 43
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        if !well_formed {
            return Err(AppError::Unauthenticated);
        }
        let hash = self.token_hash(token);
        let Some((_, last_seen, expires, row)) = store::session(&self.kernel.db, &hash).await?
        else {
            return Err(AppError::Unauthenticated);
        };
        let now = self.now_ms();
        if expires <= now || last_seen + self.settings.idle_ms <= now || row.disabled_at.is_some() {
            store::delete_session(&self.kernel.db, &hash).await?;
            return Err(AppError::Unauthenticated);
        }
        if now - last_seen >= 60_000 {
            store::touch_session(&self.kernel.db, &hash, now).await?;
        }
        let role = Role::parse(&row.role)
            .ok_or_else(|| AppError::Internal(format!("unknown staff role {}", row.role)))?;
        Ok(StaffMember {
            id: row.id,
            username: row.username,
            role,
        })
    }

    /// Ends the session of `token`.
    pub async fn sign_out(&self, token: &str) -> AppResult<()> {
        let who = self.authenticate_staff(token).await?;
        store::delete_session(&self.kernel.db, &self.token_hash(token)).await?;
        self.append(self.entry(
            &format!("staff:{}", who.username),
            "staff.sign_out",
            &format!("staff:{}", who.username),
            "succeeded",
            "",
            serde_json::json!({}),
        ))
        .await
    }

    /// Every staff account.
    pub async fn list_staff(&self) -> AppResult<Vec<StaffView>> {
        let now = self.now_ms();
        store::list(&self.kernel.db)
            .await?
            .into_iter()
            .map(|r| view(r, now))
            .collect()
    }

    /// Changes an account's role and/or disables or re-enables it. Refuses to leave the
    /// installation without an enabled admin (`last_admin`). Disabling ends its sessions
    /// at once; a role change applies to the account's very next request.
    pub async fn update_staff(
        &self,
        actor: &Actor,
        username: &str,
        role: Option<Role>,
        disabled: Option<bool>,
    ) -> AppResult<StaffView> {
        let before = store::by_username(&self.kernel.db, username)
            .await?
            .ok_or(AppError::NotFound)?;
        let was_admin = before.role == Role::Admin.as_str() && before.disabled_at.is_none();
        let stays_admin = role.map_or(before.role == Role::Admin.as_str(), |r| r == Role::Admin)
            && !disabled.unwrap_or(before.disabled_at.is_some());
        if was_admin
            && !stays_admin
            && store::count_enabled_with_role(&self.kernel.db, Role::Admin.as_str()).await? <= 1
        {
            return Err(AppError::bad(
                "last_admin",
                "this is the only enabled admin; make another admin first",
            ));
        }
        let now = self.now_ms();
        let action = match (role, disabled) {
            (Some(_), None) => "staff.role_change",
            (None, Some(true)) => "staff.disable",
            (None, Some(false)) => "staff.enable",
            (Some(_), Some(_)) => "staff.update",
            (None, None) => {
                return Err(AppError::bad(
                    "nothing_to_change",
                    "send `role` and/or `disabled`",
                ))
            }
        };
        let audit = self.entry(
            &actor.name(),
            action,
            &format!("staff:{username}"),
            "succeeded",
            "",
            serde_json::json!({
                "role_before": before.role,
                "role_after": role.map_or(before.role.as_str(), |r| r.as_str()),
                "disabled": disabled,
            }),
        );
        let disabled_at = disabled.map(|d| d.then_some(now));
        let after = store::update(
            &self.kernel.db,
            username,
            role.map(Role::as_str),
            disabled_at,
            &audit,
            &self.signing(),
        )
        .await?
        .ok_or(AppError::NotFound)?;
        view(after, now)
    }
}

fn view(r: StaffRow, now: i64) -> AppResult<StaffView> {
    Ok(StaffView {
        role: Role::parse(&r.role)
            .ok_or_else(|| AppError::Internal(format!("unknown staff role {}", r.role)))?,
        username: r.username,
        disabled: r.disabled_at.is_some(),
        created_at_ms: r.created_at,
        locked_until_ms: (r.locked_until > now).then_some(r.locked_until),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_short_lowercase_identifiers() {
        for ok in ["alice", "ops.bob", "a_1", "x-y-z"] {
            assert_eq!(parse_username(ok).unwrap(), ok);
        }
        for bad in ["al", "Alice", "a b", "-lead", "ünï", &"a".repeat(33), "a:b"] {
            assert_eq!(
                parse_username(bad).unwrap_err().code(),
                "invalid_username",
                "{bad}"
            );
        }
    }

    #[test]
    fn a_code_matches_its_own_step_and_its_neighbours_only() {
        let t = totp(vec![7u8; 20], "Custos", "alice").unwrap();
        let now_ms = 1_767_225_600_000; // a multiple of 30 s
        let step = now_ms / 1000 / 30;
        let code = t.generate((now_ms / 1000) as u64);
        assert_eq!(matching_step(&t, &code, now_ms), Some(step));
        assert_eq!(matching_step(&t, &code, now_ms + 30_000), Some(step));
        assert_eq!(matching_step(&t, &code, now_ms + 60_000), None);
        assert_eq!(matching_step(&t, "000000x", now_ms), None);
        // RFC 6238 appendix B: SHA-1, T = 59 s, the 8-digit code 94287082.
        let rfc = TOTP::new(
            totp_rs::Algorithm::SHA1,
            8,
            0,
            30,
            b"12345678901234567890".to_vec(),
            None,
            "rfc".into(),
        )
        .unwrap();
        assert_eq!(rfc.generate(59), "94287082");
    }
}
