//! The policy page (P2, P40), its version history and readable diff, and the re-consent
//! dialog (P3, P35, L4): a purpose a new version widens or adds stays paused until the
//! user agrees through the dialog; "not now" keeps it paused; other purposes keep running.

mod common;

use axum::http::StatusCode;
use custos_app::consent::DecisionInput;
use custos_core::{ConsentMethod, Decision, Denial, GateContext, SubjectId};
use custos_policy::{Policy, BUNDLED_DECLARATION};

const PHONE: &str = "+8613912345678";

const ADDED_PURPOSE: &str = r#"

[[purposes]]
id = "price_alerts"
data_use = "essential.service.notifications"
tier = "additional"
basis = "consent"
categories = ["user.unique_id.pseudonymous", "user.content.private"]
methods = ["storage", "use"]
retention = { days = 30, from = "withdrawal" }
impact_assessment = "PIA-2026-03-personalization"
name = { en = "Price drop alerts", zh = "降价提醒" }
description = { en = "Tells you when a bookmarked item gets cheaper.", zh = "收藏的商品降价时提醒您。" }
"#;

fn with_added_purpose() -> Policy {
    Policy::parse(&format!("{BUNDLED_DECLARATION}{ADDED_PURPOSE}")).unwrap()
}

/// The bundled declaration with one more category for `purpose` (widens it).
fn widened(purpose: &str, category: &str) -> Policy {
    let src = BUNDLED_DECLARATION;
    let at = src.find(&format!("id = \"{purpose}\"\ndata_use")).unwrap();
    let cats = at + src[at..].find("categories = [").unwrap() + "categories = [".len();
    Policy::parse(&format!("{}\"{category}\", {}", &src[..cats], &src[cats..])).unwrap()
}

fn gate(w: &common::WebApp, subject: SubjectId, purpose: &str) -> Result<(), Denial> {
    w.app
        .kernel
        .gate
        .check_named(subject, purpose, &[], &GateContext::default())
        .map(|_| ())
}

async fn give(w: &common::WebApp, subject: SubjectId, purposes: &[&str]) {
    let decisions: Vec<DecisionInput> = purposes
        .iter()
        .map(|p| DecisionInput {
            purpose: (*p).to_owned(),
            decision: Decision::Given,
        })
        .collect();
    w.app
        .kernel
        .record_decisions(subject, false, &decisions, ConsentMethod::Dialog)
        .await
        .unwrap();
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[tokio::test]
async fn the_policy_page_renders_the_declaration_in_chinese_and_in_english() {
    let w = common::spawn().await;
    let policy = Policy::bundled().unwrap();
    let d = policy.declaration();
    let feed = policy.purpose("personalized_feed").unwrap();

    let zh = w.get("/privacy/policy?lang=zh", &[]).await;
    assert_eq!(zh.status, StatusCode::OK);
    assert!(zh.body.contains("id=\"policy-body\""));
    assert!(zh.body.contains(&d.app.zh), "the app's Chinese name");
    assert!(zh.body.contains(&feed.name.zh));
    assert!(zh.body.contains("版本历史"));
    // The renderer's own document shell is not nested inside the page.
    assert_eq!(count(&zh.body, "<html"), 1);
    assert_eq!(count(&zh.body, "<body"), 1);
    assert!(!zh.body.contains("<style>"), "no inline style (CSP)");

    let en = w.get("/privacy/policy", &[]).await;
    assert_eq!(en.status, StatusCode::OK);
    assert!(en.body.contains(&d.app.en));
    assert!(en.body.contains(&feed.name.en));
    assert!(en.body.contains("Version history"));
    assert!(en.body.contains(policy.hash().short()));
    assert_eq!(count(&en.body, "<li data-version="), 1);
}

#[tokio::test]
async fn publishing_a_version_lists_it_and_the_diff_page_shows_the_added_purpose() {
    let w = common::spawn().await;
    let v1 = w.app.kernel.gate.regime().current().hash().to_string();
    let v2 = with_added_purpose();
    w.app.policy_ops.publish_revision(&v2).await.unwrap();
    let v2h = v2.hash().to_string();

    let page = w.get("/privacy/policy", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(count(&page.body, "<li data-version="), 2, "{}", page.body);
    let link = format!("/privacy/policy/diff?from={v1}&amp;to={v2h}");
    assert!(page.body.contains(&link), "diff link per version");
    // The current version is rendered: it has the new purpose.
    assert!(page.body.contains("Price drop alerts"));

    let diff = w
        .get(&format!("/privacy/policy/diff?from={v1}&to={v2h}"), &[])
        .await;
    assert_eq!(diff.status, StatusCode::OK);
    assert!(diff.body.contains("id=\"policy-diff\""));
    assert!(diff
        .body
        .contains("data-purpose=\"price_alerts\" data-status=\"added\""));
    assert!(diff.body.contains("Price drop alerts"));
    assert!(diff.body.contains("Needs your consent again"));
    let zh = w
        .get(
            &format!("/privacy/policy/diff?from={v1}&to={v2h}&lang=zh"),
            &[],
        )
        .await;
    assert!(zh.body.contains("降价提醒"));
    assert!(zh.body.contains("新增的用途"));

    // An older version can be read on its own.
    let old = w.get(&format!("/privacy/policy?version={v1}"), &[]).await;
    assert_eq!(old.status, StatusCode::OK);
    assert!(!old.body.contains("Price drop alerts"));

    // Client mistakes are pages with a 4xx, never a 500.
    for (uri, status) in [
        ("/privacy/policy/diff", StatusCode::BAD_REQUEST),
        (
            "/privacy/policy/diff?from=zz&to=zz",
            StatusCode::BAD_REQUEST,
        ),
        (
            &format!("/privacy/policy/diff?from=abcdef012345&to={v2h}") as &str,
            StatusCode::NOT_FOUND,
        ),
        (
            "/privacy/policy?version=%3Cscript%3E",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = w.get(uri, &[]).await;
        assert_eq!(r.status, status, "{uri}");
        assert!(r.body.contains("<html"), "{uri}: an HTML page");
    }
}

#[tokio::test]
async fn a_widened_purpose_shows_the_dialog_stays_paused_until_agreed_and_others_keep_running() {
    let w = common::spawn().await;
    let u = w.sign_in_user(PHONE).await;
    give(&w, u.subject, &["personalized_feed", "personalized_ads"]).await;
    assert_eq!(gate(&w, u.subject, "personalized_feed"), Ok(()));

    let v2 = widened("personalized_feed", "user.device.device_id");
    w.app.policy_ops.publish_revision(&v2).await.unwrap();
    assert_eq!(
        gate(&w, u.subject, "personalized_feed"),
        Err(Denial::ConsentOutdated)
    );
    assert_eq!(gate(&w, u.subject, "personalized_ads"), Ok(()));

    // Signed out: no dialog.
    let anon = w.get("/contact", &[]).await;
    assert!(!anon.body.contains("reconsent-dialog"));

    let page = w.get("/contact", &[u.cookie()]).await;
    assert!(
        page.body.contains("id=\"reconsent-dialog\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("role=\"dialog\""));
    assert!(page.body.contains("aria-modal=\"true\""));
    assert!(page.body.contains("id=\"reconsent-agree\""));
    assert!(page.body.contains("Personalized suggestions"));
    assert!(page.body.contains("/privacy/policy/diff?from="));

    // "Not now": the dialog goes away for this session; the purpose stays paused.
    let r = w
        .post_form(
            "/privacy/reconsent/later",
            &[u.cookie()],
            &[("_csrf", &u.csrf), ("next", "/contact")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/contact"));
    let page = w.get("/contact", &[u.cookie()]).await;
    assert!(!page.body.contains("reconsent-dialog"));
    assert_eq!(
        gate(&w, u.subject, "personalized_feed"),
        Err(Denial::ConsentOutdated)
    );

    // Agreeing needs the CSRF token.
    let r = w
        .post_form("/privacy/reconsent", &[u.cookie()], &[("next", "/contact")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        gate(&w, u.subject, "personalized_feed"),
        Err(Denial::ConsentOutdated)
    );

    let r = w
        .post_form(
            "/privacy/reconsent",
            &[u.cookie()],
            &[("_csrf", &u.csrf), ("next", "/contact")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let done = r.location().unwrap().to_owned();
    assert!(done.starts_with("/privacy/reconsent/done?"), "{done}");
    let done = w.get(&done, &[u.cookie()]).await;
    assert!(done.body.contains("id=\"receipt-link\""));
    assert_eq!(gate(&w, u.subject, "personalized_feed"), Ok(()));
    assert_eq!(gate(&w, u.subject, "personalized_ads"), Ok(()));
    let page = w.get("/contact", &[u.cookie()]).await;
    assert!(!page.body.contains("reconsent-dialog"));
}

#[tokio::test]
async fn an_added_purpose_is_offered_in_the_dialog_and_disappears_after_agreeing() {
    let w = common::spawn().await;
    let u = w.sign_in_user(PHONE).await;
    w.app
        .policy_ops
        .publish_revision(&with_added_purpose())
        .await
        .unwrap();
    assert_eq!(
        gate(&w, u.subject, "price_alerts"),
        Err(Denial::ConsentMissing)
    );
    let page = w.get("/contact?lang=zh", &[u.cookie()]).await;
    assert!(
        page.body.contains("id=\"reconsent-dialog\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("data-purpose=\"price_alerts\""));
    assert!(page.body.contains("降价提醒"));
    // The policy pages themselves stay readable (no dialog over the diff).
    let diff_page = w.get("/privacy/policy", &[u.cookie()]).await;
    assert!(!diff_page.body.contains("id=\"reconsent-dialog\""));

    let r = w
        .post_form(
            "/privacy/reconsent",
            &[u.cookie()],
            &[("_csrf", &u.csrf), ("next", "//evil.example/")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        r.location().unwrap().contains("next=%2F&"),
        "{:?}",
        r.location()
    );
    assert_eq!(gate(&w, u.subject, "price_alerts"), Ok(()));
    let page = w.get("/contact", &[u.cookie()]).await;
    assert!(!page.body.contains("reconsent-dialog"));
}
