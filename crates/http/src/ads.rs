//! HTTP routes of ads (P27, L14; `custos_app::signals::ads`): the ad slot, click reports
//! and the operator's k-anonymous effectiveness report; and the anonymous identifier
//! cookie's clearing value. `Sec-GPC: 1` makes every slot contextual and, from a signed-in
//! caller, is recorded once in the ledger as an objection.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use custos_app::signals::ads::{AdCreative, AdGroupReport, AdReport, AdSlot};
use custos_core::GateContext;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::caller::{Caller, ANON_COOKIE};
use crate::error::{ApiJson, ApiQuery, ApiResult, ErrorBody};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/ads/slot", get(ad_slot))
        .route("/api/v1/ads/click", post(ad_click))
        .route("/api/v1/operator/ads/report", get(ad_report))
}

/// The `Set-Cookie` value that removes the anonymous identifier (after the last consent
/// that needed it is withdrawn or refused).
pub fn clear_anon_cookie() -> String {
    format!("{ANON_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// The gate context of a caller, with its GPC signal.
async fn context(s: &AppState, caller: &Caller) -> ApiResult<GateContext<'static>> {
    let mut ctx = match (caller.subject, caller.account) {
        (Some(subject), true) => s.identity.gate_context(subject).await?,
        _ => GateContext::default(),
    };
    ctx.gpc = caller.gpc;
    Ok(ctx)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SlotQuery {
    /// What the page is about (a search, a category): at most 64 characters.
    pub context: Option<String>,
}

/// The ad in a slot, at the catalog's own price.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdView {
    pub ad_id: i64,
    pub item_id: i64,
    pub title_zh: String,
    pub title_en: String,
    pub category: String,
    /// Minor units (fen), as on the item page.
    pub price_min: i64,
    pub price_max: i64,
    pub currency: String,
}

/// An ad slot.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdSlotView {
    /// Chosen from your interests (`true`: `personalized_ads` consented, no GPC signal,
    /// personalization on) or from the page's context alone (`false`).
    pub targeted: bool,
    /// Always `广告 / Ad`: ads are labelled.
    pub label: &'static str,
    pub ad: Option<AdView>,
}

impl From<AdSlot> for AdSlotView {
    fn from(s: AdSlot) -> Self {
        AdSlotView {
            targeted: s.targeted,
            label: "广告 / Ad",
            ad: s.ad.map(|a: AdCreative| AdView {
                ad_id: a.ad_id,
                item_id: a.item_id,
                title_zh: a.title_zh,
                title_en: a.title_en,
                category: a.category,
                price_min: a.price_min,
                price_max: a.price_max,
                currency: a.currency,
            }),
        }
    }
}

/// An ad slot (P27, L14): targeted only with `personalized_ads` consented and no
/// `Sec-GPC: 1`; contextual otherwise. A signed-in caller's GPC signal is recorded once in
/// the ledger as an objection to ads and partner sharing.
#[utoipa::path(get, path = "/api/v1/ads/slot", tag = "ads", params(SlotQuery,
        ("Sec-GPC" = Option<String>, Header, description = "`1`: Global Privacy Control")),
    responses((status = 200, body = AdSlotView),
              (status = 400, description = "invalid_query", body = ErrorBody),
              (status = 422, description = "invalid_context", body = ErrorBody)))]
pub async fn ad_slot(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<SlotQuery>,
) -> ApiResult<Json<AdSlotView>> {
    let ctx = context(&s, &caller).await?;
    let slot = s
        .signals
        .ad_slot(
            &s.catalog,
            caller.subject,
            caller.account,
            q.context.as_deref(),
            &ctx,
        )
        .await?;
    Ok(Json(slot.into()))
}

/// A click on an ad.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClickBody {
    pub ad_id: i64,
    /// `targeted` of the slot the ad was shown in.
    #[serde(default)]
    pub targeted: bool,
}

/// Whether the click was kept (only for viewers who agreed to ad measurement).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClickView {
    pub recorded: bool,
}

/// Reports a click on an ad; it is counted, de-identified, only under `personalized_ads`
/// consent and without GPC.
#[utoipa::path(post, path = "/api/v1/ads/click", tag = "ads", request_body = ClickBody,
    responses((status = 200, body = ClickView),
              (status = 404, description = "no such ad", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn ad_click(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ClickBody>,
) -> ApiResult<Json<ClickView>> {
    let ctx = context(&s, &caller).await?;
    let recorded = s
        .signals
        .ad_click(&s.catalog, caller.subject, body.ad_id, body.targeted, &ctx)
        .await?;
    Ok(Json(ClickView { recorded }))
}

/// One group (ad × targeting) of the report.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdGroupView {
    pub ad_id: i64,
    pub targeted: bool,
    /// Fewer than k distinct users: no count is released.
    pub suppressed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impressions: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clicks: Option<i64>,
}

/// Ad effectiveness, released only for groups of at least k distinct users.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdReportView {
    /// k (`[signals] ads_min_group_users`).
    pub min_group_users: u32,
    pub groups: Vec<AdGroupView>,
}

impl From<AdReport> for AdReportView {
    fn from(r: AdReport) -> Self {
        AdReportView {
            min_group_users: r.min_group_users,
            groups: r
                .groups
                .into_iter()
                .map(|g: AdGroupReport| AdGroupView {
                    ad_id: g.ad_id,
                    targeted: g.targeted,
                    suppressed: g.suppressed,
                    users: g.users,
                    impressions: g.impressions,
                    clicks: g.clicks,
                })
                .collect(),
        }
    }
}

/// Ad effectiveness for the operator (P27): per ad and targeting, counts only for groups
/// of at least k distinct users; smaller groups appear only as suppressed.
#[utoipa::path(get, path = "/api/v1/operator/ads/report", tag = "operator",
    security(("operator_token" = [])),
    responses((status = 200, body = AdReportView),
              (status = 401, description = "unauthorized", body = ErrorBody),
              (status = 403, description = "operator_api_disabled", body = ErrorBody)))]
pub async fn ad_report(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<AdReportView>> {
    crate::catalog::operator(&s, &headers, custos_app::ops::Permission::StatsRead).await?;
    Ok(Json(s.signals.ad_report().await?.into()))
}

/// This module's part of the OpenAPI document, merged into [`crate::openapi::ApiDoc`].
#[derive(OpenApi)]
#[openapi(
    paths(ad_slot, ad_click, ad_report),
    components(schemas(AdView, AdSlotView, ClickBody, ClickView, AdGroupView, AdReportView)),
    tags((name = "ads", description = "Ad slots (targeted only with consent and without GPC) and k-anonymous effectiveness"))
)]
pub struct AdsApi;
