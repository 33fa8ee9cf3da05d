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
    assert_eq!(w.get("/assets/nope.js", &[]).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn language_switch_sets_a_cookie_and_only_goes_back_to_this_site() {
    let w = common::spawn().await;
    let r = w.get("/lang?to=en&next=/search", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/search"));
    assert!(r.cookies().iter().any(|(k, v)| k == "custos-lang" && v == "en"));
    let r = w.get("/lang?to=zh&next=//evil.example/", &[]).await;
    assert_eq!(r.location(), Some("/"));
    assert_eq!(w.get("/lang?to=fr", &[]).await.status, StatusCode::BAD_REQUEST);
}
