//! HTTP routes of the rights service (`custos_app::rights`), with their OpenAPI paths.
//!
//! Users file rights requests as tickets under `/api/v1/me/rights/tickets` and read their
//! own (another user's ticket is a 404, like one that does not exist). Operators, with the
//! catalog's operator token, list overdue and near-due tickets and answer them; a refusal
//! needs a reason and a legal basis and records the declaration's complaint route (P17).
//!
//! Submodules: [`exports`] (background exports with progress and download links),
//! [`corrections`] (correcting fields, deleting single items, each audited as a ticket),
//! [`complaints`] (complaints and reports, signed in or anonymous; the contact route).

pub mod complaints;
pub mod corrections;
pub mod exports;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use custos_app::rights::{Cancellation, ComplaintRoute, Decision, Kept, Ticket, TicketKind};
use custos_app::AppError;
use custos_core::clock::rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::catalog::operator;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
use crate::session::{Reauth, Session};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/me/rights/tickets",
            post(open_ticket).get(list_tickets),
        )
        .route("/api/v1/me/rights/tickets/{id}", get(get_ticket))
        .route("/api/v1/operator/rights/tickets", get(due_tickets))
        .route(
            "/api/v1/operator/rights/tickets/{id}/decision",
            post(decide_ticket),
        )
        .route(
            "/api/v1/me/cancellation",
            post(request_cancellation)
                .get(get_cancellation)
                .delete(revoke_cancellation),
        )
        .route("/api/v1/me/export", get(export_json))
        .route("/api/v1/me/export.html", get(export_html))
        .route(
            "/api/v1/operator/rights/cancellations/run",
            post(run_cancellations),
        )
        .route(
            "/api/v1/me/exports",
            post(exports::start_export).get(exports::list_exports),
        )
        .route("/api/v1/me/exports/{id}", get(exports::get_export))
        .route(
            "/api/v1/me/export-files/{token}",
            get(exports::download_export),
        )
        .route(
            "/api/v1/me/corrections",
            post(corrections::correct).get(corrections::list_corrections),
        )
        .route(
            "/api/v1/me/data/{kind}/{id}",
            axum::routing::delete(corrections::delete_item),
        )
        .route("/api/v1/complaints", post(complaints::file_complaint))
        .route("/api/v1/complaints/follow-up", get(complaints::follow_up))
        .route("/api/v1/me/complaints", get(complaints::my_complaints))
        .route("/api/v1/me/complaints/{id}", get(complaints::my_complaint))
        .route(
            "/api/v1/operator/complaints/{id}/answer",
            post(complaints::answer_complaint),
        )
        .route("/api/v1/contact", get(complaints::contact))
}

/// This module's part of the OpenAPI document, merged into [`crate::openapi::ApiDoc`].
#[derive(OpenApi)]
#[openapi(
    paths(open_ticket, list_tickets, get_ticket, due_tickets, decide_ticket, request_cancellation,
          get_cancellation, revoke_cancellation, run_cancellations, export_json, export_html,
          exports::start_export, exports::list_exports, exports::get_export, exports::download_export,
          corrections::correct, corrections::list_corrections, corrections::delete_item,
          complaints::file_complaint, complaints::follow_up, complaints::my_complaints,
          complaints::my_complaint, complaints::answer_complaint, complaints::contact),
    components(schemas(NewTicket, TicketDoc, TicketEventDoc, ComplaintRouteDoc, DecisionRequest, TicketList,
                       CancellationDoc, KeptDoc, ErasureDoc, ErasureList,
                       exports::ExportJobDoc, exports::ExportLinks, exports::ExportJobList,
                       corrections::CorrectionRequest,
                       complaints::NewComplaint, complaints::ComplaintDoc, complaints::FiledDoc,
                       complaints::ComplaintList, complaints::AnswerRequest, complaints::TextDoc,
                       complaints::ContactDoc)),
    tags((name = "rights", description = "Requests about one's own data, as tickets with deadlines (P17)"))
)]
pub struct RightsApi;

/// A rights request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    /// `access`, `correction`, `deletion`, `withdrawal`, `cancellation` or `explanation`.
    pub kind: String,
    /// What the user asks, in their words (at most 4000 characters).
    #[serde(default)]
    pub detail: String,
}

/// One change of a ticket's status.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketEventDoc {
    pub status: String,
    pub note: String,
    pub at: String,
}

/// Where to complain about a refusal, from the declaration's controller.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComplaintRouteDoc {
    pub en: String,
    pub zh: String,
}

/// A rights ticket.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketDoc {
    pub id: i64,
    pub kind: String,
    /// `open`, `in_progress`, `completed`, `refused`, `withdrawn`, `failed` or (complaints)
    /// `answered`.
    pub status: String,
    pub detail: String,
    pub created_at: String,
    /// When the answer is due.
    pub due_at: String,
    pub closed_at: Option<String>,
    /// Open and past its deadline.
    pub overdue: bool,
    pub refusal_reason: Option<String>,
    pub refusal_legal_basis: Option<String>,
    pub complaint_route: Option<ComplaintRouteDoc>,
    pub history: Vec<TicketEventDoc>,
}

/// Tickets.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketList {
    pub tickets: Vec<TicketDoc>,
}

fn doc(t: Ticket, now_ms: i64) -> TicketDoc {
    TicketDoc {
        id: t.id,
        kind: t.kind.as_str().to_owned(),
        overdue: t.overdue(now_ms),
        status: t.status,
        detail: t.detail,
        created_at: rfc3339(t.created_ms),
        due_at: rfc3339(t.due_ms),
        closed_at: t.closed_ms.map(rfc3339),
        refusal_reason: t.refusal_reason,
        refusal_legal_basis: t.refusal_basis,
        complaint_route: t
            .complaint_route
            .map(|ComplaintRoute { en, zh }| ComplaintRouteDoc { en, zh }),
        history: t
            .history
            .into_iter()
            .map(|e| TicketEventDoc {
                status: e.status,
                note: e.note,
                at: rfc3339(e.at_ms),
            })
            .collect(),
    }
}

fn now(s: &AppState) -> i64 {
    s.rights.kernel.clock.now_ms()
}

#[utoipa::path(post, path = "/api/v1/me/rights/tickets", tag = "rights", request_body = NewTicket,
    responses((status = 201, body = TicketDoc), (status = 400, description = "malformed body", body = ErrorBody), (status = 422, description = "`unknown_kind`, `detail_too_long`", body = ErrorBody),
              (status = 401, body = ErrorBody)))]
pub async fn open_ticket(
    State(s): State<AppState>,
    session: Session,
    ApiJson(r): ApiJson<NewTicket>,
) -> ApiResult<Response> {
    let kind = TicketKind::parse(&r.kind).ok_or_else(|| {
        AppError::bad(
            "unknown_kind",
            format!("`{}` is not a kind of rights request", r.kind),
        )
    })?;
    let t = s
        .rights
        .open_ticket(session.0.subject, kind, &r.detail)
        .await?;
    Ok((StatusCode::CREATED, Json(doc(t, now(&s)))).into_response())
}

#[utoipa::path(get, path = "/api/v1/me/rights/tickets", tag = "rights",
    responses((status = 200, body = TicketList), (status = 401, body = ErrorBody)))]
pub async fn list_tickets(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Json<TicketList>> {
    let n = now(&s);
    let tickets = s.rights.tickets(session.0.subject).await?;
    Ok(Json(TicketList {
        tickets: tickets.into_iter().map(|t| doc(t, n)).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/me/rights/tickets/{id}", tag = "rights",
    params(("id" = i64, Path, description = "ticket id")),
    responses((status = 200, body = TicketDoc), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_ticket(
    State(s): State<AppState>,
    session: Session,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TicketDoc>> {
    let t = s.rights.ticket(session.0.subject, id).await?;
    Ok(Json(doc(t, now(&s))))
}

/// Which tickets an operator lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DueParams {
    /// Also list tickets due within this many days (default: `[rights] near_due_days`).
    pub within_days: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/operator/rights/tickets", tag = "rights", params(DueParams),
    security(("operator_token" = [])),
    responses((status = 200, description = "open tickets, overdue or near due, soonest first", body = TicketList),
              (status = 401, body = ErrorBody), (status = 403, description = "`operator_api_disabled`", body = ErrorBody)))]
pub async fn due_tickets(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<DueParams>,
) -> ApiResult<Json<TicketList>> {
    operator(&s, &headers, custos_app::ops::Permission::RightsTicketsRead).await?;
    let n = now(&s);
    let within = q.within_days.map(|d| i64::from(d) * 86_400_000);
    let tickets = s.rights.due_soon(within).await?;
    Ok(Json(TicketList {
        tickets: tickets.into_iter().map(|t| doc(t, n)).collect(),
    }))
}

/// An operator's answer to a ticket.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// `in_progress`, `completed` or `refused`.
    pub status: String,
    /// A note for the history (in progress, completed).
    #[serde(default)]
    pub note: String,
    /// Mandatory when refusing.
    pub reason: Option<String>,
    /// Mandatory when refusing: the legal basis the refusal rests on.
    pub legal_basis: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/operator/rights/tickets/{id}/decision", tag = "rights",
    params(("id" = i64, Path, description = "ticket id")), request_body = DecisionRequest,
    security(("operator_token" = [])),
    responses((status = 200, body = TicketDoc),
              (status = 400, description = "malformed body or id", body = ErrorBody), (status = 422, description = "`unknown_status`, `refusal_reason_required`, `refusal_basis_required`, `ticket_closed`", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn decide_ticket(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    ApiJson(r): ApiJson<DecisionRequest>,
) -> ApiResult<Json<TicketDoc>> {
    operator(
        &s,
        &headers,
        custos_app::ops::Permission::RightsTicketsDecide,
    )
    .await?;
    let d = match r.status.as_str() {
        "in_progress" => Decision::InProgress { note: r.note },
        "completed" => Decision::Completed { note: r.note },
        "refused" => Decision::Refused {
            reason: r.reason.unwrap_or_default(),
            legal_basis: r.legal_basis.unwrap_or_default(),
        },
        other => {
            return Err(AppError::bad(
                "unknown_status",
                format!("`{other}` is not a status an operator sets"),
            )
            .into())
        }
    };
    let t = s.rights.decide(id, &d).await?;
    Ok(Json(doc(t, now(&s))))
}

/// Something erasure keeps, and in which form.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeptDoc {
    pub what: String,
    pub form: String,
    pub why: String,
}

fn kept(k: Vec<Kept>) -> Vec<KeptDoc> {
    k.into_iter()
        .map(|k| KeptDoc {
            what: k.what.to_owned(),
            form: k.form.to_owned(),
            why: k.why.to_owned(),
        })
        .collect()
}

/// A pending account cancellation.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancellationDoc {
    /// The cancellation's rights ticket.
    pub ticket_id: i64,
    pub requested_at: String,
    /// When the account is erased; until then `DELETE /api/v1/me/cancellation` revokes.
    pub effective_at: String,
    /// What is kept after erasure, only in de-identified form.
    pub kept_deidentified: Vec<KeptDoc>,
}

fn cancellation_doc(c: Cancellation) -> CancellationDoc {
    CancellationDoc {
        ticket_id: c.ticket_id,
        requested_at: rfc3339(c.requested_ms),
        effective_at: rfc3339(c.effective_ms),
        kept_deidentified: kept(c.kept_deidentified),
    }
}

#[utoipa::path(post, path = "/api/v1/me/cancellation", tag = "rights",
    responses((status = 202, description = "cancellation pending until `effective_at`", body = CancellationDoc),
              (status = 401, body = ErrorBody), (status = 403, description = "`reauthentication_required`", body = ErrorBody)))]
pub async fn request_cancellation(
    State(s): State<AppState>,
    Reauth(who): Reauth,
) -> ApiResult<Response> {
    let c = s.rights.request_cancellation(&who).await?;
    Ok((StatusCode::ACCEPTED, Json(cancellation_doc(c))).into_response())
}

#[utoipa::path(get, path = "/api/v1/me/cancellation", tag = "rights",
    responses((status = 200, body = CancellationDoc), (status = 401, body = ErrorBody),
              (status = 404, description = "no cancellation pending", body = ErrorBody)))]
pub async fn get_cancellation(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Json<CancellationDoc>> {
    let c = s
        .rights
        .cancellation(session.0.subject)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(cancellation_doc(c)))
}

#[utoipa::path(delete, path = "/api/v1/me/cancellation", tag = "rights",
    responses((status = 204, description = "revoked; the account stays"), (status = 401, body = ErrorBody),
              (status = 404, description = "no cancellation pending", body = ErrorBody),
              (status = 422, description = "`cooling_off_over`", body = ErrorBody)))]
pub async fn revoke_cancellation(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<StatusCode> {
    s.rights.revoke_cancellation(session.0.subject).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What erasing one cancelled account did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureDoc {
    /// A random reference for the erasure (not the subject).
    pub erasure_ref: String,
    pub ticket_id: i64,
    pub kept_deidentified: Vec<KeptDoc>,
    /// Partners that received data and are owed a notification.
    pub partners_to_notify: Vec<String>,
}

/// Erasures carried out.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureList {
    pub erasures: Vec<ErasureDoc>,
}

#[utoipa::path(post, path = "/api/v1/operator/rights/cancellations/run", tag = "rights",
    security(("operator_token" = [])),
    responses((status = 200, description = "cancellations whose cooling-off ended, now erased", body = ErasureList),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn run_cancellations(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<ErasureList>> {
    operator(&s, &headers, custos_app::ops::Permission::CancellationsRun).await?;
    let done = s.rights.run_due_cancellations().await?;
    Ok(Json(ErasureList {
        erasures: done
            .into_iter()
            .map(|r| ErasureDoc {
                erasure_ref: r.erasure_ref,
                ticket_id: r.ticket_id,
                kept_deidentified: kept(r.kept_deidentified),
                partners_to_notify: r.partners_to_notify,
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/me/export", tag = "rights",
    responses((status = 200, description = "all the caller's data, following `docs/export.schema.json`", body = Object),
              (status = 401, body = ErrorBody), (status = 403, description = "`reauthentication_required`", body = ErrorBody)))]
pub async fn export_json(State(s): State<AppState>, Reauth(who): Reauth) -> ApiResult<Response> {
    let export = s.rights.export(&who).await?;
    Ok((
        [(
            axum::http::header::CONTENT_DISPOSITION,
            "attachment; filename=\"custos-export.json\"",
        )],
        Json(export),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/me/export.html", tag = "rights",
    responses((status = 200, description = "a human-readable summary of the export", content_type = "text/html"),
              (status = 401, body = ErrorBody), (status = 403, description = "`reauthentication_required`", body = ErrorBody)))]
pub async fn export_html(State(s): State<AppState>, Reauth(who): Reauth) -> ApiResult<Response> {
    let export = s.rights.export(&who).await?;
    Ok(axum::response::Html(custos_app::rights::export_html(&export)).into_response())
}
