//! Handlers. Each extracts, calls one use case, maps the result.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use custos_app::consent::{DecisionInput, PurposeStatus, Receipt};
use custos_core::{ConsentMethod, Decision};
use custos_policy::{render, Lang};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::caller::{anon_cookie, Caller};
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::observe::metrics))
        .route("/api/openapi.json", get(openapi_json))
        .route("/.well-known/gpc.json", get(gpc_json))
        .route("/.well-known/custos/receipt-keys.json", get(receipt_keys))
        .route("/policy", get(policy_page))
        .route("/api/v1/policy", get(get_policy))
        .route("/api/v1/policy/page", get(get_policy_page))
        .route("/api/v1/policy/records", get(get_records))
        .route("/api/v1/purposes", get(list_purposes))
        .route("/api/v1/consents", post(record_consents).get(list_consents))
        .route("/api/v1/consents/{purpose}/withdraw", post(withdraw))
        .route("/api/v1/receipts/{id}", get(get_receipt))
        .merge(crate::identity::routes())
        .merge(crate::catalog::routes())
        .merge(crate::signals::routes())
        .merge(crate::device::routes())
        .merge(crate::ads::routes())
        .merge(crate::push::routes())
        .merge(crate::feed::routes())
        .merge(crate::ops::routes())
        .merge(crate::ops_policy::routes())
        .merge(crate::incidents::routes())
        .merge(crate::partners::routes())
        .merge(crate::rights::routes())
        .fallback(not_found)
        // Operator requests carry their method and path to the audit log.
        .layer(axum::middleware::from_fn(crate::ops::request_line))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "ready", body = String),
    (status = 503, description = "database unreachable", body = ErrorBody)))]
pub async fn readyz(State(s): State<AppState>) -> ApiResult<&'static str> {
    s.kernel.db.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database does not answer",
        )
    })?;
    Ok("ready")
}

async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document(),
    )
}

/// Global Privacy Control support statement (L14).
async fn gpc_json() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "gpc": true, "lastUpdate": "2026-11-29" }))
}

/// The public key that verifies consent receipts, as a JWK Set.
#[utoipa::path(get, path = "/.well-known/custos/receipt-keys.json", tag = "consent",
    responses((status = 200, description = "JWK Set with the Ed25519 receipt key", body = Object)))]
pub async fn receipt_keys(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "keys": [s.kernel.signer.public_jwk()] }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// `zh` or `en`; defaults from `Accept-Language`.
    pub lang: Option<String>,
    /// `html` (default) or `markdown`.
    pub format: Option<String>,
}

fn pick_lang(q: Option<&str>, headers: &HeaderMap) -> Result<Lang, ApiError> {
    if let Some(l) = q {
        return Lang::parse(l).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_lang",
                "lang must be zh or en",
            )
        });
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // The first language tag the caller lists that we speak; Chinese when none.
    for tag in accept.split(',') {
        let t = tag
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if t.starts_with("en") {
            return Ok(Lang::En);
        }
        if t.starts_with("zh") {
            return Ok(Lang::Zh);
        }
    }
    Ok(Lang::Zh)
}

/// The policy page users read, rendered from the current declaration (P40).
async fn policy_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Response> {
    let lang = pick_lang(q.lang.as_deref(), &headers)?;
    let regime = s.kernel.gate.regime();
    Ok(Html(render::html(regime.current(), lang)).into_response())
}

/// The policy page as HTML or Markdown.
#[utoipa::path(get, path = "/api/v1/policy/page", tag = "policy", params(PageQuery), responses(
    (status = 200, description = "rendered policy", content_type = "text/html", body = String),
    (status = 400, description = "bad language or format", body = ErrorBody)))]
pub async fn get_policy_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Response> {
    let lang = pick_lang(q.lang.as_deref(), &headers)?;
    let regime = s.kernel.gate.regime();
    match q.format.as_deref().unwrap_or("html") {
        "html" => Ok(Html(render::html(regime.current(), lang)).into_response()),
        "markdown" | "md" => Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/markdown; charset=utf-8"),
            )],
            render::markdown(regime.current(), lang),
        )
            .into_response()),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_format",
            "format must be html or markdown",
        )),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionSummary {
    pub hash: String,
    pub revision: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyDocument {
    /// Content hash of the current version.
    pub hash: String,
    pub revision: String,
    /// The declaration, machine-readable.
    #[schema(value_type = Object)]
    pub declaration: serde_json::Value,
    /// Every published version, oldest first.
    pub versions: Vec<VersionSummary>,
}

/// The current declaration, machine-readable, with the version history.
#[utoipa::path(get, path = "/api/v1/policy", tag = "policy", responses((status = 200, body = PolicyDocument)))]
pub async fn get_policy(State(s): State<AppState>) -> ApiResult<Json<PolicyDocument>> {
    let regime = s.kernel.gate.regime();
    let current = regime.current();
    Ok(Json(PolicyDocument {
        hash: current.hash().to_string(),
        revision: current.declaration().revision.clone(),
        declaration: serde_json::to_value(current.declaration())
            .map_err(|e| ApiError::from(custos_app::AppError::Internal(e.to_string())))?,
        versions: regime
            .versions()
            .iter()
            .map(|p| VersionSummary {
                hash: p.hash().to_string(),
                revision: p.declaration().revision.clone(),
            })
            .collect(),
    }))
}

/// Records of processing generated from the declaration, with each purpose's impact
/// assessment record (L10): JSON, CSV or HTML.
#[utoipa::path(get, path = "/api/v1/policy/records", tag = "policy",
    params(crate::ops_policy::RecordsQuery),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody)))]
pub async fn get_records(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<crate::ops_policy::RecordsQuery>,
) -> ApiResult<Response> {
    crate::ops_policy::records_response(s.kernel.gate.regime().current(), &q)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PurposeView {
    pub purpose: String,
    #[schema(value_type = String, example = "additional")]
    pub tier: custos_policy::Tier,
    #[schema(value_type = String, example = "consent")]
    pub basis: custos_policy::LegalBasis,
    pub separate_consent: bool,
    /// Whether an anonymous caller may decide on it.
    pub anonymous: bool,
    /// `active`, `not_applicable`, or why it is not active (`consent_missing`, …).
    pub status: String,
}

impl From<PurposeStatus> for PurposeView {
    fn from(p: PurposeStatus) -> Self {
        PurposeView {
            purpose: p.purpose,
            tier: p.tier,
            basis: p.basis,
            separate_consent: p.separate_consent,
            anonymous: p.anonymous,
            status: p.status.to_owned(),
        }
    }
}

/// Each purpose and its status for the caller.
#[utoipa::path(get, path = "/api/v1/purposes", tag = "consent", responses((status = 200, body = [PurposeView]), (status = 503, body = ErrorBody)))]
pub async fn list_purposes(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<PurposeView>>> {
    // Without an identifier, every purpose shows its default: off.
    let subject = caller
        .subject
        .unwrap_or_else(|| custos_core::SubjectId::from_u128(0));
    let mut statuses = s.kernel.purpose_statuses(subject).await?;
    if caller.account {
        s.identity
            .mark_guardian_required(subject, &mut statuses)
            .await?;
    }
    Ok(Json(statuses.into_iter().map(PurposeView::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionItem {
    /// Purpose id from the declaration.
    pub purpose: String,
    /// `given`, `refused` or `withdrawn`.
    #[schema(value_type = String, example = "given")]
    pub decision: Decision,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    pub decisions: Vec<DecisionItem>,
    /// `dialog`, `settings` or `api` (default).
    #[schema(value_type = Option<String>, example = "dialog")]
    pub method: Option<ConsentMethod>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptView {
    pub receipt_id: Uuid,
    /// Kantara Consent Receipt v1.1 fields.
    #[schema(value_type = Object)]
    pub receipt: serde_json::Value,
    /// Compact JWS (EdDSA) over `receipt`; verify with `/.well-known/custos/receipt-keys.json`.
    pub jws: String,
    /// Set only when this request created the caller's anonymous identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anonymous_token: Option<String>,
}

impl ReceiptView {
    pub(crate) fn new(r: Receipt, anonymous_token: Option<String>) -> Self {
        ReceiptView {
            receipt_id: r.receipt_id,
            receipt: r.receipt,
            jws: r.jws,
            anonymous_token,
        }
    }
}

/// Records decisions made together and returns their signed receipt.
#[utoipa::path(post, path = "/api/v1/consents", tag = "consent", request_body = DecisionRequest, responses(
    (status = 201, description = "recorded", body = ReceiptView),
    (status = 403, description = "an account is required for a purpose", body = ErrorBody),
    (status = 422, description = "invalid decisions", body = ErrorBody)))]
pub async fn record_consents(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<DecisionRequest>,
) -> ApiResult<Response> {
    let method = req.method.unwrap_or(ConsentMethod::Api);
    if method == ConsentMethod::Gpc {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_method",
            "the gpc method is recorded by the server, not sent",
        ));
    }
    let decisions: Vec<DecisionInput> = req
        .decisions
        .into_iter()
        .map(|d| DecisionInput {
            purpose: d.purpose,
            decision: d.decision,
        })
        .collect();
    // Only the guardian's own flow records a guardian's consent, for every caller.
    custos_app::identity::minors::check_guardian_decisions(&decisions)?;
    // A new anonymous identifier only once the decisions are known to be acceptable.
    let (subject, token) = match caller.subject {
        Some(sub) => (sub, None),
        None => {
            s.kernel.check_decisions(true, &decisions)?;
            let (token, sub) = s.kernel.new_anonymous_subject().await?;
            (sub, Some(token))
        }
    };
    if caller.account {
        s.identity
            .check_minor_decisions(subject, &decisions)
            .await?;
    }
    let receipt = s
        .kernel
        .record_decisions(subject, !caller.account, &decisions, method)
        .await?;
    s.signals.after_decisions(subject, &decisions).await?;
    // P27: the identifier cookie only while a consent that needs it stands.
    let cookie = if caller.account {
        None
    } else if s.signals.identifier_needed(subject).await? {
        token.as_deref().map(anon_cookie)
    } else {
        caller.subject.map(|_| crate::ads::clear_anon_cookie())
    };
    let mut resp = (StatusCode::CREATED, Json(ReceiptView::new(receipt, token))).into_response();
    if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentView {
    pub seq: i64,
    pub purpose: String,
    pub decision: String,
    pub method: String,
    pub policy_hash: String,
    pub receipt_id: Uuid,
    /// RFC 3339.
    pub at: String,
}

fn require_subject(caller: &Caller) -> ApiResult<custos_core::SubjectId> {
    caller.subject.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unidentified",
            "no identifier was sent; record a decision first",
        )
    })
}

/// The caller's decisions, oldest first.
#[utoipa::path(get, path = "/api/v1/consents", tag = "consent", responses(
    (status = 200, body = [ConsentView]), (status = 401, body = ErrorBody)))]
pub async fn list_consents(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ConsentView>>> {
    let subject = require_subject(&caller)?;
    let history = s.kernel.consent_history(subject).await?;
    Ok(Json(
        history
            .into_iter()
            .map(|r| ConsentView {
                seq: r.seq,
                purpose: r.purpose,
                decision: r.decision.as_str().to_owned(),
                method: r.method.as_str().to_owned(),
                policy_hash: r.policy_hash,
                receipt_id: r.receipt_id,
                at: custos_core::clock::rfc3339(r.at_ms),
            })
            .collect(),
    ))
}

/// Withdraws consent for one purpose: one call (P39).
#[utoipa::path(post, path = "/api/v1/consents/{purpose}/withdraw", tag = "consent",
    params(("purpose" = String, Path, description = "purpose id")),
    responses((status = 200, body = ReceiptView), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn withdraw(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(purpose): ApiPath<String>,
) -> ApiResult<Response> {
    let subject = require_subject(&caller)?;
    let r = s
        .kernel
        .withdraw(subject, !caller.account, &purpose, ConsentMethod::Settings)
        .await?;
    let withdrawn = [DecisionInput {
        purpose,
        decision: Decision::Withdrawn,
    }];
    s.signals.after_decisions(subject, &withdrawn).await?;
    let mut resp = Json(ReceiptView::new(r, None)).into_response();
    // P27: the last consent that needed the identifier is gone, so is its cookie.
    if !caller.account && !s.signals.identifier_needed(subject).await? {
        if let Ok(v) = HeaderValue::from_str(&crate::ads::clear_anon_cookie()) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

/// One of the caller's receipts, signed.
#[utoipa::path(get, path = "/api/v1/receipts/{id}", tag = "consent",
    params(("id" = Uuid, Path, description = "receipt id")),
    responses((status = 200, body = ReceiptView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_receipt(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ReceiptView>> {
    let subject = require_subject(&caller)?;
    Ok(Json(ReceiptView::new(
        s.kernel.receipt(subject, id).await?,
        None,
    )))
}
