//! [`Ctx`]: who is asking and in which language. Every page handler takes one.
//!
//! The language comes from `?lang=`, then the `custos-lang` cookie (set by the language
//! switch; it holds only `zh` or `en` and identifies no one), then `Accept-Language`,
//! then Chinese. The session comes from the `__Host-custos-session` cookie only; a stale
//! cookie makes the caller signed out rather than failing the page. The CSRF check for
//! cookie-authenticated writes is done by [`crate::forms::WebForm`] on a form field,
//! not by the API's header check.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use custos_app::identity::AuthSession;
use custos_app::AppError;
use custos_core::SubjectId;
use custos_http::caller::ANON_COOKIE;
use custos_http::session::SESSION_COOKIE;
use custos_http::AppState;
use custos_policy::Lang;

use crate::error::WebError;

pub const LANG_COOKIE: &str = "custos-lang";

/// The request as a page sees it.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub lang: Lang,
    /// The signed-in user's session, if any.
    pub session: Option<AuthSession>,
    /// The subject acting: the account's, or the anonymous identifier's (issued only
    /// after a decision that allows one).
    pub subject: Option<SubjectId>,
    /// The request carried `Sec-GPC: 1`.
    pub gpc: bool,
    /// Path and query of this request (for the language switch and `next=` links).
    pub path: String,
    /// The first-visit consent dialog is due (see [`crate::public::needs_consent_prompt`]).
    pub consent_prompt: bool,
    /// The declaration the first-visit dialog presents (set when `consent_prompt` is).
    pub consent_policy: Option<std::sync::Arc<custos_policy::Policy>>,
    /// Purposes of a newer declaration this signed-in user has not yet agreed to
    /// (see [`crate::policy::pending_reconsent`]); non-empty shows the re-consent dialog.
    pub pending_reconsent: Vec<String>,
}

impl Ctx {
    /// The text in the page's language.
    pub fn t<'a>(&self, zh: &'a str, en: &'a str) -> &'a str {
        match self.lang {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    pub fn signed_in(&self) -> bool {
        self.session.is_some()
    }

    /// The session, or a redirect to the sign-in page that comes back here.
    pub fn require_user(&self) -> Result<&AuthSession, WebError> {
        self.session
            .as_ref()
            .ok_or_else(|| WebError::to_sign_in(&self.path))
    }

    /// The CSRF token forms must carry (empty when signed out).
    pub fn csrf(&self) -> &str {
        self.session
            .as_ref()
            .map(|s| s.csrf_token.as_str())
            .unwrap_or("")
    }
}

/// A cookie's value from the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The language a request asks for.
pub fn pick_lang(query: Option<&str>, headers: &HeaderMap) -> Lang {
    let from_query = query.and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "lang")
            .and_then(|(_, v)| Lang::parse(v))
    });
    if let Some(l) = from_query.or_else(|| cookie(headers, LANG_COOKIE).and_then(Lang::parse)) {
        return l;
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for tag in accept.split(',') {
        let t = tag
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if t.starts_with("en") {
            return Lang::En;
        }
        if t.starts_with("zh") {
            return Lang::Zh;
        }
    }
    Lang::Zh
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        if let Some(c) = parts.extensions.get::<Ctx>() {
            return Ok(c.clone());
        }
        let lang = pick_lang(parts.uri.query(), &parts.headers);
        let session = match cookie(&parts.headers, SESSION_COOKIE) {
            Some(token) => match state.identity.authenticate(token).await {
                Ok(s) => Some(s),
                Err(AppError::Unauthenticated) => None,
                Err(e) => return Err(WebError::from(e).lang(lang)),
            },
            None => None,
        };
        let subject = match &session {
            Some(s) => Some(s.subject),
            None => match cookie(&parts.headers, ANON_COOKIE) {
                Some(t) => state
                    .kernel
                    .anonymous_subject(t)
                    .await
                    .map_err(|e| WebError::from(e).lang(lang))?,
                None => None,
            },
        };
        let gpc = parts
            .headers
            .get("sec-gpc")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "1");
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        let mut ctx = Ctx {
            lang,
            session,
            subject,
            gpc,
            path,
            consent_prompt: false,
            consent_policy: None,
            pending_reconsent: Vec::new(),
        };
        ctx.consent_prompt = crate::public::needs_consent_prompt(state, &ctx, &parts.headers)
            .await
            .map_err(|e| e.lang(lang))?;
        if ctx.consent_prompt {
            ctx.consent_policy = Some(state.kernel.gate.regime().current().clone());
        }
        ctx.pending_reconsent = crate::policy::pending_reconsent(state, &ctx)
            .await
            .map_err(|e| e.lang(lang))?;
        parts.extensions.insert(ctx.clone());
        Ok(ctx)
    }
}
