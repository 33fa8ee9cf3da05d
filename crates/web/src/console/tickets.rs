//! `/console/tickets`: open rights tickets and complaints with their deadlines, overdue
//! ones marked in words; complete or refuse a ticket, answer a complaint — the same use
//! cases and permissions as `GET /api/v1/operator/rights/tickets`,
//! `POST …/tickets/{id}/decision` and `POST /api/v1/operator/complaints/{id}/answer`.

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::response::Response;
use custos_app::ops::Permission;
use custos_app::rights::{Decision, TicketKind};
use custos_http::AppState;
use maud::html;
use serde::Deserialize;

use super::{
    app_err, csrf_input, notice, require_allowed, see_other, shell, when, ConsoleForm, MaybeStaff,
};
use crate::ctx::Ctx;
use crate::error::WebError;

/// Open tickets due within this window are listed (all open ones in practice).
const WINDOW_MS: i64 = 400 * 86_400_000;

#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    pub done: Option<i64>,
}

pub async fn page(
    State(s): State<AppState>,
    ctx: Ctx,
    MaybeStaff(staff): MaybeStaff,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let st = require_allowed(
        &s,
        &ctx,
        staff,
        Permission::RightsTicketsRead,
        "GET /console/tickets",
    )
    .await?;
    let now = s.kernel.clock.now_ms();
    let tickets = s
        .rights
        .due_soon(Some(WINDOW_MS))
        .await
        .map_err(app_err(&ctx))?;
    let can_decide = st.can(Permission::RightsTicketsDecide);
    let overdue = tickets.iter().filter(|t| t.overdue(now)).count();
    let body = html! {
        h1 { (ctx.t("权利请求工单与投诉", "Rights tickets and complaints")) }
        @if let Some(id) = q.done {
            (notice(&format!("{} #{id}", ctx.t("已更新工单", "Updated ticket"))))
        }
        p id="ticket-summary" {
            (tickets.len()) " " (ctx.t("个未结工单，其中", "open, of which"))
            " " strong { (overdue) } " " (ctx.t("个已逾期。", "overdue."))
        }
        @if tickets.is_empty() {
            p { (ctx.t("没有未结的工单。", "No open tickets.")) }
        } @else {
            table class="data" id="tickets" {
                caption { (ctx.t("按截止时间排序", "Soonest deadline first")) }
                thead { tr {
                    th scope="col" { "#" }
                    th scope="col" { (ctx.t("类型", "Kind")) }
                    th scope="col" { (ctx.t("状态", "Status")) }
                    th scope="col" { (ctx.t("提交时间", "Filed")) }
                    th scope="col" { (ctx.t("截止时间", "Due")) }
                    th scope="col" { (ctx.t("内容", "Detail")) }
                    @if can_decide { th scope="col" { (ctx.t("处理", "Act")) } }
                } }
                tbody {
                    @for t in &tickets {
                        @let late = t.overdue(now);
                        tr id={ "ticket-" (t.id) } class=[late.then_some("overdue")] data-kind=(t.kind.as_str()) {
                            td { (t.id) }
                            td { (t.kind.as_str()) }
                            td { (t.status) }
                            td { (when(t.created_ms)) }
                            td {
                                (when(t.due_ms))
                                @if late { " " strong class="overdue-label" { (ctx.t("【已逾期】", "[OVERDUE]")) } }
                            }
                            td class="detail" { (t.detail) }
                            @if can_decide {
                                td {
                                    @if matches!(t.kind, TicketKind::Complaint | TicketKind::Report) {
                                        form method="post" action={ "/console/tickets/" (t.id) "/answer" } class="stack" {
                                            (csrf_input(&st))
                                            label for={ "answer-" (t.id) } { (ctx.t("答复", "Answer")) }
                                            textarea id={ "answer-" (t.id) } name="answer" required maxlength="4000" rows="3" {}
                                            button type="submit" { (ctx.t("发送答复并结案", "Send the answer and close")) }
                                        }
                                    } @else {
                                        form method="post" action={ "/console/tickets/" (t.id) "/decide" } class="stack" {
                                            (csrf_input(&st))
                                            input type="hidden" name="status" value="completed";
                                            label for={ "note-" (t.id) } { (ctx.t("备注（写入历史）", "Note (kept in the history)")) }
                                            input type="text" id={ "note-" (t.id) } name="note" maxlength="1000";
                                            button type="submit" { (ctx.t("标记为已完成", "Mark completed")) }
                                        }
                                        details {
                                            summary { (ctx.t("拒绝（须说明理由和法律依据）", "Refuse (reason and legal basis required)")) }
                                            form method="post" action={ "/console/tickets/" (t.id) "/decide" } class="stack" {
                                                (csrf_input(&st))
                                                input type="hidden" name="status" value="refused";
                                                label for={ "reason-" (t.id) } { (ctx.t("理由", "Reason")) }
                                                input type="text" id={ "reason-" (t.id) } name="reason" required maxlength="1000";
                                                label for={ "basis-" (t.id) } { (ctx.t("法律依据", "Legal basis")) }
                                                input type="text" id={ "basis-" (t.id) } name="legal_basis" required maxlength="500";
                                                button type="submit" { (ctx.t("拒绝请求", "Refuse the request")) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(shell(&ctx, Some(&st), ctx.t("工单", "Tickets"), body))
}

#[derive(Debug, Deserialize)]
pub struct DecideForm {
    pub status: String,
    #[serde(default)]
    pub note: String,
    pub reason: Option<String>,
    pub legal_basis: Option<String>,
}

pub async fn decide(
    State(s): State<AppState>,
    Path(id): Path<i64>,
    f: ConsoleForm<DecideForm>,
) -> Result<Response, WebError> {
    let ctx = &f.ctx;
    f.allow(
        &s,
        Permission::RightsTicketsDecide,
        &format!("POST /console/tickets/{id}/decide"),
    )
    .await?;
    let d = match f.form.status.as_str() {
        "in_progress" => Decision::InProgress { note: f.form.note },
        "completed" => Decision::Completed { note: f.form.note },
        "refused" => Decision::Refused {
            reason: f.form.reason.unwrap_or_default(),
            legal_basis: f.form.legal_basis.unwrap_or_default(),
        },
        _ => {
            return Err(
                WebError::bad_request(ctx.t("未知的状态。", "Unknown status.")).lang(ctx.lang),
            )
        }
    };
    s.rights.decide(id, &d).await.map_err(app_err(ctx))?;
    Ok(see_other(&format!("/console/tickets?done={id}")))
}

#[derive(Debug, Deserialize)]
pub struct AnswerForm {
    pub answer: String,
}

pub async fn answer(
    State(s): State<AppState>,
    Path(id): Path<i64>,
    f: ConsoleForm<AnswerForm>,
) -> Result<Response, WebError> {
    let ctx = &f.ctx;
    f.allow(
        &s,
        Permission::RightsTicketsDecide,
        &format!("POST /console/tickets/{id}/answer"),
    )
    .await?;
    s.rights
        .answer_complaint(id, &f.form.answer)
        .await
        .map_err(app_err(ctx))?;
    Ok(see_other(&format!("/console/tickets?done={id}")))
}
