//! The signals API over HTTP, in-process through `app()`, on the embedded default: the
//! present location as a coarse area under its consent and switch, the switch turning it
//! off at once, and no route reaching another user's location (P8, L16).

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

const PHONE: &str = "+8613912345678";
const OTHER: &str = "+8613800138000";
const LAT: f64 = 30.274_084_7;
const LON: f64 = 120.155_070_1;

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
        policy: None,
        ..Default::default()
    };
    let app = App::open(&cfg, Arc::new(FakeClock::default()))
        .await
        .unwrap();
    TestApp {
        // The per-address write limit is tested in api.rs; these tests send many writes
        // from one (unknown) address.
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
}

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a str, Option<&'a str>),
}

struct Session {
    token: String,
}

impl TestApp {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>, auth: Auth<'_>) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        match auth {
            Auth::None => {}
            Auth::Bearer(t) => b = b.header(header::AUTHORIZATION, format!("Bearer {t}")),
            Auth::Cookie(t, csrf) => {
                b = b.header(header::COOKIE, format!("__Host-custos-session={t}"));
                if let Some(c) = csrf {
                    b = b.header("x-csrf-token", c);
                }
            }
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

    fn last_code(&self, e164: &str) -> String {
        let entries = Outbox::read(&self.dir.path().join("sms-outbox.jsonl"));
        let e = entries.iter().rev().find(|e| e.to == e164).expect("a text");
        e.text
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .unwrap()
            .to_owned()
    }

    async fn sign_in(&self, phone: &str) -> Session {
        let r = self
            .call(
                "POST",
                "/api/v1/auth/sms/start",
                Some(json!({ "phone": phone })),
                Auth::None,
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::ACCEPTED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let id = r.json()["challenge_id"].as_str().unwrap().to_owned();
        let r = self
            .call(
                "POST",
                "/api/v1/auth/sms/verify",
                Some(json!({ "challenge_id": id, "code": self.last_code(&e164(phone)) })),
                Auth::None,
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let v = r.json();
        Session {
            token: v["token"].as_str().unwrap().to_owned(),
        }
    }
}

fn e164(phone: &str) -> String {
    custos_app::identity::PhoneNumber::parse(phone)
        .unwrap()
        .e164()
        .to_owned()
}

impl TestApp {
    async fn consent(&self, who: &Session, decision: &str) {
        let r = self
            .call(
                "POST",
                "/api/v1/consents",
                Some(json!({"decisions":[{"purpose":"location","decision":decision}],"method":"dialog"})),
                Auth::Bearer(&who.token),
            )
            .await;
        assert!(
            r.status.is_success(),
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
    async fn report(&self, who: &Session, lat: f64, lon: f64) -> Resp {
        self.call(
            "POST",
            "/api/v1/location",
            Some(json!({ "lat": lat, "lon": lon, "source": "gps" })),
            Auth::Bearer(&who.token),
        )
        .await
    }
    async fn switch(&self, who: &Session, enabled: bool) {
        let r = self
            .call(
                "PUT",
                "/api/v1/location/switch",
                Some(json!({ "enabled": enabled })),
                Auth::Bearer(&who.token),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
}

#[tokio::test]
async fn location_is_taken_only_with_consent_and_switch_and_kept_as_a_coarse_area() {
    let t = spawn_app().await;
    let me = t.sign_in(PHONE).await;
    let r = t.report(&me, LAT, LON).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "location_off")
    );
    t.switch(&me, true).await;
    let r = t.report(&me, LAT, LON).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no consent yet");
    t.consent(&me, "given").await;
    let r = t.report(&me, LAT, LON).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(r.headers.get(header::SET_COOKIE).is_none());
    let area = r.json()["geohash"].as_str().unwrap().to_owned();
    assert!(area.len() <= 5 && !area.is_empty());
    assert!(!String::from_utf8_lossy(&r.body).contains("30.27"));
    let r = t
        .call("GET", "/api/v1/location", None, Auth::Bearer(&me.token))
        .await;
    assert_eq!(r.json(), json!({ "enabled": true, "geohash": area }));
    let r = t
        .call(
            "GET",
            "/api/v1/location/nearby",
            None,
            Auth::Bearer(&me.token),
        )
        .await;
    assert_eq!(r.json()["area"], json!(area));
    // Another user sees only their own (empty) state; without a session: 401.
    let other = t.sign_in(OTHER).await;
    let r = t
        .call("GET", "/api/v1/location", None, Auth::Bearer(&other.token))
        .await;
    assert_eq!(r.json(), json!({ "enabled": false, "geohash": null }));
    let r = t.call("GET", "/api/v1/location", None, Auth::None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t
        .report(
            &Session {
                token: "forged".into(),
            },
            LAT,
            LON,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A cookie-authenticated change needs the CSRF token.
    let r = t
        .call(
            "PUT",
            "/api/v1/location/switch",
            Some(json!({ "enabled": false })),
            Auth::Cookie(&me.token, None),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "csrf_failed")
    );
    // Bad input: stable codes, nothing stored.
    let r = t.report(&me, 123.0, LON).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_location")
    );
    let r = t
        .call(
            "POST",
            "/api/v1/location",
            Some(json!({ "lat": "north" })),
            Auth::Bearer(&me.token),
        )
        .await;
    assert!(r.status.is_client_error());
    // Withdrawal deletes the area.
    t.consent(&me, "withdrawn").await;
    let r = t
        .call("GET", "/api/v1/location", None, Auth::Bearer(&me.token))
        .await;
    assert_eq!(r.json(), json!({ "enabled": true, "geohash": null }));
}

#[tokio::test]
async fn switching_location_off_deletes_it_and_only_location_features_stop() {
    let t = spawn_app().await;
    let me = t.sign_in(PHONE).await;
    t.consent(&me, "given").await;
    t.switch(&me, true).await;
    assert_eq!(t.report(&me, LAT, LON).await.status, StatusCode::OK);
    t.switch(&me, false).await;
    let r = t
        .call("GET", "/api/v1/location", None, Auth::Bearer(&me.token))
        .await;
    assert_eq!(r.json(), json!({ "enabled": false, "geohash": null }));
    let r = t.report(&me, LAT, LON).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "location_off")
    );
    let r = t
        .call(
            "GET",
            "/api/v1/location/nearby",
            None,
            Auth::Bearer(&me.token),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "location_required")
    );
    // Everything else works unchanged.
    let r = t
        .call("GET", "/api/v1/me", None, Auth::Bearer(&me.token))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = t
        .call("GET", "/api/v1/items?q=x", None, Auth::Bearer(&me.token))
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn event_batches_are_gated_and_bad_batches_get_stable_codes() {
    let t = spawn_app().await;
    let now = t._app.kernel.clock.now_ms();
    let ev = |kind: &str, at: i64| json!({ "kind": kind, "at_ms": at, "ip": "203.0.113.77", "carrier": "CMCC", "language": "zh-CN" });
    let events: Vec<Value> = ["browse", "click", "search", "bookmark", "share", "download"]
        .iter()
        .map(|k| ev(k, now))
        .collect();
    let batch = json!({ "events": events });
    // No identifier, no consent: dropped and counted, and no cookie is set.
    let r = t
        .call("POST", "/api/v1/events", Some(batch.clone()), Auth::None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json(), json!({ "accepted": 0, "dropped_unconsented": 6 }));
    assert!(r.headers.get(header::SET_COOKIE).is_none());
    // A signed-in user who consented.
    let me = t.sign_in(PHONE).await;
    let r = t
        .call(
            "POST",
            "/api/v1/consents",
            Some(json!({"decisions":[{"purpose":"service_logs_analytics","decision":"given"}],"method":"dialog"})),
            Auth::Bearer(&me.token),
        )
        .await;
    assert!(r.status.is_success());
    let r = t
        .call(
            "POST",
            "/api/v1/events",
            Some(batch),
            Auth::Bearer(&me.token),
        )
        .await;
    assert_eq!(r.json(), json!({ "accepted": 6, "dropped_unconsented": 0 }));
    // Bad batches.
    let many: Vec<Value> = (0..1_001).map(|_| ev("click", now)).collect();
    for (body, code) in [
        (json!({ "events": [] }), "batch_empty"),
        (json!({ "events": many }), "batch_too_large"),
        (json!({ "events": [ev("purchase", now)] }), "invalid_event"),
        (
            json!({ "events": [ev("click", now + 3_600_000)] }),
            "clock_skew",
        ),
    ] {
        let r = t
            .call(
                "POST",
                "/api/v1/events",
                Some(body),
                Auth::Bearer(&me.token),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, code.to_owned())
        );
    }
    let r = t
        .call(
            "POST",
            "/api/v1/events",
            Some(json!({ "events": [{ "kind": 1 }] })),
            Auth::Bearer(&me.token),
        )
        .await;
    assert!(r.status.is_client_error());
}

#[tokio::test]
async fn traits_are_the_users_own_deletable_and_personalization_switches_off_at_once() {
    let t = spawn_app().await;
    let me = t.sign_in(PHONE).await;
    let other = t.sign_in(OTHER).await;
    let r = t
        .call(
            "POST",
            "/api/v1/consents",
            Some(json!({"decisions":[{"purpose":"personalized_feed","decision":"given"}],"method":"dialog"})),
            Auth::Bearer(&me.token),
        )
        .await;
    assert!(r.status.is_success());
    let subject = t
        ._app
        .identity
        .authenticate(&me.token)
        .await
        .unwrap()
        .subject;
    let ctx = t._app.identity.gate_context(subject).await.unwrap();
    for k in ["tag:dress", "tag:bag", "category:shoes"] {
        t._app
            .signals
            .add_affinity(subject, k, 1.0, &ctx)
            .await
            .unwrap();
    }
    let r = t
        .call("GET", "/api/v1/me/traits", None, Auth::Bearer(&me.token))
        .await;
    let traits = r.json()["traits"].as_array().unwrap().clone();
    assert_eq!(traits.len(), 3);
    assert!(traits.iter().all(|t| t["purpose"] == "personalized_feed"));
    let r = t
        .call("GET", "/api/v1/me/traits", None, Auth::Bearer(&other.token))
        .await;
    assert_eq!(
        r.json(),
        json!({ "traits": [] }),
        "no route reaches another user's traits"
    );
    let r = t
        .call(
            "DELETE",
            "/api/v1/me/traits/tag:dress",
            None,
            Auth::Bearer(&other.token),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .call(
            "DELETE",
            "/api/v1/me/traits/tag:dress",
            None,
            Auth::Bearer(&me.token),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = t
        .call(
            "DELETE",
            "/api/v1/me/traits/tag:dress",
            None,
            Auth::Bearer(&me.token),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t.call("GET", "/api/v1/me/traits", None, Auth::None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Personalization: on, then off at once.
    let r = t
        .call(
            "GET",
            "/api/v1/me/personalization",
            None,
            Auth::Bearer(&me.token),
        )
        .await;
    assert_eq!(r.json(), json!({ "enabled": true, "personalized": true }));
    let r = t
        .call(
            "PUT",
            "/api/v1/me/personalization",
            Some(json!({ "enabled": false })),
            Auth::Bearer(&me.token),
        )
        .await;
    assert_eq!(r.json(), json!({ "enabled": false, "personalized": false }));
    let r = t
        .call(
            "GET",
            "/api/v1/me/personalization",
            None,
            Auth::Bearer(&other.token),
        )
        .await;
    assert_eq!(
        r.json(),
        json!({ "enabled": true, "personalized": false }),
        "no consent"
    );
    // Withdrawal deletes what was derived under the purpose; reset empties the rest.
    let r = t
        .call(
            "POST",
            "/api/v1/consents/personalized_feed/withdraw",
            None,
            Auth::Bearer(&me.token),
        )
        .await;
    assert!(
        r.status.is_success(),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let r = t
        .call("GET", "/api/v1/me/traits", None, Auth::Bearer(&me.token))
        .await;
    assert_eq!(r.json(), json!({ "traits": [] }));
    let r = t
        .call("DELETE", "/api/v1/me/traits", None, Auth::Bearer(&me.token))
        .await;
    assert_eq!(r.json(), json!({ "deleted": 0 }));
}

#[tokio::test]
async fn without_consent_the_server_sets_no_identifier_cookie() {
    let t = spawn_app().await;
    let now = t._app.kernel.clock.now_ms();
    for (method, uri, body) in [
        ("GET", "/api/v1/items?q=x", None),
        ("GET", "/api/v1/purposes", None),
        ("GET", "/api/v1/policy", None),
        (
            "POST",
            "/api/v1/events",
            Some(json!({ "events": [{ "kind": "browse", "at_ms": now }] })),
        ),
    ] {
        let r = t.call(method, uri, body, Auth::None).await;
        assert!(r.status.is_success(), "{uri}: {}", r.status);
        assert!(
            r.headers.get(header::SET_COOKIE).is_none(),
            "{uri} set a cookie without consent"
        );
    }
    // Consent to a purpose that needs an identifier: only then is one set.
    let r = t
        .call(
            "POST",
            "/api/v1/consents",
            Some(json!({"decisions":[{"purpose":"service_logs_analytics","decision":"given"}],"method":"dialog"})),
            Auth::None,
        )
        .await;
    assert!(
        r.status.is_success(),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let cookie = r.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("__Host-custos-anon=") && cookie.contains("HttpOnly"));
}
