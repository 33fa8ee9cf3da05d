//! `/me/requests` (P17, P34): the user's rights tickets (`GET /api/v1/me/rights/tickets`)
//! and complaints (`GET /api/v1/me/complaints`) with status and deadline; forms to open a
//! rights request (`POST /api/v1/me/rights/tickets`) and to file a complaint or report
//! (`POST /api/v1/complaints`).

use crate::extract::Query;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use custos_app::rights::complaints::ComplaintInput;
use custos_app::rights::TicketKind;
use custos_app::AppError;
use custos_http::AppState;
use maud::html;
use serde::Deserialize;

use super::{notice, page, see_other, when, WebResult};
use crate::ctx::Ctx;
use crate::error::WebError;
use crate::forms::{csrf_input, WebForm};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me/requests", get(requests_page))
        .route("/me/requests/ticket", post(open_ticket))
        .route("/me/requests/complaint", post(file_complaint))
}

/// Kinds a user opens by hand here (cancellation has its own page, complaints their form).
const REQUEST_KINDS: [(&str, &str, &str); 5] = [
    ("access", "查阅我的数据", "See my data"),
    ("correction", "更正我的数据", "Correct my data"),
    ("deletion", "删除我的数据", "Delete my data"),
    ("withdrawal", "撤回同意", "Withdraw a consent"),
    (
        "explanation",
        "解释如何处理我的数据",
        "Explain how my data is handled",
    ),
];

fn kind_text(ctx: &Ctx, kind: TicketKind) -> &'static str {
    match kind {
        TicketKind::Access => ctx.t("查阅", "Access"),
        TicketKind::Correction => ctx.t("更正", "Correction"),
        TicketKind::Deletion => ctx.t("删除", "Deletion"),
        TicketKind::Withdrawal => ctx.t("撤回", "Withdrawal"),
        TicketKind::Cancellation => ctx.t("注销账号", "Account cancellation"),
        TicketKind::Explanation => ctx.t("解释", "Explanation"),
        TicketKind::Complaint => ctx.t("投诉", "Complaint"),
        TicketKind::Report => ctx.t("举报", "Report"),
    }
}

fn status_text(ctx: &Ctx, status: &str) -> &'static str {
    match status {
        "open" => ctx.t("已受理", "Open"),
        "in_progress" => ctx.t("处理中", "In progress"),
        "completed" => ctx.t("已完成", "Completed"),
        "refused" => ctx.t("已拒绝", "Refused"),
        "withdrawn" => ctx.t("已撤销", "Withdrawn"),
        "failed" => ctx.t("失败", "Failed"),
        "answered" => ctx.t("已答复", "Answered"),
        _ => ctx.t("其他", "Other"),
    }
}

#[derive(Debug, Deserialize)]
struct RequestsQuery {
    filed: Option<String>,
}

async fn requests_page(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<RequestsQuery>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let now = s.kernel.clock.now_ms();
    let tickets = s.rights.tickets(session.subject).await.web(&ctx)?;
    let complaints = s.rights.complaints(session.subject).await.web(&ctx)?;
    let body = html! {
        @if q.filed.is_some() { (notice(ctx.t("已提交，我们会在期限内答复。", "Filed. We will answer by the deadline shown."))) }
        section aria-labelledby="r-tickets" {
            h2 id="r-tickets" { (ctx.t("我的请求", "My requests")) }
            @if tickets.is_empty() {
                p class="empty" { (ctx.t("还没有请求。", "No requests yet.")) }
            } @else {
                table class="tickets" {
                    thead { tr {
                        th scope="col" { (ctx.t("编号", "No.")) }
                        th scope="col" { (ctx.t("类型", "Kind")) }
                        th scope="col" { (ctx.t("状态", "Status")) }
                        th scope="col" { (ctx.t("提交于", "Filed")) }
                        th scope="col" { (ctx.t("答复期限", "Answer due")) }
                    } }
                    tbody {
                        @for t in &tickets {
                            tr class="ticket" data-ticket=(t.id) data-kind=(t.kind.as_str()) data-status=(t.status) {
                                td { (t.id) }
                                td { (kind_text(&ctx, t.kind)) }
                                td {
                                    (status_text(&ctx, &t.status))
                                    @if let Some(r) = &t.refusal_reason {
                                        p { (ctx.t("理由：", "Reason: ")) (r) }
                                    }
                                    @if let Some(b) = &t.refusal_basis {
                                        p { (ctx.t("依据：", "Legal basis: ")) (b) }
                                    }
                                    @if let Some(route) = &t.complaint_route {
                                        p { (ctx.t("如不同意：", "If you disagree: ")) (ctx.t(&route.zh, &route.en)) }
                                    }
                                }
                                td { (when(t.created_ms)) }
                                td {
                                    (when(t.due_ms))
                                    @if t.overdue(now) { " " strong class="overdue" { (ctx.t("（已超期）", "(overdue)")) } }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="r-complaints" {
            h2 id="r-complaints" { (ctx.t("我的投诉与举报", "My complaints and reports")) }
            @if complaints.is_empty() {
                p class="empty" { (ctx.t("还没有投诉或举报。", "No complaints or reports yet.")) }
            } @else {
                ul class="complaints" {
                    @for c in &complaints {
                        li data-ticket=(c.ticket.id) {
                            strong { (kind_text(&ctx, c.ticket.kind)) " #" (c.ticket.id) }
                            " · " (status_text(&ctx, &c.ticket.status))
                            " · " (ctx.t("答复期限 ", "due ")) (when(c.ticket.due_ms))
                            p { (c.ticket.detail) }
                            @if let Some(a) = &c.answer {
                                p class="answer" { strong { (ctx.t("我们的答复：", "Our answer: ")) } (a) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="r-new" {
            h2 id="r-new" { (ctx.t("提出请求", "Make a request")) }
            form method="post" action="/me/requests/ticket" class="stack" {
                (csrf_input(&ctx))
                label for="ticket-kind" { (ctx.t("请求类型", "What you ask for")) }
                select id="ticket-kind" name="kind" {
                    @for (k, zh, en) in REQUEST_KINDS { option value=(k) { (ctx.t(zh, en)) } }
                }
                label for="ticket-detail" { (ctx.t("说明（可选，最多 4000 字）", "Details (optional, up to 4000 characters)")) }
                textarea id="ticket-detail" name="detail" rows="4" maxlength="4000" {}
                button type="submit" id="ticket-submit" { (ctx.t("提交请求", "Send the request")) }
            }
        }
        section aria-labelledby="r-complain" {
            h2 id="r-complain" { (ctx.t("投诉或举报", "Complain or report")) }
            form method="post" action="/me/requests/complaint" class="stack" {
                (csrf_input(&ctx))
                label for="complaint-kind" { (ctx.t("类型", "Kind")) }
                select id="complaint-kind" name="kind" {
                    option value="complaint" { (ctx.t("投诉（我们如何对待您或您的数据）", "Complaint (how we treat you or your data)")) }
                    option value="report" { (ctx.t("举报（内容或行为）", "Report (content or conduct)")) }
                }
                label for="complaint-topic" { (ctx.t("主题", "Topic")) }
                select id="complaint-topic" name="topic" {
                    option value="data_handling" { (ctx.t("数据处理", "Data handling")) }
                    option value="service" { (ctx.t("服务", "Service")) }
                    option value="content" { (ctx.t("内容", "Content")) }
                }
                label for="complaint-detail" { (ctx.t("发生了什么（必填，最多 4000 字）", "What happened (required, up to 4000 characters)")) }
                textarea id="complaint-detail" name="detail" rows="5" maxlength="4000" required {}
                button type="submit" id="complaint-submit" { (ctx.t("提交", "File it")) }
            }
        }
    };
    Ok(page(
        &ctx,
        "/me/requests",
        ctx.t("请求与投诉", "Requests and complaints"),
        body,
    ))
}

#[derive(Debug, Deserialize)]
struct TicketForm {
    kind: String,
    #[serde(default)]
    detail: String,
}

/// Same use case as `POST /api/v1/me/rights/tickets`.
async fn open_ticket(
    State(s): State<AppState>,
    ctx: Ctx,
    WebForm(f): WebForm<TicketForm>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let kind = TicketKind::parse(&f.kind)
        .ok_or_else(|| AppError::bad("unknown_kind", "choose one of the kinds of request offered"))
        .web(&ctx)?;
    s.rights
        .open_ticket(session.subject, kind, &f.detail)
        .await
        .web(&ctx)?;
    Ok(see_other("/me/requests?filed=ticket"))
}

#[derive(Debug, Deserialize)]
struct ComplaintForm {
    kind: String,
    topic: String,
    about: Option<String>,
    detail: String,
}

/// Same use case as `POST /api/v1/complaints`, filed by the signed-in account.
async fn file_complaint(
    State(s): State<AppState>,
    ctx: Ctx,
    WebForm(f): WebForm<ComplaintForm>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let about = f.about.as_deref().filter(|a| !a.trim().is_empty());
    let input = ComplaintInput::parse(&f.kind, &f.topic, about, &f.detail).web(&ctx)?;
    s.rights
        .file_complaint(Some(session.subject), &input)
        .await
        .web(&ctx)?;
    Ok(see_other("/me/requests?filed=complaint"))
}
