//! `/console/audit`: the audit log, paged and filtered by actor and action, with the
//! chain's verification status (`#audit-status`) from the same use case as
//! `custos audit verify` ([`custos_app::ops::audit::verify`]). Needs `audit.read`.

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
use crate::forms::encode;

const PAGE: usize = 50;
/// Entries scanned at most for one filtered page.
const SCAN_LIMIT: i64 = 20_000;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    pub after: Option<i64>,
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub action: String,
}

pub async fn page(
    State(s): State<AppState>,
    ctx: Ctx,
    MaybeStaff(staff): MaybeStaff,
    Query(q): Query<AuditQuery>,
) -> Result<Response, WebError> {
    let st = require_allowed(&s, &ctx, staff, Permission::AuditRead, "GET /console/audit").await?;
    let actor = q.actor.trim().chars().take(100).collect::<String>();
    let action = q.action.trim().chars().take(100).collect::<String>();
    let filtered = !actor.is_empty() || !action.is_empty();
    let head = s
        .ops
        .audit_page(0, 1, None)
        .await
        .map_err(app_err(&ctx))?
        .head_seq;
    let start = q
        .after
        .unwrap_or(if filtered {
            0
        } else {
            (head - PAGE as i64).max(0)
        })
        .max(0);
    let mut entries = Vec::new();
    let mut cursor = start;
    let mut scanned = 0;
    while entries.len() < PAGE && cursor < head && scanned < SCAN_LIMIT {
        let page = s
            .ops
            .audit_page(cursor, 1000, None)
            .await
            .map_err(app_err(&ctx))?;
        let Some(last) = page.entries.last() else {
            break;
        };
        let last_seq = last.seq;
        for e in page.entries {
            scanned += 1;
            cursor = e.seq;
            if (actor.is_empty() || e.actor.contains(&actor))
                && (action.is_empty() || e.action.contains(&action))
            {
                entries.push(e);
                if entries.len() == PAGE {
                    break;
                }
            }
        }
        if entries.len() < PAGE {
            cursor = last_seq;
        }
    }
    let verification = custos_app::ops::audit::verify(&s.kernel, |_| {}).await;
    let filter_q = format!("&actor={}&action={}", encode(&actor), encode(&action));
    let body = html! {
        h1 { (ctx.t("审计日志", "Audit log")) }
        @match &verification {
            Ok(v) if v.first_bad.is_none() => {
                p id="audit-status" class="status ok" data-status="intact" role="status" {
                    strong { "✔ " (ctx.t("链完整", "Chain intact")) } ": "
                    (v.entries_checked) " " (ctx.t("条记录、", "entries and "))
                    (v.signed_heads_checked) " " (ctx.t("个签名头已核验。", "signed heads verified."))
                }
            }
            Ok(v) => {
                p id="audit-status" class="status alarm" data-status="broken" role="alert" {
                    strong { "✘ " (ctx.t("链已损坏", "Chain BROKEN")) } ": "
                    @if let Some(b) = &v.first_bad {
                        (ctx.t("第一条无法核验的记录：", "first entry that does not verify: ")) "#" (b.seq) " — " (b.reason)
                    }
                }
            }
            Err(_) => {
                p id="audit-status" class="status alarm" data-status="error" role="alert" {
                    strong { (ctx.t("无法核验审计日志。", "The audit log could not be verified.")) }
                }
            }
        }
        form method="get" action="/console/audit" class="inline" id="audit-filter" {
            label for="audit-actor" { (ctx.t("操作者包含", "Actor contains")) }
            input id="audit-actor" name="actor" type="text" maxlength="100" value=(actor);
            label for="audit-action" { (ctx.t("动作包含", "Action contains")) }
            input id="audit-action" name="action" type="text" maxlength="100" value=(action);
            button type="submit" { (ctx.t("筛选", "Filter")) }
        }
        p { (ctx.t("共 ", "The log holds ")) (head) (ctx.t(" 条记录。", " entries.")) }
        table class="data" id="audit-entries" {
            thead { tr {
                th scope="col" { "#" }
                th scope="col" { (ctx.t("时间", "When")) }
                th scope="col" { (ctx.t("操作者", "Actor")) }
                th scope="col" { (ctx.t("动作", "Action")) }
                th scope="col" { (ctx.t("对象", "Target")) }
                th scope="col" { (ctx.t("结果", "Outcome")) }
                th scope="col" { (ctx.t("理由（工单或目的）", "Reason (ticket or purpose)")) }
            } }
            tbody {
                @for e in &entries {
                    tr data-seq=(e.seq) data-action=(e.action) {
                        td { (e.seq) }
                        td { (when(e.at_ms)) }
                        td { (e.actor) }
                        td { (e.action) }
                        td { (e.target) }
                        td { (e.outcome) }
                        td { (e.reason) }
                    }
                }
            }
        }
        nav aria-label=(ctx.t("翻页", "Pages")) class="pager" {
            @if start > 0 {
                a href={ "/console/audit?after=" (if filtered { 0 } else { (start - PAGE as i64).max(0) }) (filter_q) } {
                    "← " (if filtered { ctx.t("从头开始", "From the start") } else { ctx.t("更早", "Older") })
                }
                " "
            }
            @if cursor < head && !entries.is_empty() {
                a href={ "/console/audit?after=" (cursor) (filter_q) } { (ctx.t("更新", "Newer")) " →" }
            }
        }
    };
    Ok(shell(&ctx, Some(&st), ctx.t("审计日志", "Audit log"), body))
}
