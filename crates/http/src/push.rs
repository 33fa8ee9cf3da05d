//! HTTP routes of the inbox (`custos_app::signals::push`): the signed-in caller's messages
//! and marking one read. Another user's message id answers 404 like one that does not exist.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::error::{ApiPath, ApiResult, ErrorBody};
use crate::session::Session;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me/inbox", get(list_inbox))
        .route("/api/v1/me/inbox/{id}/read", post(mark_read))
}

/// One inbox message.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboxMessageView {
    pub id: i64,
    /// `system` (service notices) or `personalized` (sent under its own consent).
    pub kind: String,
    pub title: String,
    pub body: String,
    /// RFC 3339.
    pub created_at: String,
    pub read: bool,
}

/// The caller's inbox, newest first (at most 200).
#[derive(Debug, Serialize, ToSchema)]
pub struct InboxView {
    pub messages: Vec<InboxMessageView>,
    pub unread: usize,
}

/// Your inbox: service notices and, if you agreed to them, personalized messages.
#[utoipa::path(get, path = "/api/v1/me/inbox", tag = "signals",
    responses((status = 200, body = InboxView), (status = 401, body = ErrorBody)))]
pub async fn list_inbox(
    State(s): State<AppState>,
    Session(session): Session,
) -> ApiResult<Json<InboxView>> {
    let messages: Vec<InboxMessageView> = s
        .signals
        .inbox(session.subject)
        .await?
        .into_iter()
        .map(|m| InboxMessageView {
            id: m.id,
            kind: m.kind,
            title: m.title,
            body: m.body,
            created_at: custos_core::clock::rfc3339(m.created_at_ms),
            read: m.read,
        })
        .collect();
    let unread = messages.iter().filter(|m| !m.read).count();
    Ok(Json(InboxView { messages, unread }))
}

/// Marks one of your messages read.
#[utoipa::path(post, path = "/api/v1/me/inbox/{id}/read", tag = "signals",
    params(("id" = i64, Path, description = "message id")),
    responses((status = 204), (status = 400, description = "invalid_path", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn mark_read(
    State(s): State<AppState>,
    Session(session): Session,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    s.signals.mark_read(session.subject, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// This module's part of the OpenAPI document, merged into [`crate::openapi::ApiDoc`].
#[derive(OpenApi)]
#[openapi(
    paths(list_inbox, mark_read),
    components(schemas(InboxMessageView, InboxView))
)]
pub struct PushApi;
