//! Cessation and shutdown through their use cases, on SQLite and PostgreSQL (P18, P22):
//! collection for a discontinued feature stops at once while other features keep
//! running, affected users are told, and its data is erased once the period has passed,
//! with progress for operators; shutting the service down keeps only the privacy center
//! and erases the accounts after the period.

use std::sync::Arc;

use custos_app::config::MasterKeySource;
use custos_app::consent::DecisionInput;
use custos_app::ops::cessation::CessationTarget;
use custos_app::{App, AppError, Config};
use custos_core::{ConsentMethod, Decision, Denial, FakeClock, GateContext, SubjectId};
use custos_crypto::{MasterKey, OsRng};

const DAY_MS: i64 = 86_400_000;

struct Env {
    app: App,
    clock: FakeClock,
    _dir: tempfile::TempDir,
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
        let clock = FakeClock::default();
        let app = App::open(&cfg, Arc::new(clock.clone())).await.unwrap();
        Env {
            app,
            clock,
            _dir: dir,
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
    async fn account(&self) -> SubjectId {
        let s = SubjectId::random();
        custos_store::identity::create_account(&self.app.kernel.db, s, 1)
            .await
            .unwrap();
        s
    }
    async fn give(&self, s: SubjectId, purpose: &str) {
        self.app
            .kernel
            .record_decisions(
                s,
                false,
                &[DecisionInput {
                    purpose: purpose.into(),
                    decision: Decision::Given,
                }],
                ConsentMethod::Dialog,
            )
            .await
            .unwrap();
    }
    fn allowed(&self, s: SubjectId, purpose: &str) -> Result<(), Denial> {
        match self
            .app
            .kernel
            .permit(s, purpose, &[], &GateContext::default())
        {
            Ok(_) => Ok(()),
            Err(AppError::Denied(d)) => Err(d),
            Err(e) => panic!("unexpected error {e}"),
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
    a_discontinued_feature_stops_collecting_at_once_and_its_data_goes_after_the_period,
    a_shutdown_keeps_only_the_privacy_center_and_erases_accounts_after_the_period,
    unknown_features_repeats_and_bad_periods_are_refused,
);

async fn a_discontinued_feature_stops_collecting_at_once_and_its_data_goes_after_the_period(
    env: Env,
) {
    let ops = &env.app.policy_ops;
    let s = env.account().await;
    let bystander = env.account().await;
    env.give(s, "location").await;
    env.give(s, "personalized_ads").await;
    let ctx = GateContext::default();
    env.app
        .kernel
        .store_location(s, 30.27, 120.15, &ctx)
        .await
        .unwrap();
    assert!(ops.discontinued_path("/api/v1/location").is_none());

    let c = ops
        .discontinue(
            &CessationTarget::Feature("location_nearby".into()),
            30 * DAY_MS,
            "Nearby is retired.",
        )
        .await
        .unwrap();
    // Only the purpose no running feature relies on stops (`catalog` serves browsing too).
    assert_eq!(c.purposes, vec!["location".to_owned()]);
    assert_eq!(c.status, "collection_stopped");
    assert_eq!(c.notified, 1, "only the user who shared a location is told");
    assert_eq!(env.allowed(s, "location"), Err(Denial::ServiceCeased));
    let err = env
        .app
        .kernel
        .store_location(s, 30.27, 120.15, &ctx)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "service_ceased");
    assert_eq!(env.allowed(s, "personalized_ads"), Ok(()));
    assert_eq!(env.allowed(s, "catalog"), Ok(()));
    let (feature, erase_at) = ops.discontinued_path("/api/v1/location/nearby").unwrap();
    assert_eq!(feature, "location_nearby");
    assert_eq!(erase_at, c.erase_after_ms);
    assert!(ops.discontinued_path("/api/v1/items").is_none());
    let inbox = env.app.signals.inbox(s).await.unwrap();
    assert!(inbox.iter().any(|m| m.body.contains("Nearby")), "{inbox:?}");
    assert!(env.app.signals.inbox(bystander).await.unwrap().is_empty());

    // Before the period nothing is erased.
    assert!(ops.run_due_cessations().await.unwrap().is_empty());
    assert_eq!(env.app.kernel.personal.list(s).await.unwrap().len(), 1);
    env.clock.advance(time::Duration::days(31));
    let done = ops.run_due_cessations().await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].status, "completed");
    assert_eq!((done[0].subjects_total, done[0].subjects_done), (1, 1));
    assert!(env.app.kernel.personal.list(s).await.unwrap().is_empty());
    let listed = ops.cessations().await.unwrap();
    assert_eq!(listed[0].completed_at_ms, done[0].completed_at_ms);
    // The ledger keeps the consent history (required by law), the data is gone.
    assert!(!env.app.kernel.consent_history(s).await.unwrap().is_empty());
    env.finish().await;
}

async fn a_shutdown_keeps_only_the_privacy_center_and_erases_accounts_after_the_period(env: Env) {
    let ops = &env.app.policy_ops;
    let rights = &env.app.rights;
    let db = &env.app.kernel.db;
    let s = env.account().await;
    env.give(s, "personalized_feed").await;
    // The user's rights ticket, an answered complaint and an export file.
    let ticket = rights
        .open_ticket(
            s,
            custos_app::rights::TicketKind::Access,
            "I am Wang Fang, phone 13800138000",
        )
        .await
        .unwrap();
    let complaint = rights
        .file_complaint(
            Some(s),
            &custos_app::rights::complaints::ComplaintInput {
                kind: custos_app::rights::TicketKind::Complaint,
                topic: "data_handling".into(),
                about: Some("account".into()),
                detail: "Wang Fang says her nickname was shown to others".into(),
            },
        )
        .await
        .unwrap()
        .complaint;
    rights
        .answer_complaint(complaint.ticket.id, "Dear Wang Fang, we fixed it")
        .await
        .unwrap();
    custos_store::rights::exports::create(
        db,
        "export-of-the-user",
        s,
        ticket.id,
        custos_core::Clock::now_ms(&env.clock),
        custos_core::Clock::now_ms(&env.clock) + 30 * DAY_MS,
    )
    .await
    .unwrap();
    let c = ops
        .discontinue(&CessationTarget::Service, 7 * DAY_MS, "")
        .await
        .unwrap();
    assert_eq!(c.scope, "service");
    assert_eq!(c.notified, 1);
    for p in ["account", "interactions", "personalized_feed", "catalog"] {
        assert_eq!(env.allowed(s, p), Err(Denial::ServiceCeased), "{p}");
    }
    for p in ["consent_records", "rights_requests", "security"] {
        assert_eq!(env.allowed(s, p), Ok(()), "{p}");
    }
    assert!(ops.discontinued_path("/api/v1/me/bookmarks").is_some());
    assert!(ops.discontinued_path("/api/v1/auth/sms/start").is_some());
    assert!(ops.discontinued_path("/api/v1/consents").is_none());
    env.clock.advance(time::Duration::days(8));
    let done = ops.run_due_cessations().await.unwrap();
    assert_eq!(done[0].subjects_done, 1);
    assert!(
        custos_store::identity::account(&env.app.kernel.db, s)
            .await
            .unwrap()
            .is_none(),
        "the account is erased"
    );
    // The same erasure step as an account cancellation: tickets and complaints are
    // de-identified, export files deleted (P22, L8).
    assert!(rights.tickets(s).await.unwrap().is_empty());
    for id in [ticket.id, complaint.ticket.id] {
        let t = rights.ticket_for_operator(id).await.unwrap();
        assert_eq!(t.detail, "", "ticket {id} keeps nothing the user wrote");
    }
    let c = custos_store::rights::complaints::get(db, complaint.ticket.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.answer, None, "the answer addressed to the user is gone");
    assert!(custos_store::rights::exports::of_subject(db, s)
        .await
        .unwrap()
        .is_empty());
    env.finish().await;
}

async fn unknown_features_repeats_and_bad_periods_are_refused(env: Env) {
    let ops = &env.app.policy_ops;
    let err = ops
        .discontinue(&CessationTarget::Feature("telepathy".into()), DAY_MS, "")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unknown_feature");
    let err = ops
        .discontinue(
            &CessationTarget::Feature("privacy_center".into()),
            DAY_MS,
            "",
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "feature_required");
    ops.discontinue(&CessationTarget::Feature("ads".into()), DAY_MS, "")
        .await
        .unwrap();
    let err = ops
        .discontinue(&CessationTarget::Feature("ads".into()), DAY_MS, "")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "already_discontinued");
    assert!(custos_app::ops::cessation::parse_period("30x").is_err());
    env.finish().await;
}
