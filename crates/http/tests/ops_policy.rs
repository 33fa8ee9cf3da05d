//! The policy lifecycle over HTTP, in-process through `app_with()`, on SQLite and
//! PostgreSQL: a revision pauses exactly the purposes it added or widened for a user
//! until they agree (and `GET /api/v1/me` lists them), the changes are rendered, a
//! discontinued feature's endpoints answer `410 feature_discontinued` with progress for
//! operators, a controller change keeps consents, records export as JSON, CSV and HTML.
//! P18, P22, P31, P35, L4, L10.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use custos_app::catalog::CatalogConfig;
use custos_app::config::MasterKeySource;
use custos_app::identity::sms::Outbox;
use custos_app::{App, Config};
use custos_core::FakeClock;
use custos_crypto::{MasterKey, OsRng};
use custos_policy::{Policy, BUNDLED_DECLARATION};
use serde_json::{json, Value};
use tower::ServiceExt;

const PHONE: &str = "+8613912345678";
const OPERATOR: &str = "operator-token-for-tests-0123456789";

struct Env {
    router: Router,
    app: App,
    dir: tempfile::TempDir,
    pg: Option<(String, String)>,
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
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Env {
    async fn open(pg: Option<(String, String)>) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let cfg =
            Config {
                data_dir: dir.path().to_path_buf(),
                database_url: pg.as_ref().map(|p| p.0.clone()).unwrap_or_else(|| {
                    format!("sqlite://{}", dir.path().join("custos.db").display())
                }),
                vault_url: pg.as_ref().map(|p| p.1.clone()).unwrap_or_else(|| {
                    format!("sqlite://{}", dir.path().join("keys.db").display())
                }),
                master_key: MasterKeySource::Inline(MasterKey::generate(&mut OsRng).to_base64()),
                catalog: CatalogConfig {
                    operator_token: Some(OPERATOR.into()),
                    ..Default::default()
                },
                ..Default::default()
            };
        let app = App::open(&cfg, Arc::new(FakeClock::default()))
            .await
            .unwrap();
        let router = custos_http::app_with(
            app.clone(),
            custos_http::HttpOptions {
                writes_per_second: 0,
            },
        );
        Env {
            router,
            app,
            dir,
            pg,
        }
    }
    async fn sqlite() -> Option<Env> {
        Some(Env::open(None).await)
    }
    async fn postgres() -> Option<Env> {
        let data = custos_testkit::postgres_database().await?;
        let vault = custos_testkit::postgres_database().await?;
        Some(Env::open(Some((data, vault))).await)
    }
    async fn finish(self) {
        self.app.shutdown().await;
        if let Some((a, b)) = &self.pg {
            custos_testkit::drop_postgres_database(a).await;
            custos_testkit::drop_postgres_database(b).await;
        }
    }
    async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = bearer {
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
    /// Signs in by SMS code; returns the session token.
    async fn sign_in(&self) -> String {
        let r = self
            .call(
                "POST",
                "/api/v1/auth/sms/start",
                Some(json!({ "phone": PHONE })),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        let id = r.json()["challenge_id"].as_str().unwrap().to_owned();
        let e164 = custos_app::identity::PhoneNumber::parse(PHONE)
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
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r.json()["token"].as_str().unwrap().to_owned()
    }
    async fn give(&self, token: &str, purposes: &[&str]) {
        let decisions: Vec<Value> = purposes
            .iter()
            .map(|p| json!({"purpose": p, "decision": "given"}))
            .collect();
        let r = self
            .call(
                "POST",
                "/api/v1/consents",
                Some(json!({ "decisions": decisions, "method": "dialog" })),
                Some(token),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    async fn status(&self, token: &str, purpose: &str) -> String {
        let r = self
            .call("GET", "/api/v1/purposes", None, Some(token))
            .await;
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["purpose"] == purpose)
            .unwrap_or_else(|| panic!("no purpose {purpose}"))["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { if let Some(env) = super::Env::sqlite().await { super::$name(env).await } } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { if let Some(env) = super::Env::postgres().await { super::$name(env).await } } )* }
    };
}

on_both!(
    a_widened_purpose_pauses_until_agree_and_the_me_answer_lists_it,
    an_added_purpose_is_blocked_until_agreed_by_name_other_purposes_unaffected,
    a_discontinued_feature_answers_410_and_operators_see_its_progress,
    a_controller_change_over_the_operator_api_keeps_every_consent,
    records_of_processing_export_as_json_csv_and_html,
);

fn widened(purpose: &str, category: &str) -> Policy {
    let src = BUNDLED_DECLARATION;
    let at = src.find(&format!("id = \"{purpose}\"\ndata_use")).unwrap();
    let cats = at + src[at..].find("categories = [").unwrap() + "categories = [".len();
    Policy::parse(&format!("{}\"{category}\", {}", &src[..cats], &src[cats..])).unwrap()
}

async fn a_widened_purpose_pauses_until_agree_and_the_me_answer_lists_it(env: Env) {
    let token = env.sign_in().await;
    env.give(&token, &["personalized_feed", "personalized_ads"])
        .await;
    let v1 = env.app.kernel.gate.regime().current().hash().to_string();
    let v2 = widened("personalized_feed", "user.device.device_id");
    env.app.policy_ops.publish_revision(&v2).await.unwrap();

    let me = env
        .call("GET", "/api/v1/me", None, Some(&token))
        .await
        .json();
    assert_eq!(me["pending_reconsent"][0]["version"], v2.hash().as_str());
    assert_eq!(
        me["pending_reconsent"][0]["purposes"],
        json!(["personalized_feed"])
    );
    assert_eq!(
        env.status(&token, "personalized_feed").await,
        "consent_outdated"
    );
    assert_eq!(env.status(&token, "personalized_ads").await, "active");

    let changes = env
        .call(
            "GET",
            &format!("/api/v1/policy/changes?since={v1}"),
            None,
            None,
        )
        .await;
    assert_eq!(changes.status, StatusCode::OK);
    assert_eq!(
        changes.json()["needs_consent"],
        json!(["personalized_feed"])
    );
    let html = env
        .call(
            "GET",
            &format!(
                "/api/v1/policy/changes?since={}&format=html&lang=en",
                &v1[..8]
            ),
            None,
            None,
        )
        .await;
    assert!(html.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(html.text().contains("paused until you agree"));
    let bad = env
        .call("GET", "/api/v1/policy/changes?since=nothex", None, None)
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["code"], "invalid_version");

    let r = env
        .call(
            "POST",
            &format!("/api/v1/policy/versions/{}/agree", v2.hash()),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["agreed"], json!(["personalized_feed"]));
    assert!(r.json()["receipt"]["jws"].as_str().is_some());
    assert_eq!(env.status(&token, "personalized_feed").await, "active");
    assert_eq!(env.status(&token, "personalized_ads").await, "active");
    let me = env
        .call("GET", "/api/v1/me", None, Some(&token))
        .await
        .json();
    assert_eq!(me["pending_reconsent"], json!([]));
    let inbox = env
        .call("GET", "/api/v1/me/inbox", None, Some(&token))
        .await;
    assert!(
        inbox.text().contains("Personalized suggestions"),
        "{}",
        inbox.text()
    );
    let ann = env
        .call("GET", "/api/v1/policy/announcements", None, None)
        .await;
    assert_eq!(ann.json()[0]["version"], v2.hash().as_str());
    env.finish().await;
}

async fn an_added_purpose_is_blocked_until_agreed_by_name_other_purposes_unaffected(env: Env) {
    let token = env.sign_in().await;
    env.give(&token, &["personalized_ads"]).await;
    let addition = r#"

[[purposes]]
id = "price_alerts"
data_use = "essential.service.notifications"
tier = "additional"
basis = "consent"
categories = ["user.unique_id.pseudonymous", "user.content.private"]
methods = ["storage", "use"]
retention = { days = 30, from = "withdrawal" }
impact_assessment = "PIA-2026-03-personalization"
name = { en = "Price drop alerts", zh = "降价提醒" }
description = { en = "Tells you when a bookmarked item gets cheaper.", zh = "收藏的商品降价时提醒您。" }
"#;
    let v2 = Policy::parse(&format!("{BUNDLED_DECLARATION}{addition}")).unwrap();
    env.app.policy_ops.publish_revision(&v2).await.unwrap();
    assert_eq!(env.status(&token, "price_alerts").await, "consent_missing");
    assert_eq!(env.status(&token, "personalized_ads").await, "active");
    let uri = format!("/api/v1/policy/versions/{}/agree", v2.hash().short());
    let r = env
        .call(
            "POST",
            &uri,
            Some(json!({"purposes": ["device_info"]})),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["code"], "not_in_version");
    let r = env
        .call(
            "POST",
            &uri,
            Some(json!({"purposes": ["price_alerts"]})),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(env.status(&token, "price_alerts").await, "active");
    assert_eq!(env.status(&token, "personalized_ads").await, "active");
    // Agreeing needs an identity.
    let r = env.call("POST", &uri, None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    env.finish().await;
}

async fn a_discontinued_feature_answers_410_and_operators_see_its_progress(env: Env) {
    let token = env.sign_in().await;
    let body = json!({"feature": "location_nearby", "after": "30d", "reason": "retired"});
    let r = env
        .call(
            "POST",
            "/api/v1/operator/cessations",
            Some(body.clone()),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = env
        .call(
            "POST",
            "/api/v1/operator/cessations",
            Some(body),
            Some(OPERATOR),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["purposes"], json!(["location"]));
    for (method, uri) in [
        ("GET", "/api/v1/location/nearby"),
        ("POST", "/api/v1/location"),
        ("PUT", "/api/v1/location/switch"),
    ] {
        let r = env.call(method, uri, Some(json!({})), Some(&token)).await;
        assert_eq!(r.status, StatusCode::GONE, "{method} {uri}");
        assert_eq!(r.json()["code"], "feature_discontinued");
    }
    // Other features keep running.
    let r = env.call("GET", "/api/v1/items", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = env
        .call("GET", "/api/v1/operator/cessations", None, Some(OPERATOR))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let list = r.json();
    assert_eq!(list[0]["feature"], "location_nearby");
    assert_eq!(list[0]["status"], "collection_stopped");
    let r = env
        .call(
            "POST",
            "/api/v1/operator/cessations",
            Some(json!({"feature": "telepathy"})),
            Some(OPERATOR),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["code"], "unknown_feature");
    let r = env
        .call("GET", "/api/v1/operator/residency", None, Some(OPERATOR))
        .await;
    assert_eq!(r.json()["region"], "CN");
    env.finish().await;
}

async fn a_controller_change_over_the_operator_api_keeps_every_consent(env: Env) {
    let token = env.sign_in().await;
    env.give(&token, &["personalized_feed", "personalized_ads"])
        .await;
    let r = env
        .call(
            "POST",
            "/api/v1/operator/controller",
            Some(json!({"name_en": "Acquirer Ltd.", "name_zh": "收购方有限公司", "address": "1 New Road, Shanghai"})),
            Some(OPERATOR),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["paused_purposes"], json!([]));
    assert_eq!(r.json()["notified"], 1);
    assert_eq!(env.status(&token, "personalized_feed").await, "active");
    assert_eq!(env.status(&token, "personalized_ads").await, "active");
    let page = env.call("GET", "/policy?lang=en", None, None).await;
    assert!(page.text().contains("Acquirer Ltd."));
    env.finish().await;
}

async fn records_of_processing_export_as_json_csv_and_html(env: Env) {
    let r = env.call("GET", "/api/v1/policy/records", None, None).await;
    let json = r.json();
    for p in json["purposes"].as_array().unwrap() {
        assert_eq!(p["assessment"]["id"], p["impact_assessment"], "{p}");
    }
    let csv = env
        .call("GET", "/api/v1/policy/records?format=csv", None, None)
        .await;
    assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(csv.text().starts_with("purpose,name_en,name_zh,basis"));
    assert!(csv.text().contains("PIA-2026-02-location"));
    let html = env
        .call(
            "GET",
            "/api/v1/policy/records?format=html&lang=en",
            None,
            None,
        )
        .await;
    assert!(html.text().contains("Impact assessment per purpose"));
    let bad = env
        .call("GET", "/api/v1/policy/records?format=pdf", None, None)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    env.finish().await;
}
