//! Background exports over HTTP (P33, L7): start one (re-authentication required), watch
//! its progress, download the JSON or the HTML summary through its time-limited link.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use custos_app::rights::export::{ExportJobView, Rendering};
use custos_app::AppError;
use custos_core::clock::rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiPath, ApiQuery, ApiResult, ErrorBody};
use crate::session::{Reauth, Session};
use crate::{ApiError, AppState};

/// Where a ready export is downloaded (with the owner's session).
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportLinks {
    /// The JSON document (`docs/export.schema.json`).
    pub json: String,
    /// The human-readable HTML summary.
    pub html: String,
}

/// A background export.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportJobDoc {
    pub id: String,
    /// `running`, `ready` or `failed`.
    pub state: String,
    /// Steps done of `total` (one per section, per page of events, and the sealing).
    pub done: i64,
    pub total: i64,
    pub created_at: String,
    pub ready_at: Option<String>,
    /// When the job and its file are deleted; once ready, when the links stop working.
    pub expires_at: String,
    /// The access ticket that records this export.
    pub ticket_id: i64,
    /// Set when ready.
    pub download: Option<ExportLinks>,
    /// A stable code when the job failed.
    pub error: Option<String>,
}

/// The caller's exports.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportJobList {
    pub exports: Vec<ExportJobDoc>,
}

fn job_doc(j: ExportJobView) -> ExportJobDoc {
    ExportJobDoc {
        download: j.token.map(|t| ExportLinks {
            json: format!("/api/v1/me/export-files/{t}"),
            html: format!("/api/v1/me/export-files/{t}?format=html"),
        }),
        id: j.id,
        state: j.state,
        done: j.done,
        total: j.total,
        created_at: rfc3339(j.created_ms),
        ready_at: j.ready_ms.map(rfc3339),
        expires_at: rfc3339(j.expires_ms),
        ticket_id: j.ticket_id,
        error: j.error,
    }
}

#[utoipa::path(post, path = "/api/v1/me/exports", tag = "rights",
    responses((status = 202, description = "started (or the caller's export still running); poll `GET /api/v1/me/exports/{id}`", body = ExportJobDoc),
              (status = 401, body = ErrorBody), (status = 403, description = "`reauthentication_required`", body = ErrorBody)))]
pub async fn start_export(State(s): State<AppState>, Reauth(who): Reauth) -> ApiResult<Response> {
    let j = s.rights.start_export(&who).await?;
    Ok((StatusCode::ACCEPTED, Json(job_doc(j))).into_response())
}

#[utoipa::path(get, path = "/api/v1/me/exports", tag = "rights",
    responses((status = 200, body = ExportJobList), (status = 401, body = ErrorBody)))]
pub async fn list_exports(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Json<ExportJobList>> {
    let jobs = s.rights.export_jobs(session.0.subject).await?;
    Ok(Json(ExportJobList {
        exports: jobs.into_iter().map(job_doc).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/me/exports/{id}", tag = "rights",
    params(("id" = String, Path, description = "export id")),
    responses((status = 200, description = "progress, and the download links once ready", body = ExportJobDoc),
              (status = 401, body = ErrorBody), (status = 404, description = "unknown, expired or another user's", body = ErrorBody)))]
pub async fn get_export(
    State(s): State<AppState>,
    session: Session,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ExportJobDoc>> {
    Ok(Json(job_doc(
        s.rights.export_job(session.0.subject, &id).await?,
    )))
}

/// Which rendering to download.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FileParams {
    /// `json` (default) or `html`.
    pub format: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/me/export-files/{token}", tag = "rights",
    params(("token" = String, Path, description = "the token of the export's download link"), FileParams),
    responses((status = 200, description = "the export (JSON) or its summary (HTML)", content_type = "application/json"),
              (status = 401, body = ErrorBody),
              (status = 404, description = "forged token, or another user's export", body = ErrorBody),
              (status = 410, description = "`export_expired`", body = ErrorBody),
              (status = 422, description = "`invalid_format`", body = ErrorBody)))]
pub async fn download_export(
    State(s): State<AppState>,
    session: Session,
    ApiPath(token): ApiPath<String>,
    ApiQuery(q): ApiQuery<FileParams>,
) -> ApiResult<Response> {
    let which = match q.format.as_deref().unwrap_or("json") {
        "json" => Rendering::Json,
        "html" => Rendering::Html,
        _ => {
            return Err(AppError::bad("invalid_format", "format is json or html").into());
        }
    };
    let bytes = match s.rights.open_export(session.0.subject, &token, which).await {
        Err(AppError::BadRequest {
            code: "export_expired",
            message,
        }) => return Err(ApiError::new(StatusCode::GONE, "export_expired", message)),
        other => other?,
    };
    let (ctype, disposition) = match which {
        Rendering::Json => (
            "application/json",
            "attachment; filename=\"custos-export.json\"",
        ),
        Rendering::Html => ("text/html; charset=utf-8", "inline"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, ctype),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response())
}
