//! The page shell: `<html lang>`, a skip link, the header with navigation and the
//! language switch, the dialogs a visit may owe (first-visit consent, re-consent), the
//! footer. Also `/lang`, the language switch.

use crate::extract::Query;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use custos_http::AppState;
use custos_policy::Lang;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use crate::ctx::{Ctx, LANG_COOKIE};
use crate::forms::{encode, safe_next};

/// Content-Security-Policy of every page: nothing from another origin, no inline script.
pub const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; \
style-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; \
form-action 'self'; base-uri 'none'";

pub fn routes() -> Router<AppState> {
    Router::new().route("/lang", get(switch_lang))
}

#[derive(Debug, Deserialize)]
pub struct LangQuery {
    pub to: String,
    pub next: Option<String>,
}

/// Sets the language cookie and goes back.
async fn switch_lang(Query(q): Query<LangQuery>) -> Response {
    let Some(lang) = Lang::parse(&q.to) else {
        return (StatusCode::BAD_REQUEST, "lang must be zh or en").into_response();
    };
    let next = safe_next(q.next.as_deref());
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, next),
            (
                header::SET_COOKIE,
                format!(
                    "{LANG_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000",
                    lang.code()
                ),
            ),
        ],
    )
        .into_response()
}

/// A whole page: the shell around `body`, with the headers every page carries.
pub fn page(ctx: &Ctx, title: &str, body: Markup) -> Response {
    page_with_status(ctx, StatusCode::OK, title, body)
}

pub fn page_with_status(ctx: &Ctx, status: StatusCode, title: &str, body: Markup) -> Response {
    let html_lang = match ctx.lang {
        Lang::Zh => "zh-CN",
        Lang::En => "en",
    };
    let other = match ctx.lang {
        Lang::Zh => ("en", "English"),
        Lang::En => ("zh", "中文"),
    };
    let markup = html! {
        (DOCTYPE)
        html lang=(html_lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Custos" }
                link rel="stylesheet" href="/assets/app.css";
                link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
                script src="/assets/app.js" defer {}
            }
            body {
                // A modal dialog comes first, so that without script the keyboard reaches
                // it before the page it covers.
                // At most one dialog at a time: the first-visit choice, else a re-consent.
                @if let Some(d) = crate::public::consent_modal(ctx) {
                    (d)
                } @else if let Some(d) = crate::policy::reconsent_dialog(ctx) {
                    (d)
                }
                a class="skip" href="#main" { (ctx.t("跳到正文", "Skip to content")) }
                header class="site" {
                    a class="brand" href="/" { "Custos" }
                    nav aria-label=(ctx.t("主导航", "Main")) {
                        ul {
                            li { a href="/" { (ctx.t("首页", "Home")) } }
                            li { a href="/search" { (ctx.t("搜索", "Search")) } }
                            @if ctx.signed_in() {
                                li { a href="/me" { (ctx.t("隐私中心", "Privacy center")) } }
                            } @else {
                                li { a href="/signin" { (ctx.t("登录 / 注册", "Sign in / Sign up")) } }
                            }
                            li {
                                a href={ "/lang?to=" (other.0) "&next=" (encode(&ctx.path)) }
                                    lang=(other.0) hreflang=(other.0) { (other.1) }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    @if let Some(n) = crate::public::consent_notice(ctx) { (n) }
                    (body)
                }
                footer class="site" {
                    a href="/privacy/policy" { (ctx.t("隐私政策", "Privacy policy")) }
                    " · "
                    a href="/contact" { (ctx.t("联系我们", "Contact us")) }
                }
            }
        }
    };
    let mut resp = (status, markup.into_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if ctx.signed_in() {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
    }
    h.insert(
        header::VARY,
        HeaderValue::from_static("cookie, accept-language"),
    );
    resp
}
