//! The privacy center (`/me`): every page needs sign-in; the data page lists what the user
//! keeps; export needs a fresh code and ends in a download only its owner can open;
//! withdrawing from the consents page reaches the ledger and the very next feed; single
//! items and other sessions can be removed; cancellation needs a fresh code and files a
//! ticket; forms without the CSRF token are refused; both languages render.

mod common;

use axum::http::StatusCode;
use common::{SignedInUser, WebApp};
use custos_app::rights::TicketKind;
use custos_core::{ConsentMethod, Decision};

const PHONE: &str = "+8613912345678";
const OTHER_PHONE: &str = "+8613812345678";
const REAUTH: &str = "__Host-custos-reauth";

fn csrf(u: &SignedInUser) -> (&'static str, &str) {
    ("_csrf", u.csrf.as_str())
}

/// The value of `attr="…"` on the element carrying `marker` (e.g. `id="export-download"`).
fn attr_after(body: &str, marker: &str, attr: &str) -> Option<String> {
    let at = body.find(marker)?;
    let tag_start = body[..at].rfind('<')?;
    let tag_end = at + body[at..].find('>')?;
    let tag = &body[tag_start..tag_end];
    let key = format!("{attr}=\"");
    let v = tag.find(&key)? + key.len();
    let len = tag[v..].find('"')?;
    Some(tag[v..v + len].replace("&amp;", "&"))
}

/// Lets the proof of the sign-in code itself age out of the re-authentication window.
fn age_past_reauth(w: &WebApp) {
    w.clock.advance(time::Duration::minutes(6));
}

/// A query parameter of a redirect's `Location`.
fn query_param(location: &str, name: &str) -> Option<String> {
    let q = location.split_once('?')?.1;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Proves the account's phone again through the pages: `#reauth-send`, then the code.
/// The challenge id travels in an HttpOnly `__Host-` cookie, never in the URL or the page.
async fn reauth(w: &WebApp, u: &SignedInUser, phone: &str, next: &str) {
    let page = w
        .get(&format!("/me/reauth?next={next}"), &[u.cookie()])
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"reauth-send\""));
    let sent = w
        .post_form("/me/reauth/send", &[u.cookie()], &[csrf(u), ("next", next)])
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let loc = sent.location().unwrap().to_owned();
    assert_eq!(
        query_param(&loc, "challenge"),
        None,
        "the challenge id is not in the URL: {loc}"
    );
    let line = set_cookie_line(&sent, REAUTH);
    for attr in ["Path=/", "Secure", "HttpOnly"] {
        assert!(line.contains(attr), "{attr} missing: {line}");
    }
    assert!(!line.contains("Domain"), "{line}");
    let challenge = sent
        .cookies()
        .into_iter()
        .find(|(k, _)| k == REAUTH)
        .map(|(_, v)| v)
        .expect("challenge cookie");
    // Without the cookie there is no code form to fill.
    let no_cookie = w.get(&loc, &[u.cookie()]).await;
    assert!(!no_cookie.body.contains("id=\"reauth-code\""));
    let code_page = w.get(&loc, &[u.cookie(), (REAUTH, &challenge)]).await;
    assert!(code_page.body.contains("id=\"reauth-code\""));
    assert!(code_page.body.contains("id=\"reauth-verify\""));
    assert!(
        !code_page.body.contains(&challenge),
        "the challenge id is not in the page"
    );
    let code = w.last_sms_code(phone).expect("a code was texted");
    let wrong = w
        .post_form(
            "/me/reauth/verify",
            &[u.cookie(), (REAUTH, &challenge)],
            &[csrf(u), ("next", next), ("code", "000000")],
        )
        .await;
    if code != "000000" {
        assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let ok = w
        .post_form(
            "/me/reauth/verify",
            &[u.cookie(), (REAUTH, &challenge)],
            &[csrf(u), ("next", next), ("code", &code)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(ok.location(), Some(next));
    assert!(
        set_cookie_line(&ok, REAUTH).contains("Max-Age=0"),
        "the challenge cookie is cleared after use"
    );
}

/// The `Set-Cookie` line for `name`, or "".
fn set_cookie_line(r: &common::Resp, name: &str) -> String {
    r.headers
        .get_all(axum::http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_default()
        .to_owned()
}

async fn feed_personalized(w: &WebApp, u: &SignedInUser) -> bool {
    let r = w.get("/api/v1/feed", &[u.cookie()]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    v["personalized"]
        .as_bool()
        .expect("feed says whether it is personalized")
}

async fn give(w: &WebApp, u: &SignedInUser, purpose: &str) {
    let r = w
        .post_form(
            &format!("/me/consents/{purpose}/give"),
            &[u.cookie()],
            &[csrf(u)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().unwrap().starts_with("/me/consents?receipt="));
}

#[tokio::test]
async fn every_center_page_sends_a_signed_out_visitor_to_sign_in() {
    let w = common::spawn().await;
    for path in [
        "/me",
        "/me/data",
        "/me/export",
        "/me/profile",
        "/me/consents",
        "/me/traits",
        "/me/sessions",
        "/me/requests",
        "/me/cancel",
        "/me/reauth?next=/me/export",
    ] {
        let r = w.get(path, &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert!(r.location().unwrap().starts_with("/signin?next="), "{path}");
    }
    let r = w.post_form("/me/cancel", &[], &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().unwrap().starts_with("/signin"));
}

#[tokio::test]
async fn the_overview_links_every_section_in_both_languages() {
    let w = common::spawn().await;
    let u = w.sign_in_user(PHONE).await;
    let en = w.get("/me?lang=en", &[u.cookie()]).await;
    assert_eq!(en.status, StatusCode::OK);
    for href in [
        "/me/data",
        "/me/export",
        "/me/profile",
        "/me/consents",
        "/me/traits",
        "/me/sessions",
        "/me/requests",
        "/me/cancel",
    ] {
        assert!(en.body.contains(&format!("href=\"{href}\"")), "{href}");
    }
    assert!(en.body.contains("id=\"sign-out\""));
    assert!(en.body.contains("Privacy center"));
    for path in [
        "/me/data",
        "/me/consents",
        "/me/cancel",
        "/me/requests",
        "/me/profile",
        "/me/sessions",
        "/me/traits",
        "/me/export",
    ] {
        let zh = w.get(&format!("{path}?lang=zh"), &[u.cookie()]).await;
        assert_eq!(zh.status, StatusCode::OK, "{path}");
        assert!(zh.body.contains("lang=\"zh-CN\""), "{path}");
        assert!(zh.body.contains("隐私中心"), "{path}");
        let en = w.get(&format!("{path}?lang=en"), &[u.cookie()]).await;
        assert_eq!(en.status, StatusCode::OK, "{path}");
        assert!(en.body.contains("lang=\"en\""), "{path}");
    }
    let zh = w.get("/me/consents?lang=zh", &[u.cookie()]).await;
    assert!(zh.body.contains("同意与开关"));
    let en = w.get("/me/consents?lang=en", &[u.cookie()]).await;
    assert!(en.body.contains("Consents and switches"));
}

#[tokio::test]
async fn the_data_page_lists_a_bookmark_and_deletes_it_with_a_ticket() {
    let w = common::spawn().await;
    let u = w.sign_in_user(PHONE).await;
    let ctx = w.app.identity.gate_context(u.subject).await.unwrap();
    let b = w
        .app
        .catalog
        .bookmark(u.subject, &ctx, 3, Some("Shoes to try"))
        .await
        .unwrap();
    let page = w.get("/me/data", &[u.cookie()]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .body
        .contains(&format!("data-kind=\"bookmark\" data-id=\"{}\"", b.id)));
    assert!(page.body.contains("href=\"/items/3\""));
    assert!(page.body.contains("Shoes to try"));
    assert!(page.body.contains("Where it came from"));

    // Another user cannot delete it: 404, and it stays.
    let other = w.sign_in_user(OTHER_PHONE).await;
    let id = b.id.to_string();
    let r = w
        .post_form(
            "/me/data/delete",
            &[other.cookie()],
            &[csrf(&other), ("kind", "bookmark"), ("id", &id)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(w.app.catalog.bookmarks(u.subject).await.unwrap().len(), 1);

    let r = w
        .post_form(
            "/me/data/delete",
            &[u.cookie()],
            &[
                csrf(&u),
                ("kind", "bookmark"),
                ("id", &id),
                ("next", "/me/data"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), Some("/me/data?deleted=bookmark"));
    assert!(w.app.catalog.bookmarks(u.subject).await.unwrap().is_empty());
    let tickets = w.app.rights.tickets(u.subject).await.unwrap();
    assert!(tickets
        .iter()
        .any(|t| t.kind == TicketKind::Deletion && t.status == "completed"));
    let page = w.get("/me/data", &[u.cookie()]).await;
    assert!(!page.body.contains("data-kind=\"bookmark\" data-id="));
}

#[tokio::test]
async fn export_needs_a_fresh_code_then_ends_in_a_download_only_its_owner_opens() {
    let w = common::spawn().await;
    let u = w.sign_in_user(PHONE).await;
    let ctx = w.app.identity.gate_context(u.subject).await.unwrap();
    w.app
        .catalog
        .bookmark(u.subject, &ctx, 5, Some("Export me"))
        .await
        .unwrap();
    age_past_reauth(&w);

    // Without re-authentication: no start button, and starting is sent to re-auth.
    let page = w.get("/me/export", &[u.cookie()]).await;
    assert!(!page.body.contains("id=\"export-start\""));
    assert!(page.body.contains("/me/reauth?next=%2Fme%2Fexport"));
    let r = w.post_form("/me/export", &[u.cookie()], &[csrf(&u)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/me/reauth?next=%2Fme%2Fexport"));
    assert!(w
        .app
        .rights
        .export_jobs(u.subject)
        .await
        .unwrap()
        .is_empty());

    reauth(&w, &u, PHONE, "/me/export").await;
    let page = w.get("/me/export", &[u.cookie()]).await;
    assert!(page.body.contains("id=\"export-start\""));
    let r = w.post_form("/me/export", &[u.cookie()], &[csrf(&u)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), Some("/me/export"));

    // The job runs in the background; the page shows progress until the link appears.
    let mut href = None;
    for _ in 0..500 {
        let page = w.get("/me/export", &[u.cookie()]).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("<progress id=\"export-progress\""));
        if let Some(h) = attr_after(&page.body, "id=\"export-download\"", "href") {
            href = Some(h);
            break;
        }
        assert!(
            page.headers.get("refresh").is_some_and(|v| v == "2"),
            "refreshes while running"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let href = href.expect("the export finished");
    assert!(href.starts_with("/me/export/file/"));

    let file = w.get(&href, &[u.cookie()]).await;
    assert_eq!(file.status, StatusCode::OK);
    assert!(file.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc: serde_json::Value = serde_json::from_str(&file.body).unwrap();
    assert_eq!(doc["bookmarks"][0]["item_id"], 5);
    assert_eq!(doc["bookmarks"][0]["collection"], "Export me");
    let html = w.get(&format!("{href}?format=html"), &[u.cookie()]).await;
    assert_eq!(html.status, StatusCode::OK);

    let other = w.sign_in_user(OTHER_PHONE).await;
    assert_eq!(
        w.get(&href, &[other.cookie()]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.get("/me/export/file/forged-token", &[u.cookie()])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Signed out: to sign in, not the file.
    assert_eq!(w.get(&href, &[]).await.status, StatusCode::SEE_OTHER);

    // After the link's time: 410, as a page (a new session of the same account).
    w.clock.advance(time::Duration::days(2));
    let again = w.sign_in_user(PHONE).await;
    let gone = w.get(&href, &[again.cookie()]).await;
    assert_eq!(gone.status, StatusCode::GONE);
    assert!(gone.body.contains("data-error-code=\"export_expired\""));
}

#[tokio::test]
async fn withdrawing_on_the_consents_page_reaches_the_ledger_and_the_next_feed() {
    let w = common::spawn().await;
    let u = w.sign_in_user(PHONE).await;
    let page = w.get("/me/consents", &[u.cookie()]).await;
    assert!(page.body.contains("<tr data-purpose=\"personalized_feed\""));
    assert!(page.body.contains("<tr data-purpose=\"location\""));
    assert!(page
        .body
        .contains("class=\"give\" data-purpose=\"personalized_feed\""));
    assert!(!feed_personalized(&w, &u).await);
    // Guardian consent is the guardian's to give, through their own flow.
    assert!(!page
        .body
        .contains("class=\"give\" data-purpose=\"minors_guardian\""));
    assert!(page.body.contains("href=\"/signin/guardian\""));

    give(&w, &u, "personalized_feed").await;
    assert!(feed_personalized(&w, &u).await);
    let page = w.get("/me/consents", &[u.cookie()]).await;
    assert!(page
        .body
        .contains("class=\"withdraw\" data-purpose=\"personalized_feed\""));
    assert!(page
        .body
        .contains("class=\"receipt-link\" href=\"/receipts/"));

    let r = w
        .post_form(
            "/me/consents/personalized_feed/withdraw",
            &[u.cookie()],
            &[csrf(&u)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let receipt = query_param(r.location().unwrap(), "receipt").unwrap();
    let history = w.app.kernel.consent_history(u.subject).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(last.purpose, "personalized_feed");
    assert_eq!(last.decision, Decision::Withdrawn);
    assert_eq!(last.method, ConsentMethod::Settings);
    assert_eq!(last.receipt_id.to_string(), receipt);
    assert!(
        !feed_personalized(&w, &u).await,
        "the very next feed is plain"
    );
    let page = w.get(r.location().unwrap(), &[u.cookie()]).await;
    assert!(page.body.contains(&format!("href=\"/receipts/{receipt}\"")));
    assert_eq!(
        page.body.matches("id=\"receipt-link\"").count(),
        1,
        "one receipt notice, not the dialog's as well"
    );
    assert!(page
        .body
        .contains("class=\"give\" data-purpose=\"personalized_feed\""));

    // The personalization switch turns it off without touching the consent.
    give(&w, &u, "personalized_feed").await;
    assert!(feed_personalized(&w, &u).await);
    let r = w
        .post_form(
            "/me/personalization",
            &[u.cookie()],
            &[csrf(&u), ("enabled", "off")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(!feed_personalized(&w, &u).await);
}

#[tokio::test]
async fn withdrawing_location_clears_the_stored_area() {
    let w = common::spawn().await;
    let u = w.sign_in_user(PHONE).await;
    give(&w, &u, "location").await;
    let r = w
        .post_form(
            "/me/location",
            &[u.cookie()],
            &[csrf(&u), ("enabled", "on")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let ctx = w.app.identity.gate_context(u.subject).await.unwrap();
    w.app
        .signals
        .report_location(u.subject, 31.2304, 121.4737, &ctx)
        .await
        .unwrap();
    assert!(w
        .app
        .signals
        .location(u.subject)
        .await
        .unwrap()
        .geohash
        .is_some());
    let r = w
        .post_form("/me/consents/location/withdraw", &[u.cookie()], &[csrf(&u)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let loc = w.app.signals.location(u.subject).await.unwrap();
    assert!(!loc.enabled);
    assert!(loc.geohash.is_none());
}

#[tokio::test]
async fn a_trait_is_listed_with_its_lineage_and_deleted_from_its_row() {
    let w = common::spawn().await;
    let u = w.sign_in_user(PHONE).await;
    give(&w, &u, "personalized_feed").await;
    let ctx = w.app.identity.gate_context(u.subject).await.unwrap();
    w.app
        .signals
        .add_affinity(u.subject, "category:shoes", 2.0, &ctx)
        .await
        .unwrap();
    let page = w.get("/me/traits", &[u.cookie()]).await;
    assert!(page
        .body
        .contains("<tr class=\"trait\" data-key=\"category:shoes\""));
    assert!(page.body.contains("class=\"delete-trait\""));
    assert!(page.body.contains("only while personalization is on"));
    let r = w
        .post_form(
            "/me/data/delete",
            &[u.cookie()],
            &[
                csrf(&u),
                ("kind", "trait"),
                ("id", "category:shoes"),
                ("next", "/me/traits"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), Some("/me/traits?deleted=trait"));
    assert!(w.app.signals.traits(u.subject).await.unwrap().is_empty());
    let page = w.get("/me/traits", &[u.cookie()]).await;
    assert!(!page.body.contains("<tr class=\"trait\""));
}

#[tokio::test]
async fn revoking_another_session_signs_it_out() {
    let w = common::spawn().await;
    let a = w.sign_in_user(PHONE).await;
    w.clock.advance(time::Duration::minutes(2));
    let b = w.sign_in_user(PHONE).await;
    let b_id = w.app.identity.authenticate(&b.token).await.unwrap().id;
    let page = w.get("/me/sessions", &[a.cookie()]).await;
    assert!(page.body.contains(&format!("data-session=\"{b_id}\"")));
    assert!(page.body.contains("(this session)"));
    let r = w
        .post_form(
            "/me/sessions/revoke",
            &[a.cookie()],
            &[csrf(&a), ("id", &b_id)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = w.get("/me", &[b.cookie()]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().unwrap().starts_with("/signin"));
    assert_eq!(w.get("/me", &[a.cookie()]).await.status, StatusCode::OK);
    // Another account's session id is a 404.
    let other = w.sign_in_user(OTHER_PHONE).await;
    let a_id = w.app.identity.authenticate(&a.token).await.unwrap().id;
    let r = w
        .post_form(
            "/me/sessions/revoke",
            &[other.cookie()],
            &[csrf(&other), ("id", &a_id)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cancelling_needs_a_fresh_code_and_files_a_ticket_that_can_be_revoked() {
    let w = common::spawn().await;
    let u = w.sign_in_user(PHONE).await;
    age_past_reauth(&w);
    let page = w.get("/me/cancel", &[u.cookie()]).await;
    assert!(
        page.body.contains("7 days"),
        "the cooling-off period from the config"
    );
    assert!(!page.body.contains("id=\"cancel-account\""));
    let r = w.post_form("/me/cancel", &[u.cookie()], &[csrf(&u)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/me/reauth?next=%2Fme%2Fcancel"));
    assert!(w
        .app
        .rights
        .cancellation(u.subject)
        .await
        .unwrap()
        .is_none());

    reauth(&w, &u, PHONE, "/me/cancel").await;
    let page = w.get("/me/cancel", &[u.cookie()]).await;
    assert!(page.body.contains("id=\"cancel-account\""));
    let r = w.post_form("/me/cancel", &[u.cookie()], &[csrf(&u)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let c = w
        .app
        .rights
        .cancellation(u.subject)
        .await
        .unwrap()
        .expect("filed");
    let tickets = w.app.rights.tickets(u.subject).await.unwrap();
    assert!(tickets
        .iter()
        .any(|t| t.id == c.ticket_id && t.kind == TicketKind::Cancellation));
    let page = w.get("/me/cancel", &[u.cookie()]).await;
    assert!(page.body.contains("id=\"cancel-status\""));
    assert!(page
        .body
        .contains(&custos_core::clock::rfc3339(c.effective_ms)));
    let requests = w.get("/me/requests", &[u.cookie()]).await;
    assert!(requests.body.contains(&format!(
        "data-ticket=\"{}\" data-kind=\"cancellation\"",
        c.ticket_id
    )));

    let r = w
        .post_form("/me/cancel/revoke", &[u.cookie()], &[csrf(&u)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(w
        .app
        .rights
        .cancellation(u.subject)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_complaint_filed_on_the_requests_page_is_listed_with_its_deadline() {
    let w = common::spawn().await;
    let u = w.sign_in_user(PHONE).await;
    let r = w
        .post_form(
            "/me/requests/complaint",
            &[u.cookie()],
            &[
                csrf(&u),
                ("kind", "complaint"),
                ("topic", "data_handling"),
                ("detail", "Why so many texts?"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let list = w.app.rights.complaints(u.subject).await.unwrap();
    assert_eq!(list.len(), 1);
    let page = w.get("/me/requests", &[u.cookie()]).await;
    assert!(page.body.contains("Why so many texts?"));
    assert!(page
        .body
        .contains(&custos_core::clock::rfc3339(list[0].ticket.due_ms)));
    let r = w
        .post_form(
            "/me/requests/complaint",
            &[u.cookie()],
            &[
                csrf(&u),
                ("kind", "complaint"),
                ("topic", "data_handling"),
                ("detail", ""),
            ],
        )
        .await;
    assert_eq!(
        r.status.as_u16() / 100,
        4,
        "an empty complaint is a client mistake"
    );
}

#[tokio::test]
async fn profile_corrections_are_recorded_as_tickets() {
    let w = common::spawn().await;
    let u = w.sign_in_user(PHONE).await;
    age_past_reauth(&w);
    let r = w
        .post_form(
            "/me/profile/nickname",
            &[u.cookie()],
            &[csrf(&u), ("nickname", "小雨")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        w.app
            .identity
            .profile(u.subject)
            .await
            .unwrap()
            .nickname
            .as_deref(),
        Some("小雨")
    );
    assert!(w
        .app
        .rights
        .corrections(u.subject)
        .await
        .unwrap()
        .iter()
        .any(|t| t.detail == "nickname"));
    let page = w.get("/me/profile", &[u.cookie()]).await;
    assert!(page.body.contains("value=\"小雨\""));
    // The password needs a fresh code first.
    let r = w
        .post_form(
            "/me/profile/password",
            &[u.cookie()],
            &[csrf(&u), ("password", "a long enough passphrase")],
        )
        .await;
    assert_eq!(r.location(), Some("/me/reauth?next=%2Fme%2Fprofile"));
    assert!(
        !w.app
            .identity
            .profile(u.subject)
            .await
            .unwrap()
            .has_password
    );
}

#[tokio::test]
async fn a_form_without_the_csrf_token_is_refused() {
    let w = common::spawn().await;
    let u = w.sign_in_user(PHONE).await;
    give(&w, &u, "personalized_feed").await;
    let before = w.app.kernel.consent_history(u.subject).await.unwrap().len();
    let r = w
        .post_form(
            "/me/consents/personalized_feed/withdraw",
            &[u.cookie()],
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w
        .post_form(
            "/me/consents/personalized_feed/withdraw",
            &[u.cookie()],
            &[("_csrf", "not-the-token")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        w.app.kernel.consent_history(u.subject).await.unwrap().len(),
        before
    );
    let r = w.post_form("/me/cancel", &[u.cookie()], &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// A 1×1 PNG.
const PNG_B64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

fn multipart_avatar(
    cookie: (&str, &str),
    csrf: Option<&str>,
    png: &[u8],
) -> axum::http::Request<axum::body::Body> {
    let b = "----custos-test-boundary";
    let mut body = Vec::new();
    if let Some(t) = csrf {
        body.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"_csrf\"\r\n\r\n{t}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{b}\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(png);
    body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    axum::http::Request::post("/me/profile/avatar")
        .header("cookie", format!("{}={}", cookie.0, cookie.1))
        .header("content-type", format!("multipart/form-data; boundary={b}"))
        .header("sec-fetch-site", "same-origin")
        .body(axum::body::Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn an_avatar_upload_checks_csrf_and_is_recorded_as_a_correction() {
    use base64::Engine;
    let w = common::spawn().await;
    let u = w.sign_in_user(PHONE).await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(PNG_B64)
        .unwrap();
    let r = w.request(multipart_avatar(u.cookie(), None, &png)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w
        .request(multipart_avatar(u.cookie(), Some("wrong"), &png))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!w.app.identity.profile(u.subject).await.unwrap().has_avatar);

    let r = w
        .request(multipart_avatar(u.cookie(), Some(&u.csrf), &png))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(w.app.identity.profile(u.subject).await.unwrap().has_avatar);
    assert!(w
        .app
        .rights
        .corrections(u.subject)
        .await
        .unwrap()
        .iter()
        .any(|t| t.detail == "avatar"));
    let img = w.get("/me/profile/avatar", &[u.cookie()]).await;
    assert_eq!(img.status, StatusCode::OK);
    assert_eq!(img.headers["content-type"], "image/png");
    let page = w.get("/me/profile", &[u.cookie()]).await;
    assert!(page
        .body
        .contains("<img class=\"avatar\" src=\"/me/profile/avatar\""));
    assert!(page.body.contains("alt=\"Your current avatar\""));

    // Not a picture: a client mistake, not a 500.
    let r = w
        .request(multipart_avatar(
            u.cookie(),
            Some(&u.csrf),
            b"not a picture",
        ))
        .await;
    assert_eq!(r.status.as_u16() / 100, 4, "{}", r.status);
}

/// A POST with a raw body and content type, from this origin.
fn raw_post(
    uri: &str,
    cookie: (&str, &str),
    content_type: &str,
    body: Vec<u8>,
) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::post(uri)
        .header("cookie", format!("{}={}", cookie.0, cookie.1))
        .header("content-type", content_type)
        .header("sec-fetch-site", "same-origin")
        .header("accept-language", "en")
        .body(axum::body::Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn malformed_input_to_the_center_is_a_client_error_never_a_500() {
    let w = common::spawn().await;
    let u = w.sign_in_user(PHONE).await;
    let long = "x".repeat(70 * 1024);
    let forms: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/me/data/delete", vec![("kind", "bookmark"), ("id", "abc")]),
        ("/me/data/delete", vec![("kind", "bookmark"), ("id", "-1")]),
        (
            "/me/data/delete",
            vec![("kind", "bookmark"), ("id", "99999999999999999999999")],
        ),
        ("/me/data/delete", vec![("kind", "passport"), ("id", "1")]),
        ("/me/data/delete", vec![("kind", "device"), ("id", "\u{7}")]),
        ("/me/data/delete", vec![]),
        ("/me/profile/birth-date", vec![("birth_date", "2020-13-45")]),
        ("/me/profile/birth-date", vec![("birth_date", "yesterday")]),
        ("/me/profile/birth-date", vec![("birth_date", "")]),
        ("/me/profile/nickname", vec![("nickname", "")]),
        ("/me/profile/nickname", vec![("nickname", &long)]),
        ("/me/consents/no_such_purpose/give", vec![]),
        ("/me/consents/no_such_purpose/withdraw", vec![]),
        ("/me/personalization", vec![("enabled", "maybe")]),
        ("/me/location", vec![]),
        ("/me/sessions/revoke", vec![("id", &long[..2000])]),
        ("/me/requests/ticket", vec![("kind", "everything")]),
        (
            "/me/requests/complaint",
            vec![("kind", "x"), ("topic", "y"), ("detail", "")],
        ),
        ("/me/reauth/verify", vec![("code", "123456")]),
        ("/privacy/reconsent", vec![("purpose", "no_such_purpose")]),
    ];
    for (uri, fields) in forms {
        let mut f = vec![csrf(&u)];
        f.extend(fields.iter().copied());
        let r = w.post_form(uri, &[u.cookie()], &f).await;
        assert!(
            r.status.is_client_error() || r.status.is_redirection(),
            "{uri} {fields:?}: {} {}",
            r.status,
            r.body
        );
    }
    // Non-UTF-8 and undecodable bodies.
    let mut bad = format!("_csrf={}&nickname=", u.csrf).into_bytes();
    bad.extend_from_slice(&[0xff, 0xfe, 0x80]);
    for (uri, ct, body) in [
        (
            "/me/profile/nickname",
            "application/x-www-form-urlencoded",
            bad.clone(),
        ),
        ("/me/profile/nickname", "text/plain", bad.clone()),
        ("/me/profile/avatar", "multipart/form-data", bad.clone()),
        (
            "/me/profile/avatar",
            "multipart/form-data; boundary=zz",
            b"--zz\r\nContent-Disposition: form-data; name=\"avatar\"\r\n\r\nabc".to_vec(),
        ),
        (
            "/me/profile/avatar",
            "application/x-www-form-urlencoded",
            bad.clone(),
        ),
    ] {
        let r = w.request(raw_post(uri, u.cookie(), ct, body)).await;
        // (Invalid UTF-8 in a url-encoded form is decoded lossily, like browsers do.)
        assert!(
            r.status.is_client_error() || r.status.is_redirection(),
            "{uri} {ct}: {} {}",
            r.status,
            r.body
        );
    }
    for uri in [
        "/me/export/file/nope",
        &format!("/me/export/file/{}", "a".repeat(4000)),
        "/me/export/file/x?format=pdf",
        "/me/export/file/%FF%FE",
        "/me/consents?receipt=%FF",
        "/me/reauth?next=%FF",
    ] {
        let r = w.get(uri, &[u.cookie()]).await;
        assert!(
            r.status.is_client_error() || r.status.is_success(),
            "{uri}: {} {}",
            r.status,
            r.body
        );
    }
    // An upload from another site is refused even with the right token.
    let mut req = multipart_avatar(u.cookie(), Some(&u.csrf), b"x");
    req.headers_mut().remove("sec-fetch-site");
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    req.headers_mut()
        .insert("host", "custos.example".parse().unwrap());
    assert_eq!(w.request(req).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn another_users_reauth_challenge_proves_nothing() {
    let w = common::spawn().await;
    let a = w.sign_in_user(PHONE).await;
    let b = w.sign_in_user(OTHER_PHONE).await;
    age_past_reauth(&w);
    let sent = w
        .post_form(
            "/me/reauth/send",
            &[a.cookie()],
            &[csrf(&a), ("next", "/me/export")],
        )
        .await;
    let challenge = sent
        .cookies()
        .into_iter()
        .find(|(k, _)| k == REAUTH)
        .map(|(_, v)| v)
        .expect("challenge cookie");
    let code = w.last_sms_code(PHONE).unwrap();
    // B replays A's challenge cookie and code: refused, and B is not re-authenticated.
    let r = w
        .post_form(
            "/me/reauth/verify",
            &[b.cookie(), (REAUTH, &challenge)],
            &[csrf(&b), ("next", "/me/export"), ("code", &code)],
        )
        .await;
    assert!(r.status.is_client_error(), "{} {}", r.status, r.body);
    let bs = w.app.identity.authenticate(&b.token).await.unwrap();
    assert!(w.app.identity.reauthenticated(&bs).is_err());
    let r = w.post_form("/me/export", &[b.cookie()], &[csrf(&b)]).await;
    assert_eq!(r.location(), Some("/me/reauth?next=%2Fme%2Fexport"));
}
