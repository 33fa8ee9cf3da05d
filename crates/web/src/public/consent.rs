//! The first-visit consent dialog, `POST /consent` and the readable receipt page.

use std::collections::BTreeSet;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use custos_app::consent::DecisionInput;
use custos_core::{ConsentMethod, Decision, SubjectId};
use custos_http::AppState;
use custos_policy::{LegalBasis, Policy, Purpose, Tier};
use maud::{html, Markup};
use uuid::Uuid;

use super::CONSENT_ASKED_COOKIE;
use crate::ctx::{cookie, Ctx};
use crate::error::WebError;
use crate::forms::{csrf_input, encode, safe_next, WebForm};

/// Label of the sealed token that lets a visitor left without an identifier open the
/// receipt of their own decision (bound to the receipt id).
const RECEIPT_LINK_DOMAIN: &str = "web-receipt-link";
/// Longest receipt-link token accepted (a sealed subject id is about 70 characters).
const MAX_LINK_TOKEN: usize = 256;
/// Most receipt links one notice shows.
const MAX_NOTICE_RECEIPTS: usize = 8;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/consent", post(post_consent))
        .route("/receipts/{id}", get(receipt_page))
}

/// Purposes a visitor may opt into: additional features resting on consent.
pub(super) fn optional_purposes(policy: &Policy) -> impl Iterator<Item = &Purpose> {
    policy
        .purposes()
        .iter()
        .filter(|p| p.tier == Tier::Additional && p.basis == LegalBasis::Consent)
}

/// The dialog is shown on the browsing pages only (never over sign-in, the privacy
/// center, the policy or the console, where it would stand in the way).
fn prompt_page(path: &str) -> bool {
    let p = path.split(['?', '#']).next().unwrap_or("");
    p == "/" || p == "/search" || p.starts_with("/items/")
}

fn quiet_secs(s: &AppState) -> i64 {
    i64::from(s.web.consent_quiet_days) * 86_400
}

pub(super) async fn needs_prompt(
    state: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
) -> Result<bool, WebError> {
    if !prompt_page(&ctx.path) {
        return Ok(false);
    }
    let now = state.kernel.clock.now_ms() / 1000;
    if let Some(t) = cookie(headers, CONSENT_ASKED_COOKIE).and_then(|v| v.parse::<i64>().ok()) {
        // Max-Age ends the cookie; the time inside guards against a stale browser.
        if t <= now + 86_400 && now - t < quiet_secs(state) {
            return Ok(false);
        }
    }
    let regime = state.kernel.gate.regime();
    let optional: Vec<&str> = optional_purposes(regime.current())
        .map(|p| p.id.as_str())
        .collect();
    if optional.is_empty() {
        return Ok(false);
    }
    if let Some(subject) = ctx.subject {
        // A refusal is a decision too: a subject that decided anything is not asked again.
        let history = state.kernel.consent_history(subject).await?;
        if history
            .iter()
            .any(|r| optional.contains(&r.purpose.as_str()))
        {
            return Ok(false);
        }
    }
    Ok(true)
}

fn category_names(policy: &Policy, p: &Purpose, ctx: &Ctx) -> Vec<String> {
    p.categories
        .iter()
        .map(|k| {
            policy
                .category(k)
                .map(|c| c.name.get(ctx.lang).to_owned())
                .unwrap_or_else(|| k.clone())
        })
        .collect()
}

/// The first-visit dialog: a form on top of the page (works without script).
pub(super) fn dialog(ctx: &Ctx) -> Option<Markup> {
    if !ctx.consent_prompt {
        return None;
    }
    let policy = ctx.consent_policy.as_ref()?;
    let l = ctx.lang;
    let anonymous = !ctx.signed_in();
    let basic: Vec<_> = policy
        .features()
        .iter()
        .filter(|f| f.tier == Tier::Basic)
        .collect();
    let next = ctx.path.clone();
    Some(html! {
        div class="dialog-backdrop" {
            div id="consent-dialog" class="dialog consent-dialog" role="dialog" aria-modal="true"
                aria-labelledby="consent-title" aria-describedby="consent-intro" data-autofocus {
                form method="post" action="/consent" {
                    (csrf_input(ctx))
                    input type="hidden" name="next" value=(next);
                    h2 id="consent-title" { (ctx.t("您的数据，由您决定", "Your data, your choice")) }
                    p id="consent-intro" {
                        (ctx.t(
                            "浏览和搜索不需要账号，也不需要您同意下面任何一项。以下附加功能默认全部关闭，只有您打开的才会启用，之后随时可以在隐私中心更改。",
                            "Browsing and searching need no account and none of the options below. Every additional feature starts switched off; only what you turn on is used, and you can change it any time in the privacy center."
                        ))
                    }
                    h3 { (ctx.t("基本功能", "Basic features")) }
                    p class="muted" { (ctx.t("这些功能只使用其运行所必需的数据，不需要您另外同意：", "These use only the data they cannot work without and need no opt-in:")) }
                    ul class="consent-basic" {
                        @for f in &basic {
                            li {
                                strong { (f.name.get(l)) } " — " (f.description.get(l))
                                @let needs: Vec<String> = f.purposes.iter()
                                    .filter_map(|id| policy.purpose(id))
                                    .flat_map(|p| category_names(policy, p, ctx))
                                    .collect::<BTreeSet<_>>().into_iter().collect();
                                @if !needs.is_empty() {
                                    br;
                                    span class="muted" { (ctx.t("所需数据：", "Data it needs: ")) (needs.join(ctx.t("、", ", "))) }
                                }
                            }
                        }
                    }
                    fieldset class="consent-purposes" {
                        legend { (ctx.t("附加功能（默认关闭）", "Additional features (all off until you turn them on)")) }
                        @for p in optional_purposes(policy) {
                            @let input_id = format!("consent-p-{}", p.id);
                            @let locked = anonymous && !p.anonymous;
                            div class="consent-purpose" {
                                div class="switch-row" {
                                    input type="checkbox" id=(input_id) name="purpose" value=(p.id)
                                        disabled[locked] aria-describedby={ (input_id) "-desc" };
                                    label for=(input_id) { strong { (p.name.get(l)) } }
                                }
                                div id={ (input_id) "-desc" } {
                                    p { (p.description.get(l)) }
                                    p class="muted" {
                                        (ctx.t("使用的数据：", "Data used: "))
                                        (category_names(policy, p, ctx).join(ctx.t("、", ", ")))
                                    }
                                    @if p.separate_consent {
                                        p class="badge" { (ctx.t("需要单独同意：“全部同意”不包括此项，请单独勾选。", "Needs its own consent: “Accept all” does not include it; tick it on its own.")) }
                                    }
                                    @if locked {
                                        p class="badge" {
                                            (ctx.t("需要账号：", "Needs an account: "))
                                            a href={ "/signin?next=" (encode(&next)) } { (ctx.t("登录后可开启", "sign in to turn it on")) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    p class="muted" {
                        a href="/privacy/policy" { (ctx.t("阅读完整的隐私政策", "Read the full privacy policy")) }
                    }
                    div class="actions" {
                        button type="submit" id="consent-accept-all" class="consent-choice" name="choice" value="accept_all" {
                            (ctx.t("全部同意", "Accept all"))
                        }
                        button type="submit" id="consent-refuse-all" class="consent-choice" name="choice" value="refuse_all" {
                            (ctx.t("全部拒绝", "Refuse all"))
                        }
                    }
                    div class="actions" {
                        button type="submit" id="consent-save" class="secondary" name="choice" value="save" {
                            (ctx.t("保存我的选择", "Save my choices"))
                        }
                    }
                }
            }
        }
    })
}

/// Receipt links carried back to the page after a decision: `receipt=` ids, each with
/// its `rt=` token (in the same order) when the visitor holds no identifier.
struct NoticeLinks {
    receipts: Vec<(Uuid, Option<String>)>,
}

fn notice_links(path: &str) -> Option<NoticeLinks> {
    let query = path.split_once('?')?.1;
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "receipt" if ids.len() < MAX_NOTICE_RECEIPTS => {
                if let Ok(id) = Uuid::parse_str(&v) {
                    ids.push(id);
                }
            }
            "rt" if tokens.len() < MAX_NOTICE_RECEIPTS && link_token_ok(&v) => {
                tokens.push(v.into_owned())
            }
            _ => {}
        }
    }
    if ids.is_empty() {
        return None;
    }
    let mut tokens = tokens.into_iter();
    Some(NoticeLinks {
        receipts: ids.into_iter().map(|id| (id, tokens.next())).collect(),
    })
}

fn link_token_ok(t: &str) -> bool {
    t.len() <= MAX_LINK_TOKEN
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn receipt_href(id: &Uuid, token: &Option<String>) -> String {
    match token {
        Some(t) => format!("/receipts/{id}?rt={}", encode(t)),
        None => format!("/receipts/{id}"),
    }
}

/// The notice after a decision, with the link to its signed receipt.
pub(super) fn decision_notice(ctx: &Ctx) -> Option<Markup> {
    // Only after the dialog, which only the browsing pages show; other pages that
    // record decisions say so themselves.
    if !prompt_page(&ctx.path) {
        return None;
    }
    let links = notice_links(&ctx.path)?;
    let ((first, first_token), rest) = links.receipts.split_first()?;
    Some(html! {
        div class="notice consent-notice" role="status" {
            p {
                (ctx.t("已记录您的选择。", "Your choices are recorded. "))
                a id="receipt-link" class="receipt-link" href=(receipt_href(first, first_token)) {
                    (ctx.t("查看签名回执", "See the signed receipt"))
                }
                @for (i, (id, token)) in rest.iter().enumerate() {
                    " · "
                    a class="receipt-link" href=(receipt_href(id, token)) {
                        (ctx.t("单独同意的回执 ", "Receipt of a separate consent ")) (i + 1)
                    }
                }
            }
            p class="muted" {
                (ctx.t("随时可以在", "You can change them at any time in the "))
                @if ctx.signed_in() {
                    a href="/me/consents" { (ctx.t("隐私中心", "privacy center")) }
                } @else {
                    (ctx.t("隐私中心（需登录）", "privacy center (after signing in)"))
                }
                (ctx.t("更改。", "."))
            }
        }
    })
}

fn link_label(receipt: &Uuid) -> String {
    format!("{RECEIPT_LINK_DOMAIN}:{receipt}")
}

/// The receipt link's token: the subject id sealed (AES-GCM) under a label naming the
/// receipt. It opens this receipt only, cannot be forged, and the URL does not show
/// the subject id (which a copied or shared address would otherwise carry).
fn receipt_link_token(state: &AppState, receipt: &Uuid, subject: &SubjectId) -> String {
    use base64::Engine;
    let sealed = state.kernel.ring.wrap_secret(
        &link_label(receipt),
        subject.to_string().as_bytes(),
        &mut custos_crypto::OsRng,
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
}

/// The subject a receipt link's token was made for, if it is genuine and for `receipt`.
fn link_subject(state: &AppState, receipt: &Uuid, token: &str) -> Option<SubjectId> {
    use base64::Engine;
    if !link_token_ok(token) {
        return None;
    }
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let plain = state
        .kernel
        .ring
        .unwrap_secret(&link_label(receipt), &sealed)
        .ok()?;
    std::str::from_utf8(&plain).ok()?.parse().ok()
}

fn bad(ctx: &Ctx, zh: &str, en: &str) -> WebError {
    WebError::bad_request(ctx.t(zh, en)).lang(ctx.lang)
}

/// Records the dialog's decisions exactly as `POST /api/v1/consents` would (method
/// `dialog`), then goes back with the receipt link.
async fn post_consent(
    State(s): State<AppState>,
    ctx: Ctx,
    WebForm(form): WebForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let lang = ctx.lang;
    let mut choice = None;
    let mut next = None;
    let mut ticked: BTreeSet<String> = BTreeSet::new();
    for (k, v) in form {
        match k.as_str() {
            "choice" => choice = Some(v),
            "next" => next = Some(v),
            "purpose" => {
                ticked.insert(v);
            }
            _ => {}
        }
    }
    let regime = s.kernel.gate.regime();
    let policy = regime.current().clone();
    let optional: Vec<&Purpose> = optional_purposes(&policy).collect();
    if ticked.len() > optional.len() || ticked.iter().any(|t| !optional.iter().any(|p| &p.id == t))
    {
        return Err(bad(
            &ctx,
            "选择中有未知的用途。",
            "The form names a purpose that does not exist.",
        ));
    }
    let account = ctx.signed_in();
    let decidable: Vec<&Purpose> = optional
        .iter()
        .copied()
        .filter(|p| account || p.anonymous)
        .collect();
    // Given in one bundle, refused in it too; a separate consent is given on its own (L1).
    let mut bundle: Vec<DecisionInput> = Vec::new();
    let mut separate: Vec<DecisionInput> = Vec::new();
    let given = |p: &str| DecisionInput {
        purpose: p.to_owned(),
        decision: Decision::Given,
    };
    let refused = |p: &str| DecisionInput {
        purpose: p.to_owned(),
        decision: Decision::Refused,
    };
    match choice.as_deref() {
        Some("accept_all") => {
            // "Accept all" never covers a purpose that needs its own consent.
            // With Global Privacy Control on, "accept all" leaves personalized ads out (L14).
            let objected = |p: &Purpose| ctx.gpc && p.id == custos_app::signals::ads::ADS_PURPOSE;
            for p in decidable
                .iter()
                .filter(|p| !p.separate_consent && !objected(p))
            {
                bundle.push(given(&p.id));
            }
        }
        Some("refuse_all") => {
            for p in &decidable {
                bundle.push(refused(&p.id));
            }
        }
        Some("save") => {
            for p in &optional {
                let on = ticked.contains(&p.id);
                match (on, p.separate_consent) {
                    (true, true) => separate.push(given(&p.id)),
                    (true, false) => bundle.push(given(&p.id)),
                    // An anonymous visitor cannot decide account-only purposes either way.
                    (false, _) if account || p.anonymous => bundle.push(refused(&p.id)),
                    (false, _) => {}
                }
            }
        }
        _ => {
            return Err(bad(
                &ctx,
                "请选择“全部同意”、“全部拒绝”或“保存我的选择”。",
                "Choose “Accept all”, “Refuse all” or “Save my choices”.",
            ))
        }
    }
    let mut batches: Vec<Vec<DecisionInput>> = Vec::new();
    if !bundle.is_empty() {
        batches.push(bundle);
    }
    batches.extend(separate.into_iter().map(|d| vec![d]));
    let back = safe_next(next.as_deref());
    let back = strip_notice(&back);
    if batches.is_empty() {
        return Ok(redirect_with(&back, vec![asked_cookie(&s)]));
    }
    let all: Vec<DecisionInput> = batches.iter().flatten().cloned().collect();
    custos_app::identity::minors::check_guardian_decisions(&all)
        .map_err(|e| WebError::from(e).lang(lang))?;
    for b in &batches {
        s.kernel
            .check_decisions(!account, b)
            .map_err(|e| decision_error(&ctx, e))?;
    }
    // A new anonymous identifier only once the decisions are known to be acceptable.
    let (subject, token) = match ctx.subject {
        Some(sub) => (sub, None),
        None => {
            let (token, sub) = s
                .kernel
                .new_anonymous_subject()
                .await
                .map_err(|e| WebError::from(e).lang(lang))?;
            (sub, Some(token))
        }
    };
    if account {
        s.identity
            .check_minor_decisions(subject, &all)
            .await
            .map_err(|e| WebError::from(e).lang(lang))?;
    }
    let mut receipts = Vec::new();
    for b in &batches {
        let r = s
            .kernel
            .record_decisions(subject, !account, b, ConsentMethod::Dialog)
            .await
            .map_err(|e| WebError::from(e).lang(lang))?;
        s.signals
            .after_decisions(subject, b)
            .await
            .map_err(|e| WebError::from(e).lang(lang))?;
        receipts.push(r.receipt_id);
    }
    // P27: the identifier cookie only while a consent that needs it stands (as the API).
    let (anon_cookie, keeps_subject) = if account {
        (None, true)
    } else if s
        .signals
        .identifier_needed(subject)
        .await
        .map_err(|e| WebError::from(e).lang(lang))?
    {
        (token.as_deref().map(custos_http::caller::anon_cookie), true)
    } else {
        (
            ctx.subject.map(|_| custos_http::ads::clear_anon_cookie()),
            false,
        )
    };
    let mut query = String::new();
    for id in &receipts {
        query.push_str(&format!("&receipt={id}"));
    }
    if !keeps_subject {
        // No identifier stays with this browser: the link itself proves the receipt is
        // the visitor's own.
        for id in &receipts {
            query.push_str(&format!("&rt={}", receipt_link_token(&s, id, &subject)));
        }
    }
    let sep = if back.contains('?') { "&" } else { "?" };
    let location = format!("{back}{sep}{}", &query[1..]);
    let mut cookies = vec![asked_cookie(&s)];
    cookies.extend(anon_cookie);
    Ok(redirect_with(&location, cookies))
}

/// A refused decision as a page; "needs an account" says so in the page's language.
fn decision_error(ctx: &Ctx, e: custos_app::AppError) -> WebError {
    match e {
        custos_app::AppError::AccountRequired(_) => WebError::new(
            StatusCode::FORBIDDEN,
            "account_required",
            ctx.t(
                "您选择的某项功能需要账号，请先登录再开启。",
                "One of the features you chose needs an account; sign in first to turn it on.",
            ),
        )
        .lang(ctx.lang),
        e => WebError::from(e).lang(ctx.lang),
    }
}

/// The quiet-period cookie. Its value is the end of the day of the decision (UTC), not
/// the second: a time to the second would be nearly unique per visitor and so an
/// identifier sent with every page (P5). Rounding up keeps the quiet period whole.
fn asked_cookie(s: &AppState) -> String {
    let now = s.kernel.clock.now_ms() / 1000;
    let day = now.div_euclid(86_400) * 86_400;
    let at = if day == now { day } else { day + 86_400 };
    format!(
        "{CONSENT_ASKED_COOKIE}={at}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
        quiet_secs(s)
    )
}

/// `next` without the notice parameters of an earlier decision.
fn strip_notice(next: &str) -> String {
    let Some((path, query)) = next.split_once('?') else {
        return next.to_owned();
    };
    let kept: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| !matches!(k.as_ref(), "receipt" | "rt" | "rs" | "rk"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        return path.to_owned();
    }
    let q = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish();
    format!("{path}?{q}")
}

fn redirect_with(location: &str, cookies: Vec<String>) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

#[derive(Debug, serde::Deserialize)]
struct ReceiptQuery {
    rt: Option<String>,
}

/// A signed receipt, readable, for its own subject only (404 otherwise).
async fn receipt_page(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    query: Result<Query<ReceiptQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let not_found = || {
        WebError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            ctx.t("没有找到这张回执。", "There is no such receipt."),
        )
        .lang(ctx.lang)
    };
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let q = query.map(|Query(q)| q).unwrap_or(ReceiptQuery { rt: None });
    let from_link = q.rt.and_then(|t| link_subject(&s, &id, &t));
    let subject = from_link.or(ctx.subject).ok_or_else(not_found)?;
    let r = match s.kernel.receipt(subject, id).await {
        Ok(r) => r,
        Err(custos_app::AppError::NotFound) => return Err(not_found()),
        Err(e) => return Err(WebError::from(e).lang(ctx.lang)),
    };
    let regime = s.kernel.gate.regime();
    let rc = &r.receipt["custos"];
    let hash = rc["policyHash"].as_str().unwrap_or("");
    let version = regime
        .versions()
        .iter()
        .find(|p| p.hash().as_str() == hash)
        .cloned()
        .unwrap_or_else(|| regime.current().clone());
    let recorded = rc["recordedAt"].as_str().unwrap_or("");
    let method = r.receipt["collectionMethod"].as_str().unwrap_or("");
    let decisions: Vec<(String, String)> = rc["decisions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| {
                    (
                        d["purpose"].as_str().unwrap_or("").to_owned(),
                        d["decision"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let decision_text = |d: &str| match d {
        "given" => ctx.t("同意", "Given"),
        "refused" => ctx.t("拒绝", "Refused"),
        "withdrawn" => ctx.t("撤回", "Withdrawn"),
        _ => ctx.t("其他", "Other"),
    };
    let method_text = match method {
        "dialog" => ctx.t("首次访问对话框", "the first-visit dialog"),
        "settings" => ctx.t("隐私设置", "privacy settings"),
        "gpc" => ctx.t("全球隐私控制信号", "a Global Privacy Control signal"),
        _ => ctx.t("应用接口", "the app's interface"),
    };
    let body = html! {
        h1 { (ctx.t("同意回执", "Consent receipt")) }
        p { (ctx.t("这张回执由我们签名，证明下列选择已被记录，无法事后更改。", "We signed this receipt; it proves the choices below were recorded and cannot be changed afterwards.")) }
        dl class="receipt" {
            dt { (ctx.t("回执编号", "Receipt number")) }
            dd { code { (r.receipt_id) } }
            dt { (ctx.t("记录时间", "Recorded at")) }
            dd { time datetime=(recorded) { (recorded) } }
            dt { (ctx.t("方式", "How")) }
            dd { (method_text) }
            dt { (ctx.t("政策版本", "Policy version")) }
            dd {
                (version.declaration().revision) " "
                span class="muted" { "(" code { (version.hash().short()) } ")" }
            }
        }
        h2 { (ctx.t("记录的选择", "Choices recorded")) }
        table class="receipt-decisions" {
            thead { tr { th scope="col" { (ctx.t("用途", "Purpose")) } th scope="col" { (ctx.t("选择", "Decision")) } } }
            tbody {
                @for (p, d) in &decisions {
                    tr data-purpose=(p) data-decision=(d) {
                        td { (version.purpose(p).map(|x| x.name.get(ctx.lang).to_owned()).unwrap_or_else(|| p.clone())) }
                        td { (decision_text(d)) }
                    }
                }
            }
        }
        h2 { (ctx.t("签名（JWS）", "Signature (JWS)")) }
        p {
            (ctx.t("可用公开的", "Anyone can check it with the published "))
            a href="/.well-known/custos/receipt-keys.json" { (ctx.t("验证密钥", "verification key")) }
            (ctx.t("核对。", "."))
        }
        pre class="jws" id="receipt-jws" tabindex="0" { (r.jws) }
    };
    Ok(crate::layout::page(
        &ctx,
        ctx.t("同意回执", "Consent receipt"),
        body,
    ))
}
