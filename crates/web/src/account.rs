//! Sign-in and sign-up (P4, P6, P7, P36), calling the same identity use cases as the
//! API (`crates/http/src/identity.rs`):
//!
//! - `/signin`: the phone form (`#phone`, `#send-code`) texts a code
//!   ([`custos_app::identity::Identity::start_sign_in`], same throttles; a refusal shows a
//!   429 page with the wait), then `/signin/code` (`#code`, `#verify-code`) proves it and
//!   sets the session cookie exactly as the API does. The answer never tells whether the
//!   number has an account. Password sign-in (`#password`, `#password-submit`) posts to
//!   `/signin/password`.
//! - A new account continues with the optional steps in [`onboarding`]: birth date
//!   (`/signin/birthdate`), the guardian flow for users under 18, and the profile
//!   (nickname, password). Each can be skipped.
//! - Third-party sign-in and linking with per-field consent: [`oidc`].
//! - `/signout` (POST, CSRF) ends the session and clears the cookie.
//!
//! The challenge id between the two steps travels in a short-lived `__Host-` cookie
//! (HttpOnly), never in the URL.

pub mod oidc;
pub mod onboarding;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use custos_app::identity::{PhoneNumber, SignedIn};
use custos_app::AppError;
use custos_core::Personal;
use custos_http::session::{clear_session_cookie, session_cookie, ClientIp};
use custos_http::AppState;
use maud::{html, Markup};
use serde::Deserialize;

use crate::ctx::{cookie, Ctx};
use crate::error::WebError;
use crate::forms::{csrf_input, encode, safe_next, Empty, WebForm};
use crate::layout;

/// Carries the sign-in challenge id from the phone step to the code step.
pub const CHALLENGE_COOKIE: &str = "__Host-custos-challenge";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/signin", get(sign_in_page).post(send_code))
        .route("/signin/code", get(code_page).post(verify_code))
        .route("/signin/password", post(password_sign_in))
        .route("/signout", post(sign_out))
        .merge(onboarding::routes())
        .merge(oidc::routes())
}

// ---------------------------------------------------------------------------------------
// Helpers shared by the account pages
// ---------------------------------------------------------------------------------------

/// A query parameter of the request (the last one when repeated).
pub(crate) fn param(raw: &RawQuery, key: &str) -> Option<String> {
    form_urlencoded::parse(raw.0.as_deref().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .last()
}

/// `?next=…` of the request, made safe.
pub(crate) fn next_of(raw: &RawQuery) -> String {
    safe_next(param(raw, "next").as_deref())
}

/// A `__Host-` cookie for a step of a flow.
pub(crate) fn flow_cookie(name: &str, value: &str, max_age_secs: u64) -> String {
    format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}")
}

pub(crate) fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// 303 to `location`, setting `cookies`.
pub(crate) fn see_other(location: &str, cookies: &[String]) -> Response {
    let mut resp = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_owned())],
    )
        .into_response();
    let h = resp.headers_mut();
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The `Set-Cookie` value of a new session, exactly as the API sets it.
pub(crate) fn session_set_cookie(s: &AppState, signed: &SignedIn) -> String {
    let ns = &signed.session;
    let now = s.kernel.clock.now_ms();
    session_cookie(ns.token.expose(), (ns.expires_at_ms - now) / 1000)
}

/// Ends the session this browser already had when it signs in again: its cookie is about
/// to be replaced, and a replaced cookie must not leave a live session behind.
pub(crate) async fn end_previous_session(s: &AppState, ctx: &Ctx) -> Result<(), WebError> {
    if let Some(old) = &ctx.session {
        s.identity
            .logout(old)
            .await
            .map_err(|e| WebError::from(e).lang(ctx.lang))?;
    }
    Ok(())
}

/// A step that failed for a reason the user can act on, explained on the page.
#[derive(Debug)]
pub(crate) struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

fn wait_text(ctx: &Ctx, secs: u64) -> String {
    if secs < 60 {
        match ctx.lang {
            custos_policy::Lang::Zh => format!("{secs} 秒"),
            custos_policy::Lang::En => format!("{secs} seconds"),
        }
    } else {
        let m = secs.div_ceil(60);
        match ctx.lang {
            custos_policy::Lang::Zh => format!("{m} 分钟"),
            custos_policy::Lang::En if m == 1 => "1 minute".to_owned(),
            custos_policy::Lang::En => format!("{m} minutes"),
        }
    }
}

/// Explains an identity error in the page's language, or passes on what is not the
/// user's to fix (storage down, internal) as an error page.
pub(crate) fn problem(ctx: &Ctx, e: AppError) -> Result<Problem, WebError> {
    let code = e.code();
    if let AppError::Throttled {
        retry_after_secs, ..
    } = e
    {
        let w = wait_text(ctx, retry_after_secs);
        let message = match ctx.lang {
            custos_policy::Lang::Zh => {
                format!("尝试次数太多了。为了保护账号安全，请等待约 {w} 后再试。")
            }
            custos_policy::Lang::En => format!(
                "Too many attempts. To keep accounts safe, please wait about {w} and try again."
            ),
        };
        return Ok(Problem {
            status: StatusCode::TOO_MANY_REQUESTS,
            code,
            message,
            retry_after: Some(retry_after_secs),
        });
    }
    let (zh, en): (&str, &str) = match code {
        "invalid_phone" => (
            "这个手机号码格式不正确，请检查后重试。",
            "That does not look like a mobile number; check it and try again.",
        ),
        "phone_country_not_allowed" => (
            "暂时无法向这个国家或地区的号码发送短信。",
            "We cannot send texts to numbers in that country yet.",
        ),
        "code_invalid" => (
            "验证码不正确。请核对短信中的六位数字。",
            "That code is not right. Check the six digits in the text message.",
        ),
        "code_expired" => (
            "验证码已过期，请重新获取。",
            "That code has expired; ask for a new one.",
        ),
        "code_used" => (
            "这个验证码已经用过了，请重新获取。",
            "That code was already used; ask for a new one.",
        ),
        "code_exhausted" => (
            "输错次数太多，这个验证码已失效，请重新获取。",
            "Too many wrong tries: that code no longer works. Ask for a new one.",
        ),
        "invalid_credentials" => (
            "手机号或密码不正确。也可以用短信验证码登录。",
            "The number or the password is not right. You can also sign in with a text message code.",
        ),
        "invalid_birth_date" => (
            "请按 年-月-日 填写一个真实的出生日期。",
            "Enter a real date of birth as year-month-day.",
        ),
        "birth_date_locked" => (
            "已填写的年龄不能改大。如有错误，请联系客服更正。",
            "An age already given cannot be raised. If it is wrong, contact us to correct it.",
        ),
        "guardian_not_needed" => (
            "只有未满 18 岁的用户需要监护人同意。",
            "Only users under 18 need a guardian's agreement.",
        ),
        "guardian_phone_is_own" => (
            "请填写监护人的手机号，而不是您自己的。",
            "Enter your guardian's number, not your own.",
        ),
        "guardian_exists" => (
            "已经有监护人为这个账号表示了同意。",
            "A guardian has already agreed for this account.",
        ),
        "agreement_required" => (
            "需要勾选同意后才能继续。",
            "Tick the box to agree before continuing.",
        ),
        "guardian_consent_required" => (
            "未满 18 岁的用户需要监护人先同意，才能使用这项功能。",
            "Users under 18 need a guardian's agreement before using this.",
        ),
        "invalid_nickname" => (
            "昵称需为 1 到 32 个字符。",
            "A nickname is 1 to 32 characters.",
        ),
        "password_too_short" => ("密码至少需要 8 个字符。", "A password needs at least 8 characters."),
        "password_too_long" => ("密码最多 128 个字符。", "A password has at most 128 characters."),
        "password_too_common" => (
            "这个密码太常见，容易被猜到，请换一个。",
            "That password is too common and easy to guess; choose another.",
        ),
        "reauthentication_required" => (
            "为了安全，设置密码前需要重新验证手机号。您可以稍后在隐私中心设置。",
            "For safety, setting a password needs a fresh text message code. You can set one later in the privacy center.",
        ),
        "sms_unavailable" => (
            "短信暂时无法发送，请稍后再试。",
            "Text messages cannot be sent right now; try again later.",
        ),
        "unknown_provider" => ("没有这个第三方登录方式。", "There is no such sign-in provider."),
        "unknown_field" => (
            "只能选择昵称和头像。",
            "Only the nickname and the avatar can be chosen.",
        ),
        "oidc_declined" => (
            "您在第三方页面取消了登录。",
            "Sign-in was cancelled at the provider.",
        ),
        "oidc_state_invalid" => (
            "这个登录链接已失效或不属于这个浏览器，请重新开始。",
            "This sign-in link has expired or belongs to another browser; start again.",
        ),
        "id_token_invalid" | "oidc_code_refused" => (
            "无法确认第三方返回的身份，请重新开始。",
            "The provider's answer could not be verified; start again.",
        ),
        "identity_not_linked" => (
            "这个第三方账号还没有关联。请先用手机号登录，再在这里关联。",
            "That account at the provider is not linked yet. Sign in with your phone first, then link it here.",
        ),
        "identity_linked_elsewhere" => (
            "这个第三方账号已关联到另一个账号。",
            "That account at the provider is linked to another account.",
        ),
        "idp_unavailable" => (
            "暂时无法连接第三方登录服务，请稍后再试。",
            "The sign-in provider cannot be reached right now; try again later.",
        ),
        _ => match e {
            AppError::BadRequest { .. } | AppError::Denied(_) => {
                return Ok(Problem {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    code,
                    message: ctx
                        .t("请求无法完成，请检查后重试。", "That could not be done; check and try again.")
                        .to_owned(),
                    retry_after: None,
                })
            }
            other => return Err(WebError::from(other).lang(ctx.lang)),
        },
    };
    let status = match code {
        "sms_unavailable" | "idp_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        "guardian_consent_required" | "reauthentication_required" => StatusCode::FORBIDDEN,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Ok(Problem {
        status,
        code,
        message: ctx.t(zh, en).to_owned(),
        retry_after: None,
    })
}

/// The alert shown above a form.
pub(crate) fn problem_markup(p: Option<&Problem>) -> Markup {
    html! {
        @if let Some(p) = p {
            p class="error form-error" role="alert" data-error-code=(p.code) { (p.message) }
        }
    }
}

/// A page that answers with the problem's status (and `Retry-After`).
pub(crate) fn page_for(ctx: &Ctx, p: Option<&Problem>, title: &str, body: Markup) -> Response {
    let status = p.map(|p| p.status).unwrap_or(StatusCode::OK);
    let mut resp = layout::page_with_status(ctx, status, title, body);
    if let Some(secs) = p.and_then(|p| p.retry_after) {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The sign-out button (`#sign-out`), for the privacy center.
pub fn sign_out_form(ctx: &Ctx) -> Markup {
    html! {
        form method="post" action="/signout" class="sign-out" {
            (csrf_input(ctx))
            button id="sign-out" type="submit" class="secondary" { (ctx.t("退出登录", "Sign out")) }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Phone and SMS code
// ---------------------------------------------------------------------------------------

struct SignInView<'a> {
    next: &'a str,
    phone_problem: Option<&'a Problem>,
    password_problem: Option<&'a Problem>,
}

fn sign_in_markup(s: &AppState, ctx: &Ctx, v: &SignInView<'_>) -> Markup {
    let providers = s.identity.oidc.names();
    html! {
        h1 { (ctx.t("登录或注册", "Sign in or sign up")) }
        section class="signin-panel" aria-labelledby="sms-title" {
            h2 id="sms-title" { (ctx.t("用短信验证码", "With a text message code")) }
            p class="muted" {
                (ctx.t(
                    "输入手机号，我们会发送一个六位验证码。新号码在验证后会创建账号；注册只需要手机号。",
                    "Enter your mobile number and we will text you a six-digit code. A new number gets an account once the code is confirmed; a phone number is all sign-up needs.",
                ))
            }
            (problem_markup(v.phone_problem))
            form method="post" action="/signin" class="stack" {
                (csrf_input(ctx))
                input type="hidden" name="next" value=(v.next);
                label for="phone" { (ctx.t("手机号", "Mobile number")) }
                input id="phone" name="phone" type="tel" inputmode="tel" autocomplete="tel"
                    required maxlength="32" aria-describedby="phone-hint";
                p id="phone-hint" class="muted" { (ctx.t("例如 139 1234 5678", "For example 139 1234 5678")) }
                button id="send-code" type="submit" { (ctx.t("发送验证码", "Send the code")) }
            }
        }
        section class="signin-panel" aria-labelledby="password-title" {
            h2 id="password-title" { (ctx.t("用密码", "With a password")) }
            p class="muted" {
                (ctx.t("如果您在账号中设置过密码，也可以用它登录。",
                       "If you set a password on your account, you can sign in with it."))
            }
            (problem_markup(v.password_problem))
            form method="post" action="/signin/password" class="stack" {
                (csrf_input(ctx))
                input type="hidden" name="next" value=(v.next);
                label for="password-phone" { (ctx.t("手机号", "Mobile number")) }
                input id="password-phone" name="phone" type="tel" inputmode="tel"
                    autocomplete="username" required maxlength="32";
                label for="password" { (ctx.t("密码", "Password")) }
                input id="password" name="password" type="password" autocomplete="current-password"
                    required maxlength="256";
                button id="password-submit" type="submit" { (ctx.t("登录", "Sign in")) }
            }
        }
        @if !providers.is_empty() {
            section class="signin-panel" aria-labelledby="oidc-title" {
                h2 id="oidc-title" { (ctx.t("用第三方账号", "With another account")) }
                p class="muted" {
                    (ctx.t("只有已在隐私中心关联的第三方账号可以用来登录。",
                           "Only an account you linked in the privacy center can sign you in."))
                }
                ul class="oidc-providers" {
                    @for (i, p) in providers.iter().enumerate() {
                        li {
                            @let href = format!("/signin/oidc/{}?next={}", encode(p), encode(v.next));
                            @if i == 0 {
                                a id="oidc-start" class="button secondary" href=(href) {
                                    (ctx.t("继续使用 ", "Continue with ")) (p)
                                }
                            } @else {
                                a class="button secondary oidc-start" href=(href) {
                                    (ctx.t("继续使用 ", "Continue with ")) (p)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn sign_in_page(State(s): State<AppState>, ctx: Ctx, raw: RawQuery) -> Response {
    let next = next_of(&raw);
    if ctx.signed_in() {
        return see_other(&next, &[]);
    }
    let body = sign_in_markup(
        &s,
        &ctx,
        &SignInView {
            next: &next,
            phone_problem: None,
            password_problem: None,
        },
    );
    page_for(&ctx, None, ctx.t("登录", "Sign in"), body)
}

/// The sign-in page again, the use case's refusal shown beside the form that was sent
/// (the password form's, or the text-message form's).
fn sign_in_refused(
    s: &AppState,
    ctx: &Ctx,
    next: &str,
    e: AppError,
    by_password: bool,
) -> Result<Response, WebError> {
    let p = problem(ctx, e)?;
    let body = sign_in_markup(
        s,
        ctx,
        &SignInView {
            next,
            phone_problem: (!by_password).then_some(&p),
            password_problem: by_password.then_some(&p),
        },
    );
    Ok(page_for(ctx, Some(&p), ctx.t("登录", "Sign in"), body))
}

#[derive(Debug, Deserialize)]
struct PhoneForm {
    #[serde(default)]
    phone: String,
    next: Option<String>,
}

async fn send_code(
    State(s): State<AppState>,
    ctx: Ctx,
    ClientIp(ip): ClientIp,
    WebForm(f): WebForm<PhoneForm>,
) -> Result<Response, WebError> {
    let next = safe_next(f.next.as_deref());
    let started = match PhoneNumber::parse(&f.phone) {
        Ok(phone) => s.identity.start_sign_in(&phone, ip).await,
        Err(e) => Err(e),
    };
    match started {
        Ok(c) => Ok(see_other(
            &format!("/signin/code?next={}", encode(&next)),
            &[flow_cookie(
                CHALLENGE_COOKIE,
                &c.challenge_id,
                c.expires_in_secs,
            )],
        )),
        Err(e) => sign_in_refused(&s, &ctx, &next, e, false),
    }
}

fn code_markup(ctx: &Ctx, next: &str, p: Option<&Problem>) -> Markup {
    html! {
        h1 { (ctx.t("输入验证码", "Enter the code")) }
        p {
            (ctx.t(
                "如果这个号码可以接收短信，验证码很快就会送达。验证码 10 分钟内有效。",
                "If that number can receive texts, the code is on its way. It works for 10 minutes.",
            ))
        }
        (problem_markup(p))
        form method="post" action="/signin/code" class="stack" {
            (csrf_input(ctx))
            input type="hidden" name="next" value=(next);
            label for="code" { (ctx.t("六位验证码", "Six-digit code")) }
            input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code"
                pattern="[0-9]{6}" maxlength="6" required;
            button id="verify-code" type="submit" { (ctx.t("验证并登录", "Confirm and sign in")) }
        }
        p {
            a href={ "/signin?next=" (encode(next)) } { (ctx.t("没收到？重新获取验证码", "No text? Ask for a new code")) }
        }
    }
}

async fn code_page(ctx: Ctx, headers: HeaderMap, raw: RawQuery) -> Response {
    let next = next_of(&raw);
    if cookie(&headers, CHALLENGE_COOKIE).is_none_or(str::is_empty) {
        return see_other(&format!("/signin?next={}", encode(&next)), &[]);
    }
    page_for(
        &ctx,
        None,
        ctx.t("输入验证码", "Enter the code"),
        code_markup(&ctx, &next, None),
    )
}

#[derive(Debug, Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
    next: Option<String>,
}

async fn verify_code(
    State(s): State<AppState>,
    ctx: Ctx,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    WebForm(f): WebForm<CodeForm>,
) -> Result<Response, WebError> {
    let next = safe_next(f.next.as_deref());
    let Some(challenge) = cookie(&headers, CHALLENGE_COOKIE).filter(|c| !c.is_empty()) else {
        return Ok(see_other(&format!("/signin?next={}", encode(&next)), &[]));
    };
    match s.identity.sign_in(challenge, f.code.trim(), ip).await {
        Ok(signed) => {
            end_previous_session(&s, &ctx).await?;
            let cookies = [
                session_set_cookie(&s, &signed),
                clear_cookie(CHALLENGE_COOKIE),
            ];
            let to = if signed.created {
                format!("/signin/birthdate?next={}", encode(&next))
            } else {
                next
            };
            Ok(see_other(&to, &cookies))
        }
        Err(e) => {
            let p = problem(&ctx, e)?;
            Ok(page_for(
                &ctx,
                Some(&p),
                ctx.t("输入验证码", "Enter the code"),
                code_markup(&ctx, &next, Some(&p)),
            ))
        }
    }
}

#[derive(Debug, Deserialize)]
struct PasswordForm {
    #[serde(default)]
    phone: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

async fn password_sign_in(
    State(s): State<AppState>,
    ctx: Ctx,
    ClientIp(ip): ClientIp,
    WebForm(f): WebForm<PasswordForm>,
) -> Result<Response, WebError> {
    let next = safe_next(f.next.as_deref());
    let result = match PhoneNumber::parse(&f.phone) {
        Ok(phone) => {
            s.identity
                .sign_in_with_password(&phone, &Personal::new(f.password), ip)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(signed) => {
            end_previous_session(&s, &ctx).await?;
            Ok(see_other(&next, &[session_set_cookie(&s, &signed)]))
        }
        Err(e) => sign_in_refused(&s, &ctx, &next, e, true),
    }
}

/// Ends the session and clears its cookie.
async fn sign_out(
    State(s): State<AppState>,
    ctx: Ctx,
    WebForm(_): WebForm<Empty>,
) -> Result<Response, WebError> {
    if let Some(session) = &ctx.session {
        s.identity
            .logout(session)
            .await
            .map_err(|e| WebError::from(e).lang(ctx.lang))?;
    }
    Ok(see_other("/", &[clear_session_cookie()]))
}
