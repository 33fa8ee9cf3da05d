//! The identity API over HTTP, in-process through `app()`, on the embedded default:
//! sign-in by SMS code, session cookie and bearer token, CSRF, consent as the account,
//! sessions, re-authentication, and that no route reaches another user's data (P4, L15).

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

struct TestApp {
    router: Router,
    clock: FakeClock,
    dir: tempfile::TempDir,
    _app: App,
}

async fn spawn_app() -> TestApp {
    spawn_app_with(Default::default()).await
}

async fn spawn_app_with(identity: custos_app::identity::IdentityConfig) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        data_dir: dir.path().to_path_buf(),
        database_url: format!("sqlite://{}", dir.path().join("custos.db").display()),
        vault_url: format!("sqlite://{}", dir.path().join("keys.db").display()),
        master_key: MasterKeySource::Inline(MasterKey::generate(&mut OsRng).to_base64()),
        policy: None,
        identity,
        ..Default::default()
    };
    let clock = FakeClock::default();
    let app = App::open(&cfg, Arc::new(clock.clone())).await.unwrap();
    TestApp {
        // The per-address write limit is tested in api.rs; these tests send many writes
        // from one (unknown) address.
        router: custos_http::app_with(
            app.clone(),
            custos_http::HttpOptions {
                writes_per_second: 0,
            },
        ),
        clock,
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
    csrf: String,
    id: String,
    set_cookie: String,
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
            csrf: v["csrf_token"].as_str().unwrap().to_owned(),
            id: v["session_id"].as_str().unwrap().to_owned(),
            set_cookie: r.headers[header::SET_COOKIE].to_str().unwrap().to_owned(),
        }
    }
}

fn e164(phone: &str) -> String {
    custos_app::identity::PhoneNumber::parse(phone)
        .unwrap()
        .e164()
        .to_owned()
}

#[tokio::test]
async fn signing_in_by_sms_returns_a_bearer_token_and_sets_a_host_only_session_cookie() {
    let app = spawn_app().await;
    let s = app.sign_in("139 1234 5678").await;
    assert!(s
        .set_cookie
        .starts_with(&format!("__Host-custos-session={};", s.token)));
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax", "Max-Age="] {
        assert!(
            s.set_cookie.contains(attr),
            "{attr} missing in {}",
            s.set_cookie
        );
    }
    assert!(
        !s.set_cookie.contains("Domain="),
        "__Host- cookies carry no Domain"
    );
    let me = app
        .call("GET", "/api/v1/me", None, Auth::Bearer(&s.token))
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["age_band"], "adult");
    let by_cookie = app
        .call("GET", "/api/v1/me", None, Auth::Cookie(&s.token, None))
        .await;
    assert_eq!(by_cookie.json()["subject"], me.json()["subject"]);
    // Nothing personal in the body.
    assert!(!String::from_utf8_lossy(&me.body).contains("1391234"));
}

#[tokio::test]
async fn codes_refused_over_http_carry_stable_error_codes() {
    let app = spawn_app().await;
    let bad_phone = app
        .call(
            "POST",
            "/api/v1/auth/sms/start",
            Some(json!({ "phone": "12345" })),
            Auth::None,
        )
        .await;
    assert_eq!(bad_phone.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_phone.code(), "invalid_phone");
    let r = app
        .call(
            "POST",
            "/api/v1/auth/sms/start",
            Some(json!({ "phone": PHONE })),
            Auth::None,
        )
        .await;
    let id = r.json()["challenge_id"].as_str().unwrap().to_owned();
    let again = app
        .call(
            "POST",
            "/api/v1/auth/sms/start",
            Some(json!({ "phone": PHONE })),
            Auth::None,
        )
        .await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(again.code(), "too_many_codes");
    assert_eq!(again.headers[header::RETRY_AFTER], "60");
    let code = app.last_code(PHONE);
    let wrong = if code == "111111" { "222222" } else { "111111" };
    let verify = |c: &str| json!({ "challenge_id": id, "code": c });
    let r = app
        .call(
            "POST",
            "/api/v1/auth/sms/verify",
            Some(verify(wrong)),
            Auth::None,
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "code_invalid")
    );
    let r = app
        .call(
            "POST",
            "/api/v1/auth/sms/verify",
            Some(verify(&code)),
            Auth::None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call(
            "POST",
            "/api/v1/auth/sms/verify",
            Some(verify(&code)),
            Auth::None,
        )
        .await;
    assert_eq!(r.code(), "code_used");
    app.clock.advance(time::Duration::seconds(61));
    let r = app
        .call(
            "POST",
            "/api/v1/auth/sms/start",
            Some(json!({ "phone": PHONE })),
            Auth::None,
        )
        .await;
    let id = r.json()["challenge_id"].as_str().unwrap().to_owned();
    app.clock.advance(time::Duration::minutes(10));
    let r = app
        .call(
            "POST",
            "/api/v1/auth/sms/verify",
            Some(json!({ "challenge_id": id, "code": app.last_code(PHONE) })),
            Auth::None,
        )
        .await;
    assert_eq!(r.code(), "code_expired");
}

#[tokio::test]
async fn cookie_authenticated_state_changes_need_the_csrf_token_but_bearer_requests_do_not() {
    let app = spawn_app().await;
    let s = app.sign_in(PHONE).await;
    let consent = json!({ "decisions": [{ "purpose": "personalized_feed", "decision": "given" }] });
    let r = app
        .call(
            "POST",
            "/api/v1/consents",
            Some(consent.clone()),
            Auth::Cookie(&s.token, None),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "csrf_failed")
    );
    let r = app
        .call(
            "POST",
            "/api/v1/consents",
            Some(consent.clone()),
            Auth::Cookie(&s.token, Some("forged")),
        )
        .await;
    assert_eq!(r.code(), "csrf_failed");
    let r = app
        .call(
            "POST",
            "/api/v1/auth/logout",
            None,
            Auth::Cookie(&s.token, None),
        )
        .await;
    assert_eq!(r.code(), "csrf_failed", "logout is a state change too");
    let r = app
        .call(
            "POST",
            "/api/v1/consents",
            Some(consent.clone()),
            Auth::Cookie(&s.token, Some(&s.csrf)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app
        .call(
            "POST",
            "/api/v1/consents",
            Some(consent),
            Auth::Bearer(&s.token),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // Reads need no CSRF token.
    let r = app
        .call(
            "GET",
            "/api/v1/me/sessions",
            None,
            Auth::Cookie(&s.token, None),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_signed_in_caller_decides_as_their_account_not_as_an_anonymous_visitor() {
    let app = spawn_app().await;
    let consent = json!({ "decisions": [{ "purpose": "personalized_feed", "decision": "given" }] });
    let anon = app
        .call(
            "POST",
            "/api/v1/consents",
            Some(consent.clone()),
            Auth::None,
        )
        .await;
    assert_eq!(
        (anon.status, anon.code().as_str()),
        (StatusCode::FORBIDDEN, "account_required")
    );
    let s = app.sign_in(PHONE).await;
    let r = app
        .call(
            "POST",
            "/api/v1/consents",
            Some(consent),
            Auth::Bearer(&s.token),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let v = r.json();
    assert!(
        v.get("anonymous_token").is_none(),
        "no anonymous identifier for an account"
    );
    let me = app
        .call("GET", "/api/v1/me", None, Auth::Bearer(&s.token))
        .await
        .json();
    assert_eq!(v["receipt"]["piiPrincipalId"], me["subject"]);
    let purposes = app
        .call("GET", "/api/v1/purposes", None, Auth::Bearer(&s.token))
        .await
        .json();
    let feed = purposes
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["purpose"] == "personalized_feed")
        .unwrap();
    assert_eq!(feed["status"], "active");
    let w = app
        .call(
            "POST",
            "/api/v1/consents/personalized_feed/withdraw",
            None,
            Auth::Bearer(&s.token),
        )
        .await;
    assert_eq!(w.status, StatusCode::OK);
    let history = app
        .call("GET", "/api/v1/consents", None, Auth::Bearer(&s.token))
        .await
        .json();
    assert_eq!(history.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn no_identity_route_reads_or_changes_another_users_account_or_sessions() {
    let app = spawn_app().await;
    let a = app.sign_in(PHONE).await;
    let b = app.sign_in(OTHER).await;
    let minor_nick = format!(
        "/api/v1/guardian/minors/{}/profile/nickname",
        uuid_of(&app, &a).await
    );
    let minor_withdraw = format!(
        "/api/v1/guardian/minors/{}/withdraw",
        uuid_of(&app, &a).await
    );
    // Without a session every /me and /guardian route is 401.
    for (m, uri, body) in [
        ("GET", "/api/v1/me", None),
        ("GET", "/api/v1/me/sessions", None),
        ("DELETE", &*format!("/api/v1/me/sessions/{}", a.id), None),
        ("POST", "/api/v1/me/reauth/start", None),
        (
            "POST",
            "/api/v1/me/reauth/verify",
            Some(json!({"challenge_id": "x", "code": "123456"})),
        ),
        (
            "POST",
            "/api/v1/me/phone/start",
            Some(json!({"phone": OTHER})),
        ),
        (
            "POST",
            "/api/v1/me/phone/verify",
            Some(json!({"challenge_id": "x", "code": "123456"})),
        ),
        ("POST", "/api/v1/auth/logout", None),
        ("GET", "/api/v1/me/profile", None),
        (
            "PUT",
            "/api/v1/me/profile/nickname",
            Some(json!({"nickname": "x"})),
        ),
        ("DELETE", "/api/v1/me/profile/nickname", None),
        ("GET", "/api/v1/me/profile/avatar", None),
        ("DELETE", "/api/v1/me/profile/avatar", None),
        (
            "PUT",
            "/api/v1/me/profile/password",
            Some(json!({"password": "a fine passphrase"})),
        ),
        ("DELETE", "/api/v1/me/profile/password", None),
        (
            "PUT",
            "/api/v1/me/birth-date",
            Some(json!({"birth_date": "2012-01-01"})),
        ),
        ("GET", "/api/v1/me/guardian", None),
        (
            "POST",
            "/api/v1/me/guardian/start",
            Some(json!({"phone": OTHER})),
        ),
        (
            "POST",
            "/api/v1/me/guardian/verify",
            Some(
                json!({"challenge_id": "x", "code": "123456", "birth_date": "2012-01-01", "agree": true}),
            ),
        ),
        ("GET", "/api/v1/me/oidc", None),
        ("DELETE", "/api/v1/me/oidc/mock", None),
        (
            "POST",
            "/api/v1/me/oidc/mock/link",
            Some(json!({"fields": [], "agree": true})),
        ),
        ("GET", "/api/v1/guardian/minors", None),
        ("PUT", &*minor_nick, Some(json!({"nickname": "x"}))),
        ("DELETE", &*minor_nick, None),
        ("POST", &*minor_withdraw, None),
    ] {
        for auth in [
            Auth::None,
            Auth::Bearer("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ] {
            let r = app.call(m, uri, body.clone(), auth).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{m} {uri}");
            assert_eq!(r.code(), "unauthenticated");
        }
    }
    // B sees only B's sessions and cannot end A's: not found, as if it did not exist.
    let list = app
        .call("GET", "/api/v1/me/sessions", None, Auth::Bearer(&b.token))
        .await
        .json();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![b.id.as_str()]);
    let r = app
        .call(
            "DELETE",
            &format!("/api/v1/me/sessions/{}", a.id),
            None,
            Auth::Bearer(&b.token),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(
        app.call("GET", "/api/v1/me", None, Auth::Bearer(&a.token))
            .await
            .status,
        StatusCode::OK
    );
    // B's /me is B's.
    let me_a = app
        .call("GET", "/api/v1/me", None, Auth::Bearer(&a.token))
        .await
        .json();
    let me_b = app
        .call("GET", "/api/v1/me", None, Auth::Bearer(&b.token))
        .await
        .json();
    assert_ne!(me_a["subject"], me_b["subject"]);
    // B cannot finish a re-authentication with a challenge sent to A.
    app.clock.advance(time::Duration::seconds(61));
    let ra = app
        .call(
            "POST",
            "/api/v1/me/reauth/start",
            None,
            Auth::Bearer(&a.token),
        )
        .await
        .json();
    let r = app
        .call(
            "POST",
            "/api/v1/me/reauth/verify",
            Some(json!({ "challenge_id": ra["challenge_id"], "code": app.last_code(PHONE) })),
            Auth::Bearer(&b.token),
        )
        .await;
    assert_eq!(r.code(), "code_invalid");
    // The owner revokes their own session; it stops working.
    let r = app
        .call(
            "DELETE",
            &format!("/api/v1/me/sessions/{}", a.id),
            None,
            Auth::Bearer(&a.token),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.call("GET", "/api/v1/me", None, Auth::Bearer(&a.token))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn changing_the_phone_over_http_needs_reauthentication_first() {
    let app = spawn_app().await;
    let s = app.sign_in(PHONE).await;
    let auth = Auth::Bearer(&s.token);
    // The sign-in code counts as a fresh proof for five minutes only.
    app.clock.advance(time::Duration::seconds(300));
    let r = app
        .call(
            "POST",
            "/api/v1/me/phone/start",
            Some(json!({"phone": OTHER})),
            auth,
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "reauthentication_required")
    );
    let c = app
        .call("POST", "/api/v1/me/reauth/start", None, auth)
        .await
        .json();
    let r = app
        .call(
            "POST",
            "/api/v1/me/reauth/verify",
            Some(json!({ "challenge_id": c["challenge_id"], "code": app.last_code(PHONE) })),
            auth,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let c = app
        .call(
            "POST",
            "/api/v1/me/phone/start",
            Some(json!({"phone": OTHER})),
            auth,
        )
        .await;
    assert_eq!(c.status, StatusCode::ACCEPTED);
    let r = app
        .call(
            "POST",
            "/api/v1/me/phone/verify",
            Some(json!({ "challenge_id": c.json()["challenge_id"], "code": app.last_code(OTHER) })),
            auth,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // The new number signs in to the same account.
    app.clock.advance(time::Duration::seconds(61));
    let again = app.sign_in(OTHER).await;
    let me1 = app.call("GET", "/api/v1/me", None, auth).await.json();
    let me2 = app
        .call("GET", "/api/v1/me", None, Auth::Bearer(&again.token))
        .await
        .json();
    assert_eq!(me1["subject"], me2["subject"]);
}

#[tokio::test]
async fn logout_ends_the_session_and_clears_the_cookie() {
    let app = spawn_app().await;
    let s = app.sign_in(PHONE).await;
    let r = app
        .call(
            "POST",
            "/api/v1/auth/logout",
            None,
            Auth::Cookie(&s.token, Some(&s.csrf)),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let cleared = r.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cleared.starts_with("__Host-custos-session=;") && cleared.contains("Max-Age=0"));
    let r = app
        .call("GET", "/api/v1/me", None, Auth::Bearer(&s.token))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, (x ^ y) as u8, y as u8]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

#[tokio::test]
async fn the_profile_is_the_callers_own_and_an_avatar_upload_is_re_encoded() {
    let app = spawn_app().await;
    let a = app.sign_in(PHONE).await;
    let b = app.sign_in(OTHER).await;
    let r = app
        .call(
            "PUT",
            "/api/v1/me/profile/nickname",
            Some(json!({"nickname": " 小龙 "})),
            Auth::Bearer(&a.token),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let big = png(700, 700);
    assert!(big.len() > 64 * 1024, "larger than the general body limit");
    let req = Request::put("/api/v1/me/profile/avatar")
        .header(header::AUTHORIZATION, format!("Bearer {}", a.token))
        .header(header::CONTENT_TYPE, "image/png")
        .body(Body::from(big))
        .unwrap();
    let resp = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let got = app
        .call(
            "GET",
            "/api/v1/me/profile/avatar",
            None,
            Auth::Bearer(&a.token),
        )
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.headers[header::CONTENT_TYPE], "image/png");
    let img = image::load_from_memory(&got.body).unwrap();
    assert_eq!((img.width(), img.height()), (512, 512));
    let mine = app
        .call("GET", "/api/v1/me/profile", None, Auth::Bearer(&a.token))
        .await
        .json();
    assert_eq!(mine["nickname"], "小龙");
    assert_eq!(mine["has_avatar"], true);
    // B sees B's (empty) profile, and has no avatar to fetch or remove.
    let theirs = app
        .call("GET", "/api/v1/me/profile", None, Auth::Bearer(&b.token))
        .await
        .json();
    assert_eq!(theirs["nickname"], Value::Null);
    assert_eq!(
        app.call(
            "GET",
            "/api/v1/me/profile/avatar",
            None,
            Auth::Bearer(&b.token)
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call(
            "DELETE",
            "/api/v1/me/profile/avatar",
            None,
            Auth::Bearer(&b.token)
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    // A file that is not a picture is refused with a stable code.
    let req = Request::put("/api/v1/me/profile/avatar")
        .header(header::AUTHORIZATION, format!("Bearer {}", a.token))
        .body(Body::from("<svg/>"))
        .unwrap();
    let resp = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_password_set_after_a_fresh_code_signs_in_and_wrong_ones_get_one_answer() {
    let app = spawn_app().await;
    let s = app.sign_in(PHONE).await;
    let auth = Auth::Bearer(&s.token);
    let r = app
        .call(
            "PUT",
            "/api/v1/me/profile/password",
            Some(json!({"password": "password1"})),
            auth,
        )
        .await;
    assert_eq!(r.code(), "password_too_common");
    let r = app
        .call(
            "PUT",
            "/api/v1/me/profile/password",
            Some(json!({"password": "short"})),
            auth,
        )
        .await;
    assert_eq!(r.code(), "password_too_short");
    let r = app
        .call(
            "PUT",
            "/api/v1/me/profile/password",
            Some(json!({"password": "violet harbor kite 77"})),
            auth,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let login = |pw: &'static str, phone: &'static str| {
        let app = &app;
        async move {
            app.call(
                "POST",
                "/api/v1/auth/password",
                Some(json!({"phone": phone, "password": pw})),
                Auth::None,
            )
            .await
        }
    };
    let ok = login("violet harbor kite 77", "139 1234 5678").await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .starts_with("__Host-custos-session="));
    let wrong = login("violet harbor kite 78", PHONE).await;
    let unknown = login("violet harbor kite 77", "+8613700000000").await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        wrong.body, unknown.body,
        "same answer for a wrong password and an unknown number"
    );
    // Changing it later needs a fresh code again.
    app.clock.advance(time::Duration::seconds(301));
    let r = app
        .call(
            "PUT",
            "/api/v1/me/profile/password",
            Some(json!({"password": "another fine phrase"})),
            auth,
        )
        .await;
    assert_eq!(r.code(), "reauthentication_required");
}

#[tokio::test]
async fn a_minor_over_http_is_limited_until_the_guardian_agrees_with_a_code_to_their_phone() {
    let app = spawn_app().await;
    let s = app.sign_in(PHONE).await;
    let auth = Auth::Bearer(&s.token);
    let r = app
        .call(
            "PUT",
            "/api/v1/me/birth-date",
            Some(json!({"birth_date": "2011-03-04"})),
            auth,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["age_band"], "minor");
    assert_eq!(r.json()["guardian_consent_required"], true);
    // Limited: no profile, no consent to personalization of their own.
    let r = app
        .call(
            "PUT",
            "/api/v1/me/profile/nickname",
            Some(json!({"nickname": "kid"})),
            auth,
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "guardian_consent_required")
    );
    let consent = json!({ "decisions": [{ "purpose": "personalized_feed", "decision": "given" }] });
    let r = app
        .call("POST", "/api/v1/consents", Some(consent.clone()), auth)
        .await;
    assert_eq!(r.code(), "guardian_consent_required");
    let purposes = app.call("GET", "/api/v1/purposes", None, auth).await.json();
    let status = |v: &Value, p: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|x| x["purpose"] == p)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(
        status(&purposes, "personalized_feed"),
        "guardian_consent_required"
    );
    assert_eq!(
        status(&purposes, "security"),
        "not_applicable",
        "the law's own purposes stay"
    );
    let screen = app
        .call("GET", "/api/v1/me/guardian", None, auth)
        .await
        .json();
    assert!(!screen["purposes"].as_array().unwrap().is_empty());
    let guardian = "+8613600136000";
    let c = app
        .call(
            "POST",
            "/api/v1/me/guardian/start",
            Some(json!({"phone": guardian})),
            auth,
        )
        .await;
    assert_eq!(c.status, StatusCode::ACCEPTED);
    let id = c.json()["challenge_id"].clone();
    let body = |agree: bool| json!({"challenge_id": id, "code": app.last_code(guardian), "birth_date": "2011-03-04", "agree": agree});
    let r = app
        .call(
            "POST",
            "/api/v1/me/guardian/verify",
            Some(body(false)),
            auth,
        )
        .await;
    assert_eq!(r.code(), "agreement_required");
    let r = app
        .call("POST", "/api/v1/me/guardian/verify", Some(body(true)), auth)
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(r.json()["jws"].as_str().unwrap().split('.').count() == 3);
    let me = app.call("GET", "/api/v1/me", None, auth).await.json();
    assert_eq!(me["guardian_consent"], true);
    let r = app
        .call(
            "PUT",
            "/api/v1/me/profile/nickname",
            Some(json!({"nickname": "kid"})),
            auth,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .call("POST", "/api/v1/consents", Some(consent), auth)
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let purposes = app.call("GET", "/api/v1/purposes", None, auth).await.json();
    assert_eq!(status(&purposes, "personalized_feed"), "active");
}

#[tokio::test]
async fn identity_provider_routes_refuse_unknown_providers_and_callbacks_without_their_binding() {
    let app = spawn_app().await;
    let r = app
        .call("GET", "/api/v1/auth/oidc/nope", None, Auth::None)
        .await;
    assert_eq!(r.code(), "unknown_provider");
    let r = app
        .call("POST", "/api/v1/auth/oidc/nope/start", None, Auth::None)
        .await;
    assert_eq!(r.code(), "unknown_provider");
    let r = app
        .call(
            "GET",
            "/api/v1/auth/oidc/nope/callback?code=abc&state=def",
            None,
            Auth::None,
        )
        .await;
    assert_eq!(r.code(), "oidc_state_invalid");
    let r = app
        .call(
            "GET",
            "/api/v1/auth/oidc/nope/callback?error=access_denied",
            None,
            Auth::None,
        )
        .await;
    assert_eq!(r.code(), "oidc_declined");
}

#[tokio::test]
async fn an_ended_session_cookie_does_not_stop_anonymous_reads_but_a_bad_bearer_token_is_refused() {
    let app = spawn_app().await;
    let s = app.sign_in(PHONE).await;
    let r = app
        .call("POST", "/api/v1/auth/logout", None, Auth::Bearer(&s.token))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .call(
            "GET",
            "/api/v1/purposes",
            None,
            Auth::Cookie(&s.token, None),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "browsing works without an account (P5)"
    );
    let r = app
        .call("GET", "/api/v1/purposes", None, Auth::Bearer(&s.token))
        .await;
    assert_eq!(r.code(), "unauthenticated");
    let consent = json!({ "decisions": [{ "purpose": "personalized_ads", "decision": "given" }] });
    let r = app
        .call(
            "POST",
            "/api/v1/consents",
            Some(consent),
            Auth::Cookie(&s.token, Some(&s.csrf)),
        )
        .await;
    assert_eq!(
        r.code(),
        "unauthenticated",
        "not silently recorded for a new anonymous visitor"
    );
}

/// Follows the authorization URL as a browser would (the mock provider approves at once)
/// and returns the query of the redirect back (`code=…&state=…`).
async fn authorize(url: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client.get(url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    location.split_once('?').unwrap().1.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_and_signing_in_with_a_provider_over_http_uses_the_binding_cookie() {
    use custos_app::identity::oidc::OidcProviderConfig;
    let Some(idp) = custos_testkit::oidc::MockIdp::start() else {
        return;
    };
    let app = spawn_app_with(custos_app::identity::IdentityConfig {
        oidc: vec![OidcProviderConfig {
            name: "mock".into(),
            issuer: idp.issuer.clone(),
            client_id: "custos-http-test".into(),
            client_secret: Some("secret".into()),
            client_secret_file: None,
            redirect_uri: "http://127.0.0.1:9/api/v1/auth/oidc/mock/callback".into(),
        }],
        ..Default::default()
    })
    .await;
    let s = app.sign_in(PHONE).await;
    let screen = app
        .call("GET", "/api/v1/auth/oidc/mock", None, Auth::None)
        .await
        .json();
    assert_eq!(screen["purpose"], "external_login");
    let link = json!({"fields": ["nickname"], "agree": true});
    // Cookie-authenticated: the CSRF token is required.
    let r = app
        .call(
            "POST",
            "/api/v1/me/oidc/mock/link",
            Some(link.clone()),
            Auth::Cookie(&s.token, None),
        )
        .await;
    assert_eq!(r.code(), "csrf_failed");
    let r = app
        .call(
            "POST",
            "/api/v1/me/oidc/mock/link",
            Some(link),
            Auth::Cookie(&s.token, Some(&s.csrf)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let cookie = r.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-custos-oidc=") && cookie.contains("HttpOnly"));
    let binding = r.json()["binding"].as_str().unwrap().to_owned();
    let query = authorize(r.json()["authorize_url"].as_str().unwrap()).await;
    let callback = format!("/api/v1/auth/oidc/mock/callback?{query}");
    // Without the binding (another browser) the callback is refused and the state is spent.
    let r = app.call("GET", &callback, None, Auth::None).await;
    assert_eq!(r.code(), "oidc_state_invalid");
    let r = app
        .call(
            "POST",
            "/api/v1/me/oidc/mock/link",
            Some(json!({"fields": ["nickname"], "agree": true})),
            Auth::Bearer(&s.token),
        )
        .await;
    let binding2 = r.json()["binding"].as_str().unwrap().to_owned();
    assert_ne!(binding, binding2);
    let query = authorize(r.json()["authorize_url"].as_str().unwrap()).await;
    let req = Request::get(format!("/api/v1/auth/oidc/mock/callback?{query}"))
        .header(header::COOKIE, format!("__Host-custos-oidc={binding2}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = serde_json::from_slice(
        &axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v["linked"]["stored"], json!(["nickname"]));
    let links = app
        .call("GET", "/api/v1/me/oidc", None, Auth::Bearer(&s.token))
        .await
        .json();
    assert_eq!(links, json!([{"provider": "mock", "fields": ["nickname"]}]));
    // Sign in with the provider, as an API client sending the binding in a header.
    let r = app
        .call("POST", "/api/v1/auth/oidc/mock/start", None, Auth::None)
        .await;
    let binding = r.json()["binding"].as_str().unwrap().to_owned();
    let query = authorize(r.json()["authorize_url"].as_str().unwrap()).await;
    let req = Request::get(format!("/api/v1/auth/oidc/mock/callback?{query}"))
        .header("x-custos-oidc-binding", binding)
        .body(Body::empty())
        .unwrap();
    let resp = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .starts_with("__Host-custos-session="));
    let v: Value = serde_json::from_slice(
        &axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    let token = v["token"].as_str().unwrap();
    let me1 = app
        .call("GET", "/api/v1/me", None, Auth::Bearer(&s.token))
        .await
        .json();
    let me2 = app
        .call("GET", "/api/v1/me", None, Auth::Bearer(token))
        .await
        .json();
    assert_eq!(me1["subject"], me2["subject"]);
    // Unlink.
    let r = app
        .call(
            "DELETE",
            "/api/v1/me/oidc/mock",
            None,
            Auth::Bearer(&s.token),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let links = app
        .call("GET", "/api/v1/me/oidc", None, Auth::Bearer(&s.token))
        .await
        .json();
    assert_eq!(links, json!([]));
}

async fn uuid_of(app: &TestApp, s: &Session) -> String {
    app.call("GET", "/api/v1/me", None, Auth::Bearer(&s.token))
        .await
        .json()["subject"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn only_the_minors_own_guardian_reaches_their_data_over_http() {
    let app = spawn_app().await;
    let guardian_phone = "+8613600136000";
    let minor = app.sign_in(PHONE).await;
    let m = Auth::Bearer(&minor.token);
    app.call(
        "PUT",
        "/api/v1/me/birth-date",
        Some(json!({"birth_date": "2012-03-04"})),
        m,
    )
    .await;
    let c = app
        .call(
            "POST",
            "/api/v1/me/guardian/start",
            Some(json!({"phone": guardian_phone})),
            m,
        )
        .await
        .json();
    let r = app
        .call(
            "POST",
            "/api/v1/me/guardian/verify",
            Some(json!({"challenge_id": c["challenge_id"], "code": app.last_code(guardian_phone), "birth_date": "2012-03-04", "agree": true})),
            m,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let minor_id = uuid_of(&app, &minor).await;
    app.clock.advance(time::Duration::seconds(61));
    let guardian = app.sign_in(guardian_phone).await;
    let stranger = app.sign_in(OTHER).await;
    let list = app
        .call(
            "GET",
            "/api/v1/guardian/minors",
            None,
            Auth::Bearer(&guardian.token),
        )
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(list.json()[0]["subject"], minor_id.as_str());
    assert_eq!(list.json()[0]["birth_date"], "2012-03-04");
    let theirs = app
        .call(
            "GET",
            "/api/v1/guardian/minors",
            None,
            Auth::Bearer(&stranger.token),
        )
        .await;
    assert_eq!(theirs.json(), json!([]));
    let nick = format!("/api/v1/guardian/minors/{minor_id}/profile/nickname");
    let r = app
        .call(
            "PUT",
            &nick,
            Some(json!({"nickname": "x"})),
            Auth::Bearer(&stranger.token),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let withdraw = format!("/api/v1/guardian/minors/{minor_id}/withdraw");
    let r = app
        .call("POST", &withdraw, None, Auth::Bearer(&stranger.token))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The minor cannot act as their own guardian either.
    let r = app.call("GET", "/api/v1/guardian/minors", None, m).await;
    assert_eq!(r.json(), json!([]));
    let r = app
        .call(
            "PUT",
            &nick,
            Some(json!({"nickname": "fixed"})),
            Auth::Bearer(&guardian.token),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .call("POST", &withdraw, None, Auth::Bearer(&guardian.token))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let me = app.call("GET", "/api/v1/me", None, m).await.json();
    assert_eq!(me["guardian_consent"], false);
    // After five minutes the guardian must prove their phone again.
    app.clock.advance(time::Duration::seconds(301));
    let r = app
        .call(
            "GET",
            "/api/v1/guardian/minors",
            None,
            Auth::Bearer(&guardian.token),
        )
        .await;
    assert_eq!(r.code(), "reauthentication_required");
}

#[tokio::test]
async fn a_minor_cannot_give_the_guardians_consent_themselves_over_http() {
    let app = spawn_app().await;
    let guardian_phone = "+8613600136000";
    let minor = app.sign_in(PHONE).await;
    let m = Auth::Bearer(&minor.token);
    app.call(
        "PUT",
        "/api/v1/me/birth-date",
        Some(json!({"birth_date": "2012-03-04"})),
        m,
    )
    .await;
    let own = json!({"decisions":[{"purpose":"minors_guardian","decision":"given"}]});
    let refused = |r: &Resp| {
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "guardian_flow_required")
        )
    };
    refused(
        &app.call("POST", "/api/v1/consents", Some(own.clone()), m)
            .await,
    );
    let me = app.call("GET", "/api/v1/me", None, m).await.json();
    assert_eq!(me["guardian_consent"], false);
    // Nobody else reaches it through the generic endpoint either.
    refused(
        &app.call("POST", "/api/v1/consents", Some(own.clone()), Auth::None)
            .await,
    );
    // The guardian agrees, then withdraws: the minor cannot give it back.
    let c = app
        .call(
            "POST",
            "/api/v1/me/guardian/start",
            Some(json!({"phone": guardian_phone})),
            m,
        )
        .await
        .json();
    let r = app
        .call(
            "POST",
            "/api/v1/me/guardian/verify",
            Some(json!({"challenge_id": c["challenge_id"], "code": app.last_code(guardian_phone), "birth_date": "2012-03-04", "agree": true})),
            m,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // A second guardian cannot replace the first.
    let r = app
        .call(
            "POST",
            "/api/v1/me/guardian/start",
            Some(json!({"phone": OTHER})),
            m,
        )
        .await;
    assert_eq!(r.code(), "guardian_exists");
    let minor_id = uuid_of(&app, &minor).await;
    app.clock.advance(time::Duration::seconds(61));
    let guardian = app.sign_in(guardian_phone).await;
    let withdraw = format!("/api/v1/guardian/minors/{minor_id}/withdraw");
    let r = app
        .call("POST", &withdraw, None, Auth::Bearer(&guardian.token))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    refused(
        &app.call("POST", "/api/v1/consents", Some(own.clone()), m)
            .await,
    );
    let me = app.call("GET", "/api/v1/me", None, m).await.json();
    assert_eq!(me["guardian_consent"], false);
    let r = app
        .call(
            "PUT",
            "/api/v1/me/profile/nickname",
            Some(json!({"nickname": "kid"})),
            m,
        )
        .await;
    assert_eq!(r.code(), "guardian_consent_required");
}

#[tokio::test]
async fn sign_up_asks_the_birth_date_and_a_minors_new_account_is_limited_and_never_cached() {
    let app = spawn_app().await;
    let r = app
        .call(
            "POST",
            "/api/v1/auth/sms/start",
            Some(json!({ "phone": PHONE })),
            Auth::None,
        )
        .await;
    let id = r.json()["challenge_id"].as_str().unwrap().to_owned();
    let code = app.last_code(&e164(PHONE));
    // An impossible date is refused before the code is spent.
    let r = app
        .call(
            "POST",
            "/api/v1/auth/sms/verify",
            Some(json!({ "challenge_id": id, "code": code, "birth_date": "2010-02-30" })),
            Auth::None,
        )
        .await;
    assert_eq!(r.code(), "invalid_birth_date");
    let r = app
        .call(
            "POST",
            "/api/v1/auth/sms/verify",
            Some(json!({ "challenge_id": id, "code": code, "birth_date": "2011-03-04" })),
            Auth::None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let me = app
        .call("GET", "/api/v1/me", None, Auth::Bearer(&token))
        .await
        .json();
    assert_eq!(me["age_band"], "minor");
    assert_eq!(me["guardian_consent"], false);
    let r = app
        .call(
            "PUT",
            "/api/v1/me/profile/nickname",
            Some(json!({"nickname": "kid"})),
            Auth::Bearer(&token),
        )
        .await;
    assert_eq!(r.code(), "guardian_consent_required");
}
