//! `/me/sessions`: the account's active sessions (`GET /api/v1/me/sessions`), the current
//! one marked, each other one with a revoke button (`DELETE /api/v1/me/sessions/{id}`):
//! the revoked session is signed out at its next request. Signing out of this session is
//! the account module's `POST /signout`.

use crate::extract::Query;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use custos_http::AppState;
use maud::html;
use serde::Deserialize;

use super::{notice, page, see_other, sign_out_form, when, WebResult};
use crate::ctx::Ctx;
use crate::error::WebError;
use crate::forms::{csrf_input, WebForm};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me/sessions", get(sessions_page))
        .route("/me/sessions/revoke", post(revoke))
}

#[derive(Debug, Deserialize)]
struct SessionsQuery {
    revoked: Option<String>,
}

async fn sessions_page(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<SessionsQuery>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let list = s.identity.list_sessions(session).await.web(&ctx)?;
    let body = html! {
        @if q.revoked.is_some() { (notice(ctx.t("该登录已退出。", "That session was signed out."))) }
        p { (ctx.t(
            "这里列出您的账号目前在哪些地方保持登录。如有不认识的登录，请将其退出，并考虑修改密码。",
            "These are the places where your account is signed in. If you don't recognise one, sign it out, and consider changing your password."
        )) }
        table class="sessions" {
            caption { (ctx.t("有效的登录", "Active sessions")) }
            thead { tr {
                th scope="col" { (ctx.t("登录于", "Signed in")) }
                th scope="col" { (ctx.t("最近使用", "Last used")) }
                th scope="col" { (ctx.t("到期", "Expires")) }
                th scope="col" { (ctx.t("操作", "Action")) }
            } }
            tbody {
                @for si in &list {
                    tr class={ "session" @if si.current { " current" } } data-session=(si.id) {
                        td {
                            (when(si.created_at_ms))
                            @if si.current { " " strong class="badge" { (ctx.t("（当前这次登录）", "(this session)")) } }
                        }
                        td { (when(si.last_seen_at_ms)) }
                        td { (when(si.expires_at_ms)) }
                        td {
                            @if si.current {
                                (sign_out_form(&ctx))
                            } @else {
                                form method="post" action="/me/sessions/revoke" class="inline" {
                                    (csrf_input(&ctx))
                                    input type="hidden" name="id" value=(si.id);
                                    button type="submit" class="revoke-session" { (ctx.t("退出这次登录", "Sign this session out")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        &ctx,
        "/me/sessions",
        ctx.t("登录设备", "Sessions"),
        body,
    ))
}

#[derive(Debug, Deserialize)]
struct RevokeForm {
    id: String,
}

/// Same use case as `DELETE /api/v1/me/sessions/{id}`; another account's session is a 404.
async fn revoke(
    State(s): State<AppState>,
    ctx: Ctx,
    WebForm(f): WebForm<RevokeForm>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    s.identity
        .revoke_session(session.subject, &f.id)
        .await
        .web(&ctx)?;
    if f.id == session.id {
        return Ok(see_other("/"));
    }
    Ok(see_other("/me/sessions?revoked=1"))
}
