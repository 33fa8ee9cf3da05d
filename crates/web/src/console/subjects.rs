//! `/console/subjects`: one user's data, read for a named rights ticket of that user or a
//! purpose in words — the same use case and permission as
//! `GET /api/v1/operator/subjects/{id}/data` ([`custos_app::ops::Ops::subject_data`]),
//! which writes the read, with its reason, to the audit log before gathering anything.
//! The form posts (so the user id stays out of URLs and access logs) and the answer is
//! shown once, never cached.

use axum::extract::State;
use axum::response::Response;
use custos_app::ops::subjects::AccessReason;
use custos_app::ops::Permission;
use custos_core::SubjectId;
use custos_http::AppState;
use maud::{html, Markup};
use serde::Deserialize;

use super::{app_err, csrf_input, require_allowed, shell, ConsoleForm, MaybeStaff, Staff};
use crate::ctx::Ctx;
use crate::error::WebError;

fn form(ctx: &Ctx, st: &Staff, subject: &str) -> Markup {
    html! {
        form method="post" action="/console/subjects" class="stack" id="subject-form" {
            (csrf_input(st))
            label for="subject-id" { (ctx.t("用户标识（subject id）", "User (subject id)")) }
            input id="subject-id" name="subject" type="text" required maxlength="36" value=(subject);
            label for="subject-ticket" { (ctx.t("该用户的工单编号", "A rights ticket of this user")) }
            input id="subject-ticket" name="ticket" type="text" inputmode="numeric" maxlength="20";
            label for="subject-purpose" { (ctx.t("或：查阅目的（至少 8 个字符）", "Or: the purpose of this read (at least 8 characters)")) }
            input id="subject-purpose" name="purpose" type="text" maxlength="500";
            p class="hint" { (ctx.t(
                "每次查阅都会连同工单或目的记入审计日志。",
                "Every read is written to the audit log with its ticket or purpose."
            )) }
            button type="submit" id="subject-read" { (ctx.t("查阅", "Read")) }
        }
    }
}

pub async fn page(
    State(s): State<AppState>,
    ctx: Ctx,
    MaybeStaff(staff): MaybeStaff,
) -> Result<Response, WebError> {
    let st = require_allowed(
        &s,
        &ctx,
        staff,
        Permission::SubjectDataRead,
        "GET /console/subjects",
    )
    .await?;
    let body = html! {
        h1 { (ctx.t("查阅用户数据", "Read a user's data")) }
        (form(&ctx, &st, ""))
    };
    Ok(shell(&ctx, Some(&st), ctx.t("用户数据", "User data"), body))
}

#[derive(Debug, Deserialize)]
pub struct ReadForm {
    pub subject: String,
    #[serde(default)]
    pub ticket: String,
    #[serde(default)]
    pub purpose: String,
}

fn value(v: &serde_json::Value) -> Markup {
    match v {
        serde_json::Value::Object(m) => html! {
            dl {
                @for (k, v) in m { dt { (k) } dd { (value(v)) } }
            }
        },
        serde_json::Value::Array(a) if a.is_empty() => html! { "—" },
        serde_json::Value::Array(a) => html! {
            ul { @for v in a { li { (value(v)) } } }
        },
        serde_json::Value::Null => html! { "—" },
        serde_json::Value::String(s) => html! { (s) },
        other => html! { (other.to_string()) },
    }
}

pub async fn read(
    State(s): State<AppState>,
    f: ConsoleForm<ReadForm>,
) -> Result<Response, WebError> {
    let ctx = &f.ctx;
    let actor = f
        .allow(&s, Permission::SubjectDataRead, "POST /console/subjects")
        .await?;
    let subject: SubjectId = f.form.subject.trim().parse().map_err(|_| {
        WebError::bad_request(ctx.t("用户标识格式不对。", "That is not a subject id."))
            .lang(ctx.lang)
    })?;
    let ticket = Some(f.form.ticket.as_str()).filter(|t| !t.trim().is_empty());
    let purpose = Some(f.form.purpose.as_str()).filter(|p| !p.trim().is_empty());
    let reason = AccessReason::parse(ticket, purpose).map_err(app_err(ctx))?;
    let data = s
        .ops
        .subject_data(&actor, subject, &reason)
        .await
        .map_err(app_err(ctx))?;
    let body = html! {
        h1 { (ctx.t("查阅用户数据", "Read a user's data")) }
        section aria-labelledby="subject-data-heading" id="subject-data" {
            h2 id="subject-data-heading" { (ctx.t("数据摘要", "Summary of the data")) }
            p class="notice" role="status" { (ctx.t("此次查阅已记入审计日志。", "This read is in the audit log.")) }
            (value(&data))
        }
        (form(ctx, &f.staff, &f.form.subject))
    };
    Ok(shell(
        ctx,
        Some(&f.staff),
        ctx.t("用户数据", "User data"),
        body,
    ))
}
