//! API errors: `{"code": "...", "message": "..."}` with a stable code and the right
//! status. Internal causes go to the log, never into the body.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use custos_app::AppError;
use custos_core::Denial;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable code (`consent_missing`, `invalid_json`, …).
    pub code: String,
    /// Human-readable explanation; never contains personal data.
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429 answers).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(ErrorBody {
                code: self.code.to_owned(),
                message: self.message,
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let code = e.code();
        match e {
            AppError::BadRequest { message, .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            AppError::NotFound => ApiError::new(StatusCode::NOT_FOUND, code, "no such resource"),
            AppError::AccountRequired(_) => {
                ApiError::new(StatusCode::FORBIDDEN, code, e.to_string())
            }
            AppError::Denied(d) => {
                let status = match d {
                    Denial::UnknownPurpose | Denial::UndeclaredCategory(_) => {
                        StatusCode::UNPROCESSABLE_ENTITY
                    }
                    _ => StatusCode::FORBIDDEN,
                };
                ApiError::new(status, code, d.to_string())
            }
            AppError::Unavailable(cause) => {
                tracing::error!(%cause, "storage unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "the service is temporarily unavailable",
                )
            }
            AppError::Unauthenticated => {
                ApiError::new(StatusCode::UNAUTHORIZED, code, e.to_string())
            }
            AppError::ReauthenticationRequired => {
                ApiError::new(StatusCode::FORBIDDEN, code, e.to_string())
            }
            AppError::Throttled {
                retry_after_secs, ..
            } => {
                let mut api = ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, e.to_string());
                api.retry_after = Some(retry_after_secs);
                api
            }
            AppError::GatewayUnavailable(cause) => {
                tracing::warn!(%cause, "text message gateway unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "text messages cannot be sent right now; retry later",
                )
            }
            AppError::IdpUnavailable(cause) => {
                tracing::warn!(%cause, "identity provider unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "the identity provider cannot be reached right now; retry later",
                )
            }
            AppError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, "internal error")
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let (status, code) = match &r {
            JsonRejection::MissingJsonContentType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            JsonRejection::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            JsonRejection::BytesRejection(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            _ => (StatusCode::BAD_REQUEST, "invalid_body"),
        };
        ApiError::new(status, code, r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text())
    }
}

/// A panic in a handler becomes a bare 500 with a stable code; the panic is logged.
pub fn panic_response(_err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
    .into_response()
}

/// JSON extractor whose rejections use the API's error format.
#[derive(Debug, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Path extractor whose rejections use the API's error format.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Query extractor whose rejections use the API's error format.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

pub type ApiResult<T> = Result<T, ApiError>;
