//! The feed, personalized search and segments over HTTP, in-process through `app()`, on
//! SQLite and PostgreSQL: `personalized` follows consent and the switch on the very next
//! response with no profile read otherwise, bad feed input gets stable 400 codes, and no
//! route shows or changes another user's traits or segments. P12, L5, L13.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use custos_app::catalog::input::ItemInput;
use custos_app::config::MasterKeySource;
use custos_app::identity::sms::Outbox;
use custos_app::signals::profile::{Condition, SegmentConfig};
use custos_app::signals::SignalsConfig;
use custos_app::{App, Config};
use custos_core::FakeClock;
use custos_crypto::{MasterKey, OsRng};
use serde_json::{json, Value};
use tower::ServiceExt;

const ALICE: &str = "+8613912345678";
const BOB: &str = "+8613800138000";

struct TestApp {
    router: Router,
    dir: tempfile::TempDir,
    app: App,
    pg: Option<(String, String)>,
    /// [0], [1]: dresses; [2]: shoes; the rest: lamps (imported last, so newest).
    items: Vec<i64>,
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
        policy: None,
        signals: SignalsConfig {
            segments: vec![SegmentConfig {
                id: "dress_fans".into(),
                name: "Dress fans".into(),
                rule: vec![Condition {
                    key: "tag:dress".into(),
                    min: 2.0,
                }],
            }],
            ..Default::default()
        },
        ..Default::default()
    };
    let app = App::open(&cfg, Arc::new(FakeClock::default()))
        .await
        .unwrap();
    let item = |title: &str, category: &str, tag: &str, price: u32| ItemInput {
        title_zh: Some(format!("{title}（中）")),
        title_en: Some(title.into()),
        category: Some(category.into()),
        tags: vec![tag.into()],
        price_min: Some(json!(price)),
        ..Default::default()
    };
    let mut inputs = vec![
        item("Floral dress", "clothing", "dress", 89),
        item("Silk dress", "clothing", "dress", 299),
        item("Running shoes", "shoes", "sport", 399),
    ];
    inputs.extend((0..12).map(|i| item(&format!("Desk lamp {i}"), "home", "light", 40 + i)));
    let items = app.catalog.import_inputs(inputs, false).await.unwrap().ids;
    TestApp {
        router: custos_http::app_with(
            app.clone(),
            custos_http::HttpOptions {
                writes_per_second: 0,
            },
        ),
        dir,
        app,
        pg,
        items,
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
    fn ids(&self) -> Vec<i64> {
        self.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect()
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

    async fn ok(&self, method: &str, uri: &str, body: Option<Value>, token: Option<&str>) -> Value {
        let r = self.call(method, uri, body, token).await;
        assert!(
            r.status.is_success(),
            "{method} {uri}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        }
    }

    async fn sign_in(&self, phone: &str) -> String {
        let v = self
            .ok(
                "POST",
                "/api/v1/auth/sms/start",
                Some(json!({ "phone": phone })),
                None,
            )
            .await;
        let e164 = custos_app::identity::PhoneNumber::parse(phone)
            .unwrap()
            .e164()
            .to_owned();
        let entries = Outbox::read(&self.dir.path().join("sms-outbox.jsonl"));
        let text = &entries.iter().rev().find(|e| e.to == e164).unwrap().text;
        let code = text
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .unwrap();
        let v = self
            .ok(
                "POST",
                "/api/v1/auth/sms/verify",
                Some(json!({ "challenge_id": v["challenge_id"], "code": code })),
                None,
            )
            .await;
        v["token"].as_str().unwrap().to_owned()
    }

    async fn consent(&self, token: &str, purpose: &str, decision: &str) {
        self.ok(
            "POST",
            "/api/v1/consents",
            Some(json!({"decisions":[{"purpose":purpose,"decision":decision}],"method":"dialog"})),
            Some(token),
        )
        .await;
    }

    /// Signs in, consents to personalization and sends clicks on both dresses.
    async fn dress_fan(&self, phone: &str) -> String {
        let t = self.sign_in(phone).await;
        self.consent(&t, "personalized_feed", "given").await;
        let now = self.app.kernel.clock.now_ms();
        let events: Vec<Value> = [self.items[0], self.items[1], self.items[1]]
            .iter()
            .map(|id| json!({ "kind": "click", "at_ms": now - 500, "target": id.to_string() }))
            .collect();
        self.ok(
            "POST",
            "/api/v1/events",
            Some(json!({ "events": events })),
            Some(&t),
        )
        .await;
        t
    }

    fn reads(&self) -> u64 {
        self.app.signals.profile_reads.load(Ordering::Relaxed)
    }

    fn newest(&self, n: usize) -> Vec<i64> {
        self.items.iter().rev().take(n).copied().collect()
    }

    async fn finish(self) {
        self.app.shutdown().await;
        if let Some((a, b)) = &self.pg {
            custos_testkit::drop_postgres_database(a).await;
            custos_testkit::drop_postgres_database(b).await;
        }
    }
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::spawn_app(None).await).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(data) = custos_testkit::postgres_database().await else { return };
                let Some(vault) = custos_testkit::postgres_database().await else { return };
                super::$name(super::spawn_app(Some((data, vault))).await).await
            } )* }
    };
}

on_both!(
    feed_and_search_say_personalized_only_with_consent_and_switch_and_read_no_profile_otherwise,
    bad_feed_input_gets_a_400_with_a_stable_code,
    no_route_shows_or_changes_another_users_traits_or_segments,
);

async fn feed_and_search_say_personalized_only_with_consent_and_switch_and_read_no_profile_otherwise(
    t: TestApp,
) {
    // Anonymous: plain, newest first.
    let r = t.ok("GET", "/api/v1/feed?limit=4", None, None).await;
    assert_eq!(r["personalized"], false);
    let plain = t.call("GET", "/api/v1/feed?limit=4", None, None).await;
    assert_eq!(plain.ids(), t.newest(4));
    let alice = t.dress_fan(ALICE).await;
    let reads = t.reads();
    let r = t
        .call("GET", "/api/v1/feed?limit=4", None, Some(&alice))
        .await;
    assert_eq!(r.json()["personalized"], true);
    assert_eq!(r.ids()[..2], [t.items[1], t.items[0]], "her dresses first");
    assert_eq!(t.reads(), reads + 1);
    // The search by relevance too ("desk" matches every lamp alike, "dress" both dresses).
    let r = t
        .call(
            "GET",
            "/api/v1/items?sort=relevance&limit=3",
            None,
            Some(&alice),
        )
        .await;
    assert_eq!(r.json()["personalized"], true);
    assert_eq!(r.ids()[..2], [t.items[1], t.items[0]]);
    let r = t
        .call("GET", "/api/v1/items?q=dress", None, Some(&alice))
        .await;
    assert_eq!(r.json()["personalized"], true);
    assert_eq!(t.reads(), reads + 3);
    // Newest order and anonymous callers: never personalized, no read.
    let r = t
        .ok("GET", "/api/v1/items?sort=newest", None, Some(&alice))
        .await;
    assert_eq!(r["personalized"], false);
    let r = t
        .ok("GET", "/api/v1/items?sort=relevance", None, None)
        .await;
    assert_eq!(r["personalized"], false);
    assert_eq!(t.reads(), reads + 3);
    // Switched off: the very next feed and search are plain, and nothing is read.
    t.ok(
        "PUT",
        "/api/v1/me/personalization",
        Some(json!({ "enabled": false })),
        Some(&alice),
    )
    .await;
    let r = t
        .call("GET", "/api/v1/feed?limit=4", None, Some(&alice))
        .await;
    assert_eq!(r.json()["personalized"], false);
    assert_eq!(r.ids(), t.newest(4));
    let r = t
        .ok("GET", "/api/v1/items?sort=relevance", None, Some(&alice))
        .await;
    assert_eq!(r["personalized"], false);
    assert_eq!(t.reads(), reads + 3);
    // On again, then withdrawn: likewise, and the traits are gone.
    t.ok(
        "PUT",
        "/api/v1/me/personalization",
        Some(json!({ "enabled": true })),
        Some(&alice),
    )
    .await;
    let r = t.ok("GET", "/api/v1/feed", None, Some(&alice)).await;
    assert_eq!(r["personalized"], true);
    t.ok(
        "POST",
        "/api/v1/consents/personalized_feed/withdraw",
        None,
        Some(&alice),
    )
    .await;
    let reads = t.reads();
    let r = t
        .call("GET", "/api/v1/feed?limit=4", None, Some(&alice))
        .await;
    assert_eq!(r.json()["personalized"], false);
    assert_eq!(r.ids(), t.newest(4));
    let r = t
        .ok("GET", "/api/v1/items?sort=relevance", None, Some(&alice))
        .await;
    assert_eq!(r["personalized"], false);
    assert_eq!(t.reads(), reads);
    let traits = t.ok("GET", "/api/v1/me/traits", None, Some(&alice)).await;
    assert_eq!(traits["traits"], json!([]));
    t.finish().await;
}

async fn bad_feed_input_gets_a_400_with_a_stable_code(t: TestApp) {
    let alice = t.dress_fan(ALICE).await;
    let first = t
        .ok("GET", "/api/v1/feed?limit=2", None, Some(&alice))
        .await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    // The next page follows on.
    let next = t
        .call(
            "GET",
            &format!("/api/v1/feed?limit=2&cursor={cursor}"),
            None,
            Some(&alice),
        )
        .await;
    assert_eq!(next.status, StatusCode::OK);
    let mut tampered = cursor.clone().into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for (uri, code) in [
        (
            "/api/v1/feed?cursor=not-a-cursor".to_owned(),
            "invalid_cursor",
        ),
        (
            format!("/api/v1/feed?limit=2&cursor={tampered}"),
            "invalid_cursor",
        ),
        ("/api/v1/feed?limit=0".to_owned(), "invalid_limit"),
        ("/api/v1/feed?limit=101".to_owned(), "invalid_limit"),
        ("/api/v1/feed?limit=-1".to_owned(), "invalid_limit"),
        ("/api/v1/feed?limit=ten".to_owned(), "invalid_limit"),
        ("/api/v1/feed?page=2".to_owned(), "unknown_parameter"),
        ("/api/v1/feed?limit=2&limit=3".to_owned(), "invalid_query"),
    ] {
        for token in [None, Some(alice.as_str())] {
            let r = t.call("GET", &uri, None, token).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(r.code(), code, "{uri}");
        }
    }
    // A bad bearer token is refused, not silently served as anonymous.
    let r = t.call("GET", "/api/v1/feed", None, Some("nope")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    t.finish().await;
}

async fn no_route_shows_or_changes_another_users_traits_or_segments(t: TestApp) {
    let alice = t.dress_fan(ALICE).await;
    let bob = t.sign_in(BOB).await;
    let mine = t.ok("GET", "/api/v1/me/segments", None, Some(&alice)).await;
    assert_eq!(
        mine,
        json!({ "personalized": true, "segments": [{ "id": "dress_fans", "name": "Dress fans" }] })
    );
    let traits = t.ok("GET", "/api/v1/me/traits", None, Some(&alice)).await;
    assert!(!traits["traits"].as_array().unwrap().is_empty());
    // Bob, without personalization: empty, not personalized, nothing of Alice's.
    let r = t.ok("GET", "/api/v1/me/segments", None, Some(&bob)).await;
    assert_eq!(r, json!({ "personalized": false, "segments": [] }));
    let r = t.ok("GET", "/api/v1/me/traits", None, Some(&bob)).await;
    assert_eq!(r["traits"], json!([]));
    // Bob consents: his own (empty) profile, still none of Alice's.
    t.consent(&bob, "personalized_feed", "given").await;
    let r = t.ok("GET", "/api/v1/me/segments", None, Some(&bob)).await;
    assert_eq!(r, json!({ "personalized": true, "segments": [] }));
    let r = t
        .call("GET", "/api/v1/feed?limit=4", None, Some(&bob))
        .await;
    assert_eq!(r.json()["personalized"], true);
    assert_eq!(r.ids(), t.newest(4), "not ranked by Alice's traits");
    // Bob cannot delete Alice's trait by naming it: his own has none (404).
    let r = t
        .call("DELETE", "/api/v1/me/traits/tag:dress", None, Some(&bob))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .call("DELETE", "/api/v1/me/traits", None, Some(&bob))
        .await;
    assert_eq!(r.json()["deleted"], 0);
    let after = t.ok("GET", "/api/v1/me/traits", None, Some(&alice)).await;
    assert_eq!(after, traits);
    // A query parameter naming a subject is refused, and no session is a 401.
    let r = t
        .call("GET", "/api/v1/feed?subject=alice", None, Some(&bob))
        .await;
    assert_eq!(r.code(), "unknown_parameter");
    let r = t.call("GET", "/api/v1/me/segments", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    t.finish().await;
}
