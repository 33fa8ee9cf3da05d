//! `/console`: the staff sign-in (password and TOTP code, both required) when signed
//! out, else the dashboard. Each panel is shown to the roles whose permission covers it,
//! and each shown panel is an audited permission decision (`GET /console`).

use crate::extract::Query;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use custos_app::ops::subjects::MIN_REPORTED_COUNT;
use custos_app::ops::Permission;
use custos_app::AppError;
use custos_core::Personal;
use custos_http::session::ClientIp;
use custos_http::AppState;
use maud::{html, Markup};
use serde::Deserialize;

use super::charts::{bars, Series};
use super::{
    allow, app_err, form_bytes, parse_form, see_other, shell, shell_with_status, ConsoleForm,
    MaybeStaff, Staff, STAFF_COOKIE,
};
use crate::ctx::Ctx;
use crate::error::WebError;
use crate::forms::{safe_next, Empty};

/// Days the dashboard charts cover.
pub const CHART_DAYS: u32 = 14;

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    pub next: Option<String>,
}

/// Where to go after signing in: a console page only.
fn console_next(next: Option<&str>) -> String {
    let n = safe_next(next);
    if n == "/console" || n.starts_with("/console/") || n.starts_with("/console?") {
        n
    } else {
        "/console".to_owned()
    }
}

pub async fn page(
    State(s): State<AppState>,
    ctx: Ctx,
    MaybeStaff(staff): MaybeStaff,
    Query(q): Query<NextQuery>,
) -> Result<Response, WebError> {
    match staff {
        None => Ok(sign_in_page(
            &ctx,
            StatusCode::OK,
            None,
            "",
            &console_next(q.next.as_deref()),
        )),
        Some(st) => dashboard(&s, &ctx, &st).await,
    }
}

fn sign_in_page(
    ctx: &Ctx,
    status: StatusCode,
    error: Option<&str>,
    username: &str,
    next: &str,
) -> Response {
    let body = html! {
        section class="console-signin" aria-labelledby="staff-signin-heading" {
            h1 id="staff-signin-heading" { (ctx.t("运营控制台登录", "Operator console sign-in")) }
            p { (ctx.t(
                "仅限工作人员。需要用户名、密码和身份验证器应用中的一次性验证码。",
                "Staff only. You need your username, your password and the one-time code from your authenticator app."
            )) }
            @if let Some(e) = error {
                p class="error" role="alert" id="staff-signin-error" { (e) }
            }
            form method="post" action="/console/signin" class="stack" {
                input type="hidden" name="next" value=(next);
                label for="staff-username" { (ctx.t("用户名", "Username")) }
                input id="staff-username" name="username" type="text" autocomplete="username"
                    required maxlength="32" value=(username);
                label for="staff-password" { (ctx.t("密码", "Password")) }
                input id="staff-password" name="password" type="password"
                    autocomplete="current-password" required maxlength="128";
                label for="staff-totp" { (ctx.t("一次性验证码（6 位）", "One-time code (6 digits)")) }
                input id="staff-totp" name="totp" type="text" inputmode="numeric"
                    autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required;
                button type="submit" id="staff-signin" { (ctx.t("登录", "Sign in")) }
            }
        }
    };
    shell_with_status(
        ctx,
        None,
        status,
        ctx.t("控制台登录", "Console sign-in"),
        body,
    )
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub totp: String,
    pub next: Option<String>,
}

/// Signs a staff member in through the same use case as the API; sets [`STAFF_COOKIE`].
/// A staff session this browser already had ends: its cookie is replaced, and a replaced
/// cookie must not leave a live session behind.
pub async fn sign_in(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    req: Request,
) -> Result<Response, WebError> {
    let (ctx, mut parts, bytes) = form_bytes(req, &s, 8 * 1024).await?;
    let MaybeStaff(previous) = MaybeStaff::from_request_parts(&mut parts, &s)
        .await
        .map_err(|e| e.lang(ctx.lang))?;
    let f: SignInForm = parse_form(&ctx, &bytes)?;
    let next = console_next(f.next.as_deref());
    let code = Some(f.totp.as_str()).filter(|c| !c.trim().is_empty());
    match s
        .ops
        .sign_in(&f.username, &Personal::new(f.password), code, ip)
        .await
    {
        Ok(session) => {
            if let Some(old) = previous {
                match s.ops.sign_out(&old.token).await {
                    Ok(()) | Err(AppError::Unauthenticated) => {}
                    Err(e) => return Err(app_err(&ctx)(e)),
                }
            }
            let now = s.kernel.clock.now_ms();
            let max_age = ((session.expires_at_ms - now) / 1000).max(1);
            let mut resp = see_other(&next);
            let cookie = format!(
                "{STAFF_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}",
                session.token.expose()
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            Ok(resp)
        }
        Err(AppError::Throttled {
            code,
            retry_after_secs,
        }) => {
            let minutes = retry_after_secs.div_ceil(60).max(1);
            // `staff_locked`: this account; `staff_sign_in_throttled`: this address.
            let per_address = code == "staff_sign_in_throttled";
            let msg = match (ctx.lang, per_address) {
                (custos_policy::Lang::Zh, false) => format!(
                    "登录失败次数过多，此账号已暂时锁定。请在 {minutes} 分钟后再试。"
                ),
                (custos_policy::Lang::En, false) => format!(
                    "Too many failed sign-ins: this account is locked for now. Try again in {minutes} minute(s)."
                ),
                (custos_policy::Lang::Zh, true) => format!(
                    "此网络地址的登录失败次数过多。请在 {minutes} 分钟后再试。"
                ),
                (custos_policy::Lang::En, true) => format!(
                    "Too many failed sign-ins from this network address. Try again in {minutes} minute(s)."
                ),
            };
            let mut resp = sign_in_page(
                &ctx,
                StatusCode::TOO_MANY_REQUESTS,
                Some(&msg),
                &f.username,
                &next,
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(resp)
        }
        Err(e) => {
            let (status, msg) = match e.code() {
                "totp_required" => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ctx.t(
                        "请输入身份验证器应用中的一次性验证码。",
                        "Enter the one-time code from your authenticator app.",
                    ),
                ),
                "totp_replayed" => (
                    StatusCode::UNAUTHORIZED,
                    ctx.t(
                        "这个验证码已经用过了，请等待下一个验证码。",
                        "That code was already used; wait for the next one.",
                    ),
                ),
                "invalid_credentials" => (
                    StatusCode::UNAUTHORIZED,
                    ctx.t(
                        "用户名、密码或验证码不正确。多次失败后账号会被暂时锁定。",
                        "The username, password or code is wrong. Repeated failures lock the account for a while.",
                    ),
                ),
                _ => return Err(WebError::from(e).lang(ctx.lang)),
            };
            Ok(sign_in_page(&ctx, status, Some(msg), &f.username, &next))
        }
    }
}

/// Ends the staff session and clears the cookie.
pub async fn sign_out(
    State(s): State<AppState>,
    f: ConsoleForm<Empty>,
) -> Result<Response, WebError> {
    match s.ops.sign_out(&f.staff.token).await {
        Ok(()) | Err(AppError::Unauthenticated) => {}
        Err(e) => return Err(app_err(&f.ctx)(e)),
    }
    let mut resp = see_other("/console");
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-custos-staff=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    Ok(resp.into_response())
}

fn stat(label: &str, value: i64, id: &str, alert: Option<&str>) -> Markup {
    html! {
        div class="stat" id=(id) {
            span class="stat-value" { (value) }
            span class="stat-label" { (label) }
            @if let Some(a) = alert {
                @if value > 0 { strong class="alert-text" { " ⚠ " (a) } }
            }
        }
    }
}

async fn dashboard(s: &AppState, ctx: &Ctx, st: &Staff) -> Result<Response, WebError> {
    let target = "GET /console";
    let stats = st.can(Permission::StatsRead);
    let tickets = st.can(Permission::RightsTicketsRead);
    let incidents = st.can(Permission::IncidentsManage);
    // Each panel shown is a permission decision, recorded like any operator read.
    for (held, p) in [
        (stats, Permission::StatsRead),
        (tickets, Permission::RightsTicketsRead),
        (incidents, Permission::IncidentsManage),
    ] {
        if held {
            allow(s, ctx, st, p, target).await?;
        }
    }
    let d = s.ops.dashboard(CHART_DAYS).await.map_err(app_err(ctx))?;
    let days: Vec<String> = d.ingest.iter().map(|i| super::day(i.day_ms)).collect();
    let suppressed = format!("<{MIN_REPORTED_COUNT}");
    let policy = s.kernel.gate.regime().current().clone();
    let purpose_name = |id: &str| {
        policy
            .purposes()
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.name.get(ctx.lang).to_owned())
            .unwrap_or_else(|| id.to_owned())
    };
    let body = html! {
        h1 { (ctx.t("运营概览", "Operations dashboard")) }
        div id="dashboard" {
            @if !(stats || tickets || incidents) {
                p { (ctx.t(
                    "你的角色不包含概览中的任何数据。请使用上方导航进入你有权限的页面。",
                    "Your role covers none of the dashboard's figures. Use the navigation above for the pages your role allows."
                )) }
            }
            @if tickets || incidents {
                section class="stats" aria-labelledby="stats-heading" {
                    h2 id="stats-heading" { (ctx.t("待处理事项", "Needs attention")) }
                    div class="stat-row" {
                        @if tickets {
                            (stat(ctx.t("未结工单", "Open tickets"), d.open_tickets, "stat-open-tickets", None))
                            (stat(ctx.t("已逾期工单", "Overdue tickets"), d.overdue_tickets, "stat-overdue-tickets", Some(ctx.t("已逾期", "overdue"))))
                        }
                        @if incidents {
                            (stat(ctx.t("未报告的安全事件", "Incidents not yet reported"), d.open_incidents, "stat-open-incidents", None))
                            (stat(ctx.t("超过 72 小时未报告", "Past 72 hours without a report"), d.alarmed_incidents, "stat-alarmed-incidents", Some(ctx.t("警报", "alarm"))))
                        }
                    }
                }
            }
            @if stats {
                section aria-labelledby="consent-heading" {
                    h2 id="consent-heading" { (ctx.t("各目的的同意情况（按天）", "Consent decisions per purpose, by day")) }
                    p class="hint" { (ctx.t(
                        "少于 5 的数字不显示，以免指向个人。",
                        "Counts below 5 are not shown, so no figure points at one person."
                    )) }
                    @for series in &d.consents {
                        @let name = purpose_name(&series.purpose);
                        @let given: Vec<Option<i64>> = series.days.iter().map(|x| x.given).collect();
                        @let other: Vec<Option<i64>> = series.days.iter().map(|x| x.not_given).collect();
                        div class="chart-block" data-purpose=(series.purpose) {
                            h3 { (name) " " code { (series.purpose) } }
                            (bars(
                                &format!("chart-consent-{}", series.purpose),
                                &format!("{} — {}", name, ctx.t("同意与拒绝/撤回", "given vs refused or withdrawn")),
                                ctx.t(
                                    "最近 14 天每天记录的同意（实心）与拒绝或撤回（斜线）数量。",
                                    "Consents given (solid) and refusals or withdrawals (striped) recorded each day over the last 14 days."
                                ),
                                ctx.t("日期", "Day"),
                                &days,
                                &[
                                    Series { key: "given", label: ctx.t("同意", "Given").to_owned(), values: given },
                                    Series { key: "refused", label: ctx.t("拒绝或撤回", "Refused or withdrawn").to_owned(), values: other },
                                ],
                                &suppressed,
                            ))
                        }
                    }
                }
                section aria-labelledby="ingest-heading" {
                    h2 id="ingest-heading" { (ctx.t("目录导入量（按天）", "Catalog ingest per day")) }
                    (bars(
                        "chart-ingest",
                        ctx.t("每天写入的目录条目", "Catalog items written per day"),
                        ctx.t("最近 14 天每天导入、修改或删除的目录条目数。", "Catalog items imported, edited or deleted each day over the last 14 days."),
                        ctx.t("日期", "Day"),
                        &days,
                        &[Series { key: "items", label: ctx.t("条目", "Items").to_owned(), values: d.ingest.iter().map(|i| Some(i.items)).collect() }],
                        &suppressed,
                    ))
                }
            }
        }
    };
    Ok(shell(ctx, Some(st), ctx.t("运营概览", "Dashboard"), body))
}
