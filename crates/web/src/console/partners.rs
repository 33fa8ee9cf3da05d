//! `/console/partners`: the partner registry from the declaration and the share log
//! (what went to which partner, on which basis; never about whom). Needs
//! `partners.share`, the permission of the one egress path (`POST
//! /api/v1/operator/partners/{id}/shares`).

use crate::extract::Query;
use axum::extract::State;
use axum::response::Response;
use custos_app::ops::Permission;
use custos_http::AppState;
use maud::html;
use serde::Deserialize;

use super::{app_err, require_allowed, shell, when, MaybeStaff};
use crate::ctx::Ctx;
use crate::error::WebError;

const PAGE: i64 = 50;

#[derive(Debug, Deserialize)]
pub struct LogQuery {
    /// Shares older than this id.
    pub before: Option<i64>,
}

fn names(json: &str) -> String {
    serde_json::from_str::<Vec<String>>(json)
        .map(|v| v.join(", "))
        .unwrap_or_default()
}

pub async fn page(
    State(s): State<AppState>,
    ctx: Ctx,
    MaybeStaff(staff): MaybeStaff,
    Query(q): Query<LogQuery>,
) -> Result<Response, WebError> {
    let st = require_allowed(
        &s,
        &ctx,
        staff,
        Permission::PartnersShare,
        "GET /console/partners",
    )
    .await?;
    let partners = s.ops.partners();
    let log = s
        .ops
        .share_log(q.before, PAGE)
        .await
        .map_err(app_err(&ctx))?;
    let yes_no = |b: bool| {
        if b {
            ctx.t("是", "yes")
        } else {
            ctx.t("否", "no")
        }
    };
    let body = html! {
        h1 { (ctx.t("合作方与数据共享", "Partners and sharing")) }
        section aria-labelledby="registry-heading" {
            h2 id="registry-heading" { (ctx.t("合作方名录（来自政策声明）", "Partner registry (from the declaration)")) }
            @if partners.is_empty() {
                p { (ctx.t("声明中没有合作方。", "The declaration names no partners.")) }
            } @else {
                table class="data" id="partners" {
                    thead { tr {
                        th scope="col" { (ctx.t("合作方", "Partner")) }
                        th scope="col" { (ctx.t("联系方式", "Contact")) }
                        th scope="col" { (ctx.t("地区", "Region")) }
                        th scope="col" { (ctx.t("跨境", "Cross-border")) }
                        th scope="col" { (ctx.t("目的", "Purposes")) }
                        th scope="col" { (ctx.t("允许的字段", "Allowed fields")) }
                        th scope="col" { (ctx.t("合同", "Contract")) }
                    } }
                    tbody {
                        @for p in &partners {
                            tr data-partner=(p.id) {
                                th scope="row" { (ctx.t(&p.name_zh, &p.name_en)) " " code { (p.id) } }
                                td { (p.contact) }
                                td { (p.region) }
                                td { (yes_no(p.cross_border)) }
                                td { (p.purposes.join(", ")) }
                                td { (p.allowed_fields.join(", ")) }
                                td { (p.contract.as_deref().unwrap_or("—")) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="sharelog-heading" {
            h2 id="sharelog-heading" { (ctx.t("共享记录", "Share log")) }
            @if log.is_empty() {
                p { (ctx.t("还没有共享记录。", "Nothing has been shared.")) }
            } @else {
                table class="data" id="share-log" {
                    thead { tr {
                        th scope="col" { "#" }
                        th scope="col" { (ctx.t("时间", "When")) }
                        th scope="col" { (ctx.t("合作方", "Partner")) }
                        th scope="col" { (ctx.t("目的", "Purpose")) }
                        th scope="col" { (ctx.t("依据", "Basis")) }
                        th scope="col" { (ctx.t("发送的字段", "Fields sent")) }
                        th scope="col" { (ctx.t("剔除的字段", "Fields withheld")) }
                        th scope="col" { (ctx.t("操作者", "By")) }
                        th scope="col" { (ctx.t("状态", "Status")) }
                    } }
                    tbody {
                        @for r in &log {
                            tr {
                                td { (r.id) }
                                td { (when(r.at_ms)) }
                                td { (r.partner) }
                                td { (r.purpose.as_deref().unwrap_or("—")) }
                                td { (r.basis) }
                                td { (names(&r.fields)) }
                                td { (names(&r.stripped)) }
                                td { (r.actor) }
                                td { (r.status) }
                            }
                        }
                    }
                }
                @if log.len() as i64 == PAGE {
                    @if let Some(last) = log.last() {
                        p { a href={ "/console/partners?before=" (last.id) } { (ctx.t("更早的记录", "Older entries")) " →" } }
                    }
                }
            }
        }
    };
    Ok(shell(&ctx, Some(&st), ctx.t("合作方", "Partners"), body))
}
