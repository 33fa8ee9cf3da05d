//! Who is calling. A signed-in caller is identified by their session (see
//! [`crate::session`]) and acts as their account's subject. Otherwise a caller is
//! identified only by an anonymous token (256 random bits) sent back in the
//! `X-Custos-Anonymous` header or the `__Host-custos-anon` cookie. The server issues one
//! only when the caller records a decision for a purpose that allows anonymous
//! identifiers; reading pages never sets one.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use custos_core::SubjectId;

use crate::{ApiError, AppState};

pub const ANON_HEADER: &str = "x-custos-anonymous";
pub const ANON_COOKIE: &str = "__Host-custos-anon";

#[derive(Debug, Clone, Copy, Default)]
pub struct Caller {
    /// The subject behind a valid session or anonymous token, if any.
    pub subject: Option<SubjectId>,
    /// The subject is a signed-in account (not an anonymous identifier).
    pub account: bool,
    /// The request carried `Sec-GPC: 1`.
    pub gpc: bool,
}

fn token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(ANON_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_owned());
    }
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == ANON_COOKIE)
        .map(|(_, v)| v.to_owned())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let gpc = parts
            .headers
            .get("sec-gpc")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "1");
        if let Some(session) = crate::session::authenticate_optional(parts, state).await? {
            return Ok(Caller {
                subject: Some(session.subject),
                account: true,
                gpc,
            });
        }
        let subject = match token(&parts.headers) {
            Some(t) => state.kernel.anonymous_subject(&t).await?,
            None => None,
        };
        Ok(Caller {
            subject,
            account: false,
            gpc,
        })
    }
}

/// The `Set-Cookie` value for a newly issued anonymous token.
pub fn anon_cookie(token: &str) -> String {
    format!("{ANON_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=31536000")
}
