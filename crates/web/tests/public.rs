//! Public pages: browsing and searching without any identifier (P5), the item page and its
//! actions (P13, P14), the first-visit consent dialog with its quiet period and receipts
//! (P1, P3, L2), service-log events through the gate (P10) and the personalized label (L5).

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use base64::Engine;
use common::{SignedInUser, WebApp};
use custos_core::{ConsentMethod, Decision, SubjectId};
use custos_policy::{LegalBasis, Tier};

const ANON: &str = "__Host-custos-anon";
const ASKED: &str = "custos-consent-asked";

/// Optional purposes of the bundled declaration: (id, anonymous, separate consent).
fn optional(w: &WebApp) -> Vec<(String, bool, bool)> {
    let regime = w.app.kernel.gate.regime();
    regime
        .current()
        .purposes()
        .iter()
        .filter(|p| p.tier == Tier::Additional && p.basis == LegalBasis::Consent)
        .map(|p| (p.id.clone(), p.anonymous, p.separate_consent))
        .collect()
}

fn item_ids(body: &str) -> Vec<i64> {
    body.split("href=\"/items/")
        .skip(1)
        .filter_map(|s| s.split('"').next()?.parse().ok())
        .collect()
}

fn result_count(body: &str) -> u64 {
    let after = body
        .split("id=\"result-count\"")
        .nth(1)
        .expect("result count");
    let text = after.split('>').nth(1).unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

fn query_param(location: &str, key: &str) -> Vec<String> {
    let q = location.split_once('?').map(|x| x.1).unwrap_or("");
    form_urlencoded::parse(q.as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// The subject sealed in the receipt-link token of a redirect after a decision.
fn link_subject(w: &WebApp, location: &str) -> SubjectId {
    let id = &query_param(location, "receipt")[0];
    let token = &query_param(location, "rt")[0];
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .unwrap();
    let plain = w
        .app
        .kernel
        .ring
        .unwrap_secret(&format!("web-receipt-link:{id}"), &sealed)
        .unwrap();
    String::from_utf8(plain).unwrap().parse().unwrap()
}

fn cookie_of(r: &common::Resp, name: &str) -> Option<String> {
    r.cookies()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn png() -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
        .unwrap()
}

fn mp4() -> Vec<u8> {
    let mut v = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom".to_vec();
    v.resize(5_000, 7);
    v
}

async fn signed_in(w: &WebApp, phone: &str) -> SignedInUser {
    w.sign_in_user(phone).await
}

#[tokio::test]
async fn anonymous_visitors_browse_search_and_read_items_without_any_cookie() {
    let w = common::spawn().await;
    let home = w.get("/", &[]).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(
        home.headers.get(header::SET_COOKIE).is_none(),
        "home set a cookie"
    );
    assert!(home.body.contains("id=\"feed\""));
    assert_eq!(home.body.matches("class=\"card item-card\"").count(), 20);
    assert!(home.body.contains("class=\"item-link\""));
    assert!(!home.body.contains("id=\"personalized-label\""));
    let ids = item_ids(&home.body);
    assert!(!ids.is_empty());

    let search = w.get("/search?q=", &[]).await;
    assert_eq!(search.status, StatusCode::OK);
    assert!(search.headers.get(header::SET_COOKIE).is_none());
    assert!(search.body.contains("id=\"search-form\""));
    assert_eq!(result_count(&search.body), common::DEMO_ITEMS as u64);

    let item = w.get(&format!("/items/{}", ids[0]), &[]).await;
    assert_eq!(item.status, StatusCode::OK);
    assert!(item.headers.get(header::SET_COOKIE).is_none());
    assert!(item.body.contains("id=\"item-title\""));
    // Actions need an account: a sign-in link that comes back here.
    assert!(item
        .body
        .contains(&format!("/signin?next=%2Fitems%2F{}", ids[0])));
    assert!(!item.body.contains("id=\"comment-form\""));

    // Paging through the feed.
    let next = home.body.split("rel=\"next\" href=\"").nth(1).unwrap();
    let next = next.split('"').next().unwrap().replace("&amp;", "&");
    let page2 = w.get(&next, &[]).await;
    assert_eq!(page2.status, StatusCode::OK);
    assert_eq!(
        page2.body.matches("class=\"card item-card\"").count(),
        common::DEMO_ITEMS - 20
    );

    assert_eq!(
        w.get("/items/999999", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(w.get("/items/abc", &[]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        w.get("/?cursor=garbage", &[]).await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn pages_render_in_chinese_and_english() {
    let w = common::spawn().await;
    let zh = w.get("/?lang=zh", &[]).await;
    assert!(zh.body.contains("lang=\"zh-CN\""));
    assert!(zh.body.contains("发现好物"));
    assert!(zh.body.contains("全部拒绝"));
    let en = w.get("/?lang=en", &[]).await;
    assert!(en.body.contains("lang=\"en\""));
    assert!(en.body.contains("Discover"));
    assert!(en.body.contains("Refuse all"));
    let zh = w.get("/search?lang=zh", &[]).await;
    assert!(zh.body.contains("个结果"));
    let c = w.get("/contact?lang=zh", &[]).await;
    assert_eq!(c.status, StatusCode::OK);
    assert!(c.body.contains("好物视界科技有限公司"));
    let c = w.get("/contact", &[]).await;
    assert!(c.body.contains("Vista Finds Technology Co., Ltd."));
    assert!(c.body.contains("mailto:privacy@vistafinds.example"));
}

#[tokio::test]
async fn search_shows_facet_counts_that_filters_reproduce_and_bad_input_is_a_400() {
    let w = common::spawn().await;
    let all = w.get("/search", &[]).await;
    assert!(all.body.contains("id=\"facets\""));
    // Follow the first category facet: its count is the number of results.
    let facet = all
        .body
        .split("/search?category=")
        .nth(1)
        .expect("a category facet");
    let value = facet.split('"').next().unwrap().to_owned();
    let count: u64 = facet
        .split(" (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let r = w.get(&format!("/search?category={value}"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(result_count(&r.body), count);
    assert!(count < common::DEMO_ITEMS as u64);
    assert!(
        r.body.contains("aria-current=\"true\""),
        "the chosen facet is marked"
    );

    // Empty form fields mean "any".
    let r = w
        .get(
            "/search?q=&category=&tags=&price_min=&price_max=&media=&sort=",
            &[],
        )
        .await;
    assert_eq!(result_count(&r.body), common::DEMO_ITEMS as u64);
    let r = w.get("/search?price_min=0&price_max=100000", &[]).await;
    assert_eq!(r.status, StatusCode::OK);

    for bad in [
        "/search?price_min=abc",
        "/search?price_max=1.234",
        "/search?media=audio",
        "/search?sort=cheapest",
        "/search?cursor=not-a-cursor",
        "/search?q=a&q=b",
    ] {
        let r = w.get(bad, &[]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.body.contains("<main"), "{bad} renders a page");
    }
    let long = "x".repeat(300);
    assert_eq!(
        w.get(&format!("/search?q={long}"), &[]).await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn item_page_shows_gallery_and_video_player() {
    let w = common::spawn().await;
    let home = w.get("/", &[]).await;
    let id = item_ids(&home.body)[0];
    let img = w.app.catalog.add_media(id, png()).await.unwrap();
    let vid = w.app.catalog.add_media(id, mp4()).await.unwrap();
    let r = w.get(&format!("/items/{id}"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("id=\"gallery\""));
    assert!(r
        .body
        .contains(&format!("<img src=\"/api/v1/media/{}\"", img.id)));
    assert!(r.body.contains(&format!("/api/v1/media/{}\"", vid.id)));
    assert!(r.body.contains("<video controls"));
    // The gallery's sources are served.
    assert_eq!(
        w.get(&format!("/api/v1/media/{}", img.id), &[])
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn first_visit_dialog_lists_every_optional_purpose_unticked_with_equal_buttons() {
    let w = common::spawn().await;
    let r = w.get("/", &[]).await;
    let b = &r.body;
    assert!(b.contains("id=\"consent-dialog\""));
    assert!(b.contains("role=\"dialog\""));
    assert!(b.contains("aria-modal=\"true\""));
    assert!(b.contains("aria-labelledby=\"consent-title\""));
    assert!(b.contains("data-autofocus"));
    assert!(b.contains("action=\"/consent\""));
    let purposes = optional(&w);
    assert!(purposes.len() >= 5);
    for (id, anonymous, _) in &purposes {
        let tag = b
            .split(&format!("id=\"consent-p-{id}\""))
            .nth(1)
            .unwrap_or_else(|| panic!("no switch for {id}"));
        let tag = tag.split('>').next().unwrap();
        assert!(tag.contains(&format!("value=\"{id}\"")));
        assert!(tag.contains("name=\"purpose\""));
        assert!(!tag.contains("checked"), "{id} is pre-ticked");
        // An anonymous visitor cannot decide account-only purposes.
        assert_eq!(tag.contains("disabled"), !anonymous, "{id}");
    }
    let button = |id: &str| {
        let s = b.split(&format!("id=\"{id}\"")).nth(1).unwrap();
        let before = b.split(&format!("id=\"{id}\"")).next().unwrap();
        let open = &before[before.rfind('<').unwrap()..];
        format!("{open}{}", s.split('>').next().unwrap())
    };
    let accept = button("consent-accept-all");
    let refuse = button("consent-refuse-all");
    assert!(accept.starts_with("<button") && refuse.starts_with("<button"));
    assert!(accept.contains("class=\"consent-choice\""));
    assert!(refuse.contains("class=\"consent-choice\""));
    assert!(b.contains("id=\"consent-save\""));
    // Adjacent: nothing but the accept button's text between them.
    let between = b.split("id=\"consent-accept-all\"").nth(1).unwrap();
    let between = between.split("id=\"consent-refuse-all\"").next().unwrap();
    assert_eq!(between.matches('<').count(), 2, "{between}");
    // Not on other pages (sign-in, policy).
    assert!(!w.get("/contact", &[]).await.body.contains("consent-dialog"));
}

#[tokio::test]
async fn anonymous_refuse_all_records_refusals_and_is_not_asked_again_within_the_quiet_period() {
    let w = common::spawn().await;
    let r = w
        .post_form(
            "/consent",
            &[],
            &[("choice", "refuse_all"), ("next", "/search?q=tea")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // No identifier: nothing needs one after a refusal.
    assert!(cookie_of(&r, ANON).is_none());
    let asked = cookie_of(&r, ASKED).expect("quiet-period cookie");
    assert!(asked.parse::<i64>().is_ok(), "holds only a time");
    let set = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(set.contains("Max-Age=2592000"), "{set}");
    let loc = r.location().unwrap().to_owned();
    assert!(loc.starts_with("/search?q=tea&receipt="), "{loc}");
    let subject = link_subject(&w, &loc);
    assert!(
        !loc.contains(&subject.to_string()),
        "the subject id is in the URL: {loc}"
    );

    // The ledger has a refusal for every purpose an anonymous visitor may decide.
    let history = w.app.kernel.consent_history(subject).await.unwrap();
    let anon_purposes: Vec<String> = optional(&w)
        .into_iter()
        .filter(|p| p.1)
        .map(|p| p.0)
        .collect();
    assert_eq!(history.len(), anon_purposes.len());
    for rec in &history {
        assert_eq!(rec.decision, Decision::Refused);
        assert_eq!(rec.method, ConsentMethod::Dialog);
        assert!(anon_purposes.contains(&rec.purpose));
    }

    // Back on the page: no dialog, a notice with the receipt link.
    let page = w.get(&loc, &[(ASKED, &asked)]).await;
    assert!(!page.body.contains("id=\"consent-dialog\""));
    let link = page
        .body
        .split("id=\"receipt-link\" class=\"receipt-link\" href=\"")
        .nth(1)
        .expect("receipt link")
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let receipt = w.get(&link, &[]).await;
    assert_eq!(receipt.status, StatusCode::OK);
    assert!(receipt.body.contains("data-decision=\"refused\""));
    assert!(receipt
        .body
        .contains("/.well-known/custos/receipt-keys.json"));
    assert!(receipt.body.contains("id=\"receipt-jws\""));
    // The link's tag is what makes it readable: tampered or missing, it is a 404.
    let id = query_param(&loc, "receipt")[0].clone();
    assert_eq!(
        w.get(&format!("/receipts/{id}"), &[]).await.status,
        StatusCode::NOT_FOUND
    );
    let forged = format!("/receipts/{id}?rt={}", "A".repeat(80));
    assert_eq!(w.get(&forged, &[]).await.status, StatusCode::NOT_FOUND);
    let old_style = format!("/receipts/{id}?rs={subject}&rk={}", "0".repeat(32));
    assert_eq!(w.get(&old_style, &[]).await.status, StatusCode::NOT_FOUND);
    // A genuine token opens its own receipt only.
    let token = query_param(&loc, "rt")[0].clone();
    let other = w
        .post_form("/consent", &[], &[("choice", "refuse_all"), ("next", "/")])
        .await;
    let other_id = query_param(other.location().unwrap(), "receipt")[0].clone();
    assert_eq!(
        w.get(&format!("/receipts/{other_id}?rt={token}"), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.get(&format!("/receipts/{id}?rt={}", "%FF".repeat(300)), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.get("/receipts/nope", &[]).await.status,
        StatusCode::NOT_FOUND
    );

    // Within the quiet period, no prompt; after it, the prompt again.
    assert!(!w
        .get("/", &[(ASKED, &asked)])
        .await
        .body
        .contains("id=\"consent-dialog\""));
    w.clock.advance(time::Duration::days(29));
    assert!(!w
        .get("/", &[(ASKED, &asked)])
        .await
        .body
        .contains("id=\"consent-dialog\""));
    w.clock.advance(time::Duration::days(2));
    assert!(w
        .get("/", &[(ASKED, &asked)])
        .await
        .body
        .contains("id=\"consent-dialog\""));
}

#[tokio::test]
async fn anonymous_accept_all_decides_only_anonymous_purposes_and_issues_the_identifier() {
    let w = common::spawn().await;
    let r = w
        .post_form("/consent", &[], &[("choice", "accept_all"), ("next", "/")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let token = cookie_of(&r, ANON).expect("anonymous identifier issued");
    let subject = w
        .app
        .kernel
        .anonymous_subject(&token)
        .await
        .unwrap()
        .unwrap();
    let history = w.app.kernel.consent_history(subject).await.unwrap();
    let expected: Vec<String> = optional(&w)
        .into_iter()
        .filter(|(_, anon, separate)| *anon && !*separate)
        .map(|p| p.0)
        .collect();
    assert!(!expected.is_empty());
    let mut got: Vec<String> = history.iter().map(|r| r.purpose.clone()).collect();
    got.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(got, want);
    assert!(history.iter().all(|r| r.decision == Decision::Given));
    // With the identifier the subject has decided: no dialog, and its receipt opens.
    let loc = r.location().unwrap().to_owned();
    assert!(query_param(&loc, "rt").is_empty());
    let page = w.get(&loc, &[(ANON, &token)]).await;
    assert!(!page.body.contains("id=\"consent-dialog\""));
    let id = &query_param(&loc, "receipt")[0];
    let receipt = w.get(&format!("/receipts/{id}"), &[(ANON, &token)]).await;
    assert_eq!(receipt.status, StatusCode::OK);
    assert!(receipt.body.contains("data-decision=\"given\""));

    // An account-only purpose cannot be ticked anonymously.
    let r = w
        .post_form(
            "/consent",
            &[],
            &[("choice", "save"), ("purpose", "personalized_feed")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w.post_form("/consent", &[], &[("choice", "maybe")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = w
        .post_form(
            "/consent",
            &[],
            &[("choice", "save"), ("purpose", "no_such")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn signed_in_refusal_is_in_the_ledger_and_receipts_are_only_their_owners() {
    let w = common::spawn().await;
    let u = signed_in(&w, "+8613800000001").await;
    let other = signed_in(&w, "+8613800000002").await;
    let page = w.get("/", &[u.cookie()]).await;
    assert!(
        page.body.contains("id=\"consent-dialog\""),
        "a new account is asked"
    );
    // Without the CSRF token the decision is refused.
    let r = w
        .post_form("/consent", &[u.cookie()], &[("choice", "refuse_all")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w
        .post_form(
            "/consent",
            &[u.cookie()],
            &[("_csrf", &u.csrf), ("choice", "refuse_all"), ("next", "/")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(cookie_of(&r, ANON).is_none());
    let history = w.app.kernel.consent_history(u.subject).await.unwrap();
    let all: Vec<String> = optional(&w).into_iter().map(|p| p.0).collect();
    assert_eq!(history.len(), all.len());
    assert!(history.iter().all(|r| r.decision == Decision::Refused));
    // The ledger alone stops the prompt (no quiet-period cookie sent).
    assert!(!w
        .get("/", &[u.cookie()])
        .await
        .body
        .contains("id=\"consent-dialog\""));
    let loc = r.location().unwrap();
    let id = &query_param(loc, "receipt")[0];
    let mine = w.get(&format!("/receipts/{id}"), &[u.cookie()]).await;
    assert_eq!(mine.status, StatusCode::OK);
    assert!(mine.body.contains(id.as_str()));
    let theirs = w.get(&format!("/receipts/{id}"), &[other.cookie()]).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!(
        w.get(&format!("/receipts/{id}"), &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn signed_in_users_bookmark_share_download_and_comment_with_the_attestation() {
    let w = common::spawn().await;
    let u = signed_in(&w, "+8613800000003").await;
    let id = item_ids(&w.get("/", &[]).await.body)[0];
    let media = w.app.catalog.add_media(id, png()).await.unwrap();
    let item = format!("/items/{id}");
    let page = w.get(&item, &[u.cookie()]).await;
    for sel in [
        "id=\"bookmark-button\"",
        "id=\"download-button\"",
        "id=\"share-button\"",
        "id=\"comment-form\"",
        "id=\"comment-text\"",
        "id=\"comment-attest\"",
        "id=\"comment-submit\"",
    ] {
        assert!(page.body.contains(sel), "{sel}");
    }
    assert!(!page.body.contains("id=\"bookmarked\""));

    // Signed out: the action sends to sign-in and back.
    let r = w
        .post_form(&format!("{item}/bookmark"), &[], &[("action", "add")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.location(),
        Some(format!("/signin?next=%2Fitems%2F{id}").as_str())
    );
    // Signed in without the CSRF token: refused.
    let r = w
        .post_form(
            &format!("{item}/bookmark"),
            &[u.cookie()],
            &[("action", "add")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // From another site: refused.
    let body = format!("_csrf={}&action=add", u.csrf);
    let req = Request::post(format!("{item}/bookmark"))
        .header(header::COOKIE, format!("__Host-custos-session={}", u.token))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "cross-site")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(w.request(req).await.status, StatusCode::FORBIDDEN);
    assert!(w.app.catalog.bookmarks(u.subject).await.unwrap().is_empty());

    let r = w
        .post_form(
            &format!("{item}/bookmark"),
            &[u.cookie()],
            &[("_csrf", &u.csrf), ("action", "add")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().unwrap().starts_with(&item));
    let page = w.get(r.location().unwrap(), &[u.cookie()]).await;
    assert!(page.body.contains("id=\"bookmarked\""));
    assert_eq!(w.app.catalog.bookmarks(u.subject).await.unwrap().len(), 1);
    // Again: removes it.
    let r = w
        .post_form(
            &format!("{item}/bookmark"),
            &[u.cookie()],
            &[("_csrf", &u.csrf), ("action", "remove")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(w.app.catalog.bookmarks(u.subject).await.unwrap().is_empty());

    // Share: the link is shown and opens the item.
    let r = w
        .post_form(
            &format!("{item}/share"),
            &[u.cookie()],
            &[("_csrf", &u.csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = w.get(r.location().unwrap(), &[u.cookie()]).await;
    let link = page.body.split("id=\"share-link\" href=\"").nth(1).unwrap();
    let link = link.split('"').next().unwrap();
    let opened = w.get(link, &[]).await;
    assert_eq!(opened.status, StatusCode::SEE_OTHER);
    assert_eq!(opened.location(), Some(item.as_str()));

    // Download: a signed link to the file.
    let r = w
        .post_form(
            &format!("{item}/download"),
            &[u.cookie()],
            &[("_csrf", &u.csrf), ("media_id", &media.id.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = w.get(r.location().unwrap(), &[u.cookie()]).await;
    let link = page
        .body
        .split("id=\"download-link\" href=\"")
        .nth(1)
        .unwrap();
    let file = w.get(link.split('"').next().unwrap(), &[]).await;
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(w.app.catalog.downloads(u.subject).await.unwrap().len(), 1);

    // A comment naming someone needs the attestation (P14).
    let text = "Bought this with @alice, she loved it";
    let r = w
        .post_form(
            &format!("{item}/comment"),
            &[u.cookie()],
            &[("_csrf", &u.csrf), ("text", text)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("id=\"comment-error\""));
    assert!(
        r.body.contains("Bought this with @alice"),
        "the text is kept"
    );
    assert!(w
        .app
        .catalog
        .my_comments(u.subject)
        .await
        .unwrap()
        .is_empty());
    let r = w
        .post_form(
            &format!("{item}/comment"),
            &[u.cookie()],
            &[("_csrf", &u.csrf), ("text", text), ("attest", "1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let mine = w.app.catalog.my_comments(u.subject).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert!(!mine[0].attested.is_empty(), "the attestation is recorded");
    let page = w.get(&item, &[]).await;
    assert!(page.body.contains("Bought this with @alice"));
    // A plain comment needs no attestation.
    let r = w
        .post_form(
            &format!("{item}/comment"),
            &[u.cookie()],
            &[("_csrf", &u.csrf), ("text", "Nice colour")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn personalized_label_follows_the_consent_and_page_views_go_through_the_gate() {
    let w = common::spawn().await;
    let u = signed_in(&w, "+8613800000004").await;
    let ids = item_ids(&w.get("/", &[]).await.body);

    // Without consent: plain feed, and views are not kept (P10).
    let _ = w.get(&format!("/items/{}", ids[3]), &[u.cookie()]).await;
    let _ = w.get("/search?q=tea", &[u.cookie()]).await;
    assert!(w.app.signals.events_of(u.subject).await.unwrap().is_empty());
    assert!(!w
        .get("/", &[u.cookie()])
        .await
        .body
        .contains("id=\"personalized-label\""));

    let r = w
        .post_form(
            "/consent",
            &[u.cookie()],
            &[
                ("_csrf", &u.csrf),
                ("choice", "save"),
                ("purpose", "personalized_feed"),
                ("purpose", "service_logs_analytics"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    for id in &ids[..3] {
        assert_eq!(
            w.get(&format!("/items/{id}"), &[u.cookie()]).await.status,
            StatusCode::OK
        );
    }
    let _ = w.get("/search?q=tea", &[u.cookie()]).await;
    let events = w.app.signals.events_of(u.subject).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == "browse").count(), 3);
    assert_eq!(events.iter().filter(|e| e.kind == "search").count(), 1);
    assert!(
        !w.app.signals.traits(u.subject).await.unwrap().is_empty(),
        "views shape the profile"
    );

    let home = w.get("/", &[u.cookie()]).await;
    assert!(home.body.contains("id=\"personalized-label\""));
    assert!(home.body.contains("href=\"/me/consents\""));
    let search = w.get("/search?q=a", &[u.cookie()]).await;
    assert!(search.body.contains("id=\"personalized-label\""));
    // Anonymous visitors never get a personalized answer.
    assert!(!w
        .get("/", &[])
        .await
        .body
        .contains("id=\"personalized-label\""));

    // Withdrawing (as the privacy center does) removes the label on the next page.
    w.app
        .kernel
        .withdraw(
            u.subject,
            false,
            "personalized_feed",
            ConsentMethod::Settings,
        )
        .await
        .unwrap();
    assert!(!w
        .get("/", &[u.cookie()])
        .await
        .body
        .contains("id=\"personalized-label\""));
}

#[tokio::test]
async fn accept_all_with_global_privacy_control_leaves_personalized_ads_out() {
    let w = common::spawn().await;
    let req = Request::post("/consent")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "same-origin")
        .header("sec-gpc", "1")
        .body(Body::from("choice=accept_all&next=%2F"))
        .unwrap();
    let r = w.request(req).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let token = cookie_of(&r, ANON).expect("other anonymous purposes still given");
    let subject = w
        .app
        .kernel
        .anonymous_subject(&token)
        .await
        .unwrap()
        .unwrap();
    let history = w.app.kernel.consent_history(subject).await.unwrap();
    assert!(!history.is_empty());
    assert!(history.iter().all(|r| r.purpose != "personalized_ads"));
}

#[tokio::test]
async fn anonymous_browsing_with_filters_writes_no_row_and_sets_no_identifier() {
    let w = common::spawn().await;
    let ids = item_ids(&w.get("/", &[]).await.body);
    let before = w.row_counts().await;
    assert!(before.iter().any(|(_, t, n)| t.contains("item") && *n > 0));
    let uris = [
        "/".to_owned(),
        "/?lang=zh".to_owned(),
        "/search?q=tea&category=home&tags=a,b&price_min=1&price_max=500&media=image&sort=newest"
            .to_owned(),
        "/search?q=%E8%8C%B6".to_owned(),
        format!("/items/{}", ids[0]),
        format!("/items/{}?shared=abc&download=def&done=x", ids[1]),
        "/contact".to_owned(),
        format!("/receipts/{}", uuid_like()),
        "/shares/no-such-share".to_owned(),
    ];
    for uri in &uris {
        for gpc in [false, true] {
            let mut req = Request::get(uri.as_str()).header(header::ACCEPT_LANGUAGE, "en");
            if gpc {
                req = req.header("sec-gpc", "1");
            }
            let r = w.request(req.body(Body::empty()).unwrap()).await;
            assert!(r.status.as_u16() < 500, "{uri}: {}", r.status);
            assert!(
                r.headers.get(header::SET_COOKIE).is_none(),
                "{uri} set a cookie"
            );
        }
    }
    // The language switch sets its own cookie and nothing that identifies anyone.
    let r = w.get("/lang?to=zh&next=/search", &[]).await;
    let names: Vec<String> = r.cookies().into_iter().map(|c| c.0).collect();
    assert_eq!(names, vec!["custos-lang".to_owned()]);
    assert_eq!(w.row_counts().await, before, "a read wrote rows");
}

fn uuid_like() -> &'static str {
    "6f1c1a54-3b1e-4c55-9b1e-2f7d2c1a9e10"
}

#[tokio::test]
async fn search_refuses_floods_of_parameters_and_tags_with_a_400() {
    let w = common::spawn().await;
    // Thousands of parameters or tags are refused up front (no quadratic work).
    let many: Vec<String> = (0..2_000).map(|i| format!("x{i}=1")).collect();
    let r = w.get(&format!("/search?{}", many.join("&")), &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("<main"));
    let tags: Vec<String> = (0..5_000).map(|i| format!("t{i}")).collect();
    let r = w
        .get(&format!("/search?tags={}", tags.join(",")), &[])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = w
        .get("/search?tags=a&tags=a&tags=b&lang=en&lang=zh", &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "repeated tags and lang are fine");
    for bad in [
        "/search?price_min=-5",
        "/search?price_max=99999999999999999999",
        "/search?sort=newest&sort=newest",
        "/search?cursor=a&cursor=b",
        "/?cursor=a&cursor=b",
    ] {
        assert_eq!(
            w.get(bad, &[]).await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    // Bad UTF-8 in a posted form is not a 500.
    let r = w
        .post_form("/consent", &[], &[("choice", "refuse_all")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let req = Request::post("/consent")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "same-origin")
        .body(Body::from("choice=%FF%FE&next=%C3"))
        .unwrap();
    assert_eq!(w.request(req).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn quiet_period_cookie_holds_only_the_day_of_the_decision() {
    let w = common::spawn().await;
    w.clock.advance(time::Duration::seconds(12_345));
    let now = custos_core::Clock::now_ms(w.clock.as_ref()) / 1000;
    let r = w
        .post_form("/consent", &[], &[("choice", "refuse_all"), ("next", "/")])
        .await;
    let asked: i64 = cookie_of(&r, ASKED).unwrap().parse().unwrap();
    assert_eq!(
        asked % 86_400,
        0,
        "a second-precise time tells visitors apart"
    );
    assert!(asked >= now && asked - now < 86_400, "{asked} vs {now}");
    let set = r
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(ASKED))
        .unwrap()
        .to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    // Still quiet at the end of the period counted from the decision.
    w.clock
        .advance(time::Duration::days(30) - time::Duration::seconds(60));
    let page = w.get("/", &[(ASKED, &asked.to_string())]).await;
    assert!(!page.body.contains("id=\"consent-dialog\""));
}

#[tokio::test]
async fn a_form_acting_for_the_anonymous_identifier_must_come_from_this_site() {
    let w = common::spawn().await;
    let r = w
        .post_form("/consent", &[], &[("choice", "accept_all"), ("next", "/")])
        .await;
    let token = cookie_of(&r, ANON).expect("identifier");
    let subject = w
        .app
        .kernel
        .anonymous_subject(&token)
        .await
        .unwrap()
        .unwrap();
    let before = w.app.kernel.consent_history(subject).await.unwrap().len();
    let post = |headers: &[(&str, &str)], cookie: bool| {
        let mut req = Request::post("/consent")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::HOST, "shop.example");
        if cookie {
            req = req.header(header::COOKIE, format!("{ANON}={token}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(Body::from("choice=refuse_all&next=%2F")).unwrap()
    };
    // No Sec-Fetch-Site, no Origin, no Referer (an old browser, cross-site): refused.
    assert_eq!(
        w.request(post(&[], true)).await.status,
        StatusCode::FORBIDDEN
    );
    // A Referer from another site: refused, with or without the identifier.
    let evil = [("referer", "https://evil.example/page")];
    assert_eq!(
        w.request(post(&evil, true)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.request(post(&evil, false)).await.status,
        StatusCode::FORBIDDEN
    );
    let null = [("origin", "null")];
    assert_eq!(
        w.request(post(&null, true)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.app.kernel.consent_history(subject).await.unwrap().len(),
        before,
        "a refused form changed the ledger"
    );
    // From this site's own page it goes through.
    let ours = [("referer", "https://shop.example/search?q=tea")];
    assert_eq!(
        w.request(post(&ours, true)).await.status,
        StatusCode::SEE_OTHER
    );
    let ours = [("origin", "https://shop.example")];
    assert_eq!(
        w.request(post(&ours, true)).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(w.app.kernel.consent_history(subject).await.unwrap().len() > before);
}

#[tokio::test]
async fn the_dialog_comes_first_for_the_keyboard_and_the_receipt_notice_tops_the_page() {
    let w = common::spawn().await;
    let b = w.get("/", &[]).await.body;
    let dialog = b.find("id=\"consent-dialog\"").expect("dialog");
    for later in ["class=\"skip\"", "<header class=\"site\"", "id=\"main\""] {
        assert!(dialog < b.find(later).unwrap(), "dialog after {later}");
    }
    // The dialog's switches sit in a fieldset with a legend; every switch has a label.
    assert!(b.contains("<fieldset class=\"consent-purposes\"><legend>"));
    for (id, _, _) in optional(&w) {
        assert!(
            b.contains(&format!("<label for=\"consent-p-{id}\">")),
            "{id}"
        );
    }
    let r = w
        .post_form(
            "/consent",
            &[],
            &[("choice", "refuse_all"), ("next", "/\t/evil.example")],
        )
        .await;
    let loc = r.location().unwrap().to_owned();
    assert!(loc.starts_with("/?receipt="), "{loc}");
    let asked = cookie_of(&r, ASKED).unwrap();
    let page = w.get(&loc, &[(ASKED, &asked)]).await.body;
    let notice = page.find("id=\"receipt-link\"").expect("notice");
    assert!(page.find("id=\"main\"").unwrap() < notice);
    assert!(
        notice < page.find("id=\"feed\"").unwrap(),
        "notice under the feed"
    );
}

#[tokio::test]
async fn the_quiet_period_follows_the_configured_days_and_a_bad_setting_is_refused() {
    let w = common::spawn_with(|c| c.web.consent_quiet_days = 7).await;
    let r = w
        .post_form("/consent", &[], &[("choice", "refuse_all"), ("next", "/")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let asked = cookie_of(&r, ASKED).expect("quiet-period cookie");
    let set = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(set.contains(&format!("Max-Age={}", 7 * 86_400)), "{set}");
    w.clock.advance(time::Duration::days(6));
    assert!(!w
        .get("/", &[(ASKED, &asked)])
        .await
        .body
        .contains("id=\"consent-dialog\""));
    w.clock.advance(time::Duration::days(2));
    assert!(w
        .get("/", &[(ASKED, &asked)])
        .await
        .body
        .contains("id=\"consent-dialog\""));

    for days in [0, 366] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = common::config(dir.path());
        cfg.web.consent_quiet_days = days;
        let opened =
            custos_app::App::open(&cfg, std::sync::Arc::new(custos_core::FakeClock::default()))
                .await;
        let Err(err) = opened else {
            panic!("consent_quiet_days = {days} was accepted");
        };
        assert!(err.to_string().contains("consent_quiet_days"), "{err}");
    }
}
