//! HTTP routes of the feed and the audience segments (`custos_app::signals::feed`,
//! `custos_app::signals::profile`), with their OpenAPI paths. P12, L5, L13.
//!
//! The feed serves everyone; a signed-in caller with personalization switched on and
//! `personalized_feed` consented gets it ranked by their traits, and every answer says
//! whether it was (`personalized`). No route takes a subject id: each acts on the caller.

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use custos_app::AppError;
use custos_core::{GateContext, SubjectId};
use custos_search::MAX_LIMIT;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::caller::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::session::Session;
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/feed", get(get_feed))
        .route("/api/v1/me/segments", get(my_segments))
}

/// Bad feed or search input is a 400 with a stable code, as in the catalog search.
pub fn feed_error(e: AppError) -> ApiError {
    let mut api = ApiError::from(e);
    if matches!(
        api.code,
        "query_too_long" | "invalid_cursor" | "invalid_filter" | "invalid_limit"
    ) {
        api.status = StatusCode::BAD_REQUEST;
    }
    api
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// The subject whose responses may be personalized, with its gate context: a signed-in
/// account only (`personalized_feed` needs one); anyone else gets the plain answer.
pub async fn personalizable(
    s: &AppState,
    caller: &Caller,
) -> ApiResult<(Option<SubjectId>, GateContext<'static>)> {
    match (caller.subject, caller.account) {
        (Some(subject), true) => Ok((Some(subject), s.identity.gate_context(subject).await?)),
        _ => Ok((None, GateContext::default())),
    }
}

/// Query parameters of the feed (documentation; the handler reads them one by one so that
/// an unknown one is named in the error).
#[derive(Debug, Deserialize, IntoParams)]
#[allow(dead_code)]
pub struct FeedParams {
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Items per page, 1–100 (default 20).
    limit: Option<u32>,
}

/// The feed: every catalog item, newest first, or ranked by the caller's preference
/// traits when personalization is on and consented (`personalized: true`). Prices and
/// terms are the same for everyone; only the order differs (L13). Switching
/// personalization off (or withdrawing) makes the very next answer plain, without reading
/// the profile (L5); a cursor from before the switch starts the feed over.
#[utoipa::path(get, path = "/api/v1/feed", tag = "signals", params(FeedParams), responses(
    (status = 200, description = "Same shape as the catalog search, with `personalized`", body = crate::catalog::SearchResponse),
    (status = 400, description = "`invalid_cursor`, `invalid_limit`, `unknown_parameter`, `invalid_query`", body = ErrorBody),
    (status = 401, description = "a bad bearer token", body = ErrorBody)))]
pub async fn get_feed(
    State(s): State<AppState>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(pairs) = query.map_err(ApiError::from)?;
    let (mut cursor, mut limit) = (None, None);
    for (k, v) in pairs {
        let slot = match k.as_str() {
            "cursor" => &mut cursor,
            "limit" => &mut limit,
            _ => {
                let shown: String = k.chars().take(40).collect();
                return Err(bad(
                    "unknown_parameter",
                    format!("unknown parameter `{shown}`; known: cursor, limit"),
                ));
            }
        };
        if slot.replace(v).is_some() {
            return Err(bad("invalid_query", format!("`{k}` is given twice")));
        }
    }
    let limit = match limit {
        None => custos_app::signals::feed::DEFAULT_FEED_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| bad("invalid_limit", format!("limit must be 1 to {MAX_LIMIT}")))?,
    };
    let (subject, ctx) = personalizable(&s, &caller).await?;
    let out = s
        .signals
        .feed(&s.catalog, subject, &ctx, cursor, limit)
        .await
        .map_err(feed_error)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        out.to_json(),
    )
        .into_response())
}

/// One audience segment.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentView {
    pub id: String,
    pub name: String,
}

/// The caller's audience segments.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentsView {
    /// Personalization on and consented; otherwise `segments` is empty and no profile
    /// was read.
    pub personalized: bool,
    pub segments: Vec<SegmentView>,
}

/// The configured audience segments the caller's traits place them in (P12). Empty, with
/// `personalized: false`, when personalization is off or not consented.
#[utoipa::path(get, path = "/api/v1/me/segments", tag = "signals",
    responses((status = 200, body = SegmentsView), (status = 401, body = ErrorBody)))]
pub async fn my_segments(
    State(s): State<AppState>,
    Session(session): Session,
) -> ApiResult<Json<SegmentsView>> {
    let ctx = s.identity.gate_context(session.subject).await?;
    let found = s.signals.segments_of(session.subject, &ctx).await?;
    Ok(Json(SegmentsView {
        personalized: found.is_some(),
        segments: found
            .unwrap_or_default()
            .into_iter()
            .map(|g| SegmentView {
                id: g.id,
                name: g.name,
            })
            .collect(),
    }))
}

/// This module's part of the OpenAPI document, merged into [`crate::openapi::ApiDoc`].
#[derive(OpenApi)]
#[openapi(
    paths(get_feed, my_segments),
    components(schemas(SegmentView, SegmentsView)),
    tags((name = "signals"))
)]
pub struct FeedApi;
