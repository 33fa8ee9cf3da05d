//! The HTTP API, called in-process through `app()` (no socket), on the embedded default.
//! P1, P2, P27, P38, P39, P40, L2, L14; DESIGN invariant 5.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use custos_app::config::MasterKeySource;
use custos_app::{App, Config, Kernel};
use custos_core::FakeClock;
use custos_crypto::{MasterKey, OsRng};
use serde_json::{json, Value};
use tower::ServiceExt;

struct TestApp {
    router: Router,
    app: App,
    kernel: Arc<Kernel>,
    _dir: tempfile::TempDir,
}

async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        data_dir: dir.path().to_path_buf(),
        database_url: format!("sqlite://{}", dir.path().join("custos.db").display()),
        vault_url: format!("sqlite://{}", dir.path().join("keys.db").display()),
        master_key: MasterKeySource::Inline(MasterKey::generate(&mut OsRng).to_base64()),
        policy: None,
        ..Default::default()
    };
    let app = App::open(&cfg, Arc::new(FakeClock::default()))
        .await
        .unwrap();
    TestApp {
        router: custos_http::app(app.clone()),
        kernel: app.kernel.clone(),
        app,
        _dir: dir,
    }
}

async fn spawn_app_with(opts: custos_http::HttpOptions) -> TestApp {
    let mut app = spawn_app().await;
    app.router = custos_http::app_with(app.app.clone(), opts);
    app
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
}

impl TestApp {
    async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }
    async fn get(&self, uri: &str, token: Option<&str>) -> Resp {
        let mut b = Request::get(uri);
        if let Some(t) = token {
            b = b.header("x-custos-anonymous", t);
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }
    async fn post_json(&self, uri: &str, body: Value, token: Option<&str>) -> Resp {
        let mut b = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            b = b.header("x-custos-anonymous", t);
        }
        self.send(b.body(Body::from(body.to_string())).unwrap())
            .await
    }
    async fn post_raw(&self, uri: &str, content_type: Option<&str>, body: Vec<u8>) -> Resp {
        let mut b = Request::post(uri);
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        self.send(b.body(Body::from(body)).unwrap()).await
    }
}

fn decide(purpose: &str, decision: &str) -> Value {
    json!({ "decisions": [{ "purpose": purpose, "decision": decision }], "method": "dialog" })
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
    let r = app.get("/readyz", None).await;
    assert_eq!((r.status, r.text()), (StatusCode::OK, "ready".to_owned()));
}

#[tokio::test]
async fn readiness_fails_with_503_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.kernel.db.close().await;
    let r = app.get("/readyz", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.code(), "unavailable");
}

#[tokio::test]
async fn the_policy_is_served_rendered_and_machine_readable_from_one_declaration() {
    let app = spawn_app().await;
    let doc = app.get("/api/v1/policy", None).await.json();
    let hash = doc["hash"].as_str().unwrap().to_owned();
    assert_eq!(hash.len(), 64);
    let decl = &doc["declaration"];
    let page_en = app.get("/api/v1/policy/page?lang=en", None).await;
    assert!(page_en.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page_zh = app.get("/policy", None).await.text();
    let md = app
        .get("/api/v1/policy/page?lang=en&format=markdown", None)
        .await
        .text();
    // Every feature and purpose of the machine-readable declaration is on the page (P2, P40).
    for f in decl["features"].as_array().unwrap() {
        assert!(
            page_en.text().contains(f["name"]["en"].as_str().unwrap()),
            "feature {} missing",
            f["id"]
        );
        assert!(
            page_zh.contains(f["name"]["zh"].as_str().unwrap()),
            "feature {} missing in zh",
            f["id"]
        );
        assert!(md.contains(f["name"]["en"].as_str().unwrap()));
    }
    assert!(
        page_en.text().contains(&hash[..12]),
        "the page names its version"
    );
    let records = app.get("/api/v1/policy/records", None).await.json();
    assert_eq!(
        records.to_string().matches("\"data_use\"").count(),
        decl["purposes"].as_array().unwrap().len()
    );
    // Accept-Language picks English when no lang is given.
    let r = app
        .send(
            Request::get("/policy")
                .header(header::ACCEPT_LANGUAGE, "en-US,en;q=0.9")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(r.text().contains("lang=\"en\""));
    let bad = app.get("/api/v1/policy/page?lang=fr", None).await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, "invalid_lang".to_owned())
    );
}

#[tokio::test]
async fn reading_pages_sets_no_identifier_and_every_optional_purpose_starts_off() {
    let app = spawn_app().await;
    for uri in [
        "/",
        "/policy",
        "/api/v1/policy",
        "/api/v1/purposes",
        "/api/v1/policy/records",
        "/.well-known/gpc.json",
    ] {
        let r = app.get(uri, None).await;
        assert!(
            r.headers.get(header::SET_COOKIE).is_none(),
            "{uri} set a cookie"
        );
    }
    let purposes = app.get("/api/v1/purposes", None).await.json();
    for p in purposes.as_array().unwrap() {
        let status = p["status"].as_str().unwrap();
        if p["basis"] == "consent" {
            assert_eq!(
                status, "consent_missing",
                "{} must start off (L2)",
                p["purpose"]
            );
        } else {
            assert_eq!(status, "not_applicable");
        }
    }
}

#[tokio::test]
async fn recording_a_decision_issues_an_anonymous_id_and_a_verifiable_receipt() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/api/v1/consents",
            decide("personalized_ads", "given"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let cookie = r.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-custos-anon="));
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "cookie lacks {attr}");
    }
    let body = r.json();
    let token = body["anonymous_token"].as_str().unwrap().to_owned();
    assert!(cookie.contains(&token));
    // The receipt verifies with the published key and says what was decided.
    let keys = app
        .get("/.well-known/custos/receipt-keys.json", None)
        .await
        .json();
    let vk = custos_crypto::verifying_key_from_jwk(&keys["keys"][0]).unwrap();
    let payload: Value = serde_json::from_slice(
        &custos_crypto::verify_jws(&vk, body["jws"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(payload, body["receipt"]);
    assert_eq!(payload["collectionMethod"], "dialog");
    // The identifier works as header and as cookie; later decisions add to the same subject.
    let by_cookie = app
        .send(
            Request::get("/api/v1/consents")
                .header(
                    header::COOKIE,
                    format!("other=1; __Host-custos-anon={token}"),
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(by_cookie.json().as_array().unwrap().len(), 1);
    let again = app
        .post_json(
            "/api/v1/consents",
            decide("device_info", "refused"),
            Some(&token),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert!(
        again.headers.get(header::SET_COOKIE).is_none(),
        "an existing identifier is not reissued"
    );
    let history = app.get("/api/v1/consents", Some(&token)).await.json();
    assert_eq!(history.as_array().unwrap().len(), 2);
    let id = history[0]["receipt_id"].as_str().unwrap();
    let receipt = app
        .get(&format!("/api/v1/receipts/{id}"), Some(&token))
        .await;
    assert_eq!(
        receipt.json()["jws"],
        body["jws"],
        "the same receipt, the same signature"
    );
}

#[tokio::test]
async fn withdrawal_is_one_call_and_takes_effect_on_the_next_request() {
    let app = spawn_app().await;
    let token = app
        .post_json(
            "/api/v1/consents",
            decide("personalized_ads", "given"),
            None,
        )
        .await
        .json()["anonymous_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let status = |v: Value| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|p| p["purpose"] == "personalized_ads")
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(
        status(app.get("/api/v1/purposes", Some(&token)).await.json()),
        "active"
    );
    let w = app
        .send(
            Request::post("/api/v1/consents/personalized_ads/withdraw")
                .header("x-custos-anonymous", &token)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(w.status, StatusCode::OK, "{}", w.text());
    assert_eq!(
        w.json()["receipt"]["custos"]["decisions"][0]["decision"],
        "withdrawn"
    );
    assert_eq!(
        status(app.get("/api/v1/purposes", Some(&token)).await.json()),
        "consent_withdrawn"
    );
}

#[tokio::test]
async fn anonymous_callers_cannot_decide_on_purposes_that_need_an_account() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/api/v1/consents",
            decide("personalized_feed", "given"),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "account_required".to_owned())
    );
    assert!(
        r.headers.get(header::SET_COOKIE).is_none(),
        "no identifier for a refused request"
    );
}

#[tokio::test]
async fn malformed_input_gets_a_4xx_with_a_stable_code() {
    let app = spawn_app().await;
    let cases: Vec<(Resp, StatusCode, &str)> = vec![
        (app.post_raw("/api/v1/consents", Some("application/json"), b"{bad".to_vec()).await, StatusCode::BAD_REQUEST, "invalid_json"),
        (app.post_raw("/api/v1/consents", None, b"{}".to_vec()).await, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        (app.post_json("/api/v1/consents", json!({"decisions": "yes"}), None).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (app.post_json("/api/v1/consents", json!({"decisions": [], "extra": 1}), None).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (app.post_json("/api/v1/consents", json!({"decisions": []}), None).await, StatusCode::UNPROCESSABLE_ENTITY, "no_decisions"),
        (app.post_json("/api/v1/consents", decide("no_such_purpose", "given"), None).await, StatusCode::UNPROCESSABLE_ENTITY, "unknown_purpose"),
        (app.post_json("/api/v1/consents", decide("catalog", "given"), None).await, StatusCode::UNPROCESSABLE_ENTITY, "consent_not_applicable"),
        (app.post_json("/api/v1/consents", decide("personalized_ads", "maybe"), None).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (app.post_json("/api/v1/consents", json!({"decisions": [{"purpose": "personalized_ads", "decision": "given"}], "method": "gpc"}), None).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_method"),
        (app.post_raw("/api/v1/consents", Some("application/json"), vec![b' '; custos_http::MAX_BODY_BYTES + 1]).await, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        (app.get("/api/v1/receipts/not-a-uuid", Some("x")).await, StatusCode::BAD_REQUEST, "invalid_path"),
        (app.get("/api/v1/consents", None).await, StatusCode::UNAUTHORIZED, "unidentified"),
        (app.get("/api/v1/consents", Some("forged-token")).await, StatusCode::UNAUTHORIZED, "unidentified"),
        (app.get("/no/such/route", None).await, StatusCode::NOT_FOUND, "not_found"),
    ];
    for (i, (r, status, code)) in cases.into_iter().enumerate() {
        assert_eq!(
            (r.status, r.code()),
            (status, code.to_owned()),
            "case {i}: {}",
            r.text()
        );
    }
    let dup = json!({"decisions": [{"purpose": "personalized_ads", "decision": "given"}, {"purpose": "personalized_ads", "decision": "refused"}]});
    assert_eq!(
        app.post_json("/api/v1/consents", dup, None).await.code(),
        "duplicate_purpose"
    );
    let many: Vec<Value> = (0..65)
        .map(|i| json!({"purpose": format!("p{i}"), "decision": "given"}))
        .collect();
    assert_eq!(
        app.post_json("/api/v1/consents", json!({"decisions": many}), None)
            .await
            .code(),
        "too_many_decisions"
    );
}

#[tokio::test]
async fn gpc_is_announced_and_metrics_are_exported() {
    let app = spawn_app().await;
    assert_eq!(
        app.get("/.well-known/gpc.json", None).await.json()["gpc"],
        true
    );
    app.get("/healthz", None).await;
    let m = app.get("/metrics", None).await.text();
    assert!(m.contains("custos_http_requests_total"), "{m}");
    assert!(m.contains("route=\"/healthz\""));
}

#[tokio::test]
async fn the_committed_openapi_document_matches_the_served_one() {
    let app = spawn_app().await;
    let served = app.get("/api/openapi.json", None).await.text();
    assert!(
        served.contains("\"openapi\": \"3.1"),
        "OpenAPI 3.1 expected"
    );
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let committed = std::fs::read_to_string(committed_path).unwrap_or_default();
    assert!(
        committed == served,
        "docs/openapi.json is out of date; regenerate with `cargo run -p custos -- openapi > docs/openapi.json`"
    );
}

#[tokio::test]
async fn a_client_sending_too_many_writes_is_told_to_slow_down() {
    let app = spawn_app_with(custos_http::HttpOptions {
        writes_per_second: 2,
    })
    .await;
    let mut codes = Vec::new();
    for _ in 0..8 {
        let r = app
            .post_json(
                "/api/v1/consents",
                decide("personalized_ads", "given"),
                None,
            )
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.code(), "rate_limited");
            assert!(r.headers.contains_key(header::RETRY_AFTER));
        }
        codes.push(r.status.as_u16());
    }
    assert_eq!(
        codes.iter().filter(|c| **c == 201).count(),
        4,
        "burst of twice the rate, then 429: {codes:?}"
    );
    assert!(codes[4..].iter().all(|c| *c == 429), "{codes:?}");
    // Reads are not limited.
    assert_eq!(
        app.get("/api/v1/purposes", None).await.status,
        StatusCode::OK
    );
}
