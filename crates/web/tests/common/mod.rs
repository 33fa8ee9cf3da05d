//! Test harness shared by the web tests: an app on SQLite in a temporary directory with a
//! small demo catalog, called in-process (`get`, `post_form`) or served on a real socket
//! (`serve`) for the browser. Add helpers here rather than copying them into test files.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use custos_app::catalog::CatalogConfig;
use custos_app::config::MasterKeySource;
use custos_app::identity::sms::Outbox;
use custos_app::{App, Config};
use custos_core::FakeClock;
use custos_crypto::{MasterKey, OsRng};
use tower::ServiceExt;

pub const OPERATOR_TOKEN: &str = "operator-token-for-web-tests-0123456789";
pub const DEMO_ITEMS: usize = 24;

pub struct WebApp {
    pub router: Router,
    pub app: App,
    pub clock: Arc<FakeClock>,
    pub dir: tempfile::TempDir,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    /// `Set-Cookie` name=value pairs of this response.
    pub fn cookies(&self) -> Vec<(String, String)> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect()
    }
    pub fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }
}

pub fn config(dir: &std::path::Path) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        database_url: format!("sqlite://{}", dir.join("custos.db").display()),
        vault_url: format!("sqlite://{}", dir.join("keys.db").display()),
        master_key: MasterKeySource::Inline(MasterKey::generate(&mut OsRng).to_base64()),
        catalog: CatalogConfig {
            operator_token: Some(OPERATOR_TOKEN.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// An app with the default configuration and [`DEMO_ITEMS`] demo items.
pub async fn spawn() -> WebApp {
    spawn_with(|_| {}).await
}

/// Like [`spawn`], after `tweak` adjusts the configuration.
pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> WebApp {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    tweak(&mut cfg);
    let clock = Arc::new(FakeClock::default());
    let app = App::open(&cfg, clock.clone()).await.unwrap();
    app.catalog.seed_demo(DEMO_ITEMS).await.unwrap();
    WebApp {
        router: custos_web::app(app.clone()),
        app,
        clock,
        dir,
    }
}

fn cookie_header(cookies: &[(&str, &str)]) -> String {
    cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl WebApp {
    pub async fn request(&self, req: Request<Body>) -> Resp {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
            .await
            .unwrap();
        Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// GET `uri` with these cookies (and `Accept-Language: en` unless `lang=` says else).
    pub async fn get(&self, uri: &str, cookies: &[(&str, &str)]) -> Resp {
        let req = Request::get(uri)
            .header(header::COOKIE, cookie_header(cookies))
            .header(header::ACCEPT_LANGUAGE, "en")
            .body(Body::empty())
            .unwrap();
        self.request(req).await
    }

    /// POST a form from this origin, as a browser would.
    pub async fn post_form(
        &self,
        uri: &str,
        cookies: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> Resp {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let req = Request::post(uri)
            .header(header::COOKIE, cookie_header(cookies))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "same-origin")
            .header(header::ACCEPT_LANGUAGE, "en")
            .body(Body::from(body))
            .unwrap();
        self.request(req).await
    }

    /// The last six-digit code texted to `e164` (from the SMS outbox).
    pub fn last_sms_code(&self, e164: &str) -> Option<String> {
        let entries = Outbox::read(&self.dir.path().join("sms-outbox.jsonl"));
        let e = entries.iter().rev().find(|e| e.to == e164)?;
        e.text
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .map(str::to_owned)
    }

    /// Serves the app on 127.0.0.1 (a random port) for a real browser.
    pub async fn serve(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = self.router.clone();
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .ok();
        });
        addr
    }
}

/// A signed-in user made through the app layer (SMS code from the outbox).
pub struct SignedInUser {
    pub token: String,
    pub csrf: String,
    pub subject: custos_core::SubjectId,
}

impl SignedInUser {
    /// The session cookie pair for `get`/`post_form`.
    pub fn cookie(&self) -> (&'static str, &str) {
        ("__Host-custos-session", self.token.as_str())
    }
}

impl WebApp {
    /// Signs `e164` in (creating the account) through the app layer.
    pub async fn sign_in_user(&self, e164: &str) -> SignedInUser {
        let phone = custos_app::identity::phone::PhoneNumber::parse(e164).unwrap();
        let ch = self.app.identity.start_sign_in(&phone, None).await.unwrap();
        let code = self.last_sms_code(phone.e164()).unwrap();
        let s = self
            .app
            .identity
            .sign_in(&ch.challenge_id, &code, None)
            .await
            .unwrap()
            .session;
        SignedInUser {
            token: s.token.expose().clone(),
            csrf: s.csrf_token,
            subject: s.subject,
        }
    }
}

impl WebApp {
    /// Row counts of every table of the data and key databases, to show a request wrote
    /// nothing.
    pub async fn row_counts(&self) -> Vec<(String, String, i64)> {
        let mut out = Vec::new();
        for file in ["custos.db", "keys.db"] {
            let url = format!("sqlite://{}", self.dir.path().join(file).display());
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
}
