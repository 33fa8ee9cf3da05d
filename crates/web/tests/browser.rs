//! End-to-end scenarios in a real headless Chromium (Debian's `chromium` through
//! `chromedriver`, WebDriver via `fantoccini`), against the app served on a real socket.
//!
//! Each test runs its steps in order and asserts what the user sees; the tests run one
//! at a time. Every main page is screenshotted to `target/web-screenshots/<name>.png`
//! and checked with axe-core (WCAG 2.1 A/AA rules). Without Chromium the tests skip
//! with a message, unless `CUSTOS_REQUIRE_BROWSER=1` (set by `.ci/run`).

mod common;
#[path = "browser/harness.rs"]
mod harness;

use custos_app::identity::sms::Outbox;
use custos_app::ops::{Actor, Role};
use custos_core::{Clock, Personal};
use fantoccini::key::Key;
use harness::{browser_available, until, Browser, ONE_AT_A_TIME, PHONE};
use serde_json::json;

/// A new user's phone: typed as a Chinese mobile number, texted as E.164.
const PHONE_TYPED: &str = "13912345678";
const PHONE_E164: &str = "+8613912345678";

/// How many texts `e164` has received (to wait for a new code).
fn texts_to(w: &common::WebApp, e164: &str) -> usize {
    Outbox::read(&w.dir.path().join("sms-outbox.jsonl"))
        .iter()
        .filter(|e| e.to == e164)
        .count()
}

/// Waits for a text after the first `before` ones and returns its code.
async fn new_code(w: &common::WebApp, e164: &str, before: usize) -> String {
    until("a new text message in the SMS outbox", || async move {
        texts_to(w, e164) > before
    })
    .await;
    w.last_sms_code(e164).expect("a six-digit code in the text")
}

/// The harness itself, on what the shell serves: Chromium loads the app's assets over
/// `http://localhost`, and keeps the `Secure` `__Host-` session cookie there (the
/// scenarios depend on it), signing in through the JSON API from inside the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_loads_assets_runs_axe_and_keeps_host_cookies_on_localhost() {
    if !browser_available() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let w = common::spawn().await;
    let addr = w.serve().await;
    let mut b = Browser::start(addr).await;
    b.step("assets load in the browser");
    b.goto("/assets/app.css").await;
    let (status, css) = b.fetch_in_page("/assets/app.css").await;
    assert_eq!(status, 200);
    assert!(!css.is_empty());
    let (status, _) = b.fetch_in_page("/assets/nope.js").await;
    assert_eq!(status, 404);

    b.step("axe-core runs and reports a violation it must see");
    b.goto("/privacy/policy").await;
    b.find("main#main").await;
    b.js(
        "const i = document.createElement('img'); i.src = '/assets/icon.svg';
         document.getElementById('main').appendChild(i);",
        vec![],
    )
    .await;
    b.axe("policy-with-an-image-without-alt").await;
    if harness::axe_script().is_some() {
        assert!(
            b.violations.iter().any(|v| v.contains("image-alt")),
            "axe-core did not report an <img> without alt: {:?}",
            b.violations
        );
    }

    b.step("sign in through the API from the page; the session cookie is kept");
    let before = texts_to(&w, PHONE_E164);
    let v = b
        .js_async(
            "const [phone, done] = arguments;
             fetch('/api/v1/auth/sms/start', {method: 'POST', credentials: 'same-origin',
                   headers: {'content-type': 'application/json'}, body: JSON.stringify({phone})})
               .then(r => r.json()).then(done, e => done({error: String(e)}));",
            vec![json!(PHONE_TYPED)],
        )
        .await;
    let challenge = v["challenge_id"]
        .as_str()
        .unwrap_or_else(|| panic!("sms start answered {v}"))
        .to_owned();
    let code = new_code(&w, PHONE_E164, before).await;
    let v = b
        .js_async(
            "const [challenge_id, code, done] = arguments;
             fetch('/api/v1/auth/sms/verify', {method: 'POST', credentials: 'same-origin',
                   headers: {'content-type': 'application/json'},
                   body: JSON.stringify({challenge_id, code})})
               .then(r => done(r.status), e => done(String(e)));",
            vec![json!(challenge), json!(code)],
        )
        .await;
    assert_eq!(v, json!(200), "sms verify");
    let (status, me) = b.fetch_in_page("/api/v1/me").await;
    assert_eq!(
        status, 200,
        "the __Host- session cookie was not kept on http://localhost: {me}"
    );
    b.close().await;
}

/// Signs in (or up) with the SMS code, skipping the optional steps, until the
/// navigation shows the privacy center link.
async fn sign_in_by_sms(b: &mut Browser, w: &common::WebApp) {
    b.goto("/signin").await;
    b.find("input#phone[name=phone]").await;
    b.capture("signin").await;
    b.type_into("input#phone", PHONE_TYPED).await;
    let before = texts_to(w, PHONE_E164);
    b.submit("#send-code").await;
    let code = new_code(w, PHONE_E164, before).await;
    b.type_into("input#code[name=code]", &code).await;
    b.submit("#verify-code").await;
    // Optional steps after sign-up (the birth date) are skipped.
    let b = &*b;
    until("the signed-in navigation (a link to /me)", || async move {
        if b.has("#birth-date-skip").await {
            b.submit("#birth-date-skip").await;
        }
        b.has("header.site nav a[href=\"/me\"]").await
    })
    .await;
}

/// Answers the re-authentication step (a fresh SMS code) if the page asks for it, on
/// the page itself or through a link to `/me/reauth`. Whether it was asked.
async fn reauth_if_asked(b: &mut Browser, w: &common::WebApp) -> bool {
    if !b.has("#reauth-send").await {
        let link = b.all("main a[href^=\"/me/reauth\"]").await;
        let Some(a) = link.into_iter().next() else {
            return false;
        };
        let href = a.attr("href").await.unwrap().unwrap_or_default();
        b.goto(&href).await;
    }
    let before = texts_to(w, PHONE_E164);
    b.submit("#reauth-send").await;
    let code = new_code(w, PHONE_E164, before).await;
    b.type_into("input#reauth-code", &code).await;
    b.submit("#reauth-verify").await;
    true
}

/// Gives (`give`) or withdraws (`withdraw`) `purpose` on /me/consents and waits for the
/// opposite button to appear.
async fn set_consent(b: &mut Browser, purpose: &str, action: &str) {
    let other = if action == "give" { "withdraw" } else { "give" };
    b.goto("/me/consents").await;
    b.find(&format!("tr[data-purpose=\"{purpose}\"]")).await;
    b.submit(&format!("button.{action}[data-purpose=\"{purpose}\"]"))
        .await;
    if !b.path().await.starts_with("/me/consents") {
        b.goto("/me/consents").await;
    }
    b.find(&format!("button.{other}[data-purpose=\"{purpose}\"]"))
        .await;
}

/// The user's story, in order: first visit and refusal, anonymous browsing and search,
/// sign-up by SMS, consents, bookmark, personalized feed, export containing the bookmark,
/// withdrawal removing the personalized label, cancellation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newcomer_refuses_browses_signs_up_exports_withdraws_and_cancels() {
    if !browser_available() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let w = common::spawn().await;
    let addr = w.serve().await;
    let mut b = Browser::start(addr).await;

    b.step("first visit: the consent dialog, every optional purpose off");
    b.goto("/").await;
    b.find("#consent-dialog[role=dialog]").await;
    let aria_modal = b
        .find("#consent-dialog")
        .await
        .attr("aria-modal")
        .await
        .unwrap();
    assert_eq!(aria_modal.as_deref(), Some("true"));
    let boxes = b
        .all("#consent-dialog input[type=checkbox][name=purpose]")
        .await;
    assert!(!boxes.is_empty(), "the dialog offers no optional purpose");
    for cb in &boxes {
        let purpose = cb.attr("value").await.unwrap().unwrap_or_default();
        assert!(
            !cb.is_selected().await.unwrap(),
            "optional purpose {purpose} is checked on first visit"
        );
    }
    b.find("#consent-accept-all").await;
    b.find("#consent-save").await;

    b.step("keyboard: the dialog's first control has focus; Tab reaches Refuse all");
    let first = b
        .js(
            "const d = document.getElementById('consent-dialog');
             const f = [...d.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')]
               .find(e => !e.disabled && e.type !== 'hidden' && e.tabIndex >= 0 && e.getClientRects().length);
             return f === document.activeElement;",
            vec![],
        )
        .await;
    assert_eq!(
        first,
        json!(true),
        "focus after load is on `{}`, not the dialog's first control",
        b.focused().await
    );
    let mut reached = false;
    for _ in 0..30 {
        if b.focused().await == "consent-refuse-all" {
            reached = true;
            break;
        }
        b.press(Key::Tab).await;
    }
    assert!(reached, "Tab never reached #consent-refuse-all");
    b.capture("first-visit-dialog").await;

    b.step("phone size: the dialog fits the screen");
    b.resize(PHONE).await;
    b.assert_no_horizontal_scroll().await;
    b.shot("first-visit-dialog-phone").await;
    b.resize(harness::DESKTOP).await;

    b.step("refuse all: a receipt link appears");
    b.submit("#consent-refuse-all").await;
    let receipt = b.find("a#receipt-link").await;
    let href = receipt.attr("href").await.unwrap().unwrap_or_default();
    assert!(
        href.starts_with("/receipts/"),
        "receipt link goes to {href}"
    );
    b.assert_absent("#consent-dialog").await;

    b.step("reload: no dialog again");
    b.goto("/").await;
    b.find("#feed").await;
    b.assert_absent("#consent-dialog").await;

    b.step("keyboard: the skip link moves to the main content");
    b.js(
        "document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0);",
        vec![],
    )
    .await;
    b.press(Key::Tab).await;
    let skip_focused = b
        .js(
            "return document.activeElement === document.querySelector('a.skip');",
            vec![],
        )
        .await;
    assert_eq!(
        skip_focused,
        json!(true),
        "first Tab focused `{}`, not the skip link",
        b.focused().await
    );
    b.press(Key::Enter).await;
    let br = &b;
    until("focus on main#main after the skip link", || async move {
        br.focused().await == "main"
    })
    .await;

    b.step("home feed without an account");
    let cards = b
        .all("#feed .item-card a.item-link[href^=\"/items/\"]")
        .await;
    assert!(
        cards.len() >= 3,
        "the home feed shows {} items",
        cards.len()
    );
    b.assert_absent("#personalized-label").await;
    b.capture("home").await;
    b.resize(PHONE).await;
    b.assert_no_horizontal_scroll().await;
    b.shot("home-phone").await;
    b.resize(harness::DESKTOP).await;

    b.step("search: results, count and facets");
    b.goto("/search").await;
    b.type_into("form#search-form input#q[name=q]", "dress")
        .await;
    b.submit("#search-submit").await;
    b.find("#results .item-card").await;
    b.find("#facets").await;
    let count = b.text("#result-count").await;
    let n: usize = count
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("result count says `{count}`"));
    let results = b.all("#results .item-card a.item-link").await;
    assert!(
        !results.is_empty() && n >= results.len(),
        "`{count}` for {} result cards",
        results.len()
    );
    for r in &results {
        let title = r.text().await.unwrap().to_lowercase();
        assert!(
            title.contains("dress"),
            "`{title}` found by a search for dress"
        );
    }
    let facets = b.text("#facets").await;
    assert!(
        facets.to_lowercase().contains("clothing"),
        "no clothing facet in `{facets}`"
    );
    b.capture("search").await;

    b.step("the language switch: the page in Chinese, and back");
    b.goto("/").await;
    b.submit("header.site nav a[hreflang=\"zh\"]").await;
    b.find("html[lang=\"zh-CN\"] #feed").await;
    b.capture("home-zh").await;
    b.submit("header.site nav a[hreflang=\"en\"]").await;
    b.find("html[lang=\"en\"] #feed").await;

    b.step("sign up by SMS code");
    sign_in_by_sms(&mut b, &w).await;
    b.goto("/me").await;
    for section in [
        "/me/data",
        "/me/export",
        "/me/profile",
        "/me/consents",
        "/me/traits",
        "/me/sessions",
        "/me/requests",
        "/me/cancel",
    ] {
        b.find(&format!("a[href=\"{section}\"]")).await;
    }
    b.capture("privacy-center").await;
    b.goto("/me/data").await;
    b.find("main#main h1").await;
    b.capture("my-data").await;

    b.step("consent to personalized_feed and service_logs_analytics");
    set_consent(&mut b, "personalized_feed", "give").await;
    set_consent(&mut b, "service_logs_analytics", "give").await;
    assert!(
        b.has("a.receipt-link").await,
        "no receipt links on /me/consents"
    );
    b.capture("consents").await;

    b.step("view a few items, bookmark one");
    b.goto("/").await;
    let mut items = Vec::new();
    for a in b.all("#feed a.item-link[href^=\"/items/\"]").await {
        if let Some(h) = a.attr("href").await.unwrap() {
            if !items.contains(&h) {
                items.push(h);
            }
        }
    }
    assert!(items.len() >= 3, "the feed links {} items", items.len());
    for h in &items[..3] {
        b.goto(h).await;
        b.find("#item-title").await;
        b.find("#gallery img").await;
    }
    let bookmarked = items[0].clone();
    let item_id = bookmarked
        .trim_start_matches("/items/")
        .split(['?', '#'])
        .next()
        .unwrap()
        .to_owned();
    b.goto(&bookmarked).await;
    b.capture("item").await;
    b.assert_absent("#bookmarked").await;
    b.submit("#bookmark-button").await;
    if !b.path().await.starts_with(&bookmarked) {
        b.goto(&bookmarked).await;
    }
    b.find("#bookmarked").await;

    b.step("the home feed says it is personalized");
    b.goto("/").await;
    b.find("#personalized-label").await;
    b.capture("home-personalized").await;

    b.step("export: re-authenticate, wait for the download, find the bookmark in it");
    b.goto("/me/export").await;
    let deadline = std::time::Instant::now() + harness::WAIT * 3;
    let download = loop {
        if let Some(a) = b.all("a#export-download").await.into_iter().next() {
            break a;
        }
        if reauth_if_asked(&mut b, &w).await {
            continue;
        } else if b.has("#export-start").await && !b.has("progress#export-progress").await {
            b.submit("#export-start").await;
        } else {
            // The progress bar: the page is reloaded to see the job advance.
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            if !b.has("a#export-download").await {
                b.goto("/me/export").await;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "[{}] no a#export-download on {}",
            b.step,
            b.path().await
        );
    };
    let href = download.attr("href").await.unwrap().expect("download href");
    b.capture("export").await;
    let (status, body) = b.fetch_in_page(&href).await;
    assert_eq!(status, 200, "export download {href}: {body:.300}");
    let doc: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("the export is not JSON ({e}): {body:.300}"));
    let bookmarks = doc["bookmarks"].to_string();
    assert!(
        bookmarks.contains(&item_id),
        "the export's bookmarks do not hold the bookmarked item {item_id}: {bookmarks:.500}"
    );

    b.step("withdraw personalized_feed: the label is gone");
    set_consent(&mut b, "personalized_feed", "withdraw").await;
    b.goto("/").await;
    b.find("#feed").await;
    b.assert_absent("#personalized-label").await;

    b.step("policy page");
    b.goto("/privacy/policy").await;
    b.find("#policy-body").await;
    b.find("#policy-versions li").await;
    b.capture("policy").await;

    b.step("cancel the account: re-authenticate, see the cooling-off status");
    b.goto("/me/cancel").await;
    let br = &b;
    until(
        "the cancel page (re-auth or the cancel button)",
        || async move {
            br.has("#reauth-send").await
                || br.has("main a[href^=\"/me/reauth\"]").await
                || br.has("#cancel-account").await
        },
    )
    .await;
    reauth_if_asked(&mut b, &w).await;
    if !b.path().await.starts_with("/me/cancel") {
        b.goto("/me/cancel").await;
    }
    b.capture("cancel").await;
    b.submit("#cancel-account").await;
    if !b.has("#cancel-status").await {
        b.goto("/me/cancel").await;
    }
    let status = b.text("#cancel-status").await;
    // The status names the day the account goes (after the cooling-off period).
    let year = w.clock.now().year().to_string();
    assert!(
        status.contains(&year),
        "#cancel-status gives no date: `{status}`"
    );
    b.assert_absent("#cancel-account").await;
    b.capture("cancel-status").await;

    let violations = std::mem::take(&mut b.violations);
    b.close().await;
    assert!(
        violations.is_empty(),
        "axe-core found WCAG 2.1 A/AA violations:\n{}",
        violations.join("\n")
    );
}

/// Creates a staff account through the app layer and signs it in to `/console` with
/// its password and the TOTP code `totp-rs` computes from the secret shown at creation.
async fn console_sign_in(b: &mut Browser, w: &common::WebApp, username: &str, role: Role) {
    let password = "browser-staff-password-42";
    let account = w
        .app
        .ops
        .create_staff(
            &Actor::Cli,
            username,
            role,
            Some(Personal::new(password.to_owned())),
        )
        .await
        .unwrap();
    let secret = totp_rs::Secret::Encoded(account.totp_secret.expose().clone())
        .to_bytes()
        .unwrap();
    let totp = totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        secret,
        None,
        username.to_owned(),
    );
    // The app's clock decides which code is current.
    let code = totp.generate((w.clock.now_ms() / 1000) as u64);
    b.c.delete_all_cookies().await.unwrap();
    b.goto("/console").await;
    b.type_into("input#staff-username", username).await;
    b.type_into("input#staff-password", password).await;
    b.type_into("input#staff-totp", &code).await;
    b.capture("console-signin").await;
    b.submit("#staff-signin").await;
    if !b.has("#dashboard").await {
        b.goto("/console").await;
    }
    b.find("#dashboard").await;
}

/// The operator's side: an admin created through the app layer signs in to the console
/// with password and TOTP, finds every section and the audit log's verification status;
/// the dashboard's charts are aggregate statistics, which a privacy officer sees and an
/// admin (no statistics permission) does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_signs_in_with_totp_and_sees_dashboard_and_audit() {
    if !browser_available() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let w = common::spawn().await;
    let addr = w.serve().await;
    let mut b = Browser::start(addr).await;

    b.step("admin: console sign-in with password and TOTP");
    console_sign_in(&mut b, &w, "browser.admin", Role::Admin).await;
    for href in [
        "/console/tickets",
        "/console/incidents",
        "/console/partners",
        "/console/policy",
        "/console/staff",
        "/console/audit",
    ] {
        b.find(&format!("a[href=\"{href}\"]")).await;
    }
    b.assert_absent("#dashboard svg.chart").await;

    b.step("admin: audit log with its verification status");
    b.submit("a[href=\"/console/audit\"]").await;
    let status = b.text("#audit-status").await;
    assert!(!status.trim().is_empty(), "#audit-status is empty");
    b.capture("console-audit").await;

    b.step("privacy officer: the dashboard draws its charts");
    console_sign_in(&mut b, &w, "browser.privacy", Role::PrivacyOfficer).await;
    let charts = b.all("#dashboard svg.chart").await;
    assert!(!charts.is_empty(), "the dashboard draws no svg.chart");
    b.capture("console-dashboard").await;

    let violations = std::mem::take(&mut b.violations);
    b.close().await;
    assert!(
        violations.is_empty(),
        "axe-core found WCAG 2.1 A/AA violations:\n{}",
        violations.join("\n")
    );
}
