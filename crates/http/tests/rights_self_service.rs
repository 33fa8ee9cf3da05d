//! Self-service rights over HTTP, in-process through `app()` (P21, P33, P34, P37, L7):
//! background exports behind re-authentication, with progress and a download link that
//! serves its owner only and answers 410 once expired; corrections and single-item
//! deletions answering with their audit ticket, another user's id a 404; complaints filed
//! anonymously and read back with the follow-up secret; the contact route; bad input with
//! stable codes.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use custos_app::catalog::input::Format;
use custos_app::catalog::CatalogConfig;
use custos_app::config::MasterKeySource;
use custos_app::{App, Config};
use custos_core::{FakeClock, GateContext, SubjectId};
use custos_crypto::{MasterKey, OsRng};
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "operator-token-for-tests-0123456789";

struct TestApp {
    router: Router,
    app: App,
    clock: Arc<FakeClock>,
    _dir: tempfile::TempDir,
}

async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        data_dir: dir.path().to_path_buf(),
        database_url: format!("sqlite://{}", dir.path().join("custos.db").display()),
        vault_url: format!("sqlite://{}", dir.path().join("keys.db").display()),
        master_key: MasterKeySource::Inline(MasterKey::generate(&mut OsRng).to_base64()),
        catalog: CatalogConfig {
            operator_token: Some(TOKEN.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    let clock = Arc::new(FakeClock::default());
    let app = App::open(&cfg, clock.clone()).await.unwrap();
    TestApp {
        router: custos_http::app(app.clone()),
        app,
        clock,
        _dir: dir,
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

impl TestApp {
    async fn call_with(
        &self,
        method: &str,
        uri: &str,
        bearer: Option<&str>,
        body: Option<Value>,
        extra: Option<(&str, &str)>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = bearer {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some((k, v)) = extra {
            b = b.header(k, v);
        }
        if body.is_some() {
            b = b.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or_else(Body::empty, |v| Body::from(v.to_string()));
        let resp = self
            .router
            .clone()
            .oneshot(b.body(body).unwrap())
            .await
            .unwrap();
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
    async fn call(
        &self,
        method: &str,
        uri: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        self.call_with(method, uri, bearer, body, None).await
    }
    /// A freshly re-authenticated session for `subject`.
    async fn session_for(&self, subject: SubjectId) -> String {
        let s = self
            .app
            .identity
            .create_session(subject, true)
            .await
            .unwrap();
        s.token.expose().clone()
    }
    async fn stale_session_for(&self, subject: SubjectId) -> String {
        let s = self
            .app
            .identity
            .create_session(subject, false)
            .await
            .unwrap();
        s.token.expose().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_export_needs_reauthentication_and_its_link_serves_its_owner_until_it_expires()
{
    let app = spawn_app().await;
    let (alice, bob) = (SubjectId::random(), SubjectId::random());
    let stale = app.stale_session_for(alice).await;
    let r = app
        .call("POST", "/api/v1/me/exports", Some(&stale), None)
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "reauthentication_required")
    );
    let r = app.call("POST", "/api/v1/me/exports", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let token = app.session_for(alice).await;
    let r = app
        .call("POST", "/api/v1/me/exports", Some(&token), None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let id = r.json()["id"].as_str().unwrap().to_owned();
    // Default link lifetime: one day.
    assert_eq!(r.json()["expires_at"], "2026-01-02T00:00:00Z");
    let mut job = Value::Null;
    for _ in 0..3_000 {
        let r = app
            .call(
                "GET",
                &format!("/api/v1/me/exports/{id}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        job = r.json();
        if job["state"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(job["state"], "ready", "{job}");
    assert_eq!(job["done"], job["total"]);
    let json_url = job["download"]["json"].as_str().unwrap().to_owned();
    let html_url = job["download"]["html"].as_str().unwrap().to_owned();
    let r = app
        .call("GET", "/api/v1/me/exports", Some(&token), None)
        .await;
    assert_eq!(r.json()["exports"].as_array().unwrap().len(), 1);

    let r = app.call("GET", &json_url, Some(&token), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    let export = r.json();
    assert_eq!(export["subject"], alice.to_string());
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/export.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert!(jsonschema::is_valid(&schema, &export), "{export:#}");
    let r = app.call("GET", &html_url, Some(&token), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(String::from_utf8(r.body)
        .unwrap()
        .contains("<h1>Your data in Custos</h1>"));

    // Bob: neither the job nor the file, even with the link.
    let bob_token = app.session_for(bob).await;
    let r = app
        .call(
            "GET",
            &format!("/api/v1/me/exports/{id}"),
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let r = app.call("GET", &json_url, Some(&bob_token), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.call("GET", &json_url, None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Bad input.
    let r = app
        .call("GET", &format!("{json_url}?format=xml"), Some(&token), None)
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_format")
    );
    let r = app
        .call(
            "GET",
            "/api/v1/me/export-files/not-a-token",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // A day later the link is gone: 410, and the job too.
    app.clock.advance(time::Duration::days(1));
    let r = app.call("GET", &json_url, Some(&token), None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::GONE, "export_expired")
    );
    let r = app
        .call(
            "GET",
            &format!("/api/v1/me/exports/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrections_and_single_item_deletions_answer_with_their_audit_ticket_and_others_ids_are_404(
) {
    let app = spawn_app().await;
    let ids = app
        .app
        .catalog
        .import_text(
            "external_id,title_zh,title_en,description_zh,description_en,category,tags,price_min,price_max,currency\n\
             sku-1,夏季连衣裙,Summer dress,轻薄透气,Light and airy,clothing,summer,199,259,CNY\n",
            Format::Csv,
            false,
            &mut |_| {},
        )
        .await
        .unwrap()
        .ids;
    let (alice_id, bob_id) = (SubjectId::random(), SubjectId::random());
    let (alice, bob) = (
        app.session_for(alice_id).await,
        app.session_for(bob_id).await,
    );
    let ctx = GateContext::default();
    let c = app
        .app
        .catalog
        .comment(alice_id, &ctx, ids[0], "first words", false)
        .await
        .unwrap();
    let b = app
        .app
        .catalog
        .bookmark(alice_id, &ctx, ids[0], None)
        .await
        .unwrap();

    let r = app
        .call(
            "POST",
            "/api/v1/me/corrections",
            Some(&alice),
            Some(json!({"field": "comment", "id": c.id, "value": "better words"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let t = r.json();
    assert_eq!(
        (t["kind"].as_str(), t["status"].as_str()),
        (Some("correction"), Some("completed"))
    );
    assert_eq!(t["history"].as_array().unwrap().len(), 2);
    let r = app
        .call("GET", "/api/v1/me/comments", Some(&alice), None)
        .await;
    assert!(r.json().to_string().contains("better words"));
    // Bob cannot correct Alice's comment: 404, and the comment stays.
    let r = app
        .call(
            "POST",
            "/api/v1/me/corrections",
            Some(&bob),
            Some(json!({"field": "comment", "id": c.id, "value": "hijacked"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    for (body, code) in [
        (json!({"field": "email", "value": "x"}), "unknown_field"),
        (json!({"field": "comment", "value": "x"}), "id_required"),
        (json!({"field": "avatar", "value": "%%%"}), "invalid_avatar"),
        (
            json!({"field": "nickname", "value": ""}),
            "invalid_nickname",
        ),
    ] {
        let r = app
            .call("POST", "/api/v1/me/corrections", Some(&alice), Some(body))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, code)
        );
    }
    let r = app
        .call(
            "POST",
            "/api/v1/me/corrections",
            Some(&alice),
            Some(json!({"field": "nickname"})),
        )
        .await;
    assert!(r.status.is_client_error());
    let r = app
        .call("GET", "/api/v1/me/corrections", Some(&alice), None)
        .await;
    assert_eq!(r.json()["tickets"].as_array().unwrap().len(), 1);
    // The older per-field routes are audited the same way (P33): a nickname set and a
    // comment edited there each leave an answered correction ticket.
    let r = app
        .call(
            "PUT",
            "/api/v1/me/profile/nickname",
            Some(&alice),
            Some(json!({"nickname": "Alice-2"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .call(
            "PATCH",
            &format!("/api/v1/me/comments/{}", c.id),
            Some(&alice),
            Some(json!({"body": "best words"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let r = app
        .call("GET", "/api/v1/me/corrections", Some(&alice), None)
        .await;
    let tickets = r.json()["tickets"].as_array().unwrap().clone();
    assert_eq!(tickets.len(), 3, "{tickets:?}");
    assert!(tickets.iter().all(|t| t["status"] == "completed"));

    // Deletion: Bob's attempt is a 404 like a missing id; Alice's takes effect at once.
    let uri = format!("/api/v1/me/data/bookmark/{}", b.id);
    let r = app.call("DELETE", &uri, Some(&bob), None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let r = app.call("DELETE", &uri, Some(&alice), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["kind"], "deletion");
    let r = app
        .call("GET", "/api/v1/me/bookmarks", Some(&alice), None)
        .await;
    assert!(!r.json().to_string().contains(&format!("\"id\":{}", b.id)));
    let r = app.call("DELETE", &uri, Some(&alice), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call(
            "DELETE",
            &format!("/api/v1/me/data/comment/{}", c.id),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call(
            "GET",
            &format!("/api/v1/items/{}/comments", ids[0]),
            None,
            None,
        )
        .await;
    assert!(!r.json().to_string().contains("better words"));
    for (uri, code) in [
        ("/api/v1/me/data/photo/1", "unknown_item_kind"),
        ("/api/v1/me/data/bookmark/abc", "invalid_id"),
    ] {
        let r = app.call("DELETE", uri, Some(&alice), None).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, code)
        );
    }
    let r = app
        .call(
            "DELETE",
            "/api/v1/me/data/trait/tag%3Anone",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.call("DELETE", &uri, None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complaints_filed_anonymously_are_answered_and_read_with_the_follow_up_secret() {
    let app = spawn_app().await;
    let r = app.call("GET", "/api/v1/contact", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let contact = r.json();
    let regime = app.app.kernel.gate.regime();
    let ctl = &regime.current().declaration().controller;
    assert_eq!(contact["email"], ctl.email.as_str());
    assert_eq!(
        contact["complaint_route"]["en"],
        ctl.complaint_route.en.as_str()
    );
    assert_eq!(contact["complaints_endpoint"], "/api/v1/complaints");

    let r = app
        .call(
            "POST",
            "/api/v1/complaints",
            None,
            Some(json!({"kind": "report", "topic": "content", "about": "item:1", "detail": "fake product"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let filed = r.json();
    let secret = filed["follow_up_secret"].as_str().unwrap().to_owned();
    let id = filed["complaint"]["id"].as_i64().unwrap();
    assert_eq!(filed["complaint"]["anonymous"], true);
    assert_eq!(
        filed["complaint"]["ticket"]["due_at"],
        "2026-02-01T16:00:00Z"
    );

    let read = |secret: Option<String>| {
        let app = &app;
        async move {
            app.call_with(
                "GET",
                "/api/v1/complaints/follow-up",
                None,
                None,
                secret.as_deref().map(|s| ("x-custos-follow-up", s)),
            )
            .await
        }
    };
    let r = read(Some(secret.clone())).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["answer"], Value::Null);
    assert_eq!(read(None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        read(Some("wrong".into())).await.status,
        StatusCode::NOT_FOUND
    );

    let answer = |bearer: Option<&'static str>, body: Value| {
        let app = &app;
        async move {
            app.call(
                "POST",
                &format!("/api/v1/operator/complaints/{id}/answer"),
                bearer,
                Some(body),
            )
            .await
        }
    };
    assert_eq!(
        answer(None, json!({"answer": "x"})).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = answer(Some(TOKEN), json!({"answer": " "})).await;
    assert_eq!(r.code(), "answer_required");
    let r = answer(Some(TOKEN), json!({"answer": "We removed the item."})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["ticket"]["status"], "answered");
    let r = read(Some(secret)).await;
    assert_eq!(r.json()["answer"], "We removed the item.");

    // Signed in: no secret; the filer (and nobody else) lists and reads it.
    let (alice_id, bob_id) = (SubjectId::random(), SubjectId::random());
    let (alice, bob) = (
        app.session_for(alice_id).await,
        app.session_for(bob_id).await,
    );
    let r = app
        .call(
            "POST",
            "/api/v1/complaints",
            Some(&alice),
            Some(
                json!({"kind": "complaint", "topic": "data_handling", "detail": "too many texts"}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.json().get("follow_up_secret").is_none());
    let mine = r.json()["complaint"]["id"].as_i64().unwrap();
    let r = app
        .call("GET", "/api/v1/me/complaints", Some(&alice), None)
        .await;
    assert_eq!(r.json()["complaints"].as_array().unwrap().len(), 1);
    let r = app
        .call(
            "GET",
            &format!("/api/v1/me/complaints/{mine}"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call(
            "GET",
            &format!("/api/v1/me/complaints/{mine}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.json()["topic"], "data_handling");
    // It is among the operator's tickets when near due.
    app.clock.advance(time::Duration::days(30));
    let r = app
        .call("GET", "/api/v1/operator/rights/tickets", Some(TOKEN), None)
        .await;
    assert!(r.json()["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["id"] == mine));
    // Bad input.
    for (body, code) in [
        (
            json!({"kind": "praise", "topic": "content", "detail": "x"}),
            "unknown_kind",
        ),
        (
            json!({"kind": "report", "topic": "x", "detail": "x"}),
            "unknown_topic",
        ),
        (
            json!({"kind": "report", "topic": "content", "about": "item:x", "detail": "x"}),
            "invalid_about",
        ),
        (
            json!({"kind": "report", "topic": "content", "detail": ""}),
            "detail_required",
        ),
    ] {
        let r = app
            .call("POST", "/api/v1/complaints", None, Some(body))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, code)
        );
    }
    let r = app
        .call(
            "POST",
            "/api/v1/complaints",
            None,
            Some(json!({"kind": "report"})),
        )
        .await;
    assert!(r.status.is_client_error());
}
