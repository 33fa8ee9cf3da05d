//! Ads, identifiers and equal treatment over HTTP, in-process through `app_with()`: no
//! identifier cookie without a consent that needs one, and it is cleared on withdrawal
//! (P27); slots targeted only with consent and without `Sec-GPC: 1`, GPC recorded once
//! (L14); the operator report k-anonymous; two very different profiles see identical
//! prices and terms on item pages, search, feed and ads (L13).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use custos_app::catalog::input::Format;
use custos_app::config::MasterKeySource;
use custos_app::identity::sms::Outbox;
use custos_app::signals::profile::{Condition, SegmentConfig};
use custos_app::{App, Config};
use custos_core::FakeClock;
use custos_crypto::{MasterKey, OsRng};
use serde_json::{json, Value};
use tower::ServiceExt;

const OPERATOR: &str = "operator-token-for-tests-0123";

struct TestApp {
    router: Router,
    dir: tempfile::TempDir,
    app: App,
    items: Vec<i64>,
}

async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config {
        data_dir: dir.path().to_path_buf(),
        database_url: format!("sqlite://{}", dir.path().join("custos.db").display()),
        vault_url: format!("sqlite://{}", dir.path().join("keys.db").display()),
        master_key: MasterKeySource::Inline(MasterKey::generate(&mut OsRng).to_base64()),
        ..Default::default()
    };
    cfg.catalog.operator_token = Some(OPERATOR.into());
    cfg.signals.segments = vec![SegmentConfig {
        id: "runners".into(),
        name: "Runners".into(),
        rule: vec![Condition {
            key: "category:shoes".into(),
            min: 1.0,
        }],
    }];
    let app = App::open(&cfg, Arc::new(FakeClock::default()))
        .await
        .unwrap();
    let json = r#"[
      {"external_id":"s1","title_zh":"跑鞋","title_en":"Running shoes","category":"shoes","tags":["running"],"price_min":"299.00","price_max":"399.00"},
      {"external_id":"s2","title_zh":"徒步鞋","title_en":"Hiking shoes","category":"shoes","tags":["hiking"],"price_min":"459.00"},
      {"external_id":"d1","title_zh":"夏季连衣裙","title_en":"Summer dress","category":"clothing","tags":["summer","dress"],"price_min":"159.00"},
      {"external_id":"d2","title_zh":"红色连衣裙","title_en":"Red dress","category":"clothing","tags":["red","dress"],"price_min":"189.50","price_max":"219.00"},
      {"external_id":"b1","title_zh":"帆布包","title_en":"Canvas bag","category":"bags","tags":["canvas"],"price_min":"89.00"}
    ]"#;
    let items = app
        .catalog
        .import_text(json, Format::Json, false, &mut |_| {})
        .await
        .unwrap()
        .ids;
    TestApp {
        router: custos_http::app_with(
            app.clone(),
            custos_http::HttpOptions {
                writes_per_second: 0,
            },
        ),
        dir,
        app,
        items,
    }
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
    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
    fn cookie(&self) -> Option<String> {
        self.headers
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

impl TestApp {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        }
        .unwrap();
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

    async fn sign_in(&self, phone: &str) -> String {
        let r = self
            .call(
                "POST",
                "/api/v1/auth/sms/start",
                Some(json!({ "phone": phone })),
                &[],
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::ACCEPTED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let id = r.json()["challenge_id"].as_str().unwrap().to_owned();
        let e164 = custos_app::identity::PhoneNumber::parse(phone)
            .unwrap()
            .e164()
            .to_owned();
        let entries = Outbox::read(&self.dir.path().join("sms-outbox.jsonl"));
        let text = &entries.iter().rev().find(|e| e.to == e164).unwrap().text;
        let code = text
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .unwrap()
            .to_owned();
        let r = self
            .call(
                "POST",
                "/api/v1/auth/sms/verify",
                Some(json!({ "challenge_id": id, "code": code })),
                &[],
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()["token"].as_str().unwrap().to_owned()
    }

    async fn consent(&self, auth: &[(&str, &str)], purpose: &str, decision: &str) -> Resp {
        let r = self
            .call(
                "POST",
                "/api/v1/consents",
                Some(json!({"decisions":[{"purpose":purpose,"decision":decision}],"method":"dialog"})),
                auth,
            )
            .await;
        assert!(
            r.status.is_success(),
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        r
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn no_identifier_cookie_is_set_without_consent_and_withdrawal_clears_it() {
    let t = spawn_app().await;
    let item = t.items[0];
    let pages = [
        ("GET", "/".to_owned(), None),
        ("GET", "/api/v1/items".to_owned(), None),
        ("GET", "/api/v1/items?q=dress".to_owned(), None),
        ("GET", format!("/api/v1/items/{item}"), None),
        ("GET", "/api/v1/feed".to_owned(), None),
        ("GET", "/api/v1/ads/slot?context=dress".to_owned(), None),
        (
            "POST",
            "/api/v1/ads/click".to_owned(),
            Some(json!({ "ad_id": item })),
        ),
    ];
    for (method, uri, body) in &pages {
        let r = t.call(method, uri, body.clone(), &[]).await;
        assert!(r.status.as_u16() < 500, "{uri}: {}", r.status);
        assert_eq!(r.cookie(), None, "{uri} set a cookie without consent");
    }
    // Refusing is not consenting: no identifier is set for it.
    let r = t.consent(&[], "personalized_ads", "refused").await;
    assert_eq!(r.cookie(), None, "a refusal set a cookie");
    let r = t.consent(&[], "service_logs_analytics", "withdrawn").await;
    assert_eq!(r.cookie(), None);
    // Consent to ads (which needs an identifier): the cookie appears.
    let r = t.consent(&[], "personalized_ads", "given").await;
    let cookie = r.cookie().expect("a cookie after consent");
    let token = r.json()["anonymous_token"].as_str().unwrap().to_owned();
    assert!(cookie.starts_with(&format!("__Host-custos-anon={token}")));
    let jar = format!("__Host-custos-anon={token}");
    let with_cookie = [("cookie", jar.as_str())];
    // Pages with the cookie set none again.
    for (method, uri, body) in &pages {
        let r = t.call(method, uri, body.clone(), &with_cookie).await;
        assert_eq!(r.cookie(), None, "{uri}");
    }
    // Withdrawing the last consent that needed it clears it.
    let r = t
        .call(
            "POST",
            "/api/v1/consents/personalized_ads/withdraw",
            None,
            &with_cookie,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let cleared = r.cookie().expect("the cookie is cleared");
    assert!(
        cleared.starts_with("__Host-custos-anon=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    // While another consent needs it, a withdrawal keeps it.
    let r = t.consent(&[], "personalized_ads", "given").await;
    let token = r.json()["anonymous_token"].as_str().unwrap().to_owned();
    let anon = [("x-custos-anonymous", token.as_str())];
    let r = t.consent(&anon, "device_info", "given").await;
    assert_eq!(r.cookie(), None, "an existing identifier is not reissued");
    let r = t
        .call("POST", "/api/v1/consents/device_info/withdraw", None, &anon)
        .await;
    assert_eq!(r.cookie(), None, "ads still need the identifier");
    // Refusing the last one through the decisions endpoint clears it as well.
    let r = t.consent(&anon, "personalized_ads", "refused").await;
    assert!(r.cookie().unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn ad_slots_are_targeted_only_with_consent_and_without_gpc_which_is_recorded_once() {
    let t = spawn_app().await;
    let token = t.sign_in("+8613912345678").await;
    let auth = bearer(&token);
    let me = [("authorization", auth.as_str())];
    let subject = t.app.identity.authenticate(&token).await.unwrap().subject;
    t.consent(&me, "personalized_feed", "given").await;
    t.app
        .signals
        .add_affinity(subject, "category:shoes", 4.0, &Default::default())
        .await
        .unwrap();
    let slot = |headers: Vec<(&'static str, String)>| {
        let t = &t;
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = t
                .call("GET", "/api/v1/ads/slot?context=dress", None, &h)
                .await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "{}",
                String::from_utf8_lossy(&r.body)
            );
            r.json()
        }
    };
    let v = slot(vec![("authorization", auth.clone())]).await;
    assert_eq!(v["targeted"], false, "no ads consent yet");
    assert_eq!(v["ad"]["category"], "clothing");
    assert_eq!(v["label"], "广告 / Ad");
    t.consent(&me, "personalized_ads", "given").await;
    let v = slot(vec![("authorization", auth.clone())]).await;
    assert_eq!(v["targeted"], true);
    assert_eq!(v["ad"]["category"], "shoes");
    // Sec-GPC: 1, three times: contextual, and one objection per purpose in the ledger.
    for _ in 0..3 {
        let v = slot(vec![
            ("authorization", auth.clone()),
            ("sec-gpc", "1".into()),
        ])
        .await;
        assert_eq!(v["targeted"], false);
        assert_eq!(v["ad"]["category"], "clothing");
    }
    let history = t.call("GET", "/api/v1/consents", None, &me).await.json();
    let gpc: Vec<(String, String)> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "gpc")
        .map(|r| {
            (
                r["purpose"].as_str().unwrap().to_owned(),
                r["decision"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        gpc,
        vec![
            ("personalized_ads".to_owned(), "withdrawn".to_owned()),
            ("partner_sharing".to_owned(), "refused".to_owned())
        ]
    );
    let v = slot(vec![("authorization", auth.clone())]).await;
    assert_eq!(v["targeted"], false, "the objection stands");
    let statuses = t.call("GET", "/api/v1/purposes", None, &me).await.json();
    let ads = statuses
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["purpose"] == "personalized_ads")
        .unwrap();
    assert_eq!(ads["status"], "consent_withdrawn");
}

#[tokio::test]
async fn the_ad_report_needs_the_operator_and_releases_only_groups_of_at_least_k_users() {
    let t = spawn_app().await;
    let r = t
        .call("GET", "/api/v1/operator/ads/report", None, &[])
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    // k = 10 by default: ten consenting visitors see the bag, three see the shoes.
    for (context, viewers) in [("canvas", 10), ("running", 3)] {
        for _ in 0..viewers {
            let r = t.consent(&[], "personalized_ads", "given").await;
            let token = r.json()["anonymous_token"].as_str().unwrap().to_owned();
            let h = [("x-custos-anonymous", token.as_str())];
            let v = t
                .call(
                    "GET",
                    &format!("/api/v1/ads/slot?context={context}"),
                    None,
                    &h,
                )
                .await
                .json();
            let click = t
                .call(
                    "POST",
                    "/api/v1/ads/click",
                    Some(json!({ "ad_id": v["ad"]["ad_id"], "targeted": v["targeted"] })),
                    &h,
                )
                .await;
            assert_eq!(click.json(), json!({ "recorded": true }));
        }
    }
    // Visitors without consent are not counted at all.
    for _ in 0..5 {
        t.call("GET", "/api/v1/ads/slot?context=running", None, &[])
            .await;
    }
    let op = bearer(OPERATOR);
    let r = t
        .call(
            "GET",
            "/api/v1/operator/ads/report",
            None,
            &[("authorization", op.as_str())],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let bag = t.items[4];
    let shoes = t.items[0];
    assert_eq!(
        r.json(),
        json!({
            "min_group_users": 10,
            "groups": [
                { "ad_id": shoes, "targeted": false, "suppressed": true },
                { "ad_id": bag, "targeted": false, "suppressed": false,
                  "users": 10, "impressions": 10, "clicks": 10 },
            ]
        })
    );
}

#[tokio::test]
async fn bad_ad_input_gets_stable_codes() {
    let t = spawn_app().await;
    let long = "x".repeat(65);
    for (method, uri, body, status, code) in [
        (
            "GET",
            format!("/api/v1/ads/slot?context={long}"),
            None,
            422,
            "invalid_context",
        ),
        (
            "GET",
            "/api/v1/ads/slot?context=a%00b".to_owned(),
            None,
            422,
            "invalid_context",
        ),
        (
            "GET",
            "/api/v1/ads/slot?user=42".to_owned(),
            None,
            400,
            "invalid_query",
        ),
        (
            "POST",
            "/api/v1/ads/click".to_owned(),
            Some(json!({ "ad_id": 999_999 })),
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/ads/click".to_owned(),
            Some(json!({ "ad_id": "one" })),
            422,
            "invalid_body",
        ),
        (
            "POST",
            "/api/v1/ads/click".to_owned(),
            Some(json!({ "ad_id": 1, "subject": "x" })),
            422,
            "invalid_body",
        ),
    ] {
        let r = t.call(method, &uri, body, &[]).await;
        assert_eq!(
            (r.status.as_u16(), r.code().as_str()),
            (status, code),
            "{uri}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
}

/// Prices and terms of each item, by id, from a list of summaries or details.
fn terms(items: &Value) -> BTreeMap<i64, Value> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_i64().unwrap(),
                json!([i["price_min"], i["price_max"], i["currency"]]),
            )
        })
        .collect()
}

#[tokio::test]
async fn two_very_different_profiles_see_identical_prices_and_terms() {
    let t = spawn_app().await;
    // A: consents to everything, a strong shoes profile, a segment, two devices.
    let a_token = t.sign_in("+8613912345678").await;
    let a_auth = bearer(&a_token);
    let a = [("authorization", a_auth.as_str())];
    let a_subject = t.app.identity.authenticate(&a_token).await.unwrap().subject;
    for p in [
        "personalized_feed",
        "personalized_ads",
        "device_info",
        "service_logs_analytics",
    ] {
        t.consent(&a, p, "given").await;
    }
    for (k, w) in [
        ("category:shoes", 9.0),
        ("tag:running", 6.0),
        ("tag:hiking", 3.0),
    ] {
        t.app
            .signals
            .add_affinity(a_subject, k, w, &Default::default())
            .await
            .unwrap();
    }
    for model in ["iPhone 16 Pro Max", "iPad Pro"] {
        let r = t
            .call(
                "POST",
                "/api/v1/me/devices",
                Some(json!({ "model": model, "os_version": "iOS 18", "push_token": "tok" })),
                &a,
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let segs = t.call("GET", "/api/v1/me/segments", None, &a).await.json();
    assert_eq!(segs["segments"][0]["id"], "runners", "{segs}");
    // B: no consent at all, a budget Android phone's GPC signal, a dress trait that is
    // never used (no consent).
    let b_token = t.sign_in("+8613800138000").await;
    let b_auth = bearer(&b_token);
    let b = [("authorization", b_auth.as_str()), ("sec-gpc", "1")];
    let feed_a = t
        .call("GET", "/api/v1/feed?limit=50", None, &a)
        .await
        .json();
    let feed_b = t
        .call("GET", "/api/v1/feed?limit=50", None, &b)
        .await
        .json();
    assert_eq!(
        feed_a["personalized"], true,
        "A's profile is in use: {feed_a}"
    );
    assert_eq!(feed_b["personalized"], false);
    assert_eq!(terms(&feed_a["items"]), terms(&feed_b["items"]));
    assert_eq!(terms(&feed_a["items"]).len(), t.items.len());
    for uri in [
        format!("/api/v1/items?q={}", urlencode("shoes")),
        format!("/api/v1/items?q={}", urlencode("连衣裙")),
        "/api/v1/items?q=dress&sort=newest".to_owned(),
        "/api/v1/items?category=shoes".to_owned(),
        "/api/v1/items".to_owned(),
    ] {
        let q = &uri;
        let ra = t.call("GET", &uri, None, &a).await.json();
        let rb = t.call("GET", &uri, None, &b).await.json();
        assert_eq!(terms(&ra["items"]), terms(&rb["items"]), "{q}");
        assert_eq!(ra["total"], rb["total"]);
        assert_eq!(ra["facets"], rb["facets"], "{q}: price buckets included");
    }
    for id in &t.items {
        let uri = format!("/api/v1/items/{id}");
        let ra = t.call("GET", &uri, None, &a).await;
        let rb = t.call("GET", &uri, None, &b).await;
        assert_eq!(ra.status, StatusCode::OK);
        assert_eq!(ra.body, rb.body, "item {id}: the whole page is identical");
    }
    // Ads: A's is targeted, B's contextual; each shows the item page's own price.
    let ad_a = t
        .call("GET", "/api/v1/ads/slot?context=dress", None, &a)
        .await
        .json();
    let ad_b = t
        .call("GET", "/api/v1/ads/slot?context=dress", None, &b)
        .await
        .json();
    assert_eq!(
        (ad_a["targeted"].clone(), ad_b["targeted"].clone()),
        (json!(true), json!(false))
    );
    for ad in [&ad_a["ad"], &ad_b["ad"]] {
        let page = t
            .call(
                "GET",
                &format!("/api/v1/items/{}", ad["item_id"]),
                None,
                &[],
            )
            .await
            .json();
        assert_eq!(
            json!([ad["price_min"], ad["price_max"], ad["currency"]]),
            json!([page["price_min"], page["price_max"], page["currency"]])
        );
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
