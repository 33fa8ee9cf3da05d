//! Consent-ledger appends on SQLite and PostgreSQL, against a raw multi-row INSERT of
//! rows of the same size into a plain table of the same database, measured in the same
//! run (1,000 rows per transaction, 100 rows per statement, as the ledger writes them).
//!
//! Run: `cargo bench -p custos-store --bench ledger -- --warm-up-time 1 --measurement-time 5`
//!
//! The PostgreSQL group runs on a fresh database made by `custos_testkit::postgres_database`
//! (server from `CUSTOS_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/postgres`)
//! and is skipped with a message when the server is unreachable. Throughput is reported
//! in elements per second; one element is one decision (one row).

use std::sync::atomic::{AtomicI64, Ordering};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use custos_core::{ConsentMethod, Decision, SubjectId};
use custos_store::db::Schema;
use custos_store::ledger::{self, NewDecision};
use custos_store::{on_db, Backend, Db};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::runtime::Runtime;

/// Rows per statement, as in the ledger.
const ROWS_PER_STATEMENT: usize = 100;
/// Rows per transaction of the raw baseline.
const BASELINE_ROWS: usize = 1_000;
/// Ledger batch sizes (decisions per `append`, one transaction each).
const BATCHES: [usize; 3] = [1, 100, 1_000];

/// One row as the ledger stores it: ~200 bytes of column data (36-byte subject and
/// receipt ids, 16-byte purpose, 64-hex-digit policy hash, two 32-byte hashes, ...).
struct RawRow {
    subject: String,
    purpose: String,
    decision: &'static str,
    policy_hash: String,
    method: &'static str,
    at_ms: i64,
    receipt_id: String,
    prev_hash: [u8; 32],
    hash: [u8; 32],
}

fn decisions(n: usize, policy_hash: &str, rng: &mut StdRng) -> Vec<NewDecision> {
    (0..n)
        .map(|_| NewDecision {
            subject: SubjectId::from_u128(rng.gen()),
            purpose: "personalized_ads".into(),
            decision: if rng.gen_bool(0.7) {
                Decision::Given
            } else {
                Decision::Refused
            },
            policy_hash: policy_hash.to_owned(),
            method: ConsentMethod::Dialog,
            receipt_id: uuid::Uuid::from_u128(rng.gen()),
            at_ms: 1_764_000_000_000,
        })
        .collect()
}

fn raw_rows(batch: &[NewDecision], rng: &mut StdRng) -> Vec<RawRow> {
    batch
        .iter()
        .map(|d| RawRow {
            subject: d.subject.to_string(),
            purpose: d.purpose.clone(),
            decision: d.decision.as_str(),
            policy_hash: d.policy_hash.clone(),
            method: d.method.as_str(),
            at_ms: d.at_ms,
            receipt_id: d.receipt_id.to_string(),
            prev_hash: rng.gen(),
            hash: rng.gen(),
        })
        .collect()
}

const COLUMNS: &str =
    "seq, subject, purpose, decision, policy_hash, method, at_ms, receipt_id, prev_hash, hash";

/// A table with the ledger's columns; `indexed` adds the ledger's primary key and
/// secondary indexes (no triggers, no head row, no hashing).
fn create_table_sql(backend: Backend, name: &str, indexed: bool) -> Vec<String> {
    let blob = match backend {
        Backend::Sqlite => "BLOB",
        Backend::Postgres => "BYTEA",
    };
    let pk = if indexed { " PRIMARY KEY" } else { "" };
    let mut sql = vec![format!(
        "CREATE TABLE {name} (seq BIGINT NOT NULL{pk}, subject TEXT NOT NULL, \
         purpose TEXT NOT NULL, decision TEXT NOT NULL, policy_hash TEXT NOT NULL, \
         method TEXT NOT NULL, at_ms BIGINT NOT NULL, receipt_id TEXT NOT NULL, \
         prev_hash {blob} NOT NULL, hash {blob} NOT NULL)"
    )];
    if indexed {
        sql.push(format!(
            "CREATE INDEX {name}_subject ON {name} (subject, seq)"
        ));
        sql.push(format!(
            "CREATE INDEX {name}_receipt ON {name} (receipt_id)"
        ));
    }
    sql
}

fn insert_sql(table: &str, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} ({COLUMNS}) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        let b = i * 10;
        sql.push('(');
        for c in 1..=10 {
            if c > 1 {
                sql.push(',');
            }
            sql.push_str(&format!("${}", b + c));
        }
        sql.push(')');
    }
    sql
}

/// The same statement with positional `?` placeholders (SQLite only).
fn qmark_insert_sql(table: &str, rows: usize) -> String {
    let group = format!("({})", ["?"; 10].join(","));
    format!(
        "INSERT INTO {table} ({COLUMNS}) VALUES {}",
        vec![group; rows].join(",")
    )
}

/// The baseline: one transaction of multi-row INSERTs with pre-built values.
async fn raw_insert(db: &Db, sql: &str, rows: &[RawRow], seq: &AtomicI64) {
    let base = seq.fetch_add(rows.len() as i64, Ordering::Relaxed);
    on_db!(db, pool => {
        let mut tx = pool.begin().await.expect("begin");
        for (c, chunk) in rows.chunks(ROWS_PER_STATEMENT).enumerate() {
            let mut q = sqlx::query(sql);
            for (i, r) in chunk.iter().enumerate() {
                q = q
                    .bind(base + (c * ROWS_PER_STATEMENT + i) as i64 + 1)
                    .bind(r.subject.as_str())
                    .bind(r.purpose.as_str())
                    .bind(r.decision)
                    .bind(r.policy_hash.as_str())
                    .bind(r.method)
                    .bind(r.at_ms)
                    .bind(r.receipt_id.as_str())
                    .bind(&r.prev_hash[..])
                    .bind(&r.hash[..]);
            }
            q.execute(&mut *tx).await.expect("insert");
        }
        tx.commit().await.expect("commit");
    })
}

/// A one-connection pool to the same SQLite file with the product's settings but a
/// 64 MiB page cache.
async fn big_cache_sqlite(url: &str) -> Db {
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    use std::str::FromStr;
    let opts = SqliteConnectOptions::from_str(url)
        .expect("sqlite url")
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(std::time::Duration::from_secs(15))
        .foreign_keys(true)
        .pragma("cache_size", "-65536");
    Db::Sqlite(
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .expect("sqlite pool"),
    )
}

fn bench_backend(c: &mut Criterion, rt: &Runtime, group: &str, url: &str) {
    let db = rt
        .block_on(Db::connect(url, Schema::Data))
        .expect("connect");
    let backend = db.backend();
    rt.block_on(async {
        for (table, indexed) in [("bench_raw_plain", false), ("bench_raw_indexed", true)] {
            for stmt in create_table_sql(backend, table, indexed) {
                on_db!(&db, p => { sqlx::query(&stmt).execute(p).await.expect("create table"); });
            }
        }
    });
    let policy = custos_policy::Policy::parse(custos_policy::BUNDLED_DECLARATION).expect("bundled");
    let hash = policy.hash().to_string();
    let mut rng = StdRng::seed_from_u64(0x1ed9e5);
    let batch_1000 = decisions(BASELINE_ROWS, &hash, &mut rng);
    let rows = raw_rows(&batch_1000, &mut rng);
    eprintln!(
        "{group}: row payload ~{} bytes of column data",
        8 + rows[0].subject.len()
            + rows[0].purpose.len()
            + rows[0].decision.len()
            + rows[0].policy_hash.len()
            + rows[0].method.len()
            + 8
            + rows[0].receipt_id.len()
            + 64
    );

    let mut g = c.benchmark_group(group);
    g.sample_size(10);

    g.throughput(Throughput::Elements(BASELINE_ROWS as u64));
    for (name, table) in [
        ("baseline_raw_insert_plain_table", "bench_raw_plain"),
        ("diagnostic_raw_insert_ledger_indexes", "bench_raw_indexed"),
    ] {
        let sql = insert_sql(table, ROWS_PER_STATEMENT);
        let seq = AtomicI64::new(0);
        let (db, rows, sql, seq) = (&db, &rows, sql.as_str(), &seq);
        g.bench_function(BenchmarkId::new(name, BASELINE_ROWS), |b| {
            b.to_async(rt)
                .iter(|| async move { raw_insert(db, sql, rows, seq).await })
        });
    }

    for n in BATCHES {
        g.throughput(Throughput::Elements(n as u64));
        let batch = &batch_1000[..n];
        let db = &db;
        g.bench_function(BenchmarkId::new("custos_ledger_append", n), |b| {
            b.to_async(rt).iter(|| async move {
                let recs = ledger::append(db, batch).await.expect("append");
                assert_eq!(recs.len(), batch.len());
                recs
            })
        });
    }

    if backend == Backend::Sqlite {
        // Diagnostic: the plain-table baseline with positional `?` placeholders instead of
        // `$n`. sqlx binds a `$n` parameter after asking SQLite for its name, which SQLite
        // finds by a linear scan, so binding a 1,000-parameter statement is quadratic.
        rt.block_on(async {
            for stmt in create_table_sql(backend, "bench_raw_plain_q", false) {
                on_db!(&db, p => { sqlx::query(&stmt).execute(p).await.expect("create table"); });
            }
        });
        let sql = qmark_insert_sql("bench_raw_plain_q", ROWS_PER_STATEMENT);
        let seq = AtomicI64::new(0);
        let (db, rows, sql, seq) = (&db, &rows, sql.as_str(), &seq);
        g.throughput(Throughput::Elements(BASELINE_ROWS as u64));
        g.bench_function(
            BenchmarkId::new("diagnostic_raw_insert_plain_table_qmark", BASELINE_ROWS),
            |b| {
                b.to_async(rt)
                    .iter(|| async move { raw_insert(db, sql, rows, seq).await })
            },
        );
    }

    if backend == Backend::Sqlite {
        // Diagnostic: the indexed insert and the 1000-decision append again, through a
        // connection whose page cache is 64 MiB instead of SQLite's default 2 MiB (which
        // the product's pool keeps), to show how much of the gap to the plain-table
        // baseline is random-key index pages missing the cache.
        let big = rt.block_on(big_cache_sqlite(url));
        rt.block_on(async {
            for stmt in create_table_sql(backend, "bench_raw_indexed_big", true) {
                on_db!(&big, p => { sqlx::query(&stmt).execute(p).await.expect("create table"); });
            }
        });
        g.throughput(Throughput::Elements(BASELINE_ROWS as u64));
        let sql = insert_sql("bench_raw_indexed_big", ROWS_PER_STATEMENT);
        let seq = AtomicI64::new(0);
        let (big, rows, sql, seq) = (&big, &rows, sql.as_str(), &seq);
        g.bench_function(
            BenchmarkId::new(
                "diagnostic_raw_insert_ledger_indexes_64mib_cache",
                BASELINE_ROWS,
            ),
            |b| {
                b.to_async(rt)
                    .iter(|| async move { raw_insert(big, sql, rows, seq).await })
            },
        );
        let batch = &batch_1000[..];
        g.bench_function(
            BenchmarkId::new("diagnostic_ledger_append_64mib_cache", BASELINE_ROWS),
            |b| {
                b.to_async(rt)
                    .iter(|| async move { ledger::append(big, batch).await.expect("append") })
            },
        );
        rt.block_on(big.close());
    }
    g.finish();

    let head = rt.block_on(ledger::head(&db)).expect("head");
    eprintln!("{group}: ledger holds {head} records after the run");
    rt.block_on(db.close());
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");

    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("custos.db").display());
    bench_backend(c, &rt, "ledger_sqlite", &url);
    drop(dir);

    match rt.block_on(custos_testkit::postgres_database()) {
        Some(url) => {
            bench_backend(c, &rt, "ledger_postgres", &url);
            rt.block_on(custos_testkit::drop_postgres_database(&url));
        }
        None => eprintln!("ledger_postgres: skipped (no PostgreSQL server reachable)"),
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
