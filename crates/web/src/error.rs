//! [`WebError`]: a failure rendered as a page (or a redirect), never as JSON and never
//! with internal detail. Client mistakes are 4xx with a readable explanation.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use custos_app::AppError;
use custos_http::ApiError;
use custos_policy::Lang;
use maud::html;

#[derive(Debug)]
pub struct WebError {
    pub status: StatusCode,
    /// Stable code, as in the API (`consent_missing`, `not_found`, …).
    pub code: String,
    /// Explanation shown to the user (no personal data, no internals).
    pub message: String,
    /// Language to render in; both when unknown.
    pub lang: Option<Lang>,
    /// A redirect instead of a page (e.g. to sign in).
    pub location: Option<String>,
}

impl WebError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> WebError {
        WebError {
            status,
            code: code.to_owned(),
            message: message.into(),
            lang: None,
            location: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> WebError {
        WebError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found() -> WebError {
        WebError::new(StatusCode::NOT_FOUND, "not_found", "no such page")
    }

    /// 303 to the sign-in page, returning to `next` afterwards.
    pub fn to_sign_in(next: &str) -> WebError {
        let mut e = WebError::new(StatusCode::SEE_OTHER, "unauthenticated", "sign in first");
        e.location = Some(format!("/signin?next={}", crate::forms::encode(next)));
        e
    }

    pub fn lang(mut self, lang: Lang) -> WebError {
        self.lang = Some(lang);
        self
    }
}

impl From<ApiError> for WebError {
    fn from(e: ApiError) -> Self {
        WebError::new(e.status, e.code, e.message)
    }
}

impl From<AppError> for WebError {
    fn from(e: AppError) -> Self {
        WebError::from(ApiError::from(e))
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if let Some(loc) = &self.location {
            return (StatusCode::SEE_OTHER, [(header::LOCATION, loc.clone())]).into_response();
        }
        let (title, back) = match self.lang {
            Some(Lang::Zh) => ("出错了", "返回首页"),
            Some(Lang::En) => ("Something went wrong", "Back to the home page"),
            None => ("出错了 · Something went wrong", "返回首页 · Home"),
        };
        let lang_attr = match self.lang {
            Some(Lang::En) => "en",
            _ => "zh-CN",
        };
        let body = html! {
            (maud::DOCTYPE)
            html lang=(lang_attr) {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) }
                    link rel="stylesheet" href="/assets/app.css";
                }
                body {
                    main id="main" class="page error-page" {
                        h1 { (title) }
                        p data-error-code=(self.code) { (self.message) }
                        p { a href="/" { (back) } }
                    }
                }
            }
        };
        (
            self.status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                // The same protections as every other page (an error page may repeat
                // what the request sent).
                (header::CONTENT_SECURITY_POLICY, crate::layout::CSP),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "same-origin"),
            ],
            body.into_string(),
        )
            .into_response()
    }
}
