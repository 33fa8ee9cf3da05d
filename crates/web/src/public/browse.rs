//! Home feed, search, item pages and their actions (bookmark, download, share, comment).

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use custos_app::catalog::interactions::Kind;
use custos_app::catalog::SearchOutcome;
use custos_app::identity::AuthSession;
use custos_app::signals::EventInput;
use custos_core::{GateContext, SubjectId};
use custos_http::session::ClientIp;
use custos_http::AppState;
use custos_policy::Lang;
use custos_search::{Filters, MediaKind, SearchRequest, Sort, MAX_QUERY_CHARS};
use maud::{html, Markup};
use serde::Deserialize;

use crate::ctx::Ctx;
use crate::error::WebError;
use crate::forms::{csrf_input, encode, Empty, WebForm};

/// Items per page of the feed and of search results.
pub const PAGE_SIZE: usize = 20;
/// Most tags a search filters by.
const MAX_TAGS: usize = 10;
/// Most parameters a search link may carry (the form sends nine).
const MAX_SEARCH_PARAMS: usize = 32;
/// Parameters that may appear once in a search link (`tags` may repeat).
const KNOWN_SEARCH_PARAMS: &[&str] = &[
    "q",
    "category",
    "price_min",
    "price_max",
    "media",
    "sort",
    "cursor",
];
/// Longest comment accepted by the form (the catalog enforces its own limit too).
const MAX_COMMENT_CHARS: usize = 2_000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/search", get(search))
        .route("/items/{id}", get(item_page))
        .route("/items/{id}/bookmark", post(bookmark))
        .route("/items/{id}/download", post(download))
        .route("/items/{id}/share", post(share))
        .route("/items/{id}/comment", post(comment))
        .route("/shares/{token}", get(open_share))
}

/// An item of a feed or search answer (the catalog's summary JSON).
#[derive(Debug, Deserialize)]
struct Summary {
    id: i64,
    title_zh: String,
    title_en: String,
    category: String,
    #[serde(default)]
    tags: Vec<String>,
    price_min: i64,
    price_max: i64,
    currency: String,
    #[serde(default)]
    media_types: Vec<String>,
    thumbnail_url: Option<String>,
}

fn title<'a>(lang: Lang, zh: &'a str, en: &'a str) -> &'a str {
    let (first, other) = match lang {
        Lang::Zh => (zh, en),
        Lang::En => (en, zh),
    };
    if first.trim().is_empty() {
        other
    } else {
        first
    }
}

fn money(minor: i64, currency: &str) -> String {
    let sign = match currency {
        "CNY" => "¥".to_owned(),
        c => format!("{c} "),
    };
    format!("{sign}{}.{:02}", minor / 100, (minor % 100).abs())
}

fn price(min: i64, max: i64, currency: &str) -> String {
    if max > min {
        format!("{} – {}", money(min, currency), money(max, currency))
    } else {
        money(min, currency)
    }
}

fn media_label(ctx: &Ctx, kind: &str) -> String {
    match kind {
        "video" => ctx.t("视频", "video").to_owned(),
        "image" => ctx.t("图片", "image").to_owned(),
        other => other.to_owned(),
    }
}

fn card(ctx: &Ctx, s: &Summary) -> Markup {
    let t = title(ctx.lang, &s.title_zh, &s.title_en);
    html! {
        li class="card item-card" {
            a class="item-link" href={ "/items/" (s.id) } {
                @if let Some(th) = &s.thumbnail_url {
                    img src=(th) alt=(t) loading="lazy";
                }
                h3 class="item-title" { (t) }
            }
            p class="price" { (price(s.price_min, s.price_max, &s.currency)) }
            p class="muted" {
                (s.category)
                @for m in &s.media_types { " · " (media_label(ctx, m)) }
            }
            @if !s.tags.is_empty() {
                p class="tags" { @for tag in s.tags.iter().take(5) { span class="badge" { "#" (tag) } " " } }
            }
        }
    }
}

fn cards(ctx: &Ctx, out: &SearchOutcome) -> Markup {
    let items: Vec<Summary> = out
        .items
        .iter()
        .filter_map(|j| serde_json::from_str(j).ok())
        .collect();
    html! {
        ul class="grid items" {
            @for s in &items { (card(ctx, s)) }
        }
    }
}

fn personalized_label(ctx: &Ctx) -> Markup {
    html! {
        p id="personalized-label" class="notice personalized" {
            strong { (ctx.t("个性化推荐：", "Personalized: ")) }
            (ctx.t("这里的顺序根据您的偏好排列，价格和条件对所有人都一样。", "this order follows your preferences; prices and terms are the same for everyone. "))
            a href="/me/consents" { (ctx.t("关闭个性化", "Turn personalization off")) }
        }
    }
}

/// The subject whose answers may be personalized and its gate context: signed-in
/// accounts only, as in the API.
async fn personalizable(
    s: &AppState,
    ctx: &Ctx,
) -> Result<(Option<SubjectId>, GateContext<'static>), WebError> {
    match &ctx.session {
        Some(sess) => Ok((
            Some(sess.subject),
            s.identity
                .gate_context(sess.subject)
                .await
                .map_err(|e| WebError::from(e).lang(ctx.lang))?,
        )),
        None => Ok((None, GateContext::default())),
    }
}

/// Sends one service-log event of a signed-in user through the gate (P10): without the
/// consent it is dropped there. A failure to log never fails the page.
async fn log_event(
    s: &AppState,
    ctx: &Ctx,
    ip: Option<std::net::IpAddr>,
    kind: &str,
    target: String,
) {
    let Some(sess) = &ctx.session else {
        return;
    };
    let gctx = match s.identity.gate_context(sess.subject).await {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(code = %WebError::from(e).code, "service-log event skipped");
            return;
        }
    };
    let target: String = target
        .chars()
        .filter(|c| !c.is_control())
        .take(256)
        .collect();
    let event = EventInput {
        kind: kind.to_owned(),
        at_ms: s.kernel.clock.now_ms(),
        target: Some(target),
        ip: None,
        carrier: None,
        language: Some(ctx.lang.code().to_owned()),
    };
    if let Err(e) = s
        .signals
        .ingest(Some(sess.subject), ip, &[event], &gctx)
        .await
    {
        tracing::warn!(code = %WebError::from(e).code, kind, "service-log event not kept");
    }
}

fn feed_err(ctx: &Ctx) -> impl Fn(custos_app::AppError) -> WebError + '_ {
    move |e| WebError::from(custos_http::feed::feed_error(e)).lang(ctx.lang)
}

#[derive(Debug, Deserialize)]
struct FeedQuery {
    cursor: Option<String>,
}

async fn home(
    State(s): State<AppState>,
    ctx: Ctx,
    query: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let Query(q) = query.map_err(|_| {
        WebError::bad_request(ctx.t("链接参数有误。", "The link's parameters are malformed."))
            .lang(ctx.lang)
    })?;
    let cursor = q.cursor.filter(|c| !c.is_empty());
    let (subject, gctx) = personalizable(&s, &ctx).await?;
    let out = s
        .signals
        .feed(&s.catalog, subject, &gctx, cursor.clone(), PAGE_SIZE)
        .await
        .map_err(feed_err(&ctx))?;
    let body = html! {
        h1 { (ctx.t("发现好物", "Discover")) }
        @if out.personalized { (personalized_label(&ctx)) }
        section id="feed" aria-labelledby="feed-title" {
            h2 id="feed-title" {
                @if out.personalized { (ctx.t("为您推荐", "Picked for you")) }
                @else { (ctx.t("最新上架", "Newest first")) }
            }
            @if out.items.is_empty() {
                p { (ctx.t("目前还没有商品。", "There are no items yet.")) }
            }
            (cards(&ctx, &out))
            nav class="pager" aria-label=(ctx.t("翻页", "Pages")) {
                @if cursor.is_some() { a href="/" { (ctx.t("回到第一页", "First page")) } " " }
                @if let Some(c) = &out.next_cursor {
                    a rel="next" href={ "/?cursor=" (encode(c)) } { (ctx.t("下一页", "Next page")) }
                }
            }
        }
    };
    Ok(crate::layout::page(&ctx, ctx.t("首页", "Home"), body))
}

/// The search as the form sends it: empty fields mean "any".
#[derive(Debug, Default, Clone)]
struct SearchForm {
    q: String,
    category: String,
    tags: Vec<String>,
    price_min: String,
    price_max: String,
    media: String,
    sort: String,
}

impl SearchForm {
    /// The query string of this search with `change` applied.
    fn href(&self, change: impl FnOnce(&mut SearchForm)) -> String {
        let mut f = self.clone();
        change(&mut f);
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("q", f.q.as_str()),
            ("category", f.category.as_str()),
            ("price_min", f.price_min.as_str()),
            ("price_max", f.price_max.as_str()),
            ("media", f.media.as_str()),
            ("sort", f.sort.as_str()),
        ] {
            if !v.is_empty() {
                ser.append_pair(k, v);
            }
        }
        if !f.tags.is_empty() {
            ser.append_pair("tags", &f.tags.join(","));
        }
        format!("/search?{}", ser.finish())
    }
}

fn parse_search(
    ctx: &Ctx,
    pairs: Vec<(String, String)>,
) -> Result<(SearchForm, SearchRequest), WebError> {
    let bad = |m: String| WebError::bad_request(m).lang(ctx.lang);
    if pairs.len() > MAX_SEARCH_PARAMS {
        return Err(bad(ctx
            .t("链接参数太多。", "The link has too many parameters.")
            .to_owned()));
    }
    let mut f = SearchForm::default();
    let mut cursor = None;
    let mut seen: Vec<String> = Vec::new();
    for (k, v) in pairs {
        let v = v.trim().to_owned();
        if KNOWN_SEARCH_PARAMS.contains(&k.as_str()) {
            if seen.contains(&k) {
                let shown: String = k.chars().take(40).collect();
                return Err(bad(format!(
                    "{}`{shown}`",
                    ctx.t("参数重复：", "Given twice: ")
                )));
            }
            seen.push(k.clone());
        }
        match k.as_str() {
            "q" => f.q = v,
            "category" => f.category = v,
            "tags" => {
                for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    if !f.tags.iter().any(|x| x == t) {
                        if f.tags.len() >= MAX_TAGS {
                            return Err(bad(ctx
                                .t("最多选择 10 个标签。", "Choose at most 10 tags.")
                                .to_owned()));
                        }
                        f.tags.push(t.to_owned());
                    }
                }
            }
            "price_min" => f.price_min = v,
            "price_max" => f.price_max = v,
            "media" => f.media = v,
            "sort" => f.sort = v,
            "cursor" if !v.is_empty() => cursor = Some(v),
            // The language switch and unknown parameters change nothing.
            _ => {}
        }
    }
    if f.q.chars().count() > MAX_QUERY_CHARS {
        return Err(bad(format!(
            "{} {MAX_QUERY_CHARS}",
            ctx.t(
                "搜索词最多字数：",
                "A search may have at most this many characters:"
            )
        )));
    }
    let price = |name: &str, v: &str| -> Result<Option<u64>, WebError> {
        if v.is_empty() {
            return Ok(None);
        }
        custos_app::catalog::input::parse_price(&serde_json::Value::String(v.to_owned()))
            .map(|p| Some(p as u64))
            .map_err(|_| {
                bad(format!(
                    "{name}: {}",
                    ctx.t(
                        "请填写以元为单位的价格，最多两位小数。",
                        "enter a price in yuan with at most two decimals."
                    )
                ))
            })
    };
    let filters = Filters {
        category: Some(f.category.clone()).filter(|c| !c.is_empty()),
        tags: f.tags.clone(),
        price_min: price(ctx.t("最低价", "Lowest price"), &f.price_min)?,
        price_max: price(ctx.t("最高价", "Highest price"), &f.price_max)?,
        media: match f.media.as_str() {
            "" => None,
            m => Some(MediaKind::parse(m).ok_or_else(|| {
                bad(ctx
                    .t(
                        "媒体类型只能是图片或视频。",
                        "Media must be image or video.",
                    )
                    .to_owned())
            })?),
        },
    };
    let sort = match f.sort.as_str() {
        "" => None,
        v => Some(Sort::parse(v).ok_or_else(|| {
            bad(ctx
                .t(
                    "排序只能是相关度或最新。",
                    "Sort must be relevance or newest.",
                )
                .to_owned())
        })?),
    };
    let req = SearchRequest {
        q: Some(f.q.clone()).filter(|q| !q.is_empty()),
        filters,
        sort,
        cursor,
        limit: PAGE_SIZE,
    };
    Ok((f, req))
}

fn price_bucket(bucket: &str) -> (String, String) {
    match bucket.split_once('-') {
        Some((a, b)) => (a.to_owned(), b.to_owned()),
        None => (bucket.trim_end_matches('+').to_owned(), String::new()),
    }
}

async fn search(
    State(s): State<AppState>,
    ctx: Ctx,
    ClientIp(ip): ClientIp,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let Query(pairs) = query.map_err(|_| {
        WebError::bad_request(ctx.t("链接参数有误。", "The link's parameters are malformed."))
            .lang(ctx.lang)
    })?;
    let (f, req) = parse_search(&ctx, pairs)?;
    let (subject, gctx) = personalizable(&s, &ctx).await?;
    let out = s
        .signals
        .search(&s.catalog, subject, &gctx, &req)
        .await
        .map_err(feed_err(&ctx))?;
    if let (Some(q), None) = (&req.q, &req.cursor) {
        log_event(&s, &ctx, ip, "search", q.clone()).await;
    }
    let facets = &out.facets;
    let sort_now = f.sort.as_str();
    let body = html! {
        h1 { (ctx.t("搜索", "Search")) }
        form id="search-form" method="get" action="/search" role="search" class="search-form" {
            div class="field" {
                label for="q" { (ctx.t("搜索词", "Search for")) }
                input id="q" name="q" type="search" value=(f.q) maxlength=(MAX_QUERY_CHARS);
            }
            div class="filters" {
                div class="field" {
                    label for="category" { (ctx.t("分类", "Category")) }
                    select id="category" name="category" {
                        option value="" selected[f.category.is_empty()] { (ctx.t("全部", "Any")) }
                        @if !f.category.is_empty() && !facets.category.iter().any(|c| c.value == f.category) {
                            option value=(f.category) selected { (f.category) }
                        }
                        @for c in &facets.category {
                            option value=(c.value) selected[c.value == f.category] { (category_label(&ctx, &c.value)) " (" (c.count) ")" }
                        }
                    }
                }
                div class="field" {
                    label for="tags" { (ctx.t("标签（逗号分隔）", "Tags (comma-separated)")) }
                    input id="tags" name="tags" type="text" value=(f.tags.join(","));
                }
                div class="field" {
                    label for="price_min" { (ctx.t("最低价（元）", "Lowest price (yuan)")) }
                    input id="price_min" name="price_min" type="text" inputmode="decimal" value=(f.price_min);
                }
                div class="field" {
                    label for="price_max" { (ctx.t("最高价（元）", "Highest price (yuan)")) }
                    input id="price_max" name="price_max" type="text" inputmode="decimal" value=(f.price_max);
                }
                div class="field" {
                    label for="media" { (ctx.t("媒体", "Media")) }
                    select id="media" name="media" {
                        option value="" selected[f.media.is_empty()] { (ctx.t("全部", "Any")) }
                        option value="image" selected[f.media == "image"] { (ctx.t("图片", "Images")) }
                        option value="video" selected[f.media == "video"] { (ctx.t("视频", "Videos")) }
                    }
                }
                div class="field" {
                    label for="sort" { (ctx.t("排序", "Order")) }
                    select id="sort" name="sort" {
                        option value="" selected[sort_now.is_empty()] { (ctx.t("默认", "Default")) }
                        option value="relevance" selected[sort_now == "relevance"] { (ctx.t("相关度", "Relevance")) }
                        option value="newest" selected[sort_now == "newest"] { (ctx.t("最新", "Newest")) }
                    }
                }
            }
            button id="search-submit" type="submit" { (ctx.t("搜索", "Search")) }
        }
        @if out.personalized { (personalized_label(&ctx)) }
        div class="search-layout" {
            aside id="facets" aria-labelledby="facets-title" {
                h2 id="facets-title" { (ctx.t("筛选", "Narrow down")) }
                @if !facets.category.is_empty() {
                    h3 { (ctx.t("分类", "Category")) }
                    ul class="facet" {
                        @for c in &facets.category {
                            @let on = c.value == f.category;
                            li { a href=(f.href(|x| x.category = if on { String::new() } else { c.value.clone() }))
                                aria-current=[on.then_some("true")] {
                                @if on { "✓ " } (category_label(&ctx, &c.value)) " (" (c.count) ")" } }
                        }
                    }
                }
                @if !facets.tags.is_empty() {
                    h3 { (ctx.t("标签", "Tags")) }
                    ul class="facet" {
                        @for c in facets.tags.iter().take(30) {
                            @let on = f.tags.contains(&c.value);
                            li { a href=(f.href(|x| if on { x.tags.retain(|t| t != &c.value) } else { x.tags.push(c.value.clone()) }))
                                aria-current=[on.then_some("true")] {
                                @if on { "✓ " } "#" (c.value) " (" (c.count) ")" } }
                        }
                    }
                }
                @if !facets.media.is_empty() {
                    h3 { (ctx.t("媒体", "Media")) }
                    ul class="facet" {
                        @for c in &facets.media {
                            @let on = c.value == f.media;
                            li { a href=(f.href(|x| x.media = if on { String::new() } else { c.value.clone() }))
                                aria-current=[on.then_some("true")] {
                                @if on { "✓ " } (media_label(&ctx, &c.value)) " (" (c.count) ")" } }
                        }
                    }
                }
                @if !facets.price.is_empty() {
                    h3 { (ctx.t("价格（元）", "Price (yuan)")) }
                    ul class="facet" {
                        @for c in &facets.price {
                            @let (lo, hi) = price_bucket(&c.value);
                            @let on = f.price_min == lo && f.price_max == hi;
                            li { a href=(f.href(|x| if on { x.price_min.clear(); x.price_max.clear(); } else { x.price_min = lo.clone(); x.price_max = hi.clone(); }))
                                aria-current=[on.then_some("true")] {
                                @if on { "✓ " } (c.value) " (" (c.count) ")" } }
                        }
                    }
                }
            }
            section id="results" aria-labelledby="results-title" {
                h2 id="results-title" { (ctx.t("结果", "Results")) }
                p id="result-count" role="status" {
                    (out.total) " " (ctx.t("个结果", if out.total == 1 { "result" } else { "results" }))
                }
                (cards(&ctx, &out))
                nav class="pager" aria-label=(ctx.t("翻页", "Pages")) {
                    @if req.cursor.is_some() { a href=(f.href(|_| {})) { (ctx.t("回到第一页", "First page")) } " " }
                    @if let Some(c) = &out.next_cursor {
                        a rel="next" href={ (f.href(|_| {})) "&cursor=" (encode(c)) } { (ctx.t("下一页", "Next page")) }
                    }
                }
            }
        }
    };
    Ok(crate::layout::page(&ctx, ctx.t("搜索", "Search"), body))
}

fn parse_id(ctx: &Ctx, id: &str) -> Result<i64, WebError> {
    id.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| not_found(ctx))
}

fn not_found(ctx: &Ctx) -> WebError {
    WebError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        ctx.t("没有这个商品。", "There is no such item."),
    )
    .lang(ctx.lang)
}

fn app_err(ctx: &Ctx) -> impl Fn(custos_app::AppError) -> WebError + '_ {
    move |e| match e {
        custos_app::AppError::NotFound => not_found(ctx),
        e => WebError::from(e).lang(ctx.lang),
    }
}

#[derive(Debug, Deserialize, Default)]
struct ItemQuery {
    shared: Option<String>,
    download: Option<String>,
    done: Option<String>,
}

/// What the comment form shows again after a refused comment.
struct CommentRetry {
    text: String,
    error: String,
}

async fn item_page(
    State(s): State<AppState>,
    ctx: Ctx,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    query: Result<Query<ItemQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let id = parse_id(&ctx, &id)?;
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let resp = render_item(&s, &ctx, id, &q, None, StatusCode::OK).await?;
    // The page shown again after an action is not another view.
    if q.done.is_none() && q.shared.is_none() && q.download.is_none() {
        log_event(&s, &ctx, ip, "browse", format!("item:{id}")).await;
    }
    Ok(resp)
}

async fn render_item(
    s: &AppState,
    ctx: &Ctx,
    id: i64,
    q: &ItemQuery,
    retry: Option<CommentRetry>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let item = s.catalog.item(id).await.map_err(app_err(ctx))?;
    let comments = s.catalog.comments_on(id).await.map_err(app_err(ctx))?;
    let bookmarked = match &ctx.session {
        Some(sess) => s
            .catalog
            .bookmarks(sess.subject)
            .await
            .map_err(app_err(ctx))?
            .into_iter()
            .any(|b| b.item_id == id),
        None => false,
    };
    let f = &item.fields;
    let t = title(ctx.lang, &f.title_zh, &f.title_en).to_owned();
    let description = title(ctx.lang, &f.description_zh, &f.description_en);
    let images: Vec<_> = item.media.iter().filter(|m| m.kind != "video").collect();
    let videos: Vec<_> = item.media.iter().filter(|m| m.kind == "video").collect();
    let here = format!("/items/{id}");
    let token_ok = |t: &String| {
        t.len() <= 128
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    };
    let shared = q.shared.as_ref().filter(|t| token_ok(t));
    let download = q.download.as_ref().filter(|t| token_ok(t));
    let body = html! {
        article class="item" {
            h1 id="item-title" { (t) }
            p class="price" {
                span class="muted" { (ctx.t("价格：", "Price: ")) }
                strong { (price(f.price_min, f.price_max, &f.currency)) }
                " "
                span class="muted" { (ctx.t("（对所有人相同）", "(the same for everyone)")) }
            }
            p {
                span class="badge" { (category_label(ctx, &f.category)) } " "
                @for tag in &f.tags {
                    a class="badge" href={ "/search?tags=" (encode(tag)) } { "#" (tag) } " "
                }
            }
            @if !item.media.is_empty() {
                section id="gallery" aria-label=(ctx.t("图片和视频", "Pictures and videos")) class="gallery" {
                    @for (i, m) in images.iter().enumerate() {
                        figure {
                            img src={ "/api/v1/media/" (m.id) } alt={ (t) " — " (ctx.t("图片", "picture")) " " (i + 1) }
                                width=[m.width] height=[m.height] loading="lazy";
                        }
                    }
                    @for (i, m) in videos.iter().enumerate() {
                        figure {
                            video controls preload="metadata" src={ "/api/v1/media/" (m.id) }
                                aria-label={ (t) " — " (ctx.t("视频", "video")) " " (i + 1) } {
                                a href={ "/api/v1/media/" (m.id) } { (ctx.t("下载视频", "Download the video")) }
                            }
                        }
                    }
                }
            }
            section class="description" {
                h2 { (ctx.t("介绍", "About this item")) }
                @for para in description.split('\n').filter(|p| !p.trim().is_empty()) {
                    p { (para) }
                }
            }
            section class="item-actions" aria-labelledby="actions-title" {
                h2 id="actions-title" { (ctx.t("收藏、下载与分享", "Keep, download and share")) }
                @if ctx.signed_in() {
                    @if let Some(done) = q.done.as_deref() {
                        p class="notice" role="status" {
                            @match done {
                                "bookmarked" => (ctx.t("已收藏。", "Bookmarked.")),
                                "unbookmarked" => (ctx.t("已取消收藏。", "Bookmark removed.")),
                                "commented" => (ctx.t("评论已发布。", "Your comment is published.")),
                                _ => (ctx.t("完成。", "Done.")),
                            }
                        }
                    }
                    div class="action-row" {
                        form method="post" action={ (here) "/bookmark" } {
                            (csrf_input(ctx))
                            @if bookmarked {
                                input type="hidden" name="action" value="remove";
                                span id="bookmarked" class="badge" { "✓ " (ctx.t("已收藏", "Bookmarked")) } " "
                                button id="bookmark-button" type="submit" class="secondary" aria-pressed="true" {
                                    (ctx.t("已收藏 · 取消收藏", "Bookmarked · remove"))
                                }
                            } @else {
                                input type="hidden" name="action" value="add";
                                button id="bookmark-button" type="submit" aria-pressed="false" { (ctx.t("收藏", "Bookmark")) }
                            }
                        }
                        @if !item.media.is_empty() {
                            form method="post" action={ (here) "/download" } {
                                (csrf_input(ctx))
                                @if item.media.len() > 1 {
                                    label for="download-media" { (ctx.t("要下载的文件", "File to download")) }
                                    select id="download-media" name="media_id" {
                                        @for (i, m) in item.media.iter().enumerate() {
                                            option value=(m.id) { (media_label(ctx, &m.kind)) " " (i + 1) }
                                        }
                                    }
                                } @else {
                                    input type="hidden" name="media_id" value=(item.media[0].id);
                                }
                                button id="download-button" type="submit" { (ctx.t("下载", "Download")) }
                            }
                        }
                        form method="post" action={ (here) "/share" } {
                            (csrf_input(ctx))
                            button id="share-button" type="submit" { (ctx.t("生成分享链接", "Get a share link")) }
                        }
                    }
                    @if let Some(tok) = download {
                        p class="notice" role="status" {
                            (ctx.t("下载链接（15 分钟内有效）：", "Download link (works for 15 minutes): "))
                            a id="download-link" href={ "/api/v1/downloads/" (tok) } download { (ctx.t("下载文件", "Download the file")) }
                        }
                    }
                    @if let Some(tok) = shared {
                        p class="notice" role="status" {
                            (ctx.t("分享链接（可在隐私中心撤销）：", "Share link (you can revoke it in the privacy center): "))
                            a id="share-link" href={ "/shares/" (tok) } { "/shares/" (tok) }
                        }
                    }
                } @else {
                    p {
                        a id="signin-to-act" href={ "/signin?next=" (encode(&here)) } {
                            (ctx.t("登录后可收藏、下载、分享和评论", "Sign in to bookmark, download, share or comment"))
                        }
                    }
                }
            }
            section id="comments" class="comments" aria-labelledby="comments-title" {
                h2 id="comments-title" { (ctx.t("评论", "Comments")) " (" (comments.len()) ")" }
                @if comments.is_empty() {
                    p class="muted" { (ctx.t("还没有评论。", "No comments yet.")) }
                } @else {
                    ul class="comment-list" {
                        @for c in &comments {
                            li class="comment" {
                                p { (c.body) }
                                p class="muted" { time datetime=(c.created_at) { (c.created_at.get(..10).unwrap_or(&c.created_at)) } }
                            }
                        }
                    }
                }
                @if ctx.signed_in() {
                    form id="comment-form" method="post" action={ (here) "/comment" } {
                        (csrf_input(ctx))
                        @if let Some(r) = &retry {
                            p id="comment-error" class="error" role="alert" { "⚠ " (r.error) }
                        }
                        label for="comment-text" { (ctx.t("写评论", "Write a comment")) }
                        textarea id="comment-text" name="text" rows="4" maxlength=(MAX_COMMENT_CHARS) required
                            aria-describedby="comment-attest-help" {
                            @if let Some(r) = &retry { (r.text) }
                        }
                        div class="switch-row" {
                            input id="comment-attest" name="attest" type="checkbox" value="1";
                            label for="comment-attest" {
                                (ctx.t("我确认有权分享评论中提到的他人信息（如 @某人、电话、姓名）。", "I confirm I may share what this comment says about other people (an @mention, a phone number, a name)."))
                            }
                        }
                        p id="comment-attest-help" class="muted" {
                            (ctx.t("提到他人的评论需要勾选此项；评论会公开显示，但不显示您的账号信息。", "A comment that mentions someone needs this box. Comments are public but show nothing about your account."))
                        }
                        button id="comment-submit" type="submit" { (ctx.t("发布评论", "Post the comment")) }
                    }
                }
            }
        }
    };
    Ok(crate::layout::page_with_status(ctx, status, &t, body))
}

/// The item a signed-in action on `/items/{id}` is about, that page, and the caller's
/// session: a signed-out caller is sent to sign in and back to the page.
fn item_action<'c>(ctx: &'c Ctx, id: &str) -> Result<(i64, String, &'c AuthSession), WebError> {
    let id = parse_id(ctx, id)?;
    let here = format!("/items/{id}");
    let sess = ctx
        .session
        .as_ref()
        .ok_or_else(|| WebError::to_sign_in(&here))?;
    Ok((id, here, sess))
}

/// The signed-in caller's gate context.
async fn gate(
    s: &AppState,
    ctx: &Ctx,
    sess: &AuthSession,
) -> Result<GateContext<'static>, WebError> {
    s.identity
        .gate_context(sess.subject)
        .await
        .map_err(app_err(ctx))
}

fn back_to(location: String) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

#[derive(Debug, Deserialize)]
struct BookmarkForm {
    action: Option<String>,
}

async fn bookmark(
    State(s): State<AppState>,
    ctx: Ctx,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    WebForm(form): WebForm<BookmarkForm>,
) -> Result<Response, WebError> {
    let (id, here, sess) = item_action(&ctx, &id)?;
    let gctx = gate(&s, &ctx, sess).await?;
    if form.action.as_deref() == Some("remove") {
        let found = s
            .catalog
            .bookmarks(sess.subject)
            .await
            .map_err(app_err(&ctx))?
            .into_iter()
            .find(|b| b.item_id == id);
        if let Some(b) = found {
            s.catalog
                .remove(sess.subject, Kind::Bookmark, b.id)
                .await
                .map_err(app_err(&ctx))?;
        }
        return Ok(back_to(format!("{here}?done=unbookmarked")));
    }
    s.catalog
        .bookmark(sess.subject, &gctx, id, None)
        .await
        .map_err(app_err(&ctx))?;
    log_event(&s, &ctx, ip, "bookmark", format!("item:{id}")).await;
    Ok(back_to(format!("{here}?done=bookmarked")))
}

#[derive(Debug, Deserialize)]
struct DownloadForm {
    media_id: String,
}

async fn download(
    State(s): State<AppState>,
    ctx: Ctx,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    WebForm(form): WebForm<DownloadForm>,
) -> Result<Response, WebError> {
    let (id, here, sess) = item_action(&ctx, &id)?;
    let media_id: i64 = form.media_id.parse().map_err(|_| not_found(&ctx))?;
    let item = s.catalog.item(id).await.map_err(app_err(&ctx))?;
    if !item.media.iter().any(|m| m.id == media_id) {
        return Err(not_found(&ctx));
    }
    let gctx = gate(&s, &ctx, sess).await?;
    let link = s
        .catalog
        .download(sess.subject, &gctx, media_id)
        .await
        .map_err(app_err(&ctx))?;
    log_event(&s, &ctx, ip, "download", format!("item:{id}")).await;
    Ok(back_to(format!("{here}?download={}", encode(&link.token))))
}

async fn share(
    State(s): State<AppState>,
    ctx: Ctx,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    WebForm(_form): WebForm<Empty>,
) -> Result<Response, WebError> {
    let (id, here, sess) = item_action(&ctx, &id)?;
    let gctx = gate(&s, &ctx, sess).await?;
    let (_, token) = s
        .catalog
        .share(sess.subject, &gctx, id)
        .await
        .map_err(app_err(&ctx))?;
    log_event(&s, &ctx, ip, "share", format!("item:{id}")).await;
    Ok(back_to(format!("{here}?shared={}", encode(&token))))
}

#[derive(Debug, Deserialize)]
struct CommentForm {
    text: String,
    attest: Option<String>,
}

async fn comment(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    WebForm(form): WebForm<CommentForm>,
) -> Result<Response, WebError> {
    let (id, here, sess) = item_action(&ctx, &id)?;
    let gctx = gate(&s, &ctx, sess).await?;
    let attest = form.attest.is_some_and(|v| !v.is_empty());
    match s
        .catalog
        .comment(sess.subject, &gctx, id, &form.text, attest)
        .await
    {
        Ok(_) => Ok(back_to(format!("{here}?done=commented#comments"))),
        Err(e) => {
            let err = app_err(&ctx)(e);
            let error = match err.code.as_str() {
                "attestation_required" => ctx.t(
                    "这条评论似乎提到了其他人。请确认您有权分享，并勾选下面的确认框。",
                    "This comment seems to mention someone else. Confirm you may share it by ticking the box below.",
                ).to_owned(),
                "invalid_comment" => ctx.t(
                    "评论需为 1 到 2000 个字。",
                    "A comment needs 1 to 2,000 characters.",
                ).to_owned(),
                _ => return Err(err),
            };
            let text: String = form.text.chars().take(MAX_COMMENT_CHARS).collect();
            render_item(
                &s,
                &ctx,
                id,
                &ItemQuery::default(),
                Some(CommentRetry { text, error }),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// The page end of a share link: the item it points to.
async fn open_share(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let item = s.catalog.open_share(&token).await.map_err(|e| match e {
        custos_app::AppError::NotFound => WebError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            ctx.t(
                "这个分享链接不存在或已被撤销。",
                "This share link does not exist or was revoked.",
            ),
        )
        .lang(ctx.lang),
        e => WebError::from(e).lang(ctx.lang),
    })?;
    Ok(back_to(format!("/items/{}", item.id)))
}

/// A category's name in the page's language: the demo catalogue's categories have both;
/// any other category (the operator's own data) is shown as stored.
fn category_label<'a>(ctx: &Ctx, key: &'a str) -> std::borrow::Cow<'a, str> {
    let pair = match key {
        "beauty" => Some(("美妆", "Beauty")),
        "clothing" => Some(("服装", "Clothing")),
        "electronics" => Some(("数码电子", "Electronics")),
        "food" => Some(("食品", "Food")),
        "home" => Some(("家居", "Home")),
        "shoes" => Some(("鞋靴", "Shoes")),
        "sports" => Some(("运动", "Sports")),
        _ => None,
    };
    match pair {
        Some((zh, en)) => std::borrow::Cow::Owned(ctx.t(zh, en).to_owned()),
        None => std::borrow::Cow::Borrowed(key),
    }
}
