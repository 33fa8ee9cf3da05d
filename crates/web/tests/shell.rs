//! The page shell: assets are served from the binary, pages carry a strict CSP, the
//! language follows `Accept-Language`, `?lang=` and the switch, and errors are pages.

mod common;

use axum::http::StatusCode;

#[tokio::test]
async fn assets_are_served_from_the_binary_and_unknown_ones_are_404() {
    let w = common::spawn().await;
    for name in ["app.css", "app.js", "icon.svg"] {
        let r = w.get(&format!("/assets/{name}"), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{name}");
        assert!(!r.body.is_empty(), "{name}");
    }
    assert_eq!(
        w.get("/assets/nope.js", &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn language_switch_sets_a_cookie_and_only_goes_back_to_this_site() {
    let w = common::spawn().await;
    let r = w.get("/lang?to=en&next=/search", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/search"));
    assert!(r
        .cookies()
        .iter()
        .any(|(k, v)| k == "custos-lang" && v == "en"));
    let r = w.get("/lang?to=zh&next=//evil.example/", &[]).await;
    assert_eq!(r.location(), Some("/"));
    assert_eq!(
        w.get("/lang?to=fr", &[]).await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn language_switch_never_sends_off_site_nor_fails_on_odd_bytes_in_next() {
    let w = common::spawn().await;
    // Browsers drop a tab inside a URL: `/<TAB>/evil.example` would be `//evil.example`.
    for next in [
        "/%09/evil.example",
        "/%0A",
        "/%E6%90%9C",
        "/a%20b",
        "/%5C%5Cevil",
    ] {
        let r = w.get(&format!("/lang?to=en&next={next}"), &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{next}");
        assert_eq!(r.location(), Some("/"), "{next}");
    }
    // The switch's cookie names a language only, and script cannot read it.
    let r = w.get("/lang?to=en&next=/", &[]).await;
    let set = r.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(set.starts_with("custos-lang=en;"), "{set}");
    assert!(set.contains("HttpOnly"), "{set}");
    for (input, want) in [
        (Some("/search?q=%E8%8C%B6"), "/search?q=%E8%8C%B6"),
        (Some("/\t/evil.example"), "/"),
        (Some("/\r\n/evil.example"), "/"),
        (Some("/ok path"), "/"),
        (Some("https://evil.example/"), "/"),
        (None, "/"),
    ] {
        assert_eq!(custos_web::forms::safe_next(input), want, "{input:?}");
    }
}

#[tokio::test]
async fn error_pages_carry_the_same_security_headers_as_pages() {
    let w = common::spawn().await;
    for uri in [
        "/items/abc",
        "/items/999999",
        "/receipts/nope",
        "/search?sort=cheapest",
    ] {
        let r = w.get(uri, &[]).await;
        assert!(r.status.is_client_error(), "{uri}: {}", r.status);
        assert!(r.body.contains("<main"), "{uri}");
        let h = |n: &str| {
            r.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert_eq!(
            h("content-security-policy"),
            custos_web::layout::CSP,
            "{uri}"
        );
        assert_eq!(h("x-content-type-options"), "nosniff", "{uri}");
        assert_eq!(h("referrer-policy"), "same-origin", "{uri}");
        assert!(h("content-type").starts_with("text/html"), "{uri}");
    }
}

#[tokio::test]
async fn malformed_queries_and_path_parameters_are_answered_with_pages() {
    let w = common::spawn().await;
    // A query that does not fit: a 400 page, not axum's plain text.
    let r = w.get("/lang", &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("<!DOCTYPE html>"), "{}", r.body);
    assert!(
        r.body.contains("data-error-code=\"invalid_query\""),
        "{}",
        r.body
    );
    assert!(r.headers.get("content-security-policy").is_some());
    // A path parameter that cannot name anything: a 404 page.
    let r = w
        .get("/console/incidents/99999999999999999999999999", &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("<!DOCTYPE html>"), "{}", r.body);
}
