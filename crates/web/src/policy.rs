//! The privacy policy as a page (P2, P40): the current declaration rendered by
//! `custos_policy::render`, every published version with its date, and a readable diff
//! between two versions (`custos_policy::diff`, the same comparison the API and the CLI
//! show). Also the re-consent dialog (P3, P35, L4): when a version widened or added a
//! purpose, that purpose stays paused for a signed-in user until they agree; the dialog
//! lists what changed, links to the diff, and records the agreement through
//! [`custos_app::ops::revisions::PolicyOps::agree`], exactly as the API's Agree does.
//! "Not now" hides the dialog for the rest of the session; the purposes stay paused and
//! everything else keeps running.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use crate::extract::Query;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use custos_app::AppError;
use custos_core::Denial;
use custos_http::AppState;
use custos_policy::{render, ChangeStatus, FieldChange, Lang, LegalBasis, Policy, PolicyDiff};
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;

use crate::ctx::Ctx;
use crate::error::WebError;
use crate::forms::{csrf_input, encode, safe_next, WebForm};
use crate::layout;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/privacy/policy", get(policy_page))
        .route("/privacy/policy/diff", get(diff_page))
        .route("/privacy/reconsent", post(agree))
        .route("/privacy/reconsent/later", post(later))
        .route("/privacy/reconsent/done", get(agreed_page))
}

// ---------------------------------------------------------------------------------------
// The policy page and its versions
// ---------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct PolicyQuery {
    /// An older published version to show (hash or prefix of at least 6 digits).
    version: Option<String>,
}

/// The inside of the renderer's `<main>`: the renderer gives a standalone document.
fn fragment(doc: &str) -> &str {
    let start = doc.find("<main>").map(|i| i + "<main>".len());
    let end = doc.rfind("</main>");
    match (start, end) {
        (Some(s), Some(e)) if s <= e => &doc[s..e],
        _ => "",
    }
}

fn date_of(ms: i64) -> String {
    custos_core::clock::rfc3339(ms).chars().take(10).collect()
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// A version lookup failure as a page: a malformed hash is the client's mistake (400),
/// an unknown one is not found (404).
fn version_error(ctx: &Ctx, e: AppError) -> WebError {
    let (status, zh, en) = match e.code() {
        "unknown_version" => (
            StatusCode::NOT_FOUND,
            "没有这个版本的隐私政策。",
            "There is no published policy version with that identifier.",
        ),
        "ambiguous_version" => (
            StatusCode::BAD_REQUEST,
            "这个版本号前缀对应多个版本，请提供更长的版本号。",
            "That version prefix matches several versions; give more digits.",
        ),
        "invalid_version" => (
            StatusCode::BAD_REQUEST,
            "版本号应为至少 6 位十六进制数字。",
            "A version identifier is at least 6 hexadecimal digits.",
        ),
        _ => return WebError::from(e).lang(ctx.lang),
    };
    WebError::new(status, e.code(), ctx.t(zh, en)).lang(ctx.lang)
}

async fn policy_page(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<PolicyQuery>,
) -> Result<Response, WebError> {
    let regime = s.kernel.gate.regime();
    let current = regime.current().clone();
    let shown = match q.version.as_deref() {
        Some(v) => s
            .policy_ops
            .version(v)
            .map_err(|e| version_error(&ctx, e))?,
        None => current.clone(),
    };
    let mut versions = s
        .policy_ops
        .versions()
        .await
        .map_err(|e| WebError::from(e).lang(ctx.lang))?;
    versions.sort_by_key(|v| v.seq);
    let doc = render::html(&shown, ctx.lang);
    let is_current = shown.hash() == current.hash();
    let body = html! {
        @if !is_current {
            p class="notice" role="status" {
                (ctx.t("您正在查看较早的版本（", "You are reading an earlier version ("))
                code { (shown.hash().short()) }
                (ctx.t("）。", "). "))
                a href="/privacy/policy" { (ctx.t("查看现行版本", "Read the current version")) }
            }
        }
        article id="policy-body" class="policy-body" lang=(ctx.lang.code()) {
            (PreEscaped(fragment(&doc)))
        }
        section class="policy-versions" aria-labelledby="versions-title" {
            h2 id="versions-title" { (ctx.t("版本历史", "Version history")) }
            p class="muted" {
                (ctx.t(
                    "每次修订都会公布。如果修订扩大了某项需要您同意的处理，该处理会暂停，直到您再次同意。",
                    "Every revision is announced. When a revision widens something that needs your consent, that processing pauses until you agree again.",
                ))
            }
            ol id="policy-versions" reversed {
                @for (i, v) in versions.iter().enumerate().rev() {
                    li data-version=(v.hash) {
                        a href={ "/privacy/policy?version=" (v.hash) } {
                            code title=(v.hash) { (short(&v.hash)) }
                        }
                        " · " (ctx.t("修订 ", "revision ")) (v.revision)
                        " · " time datetime=(date_of(v.published_at_ms)) { (date_of(v.published_at_ms)) }
                        @if v.hash == current.hash().as_str() {
                            " " span class="badge" { (ctx.t("现行", "current")) }
                        }
                        @if i > 0 {
                            " · "
                            a class="diff-link"
                                href={ "/privacy/policy/diff?from=" (versions[i - 1].hash) "&to=" (v.hash) } {
                                (ctx.t("与上一版本相比的变化", "What changed from the version before"))
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        &ctx,
        ctx.t("隐私政策", "Privacy policy"),
        body,
    ))
}

#[derive(Debug, Deserialize)]
struct DiffQuery {
    from: Option<String>,
    to: Option<String>,
}

fn field_label(ctx: &Ctx, field: &str) -> String {
    let (zh, en) = match field {
        "categories" => ("处理的个人信息类别", "Kinds of personal data"),
        "methods" => ("处理方式", "How the data is processed"),
        "recipients" => ("接收方", "Who receives the data"),
        "retention" => ("保存期限", "How long it is kept"),
        "basis" => ("处理依据", "Legal basis"),
        "data_use" => ("用途类型", "Kind of use"),
        "tier" => ("功能层级", "Basic or additional feature"),
        "separate_consent" => ("单独同意", "Separate consent"),
        "sensitive" => ("敏感个人信息", "Sensitive personal data"),
        "anonymous" => ("未登录时可用", "Available without an account"),
        "impact_assessment" => ("影响评估", "Impact assessment"),
        "region" => ("存储地区", "Where the data is stored"),
        "controller" => ("个人信息处理者", "Who is responsible for your data"),
        "wording" => ("名称或说明的措辞", "Wording of the name or description"),
        other => return other.to_owned(),
    };
    ctx.t(zh, en).to_owned()
}

fn purpose_name(ctx: &Ctx, id: &str, new: &Policy, old: &Policy) -> String {
    new.purpose(id)
        .or_else(|| old.purpose(id))
        .map(|p| p.name.get(ctx.lang).to_owned())
        .unwrap_or_else(|| id.to_owned())
}

fn field_change(ctx: &Ctx, f: &FieldChange) -> Markup {
    html! {
        li data-field=(f.field) {
            strong { (field_label(ctx, &f.field)) } ": "
            @if !f.added.is_empty() {
                span class="diff-added" {
                    (ctx.t("新增 ", "added ")) (f.added.join(", "))
                }
                @if !f.removed.is_empty() { "; " }
            }
            @if !f.removed.is_empty() {
                span class="diff-removed" {
                    (ctx.t("移除 ", "removed ")) (f.removed.join(", "))
                }
            }
            @if f.before.is_some() || f.after.is_some() {
                span class="diff-changed" {
                    (f.before.as_deref().unwrap_or("—")) " → " (f.after.as_deref().unwrap_or("—"))
                }
            }
            @if f.field == "wording" && f.added.is_empty() && f.removed.is_empty()
                && f.before.is_none() && f.after.is_none() {
                (ctx.t("仅文字修改", "text only"))
            }
        }
    }
}

fn status_label(ctx: &Ctx, s: ChangeStatus) -> &'static str {
    match s {
        ChangeStatus::Added => ctx.t("新增的用途", "New purpose"),
        ChangeStatus::Removed => ctx.t("已删除的用途", "Removed purpose"),
        ChangeStatus::Changed => ctx.t("有变化的用途", "Changed purpose"),
    }
}

/// The diff as markup (`#policy-diff`).
fn diff_markup(ctx: &Ctx, old: &Policy, new: &Policy, d: &PolicyDiff) -> Markup {
    let needs: Vec<&str> = d.needs_consent();
    html! {
        section id="policy-diff" class="policy-diff" {
            p {
                (ctx.t("从版本 ", "From version "))
                code { (old.hash().short()) } " (" (old.declaration().revision) ")"
                (ctx.t(" 到版本 ", " to version "))
                code { (new.hash().short()) } " (" (new.declaration().revision) ")"
            }
            @if d.is_empty() {
                p { (ctx.t("这两个版本之间没有影响您的变化。", "Nothing that affects you changed between these versions.")) }
            }
            @if needs.is_empty() {
                p class="notice" {
                    (ctx.t("这些变化不需要您再次同意。", "None of these changes needs your consent again."))
                }
            } @else {
                div class="notice" id="needs-consent" {
                    p {
                        (ctx.t(
                            "以下用途的处理范围扩大了：在您再次同意之前，这些处理对您暂停；其他处理照常进行。",
                            "These purposes now do more than before: they are paused for you until you agree again; everything else keeps running.",
                        ))
                    }
                    ul {
                        @for id in &needs {
                            li data-purpose=(id) { (purpose_name(ctx, id, new, old)) }
                        }
                    }
                }
            }
            @for c in &d.purposes {
                article class={ "diff-purpose diff-" (c.status.as_str()) }
                    data-purpose=(c.purpose) data-status=(c.status.as_str()) {
                    h2 {
                        (purpose_name(ctx, &c.purpose, new, old))
                        " "
                        span class="badge" { (status_label(ctx, c.status)) }
                        @if c.needs_consent {
                            " "
                            span class="badge badge-consent" { (ctx.t("需要再次同意", "Needs your consent again")) }
                        }
                    }
                    p class="muted" { code { (c.purpose) } }
                    @if c.status == ChangeStatus::Added {
                        @if let Some(p) = new.purpose(&c.purpose) {
                            p { (p.description.get(ctx.lang)) }
                            p {
                                strong { (field_label(ctx, "categories")) } ": "
                                (p.categories.join(", "))
                            }
                        }
                    }
                    @if !c.changes.is_empty() {
                        ul { @for f in &c.changes { (field_change(ctx, f)) } }
                    }
                }
            }
            @if !d.general.is_empty() {
                article class="diff-general" {
                    h2 { (ctx.t("其他变化", "Other changes")) }
                    ul { @for f in &d.general { (field_change(ctx, f)) } }
                }
            }
        }
    }
}

async fn diff_page(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<DiffQuery>,
) -> Result<Response, WebError> {
    let (Some(from), Some(to)) = (q.from.as_deref(), q.to.as_deref()) else {
        return Err(WebError::bad_request(ctx.t(
            "请指定要比较的两个版本（from 和 to）。",
            "Name the two versions to compare (from and to).",
        ))
        .lang(ctx.lang));
    };
    let old = s
        .policy_ops
        .version(from)
        .map_err(|e| version_error(&ctx, e))?;
    let new = s
        .policy_ops
        .version(to)
        .map_err(|e| version_error(&ctx, e))?;
    let d = custos_policy::diff(&old, &new);
    let body = html! {
        h1 { (ctx.t("隐私政策的变化", "What changed in the privacy policy")) }
        (diff_markup(&ctx, &old, &new, &d))
        p {
            a href="/privacy/policy" { (ctx.t("阅读完整的隐私政策", "Read the whole privacy policy")) }
        }
    };
    Ok(layout::page(
        &ctx,
        ctx.t("隐私政策的变化", "Policy changes"),
        body,
    ))
}

// ---------------------------------------------------------------------------------------
// Re-consent
// ---------------------------------------------------------------------------------------

/// One purpose waiting for the user's agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingPurpose {
    id: String,
    name_en: String,
    name_zh: String,
    /// Needs its own agreement (L1), never covered by a plain Agree.
    separate: bool,
    /// New in that version (otherwise widened).
    added: bool,
}

/// Purposes waiting for agreement to one version.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingGroup {
    version: String,
    revision: String,
    /// The version before it, for the diff link.
    previous: Option<String>,
    purposes: Vec<PendingPurpose>,
}

#[derive(Debug, Clone)]
struct DialogState {
    groups: Vec<PendingGroup>,
    /// "Not now" was chosen in this session for exactly these groups.
    dismissed: bool,
}

/// What the dialog shows, per session id: filled by [`pending_reconsent`] (which has the
/// app state) for [`reconsent_dialog`] (which has only the request's context). Holds
/// purpose names and version ids only, no personal data; bounded.
static DIALOGS: LazyLock<Mutex<HashMap<String, DialogState>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
const MAX_DIALOGS: usize = 50_000;

/// The purposes `subject` must agree to again, grouped by version: those the app's
/// [`custos_app::ops::revisions::PolicyOps::pending_reconsent`] reports (widened since
/// the consent), and consent purposes a later version added on which the user has not
/// decided yet. In-memory gate lookups, plus the one freshness query the app makes.
async fn pending_groups(
    state: &AppState,
    subject: custos_core::SubjectId,
) -> Result<Vec<PendingGroup>, AppError> {
    let outdated = state.policy_ops.pending_reconsent(subject).await?;
    let regime = state.kernel.gate.regime();
    let versions = regime.versions();
    let current = regime.current();
    let name = |id: &str| {
        current
            .purpose(id)
            .map(|p| (p.name.en.clone(), p.name.zh.clone()))
            .unwrap_or_else(|| (id.to_owned(), id.to_owned()))
    };
    let mut groups: Vec<PendingGroup> = Vec::new();
    let group_for = |groups: &mut Vec<PendingGroup>, since: usize| -> usize {
        let v = &versions[since];
        if let Some(i) = groups.iter().position(|g| g.version == v.hash().as_str()) {
            return i;
        }
        groups.push(PendingGroup {
            version: v.hash().to_string(),
            revision: v.declaration().revision.clone(),
            previous: since.checked_sub(1).map(|p| versions[p].hash().to_string()),
            purposes: Vec::new(),
        });
        groups.len() - 1
    };
    for p in &outdated {
        let Some(since) = regime
            .version_index(&p.version)
            .map(|i| i as usize)
            .filter(|i| *i < versions.len())
        else {
            continue;
        };
        let gi = group_for(&mut groups, since);
        for (id, separate) in p
            .purposes
            .iter()
            .map(|x| (x, false))
            .chain(p.separate.iter().map(|x| (x, true)))
        {
            let (en, zh) = name(id);
            groups[gi].purposes.push(PendingPurpose {
                id: id.clone(),
                name_en: en,
                name_zh: zh,
                separate,
                added: false,
            });
        }
    }
    for (r, info) in regime.purposes() {
        let since = info.since as usize;
        if info.basis != LegalBasis::Consent || since == 0 || since >= versions.len() {
            continue;
        }
        // Added by that version: absent from the one before.
        if versions[since - 1].purpose(&info.id).is_some() {
            continue;
        }
        if state.kernel.gate.status(subject, r) != Err(Denial::ConsentMissing) {
            continue;
        }
        if info.id == custos_app::identity::account::GUARDIAN_PURPOSE {
            continue;
        }
        let gi = group_for(&mut groups, since);
        let (en, zh) = name(&info.id);
        groups[gi].purposes.push(PendingPurpose {
            id: info.id.clone(),
            name_en: en,
            name_zh: zh,
            separate: info.separate_consent,
            added: true,
        });
    }
    groups.retain(|g| !g.purposes.is_empty());
    Ok(groups)
}

fn dialogs() -> std::sync::MutexGuard<'static, HashMap<String, DialogState>> {
    DIALOGS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Purposes of a newer declaration the signed-in user has not agreed to yet.
pub async fn pending_reconsent(state: &AppState, ctx: &Ctx) -> Result<Vec<String>, WebError> {
    let Some(session) = &ctx.session else {
        return Ok(Vec::new());
    };
    let groups = pending_groups(state, session.subject).await?;
    let ids: Vec<String> = groups
        .iter()
        .flat_map(|g| g.purposes.iter().map(|p| p.id.clone()))
        .collect();
    let mut map = dialogs();
    if groups.is_empty() {
        map.remove(&session.id);
    } else {
        let dismissed = map
            .get(&session.id)
            .is_some_and(|d| d.dismissed && d.groups == groups);
        if map.len() >= MAX_DIALOGS && !map.contains_key(&session.id) {
            map.clear();
        }
        map.insert(session.id.clone(), DialogState { groups, dismissed });
    }
    Ok(ids)
}

/// The re-consent dialog, when [`Ctx::pending_reconsent`] is not empty.
pub fn reconsent_dialog(ctx: &Ctx) -> Option<Markup> {
    let session = ctx.session.as_ref()?;
    if ctx.pending_reconsent.is_empty()
        || ctx.path.starts_with("/privacy/")
        || ctx.path.starts_with("/signin")
    {
        return None;
    }
    let state = dialogs().get(&session.id).cloned()?;
    if state.dismissed {
        return None;
    }
    let name = |p: &PendingPurpose| match ctx.lang {
        Lang::En => p.name_en.clone(),
        Lang::Zh => p.name_zh.clone(),
    };
    let plain: bool = state
        .groups
        .iter()
        .any(|g| g.purposes.iter().any(|p| !p.separate));
    Some(html! {
        div class="dialog-backdrop" {
            div id="reconsent-dialog" class="dialog reconsent" role="dialog" aria-modal="true"
                aria-labelledby="reconsent-title" aria-describedby="reconsent-intro" data-autofocus {
                h2 id="reconsent-title" { (ctx.t("隐私政策已更新", "Our privacy policy has changed")) }
                p id="reconsent-intro" {
                    (ctx.t(
                        "新版本扩大或新增了下列需要您同意的用途。在您同意之前，这些处理对您暂停；其他功能照常可用。",
                        "The new version widens or adds the uses below, which need your consent. Until you agree they stay paused for you; everything else keeps working.",
                    ))
                }
                @for g in &state.groups {
                    div class="reconsent-group" data-version=(g.version) {
                        p {
                            (ctx.t("修订 ", "Revision ")) (g.revision) " "
                            code { (short(&g.version)) }
                        }
                        ul {
                            @for p in &g.purposes {
                                li data-purpose=(p.id) {
                                    (name(p)) " "
                                    span class="badge" {
                                        @if p.added { (ctx.t("新增", "new")) } @else { (ctx.t("范围扩大", "widened")) }
                                    }
                                    @if p.separate {
                                        " " span class="badge" { (ctx.t("需单独同意", "needs its own consent")) }
                                    }
                                }
                            }
                        }
                        @if let Some(prev) = &g.previous {
                            p {
                                a class="reconsent-diff" href={ "/privacy/policy/diff?from=" (prev) "&to=" (g.version) } {
                                    (ctx.t("查看具体变化", "See exactly what changed"))
                                }
                            }
                        }
                    }
                }
                div class="actions" {
                    @if plain {
                        form method="post" action="/privacy/reconsent" {
                            (csrf_input(ctx))
                            input type="hidden" name="next" value=(ctx.path);
                            button id="reconsent-agree" type="submit" {
                                (ctx.t("同意新版本", "Agree to the new version"))
                            }
                        }
                    }
                    @for g in &state.groups {
                        @for p in g.purposes.iter().filter(|p| p.separate) {
                            form method="post" action="/privacy/reconsent" {
                                (csrf_input(ctx))
                                input type="hidden" name="next" value=(ctx.path);
                                button class="secondary reconsent-separate" type="submit" name="purpose" value=(p.id) {
                                    (ctx.t("单独同意：", "Agree separately: ")) (name(p))
                                }
                            }
                        }
                    }
                    form method="post" action="/privacy/reconsent/later" {
                        (csrf_input(ctx))
                        input type="hidden" name="next" value=(ctx.path);
                        button id="reconsent-later" class="secondary" type="submit" {
                            (ctx.t("以后再说", "Not now"))
                        }
                    }
                }
                p class="muted" {
                    (ctx.t(
                        "选择“以后再说”后，上述用途继续暂停，您可以随时在隐私中心同意。",
                        "If you choose “Not now”, these uses stay paused; you can agree any time in the privacy center.",
                    ))
                }
            }
        }
    })
}

#[derive(Debug, Deserialize)]
struct ReconsentForm {
    next: Option<String>,
    /// A single purpose to agree to (separate consent); absent for a plain Agree.
    purpose: Option<String>,
}

/// Records the agreement: per version, the purposes a plain Agree covers (or the one
/// separate-consent purpose named), through the same use case as the API's Agree.
async fn agree(
    State(s): State<AppState>,
    ctx: Ctx,
    WebForm(f): WebForm<ReconsentForm>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let next = safe_next(f.next.as_deref());
    let groups = pending_groups(&s, session.subject)
        .await
        .map_err(|e| WebError::from(e).lang(ctx.lang))?;
    let mut receipts = Vec::new();
    for g in &groups {
        let chosen: Vec<String> = match &f.purpose {
            Some(one) => g
                .purposes
                .iter()
                .filter(|p| &p.id == one)
                .map(|p| p.id.clone())
                .collect(),
            None => g
                .purposes
                .iter()
                .filter(|p| !p.separate)
                .map(|p| p.id.clone())
                .collect(),
        };
        if chosen.is_empty() {
            continue;
        }
        let out = s
            .policy_ops
            .agree(session.subject, false, &g.version, Some(&chosen))
            .await
            .map_err(|e| agree_error(&ctx, e))?;
        if let Some(r) = out.receipt {
            receipts.push(r.receipt_id);
        }
    }
    dialogs().remove(&session.id);
    let mut loc = format!("/privacy/reconsent/done?next={}", encode(&next));
    for r in receipts {
        loc.push_str(&format!("&receipt={r}"));
    }
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, loc)]).into_response())
}

fn agree_error(ctx: &Ctx, e: AppError) -> WebError {
    match e.code() {
        "guardian_consent_required" => WebError::new(
            StatusCode::FORBIDDEN,
            "guardian_consent_required",
            ctx.t(
                "未满 18 岁的用户需要监护人先同意，才能开启这些用途。",
                "Users under 18 need a guardian's agreement before these uses can be turned on.",
            ),
        )
        .lang(ctx.lang),
        _ => WebError::from(e).lang(ctx.lang),
    }
}

async fn later(ctx: Ctx, WebForm(f): WebForm<ReconsentForm>) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    if let Some(d) = dialogs().get_mut(&session.id) {
        d.dismissed = true;
    }
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, safe_next(f.next.as_deref()))],
    )
        .into_response())
}

async fn agreed_page(ctx: Ctx, raw: axum::extract::RawQuery) -> Result<Response, WebError> {
    ctx.require_user()?;
    let mut next = None;
    let mut receipts = Vec::new();
    for (k, v) in form_urlencoded::parse(raw.0.as_deref().unwrap_or("").as_bytes()) {
        match &*k {
            "next" => next = Some(v.into_owned()),
            "receipt" => {
                if let Ok(id) = uuid::Uuid::parse_str(&v) {
                    receipts.push(id);
                }
            }
            _ => {}
        }
    }
    receipts.truncate(16);
    let next = safe_next(next.as_deref());
    let body = html! {
        h1 { (ctx.t("已记录您的同意", "Your agreement is recorded")) }
        p class="notice" role="status" {
            (ctx.t("暂停的用途已恢复。您可以随时在隐私中心撤回同意。",
                   "The paused uses have resumed. You can withdraw your consent any time in the privacy center."))
        }
        @for (i, r) in receipts.iter().enumerate() {
            p {
                @if i == 0 {
                    a id="receipt-link" href={ "/receipts/" (r) } { (ctx.t("查看同意回执", "See the consent receipt")) }
                } @else {
                    a class="receipt-link" href={ "/receipts/" (r) } { (ctx.t("查看同意回执", "See the consent receipt")) }
                }
            }
        }
        p { a href=(next) { (ctx.t("继续", "Continue")) } }
    };
    Ok(layout::page(&ctx, ctx.t("已同意", "Agreed"), body))
}
