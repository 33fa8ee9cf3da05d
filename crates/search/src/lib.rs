//! # custos-search — the catalog's full-text index
//!
//! Owns the tantivy index of catalog items: its schema, the CJK-aware tokenizer, query
//! building (required terms, English typo tolerance by edit distance, filters), facet
//! counts, relevance and newest ordering, and opaque, tamper-evident page cursors.
//! Items are not personal data and the index holds nothing about who searches.
//!
//! ## Layout
//! - [`tokenize`]: words and CJK unigrams/bigrams, for indexing and for queries.
//! - [`cursor`]: page cursors, MAC-protected and bound to the query they came from.
//! - this file: [`SearchIndex`] (open, apply changes, search), [`IndexDoc`], [`SearchRequest`].
//!
//! The index records in its commit payload the catalog change sequence it reflects, so a
//! process reopening it (or another process with its own index) applies only what it
//! has not seen.
//!
//! Must not import: SQL, HTTP, the application crates.

pub mod cursor;
pub mod tokenize;

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tantivy::collector::{Count, FacetCollector, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, RangeQuery,
    TermQuery,
};
use tantivy::schema::{
    Facet, FacetOptions, Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST,
    INDEXED, STORED,
};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Score, TantivyDocument};

use crate::cursor::{CursorKey, PageCursor};
use crate::tokenize::{query_terms, CjkTokenizer, QueryTerm, TOKENIZER};

/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 256;
/// Largest page.
pub const MAX_LIMIT: usize = 100;
/// Most tag filters in one request.
pub const MAX_TAG_FILTERS: usize = 10;
/// Facet values listed per facet.
const FACET_VALUES: usize = 30;
/// Bumped whenever the schema or the tokenizer changes; an index of another version is
/// rebuilt from the catalog.
const SCHEMA_VERSION: u32 = 1;
/// Searches whose counts are remembered before the memory starts over.
const COUNT_CACHE_MAX: usize = 4_096;
/// Memory of the single indexing thread.
const WRITER_HEAP: usize = 50_000_000;

/// Price buckets for the price facet, in minor units (fen/cents): lower bounds.
pub const PRICE_BUCKETS: [(u64, &str); 5] = [
    (0, "0-50"),
    (5_000, "50-100"),
    (10_000, "100-200"),
    (20_000, "200-500"),
    (50_000, "500+"),
];

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("the query is longer than {MAX_QUERY_CHARS} characters")]
    QueryTooLong,
    #[error("the cursor is not valid for this search")]
    InvalidCursor,
    #[error("{0}")]
    InvalidFilter(String),
    #[error("another process writes to this search index")]
    Busy,
    #[error("search index error: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("search index error: {0}")]
    Io(#[from] std::io::Error),
}

pub type SearchResult<T> = Result<T, SearchError>;

/// Whether an item shows images, videos or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MediaKind {
    Image,
    Video,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
        }
    }
    pub fn parse(s: &str) -> Option<MediaKind> {
        match s {
            "image" => Some(MediaKind::Image),
            "video" => Some(MediaKind::Video),
            _ => None,
        }
    }
}

/// What the index holds of one item.
#[derive(Debug, Clone)]
pub struct IndexDoc {
    pub id: u64,
    /// Every title (Chinese and English), weighted above the rest.
    pub title: String,
    /// Descriptions, tags and category, for matching.
    pub body: String,
    pub category: String,
    pub tags: Vec<String>,
    pub price_min: u64,
    pub price_max: u64,
    pub media: Vec<MediaKind>,
    pub created_ms: i64,
}

/// Order of results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Relevance,
    Newest,
}

impl Sort {
    pub fn parse(s: &str) -> Option<Sort> {
        match s {
            "relevance" => Some(Sort::Relevance),
            "newest" => Some(Sort::Newest),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Relevance => "relevance",
            Sort::Newest => "newest",
        }
    }
}

/// Filters; each one given narrows the results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub category: Option<String>,
    /// Every tag listed must be on the item.
    pub tags: Vec<String>,
    /// Items whose price range reaches at least this (minor units).
    pub price_min: Option<u64>,
    /// Items whose price range starts at most at this (minor units).
    pub price_max: Option<u64>,
    pub media: Option<MediaKind>,
}

/// One search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub q: Option<String>,
    pub filters: Filters,
    /// Default: relevance with a query, newest without.
    pub sort: Option<Sort>,
    pub cursor: Option<String>,
    pub limit: usize,
}

/// Per-caller ranking boosts (personalization): items of these categories or with these
/// tags score higher under relevance order. They change the order only, never which items
/// match, their counts or anything shown about them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Boosts {
    pub categories: Vec<(String, f32)>,
    pub tags: Vec<(String, f32)>,
}

impl Boosts {
    /// No boost at all (the search is the plain one).
    pub fn is_empty(&self) -> bool {
        self.categories.is_empty() && self.tags.is_empty()
    }
}

/// The cursor fingerprint of a boosted search: its cursors do not open in the plain one.
fn boosted_fingerprint(fp: &[u8; 8]) -> [u8; 8] {
    use sha2::Digest;
    let d = sha2::Sha256::new()
        .chain_update(b"custos-search/boosted")
        .chain_update(fp)
        .finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// One value of a facet and how many matching items have it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

/// Counts over every item matching the query and filters (not only the page).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Facets {
    pub category: Vec<FacetCount>,
    pub tags: Vec<FacetCount>,
    pub media: Vec<FacetCount>,
    pub price: Vec<FacetCount>,
}

/// One page of results: item ids in order.
#[derive(Debug, Clone)]
pub struct Page {
    pub ids: Vec<u64>,
    pub total: u64,
    pub facets: Arc<Facets>,
    /// `facets` as JSON, ready to send.
    pub facets_json: Arc<str>,
    pub next_cursor: Option<String>,
    pub sort: Sort,
}

/// Facet counts and their JSON, shared by every page of a search.
type SharedFacets = (Arc<Facets>, Arc<str>);
/// Remembered pages: (search fingerprint, cursor, limit) → (index generation, page).
type PageCache = std::collections::HashMap<([u8; 8], Option<String>, usize), (u64, Arc<Page>)>;
/// Remembered counts: search fingerprint → (index generation, total, facets, facets JSON).
type CountCache = std::collections::HashMap<[u8; 8], (u64, u64, Arc<Facets>, Arc<str>)>;

#[derive(Debug, Clone, Copy)]
struct Fields {
    id: Field,
    title: Field,
    body: Field,
    facets: Field,
    price_min: Field,
    price_max: Field,
    created: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let fields = Fields {
        id: b.add_u64_field("id", INDEXED | FAST | STORED),
        title: b.add_text_field("title", text.clone()),
        body: b.add_text_field("body", text),
        facets: b.add_facet_field("facets", FacetOptions::default()),
        price_min: b.add_u64_field("price_min", INDEXED | FAST),
        price_max: b.add_u64_field("price_max", INDEXED | FAST),
        created: b.add_i64_field("created", INDEXED | FAST),
    };
    (b.build(), fields)
}

/// The commit payload: schema version and the last catalog change applied.
#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    v: u32,
    seq: i64,
}

/// The catalog index of one process.
pub struct SearchIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    cursor_key: CursorKey,
    applied: std::sync::atomic::AtomicI64,
    counts: Mutex<CountCache>,
    pages: Mutex<PageCache>,
    page_cache: AtomicBool,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("applied_seq", &self.applied_seq())
            .finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it; an index of another schema version, or one
    /// that cannot be opened, is wiped (it is rebuilt from the catalog: `applied_seq` is 0).
    pub fn open(dir: &Path, cursor_key: [u8; 32]) -> SearchResult<SearchIndex> {
        std::fs::create_dir_all(dir)?;
        let (schema, fields) = schema();
        let existing = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| SearchError::Io(std::io::Error::other(e.to_string())))?;
        let index = match Index::open_or_create(existing, schema.clone()) {
            Ok(i) if payload_of(&i).is_some_and(|p| p.v == SCHEMA_VERSION) || is_empty(&i) => i,
            _ => {
                // Stale or unreadable: start over.
                for e in std::fs::read_dir(dir)?.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        std::fs::remove_dir_all(&p)?;
                    } else {
                        std::fs::remove_file(&p)?;
                    }
                }
                let d = tantivy::directory::MmapDirectory::open(dir)
                    .map_err(|e| SearchError::Io(std::io::Error::other(e.to_string())))?;
                Index::create(d, schema, Default::default())?
            }
        };
        Self::finish(index, fields, cursor_key)
    }

    /// An index in memory (tests and benchmarks).
    pub fn in_memory(cursor_key: [u8; 32]) -> SearchResult<SearchIndex> {
        let (schema, fields) = schema();
        Self::finish(Index::create_in_ram(schema), fields, cursor_key)
    }

    fn finish(index: Index, fields: Fields, cursor_key: [u8; 32]) -> SearchResult<SearchIndex> {
        index.tokenizers().register(TOKENIZER, CjkTokenizer);
        let applied = payload_of(&index).map_or(0, |p| p.seq);
        let writer = index
            .writer_with_num_threads(1, WRITER_HEAP)
            .map_err(|e| match e {
                tantivy::TantivyError::LockFailure(..) => SearchError::Busy,
                other => other.into(),
            })?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SearchIndex {
            reader,
            writer: Mutex::new(writer),
            fields,
            cursor_key: CursorKey(cursor_key),
            applied: std::sync::atomic::AtomicI64::new(applied),
            counts: Default::default(),
            pages: Default::default(),
            page_cache: AtomicBool::new(true),
        })
    }

    /// The last catalog change sequence this index reflects.
    pub fn applied_seq(&self) -> i64 {
        self.applied.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Number of items in the index.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Replaces `upserts`, removes `deletes`, and records `seq` as applied, in one commit.
    /// Blocking (disk I/O); call it off the async runtime.
    pub fn apply(&self, upserts: &[IndexDoc], deletes: &[u64], seq: i64) -> SearchResult<()> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        for id in deletes.iter().chain(upserts.iter().map(|d| &d.id)) {
            w.delete_term(tantivy::Term::from_field_u64(self.fields.id, *id));
        }
        for d in upserts {
            w.add_document(self.document(d))?;
        }
        let payload = serde_json::to_string(&Payload {
            v: SCHEMA_VERSION,
            seq,
        })
        .map_err(|e| SearchError::Io(std::io::Error::other(e)))?;
        let mut prepared = w.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.reader.reload()?;
        self.applied
            .store(seq, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Removes every document (before a rebuild).
    pub fn clear(&self) -> SearchResult<()> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        w.delete_all_documents()?;
        let payload = serde_json::to_string(&Payload {
            v: SCHEMA_VERSION,
            seq: 0,
        })
        .map_err(|e| SearchError::Io(std::io::Error::other(e)))?;
        let mut prepared = w.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.reader.reload()?;
        self.applied.store(0, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    fn document(&self, d: &IndexDoc) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_u64(f.id, d.id);
        doc.add_text(f.title, &d.title);
        doc.add_text(f.body, &d.body);
        if !d.category.is_empty() {
            doc.add_facet(
                f.facets,
                Facet::from_path(["category", d.category.as_str()]),
            );
        }
        for t in &d.tags {
            doc.add_facet(f.facets, Facet::from_path(["tag", t.as_str()]));
        }
        for m in &d.media {
            doc.add_facet(f.facets, Facet::from_path(["media", m.as_str()]));
        }
        doc.add_facet(
            f.facets,
            Facet::from_path(["price", price_bucket(d.price_min)]),
        );
        doc.add_u64(f.price_min, d.price_min);
        doc.add_u64(f.price_max, d.price_max);
        doc.add_i64(f.created, d.created_ms);
        doc
    }

    /// Turns the page cache on (the default) or off. Pages of a search are remembered
    /// until the index changes, so a popular search costs one lookup; benchmarks turn it
    /// off to measure the search itself.
    pub fn set_page_cache(&self, on: bool) {
        self.page_cache.store(on, Ordering::Relaxed);
        self.pages.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Runs one search.
    pub fn search(&self, req: &SearchRequest) -> SearchResult<Arc<Page>> {
        self.search_boosted(req, None)
    }

    /// Runs one search, ranked with `boosts` when given (and not empty). A boosted search
    /// is never served from or kept in the page cache, and its cursors are bound to being
    /// boosted. A valid cursor of the counterpart (a boosted search's cursor sent to the
    /// plain search, or the reverse, e.g. right after personalization was switched off)
    /// starts over at the first page instead of failing.
    pub fn search_boosted(
        &self,
        req: &SearchRequest,
        boosts: Option<&Boosts>,
    ) -> SearchResult<Arc<Page>> {
        let boosts = boosts.filter(|b| !b.is_empty());
        let q = req.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
        if q.is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS) {
            return Err(SearchError::QueryTooLong);
        }
        if req.filters.tags.len() > MAX_TAG_FILTERS {
            return Err(SearchError::InvalidFilter(format!(
                "at most {MAX_TAG_FILTERS} tags may be given"
            )));
        }
        if let (Some(lo), Some(hi)) = (req.filters.price_min, req.filters.price_max) {
            if lo > hi {
                return Err(SearchError::InvalidFilter(
                    "price_min is above price_max".into(),
                ));
            }
        }
        let terms = q.map(query_terms).unwrap_or_default();
        let sort = req.sort.unwrap_or(if terms.is_empty() {
            Sort::Newest
        } else {
            Sort::Relevance
        });
        let limit = req.limit.clamp(1, MAX_LIMIT);
        let fingerprint = cursor::fingerprint(q.unwrap_or(""), &req.filters, sort);
        let cursor_fp = match boosts {
            Some(_) => boosted_fingerprint(&fingerprint),
            None => fingerprint,
        };
        let after = match &req.cursor {
            Some(c) => match self.cursor_key.open(c, &cursor_fp, sort) {
                Some(a) => Some(a),
                None if self.opens_in_counterpart(c, q.unwrap_or(""), &req.filters, boosts) => None,
                None => return Err(SearchError::InvalidCursor),
            },
            None => None,
        };
        let searcher = self.reader.searcher();
        let generation = searcher.generation().generation_id();
        let use_pages = self.page_cache.load(Ordering::Relaxed) && boosts.is_none();
        let page_key = (fingerprint, req.cursor.clone(), limit);
        if use_pages {
            let pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((g, page)) = pages.get(&page_key) {
                if *g == generation {
                    return Ok(page.clone());
                }
            }
        }
        let mut query = self.build_query(&searcher, &terms, &req.filters);
        if let Some(b) = boosts {
            query = self.boosted(query, b);
        }
        // Counts change only when the index does: reuse them for later pages and for
        // repeated searches of the same generation.
        let cached = self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fingerprint)
            .filter(|c| c.0 == generation)
            .map(|c| (c.1, c.2.clone(), c.3.clone()));
        let id_field = "id";
        let (hits, total, (facets, facets_json)): (Vec<(u64, u64)>, u64, _) = match sort {
            Sort::Relevance => {
                let after = after.map(|c| (f32::from_bits(c.primary as u32), c.id));
                let top = TopDocs::with_limit(limit + 1).tweak_score(
                    move |seg: &tantivy::SegmentReader| {
                        let ids = seg.fast_fields().u64(id_field).ok();
                        move |doc: tantivy::DocId, score: Score| {
                            let id = ids.as_ref().and_then(|c| c.first(doc)).unwrap_or(0);
                            let key = (score, id);
                            match after {
                                Some(a) if !below(key, a) => None,
                                _ => Some(key),
                            }
                        }
                    },
                );
                let (top, total, facets) = run(&searcher, &*query, top, cached)?;
                (
                    top.into_iter()
                        .filter_map(|(k, _): (Option<(f32, u64)>, DocAddress)| k)
                        .map(|(s, id)| (u64::from(s.to_bits()), id))
                        .collect(),
                    total,
                    facets,
                )
            }
            Sort::Newest => {
                let after = after.map(|c| (c.primary as i64, c.id));
                let top = TopDocs::with_limit(limit + 1).custom_score(
                    move |seg: &tantivy::SegmentReader| {
                        let ids = seg.fast_fields().u64(id_field).ok();
                        let created = seg.fast_fields().i64("created").ok();
                        move |doc: tantivy::DocId| {
                            let id = ids.as_ref().and_then(|c| c.first(doc)).unwrap_or(0);
                            let at = created.as_ref().and_then(|c| c.first(doc)).unwrap_or(0);
                            let key = (at, id);
                            match after {
                                Some(a) if !below(key, a) => None,
                                _ => Some(key),
                            }
                        }
                    },
                );
                let (top, total, facets) = run(&searcher, &*query, top, cached)?;
                (
                    top.into_iter()
                        .filter_map(|(k, _): (Option<(i64, u64)>, DocAddress)| k)
                        .map(|(at, id)| (at as u64, id))
                        .collect(),
                    total,
                    facets,
                )
            }
        };
        {
            let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            if counts.len() >= COUNT_CACHE_MAX {
                counts.clear();
            }
            if counts.get(&fingerprint).is_none_or(|c| c.0 != generation) {
                counts.insert(
                    fingerprint,
                    (generation, total, facets.clone(), facets_json.clone()),
                );
            }
        }
        let more = hits.len() > limit;
        let page: Vec<(u64, u64)> = hits.into_iter().take(limit).collect();
        let next_cursor = match (more, page.last()) {
            (true, Some(&(primary, id))) => Some(
                self.cursor_key
                    .seal(&PageCursor { sort, primary, id }, &cursor_fp),
            ),
            _ => None,
        };
        let page = Arc::new(Page {
            ids: page.into_iter().map(|(_, id)| id).collect(),
            total,
            facets,
            facets_json,
            next_cursor,
            sort,
        });
        if use_pages {
            let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
            if pages.len() >= COUNT_CACHE_MAX {
                pages.clear();
            }
            pages.insert(page_key, (generation, page.clone()));
        }
        Ok(page)
    }

    /// Whether `cursor` is a valid cursor of the same search in the other mode (boosted
    /// or plain), in either order.
    fn opens_in_counterpart(
        &self,
        cursor: &str,
        q: &str,
        filters: &Filters,
        boosts: Option<&Boosts>,
    ) -> bool {
        [Sort::Relevance, Sort::Newest].into_iter().any(|sort| {
            let fp = cursor::fingerprint(q, filters, sort);
            let fp = match boosts {
                Some(_) => fp,
                None => boosted_fingerprint(&fp),
            };
            self.cursor_key.open(cursor, &fp, sort).is_some()
        })
    }

    /// `query` with every boost as an optional clause: the matches stay the same, and an
    /// item with a boosted category or tag scores the boost's weight higher.
    fn boosted(&self, query: Box<dyn Query>, boosts: &Boosts) -> Box<dyn Query> {
        let f = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, query)];
        let facets = boosts
            .categories
            .iter()
            .map(|(v, w)| ("category", v, *w))
            .chain(boosts.tags.iter().map(|(v, w)| ("tag", v, *w)));
        for (root, value, weight) in facets {
            if !(weight.is_finite() && weight > 0.0) || value.is_empty() {
                continue;
            }
            let term =
                tantivy::Term::from_facet(f.facets, &Facet::from_path([root, value.as_str()]));
            clauses.push((
                Occur::Should,
                Box::new(ConstScoreQuery::new(
                    Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
                    weight,
                )),
            ));
        }
        Box::new(BooleanQuery::new(clauses))
    }

    fn build_query(
        &self,
        searcher: &tantivy::Searcher,
        terms: &[QueryTerm],
        filters: &Filters,
    ) -> Box<dyn Query> {
        let f = &self.fields;
        let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for t in terms {
            let (text, mut distance) = match t {
                QueryTerm::Exact(s) => (s.as_str(), 0),
                QueryTerm::Word(w) => (w.as_str(), typo_distance(w)),
            };
            // A word the catalog knows is taken as written: walking the term dictionary
            // for near misses is the costly part of a search, and is only needed for
            // words that match nothing.
            if distance > 0
                && [f.title, f.body].iter().any(|&field| {
                    searcher
                        .doc_freq(&tantivy::Term::from_field_text(field, text))
                        .is_ok_and(|n| n > 0)
                })
            {
                distance = 0;
            }
            let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for (field, boost) in [(f.title, 3.0), (f.body, 1.0)] {
                let term = tantivy::Term::from_field_text(field, text);
                any.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(
                        Box::new(TermQuery::new(term.clone(), IndexRecordOption::WithFreqs)),
                        boost,
                    )),
                ));
                if distance > 0 && field == f.title {
                    // Near misses score below exact matches. Only titles are searched
                    // for them: building the edit-distance automaton and walking the
                    // term dictionary with it is the dearest part of a search.
                    any.push((
                        Occur::Should,
                        Box::new(BoostQuery::new(
                            Box::new(FuzzyTermQuery::new(term, distance, true)),
                            boost * 0.3,
                        )),
                    ));
                }
            }
            must.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        }
        let mut facet_filter = |path: [&str; 2]| {
            let term = tantivy::Term::from_facet(f.facets, &Facet::from_path(path));
            must.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(
                    Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
                    0.0,
                )),
            ));
        };
        if let Some(c) = &filters.category {
            facet_filter(["category", c.as_str()]);
        }
        for t in &filters.tags {
            facet_filter(["tag", t.as_str()]);
        }
        if let Some(m) = filters.media {
            facet_filter(["media", m.as_str()]);
        }
        if let Some(lo) = filters.price_min {
            must.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(
                    Box::new(RangeQuery::new(
                        Bound::Included(tantivy::Term::from_field_u64(f.price_max, lo)),
                        Bound::Unbounded,
                    )),
                    0.0,
                )),
            ));
        }
        if let Some(hi) = filters.price_max {
            must.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(
                    Box::new(RangeQuery::new(
                        Bound::Unbounded,
                        Bound::Included(tantivy::Term::from_field_u64(f.price_min, hi)),
                    )),
                    0.0,
                )),
            ));
        }
        if must.is_empty() {
            return Box::new(AllQuery);
        }
        if terms.is_empty() {
            // Filters only: every match scores alike.
            must.push((Occur::Should, Box::new(AllQuery)));
        }
        Box::new(BooleanQuery::new(must))
    }
}

/// Runs the top-documents collector, and the counts too unless they are known.
fn run<C: tantivy::collector::Collector>(
    searcher: &tantivy::Searcher,
    query: &dyn Query,
    top: C,
    cached: Option<(u64, Arc<Facets>, Arc<str>)>,
) -> SearchResult<(C::Fruit, u64, SharedFacets)> {
    if let Some((total, facets, json)) = cached {
        return Ok((searcher.search(query, &top)?, total, (facets, json)));
    }
    let mut facets = FacetCollector::for_field("facets");
    for root in ["/category", "/tag", "/media", "/price"] {
        facets.add_facet(root);
    }
    let (top, total, counts) = searcher.search(query, &(top, Count, facets))?;
    let facets = facets_from(&counts);
    let json = serde_json::to_string(&facets).unwrap_or_else(|_| "{}".into());
    Ok((top, total as u64, (Arc::new(facets), json.into())))
}

/// Strictly after the cursor in descending order: `(primary, id)` below `a`.
fn below<K: PartialOrd>(key: (K, u64), a: (K, u64)) -> bool {
    key.0 < a.0 || (key.0 == a.0 && key.1 < a.1)
}

/// Edits forgiven in an English word: none for short words, one from 4 letters, two
/// from 8.
fn typo_distance(word: &str) -> u8 {
    match word.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

fn price_bucket(price_min: u64) -> &'static str {
    PRICE_BUCKETS
        .iter()
        .rev()
        .find(|(lo, _)| price_min >= *lo)
        .map_or(PRICE_BUCKETS[0].1, |b| b.1)
}

fn facets_from(counts: &tantivy::collector::FacetCounts) -> Facets {
    let list = |root: &str, keep_order: Option<&[(u64, &str)]>| -> Vec<FacetCount> {
        let mut v: Vec<FacetCount> = counts
            .get(root)
            .filter_map(|(facet, count)| {
                let value = facet.to_path().last().map(|s| (*s).to_owned())?;
                Some(FacetCount { value, count })
            })
            .collect();
        match keep_order {
            Some(order) => v.sort_by_key(|c| order.iter().position(|(_, n)| *n == c.value)),
            None => v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value))),
        }
        v.truncate(FACET_VALUES);
        v
    };
    Facets {
        category: list("/category", None),
        tags: list("/tag", None),
        media: list("/media", None),
        price: list("/price", Some(&PRICE_BUCKETS)),
    }
}

fn payload_of(index: &Index) -> Option<Payload> {
    let metas = index.load_metas().ok()?;
    serde_json::from_str(metas.payload.as_deref()?).ok()
}

fn is_empty(index: &Index) -> bool {
    index
        .load_metas()
        .is_ok_and(|m| m.segments.is_empty() && m.payload.is_none())
}
