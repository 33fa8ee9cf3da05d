//! HTTP routes for device information (P9, `custos_app::signals::device`). Every route
//! acts on the signed-in caller's own devices; an id of another user's device answers 404
//! like one that does not exist.

use std::collections::BTreeMap;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use custos_app::signals::device::{Device, DeviceOutcome, DeviceReport};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::error::{ApiJson, ApiPath, ApiResult, ErrorBody};
use crate::session::Session;
use crate::AppState;

/// Largest device report body; past it, `413 body_too_large`.
pub const DEVICE_BODY_LIMIT: usize = 16 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/me/devices",
            get(list_devices)
                .post(register_device)
                .layer(DefaultBodyLimit::max(DEVICE_BODY_LIMIT)),
        )
        .route(
            "/api/v1/me/devices/{id}",
            put(update_device)
                .delete(delete_device)
                .layer(DefaultBodyLimit::max(DEVICE_BODY_LIMIT)),
        )
}

/// What the app reports about the device it runs on; every field optional, at least one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceBody {
    /// Kept under `device_info` (consent).
    pub model: Option<String>,
    /// Kept under `device_info` (consent).
    pub os_version: Option<String>,
    /// Kept under `device_info` (consent).
    pub app_version: Option<String>,
    /// Device settings the app reads: at most 32 entries of booleans, numbers or short
    /// texts. Kept under `device_info` (consent).
    #[schema(value_type = Option<Object>)]
    pub settings: Option<BTreeMap<String, serde_json::Value>>,
    /// A device identifier. Kept under `device_info` (consent).
    pub device_id: Option<String>,
    /// The push token. Kept under `service_notices` (to deliver service notices).
    pub push_token: Option<String>,
}

impl From<DeviceBody> for DeviceReport {
    fn from(b: DeviceBody) -> Self {
        DeviceReport {
            model: b.model,
            os_version: b.os_version,
            app_version: b.app_version,
            settings: b.settings,
            device_id: b.device_id,
            push_token: b.push_token,
        }
    }
}

/// A field the gate refused.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefusedFieldView {
    pub field: String,
    /// The gate's denial (`consent_missing`, `consent_withdrawn`, …).
    pub code: String,
}

/// What a report stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceOutcomeView {
    /// The device's id (32 hexadecimal characters).
    pub id: String,
    /// Each stored field and the purpose it is kept under.
    pub stored: BTreeMap<String, String>,
    /// Fields not stored: no purpose that declares them is allowed for you.
    pub refused: Vec<RefusedFieldView>,
}

impl From<DeviceOutcome> for DeviceOutcomeView {
    fn from(o: DeviceOutcome) -> Self {
        DeviceOutcomeView {
            id: o.id,
            stored: o.stored,
            refused: o
                .refused
                .into_iter()
                .map(|r| RefusedFieldView {
                    field: r.field,
                    code: r.code,
                })
                .collect(),
        }
    }
}

/// One stored device.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    pub id: String,
    pub model: Option<String>,
    pub os_version: Option<String>,
    pub app_version: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
    pub device_id: Option<String>,
    pub push_token: Option<String>,
    /// The purpose each stored field is kept under.
    pub purposes: BTreeMap<String, String>,
    pub updated_at: String,
    /// When the first of its fields expires (declared retention), if it runs from now.
    pub expires_at: Option<String>,
}

impl From<Device> for DeviceView {
    fn from(d: Device) -> Self {
        DeviceView {
            id: d.id,
            model: d.model,
            os_version: d.os_version,
            app_version: d.app_version,
            settings: d.settings,
            device_id: d.device_id,
            push_token: d.push_token,
            purposes: d.purposes,
            updated_at: custos_core::clock::rfc3339(d.updated_at_ms),
            expires_at: d.expires_at_ms.map(custos_core::clock::rfc3339),
        }
    }
}

/// The caller's devices.
#[derive(Debug, Serialize, ToSchema)]
pub struct DevicesView {
    pub devices: Vec<DeviceView>,
}

/// Reports a device (P9): each field is kept only under a purpose whose declaration lists
/// its category and that the gate allows for you; the others are listed as refused. If no
/// field is allowed, nothing is stored and the answer is the gate's denial.
#[utoipa::path(post, path = "/api/v1/me/devices", tag = "signals", request_body = DeviceBody,
    responses((status = 201, body = DeviceOutcomeView),
              (status = 401, body = ErrorBody),
              (status = 403, description = "consent_missing (or another gate denial) for every field", body = ErrorBody),
              (status = 413, description = "body_too_large", body = ErrorBody),
              (status = 422, description = "invalid_device, invalid_body", body = ErrorBody)))]
pub async fn register_device(
    State(s): State<AppState>,
    Session(session): Session,
    ApiJson(body): ApiJson<DeviceBody>,
) -> ApiResult<Response> {
    let ctx = s.identity.gate_context(session.subject).await?;
    let out = s
        .signals
        .register_device(session.subject, &body.into(), &ctx)
        .await?;
    Ok((StatusCode::CREATED, Json(DeviceOutcomeView::from(out))).into_response())
}

/// Replaces what is stored about one of your devices; fields not sent are deleted.
#[utoipa::path(put, path = "/api/v1/me/devices/{id}", tag = "signals", request_body = DeviceBody,
    params(("id" = String, Path, description = "device id")),
    responses((status = 200, body = DeviceOutcomeView),
              (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 413, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn update_device(
    State(s): State<AppState>,
    Session(session): Session,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DeviceBody>,
) -> ApiResult<Json<DeviceOutcomeView>> {
    let ctx = s.identity.gate_context(session.subject).await?;
    let out = s
        .signals
        .update_device(session.subject, &id, &body.into(), &ctx)
        .await?;
    Ok(Json(out.into()))
}

/// Your devices, with what is stored about each and under which purpose.
#[utoipa::path(get, path = "/api/v1/me/devices", tag = "signals",
    responses((status = 200, body = DevicesView), (status = 401, body = ErrorBody)))]
pub async fn list_devices(
    State(s): State<AppState>,
    Session(session): Session,
) -> ApiResult<Json<DevicesView>> {
    let devices = s.signals.devices(session.subject).await?;
    Ok(Json(DevicesView {
        devices: devices.into_iter().map(DeviceView::from).collect(),
    }))
}

/// Deletes one of your devices and everything stored about it.
#[utoipa::path(delete, path = "/api/v1/me/devices/{id}", tag = "signals",
    params(("id" = String, Path, description = "device id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_device(
    State(s): State<AppState>,
    Session(session): Session,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    s.signals.delete_device(session.subject, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// This module's part of the OpenAPI document, merged into [`crate::openapi::ApiDoc`].
#[derive(OpenApi)]
#[openapi(
    paths(register_device, update_device, list_devices, delete_device),
    components(schemas(
        DeviceBody,
        RefusedFieldView,
        DeviceOutcomeView,
        DeviceView,
        DevicesView
    ))
)]
pub struct DeviceApi;
