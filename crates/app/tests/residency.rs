//! Residency through startup and the transfer check, on SQLite and PostgreSQL (P20):
//! startup refuses, naming the sink, a sink outside the declared region without a
//! declared cross-border transfer; with one declared, startup proceeds and each transfer
//! to that sink needs the user's separate cross-border consent.

use std::sync::Arc;

use custos_app::config::MasterKeySource;
use custos_app::consent::DecisionInput;
use custos_app::ops::residency::ResidencyConfig;
use custos_app::{App, AppError, Config};
use custos_core::{ConsentMethod, Decision, Denial, FakeClock, GateContext, SubjectId};
use custos_crypto::{MasterKey, OsRng};
use custos_policy::BUNDLED_DECLARATION;

struct Env {
    dir: tempfile::TempDir,
    pg: Option<(String, String)>,
    key: String,
}

impl Env {
    async fn sqlite() -> Option<Env> {
        Some(Env {
            dir: tempfile::tempdir().unwrap(),
            pg: None,
            key: MasterKey::generate(&mut OsRng).to_base64(),
        })
    }
    async fn postgres() -> Option<Env> {
        let data = custos_testkit::postgres_database().await?;
        let vault = custos_testkit::postgres_database().await?;
        Some(Env {
            dir: tempfile::tempdir().unwrap(),
            pg: Some((data, vault)),
            key: MasterKey::generate(&mut OsRng).to_base64(),
        })
    }
    fn config(&self, residency: ResidencyConfig, policy: Option<&str>) -> Config {
        let d = self.dir.path();
        let policy = policy.map(|text| {
            let path = d.join("policy.toml");
            std::fs::write(&path, text).unwrap();
            path
        });
        Config {
            data_dir: d.to_path_buf(),
            database_url: self
                .pg
                .as_ref()
                .map(|p| p.0.clone())
                .unwrap_or_else(|| format!("sqlite://{}", d.join("custos.db").display())),
            vault_url: self
                .pg
                .as_ref()
                .map(|p| p.1.clone())
                .unwrap_or_else(|| format!("sqlite://{}", d.join("keys.db").display())),
            master_key: MasterKeySource::Inline(self.key.clone()),
            policy,
            residency,
            ..Default::default()
        }
    }
    async fn finish(self) {
        if let Some((a, b)) = &self.pg {
            custos_testkit::drop_postgres_database(a).await;
            custos_testkit::drop_postgres_database(b).await;
        }
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
    startup_refuses_a_sink_abroad_without_a_declared_transfer_naming_the_sink,
    a_declared_transfer_lets_startup_proceed_and_each_transfer_needs_separate_consent,
    a_push_channel_abroad_is_refused_at_startup_and_each_push_needs_the_transfer_consent,
);

/// The bundled declaration plus a declared transfer of `interactions` data to object
/// storage in Singapore, agreed under the separate purpose `media_abroad`.
fn with_transfer() -> String {
    format!(
        r#"{BUNDLED_DECLARATION}

[[purposes]]
id = "media_abroad"
data_use = "essential.service"
tier = "additional"
basis = "consent"
separate_consent = true
categories = ["user.content.private", "user.unique_id.pseudonymous"]
methods = ["storage", "transfer"]
retention = {{ days = 15, from = "withdrawal" }}
impact_assessment = "PIA-2026-08-basic-service"
name = {{ en = "Keeping your saved media abroad", zh = "在境外保存您收藏的媒体" }}
description = {{ en = "With your separate agreement, media you save is kept by our storage provider in Singapore.", zh = "经您单独同意，您收藏的媒体由我们在新加坡的存储服务商保存。" }}

[[features]]
id = "media_abroad"
tier = "additional"
purposes = ["media_abroad"]
name = {{ en = "Saved media abroad", zh = "境外保存收藏媒体" }}
description = {{ en = "Keep saved media with our storage provider abroad.", zh = "由境外存储服务商保存收藏的媒体。" }}

[[transfers]]
sink = "object_storage"
region = "SG"
purposes = ["interactions"]
consent_purpose = "media_abroad"
recipient = {{ en = "Example Storage Pte. Ltd., Singapore", zh = "新加坡示例存储有限公司" }}
security_measures = {{ en = "Encrypted before it leaves; contract with equal protection.", zh = "出境前加密；签订同等保护义务的合同。" }}
risks = {{ en = "Authorities abroad may demand access under their law.", zh = "境外机关可能依其法律要求访问。" }}
"#
    )
}

async fn startup_refuses_a_sink_abroad_without_a_declared_transfer_naming_the_sink(env: Env) {
    for (sink, cfg) in [
        (
            "object_storage",
            ResidencyConfig {
                object_storage: Some("SG".into()),
                ..Default::default()
            },
        ),
        (
            "sms",
            ResidencyConfig {
                sms: Some("US".into()),
                ..Default::default()
            },
        ),
    ] {
        let err = App::open(&env.config(cfg, None), Arc::new(FakeClock::default()))
            .await
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("the {sink} sink")), "{err}");
        assert!(err.contains("outside the declared region CN"), "{err}");
        assert!(err.contains("[[transfers]]"), "{err}");
    }
    let err = App::open(
        &env.config(
            ResidencyConfig {
                push: Some("china".into()),
                ..Default::default()
            },
            None,
        ),
        Arc::new(FakeClock::default()),
    )
    .await
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(err.contains("push sink's region `china`"), "{err}");
    env.finish().await;
}

async fn a_declared_transfer_lets_startup_proceed_and_each_transfer_needs_separate_consent(
    env: Env,
) {
    let cfg = env.config(
        ResidencyConfig {
            object_storage: Some("SG".into()),
            database: Some("CN".into()),
            ..Default::default()
        },
        Some(&with_transfer()),
    );
    let app = App::open(&cfg, Arc::new(FakeClock::default()))
        .await
        .unwrap();
    let ops = &app.policy_ops;
    let sink = ops.residency.sink("object_storage").unwrap();
    assert!(sink.cross_border);
    assert_eq!(sink.consent_purpose.as_deref(), Some("media_abroad"));
    let s = SubjectId::random();
    let ctx = GateContext::default();
    let denial = |r: Result<(), AppError>| match r {
        Err(AppError::Denied(d)) => Some(d),
        Ok(()) => None,
        Err(e) => panic!("{e}"),
    };
    // Not yet consented: refused.
    assert_eq!(
        denial(ops.check_transfer(s, "object_storage", "interactions", &ctx)),
        Some(Denial::ConsentMissing)
    );
    // A sink at home needs nothing more.
    assert_eq!(
        denial(ops.check_transfer(s, "database", "interactions", &ctx)),
        None
    );
    let decide = |d: Decision| {
        let app = app.clone();
        async move {
            app.kernel
                .record_decisions(
                    s,
                    false,
                    &[DecisionInput {
                        purpose: "media_abroad".into(),
                        decision: d,
                    }],
                    ConsentMethod::Dialog,
                )
                .await
                .unwrap();
        }
    };
    decide(Decision::Given).await;
    assert_eq!(
        denial(ops.check_transfer(s, "object_storage", "interactions", &ctx)),
        None
    );
    // A purpose the transfer does not cover never goes abroad.
    assert_eq!(
        denial(ops.check_transfer(s, "object_storage", "profile", &ctx)),
        Some(Denial::RegionNotAllowed("SG".into()))
    );
    decide(Decision::Withdrawn).await;
    assert_eq!(
        denial(ops.check_transfer(s, "object_storage", "interactions", &ctx)),
        Some(Denial::ConsentWithdrawn)
    );
    // The policy page tells users about the transfer.
    let page = custos_policy::render::markdown(
        app.kernel.gate.regime().current(),
        custos_policy::Lang::En,
    );
    assert!(page.contains("Transfer abroad (SG)"));
    app.shutdown().await;
    env.finish().await;
}

/// The bundled declaration plus a push channel in the United States, carrying service
/// notices under the separate purpose `push_abroad`.
fn with_push_transfer() -> String {
    format!(
        r#"{BUNDLED_DECLARATION}

[[purposes]]
id = "push_abroad"
data_use = "essential.service.notifications"
tier = "additional"
basis = "consent"
separate_consent = true
categories = ["user.device.device_id", "user.unique_id.pseudonymous"]
methods = ["transfer"]
retention = {{ days = 15, from = "withdrawal" }}
impact_assessment = "PIA-2026-08-basic-service"
name = {{ en = "Notices through our push provider abroad", zh = "经境外推送服务商发送通知" }}
description = {{ en = "With your separate agreement, notices reach your device through our push provider in the United States.", zh = "经您单独同意，通知经我们在美国的推送服务商送达您的设备。" }}

[[features]]
id = "push_abroad"
tier = "additional"
purposes = ["push_abroad"]
name = {{ en = "Push through a provider abroad", zh = "经境外服务商推送" }}
description = {{ en = "Get notices on your device through the push provider abroad.", zh = "经境外推送服务商在设备上接收通知。" }}

[[transfers]]
sink = "push"
region = "US"
purposes = ["service_notices"]
consent_purpose = "push_abroad"
recipient = {{ en = "Example Push Inc., United States", zh = "美国示例推送公司" }}
security_measures = {{ en = "Only the device token and the notice leave; contract with equal protection.", zh = "仅设备令牌和通知出境；签订同等保护义务的合同。" }}
risks = {{ en = "Authorities abroad may demand access under their law.", zh = "境外机关可能依其法律要求访问。" }}
"#
    )
}

/// A local push channel on 127.0.0.1 standing in for the provider abroad; counts POSTs.
async fn push_channel() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::routing::post;
    let got = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/push",
        post(move || {
            let sink = sink.clone();
            async move {
                sink.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                axum::http::StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/push"), got)
}

async fn a_push_channel_abroad_is_refused_at_startup_and_each_push_needs_the_transfer_consent(
    env: Env,
) {
    use custos_app::signals::device::DeviceReport;
    use custos_app::signals::push::Notice;
    use std::sync::atomic::Ordering;
    let (url, received) = push_channel().await;
    let with_push = |env: &Env, policy: Option<&str>| {
        let mut cfg = env.config(
            ResidencyConfig {
                push: Some("US".into()),
                ..Default::default()
            },
            policy,
        );
        cfg.signals.push_gateway = Some("http".into());
        cfg.signals.push_http_url = Some(url.clone());
        cfg
    };
    // The push endpoint is declared to be in the US; the declaration has no transfer.
    // (A data directory of its own: the first start publishes the declaration it has.)
    let fresh = Env::sqlite().await.unwrap();
    let err = App::open(&with_push(&fresh, None), Arc::new(FakeClock::default()))
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("the push sink"), "{err}");
    assert!(err.contains("outside the declared region CN"), "{err}");
    fresh.finish().await;
    // Declared: startup proceeds, and each push needs the user's separate consent.
    let app = App::open(
        &with_push(&env, Some(&with_push_transfer())),
        Arc::new(FakeClock::default()),
    )
    .await
    .unwrap();
    let s = SubjectId::random();
    app.signals
        .register_device(
            s,
            &DeviceReport {
                push_token: Some("device-token".into()),
                ..Default::default()
            },
            &GateContext::default(),
        )
        .await
        .unwrap();
    let out = app
        .signals
        .notify(s, &Notice::new("通知", "notice body"))
        .await
        .unwrap();
    assert_eq!((out.pushed, out.withheld), (0, 1));
    assert_eq!(
        received.load(Ordering::SeqCst),
        0,
        "nothing left for the US"
    );
    assert_eq!(
        app.signals.inbox(s).await.unwrap().len(),
        1,
        "the inbox has it"
    );
    app.kernel
        .record_decisions(
            s,
            false,
            &[DecisionInput {
                purpose: "push_abroad".into(),
                decision: Decision::Given,
            }],
            ConsentMethod::Dialog,
        )
        .await
        .unwrap();
    let out = app
        .signals
        .notify(s, &Notice::new("通知", "notice body"))
        .await
        .unwrap();
    assert_eq!((out.pushed, out.withheld), (1, 0));
    assert_eq!(received.load(Ordering::SeqCst), 1);
    app.shutdown().await;
    env.finish().await;
}
