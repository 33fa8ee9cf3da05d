//! See the crate documentation.

use axum::Router;
use custos_http::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
