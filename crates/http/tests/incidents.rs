//! Incidents over HTTP, in-process through `app()` (P25, L11): a report missing an L11
//! field is a 400 naming it; affected users are notified into their inbox; announcements
//! are public; the 72-hour alarm follows a fake clock until the regulator report.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use custos_app::catalog::CatalogConfig;
use custos_app::config::MasterKeySource;
use custos_app::{App, Config};
use custos_core::{FakeClock, SubjectId};
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

async fn spawn_app(pg: Option<(String, String)>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        data_dir: dir.path().to_path_buf(),
        database_url: pg
            .as_ref()
            .map(|p| p.0.clone())
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("custos.db").display())),
        vault_url: pg
            .as_ref()
            .map(|p| p.1.clone())
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("keys.db").display())),
        master_key: MasterKeySource::Inline(MasterKey::generate(&mut OsRng).to_base64()),
        catalog: CatalogConfig {
            operator_token: Some(TOKEN.into()),
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
    json: Value,
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
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        Resp {
            status,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }
    fn now(&self) -> String {
        custos_core::clock::rfc3339(custos_core::Clock::now_ms(self.clock.as_ref()))
    }
}

async fn alarms(app: &TestApp) -> Value {
    app.call(
        "GET",
        "/api/v1/operator/incidents/alarms",
        Some(TOKEN),
        None,
    )
    .await
    .json["alarms"]
        .clone()
}

fn report(detected_at: &str) -> Value {
    json!({
        "title": "Session table exposed",
        "cause": "A debug endpoint listed session rows for two hours.",
        "categories": ["user.unique_id.pseudonymous"],
        "stores": ["database"],
        "possible_harm": "Someone could have learned which accounts were active.",
        "remedies": "The endpoint was removed and every session was signed out.",
        "user_actions": "Sign in again; no password change is needed.",
        "contact": "security@vistafinds.example",
        "detected_at": detected_at,
    })
}

async fn each_backend(test: impl AsyncFn(TestApp)) {
    test(spawn_app(None).await).await;
    let Some(data) = custos_testkit::postgres_database().await else {
        return;
    };
    let Some(vault) = custos_testkit::postgres_database().await else {
        return;
    };
    test(spawn_app(Some((data, vault))).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_report_missing_an_l11_field_is_a_400_naming_it() {
    each_backend(async |app: TestApp| {
        let r = app
            .call(
                "POST",
                "/api/v1/operator/incidents",
                None,
                Some(report(&app.now())),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        for field in [
            "cause",
            "categories",
            "possible_harm",
            "remedies",
            "user_actions",
            "contact",
            "detected_at",
        ] {
            let mut body = report(&app.now());
            body.as_object_mut().unwrap().remove(field);
            let r = app
                .call(
                    "POST",
                    "/api/v1/operator/incidents",
                    Some(TOKEN),
                    Some(body),
                )
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{field}");
            assert_eq!(r.json["code"], "missing_field", "{field}");
            assert!(
                r.json["message"].as_str().unwrap().contains(field),
                "{field}: {}",
                r.json
            );
        }
        let r = app
            .call(
                "POST",
                "/api/v1/operator/incidents",
                Some(TOKEN),
                Some(report(&app.now())),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        assert_eq!(r.json["timeline"][0]["action"], "recorded");
        assert_eq!(r.json["timeline"][0]["actor"], "operator-token");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn affected_users_are_notified_and_announcements_are_public() {
    each_backend(async |app: TestApp| {
        let user = SubjectId::random();
        let session = app.app.identity.create_session(user, true).await.unwrap();
        let token = session.token.expose().clone();
        let r = app
            .call(
                "POST",
                "/api/v1/operator/incidents",
                Some(TOKEN),
                Some(report(&app.now())),
            )
            .await;
        let id = r.json["id"].as_i64().unwrap();
        let q = json!({"from": "2025-12-31T00:00:00Z", "sessions": true});
        let r = app
            .call(
                "POST",
                &format!("/api/v1/operator/incidents/{id}/affected"),
                Some(TOKEN),
                Some(q.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(r.json["subjects"], json!([user.to_string()]));
        let r = app
            .call(
                "POST",
                &format!("/api/v1/operator/incidents/{id}/notify"),
                Some(TOKEN),
                Some(json!({"mode": "individual", "query": q})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(r.json["notified"], 1);
        let inbox = app
            .call("GET", "/api/v1/me/inbox", Some(&token), None)
            .await;
        let body = inbox.json["messages"][0]["body"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            body.contains("every session was signed out"),
            "{}",
            inbox.json
        );

        assert_eq!(
            app.call("GET", "/api/v1/announcements", None, None)
                .await
                .json["announcements"],
            json!([])
        );
        let r = app
            .call(
                "POST",
                &format!("/api/v1/operator/incidents/{id}/notify"),
                Some(TOKEN),
                Some(json!({"mode": "announcement"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        let public = app.call("GET", "/api/v1/announcements", None, None).await;
        assert_eq!(public.status, StatusCode::OK);
        assert_eq!(public.json["announcements"][0]["incident_id"], id);
        assert!(public.json["announcements"][0]["body"]
            .as_str()
            .unwrap()
            .contains("Sign in again"));
        let r = app
            .call(
                "POST",
                &format!("/api/v1/operator/incidents/{id}/timeline"),
                Some(TOKEN),
                Some(json!({"action": "contained", "detail": "endpoint removed"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let r = app
            .call(
                "GET",
                &format!("/api/v1/operator/incidents/{id}"),
                Some(TOKEN),
                None,
            )
            .await;
        let actions: Vec<&str> = r.json["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            [
                "recorded",
                "notified_individually",
                "announced",
                "contained"
            ]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alarm_endpoint_lists_incidents_72_hours_past_detection_without_a_report() {
    each_backend(async |app: TestApp| {
        let r = app
            .call(
                "POST",
                "/api/v1/operator/incidents",
                Some(TOKEN),
                Some(report(&app.now())),
            )
            .await;
        let id = r.json["id"].as_i64().unwrap();
        assert_eq!(alarms(&app).await, json!([]));
        app.clock.advance(time::Duration::hours(71));
        assert_eq!(alarms(&app).await, json!([]));
        app.clock.advance(time::Duration::hours(2));
        let a = alarms(&app).await;
        assert_eq!(a[0]["incident_id"], id, "{a}");
        assert!(a[0]["overdue_hours"].as_f64().unwrap() >= 1.0);
        let r = app
            .call(
                "POST",
                &format!("/api/v1/operator/incidents/{id}/regulator-report"),
                Some(TOKEN),
                Some(json!({"reference": "CAC-42"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(r.json["regulator_reference"], "CAC-42");
        assert_eq!(alarms(&app).await, json!([]));
        let r = app
            .call(
                "POST",
                &format!("/api/v1/operator/incidents/{id}/regulator-report"),
                Some(TOKEN),
                Some(json!({"reference": "again"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
    })
    .await;
}

/// Creates a staff account with `role` and signs it in over HTTP.
async fn staff(app: &TestApp, username: &str, role: custos_app::ops::Role) -> String {
    let created = app
        .app
        .ops
        .create_staff(&custos_app::ops::Actor::Cli, username, role, None)
        .await
        .unwrap();
    let totp = app.app.ops.staff_totp(username).await.unwrap();
    let code = totp.generate((custos_core::Clock::now_ms(app.clock.as_ref()) / 1000) as u64);
    let r = app
        .call(
            "POST",
            "/api/v1/staff/sessions",
            None,
            Some(json!({"username": username, "password": created.password.expose(), "totp_code": code})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    r.json["token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_security_and_privacy_officers_handle_incidents_and_only_privacy_officers_share() {
    use custos_app::ops::Role;
    let app = spawn_app(None).await;
    let user = SubjectId::random();
    for role in Role::ALL {
        let token = staff(
            &app,
            &format!("u-{}", role.as_str().replace('_', "-")),
            role,
        )
        .await;
        let r = app
            .call(
                "POST",
                "/api/v1/operator/incidents",
                Some(&token),
                Some(report(&app.now())),
            )
            .await;
        let incidents = matches!(role, Role::SecurityOfficer | Role::PrivacyOfficer);
        if incidents {
            assert_eq!(r.status, StatusCode::CREATED, "{role:?}: {}", r.json);
        } else {
            assert_eq!(
                (r.status, r.json["code"].as_str()),
                (StatusCode::FORBIDDEN, Some("permission_denied")),
                "{role:?}"
            );
        }
        let r = app
            .call(
                "GET",
                "/api/v1/operator/incidents/alarms",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(r.status == StatusCode::OK, incidents, "{role:?} alarms");
        // Past the permission check, a share without consent meets the gate (403
        // consent_missing); without the permission it never gets there.
        let r = app
            .call(
                "POST",
                "/api/v1/operator/partners/xingyao_brands/shares",
                Some(&token),
                Some(json!({"subject": user.to_string(), "fields": ["pseudonymous_id"], "purpose": "partner_sharing"})),
            )
            .await;
        let expected = if role == Role::PrivacyOfficer {
            "consent_missing"
        } else {
            "permission_denied"
        };
        assert_eq!(r.json["code"], expected, "{role:?} share");
        let r = app
            .call(
                "POST",
                "/api/v1/operator/inbound",
                Some(&token),
                Some(json!({"subject": user.to_string(), "source": "S", "consent_commitment": "C", "purpose": "location",
                            "fields": [{"name": "gps", "category": "user.location.precise", "value": "1,2"}]})),
            )
            .await;
        let expected = if role == Role::PrivacyOfficer {
            "consent_missing"
        } else {
            "permission_denied"
        };
        assert_eq!(r.json["code"], expected, "{role:?} inbound");
    }
}
