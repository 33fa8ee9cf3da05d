//! Ads through their use cases, on SQLite and PostgreSQL: targeted only with the ads purpose
//! consented and no GPC signal, contextual otherwise; a signed-in user's GPC recorded once
//! in the ledger as an objection; impressions and clicks kept de-identified and only for
//! consenting viewers; effectiveness released only for groups of at least k users
//! (property test). P27, L14.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use custos_app::catalog::input::Format;
use custos_app::config::MasterKeySource;
use custos_app::consent::DecisionInput;
use custos_app::signals::ads::{release, ADS_PURPOSE};
use custos_app::signals::SignalsConfig;
use custos_app::{App, Config};
use custos_core::{AgeStatus, ConsentMethod, Decision, FakeClock, GateContext, SubjectId};
use custos_crypto::{MasterKey, OsRng};
use custos_store::signals2::AdEvent;
use custos_store::Db;
use proptest::prelude::*;

struct Env {
    app: App,
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
                signals: SignalsConfig {
                    ads_min_group_users: Some(3),
                    ..Default::default()
                },
                ..Default::default()
            };
        let app = App::open(&cfg, Arc::new(FakeClock::default()))
            .await
            .unwrap();
        Env { app, _dir: dir, pg }
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
    async fn scalar(&self, sql: &str) -> i64 {
        let (n,): (i64,) = match &self.app.kernel.db {
            Db::Sqlite(p) => sqlx::query_as(sql).fetch_one(p).await.unwrap(),
            Db::Postgres(p) => sqlx::query_as(sql).fetch_one(p).await.unwrap(),
        };
        n
    }
    /// Two items: shoes (tag `running`) and a dress (tag `summer`).
    async fn catalog(&self) -> (i64, i64) {
        let json = r#"[
          {"external_id":"s1","title_zh":"跑鞋","title_en":"Running shoes","category":"shoes","tags":["running"],"price_min":"299.00","price_max":"399.00"},
          {"external_id":"d1","title_zh":"夏季连衣裙","title_en":"Summer dress","category":"clothing","tags":["summer"],"price_min":"159.00"}
        ]"#;
        let r = self
            .app
            .catalog
            .import_text(json, Format::Json, false, &mut |_| {})
            .await
            .unwrap();
        (r.ids[0], r.ids[1])
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
    ad_slots_are_targeted_only_with_ads_consent_and_without_gpc,
    gpc_from_a_signed_in_user_is_recorded_once_as_an_objection,
    impressions_and_clicks_are_kept_only_for_consenting_viewers_under_a_pseudonym,
    the_report_releases_counts_only_for_groups_of_at_least_k_users,
    released_groups_never_have_fewer_than_k_users_property,
    bad_ad_input_is_refused_with_stable_codes,
);

fn plain() -> GateContext<'static> {
    GateContext::default()
}

fn gpc() -> GateContext<'static> {
    GateContext {
        age: AgeStatus::Adult,
        gpc: true,
        storage_region: None,
    }
}

async fn ad_slots_are_targeted_only_with_ads_consent_and_without_gpc(env: Env) {
    let (shoes, dress) = env.catalog().await;
    let s = env.app.signals.as_ref();
    let c = env.app.catalog.as_ref();
    let me = SubjectId::random();
    env.decide(me, "personalized_feed", Decision::Given).await;
    s.add_affinity(me, "category:shoes", 5.0, &plain())
        .await
        .unwrap();
    // Traits alone do not target: the ads purpose is not consented.
    let slot = s
        .ad_slot(c, Some(me), false, Some("dress"), &plain())
        .await
        .unwrap();
    assert!(!slot.targeted);
    assert_eq!(
        slot.ad.unwrap().item_id,
        dress,
        "contextual: the page's context"
    );
    // With consent: chosen from the traits, whatever the context.
    env.decide(me, ADS_PURPOSE, Decision::Given).await;
    let slot = s
        .ad_slot(c, Some(me), false, Some("dress"), &plain())
        .await
        .unwrap();
    assert!(slot.targeted);
    let ad = slot.ad.unwrap();
    assert_eq!(ad.item_id, shoes);
    assert_eq!(
        (ad.price_min, ad.price_max),
        (29_900, 39_900),
        "catalog price"
    );
    // GPC (from a visitor that is not signed in): contextual, nothing recorded.
    let slot = s
        .ad_slot(c, Some(me), false, Some("dress"), &gpc())
        .await
        .unwrap();
    assert!(!slot.targeted);
    assert_eq!(slot.ad.unwrap().item_id, dress);
    // Personalization switched off: contextual too.
    s.set_personalization_enabled(me, false).await.unwrap();
    let slot = s
        .ad_slot(c, Some(me), false, Some("dress"), &plain())
        .await
        .unwrap();
    assert!(!slot.targeted);
    s.set_personalization_enabled(me, true).await.unwrap();
    // Withdrawn: contextual at once.
    env.decide(me, ADS_PURPOSE, Decision::Withdrawn).await;
    let slot = s.ad_slot(c, Some(me), false, None, &plain()).await.unwrap();
    assert!(!slot.targeted);
    // No identifier at all: contextual.
    let slot = s
        .ad_slot(c, None, false, Some("shoes"), &plain())
        .await
        .unwrap();
    assert!(!slot.targeted);
    assert_eq!(slot.ad.unwrap().item_id, shoes);
    env.finish().await;
}

async fn gpc_from_a_signed_in_user_is_recorded_once_as_an_objection(env: Env) {
    env.catalog().await;
    let s = env.app.signals.as_ref();
    let c = env.app.catalog.as_ref();
    let me = SubjectId::random();
    env.decide(me, ADS_PURPOSE, Decision::Given).await;
    for _ in 0..5 {
        let slot = s.ad_slot(c, Some(me), true, None, &gpc()).await.unwrap();
        assert!(!slot.targeted);
    }
    let history = env.app.kernel.consent_history(me).await.unwrap();
    let by_gpc: Vec<_> = history
        .iter()
        .filter(|r| r.method == ConsentMethod::Gpc)
        .map(|r| (r.purpose.as_str(), r.decision))
        .collect();
    assert_eq!(
        by_gpc,
        vec![
            (ADS_PURPOSE, Decision::Withdrawn),
            ("partner_sharing", Decision::Refused)
        ],
        "one objection per purpose, however many requests carried the signal"
    );
    // The objection stands without the header too: the next slot is contextual.
    let slot = s.ad_slot(c, Some(me), true, None, &plain()).await.unwrap();
    assert!(!slot.targeted);
    // A fresh consent after the objection, then GPC again: recorded once more, once.
    env.decide(me, ADS_PURPOSE, Decision::Given).await;
    for _ in 0..3 {
        s.ad_slot(c, Some(me), true, None, &gpc()).await.unwrap();
    }
    let n = env
        .app
        .kernel
        .consent_history(me)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method == ConsentMethod::Gpc)
        .count();
    assert_eq!(n, 3);
    // A visitor that is not signed in: nothing is recorded.
    let anon = SubjectId::random();
    env.decide(anon, ADS_PURPOSE, Decision::Given).await;
    s.ad_slot(c, Some(anon), false, None, &gpc()).await.unwrap();
    assert_eq!(env.app.kernel.consent_history(anon).await.unwrap().len(), 1);
    env.finish().await;
}

async fn impressions_and_clicks_are_kept_only_for_consenting_viewers_under_a_pseudonym(env: Env) {
    let (shoes, _) = env.catalog().await;
    let s = env.app.signals.as_ref();
    let c = env.app.catalog.as_ref();
    let yes = SubjectId::random();
    let no = SubjectId::random();
    env.decide(yes, ADS_PURPOSE, Decision::Given).await;
    for who in [Some(no), None] {
        s.ad_slot(c, who, false, Some("shoes"), &plain())
            .await
            .unwrap();
        assert!(!s.ad_click(c, who, shoes, false, &plain()).await.unwrap());
    }
    s.ad_slot(c, Some(yes), false, Some("shoes"), &gpc())
        .await
        .unwrap();
    assert!(!s
        .ad_click(c, Some(yes), shoes, false, &gpc())
        .await
        .unwrap());
    assert_eq!(env.scalar("SELECT COUNT(*) FROM ad_events").await, 0);
    s.ad_slot(c, Some(yes), false, Some("shoes"), &plain())
        .await
        .unwrap();
    assert!(s
        .ad_click(c, Some(yes), shoes, false, &plain())
        .await
        .unwrap());
    assert_eq!(env.scalar("SELECT COUNT(*) FROM ad_events").await, 2);
    // De-identified: no subject id, and the day only.
    let id = yes.to_string();
    let q = format!(
        "SELECT COUNT(*) FROM ad_events WHERE user_key = {} OR CAST(user_key AS TEXT) LIKE '%{id}%'",
        match env.app.kernel.db {
            Db::Sqlite(_) => format!("x'{}'", hex(&yes.as_bytes()[..])),
            Db::Postgres(_) => format!("'\\x{}'::bytea", hex(&yes.as_bytes()[..])),
        }
    );
    assert_eq!(env.scalar(&q).await, 0);
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM ad_events WHERE day_ms % 86400000 <> 0")
            .await,
        0
    );
    // Withdrawal deletes the viewer's events in the kernel itself, whatever path records
    // it (no HTTP handler here); the explicit hook after it is idempotent.
    env.decide(yes, ADS_PURPOSE, Decision::Withdrawn).await;
    assert_eq!(env.scalar("SELECT COUNT(*) FROM ad_events").await, 0);
    s.after_decisions(
        yes,
        &[DecisionInput {
            purpose: ADS_PURPOSE.into(),
            decision: Decision::Withdrawn,
        }],
    )
    .await
    .unwrap();
    assert_eq!(env.scalar("SELECT COUNT(*) FROM ad_events").await, 0);
    env.finish().await;
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn the_report_releases_counts_only_for_groups_of_at_least_k_users(env: Env) {
    let (shoes, dress) = env.catalog().await;
    let s = env.app.signals.as_ref();
    let c = env.app.catalog.as_ref();
    // k = 3 in this environment. Three viewers see the shoes, two the dress.
    for (context, viewers) in [("shoes", 3), ("dress", 2)] {
        for _ in 0..viewers {
            let v = SubjectId::random();
            env.decide(v, ADS_PURPOSE, Decision::Given).await;
            for _ in 0..2 {
                s.ad_slot(c, Some(v), false, Some(context), &plain())
                    .await
                    .unwrap();
            }
            let id = if context == "shoes" { shoes } else { dress };
            s.ad_click(c, Some(v), id, false, &plain()).await.unwrap();
        }
    }
    let report = s.ad_report().await.unwrap();
    assert_eq!(report.min_group_users, 3);
    let shoes_g = report.groups.iter().find(|g| g.ad_id == shoes).unwrap();
    assert!(!shoes_g.suppressed);
    assert_eq!(
        (shoes_g.users, shoes_g.impressions, shoes_g.clicks),
        (Some(3), Some(6), Some(3))
    );
    let dress_g = report.groups.iter().find(|g| g.ad_id == dress).unwrap();
    assert!(dress_g.suppressed);
    assert_eq!(
        (dress_g.users, dress_g.impressions, dress_g.clicks),
        (None, None, None)
    );
    let json = serde_json::to_value(dress_g).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"ad_id": dress, "targeted": false, "suppressed": true})
    );
    env.finish().await;
}

/// One generated event: (ad, viewer, click?, targeted?).
type Ev = (i64, u8, bool, bool);

async fn released_groups_never_have_fewer_than_k_users_property(env: Env) {
    let signals = env.app.signals.clone();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    });
    let strategy = (
        proptest::collection::vec((0i64..4, 0u8..25, any::<bool>(), any::<bool>()), 0..120),
        2u32..12,
    );
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        runner.run(&strategy, |(events, k): (Vec<Ev>, u32)| {
            let stats = handle.block_on(async {
                signals.ads.clear().await.unwrap();
                for (ad, user, click, targeted) in &events {
                    signals
                        .ads
                        .record(&AdEvent {
                            ad_id: *ad,
                            targeted: *targeted,
                            kind: if *click { "click" } else { "impression" }.into(),
                            user_key: [*user; 16],
                            day_ms: 0,
                            expires_at_ms: None,
                        })
                        .await
                        .unwrap();
                }
                signals.ads.group_stats().await.unwrap()
            });
            let released = release(&stats, k);
            // The truth, counted here from the generated events.
            let mut truth: BTreeMap<(i64, bool), (BTreeSet<u8>, i64, i64)> = BTreeMap::new();
            for (ad, user, click, targeted) in &events {
                let g = truth.entry((*ad, *targeted)).or_default();
                g.0.insert(*user);
                if *click {
                    g.2 += 1;
                } else {
                    g.1 += 1;
                }
            }
            prop_assert_eq!(released.len(), truth.len());
            for g in &released {
                let (users, imps, clicks) = &truth[&(g.ad_id, g.targeted)];
                let n = users.len() as i64;
                if g.suppressed {
                    prop_assert!(
                        n < i64::from(k),
                        "a group of {} ≥ k = {} was suppressed",
                        n,
                        k
                    );
                    prop_assert_eq!((g.users, g.impressions, g.clicks), (None, None, None));
                } else {
                    prop_assert!(
                        n >= i64::from(k),
                        "a group of {} < k = {} was released",
                        n,
                        k
                    );
                    prop_assert_eq!(g.users, Some(n));
                    prop_assert_eq!((g.impressions, g.clicks), (Some(*imps), Some(*clicks)));
                }
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    drop(signals);
    env.finish().await;
}

async fn bad_ad_input_is_refused_with_stable_codes(env: Env) {
    env.catalog().await;
    let s = env.app.signals.as_ref();
    let c = env.app.catalog.as_ref();
    for bad in ["x".repeat(65), "a\u{0}b".to_owned()] {
        match s.ad_slot(c, None, false, Some(&bad), &plain()).await {
            Err(custos_app::AppError::BadRequest { code, .. }) => {
                assert_eq!(code, "invalid_context")
            }
            other => panic!("expected invalid_context, got {other:?}"),
        }
    }
    assert!(matches!(
        s.ad_click(c, None, 999_999, false, &plain()).await,
        Err(custos_app::AppError::NotFound)
    ));
    env.finish().await;
}
