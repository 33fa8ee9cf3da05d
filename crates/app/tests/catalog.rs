//! The catalog through its use cases, on SQLite and PostgreSQL: import, search with
//! filters, media, deletion, the demo catalog, several processes following one catalog,
//! and anonymous searching that writes nothing. P5, P26.

use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_app::catalog::input::{Format, ItemInput};
use custos_app::catalog::{Catalog, ImportError};
use custos_app::config::MasterKeySource;
use custos_app::{App, Config};
use custos_core::FakeClock;
use custos_crypto::{MasterKey, OsRng};
use custos_search::{Filters, SearchRequest, Sort};
use custos_store::Db;

struct Env {
    app: App,
    clock: Arc<FakeClock>,
    cfg: Config,
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

fn config(
    dir: &std::path::Path,
    pg: Option<&(String, String)>,
    key: &str,
    db_dir: &std::path::Path,
) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        database_url: pg
            .map(|p| p.0.clone())
            .unwrap_or_else(|| format!("sqlite://{}", db_dir.join("custos.db").display())),
        vault_url: pg
            .map(|p| p.1.clone())
            .unwrap_or_else(|| format!("sqlite://{}", db_dir.join("keys.db").display())),
        master_key: MasterKeySource::Inline(key.to_owned()),
        policy: None,
        ..Default::default()
    }
}

impl Env {
    async fn open(pg: Option<(String, String)>) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::generate(&mut OsRng).to_base64();
        let cfg = config(dir.path(), pg.as_ref(), &key, dir.path());
        let clock = Arc::new(FakeClock::default());
        let app = App::open(&cfg, clock.clone()).await.unwrap();
        Env {
            app,
            clock,
            cfg,
            _dir: dir,
            pg,
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
    fn catalog(&self) -> &Catalog {
        &self.app.catalog
    }
    /// A second process on the same databases, with its own data directory and index.
    async fn second(&self) -> (App, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let MasterKeySource::Inline(key) = &self.cfg.master_key else {
            unreachable!()
        };
        let mut cfg = config(dir.path(), self.pg.as_ref(), key, &self.cfg.data_dir);
        cfg.vault_url = self.cfg.vault_url.clone();
        let app = App::open(&cfg, Arc::new(FakeClock::default()))
            .await
            .unwrap();
        (app, dir)
    }
    async fn finish(self) {
        self.app.shutdown().await;
        if let Some((a, b)) = &self.pg {
            custos_testkit::drop_postgres_database(a).await;
            custos_testkit::drop_postgres_database(b).await;
        }
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
    anonymous_searches_and_item_views_write_no_row_anywhere,
    an_import_with_a_bad_row_imports_nothing_and_names_its_line,
    skipping_bad_rows_imports_the_valid_ones_and_reports_the_rest,
    imported_items_are_found_in_chinese_and_english_with_filters_and_counts,
    another_process_sees_catalog_changes_in_its_own_index_within_seconds,
    deleting_an_item_removes_it_from_search_and_its_files_from_media_storage,
    uploads_are_type_checked_size_limited_and_images_get_thumbnails,
    the_demo_catalog_fills_only_an_empty_catalog,
    a_reopened_process_catches_up_with_changes_made_while_it_was_down,
    what_a_user_keeps_is_listed_for_them_alone_and_only_they_can_change_or_delete_it,
    a_comment_that_mentions_someone_needs_the_authors_attestation_which_is_recorded,
    revoked_share_links_and_expired_download_links_stop_working,
    kept_text_is_encrypted_at_rest_and_erasing_the_user_removes_everything_they_kept,
);

const CSV: &str = "\
external_id,title_zh,title_en,description_zh,description_en,category,tags,price_min,price_max,currency
sku-1,夏季连衣裙,Summer dress,轻薄透气,Light and airy,clothing,summer|dress,199,259,CNY
sku-2,蓝牙耳机,Wireless headphones,降噪,Noise cancelling,electronics,audio,499,,CNY
sku-3,陶瓷茶杯,Ceramic teacup,手工,Handmade,home,kitchen,39.9,,
";

async fn import_csv(c: &Catalog, text: &str) -> Vec<i64> {
    c.import_text(text, Format::Csv, false, &mut |_| {})
        .await
        .unwrap()
        .ids
}

fn q(text: &str) -> SearchRequest {
    SearchRequest {
        q: Some(text.to_owned()),
        filters: Filters::default(),
        sort: None,
        cursor: None,
        limit: 20,
    }
}

async fn found(c: &Catalog, r: &SearchRequest) -> Vec<i64> {
    let out = c.search(r).await.unwrap();
    let mut ids: Vec<i64> = out
        .items
        .iter()
        .map(|j| {
            serde_json::from_str::<serde_json::Value>(j).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// Every table of a database with its row count.
async fn row_counts(url: &str) -> Vec<(String, i64)> {
    let db = Db::connect(url, custos_store::db::Schema::Data)
        .await
        .unwrap();
    let tables: Vec<(String,)> = match &db {
        Db::Sqlite(p) => {
            sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .fetch_all(p)
                .await
                .unwrap()
        }
        Db::Postgres(p) => sqlx::query_as(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
        )
        .fetch_all(p)
        .await
        .unwrap(),
    };
    let mut out = Vec::new();
    for (t,) in tables {
        let sql = format!("SELECT COUNT(*) FROM \"{t}\"");
        let (n,): (i64,) =
            custos_store::on_db!(&db, p => sqlx::query_as(&sql).fetch_one(p).await.unwrap());
        out.push((t, n));
    }
    db.close().await;
    out
}

async fn anonymous_searches_and_item_views_write_no_row_anywhere(env: Env) {
    let c = env.catalog();
    let ids = import_csv(c, CSV).await;
    let before = (
        row_counts(&env.cfg.database_url).await,
        row_counts(&env.cfg.vault_url).await,
    );
    assert!(before.0.iter().any(|(t, _)| t == "catalog_items"));
    for i in 0..100 {
        let mut r = q(["连衣裙", "dress", "headphnes", "", "茶杯"][i % 5]);
        r.filters.category = (i % 3 == 0).then(|| "clothing".to_owned());
        c.search(&r).await.unwrap();
        c.item(ids[i % ids.len()]).await.unwrap();
    }
    let after = (
        row_counts(&env.cfg.database_url).await,
        row_counts(&env.cfg.vault_url).await,
    );
    assert_eq!(before, after, "anonymous browsing changed a table");
    env.finish().await;
}

async fn an_import_with_a_bad_row_imports_nothing_and_names_its_line(env: Env) {
    let c = env.catalog();
    let bad = format!("{CSV}sku-4,,,,,home,,12,,\nsku-5,坏价格,Bad price,,,home,,-3,,\n");
    match c.import_text(&bad, Format::Csv, false, &mut |_| {}).await {
        Err(ImportError::Rows(rows)) => {
            let lines: Vec<usize> = rows.iter().map(|r| r.line).collect();
            assert_eq!(lines, vec![5, 6], "{rows:?}");
            assert!(rows[0].message.contains("title"));
            assert!(rows[1].message.contains("-3"));
        }
        other => panic!("expected row errors, got {other:?}"),
    }
    assert_eq!(c.count().await.unwrap(), 0, "nothing imported");
    let json = "[\n {\"title_en\": \"Mug\", \"category\": \"home\", \"price_min\": 20},\n {\"title_en\": \"Mug 2\", \"category\": \"home\", \"price_min\": 20, \"colour\": \"red\"}\n]";
    match c.import_text(json, Format::Json, false, &mut |_| {}).await {
        Err(ImportError::Rows(rows)) => {
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].line, 3);
            assert!(rows[0].message.contains("colour"), "{}", rows[0].message);
        }
        other => panic!("expected row errors, got {other:?}"),
    }
    match c
        .import_text("[{\"title_en\": ", Format::Json, false, &mut |_| {})
        .await
    {
        Err(ImportError::Rows(rows)) => assert_eq!(rows[0].line, 1),
        other => panic!("expected a syntax error, got {other:?}"),
    }
    match c
        .import_text("sku,title\n", Format::Csv, false, &mut |_| {})
        .await
    {
        Err(ImportError::Rows(rows)) => assert!(rows[0].message.contains("unknown column `sku`")),
        other => panic!("expected a header error, got {other:?}"),
    }
    assert_eq!(c.count().await.unwrap(), 0);
    env.finish().await;
}

async fn skipping_bad_rows_imports_the_valid_ones_and_reports_the_rest(env: Env) {
    let c = env.catalog();
    let bad = format!("{CSV}sku-4,,,,,home,,12,,\nsku-1,重复,Duplicate,,,home,,1,,\n");
    let mut seen = 0;
    let report = c
        .import_text(&bad, Format::Csv, true, &mut |n| seen = n)
        .await
        .unwrap();
    assert_eq!(report.imported, 3);
    assert_eq!(seen, 3, "progress reached the end");
    let lines: Vec<usize> = report.skipped.iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![5, 6]);
    assert_eq!(c.count().await.unwrap(), 3);
    // Importing the same external ids again updates instead of duplicating.
    let again = CSV.replace("Summer dress", "Summer maxi dress");
    import_csv(c, &again).await;
    assert_eq!(c.count().await.unwrap(), 3);
    assert_eq!(found(c, &q("maxi")).await.len(), 1);
    env.finish().await;
}

async fn imported_items_are_found_in_chinese_and_english_with_filters_and_counts(env: Env) {
    let c = env.catalog();
    let ids = import_csv(c, CSV).await;
    let extra = c
        .import_inputs(
            vec![ItemInput {
                title_zh: Some("碎花连衣裙".into()),
                title_en: Some("Floral dress".into()),
                category: Some("clothing".into()),
                tags: vec!["dress".into()],
                price_min: Some(serde_json::json!(89)),
                ..Default::default()
            }],
            false,
        )
        .await
        .unwrap()
        .ids[0];
    assert_eq!(found(c, &q("连衣裙")).await, vec![ids[0], extra]);
    assert_eq!(found(c, &q("headphnes")).await, vec![ids[1]]);
    let mut r = q("dress");
    r.filters.price_max = Some(10_000);
    assert_eq!(found(c, &r).await, vec![extra]);
    let mut all = q("");
    all.q = None;
    let out = c.search(&all).await.unwrap();
    assert_eq!(out.total, 4);
    let clothing = out
        .facets
        .category
        .iter()
        .find(|f| f.value == "clothing")
        .unwrap();
    assert_eq!(clothing.count, 2);
    assert_eq!(out.sort, Sort::Newest);
    let first: serde_json::Value = serde_json::from_str(&out.items[0]).unwrap();
    assert_eq!(first["id"], extra, "newest first");
    assert_eq!(first["title_zh"], "碎花连衣裙");
    assert_eq!(first["price_min"], 8_900);
    let body: serde_json::Value = serde_json::from_str(&out.to_json()).unwrap();
    assert_eq!(body["total"], 4);
    assert!(body["facets"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["value"] == "dress" && t["count"] == 2));
    env.finish().await;
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn another_process_sees_catalog_changes_in_its_own_index_within_seconds(env: Env) {
    let (b, _dir) = env.second().await;
    let a = env.catalog();
    let ids = import_csv(a, CSV).await;
    wait_until("the second process finds the import", async || {
        found(&b.catalog, &q("连衣裙")).await == vec![ids[0]]
    })
    .await;
    a.delete_item(ids[0]).await.unwrap();
    let header = CSV.lines().next().unwrap();
    let sku2 = CSV.lines().nth(2).unwrap().replace("Wireless", "Studio");
    import_csv(a, &format!("{header}\n{sku2}\n")).await;
    wait_until(
        "the second process drops the deleted item and sees the update",
        async || {
            found(&b.catalog, &q("连衣裙")).await.is_empty()
                && found(&b.catalog, &q("studio")).await.len() == 1
        },
    )
    .await;
    b.shutdown().await;
    env.finish().await;
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([10, 120, 200]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

async fn deleting_an_item_removes_it_from_search_and_its_files_from_media_storage(env: Env) {
    let c = env.catalog();
    let ids = import_csv(c, CSV).await;
    let m = c.add_media(ids[0], png(64, 48)).await.unwrap();
    let thumb = m.thumb_key.clone().unwrap();
    assert!(c.media_store().exists(&m.object_key).await.unwrap());
    assert!(c.media_store().exists(&thumb).await.unwrap());
    c.delete_item(ids[0]).await.unwrap();
    assert!(found(c, &q("连衣裙")).await.is_empty());
    assert!(!c.media_store().exists(&m.object_key).await.unwrap());
    assert!(!c.media_store().exists(&thumb).await.unwrap());
    assert_eq!(c.item(ids[0]).await.unwrap_err().code(), "not_found");
    assert_eq!(c.delete_item(ids[0]).await.unwrap_err().code(), "not_found");
    env.finish().await;
}

async fn uploads_are_type_checked_size_limited_and_images_get_thumbnails(env: Env) {
    let c = env.catalog();
    let ids = import_csv(c, CSV).await;
    let m = c.add_media(ids[1], png(800, 400)).await.unwrap();
    assert_eq!(
        (m.kind.as_str(), m.width, m.height),
        ("image", Some(800), Some(400))
    );
    let t = c
        .media_store()
        .get(m.thumb_key.as_deref().unwrap())
        .await
        .unwrap();
    let t = image::load_from_memory(&t).unwrap();
    assert_eq!((t.width(), t.height()), (320, 160));
    let mut video = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom".to_vec();
    video.resize(5_000, 7);
    let v = c.add_media(ids[1], video.clone()).await.unwrap();
    assert_eq!(
        (v.kind.as_str(), v.content_type.as_str()),
        ("video", "video/mp4")
    );
    assert_eq!(
        c.media_store()
            .get_range(&v.object_key, 10..20)
            .await
            .unwrap(),
        video[10..20].to_vec()
    );
    assert_eq!(
        c.add_media(ids[1], b"MZ\x90\0 not media".to_vec())
            .await
            .unwrap_err()
            .code(),
        "unsupported_media_type"
    );
    let mut broken = png(100, 100);
    broken.truncate(60);
    assert_eq!(
        c.add_media(ids[1], broken).await.unwrap_err().code(),
        "invalid_media"
    );
    assert_eq!(
        c.add_media(999_999, png(4, 4)).await.unwrap_err().code(),
        "not_found"
    );
    let item = c.item(ids[1]).await.unwrap();
    assert_eq!(item.media.len(), 2);
    let mut r = q("");
    r.q = None;
    r.filters.media = Some(custos_search::MediaKind::Video);
    assert_eq!(found(c, &r).await, vec![ids[1]]);
    env.finish().await;
}

async fn the_demo_catalog_fills_only_an_empty_catalog(env: Env) {
    let c = env.catalog();
    assert_eq!(c.seed_demo(12).await.unwrap(), 12);
    assert_eq!(
        c.seed_demo(12).await.unwrap(),
        0,
        "a second start adds nothing"
    );
    assert_eq!(c.count().await.unwrap(), 12);
    assert_eq!(c.indexed(), 12);
    let mut all = q("");
    all.q = None;
    let out = c.search(&all).await.unwrap();
    for j in &out.items {
        let v: serde_json::Value = serde_json::from_str(j).unwrap();
        assert!(v["thumbnail_url"].as_str().unwrap().ends_with("/thumbnail"));
    }
    env.finish().await;
}

async fn a_reopened_process_catches_up_with_changes_made_while_it_was_down(env: Env) {
    let (b, dir) = env.second().await;
    let b_cfg_dir = dir.path().to_path_buf();
    b.shutdown().await;
    let ids = import_csv(env.catalog(), CSV).await;
    let MasterKeySource::Inline(key) = &env.cfg.master_key else {
        unreachable!()
    };
    let mut cfg = config(&b_cfg_dir, env.pg.as_ref(), key, &env.cfg.data_dir);
    cfg.vault_url = env.cfg.vault_url.clone();
    drop(b);
    let b = App::open(&cfg, Arc::new(FakeClock::default()))
        .await
        .unwrap();
    assert_eq!(
        found(&b.catalog, &q("茶杯")).await,
        vec![ids[2]],
        "caught up on start"
    );
    b.shutdown().await;
    env.finish().await;
}

use custos_app::catalog::interactions::Kind;
use custos_core::{GateContext, SubjectId};

async fn what_a_user_keeps_is_listed_for_them_alone_and_only_they_can_change_or_delete_it(
    env: Env,
) {
    let c = env.catalog();
    let ids = import_csv(c, CSV).await;
    let media = c.add_media(ids[0], png(8, 8)).await.unwrap();
    let (alice, bob) = (SubjectId::random(), SubjectId::random());
    let ctx = GateContext::default();
    let b = c.bookmark(alice, &ctx, ids[0], Some("夏天")).await.unwrap();
    let (s, _token) = c.share(alice, &ctx, ids[1]).await.unwrap();
    let d = c.download(alice, &ctx, media.id).await.unwrap().record;
    let m = c
        .comment(alice, &ctx, ids[0], "很好看 lovely", false)
        .await
        .unwrap();
    assert_eq!(c.bookmarks(alice).await.unwrap()[0].collection, "夏天");
    assert_eq!(c.shares(alice).await.unwrap().len(), 1);
    assert_eq!(c.downloads(alice).await.unwrap().len(), 1);
    assert_eq!(c.my_comments(alice).await.unwrap().len(), 1);
    // Bob sees none of it as his, and cannot touch any of it.
    assert!(c.bookmarks(bob).await.unwrap().is_empty());
    assert!(c.shares(bob).await.unwrap().is_empty());
    assert!(c.downloads(bob).await.unwrap().is_empty());
    assert!(c.my_comments(bob).await.unwrap().is_empty());
    let owned = [
        (Kind::Bookmark, b.id),
        (Kind::Share, s.id),
        (Kind::Download, d.id),
        (Kind::Comment, m.id),
    ];
    for (kind, id) in owned {
        assert_eq!(
            c.remove(bob, kind, id).await.unwrap_err().code(),
            "not_found",
            "{kind:?}"
        );
    }
    assert_eq!(
        c.revoke_share(bob, s.id).await.unwrap_err().code(),
        "not_found"
    );
    assert_eq!(
        c.edit_comment(bob, &ctx, m.id, "hacked", false)
            .await
            .unwrap_err()
            .code(),
        "not_found"
    );
    assert_eq!(
        c.comments_on(ids[0]).await.unwrap()[0].body,
        "很好看 lovely"
    );
    // Alice edits, and deletes each one; then it is gone.
    let edited = c
        .edit_comment(alice, &ctx, m.id, "还不错 nice", false)
        .await
        .unwrap();
    assert_eq!(edited.body, "还不错 nice");
    for (kind, id) in owned {
        c.remove(alice, kind, id).await.unwrap();
        assert_eq!(
            c.remove(alice, kind, id).await.unwrap_err().code(),
            "not_found"
        );
    }
    assert!(c.bookmarks(alice).await.unwrap().is_empty());
    assert!(c.shares(alice).await.unwrap().is_empty());
    assert!(c.downloads(alice).await.unwrap().is_empty());
    assert!(c.comments_on(ids[0]).await.unwrap().is_empty());
    assert_eq!(
        c.bookmark(alice, &ctx, 999_999, None)
            .await
            .unwrap_err()
            .code(),
        "not_found"
    );
    env.finish().await;
}

async fn a_comment_that_mentions_someone_needs_the_authors_attestation_which_is_recorded(env: Env) {
    let c = env.catalog();
    let ids = import_csv(c, CSV).await;
    let a = SubjectId::random();
    let ctx = GateContext::default();
    for text in ["@小李 你穿这个好看", "王女士推荐的", "call 138-1234-5678"] {
        let e = c.comment(a, &ctx, ids[0], text, false).await.unwrap_err();
        assert_eq!(e.code(), "attestation_required", "{text}");
    }
    assert!(
        c.my_comments(a).await.unwrap().is_empty(),
        "nothing stored without it"
    );
    let m = c
        .comment(a, &ctx, ids[0], "@小李 你穿这个好看", true)
        .await
        .unwrap();
    assert_eq!(m.attested, vec!["mention"]);
    assert_eq!(
        c.comments_on(ids[0]).await.unwrap()[0].attested,
        vec!["mention"]
    );
    // Editing a comment into a mention needs the attestation again.
    let plain = c.comment(a, &ctx, ids[1], "nice", false).await.unwrap();
    assert!(plain.attested.is_empty());
    let e = c
        .edit_comment(a, &ctx, plain.id, "nice, ask Mr. Chen", false)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "attestation_required");
    let named = c
        .edit_comment(a, &ctx, plain.id, "nice, ask Mr. Chen", true)
        .await
        .unwrap();
    assert_eq!(named.attested, vec!["name"]);
    // Moderation hides a comment from others, not from its author.
    c.moderate(m.id, "hidden").await.unwrap();
    assert!(c.comments_on(ids[0]).await.unwrap().is_empty());
    assert_eq!(
        c.my_comments(a)
            .await
            .unwrap()
            .iter()
            .filter(|x| x.status == "hidden")
            .count(),
        1
    );
    assert_eq!(
        c.moderate(m.id, "deleted").await.unwrap_err().code(),
        "invalid_status"
    );
    env.finish().await;
}

async fn revoked_share_links_and_expired_download_links_stop_working(env: Env) {
    let c = env.catalog();
    let ids = import_csv(c, CSV).await;
    let media = c.add_media(ids[2], png(8, 8)).await.unwrap();
    let a = SubjectId::random();
    let ctx = GateContext::default();
    let (s, token) = c.share(a, &ctx, ids[2]).await.unwrap();
    assert_eq!(token.len(), 43, "256 random bits");
    assert_eq!(c.open_share(&token).await.unwrap().id, ids[2]);
    assert_eq!(
        c.open_share(&"x".repeat(43)).await.unwrap_err().code(),
        "not_found"
    );
    c.revoke_share(a, s.id).await.unwrap();
    assert_eq!(c.open_share(&token).await.unwrap_err().code(), "not_found");
    assert!(c.shares(a).await.unwrap()[0].revoked, "listed as revoked");

    let link = c.download(a, &ctx, media.id).await.unwrap();
    assert_eq!(c.open_download(&link.token).await.unwrap().id, media.id);
    let mut forged = link.token.clone().into_bytes();
    forged[2] = if forged[2] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(
        c.open_download(&forged).await.unwrap_err().code(),
        "not_found"
    );
    env.clock.advance(time::Duration::minutes(16));
    assert_eq!(
        c.open_download(&link.token).await.unwrap_err().code(),
        "link_expired"
    );
    env.finish().await;
}

async fn kept_text_is_encrypted_at_rest_and_erasing_the_user_removes_everything_they_kept(
    env: Env,
) {
    let c = env.catalog();
    let ids = import_csv(c, CSV).await;
    let a = SubjectId::random();
    let ctx = GateContext::default();
    c.bookmark(a, &ctx, ids[0], Some("Secret-Collection-7731"))
        .await
        .unwrap();
    c.comment(a, &ctx, ids[0], "Unique-Comment-Text-5512", false)
        .await
        .unwrap();
    c.share(a, &ctx, ids[1]).await.unwrap();
    assert_eq!(
        c.comments_on(ids[0]).await.unwrap()[0].body,
        "Unique-Comment-Text-5512"
    );
    let dump = dump(&env).await;
    for needle in ["Secret-Collection-7731", "Unique-Comment-Text-5512"] {
        assert!(
            !custos_testkit::contains(&dump, needle.as_bytes()),
            "{needle} stored in plain text"
        );
    }
    assert_eq!(c.erase_subject(a).await.unwrap(), 3);
    env.app.kernel.erase_subject(a).await.unwrap();
    assert!(c.bookmarks(a).await.unwrap().is_empty());
    assert!(c.shares(a).await.unwrap().is_empty());
    assert!(c.comments_on(ids[0]).await.unwrap().is_empty());
    env.finish().await;
}

/// Every byte of the data store: the SQLite files after a checkpoint, or a `pg_dump`
/// of both databases.
async fn dump(env: &Env) -> Vec<u8> {
    match &env.pg {
        None => {
            for db in [&env.app.kernel.db, env.app.kernel.vault.db()] {
                if let Db::Sqlite(p) = db {
                    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                        .execute(p)
                        .await
                        .unwrap();
                }
            }
            std::fs::read_dir(&env.cfg.data_dir)
                .unwrap()
                .flatten()
                .filter(|e| e.path().is_file())
                .flat_map(|e| std::fs::read(e.path()).unwrap_or_default())
                .collect()
        }
        Some((data, vault)) => [data, vault]
            .iter()
            .flat_map(|url| {
                let out = std::process::Command::new("pg_dump")
                    .arg("--dbname")
                    .arg(url)
                    .output()
                    .expect("pg_dump runs");
                assert!(out.status.success());
                out.stdout
            })
            .collect(),
    }
}

#[tokio::test]
async fn media_can_live_in_an_object_store_instead_of_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate(&mut OsRng).to_base64();
    let mut cfg = config(dir.path(), None, &key, dir.path());
    cfg.catalog.media_url = Some("memory://".into());
    let app = App::open(&cfg, Arc::new(FakeClock::default()))
        .await
        .unwrap();
    let ids = import_csv(&app.catalog, CSV).await;
    let m = app.catalog.add_media(ids[0], png(32, 32)).await.unwrap();
    assert!(app
        .catalog
        .media_store()
        .exists(&m.object_key)
        .await
        .unwrap());
    assert!(
        !dir.path().join("media").exists(),
        "nothing on the local disk"
    );
    cfg.catalog.media_dir = Some(dir.path().join("elsewhere"));
    let both = App::open(&cfg, Arc::new(FakeClock::default())).await;
    assert!(
        both.is_err(),
        "media_dir and media_url together are refused"
    );
    app.shutdown().await;
}
