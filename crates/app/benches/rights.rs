//! Rights benchmarks (issue 6), each beside an in-run baseline on the same database:
//!
//! - `export_100k_events`: the background export's work for a subject with 100,000
//!   service-log events (build the document, serialize it, render the HTML summary, seal
//!   both), against a raw `SELECT` of the same 100,000 rows.
//! - `erasure_100k_events`: carrying out a due cancellation of an account with 100,000
//!   analytics events (crypto-shred the key, delete its rows, delete the events), and of
//!   one with 100,000 security-log events (kept by law, so unlinked by an `UPDATE`),
//!   against a raw `DELETE` and a raw `UPDATE` of as many rows.
//! - `small_export`: one self-service export (`Rights::export`: an answered access ticket
//!   and the document) of a subject with a handful of rows, one at a time and 16 at once,
//!   against the raw `SELECT`s of the same rows.
//!
//! Run: `cargo bench -p custos-app --bench rights -- --warm-up-time 1 --measurement-time 5`
//! The PostgreSQL half uses fresh databases from `custos_testkit::postgres_database` and is
//! skipped when no server answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use custos_app::config::MasterKeySource;
use custos_app::consent::DecisionInput;
use custos_app::identity::Reauthenticated;
use custos_app::signals::{EVENTS_DOMAIN, LOGS_PURPOSE};
use custos_app::{App, Config};
use custos_core::{Clock, ConsentMethod, Decision, FakeClock, GateContext, SubjectId};
use custos_crypto::{MasterKey, OsRng};
use custos_store::signals::StoredEvent;
use custos_store::{on_db, Db};
use tokio::runtime::Runtime;

const EVENTS: usize = 100_000;

struct Env {
    app: App,
    clock: Arc<FakeClock>,
    _dir: tempfile::TempDir,
}

async fn open(pg: bool) -> Option<Env> {
    let dir = tempfile::tempdir().unwrap();
    let (db, vault) = if pg {
        (
            custos_testkit::postgres_database().await?,
            custos_testkit::postgres_database().await?,
        )
    } else {
        (
            format!("sqlite://{}", dir.path().join("custos.db").display()),
            format!("sqlite://{}", dir.path().join("keys.db").display()),
        )
    };
    let cfg = Config {
        data_dir: dir.path().to_path_buf(),
        database_url: db,
        vault_url: vault,
        master_key: MasterKeySource::Inline(MasterKey::generate(&mut OsRng).to_base64()),
        ..Default::default()
    };
    let clock = Arc::new(FakeClock::default());
    let app = App::open(&cfg, clock.clone()).await.unwrap();
    app.catalog
        .import_text(
            "external_id,title_zh,title_en,description_zh,description_en,category,tags,price_min,price_max,currency\n\
             sku-1,夏季连衣裙,Summer dress,轻薄透气,Light and airy,clothing,summer,199,259,CNY\n",
            custos_app::catalog::input::Format::Csv,
            false,
            &mut |_| {},
        )
        .await
        .unwrap();
    Some(Env {
        app,
        clock,
        _dir: dir,
    })
}

impl Env {
    fn pseudonym(&self, s: SubjectId) -> [u8; 16] {
        self.app
            .kernel
            .ring
            .pseudonym(EVENTS_DOMAIN, s.to_string().as_bytes())
    }

    async fn events(&self, s: SubjectId, n: usize) {
        self.events_for(s, n, LOGS_PURPOSE).await
    }

    async fn events_for(&self, s: SubjectId, n: usize, purpose: &str) {
        let pseudonym = self.pseudonym(s);
        let now = self.clock.now_ms();
        let rows: Vec<StoredEvent> = (0..n)
            .map(|i| StoredEvent {
                pseudonym,
                purpose: purpose.into(),
                kind: ["browse", "click", "search"][i % 3].into(),
                target: Some(format!("item-{}", i % 500)),
                ip_prefix: Some("203.0.113.0".into()),
                carrier: Some("China Mobile".into()),
                language: Some("zh-CN".into()),
                at_ms: now - 1_000 - i as i64,
                expires_at_ms: Some(now + 180 * 86_400_000),
            })
            .collect();
        self.app.signals.events.append(&rows).await.unwrap();
    }

    /// A subject with a handful of rows: two consents, a bookmark, a comment, a trait,
    /// ten events.
    async fn small_subject(&self) -> SubjectId {
        let s = SubjectId::random();
        let ctx = GateContext::default();
        for p in ["personalized_feed", LOGS_PURPOSE] {
            self.app
                .kernel
                .record_decisions(
                    s,
                    false,
                    &[DecisionInput {
                        purpose: p.into(),
                        decision: Decision::Given,
                    }],
                    ConsentMethod::Dialog,
                )
                .await
                .unwrap();
        }
        self.app
            .catalog
            .bookmark(s, &ctx, 1, Some("夏天"))
            .await
            .unwrap();
        self.app
            .catalog
            .comment(s, &ctx, 1, "好看", false)
            .await
            .unwrap();
        self.app
            .signals
            .add_affinity(s, "tag:summer", 1.0, &ctx)
            .await
            .unwrap();
        self.events(s, 10).await;
        s
    }

    async fn proof(&self, s: SubjectId) -> Reauthenticated {
        let id = &self.app.identity;
        let t = id.create_session(s, true).await.unwrap();
        let auth = id.authenticate(t.token.expose()).await.unwrap();
        id.reauthenticated(&auth).unwrap()
    }
}

/// The background export's work, without the job bookkeeping.
async fn export_work(env: &Env, s: SubjectId) -> usize {
    let doc = env.app.rights.export_document(s, None).await.unwrap();
    let json = serde_json::to_vec(&doc).unwrap();
    let html = custos_app::rights::export_html(&doc);
    let key = env
        .app
        .kernel
        .vault
        .get_or_create(s, env.clock.now_ms())
        .await
        .unwrap();
    let c = key.cipher();
    let a = c.seal(b"bench/json", &json, &mut OsRng);
    let b = c.seal(b"bench/html", html.as_bytes(), &mut OsRng);
    a.len() + b.len()
}

async fn raw_select(db: &Db, pseudonym: &[u8; 16]) -> usize {
    type Row = (
        i64,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
        Option<i64>,
    );
    let rows: Vec<Row> = on_db!(db, p => sqlx::query_as(
        "SELECT id, purpose, kind, target, ip_prefix, carrier, language, at_ms, expires_at \
         FROM service_events WHERE pseudonym = $1 ORDER BY id")
        .bind(pseudonym.to_vec()).fetch_all(p).await.unwrap());
    rows.len()
}

fn backends() -> [(&'static str, bool); 2] {
    [("sqlite", false), ("postgres", true)]
}

fn export_100k(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let mut g = c.benchmark_group("export_100k_events");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(EVENTS as u64));
    for (name, pg) in backends() {
        let Some(env) = rt.block_on(open(pg)) else {
            eprintln!("skipping {name}: no database");
            continue;
        };
        let s = rt.block_on(async {
            let s = env.small_subject().await;
            env.events(s, EVENTS - 10).await;
            s
        });
        let pseudonym = env.pseudonym(s);
        g.bench_function(
            BenchmarkId::new("custos_export_build_serialize_seal", name),
            |b| b.to_async(&rt).iter(|| export_work(&env, s)),
        );
        g.bench_function(
            BenchmarkId::new("baseline_raw_select_same_rows", name),
            |b| {
                b.to_async(&rt)
                    .iter(|| raw_select(&env.app.kernel.db, &pseudonym))
            },
        );
        rt.block_on(env.app.shutdown());
    }
    g.finish();
}

fn erasure_100k(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let mut g = c.benchmark_group("erasure_100k_events");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    for (name, pg) in backends() {
        let Some(env) = rt.block_on(open(pg)) else {
            eprintln!("skipping {name}: no database");
            continue;
        };
        let db = env.app.kernel.db.clone();
        // Each sample: a fresh account with 100k events whose cooling-off just ended.
        let prepare = |env: &Env, purpose: &'static str| {
            rt.block_on(async {
                let s = env.small_subject().await;
                env.events_for(s, EVENTS - 10, purpose).await;
                let who = env.proof(s).await;
                env.app.rights.request_cancellation(&who).await.unwrap();
                env.clock.advance(time::Duration::days(8));
                s
            })
        };
        g.bench_function(
            BenchmarkId::new("custos_erase_crypto_shred_and_unlink", name),
            |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        prepare(&env, LOGS_PURPOSE);
                        let t = Instant::now();
                        let done = rt.block_on(env.app.rights.run_due_cancellations()).unwrap();
                        total += t.elapsed();
                        assert_eq!(done.len(), 1);
                    }
                    total
                })
            },
        );
        // Security-log events are kept by law: erasure unlinks them (an UPDATE) instead.
        g.bench_function(
            BenchmarkId::new("custos_erase_100k_security_events_unlinked", name),
            |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        prepare(&env, "security");
                        let t = Instant::now();
                        let done = rt.block_on(env.app.rights.run_due_cancellations()).unwrap();
                        total += t.elapsed();
                        assert_eq!(done.len(), 1);
                        rt.block_on(async {
                            on_db!(&db, p => sqlx::query("DELETE FROM service_events WHERE purpose = 'security'")
                                .execute(p).await.unwrap().rows_affected())
                        });
                    }
                    total
                })
            },
        );
        g.bench_function(BenchmarkId::new("baseline_raw_update_same_rows", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let s = SubjectId::random();
                    rt.block_on(env.events(s, EVENTS));
                    let from = env.pseudonym(s);
                    let to = *SubjectId::random().as_bytes();
                    let t = Instant::now();
                    rt.block_on(async {
                        on_db!(&db, p => sqlx::query(
                            "UPDATE service_events SET pseudonym = $1, expires_at = $2 WHERE pseudonym = $3")
                            .bind(to.to_vec()).bind(0i64).bind(from.to_vec()).execute(p).await.unwrap().rows_affected())
                    });
                    total += t.elapsed();
                    rt.block_on(env.app.signals.purge_expired_events()).unwrap();
                }
                total
            })
        });
        g.bench_function(BenchmarkId::new("baseline_raw_delete_same_rows", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let s = SubjectId::random();
                    rt.block_on(env.events(s, EVENTS));
                    let from = env.pseudonym(s);
                    let t = Instant::now();
                    rt.block_on(async {
                        on_db!(&db, p => sqlx::query("DELETE FROM service_events WHERE pseudonym = $1")
                            .bind(from.to_vec()).execute(p).await.unwrap().rows_affected())
                    });
                    total += t.elapsed();
                }
                total
            })
        });
        rt.block_on(env.app.shutdown());
    }
    g.finish();
}

async fn raw_small(db: &Db, s: SubjectId, pseudonym: &[u8; 16]) -> usize {
    let b = s.as_bytes().to_vec();
    let mut n = 0;
    for sql in [
        "SELECT COUNT(*) FROM bookmarks WHERE subject = $1",
        "SELECT COUNT(*) FROM comments WHERE subject = $1",
        "SELECT COUNT(*) FROM downloads WHERE subject = $1",
        "SELECT COUNT(*) FROM shares WHERE subject = $1",
        "SELECT COUNT(*) FROM rights_tickets WHERE subject = $1",
    ] {
        let (k,): (i64,) =
            on_db!(db, p => sqlx::query_as(sql).bind(b.clone()).fetch_one(p).await.unwrap());
        n += k;
    }
    let (k,): (i64,) = on_db!(db, p => sqlx::query_as(
        "SELECT COUNT(*) FROM consent_ledger WHERE subject = $1")
        .bind(b.clone()).fetch_one(p).await.unwrap());
    n += k;
    let (k,): (i64,) = on_db!(db, p => sqlx::query_as(
        "SELECT COUNT(*) FROM personal_fields WHERE subject = $1")
        .bind(s.to_string()).fetch_one(p).await.unwrap());
    n += k;
    let (k,): (i64,) = on_db!(db, p => sqlx::query_as(
        "SELECT COUNT(*) FROM service_events WHERE pseudonym = $1")
        .bind(pseudonym.to_vec()).fetch_one(p).await.unwrap());
    n += k;
    n as usize
}

fn small_export(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let mut g = c.benchmark_group("small_export");
    for (name, pg) in backends() {
        let Some(env) = rt.block_on(open(pg)) else {
            eprintln!("skipping {name}: no database");
            continue;
        };
        let env = Arc::new(env);
        let subjects: Vec<SubjectId> = rt.block_on(async { futures_join(&env, 16).await });
        let proofs: Vec<Reauthenticated> = rt.block_on(async {
            let mut v = Vec::new();
            for s in &subjects {
                v.push(env.proof(*s).await);
            }
            v
        });
        let proofs = Arc::new(proofs);
        let db = env.app.kernel.db.clone();
        // Each export answers an access ticket; they are deleted between timed runs so the
        // subjects keep a handful of rows.
        let forget_tickets = || {
            rt.block_on(async {
                on_db!(&db, p => {
                    sqlx::query("DELETE FROM rights_ticket_events").execute(p).await.unwrap();
                    sqlx::query("DELETE FROM rights_tickets").execute(p).await.unwrap();
                })
            })
        };
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("custos_export_one_at_a_time", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let t = Instant::now();
                    rt.block_on(env.app.rights.export(&proofs[(i % 16) as usize]))
                        .unwrap();
                    total += t.elapsed();
                    if i % 64 == 63 {
                        forget_tickets();
                    }
                }
                forget_tickets();
                total
            })
        });
        g.bench_function(
            BenchmarkId::new("baseline_raw_selects_same_rows", name),
            |b| {
                let p = env.pseudonym(subjects[0]);
                b.to_async(&rt)
                    .iter(|| raw_small(&env.app.kernel.db, subjects[0], &p))
            },
        );
        g.throughput(Throughput::Elements(16));
        g.bench_function(BenchmarkId::new("custos_export_16_at_once", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let t = Instant::now();
                    rt.block_on(async {
                        let mut set = tokio::task::JoinSet::new();
                        for k in 0..16 {
                            let env = env.clone();
                            let proofs = proofs.clone();
                            set.spawn(
                                async move { env.app.rights.export(&proofs[k]).await.unwrap() },
                            );
                        }
                        while let Some(r) = set.join_next().await {
                            r.unwrap();
                        }
                    });
                    total += t.elapsed();
                    if i % 4 == 3 {
                        forget_tickets();
                    }
                }
                forget_tickets();
                total
            })
        });
        rt.block_on(env.app.shutdown());
    }
    g.finish();
}

async fn futures_join(env: &Env, n: usize) -> Vec<SubjectId> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(env.small_subject().await);
    }
    v
}

criterion_group!(benches, export_100k, erasure_100k, small_export);
criterion_main!(benches);
