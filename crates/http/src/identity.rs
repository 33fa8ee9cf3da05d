//! HTTP routes of the identity service (`custos_app::identity`), with their OpenAPI paths.
//! Every route under `/api/v1/me` acts on the signed-in caller's own account only: no
//! route takes an account or subject id, so one user cannot name another's data.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use custos_app::identity::oidc::{OidcOutcome, OidcStart, PullField};
use custos_app::identity::profile::{NewPassword, Nickname};
use custos_app::identity::{Challenge, PhoneNumber, SessionInfo, SignedIn};
use custos_core::Personal;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
use crate::session::{clear_session_cookie, session_cookie, ClientIp, Reauth, Session};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/sms/start", post(start_sign_in))
        .route("/api/v1/auth/sms/verify", post(verify_sign_in))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/me/sessions", get(list_sessions))
        .route("/api/v1/me/sessions/{id}", delete(revoke_session))
        .route("/api/v1/me/reauth/start", post(start_reauth))
        .route("/api/v1/me/reauth/verify", post(verify_reauth))
        .route("/api/v1/me/phone/start", post(start_phone_change))
        .route("/api/v1/me/phone/verify", post(verify_phone_change))
        .route("/api/v1/auth/password", post(sign_in_with_password))
        .route("/api/v1/me/profile", get(get_profile))
        .route(
            "/api/v1/me/profile/nickname",
            put(set_nickname).delete(delete_nickname),
        )
        .route(
            "/api/v1/me/profile/avatar",
            put(set_avatar)
                .get(get_avatar)
                .delete(delete_avatar)
                .layer(DefaultBodyLimit::max(AVATAR_BODY_LIMIT)),
        )
        .route(
            "/api/v1/me/profile/password",
            put(set_password).delete(delete_password),
        )
        .route("/api/v1/me/birth-date", put(declare_birth_date))
        .route("/api/v1/me/guardian", get(guardian_screen))
        .route("/api/v1/me/guardian/start", post(start_guardian))
        .route("/api/v1/me/guardian/verify", post(verify_guardian))
        .route("/api/v1/auth/oidc/{provider}", get(oidc_screen))
        .route(
            "/api/v1/auth/oidc/{provider}/start",
            post(oidc_sign_in_start),
        )
        .route("/api/v1/auth/oidc/{provider}/callback", get(oidc_callback))
        .route("/api/v1/me/oidc", get(oidc_links))
        .route("/api/v1/me/oidc/{provider}", delete(oidc_unlink))
        .route("/api/v1/me/oidc/{provider}/link", post(oidc_link_start))
        .route("/api/v1/guardian/minors", get(guarded_minors))
        .route(
            "/api/v1/guardian/minors/{subject}/profile/nickname",
            put(guardian_set_nickname).delete(guardian_delete_nickname),
        )
        .route(
            "/api/v1/guardian/minors/{subject}/profile/{field}",
            delete(guardian_delete_field),
        )
        .route(
            "/api/v1/guardian/minors/{subject}/withdraw",
            post(guardian_withdraw),
        )
}

pub const OIDC_COOKIE: &str = "__Host-custos-oidc";
pub const OIDC_BINDING_HEADER: &str = "x-custos-oidc-binding";

/// Largest avatar request body; the configured `avatar_max_bytes` applies inside it.
pub const AVATAR_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// This module's part of the OpenAPI document, merged into [`crate::openapi::ApiDoc`].
#[derive(OpenApi)]
#[openapi(
    paths(start_sign_in, verify_sign_in, logout, me, list_sessions, revoke_session,
          start_reauth, verify_reauth, start_phone_change, verify_phone_change,
          sign_in_with_password, get_profile, set_nickname, delete_nickname, set_avatar,
          get_avatar, delete_avatar, set_password, delete_password, declare_birth_date,
          guardian_screen, start_guardian, verify_guardian, oidc_screen, oidc_sign_in_start,
          oidc_link_start, oidc_callback, oidc_links, oidc_unlink, guarded_minors,
          guardian_set_nickname, guardian_delete_field, guardian_withdraw),
    components(schemas(PhoneRequest, ChallengeView, CodeRequest, SignInCodeRequest, SignInView, AccountView,
                       SessionView, PasswordSignIn, ProfileView, NicknameRequest,
                       PasswordRequest, BirthDateRequest, AgeView, GuardianScreenView,
                       GuardianPurposeView, GuardianConsentRequest, OidcScreenView,
                       OidcFieldView, OidcLinkRequest, OidcStartView, OidcCallbackView,
                       OidcLinkedView, OidcLinkView, MinorView)),
    tags((name = "identity", description = "Sign-in with a phone and an SMS code, sessions, account"))
)]
pub struct IdentityApi;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneRequest {
    /// Mobile number: `13912345678`, `+86 139 1234 5678`, or any number in E.164.
    pub phone: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChallengeView {
    /// Send it back with the code.
    pub challenge_id: String,
    pub expires_in_secs: u64,
    /// Seconds before another code may be asked for the same number.
    pub resend_after_secs: u64,
}

impl From<Challenge> for ChallengeView {
    fn from(c: Challenge) -> Self {
        ChallengeView {
            challenge_id: c.challenge_id,
            expires_in_secs: c.expires_in_secs,
            resend_after_secs: c.resend_after_secs,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    pub challenge_id: String,
    /// The six digits of the text message.
    pub code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInCodeRequest {
    pub challenge_id: String,
    /// The six digits of the text message.
    pub code: String,
    /// `YYYY-MM-DD`, asked at sign-up: sets the age band of an account this creates
    /// (under 18: limited until a guardian consents). Ignored for an existing account.
    #[serde(default)]
    pub birth_date: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignInView {
    pub session_id: String,
    /// Bearer token for `Authorization: Bearer …`; also set as the `__Host-custos-session` cookie.
    pub token: String,
    /// Send in `X-CSRF-Token` on state-changing requests authenticated by the cookie.
    pub csrf_token: String,
    /// RFC 3339; the session also ends when unused for the configured idle time.
    pub expires_at: String,
    /// Whether this sign-in created the account.
    pub created: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    /// The account's pseudonymous subject id.
    pub subject: String,
    pub created_at: String,
    /// `adult`, `minor` or `child`.
    pub age_band: String,
    pub guardian_consent: bool,
    /// Purposes paused until the user agrees to the version that changed them: the
    /// dialog to show on sign-in (P35, L4).
    pub pending_reconsent: Vec<crate::ops_policy::PendingView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub created_at: String,
    pub last_seen_at: String,
    pub expires_at: String,
    /// The session this request was made with.
    pub current: bool,
}

impl From<SessionInfo> for SessionView {
    fn from(s: SessionInfo) -> Self {
        SessionView {
            id: s.id,
            created_at: custos_core::clock::rfc3339(s.created_at_ms),
            last_seen_at: custos_core::clock::rfc3339(s.last_seen_at_ms),
            expires_at: custos_core::clock::rfc3339(s.expires_at_ms),
            current: s.current,
        }
    }
}

fn accepted(c: Challenge) -> Response {
    (StatusCode::ACCEPTED, Json(ChallengeView::from(c))).into_response()
}

/// Texts a sign-in code. The answer is the same whether or not the number has an account.
#[utoipa::path(post, path = "/api/v1/auth/sms/start", tag = "identity", request_body = PhoneRequest,
    responses((status = 202, body = ChallengeView),
              (status = 422, description = "invalid_phone", body = ErrorBody),
              (status = 429, description = "too_many_codes, with Retry-After", body = ErrorBody),
              (status = 503, description = "sms_unavailable", body = ErrorBody)))]
pub async fn start_sign_in(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<PhoneRequest>,
) -> ApiResult<Response> {
    let phone = PhoneNumber::parse(&req.phone)?;
    Ok(accepted(s.identity.start_sign_in(&phone, ip).await?))
}

/// Proves the code: signs in, creating the account for a new number (P4).
#[utoipa::path(post, path = "/api/v1/auth/sms/verify", tag = "identity", request_body = SignInCodeRequest,
    responses((status = 200, body = SignInView),
              (status = 422, description = "code_invalid, code_expired, code_used, code_exhausted, invalid_birth_date", body = ErrorBody),
              (status = 429, description = "too_many_attempts", body = ErrorBody)))]
pub async fn verify_sign_in(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<SignInCodeRequest>,
) -> ApiResult<Response> {
    let signed = s
        .identity
        .sign_up(&req.challenge_id, &req.code, req.birth_date.as_deref(), ip)
        .await?;
    Ok(signed_in(&s, signed))
}

fn signed_in(s: &AppState, signed: SignedIn) -> Response {
    let ns = signed.session;
    let now = s.kernel.clock.now_ms();
    let cookie = session_cookie(ns.token.expose(), (ns.expires_at_ms - now) / 1000);
    let mut resp = Json(SignInView {
        session_id: ns.id,
        token: ns.token.expose().clone(),
        csrf_token: ns.csrf_token,
        expires_at: custos_core::clock::rfc3339(ns.expires_at_ms),
        created: signed.created,
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    // The body carries the session token: no cache may keep it.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Ends the current session and clears its cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "identity",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, description = "csrf_failed", body = ErrorBody)))]
pub async fn logout(State(s): State<AppState>, Session(session): Session) -> ApiResult<Response> {
    s.identity.logout(&session).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&clear_session_cookie()) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// The signed-in account.
#[utoipa::path(get, path = "/api/v1/me", tag = "identity",
    responses((status = 200, body = AccountView), (status = 401, body = ErrorBody)))]
pub async fn me(
    State(s): State<AppState>,
    Session(session): Session,
) -> ApiResult<Json<AccountView>> {
    let a = s.identity.account(session.subject).await?;
    Ok(Json(AccountView {
        subject: a.subject.to_string(),
        created_at: custos_core::clock::rfc3339(a.created_at_ms),
        age_band: a.age_band,
        guardian_consent: a.guardian_consent,
        pending_reconsent: crate::ops_policy::pending_for(&s, session.subject).await?,
    }))
}

/// The caller's own sessions, newest first.
#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "identity",
    responses((status = 200, body = [SessionView]), (status = 401, body = ErrorBody)))]
pub async fn list_sessions(
    State(s): State<AppState>,
    Session(session): Session,
) -> ApiResult<Json<Vec<SessionView>>> {
    Ok(Json(
        s.identity
            .list_sessions(&session)
            .await?
            .into_iter()
            .map(SessionView::from)
            .collect(),
    ))
}

/// Ends one of the caller's sessions. Another account's session is `not_found`.
#[utoipa::path(delete, path = "/api/v1/me/sessions/{id}", tag = "identity",
    params(("id" = String, Path, description = "session id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_session(
    State(s): State<AppState>,
    Session(session): Session,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    s.identity.revoke_session(session.subject, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Texts a fresh code to the account's phone, to confirm a sensitive action.
#[utoipa::path(post, path = "/api/v1/me/reauth/start", tag = "identity",
    responses((status = 202, body = ChallengeView), (status = 401, body = ErrorBody),
              (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn start_reauth(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Session(session): Session,
) -> ApiResult<Response> {
    Ok(accepted(s.identity.start_reauth(&session, ip).await?))
}

/// Proves the fresh code; sensitive actions are then open for the re-authentication window.
#[utoipa::path(post, path = "/api/v1/me/reauth/verify", tag = "identity", request_body = CodeRequest,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn verify_reauth(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Session(session): Session,
    ApiJson(req): ApiJson<CodeRequest>,
) -> ApiResult<StatusCode> {
    s.identity
        .finish_reauth(&session, &req.challenge_id, &req.code, ip)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Texts a code to a new number. Needs a recent re-authentication (the old number proven).
#[utoipa::path(post, path = "/api/v1/me/phone/start", tag = "identity", request_body = PhoneRequest,
    responses((status = 202, body = ChallengeView), (status = 401, body = ErrorBody),
              (status = 403, description = "reauthentication_required", body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn start_phone_change(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Reauth(proof): Reauth,
    ApiJson(req): ApiJson<PhoneRequest>,
) -> ApiResult<Response> {
    let phone = PhoneNumber::parse(&req.phone)?;
    Ok(accepted(
        s.identity.start_phone_change(&proof, &phone, ip).await?,
    ))
}

/// Proves the new number and moves the account to it.
#[utoipa::path(post, path = "/api/v1/me/phone/verify", tag = "identity", request_body = CodeRequest,
    responses((status = 204), (status = 401, body = ErrorBody),
              (status = 403, description = "reauthentication_required", body = ErrorBody),
              (status = 422, description = "code_invalid, …, phone_in_use", body = ErrorBody)))]
pub async fn verify_phone_change(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Reauth(proof): Reauth,
    ApiJson(req): ApiJson<CodeRequest>,
) -> ApiResult<StatusCode> {
    s.identity
        .finish_phone_change(&proof, &req.challenge_id, &req.code, ip)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordSignIn {
    pub phone: String,
    pub password: String,
}

/// Signs in with number and password (set in the profile). Unknown numbers and wrong
/// passwords get the same answer.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "identity", request_body = PasswordSignIn,
    responses((status = 200, body = SignInView),
              (status = 422, description = "invalid_credentials, invalid_phone", body = ErrorBody),
              (status = 429, description = "too_many_attempts", body = ErrorBody)))]
pub async fn sign_in_with_password(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<PasswordSignIn>,
) -> ApiResult<Response> {
    let phone = PhoneNumber::parse(&req.phone)?;
    let signed = s
        .identity
        .sign_in_with_password(&phone, &Personal::new(req.password), ip)
        .await?;
    Ok(signed_in(&s, signed))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileView {
    /// Your nickname, if you set one.
    pub nickname: Option<String>,
    pub has_avatar: bool,
    pub has_password: bool,
}

/// The caller's optional profile (P6).
#[utoipa::path(get, path = "/api/v1/me/profile", tag = "identity",
    responses((status = 200, body = ProfileView), (status = 401, body = ErrorBody)))]
pub async fn get_profile(
    State(s): State<AppState>,
    Session(session): Session,
) -> ApiResult<Json<ProfileView>> {
    let p = s.identity.profile(session.subject).await?;
    Ok(Json(ProfileView {
        nickname: p.nickname,
        has_avatar: p.has_avatar,
        has_password: p.has_password,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NicknameRequest {
    /// 1 to 32 characters.
    pub nickname: String,
}

/// Sets the nickname.
#[utoipa::path(put, path = "/api/v1/me/profile/nickname", tag = "identity", request_body = NicknameRequest,
    responses((status = 204), (status = 401, body = ErrorBody),
              (status = 403, description = "guardian_consent_required", body = ErrorBody),
              (status = 422, description = "invalid_nickname", body = ErrorBody)))]
pub async fn set_nickname(
    State(s): State<AppState>,
    Session(session): Session,
    ApiJson(req): ApiJson<NicknameRequest>,
) -> ApiResult<StatusCode> {
    let n = Nickname::parse(&req.nickname)?;
    s.identity.set_nickname(session.subject, &n).await?;
    s.rights
        .record_correction(session.subject, "nickname", "nickname")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes the nickname.
#[utoipa::path(delete, path = "/api/v1/me/profile/nickname", tag = "identity",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_nickname(
    State(s): State<AppState>,
    Session(session): Session,
) -> ApiResult<StatusCode> {
    s.identity
        .delete_profile_field(session.subject, "nickname")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Uploads an avatar (PNG, JPEG, WebP or GIF as the raw body); it is re-encoded as PNG.
#[utoipa::path(put, path = "/api/v1/me/profile/avatar", tag = "identity",
    request_body(content = Vec<u8>, content_type = "image/*"),
    responses((status = 204), (status = 401, body = ErrorBody),
              (status = 422, description = "avatar_too_large, avatar_unsupported, avatar_unreadable", body = ErrorBody)))]
pub async fn set_avatar(
    State(s): State<AppState>,
    Session(session): Session,
    body: Bytes,
) -> ApiResult<StatusCode> {
    s.identity
        .set_avatar(session.subject, body.to_vec())
        .await?;
    s.rights
        .record_correction(session.subject, "avatar", "avatar")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's avatar, as PNG.
#[utoipa::path(get, path = "/api/v1/me/profile/avatar", tag = "identity",
    responses((status = 200, content_type = "image/png", body = Vec<u8>),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_avatar(
    State(s): State<AppState>,
    Session(session): Session,
) -> ApiResult<Response> {
    let png = s.identity.avatar(session.subject).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        png.into_inner(),
    )
        .into_response())
}

/// Removes the avatar.
#[utoipa::path(delete, path = "/api/v1/me/profile/avatar", tag = "identity",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_avatar(
    State(s): State<AppState>,
    Session(session): Session,
) -> ApiResult<StatusCode> {
    s.identity
        .delete_profile_field(session.subject, "avatar")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    /// 8 to 128 characters, not a common password.
    pub password: String,
}

/// Sets or replaces the password; needs a recent re-authentication.
#[utoipa::path(put, path = "/api/v1/me/profile/password", tag = "identity", request_body = PasswordRequest,
    responses((status = 204), (status = 401, body = ErrorBody),
              (status = 403, description = "reauthentication_required", body = ErrorBody),
              (status = 422, description = "password_too_short, password_too_long, password_too_common", body = ErrorBody)))]
pub async fn set_password(
    State(s): State<AppState>,
    Reauth(proof): Reauth,
    ApiJson(req): ApiJson<PasswordRequest>,
) -> ApiResult<StatusCode> {
    let pw = NewPassword::parse(&req.password)?;
    s.identity.set_password(&proof, &pw).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes the password (sign-in by SMS code stays); needs a recent re-authentication.
#[utoipa::path(delete, path = "/api/v1/me/profile/password", tag = "identity",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn delete_password(
    State(s): State<AppState>,
    Reauth(proof): Reauth,
) -> ApiResult<StatusCode> {
    s.identity
        .delete_profile_field(proof.subject(), "password")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BirthDateRequest {
    /// `YYYY-MM-DD`.
    pub birth_date: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgeView {
    /// `adult`, `minor` (14 to 17) or `child` (under 14).
    pub age_band: String,
    /// Whether the account stays limited until a guardian consents.
    pub guardian_consent_required: bool,
}

/// Gives the birth date; only the age band it implies is kept until a guardian consents
/// (P36, L12). An age, once under 18, cannot be raised.
#[utoipa::path(put, path = "/api/v1/me/birth-date", tag = "identity", request_body = BirthDateRequest,
    responses((status = 200, body = AgeView), (status = 401, body = ErrorBody),
              (status = 422, description = "invalid_birth_date, birth_date_locked", body = ErrorBody)))]
pub async fn declare_birth_date(
    State(s): State<AppState>,
    Session(session): Session,
    ApiJson(req): ApiJson<BirthDateRequest>,
) -> ApiResult<Json<AgeView>> {
    let band = s
        .identity
        .declare_birth_date(session.subject, &req.birth_date)
        .await?;
    let a = s.identity.account(session.subject).await?;
    Ok(Json(AgeView {
        guardian_consent_required: band != "adult" && !a.guardian_consent,
        age_band: band,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GuardianPurposeView {
    pub purpose: String,
    pub name_en: String,
    pub name_zh: String,
    /// A basic feature; optional ones still need their own consent later.
    pub basic: bool,
    pub categories: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GuardianScreenView {
    pub age_band: String,
    /// The minor's data counts as sensitive personal information.
    pub sensitive: bool,
    pub purposes: Vec<GuardianPurposeView>,
}

/// What the guardian is asked to agree to: what the minor's account will use.
#[utoipa::path(get, path = "/api/v1/me/guardian", tag = "identity",
    responses((status = 200, body = GuardianScreenView), (status = 401, body = ErrorBody)))]
pub async fn guardian_screen(
    State(s): State<AppState>,
    Session(session): Session,
) -> ApiResult<Json<GuardianScreenView>> {
    let g = s.identity.guardian_screen(session.subject).await?;
    Ok(Json(GuardianScreenView {
        age_band: g.age_band,
        sensitive: g.sensitive,
        purposes: g
            .purposes
            .into_iter()
            .map(|p| GuardianPurposeView {
                purpose: p.purpose,
                name_en: p.name_en,
                name_zh: p.name_zh,
                basic: p.basic,
                categories: p.categories,
            })
            .collect(),
    }))
}

/// Texts a code to the guardian's phone (not the account's own).
#[utoipa::path(post, path = "/api/v1/me/guardian/start", tag = "identity", request_body = PhoneRequest,
    responses((status = 202, body = ChallengeView), (status = 401, body = ErrorBody),
              (status = 422, description = "guardian_not_needed, guardian_phone_is_own, invalid_phone", body = ErrorBody),
              (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn start_guardian(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Session(session): Session,
    ApiJson(req): ApiJson<PhoneRequest>,
) -> ApiResult<Response> {
    let phone = PhoneNumber::parse(&req.phone)?;
    Ok(accepted(
        s.identity
            .start_guardian_consent(session.subject, &phone, ip)
            .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardianConsentRequest {
    pub challenge_id: String,
    /// The code texted to the guardian.
    pub code: String,
    /// The minor's birth date, `YYYY-MM-DD`; stored once the guardian agrees.
    pub birth_date: String,
    /// The guardian agrees to what `GET /api/v1/me/guardian` showed; must be `true`.
    pub agree: bool,
}

/// The guardian proves their phone and agrees: a separate consent recorded in the ledger,
/// answered with its signed receipt. The account is no longer limited.
#[utoipa::path(post, path = "/api/v1/me/guardian/verify", tag = "identity", request_body = GuardianConsentRequest,
    responses((status = 201, body = crate::routes::ReceiptView), (status = 401, body = ErrorBody),
              (status = 422, description = "agreement_required, code_invalid, …", body = ErrorBody)))]
pub async fn verify_guardian(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Session(session): Session,
    ApiJson(req): ApiJson<GuardianConsentRequest>,
) -> ApiResult<Response> {
    if !req.agree {
        return Err(custos_app::AppError::bad(
            "agreement_required",
            "the guardian must agree to continue",
        )
        .into());
    }
    let r = s
        .identity
        .finish_guardian_consent(
            session.subject,
            &req.challenge_id,
            &req.code,
            &req.birth_date,
            ip,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(crate::routes::ReceiptView {
            receipt_id: r.receipt_id,
            receipt: r.receipt,
            jws: r.jws,
            anonymous_token: None,
        }),
    )
        .into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OidcFieldView {
    pub field: String,
    /// The data category it belongs to.
    pub category: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OidcScreenView {
    pub provider: String,
    /// The declared purpose everything received from the provider serves.
    pub purpose: String,
    pub purpose_name_en: String,
    pub purpose_name_zh: String,
    /// Categories always received (the provider's identifier of you).
    pub always: Vec<String>,
    /// Fields received only if you agree to each.
    pub optional: Vec<OidcFieldView>,
}

/// What linking a provider would pull, shown before agreeing (P7).
#[utoipa::path(get, path = "/api/v1/auth/oidc/{provider}", tag = "identity",
    params(("provider" = String, Path, description = "provider name")),
    responses((status = 200, body = OidcScreenView), (status = 422, description = "unknown_provider", body = ErrorBody)))]
pub async fn oidc_screen(
    State(s): State<AppState>,
    ApiPath(provider): ApiPath<String>,
) -> ApiResult<Json<OidcScreenView>> {
    let sc = s.identity.oidc_screen(&provider)?;
    Ok(Json(OidcScreenView {
        provider: sc.provider,
        purpose: sc.purpose,
        purpose_name_en: sc.purpose_name_en,
        purpose_name_zh: sc.purpose_name_zh,
        always: sc.always.into_iter().map(str::to_owned).collect(),
        optional: sc
            .optional
            .into_iter()
            .map(|(f, c)| OidcFieldView {
                field: f.to_owned(),
                category: c.to_owned(),
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OidcStartView {
    /// Send the user here.
    pub authorize_url: String,
    /// Present it at the callback (the `__Host-custos-oidc` cookie carries it for browsers;
    /// API clients send it in `X-Custos-Oidc-Binding`).
    pub binding: String,
}

fn oidc_started(start: OidcStart) -> Response {
    let cookie = format!(
        "{OIDC_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=600",
        start.binding.expose()
    );
    let mut resp = Json(OidcStartView {
        authorize_url: start.authorize_url,
        binding: start.binding.expose().clone(),
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// Starts signing in with a linked provider.
#[utoipa::path(post, path = "/api/v1/auth/oidc/{provider}/start", tag = "identity",
    params(("provider" = String, Path, description = "provider name")),
    responses((status = 200, body = OidcStartView), (status = 422, body = ErrorBody),
              (status = 503, description = "idp_unavailable", body = ErrorBody)))]
pub async fn oidc_sign_in_start(
    State(s): State<AppState>,
    ApiPath(provider): ApiPath<String>,
) -> ApiResult<Response> {
    Ok(oidc_started(
        s.identity.oidc_start(&provider, None, &[]).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcLinkRequest {
    /// The optional fields agreed to, each separately: `nickname`, `avatar`; may be empty.
    pub fields: Vec<String>,
    /// Agreement to linking for the `external_login` purpose; must be `true`.
    pub agree: bool,
}

/// Starts linking a provider to the signed-in account, with the fields agreed to.
#[utoipa::path(post, path = "/api/v1/me/oidc/{provider}/link", tag = "identity",
    params(("provider" = String, Path, description = "provider name")),
    request_body = OidcLinkRequest,
    responses((status = 200, body = OidcStartView), (status = 401, body = ErrorBody),
              (status = 403, description = "guardian_consent_required", body = ErrorBody),
              (status = 422, description = "agreement_required, unknown_field, unknown_provider", body = ErrorBody)))]
pub async fn oidc_link_start(
    State(s): State<AppState>,
    Session(session): Session,
    ApiPath(provider): ApiPath<String>,
    ApiJson(req): ApiJson<OidcLinkRequest>,
) -> ApiResult<Response> {
    if !req.agree {
        return Err(custos_app::AppError::bad(
            "agreement_required",
            "agree to linking to continue",
        )
        .into());
    }
    let fields = req
        .fields
        .iter()
        .map(|f| PullField::parse(f))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(oidc_started(
        s.identity
            .oidc_start(&provider, Some(session.subject), &fields)
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// Set by the provider when the user declined.
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OidcLinkedView {
    pub provider: String,
    /// The agreed fields that were received and stored.
    pub stored: Vec<String>,
    pub receipt_id: uuid::Uuid,
    /// Signed receipt of the `external_login` consent.
    pub jws: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OidcCallbackView {
    /// Set when the flow signed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_in: Option<SignInView>,
    /// Set when the flow linked the provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linked: Option<OidcLinkedView>,
}

/// The provider's redirect back: verifies everything, then links or signs in.
#[utoipa::path(get, path = "/api/v1/auth/oidc/{provider}/callback", tag = "identity",
    params(("provider" = String, Path, description = "provider name"), CallbackQuery),
    responses((status = 200, body = OidcCallbackView),
              (status = 422, description = "oidc_state_invalid, id_token_invalid, oidc_code_refused, identity_not_linked, identity_linked_elsewhere", body = ErrorBody),
              (status = 503, description = "idp_unavailable", body = ErrorBody)))]
pub async fn oidc_callback(
    State(s): State<AppState>,
    ApiPath(provider): ApiPath<String>,
    ApiQuery(q): ApiQuery<CallbackQuery>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    if q.error.is_some() {
        return Err(custos_app::AppError::bad(
            "oidc_declined",
            "the provider reports that sign-in was declined",
        )
        .into());
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return Err(
            custos_app::AppError::bad("oidc_state_invalid", "code and state are required").into(),
        );
    };
    let binding = headers
        .get(OIDC_BINDING_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|c| c.trim().split_once('='))
                .find(|(k, _)| *k == OIDC_COOKIE)
                .map(|(_, v)| v.to_owned())
        })
        .unwrap_or_default();
    match s
        .identity
        .oidc_finish(&provider, &code, &state, &binding)
        .await?
    {
        OidcOutcome::SignedIn(signed) => Ok(signed_in(&s, signed)),
        OidcOutcome::Linked {
            provider,
            stored,
            receipt,
        } => Ok(Json(OidcCallbackView {
            signed_in: None,
            linked: Some(OidcLinkedView {
                provider,
                stored: stored.into_iter().map(str::to_owned).collect(),
                receipt_id: receipt.receipt_id,
                jws: receipt.jws,
            }),
        })
        .into_response()),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OidcLinkView {
    pub provider: String,
    /// Fields received from it and kept.
    pub fields: Vec<String>,
}

/// The providers linked to the caller's account.
#[utoipa::path(get, path = "/api/v1/me/oidc", tag = "identity",
    responses((status = 200, body = [OidcLinkView]), (status = 401, body = ErrorBody)))]
pub async fn oidc_links(
    State(s): State<AppState>,
    Session(session): Session,
) -> ApiResult<Json<Vec<OidcLinkView>>> {
    Ok(Json(
        s.identity
            .oidc_links(session.subject)
            .await?
            .into_iter()
            .map(|(provider, fields)| OidcLinkView { provider, fields })
            .collect(),
    ))
}

/// Removes the link and what it pulled; the last link's removal withdraws the consent.
#[utoipa::path(delete, path = "/api/v1/me/oidc/{provider}", tag = "identity",
    params(("provider" = String, Path, description = "provider name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn oidc_unlink(
    State(s): State<AppState>,
    Session(session): Session,
    ApiPath(provider): ApiPath<String>,
) -> ApiResult<StatusCode> {
    s.identity.oidc_unlink(session.subject, &provider).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MinorView {
    pub subject: String,
    pub age_band: String,
    pub birth_date: Option<String>,
    pub nickname: Option<String>,
    pub has_avatar: bool,
    pub has_password: bool,
    /// Every field stored about the minor.
    pub fields: Vec<String>,
}

/// The minors whose guardian the caller is (by the phone their account proves), with
/// their data. Needs a recent re-authentication (P36).
#[utoipa::path(get, path = "/api/v1/guardian/minors", tag = "identity",
    responses((status = 200, body = [MinorView]), (status = 401, body = ErrorBody),
              (status = 403, description = "reauthentication_required", body = ErrorBody)))]
pub async fn guarded_minors(
    State(s): State<AppState>,
    Reauth(proof): Reauth,
) -> ApiResult<Response> {
    let list = Json(
        s.identity
            .guarded_minors(&proof)
            .await?
            .into_iter()
            .map(|m| MinorView {
                subject: m.subject.to_string(),
                age_band: m.age_band,
                birth_date: m.birth_date,
                nickname: m.nickname,
                has_avatar: m.has_avatar,
                has_password: m.has_password,
                fields: m.fields,
            })
            .collect::<Vec<_>>(),
    );
    // A minor's personal data: no cache may keep it.
    let mut resp = list.into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

fn minor_id(raw: &str) -> ApiResult<custos_core::SubjectId> {
    raw.parse()
        .map_err(|_| custos_app::AppError::NotFound.into())
}

/// The guardian corrects the minor's nickname.
#[utoipa::path(put, path = "/api/v1/guardian/minors/{subject}/profile/nickname", tag = "identity",
    params(("subject" = String, Path, description = "the minor's subject id")),
    request_body = NicknameRequest,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, description = "not this guardian's minor", body = ErrorBody)))]
pub async fn guardian_set_nickname(
    State(s): State<AppState>,
    Reauth(proof): Reauth,
    ApiPath(subject): ApiPath<String>,
    ApiJson(req): ApiJson<NicknameRequest>,
) -> ApiResult<StatusCode> {
    let n = Nickname::parse(&req.nickname)?;
    s.identity
        .guardian_set_nickname(&proof, minor_id(&subject)?, &n)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The guardian deletes one of the minor's profile fields (`nickname`, `avatar`, `password`).
#[utoipa::path(delete, path = "/api/v1/guardian/minors/{subject}/profile/{field}", tag = "identity",
    params(("subject" = String, Path, description = "the minor's subject id"),
           ("field" = String, Path, description = "nickname, avatar or password")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn guardian_delete_field(
    State(s): State<AppState>,
    Reauth(proof): Reauth,
    ApiPath((subject, field)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    s.identity
        .guardian_delete_field(&proof, minor_id(&subject)?, &field)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The guardian withdraws their consent; the minor's account is limited again at once.
#[utoipa::path(post, path = "/api/v1/guardian/minors/{subject}/withdraw", tag = "identity",
    params(("subject" = String, Path, description = "the minor's subject id")),
    responses((status = 200, body = crate::routes::ReceiptView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn guardian_withdraw(
    State(s): State<AppState>,
    Reauth(proof): Reauth,
    ApiPath(subject): ApiPath<String>,
) -> ApiResult<Json<crate::routes::ReceiptView>> {
    let r = s
        .identity
        .guardian_withdraw(&proof, minor_id(&subject)?)
        .await?;
    Ok(Json(crate::routes::ReceiptView {
        receipt_id: r.receipt_id,
        receipt: r.receipt,
        jws: r.jws,
        anonymous_token: None,
    }))
}

/// `DELETE …/profile/nickname` (the static route shadows `…/profile/{field}`).
async fn guardian_delete_nickname(
    State(s): State<AppState>,
    Reauth(proof): Reauth,
    ApiPath(subject): ApiPath<String>,
) -> ApiResult<StatusCode> {
    s.identity
        .guardian_delete_field(&proof, minor_id(&subject)?, "nickname")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
