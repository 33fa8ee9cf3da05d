//! Device information through its use cases, on SQLite and PostgreSQL: each field kept
//! only under a purpose that declares its category and that the gate allows, encrypted,
//! with the declared retention; listed, replaced and deleted per device, never across
//! subjects; malformed reports refused whole. P9.

use std::process::Command;
use std::sync::Arc;

use custos_app::config::MasterKeySource;
use custos_app::consent::DecisionInput;
use custos_app::signals::device::DeviceReport;
use custos_app::{App, AppError, Config};
use custos_core::{ConsentMethod, Decision, Denial, FakeClock, GateContext, SubjectId};
use custos_crypto::{MasterKey, OsRng};
use custos_store::Db;

struct Env {
    app: App,
    dir: tempfile::TempDir,
    pg: Option<(String, String)>,
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
                ..Default::default()
            };
        let app = App::open(&cfg, Arc::new(FakeClock::default()))
            .await
            .unwrap();
        Env { app, dir, pg }
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
    /// Every byte of the data store: the SQLite files (with their WAL), or a `pg_dump`.
    fn dump(&self) -> Vec<u8> {
        match &self.pg {
            None => std::fs::read_dir(self.dir.path())
                .unwrap()
                .flatten()
                .flat_map(|e| std::fs::read(e.path()).unwrap_or_default())
                .collect(),
            Some((data, vault)) => [data, vault]
                .iter()
                .flat_map(|u| {
                    let out = Command::new("pg_dump")
                        .arg("--dbname")
                        .arg(u.as_str())
                        .output()
                        .expect("pg_dump runs");
                    assert!(out.status.success());
                    out.stdout
                })
                .collect(),
        }
    }
    async fn device_rows(&self, subject: SubjectId) -> Vec<(String, String, String, Option<i64>)> {
        let sql = "SELECT field, purpose, category, expires_at FROM personal_fields \
                   WHERE subject = $1 AND field LIKE 'device:%' ORDER BY field";
        match &self.app.kernel.db {
            Db::Sqlite(p) => sqlx::query_as(sql)
                .bind(subject.to_string())
                .fetch_all(p)
                .await
                .unwrap(),
            Db::Postgres(p) => sqlx::query_as(sql)
                .bind(subject.to_string())
                .fetch_all(p)
                .await
                .unwrap(),
        }
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
    device_fields_are_kept_only_under_purposes_that_declare_them_encrypted_with_retention,
    a_device_is_replaced_listed_and_deleted_only_by_its_owner,
    malformed_device_reports_are_refused_whole_and_store_nothing,
);

const MODEL: &str = "Vista-Phone-Model-XJ9000-unique";
const DEVICE_ID: &str = "a4f1c2d3-device-identifier-7788";
const TOKEN: &str = "push-token-0f9e8d7c6b5a4f3e2d1c";
const DAY_MS: i64 = 86_400_000;

fn full_report() -> DeviceReport {
    DeviceReport {
        model: Some(MODEL.into()),
        os_version: Some("Android 15".into()),
        app_version: Some("3.2.1".into()),
        settings: Some(
            [
                ("notifications".to_owned(), serde_json::json!(true)),
                ("theme".to_owned(), serde_json::json!("dark")),
            ]
            .into_iter()
            .collect(),
        ),
        device_id: Some(DEVICE_ID.into()),
        push_token: Some(TOKEN.into()),
    }
}

fn ctx() -> GateContext<'static> {
    GateContext::default()
}

async fn device_fields_are_kept_only_under_purposes_that_declare_them_encrypted_with_retention(
    env: Env,
) {
    let s = env.app.signals.as_ref();
    let me = SubjectId::random();
    // Only the push token has a purpose without consent (service notices, basic).
    let out = s.register_device(me, &full_report(), &ctx()).await.unwrap();
    assert_eq!(
        out.stored.into_iter().collect::<Vec<_>>(),
        vec![("push_token".to_owned(), "service_notices".to_owned())]
    );
    let refused: Vec<(String, String)> = out
        .refused
        .iter()
        .map(|r| (r.field.clone(), r.code.clone()))
        .collect();
    for f in [
        "model",
        "os_version",
        "app_version",
        "settings",
        "device_id",
    ] {
        assert!(
            refused.contains(&(f.to_owned(), "consent_missing".to_owned())),
            "{f}: {refused:?}"
        );
    }
    // A report with only unconsented fields stores nothing and answers the denial.
    let only_model = DeviceReport {
        model: Some(MODEL.into()),
        ..Default::default()
    };
    match s.register_device(me, &only_model, &ctx()).await {
        Err(AppError::Denied(Denial::ConsentMissing)) => {}
        other => panic!("expected consent_missing, got {other:?}"),
    }
    assert_eq!(env.device_rows(me).await.len(), 1);
    // With device_info consented: every field, under device_info, for 90 days.
    env.decide(me, "device_info", Decision::Given).await;
    let now = env.app.kernel.clock.now_ms();
    let out = s.register_device(me, &full_report(), &ctx()).await.unwrap();
    assert!(out.refused.is_empty(), "{:?}", out.refused);
    assert_eq!(out.stored["model"], "device_info");
    assert_eq!(out.stored["push_token"], "service_notices");
    let rows: Vec<_> = env
        .device_rows(me)
        .await
        .into_iter()
        .filter(|r| r.0.starts_with(&format!("device:{}:", out.id)))
        .collect();
    assert_eq!(rows.len(), 6);
    for (field, purpose, category, expires) in &rows {
        if field.ends_with(":push_token") {
            assert_eq!(
                (purpose.as_str(), category.as_str()),
                ("service_notices", "user.device.device_id")
            );
            assert_eq!(*expires, None, "kept until the account closes");
        } else {
            assert_eq!(purpose, "device_info");
            let want = if field.ends_with(":device_id") {
                "user.device.device_id"
            } else {
                "user.device"
            };
            assert_eq!(category, want, "{field}");
            assert_eq!(*expires, Some(now + 90 * DAY_MS), "{field}");
        }
    }
    // Encrypted: no reported value appears in the stored bytes.
    let dump = env.dump();
    for v in [MODEL, DEVICE_ID, TOKEN] {
        assert!(
            !dump.windows(v.len()).any(|w| w == v.as_bytes()),
            "{v} is stored in clear"
        );
    }
    // The owner sees them, with their purposes.
    let devices = s.devices(me).await.unwrap();
    assert_eq!(devices.len(), 2);
    let d = devices.iter().find(|d| d.id == out.id).unwrap();
    assert_eq!(d.model.as_deref(), Some(MODEL));
    assert_eq!(d.settings.as_ref().unwrap()["theme"], "dark");
    assert_eq!(d.purposes["device_id"], "device_info");
    assert_eq!(d.expires_at_ms, Some(now + 90 * DAY_MS));
    // Withdrawing device_info deletes what it held; the push token stays.
    env.decide(me, "device_info", Decision::Withdrawn).await;
    let d = s.devices(me).await.unwrap();
    let d = d.iter().find(|d| d.id == out.id).unwrap();
    assert_eq!(
        (
            d.model.as_deref(),
            d.device_id.as_deref(),
            d.push_token.as_deref()
        ),
        (None, None, Some(TOKEN))
    );
    env.finish().await;
}

async fn a_device_is_replaced_listed_and_deleted_only_by_its_owner(env: Env) {
    let s = env.app.signals.as_ref();
    let me = SubjectId::random();
    let other = SubjectId::random();
    env.decide(me, "device_info", Decision::Given).await;
    env.decide(other, "device_info", Decision::Given).await;
    let mine = s.register_device(me, &full_report(), &ctx()).await.unwrap();
    let theirs = s
        .register_device(other, &full_report(), &ctx())
        .await
        .unwrap();
    // Replace: fields not sent are deleted.
    let update = DeviceReport {
        os_version: Some("Android 16".into()),
        push_token: Some("new-token".into()),
        ..Default::default()
    };
    let out = s
        .update_device(me, &mine.id, &update, &ctx())
        .await
        .unwrap();
    assert_eq!(out.id, mine.id);
    let d = &s.devices(me).await.unwrap()[0];
    assert_eq!(
        (
            d.model.as_deref(),
            d.os_version.as_deref(),
            d.push_token.as_deref()
        ),
        (None, Some("Android 16"), Some("new-token"))
    );
    // Another subject's id, an unknown one and a malformed one are all `not found`.
    for id in [
        theirs.id.as_str(),
        "0123456789abcdef0123456789abcdef",
        "../x",
        "",
    ] {
        assert!(
            matches!(s.delete_device(me, id).await, Err(AppError::NotFound)),
            "{id}"
        );
        assert!(
            matches!(
                s.update_device(me, id, &update, &ctx()).await,
                Err(AppError::NotFound)
            ),
            "{id}"
        );
    }
    assert_eq!(
        s.devices(other).await.unwrap()[0].model.as_deref(),
        Some(MODEL)
    );
    s.delete_device(me, &mine.id).await.unwrap();
    assert!(s.devices(me).await.unwrap().is_empty());
    assert!(env.device_rows(me).await.is_empty());
    assert!(matches!(
        s.delete_device(me, &mine.id).await,
        Err(AppError::NotFound)
    ));
    assert_eq!(s.devices(other).await.unwrap().len(), 1);
    env.finish().await;
}

async fn malformed_device_reports_are_refused_whole_and_store_nothing(env: Env) {
    let s = env.app.signals.as_ref();
    let me = SubjectId::random();
    env.decide(me, "device_info", Decision::Given).await;
    let settings = |pairs: Vec<(String, serde_json::Value)>| DeviceReport {
        model: Some("ok".into()),
        settings: Some(pairs.into_iter().collect()),
        ..Default::default()
    };
    let bad = vec![
        DeviceReport::default(),
        DeviceReport {
            model: Some("x".repeat(129)),
            ..Default::default()
        },
        DeviceReport {
            model: Some("tab\there".into()),
            push_token: Some("ok".into()),
            ..Default::default()
        },
        DeviceReport {
            os_version: Some("   ".into()),
            ..Default::default()
        },
        DeviceReport {
            push_token: Some("t".repeat(4097)),
            ..Default::default()
        },
        settings(vec![("nested".into(), serde_json::json!({"a": 1}))]),
        settings(vec![("list".into(), serde_json::json!([1, 2]))]),
        settings(vec![("bad key".into(), serde_json::json!(true))]),
        settings(
            (0..33)
                .map(|i| (format!("k{i}"), serde_json::json!(i)))
                .collect(),
        ),
    ];
    for (i, r) in bad.iter().enumerate() {
        match s.register_device(me, r, &ctx()).await {
            Err(AppError::BadRequest { code, .. }) => assert_eq!(code, "invalid_device", "{i}"),
            other => panic!("report {i}: expected invalid_device, got {other:?}"),
        }
    }
    assert!(env.device_rows(me).await.is_empty());
    env.finish().await;
}
