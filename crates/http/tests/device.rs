//! Device information over HTTP, in-process through `app_with()`: fields kept only under
//! purposes that declare them (P9), listed and deleted per device, another user's device
//! answering 404 (IDOR), oversized and malformed reports refused with stable codes.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use custos_app::config::MasterKeySource;
use custos_app::identity::sms::Outbox;
use custos_app::{App, Config};
use custos_core::FakeClock;
use custos_crypto::{MasterKey, OsRng};
use serde_json::{json, Value};
use tower::ServiceExt;

struct TestApp {
    router: Router,
    dir: tempfile::TempDir,
    _app: App,
}

async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        data_dir: dir.path().to_path_buf(),
        database_url: format!("sqlite://{}", dir.path().join("custos.db").display()),
        vault_url: format!("sqlite://{}", dir.path().join("keys.db").display()),
        master_key: MasterKeySource::Inline(MasterKey::generate(&mut OsRng).to_base64()),
        ..Default::default()
    };
    let app = App::open(&cfg, Arc::new(FakeClock::default()))
        .await
        .unwrap();
    TestApp {
        router: custos_http::app_with(
            app.clone(),
            custos_http::HttpOptions {
                writes_per_second: 0,
            },
        ),
        dir,
        _app: app,
    }
}

struct Resp {
    status: StatusCode,
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
}

impl TestApp {
    async fn raw(
        &self,
        method: &str,
        uri: &str,
        body: Option<String>,
        token: Option<&str>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v)),
            None => b.body(Body::empty()),
        }
        .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Resp { status, body }
    }
    async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Resp {
        self.raw(method, uri, body.map(|v| v.to_string()), token)
            .await
    }

    async fn sign_in(&self, phone: &str) -> String {
        let r = self
            .call(
                "POST",
                "/api/v1/auth/sms/start",
                Some(json!({ "phone": phone })),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
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
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        r.json()["token"].as_str().unwrap().to_owned()
    }

    async fn consent(&self, token: &str, purpose: &str, decision: &str) {
        let r = self
            .call(
                "POST",
                "/api/v1/consents",
                Some(json!({"decisions":[{"purpose":purpose,"decision":decision}],"method":"dialog"})),
                Some(token),
            )
            .await;
        assert!(
            r.status.is_success(),
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
}

fn report() -> Value {
    json!({
        "model": "Pixel 9",
        "os_version": "Android 15",
        "app_version": "3.2.1",
        "settings": { "notifications": true, "font_scale": 1.2, "theme": "dark" },
        "device_id": "device-identifier-1234",
        "push_token": "push-token-abcd"
    })
}

#[tokio::test]
async fn device_fields_are_accepted_only_for_purposes_that_declare_them() {
    let t = spawn_app().await;
    let me = t.sign_in("+8613912345678").await;
    let r = t
        .call("POST", "/api/v1/me/devices", Some(report()), None)
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    // No device_info consent: only the push token (service notices) is kept.
    let r = t
        .call("POST", "/api/v1/me/devices", Some(report()), Some(&me))
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_eq!(v["stored"], json!({ "push_token": "service_notices" }));
    assert_eq!(v["refused"].as_array().unwrap().len(), 5);
    assert!(v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["code"] == "consent_missing"));
    // Only fields without a consented purpose: 403 with the gate's code, nothing stored.
    let r = t
        .call(
            "POST",
            "/api/v1/me/devices",
            Some(json!({ "model": "Pixel 9" })),
            Some(&me),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "consent_missing")
    );
    t.consent(&me, "device_info", "given").await;
    let r = t
        .call("POST", "/api/v1/me/devices", Some(report()), Some(&me))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let v = r.json();
    assert_eq!(
        v["stored"],
        json!({
            "app_version": "device_info", "device_id": "device_info", "model": "device_info",
            "os_version": "device_info", "settings": "device_info", "push_token": "service_notices"
        })
    );
    let id = v["id"].as_str().unwrap().to_owned();
    let list = t
        .call("GET", "/api/v1/me/devices", None, Some(&me))
        .await
        .json();
    let d = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(d["model"], "Pixel 9");
    assert_eq!(d["settings"]["font_scale"], 1.2);
    assert_eq!(d["purposes"]["model"], "device_info");
    assert!(d["expires_at"].is_string(), "device_info keeps 90 days");
    // Withdrawal: what device_info held is gone at once.
    let r = t
        .call(
            "POST",
            "/api/v1/consents/device_info/withdraw",
            None,
            Some(&me),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let list = t
        .call("GET", "/api/v1/me/devices", None, Some(&me))
        .await
        .json();
    for d in list["devices"].as_array().unwrap() {
        assert!(d["model"].is_null() && d["device_id"].is_null(), "{d}");
        assert_eq!(d["push_token"], "push-token-abcd");
    }
}

#[tokio::test]
async fn another_users_device_answers_404_like_one_that_does_not_exist() {
    let t = spawn_app().await;
    let a = t.sign_in("+8613912345678").await;
    let b = t.sign_in("+8613800138000").await;
    for who in [&a, &b] {
        t.consent(who, "device_info", "given").await;
    }
    let a_dev = t
        .call("POST", "/api/v1/me/devices", Some(report()), Some(&a))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_dev = t
        .call("POST", "/api/v1/me/devices", Some(report()), Some(&b))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for id in [
        b_dev.as_str(),
        "00000000000000000000000000000000",
        "not-an-id",
        "%2e%2e",
    ] {
        let uri = format!("/api/v1/me/devices/{id}");
        let r = t.call("DELETE", &uri, None, Some(&a)).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{id}"
        );
        let r = t
            .call("PUT", &uri, Some(json!({ "model": "x" })), Some(&a))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}");
    }
    let listed = t
        .call("GET", "/api/v1/me/devices", None, Some(&a))
        .await
        .json();
    assert_eq!(listed["devices"].as_array().unwrap().len(), 1);
    assert_eq!(listed["devices"][0]["id"], a_dev.as_str());
    // B's device is untouched; A's own goes.
    let listed = t
        .call("GET", "/api/v1/me/devices", None, Some(&b))
        .await
        .json();
    assert_eq!(listed["devices"][0]["model"], "Pixel 9");
    let r = t
        .call(
            "PUT",
            &format!("/api/v1/me/devices/{a_dev}"),
            Some(json!({ "model": "Pixel 10" })),
            Some(&a),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let listed = t
        .call("GET", "/api/v1/me/devices", None, Some(&a))
        .await
        .json();
    assert_eq!(listed["devices"][0]["model"], "Pixel 10");
    assert!(listed["devices"][0]["push_token"].is_null(), "PUT replaces");
    let r = t
        .call(
            "DELETE",
            &format!("/api/v1/me/devices/{a_dev}"),
            None,
            Some(&a),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let listed = t
        .call("GET", "/api/v1/me/devices", None, Some(&a))
        .await
        .json();
    assert_eq!(listed, json!({ "devices": [] }));
}

#[tokio::test]
async fn oversized_and_malformed_device_reports_are_refused_with_stable_codes() {
    let t = spawn_app().await;
    let me = t.sign_in("+8613912345678").await;
    t.consent(&me, "device_info", "given").await;
    let huge = json!({ "model": "m", "push_token": "t".repeat(20_000) }).to_string();
    let r = t
        .raw("POST", "/api/v1/me/devices", Some(huge), Some(&me))
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
    let cases: Vec<(String, u16, &str)> = vec![
        ("{".into(), 400, "invalid_json"),
        (json!({}).to_string(), 422, "invalid_device"),
        (json!({ "model": 7 }).to_string(), 422, "invalid_body"),
        (
            json!({ "model": "m", "imei": "1" }).to_string(),
            422,
            "invalid_body",
        ),
        (
            json!({ "model": "x".repeat(200) }).to_string(),
            422,
            "invalid_device",
        ),
        (
            json!({ "model": "line\nbreak" }).to_string(),
            422,
            "invalid_device",
        ),
        (
            json!({ "settings": { "a": { "deep": 1 } } }).to_string(),
            422,
            "invalid_device",
        ),
        (
            json!({ "settings": { "no spaces": 1 } }).to_string(),
            422,
            "invalid_device",
        ),
        (
            json!({ "settings": [1, 2] }).to_string(),
            422,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let r = t
            .raw("POST", "/api/v1/me/devices", Some(body.clone()), Some(&me))
            .await;
        assert_eq!(
            (r.status.as_u16(), r.code().as_str()),
            (status, code),
            "{body}"
        );
    }
    let listed = t
        .call("GET", "/api/v1/me/devices", None, Some(&me))
        .await
        .json();
    assert_eq!(listed, json!({ "devices": [] }), "nothing was stored");
}
