//! Sessions (L15): an opaque token of 256 random bits, given to the client once and
//! stored only as a keyed hash. A session ends when unused for `session_idle_days`, at
//! `session_absolute_days` after sign-in, on logout, or when its owner revokes it.
//! Cookie-authenticated state changes must echo the session's CSRF token, which is
//! derived from the session token with a separate key and so needs no storage.
//! Sensitive actions take a [`Reauthenticated`], which only a session that proved its
//! phone again by a fresh SMS code within `reauth_window_secs` can produce.

use std::net::IpAddr;

use base64::Engine;
use custos_core::{Personal, SubjectId};
use custos_crypto::OsRng;
use custos_store::identity::{self as store, SessionRow};
use rand_core::RngCore;
use serde::Serialize;

use super::challenge::{Challenge, ChallengePurpose};
use super::Identity;
use crate::{AppError, AppResult};

/// A session just created: the token is shown to the client once.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub subject: SubjectId,
    /// The bearer token (secret; redacted in `Debug`).
    pub token: Personal<String>,
    /// Echo in `X-CSRF-Token` on state-changing requests authenticated by cookie.
    pub csrf_token: String,
    pub expires_at_ms: i64,
}

/// The session a request authenticated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSession {
    pub id: String,
    pub subject: SubjectId,
    pub created_at_ms: i64,
    pub reauth_at_ms: Option<i64>,
    /// The CSRF token this session's cookie requests must carry.
    pub csrf_token: String,
}

/// Proof that the session re-authenticated recently; only [`Identity::reauthenticated`]
/// makes one, so a sensitive use case that takes it cannot be reached without.
#[derive(Debug, Clone)]
pub struct Reauthenticated {
    session: AuthSession,
}

impl Reauthenticated {
    pub fn session(&self) -> &AuthSession {
        &self.session
    }
    pub fn subject(&self) -> SubjectId {
        self.session.subject
    }
}

/// A session as its owner sees it in the list.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: String,
    pub created_at_ms: i64,
    pub last_seen_at_ms: i64,
    pub expires_at_ms: i64,
    /// The session this request came with.
    pub current: bool,
}

/// Session ids are shown to their owners only; 128 random bits.
fn random_b64(n: usize) -> String {
    let mut raw = vec![0u8; n];
    OsRng.fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Touching `last_seen_at` at most this often keeps reads from writing on every request.
const TOUCH_EVERY_MS: i64 = 60_000;

impl Identity {
    fn token_hash(&self, token: &str) -> Vec<u8> {
        self.kernel
            .ring
            .blind_index("session-token", token.as_bytes())
            .to_vec()
    }

    /// The CSRF token of the session whose token is `token`.
    pub fn csrf_token(&self, token: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            self.kernel
                .ring
                .blind_index("session-csrf", token.as_bytes()),
        )
    }

    fn absolute_ms(&self) -> i64 {
        i64::from(self.cfg.session_absolute_days) * 86_400_000
    }

    /// Starts a session for `subject`. `fresh_proof` says the sign-in itself proved the
    /// phone with a code just now, which counts as a re-authentication; a password does not.
    pub async fn create_session(
        &self,
        subject: SubjectId,
        fresh_proof: bool,
    ) -> AppResult<NewSession> {
        let token = random_b64(32);
        let now = self.kernel.clock.now_ms();
        let row = SessionRow {
            id: random_b64(16),
            subject,
            created_at_ms: now,
            last_seen_at_ms: now,
            expires_at_ms: now + self.absolute_ms(),
            reauth_at_ms: fresh_proof.then_some(now),
        };
        store::insert_session(&self.kernel.db, &row, &self.token_hash(&token)).await?;
        Ok(NewSession {
            id: row.id,
            subject,
            csrf_token: self.csrf_token(&token),
            token: Personal::new(token),
            expires_at_ms: row.expires_at_ms,
        })
    }

    /// The live session behind `token`, or `unauthenticated`. An expired session is
    /// deleted on the spot.
    pub async fn authenticate(&self, token: &str) -> AppResult<AuthSession> {
        if !well_formed(token) {
            return Err(AppError::Unauthenticated);
        }
        let db = &self.kernel.db;
        let Some(row) = store::session_by_token(db, &self.token_hash(token)).await? else {
            return Err(AppError::Unauthenticated);
        };
        let now = self.kernel.clock.now_ms();
        if row.expires_at_ms <= now || row.last_seen_at_ms + self.idle_ms() <= now {
            store::delete_session(db, row.subject, &row.id).await?;
            return Err(AppError::Unauthenticated);
        }
        if now - row.last_seen_at_ms >= TOUCH_EVERY_MS {
            store::touch_session(db, &row.id, now).await?;
        }
        Ok(AuthSession {
            id: row.id,
            subject: row.subject,
            created_at_ms: row.created_at_ms,
            reauth_at_ms: row.reauth_at_ms,
            csrf_token: self.csrf_token(token),
        })
    }

    /// The caller's sessions, newest first.
    pub async fn list_sessions(&self, current: &AuthSession) -> AppResult<Vec<SessionInfo>> {
        let now = self.kernel.clock.now_ms();
        Ok(store::sessions_of(&self.kernel.db, current.subject)
            .await?
            .into_iter()
            .filter(|r| r.expires_at_ms > now && r.last_seen_at_ms + self.idle_ms() > now)
            .map(|r| SessionInfo {
                current: r.id == current.id,
                id: r.id,
                created_at_ms: r.created_at_ms,
                last_seen_at_ms: r.last_seen_at_ms,
                expires_at_ms: r.expires_at_ms,
            })
            .collect())
    }

    /// Ends one of the caller's own sessions; anyone else's is `not_found`, the same as
    /// a session that does not exist.
    pub async fn revoke_session(&self, owner: SubjectId, session_id: &str) -> AppResult<()> {
        if session_id.len() > 64
            || !store::delete_session(&self.kernel.db, owner, session_id).await?
        {
            return Err(AppError::NotFound);
        }
        Ok(())
    }

    /// Ends the current session.
    pub async fn logout(&self, session: &AuthSession) -> AppResult<()> {
        store::delete_session(&self.kernel.db, session.subject, &session.id).await?;
        Ok(())
    }

    /// Whether the session proved its phone recently enough for a sensitive action.
    pub fn reauthenticated(&self, session: &AuthSession) -> AppResult<Reauthenticated> {
        let now = self.kernel.clock.now_ms();
        let window =
            i64::try_from(self.cfg.reauth_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        match session.reauth_at_ms {
            Some(at) if now - at < window => Ok(Reauthenticated {
                session: session.clone(),
            }),
            _ => Err(AppError::ReauthenticationRequired),
        }
    }

    /// Texts a fresh code to the account's own phone.
    pub async fn start_reauth(
        &self,
        session: &AuthSession,
        ip: Option<IpAddr>,
    ) -> AppResult<Challenge> {
        let phone = self.account_phone(session.subject).await?;
        self.start_challenge(ChallengePurpose::Reauth, &phone, Some(session.subject), ip)
            .await
    }

    /// Checks the code and marks the session re-authenticated.
    pub async fn finish_reauth(
        &self,
        session: &AuthSession,
        challenge_id: &str,
        code: &str,
        ip: Option<IpAddr>,
    ) -> AppResult<Reauthenticated> {
        self.verify_challenge(
            ChallengePurpose::Reauth,
            challenge_id,
            code,
            Some(session.subject),
            ip,
        )
        .await?;
        let now = self.kernel.clock.now_ms();
        store::mark_reauthenticated(&self.kernel.db, &session.id, now).await?;
        let mut s = session.clone();
        s.reauth_at_ms = Some(now);
        Ok(Reauthenticated { session: s })
    }
}
