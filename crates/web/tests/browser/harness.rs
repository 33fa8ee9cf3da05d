//! The browser harness: a chromedriver process on a free port driving Debian's headless
//! Chromium over WebDriver (`fantoccini`), with helpers that poll for elements, take
//! screenshots and run axe-core.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a step waits for what the user should see.
pub const WAIT: Duration = Duration::from_secs(20);
pub const DESKTOP: (u32, u32) = (1280, 900);
pub const PHONE: (u32, u32) = (390, 844);

/// Browser tests run one at a time: two Chromiums on two cores slow each other past
/// every timeout.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `CUSTOS_REQUIRE_BROWSER=1` (set by `.ci/run`) turns a skip into a failure.
pub fn required() -> bool {
    std::env::var("CUSTOS_REQUIRE_BROWSER").is_ok_and(|v| v == "1")
}

/// Whether Chromium and chromedriver are installed. When not: says so and answers
/// `false` (the caller skips), or fails under `CUSTOS_REQUIRE_BROWSER=1`.
pub fn browser_available() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "browser tests need {} (apt-get install chromium chromium-driver; .ci/run does it)",
        missing.join(" and ")
    );
    assert!(!required(), "CUSTOS_REQUIRE_BROWSER=1: {msg}");
    eprintln!("SKIPPED: {msg}");
    false
}

/// The workspace's target directory (artifacts: screenshots; axe-core's install).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(d)
            }
        }
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    }
}

/// axe-core's script (installed by `.ci/run` with npm into `target/axe`), or `None`
/// after saying why (a failure under `CUSTOS_REQUIRE_BROWSER=1`).
pub fn axe_script() -> Option<String> {
    let path = target_dir().join("axe/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(s) => Some(s),
        Err(e) => {
            let msg = format!(
                "accessibility checks need axe-core at {} ({e}); \
                 npm install --prefix target/axe axe-core@4",
                path.display()
            );
            assert!(!required(), "CUSTOS_REQUIRE_BROWSER=1: {msg}");
            eprintln!("SKIPPED accessibility checks: {msg}");
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A chromedriver process in its own process group; the group (chromedriver and the
/// Chromium it started) is killed on drop, so a failed test leaves no browser behind.
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Driver {
    pub async fn start() -> Driver {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let d = Driver { child, url };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(r) = http.get(format!("{}/status", d.url)).send().await {
                if r.status().is_success() {
                    return d;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on {}",
                d.url
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The negative id names the process group this test started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One headless Chromium showing the app at `base`.
pub struct Browser {
    pub c: Client,
    pub base: String,
    /// What the scenario is doing, for failure messages.
    pub step: String,
    shots: PathBuf,
    axe: Option<String>,
    /// Accessibility violations found so far: (page, rule, impact, targets).
    pub violations: Vec<String>,
    _profile: tempfile::TempDir,
    _driver: Driver,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium at the desktop size, for the app
    /// listening on `addr` (reached as `http://localhost:port`: Chromium treats
    /// `localhost` as a secure context, so it keeps the `Secure` `__Host-` cookies).
    pub async fn start(addr: std::net::SocketAddr) -> Browser {
        Browser::start_at(&format!("http://localhost:{}", addr.port())).await
    }

    pub async fn start_at(base: &str) -> Browser {
        let driver = Driver::start().await;
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-extensions",
                    "--no-first-run",
                    "--lang=en-US",
                    "--hide-scrollbars",
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": { "intl.accept_languages": "en-US,en" }
            }
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .expect("open a Chromium session through chromedriver");
        let shots = target_dir().join("web-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            c,
            base: base.trim_end_matches('/').to_owned(),
            step: "start".into(),
            shots,
            axe: axe_script(),
            violations: Vec::new(),
            _profile: profile,
            _driver: driver,
        }
    }

    /// Closes the session (Chromium exits); the driver is killed on drop.
    pub async fn close(self) {
        let Browser { c, _driver, .. } = self;
        let _ = c.close().await;
        drop(_driver);
    }

    pub fn step(&mut self, s: &str) {
        eprintln!("browser step: {s}");
        self.step = s.to_owned();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn goto(&self, path: &str) {
        self.c
            .goto(&self.url(path))
            .await
            .unwrap_or_else(|e| panic!("[{}] open {path}: {e}", self.step));
    }

    pub async fn path(&self) -> String {
        let u = self.c.current_url().await.unwrap();
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        }
    }

    /// The element `css`, waited for: what the user should see.
    pub async fn find(&self, css: &str) -> Element {
        match self
            .c
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!(
                "[{}] `{css}` did not appear on {} within {WAIT:?}: {e}",
                self.step,
                self.path().await
            ),
        }
    }

    /// Every element matching `css` now (no waiting).
    pub async fn all(&self, css: &str) -> Vec<Element> {
        self.c.find_all(Locator::Css(css)).await.unwrap()
    }

    pub async fn has(&self, css: &str) -> bool {
        !self.all(css).await.is_empty()
    }

    /// Asserts nothing matches `css` on the page as loaded.
    pub async fn assert_absent(&self, css: &str) {
        assert!(
            !self.has(css).await,
            "[{}] `{css}` should not be on {}",
            self.step,
            self.path().await
        );
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        e.click()
            .await
            .unwrap_or_else(|err| panic!("[{}] click `{css}`: {err}", self.step));
    }

    /// Clicks `css` (a submit button) and waits until the next page replaced this one.
    pub async fn submit(&self, css: &str) {
        let marker = self.mark_page().await;
        self.click(css).await;
        self.wait_new_page(&marker).await;
    }

    /// Puts a marker on the current document, to tell when a navigation replaced it.
    async fn mark_page(&self) -> String {
        let m = format!("m{}", rand_suffix());
        self.c
            .execute("window.__custosMark = arguments[0];", vec![json!(m)])
            .await
            .unwrap();
        m
    }

    async fn wait_new_page(&self, marker: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let r = self
                .c
                .execute(
                    "return document.readyState === 'complete' && window.__custosMark !== arguments[0];",
                    vec![json!(marker)],
                )
                .await;
            if matches!(r, Ok(Value::Bool(true))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "[{}] no new page after submitting on {}",
                self.step,
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.ok();
        e.send_keys(text)
            .await
            .unwrap_or_else(|err| panic!("[{}] type into `{css}`: {err}", self.step));
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.c
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("[{}] script failed: {e}", self.step))
    }

    pub async fn js_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.c
            .execute_async(script, args)
            .await
            .unwrap_or_else(|e| panic!("[{}] async script failed: {e}", self.step))
    }

    /// `fetch(path)` inside the page (with the page's cookies): (status, body).
    pub async fn fetch_in_page(&self, path: &str) -> (u16, String) {
        let v = self
            .js_async(
                "const [url, done] = arguments;
                 fetch(url, {credentials: 'same-origin'})
                   .then(r => r.text().then(t => done([r.status, t])))
                   .catch(e => done([0, String(e)]));",
                vec![json!(path)],
            )
            .await;
        (
            v[0].as_u64().unwrap_or(0) as u16,
            v[1].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// The id of the focused element ("" when it has none; "BODY" when nothing is focused).
    pub async fn focused(&self) -> String {
        let v = self
            .js(
                "const a = document.activeElement;
                 if (!a || a === document.body) return 'BODY';
                 return a.id || (a.tagName + '.' + a.className);",
                vec![],
            )
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Presses a key on whatever has focus.
    pub async fn press(&self, key: Key) {
        let k: char = key.into();
        let actions = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: k })
            .then(KeyAction::Up { value: k });
        self.c.perform_actions(actions).await.unwrap();
    }

    pub async fn resize(&self, (w, h): (u32, u32)) {
        self.c.set_window_size(w, h).await.unwrap();
    }

    /// Saves a PNG of the viewport as `target/web-screenshots/<name>.png`.
    pub async fn shot(&self, name: &str) {
        self.js("window.scrollTo(0, 0);", vec![]).await;
        let png = self.c.screenshot().await.unwrap();
        assert!(
            png.starts_with(b"\x89PNG"),
            "screenshot {name} is not a PNG"
        );
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// The page does not scroll sideways (responsive layout at the current size).
    pub async fn assert_no_horizontal_scroll(&self) {
        let v = self
            .js(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await;
        let (sw, iw) = (v[0].as_u64().unwrap(), v[1].as_u64().unwrap());
        assert!(
            sw <= iw,
            "[{}] {} is {sw}px wide in a {iw}px window (scrolls sideways)",
            self.step,
            self.path().await
        );
    }

    /// Runs axe-core's WCAG 2.0/2.1 A and AA rules on the page and records violations
    /// under `page` (asserted at the end of the test, so one run reports them all).
    pub async fn axe(&mut self, page: &str) {
        let Some(src) = self.axe.clone() else { return };
        // WebDriver's script execution is not an inline <script>, so the CSP allows it.
        self.js(&src, vec![]).await;
        let v = self
            .js_async(
                "const done = arguments[0];
                 window.axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']})
                   .then(r => done(r.violations.map(v => ({
                       id: v.id, impact: v.impact,
                       targets: v.nodes.slice(0, 5).map(n => n.target.join(' ')),
                       summary: v.nodes.length ? (v.nodes[0].failureSummary || '') : ''}))))
                   .catch(e => done([{id: 'axe-error', impact: 'error', targets: [String(e)], summary: ''}]));",
                vec![],
            )
            .await;
        for x in v.as_array().cloned().unwrap_or_default() {
            self.violations.push(format!(
                "{page} ({}): {} [{}] at {} — {}",
                self.path().await,
                x["id"].as_str().unwrap_or("?"),
                x["impact"].as_str().unwrap_or("?"),
                x["targets"]
                    .as_array()
                    .map(|t| t
                        .iter()
                        .filter_map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" | "))
                    .unwrap_or_default(),
                x["summary"].as_str().unwrap_or("").replace('\n', " "),
            ));
        }
    }

    /// Screenshot and accessibility check of a main page.
    pub async fn capture(&mut self, name: &str) {
        self.shot(name).await;
        self.axe(name).await;
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}

/// Waits until `f` holds (polled), or fails with `what`.
pub async fn until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
