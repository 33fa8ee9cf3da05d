//! Preference profiles, segments, the feed and personalized search through their use
//! cases, on SQLite and PostgreSQL: traits derived from consented item events (aggregated
//! per batch), lineage-based deletion on withdrawal, segments from configured rules,
//! ranking only under consent and the switch with no profile read otherwise, and the same
//! prices and terms for every profile. P10, P12, L5, L13.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use custos_app::catalog::input::ItemInput;
use custos_app::config::MasterKeySource;
use custos_app::consent::DecisionInput;
use custos_app::signals::profile::{Condition, SegmentConfig};
use custos_app::signals::{EventInput, SignalsConfig};
use custos_app::{App, Config};
use custos_core::{ConsentMethod, Decision, FakeClock, GateContext, SubjectId};
use custos_crypto::{MasterKey, OsRng};
use custos_search::{Filters, SearchRequest, Sort};

struct Env {
    app: App,
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
    /// Item ids: [0] and [1] are `clothing` dresses, [2] is `shoes`, the rest `home`.
    items: Vec<i64>,
}

fn config(dir: &std::path::Path, pg: Option<&(String, String)>) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        database_url: pg
            .map(|p| p.0.clone())
            .unwrap_or_else(|| format!("sqlite://{}", dir.join("custos.db").display())),
        vault_url: pg
            .map(|p| p.1.clone())
            .unwrap_or_else(|| format!("sqlite://{}", dir.join("keys.db").display())),
        master_key: MasterKeySource::Inline(MasterKey::generate(&mut OsRng).to_base64()),
        policy: None,
        signals: SignalsConfig {
            segments: vec![
                segment("dress_fans", &[("tag:dress", 3.0)]),
                segment("shoe_fans", &[("category:shoes", 1.0)]),
            ],
            ..Default::default()
        },
        ..Default::default()
    }
}

fn segment(id: &str, rule: &[(&str, f64)]) -> SegmentConfig {
    SegmentConfig {
        id: id.into(),
        name: format!("{id} (name)"),
        rule: rule
            .iter()
            .map(|(k, min)| Condition {
                key: (*k).into(),
                min: *min,
            })
            .collect(),
    }
}

fn item(title: &str, category: &str, tags: &[&str], price: u32) -> ItemInput {
    ItemInput {
        title_zh: Some(format!("{title}（中）")),
        title_en: Some(title.into()),
        category: Some(category.into()),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        price_min: Some(serde_json::json!(price)),
        ..Default::default()
    }
}

impl Env {
    async fn open(pg: Option<(String, String)>) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), pg.as_ref());
        let app = App::open(&cfg, Arc::new(FakeClock::default()))
            .await
            .unwrap();
        let mut inputs = vec![
            item("Floral dress", "clothing", &["dress", "summer"], 89),
            item("Silk dress", "clothing", &["dress"], 299),
            item("Running shoes", "shoes", &["sport"], 399),
        ];
        inputs.extend((0..27).map(|i| item(&format!("Lamp {i}"), "home", &["light"], 50 + i)));
        let items = app.catalog.import_inputs(inputs, false).await.unwrap().ids;
        Env {
            app,
            _dir: dir,
            pg,
            items,
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
    fn event(&self, kind: &str, target: &str) -> EventInput {
        EventInput {
            kind: kind.into(),
            at_ms: self.app.kernel.clock.now_ms() - 1_000,
            target: Some(target.into()),
            ip: None,
            carrier: None,
            language: None,
        }
    }
    /// A subject that consented to both purposes and likes dresses: item 0 (a `summer`
    /// dress too) ranks first for it, then item 1.
    async fn dress_fan(&self) -> SubjectId {
        let s = SubjectId::random();
        self.decide(s, "service_logs_analytics", Decision::Given)
            .await;
        self.decide(s, "personalized_feed", Decision::Given).await;
        let batch = vec![
            self.event("click", &self.items[0].to_string()),
            self.event("bookmark", &format!("item:{}", self.items[1])),
        ];
        self.app
            .signals
            .ingest(Some(s), None, &batch, &GateContext::default())
            .await
            .unwrap();
        s
    }
    fn weights(traits: &[custos_app::signals::Trait]) -> BTreeMap<String, f64> {
        traits.iter().map(|t| (t.key.clone(), t.weight)).collect()
    }
    async fn feed_ids(&self, s: Option<SubjectId>, limit: usize) -> (Vec<i64>, bool) {
        let out = self
            .app
            .signals
            .feed(&self.app.catalog, s, &GateContext::default(), None, limit)
            .await
            .unwrap();
        (ids_of(&out.items), out.personalized)
    }
}

fn ids_of(items: &[Arc<str>]) -> Vec<i64> {
    items
        .iter()
        .map(|j| {
            serde_json::from_str::<serde_json::Value>(j).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect()
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
    traits_are_derived_from_consented_item_events_summed_once_per_distinct_trait,
    without_personalization_consent_or_with_the_switch_off_no_trait_is_derived,
    withdrawing_personalization_deletes_its_traits_and_withdrawing_logs_deletes_the_events,
    feed_and_search_rank_by_traits_only_when_personalized_and_read_no_profile_otherwise,
    two_profiles_see_the_same_items_prices_and_terms_in_another_order,
    feed_pages_cover_every_item_once_and_bad_feed_input_is_refused,
    segments_follow_the_traits_and_are_empty_without_personalization,
);

async fn traits_are_derived_from_consented_item_events_summed_once_per_distinct_trait(env: Env) {
    let sig = &env.app.signals;
    let ctx = GateContext::default();
    let s = SubjectId::random();
    env.decide(s, "personalized_feed", Decision::Given).await;
    let (a, b, shoes) = (env.items[0], env.items[1], env.items[2]);
    let mut batch: Vec<EventInput> = (0..5).map(|_| env.event("click", &a.to_string())).collect();
    batch.push(env.event("bookmark", &format!("item-{b}")));
    batch.push(env.event("share", &format!("item:{shoes}")));
    // Not about an item, or about no item that exists: no trait.
    batch.push(env.event("search", "dress"));
    batch.push(env.event("browse", "999999"));
    batch.push(env.event("click", "banner-3"));
    // One write per distinct trait: category:clothing, tag:dress, tag:summer,
    // category:shoes, tag:sport.
    assert_eq!(sig.derive_traits(s, &batch, &ctx).await.unwrap(), 5);
    let w = Env::weights(&sig.traits(s).await.unwrap());
    let want: BTreeMap<String, f64> = [
        ("category:clothing", 8.0),
        ("tag:dress", 8.0),
        ("tag:summer", 5.0),
        ("category:shoes", 2.0),
        ("tag:sport", 2.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(w, want);
    // Through ingest (service logs not consented: the events are dropped, but traits are
    // derived under their own purpose, which declares browsing), added incrementally.
    let out = sig.ingest(Some(s), None, &batch[..1], &ctx).await.unwrap();
    assert_eq!((out.accepted, out.dropped_unconsented), (0, 1));
    let w = Env::weights(&sig.traits(s).await.unwrap());
    assert_eq!(w["tag:dress"], 9.0);
    assert_eq!(w["tag:sport"], 2.0);
    let traits = sig.traits(s).await.unwrap();
    assert!(traits.iter().all(|t| t.purpose == "personalized_feed"));
    // Another subject's profile is untouched.
    assert!(sig.traits(SubjectId::random()).await.unwrap().is_empty());
    env.finish().await;
}

async fn without_personalization_consent_or_with_the_switch_off_no_trait_is_derived(env: Env) {
    let sig = &env.app.signals;
    let ctx = GateContext::default();
    let batch = vec![env.event("click", &env.items[0].to_string())];
    // Service logs only: the event is stored, no trait derived.
    let s = SubjectId::random();
    env.decide(s, "service_logs_analytics", Decision::Given)
        .await;
    let out = sig.ingest(Some(s), None, &batch, &ctx).await.unwrap();
    assert_eq!(out.accepted, 1);
    assert!(sig.traits(s).await.unwrap().is_empty());
    assert_eq!(sig.derive_traits(s, &batch, &ctx).await.unwrap(), 0);
    // Refused: nothing.
    env.decide(s, "personalized_feed", Decision::Refused).await;
    sig.ingest(Some(s), None, &batch, &ctx).await.unwrap();
    assert!(sig.traits(s).await.unwrap().is_empty());
    // Consented but switched off: nothing; back on: derived.
    env.decide(s, "personalized_feed", Decision::Given).await;
    sig.set_personalization_enabled(s, false).await.unwrap();
    sig.ingest(Some(s), None, &batch, &ctx).await.unwrap();
    assert!(sig.traits(s).await.unwrap().is_empty());
    sig.set_personalization_enabled(s, true).await.unwrap();
    sig.ingest(Some(s), None, &batch, &ctx).await.unwrap();
    assert_eq!(sig.traits(s).await.unwrap().len(), 3);
    // No subject (no identifier): nothing at all.
    let out = sig.ingest(None, None, &batch, &ctx).await.unwrap();
    assert_eq!(out.accepted, 0);
    env.finish().await;
}

async fn withdrawing_personalization_deletes_its_traits_and_withdrawing_logs_deletes_the_events(
    env: Env,
) {
    let sig = &env.app.signals;
    let s = env.dress_fan().await;
    let other = env.dress_fan().await;
    assert_eq!(sig.events_of(s).await.unwrap().len(), 2);
    assert!(!sig.traits(s).await.unwrap().is_empty());
    env.decide(s, "personalized_feed", Decision::Withdrawn)
        .await;
    assert!(
        sig.traits(s).await.unwrap().is_empty(),
        "every derived trait"
    );
    assert_eq!(sig.events_of(s).await.unwrap().len(), 2, "logs stay");
    env.decide(s, "service_logs_analytics", Decision::Withdrawn)
        .await;
    assert!(sig.events_of(s).await.unwrap().is_empty(), "events deleted");
    // The other subject keeps both.
    assert_eq!(sig.events_of(other).await.unwrap().len(), 2);
    assert_eq!(sig.traits(other).await.unwrap().len(), 3);
    assert_eq!(sig.events.count().await.unwrap(), 2);
    env.finish().await;
}

async fn feed_and_search_rank_by_traits_only_when_personalized_and_read_no_profile_otherwise(
    env: Env,
) {
    let sig = &env.app.signals;
    let ctx = GateContext::default();
    let (plain, personalized) = env.feed_ids(None, 5).await;
    assert!(!personalized);
    // Plain: newest first (the lamps were imported last).
    let newest: Vec<i64> = env.items.iter().rev().take(5).copied().collect();
    assert_eq!(plain, newest);
    let s = env.dress_fan().await;
    let reads = sig.profile_reads.load(Ordering::Relaxed);
    let (ids, personalized) = env.feed_ids(Some(s), 5).await;
    assert!(personalized);
    assert_eq!(sig.profile_reads.load(Ordering::Relaxed), reads + 1);
    assert_eq!(&ids[..2], &[env.items[0], env.items[1]], "dresses first");
    // Search by relevance: the dresses come first among items that match equally.
    let req = SearchRequest {
        q: None,
        filters: Filters::default(),
        sort: Some(Sort::Relevance),
        cursor: None,
        limit: 3,
    };
    let out = sig
        .search(&env.app.catalog, Some(s), &ctx, &req)
        .await
        .unwrap();
    assert!(out.personalized);
    assert_eq!(ids_of(&out.items)[..2], [env.items[0], env.items[1]]);
    assert_eq!(sig.profile_reads.load(Ordering::Relaxed), reads + 2);
    // Newest order is never personalized and reads nothing.
    let newest_req = SearchRequest {
        sort: Some(Sort::Newest),
        ..req.clone()
    };
    let out = sig
        .search(&env.app.catalog, Some(s), &ctx, &newest_req)
        .await
        .unwrap();
    assert!(!out.personalized);
    assert_eq!(sig.profile_reads.load(Ordering::Relaxed), reads + 2);
    // Switched off: the very next feed and search are plain, with no profile read.
    sig.set_personalization_enabled(s, false).await.unwrap();
    let (ids, personalized) = env.feed_ids(Some(s), 5).await;
    assert!(!personalized);
    assert_eq!(ids, newest);
    let out = sig
        .search(&env.app.catalog, Some(s), &ctx, &req)
        .await
        .unwrap();
    assert!(!out.personalized);
    assert_eq!(sig.profile_reads.load(Ordering::Relaxed), reads + 2);
    // On again, then withdrawn: likewise.
    sig.set_personalization_enabled(s, true).await.unwrap();
    assert!(env.feed_ids(Some(s), 5).await.1);
    env.decide(s, "personalized_feed", Decision::Withdrawn)
        .await;
    let reads = sig.profile_reads.load(Ordering::Relaxed);
    let (ids, personalized) = env.feed_ids(Some(s), 5).await;
    assert!(!personalized);
    assert_eq!(ids, newest);
    let out = sig
        .search(&env.app.catalog, Some(s), &ctx, &req)
        .await
        .unwrap();
    assert!(!out.personalized);
    assert_eq!(sig.profile_reads.load(Ordering::Relaxed), reads);
    env.finish().await;
}

async fn two_profiles_see_the_same_items_prices_and_terms_in_another_order(env: Env) {
    let sig = &env.app.signals;
    let ctx = GateContext::default();
    let dresses = env.dress_fan().await;
    let shoes = SubjectId::random();
    env.decide(shoes, "personalized_feed", Decision::Given)
        .await;
    let batch = vec![env.event("download", &env.items[2].to_string())];
    sig.derive_traits(shoes, &batch, &ctx).await.unwrap();
    let mut seen = Vec::new();
    for s in [dresses, shoes] {
        let out = sig
            .feed(&env.app.catalog, Some(s), &ctx, None, 100)
            .await
            .unwrap();
        assert!(out.personalized);
        let by_id: BTreeMap<i64, String> = out
            .items
            .iter()
            .map(|j| {
                let v: serde_json::Value = serde_json::from_str(j).unwrap();
                (v["id"].as_i64().unwrap(), j.to_string())
            })
            .collect();
        seen.push((ids_of(&out.items), by_id));
    }
    assert_eq!(seen[0].0[0], env.items[0]);
    assert_eq!(seen[1].0[0], env.items[2]);
    assert_ne!(seen[0].0, seen[1].0, "the order differs");
    // Same items, and each item's summary (prices, currency, every shown term) is
    // byte-for-byte the same for both profiles and for the plain feed.
    assert_eq!(seen[0].1, seen[1].1);
    let plain = sig
        .feed(&env.app.catalog, None, &ctx, None, 100)
        .await
        .unwrap();
    let plain: BTreeMap<i64, String> = plain
        .items
        .iter()
        .map(|j| (ids_of(std::slice::from_ref(j))[0], j.to_string()))
        .collect();
    assert_eq!(plain, seen[0].1);
    assert_eq!(plain.len(), env.items.len());
    env.finish().await;
}

async fn feed_pages_cover_every_item_once_and_bad_feed_input_is_refused(env: Env) {
    let sig = &env.app.signals;
    let ctx = GateContext::default();
    let s = env.dress_fan().await;
    let mut all = Vec::new();
    let mut cursor = None;
    let mut first_cursor = None;
    loop {
        let out = sig
            .feed(&env.app.catalog, Some(s), &ctx, cursor.clone(), 7)
            .await
            .unwrap();
        assert!(out.personalized);
        all.extend(ids_of(&out.items));
        first_cursor.get_or_insert(out.next_cursor.clone());
        match out.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(all.len(), env.items.len());
    assert_eq!(
        all.iter().copied().collect::<BTreeSet<i64>>(),
        env.items.iter().copied().collect::<BTreeSet<i64>>()
    );
    let first_cursor = first_cursor.flatten().unwrap();
    // Bad input: stable codes.
    for (cursor, limit, code) in [
        (Some("not-a-cursor".to_owned()), 10, "invalid_cursor"),
        (Some(format!("{first_cursor}x")), 10, "invalid_cursor"),
        (None, 0, "invalid_limit"),
        (None, 101, "invalid_limit"),
    ] {
        let e = sig
            .feed(&env.app.catalog, Some(s), &ctx, cursor, limit)
            .await
            .unwrap_err();
        assert_eq!(e.code(), code);
    }
    // A search's cursor is not a feed cursor.
    let req = SearchRequest {
        q: Some("lamp".into()),
        filters: Filters::default(),
        sort: None,
        cursor: None,
        limit: 2,
    };
    let search_cursor = env
        .app
        .catalog
        .search(&req)
        .await
        .unwrap()
        .next_cursor
        .unwrap();
    let e = sig
        .feed(&env.app.catalog, Some(s), &ctx, Some(search_cursor), 7)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_cursor");
    // Switched off mid-way: the personalized cursor starts the plain feed over.
    sig.set_personalization_enabled(s, false).await.unwrap();
    let out = sig
        .feed(&env.app.catalog, Some(s), &ctx, Some(first_cursor), 7)
        .await
        .unwrap();
    assert!(!out.personalized);
    let newest: Vec<i64> = env.items.iter().rev().take(7).copied().collect();
    assert_eq!(ids_of(&out.items), newest);
    env.finish().await;
}

async fn segments_follow_the_traits_and_are_empty_without_personalization(env: Env) {
    let sig = &env.app.signals;
    let ctx = GateContext::default();
    let s = env.dress_fan().await;
    // click (1) + bookmark (3) on dresses: tag:dress = 4 ≥ 3; no shoes yet.
    let ids = |v: Option<Vec<SegmentConfig>>| -> Option<Vec<String>> {
        v.map(|v| v.into_iter().map(|g| g.id).collect())
    };
    assert_eq!(
        ids(sig.segments_of(s, &ctx).await.unwrap()),
        Some(vec!["dress_fans".to_owned()])
    );
    sig.derive_traits(s, &[env.event("browse", &env.items[2].to_string())], &ctx)
        .await
        .unwrap();
    assert_eq!(
        ids(sig.segments_of(s, &ctx).await.unwrap()),
        Some(vec!["dress_fans".to_owned(), "shoe_fans".to_owned()])
    );
    sig.delete_trait(s, "tag:dress").await.unwrap();
    assert_eq!(
        ids(sig.segments_of(s, &ctx).await.unwrap()),
        Some(vec!["shoe_fans".to_owned()])
    );
    // Another subject with no traits is in none.
    let t = SubjectId::random();
    env.decide(t, "personalized_feed", Decision::Given).await;
    assert_eq!(ids(sig.segments_of(t, &ctx).await.unwrap()), Some(vec![]));
    // Off: none, and no profile read.
    sig.set_personalization_enabled(s, false).await.unwrap();
    let reads = sig.profile_reads.load(Ordering::Relaxed);
    assert_eq!(sig.segments_of(s, &ctx).await.unwrap(), None);
    assert_eq!(sig.profile_reads.load(Ordering::Relaxed), reads);
    env.finish().await;
}

#[tokio::test]
async fn a_bad_segment_configuration_stops_the_start_with_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), None);
    cfg.signals
        .segments
        .push(segment("dress_fans", &[("tag:x", 1.0)]));
    let e = App::open(&cfg, Arc::new(FakeClock::default()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("signals.segments[2] (id `dress_fans`)") && e.contains("unique"),
        "{e}"
    );
    // From the file, an unknown key in a segment is named too.
    let text = "[signals]\nsegments = [{ id = \"a\", name = \"A\", rule = [], colour = 1 }]\n";
    let e = toml::from_str::<custos_app::config::FileConfig>(text)
        .unwrap_err()
        .to_string();
    assert!(e.contains("colour"), "{e}");
}
