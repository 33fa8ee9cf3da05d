//! [`Query`] and [`Path`] for pages: axum's extractors whose rejection is a page — a
//! malformed query is a 400 page, a malformed path parameter a 404 page — instead of
//! axum's plain-text answer. Handlers use them exactly like axum's.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::WebError;

/// The query string, deserialized; 400 page when it does not fit `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, WebError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| WebError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))
    }
}

/// Path parameters, deserialized; 404 page when they do not fit `T` (no such page).
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, WebError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|_| WebError::not_found())
    }
}
