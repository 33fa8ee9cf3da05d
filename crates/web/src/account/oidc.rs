//! Third-party sign-in and linking (P7), through the same use cases as the API's OIDC
//! routes. `/signin/oidc/{provider}` is the consent screen: signed out, it explains that
//! only a linked account signs in and starts a sign-in flow; signed in, it lists what the
//! provider would give — the identifier always, the nickname and the avatar each behind
//! its own unchecked box — and starts a link with exactly the ticked fields (the app
//! stores only those, and records the `external_login` consent with its receipt).
//!
//! The provider must redirect to `/signin/oidc/{provider}/callback` for the web app: set
//! `redirect_uri` of the `[[identity.oidc]]` entry to that URL.

use crate::extract::Path;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use custos_app::identity::oidc::{OidcOutcome, OidcStart, PullField};
use custos_app::AppError;
use custos_http::identity::OIDC_COOKIE;
use custos_http::AppState;
use maud::html;

use super::{
    clear_cookie, flow_cookie, page_for, param, problem, problem_markup, see_other,
    session_set_cookie, Problem,
};
use crate::ctx::{cookie, Ctx};
use crate::error::WebError;
use crate::forms::{csrf_input, encode, safe_next, WebForm};

/// Where to go after the provider's callback (a local path).
pub const OIDC_NEXT_COOKIE: &str = "__Host-custos-oidc-next";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/signin/oidc/{provider}", get(screen).post(start))
        .route("/signin/oidc/{provider}/callback", get(callback))
}

fn field_label(ctx: &Ctx, f: &str) -> &'static str {
    match f {
        "nickname" => ctx.t("昵称", "Nickname"),
        "avatar" => ctx.t("头像", "Profile picture"),
        _ => ctx.t("其他信息", "Other information"),
    }
}

async fn screen_page(
    s: &AppState,
    ctx: &Ctx,
    provider: &str,
    next: &str,
    p: Option<&Problem>,
) -> Result<Response, WebError> {
    let sc = match s.identity.oidc_screen(provider) {
        Ok(sc) => sc,
        Err(e) if e.code() == "unknown_provider" => {
            return Err(WebError::not_found().lang(ctx.lang))
        }
        Err(e) => return Err(WebError::from(e).lang(ctx.lang)),
    };
    let purpose_name = match ctx.lang {
        custos_policy::Lang::En => &sc.purpose_name_en,
        custos_policy::Lang::Zh => &sc.purpose_name_zh,
    };
    let action = format!("/signin/oidc/{}", encode(provider));
    let body = html! {
        @if ctx.signed_in() {
            h1 { (ctx.t("关联 ", "Link ")) (sc.provider) }
            p {
                (ctx.t("关联后，您可以用这个第三方账号登录。用途：", "Once linked, you can sign in with that account. Purpose: "))
                strong { (purpose_name) }
            }
            h2 { (ctx.t("一定会收到的信息", "What we always receive")) }
            ul {
                li { (ctx.t("该服务为您分配的匿名标识，只用于登录", "The pseudonymous identifier that service gives you, used only to sign you in")) }
            }
            (problem_markup(p))
            form method="post" action=(action) class="stack" {
                (csrf_input(ctx))
                input type="hidden" name="next" value=(next);
                fieldset {
                    legend { (ctx.t("可以选择是否获取的信息（每项单独选择）", "What you may choose to share (each on its own)")) }
                    @for (field, category) in &sc.optional {
                        div class="check" {
                            input type="checkbox" name="field" value=(field) id={ "oidc-field-" (field) };
                            label for={ "oidc-field-" (field) } {
                                (field_label(ctx, field)) " " span class="muted" { "(" (category) ")" }
                            }
                        }
                    }
                }
                div class="check" {
                    input type="checkbox" name="agree" value="yes" id="oidc-agree" required;
                    label for="oidc-agree" {
                        (ctx.t("我同意为登录而关联这个账号。", "I agree to link this account for signing in."))
                    }
                }
                button id="oidc-link" type="submit" { (ctx.t("前往 ", "Continue to ")) (sc.provider) }
            }
        } @else {
            h1 { (ctx.t("使用 ", "Sign in with ")) (sc.provider) }
            p {
                (ctx.t(
                    "只有已经关联的第三方账号可以登录。我们不会因此创建账号，也不会获取其他信息。还没有关联？请先用手机号登录，再在这里关联。",
                    "Only an account you already linked can sign you in. Nothing is created and nothing else is taken. Not linked yet? Sign in with your phone first, then link it here.",
                ))
            }
            (problem_markup(p))
            form method="post" action=(action) {
                (csrf_input(ctx))
                input type="hidden" name="next" value=(next);
                button id="oidc-continue" type="submit" { (ctx.t("前往 ", "Continue to ")) (sc.provider) }
            }
            p { a href={ "/signin?next=" (encode(next)) } { (ctx.t("用手机号登录", "Sign in with your phone")) } }
        }
    };
    Ok(page_for(ctx, p, ctx.t("第三方账号", "Other account"), body))
}

async fn screen(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(provider): Path<String>,
    raw: RawQuery,
) -> Result<Response, WebError> {
    let next = safe_next(param(&raw, "next").as_deref());
    screen_page(&s, &ctx, &provider, &next, None).await
}

fn started(start: OidcStart, next: &str) -> Response {
    see_other(
        &start.authorize_url,
        &[
            flow_cookie(OIDC_COOKIE, start.binding.expose(), 600),
            flow_cookie(OIDC_NEXT_COOKIE, &encode(next), 600),
        ],
    )
}

/// Starts the flow: a sign-in when signed out; a link with the ticked fields when signed in.
async fn start(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(provider): Path<String>,
    WebForm(pairs): WebForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let get = |k: &str| {
        pairs
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let next = safe_next(get("next"));
    let result = match &ctx.session {
        None => s.identity.oidc_start(&provider, None, &[]).await,
        Some(session) => {
            if get("agree") != Some("yes") {
                Err(AppError::bad(
                    "agreement_required",
                    "agree to linking to continue",
                ))
            } else {
                match pairs
                    .iter()
                    .filter(|(k, _)| k == "field")
                    .take(8)
                    .map(|(_, v)| PullField::parse(v))
                    .collect::<Result<Vec<_>, _>>()
                {
                    Ok(fields) => {
                        s.identity
                            .oidc_start(&provider, Some(session.subject), &fields)
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
        }
    };
    match result {
        Ok(st) => Ok(started(st, &next)),
        Err(e) if e.code() == "unknown_provider" => Err(WebError::not_found().lang(ctx.lang)),
        Err(e) => {
            let p = problem(&ctx, e)?;
            screen_page(&s, &ctx, &provider, &next, Some(&p)).await
        }
    }
}

/// The provider's redirect back: links or signs in, as the API's callback does.
async fn callback(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(provider): Path<String>,
    headers: HeaderMap,
    raw: RawQuery,
) -> Result<Response, WebError> {
    let next = cookie(&headers, OIDC_NEXT_COOKIE)
        .map(|v| {
            form_urlencoded::parse(format!("n={v}").as_bytes())
                .map(|(_, v)| v.into_owned())
                .next()
                .unwrap_or_default()
        })
        .map(|n| safe_next(Some(&n)))
        .unwrap_or_else(|| "/".to_owned());
    let binding = cookie(&headers, OIDC_COOKIE).unwrap_or("").to_owned();
    let result = if param(&raw, "error").is_some() {
        Err(AppError::bad(
            "oidc_declined",
            "the provider reports that sign-in was declined",
        ))
    } else {
        match (param(&raw, "code"), param(&raw, "state")) {
            (Some(code), Some(state)) => {
                s.identity
                    .oidc_finish(&provider, &code, &state, &binding)
                    .await
            }
            _ => Err(AppError::bad(
                "oidc_state_invalid",
                "code and state are required",
            )),
        }
    };
    let clear = [clear_cookie(OIDC_COOKIE), clear_cookie(OIDC_NEXT_COOKIE)];
    match result {
        Ok(OidcOutcome::SignedIn(signed)) => {
            super::end_previous_session(&s, &ctx).await?;
            let mut cookies = clear.to_vec();
            cookies.push(session_set_cookie(&s, &signed));
            Ok(see_other(&next, &cookies))
        }
        Ok(OidcOutcome::Linked {
            provider,
            stored,
            receipt,
        }) => {
            let body = html! {
                h1 { (ctx.t("已关联 ", "Linked ")) (provider) }
                p class="notice" role="status" {
                    (ctx.t("以后可以用这个账号登录。", "You can now sign in with that account."))
                }
                h2 { (ctx.t("我们保存了", "What we stored")) }
                ul id="oidc-stored" {
                    li data-field="subject" { (ctx.t("登录用的匿名标识", "The pseudonymous identifier, for signing in")) }
                    @for f in &stored {
                        li data-field=(f) { (field_label(&ctx, f)) }
                    }
                }
                p {
                    a id="receipt-link" href={ "/receipts/" (receipt.receipt_id) } {
                        (ctx.t("查看同意回执", "See the consent receipt"))
                    }
                }
                p { a href=(next) { (ctx.t("继续", "Continue")) } }
            };
            let mut resp = page_for(&ctx, None, ctx.t("已关联", "Linked"), body);
            for c in &clear {
                if let Ok(v) = axum::http::HeaderValue::from_str(c) {
                    resp.headers_mut().append(axum::http::header::SET_COOKIE, v);
                }
            }
            Ok(resp)
        }
        Err(e) => {
            let p = problem(&ctx, e)?;
            let body = html! {
                h1 { (ctx.t("没有完成", "That did not work")) }
                (problem_markup(Some(&p)))
                p { a href={ "/signin?next=" (encode(&next)) } { (ctx.t("返回登录", "Back to sign-in")) } }
            };
            Ok(page_for(
                &ctx,
                Some(&p),
                ctx.t("没有完成", "Not completed"),
                body,
            ))
        }
    }
}
