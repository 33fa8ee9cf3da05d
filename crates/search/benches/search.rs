//! Search latency on a 100,000-item catalog (target: p99 < 10 ms in-process).
//!
//! Builds an on-disk index of 100k generated bilingual items (seeded, the same on every
//! run), then:
//! - a measurement loop over a mixed query list (Chinese words, English words, typos,
//!   filters, newest-first browsing, second pages through cursors) printing p50, p90,
//!   p99 and max per query kind and overall;
//! - criterion groups for representative queries (mean and spread);
//! - the page cache is off for all of these but `english_dress_page_cache_hit`;
//! - the in-run baseline `baseline_raw_tantivy_term_top20`: plain tantivy on the same
//!   100k English titles (default tokenizer), one `TermQuery` for `dress`, top 20 by
//!   score and a count; no CJK terms, typo tolerance, filters, facets or cursors.
//!
//! Run: `cargo bench -p custos-search --bench search -- --warm-up-time 1 --measurement-time 5`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use custos_search::{Filters, IndexDoc, MediaKind, SearchIndex, SearchRequest, Sort};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const ITEMS: u64 = 100_000;

const ZH: &[&str] = &[
    "连衣裙",
    "衬衫",
    "牛仔裤",
    "外套",
    "毛衣",
    "运动鞋",
    "凉鞋",
    "靴子",
    "背包",
    "手提包",
    "耳机",
    "手表",
    "充电宝",
    "键盘",
    "鼠标",
    "台灯",
    "茶杯",
    "花瓶",
    "抱枕",
    "蜡烛",
    "口红",
    "面霜",
    "香水",
    "绿茶",
    "巧克力",
    "坚果",
    "瑜伽垫",
    "水杯",
    "帽子",
    "围巾",
    "手套",
    "袜子",
    "睡衣",
    "毯子",
    "餐具",
    "锅具",
    "刀具",
    "收纳盒",
    "镜子",
    "相框",
];
const EN: &[&str] = &[
    "dress",
    "shirt",
    "jeans",
    "jacket",
    "sweater",
    "sneakers",
    "sandals",
    "boots",
    "backpack",
    "handbag",
    "headphones",
    "watch",
    "charger",
    "keyboard",
    "mouse",
    "lamp",
    "teacup",
    "vase",
    "cushion",
    "candle",
    "lipstick",
    "cream",
    "perfume",
    "tea",
    "chocolate",
    "nuts",
    "mat",
    "bottle",
    "hat",
    "scarf",
    "gloves",
    "socks",
    "pajamas",
    "blanket",
    "tableware",
    "cookware",
    "knives",
    "organizer",
    "mirror",
    "frame",
];
const ADJ_ZH: &[&str] = &[
    "夏季", "复古", "简约", "轻薄", "碎花", "经典", "北欧", "便携", "新款", "手工", "加厚", "防水",
];
const ADJ_EN: &[&str] = &[
    "summer",
    "vintage",
    "minimalist",
    "lightweight",
    "floral",
    "classic",
    "nordic",
    "portable",
    "new",
    "handmade",
    "thick",
    "waterproof",
];
const COLORS: &[(&str, &str)] = &[
    ("红色", "red"),
    ("蓝色", "blue"),
    ("绿色", "green"),
    ("黑色", "black"),
    ("白色", "white"),
    ("粉色", "pink"),
    ("黄色", "yellow"),
    ("灰色", "grey"),
];
const CATEGORIES: &[&str] = &[
    "clothing",
    "shoes",
    "bags",
    "electronics",
    "home",
    "kitchen",
    "beauty",
    "food",
    "sports",
    "accessories",
    "toys",
    "books",
    "garden",
    "office",
    "pets",
];

fn generate(n: u64) -> Vec<IndexDoc> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    (1..=n)
        .map(|id| {
            let k = rng.gen_range(0..ZH.len());
            let a = rng.gen_range(0..ADJ_ZH.len());
            let c = COLORS[rng.gen_range(0..COLORS.len())];
            let k2 = rng.gen_range(0..ZH.len());
            let price = rng.gen_range(500..200_000u64);
            let tags: Vec<String> = (0..rng.gen_range(1..4))
                .map(|_| ADJ_EN[rng.gen_range(0..ADJ_EN.len())].to_owned())
                .chain([c.1.to_owned()])
                .collect();
            let category = CATEGORIES[rng.gen_range(0..CATEGORIES.len())].to_owned();
            IndexDoc {
                id,
                title: format!(
                    "{}{}{} {} {} {}",
                    ADJ_ZH[a], c.0, ZH[k], ADJ_EN[a], c.1, EN[k]
                ),
                body: format!(
                    "{}{}，搭配{}。A {} {} {} that goes with a {}. {} {}",
                    c.0,
                    ZH[k],
                    ZH[k2],
                    ADJ_EN[a],
                    c.1,
                    EN[k],
                    EN[k2],
                    tags.join(" "),
                    category
                ),
                category,
                tags,
                price_min: price,
                price_max: price + rng.gen_range(0..5_000),
                media: if rng.gen_bool(0.2) {
                    vec![MediaKind::Image, MediaKind::Video]
                } else {
                    vec![MediaKind::Image]
                },
                created_ms: 1_790_000_000_000 + id as i64 * 60_000,
            }
        })
        .collect()
}

fn req(q: Option<&str>, filters: Filters, sort: Option<Sort>) -> SearchRequest {
    SearchRequest {
        q: q.map(str::to_owned),
        filters,
        sort,
        cursor: None,
        limit: 20,
    }
}

/// The query mix: (kind, request).
fn queries() -> Vec<(&'static str, SearchRequest)> {
    let cat = |c: &str| Filters {
        category: Some(c.to_owned()),
        ..Filters::default()
    };
    let mut v = Vec::new();
    for q in ["连衣裙", "蓝牙耳机", "复古红色", "茶杯", "防水背包"] {
        v.push(("chinese", req(Some(q), Filters::default(), None)));
    }
    for q in [
        "dress",
        "vintage lamp",
        "red sneakers",
        "headphones",
        "ceramic teacup",
    ] {
        v.push(("english", req(Some(q), Filters::default(), None)));
    }
    for q in ["headphnes", "swaeter", "chocolte", "backpak"] {
        v.push(("typo", req(Some(q), Filters::default(), None)));
    }
    v.push((
        "filtered",
        req(
            Some("dress"),
            Filters {
                price_min: Some(10_000),
                price_max: Some(50_000),
                ..cat("clothing")
            },
            None,
        ),
    ));
    v.push((
        "filtered",
        req(
            Some("连衣裙"),
            Filters {
                tags: vec!["summer".into()],
                media: Some(MediaKind::Video),
                ..Filters::default()
            },
            None,
        ),
    ));
    v.push(("browse", req(None, Filters::default(), Some(Sort::Newest))));
    v.push(("browse", req(None, cat("electronics"), Some(Sort::Newest))));
    v
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(label: &str, mut d: Vec<Duration>) {
    d.sort_unstable();
    println!(
        "{label:<22} n={:>6}  p50 {:>8.3} ms  p90 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms",
        d.len(),
        pct(&d, 50.0).as_secs_f64() * 1e3,
        pct(&d, 90.0).as_secs_f64() * 1e3,
        pct(&d, 99.0).as_secs_f64() * 1e3,
        d[d.len() - 1].as_secs_f64() * 1e3
    );
}

fn build() -> (tempfile::TempDir, SearchIndex) {
    let dir = tempfile::tempdir().unwrap();
    let idx = SearchIndex::open(dir.path(), [9; 32]).unwrap();
    let t = Instant::now();
    let docs = generate(ITEMS);
    for (i, chunk) in docs.chunks(20_000).enumerate() {
        idx.apply(chunk, &[], i as i64 + 1).unwrap();
    }
    println!(
        "indexed {} items in {:.1} s",
        idx.num_docs(),
        t.elapsed().as_secs_f64()
    );
    (dir, idx)
}

fn latency_loop(idx: &SearchIndex) {
    // Measure the search itself, not the page cache.
    idx.set_page_cache(false);
    let qs = queries();
    // Warm up caches.
    for (_, r) in &qs {
        idx.search(r).unwrap();
    }
    let mut all = Vec::new();
    let mut per_kind: std::collections::BTreeMap<&str, Vec<Duration>> = Default::default();
    let rounds = 200;
    for _ in 0..rounds {
        for (kind, r) in &qs {
            let t = Instant::now();
            let page = idx.search(r).unwrap();
            let d = t.elapsed();
            all.push(d);
            per_kind.entry(kind).or_default().push(d);
            // Second page through the cursor.
            if let Some(c) = page.next_cursor.clone() {
                let mut next = r.clone();
                next.cursor = Some(c);
                let t = Instant::now();
                idx.search(&next).unwrap();
                let d = t.elapsed();
                all.push(d);
                per_kind.entry("second page").or_default().push(d);
            }
        }
    }
    println!("search latency on {ITEMS} items, limit 20, facets counted, one thread:");
    for (k, d) in per_kind {
        report(k, d);
    }
    report("ALL", all);
}

fn bench(c: &mut Criterion, idx: &SearchIndex) {
    let mut g = c.benchmark_group("search_100k");
    let (raw, field) = raw_baseline();
    let searcher = raw.searcher();
    let query = tantivy::query::TermQuery::new(
        tantivy::Term::from_field_text(field, "dress"),
        tantivy::schema::IndexRecordOption::WithFreqs,
    );
    g.bench_function("baseline_raw_tantivy_term_top20", |b| {
        b.iter(|| {
            searcher
                .search(
                    &query,
                    &(
                        tantivy::collector::TopDocs::with_limit(20),
                        tantivy::collector::Count,
                    ),
                )
                .unwrap()
        })
    });
    g.bench_function("english_dress", |b| {
        let r = req(Some("dress"), Filters::default(), None);
        b.iter(|| idx.search(&r).unwrap())
    });
    for (name, r) in [
        (
            "chinese_连衣裙",
            req(Some("连衣裙"), Filters::default(), None),
        ),
        (
            "english_red_sneakers",
            req(Some("red sneakers"), Filters::default(), None),
        ),
        (
            "typo_headphnes",
            req(Some("headphnes"), Filters::default(), None),
        ),
        (
            "browse_newest",
            req(None, Filters::default(), Some(Sort::Newest)),
        ),
        (
            "filtered_dress_clothing_price",
            req(
                Some("dress"),
                Filters {
                    category: Some("clothing".into()),
                    price_min: Some(10_000),
                    price_max: Some(50_000),
                    ..Filters::default()
                },
                None,
            ),
        ),
    ] {
        g.bench_function(name, |b| b.iter(|| idx.search(&r).unwrap()));
    }
    idx.set_page_cache(true);
    g.bench_function("english_dress_page_cache_hit", |b| {
        let r = req(Some("dress"), Filters::default(), None);
        b.iter(|| idx.search(&r).unwrap())
    });
    g.finish();
}

/// Plain tantivy over the same English titles: the in-run baseline.
fn raw_baseline() -> (tantivy::IndexReader, tantivy::schema::Field) {
    let mut b = tantivy::schema::Schema::builder();
    let title = b.add_text_field("title", tantivy::schema::TEXT);
    let index = tantivy::Index::create_in_ram(b.build());
    let mut w: tantivy::IndexWriter = index.writer_with_num_threads(1, 50_000_000).unwrap();
    for d in generate(ITEMS) {
        let mut doc = tantivy::TantivyDocument::default();
        doc.add_text(title, d.title.split_once(' ').map_or("", |x| x.1));
        w.add_document(doc).unwrap();
    }
    w.commit().unwrap();
    (index.reader().unwrap(), title)
}

fn benches(c: &mut Criterion) {
    let (_dir, idx) = build();
    latency_loop(&idx);
    bench(c, &idx);
}

criterion_group!(search, benches);
criterion_main!(search);
