//! HTTP routes of the policy's lifecycle obligations (`custos_app::ops::revisions` and
//! siblings): what changed between versions, the re-consent dialog and Agree (P35, L4),
//! cessations (P18, P22), change of controller (P31), residency (P20), records of
//! processing in JSON, CSV or HTML (L10), and the middleware that answers
//! `410 feature_discontinued` for a discontinued feature's endpoints.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use custos_app::ops::cessation::{parse_period, CessationTarget};
use custos_app::ops::controller::NewController;
use custos_app::ops::revisions::PendingReconsent;
use custos_app::ops::Permission;
use custos_policy::{records, render, Lang, Text};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::caller::Caller;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
use crate::routes::ReceiptView;
use crate::{ApiError, AppState};

/// The permission that changes the policy's lifecycle (cessations, controller) and reads
/// it (cessation progress, sink regions). Held by the privacy officer and the admin.
const POLICY_MANAGE: Permission = Permission::PolicyManage;
const POLICY_READ: Permission = Permission::PolicyManage;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/policy/changes", get(policy_changes))
        .route("/api/v1/policy/announcements", get(announcements))
        .route("/api/v1/policy/versions/{hash}/agree", post(agree))
        .route("/api/v1/me/policy", get(my_policy))
        .route(
            "/api/v1/operator/cessations",
            get(list_cessations).post(discontinue),
        )
        .route("/api/v1/operator/cessations/run", post(run_cessations))
        .route("/api/v1/operator/controller", post(change_controller))
        .route("/api/v1/operator/residency", get(residency))
}

/// This module's part of the OpenAPI document, merged into [`crate::openapi::ApiDoc`].
#[derive(OpenApi)]
#[openapi(
    paths(policy_changes, announcements, agree, my_policy, list_cessations, discontinue,
          run_cessations, change_controller, residency),
    components(schemas(PendingView, MyPolicyView, AgreeRequest, AgreeView, AnnouncementView,
                       CessationRequest, CessationView, ControllerRequest, RevisionView, SinkView,
                       ResidencyView)),
    tags((name = "policy-lifecycle", description = "Revisions and re-consent, cessation, change of controller, residency (P18, P20, P22, P31, P35, L4)"))
)]
pub struct OpsPolicyApi;

/// Answers `410 feature_discontinued` for every request (but `DELETE`, which removes
/// the user's own data) under a discontinued feature's endpoints (P18, P22).
pub async fn discontinued(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::DELETE {
        if let Some((feature, erase_at)) = s.policy_ops.discontinued_path(req.uri().path()) {
            return ApiError::new(
                StatusCode::GONE,
                "feature_discontinued",
                format!(
                    "the feature `{feature}` was discontinued; collection for it has stopped and \
                     its data will be deleted after {}",
                    custos_core::clock::rfc3339(erase_at)
                ),
            )
            .into_response();
        }
    }
    next.run(req).await
}

fn lang_of(q: Option<&str>) -> Result<Lang, ApiError> {
    match q {
        None => Ok(Lang::Zh),
        Some(l) => Lang::parse(l).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_lang",
                "lang must be zh or en",
            )
        }),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ChangesQuery {
    /// The version the reader last saw: content hash or a prefix of at least 6 digits.
    pub since: String,
    /// `json` (default) or `html`.
    pub format: Option<String>,
    /// `zh` (default) or `en`.
    pub lang: Option<String>,
}

/// What changed from `since` to the current version, purpose by purpose, and which
/// purposes pause until the reader agrees; `format=html` gives the rendered page.
#[utoipa::path(get, path = "/api/v1/policy/changes", tag = "policy-lifecycle", params(ChangesQuery),
    responses((status = 200, description = "the diff (JSON) or the rendered changes (HTML)", body = Object),
              (status = 422, description = "unknown or malformed version", body = ErrorBody)))]
pub async fn policy_changes(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ChangesQuery>,
) -> ApiResult<Response> {
    let lang = lang_of(q.lang.as_deref())?;
    let (old, new, diff) = s.policy_ops.changes_since(&q.since)?;
    match q.format.as_deref().unwrap_or("json") {
        "html" => Ok(Html(records::changes_html(&old, &new, &diff, lang)).into_response()),
        "json" => Ok(Json(serde_json::json!({
            "from": old.hash(),
            "from_revision": old.declaration().revision,
            "to": new.hash(),
            "to_revision": new.declaration().revision,
            "needs_consent": diff.needs_consent(),
            "diff": diff,
            "markdown": records::changes_markdown(&old, &new, &diff, lang),
        }))
        .into_response()),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_format",
            "format must be json or html",
        )),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnnouncementView {
    pub version: String,
    /// `revision` or `controller_change`.
    pub kind: String,
    pub previous_version: Option<String>,
    /// Purposes paused for each user until they agree.
    pub paused_purposes: Vec<String>,
    /// RFC 3339.
    pub announced_at: String,
}

/// Every announced version, oldest first (the public announcement of revisions).
#[utoipa::path(get, path = "/api/v1/policy/announcements", tag = "policy-lifecycle",
    responses((status = 200, body = [AnnouncementView])))]
pub async fn announcements(State(s): State<AppState>) -> ApiResult<Json<Vec<AnnouncementView>>> {
    Ok(Json(
        s.policy_ops
            .announcements()
            .await?
            .into_iter()
            .map(|a| AnnouncementView {
                version: a.hash,
                kind: a.kind.as_str().to_owned(),
                previous_version: a.previous_hash,
                paused_purposes: a.paused_purposes,
                announced_at: custos_core::clock::rfc3339(a.announced_at_ms),
            })
            .collect(),
    ))
}

/// Purposes waiting for the user's agreement to one version.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingView {
    /// Agree with this version's hash.
    pub version: String,
    pub revision: String,
    /// Resumed by a plain Agree.
    pub purposes: Vec<String>,
    /// Each needs its own agreement (send it alone in `purposes`).
    pub separate: Vec<String>,
}

impl From<PendingReconsent> for PendingView {
    fn from(p: PendingReconsent) -> Self {
        PendingView {
            version: p.version,
            revision: p.revision,
            purposes: p.purposes,
            separate: p.separate,
        }
    }
}

/// The reader's standing under the current policy: the dialog to show on sign-in.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyPolicyView {
    pub current: String,
    pub revision: String,
    pub pending_reconsent: Vec<PendingView>,
}

/// The purposes paused for the caller until they agree to the version that changed them.
#[utoipa::path(get, path = "/api/v1/me/policy", tag = "policy-lifecycle",
    responses((status = 200, body = MyPolicyView)))]
pub async fn my_policy(State(s): State<AppState>, caller: Caller) -> ApiResult<Json<MyPolicyView>> {
    let regime = s.kernel.gate.regime();
    let pending = match caller.subject {
        Some(subject) => s.policy_ops.pending_reconsent(subject).await?,
        None => Vec::new(),
    };
    Ok(Json(MyPolicyView {
        current: regime.current().hash().to_string(),
        revision: regime.current().declaration().revision.clone(),
        pending_reconsent: pending.into_iter().map(PendingView::from).collect(),
    }))
}

/// The pending list for the `GET /api/v1/me` answer.
pub async fn pending_for(
    s: &AppState,
    subject: custos_core::SubjectId,
) -> ApiResult<Vec<PendingView>> {
    Ok(s.policy_ops
        .pending_reconsent(subject)
        .await?
        .into_iter()
        .map(PendingView::from)
        .collect())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgreeRequest {
    /// Omit for a plain Agree (the purposes the version paused for you, except those
    /// needing separate consent); or name purposes the version added, widened or paused —
    /// a separate-consent purpose alone.
    pub purposes: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgreeView {
    pub version: String,
    pub agreed: Vec<String>,
    /// The signed receipt of the decisions, when any was recorded.
    pub receipt: Option<ReceiptView>,
    pub still_pending: Vec<String>,
}

/// Agree to a version: records fresh consent in the ledger; the paused purposes resume.
#[utoipa::path(post, path = "/api/v1/policy/versions/{hash}/agree", tag = "policy-lifecycle",
    params(("hash" = String, Path, description = "version hash or prefix")),
    request_body = AgreeRequest,
    responses((status = 200, body = AgreeView), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn agree(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(hash): ApiPath<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<AgreeView>> {
    let subject = caller.subject.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unidentified",
            "sign in (or send your anonymous identifier) to agree",
        )
    })?;
    // The body is optional: empty means a plain Agree.
    let req: AgreeRequest = if body.iter().all(u8::is_ascii_whitespace) {
        AgreeRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_json",
                format!("the body is not a valid agreement: {e}"),
            )
        })?
    };
    let out = s
        .policy_ops
        .agree(subject, !caller.account, &hash, req.purposes.as_deref())
        .await?;
    Ok(Json(AgreeView {
        version: out.version,
        agreed: out.agreed,
        receipt: out.receipt.map(|r| ReceiptView::new(r, None)),
        still_pending: out.still_pending,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CessationRequest {
    /// A declared feature id; omit with `service: true` to stop the whole service.
    pub feature: Option<String>,
    #[serde(default)]
    pub service: bool,
    /// When the data is deleted: `30d`, `12h`, … (default `30d`).
    pub after: Option<String>,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CessationView {
    pub id: i64,
    /// `feature` or `service`.
    pub scope: String,
    /// The feature id, `*` for the service.
    pub feature: String,
    pub purposes: Vec<String>,
    pub reason: String,
    pub ceased_at: String,
    pub erase_after: String,
    /// `collection_stopped`, `erasing` or `completed`.
    pub status: String,
    pub notified: i64,
    pub subjects_total: i64,
    pub subjects_done: i64,
    pub completed_at: Option<String>,
}

impl From<custos_app::ops::cessation::Cessation> for CessationView {
    fn from(c: custos_app::ops::cessation::Cessation) -> Self {
        use custos_core::clock::rfc3339;
        CessationView {
            id: c.id,
            scope: c.scope,
            feature: c.feature,
            purposes: c.purposes,
            reason: c.reason,
            ceased_at: rfc3339(c.ceased_at_ms),
            erase_after: rfc3339(c.erase_after_ms),
            status: c.status,
            notified: c.notified,
            subjects_total: c.subjects_total,
            subjects_done: c.subjects_done,
            completed_at: c.completed_at_ms.map(rfc3339),
        }
    }
}

/// Every cessation with its erasure progress.
#[utoipa::path(get, path = "/api/v1/operator/cessations", tag = "policy-lifecycle",
    responses((status = 200, body = [CessationView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_cessations(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<CessationView>>> {
    crate::ops::operator(&s, &headers, POLICY_READ).await?;
    Ok(Json(
        s.policy_ops
            .cessations()
            .await?
            .into_iter()
            .map(CessationView::from)
            .collect(),
    ))
}

/// Discontinues a feature or the whole service: collection stops at once, affected
/// users are told, the data is deleted after the period.
#[utoipa::path(post, path = "/api/v1/operator/cessations", tag = "policy-lifecycle",
    request_body = CessationRequest,
    responses((status = 201, body = CessationView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn discontinue(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CessationRequest>,
) -> ApiResult<(StatusCode, Json<CessationView>)> {
    crate::ops::operator(&s, &headers, POLICY_MANAGE).await?;
    let target = match (req.feature, req.service) {
        (Some(f), false) => CessationTarget::Feature(f),
        (None, true) => CessationTarget::Service,
        _ => {
            return Err(custos_app::AppError::bad(
                "invalid_target",
                "give either a feature or service: true",
            )
            .into())
        }
    };
    let after = parse_period(req.after.as_deref().unwrap_or("30d"))?;
    let c = s
        .policy_ops
        .discontinue(&target, after, &req.reason)
        .await?;
    Ok((StatusCode::CREATED, Json(c.into())))
}

/// Erases the data of every cessation whose period has passed now (also run every
/// minute in the background).
#[utoipa::path(post, path = "/api/v1/operator/cessations/run", tag = "policy-lifecycle",
    responses((status = 200, body = [CessationView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn run_cessations(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<CessationView>>> {
    crate::ops::operator(&s, &headers, POLICY_MANAGE).await?;
    Ok(Json(
        s.policy_ops
            .run_due_cessations()
            .await?
            .into_iter()
            .map(CessationView::from)
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ControllerRequest {
    pub name_en: String,
    pub name_zh: String,
    /// The address in both languages, unless `address_zh` is given.
    pub address: String,
    pub address_zh: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevisionView {
    pub version: String,
    pub revision: String,
    pub published: bool,
    pub paused_purposes: Vec<String>,
    pub notified: i64,
}

/// Records a new controller: a new version differing only in `[controller]`, announced
/// to every user; every consent stays valid (P31).
#[utoipa::path(post, path = "/api/v1/operator/controller", tag = "policy-lifecycle",
    request_body = ControllerRequest,
    responses((status = 201, body = RevisionView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn change_controller(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ControllerRequest>,
) -> ApiResult<(StatusCode, Json<RevisionView>)> {
    crate::ops::operator(&s, &headers, POLICY_MANAGE).await?;
    let address_zh = req
        .address_zh
        .clone()
        .unwrap_or_else(|| req.address.clone());
    let out = s
        .policy_ops
        .change_controller(&NewController {
            name: Some(Text {
                en: req.name_en,
                zh: req.name_zh,
            }),
            address: Some(Text {
                en: req.address,
                zh: address_zh,
            }),
            email: req.email,
            phone: req.phone,
            dpo_email: None,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(RevisionView {
            version: out.hash,
            revision: out.revision,
            published: out.published,
            paused_purposes: out.paused_purposes,
            notified: out.notified,
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SinkView {
    pub sink: String,
    pub region: String,
    pub cross_border: bool,
    pub consent_purpose: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResidencyView {
    pub region: String,
    pub sinks: Vec<SinkView>,
}

/// Every sink and its region, as checked at startup (P20).
#[utoipa::path(get, path = "/api/v1/operator/residency", tag = "policy-lifecycle",
    responses((status = 200, body = ResidencyView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn residency(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<ResidencyView>> {
    crate::ops::operator(&s, &headers, POLICY_READ).await?;
    let r = &s.policy_ops.residency;
    Ok(Json(ResidencyView {
        region: r.region.clone(),
        sinks: r
            .sinks
            .iter()
            .map(|x| SinkView {
                sink: x.sink.clone(),
                region: x.region.clone(),
                cross_border: x.cross_border,
                consent_purpose: x.consent_purpose.clone(),
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct RecordsQuery {
    /// `json` (default), `csv` or `html`.
    pub format: Option<String>,
    /// For `html`: `zh` (default) or `en`.
    pub lang: Option<String>,
}

/// Records of processing with each purpose's impact assessment record (L10), in JSON,
/// CSV or HTML.
pub fn records_response(policy: &custos_policy::Policy, q: &RecordsQuery) -> ApiResult<Response> {
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(render::records_of_processing(policy)).into_response()),
        "csv" => Ok((
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/csv; charset=utf-8"),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_static("attachment; filename=\"records-of-processing.csv\""),
                ),
            ],
            records::records_csv(policy),
        )
            .into_response()),
        "html" => {
            Ok(Html(records::records_html(policy, lang_of(q.lang.as_deref())?)).into_response())
        }
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_format",
            "format must be json, csv or html",
        )),
    }
}
