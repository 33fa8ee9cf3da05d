//! HTTP routes of the signals service (`custos_app::signals`), with their OpenAPI paths.
//! Location needs an account (the policy says so); every route acts on the signed-in
//! caller's own subject and none takes a subject id, so one user cannot name another's data.

use axum::extract::Path;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use custos_app::signals::EventInput;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::caller::Caller;
use crate::error::{ApiJson, ApiResult, ErrorBody};
use crate::session::{ClientIp, Session};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/location", get(get_location).post(report_location))
        .route("/api/v1/location/switch", put(set_location_switch))
        .route("/api/v1/location/nearby", get(nearby))
        .route("/api/v1/me/traits", get(list_traits).delete(reset_traits))
        .route("/api/v1/me/traits/{key}", delete(delete_trait))
        .route(
            "/api/v1/me/personalization",
            get(get_personalization).put(set_personalization),
        )
        .route(
            "/api/v1/events",
            post(ingest_events).layer(axum::extract::DefaultBodyLimit::max(EVENTS_BODY_LIMIT)),
        )
}

/// Largest event batch body: room for 1,000 full events; past it, `413 body_too_large`.
pub const EVENTS_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// One service-log event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    /// `browse`, `click`, `search`, `bookmark`, `share` or `download`.
    pub kind: String,
    /// Milliseconds since the epoch (client clock; at most 5 minutes ahead, 7 days behind).
    pub at_ms: i64,
    #[serde(default)]
    pub target: Option<String>,
    /// Truncated before storage (IPv4 last octet, IPv6 last 80 bits).
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub carrier: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
}

/// A batch of at most 1,000 events.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    pub events: Vec<EventBody>,
}

/// What the server kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestView {
    pub accepted: u64,
    /// Events whose purpose is not consented: dropped, never stored.
    pub dropped_unconsented: u64,
}

/// Service-log ingest (P10, P11, L16): each event passes the `service_logs_analytics`
/// gate for its category; unconsented events are dropped and counted; kept ones are
/// pseudonymized and IP-truncated before one batched write.
#[utoipa::path(post, path = "/api/v1/events", tag = "signals", request_body = EventBatch,
    responses((status = 200, body = IngestView),
              (status = 422, description = "batch_empty, batch_too_large, invalid_event, clock_skew", body = ErrorBody)))]
pub async fn ingest_events(
    State(s): State<AppState>,
    caller: Caller,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<EventBatch>,
) -> ApiResult<Json<IngestView>> {
    let ctx = match (caller.subject, caller.account) {
        (Some(subject), true) => s.identity.gate_context(subject).await?,
        _ => custos_core::GateContext::default(),
    };
    let batch: Vec<EventInput> = req
        .events
        .into_iter()
        .map(|e| EventInput {
            kind: e.kind,
            at_ms: e.at_ms,
            target: e.target,
            ip: e.ip,
            carrier: e.carrier,
            language: e.language,
        })
        .collect();
    let out = s.signals.ingest(caller.subject, ip, &batch, &ctx).await?;
    Ok(Json(IngestView {
        accepted: out.accepted,
        dropped_unconsented: out.dropped_unconsented,
    }))
}

/// A reported position (GPS, Wi-Fi, cell or IP-derived). It is coarsened to an area of a
/// few kilometres the moment it arrives; the coordinates are never stored or logged.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PositionReport {
    pub lat: f64,
    pub lon: f64,
    /// `gps`, `wifi`, `cell` or `ip` (informational; not stored).
    #[serde(default)]
    pub source: Option<String>,
}

/// The location switch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchRequest {
    pub enabled: bool,
}

/// The caller's location state.
#[derive(Debug, Serialize, ToSchema)]
pub struct LocationView {
    pub enabled: bool,
    /// The present coarse area: a geohash of at most 5 characters.
    pub geohash: Option<String>,
}

/// The caller's stored area after a report.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredArea {
    pub geohash: String,
}

/// What a location-based feature answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct NearbyView {
    /// The area the feature works from.
    pub area: String,
}

fn view(l: custos_app::signals::LocationState) -> LocationView {
    LocationView {
        enabled: l.enabled,
        geohash: l.geohash,
    }
}

/// The caller's location switch and present coarse area (P8).
#[utoipa::path(get, path = "/api/v1/location", tag = "signals",
    responses((status = 200, body = LocationView), (status = 401, body = ErrorBody)))]
pub async fn get_location(
    State(s): State<AppState>,
    Session(session): Session,
) -> ApiResult<Json<LocationView>> {
    let subject = session.subject;
    Ok(Json(view(s.signals.location(subject).await?)))
}

/// Reports the present position. Accepted only with the `location` purpose consented and
/// the switch on; stored as one coarse geohash (≤ 5 characters), overwriting the last
/// (P8, L16, DESIGN invariant 6).
#[utoipa::path(post, path = "/api/v1/location", tag = "signals", request_body = PositionReport,
    responses((status = 200, body = StoredArea),
              (status = 401, body = ErrorBody),
              (status = 403, description = "consent_required (or another gate denial)", body = ErrorBody),
              (status = 422, description = "location_off, invalid_location", body = ErrorBody)))]
pub async fn report_location(
    State(s): State<AppState>,
    Session(session): Session,
    ApiJson(req): ApiJson<PositionReport>,
) -> ApiResult<Json<StoredArea>> {
    let subject = session.subject;
    let ctx = s.identity.gate_context(subject).await?;
    let geohash = s
        .signals
        .report_location(subject, req.lat, req.lon, &ctx)
        .await?;
    Ok(Json(StoredArea { geohash }))
}

/// Turns the location switch on or off. Off deletes the stored area at once and stops
/// intake (P8, L16).
#[utoipa::path(put, path = "/api/v1/location/switch", tag = "signals", request_body = SwitchRequest,
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn set_location_switch(
    State(s): State<AppState>,
    Session(session): Session,
    ApiJson(req): ApiJson<SwitchRequest>,
) -> ApiResult<Response> {
    let subject = session.subject;
    s.signals.set_location_enabled(subject, req.enabled).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A location-based feature: answers `location_required` when location is off or unknown.
#[utoipa::path(get, path = "/api/v1/location/nearby", tag = "signals",
    responses((status = 200, body = NearbyView),
              (status = 401, body = ErrorBody),
              (status = 422, description = "location_required", body = ErrorBody)))]
pub async fn nearby(
    State(s): State<AppState>,
    Session(session): Session,
) -> ApiResult<Json<NearbyView>> {
    let subject = session.subject;
    let area = s.signals.require_location(subject).await?;
    Ok(Json(NearbyView { area }))
}

/// One preference trait and the purpose it was derived under.
#[derive(Debug, Serialize, ToSchema)]
pub struct TraitView {
    pub key: String,
    pub weight: f64,
    /// Lineage: withdrawing this purpose deletes the trait.
    pub purpose: String,
    pub updated_at_ms: i64,
}

/// The caller's traits.
#[derive(Debug, Serialize, ToSchema)]
pub struct TraitsView {
    pub traits: Vec<TraitView>,
}

/// How many traits a reset deleted.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResetView {
    pub deleted: u64,
}

/// The personalization switch and whether responses are personalized now.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonalizationView {
    /// The user's switch (on unless turned off).
    pub enabled: bool,
    /// Switch on and the `personalized_feed` purpose consented.
    pub personalized: bool,
}

/// The caller's preference traits with their lineage (P12).
#[utoipa::path(get, path = "/api/v1/me/traits", tag = "signals",
    responses((status = 200, body = TraitsView), (status = 401, body = ErrorBody)))]
pub async fn list_traits(
    State(s): State<AppState>,
    Session(session): Session,
) -> ApiResult<Json<TraitsView>> {
    let traits = s.signals.traits(session.subject).await?;
    Ok(Json(TraitsView {
        traits: traits
            .into_iter()
            .map(|t| TraitView {
                key: t.key,
                weight: t.weight,
                purpose: t.purpose,
                updated_at_ms: t.updated_at_ms,
            })
            .collect(),
    }))
}

/// Deletes every trait of the caller (P12).
#[utoipa::path(delete, path = "/api/v1/me/traits", tag = "signals",
    responses((status = 200, body = ResetView), (status = 401, body = ErrorBody)))]
pub async fn reset_traits(
    State(s): State<AppState>,
    Session(session): Session,
) -> ApiResult<Json<ResetView>> {
    let deleted = s.signals.reset_traits(session.subject).await?;
    Ok(Json(ResetView { deleted }))
}

/// Deletes one trait of the caller (P12).
#[utoipa::path(delete, path = "/api/v1/me/traits/{key}", tag = "signals",
    params(("key" = String, Path, description = "the trait key")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_trait(
    State(s): State<AppState>,
    Session(session): Session,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    s.signals.delete_trait(session.subject, &key).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn personalization_view(
    s: &AppState,
    session: &custos_app::identity::AuthSession,
) -> ApiResult<PersonalizationView> {
    let ctx = s.identity.gate_context(session.subject).await?;
    Ok(PersonalizationView {
        enabled: s.signals.personalization_enabled(session.subject).await?,
        personalized: s.signals.personalized(Some(session.subject), &ctx).await?,
    })
}

/// The personalization switch (L5) and whether responses are personalized now.
#[utoipa::path(get, path = "/api/v1/me/personalization", tag = "signals",
    responses((status = 200, body = PersonalizationView), (status = 401, body = ErrorBody)))]
pub async fn get_personalization(
    State(s): State<AppState>,
    Session(session): Session,
) -> ApiResult<Json<PersonalizationView>> {
    Ok(Json(personalization_view(&s, &session).await?))
}

/// Turns personalization on or off (L5); the very next response follows it.
#[utoipa::path(put, path = "/api/v1/me/personalization", tag = "signals", request_body = SwitchRequest,
    responses((status = 200, body = PersonalizationView), (status = 401, body = ErrorBody)))]
pub async fn set_personalization(
    State(s): State<AppState>,
    Session(session): Session,
    ApiJson(req): ApiJson<SwitchRequest>,
) -> ApiResult<Json<PersonalizationView>> {
    s.signals
        .set_personalization_enabled(session.subject, req.enabled)
        .await?;
    Ok(Json(personalization_view(&s, &session).await?))
}

/// This module's part of the OpenAPI document, merged into [`crate::openapi::ApiDoc`].
#[derive(OpenApi)]
#[openapi(
    paths(get_location, report_location, set_location_switch, nearby, ingest_events, list_traits, reset_traits, delete_trait, get_personalization, set_personalization),
    components(schemas(PositionReport, SwitchRequest, LocationView, StoredArea, NearbyView, EventBody, EventBatch, IngestView, TraitView, TraitsView, ResetView, PersonalizationView)),
    tags((name = "signals"))
)]
pub struct SignalsApi;
