//! HTTP routes of the catalog service (`custos_app::catalog`), with their OpenAPI paths.
//!
//! Browsing and searching need nothing from the caller: no account, token or cookie, and
//! they set none (P5). The operator routes (`/api/v1/operator/…`) take the operator token
//! as `Authorization: Bearer …` and are off when no token is configured.

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use custos_app::catalog::input::{parse_price, ItemInput};
use custos_app::catalog::{media_url, thumbnail_url, ImportError};
use custos_app::AppError;
use custos_search::{Filters, MediaKind, SearchRequest, Sort, MAX_LIMIT, MAX_QUERY_CHARS};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::error::{ApiJson, ApiPath, ApiResult, ErrorBody};
use crate::{ApiError, AppState};

mod interactions;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/items", get(search_items))
        .route("/api/v1/items/{id}", get(get_item))
        .route("/api/v1/media/{id}", get(get_media))
        .route("/api/v1/media/{id}/thumbnail", get(get_thumbnail))
        .route("/api/v1/operator/items", post(import_items))
        .route("/api/v1/operator/items/{id}", delete(delete_item))
        .route(
            "/api/v1/operator/items/{id}/media",
            // The handler enforces the configured upload limit itself.
            post(upload_media).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .merge(interactions::routes())
}

/// This module's part of the OpenAPI document, merged into [`crate::openapi::ApiDoc`].
#[derive(OpenApi)]
#[openapi(
    paths(search_items, get_item, get_media, get_thumbnail, import_items, delete_item, upload_media,
          interactions::add_bookmark, interactions::list_bookmarks, interactions::delete_bookmark,
          interactions::add_share, interactions::list_shares, interactions::revoke_share,
          interactions::open_share, interactions::add_download, interactions::list_downloads,
          interactions::delete_download, interactions::open_download, interactions::add_comment,
          interactions::list_comments, interactions::my_comments, interactions::edit_comment,
          interactions::delete_comment, interactions::moderate),
    components(schemas(SearchResponse, ItemSummaryView, FacetsView, FacetCountView, ItemDetail,
                       MediaView, ImportResult, RowErrorView, ItemInputView,
                       interactions::BookmarkDoc, interactions::BookmarkRequest, interactions::ItemRef,
                       interactions::ShareDoc, interactions::NewShare, interactions::MediaRef,
                       interactions::DownloadDoc, interactions::NewDownload, interactions::CommentRequest,
                       interactions::CommentDoc, interactions::ModerationRequest)),
    modifiers(&OperatorToken),
    tags((name = "catalog", description = "Browsing and searching the catalog: no account, no identifier"),
         (name = "operator", description = "Catalog maintenance with the operator token"),
         (name = "interactions", description = "Bookmarks, downloads, shares and comments of signed-in users"))
)]
pub struct CatalogApi;

/// Declares the operator token as a bearer security scheme.
struct OperatorToken;

impl utoipa::Modify for OperatorToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "operator_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Maps catalog errors to statuses: bad search input is a 400, uploads get 413/415.
fn catalog_error(e: AppError) -> ApiError {
    let mut api = ApiError::from(e);
    api.status = match api.code {
        "query_too_long" | "invalid_cursor" | "invalid_filter" => StatusCode::BAD_REQUEST,
        "media_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "link_expired" => StatusCode::GONE,
        "unsupported_media_type" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => api.status,
    };
    api
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// Query parameters of the search (documentation; the handler reads them one by one so
/// that an unknown one is named in the error).
#[derive(Debug, Deserialize, IntoParams)]
#[allow(dead_code)]
pub struct SearchParams {
    /// Words to find, Chinese or English (at most 256 characters); English words forgive
    /// small typos.
    q: Option<String>,
    /// Only items of this category.
    category: Option<String>,
    /// Only items with every one of these tags (comma-separated, at most 10).
    tags: Option<String>,
    /// Only items whose price range reaches this (yuan).
    price_min: Option<String>,
    /// Only items whose price range starts at or below this (yuan).
    price_max: Option<String>,
    /// `image` or `video`.
    media: Option<String>,
    /// `relevance` (default with `q`) or `newest` (default without).
    sort: Option<String>,
    /// `next_cursor` of the previous page, with otherwise the same parameters.
    cursor: Option<String>,
    /// Items per page, 1–100 (default 20).
    limit: Option<u32>,
}

const PARAMS: [&str; 9] = [
    "q",
    "category",
    "tags",
    "price_min",
    "price_max",
    "media",
    "sort",
    "cursor",
    "limit",
];

fn parse_search(pairs: Vec<(String, String)>) -> ApiResult<SearchRequest> {
    let mut seen: Vec<&'static str> = Vec::new();
    let mut r = SearchRequest {
        q: None,
        filters: Filters::default(),
        sort: None,
        cursor: None,
        limit: 20,
    };
    for (k, v) in pairs {
        let Some(name) = PARAMS.iter().copied().find(|p| *p == k) else {
            let shown: String = k.chars().take(40).collect();
            return Err(bad(
                "unknown_filter",
                format!("unknown parameter `{shown}`; known: {}", PARAMS.join(", ")),
            ));
        };
        if seen.contains(&name) {
            return Err(bad("invalid_query", format!("`{name}` is given twice")));
        }
        seen.push(name);
        let price = |v: &str| -> ApiResult<u64> {
            parse_price(&serde_json::Value::String(v.to_owned()))
                .map(|p| p as u64)
                .map_err(|m| bad("invalid_filter", format!("{name}: {m}")))
        };
        match name {
            "q" => {
                if v.chars().count() > MAX_QUERY_CHARS {
                    return Err(bad(
                        "query_too_long",
                        format!("q may have at most {MAX_QUERY_CHARS} characters"),
                    ));
                }
                r.q = Some(v);
            }
            "category" => r.filters.category = Some(v),
            "tags" => {
                r.filters.tags = v
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            "price_min" => r.filters.price_min = Some(price(&v)?),
            "price_max" => r.filters.price_max = Some(price(&v)?),
            "media" => {
                r.filters.media = Some(
                    MediaKind::parse(&v)
                        .ok_or_else(|| bad("invalid_filter", "media must be image or video"))?,
                )
            }
            "sort" => {
                r.sort = Some(
                    Sort::parse(&v)
                        .ok_or_else(|| bad("invalid_sort", "sort must be relevance or newest"))?,
                )
            }
            "cursor" => r.cursor = Some(v),
            _ => {
                r.limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| {
                        bad("invalid_limit", format!("limit must be 1 to {MAX_LIMIT}"))
                    })?
            }
        }
    }
    Ok(r)
}

/// An item in search results.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemSummaryView {
    pub id: i64,
    pub title_zh: String,
    pub title_en: String,
    pub category: String,
    pub tags: Vec<String>,
    /// Minor units (fen).
    pub price_min: i64,
    /// Minor units (fen).
    pub price_max: i64,
    pub currency: String,
    /// `image`, `video`.
    pub media_types: Vec<String>,
    pub thumbnail_url: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FacetCountView {
    pub value: String,
    pub count: u64,
}

/// Counts over every item matching the search (not only this page).
#[derive(Debug, Serialize, ToSchema)]
pub struct FacetsView {
    pub category: Vec<FacetCountView>,
    pub tags: Vec<FacetCountView>,
    /// `image`, `video`.
    pub media: Vec<FacetCountView>,
    /// Buckets by lowest price, in yuan: `0-50`, `50-100`, `100-200`, `200-500`, `500+`.
    pub price: Vec<FacetCountView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    pub items: Vec<ItemSummaryView>,
    /// Items matching the search in all.
    pub total: u64,
    /// `relevance` or `newest`.
    pub sort: String,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// Ranked with the caller's preference traits (signed in, personalization on and
    /// `personalized_feed` consented, relevance order); only the order differs.
    pub personalized: bool,
    pub facets: FacetsView,
}

/// Searches and filters the catalog. No account, identifier or cookie is needed, and
/// none is set; nothing about the search is stored. A signed-in caller with
/// personalization on and consented gets relevance order ranked by their traits
/// (`personalized: true`); otherwise no profile is read (L5).
#[utoipa::path(get, path = "/api/v1/items", tag = "catalog", params(SearchParams), responses(
    (status = 200, body = SearchResponse),
    (status = 400, description = "`query_too_long`, `unknown_filter`, `invalid_filter`, `invalid_cursor`, `invalid_sort`, `invalid_limit`, `invalid_query`", body = ErrorBody)))]
pub async fn search_items(
    State(s): State<AppState>,
    caller: crate::caller::Caller,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(pairs) = query.map_err(ApiError::from)?;
    let req = parse_search(pairs)?;
    let (subject, ctx) = crate::feed::personalizable(&s, &caller).await?;
    let out = s
        .signals
        .search(&s.catalog, subject, &ctx, &req)
        .await
        .map_err(catalog_error)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        out.to_json(),
    )
        .into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MediaView {
    pub id: i64,
    /// `image` or `video`.
    pub kind: String,
    pub content_type: String,
    pub bytes: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub url: String,
    pub thumbnail_url: Option<String>,
}

impl From<custos_app::catalog::Media> for MediaView {
    fn from(m: custos_app::catalog::Media) -> Self {
        MediaView {
            url: media_url(m.id),
            thumbnail_url: m.thumb_key.as_ref().map(|_| thumbnail_url(m.id)),
            id: m.id,
            kind: m.kind,
            content_type: m.content_type,
            bytes: m.bytes,
            width: m.width,
            height: m.height,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemDetail {
    pub id: i64,
    pub title_zh: String,
    pub title_en: String,
    pub description_zh: String,
    pub description_en: String,
    pub category: String,
    pub tags: Vec<String>,
    /// Minor units (fen).
    pub price_min: i64,
    /// Minor units (fen).
    pub price_max: i64,
    pub currency: String,
    pub media: Vec<MediaView>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// One item with its media.
#[utoipa::path(get, path = "/api/v1/items/{id}", tag = "catalog",
    params(("id" = i64, Path, description = "item id")),
    responses((status = 200, body = ItemDetail), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_item(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ItemDetail>> {
    Ok(Json(item_detail(
        s.catalog.item(id).await.map_err(catalog_error)?,
    )))
}

fn item_detail(it: custos_app::catalog::Item) -> ItemDetail {
    let f = it.fields;
    ItemDetail {
        id: it.id,
        title_zh: f.title_zh,
        title_en: f.title_en,
        description_zh: f.description_zh,
        description_en: f.description_en,
        category: f.category,
        tags: f.tags,
        price_min: f.price_min,
        price_max: f.price_max,
        currency: f.currency,
        media: it.media.into_iter().map(MediaView::from).collect(),
        created_at: custos_core::clock::rfc3339(it.created_ms),
        updated_at: custos_core::clock::rfc3339(it.updated_ms),
    }
}

/// A parsed `Range: bytes=…` header: `Ok(None)` for the whole file, `Err(())` when the
/// range cannot be satisfied.
fn byte_range(headers: &HeaderMap, len: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(v) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let spec = v
        .to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix("bytes="))
        .ok_or(())?;
    if spec.contains(',') {
        // Several ranges: answer with the whole file, which RFC 9110 allows.
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        len.saturating_sub(n)..len
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            len
        } else {
            b.parse::<u64>().map_err(|_| ())?.saturating_add(1).min(len)
        };
        start..end
    };
    if range.start >= len || range.start >= range.end {
        return Err(());
    }
    Ok(Some(range))
}

async fn serve_object(
    s: &AppState,
    key: &str,
    content_type: &str,
    len: u64,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let Ok(range) = byte_range(headers, len) else {
        let mut resp = ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            format!("the file has {len} bytes"),
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        return Ok(resp);
    };
    let store = s.catalog.media_store();
    let (status, body, content_range) = match range {
        None => (
            StatusCode::OK,
            store.get(key).await.map_err(catalog_error)?,
            None,
        ),
        Some(r) => {
            let cr = format!("bytes {}-{}/{len}", r.start, r.end - 1);
            (
                StatusCode::PARTIAL_CONTENT,
                store.get_range(key, r).await.map_err(catalog_error)?,
                Some(cr),
            )
        }
    };
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "public, max-age=86400")
        .header("x-content-type-options", "nosniff");
    if let Some(cr) = content_range {
        resp = resp.header(header::CONTENT_RANGE, cr);
    }
    resp.body(Body::from(Bytes::from(body)))
        .map_err(|e| ApiError::from(AppError::Internal(e.to_string())))
}

/// A media file; answers `Range: bytes=…` requests with 206 (video seeking).
#[utoipa::path(get, path = "/api/v1/media/{id}", tag = "catalog",
    params(("id" = i64, Path, description = "media id")),
    responses((status = 200, description = "the file", content_type = "application/octet-stream"),
              (status = 206, description = "the requested byte range"),
              (status = 404, body = ErrorBody), (status = 416, body = ErrorBody)))]
pub async fn get_media(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let m = s.catalog.media(id).await.map_err(catalog_error)?;
    serve_object(
        &s,
        &m.object_key,
        &m.content_type,
        m.bytes.max(0) as u64,
        &headers,
    )
    .await
}

/// The JPEG thumbnail of an image.
#[utoipa::path(get, path = "/api/v1/media/{id}/thumbnail", tag = "catalog",
    params(("id" = i64, Path, description = "media id")),
    responses((status = 200, description = "JPEG", content_type = "image/jpeg"), (status = 404, body = ErrorBody)))]
pub async fn get_thumbnail(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    let m = s.catalog.media(id).await.map_err(catalog_error)?;
    let key = m
        .thumb_key
        .ok_or_else(|| ApiError::from(AppError::NotFound))?;
    let bytes = s
        .catalog
        .media_store()
        .get(&key)
        .await
        .map_err(catalog_error)?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        bytes,
    )
        .into_response())
}

/// The operator check lives in [`crate::ops::operator`]: staff roles and permissions, audited.
pub(crate) use crate::ops::operator;

/// One item to import (prices in yuan).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ItemInputView {
    /// The operator's identifier; importing it again updates the item.
    external_id: Option<String>,
    title_zh: Option<String>,
    title_en: Option<String>,
    description_zh: Option<String>,
    description_en: Option<String>,
    category: String,
    tags: Option<Vec<String>>,
    /// Yuan: a number or a decimal string.
    #[schema(value_type = String, example = "199.00")]
    price_min: serde_json::Value,
    /// Yuan; defaults to `price_min`.
    #[schema(value_type = Option<String>)]
    price_max: Option<serde_json::Value>,
    /// ISO 4217, default `CNY`.
    currency: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RowErrorView {
    /// 1-based position of the item in the request.
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResult {
    pub imported: usize,
    pub ids: Vec<i64>,
    pub skipped: Vec<RowErrorView>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ImportParams {
    /// Import the valid items and report the others, instead of importing nothing.
    #[serde(default)]
    pub skip_bad_rows: bool,
}

fn row_views(rows: Vec<custos_app::catalog::input::RowError>) -> Vec<RowErrorView> {
    rows.into_iter()
        .map(|r| RowErrorView {
            line: r.line,
            message: r.message,
        })
        .collect()
}

/// Imports items: all or nothing, unless `skip_bad_rows`. Needs the operator token.
#[utoipa::path(post, path = "/api/v1/operator/items", tag = "operator", params(ImportParams),
    request_body = [ItemInputView], security(("operator_token" = [])),
    responses((status = 201, body = ImportResult),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, description = "`invalid_rows`: nothing was imported; the body lists each row's error", body = Object)))]
pub async fn import_items(
    State(s): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<ImportParams>, axum::extract::rejection::QueryRejection>,
    ApiJson(items): ApiJson<Vec<ItemInput>>,
) -> ApiResult<Response> {
    operator(&s, &headers, custos_app::ops::Permission::CatalogWrite).await?;
    let Query(params) = params.map_err(ApiError::from)?;
    match s.catalog.import_inputs(items, params.skip_bad_rows).await {
        Ok(r) => Ok((
            StatusCode::CREATED,
            Json(ImportResult {
                imported: r.imported,
                ids: r.ids,
                skipped: row_views(r.skipped),
            }),
        )
            .into_response()),
        Err(ImportError::Rows(rows)) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({
                "code": "invalid_rows",
                "message": format!("{} invalid item(s); nothing was imported", rows.len()),
                "rows": row_views(rows),
            })),
        )
            .into_response()),
        Err(ImportError::App(e)) => Err(catalog_error(e)),
    }
}

/// Deletes an item with its media files. Needs the operator token.
#[utoipa::path(delete, path = "/api/v1/operator/items/{id}", tag = "operator",
    params(("id" = i64, Path, description = "item id")), security(("operator_token" = [])),
    responses((status = 204, description = "deleted"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_item(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    operator(&s, &headers, custos_app::ops::Permission::CatalogWrite).await?;
    s.catalog.delete_item(id).await.map_err(catalog_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a media file to an item: the raw bytes as the body (PNG, JPEG, GIF, WebP, MP4,
/// WebM, recognised from the bytes). Needs the operator token.
#[utoipa::path(post, path = "/api/v1/operator/items/{id}/media", tag = "operator",
    params(("id" = i64, Path, description = "item id")), security(("operator_token" = [])),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = MediaView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 415, body = ErrorBody), (status = 422, description = "`invalid_media`", body = ErrorBody)))]
pub async fn upload_media(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    req: Request,
) -> ApiResult<Response> {
    operator(&s, req.headers(), custos_app::ops::Permission::CatalogWrite).await?;
    let max = s.catalog.max_upload_bytes();
    let bytes = axum::body::to_bytes(req.into_body(), max.saturating_add(1))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "media_too_large",
                format!("media files may have at most {max} bytes"),
            )
        })?;
    let m = s
        .catalog
        .add_media(id, bytes.to_vec())
        .await
        .map_err(catalog_error)?;
    Ok((StatusCode::CREATED, Json(MediaView::from(m))).into_response())
}
