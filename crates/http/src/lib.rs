//! # custos-http — the HTTP interface
//!
//! Owns the axum router: the JSON API under `/api/v1` (described by an OpenAPI 3.1
//! document at `/api/openapi.json`), the rendered policy page, health, readiness and
//! Prometheus metrics, and the mapping of use-case errors to status codes with stable
//! error codes. Handlers are thin: extract, call one use case on [`custos_app::Kernel`],
//! map the result.
//!
//! ## Layout
//! - [`error`]: [`ApiError`], its JSON body and status; extractor rejections use it too.
//! - [`caller`]: who is calling (anonymous token from header or cookie), GPC signal.
//! - [`routes`]: handlers and their OpenAPI annotations.
//! - [`openapi`]: the OpenAPI document.
//! - [`observe`]: metrics recorder and request metrics middleware.
//!
//! Must not import: SQL.

pub mod caller;
pub mod error;
pub mod observe;
pub mod openapi;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use custos_app::Kernel;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

pub use error::ApiError;

/// Largest request body accepted (consent decisions are small).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub kernel: Arc<Kernel>,
}

/// Builds the whole application router; tests call it without a socket.
pub fn app(kernel: Arc<Kernel>) -> Router {
    observe::handle();
    let state = AppState { kernel };
    routes::router()
        .with_state(state)
        .layer(axum::middleware::from_fn(observe::track))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(CatchPanicLayer::custom(error::panic_response))
}
