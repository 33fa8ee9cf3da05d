//! Signals through their use cases, on SQLite and PostgreSQL: the present location only,
//! as a coarse area, under its separate consent and the user's switch; service logs gated
//! per purpose, pseudonymized and IP-truncated. P8, P10, P11, L16, DESIGN invariant 6.

use std::process::Command;
use std::sync::Arc;

use custos_app::config::MasterKeySource;
use custos_app::consent::DecisionInput;
use custos_app::signals::EventInput;
use custos_app::{App, AppError, Config};
use custos_core::{ConsentMethod, Decision, FakeClock, GateContext, SubjectId};
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
                policy: None,
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
    async fn dump(&self) -> Vec<u8> {
        match &self.pg {
            None => std::fs::read_dir(self.dir.path())
                .unwrap()
                .flatten()
                .flat_map(|e| std::fs::read(e.path()).unwrap_or_default())
                .collect(),
            Some((data, vault)) => [data, vault].iter().flat_map(|u| pg_dump(u)).collect(),
        }
    }
    async fn location_rows(&self, subject: Option<SubjectId>) -> i64 {
        let sql = "SELECT COUNT(*) FROM personal_fields WHERE category LIKE 'user.location%' \
                   AND ($1 = '' OR subject = $1)";
        let s = subject.map(|s| s.to_string()).unwrap_or_default();
        let (n,): (i64,) = match &self.app.kernel.db {
            Db::Sqlite(p) => sqlx::query_as(sql).bind(&s).fetch_one(p).await.unwrap(),
            Db::Postgres(p) => sqlx::query_as(sql).bind(&s).fetch_one(p).await.unwrap(),
        };
        n
    }
}

fn pg_dump(url: &str) -> Vec<u8> {
    let out = Command::new("pg_dump")
        .arg("--dbname")
        .arg(url)
        .output()
        .expect("pg_dump runs");
    assert!(out.status.success());
    out.stdout
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
    after_100_reports_one_coarse_row_holds_the_last_area_and_no_coordinate_is_stored,
    location_needs_its_consent_and_the_switch,
    switching_location_off_deletes_the_area_and_stops_intake,
    withdrawing_location_consent_deletes_the_area,
    service_log_events_are_gated_per_purpose_pseudonymized_and_ip_truncated,
    bad_batches_are_refused_whole_with_stable_codes_and_store_nothing,
    a_full_batch_of_1000_events_is_stored_and_withdrawal_stops_intake,
    traits_are_listed_with_their_lineage_and_can_be_deleted_or_reset,
    withdrawing_personalization_deletes_every_trait_derived_under_it,
    with_personalization_off_or_withdrawn_no_profile_is_read,
);

async fn decide(env: &Env, s: SubjectId, purpose: &str, decision: Decision) {
    decide_as(env, s, purpose, decision, false).await
}

async fn decide_as(env: &Env, s: SubjectId, purpose: &str, decision: Decision, anonymous: bool) {
    env.app
        .kernel
        .record_decisions(
            s,
            anonymous,
            &[DecisionInput {
                purpose: purpose.into(),
                decision,
            }],
            ConsentMethod::Dialog,
        )
        .await
        .unwrap();
}

/// The i-th precise position of a walk through Hangzhou, and its text as a client sends it.
fn position(i: u32) -> (f64, f64) {
    (
        30.274_084_7 + f64::from(i) * 0.000_731_3,
        120.155_070_1 + f64::from(i) * 0.000_517_9,
    )
}

fn code(e: AppError) -> &'static str {
    e.code()
}

async fn after_100_reports_one_coarse_row_holds_the_last_area_and_no_coordinate_is_stored(
    env: Env,
) {
    let sig = &env.app.signals;
    let ctx = GateContext::default();
    let s = SubjectId::random();
    decide(&env, s, "location", Decision::Given).await;
    sig.set_location_enabled(s, true).await.unwrap();
    let mut last = String::new();
    for i in 0..100 {
        let (lat, lon) = position(i);
        last = sig.report_location(s, lat, lon, &ctx).await.unwrap();
        assert!(last.len() <= 5, "coarse: `{last}`");
    }
    assert_eq!(env.location_rows(Some(s)).await, 1, "one row per subject");
    assert_eq!(env.location_rows(None).await, 1, "no other row anywhere");
    let state = sig.location(s).await.unwrap();
    assert!(state.enabled);
    assert_eq!(state.geohash.as_deref(), Some(last.as_str()));
    assert_eq!(
        last,
        custos_core::location::coarse_geohash(position(99).0, position(99).1, 5).unwrap()
    );
    if let Db::Sqlite(p) = &env.app.kernel.db {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(p)
            .await
            .unwrap();
    }
    let dump = env.dump().await;
    for i in 0..100 {
        let (lat, lon) = position(i);
        for needle in [format!("{lat:.5}"), format!("{lon:.5}")] {
            assert!(
                !custos_testkit::contains(&dump, needle.as_bytes()),
                "coordinate `{needle}` found in the stored bytes"
            );
        }
    }
    assert!(
        !custos_testkit::contains(&dump, last.as_bytes()),
        "the area itself is stored encrypted"
    );
    env.finish().await;
}

async fn location_needs_its_consent_and_the_switch(env: Env) {
    let sig = &env.app.signals;
    let ctx = GateContext::default();
    let (lat, lon) = position(0);
    // Neither consent nor switch.
    let s = SubjectId::random();
    assert_eq!(
        code(sig.report_location(s, lat, lon, &ctx).await.unwrap_err()),
        "location_off"
    );
    // Switch on, no consent: the gate refuses.
    sig.set_location_enabled(s, true).await.unwrap();
    let e = sig.report_location(s, lat, lon, &ctx).await.unwrap_err();
    assert!(matches!(e, AppError::Denied(_)), "{e:?}");
    // Consent, switch off: still refused.
    let t = SubjectId::random();
    decide(&env, t, "location", Decision::Given).await;
    assert_eq!(
        code(sig.report_location(t, lat, lon, &ctx).await.unwrap_err()),
        "location_off"
    );
    assert_eq!(env.location_rows(None).await, 0);
    // Both: accepted.
    sig.set_location_enabled(t, true).await.unwrap();
    sig.report_location(t, lat, lon, &ctx).await.unwrap();
    assert_eq!(env.location_rows(None).await, 1);
    // Bad coordinates are refused with a stable code.
    assert_eq!(
        code(sig.report_location(t, 91.0, 0.0, &ctx).await.unwrap_err()),
        "invalid_location"
    );
    assert_eq!(
        code(
            sig.report_location(t, f64::NAN, 0.0, &ctx)
                .await
                .unwrap_err()
        ),
        "invalid_location"
    );
    env.finish().await;
}

async fn switching_location_off_deletes_the_area_and_stops_intake(env: Env) {
    let sig = &env.app.signals;
    let ctx = GateContext::default();
    let s = SubjectId::random();
    decide(&env, s, "location", Decision::Given).await;
    sig.set_location_enabled(s, true).await.unwrap();
    let (lat, lon) = position(3);
    sig.report_location(s, lat, lon, &ctx).await.unwrap();
    assert!(sig.require_location(s).await.is_ok());
    sig.set_location_enabled(s, false).await.unwrap();
    assert_eq!(env.location_rows(Some(s)).await, 0, "deleted at once");
    assert_eq!(
        code(sig.report_location(s, lat, lon, &ctx).await.unwrap_err()),
        "location_off"
    );
    assert_eq!(env.location_rows(Some(s)).await, 0, "intake stopped");
    let state = sig.location(s).await.unwrap();
    assert!(!state.enabled && state.geohash.is_none());
    assert_eq!(
        code(sig.require_location(s).await.unwrap_err()),
        "location_required"
    );
    env.finish().await;
}

async fn withdrawing_location_consent_deletes_the_area(env: Env) {
    let sig = &env.app.signals;
    let ctx = GateContext::default();
    let s = SubjectId::random();
    decide(&env, s, "location", Decision::Given).await;
    sig.set_location_enabled(s, true).await.unwrap();
    let (lat, lon) = position(7);
    sig.report_location(s, lat, lon, &ctx).await.unwrap();
    decide(&env, s, "location", Decision::Withdrawn).await;
    assert_eq!(env.location_rows(Some(s)).await, 0);
    let e = sig.report_location(s, lat, lon, &ctx).await.unwrap_err();
    assert!(matches!(e, AppError::Denied(_)), "{e:?}");
    assert_eq!(env.location_rows(Some(s)).await, 0);
    env.finish().await;
}

const KINDS: [&str; 6] = ["browse", "click", "search", "bookmark", "share", "download"];

fn event(kind: &str, at_ms: i64, ip: Option<&str>) -> EventInput {
    EventInput {
        kind: kind.into(),
        at_ms,
        target: Some("item-42".into()),
        ip: ip.map(str::to_owned),
        carrier: Some("China Mobile".into()),
        language: Some("zh-CN".into()),
    }
}

async fn service_log_events_are_gated_per_purpose_pseudonymized_and_ip_truncated(env: Env) {
    let sig = &env.app.signals;
    let ctx = GateContext::default();
    let now = env.app.kernel.clock.now_ms();
    let s = SubjectId::random();
    let batch: Vec<EventInput> = KINDS
        .iter()
        .map(|k| event(k, now - 1_000, Some("203.0.113.77")))
        .collect();
    // Not consented: every event dropped and counted, nothing stored.
    let out = sig.ingest(Some(s), None, &batch, &ctx).await.unwrap();
    assert_eq!((out.accepted, out.dropped_unconsented), (0, 6));
    let out = sig.ingest(None, None, &batch, &ctx).await.unwrap();
    assert_eq!((out.accepted, out.dropped_unconsented), (0, 6));
    assert_eq!(sig.events.count().await.unwrap(), 0);
    // Consented (anonymous identifiers may consent to this purpose).
    decide_as(&env, s, "service_logs_analytics", Decision::Given, true).await;
    let v6: std::net::IpAddr = "2001:db8:abcd:1234:5678:9abc:def0:1".parse().unwrap();
    let mut batch = batch;
    batch.push(event("search", now, None));
    let out = sig.ingest(Some(s), Some(v6), &batch, &ctx).await.unwrap();
    assert_eq!((out.accepted, out.dropped_unconsented), (7, 0));
    let stored = sig.events_of(s).await.unwrap();
    assert_eq!(stored.len(), 7);
    let subject_text = s.to_string();
    for e in &stored {
        assert_eq!(e.purpose, "service_logs_analytics");
        assert!(e.expires_at_ms.is_some(), "retention applies");
        assert_ne!(e.pseudonym.to_vec(), subject_text.as_bytes()[..16].to_vec());
        if let Some(ip) = &e.ip_prefix {
            assert!(ip == "203.0.113.0" || ip == "2001:db8:abcd::", "{ip}");
        }
    }
    // No stored row names the subject; the full addresses are nowhere.
    if let Db::Sqlite(p) = &env.app.kernel.db {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(p)
            .await
            .unwrap();
    }
    let dump = env.dump().await;
    for needle in ["203.0.113.77", "2001:db8:abcd:1234", "def0:1"] {
        assert!(
            !custos_testkit::contains(&dump, needle.as_bytes()),
            "`{needle}` found in the stored bytes"
        );
    }
    let sql = "SELECT COUNT(*) FROM service_events WHERE pseudonym = $1";
    let (n,): (i64,) = match &env.app.kernel.db {
        Db::Sqlite(p) => sqlx::query_as(sql)
            .bind(s.as_bytes().to_vec())
            .fetch_one(p)
            .await
            .unwrap(),
        Db::Postgres(p) => sqlx::query_as(sql)
            .bind(s.as_bytes().to_vec())
            .fetch_one(p)
            .await
            .unwrap(),
    };
    assert_eq!(n, 0, "the subject id itself is never stored");
    // Another subject's pseudonym differs.
    assert_ne!(
        env.app
            .kernel
            .ring
            .pseudonym("events", subject_text.as_bytes()),
        env.app
            .kernel
            .ring
            .pseudonym("events", SubjectId::random().to_string().as_bytes())
    );
    env.finish().await;
}

async fn bad_batches_are_refused_whole_with_stable_codes_and_store_nothing(env: Env) {
    let sig = &env.app.signals;
    let ctx = GateContext::default();
    let now = env.app.kernel.clock.now_ms();
    let s = SubjectId::random();
    decide_as(&env, s, "service_logs_analytics", Decision::Given, true).await;
    let ok = event("click", now, None);
    let too_many: Vec<EventInput> = (0..1_001).map(|_| ok.clone()).collect();
    let cases: Vec<(Vec<EventInput>, &str)> = vec![
        (vec![], "batch_empty"),
        (too_many, "batch_too_large"),
        (
            vec![ok.clone(), event("purchase", now, None)],
            "invalid_event",
        ),
        (
            vec![ok.clone(), event("click", now + 10 * 60_000, None)],
            "clock_skew",
        ),
        (
            vec![ok.clone(), event("click", now - 8 * 86_400_000, None)],
            "clock_skew",
        ),
        (
            vec![ok.clone(), event("click", now, Some("not-an-ip"))],
            "invalid_event",
        ),
        (
            vec![EventInput {
                target: Some("x".repeat(300)),
                ..ok.clone()
            }],
            "invalid_event",
        ),
    ];
    for (batch, want) in cases {
        let e = sig.ingest(Some(s), None, &batch, &ctx).await.unwrap_err();
        assert_eq!(e.code(), want);
    }
    assert_eq!(sig.events.count().await.unwrap(), 0);
    env.finish().await;
}

async fn a_full_batch_of_1000_events_is_stored_and_withdrawal_stops_intake(env: Env) {
    let sig = &env.app.signals;
    let ctx = GateContext::default();
    let now = env.app.kernel.clock.now_ms();
    let s = SubjectId::random();
    decide_as(&env, s, "service_logs_analytics", Decision::Given, true).await;
    let batch: Vec<EventInput> = (0..1_000)
        .map(|i| event(KINDS[i % KINDS.len()], now - i as i64, Some("198.51.100.9")))
        .collect();
    let out = sig.ingest(Some(s), None, &batch, &ctx).await.unwrap();
    assert_eq!((out.accepted, out.dropped_unconsented), (1_000, 0));
    assert_eq!(sig.events.count().await.unwrap(), 1_000);
    decide_as(&env, s, "service_logs_analytics", Decision::Withdrawn, true).await;
    // Withdrawal deletes the subject's stored events, and nothing new is kept.
    assert_eq!(sig.events.count().await.unwrap(), 0);
    let out = sig.ingest(Some(s), None, &batch[..10], &ctx).await.unwrap();
    assert_eq!((out.accepted, out.dropped_unconsented), (0, 10));
    assert_eq!(sig.events.count().await.unwrap(), 0);
    env.finish().await;
}

#[test]
fn ip_addresses_lose_the_ipv4_last_octet_and_the_ipv6_last_80_bits() {
    use custos_app::signals::truncate_ip;
    let t = |s: &str| truncate_ip(s.parse().unwrap()).to_string();
    assert_eq!(t("203.0.113.77"), "203.0.113.0");
    assert_eq!(t("2001:db8:abcd:1234:5678:9abc:def0:1"), "2001:db8:abcd::");
    assert_eq!(t("::ffff:198.51.100.9"), "198.51.100.0");
}

async fn traits_are_listed_with_their_lineage_and_can_be_deleted_or_reset(env: Env) {
    let sig = &env.app.signals;
    let ctx = GateContext::default();
    let s = SubjectId::random();
    // No consent: nothing is derived.
    let e = sig
        .add_affinity(s, "tag:dress", 1.0, &ctx)
        .await
        .unwrap_err();
    assert!(matches!(e, AppError::Denied(_)), "{e:?}");
    decide(&env, s, "personalized_feed", Decision::Given).await;
    sig.add_affinity(s, "tag:dress", 1.0, &ctx).await.unwrap();
    assert_eq!(
        sig.add_affinity(s, "tag:dress", 0.5, &ctx).await.unwrap(),
        1.5
    );
    sig.add_affinity(s, "category:shoes", 2.0, &ctx)
        .await
        .unwrap();
    let traits = sig.traits(s).await.unwrap();
    assert_eq!(traits.len(), 2);
    assert!(traits.iter().all(|t| t.purpose == "personalized_feed"));
    assert_eq!(
        traits.iter().find(|t| t.key == "tag:dress").unwrap().weight,
        1.5
    );
    assert_eq!(
        sig.add_affinity(s, "bad key", 1.0, &ctx)
            .await
            .unwrap_err()
            .code(),
        "invalid_trait"
    );
    // Another subject sees none of them.
    assert!(sig.traits(SubjectId::random()).await.unwrap().is_empty());
    sig.delete_trait(s, "tag:dress").await.unwrap();
    assert_eq!(
        sig.delete_trait(s, "tag:dress").await.unwrap_err().code(),
        "not_found"
    );
    assert_eq!(sig.traits(s).await.unwrap().len(), 1);
    sig.add_affinity(s, "tag:bag", 1.0, &ctx).await.unwrap();
    assert_eq!(sig.reset_traits(s).await.unwrap(), 2);
    assert!(sig.traits(s).await.unwrap().is_empty());
    env.finish().await;
}

async fn withdrawing_personalization_deletes_every_trait_derived_under_it(env: Env) {
    let sig = &env.app.signals;
    let ctx = GateContext::default();
    let s = SubjectId::random();
    decide(&env, s, "personalized_feed", Decision::Given).await;
    decide(&env, s, "location", Decision::Given).await;
    sig.set_location_enabled(s, true).await.unwrap();
    sig.report_location(s, 30.27, 120.15, &ctx).await.unwrap();
    for k in ["tag:a", "tag:b", "category:c"] {
        sig.add_affinity(s, k, 1.0, &ctx).await.unwrap();
    }
    decide(&env, s, "personalized_feed", Decision::Withdrawn).await;
    assert!(sig.traits(s).await.unwrap().is_empty());
    // Data kept under another purpose stays.
    assert!(sig.location(s).await.unwrap().geohash.is_some());
    env.finish().await;
}

async fn with_personalization_off_or_withdrawn_no_profile_is_read(env: Env) {
    use std::sync::atomic::Ordering;
    let sig = &env.app.signals;
    let ctx = GateContext::default();
    let s = SubjectId::random();
    assert!(
        !sig.personalized(Some(s), &ctx).await.unwrap(),
        "no consent yet"
    );
    assert!(!sig.personalized(None, &ctx).await.unwrap());
    decide(&env, s, "personalized_feed", Decision::Given).await;
    sig.add_affinity(s, "tag:a", 1.0, &ctx).await.unwrap();
    assert!(sig.personalized(Some(s), &ctx).await.unwrap());
    let reads = sig.profile_reads.load(Ordering::Relaxed);
    assert!(sig
        .profile_for_ranking(Some(s), &ctx)
        .await
        .unwrap()
        .is_some());
    assert_eq!(sig.profile_reads.load(Ordering::Relaxed), reads + 1);
    // Switch off: the very next answer is not personalized and reads no profile.
    sig.set_personalization_enabled(s, false).await.unwrap();
    assert!(!sig.personalized(Some(s), &ctx).await.unwrap());
    assert!(sig
        .profile_for_ranking(Some(s), &ctx)
        .await
        .unwrap()
        .is_none());
    assert_eq!(sig.profile_reads.load(Ordering::Relaxed), reads + 1);
    // Back on, then withdrawn: likewise.
    sig.set_personalization_enabled(s, true).await.unwrap();
    assert!(sig.personalized(Some(s), &ctx).await.unwrap());
    decide(&env, s, "personalized_feed", Decision::Withdrawn).await;
    assert!(sig
        .profile_for_ranking(Some(s), &ctx)
        .await
        .unwrap()
        .is_none());
    assert_eq!(sig.profile_reads.load(Ordering::Relaxed), reads + 1);
    env.finish().await;
}
