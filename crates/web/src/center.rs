//! The privacy center, `/me`: everything a signed-in user can see and do about their own
//! data, as pages. Every page requires sign-in ([`Ctx::require_user`]) and every handler
//! calls the same use case as the JSON API route named in its comment, so a page can never
//! do what the API would refuse.
//!
//! ## Layout
//! - this file: the overview `/me`, the section navigation and small shared helpers.
//! - [`data`]: `/me/data`, every category of the user's data with where it came from, and
//!   deleting single items (`DELETE /api/v1/me/data/{kind}/{id}`).
//! - [`reauth`]: `/me/reauth`, proving the phone again before export, cancellation and
//!   password changes (`/api/v1/me/reauth/{start,verify}`).
//! - [`export`]: `/me/export`, the background export with progress and download.
//! - [`profile`]: `/me/profile`, corrections of nickname, avatar, birth date; password.
//! - [`consents`]: `/me/consents`, every consent-based purpose with receipts, give and
//!   withdraw, the personalization and location switches.
//! - [`traits`]: `/me/traits`, preference traits with their lineage.
//! - [`sessions`]: `/me/sessions`, active sessions with revoke, sign-out.
//! - [`requests`]: `/me/requests`, rights tickets and complaints; filing either.
//! - [`cancel`]: `/me/cancel`, account cancellation with its cooling-off period.

pub mod cancel;
pub mod consents;
pub mod data;
pub mod export;
pub mod profile;
pub mod reauth;
pub mod requests;
pub mod sessions;
pub mod traits;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use custos_app::AppError;
use custos_http::AppState;
use maud::{html, Markup};

use crate::ctx::Ctx;
use crate::error::WebError;
use crate::forms::csrf_input;
use crate::layout;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me", get(overview))
        .merge(data::routes())
        .merge(reauth::routes())
        .merge(export::routes())
        .merge(profile::routes())
        .merge(consents::routes())
        .merge(traits::routes())
        .merge(sessions::routes())
        .merge(requests::routes())
        .merge(cancel::routes())
}

/// The sections of the center, in navigation order: path, Chinese, English.
const SECTIONS: [(&str, &str, &str); 8] = [
    ("/me/data", "我的数据", "My data"),
    ("/me/export", "导出", "Export"),
    ("/me/profile", "个人资料", "Profile"),
    ("/me/consents", "同意与开关", "Consents and switches"),
    ("/me/traits", "偏好特征", "Preference traits"),
    ("/me/sessions", "登录设备", "Sessions"),
    ("/me/requests", "请求与投诉", "Requests and complaints"),
    ("/me/cancel", "注销账号", "Cancel account"),
];

/// Maps a use-case error to an error page in the caller's language.
pub(crate) trait WebResult<T> {
    fn web(self, ctx: &Ctx) -> Result<T, WebError>;
}

impl<T> WebResult<T> for Result<T, AppError> {
    fn web(self, ctx: &Ctx) -> Result<T, WebError> {
        self.map_err(|e| WebError::from(e).lang(ctx.lang))
    }
}

/// A center page: the heading, the section navigation and `body`, in the site shell.
pub(crate) fn page(ctx: &Ctx, current: &str, title: &str, body: Markup) -> Response {
    layout::page(
        ctx,
        title,
        html! {
            div class="center" {
                (section_nav(ctx, current))
                section class="center-body" aria-labelledby="center-title" {
                    h1 id="center-title" { (title) }
                    (body)
                }
            }
        },
    )
}

/// The section navigation; the current section is marked for assistive technology too.
pub(crate) fn section_nav(ctx: &Ctx, current: &str) -> Markup {
    html! {
        nav class="center-nav" aria-label=(ctx.t("隐私中心", "Privacy center")) {
            ul {
                li {
                    @if current == "/me" {
                        a href="/me" aria-current="page" { (ctx.t("概览", "Overview")) }
                    } @else {
                        a href="/me" { (ctx.t("概览", "Overview")) }
                    }
                }
                @for (path, zh, en) in SECTIONS {
                    li {
                        @if current == path {
                            a href=(path) aria-current="page" { (ctx.t(zh, en)) }
                        } @else {
                            a href=(path) { (ctx.t(zh, en)) }
                        }
                    }
                }
            }
        }
    }
}

/// A point in time, readable and machine-readable (UTC).
pub(crate) fn when(ms: i64) -> Markup {
    let full = custos_core::clock::rfc3339(ms);
    let shown = format!(
        "{} UTC",
        full.get(..16).unwrap_or(full.as_str()).replace('T', " ")
    );
    html! { time datetime=(full) { (shown) } }
}

/// 303 to `to` (Post/Redirect/Get).
pub(crate) fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response()
}

/// A notice after a successful change (`role=status`, announced by screen readers).
pub(crate) fn notice(text: &str) -> Markup {
    html! { p class="notice" role="status" { (text) } }
}

/// The sign-out form (the account module owns `POST /signout`).
pub(crate) fn sign_out_form(ctx: &Ctx) -> Markup {
    html! {
        form method="post" action="/signout" class="inline" {
            (csrf_input(ctx))
            button type="submit" id="sign-out" { (ctx.t("退出登录", "Sign out")) }
        }
    }
}

/// `/me`: the overview. Same account data as `GET /api/v1/me`.
async fn overview(State(s): State<AppState>, ctx: Ctx) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let account = s.identity.account(session.subject).await.web(&ctx)?;
    let cancellation = s.rights.cancellation(session.subject).await.web(&ctx)?;
    let band = match account.age_band.as_str() {
        "adult" => ctx.t("成年", "adult"),
        "minor" => ctx.t("未成年（14 至 17 岁）", "minor (14 to 17)"),
        "child" => ctx.t("儿童（不满 14 岁）", "child (under 14)"),
        _ => ctx.t("未提供", "not given"),
    };
    let body = html! {
        p { (ctx.t(
            "在这里查看我们保存的关于您的全部数据及其来源，导出、更正或删除它们，管理您的同意，或注销账号。",
            "See everything we keep about you and where it came from; export, correct or delete it; manage your consents; or cancel your account."
        )) }
        @if let Some(c) = &cancellation {
            p class="warning" role="status" {
                (ctx.t("您的账号已申请注销，将于以下时间删除：", "Your account is scheduled for erasure on "))
                (when(c.effective_ms)) " "
                a href="/me/cancel" { (ctx.t("撤销注销", "Keep my account")) }
            }
        }
        dl class="facts" {
            dt { (ctx.t("账号创建于", "Account created")) }
            dd { (when(account.created_at_ms)) }
            dt { (ctx.t("年龄段", "Age band")) }
            dd { (band) }
        }
        ul class="center-cards" {
            @for (path, zh, en) in SECTIONS {
                li { a href=(path) { (ctx.t(zh, en)) } }
            }
        }
        (sign_out_form(&ctx))
    };
    Ok(page(&ctx, "/me", ctx.t("隐私中心", "Privacy center"), body))
}
