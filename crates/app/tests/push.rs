//! The inbox and push through their use cases, on SQLite and PostgreSQL, with the HTTP
//! webhook gateway talking to a real local server: service notices need no consent to
//! personalization and reach the inbox and the device; personalized pushes only under
//! their own purpose; an unreachable channel keeps the message in the inbox. P12 (push).

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use custos_app::config::MasterKeySource;
use custos_app::consent::DecisionInput;
use custos_app::signals::device::DeviceReport;
use custos_app::signals::push::Notice;
use custos_app::signals::SignalsConfig;
use custos_app::{App, AppError, Config};
use custos_core::{ConsentMethod, Decision, Denial, FakeClock, GateContext, SubjectId};
use custos_crypto::{MasterKey, OsRng};
use serde_json::{json, Value};

/// What the local push channel received: (Authorization header, JSON body).
type Received = Arc<Mutex<Vec<(String, Value)>>>;

const BEARER: &str = "push-channel-secret-token";

/// A local push channel on 127.0.0.1: records each POST; answers 503 for `"title": "fail"`.
async fn push_channel() -> (String, Received) {
    let got: Received = Arc::default();
    let sink = got.clone();
    let app = Router::new().route(
        "/push",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let sink = sink.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let fail = body["title"] == "fail";
                sink.lock().unwrap().push((auth, body));
                if fail {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::ACCEPTED
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/push"), got)
}

struct Env {
    app: App,
    clock: Arc<FakeClock>,
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
    received: Received,
}

impl Env {
    async fn open(pg: Option<(String, String)>) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let (url, received) = push_channel().await;
        let token_file = dir.path().join("push-token");
        std::fs::write(&token_file, format!("{BEARER}\n")).unwrap();
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
                signals: SignalsConfig {
                    push_gateway: Some("http".into()),
                    push_http_url: Some(url),
                    push_http_token_file: Some(token_file),
                    push_http_timeout_ms: Some(2_000),
                    ..Default::default()
                },
                ..Default::default()
            };
        let clock = Arc::new(FakeClock::default());
        let app = App::open(&cfg, clock.clone()).await.unwrap();
        Env {
            app,
            clock,
            _dir: dir,
            pg,
            received,
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
    fn received(&self) -> Vec<(String, Value)> {
        self.received.lock().unwrap().clone()
    }
    async fn decide(&self, s: SubjectId, purpose: &str, decision: Decision) {
        self.app
            .kernel
            .record_decisions(
                s,
                false,
                &[DecisionInput {
                    purpose: purpose.into(),
                    decision,
                }],
                ConsentMethod::Dialog,
            )
            .await
            .unwrap();
    }
    async fn device_with_token(&self, s: SubjectId, token: &str) {
        let r = DeviceReport {
            push_token: Some(token.into()),
            ..Default::default()
        };
        self.app
            .signals
            .register_device(s, &r, &GateContext::default())
            .await
            .unwrap();
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
    a_service_notice_goes_to_the_inbox_and_over_the_webhook_without_any_consent,
    personalized_pushes_are_sent_only_under_their_own_purpose,
    an_unreachable_push_channel_keeps_the_message_in_the_inbox,
    inbox_messages_are_marked_read_only_by_their_owner,
    inbox_messages_are_sealed_under_the_subjects_key_and_purged_after_their_retention,
);

async fn a_service_notice_goes_to_the_inbox_and_over_the_webhook_without_any_consent(env: Env) {
    let s = env.app.signals.as_ref();
    let me = SubjectId::random();
    env.device_with_token(me, "tok-phone").await;
    env.device_with_token(me, "tok-tablet").await;
    let out = s
        .notify(me, &Notice::new("政策更新", "我们更新了隐私政策，请查看。"))
        .await
        .unwrap();
    assert_eq!((out.pushed, out.failed), (2, 0));
    let mut got = env.received();
    got.sort_by(|a, b| a.1["to"].as_str().cmp(&b.1["to"].as_str()));
    assert_eq!(got.len(), 2);
    for ((auth, body), to) in got.iter().zip(["tok-phone", "tok-tablet"]) {
        assert_eq!(auth, &format!("Bearer {BEARER}"));
        assert_eq!(
            body,
            &json!({
                "to": to,
                "message_id": out.message_id,
                "kind": "system",
                "title": "政策更新",
                "body": "我们更新了隐私政策，请查看。",
            })
        );
    }
    let inbox = s.inbox(me).await.unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(
        (inbox[0].id, inbox[0].kind.as_str(), inbox[0].read),
        (out.message_id, "system", false)
    );
    // A subject without devices still gets the message in the inbox.
    let other = SubjectId::random();
    let out = s.notify(other, &Notice::new("t", "b")).await.unwrap();
    assert_eq!((out.pushed, out.failed), (0, 0));
    assert_eq!(s.inbox(other).await.unwrap().len(), 1);
    assert_eq!(env.received().len(), 2, "nothing more was sent");
    env.finish().await;
}

async fn personalized_pushes_are_sent_only_under_their_own_purpose(env: Env) {
    let s = env.app.signals.as_ref();
    let me = SubjectId::random();
    env.device_with_token(me, "tok").await;
    let msg = Notice::new("为你推荐", "你关注的跑鞋上新了");
    let ctx = GateContext::default();
    match s.notify_personalized(me, &msg, &ctx).await {
        Err(AppError::Denied(Denial::ConsentMissing)) => {}
        other => panic!("expected consent_missing, got {other:?}"),
    }
    // Consent to personalization of the feed is not consent to personalized pushes.
    env.decide(me, "personalized_feed", Decision::Given).await;
    assert!(s.notify_personalized(me, &msg, &ctx).await.is_err());
    assert!(env.received().is_empty(), "nothing left the server");
    assert!(s.inbox(me).await.unwrap().is_empty());
    env.decide(me, "personalized_push", Decision::Given).await;
    let out = s.notify_personalized(me, &msg, &ctx).await.unwrap();
    assert_eq!(out.pushed, 1);
    let got = env.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1["kind"], "personalized");
    assert_eq!(got[0].1["to"], "tok");
    assert_eq!(s.inbox(me).await.unwrap()[0].kind, "personalized");
    // Withdrawn through the kernel alone (no HTTP consent handler, no explicit hook, as
    // a guardian's withdrawal or an OIDC unlink records it): refused again, and the
    // personalized messages are gone at once.
    env.decide(me, "personalized_push", Decision::Withdrawn)
        .await;
    assert!(s.notify_personalized(me, &msg, &ctx).await.is_err());
    assert!(
        s.inbox(me).await.unwrap().is_empty(),
        "the kernel's withdrawal removed the personalized message"
    );
    // The explicit hook is idempotent.
    s.after_decisions(
        me,
        &[DecisionInput {
            purpose: "personalized_push".into(),
            decision: Decision::Withdrawn,
        }],
    )
    .await
    .unwrap();
    assert!(s.inbox(me).await.unwrap().is_empty());
    // System notices are unaffected.
    s.notify(me, &Notice::new("t", "b")).await.unwrap();
    assert_eq!(env.received().len(), 2);
    env.finish().await;
}

async fn an_unreachable_push_channel_keeps_the_message_in_the_inbox(env: Env) {
    let s = env.app.signals.as_ref();
    let me = SubjectId::random();
    env.device_with_token(me, "tok").await;
    // The local channel answers 503 to this title: retried once, then given up.
    let out = s.notify(me, &Notice::new("fail", "body")).await.unwrap();
    assert_eq!((out.pushed, out.failed), (0, 1));
    assert_eq!(env.received().len(), 2, "one retry after a 503");
    assert_eq!(s.inbox(me).await.unwrap()[0].title, "fail");
    // Malformed messages are refused before anything happens.
    for bad in [
        Notice::new("", "b"),
        Notice::new("t", ""),
        Notice::new("x".repeat(101), "b"),
        Notice::new("t\u{7}", "b"),
    ] {
        match s.notify(me, &bad).await {
            Err(AppError::BadRequest { code, .. }) => assert_eq!(code, "invalid_message"),
            other => panic!("expected invalid_message, got {other:?}"),
        }
    }
    assert_eq!(s.inbox(me).await.unwrap().len(), 1);
    env.finish().await;
}

async fn inbox_messages_are_marked_read_only_by_their_owner(env: Env) {
    let s = env.app.signals.as_ref();
    let me = SubjectId::random();
    let other = SubjectId::random();
    let a = s.notify(me, &Notice::new("a", "1")).await.unwrap();
    let b = s.notify(other, &Notice::new("b", "2")).await.unwrap();
    assert!(matches!(
        s.mark_read(me, b.message_id).await,
        Err(AppError::NotFound)
    ));
    assert!(!s.inbox(other).await.unwrap()[0].read);
    assert!(matches!(
        s.mark_read(me, 987_654).await,
        Err(AppError::NotFound)
    ));
    s.mark_read(me, a.message_id).await.unwrap();
    s.mark_read(me, a.message_id).await.unwrap();
    assert!(s.inbox(me).await.unwrap()[0].read);
    s.erase_inbox_and_ads(me).await.unwrap();
    assert!(s.inbox(me).await.unwrap().is_empty());
    assert_eq!(s.inbox(other).await.unwrap().len(), 1);
    env.finish().await;
}

impl Env {
    async fn scalar(&self, sql: &str) -> i64 {
        let (n,): (i64,) = match &self.app.kernel.db {
            custos_store::Db::Sqlite(p) => sqlx::query_as(sql).fetch_one(p).await.unwrap(),
            custos_store::Db::Postgres(p) => sqlx::query_as(sql).fetch_one(p).await.unwrap(),
        };
        n
    }
    async fn exec(&self, sql: &str) {
        match &self.app.kernel.db {
            custos_store::Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            custos_store::Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        }
        .unwrap();
    }
}

async fn inbox_messages_are_sealed_under_the_subjects_key_and_purged_after_their_retention(
    env: Env,
) {
    use custos_app::jobs::{Job, Jobs, JobsConfig};
    let s = env.app.signals.as_ref();
    let me = SubjectId::random();
    s.notify(
        me,
        &Notice::new("张伟的账号 SecretTitle", "Zhang Wei, your code changed"),
    )
    .await
    .unwrap();
    let inbox = s.inbox(me).await.unwrap();
    assert_eq!(inbox[0].title, "张伟的账号 SecretTitle");
    assert_eq!(inbox[0].body, "Zhang Wei, your code changed");
    // Neither the title nor the body is in the database in clear.
    assert_eq!(
        env.scalar(
            "SELECT COUNT(*) FROM inbox_messages WHERE title LIKE '%SecretTitle%' \
             OR body LIKE '%Zhang Wei%' OR sealed IS NULL"
        )
        .await,
        0
    );
    // A message stored in clear before sealing is sealed by the purge job, still readable.
    let now = custos_core::Clock::now_ms(&*env.clock);
    env.exec(&format!(
        "INSERT INTO inbox_messages (subject, kind, title, body, created_ms) \
         VALUES ('{me}', 'system', 'Old LegacyTitle', 'old body', {now})"
    ))
    .await;
    assert_eq!(s.inbox(me).await.unwrap().len(), 2);
    let jobs = Jobs::new(env.app.clone(), JobsConfig::default());
    jobs.run(Job::Purge).await.unwrap();
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM inbox_messages WHERE sealed IS NULL OR title <> ''")
            .await,
        0
    );
    let titles: Vec<String> = s
        .inbox(me)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.title)
        .collect();
    // Newest (highest id) first: the legacy row was inserted last.
    assert_eq!(
        titles,
        vec![
            "Old LegacyTitle".to_owned(),
            "张伟的账号 SecretTitle".to_owned()
        ]
    );
    // Past the inbox retention (365 days by default) the purge deletes them.
    let other = SubjectId::random();
    env.clock.advance(time::Duration::days(300));
    s.notify(other, &Notice::new("recent", "kept"))
        .await
        .unwrap();
    env.clock.advance(time::Duration::days(66));
    jobs.run(Job::Purge).await.unwrap();
    assert!(s.inbox(me).await.unwrap().is_empty());
    assert_eq!(
        s.inbox(other).await.unwrap().len(),
        1,
        "younger messages stay"
    );
    // Destroying the subject's key (erasure) leaves nothing readable, rows or not.
    assert!(env.app.kernel.vault.destroy(other).await.unwrap());
    assert!(s.inbox(other).await.unwrap().is_empty());
    env.finish().await;
}
