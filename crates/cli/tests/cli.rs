//! The `custos` binary as an operator uses it: real processes, real files, real
//! PostgreSQL. P3, P35, P38, P39, P40, L3, L4, L10; DESIGN invariants 2, 3 and 5.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_custos");

fn policy_file() -> String {
    format!(
        "{}/../../policy/custos-app.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn custos(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("CUSTOS_MASTER_KEY")
        .env_remove("CUSTOS_DATABASE_URL")
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

#[test]
fn policy_check_accepts_the_bundled_declaration_and_names_what_is_wrong_in_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let ok = custos(&["policy", "check", &policy_file()], dir.path());
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("valid"));
    let src = std::fs::read_to_string(policy_file()).unwrap();
    // Make the basic browse feature rely on the optional ads purpose (invariant 7).
    let at = src.find("id = \"browse_search\"").unwrap();
    let p = at + src[at..].find("purposes = [").unwrap() + "purposes = [".len();
    let bad = format!("{}\"personalized_ads\", {}", &src[..p], &src[p..]);
    std::fs::write(dir.path().join("bad.toml"), bad).unwrap();
    let out = custos(&["policy", "check", "bad.toml"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("features[browse_search]"),
        "{}",
        text(&out)
    );
    std::fs::write(
        dir.path().join("typo.toml"),
        src.replacen("revision =", "revison =", 1),
    )
    .unwrap();
    let out = custos(&["policy", "check", "typo.toml"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("revison"), "{}", text(&out));
    let missing = custos(&["policy", "check", "nope.toml"], dir.path());
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing).contains("cannot read nope.toml"));
}

#[test]
fn publish_versions_and_diff_show_what_needs_fresh_consent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let first = custos(
        &["policy", "publish", &policy_file(), "--data-dir", "data"],
        d,
    );
    assert!(first.status.success(), "{}", text(&first));
    let again = custos(
        &["policy", "publish", &policy_file(), "--data-dir", "data"],
        d,
    );
    assert!(
        text(&again).contains("already published"),
        "{}",
        text(&again)
    );
    // Lengthen the ads retention: a widening change for a consent purpose.
    let src = std::fs::read_to_string(policy_file()).unwrap();
    let at = src.find("id = \"personalized_ads\"").unwrap();
    let r = at + src[at..].find("days = ").unwrap() + "days = ".len();
    let end = r + src[r..].find(|c: char| !c.is_ascii_digit()).unwrap();
    let v2 = format!("{}{}{}", &src[..r], 9999, &src[end..]);
    std::fs::write(d.join("v2.toml"), v2).unwrap();
    let second = custos(&["policy", "publish", "v2.toml", "--data-dir", "data"], d);
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        text(&second).contains("personalized_ads"),
        "{}",
        text(&second)
    );
    let versions = custos(&["policy", "versions", "--data-dir", "data"], d);
    let hashes: Vec<String> = String::from_utf8_lossy(&versions.stdout)
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(hashes.len(), 2, "{}", text(&versions));
    let diff = custos(
        &[
            "policy",
            "diff",
            &hashes[0][..12],
            &hashes[1],
            "--json",
            "--data-dir",
            "data",
        ],
        d,
    );
    assert!(diff.status.success(), "{}", text(&diff));
    let v: serde_json::Value = serde_json::from_slice(&diff.stdout).unwrap();
    let changed: Vec<&str> = v["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["purpose"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["personalized_ads"]);
    assert_eq!(v["purposes"][0]["needs_consent"], true);
    let files = custos(&["policy", "diff", &policy_file(), "v2.toml"], d);
    assert!(text(&files).contains("personalized_ads"));
    let unknown = custos(
        &[
            "policy",
            "diff",
            "abcdef123456",
            &hashes[1],
            "--data-dir",
            "data",
        ],
        d,
    );
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown).contains("neither a file nor a published version"));
}

#[test]
fn render_writes_the_page_and_the_records_of_processing() {
    let dir = tempfile::tempdir().unwrap();
    let md = custos(
        &[
            "policy",
            "render",
            &policy_file(),
            "--format",
            "markdown",
            "--lang",
            "en",
        ],
        dir.path(),
    );
    assert!(md.status.success());
    assert!(String::from_utf8_lossy(&md.stdout).contains("Personalized ads"));
    let rec = custos(
        &[
            "policy",
            "render",
            &policy_file(),
            "--format",
            "records",
            "-o",
            "records.json",
        ],
        dir.path(),
    );
    assert!(rec.status.success(), "{}", text(&rec));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("records.json")).unwrap())
            .unwrap();
    assert!(v.to_string().contains("personalized_ads"));
    let bad = custos(
        &["policy", "render", &policy_file(), "--lang", "fr"],
        dir.path(),
    );
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn an_unknown_key_in_custos_toml_is_an_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("custos.toml"),
        "data_dir = \"x\"\nlisten_addr = \"1.2.3.4:1\"\n",
    )
    .unwrap();
    let out = custos(&["policy", "versions"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("listen_addr"), "{}", text(&out));
}

/// A running `custos serve`; killed on drop.
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

fn serve(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .current_dir(dir)
        .env_remove("CUSTOS_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join(format!("server-{}.log", rand_suffix()))).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("server starts");
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

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn give(
    c: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    purpose: &str,
) -> serde_json::Value {
    let mut req = c
        .post(format!("{base}/api/v1/consents"))
        .json(&serde_json::json!({"decisions": [{"purpose": purpose, "decision": "given"}]}));
    if let Some(t) = token {
        req = req.header("x-custos-anonymous", t);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn status_of(c: &reqwest::Client, base: &str, token: &str, purpose: &str) -> String {
    let v: serde_json::Value = c
        .get(format!("{base}/api/v1/purposes"))
        .header("x-custos-anonymous", token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|p| p["purpose"] == purpose)
        .unwrap()["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn serve_logs_json_without_secrets_and_shuts_down_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path(), &["--data-dir", "data"], &[]);
    let c = client();
    assert_eq!(
        c.get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let body = give(&c, &server.base, None, "personalized_ads").await;
    let token = body["anonymous_token"].as_str().unwrap().to_owned();
    // The master key was generated owner-only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("data/master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut exited = None;
    for _ in 0..100 {
        if let Some(s) = server.child.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(exited.expect("server exits after SIGTERM").success());
    let logs: String = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("server-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(
        logs.lines()
            .any(|l| l.starts_with('{') && l.contains("custos is serving")),
        "{logs}"
    );
    assert!(
        logs.lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "every log line is JSON"
    );
    assert!(!logs.contains(&token), "a secret reached the log");
}

#[tokio::test]
async fn ledger_verify_reports_the_first_altered_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let server = serve(dir.path(), &["--data-dir", "data"], &[]);
        let c = client();
        let t = give(&c, &server.base, None, "personalized_ads").await["anonymous_token"]
            .as_str()
            .unwrap()
            .to_owned();
        for p in ["device_info", "service_logs_analytics"] {
            give(&c, &server.base, Some(&t), p).await;
        }
    }
    let ok = custos(&["ledger", "verify", "--data-dir", "data"], dir.path());
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("intact: 3 records"), "{}", text(&ok));
    let url = format!("sqlite://{}", dir.path().join("data/custos.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("DROP TRIGGER consent_ledger_append_only_u")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE consent_ledger SET decision = 'refused' WHERE seq = 2")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let bad = custos(&["ledger", "verify", "--data-dir", "data"], dir.path());
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).contains("ALTERED at record 2"), "{}", text(&bad));
}

/// Two server processes on one PostgreSQL database: a withdrawal through one is honoured
/// by the other on its very next decision, every time (P39, DESIGN invariant 1).
#[tokio::test]
async fn a_withdrawal_through_one_process_is_honoured_by_another_at_once() {
    let Some(url) = custos_testkit::postgres_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = String::from_utf8(custos(&["keygen"], dir.path()).stdout).unwrap();
    let env = [
        ("CUSTOS_MASTER_KEY", key.trim()),
        ("CUSTOS_DATABASE_URL", url.as_str()),
    ];
    // Each instance has its own data directory (search index, media cache), one database.
    let a = serve(dir.path(), &["--data-dir", "a"], &env);
    let b = serve(
        dir.path(),
        &["--log-format", "json", "--data-dir", "b"],
        &env,
    );
    let c = client();
    let token = give(&c, &a.base, None, "personalized_ads").await["anonymous_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for round in 0..20 {
        assert_eq!(
            status_of(&c, &b.base, &token, "personalized_ads").await,
            "active",
            "round {round}"
        );
        let w = c
            .post(format!(
                "{}/api/v1/consents/personalized_ads/withdraw",
                a.base
            ))
            .header("x-custos-anonymous", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(w.status(), 200);
        // No sleep: B's very next decision must see it.
        assert_eq!(
            status_of(&c, &b.base, &token, "personalized_ads").await,
            "consent_withdrawn",
            "round {round}"
        );
        give(&c, &b.base, Some(&token), "personalized_ads").await;
        assert_eq!(
            status_of(&c, &a.base, &token, "personalized_ads").await,
            "active",
            "round {round}"
        );
    }
    // Both processes appended to one chain, which verifies.
    let out = Command::new(BIN)
        .args(["ledger", "verify"])
        .env("CUSTOS_MASTER_KEY", key.trim())
        .env("CUSTOS_DATABASE_URL", &url)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("intact: 41 records"), "{}", text(&out));
    drop(a);
    drop(b);
    custos_testkit::drop_postgres_database(&url).await;
}

/// Publishing with the CLI while a server runs: the server switches within a few seconds,
/// and only the widened purpose needs fresh consent (P35, L4).
#[tokio::test]
async fn a_version_published_while_serving_pauses_only_the_changed_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &["--data-dir", "data"], &[]);
    let c = client();
    let token = give(&c, &server.base, None, "personalized_ads").await["anonymous_token"]
        .as_str()
        .unwrap()
        .to_owned();
    give(&c, &server.base, Some(&token), "device_info").await;
    let src = std::fs::read_to_string(policy_file()).unwrap();
    let at = src.find("id = \"personalized_ads\"").unwrap();
    let r = at + src[at..].find("days = ").unwrap() + "days = ".len();
    let end = r + src[r..].find(|c: char| !c.is_ascii_digit()).unwrap();
    std::fs::write(
        dir.path().join("v2.toml"),
        format!("{}{}{}", &src[..r], 9999, &src[end..]),
    )
    .unwrap();
    let out = custos(
        &["policy", "publish", "v2.toml", "--data-dir", "data"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let mut switched = false;
    for _ in 0..50 {
        if status_of(&c, &server.base, &token, "personalized_ads").await == "consent_outdated" {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(switched, "the server did not pick up the new version");
    assert_eq!(
        status_of(&c, &server.base, &token, "device_info").await,
        "active"
    );
    let doc: serde_json::Value = c
        .get(format!("{}/api/v1/policy", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["versions"].as_array().unwrap().len(), 2);
}
