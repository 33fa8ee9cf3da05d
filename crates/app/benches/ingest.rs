//! Service-log ingest and the feed, in process, on SQLite and PostgreSQL.
//!
//! - `ingest_<backend>/signals_ingest`: `Signals::ingest` with batches of 1,000 events
//!   (validation, the purpose gate per category, pseudonym, IP truncation, one multi-row
//!   INSERT) for a subject that consented to service logs;
//!   `ingest_<backend>/signals_ingest_with_profile`: the same subject also consented to
//!   personalization, so each batch also updates its traits (one write per distinct
//!   trait); `ingest_<backend>/baseline_raw_insert_plain_table`: the same 1,000 rows as
//!   the ingest stores them, pre-built, in one multi-row INSERT into a plain table without
//!   indexes of the same database. One element is one event.
//! - `feed_1m_events/…`: one feed page of 20 for a personalized subject and for an
//!   anonymous caller, after 1,000,000 events were stored (through `EventStore::append`),
//!   with 10,000 catalog items; the baseline is the plain catalog search of the same page
//!   (served from the page cache, as a repeated plain search is), beside the two parts of
//!   the personalized page: the boosted search alone and the profile read alone.
//!
//! Run: `cargo bench -p custos-app --bench ingest -- --warm-up-time 1 --measurement-time 5`
//! (`INGEST_BENCH_GROUPS=sqlite` or any of `sqlite,postgres,feed` runs only those groups).
//!
//! The PostgreSQL groups run on fresh databases from `custos_testkit::postgres_database`
//! and are skipped with a message when no server answers.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use custos_app::catalog::input::ItemInput;
use custos_app::config::MasterKeySource;
use custos_app::consent::DecisionInput;
use custos_app::signals::{truncate_ip, EventInput, EVENTS_DOMAIN, LOGS_PURPOSE};
use custos_app::{App, Config};
use custos_core::{Clock, ConsentMethod, Decision, FakeClock, GateContext, SubjectId};
use custos_crypto::{MasterKey, OsRng};
use custos_search::{Filters, SearchRequest, Sort};
use custos_store::signals::StoredEvent;
use custos_store::{on_db, Backend, Db};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::runtime::Runtime;

const BATCH: usize = 1_000;
const KINDS: [&str; 6] = ["browse", "click", "search", "bookmark", "share", "download"];
const CARRIERS: [&str; 3] = ["China Mobile", "China Unicom", "China Telecom"];

async fn open(dir: &std::path::Path, pg: Option<(String, String)>, clock: Arc<FakeClock>) -> App {
    let cfg = Config {
        data_dir: dir.to_path_buf(),
        database_url: pg
            .as_ref()
            .map(|p| p.0.clone())
            .unwrap_or_else(|| format!("sqlite://{}", dir.join("custos.db").display())),
        vault_url: pg
            .as_ref()
            .map(|p| p.1.clone())
            .unwrap_or_else(|| format!("sqlite://{}", dir.join("keys.db").display())),
        master_key: MasterKeySource::Inline(MasterKey::generate(&mut OsRng).to_base64()),
        policy: None,
        ..Default::default()
    };
    App::open(&cfg, clock).await.expect("open")
}

async fn consent(app: &App, s: SubjectId, purpose: &str) {
    app.kernel
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
        .expect("consent");
}

async fn import_items(app: &App, n: usize) -> Vec<i64> {
    let cats = ["clothing", "shoes", "home", "digital", "beauty", "sport"];
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(2_000) {
        let inputs = chunk
            .iter()
            .map(|i| ItemInput {
                title_zh: Some(format!("商品 {i}")),
                title_en: Some(format!("Item {i}")),
                category: Some(cats[i % cats.len()].into()),
                tags: vec![format!("t{}", i % 50), format!("s{}", i % 7)],
                price_min: Some(serde_json::json!(10 + i % 500)),
                ..Default::default()
            })
            .collect();
        ids.extend(
            app.catalog
                .import_inputs(inputs, false)
                .await
                .expect("import")
                .ids,
        );
    }
    ids
}

/// A batch as a client sends it: mixed kinds about catalog items, with the client's
/// address, carrier and language, within the last minute.
fn batch(now: i64, items: &[i64], rng: &mut StdRng) -> Vec<EventInput> {
    (0..BATCH)
        .map(|i| {
            let kind = KINDS[i % KINDS.len()];
            EventInput {
                kind: kind.into(),
                at_ms: now - rng.gen_range(0..60_000),
                target: Some(if kind == "search" {
                    "连衣裙 summer".into()
                } else {
                    // A session looks at a few dozen items.
                    items[rng.gen_range(0..40.min(items.len()))].to_string()
                }),
                ip: Some(format!("203.0.{}.{}", rng.gen::<u8>(), rng.gen::<u8>())),
                carrier: Some(CARRIERS[i % 3].into()),
                language: Some("zh-CN".into()),
            }
        })
        .collect()
}

/// The rows the ingest would store for `batch`, pre-built (the raw baseline's input).
fn stored_rows(app: &App, s: SubjectId, batch: &[EventInput]) -> Vec<StoredEvent> {
    let pseudonym = app
        .kernel
        .ring
        .pseudonym(EVENTS_DOMAIN, s.to_string().as_bytes());
    batch
        .iter()
        .map(|e| StoredEvent {
            pseudonym,
            purpose: LOGS_PURPOSE.into(),
            kind: e.kind.clone(),
            target: e.target.clone(),
            ip_prefix: e
                .ip
                .as_deref()
                .map(|ip| truncate_ip(ip.parse().expect("ip")).to_string()),
            carrier: e.carrier.clone(),
            language: e.language.clone(),
            at_ms: e.at_ms,
            expires_at_ms: Some(e.at_ms + 90 * 86_400_000),
        })
        .collect()
}

const PLAIN: &str = "bench_plain_events";
const COLUMNS: &str =
    "pseudonym, purpose, kind, target, ip_prefix, carrier, language, at_ms, expires_at";

async fn create_plain(db: &Db) {
    let blob = match db.backend() {
        Backend::Sqlite => "BLOB",
        Backend::Postgres => "BYTEA",
    };
    let sql = format!(
        "CREATE TABLE {PLAIN} (pseudonym {blob} NOT NULL, purpose TEXT NOT NULL, \
         kind TEXT NOT NULL, target TEXT, ip_prefix TEXT, carrier TEXT, language TEXT, \
         at_ms BIGINT NOT NULL, expires_at BIGINT)"
    );
    on_db!(db, p => { sqlx::query(&sql).execute(p).await.expect("create"); });
}

fn plain_insert_sql(backend: Backend, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {PLAIN} ({COLUMNS}) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 1..=9 {
            if c > 1 {
                sql.push(',');
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => sql.push_str(&format!("${}", i * 9 + c)),
            }
        }
        sql.push(')');
    }
    sql
}

/// The baseline: the rows in one multi-row INSERT (one implicit transaction), as the
/// ingest writes them, into a table without indexes.
async fn raw_insert(db: &Db, sql: &str, rows: &[StoredEvent]) {
    on_db!(db, p => {
        let mut q = sqlx::query(sql);
        for e in rows {
            q = q
                .bind(&e.pseudonym[..])
                .bind(e.purpose.as_str())
                .bind(e.kind.as_str())
                .bind(e.target.as_deref())
                .bind(e.ip_prefix.as_deref())
                .bind(e.carrier.as_deref())
                .bind(e.language.as_deref())
                .bind(e.at_ms)
                .bind(e.expires_at_ms);
        }
        q.execute(p).await.expect("insert");
    })
}

/// A fresh batch a minute after the previous one: the clock moves on, so event times
/// grow as they do in service (an index on time sees appends, not inserts into its middle).
fn next_batch(
    app: &App,
    clock: &FakeClock,
    s: SubjectId,
    items: &[i64],
    rng: &mut StdRng,
) -> (Vec<EventInput>, Vec<StoredEvent>) {
    clock.advance(time::Duration::minutes(1));
    let events = batch(clock.now_ms(), items, rng);
    let rows = stored_rows(app, s, &events);
    (events, rows)
}

fn bench_ingest(c: &mut Criterion, rt: &Runtime, name: &str, pg: Option<(String, String)>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(FakeClock::default());
    let app = rt.block_on(open(dir.path(), pg.clone(), clock.clone()));
    let items = rt.block_on(import_items(&app, 200));
    let logs_only = SubjectId::random();
    let with_profile = SubjectId::random();
    rt.block_on(async {
        consent(&app, logs_only, LOGS_PURPOSE).await;
        consent(&app, with_profile, LOGS_PURPOSE).await;
        consent(&app, with_profile, "personalized_feed").await;
        create_plain(&app.kernel.db).await;
    });
    let mut rng = StdRng::seed_from_u64(0x5_1a_15);
    let sql = plain_insert_sql(app.kernel.db.backend(), BATCH);
    let ctx = GateContext::default();
    let ip = Some("198.51.100.7".parse().expect("ip"));
    let mut g = c.benchmark_group(format!("ingest_{name}"));
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("baseline_raw_insert_plain_table", |b| {
        b.to_async(rt).iter_batched(
            || next_batch(&app, &clock, logs_only, &items, &mut rng).1,
            |rows| {
                let (db, sql) = (&app.kernel.db, &sql);
                async move { raw_insert(db, sql, &rows).await }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("store_append_service_events", |b| {
        b.to_async(rt).iter_batched(
            || next_batch(&app, &clock, logs_only, &items, &mut rng).1,
            |rows| {
                let events = &app.signals.events;
                async move { events.append(&rows).await.expect("append") }
            },
            BatchSize::SmallInput,
        )
    });
    for (bench, subject) in [
        ("signals_ingest", logs_only),
        ("signals_ingest_with_profile", with_profile),
    ] {
        g.bench_function(bench, |b| {
            b.to_async(rt).iter_batched(
                || next_batch(&app, &clock, subject, &items, &mut rng).0,
                |events| {
                    let (signals, ctx) = (&app.signals, &ctx);
                    async move {
                        let out = signals
                            .ingest(Some(subject), ip, &events, ctx)
                            .await
                            .expect("ingest");
                        assert_eq!(out.accepted, BATCH as u64);
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
    rt.block_on(app.shutdown());
    if let Some((a, b)) = pg {
        rt.block_on(custos_testkit::drop_postgres_database(&a));
        rt.block_on(custos_testkit::drop_postgres_database(&b));
    }
}

fn bench_feed(c: &mut Criterion, rt: &Runtime) {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = rt.block_on(open(dir.path(), None, Arc::new(FakeClock::default())));
    let items = rt.block_on(import_items(&app, 10_000));
    let fan = SubjectId::random();
    let now = app.kernel.clock.now_ms();
    let mut rng = StdRng::seed_from_u64(0xfeed);
    rt.block_on(async {
        consent(&app, fan, LOGS_PURPOSE).await;
        consent(&app, fan, "personalized_feed").await;
        // The fan's own history goes through the ingest (and builds the profile) …
        for _ in 0..10 {
            let b = batch(now, &items[..500], &mut rng);
            app.signals
                .ingest(Some(fan), None, &b, &GateContext::default())
                .await
                .expect("ingest");
        }
        // … the rest of the million straight into the store, from 5,000 pseudonyms.
        let mut left = 1_000_000 - 10 * BATCH;
        while left > 0 {
            let s = SubjectId::random();
            let b = batch(now, &items, &mut rng);
            let mut rows = stored_rows(&app, s, &b);
            rows.truncate(left.min(BATCH));
            left -= rows.len();
            app.signals.events.append(&rows).await.expect("append");
        }
        assert_eq!(app.signals.events.count().await.expect("count"), 1_000_000);
    });
    let traits = rt.block_on(app.signals.traits(fan)).expect("traits").len();
    eprintln!("feed bench: 1,000,000 events stored, 10,000 items, the fan has {traits} traits");
    let ctx = GateContext::default();
    let plain = SearchRequest {
        q: None,
        filters: Filters::default(),
        sort: Some(Sort::Newest),
        cursor: None,
        limit: 20,
    };
    let mut g = c.benchmark_group("feed_1m_events");
    g.bench_function("baseline_catalog_search_newest", |b| {
        b.to_async(rt)
            .iter(|| async { app.catalog.search(&plain).await.expect("search") })
    });
    g.bench_function("feed_plain_anonymous", |b| {
        b.to_async(rt).iter(|| async {
            let out = app
                .signals
                .feed(&app.catalog, None, &ctx, None, 20)
                .await
                .expect("feed");
            assert!(!out.personalized);
        })
    });
    // The ranking alone: the same boosted search with the profile already in hand.
    let traits = rt.block_on(app.signals.traits(fan)).expect("traits");
    let boosts = custos_app::signals::profile::boosts(&traits);
    let ranked = SearchRequest {
        sort: Some(Sort::Relevance),
        ..plain.clone()
    };
    g.bench_function("boosted_search_without_profile_read", |b| {
        b.to_async(rt).iter(|| async {
            app.catalog
                .search_boosted(&ranked, Some(&boosts))
                .await
                .expect("search")
        })
    });
    g.bench_function("profile_read_only", |b| {
        b.to_async(rt)
            .iter(|| async { app.signals.traits(fan).await.expect("traits") })
    });
    g.bench_function("feed_personalized", |b| {
        b.to_async(rt).iter(|| async {
            let out = app
                .signals
                .feed(&app.catalog, Some(fan), &ctx, None, 20)
                .await
                .expect("feed");
            assert!(out.personalized);
        })
    });
    g.finish();
    rt.block_on(app.shutdown());
}

/// Whether a group runs: `INGEST_BENCH_GROUPS=sqlite,postgres,feed` (the default: all)
/// skips the setup of the others too (the feed's million events take a while).
fn wanted(group: &str) -> bool {
    std::env::var("INGEST_BENCH_GROUPS")
        .map(|v| v.split(',').any(|g| g.trim() == group))
        .unwrap_or(true)
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if wanted("sqlite") {
        bench_ingest(c, &rt, "sqlite", None);
    }
    if wanted("postgres") {
        let pg = rt.block_on(async {
            let data = custos_testkit::postgres_database().await?;
            let vault = custos_testkit::postgres_database().await?;
            Some((data, vault))
        });
        match pg {
            Some(pg) => bench_ingest(c, &rt, "postgres", Some(pg)),
            None => eprintln!("PostgreSQL is not reachable: skipping the PostgreSQL ingest group"),
        }
    }
    if wanted("feed") {
        bench_feed(c, &rt);
    }
}

criterion_group!(ingest, benches);
criterion_main!(ingest);
