//! Rights tickets over HTTP, in-process through `app()` (P17, L6): users file requests and
//! read their own tickets only; operators, with the operator token, list overdue and
//! near-due tickets and answer them; a refusal needs a reason and a legal basis and names
//! the complaint route; bad input gets stable codes.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use custos_app::catalog::CatalogConfig;
use custos_app::config::MasterKeySource;
use custos_app::{App, Config};
use custos_core::FakeClock;
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

async fn spawn_app(token: Option<&str>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        data_dir: dir.path().to_path_buf(),
        database_url: format!("sqlite://{}", dir.path().join("custos.db").display()),
        vault_url: format!("sqlite://{}", dir.path().join("keys.db").display()),
        master_key: MasterKeySource::Inline(MasterKey::generate(&mut OsRng).to_base64()),
        policy: None,
        identity: Default::default(),
        catalog: CatalogConfig {
            operator_token: token.map(str::to_owned),
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
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = bearer {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
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
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Resp { status, body }
    }
    /// A session token for a new subject, made the way a sign-in makes it.
    async fn signed_in(&self) -> String {
        self.session_for(custos_core::SubjectId::random()).await
    }
    async fn session_for(&self, subject: custos_core::SubjectId) -> String {
        let s = self
            .app
            .identity
            .create_session(subject, true)
            .await
            .unwrap();
        s.token.expose().clone()
    }
}

#[tokio::test]
async fn users_file_rights_requests_and_read_only_their_own_tickets() {
    let app = spawn_app(Some(TOKEN)).await;
    let (alice, bob) = (app.signed_in().await, app.signed_in().await);
    let r = app
        .call(
            "POST",
            "/api/v1/me/rights/tickets",
            None,
            Some(json!({"kind": "access"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );

    let r = app
        .call(
            "POST",
            "/api/v1/me/rights/tickets",
            Some(&alice),
            Some(json!({"kind": "cancellation", "detail": "close my account"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let t = r.json();
    assert_eq!(t["kind"], "cancellation");
    assert_eq!(t["status"], "open");
    assert_eq!(t["created_at"], "2026-01-01T00:00:00Z");
    // 15 working days (weekends off), end of the local (UTC+8) day.
    assert_eq!(t["due_at"], "2026-01-22T16:00:00Z");
    assert_eq!(t["overdue"], false);
    assert_eq!(t["history"].as_array().unwrap().len(), 1);
    let id = t["id"].as_i64().unwrap();
    let r = app
        .call(
            "POST",
            "/api/v1/me/rights/tickets",
            Some(&alice),
            Some(json!({"kind": "explanation"})),
        )
        .await;
    assert_eq!(r.json()["due_at"], "2026-02-01T16:00:00Z");

    let r = app
        .call("GET", "/api/v1/me/rights/tickets", Some(&alice), None)
        .await;
    assert_eq!(r.json()["tickets"].as_array().unwrap().len(), 2);
    let r = app
        .call(
            "GET",
            &format!("/api/v1/me/rights/tickets/{id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.json()["detail"], "close my account");
    // Bob sees nothing of Alice's: her ticket is a 404 like a missing one.
    let r = app
        .call(
            "GET",
            &format!("/api/v1/me/rights/tickets/{id}"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let r = app
        .call("GET", "/api/v1/me/rights/tickets", Some(&bob), None)
        .await;
    assert!(r.json()["tickets"].as_array().unwrap().is_empty());

    // Bad input.
    for (body, code) in [
        (json!({"kind": "everything"}), "unknown_kind"),
        (
            json!({"kind": "access", "detail": "x".repeat(4001)}),
            "detail_too_long",
        ),
    ] {
        let r = app
            .call(
                "POST",
                "/api/v1/me/rights/tickets",
                Some(&alice),
                Some(body),
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, code)
        );
    }
    let r = app
        .call(
            "POST",
            "/api/v1/me/rights/tickets",
            Some(&alice),
            Some(json!({"kind": "access", "extra": 1})),
        )
        .await;
    assert!(r.status.is_client_error());
    let r = app
        .call("GET", "/api/v1/me/rights/tickets/abc", Some(&alice), None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn operators_list_due_tickets_and_refusals_need_reason_basis_and_name_the_complaint_route() {
    let off = spawn_app(None).await;
    let r = off
        .call("GET", "/api/v1/operator/rights/tickets", Some(TOKEN), None)
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "operator_api_disabled")
    );

    let app = spawn_app(Some(TOKEN)).await;
    let alice_id = custos_core::SubjectId::random();
    let alice = app.session_for(alice_id).await;
    let r = app
        .call(
            "POST",
            "/api/v1/me/rights/tickets",
            Some(&alice),
            Some(json!({"kind": "deletion"})),
        )
        .await;
    let id = r.json()["id"].as_i64().unwrap();
    for bearer in [None, Some("wrong-token-wrong-token"), Some(alice.as_str())] {
        let r = app
            .call("GET", "/api/v1/operator/rights/tickets", bearer, None)
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNAUTHORIZED, "unauthorized")
        );
        let r = app
            .call(
                "POST",
                &format!("/api/v1/operator/rights/tickets/{id}/decision"),
                bearer,
                Some(json!({"status": "completed"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let list = |within: &'static str| {
        let app = &app;
        async move {
            let r = app
                .call(
                    "GET",
                    &format!("/api/v1/operator/rights/tickets{within}"),
                    Some(TOKEN),
                    None,
                )
                .await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "{}",
                String::from_utf8_lossy(&r.body)
            );
            r.json()["tickets"].as_array().unwrap().clone()
        }
    };
    assert!(list("").await.is_empty());
    assert_eq!(list("?within_days=40").await.len(), 1);
    // A month and a day later it is overdue.
    app.clock.advance(time::Duration::days(32));
    let due = list("").await;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0]["id"], id);
    assert_eq!(due[0]["overdue"], true);

    let decide = |body: Value| {
        let app = &app;
        async move {
            app.call(
                "POST",
                &format!("/api/v1/operator/rights/tickets/{id}/decision"),
                Some(TOKEN),
                Some(body),
            )
            .await
        }
    };
    let r = decide(json!({"status": "in_progress", "note": "looking"})).await;
    assert_eq!(r.json()["status"], "in_progress");
    for (body, code) in [
        (
            json!({"status": "refused", "legal_basis": "PIPL art. 47"}),
            "refusal_reason_required",
        ),
        (
            json!({"status": "refused", "reason": "pending dispute"}),
            "refusal_basis_required",
        ),
        (json!({"status": "maybe"}), "unknown_status"),
    ] {
        let r = decide(body).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, code)
        );
    }
    let r = decide(
        json!({"status": "refused", "reason": "pending dispute", "legal_basis": "PIPL art. 13(3)"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let t = r.json();
    assert_eq!(t["status"], "refused");
    assert_eq!(t["refusal_reason"], "pending dispute");
    assert_eq!(t["refusal_legal_basis"], "PIPL art. 13(3)");
    let regime = app.app.kernel.gate.regime();
    let route = &regime.current().declaration().controller.complaint_route;
    assert_eq!(t["complaint_route"]["en"], route.en.as_str());
    assert_eq!(t["complaint_route"]["zh"], route.zh.as_str());
    let statuses: Vec<&str> = t["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["open", "in_progress", "refused"]);
    // The user (signed in again: a month has passed) reads the refusal with its route;
    // the ticket left the operator's list.
    let alice = app.session_for(alice_id).await;
    let r = app
        .call(
            "GET",
            &format!("/api/v1/me/rights/tickets/{id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.json()["complaint_route"]["en"], route.en.as_str());
    assert!(list("").await.is_empty());
    let r = decide(json!({"status": "completed"})).await;
    assert_eq!(r.code(), "ticket_closed");
    let r = app
        .call(
            "POST",
            "/api/v1/operator/rights/tickets/999999/decision",
            Some(TOKEN),
            Some(json!({"status": "completed"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn account_cancellation_needs_reauthentication_can_be_revoked_then_erases() {
    let app = spawn_app(Some(TOKEN)).await;
    let user = custos_core::SubjectId::random();
    // A session without a fresh proof is refused.
    let stale = app
        .app
        .identity
        .create_session(user, false)
        .await
        .unwrap()
        .token
        .expose()
        .clone();
    let r = app
        .call("POST", "/api/v1/me/cancellation", Some(&stale), None)
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "reauthentication_required")
    );
    let r = app
        .call("POST", "/api/v1/me/cancellation", None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let token = app.session_for(user).await;
    let r = app
        .call("GET", "/api/v1/me/cancellation", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call("POST", "/api/v1/me/cancellation", Some(&token), None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let c = r.json();
    assert_eq!(c["effective_at"], "2026-01-08T00:00:00Z");
    let kept: Vec<&str> = c["kept_deidentified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["what"].as_str().unwrap())
        .collect();
    assert!(kept.contains(&"consent ledger records") && kept.contains(&"security logs"));
    let r = app
        .call("GET", "/api/v1/me/cancellation", Some(&token), None)
        .await;
    assert_eq!(r.json()["ticket_id"], c["ticket_id"]);
    // Revoked: the account stays.
    let r = app
        .call("DELETE", "/api/v1/me/cancellation", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .call("DELETE", "/api/v1/me/cancellation", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Again, and the cooling-off period runs out.
    let r = app
        .call("POST", "/api/v1/me/cancellation", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let ticket = r.json()["ticket_id"].as_i64().unwrap();
    app.clock.advance(time::Duration::days(7));
    let r = app
        .call(
            "POST",
            "/api/v1/operator/rights/cancellations/run",
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .call(
            "POST",
            "/api/v1/operator/rights/cancellations/run",
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let erasures = r.json()["erasures"].as_array().unwrap().clone();
    assert_eq!(erasures.len(), 1);
    assert_eq!(erasures[0]["ticket_id"], ticket);
    assert!(!erasures[0]["kept_deidentified"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(!erasures[0].to_string().contains(&user.to_string()));
    // The session died with the account.
    let r = app
        .call("GET", "/api/v1/me/rights/tickets", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_export_needs_reauthentication_and_comes_as_json_and_html() {
    let app = spawn_app(Some(TOKEN)).await;
    let user = custos_core::SubjectId::random();
    let stale = app
        .app
        .identity
        .create_session(user, false)
        .await
        .unwrap()
        .token
        .expose()
        .clone();
    for uri in ["/api/v1/me/export", "/api/v1/me/export.html"] {
        let r = app.call("GET", uri, Some(&stale), None).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::FORBIDDEN, "reauthentication_required")
        );
        let r = app.call("GET", uri, None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let token = app.session_for(user).await;
    let r = app
        .call(
            "POST",
            "/api/v1/me/rights/tickets",
            Some(&token),
            Some(json!({"kind": "explanation", "detail": "why this ad?"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app
        .call("GET", "/api/v1/me/export", Some(&token), None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let export = r.json();
    assert_eq!(export["format"], "custos-export-v1");
    assert_eq!(export["subject"], user.to_string());
    assert!(export.to_string().contains("why this ad?"));
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/export.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert!(jsonschema::is_valid(&schema, &export), "{export:#}");
    let r = app
        .call("GET", "/api/v1/me/export.html", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let html = String::from_utf8(r.body).unwrap();
    assert!(html.contains("<h1>Your data in Custos</h1>"));
    assert!(html.contains("why this ad?"));
}
