//! The operator console (`/console`, issue 8 point 6; P24, P25, P29, L6).
//!
//! Staff are not users: they sign in with username, password and TOTP code through the
//! same use case as `POST /api/v1/staff/sessions` ([`custos_app::ops::Ops::sign_in`]),
//! and the staff session lives in its own cookie, [`STAFF_COOKIE`] (HttpOnly, Secure,
//! SameSite=Strict, Path=/); the user session cookie never opens the console. Every page
//! checks the caller's role with [`custos_app::ops::Ops::authorize`], the check behind the
//! API's `operator` guard, which writes the decision (allowed or denied) to the audit log;
//! a page the role may not see answers 403. Reads of one user's data name a ticket or
//! purpose and are audited by [`custos_app::ops::Ops::subject_data`], as in the API.
//!
//! Console forms carry a CSRF token derived from the staff session token (a keyed hash
//! under the installation's keyring, see [`Staff::csrf`]), checked by [`ConsoleForm`]
//! together with the same-origin check; a POST without it answers 403.
//!
//! ## Layout
//! - [`dashboard`]: `/console`, sign-in or the dashboard with server-drawn SVG charts
//!   ([`charts`]).
//! - [`tickets`]: rights tickets and complaints with deadlines.
//! - [`subjects`]: one user's data for a named ticket or purpose.
//! - [`incidents`]: incidents, affected users, notices, timeline, the 72-hour alarm.
//! - [`partners`]: the partner registry and the share log.
//! - [`policy`]: published versions, diffs, publishing a new declaration.
//! - [`staff`]: staff accounts and roles.
//! - [`audit`]: the audit log with its verification status.

pub mod audit;
pub mod charts;
pub mod dashboard;
pub mod incidents;
pub mod partners;
pub mod policy;
pub mod staff;
pub mod subjects;
pub mod tickets;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use custos_app::ops::{Actor, Permission, StaffMember};
use custos_app::AppError;
use custos_http::AppState;
use maud::{html, Markup};
use serde::de::DeserializeOwned;

use crate::ctx::{cookie, Ctx};
use crate::error::WebError;
use crate::forms::{check_csrf, CSRF_FIELD};

/// The staff session cookie (never the user session's).
pub const STAFF_COOKIE: &str = "__Host-custos-staff";

/// Largest console form body by default; the policy form has its own, larger limit.
pub const MAX_CONSOLE_FORM: usize = 64 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(dashboard::page))
        .route("/console/signin", post(dashboard::sign_in))
        .route("/console/signout", post(dashboard::sign_out))
        .route("/console/tickets", get(tickets::page))
        .route("/console/tickets/{id}/decide", post(tickets::decide))
        .route("/console/tickets/{id}/answer", post(tickets::answer))
        .route(
            "/console/subjects",
            get(subjects::page).post(subjects::read),
        )
        .route(
            "/console/incidents",
            get(incidents::index).post(incidents::create),
        )
        .route("/console/incidents/{id}", get(incidents::detail))
        .route(
            "/console/incidents/{id}/affected",
            post(incidents::affected),
        )
        .route("/console/incidents/{id}/notify", post(incidents::notify))
        .route(
            "/console/incidents/{id}/timeline",
            post(incidents::add_action),
        )
        .route(
            "/console/incidents/{id}/regulator-report",
            post(incidents::regulator_report),
        )
        .route("/console/partners", get(partners::page))
        .route("/console/policy", get(policy::page).post(policy::publish))
        .route("/console/staff", get(staff::page).post(staff::create))
        .route("/console/staff/{username}", post(staff::update))
        .route("/console/audit", get(audit::page))
}

/// A signed-in staff member, from [`STAFF_COOKIE`].
#[derive(Debug, Clone)]
pub struct Staff {
    pub member: StaffMember,
    token: String,
    /// The CSRF token of this session: a keyed hash of the session token, so it is
    /// unguessable without the cookie and needs no storage of its own.
    pub csrf: String,
}

impl Staff {
    pub fn actor(&self) -> Actor {
        Actor::Staff(self.member.clone())
    }
    pub fn can(&self, p: Permission) -> bool {
        self.member.role.can(p)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The staff session of a request, if any (an unknown, expired or idle token counts as
/// signed out).
#[derive(Debug, Clone)]
pub struct MaybeStaff(pub Option<Staff>);

impl FromRequestParts<AppState> for MaybeStaff {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, WebError> {
        if let Some(m) = parts.extensions.get::<MaybeStaff>() {
            return Ok(m.clone());
        }
        let found = match cookie(&parts.headers, STAFF_COOKIE) {
            Some(token) => match s.ops.authenticate_staff(token).await {
                Ok(member) => Some(Staff {
                    member,
                    csrf: hex(&s.kernel.ring.pseudonym("console-csrf", token.as_bytes())),
                    token: token.to_owned(),
                }),
                Err(AppError::Unauthenticated) => None,
                Err(e) => return Err(WebError::from(e)),
            },
            None => None,
        };
        let m = MaybeStaff(found);
        parts.extensions.insert(m.clone());
        Ok(m)
    }
}

/// The staff member, or a redirect to the console's sign-in that comes back to `ctx.path`.
pub fn require(staff: Option<Staff>, ctx: &Ctx) -> Result<Staff, WebError> {
    staff.ok_or_else(|| {
        let mut e = WebError::new(StatusCode::SEE_OTHER, "unauthenticated", "sign in as staff");
        e.location = Some(format!("/console?next={}", crate::forms::encode(&ctx.path)));
        e
    })
}

/// The page check: the staff member's role must hold `perm`; the decision is written to
/// the audit log either way (the same use case as the API's operator guard). `target` is
/// the method and path, as the API records it.
pub async fn allow(
    s: &AppState,
    ctx: &Ctx,
    staff: &Staff,
    perm: Permission,
    target: &str,
) -> Result<Actor, WebError> {
    let actor = staff.actor();
    let allowed = s
        .ops
        .authorize(&actor, perm, target)
        .await
        .map_err(|e| WebError::from(e).lang(ctx.lang))?;
    if allowed {
        Ok(actor)
    } else {
        Err(forbidden(ctx, perm))
    }
}

/// [`require`] then [`allow`]: the staff member a console page is for, whose role holds
/// `perm`.
pub async fn require_allowed(
    s: &AppState,
    ctx: &Ctx,
    staff: Option<Staff>,
    perm: Permission,
    target: &str,
) -> Result<Staff, WebError> {
    let st = require(staff, ctx)?;
    allow(s, ctx, &st, perm, target).await?;
    Ok(st)
}

pub fn forbidden(ctx: &Ctx, perm: Permission) -> WebError {
    WebError::new(
        StatusCode::FORBIDDEN,
        "permission_denied",
        format!(
            "{} (`{}`)",
            ctx.t(
                "你的角色没有查看或执行此操作的权限",
                "Your role does not allow this page or action"
            ),
            perm.as_str()
        ),
    )
    .lang(ctx.lang)
}

/// A use case's refusal as a page, in the caller's language.
pub fn app_err(ctx: &Ctx) -> impl Fn(AppError) -> WebError + '_ {
    move |e| WebError::from(e).lang(ctx.lang)
}

/// The hidden CSRF field of console forms.
pub fn csrf_input(staff: &Staff) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(staff.csrf); }
}

/// A posted console form: from this origin, carrying the staff session's CSRF token,
/// at most `MAX` bytes, deserialized into `T`.
#[derive(Debug)]
pub struct ConsoleForm<T, const MAX: usize = MAX_CONSOLE_FORM> {
    pub ctx: Ctx,
    pub staff: Staff,
    pub form: T,
}

/// Reads a form body from this origin (no CSRF check): the parts of [`ConsoleForm`]
/// also used by the sign-in form, which has no session yet.
async fn form_bytes(
    req: Request,
    s: &AppState,
    max: usize,
) -> Result<(Ctx, Parts, Bytes), WebError> {
    crate::forms::read_form(req, s, max, false).await
}

fn parse_form<T: DeserializeOwned>(ctx: &Ctx, bytes: &[u8]) -> Result<T, WebError> {
    serde_urlencoded::from_bytes::<T>(bytes).map_err(|e| {
        WebError::new(
            StatusCode::BAD_REQUEST,
            "invalid_form",
            format!("{}: {e}", ctx.t("表单内容有误", "The form is malformed")),
        )
        .lang(ctx.lang)
    })
}

impl<T, const MAX: usize> ConsoleForm<T, MAX> {
    /// [`allow`] for the staff member who sent the form.
    pub async fn allow(
        &self,
        s: &AppState,
        perm: Permission,
        target: &str,
    ) -> Result<Actor, WebError> {
        allow(s, &self.ctx, &self.staff, perm, target).await
    }
}

impl<T: DeserializeOwned + Send, const MAX: usize> FromRequest<AppState> for ConsoleForm<T, MAX> {
    type Rejection = WebError;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, WebError> {
        let (ctx, mut parts, bytes) = form_bytes(req, s, MAX).await?;
        let MaybeStaff(staff) = MaybeStaff::from_request_parts(&mut parts, s)
            .await
            .map_err(|e| e.lang(ctx.lang))?;
        let Some(staff) = staff else {
            return Err(WebError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                ctx.t(
                    "请先以工作人员身份登录控制台。",
                    "Sign in to the console as staff first.",
                ),
            )
            .lang(ctx.lang));
        };
        check_csrf(&ctx, &bytes, &staff.csrf)?;
        let form = parse_form(&ctx, &bytes)?;
        Ok(ConsoleForm { ctx, staff, form })
    }
}

/// The console's links: (path, Chinese, English, the permission the page needs).
pub const SECTIONS: [(&str, &str, &str, Option<Permission>); 8] = [
    ("/console", "概览", "Dashboard", None),
    (
        "/console/tickets",
        "工单与投诉",
        "Tickets and complaints",
        Some(Permission::RightsTicketsRead),
    ),
    (
        "/console/subjects",
        "用户数据查阅",
        "User data lookup",
        Some(Permission::SubjectDataRead),
    ),
    (
        "/console/incidents",
        "安全事件",
        "Incidents",
        Some(Permission::IncidentsManage),
    ),
    (
        "/console/partners",
        "合作方与共享",
        "Partners and shares",
        Some(Permission::PartnersShare),
    ),
    (
        "/console/policy",
        "政策版本",
        "Policy versions",
        Some(Permission::PolicyManage),
    ),
    (
        "/console/staff",
        "工作人员与角色",
        "Staff and roles",
        Some(Permission::StaffRead),
    ),
    (
        "/console/audit",
        "审计日志",
        "Audit log",
        Some(Permission::AuditRead),
    ),
];

/// A console page: the site shell with the console's navigation, never cached.
pub fn shell(ctx: &Ctx, staff: Option<&Staff>, title: &str, body: Markup) -> Response {
    shell_with_status(ctx, staff, StatusCode::OK, title, body)
}

pub fn shell_with_status(
    ctx: &Ctx,
    staff: Option<&Staff>,
    status: StatusCode,
    title: &str,
    body: Markup,
) -> Response {
    // The visitor dialogs (first-visit consent, re-consent) do not belong on staff pages.
    let mut ctx = ctx.clone();
    ctx.consent_prompt = false;
    ctx.pending_reconsent.clear();
    let current = ctx.path.split('?').next().unwrap_or("").to_owned();
    let markup = html! {
        div class="console" {
            @if let Some(st) = staff {
                div class="console-bar" {
                    p class="console-who" {
                        (ctx.t("工作人员：", "Staff: ")) strong { (st.member.username) }
                        " · " (ctx.t("角色：", "Role: ")) span class="console-role" { (st.member.role.as_str()) }
                    }
                    form method="post" action="/console/signout" class="inline" {
                        (csrf_input(st))
                        button type="submit" id="staff-signout" { (ctx.t("退出控制台", "Sign out of the console")) }
                    }
                }
                nav class="console-nav" aria-label=(ctx.t("控制台导航", "Console")) {
                    ul {
                        @for (path, zh, en, perm) in SECTIONS {
                            li {
                                a href=(path) aria-current=[(current == path).then_some("page")] {
                                    (ctx.t(zh, en))
                                    @if perm.is_some_and(|p| !st.can(p)) {
                                        span class="no-access" { " (" (ctx.t("无权限", "no access")) ")" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (body)
        }
    };
    let mut resp = crate::layout::page_with_status(&ctx, status, title, markup);
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    resp
}

/// 303 to `to` (Post/Redirect/Get).
pub fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response()
}

/// `YYYY-MM-DD HH:MM UTC` of a time in milliseconds.
pub fn when(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => ms.to_string(),
    }
}

/// `YYYY-MM-DD` of a time in milliseconds.
pub fn day(ms: i64) -> String {
    when(ms).chars().take(10).collect()
}

/// Parses `YYYY-MM-DDTHH:MM` (a `datetime-local` input, read as UTC) or RFC 3339.
pub fn parse_time(v: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let v = v.trim();
    if let Ok(t) = time::OffsetDateTime::parse(v, &Rfc3339) {
        return Some((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let with_secs = if v.len() == 16 {
        format!("{v}:00Z")
    } else {
        format!("{v}Z")
    };
    time::OffsetDateTime::parse(&with_secs, &Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// A notice shown after a redirect (`?done=…`).
pub fn notice(text: &str) -> Markup {
    html! { p class="notice" role="status" { (text) } }
}

/// Splits a comma- or whitespace-separated list.
pub fn list(v: &str) -> Vec<String> {
    v.split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
