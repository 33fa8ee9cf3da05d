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
//! - [`session`]: session authentication (bearer or cookie), CSRF, re-authentication.
//! - [`openapi`]: the OpenAPI document.
//! - [`observe`]: metrics recorder and request metrics middleware.
//!
//! Must not import: SQL.

pub mod ads;
pub mod caller;
pub mod catalog;
pub mod device;
pub mod error;
pub mod feed;
pub mod identity;
pub mod incidents;
pub mod limit;
pub mod observe;
pub mod openapi;
pub mod ops;
pub mod ops_policy;
pub mod partners;
pub mod push;
pub mod rights;
pub mod routes;
pub mod session;
pub mod signals;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use custos_app::{App, Kernel};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

pub use error::ApiError;

/// Largest request body accepted (consent decisions are small).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub kernel: Arc<Kernel>,
    pub identity: Arc<custos_app::identity::Identity>,
    pub catalog: Arc<custos_app::catalog::Catalog>,
    pub signals: Arc<custos_app::signals::Signals>,
    pub rights: Arc<custos_app::rights::Rights>,
    pub ops: Arc<custos_app::ops::Ops>,
    pub policy_ops: Arc<custos_app::ops::revisions::PolicyOps>,
    /// Settings of the web app (`[web]`).
    pub web: custos_app::config::WebConfig,
    pub limiter: limit::WriteLimiter,
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone, Copy)]
pub struct HttpOptions {
    /// State-changing requests per second per client address; 0 turns the limit off.
    pub writes_per_second: u32,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            writes_per_second: limit::DEFAULT_WRITES_PER_SECOND,
        }
    }
}

/// Builds the whole application router; tests call it without a socket.
pub fn app(app: App) -> Router {
    app_with(app, HttpOptions::default())
}

/// Builds the router with explicit settings.
pub fn app_with(app: App, opts: HttpOptions) -> Router {
    app_with_routes(app, opts, Router::new())
}

/// Builds the router with explicit settings and `extra` routes (the web UI) merged into
/// the API's, under the same limits, discontinuation check and middleware.
pub fn app_with_routes(app: App, opts: HttpOptions, extra: Router<AppState>) -> Router {
    observe::handle();
    let state = AppState {
        kernel: app.kernel,
        identity: app.identity,
        catalog: app.catalog,
        signals: app.signals,
        rights: app.rights,
        ops: app.ops,
        policy_ops: app.policy_ops,
        web: app.web,
        limiter: limit::WriteLimiter::per_second(opts.writes_per_second),
    };
    routes::router()
        .merge(extra)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit::limit_writes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops_policy::discontinued,
        ))
        .with_state(state)
        .layer(axum::middleware::from_fn(observe::track))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(CatchPanicLayer::custom(error::panic_response))
}
