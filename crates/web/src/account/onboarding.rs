//! The optional steps after sign-up (P6, P36): the birth date (`/signin/birthdate`), the
//! guardian's agreement for users under 18 (`/signin/guardian…`), and the profile
//! (`/signin/profile`: nickname, password). Every step can be skipped; a user under 18
//! who skips the guardian step keeps a limited account (basic features only).

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use custos_app::identity::profile::{NewPassword, Nickname};
use custos_app::identity::PhoneNumber;
use custos_http::session::ClientIp;
use custos_http::AppState;
use maud::{html, Markup};
use serde::Deserialize;

use super::{
    clear_cookie, flow_cookie, next_of, page_for, param, problem, problem_markup, see_other,
    Problem,
};
use crate::ctx::{cookie, Ctx};
use crate::error::WebError;
use crate::forms::{csrf_input, encode, safe_next, WebForm};

/// Carries the guardian's challenge id from the phone step to the code step.
pub const GUARDIAN_COOKIE: &str = "__Host-custos-guardian";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/signin/birthdate",
            get(birth_date_page).post(birth_date_post),
        )
        .route("/signin/profile", get(profile_page).post(profile_post))
        .route("/signin/guardian", get(guardian_page).post(guardian_start))
        .route(
            "/signin/guardian/verify",
            get(guardian_verify_page).post(guardian_verify),
        )
        .route("/signin/guardian/done", get(guardian_done))
}

fn with_next(path: &str, next: &str) -> String {
    format!("{path}?next={}", encode(next))
}

// ---------------------------------------------------------------------------------------
// Birth date
// ---------------------------------------------------------------------------------------

fn birth_date_markup(ctx: &Ctx, next: &str, p: Option<&Problem>) -> Markup {
    html! {
        h1 { (ctx.t("您的出生日期（可选）", "Your date of birth (optional)")) }
        p {
            (ctx.t(
                "我们询问出生日期，是为了保护未成年人：未满 18 岁的用户需要监护人同意后才能使用更多功能。成年人的出生日期本身不会保存，我们只记录您是否成年。",
                "We ask so we can protect young people: users under 18 need a guardian's agreement before using more than the basic features. For adults we do not keep the date itself, only that you are an adult.",
            ))
        }
        (problem_markup(p))
        form method="post" action="/signin/birthdate" class="stack" {
            (csrf_input(ctx))
            input type="hidden" name="next" value=(next);
            label for="birth-date" { (ctx.t("出生日期", "Date of birth")) }
            input id="birth-date" name="birth_date" type="date" autocomplete="bday"
                aria-describedby="birth-date-hint";
            p id="birth-date-hint" class="muted" { (ctx.t("格式：年-月-日", "Format: year-month-day")) }
            div class="actions" {
                button id="birth-date-submit" type="submit" name="action" value="save" {
                    (ctx.t("继续", "Continue"))
                }
                button id="birth-date-skip" type="submit" name="action" value="skip"
                    class="secondary" formnovalidate {
                    (ctx.t("跳过", "Skip"))
                }
            }
        }
    }
}

async fn birth_date_page(ctx: Ctx, raw: RawQuery) -> Result<Response, WebError> {
    ctx.require_user()?;
    let next = next_of(&raw);
    Ok(page_for(
        &ctx,
        None,
        ctx.t("出生日期", "Date of birth"),
        birth_date_markup(&ctx, &next, None),
    ))
}

#[derive(Debug, Deserialize)]
struct BirthDateForm {
    birth_date: Option<String>,
    action: Option<String>,
    next: Option<String>,
}

async fn birth_date_post(
    State(s): State<AppState>,
    ctx: Ctx,
    WebForm(f): WebForm<BirthDateForm>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let next = safe_next(f.next.as_deref());
    let date = f.birth_date.as_deref().map(str::trim).unwrap_or("");
    if f.action.as_deref() == Some("skip") || date.is_empty() {
        return Ok(see_other(&with_next("/signin/profile", &next), &[]));
    }
    match s.identity.declare_birth_date(session.subject, date).await {
        Ok(band) if band != "adult" => Ok(see_other(&with_next("/signin/guardian", &next), &[])),
        Ok(_) => Ok(see_other(&with_next("/signin/profile", &next), &[])),
        Err(e) => {
            let p = problem(&ctx, e)?;
            Ok(page_for(
                &ctx,
                Some(&p),
                ctx.t("出生日期", "Date of birth"),
                birth_date_markup(&ctx, &next, Some(&p)),
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Profile
// ---------------------------------------------------------------------------------------

fn profile_markup(ctx: &Ctx, next: &str, p: Option<&Problem>) -> Markup {
    html! {
        h1 { (ctx.t("个人资料（可选）", "Your profile (optional)")) }
        p {
            (ctx.t(
                "昵称和密码都不是必需的：不填写也能使用全部基本功能。以后可以在隐私中心修改或删除。",
                "Neither a nickname nor a password is needed: every basic feature works without them. You can change or delete them later in the privacy center.",
            ))
        }
        (problem_markup(p))
        form method="post" action="/signin/profile" class="stack" {
            (csrf_input(ctx))
            input type="hidden" name="next" value=(next);
            label for="nickname" { (ctx.t("昵称", "Nickname")) }
            input id="nickname" name="nickname" type="text" autocomplete="nickname" maxlength="64";
            label for="new-password" { (ctx.t("密码（至少 8 个字符）", "Password (at least 8 characters)")) }
            input id="new-password" name="password" type="password" autocomplete="new-password"
                maxlength="256";
            div class="actions" {
                button id="profile-save" type="submit" name="action" value="save" { (ctx.t("保存", "Save")) }
                button id="profile-skip" type="submit" name="action" value="skip" class="secondary"
                    formnovalidate { (ctx.t("跳过", "Skip")) }
            }
        }
    }
}

async fn profile_page(ctx: Ctx, raw: RawQuery) -> Result<Response, WebError> {
    ctx.require_user()?;
    let next = next_of(&raw);
    Ok(page_for(
        &ctx,
        None,
        ctx.t("个人资料", "Profile"),
        profile_markup(&ctx, &next, None),
    ))
}

#[derive(Debug, Deserialize)]
struct ProfileForm {
    nickname: Option<String>,
    password: Option<String>,
    action: Option<String>,
    next: Option<String>,
}

async fn profile_post(
    State(s): State<AppState>,
    ctx: Ctx,
    WebForm(f): WebForm<ProfileForm>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let next = safe_next(f.next.as_deref());
    if f.action.as_deref() == Some("skip") {
        return Ok(see_other(&next, &[]));
    }
    let nick = f.nickname.as_deref().map(str::trim).unwrap_or("");
    let pw = f.password.as_deref().unwrap_or("");
    let result = async {
        // Both checked before either is stored.
        let nick = (!nick.is_empty())
            .then(|| Nickname::parse(nick))
            .transpose()?;
        let pw = (!pw.is_empty())
            .then(|| NewPassword::parse(pw))
            .transpose()?;
        let proof = match &pw {
            Some(_) => Some(s.identity.reauthenticated(session)?),
            None => None,
        };
        if let Some(n) = &nick {
            s.identity.set_nickname(session.subject, n).await?;
            s.rights
                .record_correction(session.subject, "nickname", "nickname")
                .await?;
        }
        if let (Some(pw), Some(proof)) = (&pw, &proof) {
            s.identity.set_password(proof, pw).await?;
        }
        Ok::<(), custos_app::AppError>(())
    }
    .await;
    match result {
        Ok(()) => Ok(see_other(&next, &[])),
        Err(e) => {
            let p = problem(&ctx, e)?;
            Ok(page_for(
                &ctx,
                Some(&p),
                ctx.t("个人资料", "Profile"),
                profile_markup(&ctx, &next, Some(&p)),
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Guardian (P36)
// ---------------------------------------------------------------------------------------

async fn guardian_markup(
    s: &AppState,
    ctx: &Ctx,
    next: &str,
    p: Option<&Problem>,
) -> Result<Markup, WebError> {
    let session = ctx.require_user()?;
    let account = s
        .identity
        .account(session.subject)
        .await
        .map_err(|e| WebError::from(e).lang(ctx.lang))?;
    let continue_to = with_next("/signin/profile", next);
    if account.age_band == "adult" {
        return Ok(html! {
            h1 { (ctx.t("无需监护人同意", "No guardian needed")) }
            p { (ctx.t("您的账号不需要监护人同意。", "Your account does not need a guardian's agreement.")) }
            p { a href=(continue_to) { (ctx.t("继续", "Continue")) } }
        });
    }
    if account.guardian_consent {
        return Ok(html! {
            h1 { (ctx.t("监护人已同意", "Your guardian has agreed")) }
            p { (ctx.t("您的监护人已经同意，您的账号可以正常使用。", "Your guardian has agreed; your account works normally.")) }
            p { a href=(continue_to) { (ctx.t("继续", "Continue")) } }
        });
    }
    let screen = s
        .identity
        .guardian_screen(session.subject)
        .await
        .map_err(|e| WebError::from(e).lang(ctx.lang))?;
    Ok(html! {
        h1 id="guardian-title" { (ctx.t("需要监护人同意", "A guardian needs to agree")) }
        p id="guardian-needed" class="notice" {
            (ctx.t(
                "您未满 18 岁。在父母或其他监护人同意之前，您的账号只能使用基本功能，我们也不会请您同意其他用途。",
                "You are under 18. Until a parent or other guardian agrees, your account can use the basic features only, and we will not ask you to agree to anything else.",
            ))
        }
        @if screen.sensitive {
            p {
                (ctx.t(
                    "不满 14 周岁儿童的个人信息属于敏感个人信息，我们会更严格地保护。",
                    "The personal data of children under 14 counts as sensitive, and we protect it more strictly.",
                ))
            }
        }
        h2 { (ctx.t("监护人同意后，账号会用于", "Once your guardian agrees, the account is used for")) }
        ul class="guardian-purposes" {
            @for sp in &screen.purposes {
                li data-purpose=(sp.purpose) {
                    (match ctx.lang { custos_policy::Lang::En => &sp.name_en, custos_policy::Lang::Zh => &sp.name_zh })
                    " "
                    @if sp.basic {
                        span class="badge" { (ctx.t("基本功能", "basic feature")) }
                    } @else {
                        span class="badge" { (ctx.t("可选：之后仍需单独同意", "optional: still asked separately later")) }
                    }
                }
            }
        }
        h2 { (ctx.t("请监护人操作", "For your guardian")) }
        p {
            (ctx.t(
                "请监护人输入他们自己的手机号，我们会向该号码发送验证码。",
                "Ask your guardian to enter their own mobile number; we will text a code to it.",
            ))
        }
        (problem_markup(p))
        form method="post" action="/signin/guardian" class="stack" {
            (csrf_input(ctx))
            input type="hidden" name="next" value=(next);
            label for="guardian-phone" { (ctx.t("监护人的手机号", "Guardian's mobile number")) }
            input id="guardian-phone" name="phone" type="tel" inputmode="tel" required maxlength="32";
            button id="guardian-send" type="submit" { (ctx.t("发送验证码给监护人", "Text the code to my guardian")) }
        }
        p { a href=(continue_to) { (ctx.t("以后再说（账号保持受限）", "Later (the account stays limited)")) } }
    })
}

async fn guardian_page(
    State(s): State<AppState>,
    ctx: Ctx,
    raw: RawQuery,
) -> Result<Response, WebError> {
    let next = next_of(&raw);
    let body = guardian_markup(&s, &ctx, &next, None).await?;
    Ok(page_for(
        &ctx,
        None,
        ctx.t("监护人同意", "Guardian's agreement"),
        body,
    ))
}

#[derive(Debug, Deserialize)]
struct GuardianPhoneForm {
    #[serde(default)]
    phone: String,
    next: Option<String>,
}

async fn guardian_start(
    State(s): State<AppState>,
    ctx: Ctx,
    ClientIp(ip): ClientIp,
    WebForm(f): WebForm<GuardianPhoneForm>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let next = safe_next(f.next.as_deref());
    let started = match PhoneNumber::parse(&f.phone) {
        Ok(phone) => {
            s.identity
                .start_guardian_consent(session.subject, &phone, ip)
                .await
        }
        Err(e) => Err(e),
    };
    match started {
        Ok(c) => Ok(see_other(
            &with_next("/signin/guardian/verify", &next),
            &[flow_cookie(
                GUARDIAN_COOKIE,
                &c.challenge_id,
                c.expires_in_secs,
            )],
        )),
        Err(e) => {
            let p = problem(&ctx, e)?;
            let body = guardian_markup(&s, &ctx, &next, Some(&p)).await?;
            Ok(page_for(
                &ctx,
                Some(&p),
                ctx.t("监护人同意", "Guardian's agreement"),
                body,
            ))
        }
    }
}

fn guardian_verify_markup(ctx: &Ctx, next: &str, p: Option<&Problem>) -> Markup {
    html! {
        h1 { (ctx.t("监护人确认", "Guardian's confirmation")) }
        p {
            (ctx.t(
                "请监护人输入收到的验证码和孩子的出生日期，并确认同意。孩子的出生日期在监护人同意后才会保存。",
                "Guardian: enter the code you received and the child's date of birth, then confirm. The date of birth is stored only once you agree.",
            ))
        }
        (problem_markup(p))
        form method="post" action="/signin/guardian/verify" class="stack" {
            (csrf_input(ctx))
            input type="hidden" name="next" value=(next);
            label for="guardian-code" { (ctx.t("监护人收到的验证码", "Code the guardian received")) }
            input id="guardian-code" name="code" type="text" inputmode="numeric"
                autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required;
            label for="guardian-birth-date" { (ctx.t("孩子的出生日期", "The child's date of birth")) }
            input id="guardian-birth-date" name="birth_date" type="date" required;
            div class="check" {
                input id="guardian-agree" name="agree" type="checkbox" value="yes";
                label for="guardian-agree" {
                    (ctx.t(
                        "我是这位用户的父母或其他监护人，已阅读上一页列出的用途，同意其使用这个账号。",
                        "I am this user's parent or other guardian, I have read the uses listed on the previous page, and I agree to them using this account.",
                    ))
                }
            }
            button id="guardian-submit" type="submit" { (ctx.t("确认同意", "Confirm my agreement")) }
        }
    }
}

async fn guardian_verify_page(
    ctx: Ctx,
    headers: HeaderMap,
    raw: RawQuery,
) -> Result<Response, WebError> {
    ctx.require_user()?;
    let next = next_of(&raw);
    if cookie(&headers, GUARDIAN_COOKIE).is_none_or(str::is_empty) {
        return Ok(see_other(&with_next("/signin/guardian", &next), &[]));
    }
    Ok(page_for(
        &ctx,
        None,
        ctx.t("监护人确认", "Guardian's confirmation"),
        guardian_verify_markup(&ctx, &next, None),
    ))
}

#[derive(Debug, Deserialize)]
struct GuardianCodeForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    birth_date: String,
    agree: Option<String>,
    next: Option<String>,
}

async fn guardian_verify(
    State(s): State<AppState>,
    ctx: Ctx,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    WebForm(f): WebForm<GuardianCodeForm>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let next = safe_next(f.next.as_deref());
    let Some(challenge) = cookie(&headers, GUARDIAN_COOKIE).filter(|c| !c.is_empty()) else {
        return Ok(see_other(&with_next("/signin/guardian", &next), &[]));
    };
    let result = if f.agree.as_deref() != Some("yes") {
        Err(custos_app::AppError::bad(
            "agreement_required",
            "the guardian must agree to continue",
        ))
    } else {
        s.identity
            .finish_guardian_consent(
                session.subject,
                challenge,
                f.code.trim(),
                f.birth_date.trim(),
                ip,
            )
            .await
    };
    match result {
        Ok(r) => Ok(see_other(
            &format!(
                "/signin/guardian/done?receipt={}&next={}",
                r.receipt_id,
                encode(&next)
            ),
            &[clear_cookie(GUARDIAN_COOKIE)],
        )),
        Err(e) => {
            let p = problem(&ctx, e)?;
            Ok(page_for(
                &ctx,
                Some(&p),
                ctx.t("监护人确认", "Guardian's confirmation"),
                guardian_verify_markup(&ctx, &next, Some(&p)),
            ))
        }
    }
}

async fn guardian_done(ctx: Ctx, raw: RawQuery) -> Result<Response, WebError> {
    ctx.require_user()?;
    let next = next_of(&raw);
    let receipt = param(&raw, "receipt").and_then(|r| uuid::Uuid::parse_str(&r).ok());
    let body = html! {
        h1 { (ctx.t("监护人已同意", "Your guardian has agreed")) }
        p class="notice" role="status" {
            (ctx.t("同意已记录。您的账号现在可以正常使用；其他可选用途仍会单独询问。",
                   "The agreement is recorded. Your account now works normally; optional uses are still asked about one by one."))
        }
        @if let Some(r) = receipt {
            p { a id="receipt-link" href={ "/receipts/" (r) } { (ctx.t("查看同意回执", "See the consent receipt")) } }
        }
        p { a href=(with_next("/signin/profile", &next)) { (ctx.t("继续", "Continue")) } }
    };
    Ok(page_for(
        &ctx,
        None,
        ctx.t("监护人已同意", "Guardian agreed"),
        body,
    ))
}
