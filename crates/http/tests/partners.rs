//! Partners over HTTP (P16, P29, P32, L1): the public registry; a share through the HTTP
//! webhook sink, delivered to a partner server started by the test, with only the
//! allow-listed fields and logged for the user; a failed delivery is a 503 and logged as
//! failed; data received from a third party is shown to the user, who confirms it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use custos_app::catalog::CatalogConfig;
use custos_app::config::MasterKeySource;
use custos_app::ops::partners::PartnersConfig;
use custos_app::ops::OpsConfig;
use custos_app::{App, Config};
use custos_core::{FakeClock, GateContext, Personal, SubjectId};
use custos_crypto::{MasterKey, OsRng};
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "operator-token-for-tests-0123456789";

/// A partner's webhook: records every body; answers 500 while `failing`.
#[derive(Clone, Default)]
struct PartnerServer {
    bodies: Arc<Mutex<Vec<Value>>>,
    failing: Arc<AtomicBool>,
}

async fn start_partner() -> (PartnerServer, String) {
    let srv = PartnerServer::default();
    let state = srv.clone();
    let router = Router::new().route(
        "/custos/shares",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let state = state.clone();
            async move {
                if state.failing.load(Ordering::SeqCst) {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                state.bodies.lock().unwrap().push(body);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (srv, format!("http://{addr}/custos/shares"))
}

struct TestApp {
    router: Router,
    app: App,
    _dir: tempfile::TempDir,
}

async fn spawn_app(webhook: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        data_dir: dir.path().to_path_buf(),
        database_url: format!("sqlite://{}", dir.path().join("custos.db").display()),
        vault_url: format!("sqlite://{}", dir.path().join("keys.db").display()),
        master_key: MasterKeySource::Inline(MasterKey::generate(&mut OsRng).to_base64()),
        catalog: CatalogConfig {
            operator_token: Some(TOKEN.into()),
            ..Default::default()
        },
        ops: OpsConfig {
            partners: PartnersConfig {
                webhooks: BTreeMap::from([("xingyao_brands".to_owned(), webhook.to_owned())]),
                timeout_ms: Some(2_000),
            },
            ..Default::default()
        },
        ..Default::default()
    };
    let app = App::open(&cfg, Arc::new(FakeClock::default()))
        .await
        .unwrap();
    TestApp {
        router: custos_http::app(app.clone()),
        app,
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
    async fn user(&self) -> (SubjectId, String) {
        let s = SubjectId::random();
        let session = self.app.identity.create_session(s, true).await.unwrap();
        self.app
            .kernel
            .store_field(
                s,
                "profile",
                &custos_store::personal::Field::new("nickname", "user.name"),
                &Personal::new(b"Xiao Ming".to_vec()),
                &GateContext::default(),
            )
            .await
            .unwrap();
        (s, session.token.expose().clone())
    }
    async fn consent(&self, token: &str, purpose: &str) {
        let r = self
            .call(
                "POST",
                "/api/v1/consents",
                Some(token),
                Some(json!({"decisions": [{"purpose": purpose, "decision": "given"}]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_partner_registry_is_public_and_comes_from_the_declaration() {
    let (_srv, url) = start_partner().await;
    let app = spawn_app(&url).await;
    let r = app.call("GET", "/api/v1/partners", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let x = r.json["partners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "xingyao_brands")
        .unwrap()
        .clone();
    assert_eq!(x["contract"], "JCA-2026-003");
    assert_eq!(x["region"], "CN");
    assert_eq!(x["purposes"], json!(["partner_sharing"]));
    assert_eq!(
        x["allowed_fields"],
        json!(["user.unique_id.pseudonymous", "user.demographic.profile"])
    );
    assert!(x["contact"].as_str().unwrap().contains('@'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_reaches_the_partner_webhook_with_only_allowed_fields_and_is_logged_for_the_user() {
    let (srv, url) = start_partner().await;
    let app = spawn_app(&url).await;
    let (user, token) = app.user().await;
    let uri = "/api/v1/operator/partners/xingyao_brands/shares";
    let body = json!({"subject": user.to_string(), "fields": ["pseudonymous_id", "nickname"], "purpose": "partner_sharing"});
    let r = app.call("POST", uri, None, Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app.call("POST", uri, Some(TOKEN), Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json["code"], "consent_missing");
    assert!(srv.bodies.lock().unwrap().is_empty());

    app.consent(&token, "partner_sharing").await;
    let r = app.call("POST", uri, Some(TOKEN), Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.json["sent"], json!(["pseudonymous_id"]));
    assert_eq!(r.json["stripped"], json!(["nickname"]));
    {
        let got = srv.bodies.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["partner"], "xingyao_brands");
        assert_eq!(got[0]["purpose"], "partner_sharing");
        let fields = got[0]["fields"].as_object().unwrap();
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["pseudonymous_id"]);
        assert!(!got[0].to_string().contains("Xiao Ming"));
        assert!(!got[0].to_string().contains(&user.to_string()));
    }

    // The partner fails: a 503, and the log says so.
    srv.failing.store(true, Ordering::SeqCst);
    let r = app.call("POST", uri, Some(TOKEN), Some(body)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.json);
    let mine = app
        .call("GET", "/api/v1/me/partner-shares", Some(&token), None)
        .await;
    assert_eq!(mine.status, StatusCode::OK);
    let statuses: Vec<&str> = mine.json["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["delivered", "failed"]);
    assert_eq!(mine.json["shares"][0]["stripped"], json!(["nickname"]));
    // Another user sees none of it.
    let (_, other) = app.user().await;
    let theirs = app
        .call("GET", "/api/v1/me/partner-shares", Some(&other), None)
        .await;
    assert_eq!(theirs.json["shares"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_data_is_shown_to_the_user_who_confirms_its_sensitive_fields() {
    let (_srv, url) = start_partner().await;
    let app = spawn_app(&url).await;
    let (user, token) = app.user().await;
    app.consent(&token, "location").await;
    let r = app
        .call(
            "POST",
            "/api/v1/operator/inbound",
            Some(TOKEN),
            Some(json!({
                "subject": user.to_string(),
                "source": "Xingyao Brand Services",
                "consent_commitment": "Consent collected in the Xingyao app on 2026-10-01.",
                "purpose": "location",
                "fields": [{"name": "gps", "category": "user.location.precise", "value": "31.2304,121.4737"}]
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let id = r.json["id"].as_i64().unwrap();
    let mine = app
        .call("GET", "/api/v1/me/inbound", Some(&token), None)
        .await;
    assert_eq!(mine.status, StatusCode::OK);
    let rec = &mine.json["inbound"][0];
    assert_eq!(rec["source"], "Xingyao Brand Services");
    assert_eq!(
        rec["consent_commitment"],
        "Consent collected in the Xingyao app on 2026-10-01."
    );
    assert_eq!(rec["fields"][0]["value"], "31.2304,121.4737");
    assert_eq!(rec["fields"][0]["sensitive"], true);
    assert_eq!(rec["fields"][0]["confirmed"], false);

    let (_, other) = app.user().await;
    let r = app
        .call(
            "POST",
            &format!("/api/v1/me/inbound/{id}/confirm"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call(
            "POST",
            &format!("/api/v1/me/inbound/{id}/confirm"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["fields"][0]["confirmed"], true);
    // A field outside the purpose's categories is refused.
    let r = app
        .call(
            "POST",
            "/api/v1/operator/inbound",
            Some(TOKEN),
            Some(json!({
                "subject": user.to_string(), "source": "X", "consent_commitment": "yes",
                "purpose": "location",
                "fields": [{"name": "phone", "category": "user.contact.phone_number", "value": "13900000000"}]
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json["code"], "undeclared_category");
}
