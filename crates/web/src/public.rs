//! Public pages: the home feed, search, item pages with their actions, the first-visit
//! consent dialog with its receipts, and the controller's contact page.
//!
//! Reading these pages needs no account and sets no cookie (P5). The feed and search are
//! the same use cases as `GET /api/v1/feed` and `GET /api/v1/items`, labelled when the
//! answer is personalized (L5). Views, searches and actions of signed-in users go to the
//! service log through `Signals::ingest`, whose gate drops them without consent (P10).
//!
//! The first-visit dialog (P1, P3, L2) lists each additional purpose with its own switch,
//! all off; "refuse all" sits beside "accept all" with the same look. A decision goes
//! through the same kernel call as `POST /api/v1/consents` (method `dialog`); afterwards
//! nobody is prompted again within the quiet period (`[web] consent_quiet_days`, default
//! 30): a visitor without an identifier by the [`CONSENT_ASKED_COOKIE`] (it holds only the
//! day of the decision), a subject by the decisions in the ledger.
//!
//! - `browse`: `/`, `/search`, `/items/{id}` and its POST actions, `/shares/{token}`.
//! - `consent`: the dialog, `POST /consent`, `/receipts/{id}`.

mod browse;
mod consent;

use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use custos_http::AppState;
use maud::{html, Markup};

use crate::ctx::Ctx;
use crate::error::WebError;

/// The cookie that remembers, without any identifier, when this browser last decided in
/// the first-visit dialog; it lives for the quiet period.
pub const CONSENT_ASKED_COOKIE: &str = "custos-consent-asked";

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(browse::routes())
        .merge(consent::routes())
        .route("/contact", get(contact))
}

/// Whether the first-visit consent dialog is due for this request.
pub async fn needs_consent_prompt(
    state: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
) -> Result<bool, WebError> {
    consent::needs_prompt(state, ctx, headers).await
}

/// The first-visit consent dialog, when [`Ctx::consent_prompt`] says it is due; otherwise
/// the notice with the receipt link right after a decision.
pub fn consent_dialog(ctx: &Ctx) -> Option<Markup> {
    consent::dialog(ctx).or_else(|| consent::decision_notice(ctx))
}

/// The first-visit consent dialog alone (the shell puts it first in the page).
pub fn consent_modal(ctx: &Ctx) -> Option<Markup> {
    consent::dialog(ctx)
}

/// The notice with the receipt link right after a decision (the shell puts it at the top
/// of the main content), unless the dialog is due.
pub fn consent_notice(ctx: &Ctx) -> Option<Markup> {
    if ctx.consent_prompt {
        return None;
    }
    consent::decision_notice(ctx)
}

/// The controller's contact, from the declaration.
async fn contact(axum::extract::State(s): axum::extract::State<AppState>, ctx: Ctx) -> Response {
    let regime = s.kernel.gate.regime();
    let c = &regime.current().declaration().controller;
    let l = ctx.lang;
    let body = html! {
        h1 { (ctx.t("联系我们", "Contact us")) }
        p { (ctx.t("负责处理您个人信息的公司：", "The company responsible for your personal information:")) }
        dl class="contact" {
            dt { (ctx.t("名称", "Name")) }
            dd { (c.name.get(l)) }
            dt { (ctx.t("地址", "Address")) }
            dd { (c.address.get(l)) }
            dt { (ctx.t("电子邮件", "Email")) }
            dd { a href={ "mailto:" (c.email) } { (c.email) } }
            dt { (ctx.t("电话", "Phone")) }
            dd { a href={ "tel:" (c.phone.replace(' ', "")) } { (c.phone) } }
            @if let Some(dpo) = &c.dpo_email {
                dt { (ctx.t("个人信息保护负责人", "Data protection officer")) }
                dd { a href={ "mailto:" (dpo) } { (dpo) } }
            }
            dt { (ctx.t("投诉渠道", "Where to complain")) }
            dd { (c.complaint_route.get(l)) }
        }
        p {
            (ctx.t("已登录的用户也可以在", "Signed-in users can also send requests from the "))
            a href="/me/requests" { (ctx.t("隐私中心", "privacy center")) }
            (ctx.t("提交请求。", "."))
        }
    };
    crate::layout::page(&ctx, ctx.t("联系我们", "Contact us"), body)
}
