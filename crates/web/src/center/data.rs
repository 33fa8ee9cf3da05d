//! `/me/data` (P33, L7): every category of data kept about the user, each with where it
//! came from. The page reads the export document (the same use case the export runs,
//! `Rights::export_document`), so what it shows and what an export contains cannot drift
//! apart. Items the user may delete one by one carry a delete button (P21), the same use
//! case as `DELETE /api/v1/me/data/{kind}/{id}`.

use crate::extract::Query;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use custos_app::rights::deletion::Item;
use custos_http::AppState;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::{notice, page, see_other, WebResult};
use crate::ctx::Ctx;
use crate::error::WebError;
use crate::forms::{csrf_input, encode, safe_next, WebForm};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me/data", get(data_page))
        .route("/me/data/delete", post(delete_item))
}

/// Service-log events listed on the page; the rest are counted (all are in the export).
const EVENTS_SHOWN: usize = 20;

/// A JSON value as text: strings bare, `null` as a dash.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// A delete button for one item, posting to [`delete_item`].
pub(crate) fn delete_button(ctx: &Ctx, kind: &str, id: &str, class: &str, next: &str) -> Markup {
    html! {
        form method="post" action="/me/data/delete" class="inline" {
            (csrf_input(ctx))
            input type="hidden" name="kind" value=(kind);
            input type="hidden" name="id" value=(id);
            input type="hidden" name="next" value=(next);
            button type="submit" class=(class) data-kind=(kind) {
                (ctx.t("删除", "Delete"))
            }
        }
    }
}

fn source(ctx: &Ctx, zh: &str, en: &str) -> Markup {
    html! {
        p class="source" {
            strong { (ctx.t("来源：", "Where it came from: ")) }
            (ctx.t(zh, en))
        }
    }
}

fn empty(ctx: &Ctx) -> Markup {
    html! { p class="empty" { (ctx.t("没有。", "None.")) } }
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

#[derive(Debug, Deserialize)]
struct DataQuery {
    deleted: Option<String>,
}

async fn data_page(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<DataQuery>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let doc = s
        .rights
        .export_document(session.subject, None)
        .await
        .web(&ctx)?;
    let here = "/me/data";
    let body = html! {
        @if q.deleted.is_some() {
            (notice(ctx.t("已删除。", "Deleted.")))
        }
        p { (ctx.t(
            "下面列出我们保存的关于您的每一类数据，以及每类数据的来源。可以单独删除的条目旁有“删除”按钮。完整内容可在“导出”页面下载。",
            "Below is every kind of data we keep about you, and where each came from. Items you can delete one by one have a Delete button. Download all of it on the Export page."
        )) }

        section aria-labelledby="d-account" {
            h2 id="d-account" { (ctx.t("账号", "Account")) }
            (source(&ctx, "您注册时提供（手机号经验证）。", "You, when you signed up (your phone number, verified by a code)."))
            dl class="facts" {
                dt { (ctx.t("创建于", "Created")) } dd { @if let Some(ms) = doc["account"]["created_at_ms"].as_i64() { (super::when(ms)) } @else { "—" } }
                dt { (ctx.t("年龄段", "Age band")) } dd { (text(&doc["account"]["age_band"])) }
            }
        }

        section aria-labelledby="d-profile" {
            h2 id="d-profile" { (ctx.t("个人资料", "Profile")) }
            (source(&ctx, "您自己填写，或在您同意后从第三方登录获取。", "You, or a third-party sign-in you agreed to."))
            dl class="facts" {
                dt { (ctx.t("昵称", "Nickname")) } dd { (text(&doc["profile"]["nickname"])) }
                dt { (ctx.t("头像", "Avatar")) } dd { (yes_no(&ctx, &doc["profile"]["has_avatar"])) }
                dt { (ctx.t("密码", "Password")) } dd { (yes_no(&ctx, &doc["profile"]["has_password"])) }
            }
            p { a href="/me/profile" { (ctx.t("更正个人资料", "Correct your profile")) } }
        }

        section aria-labelledby="d-location" {
            h2 id="d-location" { (ctx.t("位置", "Location")) }
            (source(&ctx, "您的设备在您开启位置开关并同意后上报，收到后立即模糊到数公里范围。", "Your device, when you turned location on and agreed; blurred to an area of a few kilometres on arrival."))
            dl class="facts" {
                dt { (ctx.t("位置开关", "Location switch")) } dd { (yes_no(&ctx, &doc["location"]["enabled"])) }
                dt { (ctx.t("当前区域", "Current area")) } dd { (text(&doc["location"]["geohash"])) }
            }
            p { a href="/me/consents" { (ctx.t("管理位置开关", "Manage the location switch")) } }
        }

        section aria-labelledby="d-devices" {
            h2 id="d-devices" { (ctx.t("设备", "Devices")) }
            (source(&ctx, "我们的应用在您的设备上读取并上报，每项都按所列用途保存。", "Our app, reading the device it runs on; each field is kept under the purpose listed."))
            @if array(&doc["devices"]).is_empty() { (empty(&ctx)) } @else {
                table {
                    thead { tr {
                        th scope="col" { (ctx.t("型号", "Model")) }
                        th scope="col" { (ctx.t("系统版本", "OS version")) }
                        th scope="col" { (ctx.t("应用版本", "App version")) }
                        th scope="col" { (ctx.t("用途", "Purposes")) }
                        th scope="col" { (ctx.t("更新于", "Updated")) }
                        th scope="col" { span class="visually-hidden" { (ctx.t("操作", "Actions")) } }
                    } }
                    tbody {
                        @for d in array(&doc["devices"]) {
                            tr {
                                td { (text(&d["model"])) }
                                td { (text(&d["os_version"])) }
                                td { (text(&d["app_version"])) }
                                td { (purposes(&d["purposes"])) }
                                td { (text(&d["updated_at"])) }
                                td { (delete_button(&ctx, "device", &text(&d["id"]), "delete-item", here)) }
                            }
                        }
                    }
                }
            }
        }

        section aria-labelledby="d-traits" {
            h2 id="d-traits" { (ctx.t("偏好特征", "Preference traits")) }
            (source(&ctx, "根据您浏览、点击商品等服务日志推算，仅在您开启个性化并同意后生成和使用。", "Worked out from your service logs (browsing, clicking items), only while personalization is on and consented."))
            @if array(&doc["traits"]).is_empty() { (empty(&ctx)) } @else {
                table {
                    thead { tr {
                        th scope="col" { (ctx.t("特征", "Trait")) }
                        th scope="col" { (ctx.t("权重", "Weight")) }
                        th scope="col" { (ctx.t("用途", "Purpose")) }
                        th scope="col" { (ctx.t("推算自", "Derived from")) }
                        th scope="col" { span class="visually-hidden" { (ctx.t("操作", "Actions")) } }
                    } }
                    tbody {
                        @for t in array(&doc["traits"]) {
                            tr {
                                td { (text(&t["key"])) }
                                td { (text(&t["weight"])) }
                                td { (text(&t["lineage"]["purpose"])) }
                                td { (text(&t["lineage"]["derived_from"])) }
                                td { (delete_button(&ctx, "trait", &text(&t["key"]), "delete-item", here)) }
                            }
                        }
                    }
                }
                @let segs = array(&doc["segments"]);
                @if !segs.is_empty() {
                    p { (ctx.t("这些特征使您属于以下人群：", "These traits place you in these audiences: "))
                        (segs.iter().map(|g| text(&g["name"])).collect::<Vec<_>>().join(", ")) }
                }
            }
        }

        (items(&ctx, &doc["bookmarks"], "bookmark", ctx.t("收藏", "Bookmarks"), "d-bookmarks",
            source(&ctx, "您收藏商品时保存。", "You, when you bookmarked an item."), here))
        (items(&ctx, &doc["downloads"], "download", ctx.t("下载", "Downloads"), "d-downloads",
            source(&ctx, "您下载商品图片或视频时记录。", "You, when you downloaded an item's picture or video."), here))
        (items(&ctx, &doc["shares"], "share", ctx.t("分享链接", "Share links"), "d-shares",
            source(&ctx, "您分享商品时创建。", "You, when you shared an item."), here))
        (items(&ctx, &doc["comments"], "comment", ctx.t("评论", "Comments"), "d-comments",
            source(&ctx, "您发表的评论。", "You, when you wrote a comment."), here))

        section aria-labelledby="d-consents" {
            h2 id="d-consents" { (ctx.t("同意记录", "Consent records")) }
            (source(&ctx, "您在同意对话框或设置中作出的每个决定，都有签名回执。", "Each decision you made in the consent dialog or the settings, each with a signed receipt."))
            p { (array(&doc["consents"]).len()) " " (ctx.t("条记录。", "records. "))
                a href="/me/consents" { (ctx.t("查看和管理同意", "See and manage your consents")) } }
        }

        section aria-labelledby="d-inbound" {
            h2 id="d-inbound" { (ctx.t("第三方提供的数据", "Data third parties sent us")) }
            (source(&ctx, "下列第三方在声明已取得您的同意后发送给我们。", "The third parties listed, each stating they had your consent."))
            @if array(&doc["inbound_data"]).is_empty() { (empty(&ctx)) } @else {
                table {
                    thead { tr {
                        th scope="col" { (ctx.t("来源", "Source")) }
                        th scope="col" { (ctx.t("用途", "Purpose")) }
                        th scope="col" { (ctx.t("字段", "Fields")) }
                        th scope="col" { (ctx.t("收到于", "Received")) }
                    } }
                    tbody {
                        @for r in array(&doc["inbound_data"]) {
                            tr {
                                td { (text(&r["source"])) }
                                td { (text(&r["purpose"])) }
                                td { (array(&r["fields"]).iter().map(|f| text(&f["name"])).collect::<Vec<_>>().join(", ")) }
                                td { (text(&r["received_at"])) }
                            }
                        }
                    }
                }
            }
        }

        section aria-labelledby="d-partners" {
            h2 id="d-partners" { (ctx.t("与合作方共享的数据", "Data shared with partners")) }
            (source(&ctx, "我们按声明的用途发送给下列合作方；未获许可的字段已被移除。", "Us, sending to the partners listed for the declared purpose; fields not allowed were withheld."))
            @if array(&doc["partner_shares"]).is_empty() { (empty(&ctx)) } @else {
                table {
                    thead { tr {
                        th scope="col" { (ctx.t("合作方", "Partner")) }
                        th scope="col" { (ctx.t("用途", "Purpose")) }
                        th scope="col" { (ctx.t("已发送字段", "Fields sent")) }
                        th scope="col" { (ctx.t("已移除字段", "Fields withheld")) }
                        th scope="col" { (ctx.t("时间", "When")) }
                    } }
                    tbody {
                        @for r in array(&doc["partner_shares"]) {
                            tr {
                                td { (text(&r["partner"])) }
                                td { (text(&r["purpose"])) }
                                td { (text(&r["fields"])) }
                                td { (text(&r["withheld"])) }
                                td { (text(&r["at"])) }
                            }
                        }
                    }
                }
            }
        }

        section aria-labelledby="d-events" {
            h2 id="d-events" { (ctx.t("服务日志", "Service logs")) }
            (source(&ctx, "您使用服务时（浏览、点击、搜索等）记录，仅在您同意后保存，并以化名存储、IP 地址已截短。", "Your use of the service (browsing, clicking, searching), kept only with your consent, under a pseudonym, with the IP address shortened."))
            @let events = array(&doc["service_events"]["events"]);
            p { (events.len()) " " (ctx.t("条记录。", "events.")) }
            @if !events.is_empty() {
                table {
                    thead { tr {
                        th scope="col" { (ctx.t("类型", "Kind")) }
                        th scope="col" { (ctx.t("对象", "Target")) }
                        th scope="col" { (ctx.t("时间", "When")) }
                        th scope="col" { (ctx.t("删除于", "Deleted on")) }
                    } }
                    tbody {
                        @for e in events.iter().rev().take(EVENTS_SHOWN) {
                            tr {
                                td { (text(&e["kind"])) }
                                td { (text(&e["target"])) }
                                td { (text(&e["at"])) }
                                td { (text(&e["expires_at"])) }
                            }
                        }
                    }
                }
            }
        }

        section aria-labelledby="d-requests" {
            h2 id="d-requests" { (ctx.t("请求与投诉", "Requests and complaints")) }
            (source(&ctx, "您提交的请求和投诉，以及我们的处理记录。", "You, when you filed them; and our handling of them."))
            p { (array(&doc["rights_tickets"]).len()) " " (ctx.t("项。", "tickets. "))
                a href="/me/requests" { (ctx.t("查看请求与投诉", "See your requests and complaints")) } }
        }
    };
    Ok(page(&ctx, "/me/data", ctx.t("我的数据", "My data"), body))
}

fn yes_no(ctx: &Ctx, v: &Value) -> &'static str {
    if v.as_bool().unwrap_or(false) {
        ctx.t("有", "yes")
    } else {
        ctx.t("无", "no")
    }
}

fn purposes(v: &Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(field, purpose)| format!("{field}: {}", text(purpose)))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// A list of catalog interactions (bookmarks, downloads, shares, comments).
fn items(
    ctx: &Ctx,
    list: &Value,
    kind: &str,
    title: &str,
    id: &str,
    source: Markup,
    next: &str,
) -> Markup {
    let rows = array(list);
    html! {
        section aria-labelledby=(id) {
            h2 id=(id) { (title) }
            (source)
            @if rows.is_empty() { (empty(ctx)) } @else {
                ul class={ "data-list " (kind) "-list" } {
                    @for r in rows {
                        li data-kind=(kind) data-id=(text(&r["id"])) {
                            a href={ "/items/" (text(&r["item_id"])) } {
                                (ctx.t("商品 #", "Item #")) (text(&r["item_id"]))
                            }
                            @if let Some(c) = r["collection"].as_str() { " · " (c) }
                            @if let Some(b) = r["body"].as_str() { " · “" (b) "”" }
                            @if r["revoked"].as_bool() == Some(true) { " · " (ctx.t("已撤销", "revoked")) }
                            " · " (text(&r["created_at"])) " "
                            (delete_button(ctx, kind, &text(&r["id"]), "delete-item", next))
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct DeleteForm {
    kind: String,
    id: String,
    next: Option<String>,
}

/// Same use case as `DELETE /api/v1/me/data/{kind}/{id}`: deleted everywhere, recorded as
/// an answered deletion ticket; another user's item is a 404 like a missing one.
async fn delete_item(
    State(s): State<AppState>,
    ctx: Ctx,
    WebForm(f): WebForm<DeleteForm>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let item = Item::parse(&f.kind, &f.id).web(&ctx)?;
    s.rights
        .delete_item(session.subject, &item)
        .await
        .web(&ctx)?;
    let next = safe_next(f.next.as_deref().or(Some("/me/data")));
    let path = next.split('?').next().unwrap_or("/me/data");
    Ok(see_other(&format!(
        "{path}?deleted={}",
        encode(item.kind())
    )))
}
