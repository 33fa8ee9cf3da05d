//! Session authentication: `Authorization: Bearer <token>` for API clients, the
//! `__Host-custos-session` cookie (HttpOnly, Secure, SameSite=Lax, Path=/) for the web.
//! A state-changing request authenticated by the cookie must carry the session's CSRF
//! token in `X-CSRF-Token` (the browser attaches cookies on its own; a forged page
//! cannot read the token). Bearer requests need no CSRF token: no browser sends one
//! unasked.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use custos_app::identity::{AuthSession, Reauthenticated};

use crate::{ApiError, AppState};

pub const SESSION_COOKIE: &str = "__Host-custos-session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Where a session token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Bearer,
    Cookie,
}

fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The session token a request carries, if any.
pub fn session_token(parts: &Parts) -> Option<(String, Via)> {
    if let Some(v) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return Some((t.trim().to_owned(), Via::Bearer));
        }
    }
    cookie(parts, SESSION_COOKIE).map(|t| (t.trim().to_owned(), Via::Cookie))
}

fn state_changing(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Authenticates the request's session, if it carries one, and enforces CSRF for
/// cookie-authenticated state changes.
pub async fn authenticate(
    parts: &Parts,
    state: &AppState,
) -> Result<Option<AuthSession>, ApiError> {
    let Some((token, via)) = session_token(parts) else {
        return Ok(None);
    };
    let session = state.identity.authenticate(&token).await?;
    if via == Via::Cookie && state_changing(&parts.method) {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct_eq(sent.as_bytes(), session.csrf_token.as_bytes()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "send the session's CSRF token in X-CSRF-Token",
            ));
        }
    }
    Ok(Some(session))
}

/// Like [`authenticate`], for routes that also serve callers without an account: a stale
/// session cookie on a read is ignored (browsing keeps working after a session ends),
/// while a bad bearer token, or a stale cookie on a state change, is still refused.
pub async fn authenticate_optional(
    parts: &Parts,
    state: &AppState,
) -> Result<Option<AuthSession>, ApiError> {
    match authenticate(parts, state).await {
        Err(e)
            if e.code == "unauthenticated"
                && !state_changing(&parts.method)
                && session_token(parts).is_some_and(|(_, via)| via == Via::Cookie) =>
        {
            Ok(None)
        }
        other => other,
    }
}

/// A signed-in caller; 401 `unauthenticated` otherwise.
#[derive(Debug, Clone)]
pub struct Session(pub AuthSession);

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match authenticate(parts, state).await? {
            Some(s) => Ok(Session(s)),
            None => Err(custos_app::AppError::Unauthenticated.into()),
        }
    }
}

/// A signed-in caller who proved their phone again within the re-authentication window;
/// 403 `reauthentication_required` otherwise. Sensitive endpoints (changing the phone,
/// export, cancellation) take this.
#[derive(Debug, Clone)]
pub struct Reauth(pub Reauthenticated);

impl FromRequestParts<AppState> for Reauth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Session(s) = Session::from_request_parts(parts, state).await?;
        Ok(Reauth(state.identity.reauthenticated(&s)?))
    }
}

/// The client's address, when the server knows it (absent in in-process tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The `Set-Cookie` value for a new session.
pub fn session_cookie(token: &str, max_age_secs: i64) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}"
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
}
