//! Complaints and reports over HTTP (P34) and the controller's contact (P37). Anyone files
//! one, signed in or not; an anonymous filer gets a follow-up secret, sent back in the
//! `X-Custos-Follow-Up` header to read the answer. Operators answer with the operator
//! token.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use custos_app::rights::complaints::{ComplaintInput, ComplaintView, Contact};
use custos_app::AppError;
use custos_core::clock::rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{doc, now, ComplaintRouteDoc, TicketDoc};
use crate::caller::Caller;
use crate::catalog::operator;
use crate::error::{ApiJson, ApiPath, ApiResult, ErrorBody};
use crate::session::Session;
use crate::AppState;

/// The header an anonymous filer reads their complaint with.
pub const FOLLOW_UP_HEADER: &str = "x-custos-follow-up";

/// A complaint or report.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComplaint {
    /// `complaint` (how the service treats you or your data) or `report` (content, conduct).
    pub kind: String,
    /// `content`, `data_handling` or `service`.
    pub topic: String,
    /// What it concerns: `item:<id>`, `comment:<id>`, `media:<id>`, `ad:<id>` or `account`.
    pub about: Option<String>,
    /// What happened, in the filer's words (1 to 4000 characters).
    pub detail: String,
}

/// A complaint or report with its ticket and answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComplaintDoc {
    pub id: i64,
    pub kind: String,
    pub topic: String,
    pub about: Option<String>,
    pub anonymous: bool,
    /// The operator's answer, once given.
    pub answer: Option<String>,
    pub answered_at: Option<String>,
    /// The ticket: deadline, status (`answered` once answered) and history.
    pub ticket: TicketDoc,
}

/// What filing returns.
#[derive(Debug, Serialize, ToSchema)]
pub struct FiledDoc {
    pub complaint: ComplaintDoc,
    /// For anonymous filers only, shown once: send it as `X-Custos-Follow-Up` to
    /// `GET /api/v1/complaints/follow-up` to read the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow_up_secret: Option<String>,
}

/// Complaints.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComplaintList {
    pub complaints: Vec<ComplaintDoc>,
}

/// An operator's answer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// The answer the filer reads (1 to 4000 characters).
    pub answer: String,
}

/// Bilingual text.
#[derive(Debug, Serialize, ToSchema)]
pub struct TextDoc {
    pub en: String,
    pub zh: String,
}

/// How to reach the controller (P37), from the published declaration.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactDoc {
    pub name: TextDoc,
    pub address: TextDoc,
    pub email: String,
    pub phone: String,
    pub dpo_email: Option<String>,
    /// Where to turn when our answer does not settle the matter.
    pub complaint_route: ComplaintRouteDoc,
    /// Where to file a complaint or report with us.
    pub complaints_endpoint: String,
}

fn complaint_doc(c: ComplaintView, now_ms: i64) -> ComplaintDoc {
    ComplaintDoc {
        id: c.ticket.id,
        kind: c.ticket.kind.as_str().to_owned(),
        topic: c.topic,
        about: c.about,
        anonymous: c.anonymous,
        answer: c.answer,
        answered_at: c.answered_ms.map(rfc3339),
        ticket: doc(c.ticket, now_ms),
    }
}

#[utoipa::path(post, path = "/api/v1/complaints", tag = "rights", request_body = NewComplaint,
    responses((status = 201, body = FiledDoc), (status = 400, description = "malformed body", body = ErrorBody),
              (status = 422, description = "`unknown_kind`, `unknown_topic`, `invalid_about`, `detail_required`, `detail_too_long`", body = ErrorBody)))]
pub async fn file_complaint(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(r): ApiJson<NewComplaint>,
) -> ApiResult<Response> {
    let input = ComplaintInput::parse(&r.kind, &r.topic, r.about.as_deref(), &r.detail)?;
    let filer = caller.subject.filter(|_| caller.account);
    let f = s.rights.file_complaint(filer, &input).await?;
    let body = FiledDoc {
        complaint: complaint_doc(f.complaint, now(&s)),
        follow_up_secret: f.follow_up_secret,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[utoipa::path(get, path = "/api/v1/complaints/follow-up", tag = "rights",
    params(("x-custos-follow-up" = String, Header, description = "the secret given when filing")),
    responses((status = 200, body = ComplaintDoc), (status = 404, description = "no complaint has this secret", body = ErrorBody)))]
pub async fn follow_up(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<ComplaintDoc>> {
    let secret = headers
        .get(FOLLOW_UP_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(AppError::NotFound)?;
    let c = s.rights.complaint_by_secret(secret).await?;
    Ok(Json(complaint_doc(c, now(&s))))
}

#[utoipa::path(get, path = "/api/v1/me/complaints", tag = "rights",
    responses((status = 200, body = ComplaintList), (status = 401, body = ErrorBody)))]
pub async fn my_complaints(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Json<ComplaintList>> {
    let n = now(&s);
    let list = s.rights.complaints(session.0.subject).await?;
    Ok(Json(ComplaintList {
        complaints: list.into_iter().map(|c| complaint_doc(c, n)).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/me/complaints/{id}", tag = "rights",
    params(("id" = i64, Path, description = "the complaint's ticket id")),
    responses((status = 200, body = ComplaintDoc), (status = 401, body = ErrorBody),
              (status = 404, description = "not one of the caller's complaints", body = ErrorBody)))]
pub async fn my_complaint(
    State(s): State<AppState>,
    session: Session,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ComplaintDoc>> {
    let c = s.rights.complaint(session.0.subject, id).await?;
    Ok(Json(complaint_doc(c, now(&s))))
}

#[utoipa::path(post, path = "/api/v1/operator/complaints/{id}/answer", tag = "rights",
    params(("id" = i64, Path, description = "the complaint's ticket id")), request_body = AnswerRequest,
    security(("operator_token" = [])),
    responses((status = 200, description = "answered and closed", body = ComplaintDoc),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, description = "`answer_required`, `answer_too_long`, `ticket_closed`", body = ErrorBody)))]
pub async fn answer_complaint(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    ApiJson(r): ApiJson<AnswerRequest>,
) -> ApiResult<Json<ComplaintDoc>> {
    operator(
        &s,
        &headers,
        custos_app::ops::Permission::RightsTicketsDecide,
    )
    .await?;
    let c = s.rights.answer_complaint(id, &r.answer).await?;
    Ok(Json(complaint_doc(c, now(&s))))
}

#[utoipa::path(get, path = "/api/v1/contact", tag = "rights",
    responses((status = 200, description = "the controller's contact details and complaint route", body = ContactDoc)))]
pub async fn contact(State(s): State<AppState>) -> Json<ContactDoc> {
    let Contact {
        name,
        address,
        email,
        phone,
        dpo_email,
        complaint_route,
    } = s.rights.contact();
    Json(ContactDoc {
        name: TextDoc {
            en: name.en,
            zh: name.zh,
        },
        address: TextDoc {
            en: address.en,
            zh: address.zh,
        },
        email,
        phone,
        dpo_email,
        complaint_route: ComplaintRouteDoc {
            en: complaint_route.en,
            zh: complaint_route.zh,
        },
        complaints_endpoint: "/api/v1/complaints".to_owned(),
    })
}
