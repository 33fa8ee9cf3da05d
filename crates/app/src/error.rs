//! Errors of the use cases, each with a stable code. Causes of internal errors are kept
//! for the log; clients see only the code.

use custos_core::Denial;
use custos_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("not found")]
    NotFound,
    #[error("an account is required for purpose `{0}`")]
    AccountRequired(String),
    #[error("processing is not allowed: {0}")]
    Denied(#[from] Denial),
    #[error("storage is unavailable")]
    Unavailable(String),
    #[error("sign in first")]
    Unauthenticated,
    #[error("confirm it is you with a fresh code first")]
    ReauthenticationRequired,
    #[error("too many attempts; retry in {retry_after_secs} s")]
    Throttled {
        code: &'static str,
        retry_after_secs: u64,
    },
    #[error("the text message gateway is unavailable")]
    GatewayUnavailable(String),
    #[error("the identity provider is unavailable")]
    IdpUnavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    pub fn bad(code: &'static str, message: impl Into<String>) -> AppError {
        AppError::BadRequest {
            code,
            message: message.into(),
        }
    }
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest { code, .. } => code,
            AppError::NotFound => "not_found",
            AppError::AccountRequired(_) => "account_required",
            AppError::Denied(d) => d.code(),
            AppError::Unavailable(_) => "unavailable",
            AppError::Unauthenticated => "unauthenticated",
            AppError::ReauthenticationRequired => "reauthentication_required",
            AppError::Throttled { code, .. } => code,
            AppError::GatewayUnavailable(_) => "sms_unavailable",
            AppError::IdpUnavailable(_) => "idp_unavailable",
            AppError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(m) => AppError::bad("invalid", m),
            StoreError::Database(sqlx_err)
                if matches!(sqlx_err, custos_store::db::SqlxError::PoolTimedOut) =>
            {
                AppError::Unavailable(sqlx_err.to_string())
            }
            other => AppError::Internal(other.to_string()),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
