//! HTTP routes of partners and sharing (`custos_app::ops::partners`, P16, P29, P32, L1).
//!
//! - `GET /api/v1/partners`: the partner registry from the declaration (public).
//! - `POST /api/v1/operator/partners/{id}/shares` (permission `partners.share`): the one
//!   egress path, on the user's consent for a purpose or a recorded legal exception.
//! - `GET /api/v1/me/partner-shares`: every share of the caller's data.
//! - `POST /api/v1/operator/inbound` (permission `inbound.record`): data about a user
//!   received from a third party; `GET /api/v1/me/inbound` shows it to the user and
//!   `POST /api/v1/me/inbound/{id}/confirm` confirms its sensitive fields.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use custos_app::ops::partners::{
    InboundFieldInput, InboundInput, InboundView, PartnerEntry, ShareBasis, ShareRecord,
};
use custos_app::ops::Permission;
use custos_app::AppError;
use custos_core::clock::rfc3339;
use custos_core::{GateContext, Personal, SubjectId};
use custos_policy::LegalBasis;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::error::{ApiJson, ApiPath, ApiResult, ErrorBody};
use crate::ops::operator;
use crate::session::Session;
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/partners", get(list_partners))
        .route("/api/v1/operator/partners/{id}/shares", post(share))
        .route("/api/v1/me/partner-shares", get(my_shares))
        .route("/api/v1/operator/inbound", post(receive_inbound))
        .route("/api/v1/me/inbound", get(my_inbound))
        .route("/api/v1/me/inbound/{id}/confirm", post(confirm_inbound))
}

/// This module's part of the OpenAPI document, merged into [`crate::openapi::ApiDoc`].
#[derive(OpenApi)]
#[openapi(
    paths(list_partners, share, my_shares, receive_inbound, my_inbound, confirm_inbound),
    components(schemas(PartnerDoc, PartnerList, ShareRequest, ExceptionDoc, ShareDoc, ShareRecordDoc,
                       ShareList, InboundRequest, InboundFieldDoc, InboundFieldViewDoc,
                       InboundDoc, InboundList)),
    tags((name = "partners", description = "Partner registry, the one egress path for sharing, data received from third parties (P16, P29, P32, L1)"))
)]
pub struct PartnersApi;

/// A registered partner.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerDoc {
    pub id: String,
    pub name_en: String,
    pub name_zh: String,
    pub contact: String,
    /// ISO 3166-1 alpha-2 code of where it keeps the data.
    pub region: String,
    pub cross_border: bool,
    /// Receives data as a controller of its own (needs separate consent, L1).
    pub independent_controller: bool,
    /// Purposes naming it as a recipient.
    pub purposes: Vec<String>,
    /// The categories it may receive; everything else is stripped.
    pub allowed_fields: Vec<String>,
    /// The contract binding it to equivalent protection.
    pub contract: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerList {
    pub partners: Vec<PartnerDoc>,
}

/// A legal exception to consent (P32).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExceptionDoc {
    /// `legal_obligation`, `national_security`, `public_health`, `criminal_investigation`,
    /// `vital_interests`, `made_public_by_subject`, `lawful_public_source` or `other_law`.
    #[schema(value_type = String)]
    pub basis: LegalBasis,
    /// The order, case or request it answers.
    pub reference: String,
    pub reason: String,
}

/// A share: on the user's consent for `purpose`, or under `exception`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// The user (subject id).
    pub subject: String,
    /// Field names: `pseudonymous_id`, `interest_traits` or a stored field.
    pub fields: Vec<String>,
    pub purpose: Option<String>,
    pub exception: Option<ExceptionDoc>,
}

/// What was shared.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShareDoc {
    pub share_id: i64,
    pub partner: String,
    pub sent: Vec<String>,
    /// Withheld: not on the partner's allow-list.
    pub stripped: Vec<String>,
    pub status: String,
}

/// One logged share of the user's data.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShareRecordDoc {
    pub id: i64,
    pub partner: String,
    pub purpose: Option<String>,
    /// `consent` or the legal basis of the exception.
    pub basis: String,
    pub exception_reference: Option<String>,
    pub exception_reason: Option<String>,
    pub fields: Vec<String>,
    pub stripped: Vec<String>,
    pub policy_hash: String,
    pub status: String,
    pub at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShareList {
    pub shares: Vec<ShareRecordDoc>,
}

/// One received field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundFieldDoc {
    /// a–z, 0–9 and _.
    pub name: String,
    /// A category the purpose declares.
    pub category: String,
    pub value: String,
}

/// Data about a user received from a third party (P16).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundRequest {
    pub subject: String,
    pub source: String,
    /// The source's statement that the user consented to it giving us the data.
    pub consent_commitment: String,
    pub purpose: String,
    pub fields: Vec<InboundFieldDoc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InboundFieldViewDoc {
    pub name: String,
    pub category: String,
    pub sensitive: bool,
    /// Sensitive fields are used only once the user confirms them.
    pub confirmed: bool,
    pub value: Option<String>,
}

/// One delivery from a third party.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundDoc {
    pub id: i64,
    pub source: String,
    pub consent_commitment: String,
    pub purpose: String,
    pub received_at: String,
    pub fields: Vec<InboundFieldViewDoc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InboundList {
    pub inbound: Vec<InboundDoc>,
}

fn subject(v: &str) -> ApiResult<SubjectId> {
    v.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_subject",
            "`subject` must be a subject id",
        )
    })
}

fn partner_doc(p: PartnerEntry) -> PartnerDoc {
    PartnerDoc {
        id: p.id,
        name_en: p.name_en,
        name_zh: p.name_zh,
        contact: p.contact,
        region: p.region,
        cross_border: p.cross_border,
        independent_controller: p.independent_controller,
        purposes: p.purposes,
        allowed_fields: p.allowed_fields,
        contract: p.contract,
    }
}

fn share_doc(s: ShareRecord) -> ShareRecordDoc {
    ShareRecordDoc {
        id: s.id,
        partner: s.partner,
        purpose: s.purpose,
        basis: s.basis,
        exception_reference: s.exception_ref,
        exception_reason: s.exception_reason,
        fields: s.fields,
        stripped: s.stripped,
        policy_hash: s.policy_hash,
        status: s.status,
        at: rfc3339(s.at_ms),
    }
}

fn inbound_doc(v: InboundView) -> InboundDoc {
    InboundDoc {
        id: v.id,
        source: v.source,
        consent_commitment: v.consent_commitment,
        purpose: v.purpose,
        received_at: rfc3339(v.received_ms),
        fields: v
            .fields
            .into_iter()
            .map(|f| InboundFieldViewDoc {
                name: f.name,
                category: f.category,
                sensitive: f.sensitive,
                confirmed: f.confirmed,
                value: f.value,
            })
            .collect(),
    }
}

/// The partner registry, from the declaration.
#[utoipa::path(get, path = "/api/v1/partners", tag = "partners", responses((status = 200, body = PartnerList)))]
pub async fn list_partners(State(s): State<AppState>) -> Json<PartnerList> {
    Json(PartnerList {
        partners: s.ops.partners().into_iter().map(partner_doc).collect(),
    })
}

/// Shares fields of a user's data with a partner: the only egress path. Checks consent
/// (separate for an independent controller or a partner abroad) or the legal exception,
/// GPC objections and the region; strips fields off the allow-list; logs the share.
#[utoipa::path(post, path = "/api/v1/operator/partners/{id}/shares", tag = "partners", security(("operator_token" = [])),
    params(("id" = String, Path, description = "partner id")), request_body = ShareRequest,
    responses((status = 201, body = ShareDoc),
              (status = 403, description = "`consent_missing`, `gpc_objection`, …", body = ErrorBody),
              (status = 422, description = "`unknown_partner`, `nothing_to_share`, `cross_border_consent_required`, `basis_not_allowed`, …", body = ErrorBody),
              (status = 503, description = "the partner did not accept it", body = ErrorBody)))]
pub async fn share(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiPath(partner): ApiPath<String>,
    ApiJson(r): ApiJson<ShareRequest>,
) -> ApiResult<Response> {
    let actor = operator(&s, &headers, Permission::PartnersShare).await?;
    let subject = subject(&r.subject)?;
    let basis = match (r.purpose, r.exception) {
        (Some(purpose), None) => ShareBasis::Consent { purpose },
        (None, Some(e)) => ShareBasis::Exception {
            basis: e.basis,
            reference: e.reference,
            reason: e.reason,
        },
        _ => {
            return Err(AppError::bad(
                "invalid_basis",
                "give either `purpose` (the user's consent) or `exception` (P32)",
            )
            .into())
        }
    };
    let out = s
        .ops
        .share(
            &actor,
            subject,
            &partner,
            &r.fields,
            &basis,
            &GateContext::default(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ShareDoc {
            share_id: out.share_id,
            partner: out.partner,
            sent: out.sent,
            stripped: out.stripped,
            status: out.status,
        }),
    )
        .into_response())
}

/// Every share of the caller's data with partners (P29).
#[utoipa::path(get, path = "/api/v1/me/partner-shares", tag = "partners",
    responses((status = 200, body = ShareList), (status = 401, body = ErrorBody)))]
pub async fn my_shares(State(s): State<AppState>, session: Session) -> ApiResult<Json<ShareList>> {
    let shares = s.ops.shares_of(session.0.subject).await?;
    Ok(Json(ShareList {
        shares: shares.into_iter().map(share_doc).collect(),
    }))
}

/// Records data about a user received from a third party (P16).
#[utoipa::path(post, path = "/api/v1/operator/inbound", tag = "partners", security(("operator_token" = [])),
    request_body = InboundRequest,
    responses((status = 201, body = InboundDoc), (status = 403, description = "the gate refused", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn receive_inbound(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiJson(r): ApiJson<InboundRequest>,
) -> ApiResult<Response> {
    let actor = operator(&s, &headers, Permission::InboundRecord).await?;
    let input = InboundInput {
        subject: subject(&r.subject)?,
        source: r.source,
        consent_commitment: r.consent_commitment,
        purpose: r.purpose,
        fields: r
            .fields
            .into_iter()
            .map(|f| InboundFieldInput {
                name: f.name,
                category: f.category,
                value: Personal::new(f.value),
            })
            .collect(),
    };
    let v = s.ops.receive_inbound(&actor, &input).await?;
    Ok((StatusCode::CREATED, Json(inbound_doc(v))).into_response())
}

/// What third parties sent about the caller, with the values.
#[utoipa::path(get, path = "/api/v1/me/inbound", tag = "partners",
    responses((status = 200, body = InboundList), (status = 401, body = ErrorBody)))]
pub async fn my_inbound(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Json<InboundList>> {
    let list = s.ops.inbound_of(session.0.subject).await?;
    Ok(Json(InboundList {
        inbound: list.into_iter().map(inbound_doc).collect(),
    }))
}

/// Confirms the sensitive fields of one delivery, so they may be used.
#[utoipa::path(post, path = "/api/v1/me/inbound/{id}/confirm", tag = "partners",
    params(("id" = i64, Path, description = "delivery id")),
    responses((status = 200, body = InboundDoc), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn confirm_inbound(
    State(s): State<AppState>,
    session: Session,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<InboundDoc>> {
    let v = s.ops.confirm_inbound(session.0.subject, id).await?;
    Ok(Json(inbound_doc(v)))
}
