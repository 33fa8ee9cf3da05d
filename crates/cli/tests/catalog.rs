//! `custos catalog import` and `custos serve --demo` as an operator and a newcomer use
//! them: real processes, real files. P5, P26.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_custos");

fn custos(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("CUSTOS_MASTER_KEY")
        .env_remove("CUSTOS_DATABASE_URL")
        .env_remove("CUSTOS_OPERATOR_TOKEN")
        .output()
        .expect("custos runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "data",
            "--log-format",
            "text",
        ])
        .args(extra)
        .current_dir(dir)
        .env_remove("CUSTOS_MASTER_KEY")
        .env_remove("CUSTOS_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
        .spawn()
        .expect("server starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Server { child, base }
}

async fn get(url: &str) -> (u16, serde_json::Value, bool) {
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let cookie = r.headers().contains_key("set-cookie");
    (status, r.json().await.unwrap_or_default(), cookie)
}

const GOOD: &str = "\
external_id,title_zh,title_en,category,tags,price_min
a-1,夏季连衣裙,Summer dress,clothing,summer|dress,199
a-2,蓝牙耳机,Wireless headphones,electronics,audio,499
";

#[tokio::test]
async fn catalog_import_names_every_bad_line_and_imports_nothing_unless_told_to_skip() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("items.csv");
    std::fs::write(
        &file,
        format!("{GOOD}a-3,,,home,,5\na-4,杯子,Cup,home,,cheap\n"),
    )
    .unwrap();
    let out = custos(
        &["catalog", "import", "items.csv", "--data-dir", "data"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("items.csv:4: an item needs title_zh or title_en"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("items.csv:5: `cheap`"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("nothing was imported"));

    let out = custos(
        &[
            "catalog",
            "import",
            "items.csv",
            "--data-dir",
            "data",
            "--skip-bad-rows",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("imported 2 items"), "{}", text(&out));
    assert!(text(&out).contains("skipped 2 invalid rows"));

    std::fs::write(
        dir.path().join("more.json"),
        r#"[{"title_zh": "陶瓷茶杯", "category": "home", "price_min": 39}]"#,
    )
    .unwrap();
    let out = custos(
        &["catalog", "import", "more.json", "--data-dir", "data"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));

    let server = serve(dir.path(), &[]);
    let (status, body, _) = get(&format!(
        "{}/api/v1/items?q=%E8%BF%9E%E8%A1%A3%E8%A3%99",
        server.base
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 1);
    let (_, body, _) = get(&format!("{}/api/v1/items", server.base)).await;
    assert_eq!(body["total"], 3, "{body}");
}

#[tokio::test]
async fn serve_demo_starts_with_a_browsable_searchable_catalog_only_once() {
    let dir = tempfile::tempdir().unwrap();
    // A smaller demo catalog keeps the debug build quick; the default is 240 items.
    std::fs::write(
        dir.path().join("custos.toml"),
        "[catalog]\ndemo_items = 30\n",
    )
    .unwrap();
    let server = serve(dir.path(), &["--demo"]);
    let (status, body, cookie) = get(&format!("{}/api/v1/items?limit=100", server.base)).await;
    assert_eq!(status, 200);
    assert!(!cookie);
    assert_eq!(body["total"], 30);
    let item = &body["items"][0];
    assert!(item["title_zh"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(item["title_en"].as_str().is_some_and(|t| !t.is_empty()));
    let thumb = item["thumbnail_url"].as_str().unwrap();
    let r = reqwest::get(format!("{}{thumb}", server.base))
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    drop(server);
    let server = serve(dir.path(), &["--demo"]);
    let (_, body, _) = get(&format!("{}/api/v1/items", server.base)).await;
    assert_eq!(body["total"], 30, "a restart adds nothing");
}

#[tokio::test]
async fn an_import_next_to_a_running_server_reaches_its_search_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]);
    let (_, body, _) = get(&format!("{}/api/v1/items", server.base)).await;
    assert_eq!(body["total"], 0);
    std::fs::write(dir.path().join("items.csv"), GOOD).unwrap();
    let out = custos(
        &["catalog", "import", "items.csv", "--data-dir", "data"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let start = std::time::Instant::now();
    loop {
        let (_, body, _) = get(&format!("{}/api/v1/items?q=headphones", server.base)).await;
        if body["total"] == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the server never saw the import: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
