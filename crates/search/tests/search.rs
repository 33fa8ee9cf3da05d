//! The index answers the searches the catalog promises (P5, P26): Chinese and English,
//! typos, filters with counts, both orders, stable cursors.

use custos_search::{Filters, IndexDoc, MediaKind, SearchError, SearchIndex, SearchRequest, Sort};

fn doc(
    id: u64,
    title: &str,
    category: &str,
    tags: &[&str],
    price: u64,
    media: MediaKind,
) -> IndexDoc {
    IndexDoc {
        id,
        title: title.to_owned(),
        body: format!("{} {}", tags.join(" "), category),
        category: category.to_owned(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        price_min: price,
        price_max: price + 1_000,
        media: vec![media],
        created_ms: 1_000 * id as i64,
    }
}

fn sample() -> SearchIndex {
    let idx = SearchIndex::in_memory([1; 32]).unwrap();
    idx.apply(
        &[
            doc(
                1,
                "夏季连衣裙 Summer dress",
                "clothing",
                &["summer", "dress"],
                19_900,
                MediaKind::Image,
            ),
            doc(
                2,
                "牛仔裤 Denim jeans",
                "clothing",
                &["denim"],
                29_900,
                MediaKind::Image,
            ),
            doc(
                3,
                "蓝牙耳机 Wireless headphones",
                "electronics",
                &["audio"],
                49_900,
                MediaKind::Video,
            ),
            doc(
                4,
                "碎花连衣裙 Floral dress",
                "clothing",
                &["dress", "floral"],
                9_900,
                MediaKind::Video,
            ),
            doc(
                5,
                "陶瓷茶杯 Ceramic teacup",
                "home",
                &["kitchen"],
                3_900,
                MediaKind::Image,
            ),
        ],
        &[],
        5,
    )
    .unwrap();
    idx
}

fn req(q: &str) -> SearchRequest {
    SearchRequest {
        q: Some(q.to_owned()),
        filters: Filters::default(),
        sort: None,
        cursor: None,
        limit: 20,
    }
}

fn ids(idx: &SearchIndex, r: &SearchRequest) -> Vec<u64> {
    let mut v = idx.search(r).unwrap().ids.clone();
    v.sort_unstable();
    v
}

#[test]
fn a_query_for_a_chinese_word_finds_every_title_containing_it() {
    let idx = sample();
    assert_eq!(ids(&idx, &req("连衣裙")), vec![1, 4]);
    assert_eq!(ids(&idx, &req("夏季连衣裙")), vec![1]);
    assert_eq!(ids(&idx, &req("耳机")), vec![3]);
    assert!(ids(&idx, &req("鞋子")).is_empty());
}

#[test]
fn english_words_match_with_small_typos_and_exact_matches_rank_first() {
    let idx = sample();
    assert_eq!(ids(&idx, &req("headphnes")), vec![3]);
    assert_eq!(ids(&idx, &req("Ceramik teacupp")), vec![5]);
    assert_eq!(ids(&idx, &req("DRESS")), vec![1, 4]);
    // Short words must match exactly: "jet" is not "jeans".
    assert!(ids(&idx, &req("jet")).is_empty());
    let page = idx.search(&req("summer")).unwrap();
    assert_eq!(page.ids.first(), Some(&1));
}

#[test]
fn filters_narrow_the_results_and_facets_count_every_match() {
    let idx = sample();
    let mut r = req("");
    r.q = None;
    let all = idx.search(&r).unwrap();
    assert_eq!(all.total, 5);
    let clothing = all
        .facets
        .category
        .iter()
        .find(|c| c.value == "clothing")
        .unwrap();
    assert_eq!(clothing.count, 3);
    let video = all
        .facets
        .media
        .iter()
        .find(|c| c.value == "video")
        .unwrap();
    assert_eq!(video.count, 2);

    r.filters = Filters {
        category: Some("clothing".into()),
        tags: vec!["dress".into()],
        ..Filters::default()
    };
    assert_eq!(ids(&idx, &r), vec![1, 4]);
    r.filters.media = Some(MediaKind::Video);
    assert_eq!(ids(&idx, &r), vec![4]);
    r.filters = Filters {
        price_min: Some(20_000),
        price_max: Some(30_000),
        ..Filters::default()
    };
    // 1: 199-209 yuan overlaps 200-300; 2: 299-309 overlaps; 3 starts at 499.
    assert_eq!(ids(&idx, &r), vec![1, 2]);
    let p = idx.search(&r).unwrap();
    assert_eq!(p.total, 2);
    assert_eq!(
        p.facets.category,
        vec![custos_search::FacetCount {
            value: "clothing".into(),
            count: 2
        }]
    );
    r.filters = Filters {
        price_min: Some(5),
        price_max: Some(1),
        ..Filters::default()
    };
    assert!(matches!(idx.search(&r), Err(SearchError::InvalidFilter(_))));
}

#[test]
fn newest_first_orders_by_creation_time() {
    let idx = sample();
    let mut r = req("");
    r.q = None;
    r.sort = Some(Sort::Newest);
    assert_eq!(idx.search(&r).unwrap().ids, vec![5, 4, 3, 2, 1]);
}

#[test]
fn cursors_walk_every_result_once_even_while_items_are_added() {
    let idx = SearchIndex::in_memory([2; 32]).unwrap();
    let docs: Vec<IndexDoc> = (1..=25)
        .map(|i| {
            doc(
                i,
                &format!("红色连衣裙 red dress {i}"),
                "clothing",
                &["dress"],
                100 * i,
                MediaKind::Image,
            )
        })
        .collect();
    idx.apply(&docs, &[], 1).unwrap();
    for sort in [Sort::Relevance, Sort::Newest] {
        let mut r = req("连衣裙");
        r.sort = Some(sort);
        r.limit = 7;
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let p = idx.search(&r).unwrap();
            let added = u64::from(pages > 0 && sort == Sort::Newest);
            assert_eq!(p.total, 25 + added);
            seen.extend(p.ids.iter().copied());
            pages += 1;
            if pages == 1 && sort == Sort::Newest {
                // A newer item arriving between pages must not shift what follows.
                idx.apply(
                    &[doc(
                        100,
                        "新款连衣裙 new dress",
                        "clothing",
                        &[],
                        1,
                        MediaKind::Image,
                    )],
                    &[],
                    2,
                )
                .unwrap();
            }
            match p.next_cursor.clone() {
                Some(c) => r.cursor = Some(c),
                None => break,
            }
            assert!(pages < 10, "cursor does not advance");
        }
        seen.sort_unstable();
        seen.dedup();
        let expected: Vec<u64> = (1..=25).collect();
        assert_eq!(seen, expected, "{sort:?}: every item once");
        idx.apply(&[], &[100], 3).unwrap();
    }
}

#[test]
fn altered_or_foreign_cursors_are_rejected() {
    let idx = sample();
    let mut r = req("dress");
    r.limit = 1;
    let c = idx
        .search(&r)
        .unwrap()
        .next_cursor
        .clone()
        .expect("a second page");
    let mut other = req("jeans");
    other.cursor = Some(c.clone());
    assert!(matches!(
        idx.search(&other),
        Err(SearchError::InvalidCursor)
    ));
    let mut tampered = r.clone();
    let mut bytes = c.into_bytes();
    bytes[3] = if bytes[3] == b'A' { b'B' } else { b'A' };
    tampered.cursor = Some(String::from_utf8(bytes).unwrap());
    assert!(matches!(
        idx.search(&tampered),
        Err(SearchError::InvalidCursor)
    ));
    tampered.cursor = Some("%%%".into());
    assert!(matches!(
        idx.search(&tampered),
        Err(SearchError::InvalidCursor)
    ));
}

#[test]
fn a_query_longer_than_the_limit_is_refused() {
    let idx = sample();
    let long = "衣".repeat(custos_search::MAX_QUERY_CHARS + 1);
    assert!(matches!(
        idx.search(&req(&long)),
        Err(SearchError::QueryTooLong)
    ));
    let ok = "衣".repeat(custos_search::MAX_QUERY_CHARS);
    assert!(idx.search(&req(&ok)).is_ok());
}

#[test]
fn updates_and_deletions_replace_what_the_index_holds() {
    let idx = sample();
    // Remembered pages must not outlive the change.
    assert_eq!(ids(&idx, &req("jeans")), vec![2]);
    assert_eq!(ids(&idx, &req("连衣裙")), vec![1, 4]);
    idx.apply(
        &[doc(
            2,
            "直筒裤 Straight trousers",
            "clothing",
            &[],
            100,
            MediaKind::Image,
        )],
        &[4],
        9,
    )
    .unwrap();
    assert!(ids(&idx, &req("jeans")).is_empty());
    assert_eq!(ids(&idx, &req("trousers")), vec![2]);
    assert_eq!(ids(&idx, &req("连衣裙")), vec![1]);
    assert_eq!(idx.num_docs(), 4);
    assert_eq!(idx.applied_seq(), 9);
}

#[test]
fn a_reopened_index_remembers_the_last_change_it_applied() {
    let dir = tempfile::tempdir().unwrap();
    {
        let idx = SearchIndex::open(dir.path(), [3; 32]).unwrap();
        assert_eq!(idx.applied_seq(), 0);
        idx.apply(
            &[doc(1, "茶杯 cup", "home", &[], 1, MediaKind::Image)],
            &[],
            17,
        )
        .unwrap();
    }
    let idx = SearchIndex::open(dir.path(), [3; 32]).unwrap();
    assert_eq!(idx.applied_seq(), 17);
    assert_eq!(ids(&idx, &req("茶杯")), vec![1]);
}
