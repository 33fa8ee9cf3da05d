//! The catalog over HTTP, in-process through `app()`: anonymous browsing and searching
//! (P5), filters and facets (P26), bad input answered with stable codes, the operator
//! API and media (uploads, thumbnails, byte ranges).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use custos_app::catalog::CatalogConfig;
use custos_app::config::MasterKeySource;
use custos_app::{App, Config};
use custos_core::FakeClock;
use custos_crypto::{MasterKey, OsRng};
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "operator-token-for-tests-0123456789";

struct TestApp {
    router: Router,
    app: App,
    dir: tempfile::TempDir,
}

async fn spawn_app(token: Option<&str>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        data_dir: dir.path().to_path_buf(),
        database_url: format!("sqlite://{}", dir.path().join("custos.db").display()),
        vault_url: format!("sqlite://{}", dir.path().join("keys.db").display()),
        master_key: MasterKeySource::Inline(MasterKey::generate(&mut OsRng).to_base64()),
        policy: None,
        identity: Default::default(),
        catalog: CatalogConfig {
            operator_token: token.map(str::to_owned),
            max_upload_bytes: Some(200_000),
            ..Default::default()
        },
        ..Default::default()
    };
    let app = App::open(&cfg, Arc::new(FakeClock::default()))
        .await
        .unwrap();
    TestApp {
        router: custos_http::app(app.clone()),
        app,
        dir,
    }
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
}

impl TestApp {
    async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }
    async fn get(&self, uri: &str) -> Resp {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }
    async fn operator(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Body,
        json: bool,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if json {
            b = b.header(header::CONTENT_TYPE, "application/json");
        }
        self.send(b.body(body).unwrap()).await
    }
    async fn import(&self, items: Value) -> Vec<i64> {
        let r = self
            .operator(
                "POST",
                "/api/v1/operator/items",
                Some(TOKEN),
                Body::from(items.to_string()),
                true,
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    }
}

fn sample() -> Value {
    json!([
        {"title_zh": "夏季连衣裙", "title_en": "Summer dress", "category": "clothing", "tags": ["summer", "dress"], "price_min": 199},
        {"title_zh": "碎花连衣裙", "title_en": "Floral dress", "category": "clothing", "tags": ["dress"], "price_min": "89.00", "price_max": 129},
        {"title_zh": "蓝牙耳机", "title_en": "Wireless headphones", "category": "electronics", "tags": ["audio"], "price_min": 499},
        {"title_zh": "陶瓷茶杯", "title_en": "Ceramic teacup", "category": "home", "price_min": 39.9}
    ])
}

/// Row counts of every table in the data and key databases.
async fn row_counts(dir: &std::path::Path) -> Vec<(String, String, i64)> {
    let mut out = Vec::new();
    for file in ["custos.db", "keys.db"] {
        let url = format!("sqlite://{}", dir.join(file).display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let tables: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .fetch_all(&pool)
                .await
                .unwrap();
        for (t,) in tables {
            let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM \"{t}\""))
                .fetch_one(&pool)
                .await
                .unwrap();
            out.push((file.to_owned(), t, n));
        }
        pool.close().await;
    }
    out
}

#[tokio::test]
async fn anonymous_browsing_and_search_need_no_identifier_set_no_cookie_and_store_nothing() {
    let app = spawn_app(Some(TOKEN)).await;
    let ids = app.import(sample()).await;
    let before = row_counts(app.dir.path()).await;
    assert!(before
        .iter()
        .any(|(_, t, n)| t == "catalog_items" && *n == 4));
    let uris = [
        "/api/v1/items".to_owned(),
        "/api/v1/items?q=%E8%BF%9E%E8%A1%A3%E8%A3%99".to_owned(),
        "/api/v1/items?q=headphnes&sort=newest".to_owned(),
        "/api/v1/items?category=clothing&tags=dress&price_max=150".to_owned(),
        format!("/api/v1/items/{}", ids[0]),
    ];
    for i in 0..60 {
        let mut req = Request::get(&uris[i % uris.len()]);
        if i % 2 == 0 {
            // Every optional purpose is refused by default; GPC objects to the rest.
            req = req.header("sec-gpc", "1");
        }
        let r = app.send(req.body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", uris[i % uris.len()]);
        assert!(
            r.headers.get(header::SET_COOKIE).is_none(),
            "browsing set a cookie"
        );
    }
    let after = row_counts(app.dir.path()).await;
    assert_eq!(before, after, "anonymous browsing wrote to a table");
}

#[tokio::test]
async fn a_search_answers_with_items_facets_and_a_cursor_that_walks_every_page() {
    let app = spawn_app(Some(TOKEN)).await;
    let ids = app.import(sample()).await;
    let r = app
        .get("/api/v1/items?q=%E8%BF%9E%E8%A1%A3%E8%A3%99")
        .await
        .json();
    let found: Vec<i64> = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(found.len(), 2);
    assert!(found.contains(&ids[0]) && found.contains(&ids[1]));
    assert_eq!(r["total"], 2);
    assert_eq!(r["sort"], "relevance");
    assert_eq!(
        r["facets"]["category"],
        json!([{"value": "clothing", "count": 2}])
    );
    assert_eq!(r["items"][0]["currency"], "CNY");

    let r = app
        .get("/api/v1/items?category=clothing&price_min=150")
        .await
        .json();
    assert_eq!(r["total"], 1);
    assert_eq!(r["items"][0]["id"], ids[0]);

    let mut seen = Vec::new();
    let mut uri = "/api/v1/items?limit=1&sort=newest".to_owned();
    loop {
        let page = app.get(&uri).await.json();
        assert_eq!(page["total"], 4);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => uri = format!("/api/v1/items?limit=1&sort=newest&cursor={c}"),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected, "newest first, each once");
}

#[tokio::test]
async fn bad_search_input_is_answered_with_a_400_and_a_stable_code() {
    let app = spawn_app(Some(TOKEN)).await;
    app.import(sample()).await;
    let first = app.get("/api/v1/items?q=dress&limit=1").await.json();
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let mut tampered = cursor.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let long = "a".repeat(257);
    let cases = [
        (format!("/api/v1/items?q={long}"), "query_too_long"),
        ("/api/v1/items?colour=red".to_owned(), "unknown_filter"),
        (
            format!("/api/v1/items?q=dress&limit=1&cursor={tampered}"),
            "invalid_cursor",
        ),
        (
            format!("/api/v1/items?q=shoes&limit=1&cursor={cursor}"),
            "invalid_cursor",
        ),
        (
            "/api/v1/items?cursor=%00%01garbage".to_owned(),
            "invalid_cursor",
        ),
        ("/api/v1/items?limit=0".to_owned(), "invalid_limit"),
        ("/api/v1/items?limit=101".to_owned(), "invalid_limit"),
        ("/api/v1/items?sort=cheapest".to_owned(), "invalid_sort"),
        ("/api/v1/items?price_min=abc".to_owned(), "invalid_filter"),
        (
            "/api/v1/items?price_min=10&price_max=5".to_owned(),
            "invalid_filter",
        ),
        ("/api/v1/items?media=audio".to_owned(), "invalid_filter"),
        ("/api/v1/items?q=a&q=b".to_owned(), "invalid_query"),
        (
            "/api/v1/items?tags=a,b,c,d,e,f,g,h,i,j,k".to_owned(),
            "invalid_filter",
        ),
    ];
    for (uri, code) in cases {
        let r = app.get(&uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(r.code(), code, "{uri}");
    }
    let ok = app
        .get(&format!("/api/v1/items?q=dress&limit=1&cursor={cursor}"))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "the untampered cursor works");
    assert_eq!(app.get("/api/v1/items/999999").await.code(), "not_found");
    let r = app.get("/api/v1/items/abc").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_path")
    );
}

#[tokio::test]
async fn operator_routes_need_the_operator_token_and_are_off_without_one() {
    let off = spawn_app(None).await;
    let r = off
        .operator(
            "POST",
            "/api/v1/operator/items",
            Some(TOKEN),
            Body::from(sample().to_string()),
            true,
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "operator_api_disabled")
    );

    let app = spawn_app(Some(TOKEN)).await;
    for token in [None, Some("wrong-token-wrong-token-wrong"), Some("")] {
        let r = app
            .operator(
                "POST",
                "/api/v1/operator/items",
                token,
                Body::from(sample().to_string()),
                true,
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNAUTHORIZED, "unauthorized")
        );
        let r = app
            .operator(
                "DELETE",
                "/api/v1/operator/items/1",
                token,
                Body::empty(),
                false,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.app.catalog.count().await.unwrap(), 0);

    let bad = json!([{"title_en": "ok", "category": "home", "price_min": 1}, {"category": "home", "price_min": 1}]);
    let r = app
        .operator(
            "POST",
            "/api/v1/operator/items",
            Some(TOKEN),
            Body::from(bad.to_string()),
            true,
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_rows")
    );
    assert_eq!(r.json()["rows"][0]["line"], 2);
    assert_eq!(app.app.catalog.count().await.unwrap(), 0, "all or nothing");
    let r = app
        .operator(
            "POST",
            "/api/v1/operator/items?skip_bad_rows=true",
            Some(TOKEN),
            Body::from(bad.to_string()),
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["imported"], 1);
    let id = r.json()["ids"][0].as_i64().unwrap();
    let r = app
        .operator(
            "DELETE",
            &format!("/api/v1/operator/items/{id}"),
            Some(TOKEN),
            Body::empty(),
            false,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/api/v1/items/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([30, 160, 90]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

#[tokio::test]
async fn uploads_are_sniffed_and_limited_images_get_thumbnails_and_videos_are_served_in_ranges() {
    let app = spawn_app(Some(TOKEN)).await;
    let ids = app.import(sample()).await;
    let up = |body: Vec<u8>| {
        let app = &app;
        let uri = format!("/api/v1/operator/items/{}/media", ids[0]);
        async move {
            app.operator("POST", &uri, Some(TOKEN), Body::from(body), false)
                .await
        }
    };
    let r = up(png(640, 480)).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let image = r.json();
    assert_eq!(image["kind"], "image");
    let t = app.get(image["thumbnail_url"].as_str().unwrap()).await;
    assert_eq!(t.headers[header::CONTENT_TYPE], "image/jpeg");
    assert!(t.body.len() > 100);

    let mut video = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom".to_vec();
    video.extend((0..10_000u32).map(|i| (i % 251) as u8));
    let r = up(video.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let url = r.json()["url"].as_str().unwrap().to_owned();
    let whole = app.get(&url).await;
    assert_eq!(
        (whole.status, whole.body.len()),
        (StatusCode::OK, video.len())
    );
    assert_eq!(whole.headers[header::ACCEPT_RANGES], "bytes");
    let ranged = |range: &str| {
        let req = Request::get(&url)
            .header(header::RANGE, range)
            .body(Body::empty())
            .unwrap();
        app.send(req)
    };
    let r = ranged("bytes=100-199").await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, video[100..200].to_vec());
    assert_eq!(
        r.headers[header::CONTENT_RANGE],
        format!("bytes 100-199/{}", video.len())
    );
    let r = ranged("bytes=-10").await;
    assert_eq!(r.body, video[video.len() - 10..].to_vec());
    let r = ranged("bytes=999999-").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable")
    );

    let item = app.get(&format!("/api/v1/items/{}", ids[0])).await.json();
    assert_eq!(item["media"].as_array().unwrap().len(), 2);
    let videos = app.get("/api/v1/items?media=video").await.json();
    assert_eq!(videos["total"], 1);

    let r = up(b"#!/bin/sh\necho not media".to_vec()).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let mut broken = png(50, 50);
    broken.truncate(70);
    let r = up(broken).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_media")
    );
    let r = up(vec![0xFF; 300_000]).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "media_too_large")
    );
    let r = app
        .operator(
            "POST",
            "/api/v1/operator/items/999999/media",
            Some(TOKEN),
            Body::from(png(4, 4)),
            false,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/api/v1/media/999999").await.status,
        StatusCode::NOT_FOUND
    );
}

/// A session token for a new subject, made the way a sign-in makes it.
async fn signed_in(app: &TestApp) -> String {
    let s = app
        .app
        .identity
        .create_session(custos_core::SubjectId::random(), true)
        .await
        .unwrap();
    s.token.expose().clone()
}

impl TestApp {
    async fn as_user(&self, method: &str, uri: &str, token: &str, body: Option<Value>) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if body.is_some() {
            b = b.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or_else(Body::empty, |v| Body::from(v.to_string()));
        self.send(b.body(body).unwrap()).await
    }
}

#[tokio::test]
async fn every_user_owned_resource_is_reachable_by_its_owner_alone() {
    let app = spawn_app(Some(TOKEN)).await;
    let ids = app.import(sample()).await;
    let media = app
        .operator(
            "POST",
            &format!("/api/v1/operator/items/{}/media", ids[0]),
            Some(TOKEN),
            Body::from(png(16, 16)),
            false,
        )
        .await
        .json()["id"]
        .as_i64()
        .unwrap();
    let (alice, bob) = (signed_in(&app).await, signed_in(&app).await);

    let r = app
        .as_user(
            "POST",
            "/api/v1/me/bookmarks",
            &alice,
            Some(json!({"item_id": ids[0], "collection": "夏天"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let bookmark = r.json()["id"].as_i64().unwrap();
    let r = app
        .as_user(
            "POST",
            "/api/v1/me/shares",
            &alice,
            Some(json!({"item_id": ids[1]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let (share, share_url) = (
        r.json()["share"]["id"].as_i64().unwrap(),
        r.json()["url"].as_str().unwrap().to_owned(),
    );
    let r = app
        .as_user(
            "POST",
            "/api/v1/me/downloads",
            &alice,
            Some(json!({"media_id": media})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let (download, download_url) = (
        r.json()["download"]["id"].as_i64().unwrap(),
        r.json()["url"].as_str().unwrap().to_owned(),
    );
    let r = app
        .as_user(
            "POST",
            &format!("/api/v1/items/{}/comments", ids[0]),
            &alice,
            Some(json!({"body": "好看"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let comment = r.json()["id"].as_i64().unwrap();

    // Without a session: 401. Bob: empty lists, and 404 on each of Alice's ids.
    for uri in [
        "/api/v1/me/bookmarks",
        "/api/v1/me/shares",
        "/api/v1/me/downloads",
        "/api/v1/me/comments",
    ] {
        assert_eq!(app.get(uri).await.status, StatusCode::UNAUTHORIZED, "{uri}");
        let r = app.as_user("GET", uri, &bob, None).await;
        assert_eq!(r.json(), json!([]), "{uri}");
        assert_eq!(
            app.as_user("GET", uri, &alice, None)
                .await
                .json()
                .as_array()
                .unwrap()
                .len(),
            1,
            "{uri}"
        );
    }
    let owned = [
        format!("/api/v1/me/bookmarks/{bookmark}"),
        format!("/api/v1/me/shares/{share}"),
        format!("/api/v1/me/downloads/{download}"),
        format!("/api/v1/me/comments/{comment}"),
    ];
    for uri in &owned {
        let r = app.as_user("DELETE", uri, &bob, None).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{uri}"
        );
    }
    let r = app
        .as_user("PATCH", &owned[3], &bob, Some(json!({"body": "hacked"})))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&share_url).await.status,
        StatusCode::OK,
        "still shared"
    );
    assert_eq!(app.get(&download_url).await.status, StatusCode::OK);
    let r = app
        .get(&format!("/api/v1/items/{}/comments", ids[0]))
        .await
        .json();
    assert_eq!(r[0]["body"], "好看");

    // A mention needs the attestation.
    let r = app
        .as_user(
            "PATCH",
            &owned[3],
            &alice,
            Some(json!({"body": "@小王 好看"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "attestation_required")
    );
    let r = app
        .as_user(
            "PATCH",
            &owned[3],
            &alice,
            Some(json!({"body": "@小王 好看", "attest_may_share": true})),
        )
        .await;
    assert_eq!(r.json()["attested"], json!(["mention"]));

    // Alice deletes each; the share link stops working.
    for uri in &owned {
        assert_eq!(
            app.as_user("DELETE", uri, &alice, None).await.status,
            StatusCode::NO_CONTENT,
            "{uri}"
        );
    }
    assert_eq!(app.get(&share_url).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&format!("/api/v1/items/{}/comments", ids[0]))
            .await
            .json(),
        json!([])
    );
    let r = app.get("/api/v1/downloads/not-a-link").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
