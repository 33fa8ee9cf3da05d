//! Posted forms. [`WebForm`] accepts an `application/x-www-form-urlencoded` body only
//! when the request comes from this origin (`Sec-Fetch-Site: same-origin`, or an
//! `Origin` equal to the `Host`), and, for a signed-in caller, when the form's
//! [`CSRF_FIELD`] equals the session's CSRF token. Render [`csrf_input`] in every form.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use custos_http::AppState;
use maud::{html, Markup};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::ctx::Ctx;
use crate::error::WebError;

/// The hidden form field carrying the session's CSRF token.
pub const CSRF_FIELD: &str = "_csrf";

/// Largest form body accepted (file uploads use their own limits).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// A form with no fields but the CSRF token (a button that only posts).
#[derive(Debug, Deserialize)]
pub struct Empty {}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A local path to go back to after a form (`next=`), or `/`: never another origin.
/// Only printable ASCII is kept: browsers drop tabs and newlines inside a URL, so
/// `/<TAB>/evil.example` would become `//evil.example`, and anything else would not
/// fit in a `Location` header.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The hidden CSRF field for a form (empty value when signed out).
pub fn csrf_input(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(ctx.csrf()); }
}

/// Whether a state-changing request comes from a page of this origin.
pub fn same_origin(parts: &Parts) -> bool {
    let h = &parts.headers;
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_of = |url: &str| -> String {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .unwrap_or("");
        rest.split(['/', '?', '#']).next().unwrap_or("").to_owned()
    };
    match (h.get(header::ORIGIN).and_then(|v| v.to_str().ok()), host) {
        (Some(origin), Some(host)) => origin_of(origin) == host,
        // Old browsers send neither header; their Referer, when sent, must be ours.
        // Non-browser clients carry no ambient credentials we would honour without the
        // CSRF field below (see [`WebForm`] for the anonymous identifier).
        (None, host) => match h.get(header::REFERER) {
            Some(r) => match (r.to_str(), host) {
                (Ok(r), Some(host)) => origin_of(r) == host,
                _ => false,
            },
            None => true,
        },
        (Some(_), None) => false,
    }
}

/// Whether the request says where it comes from at all (`Sec-Fetch-Site`, `Origin` or
/// `Referer`).
fn has_provenance(parts: &Parts) -> bool {
    let h = &parts.headers;
    h.contains_key("sec-fetch-site")
        || h.contains_key(header::ORIGIN)
        || h.contains_key(header::REFERER)
}

/// A posted form, checked for origin and CSRF, deserialized into `T`.
#[derive(Debug)]
pub struct WebForm<T>(pub T);

/// The refusal of a form that does not come from a page of this origin.
pub(crate) fn cross_origin(ctx: &Ctx) -> WebError {
    WebError::new(
        StatusCode::FORBIDDEN,
        "cross_origin",
        ctx.t(
            "表单只能从本站页面提交。",
            "Forms can only be sent from this site's own pages.",
        ),
    )
    .lang(ctx.lang)
}

/// The refusal of a form whose CSRF field does not match the session's.
pub(crate) fn csrf_failed(ctx: &Ctx) -> WebError {
    WebError::new(
        StatusCode::FORBIDDEN,
        "csrf_failed",
        ctx.t(
            "页面已过期，请刷新后重试。",
            "This page has expired; reload it and try again.",
        ),
    )
    .lang(ctx.lang)
}

/// Checks a url-encoded form body's [`CSRF_FIELD`] against `expected`.
pub(crate) fn check_csrf(ctx: &Ctx, body: &[u8], expected: &str) -> Result<(), WebError> {
    let sent = form_urlencoded::parse(body)
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if ct_eq(sent.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(csrf_failed(ctx))
    }
}

/// Reads a url-encoded form body of at most `max` bytes from this origin, without the
/// CSRF check (its callers check it against their own session). With
/// `anon_needs_provenance`, a caller known only by the anonymous identifier (an ambient
/// credential without a CSRF token) must also say where the form comes from.
pub(crate) async fn read_form(
    req: Request,
    state: &AppState,
    max: usize,
    anon_needs_provenance: bool,
) -> Result<(Ctx, Parts, Bytes), WebError> {
    let (mut parts, body) = req.into_parts();
    let ctx = Ctx::from_request_parts(&mut parts, state).await?;
    let anon_cookie = anon_needs_provenance
        && ctx.session.is_none()
        && crate::ctx::cookie(&parts.headers, custos_http::caller::ANON_COOKIE).is_some();
    if !same_origin(&parts) || (anon_cookie && !has_provenance(&parts)) {
        return Err(cross_origin(&ctx));
    }
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(WebError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            ctx.t("需要表单提交。", "Expected a form."),
        )
        .lang(ctx.lang));
    }
    let too_large = || {
        WebError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            ctx.t("提交的内容太大。", "The form is too large."),
        )
        .lang(ctx.lang)
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, max)
        .await
        .map_err(|_| too_large())?;
    Ok((ctx, parts, bytes))
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for WebForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, WebError> {
        let (ctx, _, bytes) = read_form(req, state, MAX_FORM_BYTES, true).await?;
        if let Some(session) = &ctx.session {
            check_csrf(&ctx, &bytes, &session.csrf_token)?;
        }
        let value = serde_urlencoded::from_bytes::<T>(&bytes).map_err(|e| {
            WebError::new(StatusCode::BAD_REQUEST, "invalid_form", e.to_string()).lang(ctx.lang)
        })?;
        Ok(WebForm(value))
    }
}

pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
