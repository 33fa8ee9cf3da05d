//! Retention through the jobs, on SQLite and PostgreSQL (L9, L8, P10, P19): a fake clock
//! moves past each declared retention and the purge removes the rows, keeps those still
//! within it, keeps security logs at six months less a day; due cancellations are carried
//! out by the same jobs; one runner at a time; the service log's months are partitions on
//! PostgreSQL, created ahead and dropped whole.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use custos_app::catalog::input::Format;
use custos_app::config::MasterKeySource;
use custos_app::consent::DecisionInput;
use custos_app::identity::profile::Nickname;
use custos_app::identity::{ChallengePurpose, PhoneNumber};
use custos_app::jobs::{Job, Jobs, JobsConfig, Outcome, PurgeReport};
use custos_app::rights::{Decision as TicketDecision, TicketKind};
use custos_app::signals::EventInput;
use custos_app::{App, Config};
use custos_core::{Clock, ConsentMethod, Decision, FakeClock, GateContext, Personal, SubjectId};
use custos_crypto::{MasterKey, OsRng};
use custos_store::personal::Field;
use custos_store::signals::StoredEvent;
use custos_store::Db;

const DAY: i64 = 86_400_000;

struct Env {
    app: App,
    jobs: Jobs,
    clock: Arc<FakeClock>,
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
        let clock = Arc::new(FakeClock::default());
        let app = App::open(&cfg, clock.clone()).await.unwrap();
        let jobs = Jobs::new(app.clone(), JobsConfig::default());
        Env {
            app,
            jobs,
            clock,
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
    /// Moves the fake clock to `days` (and `ms`) after where it started.
    fn at(&self, days: i64, ms: i64) {
        let target = START + days * DAY + ms;
        let now = self.clock.now_ms();
        assert!(target >= now, "the clock only moves forward");
        self.clock
            .advance(time::Duration::milliseconds(target - now));
    }
    async fn purge(&self) -> PurgeReport {
        match self.jobs.run(Job::Purge).await.unwrap().outcome {
            Outcome::Purged(r) => r,
            other => panic!("the purge did not run: {other:?}"),
        }
    }
    async fn strings(&self, sql: &str, bind: &str) -> Vec<String> {
        match &self.app.kernel.db {
            Db::Sqlite(p) => sqlx::query_scalar(sql).bind(bind).fetch_all(p).await,
            Db::Postgres(p) => sqlx::query_scalar(sql).bind(bind).fetch_all(p).await,
        }
        .unwrap()
    }
    async fn count(&self, sql: &str) -> i64 {
        match &self.app.kernel.db {
            Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        }
        .unwrap()
    }
    /// The subject's personal field names.
    async fn fields(&self, s: SubjectId) -> Vec<String> {
        self.strings(
            "SELECT field FROM personal_fields WHERE subject = $1 ORDER BY field",
            &s.to_string(),
        )
        .await
    }
    /// Stored events per purpose, e.g. `["security", "service_logs_analytics", …]`.
    async fn event_purposes(&self) -> Vec<String> {
        self.strings(
            "SELECT purpose FROM service_events WHERE $1 = $1 ORDER BY purpose",
            "",
        )
        .await
    }
    /// Gives consent to each purpose, one decision at a time (separate consents).
    async fn give(&self, s: SubjectId, purposes: &[&str]) {
        for p in purposes {
            let d = DecisionInput {
                purpose: (*p).into(),
                decision: Decision::Given,
            };
            self.app
                .kernel
                .record_decisions(s, false, &[d], ConsentMethod::Dialog)
                .await
                .unwrap();
        }
    }
}

/// 2026-01-01T00:00:00Z, where the fake clock starts.
const START: i64 = 1_767_225_600_000;

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { if let Some(env) = super::Env::sqlite().await { super::$name(env).await } } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { if let Some(env) = super::Env::postgres().await { super::$name(env).await } } )* }
    };
}

on_both!(
    personal_fields_go_after_their_declared_days_and_stay_within_them,
    service_logs_go_after_180_days_and_security_logs_stay_six_months_less_a_day,
    sms_codes_the_outbox_and_idle_sessions_are_purged_after_their_lifetimes,
    closed_rights_tickets_go_after_their_declared_three_years_and_open_ones_stay,
    interactions_follow_a_retention_from_collection_once_the_declaration_says_so,
    a_due_cancellation_is_carried_out_by_the_jobs_and_erases_the_switches_too,
    deleting_a_catalog_item_deletes_the_bookmarks_pointing_to_it,
    a_second_runner_skips_a_job_while_its_lock_is_held,
);

async fn personal_fields_go_after_their_declared_days_and_stay_within_them(env: Env) {
    let s = SubjectId::random();
    let ctx = GateContext::default();
    env.give(s, &["location", "device_info", "personalized_feed"])
        .await;
    let sig = &env.app.signals;
    sig.set_location_enabled(s, true).await.unwrap();
    sig.report_location(s, 30.2741, 120.1551, &ctx)
        .await
        .unwrap();
    env.app
        .kernel
        .store_field(
            s,
            "device_info",
            &Field::new("device:model", "user.device"),
            &Personal::new(b"Pixel 9".to_vec()),
            &ctx,
        )
        .await
        .unwrap();
    sig.add_affinity(s, "tag:summer", 1.0, &ctx).await.unwrap();
    // The optional profile is kept while the account exists (retention from closure).
    env.app
        .identity
        .set_nickname(s, &Nickname::parse("Lin").unwrap())
        .await
        .unwrap();
    let all = env.fields(s).await;
    for f in ["device:model", "location", "trait:tag:summer"] {
        assert!(all.contains(&f.to_owned()), "{all:?}");
    }
    let before = all.len();

    // Location: 1 day. A minute before it ends the area is kept; a minute after, gone.
    env.at(1, -60_000);
    let r = env.purge().await;
    assert_eq!(r.rows("personal_fields"), 0, "{r:?}");
    assert!(env.fields(s).await.contains(&"location".to_owned()));
    env.at(1, 60_000);
    let r = env.purge().await;
    assert_eq!(r.rows("personal_fields"), 1, "{r:?}");
    assert!(!env.fields(s).await.contains(&"location".to_owned()));

    // Device information: 90 days.
    env.at(89, 0);
    env.purge().await;
    assert!(env.fields(s).await.contains(&"device:model".to_owned()));
    env.at(90, 60_000);
    env.purge().await;
    assert!(!env.fields(s).await.contains(&"device:model".to_owned()));

    // Traits: 180 days.
    env.at(179, 0);
    env.purge().await;
    assert!(env.fields(s).await.contains(&"trait:tag:summer".to_owned()));
    env.at(180, 60_000);
    env.purge().await;
    let left = env.fields(s).await;
    assert!(!left.contains(&"trait:tag:summer".to_owned()), "{left:?}");

    // Three years on, the profile (kept until the account closes) is still there.
    env.at(3 * 365, 0);
    env.purge().await;
    let left = env.fields(s).await;
    assert_eq!(left.len(), before - 3, "{left:?}");
    assert_eq!(
        env.app
            .identity
            .profile(s)
            .await
            .unwrap()
            .nickname
            .as_deref(),
        Some("Lin")
    );
    env.finish().await;
}

async fn service_logs_go_after_180_days_and_security_logs_stay_six_months_less_a_day(env: Env) {
    let s = SubjectId::random();
    let ctx = GateContext::default();
    env.give(s, &["service_logs_analytics"]).await;
    let now = env.clock.now_ms();
    let batch: Vec<EventInput> = ["browse", "search", "click"]
        .iter()
        .map(|k| EventInput {
            kind: (*k).into(),
            at_ms: now,
            target: Some("42".into()),
            ip: None,
            carrier: None,
            language: None,
        })
        .collect();
    let out = env
        .app
        .signals
        .ingest(
            Some(s),
            Some(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))),
            &batch,
            &ctx,
        )
        .await
        .unwrap();
    assert_eq!(out.accepted, 3);
    // A security log record, kept under the `security` purpose's declared 184 days.
    let expires = env.app.kernel.retention_end("security", now);
    assert_eq!(expires, Some(now + 184 * DAY));
    env.app
        .signals
        .events
        .append(&[StoredEvent {
            pseudonym: [7; 16],
            purpose: "security".into(),
            kind: "sign_in_failed".into(),
            target: None,
            ip_prefix: Some("10.1.2.0".into()),
            carrier: None,
            language: None,
            at_ms: now,
            expires_at_ms: expires,
        }])
        .await
        .unwrap();

    env.at(180, -60_000);
    let r = env.purge().await;
    assert_eq!(r.rows("service_events"), 0, "{r:?}");
    assert_eq!(env.event_purposes().await.len(), 4);

    env.at(180, 60_000);
    let r = env.purge().await;
    assert_eq!(r.rows("service_events"), 3, "{r:?}");
    assert_eq!(env.event_purposes().await, vec!["security".to_owned()]);

    // Six months less a day after it was written, the security log is still there.
    env.at(183, 0);
    let r = env.purge().await;
    assert_eq!(r.rows("service_events"), 0, "{r:?}");
    assert_eq!(env.event_purposes().await, vec!["security".to_owned()]);

    env.at(184, 60_000);
    let r = env.purge().await;
    assert_eq!(r.rows("service_events"), 1, "{r:?}");
    assert!(env.event_purposes().await.is_empty());
    env.finish().await;
}

async fn sms_codes_the_outbox_and_idle_sessions_are_purged_after_their_lifetimes(env: Env) {
    let id = &env.app.identity;
    let phone = PhoneNumber::parse("13912345678").unwrap();
    id.start_challenge(ChallengePurpose::SignIn, &phone, None, None)
        .await
        .unwrap();
    let outbox = env.dir.path().join("sms-outbox.jsonl");
    assert_eq!(custos_app::identity::sms::Outbox::read(&outbox).len(), 1);
    let user = SubjectId::random();
    let session = id.create_session(user, false).await.unwrap();
    let sessions = "SELECT COUNT(*) FROM sessions";
    let codes = "SELECT COUNT(*) FROM sms_challenges";
    assert_eq!((env.count(codes).await, env.count(sessions).await), (1, 1));

    // Codes live 10 minutes, and so do outbox messages.
    env.at(0, 9 * 60_000);
    let r = env.purge().await;
    assert_eq!(r.rows("sms_challenges") + r.rows("sms_outbox"), 0, "{r:?}");
    env.at(0, 11 * 60_000);
    let r = env.purge().await;
    assert_eq!((r.rows("sms_challenges"), r.rows("sms_outbox")), (1, 1));
    assert_eq!(env.count(codes).await, 0);
    assert!(custos_app::identity::sms::Outbox::read(&outbox).is_empty());

    // A session unused for the idle limit (30 days) goes; one used within it stays.
    assert_eq!(env.count(sessions).await, 1);
    env.at(30, 11 * 60_000);
    let r = env.purge().await;
    assert_eq!(r.rows("sessions"), 1, "{r:?}");
    assert_eq!(env.count(sessions).await, 0);
    assert!(id.authenticate(session.token.expose()).await.is_err());
    env.finish().await;
}

async fn closed_rights_tickets_go_after_their_declared_three_years_and_open_ones_stay(env: Env) {
    let rights = &env.app.rights;
    let s = SubjectId::random();
    let done = rights
        .open_ticket(s, TicketKind::Explanation, "why this feed?")
        .await
        .unwrap();
    rights
        .decide(
            done.id,
            &TicketDecision::Completed {
                note: "explained".into(),
            },
        )
        .await
        .unwrap();
    let open = rights.open_ticket(s, TicketKind::Access, "").await.unwrap();

    // rights_requests: 1095 days.
    env.at(1094, 0);
    let r = env.purge().await;
    assert_eq!(r.rows("rights_tickets"), 0, "{r:?}");
    assert_eq!(rights.tickets(s).await.unwrap().len(), 2);
    env.at(1095, 60_000);
    let r = env.purge().await;
    assert_eq!(r.rows("rights_tickets"), 1, "{r:?}");
    let left = rights.tickets(s).await.unwrap();
    assert_eq!(left.iter().map(|t| t.id).collect::<Vec<_>>(), vec![open.id]);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM rights_ticket_events WHERE ticket_id NOT IN (SELECT id FROM rights_tickets)")
            .await,
        0
    );
    env.finish().await;
}

async fn interactions_follow_a_retention_from_collection_once_the_declaration_says_so(env: Env) {
    let catalog = &env.app.catalog;
    let ids = import(&env).await;
    let s = SubjectId::random();
    let ctx = GateContext::default();
    catalog
        .bookmark(s, &ctx, ids[0], Some("Later"))
        .await
        .unwrap();
    // Under the bundled declaration they are kept until the account closes.
    env.at(400, 0);
    let r = env.purge().await;
    assert_eq!(r.rows("interactions"), 0, "{r:?}");
    assert_eq!(catalog.bookmarks(s).await.unwrap().len(), 1);

    // A version that keeps interactions 365 days from collection.
    let src = custos_policy::BUNDLED_DECLARATION;
    let at = src.find("id = \"interactions\"").unwrap();
    let old = "retention = { days = 15, from = \"account_closed\" }";
    let rel = src[at..].find(old).unwrap();
    let changed = format!(
        "{}retention = {{ days = 365 }}{}",
        &src[..at + rel],
        &src[at + rel + old.len()..]
    );
    let policy = custos_policy::Policy::parse(&changed).unwrap();
    env.app.kernel.publish(&policy).await.unwrap();
    catalog
        .bookmark(s, &ctx, ids[1], Some("Now"))
        .await
        .unwrap();
    let r = env.purge().await;
    assert_eq!(r.rows("interactions"), 1, "{r:?}");
    let left = catalog.bookmarks(s).await.unwrap();
    assert_eq!(
        left.iter().map(|b| b.item_id).collect::<Vec<_>>(),
        vec![ids[1]]
    );
    env.finish().await;
}

async fn import(env: &Env) -> Vec<i64> {
    env.app
        .catalog
        .import_text(
            "external_id,title_zh,title_en,description_zh,description_en,category,tags,price_min,price_max,currency\n\
             sku-1,夏季连衣裙,Summer dress,轻薄透气,Light and airy,clothing,summer,199,259,CNY\n\
             sku-2,无线耳机,Wireless headphones,降噪,Noise cancelling,electronics,audio,299,399,CNY\n",
            Format::Csv,
            false,
            &mut |_| {},
        )
        .await
        .unwrap()
        .ids
}

async fn a_due_cancellation_is_carried_out_by_the_jobs_and_erases_the_switches_too(env: Env) {
    let ids = import(&env).await;
    let user = SubjectId::random();
    let ctx = GateContext::default();
    env.app
        .catalog
        .bookmark(user, &ctx, ids[0], Some("Mine"))
        .await
        .unwrap();
    env.app
        .signals
        .set_location_enabled(user, true)
        .await
        .unwrap();
    env.app
        .signals
        .set_personalization_enabled(user, false)
        .await
        .unwrap();
    let identity = &env.app.identity;
    let fresh = identity.create_session(user, true).await.unwrap();
    let fresh = identity.authenticate(fresh.token.expose()).await.unwrap();
    let who = identity.reauthenticated(&fresh).unwrap();
    let c = env.app.rights.request_cancellation(&who).await.unwrap();

    // Within the cooling-off period the job has nothing to do.
    env.at(7, -60_000);
    let run = env.jobs.run(Job::Cancellations).await.unwrap();
    assert_eq!(run.outcome, Outcome::Cancelled(vec![]));
    assert_eq!(env.app.catalog.bookmarks(user).await.unwrap().len(), 1);

    env.at(7, 60_000);
    let runs = env.jobs.run_once(&Job::ALL).await.unwrap();
    let Outcome::Cancelled(done) = &runs[1].outcome else {
        panic!("{runs:?}")
    };
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].subject, done[0].ticket_id), (user, c.ticket_id));
    assert!(env.app.catalog.bookmarks(user).await.unwrap().is_empty());
    assert!(env.app.rights.cancellation(user).await.unwrap().is_none());
    // No store but the ledger (de-identified) still holds the subject: switches included.
    let texts = vec![user.to_string(), user.to_string().replace('-', "")];
    let bytes = vec![user.as_bytes().to_vec()];
    for db in [&env.app.kernel.db, env.app.kernel.vault.db()] {
        let hits = custos_store::rights::scan(db, &bytes, &texts)
            .await
            .unwrap();
        assert!(hits.iter().all(|h| h.table == "consent_ledger"), "{hits:?}");
    }
    assert_eq!(env.count("SELECT COUNT(*) FROM signal_switches").await, 0);
    // Nothing is left to do on the next run.
    let run = env.jobs.run(Job::Cancellations).await.unwrap();
    assert_eq!(run.outcome, Outcome::Cancelled(vec![]));
    env.finish().await;
}

async fn deleting_a_catalog_item_deletes_the_bookmarks_pointing_to_it(env: Env) {
    let catalog = &env.app.catalog;
    let ids = import(&env).await;
    let (a, b) = (SubjectId::random(), SubjectId::random());
    let ctx = GateContext::default();
    for s in [a, b] {
        for id in &ids {
            catalog.bookmark(s, &ctx, *id, Some("All")).await.unwrap();
        }
    }
    catalog.delete_item(ids[0]).await.unwrap();
    for s in [a, b] {
        let left: Vec<i64> = catalog
            .bookmarks(s)
            .await
            .unwrap()
            .iter()
            .map(|b| b.item_id)
            .collect();
        assert_eq!(left, vec![ids[1]]);
    }
    assert_eq!(env.count("SELECT COUNT(*) FROM bookmarks").await, 2);
    // And the purge finds no bookmark of a missing item left behind.
    let r = env.purge().await;
    assert_eq!(r.rows("bookmarks_of_deleted_items"), 0, "{r:?}");
    env.finish().await;
}

async fn a_second_runner_skips_a_job_while_its_lock_is_held(env: Env) {
    let db = &env.app.kernel.db;
    let now = env.clock.now_ms();
    let held = custos_store::retention::try_lock(db, "purge", now, 60_000)
        .await
        .unwrap()
        .expect("the lock is free");
    assert!(custos_store::retention::try_lock(db, "purge", now, 60_000)
        .await
        .unwrap()
        .is_none());
    let run = env.jobs.run(Job::Purge).await.unwrap();
    assert_eq!(run.outcome, Outcome::Skipped);
    assert!(run.to_string().contains("skipped"), "{run}");
    // Another job has its own lock.
    let run = env.jobs.run(Job::Cancellations).await.unwrap();
    assert_eq!(run.outcome, Outcome::Cancelled(vec![]));
    held.release().await.unwrap();
    assert!(matches!(
        env.jobs.run(Job::Purge).await.unwrap().outcome,
        Outcome::Purged(_)
    ));

    // A holder that vanished without releasing: PostgreSQL frees the lock with its
    // session; on SQLite the lease runs out.
    let lost = custos_store::retention::try_lock(db, "purge", now, 60_000)
        .await
        .unwrap()
        .expect("the lock is free again");
    drop(lost);
    if env.pg.is_none() {
        assert_eq!(
            env.jobs.run(Job::Purge).await.unwrap().outcome,
            Outcome::Skipped
        );
        env.at(0, 61_000);
    }
    // The server notices the closed session shortly after; wait for it (at most 10 s).
    let mut ran = false;
    for _ in 0..100 {
        if matches!(
            env.jobs.run(Job::Purge).await.unwrap().outcome,
            Outcome::Purged(_)
        ) {
            ran = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ran, "the lock of a vanished holder was never freed");
    env.finish().await;
}

/// PostgreSQL only: the service log's months are partitions, created ahead by the jobs,
/// filled by the same INSERT, and dropped whole once every row in them is past retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_service_log_months_are_partitions_created_ahead_and_dropped_whole() {
    let Some(env) = Env::postgres().await else {
        return;
    };
    let db = &env.app.kernel.db;
    let s = SubjectId::random();
    env.give(s, &["service_logs_analytics"]).await;
    let ingest = |at_ms: i64| {
        let batch = vec![EventInput {
            kind: "browse".into(),
            at_ms,
            target: Some("7".into()),
            ip: None,
            carrier: None,
            language: None,
        }];
        let app = env.app.clone();
        async move {
            app.signals
                .ingest(Some(s), None, &batch, &GateContext::default())
                .await
                .unwrap()
        }
    };
    // Before any job ran, January has no partition yet: the event waits in the default one.
    ingest(env.clock.now_ms()).await;
    let homes = || async {
        match db {
            Db::Postgres(p) => sqlx::query_scalar::<_, String>(
                "SELECT tableoid::regclass::text FROM service_events ORDER BY at_ms",
            )
            .fetch_all(p)
            .await
            .unwrap(),
            Db::Sqlite(_) => unreachable!(),
        }
    };
    assert_eq!(homes().await, vec!["service_events_default".to_owned()]);
    // The same indexes as the plain table had, now on every partition.
    let Db::Postgres(pool) = db else {
        unreachable!()
    };
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE tablename = 'service_events' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for i in [
        "service_events_at",
        "service_events_expires",
        "service_events_pkey",
        "service_events_pseudonym",
    ] {
        assert!(indexes.contains(&i.to_owned()), "{indexes:?}");
    }

    // The jobs create this month and three ahead, moving the waiting rows in.
    let created = env.jobs.prepare().await.unwrap();
    assert_eq!(
        created,
        ["01", "02", "03", "04"]
            .map(|m| format!("service_events_y2026m{m}"))
            .to_vec()
    );
    assert!(env.jobs.prepare().await.unwrap().is_empty());
    assert_eq!(homes().await, vec!["service_events_y2026m01".to_owned()]);
    env.at(40, 0);
    ingest(env.clock.now_ms()).await;
    assert_eq!(
        homes().await,
        vec![
            "service_events_y2026m01".to_owned(),
            "service_events_y2026m02".to_owned()
        ]
    );

    // 181 days on, every January row is past its 180 days: the month is dropped whole;
    // February is not and stays, with its row.
    env.at(181, 0);
    let r = env.purge().await;
    assert!(
        r.partitions_dropped
            .contains(&"service_events_y2026m01".to_owned()),
        "{r:?}"
    );
    assert_eq!(r.rows("service_events"), 1, "{r:?}");
    let names: Vec<String> = custos_store::retention::event_partitions(db)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert!(
        !names.contains(&"service_events_y2026m01".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"service_events_y2026m02".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"service_events_y2026m10".to_owned()),
        "{names:?}"
    );
    assert_eq!(homes().await, vec!["service_events_y2026m02".to_owned()]);

    env.at(40 + 181, 0);
    let r = env.purge().await;
    assert!(
        r.partitions_dropped
            .contains(&"service_events_y2026m02".to_owned()),
        "{r:?}"
    );
    assert!(homes().await.is_empty());
    env.finish().await;
}
