//! `/me/cancel` (P19, L6): cancelling the account. The page explains the cooling-off
//! period (from `[rights] cooling_off_days`) and what is erased and what is kept only in
//! de-identified form; after a fresh re-authentication `#cancel-account` files the
//! cancellation (`POST /api/v1/me/cancellation`). While one is pending, `#cancel-status`
//! shows when the account will be erased, with a button to keep it
//! (`DELETE /api/v1/me/cancellation`).

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use custos_http::AppState;
use maud::html;

use super::reauth::{is_fresh, reauth_prompt, reauth_url};
use super::{page, see_other, when, WebResult};
use crate::ctx::Ctx;
use crate::error::WebError;
use crate::forms::{csrf_input, Empty, WebForm};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me/cancel", get(cancel_page).post(cancel_account))
        .route("/me/cancel/revoke", post(revoke))
}

async fn cancel_page(State(s): State<AppState>, ctx: Ctx) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let pending = s.rights.cancellation(session.subject).await.web(&ctx)?;
    let days = s.rights.cooling_off_ms() / 86_400_000;
    let now = s.kernel.clock.now_ms();
    let kept = custos_app::rights::kept_deidentified();
    let body = html! {
        @if let Some(c) = &pending {
            div id="cancel-status" class="warning" role="status" data-ticket=(c.ticket_id) {
                p {
                    strong { (ctx.t("注销申请已提交。", "Your cancellation is filed. ")) }
                    (ctx.t("您的账号和数据将于以下时间删除：", "Your account and its data will be erased on "))
                    (when(c.effective_ms))
                    (ctx.t("。申请时间：", ". Filed on "))
                    (when(c.requested_ms)) "."
                }
                @if c.effective_ms > now {
                    p { (ctx.t("在此之前您可以随时撤销，账号会保持原样。", "Until then you can change your mind and keep the account as it is.")) }
                    form method="post" action="/me/cancel/revoke" {
                        (csrf_input(&ctx))
                        button type="submit" id="cancel-revoke" { (ctx.t("撤销注销，保留账号", "Keep my account")) }
                    }
                } @else {
                    p { (ctx.t("冷静期已结束，账号正在删除。", "The cooling-off period is over; the account is being erased.")) }
                }
            }
        }
        section aria-labelledby="c-what" {
            h2 id="c-what" { (ctx.t("注销后会发生什么", "What happens when you cancel")) }
            ul {
                li { (ctx.t("提交后有一段冷静期：", "After you file, there is a cooling-off period of "))
                     strong { (days) (ctx.t(" 天", " days")) }
                     (ctx.t("。在此期间您可以随时撤销，账号照常可用。", ". During it you can change your mind at any time and the account keeps working.")) }
                li { (ctx.t("冷静期结束后，我们删除您的账号、个人资料、收藏、评论、设备、位置、偏好特征和服务日志，并销毁加密这些数据的密钥。",
                            "When it ends, we erase your account, profile, bookmarks, comments, devices, location, preference traits and service logs, and destroy the key that encrypts them.")) }
                li { (ctx.t("曾收到您数据的合作方会收到删除通知。", "Partners that received your data are told to delete it.")) }
                li { (ctx.t("注销不需要任何其他条件。建议先在“导出”页面下载一份您的数据。", "Cancelling needs nothing else from you. You may want to download your data on the Export page first.")) }
            }
            h3 { (ctx.t("法律要求保留、且只以去标识化形式保留的内容", "Kept because the law requires it, only in de-identified form")) }
            ul {
                @for k in &kept {
                    li { strong { (k.what) } " — " (k.form) " (" (k.why) ")" }
                }
            }
        }
        @if pending.is_none() {
            @if is_fresh(&s, &ctx) {
                form method="post" action="/me/cancel" {
                    (csrf_input(&ctx))
                    button type="submit" id="cancel-account" class="danger" { (ctx.t("注销我的账号", "Cancel my account")) }
                }
            } @else {
                (reauth_prompt(&ctx, "/me/cancel"))
            }
        }
    };
    Ok(page(
        &ctx,
        "/me/cancel",
        ctx.t("注销账号", "Cancel account"),
        body,
    ))
}

/// Same use case as `POST /api/v1/me/cancellation`; without a fresh re-authentication the
/// user is sent to prove their phone first, and nothing is filed.
async fn cancel_account(
    State(s): State<AppState>,
    ctx: Ctx,
    WebForm(_): WebForm<Empty>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let Ok(who) = s.identity.reauthenticated(session) else {
        return Ok(see_other(&reauth_url("/me/cancel")));
    };
    s.rights.request_cancellation(&who).await.web(&ctx)?;
    Ok(see_other("/me/cancel"))
}

/// Same use case as `DELETE /api/v1/me/cancellation`.
async fn revoke(
    State(s): State<AppState>,
    ctx: Ctx,
    WebForm(_): WebForm<Empty>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    s.rights
        .revoke_cancellation(session.subject)
        .await
        .web(&ctx)?;
    Ok(see_other("/me/cancel"))
}
