//! The inbox and push over HTTP: a service notice reaches the inbox and, through the HTTP
//! webhook gateway, a real local push channel (payload verified); messages are marked read
//! only by their owner; withdrawing personalized pushes deletes personalized messages.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::routing::post;
use axum::Router;
use custos_app::config::MasterKeySource;
use custos_app::identity::sms::Outbox;
use custos_app::signals::push::Notice;
use custos_app::{App, Config};
use custos_core::FakeClock;
use custos_crypto::{MasterKey, OsRng};
use serde_json::{json, Value};
use tower::ServiceExt;

type Received = Arc<Mutex<Vec<(String, Value)>>>;

async fn push_channel() -> (String, Received) {
    let got: Received = Arc::default();
    let sink = got.clone();
    let app = Router::new().route(
        "/hook",
        post(
            move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
                let sink = sink.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    sink.lock().unwrap().push((auth, body));
                    StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

struct TestApp {
    router: Router,
    dir: tempfile::TempDir,
    app: App,
    received: Received,
}

async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let (url, received) = push_channel().await;
    let mut cfg = Config {
        data_dir: dir.path().to_path_buf(),
        database_url: format!("sqlite://{}", dir.path().join("custos.db").display()),
        vault_url: format!("sqlite://{}", dir.path().join("keys.db").display()),
        master_key: MasterKeySource::Inline(MasterKey::generate(&mut OsRng).to_base64()),
        ..Default::default()
    };
    cfg.signals.push_gateway = Some("http".into());
    cfg.signals.push_http_url = Some(url);
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
        app,
        received,
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
    async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
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
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Resp { status, body }
    }

    async fn sign_in(&self, phone: &str) -> (String, custos_core::SubjectId) {
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
        let token = r.json()["token"].as_str().unwrap().to_owned();
        let subject = self
            .app
            .identity
            .authenticate(&token)
            .await
            .unwrap()
            .subject;
        (token, subject)
    }
}

#[tokio::test]
async fn a_notice_reaches_the_inbox_and_the_device_through_a_real_webhook() {
    let t = spawn_app().await;
    let (me, subject) = t.sign_in("+8613912345678").await;
    let r = t
        .call(
            "POST",
            "/api/v1/me/devices",
            Some(json!({ "push_token": "tok-1" })),
            Some(&me),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let out = t
        .app
        .signals
        .notify(
            subject,
            &Notice::new("安全提醒", "您的账号在新设备上登录。"),
        )
        .await
        .unwrap();
    assert_eq!(out.pushed, 1);
    let got = t.received.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![(
            String::new(),
            json!({ "to": "tok-1", "message_id": out.message_id, "kind": "system",
                    "title": "安全提醒", "body": "您的账号在新设备上登录。" })
        )]
    );
    let inbox = t.call("GET", "/api/v1/me/inbox", None, Some(&me)).await;
    assert_eq!(inbox.status, StatusCode::OK);
    let v = inbox.json();
    assert_eq!(v["unread"], 1);
    assert_eq!(v["messages"][0]["id"], out.message_id);
    assert_eq!(v["messages"][0]["kind"], "system");
    let r = t
        .call(
            "POST",
            &format!("/api/v1/me/inbox/{}/read", out.message_id),
            None,
            Some(&me),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let v = t
        .call("GET", "/api/v1/me/inbox", None, Some(&me))
        .await
        .json();
    assert_eq!(
        (v["unread"].clone(), v["messages"][0]["read"].clone()),
        (json!(0), json!(true))
    );
    let r = t.call("GET", "/api/v1/me/inbox", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn another_users_message_answers_404_and_bad_ids_are_refused() {
    let t = spawn_app().await;
    let (a, a_subject) = t.sign_in("+8613912345678").await;
    let (b, _) = t.sign_in("+8613800138000").await;
    let msg = t
        .app
        .signals
        .notify(a_subject, &Notice::new("t", "b"))
        .await
        .unwrap();
    let r = t
        .call(
            "POST",
            &format!("/api/v1/me/inbox/{}/read", msg.message_id),
            None,
            Some(&b),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let r = t
        .call("POST", "/api/v1/me/inbox/99999/read", None, Some(&b))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .call("POST", "/api/v1/me/inbox/abc/read", None, Some(&b))
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_path")
    );
    let v = t
        .call("GET", "/api/v1/me/inbox", None, Some(&b))
        .await
        .json();
    assert_eq!(v, json!({ "messages": [], "unread": 0 }));
    let v = t
        .call("GET", "/api/v1/me/inbox", None, Some(&a))
        .await
        .json();
    assert_eq!(
        v["messages"][0]["read"], false,
        "B's attempt changed nothing"
    );
}

#[tokio::test]
async fn withdrawing_personalized_push_deletes_personalized_messages_and_stops_them() {
    let t = spawn_app().await;
    let (me, subject) = t.sign_in("+8613912345678").await;
    t.call(
        "POST",
        "/api/v1/me/devices",
        Some(json!({ "push_token": "tok" })),
        Some(&me),
    )
    .await;
    let r = t
        .call(
            "POST",
            "/api/v1/consents",
            Some(json!({"decisions":[{"purpose":"personalized_push","decision":"given"}]})),
            Some(&me),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let ctx = custos_core::GateContext::default();
    t.app
        .signals
        .notify_personalized(subject, &Notice::new("为你推荐", "新品"), &ctx)
        .await
        .unwrap();
    t.app
        .signals
        .notify(subject, &Notice::new("通知", "系统消息"))
        .await
        .unwrap();
    let v = t
        .call("GET", "/api/v1/me/inbox", None, Some(&me))
        .await
        .json();
    assert_eq!(v["messages"].as_array().unwrap().len(), 2);
    let r = t
        .call(
            "POST",
            "/api/v1/consents/personalized_push/withdraw",
            None,
            Some(&me),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = t
        .call("GET", "/api/v1/me/inbox", None, Some(&me))
        .await
        .json();
    let kinds: Vec<&str> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["system"]);
    assert!(t
        .app
        .signals
        .notify_personalized(subject, &Notice::new("x", "y"), &ctx)
        .await
        .is_err());
    let kinds: Vec<String> = t
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, vec!["personalized", "system"]);
}
