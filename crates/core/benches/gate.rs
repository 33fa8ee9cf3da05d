//! Gate decisions on a hot cache of 1M subjects, against a raw `HashMap<u128, u64>` lookup
//! measured in the same run (the house baseline: a gate decision needs at least one
//! random map lookup, and with 1M subjects that lookup is a cache miss).
//!
//! Run: `cargo bench -p custos-core --bench gate -- --warm-up-time 1 --measurement-time 5`
//!
//! Every group reports throughput in elements per second; one element is one decision
//! (or one baseline lookup), so `thrpt` is decisions/s directly.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use custos_core::{ConsentMethod, ConsentRecord, Decision, Gate, GateContext, Regime, SubjectId};
use custos_policy::Policy;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SUBJECTS: usize = 1_000_000;
/// Length of the pre-generated random index sequence (a power of two, far larger than
/// any cache, so the sequence itself is streamed, not learned).
const PROBES: usize = 1 << 20;
/// Decisions per measured iteration.
const CHUNK: usize = 1_024;

/// Resident set size of this process in bytes (Linux), for the memory-per-subject note.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

struct Fixture {
    gate: Gate,
    subjects: Vec<u128>,
    probes: Vec<u32>,
}

/// 1M subjects: 45% gave consent to personalized ads, 30% refused it, 25% decided only
/// on another purpose (so they are in the view but have no ads decision: denied as
/// missing). Every subject is present in the view, as in a warmed-up process.
fn fixture() -> Fixture {
    let policy = Arc::new(Policy::parse(custos_policy::BUNDLED_DECLARATION).expect("bundled"));
    let hash = policy.hash().to_string();
    let gate = Gate::new(Regime::new(vec![policy]).expect("regime"));
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let subjects: Vec<u128> = (0..SUBJECTS).map(|_| rng.gen()).collect();
    let before = rss_bytes();
    let t = Instant::now();
    // Applied in chunks so the records themselves never all sit in memory at once.
    for (c, chunk) in subjects.chunks(10_000).enumerate() {
        let records: Vec<ConsentRecord> = chunk
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let roll = rng.gen_range(0..100u32);
                let (purpose, decision) = match roll {
                    0..45 => ("personalized_ads", Decision::Given),
                    45..75 => ("personalized_ads", Decision::Refused),
                    _ => ("personalized_feed", Decision::Given),
                };
                ConsentRecord {
                    seq: (c * 10_000 + i + 1) as i64,
                    subject: SubjectId::from_u128(s),
                    purpose: purpose.into(),
                    decision,
                    policy_hash: hash.clone(),
                    method: ConsentMethod::Api,
                    at_ms: 1_764_000_000_000,
                    receipt_id: uuid::Uuid::nil(),
                    prev_hash: [0; 32],
                    hash: [0; 32],
                }
            })
            .collect();
        gate.apply_all(&records);
    }
    let took = t.elapsed();
    if let (Some(b), Some(a)) = (before, rss_bytes()) {
        eprintln!(
            "gate fixture: {SUBJECTS} subjects applied in {:.2} s ({:.0} records/s); \
             RSS grew {:.1} MiB ({:.0} bytes per subject)",
            took.as_secs_f64(),
            SUBJECTS as f64 / took.as_secs_f64(),
            (a.saturating_sub(b)) as f64 / (1024.0 * 1024.0),
            (a.saturating_sub(b)) as f64 / SUBJECTS as f64
        );
    }
    let probes = (0..PROBES)
        .map(|_| rng.gen_range(0..SUBJECTS as u32))
        .collect();
    Fixture {
        gate,
        subjects,
        probes,
    }
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let regime = f.gate.regime();
    let ads = regime
        .purpose("personalized_ads")
        .expect("declared purpose");
    let mask = regime
        .categories(&["user.device.cookie_id"])
        .expect("declared category");
    let ctx = GateContext::default();

    // Sanity: the mix is what the fixture says (roughly 45% permitted).
    let permitted = f
        .probes
        .iter()
        .take(100_000)
        .filter(|&&i| {
            f.gate
                .check(
                    SubjectId::from_u128(f.subjects[i as usize]),
                    ads,
                    mask,
                    &ctx,
                )
                .is_ok()
        })
        .count();
    eprintln!(
        "gate fixture: {:.1}% of sampled decisions permitted",
        permitted as f64 / 1000.0
    );

    // The baseline: std HashMap<u128, u64> with the same 1M keys and the same probes.
    let baseline: HashMap<u128, u64> = f
        .subjects
        .iter()
        .enumerate()
        .map(|(i, &s)| (s, i as u64))
        .collect();

    let mut g = c.benchmark_group("gate_1m_subjects");
    g.throughput(Throughput::Elements(CHUNK as u64));

    let mut pos = 0usize;
    g.bench_function("baseline_std_hashmap_u128_lookup", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for _ in 0..CHUNK {
                let k = f.subjects[f.probes[pos & (PROBES - 1)] as usize];
                pos += 1;
                acc = acc.wrapping_add(*baseline.get(black_box(&k)).unwrap_or(&0));
            }
            black_box(acc)
        })
    });

    // Diagnostic, not the house baseline: the same lookup through the map the gate uses
    // (DashMap with foldhash), to separate map cost from the gate's own work.
    let dash: dashmap::DashMap<u128, u64, foldhash::fast::RandomState> =
        dashmap::DashMap::with_capacity_and_hasher(SUBJECTS, Default::default());
    for (i, &s) in f.subjects.iter().enumerate() {
        dash.insert(s, i as u64);
    }
    let mut pos = 0usize;
    g.bench_function("diagnostic_dashmap_foldhash_lookup", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for _ in 0..CHUNK {
                let k = f.subjects[f.probes[pos & (PROBES - 1)] as usize];
                pos += 1;
                acc = acc.wrapping_add(dash.get(black_box(&k)).map(|v| *v).unwrap_or(0));
            }
            black_box(acc)
        })
    });
    drop(dash);

    let mut pos = 0usize;
    g.bench_function("gate_check_hot_path", |b| {
        b.iter(|| {
            let mut ok = 0u32;
            for _ in 0..CHUNK {
                let s = SubjectId::from_u128(f.subjects[f.probes[pos & (PROBES - 1)] as usize]);
                pos += 1;
                ok += black_box(f.gate.check(black_box(s), ads, mask, &ctx)).is_ok() as u32;
            }
            black_box(ok)
        })
    });

    let mut pos = 0usize;
    g.bench_function("gate_check_named", |b| {
        b.iter(|| {
            let mut ok = 0u32;
            for _ in 0..CHUNK {
                let s = SubjectId::from_u128(f.subjects[f.probes[pos & (PROBES - 1)] as usize]);
                pos += 1;
                ok += black_box(f.gate.check_named(
                    black_box(s),
                    "personalized_ads",
                    &["user.device.cookie_id"],
                    &ctx,
                ))
                .is_ok() as u32;
            }
            black_box(ok)
        })
    });
    g.finish();

    // Two threads deciding at once (this machine has two cores): shows what the shared
    // state every decision touches costs when cores contend for it. Reported per
    // decision across both threads, so ideal scaling halves the time.
    let mut g = c.benchmark_group("gate_1m_subjects_2_threads");
    g.throughput(Throughput::Elements(2 * CHUNK as u64));
    g.bench_function("baseline_std_hashmap_u128_lookup", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |t, i| {
                let k = f.subjects[f.probes[(t * PROBES / 2 + i) & (PROBES - 1)] as usize];
                baseline.contains_key(black_box(&k))
            })
        })
    });
    g.bench_function("gate_check_hot_path", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |t, i| {
                let k = f.subjects[f.probes[(t * PROBES / 2 + i) & (PROBES - 1)] as usize];
                f.gate
                    .check(SubjectId::from_u128(black_box(k)), ads, mask, &ctx)
                    .is_ok()
            })
        })
    });
    g.finish();

    // Folding records into the view (what the ledger writer does after each commit).
    let mut g = c.benchmark_group("gate_apply");
    g.throughput(Throughput::Elements(CHUNK as u64));
    let hash = regime.current().hash().to_string();
    let mut seq = 10_000_000i64;
    let mut pos = 0usize;
    g.bench_function("apply_all_existing_subjects", |b| {
        b.iter_batched(
            || {
                (0..CHUNK)
                    .map(|_| {
                        seq += 1;
                        let s = f.subjects[f.probes[pos & (PROBES - 1)] as usize];
                        pos += 1;
                        ConsentRecord {
                            seq,
                            subject: SubjectId::from_u128(s),
                            purpose: "personalized_ads".into(),
                            decision: Decision::Given,
                            policy_hash: hash.clone(),
                            method: ConsentMethod::Api,
                            at_ms: 1_764_000_000_000,
                            receipt_id: uuid::Uuid::nil(),
                            prev_hash: [0; 32],
                            hash: [0; 32],
                        }
                    })
                    .collect::<Vec<_>>()
            },
            |records| f.gate.apply_all(&records),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Runs `iters` chunks of `CHUNK` calls of `f(thread, i)` on each of two threads at once
/// and returns the wall time.
fn two_threads(iters: u64, f: impl Fn(usize, usize) -> bool + Sync) -> Duration {
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let f = &f;
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    let mut ok = 0u64;
                    for i in 0..(iters as usize * CHUNK) {
                        ok += f(t, i) as u64;
                    }
                    black_box(ok);
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .max()
            .unwrap_or_default()
    })
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
