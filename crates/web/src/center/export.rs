//! `/me/export`: the background export (P33, L7). Starting one needs a fresh
//! re-authentication (`POST /api/v1/me/exports`); the page shows the job's progress
//! (`GET /api/v1/me/exports`) and refreshes itself while it runs (a meta refresh: no
//! script needed); once ready, `a#export-download` serves the file to its owner only
//! (`GET /api/v1/me/export-files/{token}`): a forged token or another user's is a 404,
//! an expired one a 410 page.

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use custos_app::rights::export::Rendering;
use custos_app::AppError;
use custos_http::AppState;
use maud::html;
use serde::Deserialize;

use super::reauth::{is_fresh, reauth_prompt, reauth_url};
use super::{page, see_other, when, WebResult};
use crate::ctx::Ctx;
use crate::error::WebError;
use crate::forms::{csrf_input, Empty, WebForm};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me/export", get(export_page).post(start_export))
        .route("/me/export/file/{token}", get(download))
}

async fn export_page(State(s): State<AppState>, ctx: Ctx) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let jobs = s.rights.export_jobs(session.subject).await.web(&ctx)?;
    let latest = jobs.into_iter().next();
    let running = latest.as_ref().is_some_and(|j| j.state == "running");
    let fresh = is_fresh(&s, &ctx);
    let body = html! {
        p { (ctx.t(
            "导出包含我们保存的关于您的全部数据：账号、资料、同意记录及其签名回执、收藏、下载、分享、评论、位置、设备、偏好特征、服务日志、请求与投诉、与合作方共享的数据以及第三方提供的数据。文件为 JSON 格式，另附一份便于阅读的网页摘要。",
            "The export holds everything we keep about you: account, profile, consent records with their signed receipts, bookmarks, downloads, shares, comments, location, devices, preference traits, service logs, requests and complaints, what was shared with partners and what third parties sent us. The file is JSON, with a readable web summary."
        )) }
        @if let Some(j) = &latest {
            section class="export-job" aria-labelledby="export-job-title" aria-live="polite" {
                h2 id="export-job-title" { (ctx.t("最近一次导出", "Latest export")) }
                p { (ctx.t("开始于 ", "Started ")) (when(j.created_ms)) }
                label for="export-progress" { (ctx.t("进度", "Progress")) }
                " "
                progress id="export-progress" value=(j.done) max=(j.total.max(1)) {
                    (j.done) " / " (j.total)
                }
                " " span class="progress-text" { (j.done) " / " (j.total) }
                @match j.state.as_str() {
                    "running" => {
                        p { (ctx.t("正在准备，本页会自动刷新。", "Being prepared; this page refreshes by itself.")) " "
                            a href="/me/export" { (ctx.t("立即刷新", "Refresh now")) } }
                    }
                    "ready" => {
                        @if let Some(token) = &j.token {
                            p {
                                a id="export-download" class="button" href={ "/me/export/file/" (token) } download="custos-export.json" {
                                    (ctx.t("下载导出文件（JSON）", "Download the export (JSON)"))
                                }
                                " "
                                a href={ "/me/export/file/" (token) "?format=html" } {
                                    (ctx.t("查看网页摘要", "View the web summary"))
                                }
                            }
                            p { (ctx.t("链接有效期至 ", "The link works until ")) (when(j.expires_ms)) (ctx.t("，之后文件会被删除。", "; then the file is deleted.")) }
                        }
                    }
                    _ => {
                        p class="error" role="alert" { (ctx.t("这次导出没有成功，请重新开始。", "This export did not succeed; please start a new one.")) }
                    }
                }
            }
        }
        @if !running {
            @if fresh {
                form method="post" action="/me/export" {
                    (csrf_input(&ctx))
                    button type="submit" id="export-start" { (ctx.t("开始导出", "Start the export")) }
                }
            } @else {
                (reauth_prompt(&ctx, "/me/export"))
            }
        }
    };
    let mut resp = page(
        &ctx,
        "/me/export",
        ctx.t("导出我的数据", "Export my data"),
        body,
    );
    if running {
        // Reloads the page every 2 seconds while the export runs (the `Refresh` header
        // every browser honours); works without script.
        resp.headers_mut()
            .insert(header::REFRESH, axum::http::HeaderValue::from_static("2"));
    }
    Ok(resp)
}

/// Same use case as `POST /api/v1/me/exports`; without a fresh re-authentication the
/// user is sent to prove their phone first.
async fn start_export(
    State(s): State<AppState>,
    ctx: Ctx,
    WebForm(_): WebForm<Empty>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let Ok(who) = s.identity.reauthenticated(session) else {
        return Ok(see_other(&reauth_url("/me/export")));
    };
    s.rights.start_export(&who).await.web(&ctx)?;
    Ok(see_other("/me/export"))
}

#[derive(Debug, Deserialize)]
struct FileQuery {
    format: Option<String>,
}

/// Same use case as `GET /api/v1/me/export-files/{token}`.
async fn download(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(token): Path<String>,
    Query(q): Query<FileQuery>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let which = match q.format.as_deref().unwrap_or("json") {
        "json" => Rendering::Json,
        "html" => Rendering::Html,
        _ => {
            return Err(WebError::bad_request(
                ctx.t("格式只能是 json 或 html。", "The format is json or html."),
            )
            .lang(ctx.lang))
        }
    };
    let bytes = match s.rights.open_export(session.subject, &token, which).await {
        Err(AppError::BadRequest {
            code: "export_expired",
            ..
        }) => {
            return Err(WebError::new(
                StatusCode::GONE,
                "export_expired",
                ctx.t(
                    "这个导出链接已过期，文件已删除。请在“导出”页面重新开始。",
                    "This export link has expired and the file is gone. Start a new export on the Export page.",
                ),
            )
            .lang(ctx.lang))
        }
        other => other.web(&ctx)?,
    };
    let (ctype, disposition) = match which {
        Rendering::Json => (
            "application/json",
            "attachment; filename=\"custos-export.json\"",
        ),
        // The summary is our own escaped HTML; served alone, with nothing it may load.
        Rendering::Html => ("text/html; charset=utf-8", "inline"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, ctype),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response())
}
