//! `/me/reauth?next=…`: proving the account's phone again before a sensitive action
//! (export, cancellation, password). `#reauth-send` texts a code to the account's own
//! number (`POST /api/v1/me/reauth/start`); `#reauth-code` + `#reauth-verify` prove it
//! (`POST /api/v1/me/reauth/verify`), which opens the re-authentication window for this
//! session; then the user goes back to `next`.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use custos_app::AppError;
use custos_http::session::ClientIp;
use custos_http::AppState;
use maud::{html, Markup};
use serde::Deserialize;

use super::{page, see_other, WebResult};
use crate::ctx::Ctx;
use crate::error::WebError;
use crate::forms::{csrf_input, encode, safe_next, WebForm};

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
    challenge: Option<String>,
}

async fn reauth_page(
    State(_s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<ReauthQuery>,
) -> Result<Response, WebError> {
    ctx.require_user()?;
    let next = safe_next(q.next.as_deref());
    Ok(render(&ctx, &next, q.challenge.as_deref(), None))
}

fn render(ctx: &Ctx, next: &str, challenge: Option<&str>, error: Option<&str>) -> Response {
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
                @if challenge.is_some() { (ctx.t("重新发送验证码", "Send a new code")) }
                @else { (ctx.t("发送验证码", "Send me a code")) }
            }
        }
        @if let Some(ch) = challenge {
            form method="post" action="/me/reauth/verify" {
                (csrf_input(ctx))
                input type="hidden" name="next" value=(next);
                input type="hidden" name="challenge_id" value=(ch);
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
    Ok(see_other(&format!(
        "/me/reauth?next={}&challenge={}",
        encode(&next),
        encode(&c.challenge_id)
    )))
}

#[derive(Debug, Deserialize)]
struct VerifyForm {
    next: Option<String>,
    challenge_id: String,
    code: String,
}

/// Same use case as `POST /api/v1/me/reauth/verify`. A wrong code shows the form again.
async fn verify_code(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ctx: Ctx,
    WebForm(f): WebForm<VerifyForm>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let next = safe_next(f.next.as_deref());
    match s
        .identity
        .finish_reauth(session, &f.challenge_id, f.code.trim(), ip)
        .await
    {
        Ok(_) => Ok(see_other(&next)),
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
            Ok(render(&ctx, &next, Some(&f.challenge_id), Some(msg)))
        }
        Err(e) => Err(e).web(&ctx),
    }
}
