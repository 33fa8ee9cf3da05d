//! `/console/staff`: staff accounts and roles. Listing needs `staff.read`; creating,
//! changing a role, disabling and enabling need `staff.manage` (admins), the same use
//! cases as `/api/v1/operator/staff`. A new account's password and TOTP secret are shown
//! once, on the answer to the form, and never again.

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use custos_app::ops::{Permission, Role};
use custos_core::Personal;
use custos_http::AppState;
use maud::{html, Markup};
use serde::Deserialize;

use super::{
    app_err, csrf_input, notice, require_allowed, see_other, shell_with_status, when, ConsoleForm,
    MaybeStaff, Staff,
};
use crate::ctx::Ctx;
use crate::error::WebError;

fn role_name(ctx: &Ctx, r: Role) -> &'static str {
    match r {
        Role::Support => ctx.t("客服", "Support"),
        Role::Analyst => ctx.t("分析员", "Analyst"),
        Role::SecurityOfficer => ctx.t("安全负责人", "Security officer"),
        Role::PrivacyOfficer => ctx.t("个人信息保护负责人", "Privacy officer"),
        Role::Admin => ctx.t("管理员", "Administrator"),
    }
}

fn role_select(ctx: &Ctx, id: &str, current: Option<Role>) -> Markup {
    html! {
        select id=(id) name="role" {
            @for r in Role::ALL {
                option value=(r.as_str()) selected[current == Some(r)] { (role_name(ctx, r)) " (" (r.as_str()) ")" }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    pub done: Option<String>,
}

async fn render(
    s: &AppState,
    ctx: &Ctx,
    st: &Staff,
    status: StatusCode,
    banner: Markup,
) -> Result<Response, WebError> {
    let staff = s.ops.list_staff().await.map_err(app_err(ctx))?;
    let manage = st.can(Permission::StaffManage);
    let now = s.kernel.clock.now_ms();
    let body = html! {
        h1 { (ctx.t("工作人员与角色", "Staff and roles")) }
        (banner)
        table class="data" id="staff-list" {
            thead { tr {
                th scope="col" { (ctx.t("用户名", "Username")) }
                th scope="col" { (ctx.t("角色", "Role")) }
                th scope="col" { (ctx.t("状态", "State")) }
                th scope="col" { (ctx.t("创建时间", "Created")) }
                @if manage { th scope="col" { (ctx.t("管理", "Manage")) } }
            } }
            tbody {
                @for v in &staff {
                    tr data-username=(v.username) {
                        th scope="row" { (v.username) }
                        td class="role" { (role_name(ctx, v.role)) " (" (v.role.as_str()) ")" }
                        td {
                            @if v.disabled { strong { (ctx.t("已停用", "Disabled")) } }
                            @else if v.locked_until_ms.is_some_and(|t| t > now) {
                                strong { (ctx.t("已锁定至 ", "Locked until ")) (when(v.locked_until_ms.unwrap_or(now))) }
                            }
                            @else { (ctx.t("启用", "Enabled")) }
                        }
                        td { (when(v.created_at_ms)) }
                        @if manage {
                            td {
                                form method="post" action={ "/console/staff/" (v.username) } class="inline" {
                                    (csrf_input(st))
                                    label for={ "role-" (v.username) } { (ctx.t("角色", "Role")) }
                                    (role_select(ctx, &format!("role-{}", v.username), Some(v.role)))
                                    button type="submit" name="action" value="role" { (ctx.t("更改角色", "Change role")) }
                                }
                                form method="post" action={ "/console/staff/" (v.username) } class="inline" {
                                    (csrf_input(st))
                                    @if v.disabled {
                                        button type="submit" name="action" value="enable" { (ctx.t("重新启用", "Enable")) }
                                    } @else {
                                        button type="submit" name="action" value="disable" { (ctx.t("停用", "Disable")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if manage {
            section aria-labelledby="new-staff-heading" {
                h2 id="new-staff-heading" { (ctx.t("新建工作人员账号", "Create a staff account")) }
                form method="post" action="/console/staff" class="stack" id="staff-create-form" {
                    (csrf_input(st))
                    label for="new-staff-username" { (ctx.t("用户名（3–32 位小写字母、数字、. _ -）", "Username (3–32 of a-z, 0-9, . _ -)")) }
                    input id="new-staff-username" name="username" type="text" required maxlength="32" pattern="[a-z0-9][a-z0-9._-]{2,31}";
                    label for="new-staff-role" { (ctx.t("角色", "Role")) }
                    (role_select(ctx, "new-staff-role", Some(Role::Support)))
                    label for="new-staff-password" { (ctx.t("初始密码（可留空自动生成，12–128 位）", "Initial password (empty: generated; 12–128 characters)")) }
                    input id="new-staff-password" name="password" type="password" autocomplete="new-password" maxlength="128";
                    button type="submit" id="staff-create" { (ctx.t("创建", "Create")) }
                }
            }
        }
    };
    Ok(shell_with_status(
        ctx,
        Some(st),
        status,
        ctx.t("工作人员", "Staff"),
        body,
    ))
}

pub async fn page(
    State(s): State<AppState>,
    ctx: Ctx,
    MaybeStaff(staff): MaybeStaff,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let st = require_allowed(&s, &ctx, staff, Permission::StaffRead, "GET /console/staff").await?;
    let banner = html! {
        @if q.done.is_some() { (notice(ctx.t("账号已更新。", "The account is updated."))) }
    };
    render(&s, &ctx, &st, StatusCode::OK, banner).await
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    pub username: String,
    pub role: String,
    #[serde(default)]
    pub password: String,
}

fn parse_role(ctx: &Ctx, r: &str) -> Result<Role, WebError> {
    Role::parse(r).ok_or_else(|| {
        WebError::bad_request(ctx.t("没有这个角色。", "There is no such role.")).lang(ctx.lang)
    })
}

pub async fn create(
    State(s): State<AppState>,
    f: ConsoleForm<CreateForm>,
) -> Result<Response, WebError> {
    let ctx = &f.ctx;
    let actor = f
        .allow(&s, Permission::StaffManage, "POST /console/staff")
        .await?;
    let role = parse_role(ctx, &f.form.role)?;
    let pw = Some(f.form.password)
        .filter(|p| !p.is_empty())
        .map(Personal::new);
    let created = s
        .ops
        .create_staff(&actor, f.form.username.trim(), role, pw)
        .await
        .map_err(app_err(ctx))?;
    let banner = html! {
        section class="one-time" id="new-staff-credentials" role="status" aria-labelledby="cred-heading" {
            h2 id="cred-heading" { (ctx.t("新账号的登录信息（只显示这一次）", "The new account's credentials (shown only this once)")) }
            p { (ctx.t(
                "请当面或通过安全渠道交给本人。离开此页后将无法再次查看。",
                "Hand them over in person or through a secure channel. They cannot be shown again after you leave this page."
            )) }
            dl {
                dt { (ctx.t("用户名", "Username")) } dd { code { (created.username) } }
                dt { (ctx.t("角色", "Role")) } dd { (role_name(ctx, created.role)) }
                dt { (ctx.t("初始密码", "Initial password")) } dd { code id="new-staff-password-value" { (created.password.expose()) } }
                dt { (ctx.t("TOTP 密钥（输入身份验证器应用）", "TOTP secret (for the authenticator app)")) }
                dd { code id="new-staff-totp-secret" { (created.totp_secret.expose()) } }
                dt { (ctx.t("otpauth 链接", "otpauth link")) } dd { code class="wrap" { (created.otpauth_uri.expose()) } }
            }
        }
    };
    render(&s, ctx, &f.staff, StatusCode::CREATED, banner).await
}

#[derive(Debug, Deserialize)]
pub struct UpdateForm {
    pub action: String,
    pub role: Option<String>,
}

pub async fn update(
    State(s): State<AppState>,
    Path(username): Path<String>,
    f: ConsoleForm<UpdateForm>,
) -> Result<Response, WebError> {
    let ctx = &f.ctx;
    let actor = f
        .allow(
            &s,
            Permission::StaffManage,
            &format!("POST /console/staff/{username}"),
        )
        .await?;
    let (role, disabled) = match f.form.action.as_str() {
        "role" => (
            Some(parse_role(ctx, f.form.role.as_deref().unwrap_or(""))?),
            None,
        ),
        "disable" => (None, Some(true)),
        "enable" => (None, Some(false)),
        _ => {
            return Err(
                WebError::bad_request(ctx.t("未知的操作。", "Unknown action.")).lang(ctx.lang),
            )
        }
    };
    s.ops
        .update_staff(&actor, &username, role, disabled)
        .await
        .map_err(app_err(ctx))?;
    Ok(see_other("/console/staff?done=1"))
}
