//! `/me/reauth?next=…`: proving the account's phone again before a sensitive action
//! (export, cancellation, password). `#reauth-send` texts a code to the account's own
//! number (`POST /api/v1/me/reauth/start`); `#reauth-code` + `#reauth-verify` prove it
//! (`POST /api/v1/me/reauth/verify`), which opens the re-authentication window for this
//! session; then the user goes back to `next`. The challenge id travels between the two
//! steps in a short-lived HttpOnly `__Host-` cookie ([`REAUTH_COOKIE`]), never in the URL
//! or the page, and is cleared once the code is proved.

use crate::extract::Query;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use custos_app::AppError;
use custos_http::session::ClientIp;
use custos_http::AppState;
use maud::{html, Markup};
use serde::Deserialize;

use super::{page, see_other, WebResult};
use crate::account::{clear_cookie, flow_cookie};
use crate::ctx::{cookie, Ctx};
use crate::error::WebError;
use crate::forms::{csrf_input, encode, safe_next, WebForm};

/// Carries the re-authentication challenge id from `#reauth-send` to `#reauth-verify`.
pub const REAUTH_COOKIE: &str = "__Host-custos-reauth";

fn challenge_of(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, REAUTH_COOKIE).filter(|c| !c.is_empty())
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me/reauth", get(reauth_page))
        .route("/me/reauth/send", post(send_code))
        .route("/me/reauth/verify", post(verify_code))
}

/// Whether the session proved its phone within the re-authentication window.
pub(crate) fn is_fresh(s: &AppState, ctx: &Ctx) -> bool {
    ctx.session
        .as_ref()
        .is_some_and(|sess| s.identity.reauthenticated(sess).is_ok())
}

/// The address of the re-authentication step that comes back to `next`.
pub(crate) fn reauth_url(next: &str) -> String {
    format!("/me/reauth?next={}", encode(next))
}

/// A link to the re-authentication step, explaining why it is needed.
pub(crate) fn reauth_prompt(ctx: &Ctx, next: &str) -> Markup {
    html! {
        div class="reauth-needed" {
            p { (ctx.t(
                "为保护您的账号，这一步需要先用发送到您手机的新验证码确认身份（5 分钟内有效）。",
                "To protect your account, this step first needs a fresh code sent to your phone (valid for 5 minutes)."
            )) }
            p { a class="button" href=(reauth_url(next)) { (ctx.t("确认身份", "Confirm it's you")) } }
        }
    }
}

#[derive(Debug, Deserialize)]
struct ReauthQuery {
    next: Option<String>,
}

async fn reauth_page(
    State(_s): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(q): Query<ReauthQuery>,
) -> Result<Response, WebError> {
    ctx.require_user()?;
    let next = safe_next(q.next.as_deref());
    Ok(render(&ctx, &next, challenge_of(&headers).is_some(), None))
}

fn render(ctx: &Ctx, next: &str, sent: bool, error: Option<&str>) -> Response {
    let body = html! {
        p { (ctx.t(
            "我们会向您账号绑定的手机号发送一条验证码短信。输入验证码后，您可以在 5 分钟内完成导出、注销或修改密码。",
            "We text a code to the phone number of your account. After entering it you have 5 minutes to export, cancel your account or change your password."
        )) }
        @if let Some(e) = error {
            p class="error" role="alert" { (e) }
        }
        form method="post" action="/me/reauth/send" {
            (csrf_input(ctx))
            input type="hidden" name="next" value=(next);
            button type="submit" id="reauth-send" {
                @if sent { (ctx.t("重新发送验证码", "Send a new code")) }
                @else { (ctx.t("发送验证码", "Send me a code")) }
            }
        }
        @if sent {
            form method="post" action="/me/reauth/verify" {
                (csrf_input(ctx))
                input type="hidden" name="next" value=(next);
                label for="reauth-code" { (ctx.t("短信验证码（6 位数字）", "Code from the text message (6 digits)")) }
                input type="text" id="reauth-code" name="code" inputmode="numeric"
                    autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required;
                button type="submit" id="reauth-verify" { (ctx.t("确认", "Confirm")) }
            }
        }
    };
    let mut resp = page(ctx, "", ctx.t("确认身份", "Confirm it's you"), body);
    if error.is_some() {
        *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    resp
}

#[derive(Debug, Deserialize)]
struct SendForm {
    next: Option<String>,
}

/// Same use case as `POST /api/v1/me/reauth/start`.
async fn send_code(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ctx: Ctx,
    WebForm(f): WebForm<SendForm>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let next = safe_next(f.next.as_deref());
    let c = s.identity.start_reauth(session, ip).await.web(&ctx)?;
    Ok(crate::account::see_other(
        &reauth_url(&next),
        &[flow_cookie(
            REAUTH_COOKIE,
            &c.challenge_id,
            c.expires_in_secs,
        )],
    ))
}

#[derive(Debug, Deserialize)]
struct VerifyForm {
    next: Option<String>,
    #[serde(default)]
    code: String,
}

/// Same use case as `POST /api/v1/me/reauth/verify`. A wrong code shows the form again.
async fn verify_code(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ctx: Ctx,
    headers: HeaderMap,
    WebForm(f): WebForm<VerifyForm>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let next = safe_next(f.next.as_deref());
    let Some(challenge) = challenge_of(&headers) else {
        return Ok(see_other(&reauth_url(&next)));
    };
    match s
        .identity
        .finish_reauth(session, challenge, f.code.trim(), ip)
        .await
    {
        Ok(_) => Ok(crate::account::see_other(
            &next,
            &[clear_cookie(REAUTH_COOKIE)],
        )),
        Err(AppError::BadRequest { code, .. }) => {
            let msg = match code {
                "code_expired" => ctx.t(
                    "验证码已过期，请重新发送。",
                    "The code has expired; send a new one.",
                ),
                "code_used" | "code_exhausted" => ctx.t(
                    "这个验证码已不能再用，请重新发送。",
                    "This code can no longer be used; send a new one.",
                ),
                _ => ctx.t(
                    "验证码不正确，请检查后重试。",
                    "That code is not right; check it and try again.",
                ),
            };
            Ok(render(&ctx, &next, true, Some(msg)))
        }
        Err(e) => Err(e).web(&ctx),
    }
}
