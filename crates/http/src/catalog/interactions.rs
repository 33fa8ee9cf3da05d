//! Routes of what signed-in users keep (P13, P14, P21): bookmarks, downloads, share links
//! and comments under `/api/v1/me/…`, plus the public ends of share and download links
//! and of comments. A session is required for everything under `/me`; another user's id
//! there is a 404, exactly like an id that does not exist.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use custos_app::catalog::interactions::{BookmarkView, CommentView, DownloadView, Kind, ShareView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{catalog_error, item_detail, operator, serve_object, ItemDetail};
use crate::error::{ApiJson, ApiPath, ApiResult, ErrorBody};
use crate::session::Session;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/me/bookmarks",
            post(add_bookmark).get(list_bookmarks),
        )
        .route("/api/v1/me/bookmarks/{id}", delete(delete_bookmark))
        .route("/api/v1/me/shares", post(add_share).get(list_shares))
        .route("/api/v1/me/shares/{id}", delete(revoke_share))
        .route("/api/v1/shares/{token}", get(open_share))
        .route(
            "/api/v1/me/downloads",
            post(add_download).get(list_downloads),
        )
        .route("/api/v1/me/downloads/{id}", delete(delete_download))
        .route("/api/v1/downloads/{token}", get(open_download))
        .route(
            "/api/v1/items/{id}/comments",
            post(add_comment).get(list_comments),
        )
        .route("/api/v1/me/comments", get(my_comments))
        .route(
            "/api/v1/me/comments/{id}",
            patch(edit_comment).delete(delete_comment),
        )
        .route("/api/v1/operator/comments/{id}/status", post(moderate))
}

async fn ctx(s: &AppState, session: &Session) -> ApiResult<custos_core::GateContext<'static>> {
    Ok(s.identity.gate_context(session.0.subject).await?)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BookmarkDoc {
    pub id: i64,
    pub item_id: i64,
    pub collection: String,
    pub created_at: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookmarkRequest {
    pub item_id: i64,
    /// Collection name (default `默认收藏`), at most 60 characters.
    pub collection: Option<String>,
}

/// Bookmarks an item into a collection (again: moves it).
#[utoipa::path(post, path = "/api/v1/me/bookmarks", tag = "interactions", request_body = BookmarkRequest,
    responses((status = 201, body = BookmarkDoc), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn add_bookmark(
    State(s): State<AppState>,
    session: Session,
    ApiJson(r): ApiJson<BookmarkRequest>,
) -> ApiResult<Response> {
    let ctx = ctx(&s, &session).await?;
    let b = s
        .catalog
        .bookmark(session.0.subject, &ctx, r.item_id, r.collection.as_deref())
        .await
        .map_err(catalog_error)?;
    Ok((StatusCode::CREATED, Json(b)).into_response())
}

/// The caller's bookmarks, newest first.
#[utoipa::path(get, path = "/api/v1/me/bookmarks", tag = "interactions",
    responses((status = 200, body = [BookmarkDoc]), (status = 401, body = ErrorBody)))]
pub async fn list_bookmarks(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Json<Vec<BookmarkView>>> {
    Ok(Json(s.catalog.bookmarks(session.0.subject).await?))
}

/// Deletes one of the caller's bookmarks.
#[utoipa::path(delete, path = "/api/v1/me/bookmarks/{id}", tag = "interactions",
    params(("id" = i64, Path)), responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_bookmark(
    State(s): State<AppState>,
    session: Session,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    s.catalog
        .remove(session.0.subject, Kind::Bookmark, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRef {
    pub item_id: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShareDoc {
    pub id: i64,
    pub item_id: i64,
    pub created_at: String,
    pub revoked: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewShare {
    #[schema(value_type = ShareDoc)]
    pub share: ShareView,
    /// Shown once; only a keyed hash of it is kept.
    pub token: String,
    pub url: String,
}

/// Creates an unguessable, revocable link to an item.
#[utoipa::path(post, path = "/api/v1/me/shares", tag = "interactions", request_body = ItemRef,
    responses((status = 201, body = NewShare), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_share(
    State(s): State<AppState>,
    session: Session,
    ApiJson(r): ApiJson<ItemRef>,
) -> ApiResult<Response> {
    let ctx = ctx(&s, &session).await?;
    let (share, token) = s
        .catalog
        .share(session.0.subject, &ctx, r.item_id)
        .await
        .map_err(catalog_error)?;
    let url = format!("/api/v1/shares/{token}");
    Ok((StatusCode::CREATED, Json(NewShare { share, token, url })).into_response())
}

/// The caller's share links, revoked ones included.
#[utoipa::path(get, path = "/api/v1/me/shares", tag = "interactions",
    responses((status = 200, body = [ShareDoc]), (status = 401, body = ErrorBody)))]
pub async fn list_shares(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Json<Vec<ShareView>>> {
    Ok(Json(s.catalog.shares(session.0.subject).await?))
}

/// Revokes one of the caller's share links; the link stops working at once.
#[utoipa::path(delete, path = "/api/v1/me/shares/{id}", tag = "interactions",
    params(("id" = i64, Path)), responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_share(
    State(s): State<AppState>,
    session: Session,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    s.catalog.revoke_share(session.0.subject, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The item a live share link points to; no account needed.
#[utoipa::path(get, path = "/api/v1/shares/{token}", tag = "interactions",
    params(("token" = String, Path)), responses((status = 200, body = ItemDetail), (status = 404, body = ErrorBody)))]
pub async fn open_share(
    State(s): State<AppState>,
    ApiPath(token): ApiPath<String>,
) -> ApiResult<Json<ItemDetail>> {
    Ok(Json(item_detail(
        s.catalog.open_share(&token).await.map_err(catalog_error)?,
    )))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaRef {
    pub media_id: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadDoc {
    pub id: i64,
    pub item_id: i64,
    pub media_id: i64,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewDownload {
    #[schema(value_type = DownloadDoc)]
    pub download: DownloadView,
    /// Works for 15 minutes, for anyone holding it; supports byte ranges.
    pub url: String,
    pub expires_at: String,
}

/// Records a download and returns a time-limited signed link to the file.
#[utoipa::path(post, path = "/api/v1/me/downloads", tag = "interactions", request_body = MediaRef,
    responses((status = 201, body = NewDownload), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_download(
    State(s): State<AppState>,
    session: Session,
    ApiJson(r): ApiJson<MediaRef>,
) -> ApiResult<Response> {
    let ctx = ctx(&s, &session).await?;
    let link = s
        .catalog
        .download(session.0.subject, &ctx, r.media_id)
        .await
        .map_err(catalog_error)?;
    Ok((
        StatusCode::CREATED,
        Json(NewDownload {
            download: link.record,
            url: format!("/api/v1/downloads/{}", link.token),
            expires_at: custos_core::clock::rfc3339(link.expires_ms),
        }),
    )
        .into_response())
}

/// The caller's downloads, newest first.
#[utoipa::path(get, path = "/api/v1/me/downloads", tag = "interactions",
    responses((status = 200, body = [DownloadDoc]), (status = 401, body = ErrorBody)))]
pub async fn list_downloads(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Json<Vec<DownloadView>>> {
    Ok(Json(s.catalog.downloads(session.0.subject).await?))
}

/// Deletes one entry of the caller's download history.
#[utoipa::path(delete, path = "/api/v1/me/downloads/{id}", tag = "interactions",
    params(("id" = i64, Path)), responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_download(
    State(s): State<AppState>,
    session: Session,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    s.catalog
        .remove(session.0.subject, Kind::Download, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The file behind a signed download link (byte ranges supported).
#[utoipa::path(get, path = "/api/v1/downloads/{token}", tag = "interactions",
    params(("token" = String, Path)),
    responses((status = 200, description = "the file"), (status = 206, description = "a byte range"),
              (status = 404, body = ErrorBody), (status = 410, description = "`link_expired`", body = ErrorBody)))]
pub async fn open_download(
    State(s): State<AppState>,
    ApiPath(token): ApiPath<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let m = s
        .catalog
        .open_download(&token)
        .await
        .map_err(catalog_error)?;
    serve_object(
        &s,
        &m.object_key,
        &m.content_type,
        m.bytes.max(0) as u64,
        &headers,
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentRequest {
    /// 1 to 2,000 characters.
    pub body: String,
    /// The author confirms they may share what the comment says about other people
    /// (@mentions, phone numbers, names); required when it mentions someone.
    #[serde(default)]
    pub attest_may_share: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CommentDoc {
    pub id: i64,
    pub item_id: i64,
    pub body: String,
    /// `published` or `hidden`.
    pub status: String,
    /// What the author attested about mentioned people: `mention`, `phone`, `name`.
    pub attested: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Comments on an item. A comment that mentions someone else needs `attest_may_share`
/// (otherwise 422 `attestation_required`); the attestation is recorded with it.
#[utoipa::path(post, path = "/api/v1/items/{id}/comments", tag = "interactions",
    params(("id" = i64, Path, description = "item id")), request_body = CommentRequest,
    responses((status = 201, body = CommentDoc), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, description = "`attestation_required`, `invalid_comment`", body = ErrorBody)))]
pub async fn add_comment(
    State(s): State<AppState>,
    session: Session,
    ApiPath(item): ApiPath<i64>,
    ApiJson(r): ApiJson<CommentRequest>,
) -> ApiResult<Response> {
    let ctx = ctx(&s, &session).await?;
    let c = s
        .catalog
        .comment(session.0.subject, &ctx, item, &r.body, r.attest_may_share)
        .await
        .map_err(catalog_error)?;
    Ok((StatusCode::CREATED, Json(c)).into_response())
}

/// Published comments on an item, oldest first; no account needed.
#[utoipa::path(get, path = "/api/v1/items/{id}/comments", tag = "interactions",
    params(("id" = i64, Path, description = "item id")),
    responses((status = 200, body = [CommentDoc]), (status = 404, body = ErrorBody)))]
pub async fn list_comments(
    State(s): State<AppState>,
    ApiPath(item): ApiPath<i64>,
) -> ApiResult<Json<Vec<CommentView>>> {
    Ok(Json(
        s.catalog.comments_on(item).await.map_err(catalog_error)?,
    ))
}

/// The caller's comments, hidden ones included.
#[utoipa::path(get, path = "/api/v1/me/comments", tag = "interactions",
    responses((status = 200, body = [CommentDoc]), (status = 401, body = ErrorBody)))]
pub async fn my_comments(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Json<Vec<CommentView>>> {
    Ok(Json(s.catalog.my_comments(session.0.subject).await?))
}

/// Edits one of the caller's comments.
#[utoipa::path(patch, path = "/api/v1/me/comments/{id}", tag = "interactions",
    params(("id" = i64, Path)), request_body = CommentRequest,
    responses((status = 200, body = CommentDoc), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn edit_comment(
    State(s): State<AppState>,
    session: Session,
    ApiPath(id): ApiPath<i64>,
    ApiJson(r): ApiJson<CommentRequest>,
) -> ApiResult<Json<CommentView>> {
    let ctx = ctx(&s, &session).await?;
    let view = s
        .catalog
        .edit_comment(session.0.subject, &ctx, id, &r.body, r.attest_may_share)
        .await
        .map_err(catalog_error)?;
    s.rights
        .record_correction(session.0.subject, "comment", &format!("comment {id}"))
        .await?;
    Ok(Json(view))
}

/// Deletes one of the caller's comments.
#[utoipa::path(delete, path = "/api/v1/me/comments/{id}", tag = "interactions",
    params(("id" = i64, Path)), responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_comment(
    State(s): State<AppState>,
    session: Session,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    s.catalog
        .remove(session.0.subject, Kind::Comment, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModerationRequest {
    /// `published` or `hidden`.
    pub status: String,
}

/// Sets a comment's moderation status. Needs the operator token.
#[utoipa::path(post, path = "/api/v1/operator/comments/{id}/status", tag = "operator",
    params(("id" = i64, Path)), request_body = ModerationRequest, security(("operator_token" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn moderate(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    ApiJson(r): ApiJson<ModerationRequest>,
) -> ApiResult<StatusCode> {
    operator(&s, &headers, custos_app::ops::Permission::CommentsModerate).await?;
    s.catalog
        .moderate(id, &r.status)
        .await
        .map_err(catalog_error)?;
    Ok(StatusCode::NO_CONTENT)
}
