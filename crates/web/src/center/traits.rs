//! `/me/traits` (P12): the preference traits kept about the user, each with its lineage
//! (`GET /api/v1/me/traits`), and a delete button per row (the same use case as
//! `DELETE /api/v1/me/data/trait/{key}`, recorded as a deletion ticket).

use crate::extract::Query;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use custos_http::AppState;
use maud::html;
use serde::Deserialize;

use super::data::delete_button;
use super::{notice, page, when, WebResult};
use crate::ctx::Ctx;
use crate::error::WebError;

pub fn routes() -> Router<AppState> {
    Router::new().route("/me/traits", get(traits_page))
}

#[derive(Debug, Deserialize)]
struct TraitsQuery {
    deleted: Option<String>,
}

async fn traits_page(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<TraitsQuery>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let traits = s.signals.traits(session.subject).await.web(&ctx)?;
    let gate = s.identity.gate_context(session.subject).await.web(&ctx)?;
    let personalized = s
        .signals
        .personalized(Some(session.subject), &gate)
        .await
        .web(&ctx)?;
    let body = html! {
        @if q.deleted.is_some() { (notice(ctx.t("特征已删除。", "The trait was deleted."))) }
        p { (ctx.t(
            "偏好特征是根据您浏览和点击商品推算出的兴趣，例如对某个品类的偏好。它们只在个性化开启并且您同意“个性化推荐”时生成和使用；关闭或撤回后不再使用，撤回同意会删除全部特征。",
            "Preference traits are interests worked out from the items you browse and click, such as a liking for a category. They are made and used only while personalization is on and you agreed to the personalized feed; when it is off they are not used, and withdrawing the consent deletes them all."
        )) }
        p class="status-line" {
            (ctx.t("现在：", "Right now: "))
            @if personalized {
                strong { (ctx.t("个性化已开启，这些特征会影响商品排序。", "personalization is on; these traits affect the order of items.")) }
            } @else {
                strong { (ctx.t("个性化未开启，这些特征不被使用。", "personalization is off; these traits are not used.")) }
            }
            " " a href="/me/consents" { (ctx.t("更改", "Change")) }
        }
        @if traits.is_empty() {
            p class="empty" { (ctx.t("目前没有偏好特征。", "There are no preference traits now.")) }
        } @else {
            table class="traits" {
                caption { (ctx.t("您的偏好特征及其来源", "Your preference traits and where they came from")) }
                thead { tr {
                    th scope="col" { (ctx.t("特征", "Trait")) }
                    th scope="col" { (ctx.t("权重", "Weight")) }
                    th scope="col" { (ctx.t("依据的用途", "Purpose it serves")) }
                    th scope="col" { (ctx.t("来源", "Derived from")) }
                    th scope="col" { (ctx.t("更新于", "Updated")) }
                    th scope="col" { span class="visually-hidden" { (ctx.t("操作", "Actions")) } }
                } }
                tbody {
                    @for t in &traits {
                        tr class="trait" data-key=(t.key) {
                            td { (t.key) }
                            td { (format!("{:.2}", t.weight)) }
                            td { (purpose_name(&s, &ctx, &t.purpose)) }
                            td { (ctx.t("您对商品的浏览和点击记录，以及您自己的更改", "your browsing and clicks on items, and your own changes")) }
                            td { (when(t.updated_at_ms)) }
                            td { (delete_button(&ctx, "trait", &t.key, "delete-trait", "/me/traits")) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        &ctx,
        "/me/traits",
        ctx.t("偏好特征", "Preference traits"),
        body,
    ))
}

/// A purpose's name from the current declaration, or its id.
pub(crate) fn purpose_name(s: &AppState, ctx: &Ctx, id: &str) -> String {
    let regime = s.kernel.gate.regime();
    regime
        .current()
        .purpose(id)
        .map(|p| p.name.get(ctx.lang).to_owned())
        .unwrap_or_else(|| id.to_owned())
}
