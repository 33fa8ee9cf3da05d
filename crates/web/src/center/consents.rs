//! `/me/consents` (P38, P39, L5, P8): one row `tr[data-purpose]` per consent-based
//! purpose of the current declaration, with its status, when it was last decided, links to
//! the signed receipts, and one button: `button.give` or `button.withdraw`. Withdrawing
//! is one click, exactly as easy as giving, and is the API's withdrawal
//! (`POST /api/v1/consents/{purpose}/withdraw`) with the same after-withdrawal cleanup.
//! The personalization switch (`PUT /api/v1/me/personalization`) and the location switch
//! (`PUT /api/v1/location/switch`, which deletes the stored area when turned off) sit in
//! their purposes' rows.

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use custos_app::consent::DecisionInput;
use custos_core::{ConsentMethod, Decision};
use custos_http::AppState;
use custos_policy::LegalBasis;
use maud::{html, Markup};
use serde::Deserialize;

use super::{notice, page, see_other, when, WebResult};
use custos_app::identity::account::GUARDIAN_PURPOSE;

use crate::ctx::Ctx;
use crate::error::WebError;
use crate::forms::{csrf_input, encode, Empty, WebForm};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me/consents", get(consents_page))
        .route("/me/consents/{purpose}/give", post(give))
        .route("/me/consents/{purpose}/withdraw", post(withdraw))
        .route("/me/personalization", post(set_personalization))
        .route("/me/location", post(set_location))
}

/// Purposes whose rows carry the personalization switch.
const PERSONALIZATION_PURPOSES: [&str; 3] =
    ["personalized_feed", "personalized_push", "personalized_ads"];
/// The purpose whose row carries the location switch.
const LOCATION_PURPOSE: &str = "location";
/// Receipts linked per purpose (newest first); all are in the export.
const RECEIPTS_SHOWN: usize = 5;

#[derive(Debug, Deserialize)]
struct ConsentsQuery {
    receipt: Option<String>,
    changed: Option<String>,
}

fn status_text(ctx: &Ctx, status: &str) -> &'static str {
    match status {
        "active" => ctx.t("已同意", "Agreed"),
        "consent_withdrawn" => ctx.t("已撤回", "Withdrawn"),
        "consent_refused" => ctx.t("已拒绝", "Refused"),
        "consent_outdated" => ctx.t(
            "政策已更新，需重新同意",
            "Policy changed; agree again to resume",
        ),
        "guardian_consent_required" => ctx.t("需要监护人同意", "Needs a guardian's consent"),
        "account_required" => ctx.t("需要账号", "Needs an account"),
        _ => ctx.t("未同意", "Not agreed"),
    }
}

fn switch_form(
    ctx: &Ctx,
    action: &str,
    on: bool,
    id: &str,
    label_on: &str,
    label_off: &str,
) -> Markup {
    html! {
        form method="post" action=(action) class="inline switch" {
            (csrf_input(ctx))
            input type="hidden" name="enabled" value=(if on { "off" } else { "on" });
            span class="switch-state" { (if on { label_on } else { label_off }) } " "
            button type="submit" id=(id) {
                @if on { (ctx.t("关闭", "Turn off")) } @else { (ctx.t("开启", "Turn on")) }
            }
        }
    }
}

async fn consents_page(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<ConsentsQuery>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let subject = session.subject;
    let mut statuses = s.kernel.purpose_statuses(subject).await.web(&ctx)?;
    s.identity
        .mark_guardian_required(subject, &mut statuses)
        .await
        .web(&ctx)?;
    let history = s.kernel.consent_history(subject).await.web(&ctx)?;
    let personalization_on = s.signals.personalization_enabled(subject).await.web(&ctx)?;
    let location = s.signals.location(subject).await.web(&ctx)?;
    let regime = s.kernel.gate.regime();
    let policy = regime.current();
    let body = html! {
        @if let Some(r) = &q.receipt {
            div class="notice" role="status" {
                p { (ctx.t("已记录您的决定。", "Your decision is recorded."))
                    " " a id="receipt-link" class="receipt-link" href={ "/receipts/" (r) } { (ctx.t("查看签名回执", "See the signed receipt")) } }
            }
        }
        @if q.changed.is_some() { (notice(ctx.t("设置已保存。", "Setting saved."))) }
        p { (ctx.t(
            "以下每项用途都只在您同意后才会进行。您可以随时一键撤回，撤回和同意一样简单；撤回后相关处理立即停止。每次决定都有一份签名回执。",
            "Each purpose below happens only with your consent. You can withdraw at any time with one click, as easily as you agreed; processing stops at once. Every decision has a signed receipt."
        )) }
        table class="consents" {
            caption { (ctx.t("需要您同意的用途", "Purposes that need your consent")) }
            thead { tr {
                th scope="col" { (ctx.t("用途", "Purpose")) }
                th scope="col" { (ctx.t("状态", "Status")) }
                th scope="col" { (ctx.t("最近决定", "Last decided")) }
                th scope="col" { (ctx.t("回执", "Receipts")) }
                th scope="col" { (ctx.t("操作", "Action")) }
            } }
            tbody {
                @for st in statuses.iter().filter(|p| p.basis == LegalBasis::Consent) {
                    @let info = policy.purpose(&st.purpose);
                    @let records: Vec<_> = history.iter().rev().filter(|r| r.purpose == st.purpose).collect();
                    @let active = st.status == "active";
                    tr data-purpose=(st.purpose) data-status=(st.status) {
                        th scope="row" {
                            (info.map(|p| p.name.get(ctx.lang)).unwrap_or(st.purpose.as_str()))
                            @if let Some(p) = info {
                                p class="purpose-desc" { (p.description.get(ctx.lang)) }
                            }
                            @if st.separate_consent {
                                p class="badge" { (ctx.t("需单独同意", "Asked separately")) }
                            }
                        }
                        td class="status" { (status_text(&ctx, st.status)) }
                        td {
                            @if let Some(r) = records.first() {
                                (decision_text(&ctx, r.decision)) " · " (when(r.at_ms))
                            } @else { "—" }
                        }
                        td {
                            @if records.is_empty() { "—" }
                            ul class="receipts" {
                                @for r in records.iter().take(RECEIPTS_SHOWN) {
                                    li { a class="receipt-link" href={ "/receipts/" (r.receipt_id) } {
                                        (decision_text(&ctx, r.decision)) " " (when(r.at_ms))
                                    } }
                                }
                            }
                        }
                        td class="actions" {
                            // A guardian gives this one through the guardian's own flow,
                            // never the user with a click here.
                            @if st.purpose == GUARDIAN_PURPOSE && !active {
                                a href="/signin/guardian" class="guardian-flow" { (ctx.t("由监护人同意", "Ask your guardian")) }
                            } @else {
                            form method="post" action={ "/me/consents/" (encode(&st.purpose)) (if active { "/withdraw" } else { "/give" }) } class="inline" {
                                (csrf_input(&ctx))
                                @if active {
                                    button type="submit" class="withdraw" data-purpose=(st.purpose) { (ctx.t("撤回同意", "Withdraw")) }
                                } @else {
                                    button type="submit" class="give" data-purpose=(st.purpose) { (ctx.t("同意", "Agree")) }
                                }
                            }
                            }
                            @if PERSONALIZATION_PURPOSES.contains(&st.purpose.as_str()) {
                                (switch_form(&ctx, "/me/personalization", personalization_on,
                                    &format!("personalization-switch-{}", st.purpose),
                                    ctx.t("个性化：开", "Personalization: on"),
                                    ctx.t("个性化：关", "Personalization: off")))
                            }
                            @if st.purpose == LOCATION_PURPOSE {
                                (switch_form(&ctx, "/me/location", location.enabled, "location-switch",
                                    ctx.t("位置开关：开", "Location: on"),
                                    ctx.t("位置开关：关（不保存位置）", "Location: off (no location kept)")))
                            }
                        }
                    }
                }
            }
        }
        p { (ctx.t("个性化开关对个性化推荐、个性化推送和个性化广告同时生效；关闭后下一次请求就不再个性化，但同意记录保持不变。",
                   "The personalization switch covers the personalized feed, push and ads at once; when off, the very next answer is not personalized, and your consents stay as they are.")) }
        p { a href="/privacy/policy" { (ctx.t("阅读隐私政策", "Read the privacy policy")) } }
    };
    Ok(page(
        &ctx,
        "/me/consents",
        ctx.t("同意与开关", "Consents and switches"),
        body,
    ))
}

fn decision_text(ctx: &Ctx, d: Decision) -> &'static str {
    match d {
        Decision::Given => ctx.t("同意", "Agreed"),
        Decision::Refused => ctx.t("拒绝", "Refused"),
        Decision::Withdrawn => ctx.t("撤回", "Withdrew"),
    }
}

/// Same use case as `POST /api/v1/consents` for a signed-in account, with one decision.
async fn give(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(purpose): Path<String>,
    WebForm(_): WebForm<Empty>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let subject = session.subject;
    let decisions = [DecisionInput {
        purpose,
        decision: Decision::Given,
    }];
    custos_app::identity::minors::check_guardian_decisions(&decisions).web(&ctx)?;
    s.identity
        .check_minor_decisions(subject, &decisions)
        .await
        .web(&ctx)?;
    let r = s
        .kernel
        .record_decisions(subject, false, &decisions, ConsentMethod::Settings)
        .await
        .web(&ctx)?;
    s.signals
        .after_decisions(subject, &decisions)
        .await
        .web(&ctx)?;
    Ok(see_other(&format!("/me/consents?receipt={}", r.receipt_id)))
}

/// Same use case as `POST /api/v1/consents/{purpose}/withdraw`, with the same cleanup
/// after it. Withdrawing `location` also turns the location switch off, which deletes the
/// stored area at once (as `PUT /api/v1/location/switch` does).
async fn withdraw(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(purpose): Path<String>,
    WebForm(_): WebForm<Empty>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let subject = session.subject;
    let r = s
        .kernel
        .withdraw(subject, false, &purpose, ConsentMethod::Settings)
        .await
        .web(&ctx)?;
    let withdrawn = [DecisionInput {
        purpose: purpose.clone(),
        decision: Decision::Withdrawn,
    }];
    s.signals
        .after_decisions(subject, &withdrawn)
        .await
        .web(&ctx)?;
    if purpose == LOCATION_PURPOSE {
        s.signals
            .set_location_enabled(subject, false)
            .await
            .web(&ctx)?;
    }
    Ok(see_other(&format!("/me/consents?receipt={}", r.receipt_id)))
}

#[derive(Debug, Deserialize)]
struct SwitchForm {
    enabled: String,
}

fn parse_switch(ctx: &Ctx, v: &str) -> Result<bool, WebError> {
    match v {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(
            WebError::bad_request(ctx.t("开关只能是开或关。", "A switch is on or off."))
                .lang(ctx.lang),
        ),
    }
}

/// Same use case as `PUT /api/v1/me/personalization`.
async fn set_personalization(
    State(s): State<AppState>,
    ctx: Ctx,
    WebForm(f): WebForm<SwitchForm>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let on = parse_switch(&ctx, &f.enabled)?;
    s.signals
        .set_personalization_enabled(session.subject, on)
        .await
        .web(&ctx)?;
    Ok(see_other("/me/consents?changed=personalization"))
}

/// Same use case as `PUT /api/v1/location/switch`: off deletes the stored area at once.
async fn set_location(
    State(s): State<AppState>,
    ctx: Ctx,
    WebForm(f): WebForm<SwitchForm>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let on = parse_switch(&ctx, &f.enabled)?;
    s.signals
        .set_location_enabled(session.subject, on)
        .await
        .web(&ctx)?;
    Ok(see_other("/me/consents?changed=location"))
}
