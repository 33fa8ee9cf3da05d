//! HTTP routes of security incidents (`custos_app::ops::incidents`, P25, L11).
//!
//! Operators (permission `incidents.manage`) record an incident with every field its
//! notices carry — a missing one is a `400 missing_field` naming it —, find the affected
//! users from the data map, notify them (inbox and push) or publish an announcement, add
//! steps to the append-only timeline, record the regulator report, and list the alarms of
//! incidents 72 hours past detection without one. Announcements are public.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use custos_app::ops::incidents::{
    AffectedQuery, Announcement, Incident, IncidentAlarm, IncidentInput, TimelineEntry,
};
use custos_app::ops::Permission;
use custos_app::AppError;
use custos_core::clock::rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
use crate::ops::operator;
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/operator/incidents",
            post(create_incident).get(list_incidents),
        )
        .route("/api/v1/operator/incidents/alarms", get(incident_alarms))
        .route("/api/v1/operator/incidents/{id}", get(get_incident))
        .route(
            "/api/v1/operator/incidents/{id}/affected",
            post(affected_subjects),
        )
        .route("/api/v1/operator/incidents/{id}/notify", post(notify))
        .route("/api/v1/operator/incidents/{id}/timeline", post(add_action))
        .route(
            "/api/v1/operator/incidents/{id}/regulator-report",
            post(regulator_report),
        )
        .route("/api/v1/operator/data-map", get(data_map))
        .route("/api/v1/announcements", get(announcements))
}

/// This module's part of the OpenAPI document, merged into [`crate::openapi::ApiDoc`].
#[derive(OpenApi)]
#[openapi(
    paths(create_incident, list_incidents, get_incident, incident_alarms, affected_subjects,
          notify, add_action, regulator_report, data_map, announcements),
    components(schemas(NewIncidentDoc, IncidentDoc, TimelineDoc, IncidentList, AffectedRequest,
                       AffectedDoc, NotifyRequest, NotifyDoc, ActionRequest, RegulatorReportRequest,
                       AlarmDoc, AlarmList, AnnouncementDoc, AnnouncementList, DataMapDoc,
                       DataMapList, FieldCountDoc)),
    tags((name = "incidents", description = "Security incidents, notices and the 72-hour regulator alarm (P25, L11)"))
)]
pub struct IncidentsApi;

/// An incident report. Every field is required: a missing one is a `400 missing_field`
/// naming it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIncidentDoc {
    /// A short title (≤ 60 characters).
    pub title: Option<String>,
    /// What happened (≤ 240 characters each text).
    pub cause: Option<String>,
    /// Declared data category keys affected.
    pub categories: Option<Vec<String>>,
    /// Data-map stores affected: `database`, `vault`, `object_storage`, `search_index` or a
    /// partner id.
    pub stores: Option<Vec<String>>,
    pub possible_harm: Option<String>,
    /// What was done about it.
    pub remedies: Option<String>,
    /// What affected people can do.
    pub user_actions: Option<String>,
    /// How to reach the controller about it.
    pub contact: Option<String>,
    /// When the incident was detected (RFC 3339); the 72 hours run from it.
    pub detected_at: Option<String>,
}

/// One step of an incident's timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineDoc {
    pub seq: i64,
    pub at: String,
    pub action: String,
    pub actor: String,
    pub detail: String,
}

/// An incident with its timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentDoc {
    pub id: i64,
    pub title: String,
    pub cause: String,
    pub categories: Vec<String>,
    pub stores: Vec<String>,
    pub possible_harm: String,
    pub remedies: String,
    pub user_actions: String,
    pub contact: String,
    pub detected_at: String,
    pub recorded_at: String,
    /// Detection + 72 hours.
    pub regulator_due_at: String,
    pub regulator_reported_at: Option<String>,
    pub regulator_reference: Option<String>,
    /// Users told individually so far.
    pub notified: i64,
    pub timeline: Vec<TimelineDoc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentList {
    pub incidents: Vec<IncidentDoc>,
}

/// Which users to look for; categories and stores default to the incident's.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AffectedRequest {
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub stores: Vec<String>,
    /// Window start (RFC 3339); absent = from the beginning.
    pub from: Option<String>,
    /// Window end (RFC 3339); absent = now.
    pub to: Option<String>,
    /// Also users with a session open during the window.
    #[serde(default)]
    pub sessions: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AffectedDoc {
    pub count: usize,
    /// Random subject ids.
    pub subjects: Vec<String>,
}

/// How to tell the affected users.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyRequest {
    /// `individual` (inbox message and push to each affected user) or `announcement`
    /// (public, when individual notice is impractical).
    pub mode: String,
    /// For `individual`: which users (as `/affected`).
    #[serde(default)]
    pub query: Option<AffectedRequest>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotifyDoc {
    pub mode: String,
    pub notified: usize,
    pub already_notified: usize,
    pub pushed: u32,
    pub push_failed: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announcement: Option<AnnouncementDoc>,
}

/// A step taken.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// snake_case, e.g. `contained`, `keys_rotated`.
    pub action: String,
    pub detail: String,
}

/// The report made to the regulator.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegulatorReportRequest {
    /// The regulator's or our reference of the report.
    pub reference: String,
    /// When it was made (RFC 3339); absent = now.
    pub reported_at: Option<String>,
}

/// An incident 72 hours past detection without a regulator report.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlarmDoc {
    pub incident_id: i64,
    pub title: String,
    pub detected_at: String,
    pub due_at: String,
    pub overdue_hours: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlarmList {
    pub alarms: Vec<AlarmDoc>,
}

/// A public announcement.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnnouncementDoc {
    pub id: i64,
    pub incident_id: Option<i64>,
    pub title: String,
    pub body: String,
    pub published_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnnouncementList {
    pub announcements: Vec<AnnouncementDoc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldCountDoc {
    pub field: String,
    pub category: String,
    pub subjects: i64,
}

/// A store holds these categories for a purpose.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataMapDoc {
    pub store: String,
    pub purpose: String,
    pub categories: Vec<String>,
    pub fields: Vec<FieldCountDoc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DataMapList {
    pub entries: Vec<DataMapDoc>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AnnouncementQuery {
    /// At most this many, newest first (default 50, at most 200).
    pub limit: Option<u32>,
}

fn time_ms(field: &str, v: &str) -> ApiResult<i64> {
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_field",
                format!("`{field}` must be an RFC 3339 time"),
            )
        })?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Missing or malformed incident fields are the client's request error: 400.
fn incident_error(e: AppError) -> ApiError {
    let mut api = ApiError::from(e);
    if matches!(
        api.code,
        "missing_field" | "invalid_field" | "unknown_category" | "unknown_store"
    ) {
        api.status = StatusCode::BAD_REQUEST;
    } else if api.code == "already_reported" {
        api.status = StatusCode::CONFLICT;
    }
    api
}

fn timeline_doc(e: TimelineEntry) -> TimelineDoc {
    TimelineDoc {
        seq: e.seq,
        at: rfc3339(e.at_ms),
        action: e.action,
        actor: e.actor,
        detail: e.detail,
    }
}

fn incident_doc(i: Incident) -> IncidentDoc {
    IncidentDoc {
        id: i.id,
        title: i.title,
        cause: i.cause,
        categories: i.categories,
        stores: i.stores,
        possible_harm: i.possible_harm,
        remedies: i.remedies,
        user_actions: i.user_actions,
        contact: i.contact,
        detected_at: rfc3339(i.detected_ms),
        recorded_at: rfc3339(i.created_ms),
        regulator_due_at: rfc3339(i.regulator_due_ms),
        regulator_reported_at: i.regulator_reported_ms.map(rfc3339),
        regulator_reference: i.regulator_reference,
        notified: i.notified,
        timeline: i.timeline.into_iter().map(timeline_doc).collect(),
    }
}

fn announcement_doc(a: Announcement) -> AnnouncementDoc {
    AnnouncementDoc {
        id: a.id,
        incident_id: a.incident_id,
        title: a.title,
        body: a.body,
        published_at: rfc3339(a.published_ms),
    }
}

fn alarm_doc(a: IncidentAlarm) -> AlarmDoc {
    AlarmDoc {
        incident_id: a.incident_id,
        title: a.title,
        detected_at: rfc3339(a.detected_ms),
        due_at: rfc3339(a.due_ms),
        overdue_hours: a.overdue_ms as f64 / 3_600_000.0,
    }
}

fn query(s: &AppState, r: AffectedRequest) -> ApiResult<AffectedQuery> {
    Ok(AffectedQuery {
        categories: r.categories,
        stores: r.stores,
        from_ms: r
            .from
            .as_deref()
            .map(|v| time_ms("from", v))
            .transpose()?
            .unwrap_or(0),
        to_ms: match r.to.as_deref() {
            Some(v) => time_ms("to", v)?,
            None => s.kernel.clock.now_ms(),
        },
        sessions: r.sessions,
    })
}

#[utoipa::path(post, path = "/api/v1/operator/incidents", tag = "incidents", request_body = NewIncidentDoc,
    security(("operator_token" = [])),
    responses((status = 201, body = IncidentDoc),
              (status = 400, description = "`missing_field` (naming it), `invalid_field`, `unknown_category`, `unknown_store`", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_incident(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiJson(r): ApiJson<NewIncidentDoc>,
) -> ApiResult<Response> {
    let actor = operator(&s, &headers, Permission::IncidentsManage).await?;
    let input = IncidentInput {
        title: r.title.unwrap_or_default(),
        cause: r.cause.unwrap_or_default(),
        categories: r.categories.unwrap_or_default(),
        stores: r.stores.unwrap_or_default(),
        possible_harm: r.possible_harm.unwrap_or_default(),
        remedies: r.remedies.unwrap_or_default(),
        user_actions: r.user_actions.unwrap_or_default(),
        contact: r.contact.unwrap_or_default(),
        detected_ms: r
            .detected_at
            .as_deref()
            .map(|v| time_ms("detected_at", v))
            .transpose()?,
    };
    let i = s
        .ops
        .record_incident(&actor, &input)
        .await
        .map_err(incident_error)?;
    Ok((StatusCode::CREATED, Json(incident_doc(i))).into_response())
}

#[utoipa::path(get, path = "/api/v1/operator/incidents", tag = "incidents", security(("operator_token" = [])),
    responses((status = 200, body = IncidentList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_incidents(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<IncidentList>> {
    operator(&s, &headers, Permission::IncidentsManage).await?;
    let incidents = s.ops.incidents().await?;
    Ok(Json(IncidentList {
        incidents: incidents.into_iter().map(incident_doc).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/operator/incidents/{id}", tag = "incidents", security(("operator_token" = [])),
    params(("id" = i64, Path, description = "incident id")),
    responses((status = 200, body = IncidentDoc), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn get_incident(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<IncidentDoc>> {
    operator(&s, &headers, Permission::IncidentsManage).await?;
    Ok(Json(incident_doc(s.ops.incident(id).await?)))
}

/// Incidents 72 hours past detection without a recorded regulator report (also the
/// `custos_incident_alarms` gauge and a logged warning each).
#[utoipa::path(get, path = "/api/v1/operator/incidents/alarms", tag = "incidents", security(("operator_token" = [])),
    responses((status = 200, body = AlarmList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn incident_alarms(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<AlarmList>> {
    operator(&s, &headers, Permission::IncidentsManage).await?;
    let alarms = s.ops.incident_alarms().await?;
    Ok(Json(AlarmList {
        alarms: alarms.into_iter().map(alarm_doc).collect(),
    }))
}

/// The users the incident may have affected, from the data map.
#[utoipa::path(post, path = "/api/v1/operator/incidents/{id}/affected", tag = "incidents", security(("operator_token" = [])),
    params(("id" = i64, Path, description = "incident id")), request_body = AffectedRequest,
    responses((status = 200, body = AffectedDoc), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn affected_subjects(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    ApiJson(r): ApiJson<AffectedRequest>,
) -> ApiResult<Json<AffectedDoc>> {
    operator(&s, &headers, Permission::IncidentsManage).await?;
    let q = query(&s, r)?;
    let a = s
        .ops
        .affected_subjects(id, &q)
        .await
        .map_err(incident_error)?;
    Ok(Json(AffectedDoc {
        count: a.count,
        subjects: a.subjects.iter().map(|s| s.to_string()).collect(),
    }))
}

/// Tells the affected users (inbox message and push), or publishes an announcement.
#[utoipa::path(post, path = "/api/v1/operator/incidents/{id}/notify", tag = "incidents", security(("operator_token" = [])),
    params(("id" = i64, Path, description = "incident id")), request_body = NotifyRequest,
    responses((status = 200, body = NotifyDoc), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn notify(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    ApiJson(r): ApiJson<NotifyRequest>,
) -> ApiResult<Json<NotifyDoc>> {
    let actor = operator(&s, &headers, Permission::IncidentsManage).await?;
    match r.mode.as_str() {
        "individual" => {
            let q = query(&s, r.query.unwrap_or_default())?;
            let n = s
                .ops
                .notify_affected(&actor, id, &q)
                .await
                .map_err(incident_error)?;
            Ok(Json(NotifyDoc {
                mode: r.mode,
                notified: n.notified,
                already_notified: n.already_notified,
                pushed: n.pushed,
                push_failed: n.push_failed,
                announcement: None,
            }))
        }
        "announcement" => {
            let a = s.ops.announce_incident(&actor, id).await?;
            Ok(Json(NotifyDoc {
                mode: r.mode,
                notified: 0,
                already_notified: 0,
                pushed: 0,
                push_failed: 0,
                announcement: Some(announcement_doc(a)),
            }))
        }
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "`mode` must be individual or announcement",
        )),
    }
}

/// Adds a step to the incident's append-only timeline.
#[utoipa::path(post, path = "/api/v1/operator/incidents/{id}/timeline", tag = "incidents", security(("operator_token" = [])),
    params(("id" = i64, Path, description = "incident id")), request_body = ActionRequest,
    responses((status = 201, body = TimelineDoc), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_action(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    ApiJson(r): ApiJson<ActionRequest>,
) -> ApiResult<Response> {
    let actor = operator(&s, &headers, Permission::IncidentsManage).await?;
    let e = s
        .ops
        .add_incident_action(&actor, id, &r.action, &r.detail)
        .await
        .map_err(incident_error)?;
    Ok((StatusCode::CREATED, Json(timeline_doc(e))).into_response())
}

/// Records the report made to the regulator; it ends the incident's alarm.
#[utoipa::path(post, path = "/api/v1/operator/incidents/{id}/regulator-report", tag = "incidents", security(("operator_token" = [])),
    params(("id" = i64, Path, description = "incident id")), request_body = RegulatorReportRequest,
    responses((status = 200, body = IncidentDoc), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "`already_reported`", body = ErrorBody)))]
pub async fn regulator_report(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    ApiJson(r): ApiJson<RegulatorReportRequest>,
) -> ApiResult<Json<IncidentDoc>> {
    let actor = operator(&s, &headers, Permission::IncidentsManage).await?;
    let at = r
        .reported_at
        .as_deref()
        .map(|v| time_ms("reported_at", v))
        .transpose()?;
    let i = s
        .ops
        .record_regulator_report(&actor, id, &r.reference, at)
        .await
        .map_err(incident_error)?;
    Ok(Json(incident_doc(i)))
}

/// Which store holds which categories for which purpose.
#[utoipa::path(get, path = "/api/v1/operator/data-map", tag = "incidents", security(("operator_token" = [])),
    responses((status = 200, body = DataMapList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn data_map(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<DataMapList>> {
    operator(&s, &headers, Permission::IncidentsManage).await?;
    let entries = s.ops.data_map().await?;
    Ok(Json(DataMapList {
        entries: entries
            .into_iter()
            .map(|e| DataMapDoc {
                store: e.store,
                purpose: e.purpose,
                categories: e.categories,
                fields: e
                    .fields
                    .into_iter()
                    .map(|f| FieldCountDoc {
                        field: f.field,
                        category: f.category,
                        subjects: f.subjects,
                    })
                    .collect(),
            })
            .collect(),
    }))
}

/// Public announcements (incidents when individual notice is impractical), newest first.
#[utoipa::path(get, path = "/api/v1/announcements", tag = "incidents", params(AnnouncementQuery),
    responses((status = 200, body = AnnouncementList)))]
pub async fn announcements(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<AnnouncementQuery>,
) -> ApiResult<Json<AnnouncementList>> {
    let list = s.ops.announcements(q.limit.unwrap_or(50)).await?;
    Ok(Json(AnnouncementList {
        announcements: list.into_iter().map(announcement_doc).collect(),
    }))
}
