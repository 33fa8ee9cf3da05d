//! `/console/incidents`: security incidents (P25, L11) through the same use cases and
//! permission (`incidents.manage`) as `/api/v1/operator/incidents…`: list with the
//! 72-hour alarm status, record one with every notice field, find the affected users
//! from the data map, notify them (inbox message and push) or publish an announcement,
//! add timeline steps, record the regulator report.

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::response::Response;
use custos_app::ops::incidents::{AffectedQuery, Incident, IncidentInput, LOCAL_STORES};
use custos_app::ops::{Actor, Permission};
use custos_http::AppState;
use maud::{html, Markup};
use serde::Deserialize;

use super::{
    app_err, csrf_input, list, notice, parse_time, require_allowed, see_other, shell, when,
    ConsoleForm, MaybeStaff, Staff,
};
use crate::ctx::Ctx;
use crate::error::WebError;

const ALARM_MS: i64 = 72 * 3_600_000;

fn alarm_status(ctx: &Ctx, i: &Incident, now: i64) -> Markup {
    html! {
        @if let Some(at) = i.regulator_reported_ms {
            span class="status ok" data-alarm="reported" {
                (ctx.t("已向监管机构报告：", "Reported to the regulator: ")) (when(at))
            }
        } @else if now >= i.detected_ms + ALARM_MS {
            strong class="status alarm" data-alarm="overdue" {
                (ctx.t("【警报】发现已超过 72 小时仍未向监管机构报告", "[ALARM] More than 72 hours since detection without a regulator report"))
            }
        } @else {
            span class="status pending" data-alarm="pending" {
                (ctx.t("须于以下时间前报告：", "Report due by: ")) (when(i.regulator_due_ms))
            }
        }
    }
}

fn field(id: &str, name: &str, label: &str, textarea: bool, hint: Option<&str>) -> Markup {
    html! {
        label for=(id) { (label) }
        @if textarea {
            textarea id=(id) name=(name) required maxlength="240" rows="2" {}
        } @else {
            input id=(id) name=(name) type="text" required maxlength="240";
        }
        @if let Some(h) = hint { span class="hint" { (h) } }
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub created: Option<i64>,
}

pub async fn index(
    State(s): State<AppState>,
    ctx: Ctx,
    MaybeStaff(staff): MaybeStaff,
    Query(q): Query<ListQuery>,
) -> Result<Response, WebError> {
    let st = require_allowed(
        &s,
        &ctx,
        staff,
        Permission::IncidentsManage,
        "GET /console/incidents",
    )
    .await?;
    let now = s.kernel.clock.now_ms();
    let incidents = s.ops.incidents().await.map_err(app_err(&ctx))?;
    let alarms = s.ops.incident_alarms().await.map_err(app_err(&ctx))?;
    let policy = s.kernel.gate.regime().current().clone();
    let categories: Vec<String> = policy
        .declaration()
        .categories
        .iter()
        .map(|c| c.key.clone())
        .collect();
    let body = html! {
        h1 { (ctx.t("安全事件", "Security incidents")) }
        @if let Some(id) = q.created { (notice(&format!("{} #{id}", ctx.t("已记录事件", "Recorded incident")))) }
        p id="alarm-summary" class=[(!alarms.is_empty()).then_some("alarm")] {
            @if alarms.is_empty() {
                (ctx.t("没有超过 72 小时未报告的事件。", "No incident is past 72 hours without a regulator report."))
            } @else {
                strong { (ctx.t("警报：", "Alarm: ")) (alarms.len()) }
                " " (ctx.t("个事件发现已超过 72 小时仍未向监管机构报告。", "incident(s) past 72 hours since detection without a regulator report."))
            }
        }
        @if incidents.is_empty() {
            p { (ctx.t("尚无记录的事件。", "No incidents recorded.")) }
        } @else {
            table class="data" id="incidents" {
                thead { tr {
                    th scope="col" { "#" }
                    th scope="col" { (ctx.t("标题", "Title")) }
                    th scope="col" { (ctx.t("发现时间", "Detected")) }
                    th scope="col" { (ctx.t("72 小时状态", "72-hour status")) }
                    th scope="col" { (ctx.t("已通知用户", "Users told")) }
                } }
                tbody {
                    @for i in &incidents {
                        tr id={ "incident-" (i.id) } {
                            td { (i.id) }
                            td { a href={ "/console/incidents/" (i.id) } { (i.title) } }
                            td { (when(i.detected_ms)) }
                            td { (alarm_status(&ctx, i, now)) }
                            td { (i.notified) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="new-incident-heading" {
            h2 id="new-incident-heading" { (ctx.t("记录新事件", "Record an incident")) }
            p class="hint" { (ctx.t(
                "每一项都会出现在给用户的通知中，均为必填。",
                "Every field appears in the notices users receive; all are required."
            )) }
            form method="post" action="/console/incidents" class="stack" id="incident-form" {
                (csrf_input(&st))
                label for="incident-title" { (ctx.t("标题（最多 60 字）", "Title (up to 60 characters)")) }
                input id="incident-title" name="title" type="text" required maxlength="60";
                (field("incident-cause", "cause", ctx.t("原因", "Cause"), true, None))
                (field("incident-categories", "categories", ctx.t("受影响的数据类别", "Data categories affected"), false,
                    Some(&format!("{} {}", ctx.t("用逗号分隔，可选：", "Comma-separated, from:"), categories.join(", ")))))
                (field("incident-stores", "stores", ctx.t("受影响的存储", "Stores affected"), false,
                    Some(&format!("{} {}", ctx.t("用逗号分隔，可选：", "Comma-separated, from:"), LOCAL_STORES.join(", ")))))
                (field("incident-harm", "possible_harm", ctx.t("可能的危害", "Possible harm"), true, None))
                (field("incident-remedies", "remedies", ctx.t("已采取的补救措施", "Remedial steps taken"), true, None))
                (field("incident-user-actions", "user_actions", ctx.t("用户可以采取的措施", "What users can do"), true, None))
                (field("incident-contact", "contact", ctx.t("联系方式", "Contact"), false, None))
                label for="incident-detected" { (ctx.t("发现时间（UTC）", "Detected at (UTC)")) }
                input id="incident-detected" name="detected_at" type="datetime-local" required;
                button type="submit" id="incident-create" { (ctx.t("记录事件", "Record the incident")) }
            }
        }
    };
    Ok(shell(&ctx, Some(&st), ctx.t("安全事件", "Incidents"), body))
}

#[derive(Debug, Deserialize)]
pub struct NewIncidentForm {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub cause: String,
    #[serde(default)]
    pub categories: String,
    #[serde(default)]
    pub stores: String,
    #[serde(default)]
    pub possible_harm: String,
    #[serde(default)]
    pub remedies: String,
    #[serde(default)]
    pub user_actions: String,
    #[serde(default)]
    pub contact: String,
    #[serde(default)]
    pub detected_at: String,
}

fn bad_time(ctx: &Ctx, what: &str) -> WebError {
    WebError::bad_request(format!(
        "{} ({what})",
        ctx.t(
            "时间格式不对，请用 YYYY-MM-DDTHH:MM。",
            "The time is malformed; use YYYY-MM-DDTHH:MM."
        )
    ))
    .lang(ctx.lang)
}

/// An optional time field: empty is `None`, anything else must parse.
fn optional_time(ctx: &Ctx, v: &str, what: &str) -> Result<Option<i64>, WebError> {
    if v.trim().is_empty() {
        Ok(None)
    } else {
        parse_time(v).map(Some).ok_or_else(|| bad_time(ctx, what))
    }
}

/// The check of a form acting on incident `id` (`POST /console/incidents/{id}/{action}`).
async fn allow_on<T>(
    s: &AppState,
    f: &ConsoleForm<T>,
    id: i64,
    action: &str,
) -> Result<Actor, WebError> {
    f.allow(
        s,
        Permission::IncidentsManage,
        &format!("POST /console/incidents/{id}/{action}"),
    )
    .await
}

pub async fn create(
    State(s): State<AppState>,
    f: ConsoleForm<NewIncidentForm>,
) -> Result<Response, WebError> {
    let ctx = &f.ctx;
    let actor = f
        .allow(&s, Permission::IncidentsManage, "POST /console/incidents")
        .await?;
    let r = f.form;
    let detected_ms = optional_time(ctx, &r.detected_at, "detected_at")?;
    let input = IncidentInput {
        title: r.title,
        cause: r.cause,
        categories: list(&r.categories),
        stores: list(&r.stores),
        possible_harm: r.possible_harm,
        remedies: r.remedies,
        user_actions: r.user_actions,
        contact: r.contact,
        detected_ms,
    };
    let i = s
        .ops
        .record_incident(&actor, &input)
        .await
        .map_err(app_err(ctx))?;
    Ok(see_other(&format!(
        "/console/incidents/{}?done=created",
        i.id
    )))
}

#[derive(Debug, Deserialize)]
pub struct DetailQuery {
    pub done: Option<String>,
    pub notified: Option<usize>,
    pub already: Option<usize>,
}

fn affected_form(
    ctx: &Ctx,
    st: &Staff,
    id: i64,
    action: &str,
    button: &str,
    button_id: &str,
) -> Markup {
    html! {
        form method="post" action={ "/console/incidents/" (id) "/" (action) } class="stack" {
            (csrf_input(st))
            @if action == "notify" { input type="hidden" name="mode" value="individual"; }
            label for={ (action) "-categories" } { (ctx.t("数据类别（留空则用事件的）", "Categories (empty: the incident's)")) }
            input id={ (action) "-categories" } name="categories" type="text" maxlength="1000";
            label for={ (action) "-stores" } { (ctx.t("存储（留空则用事件的）", "Stores (empty: the incident's)")) }
            input id={ (action) "-stores" } name="stores" type="text" maxlength="1000";
            label for={ (action) "-from" } { (ctx.t("起始时间（UTC，可留空）", "From (UTC, optional)")) }
            input id={ (action) "-from" } name="from" type="datetime-local";
            label for={ (action) "-to" } { (ctx.t("结束时间（UTC，可留空为现在）", "To (UTC, optional: now)")) }
            input id={ (action) "-to" } name="to" type="datetime-local";
            div class="check" {
                input id={ (action) "-sessions" } name="sessions" type="checkbox" value="true";
                label for={ (action) "-sessions" } { (ctx.t("包括期间有登录会话的用户", "Include users with a session open in the window")) }
            }
            button type="submit" id=(button_id) { (button) }
        }
    }
}

async fn detail_page(
    s: &AppState,
    ctx: &Ctx,
    st: &Staff,
    id: i64,
    extra: Markup,
) -> Result<Response, WebError> {
    let i = s.ops.incident(id).await.map_err(app_err(ctx))?;
    let now = s.kernel.clock.now_ms();
    let body = html! {
        p { a href="/console/incidents" { "← " (ctx.t("全部事件", "All incidents")) } }
        h1 { (ctx.t("事件", "Incident")) " #" (i.id) ": " (i.title) }
        (extra)
        p id="incident-alarm" { (alarm_status(ctx, &i, now)) }
        dl class="incident-fields" {
            dt { (ctx.t("原因", "Cause")) } dd { (i.cause) }
            dt { (ctx.t("受影响的数据类别", "Categories affected")) } dd { (i.categories.join(", ")) }
            dt { (ctx.t("受影响的存储", "Stores affected")) } dd { (i.stores.join(", ")) }
            dt { (ctx.t("可能的危害", "Possible harm")) } dd { (i.possible_harm) }
            dt { (ctx.t("补救措施", "Remedial steps")) } dd { (i.remedies) }
            dt { (ctx.t("用户可以采取的措施", "What users can do")) } dd { (i.user_actions) }
            dt { (ctx.t("联系方式", "Contact")) } dd { (i.contact) }
            dt { (ctx.t("发现时间", "Detected")) } dd { (when(i.detected_ms)) }
            dt { (ctx.t("记录时间", "Recorded")) } dd { (when(i.created_ms)) }
            dt { (ctx.t("已通知用户", "Users told")) } dd id="incident-notified" { (i.notified) }
        }
        section aria-labelledby="timeline-heading" {
            h2 id="timeline-heading" { (ctx.t("时间线", "Timeline")) }
            ol id="incident-timeline" {
                @for e in &i.timeline {
                    li data-action=(e.action) {
                        (when(e.at_ms)) " · " strong { (e.action) } " · " (e.actor) " — " (e.detail)
                    }
                }
            }
            form method="post" action={ "/console/incidents/" (i.id) "/timeline" } class="stack" {
                (csrf_input(st))
                label for="timeline-action" { (ctx.t("步骤（小写英文加下划线，如 contained）", "Step (snake_case, e.g. contained)")) }
                input id="timeline-action" name="action" type="text" required maxlength="60" pattern="[a-z0-9_]+";
                label for="timeline-detail" { (ctx.t("说明", "Detail")) }
                input id="timeline-detail" name="detail" type="text" required maxlength="240";
                button type="submit" { (ctx.t("加入时间线", "Add to the timeline")) }
            }
        }
        section aria-labelledby="affected-heading" {
            h2 id="affected-heading" { (ctx.t("查找受影响的用户", "Find the affected users")) }
            (affected_form(ctx, st, i.id, "affected", ctx.t("查询", "Query"), "affected-query"))
        }
        section aria-labelledby="notify-heading" {
            h2 id="notify-heading" { (ctx.t("通知", "Notify")) }
            h3 { (ctx.t("逐一通知（站内信和推送）", "Tell each affected user (inbox message and push)")) }
            (affected_form(ctx, st, i.id, "notify", ctx.t("发送通知", "Send the notices"), "notify-individual"))
            h3 { (ctx.t("无法逐一通知时：发布公告", "When individual notice is impractical: publish an announcement")) }
            form method="post" action={ "/console/incidents/" (i.id) "/notify" } {
                (csrf_input(st))
                input type="hidden" name="mode" value="announcement";
                button type="submit" id="notify-announcement" { (ctx.t("发布公开公告", "Publish a public announcement")) }
            }
        }
        @if i.regulator_reported_ms.is_none() {
            section aria-labelledby="report-heading" {
                h2 id="report-heading" { (ctx.t("记录向监管机构的报告", "Record the report to the regulator")) }
                form method="post" action={ "/console/incidents/" (i.id) "/regulator-report" } class="stack" {
                    (csrf_input(st))
                    label for="report-reference" { (ctx.t("报告编号", "Report reference")) }
                    input id="report-reference" name="reference" type="text" required maxlength="200";
                    label for="report-at" { (ctx.t("报告时间（UTC，可留空为现在）", "Reported at (UTC, optional: now)")) }
                    input id="report-at" name="reported_at" type="datetime-local";
                    button type="submit" { (ctx.t("记录报告", "Record the report")) }
                }
            }
        }
    };
    Ok(shell(
        ctx,
        Some(st),
        &format!("{} #{}", ctx.t("事件", "Incident"), i.id),
        body,
    ))
}

pub async fn detail(
    State(s): State<AppState>,
    ctx: Ctx,
    MaybeStaff(staff): MaybeStaff,
    Path(id): Path<i64>,
    Query(q): Query<DetailQuery>,
) -> Result<Response, WebError> {
    let st = require_allowed(
        &s,
        &ctx,
        staff,
        Permission::IncidentsManage,
        &format!("GET /console/incidents/{id}"),
    )
    .await?;
    let extra = html! {
        @match q.done.as_deref() {
            Some("created") => (notice(ctx.t("事件已记录。", "The incident is recorded."))),
            Some("notified") => p class="notice" role="status" id="notify-result" {
                (ctx.t("已通知用户：", "Users told now: ")) strong { (q.notified.unwrap_or(0)) }
                "; " (ctx.t("此前已通知：", "told before: ")) (q.already.unwrap_or(0))
            },
            Some("announced") => (notice(ctx.t("公告已发布。", "The announcement is published."))),
            Some("step") => (notice(ctx.t("已加入时间线。", "Added to the timeline."))),
            Some("reported") => (notice(ctx.t("报告已记录，警报解除。", "The report is recorded; the alarm ends."))),
            _ => {}
        }
    };
    detail_page(&s, &ctx, &st, id, extra).await
}

#[derive(Debug, Default, Deserialize)]
pub struct AffectedForm {
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub categories: String,
    #[serde(default)]
    pub stores: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub sessions: Option<String>,
}

fn query(s: &AppState, ctx: &Ctx, r: &AffectedForm) -> Result<AffectedQuery, WebError> {
    Ok(AffectedQuery {
        categories: list(&r.categories),
        stores: list(&r.stores),
        from_ms: optional_time(ctx, &r.from, "from")?.unwrap_or(0),
        to_ms: optional_time(ctx, &r.to, "to")?.unwrap_or_else(|| s.kernel.clock.now_ms()),
        sessions: r.sessions.as_deref() == Some("true"),
    })
}

pub async fn affected(
    State(s): State<AppState>,
    Path(id): Path<i64>,
    f: ConsoleForm<AffectedForm>,
) -> Result<Response, WebError> {
    let ctx = &f.ctx;
    allow_on(&s, &f, id, "affected").await?;
    let q = query(&s, ctx, &f.form)?;
    let a = s
        .ops
        .affected_subjects(id, &q)
        .await
        .map_err(app_err(ctx))?;
    let extra = html! {
        p class="notice" role="status" id="affected-result" {
            (ctx.t("可能受影响的用户数：", "Users possibly affected: ")) strong id="affected-count" { (a.count) }
        }
    };
    detail_page(&s, ctx, &f.staff, id, extra).await
}

pub async fn notify(
    State(s): State<AppState>,
    Path(id): Path<i64>,
    f: ConsoleForm<AffectedForm>,
) -> Result<Response, WebError> {
    let ctx = &f.ctx;
    let actor = allow_on(&s, &f, id, "notify").await?;
    match f.form.mode.as_str() {
        "individual" => {
            let q = query(&s, ctx, &f.form)?;
            let n = s
                .ops
                .notify_affected(&actor, id, &q)
                .await
                .map_err(app_err(ctx))?;
            Ok(see_other(&format!(
                "/console/incidents/{id}?done=notified&notified={}&already={}",
                n.notified, n.already_notified
            )))
        }
        "announcement" => {
            s.ops
                .announce_incident(&actor, id)
                .await
                .map_err(app_err(ctx))?;
            Ok(see_other(&format!(
                "/console/incidents/{id}?done=announced"
            )))
        }
        _ => Err(WebError::bad_request(ctx.t(
            "通知方式只能是逐一通知或公告。",
            "The notice is either individual or an announcement.",
        ))
        .lang(ctx.lang)),
    }
}

#[derive(Debug, Deserialize)]
pub struct ActionForm {
    pub action: String,
    pub detail: String,
}

pub async fn add_action(
    State(s): State<AppState>,
    Path(id): Path<i64>,
    f: ConsoleForm<ActionForm>,
) -> Result<Response, WebError> {
    let ctx = &f.ctx;
    let actor = allow_on(&s, &f, id, "timeline").await?;
    s.ops
        .add_incident_action(&actor, id, &f.form.action, &f.form.detail)
        .await
        .map_err(app_err(ctx))?;
    Ok(see_other(&format!("/console/incidents/{id}?done=step")))
}

#[derive(Debug, Deserialize)]
pub struct ReportForm {
    pub reference: String,
    #[serde(default)]
    pub reported_at: String,
}

pub async fn regulator_report(
    State(s): State<AppState>,
    Path(id): Path<i64>,
    f: ConsoleForm<ReportForm>,
) -> Result<Response, WebError> {
    let ctx = &f.ctx;
    let actor = allow_on(&s, &f, id, "regulator-report").await?;
    let at = optional_time(ctx, &f.form.reported_at, "reported_at")?;
    s.ops
        .record_regulator_report(&actor, id, &f.form.reference, at)
        .await
        .map_err(app_err(ctx))?;
    Ok(see_other(&format!("/console/incidents/{id}?done=reported")))
}
