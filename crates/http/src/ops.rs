//! HTTP routes of the operations service (`custos_app::ops`), with their OpenAPI paths,
//! and `operator`, the one check every operator route makes.
//!
//! Staff sign in with username, password and TOTP code (`POST /api/v1/staff/sessions`)
//! and send the session token as `Authorization: Bearer staff_…`. The legacy operator
//! token (`[catalog] operator_token`) still works when configured: a bootstrap and
//! automation credential with every permission, each use audited as `operator-token`.
//! Each operator request is checked against the caller's role ([`Permission`]) and the
//! decision, allowed or denied, is written to the audit log with the method and path
//! (UUIDs in the path masked, so no user id reaches the append-only log).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use custos_app::catalog::OperatorRefusal;
use custos_app::ops::staff::{StaffView, STAFF_TOKEN_PREFIX};
use custos_app::ops::subjects::{AccessReason, PurposeCounts};
use custos_app::ops::{Actor, Permission, Role, StaffMember};
use custos_app::AppError;
use custos_core::clock::rfc3339;
use custos_core::{Personal, SubjectId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
use crate::session::ClientIp;
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/staff/sessions", post(sign_in))
        .route("/api/v1/staff/sessions/current", delete(sign_out))
        .route("/api/v1/staff/me", get(me))
        .route("/api/v1/staff/me/password", post(change_password))
        .route("/api/v1/operator/staff", get(list_staff).post(create_staff))
        .route("/api/v1/operator/staff/{username}", patch(update_staff))
        .route("/api/v1/operator/audit", get(audit_log))
        .route("/api/v1/operator/subjects/{id}/data", get(subject_data))
        .route("/api/v1/operator/stats/consents", get(consent_stats))
}

/// This module's part of the OpenAPI document, merged into [`crate::openapi::ApiDoc`].
#[derive(OpenApi)]
#[openapi(
    paths(sign_in, sign_out, me, change_password, list_staff, create_staff, update_staff, audit_log, subject_data,
          consent_stats),
    components(schemas(StaffSignIn, StaffSessionDoc, StaffMeDoc, PasswordChange, StaffDoc, StaffList, NewStaffRequest,
                       NewStaffDoc, StaffUpdate, AuditEntryDoc, SignedHeadDoc, AuditPageDoc,
                       PurposeCountsDoc, ConsentStatsDoc)),
    modifiers(&StaffSessionScheme),
    tags((name = "operations-staff", description = "Staff accounts, roles and the audit log (P24)"))
)]
pub struct OpsApi;

/// Declares staff session tokens as a bearer security scheme.
struct StaffSessionScheme;

impl utoipa::Modify for StaffSessionScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "staff_session",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

tokio::task_local! {
    /// The method and path of the operator request being served, for the audit log.
    static REQUEST_LINE: String;
}

/// Middleware: remembers the method and path of `/api/v1/operator/…` requests for
/// `operator` to audit. Path segments that are UUIDs become `{uuid}`.
pub async fn request_line(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !path.starts_with("/api/v1/operator/") {
        return next.run(req).await;
    }
    let masked: Vec<&str> = path
        .split('/')
        .map(|seg| {
            if uuid::Uuid::parse_str(seg).is_ok() {
                "{uuid}"
            } else {
                seg
            }
        })
        .collect();
    let line = format!("{} {}", req.method(), masked.join("/"));
    REQUEST_LINE.scope(line, next.run(req)).await
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "sign in as staff (POST /api/v1/staff/sessions) and send the session token as a bearer token",
    )
}

/// Who the operator request comes from: a staff session token or the legacy operator token.
async fn actor(s: &AppState, headers: &HeaderMap) -> ApiResult<Actor> {
    let Some(token) = bearer(headers) else {
        return Err(unauthorized());
    };
    if token.starts_with(STAFF_TOKEN_PREFIX) {
        return match s.ops.authenticate_staff(token).await {
            Ok(m) => Ok(Actor::Staff(m)),
            Err(AppError::Unauthenticated) => Err(unauthorized()),
            Err(e) => Err(e.into()),
        };
    }
    match s.catalog.check_operator(Some(token)) {
        Ok(()) => Ok(Actor::OperatorToken),
        Err(OperatorRefusal::Disabled) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "operator_api_disabled",
            "no operator token is configured; sign in as staff instead",
        )),
        Err(OperatorRefusal::BadToken) => Err(unauthorized()),
    }
}

/// The check of every operator route: authenticates the caller, checks that its role
/// holds `perm` (403 `permission_denied` otherwise) and audits the decision with the
/// request's method and path.
pub(crate) async fn operator(
    s: &AppState,
    headers: &HeaderMap,
    perm: Permission,
) -> ApiResult<Actor> {
    let who = actor(s, headers).await?;
    let target = REQUEST_LINE
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "(unknown)".to_owned());
    if s.ops.authorize(&who, perm, &target).await? {
        Ok(who)
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            format!("your role does not hold the `{}` permission", perm.as_str()),
        ))
    }
}

/// Maps operations errors to statuses.
fn ops_error(e: AppError) -> ApiError {
    let mut api = ApiError::from(e);
    api.status = match api.code {
        "invalid_credentials" | "totp_replayed" => StatusCode::UNAUTHORIZED,
        "username_taken" | "last_admin" => StatusCode::CONFLICT,
        "purpose_required" | "invalid_ticket" => StatusCode::BAD_REQUEST,
        _ => api.status,
    };
    api
}

/// A staff member's own session (not the legacy token).
async fn staff_session(s: &AppState, headers: &HeaderMap) -> ApiResult<(StaffMember, String)> {
    let token = bearer(headers)
        .filter(|t| t.starts_with(STAFF_TOKEN_PREFIX))
        .ok_or_else(unauthorized)?;
    match s.ops.authenticate_staff(token).await {
        Ok(m) => Ok((m, token.to_owned())),
        Err(AppError::Unauthenticated) => Err(unauthorized()),
        Err(e) => Err(e.into()),
    }
}

fn permissions(role: Role) -> Vec<String> {
    role.permissions()
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect()
}

/// Staff sign-in: password and TOTP code, both required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffSignIn {
    pub username: String,
    pub password: String,
    /// The current six-digit code of the authenticator app; each code works once.
    pub totp_code: Option<String>,
}

/// A new staff session.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffSessionDoc {
    /// Send as `Authorization: Bearer …` to the operator routes; shown once.
    pub token: String,
    pub expires_at: String,
    pub username: String,
    pub role: String,
    pub permissions: Vec<String>,
}

/// The signed-in staff member.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffMeDoc {
    pub username: String,
    pub role: String,
    pub permissions: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/staff/sessions", tag = "operations-staff", request_body = StaffSignIn,
    responses((status = 201, body = StaffSessionDoc),
              (status = 401, description = "`invalid_credentials` (unknown user, wrong password or code, disabled), `totp_replayed`", body = ErrorBody),
              (status = 422, description = "`totp_required`", body = ErrorBody),
              (status = 429, description = "`staff_locked` after repeated failures of the account, `staff_sign_in_throttled` after repeated failures from the client address (any username), with `Retry-After`", body = ErrorBody)))]
pub async fn sign_in(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(r): ApiJson<StaffSignIn>,
) -> ApiResult<Response> {
    let session = s
        .ops
        .sign_in(
            &r.username,
            &Personal::new(r.password),
            r.totp_code.as_deref(),
            ip,
        )
        .await
        .map_err(ops_error)?;
    Ok((
        StatusCode::CREATED,
        Json(StaffSessionDoc {
            token: session.token.expose().clone(),
            expires_at: rfc3339(session.expires_at_ms),
            username: session.staff.username,
            role: session.staff.role.as_str().to_owned(),
            permissions: permissions(session.staff.role),
        }),
    )
        .into_response())
}

#[utoipa::path(delete, path = "/api/v1/staff/sessions/current", tag = "operations-staff",
    security(("staff_session" = [])),
    responses((status = 204, description = "signed out"), (status = 401, body = ErrorBody)))]
pub async fn sign_out(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<StatusCode> {
    let (_, token) = staff_session(&s, &headers).await?;
    s.ops.sign_out(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/staff/me", tag = "operations-staff", security(("staff_session" = [])),
    responses((status = 200, body = StaffMeDoc), (status = 401, body = ErrorBody)))]
pub async fn me(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Json<StaffMeDoc>> {
    let (m, _) = staff_session(&s, &headers).await?;
    Ok(Json(StaffMeDoc {
        username: m.username,
        role: m.role.as_str().to_owned(),
        permissions: permissions(m.role),
    }))
}

/// A staff member's own password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    /// 12 to 128 characters, different from the current one.
    pub new_password: String,
    /// A fresh code of the authenticator app.
    pub totp_code: String,
}

/// Changes the signed-in staff member's password (current password and a fresh TOTP
/// code required; audited). The member's other sessions end; this one stays.
#[utoipa::path(post, path = "/api/v1/staff/me/password", tag = "operations-staff",
    security(("staff_session" = [])), request_body = PasswordChange,
    responses((status = 204, description = "changed"),
              (status = 401, description = "`unauthorized`, `invalid_credentials`, `totp_replayed`", body = ErrorBody),
              (status = 422, description = "`invalid_password`, `password_unchanged`, `totp_required`", body = ErrorBody),
              (status = 429, description = "`staff_sign_in_throttled`, with `Retry-After`", body = ErrorBody)))]
pub async fn change_password(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(r): ApiJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    let (_, token) = staff_session(&s, &headers).await?;
    s.ops
        .change_own_password(
            &token,
            &Personal::new(r.current_password),
            &Personal::new(r.new_password),
            &r.totp_code,
            ip,
        )
        .await
        .map_err(ops_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A staff account.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffDoc {
    pub username: String,
    /// `support`, `analyst`, `security_officer`, `privacy_officer` or `admin`.
    pub role: String,
    pub disabled: bool,
    pub created_at: String,
    /// Set while locked after failed sign-ins.
    pub locked_until: Option<String>,
}

fn staff_doc(v: StaffView) -> StaffDoc {
    StaffDoc {
        username: v.username,
        role: v.role.as_str().to_owned(),
        disabled: v.disabled,
        created_at: rfc3339(v.created_at_ms),
        locked_until: v.locked_until_ms.map(rfc3339),
    }
}

/// Staff accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffList {
    pub staff: Vec<StaffDoc>,
}

#[utoipa::path(get, path = "/api/v1/operator/staff", tag = "operations-staff",
    security(("staff_session" = []), ("operator_token" = [])),
    responses((status = 200, body = StaffList), (status = 401, body = ErrorBody),
              (status = 403, description = "`permission_denied` (needs `staff.read`)", body = ErrorBody)))]
pub async fn list_staff(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<StaffList>> {
    operator(&s, &headers, Permission::StaffRead).await?;
    Ok(Json(StaffList {
        staff: s
            .ops
            .list_staff()
            .await?
            .into_iter()
            .map(staff_doc)
            .collect(),
    }))
}

fn parse_role(r: &str) -> ApiResult<Role> {
    Role::parse(r).ok_or_else(|| {
        AppError::bad(
            "unknown_role",
            format!("`{r}` is not a role; roles: support, analyst, security_officer, privacy_officer, admin"),
        )
        .into()
    })
}

/// A new staff account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStaffRequest {
    pub username: String,
    pub role: String,
    /// 12–128 characters; generated when absent.
    pub password: Option<String>,
}

/// A new account's credentials: shown once, never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewStaffDoc {
    pub username: String,
    pub role: String,
    pub password: String,
    /// Base32, for typing into an authenticator app.
    pub totp_secret: String,
    /// `otpauth://totp/…`, for a QR code.
    pub otpauth_uri: String,
}

#[utoipa::path(post, path = "/api/v1/operator/staff", tag = "operations-staff", request_body = NewStaffRequest,
    security(("staff_session" = []), ("operator_token" = [])),
    responses((status = 201, body = NewStaffDoc), (status = 401, body = ErrorBody),
              (status = 403, description = "`permission_denied` (needs `staff.manage`)", body = ErrorBody),
              (status = 409, description = "`username_taken`", body = ErrorBody),
              (status = 422, description = "`invalid_username`, `unknown_role`, `invalid_password`", body = ErrorBody)))]
pub async fn create_staff(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiJson(r): ApiJson<NewStaffRequest>,
) -> ApiResult<Response> {
    let who = operator(&s, &headers, Permission::StaffManage).await?;
    let role = parse_role(&r.role)?;
    let created = s
        .ops
        .create_staff(&who, &r.username, role, r.password.map(Personal::new))
        .await
        .map_err(ops_error)?;
    Ok((
        StatusCode::CREATED,
        Json(NewStaffDoc {
            username: created.username,
            role: created.role.as_str().to_owned(),
            password: created.password.expose().clone(),
            totp_secret: created.totp_secret.expose().clone(),
            otpauth_uri: created.otpauth_uri.expose().clone(),
        }),
    )
        .into_response())
}

/// Changes to a staff account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffUpdate {
    /// A new role.
    pub role: Option<String>,
    /// `true` disables the account and ends its sessions; `false` enables it again.
    pub disabled: Option<bool>,
}

#[utoipa::path(patch, path = "/api/v1/operator/staff/{username}", tag = "operations-staff",
    params(("username" = String, Path)), request_body = StaffUpdate,
    security(("staff_session" = []), ("operator_token" = [])),
    responses((status = 200, body = StaffDoc), (status = 401, body = ErrorBody),
              (status = 403, description = "`permission_denied` (needs `staff.manage`)", body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "`last_admin`", body = ErrorBody),
              (status = 422, description = "`unknown_role`, `nothing_to_change`", body = ErrorBody)))]
pub async fn update_staff(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiPath(username): ApiPath<String>,
    ApiJson(r): ApiJson<StaffUpdate>,
) -> ApiResult<Json<StaffDoc>> {
    let who = operator(&s, &headers, Permission::StaffManage).await?;
    let role = r.role.as_deref().map(parse_role).transpose()?;
    let v = s
        .ops
        .update_staff(&who, &username, role, r.disabled)
        .await
        .map_err(ops_error)?;
    Ok(Json(staff_doc(v)))
}

/// Which audit entries to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Entries after this sequence number (default 0).
    pub after: Option<i64>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<i64>,
    /// Only entries about this user (by the pseudonym the log keeps).
    pub subject: Option<uuid::Uuid>,
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryDoc {
    pub seq: i64,
    pub at: String,
    pub at_ms: i64,
    /// `staff:NAME`, `operator-token`, `cli` or `anonymous`.
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    /// The ticket or purpose a read of personal data named.
    pub reason: String,
    /// JSON text.
    pub detail: String,
    /// Hex SHA-256 of the previous entry's link.
    pub prev_hash: String,
    pub hash: String,
}

/// A signed head of the audit chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedHeadDoc {
    pub seq: i64,
    pub hash: String,
    pub signed_at: String,
    /// Compact JWS (EdDSA); verify with `key`.
    pub jws: String,
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPageDoc {
    pub entries: Vec<AuditEntryDoc>,
    pub signed_heads: Vec<SignedHeadDoc>,
    /// The Ed25519 public key (JWK) of the signed heads.
    #[schema(value_type = Object)]
    pub key: serde_json::Value,
    pub head_seq: i64,
}

#[utoipa::path(get, path = "/api/v1/operator/audit", tag = "operations-staff", params(AuditParams),
    security(("staff_session" = []), ("operator_token" = [])),
    responses((status = 200, body = AuditPageDoc), (status = 401, body = ErrorBody),
              (status = 403, description = "`permission_denied` (needs `audit.read`: security_officer, privacy_officer, admin)", body = ErrorBody)))]
pub async fn audit_log(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<AuditParams>,
) -> ApiResult<Json<AuditPageDoc>> {
    operator(&s, &headers, Permission::AuditRead).await?;
    let page = s
        .ops
        .audit_page(
            q.after.unwrap_or(0),
            q.limit.unwrap_or(100),
            q.subject.map(|u| SubjectId::from_bytes(*u.as_bytes())),
        )
        .await?;
    Ok(Json(AuditPageDoc {
        entries: page
            .entries
            .into_iter()
            .map(|e| AuditEntryDoc {
                seq: e.seq,
                at: rfc3339(e.at_ms),
                at_ms: e.at_ms,
                actor: e.actor,
                action: e.action,
                target: e.target,
                outcome: e.outcome,
                reason: e.reason,
                detail: e.detail,
                prev_hash: hex_of(&e.prev_hash),
                hash: hex_of(&e.hash),
            })
            .collect(),
        signed_heads: page
            .signed_heads
            .into_iter()
            .map(|h| SignedHeadDoc {
                seq: h.seq,
                hash: hex_of(&h.hash),
                signed_at: rfc3339(h.signed_at_ms),
                jws: h.jws,
            })
            .collect(),
        key: page.key,
        head_seq: page.head_seq,
    }))
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Why the user's data is read.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SubjectDataParams {
    /// A rights ticket of this user; or send the purpose in `X-Custos-Purpose`.
    pub ticket: Option<String>,
}

/// The header naming the purpose of a staff read of personal data.
pub const PURPOSE_HEADER: &str = "x-custos-purpose";

#[utoipa::path(get, path = "/api/v1/operator/subjects/{id}/data", tag = "operations-staff",
    params(("id" = uuid::Uuid, Path, description = "the user's subject id"), SubjectDataParams,
           ("X-Custos-Purpose" = Option<String>, Header, description = "the purpose of the read, when no ticket is named")),
    security(("staff_session" = []), ("operator_token" = [])),
    responses((status = 200, description = "a summary of the user's data; the read is in the audit log", body = Object),
              (status = 400, description = "`purpose_required`, `invalid_ticket`", body = ErrorBody),
              (status = 401, body = ErrorBody),
              (status = 403, description = "`permission_denied` (needs `subject.data.read`: support, privacy_officer)", body = ErrorBody),
              (status = 422, description = "`ticket_mismatch`, `purpose_too_long`", body = ErrorBody)))]
pub async fn subject_data(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<uuid::Uuid>,
    ApiQuery(q): ApiQuery<SubjectDataParams>,
) -> ApiResult<Json<serde_json::Value>> {
    let who = operator(&s, &headers, Permission::SubjectDataRead).await?;
    let purpose = headers.get(PURPOSE_HEADER).and_then(|v| v.to_str().ok());
    let reason = AccessReason::parse(q.ticket.as_deref(), purpose).map_err(ops_error)?;
    let subject = SubjectId::from_bytes(*id.as_bytes());
    Ok(Json(
        s.ops
            .subject_data(&who, subject, &reason)
            .await
            .map_err(ops_error)?,
    ))
}

/// Latest decisions per purpose; counts under 5 are `null`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurposeCountsDoc {
    pub purpose: String,
    pub given: Option<usize>,
    pub refused: Option<usize>,
    pub withdrawn: Option<usize>,
}

/// Aggregate consent figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentStatsDoc {
    pub purposes: Vec<PurposeCountsDoc>,
}

#[utoipa::path(get, path = "/api/v1/operator/stats/consents", tag = "operations-staff",
    security(("staff_session" = []), ("operator_token" = [])),
    responses((status = 200, body = ConsentStatsDoc), (status = 401, body = ErrorBody),
              (status = 403, description = "`permission_denied` (needs `stats.read`: analyst, privacy_officer)", body = ErrorBody)))]
pub async fn consent_stats(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<ConsentStatsDoc>> {
    operator(&s, &headers, Permission::StatsRead).await?;
    Ok(Json(ConsentStatsDoc {
        purposes: s
            .ops
            .consent_counts()
            .await?
            .into_iter()
            .map(
                |PurposeCounts {
                     purpose,
                     given,
                     refused,
                     withdrawn,
                 }| PurposeCountsDoc {
                    purpose,
                    given,
                    refused,
                    withdrawn,
                },
            )
            .collect(),
    }))
}
