//! Staff and the operator API over HTTP, in-process through `app()` (P24, L3): each role
//! can do exactly its permitted operator actions (a table, checked for every role on
//! SQLite and PostgreSQL), sign-in needs password and a fresh TOTP code, reads of a
//! user's data name a ticket or purpose and are audited, and the legacy operator token
//! keeps every permission and is audited as such.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use custos_app::catalog::CatalogConfig;
use custos_app::config::MasterKeySource;
use custos_app::ops::{Actor, Role};
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
    pg: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

async fn spawn_app(token: Option<&str>, pg: Option<(String, String)>) -> TestApp {
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
            operator_token: token.map(str::to_owned),
            ..Default::default()
        },
        ..Default::default()
    };
    let clock = Arc::new(FakeClock::default());
    let app = App::open(&cfg, clock.clone()).await.unwrap();
    TestApp {
        // The general write limit is off: the RBAC table sends many writes at once.
        router: custos_http::app_with(
            app.clone(),
            custos_http::HttpOptions {
                writes_per_second: 0,
            },
        ),
        app,
        clock,
        pg,
        _dir: dir,
    }
}

async fn postgres_pair() -> Option<(String, String)> {
    let data = custos_testkit::postgres_database().await?;
    let vault = custos_testkit::postgres_database().await?;
    Some((data, vault))
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
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = bearer {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
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
    async fn code_for(&self, username: &str) -> String {
        let t = self.app.ops.staff_totp(username).await.unwrap();
        t.generate((self.app.kernel.clock.now_ms() / 1000) as u64)
    }
    /// Creates a staff account and signs it in over HTTP; returns the session token.
    async fn staff(&self, username: &str, role: Role) -> String {
        let created = self
            .app
            .ops
            .create_staff(&Actor::Cli, username, role, None)
            .await
            .unwrap();
        let r = self
            .call(
                "POST",
                "/api/v1/staff/sessions",
                None,
                &[],
                Some(json!({
                    "username": username,
                    "password": created.password.expose(),
                    "totp_code": self.code_for(username).await,
                })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
        r.json()["token"].as_str().unwrap().to_owned()
    }
    async fn audit(&self) -> Vec<custos_store::audit::Entry> {
        custos_store::audit::entries(&self.app.kernel.db, 0, 100_000, None)
            .await
            .unwrap()
    }
    async fn finish(self) {
        self.app.shutdown().await;
        if let Some((a, b)) = &self.pg {
            custos_testkit::drop_postgres_database(a).await;
            custos_testkit::drop_postgres_database(b).await;
        }
    }
}

/// One operator action: method, path, body, extra headers.
struct Action {
    name: &'static str,
    method: &'static str,
    path: String,
    body: Option<Value>,
    headers: Vec<(&'static str, &'static str)>,
}

fn actions() -> Vec<Action> {
    let subject = custos_core::SubjectId::random();
    let a = |name, method, path: &str, body: Option<Value>| Action {
        name,
        method,
        path: path.to_owned(),
        body,
        headers: vec![],
    };
    vec![
        a(
            "import items",
            "POST",
            "/api/v1/operator/items",
            Some(json!([])),
        ),
        a(
            "delete item",
            "DELETE",
            "/api/v1/operator/items/999999",
            None,
        ),
        a(
            "moderate comment",
            "POST",
            "/api/v1/operator/comments/999999/status",
            Some(json!({"status": "hidden"})),
        ),
        a(
            "list due tickets",
            "GET",
            "/api/v1/operator/rights/tickets",
            None,
        ),
        a(
            "decide ticket",
            "POST",
            "/api/v1/operator/rights/tickets/999999/decision",
            Some(json!({"status": "in_progress"})),
        ),
        a(
            "run cancellations",
            "POST",
            "/api/v1/operator/rights/cancellations/run",
            None,
        ),
        Action {
            name: "read user data",
            method: "GET",
            path: format!("/api/v1/operator/subjects/{subject}/data"),
            body: None,
            headers: vec![("x-custos-purpose", "access review for the rbac test")],
        },
        a(
            "consent stats",
            "GET",
            "/api/v1/operator/stats/consents",
            None,
        ),
        a("ad report", "GET", "/api/v1/operator/ads/report", None),
        a(
            "answer complaint",
            "POST",
            "/api/v1/operator/complaints/999999/answer",
            Some(json!({"answer": "done"})),
        ),
        a("read audit log", "GET", "/api/v1/operator/audit", None),
        a("list staff", "GET", "/api/v1/operator/staff", None),
        a(
            "change staff",
            "PATCH",
            "/api/v1/operator/staff/nobody",
            Some(json!({"role": "analyst"})),
        ),
        a("list incidents", "GET", "/api/v1/operator/incidents", None),
        a(
            "incident alarms",
            "GET",
            "/api/v1/operator/incidents/alarms",
            None,
        ),
        a(
            "share with partner",
            "POST",
            "/api/v1/operator/partners/no-such-partner/shares",
            Some(
                json!({"subject": subject.to_string(), "fields": ["pseudonymous_id"], "purpose": "personalized_ads"}),
            ),
        ),
        a(
            "record inbound",
            "POST",
            "/api/v1/operator/inbound",
            Some(
                json!({"subject": subject.to_string(), "source": "", "consent_commitment": "",
                        "purpose": "no-such-purpose", "fields": []}),
            ),
        ),
        a(
            "list cessations",
            "GET",
            "/api/v1/operator/cessations",
            None,
        ),
        a(
            "discontinue",
            "POST",
            "/api/v1/operator/cessations",
            Some(json!({"feature": "no-such-feature"})),
        ),
        a(
            "run cessations",
            "POST",
            "/api/v1/operator/cessations/run",
            None,
        ),
        a(
            "change controller",
            "POST",
            "/api/v1/operator/controller",
            Some(json!({"name_en": "", "name_zh": "", "address": ""})),
        ),
        a("residency", "GET", "/api/v1/operator/residency", None),
    ]
}

/// The specification the roles are checked against, written out independently of
/// `Role::permissions`.
fn allowed(role: Role) -> &'static [&'static str] {
    match role {
        Role::Support => &[
            "moderate comment",
            "list due tickets",
            "decide ticket",
            "answer complaint",
            "read user data",
        ],
        Role::Analyst => &["consent stats", "ad report"],
        Role::SecurityOfficer => &[
            "read audit log",
            "list staff",
            "list incidents",
            "incident alarms",
        ],
        Role::PrivacyOfficer => &[
            "list due tickets",
            "decide ticket",
            "answer complaint",
            "run cancellations",
            "read user data",
            "consent stats",
            "ad report",
            "read audit log",
            "list incidents",
            "incident alarms",
            "share with partner",
            "record inbound",
            "list cessations",
            "discontinue",
            "run cessations",
            "change controller",
            "residency",
        ],
        Role::Admin => &[
            "import items",
            "delete item",
            "read audit log",
            "list staff",
            "change staff",
            "list cessations",
            "discontinue",
            "run cessations",
            "change controller",
            "residency",
        ],
    }
}

async fn each_role_can_do_exactly_its_permitted_operator_actions(app: TestApp) {
    for role in Role::ALL {
        let token = app
            .staff(&format!("u-{}", role.as_str().replace('_', "-")), role)
            .await;
        let mut actions = actions();
        // Creating staff is checked with a fresh username per role.
        actions.push(Action {
            name: "create staff",
            method: "POST",
            path: "/api/v1/operator/staff".into(),
            body: Some(json!({"username": format!("new-{}", role.as_str().replace('_', "-")), "role": "support"})),
            headers: vec![],
        });
        for act in actions {
            let r = app
                .call(
                    act.method,
                    &act.path,
                    Some(&token),
                    &act.headers,
                    act.body.clone(),
                )
                .await;
            let may = allowed(role).contains(&act.name)
                || (act.name == "create staff" && role == Role::Admin);
            if may {
                assert_ne!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{role:?} {}: {:?}",
                    act.name,
                    r.json()
                );
                assert!(
                    r.status != StatusCode::UNAUTHORIZED,
                    "{role:?} {}",
                    act.name
                );
            } else {
                assert_eq!(
                    (r.status, r.code().as_str()),
                    (StatusCode::FORBIDDEN, "permission_denied"),
                    "{role:?} {}",
                    act.name
                );
            }
        }
    }
    // Every decision, allowed or denied, is in the log with the request line.
    let audit = app.audit().await;
    assert!(audit.iter().any(|e| e.actor == "staff:u-analyst"
        && e.action == "operator.catalog.write"
        && e.target == "POST /api/v1/operator/items"
        && e.outcome == "denied"));
    assert!(audit.iter().any(|e| e.actor == "staff:u-admin"
        && e.action == "operator.catalog.write"
        && e.outcome == "allowed"));
    // The user id in the read's path is masked.
    assert!(audit
        .iter()
        .any(|e| e.target == "GET /api/v1/operator/subjects/{uuid}/data"));
    app.finish().await;
}

#[tokio::test]
async fn sqlite_each_role_can_do_exactly_its_permitted_operator_actions() {
    each_role_can_do_exactly_its_permitted_operator_actions(spawn_app(None, None).await).await;
}

#[tokio::test]
async fn postgres_each_role_can_do_exactly_its_permitted_operator_actions() {
    let Some(pg) = postgres_pair().await else {
        return;
    };
    each_role_can_do_exactly_its_permitted_operator_actions(spawn_app(None, Some(pg)).await).await;
}

#[tokio::test]
async fn staff_sign_in_refuses_wrong_replayed_and_missing_codes_and_locks_after_failures() {
    let app = spawn_app(None, None).await;
    let created = app
        .app
        .ops
        .create_staff(&Actor::Cli, "erin", Role::Support, None)
        .await
        .unwrap();
    let pw = created.password.expose().clone();
    let code = app.code_for("erin").await;
    let sign_in = |body: Value| app.call("POST", "/api/v1/staff/sessions", None, &[], Some(body));
    let r = sign_in(json!({"username": "erin", "password": pw})).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "totp_required")
    );
    let wrong = if code == "123456" { "654321" } else { "123456" };
    let r = sign_in(json!({"username": "erin", "password": pw, "totp_code": wrong})).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    let r = sign_in(json!({"username": "erin", "password": pw, "totp_code": code})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let token = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["role"], "support");
    let r = sign_in(json!({"username": "erin", "password": pw, "totp_code": code})).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "totp_replayed")
    );
    // The session works, then signs out.
    let me = app
        .call("GET", "/api/v1/staff/me", Some(&token), &[], None)
        .await;
    assert_eq!(me.json()["username"], "erin");
    assert!(me.json()["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("subject.data.read")));
    let out = app
        .call(
            "DELETE",
            "/api/v1/staff/sessions/current",
            Some(&token),
            &[],
            None,
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let me = app
        .call("GET", "/api/v1/staff/me", Some(&token), &[], None)
        .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    // Five failures in a row (the replay and four more) lock the account: 429.
    for _ in 0..4 {
        let r =
            sign_in(json!({"username": "erin", "password": "wrong-password!", "totp_code": wrong}))
                .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    app.clock.advance(time::Duration::seconds(30));
    let fresh = app.code_for("erin").await;
    let r = sign_in(json!({"username": "erin", "password": pw, "totp_code": fresh})).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "staff_locked")
    );
    let audit = app.audit().await;
    assert!(
        audit
            .iter()
            .filter(|e| e.action == "staff.sign_in" && e.outcome == "failed")
            .count()
            >= 7
    );
    app.finish().await;
}

#[tokio::test]
async fn a_staff_read_of_user_data_names_a_ticket_or_purpose_and_is_audited() {
    let app = spawn_app(None, None).await;
    let support = app.staff("sam", Role::Support).await;
    let alice = custos_core::SubjectId::random();
    let bob = custos_core::SubjectId::random();
    let ticket = app
        .app
        .rights
        .open_ticket(
            alice,
            custos_app::rights::TicketKind::Access,
            "what do you hold?",
        )
        .await
        .unwrap();
    let bobs = app
        .app
        .rights
        .open_ticket(bob, custos_app::rights::TicketKind::Access, "")
        .await
        .unwrap();
    let path = format!("/api/v1/operator/subjects/{alice}/data");
    let r = app.call("GET", &path, Some(&support), &[], None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "purpose_required")
    );
    let r = app
        .call(
            "GET",
            &path,
            Some(&support),
            &[("x-custos-purpose", "hm")],
            None,
        )
        .await;
    assert_eq!(r.code(), "purpose_required");
    let r = app
        .call(
            "GET",
            &format!("{path}?ticket={}", bobs.id),
            Some(&support),
            &[],
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "ticket_mismatch")
    );
    let reads_before = app
        .audit()
        .await
        .iter()
        .filter(|e| e.action == "subject.data.read")
        .count();
    assert_eq!(
        reads_before, 0,
        "refused reads gather nothing and record no read"
    );
    let r = app
        .call(
            "GET",
            &format!("{path}?ticket={}", ticket.id),
            Some(&support),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json()["subject"], alice.to_string());
    assert_eq!(r.json()["rights_tickets"][0]["id"], ticket.id);
    let r = app
        .call(
            "GET",
            &path,
            Some(&support),
            &[("x-custos-purpose", "user called about ads settings")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let reads: Vec<(String, String)> = app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == "subject.data.read")
        .map(|e| (e.actor, e.reason))
        .collect();
    assert_eq!(
        reads,
        vec![
            ("staff:sam".to_owned(), format!("ticket {}", ticket.id)),
            (
                "staff:sam".to_owned(),
                "user called about ads settings".to_owned()
            ),
        ]
    );
    // Security officers see those reads for one user through the audit API.
    let sec = app.staff("sue", Role::SecurityOfficer).await;
    let r = app
        .call(
            "GET",
            &format!("/api/v1/operator/audit?subject={alice}"),
            Some(&sec),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["entries"].as_array().unwrap().len(), 2);
    assert!(!r.json()["signed_heads"].as_array().unwrap().is_empty());
    app.finish().await;
}

#[tokio::test]
async fn the_legacy_operator_token_has_every_permission_and_is_audited_as_such() {
    let app = spawn_app(Some(TOKEN), None).await;
    for act in actions() {
        let r = app
            .call(act.method, &act.path, Some(TOKEN), &act.headers, act.body)
            .await;
        assert_ne!(
            r.status,
            StatusCode::FORBIDDEN,
            "{}: {}",
            act.name,
            r.json()
        );
        assert_ne!(r.status, StatusCode::UNAUTHORIZED, "{}", act.name);
    }
    let r = app
        .call(
            "GET",
            "/api/v1/operator/staff",
            Some("wrong-token-wrong-token"),
            &[],
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let r = app
        .call("GET", "/api/v1/operator/staff", None, &[], None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let audit = app.audit().await;
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.actor == "operator-token"
                && e.action.starts_with("operator.")
                && e.outcome == "allowed")
            .count(),
        actions().len()
    );
    // Without a configured token, only staff sessions open the operator API.
    let off = spawn_app(None, None).await;
    let r = off
        .call("GET", "/api/v1/operator/staff", Some(TOKEN), &[], None)
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "operator_api_disabled")
    );
    // An admin made by the token manages staff; a disabled account's session stops at once.
    let r = app
        .call(
            "POST",
            "/api/v1/operator/staff",
            Some(TOKEN),
            &[],
            Some(json!({"username": "ops-admin", "role": "admin"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    assert!(r.json()["otpauth_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    let admin = {
        let pw = r.json()["password"].as_str().unwrap().to_owned();
        let code = app.code_for("ops-admin").await;
        let s = app
            .call(
                "POST",
                "/api/v1/staff/sessions",
                None,
                &[],
                Some(json!({"username": "ops-admin", "password": pw, "totp_code": code})),
            )
            .await;
        s.json()["token"].as_str().unwrap().to_owned()
    };
    let support = app.staff("temp", Role::Support).await;
    let r = app
        .call(
            "PATCH",
            "/api/v1/operator/staff/temp",
            Some(&admin),
            &[],
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json()["disabled"], true);
    let r = app
        .call(
            "GET",
            "/api/v1/operator/rights/tickets",
            Some(&support),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .call(
            "PATCH",
            "/api/v1/operator/staff/ops-admin",
            Some(&admin),
            &[],
            Some(json!({"role": "support"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "last_admin")
    );
    app.finish().await;
    off.finish().await;
}

/// A sign-in request from `ip` (as the server's `ConnectInfo` reports it): status,
/// `Retry-After`, JSON body.
async fn sign_in_from(
    app: &TestApp,
    ip: [u8; 4],
    body: Value,
) -> (StatusCode, Option<String>, Value) {
    let mut req = Request::builder()
        .method("POST")
        .uri("/api/v1/staff/sessions")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            ip, 40_000,
        ))));
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let retry = resp
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        retry,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn staff_sign_in_is_throttled_per_client_address_unknown_usernames_included(app: TestApp) {
    let created = app
        .app
        .ops
        .create_staff(&Actor::Cli, "olga", Role::Support, None)
        .await
        .unwrap();
    let pw = created.password.expose().clone();
    let attacker = [203, 0, 113, 7];
    // Ten guesses at usernames that do not exist, from one address.
    for i in 0..10 {
        let (status, _, body) = sign_in_from(
            &app,
            attacker,
            json!({"username": format!("guess{i}"), "password": "not-the-password", "totp_code": "123456"}),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    // Now even the right credentials are refused from that address, with Retry-After…
    let right = |code: String| json!({"username": "olga", "password": pw, "totp_code": code});
    let (status, retry, body) =
        sign_in_from(&app, attacker, right(app.code_for("olga").await)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (
            StatusCode::TOO_MANY_REQUESTS,
            Some("staff_sign_in_throttled")
        )
    );
    let secs: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=15 * 60).contains(&secs), "{secs}");
    // …while another address signs in, and the account itself is not locked.
    let (status, _, body) =
        sign_in_from(&app, [198, 51, 100, 2], right(app.code_for("olga").await)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Once the window has passed, the address may try again.
    app.clock.advance(time::Duration::minutes(16));
    let (status, _, body) = sign_in_from(&app, attacker, right(app.code_for("olga").await)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let audit = app.audit().await;
    assert!(audit
        .iter()
        .any(|e| e.action == "staff.sign_in" && e.outcome == "throttled"));
    // The audit log names no guessed username.
    assert!(!audit
        .iter()
        .any(|e| e.target.contains("guess") || e.detail.contains("guess")));
    app.finish().await;
}

#[tokio::test]
async fn sqlite_staff_sign_in_is_throttled_per_client_address_unknown_usernames_included() {
    staff_sign_in_is_throttled_per_client_address_unknown_usernames_included(
        spawn_app(None, None).await,
    )
    .await;
}

#[tokio::test]
async fn postgres_staff_sign_in_is_throttled_per_client_address_unknown_usernames_included() {
    let Some(pg) = postgres_pair().await else {
        return;
    };
    staff_sign_in_is_throttled_per_client_address_unknown_usernames_included(
        spawn_app(None, Some(pg)).await,
    )
    .await;
}

async fn staff_change_their_own_password_with_the_current_one_and_a_fresh_code(app: TestApp) {
    let created = app
        .app
        .ops
        .create_staff(&Actor::Cli, "pete", Role::Analyst, None)
        .await
        .unwrap();
    let old_pw = created.password.expose().clone();
    let sign_in = |pw: String, code: String| {
        app.call(
            "POST",
            "/api/v1/staff/sessions",
            None,
            &[],
            Some(json!({"username": "pete", "password": pw, "totp_code": code})),
        )
    };
    let r = sign_in(old_pw.clone(), app.code_for("pete").await).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let token = r.json()["token"].as_str().unwrap().to_owned();
    app.clock.advance(time::Duration::seconds(30));
    let r = sign_in(old_pw.clone(), app.code_for("pete").await).await;
    let other = r.json()["token"].as_str().unwrap().to_owned();
    let new_pw = "a brand new staff password";
    let change = |current: &str, code: String| {
        app.call(
            "POST",
            "/api/v1/staff/me/password",
            Some(&token),
            &[],
            Some(json!({"current_password": current, "new_password": new_pw, "totp_code": code})),
        )
    };
    app.clock.advance(time::Duration::seconds(30));
    // Wrong current password: refused, nothing changes.
    let r = change("wrong-password-here", app.code_for("pete").await).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    // A wrong code: refused.
    let r = change(&old_pw, "000000".into()).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    // No code at all: refused.
    let r = change(&old_pw, String::new()).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "totp_required")
    );
    // Without a staff session: 401.
    let r = app
        .call(
            "POST",
            "/api/v1/staff/me/password",
            None,
            &[],
            Some(
                json!({"current_password": old_pw, "new_password": new_pw, "totp_code": "123456"}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let code = app.code_for("pete").await;
    let r = change(&old_pw, code.clone()).await;
    assert_eq!(
        r.status,
        StatusCode::NO_CONTENT,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    // The old password no longer changes it (the code was used, too).
    let r = change(&old_pw, code).await;
    assert_eq!(r.code(), "invalid_credentials");
    // This session stays; the other one ended.
    let me = app
        .call("GET", "/api/v1/staff/me", Some(&token), &[], None)
        .await;
    assert_eq!(me.status, StatusCode::OK);
    let me = app
        .call("GET", "/api/v1/staff/me", Some(&other), &[], None)
        .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    // The old password no longer signs in; the new one does.
    app.clock.advance(time::Duration::seconds(30));
    let r = sign_in(old_pw.clone(), app.code_for("pete").await).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    app.clock.advance(time::Duration::seconds(30));
    let r = sign_in(new_pw.into(), app.code_for("pete").await).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let changes: Vec<String> = app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == "staff.password_change" && e.actor == "staff:pete")
        .map(|e| e.outcome)
        .collect();
    assert_eq!(changes, vec!["failed", "failed", "succeeded", "failed"]);
    // No password reaches the log.
    let all = serde_json::to_string(
        &app.audit()
            .await
            .iter()
            .map(|e| e.detail.clone())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(!all.contains(new_pw) && !all.contains(&old_pw));
    app.finish().await;
}

#[tokio::test]
async fn sqlite_staff_change_their_own_password_with_the_current_one_and_a_fresh_code() {
    staff_change_their_own_password_with_the_current_one_and_a_fresh_code(
        spawn_app(None, None).await,
    )
    .await;
}

#[tokio::test]
async fn postgres_staff_change_their_own_password_with_the_current_one_and_a_fresh_code() {
    let Some(pg) = postgres_pair().await else {
        return;
    };
    staff_change_their_own_password_with_the_current_one_and_a_fresh_code(
        spawn_app(None, Some(pg)).await,
    )
    .await;
}
