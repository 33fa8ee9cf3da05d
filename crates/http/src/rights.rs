//! HTTP routes of the rights service (`custos_app::rights`), with their OpenAPI paths.

use axum::Router;
use utoipa::OpenApi;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}

/// This module's part of the OpenAPI document, merged into [`crate::openapi::ApiDoc`].
#[derive(OpenApi)]
#[openapi(tags((name = "rights")))]
pub struct RightsApi;
