//! `/console/policy`: the published versions of the declaration with links to their
//! readable diffs, and publishing a new version from a pasted declaration through the
//! same use case as `custos policy publish` ([`custos_app::ops::revisions::PolicyOps::publish_revision`]:
//! announced to every account, pausing only the purposes it widens) under the API's
//! policy permission (`policy.manage`).

use crate::extract::Query;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use custos_app::ops::Permission;
use custos_http::AppState;
use custos_policy::Policy;
use maud::html;
use serde::Deserialize;

use super::{
    app_err, csrf_input, notice, require_allowed, see_other, shell_with_status, when, ConsoleForm,
    MaybeStaff, Staff,
};
use crate::ctx::Ctx;
use crate::error::WebError;
use crate::forms::encode;

/// The largest declaration accepted, in bytes of text.
pub const MAX_DECLARATION: usize = 256 * 1024;
/// The form body limit: the declaration percent-encoded (CJK text triples).
pub const MAX_POLICY_FORM: usize = 1024 * 1024;

#[derive(Debug, Deserialize)]
pub struct PolicyQuery {
    pub published: Option<String>,
    pub notified: Option<i64>,
    pub again: Option<bool>,
}

async fn render(
    s: &AppState,
    ctx: &Ctx,
    st: &Staff,
    status: StatusCode,
    banner: maud::Markup,
    draft: &str,
) -> Result<Response, WebError> {
    let versions = s.policy_ops.versions().await.map_err(app_err(ctx))?;
    let body = html! {
        h1 { (ctx.t("隐私政策版本", "Privacy policy versions")) }
        (banner)
        section aria-labelledby="versions-heading" {
            h2 id="versions-heading" { (ctx.t("已发布的版本", "Published versions")) }
            ol id="console-policy-versions" {
                @for (i, v) in versions.iter().enumerate() {
                    li data-hash=(v.hash) {
                        strong { "#" (v.seq) " " (v.revision) } " · " (when(v.published_at_ms))
                        " · " code { (v.hash.get(..12).unwrap_or(&v.hash)) }
                        @if i > 0 {
                            " · " a href={ "/privacy/policy/diff?from=" (encode(&versions[i - 1].hash)) "&to=" (encode(&v.hash)) } {
                                (ctx.t("与上一版的差异", "Changes from the previous version"))
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="publish-heading" {
            h2 id="publish-heading" { (ctx.t("发布新版本", "Publish a new version")) }
            p class="hint" { (ctx.t(
                "粘贴完整的声明（TOML，最大 256 KiB）。发布后所有账号都会收到通知；改动了的目的会暂停，直到每位用户同意。",
                "Paste the whole declaration (TOML, at most 256 KiB). Every account is told; purposes the new version widens pause until each user agrees."
            )) }
            form method="post" action="/console/policy" class="stack" id="policy-publish-form" {
                (csrf_input(st))
                label for="policy-declaration" { (ctx.t("声明", "Declaration")) }
                textarea id="policy-declaration" name="declaration" rows="16" required
                    maxlength=(MAX_DECLARATION) spellcheck="false" { (draft) }
                button type="submit" id="policy-publish" { (ctx.t("校验并发布", "Check and publish")) }
            }
        }
    };
    Ok(shell_with_status(
        ctx,
        Some(st),
        status,
        ctx.t("政策版本", "Policy versions"),
        body,
    ))
}

pub async fn page(
    State(s): State<AppState>,
    ctx: Ctx,
    MaybeStaff(staff): MaybeStaff,
    Query(q): Query<PolicyQuery>,
) -> Result<Response, WebError> {
    let st = require_allowed(
        &s,
        &ctx,
        staff,
        Permission::PolicyManage,
        "GET /console/policy",
    )
    .await?;
    let banner = html! {
        @if let Some(h) = &q.published {
            @if q.again == Some(true) {
                (notice(&format!("{} {h}", ctx.t("这个版本已经发布过，未重复通知：", "That version was already published; nobody was told again:"))))
            } @else {
                p class="notice" role="status" id="policy-published" {
                    (ctx.t("已发布版本 ", "Published version ")) code { (h) }
                    "; " (ctx.t("已通知账号数：", "accounts told: ")) (q.notified.unwrap_or(0))
                }
            }
        }
    };
    render(&s, &ctx, &st, StatusCode::OK, banner, "").await
}

#[derive(Debug, Deserialize)]
pub struct PublishForm {
    pub declaration: String,
}

pub async fn publish(
    State(s): State<AppState>,
    f: ConsoleForm<PublishForm, MAX_POLICY_FORM>,
) -> Result<Response, WebError> {
    let ctx = &f.ctx;
    f.allow(&s, Permission::PolicyManage, "POST /console/policy")
        .await?;
    let text = f.form.declaration;
    if text.len() > MAX_DECLARATION {
        return Err(WebError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            ctx.t(
                "声明超过 256 KiB。",
                "The declaration is larger than 256 KiB.",
            ),
        )
        .lang(ctx.lang));
    }
    let policy = match Policy::parse(&text) {
        Ok(p) => p,
        Err(e) => {
            let banner = html! {
                div class="error" role="alert" id="policy-error" {
                    p { (ctx.t("声明无效，未发布：", "The declaration is not valid; nothing was published:")) }
                    pre { (e.to_string()) }
                }
            };
            return render(
                &s,
                ctx,
                &f.staff,
                StatusCode::UNPROCESSABLE_ENTITY,
                banner,
                &text,
            )
            .await;
        }
    };
    let out = s
        .policy_ops
        .publish_revision(&policy)
        .await
        .map_err(app_err(ctx))?;
    Ok(see_other(&format!(
        "/console/policy?published={}&notified={}&again={}",
        encode(&out.hash),
        out.notified,
        !out.published
    )))
}
