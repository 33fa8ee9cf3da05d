//! `custos ops …` and `custos policy records|check` as an operator uses them, on SQLite and
//! PostgreSQL: discontinuing a feature and listing its progress, a change of controller
//! that publishes a version pausing nothing, the records export in JSON, CSV and HTML, and
//! `policy check` failing on a purpose without its impact assessment (P18, P31, L10).

use std::process::{Command, Output};

use custos_crypto::{MasterKey, OsRng};

const BIN: &str = env!("CARGO_BIN_EXE_custos");

fn policy_file() -> String {
    format!(
        "{}/../../policy/custos-app.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Env {
    dir: tempfile::TempDir,
    key: String,
    pg: Option<(String, String)>,
}

impl Env {
    fn new(pg: Option<(String, String)>) -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            key: MasterKey::generate(&mut OsRng).to_base64(),
            pg,
        }
    }
    fn custos(&self, args: &[&str]) -> Output {
        let d = self.dir.path();
        let (data, vault) = match &self.pg {
            Some((a, b)) => (a.clone(), b.clone()),
            None => (
                format!("sqlite://{}", d.join("custos.db").display()),
                format!("sqlite://{}", d.join("keys.db").display()),
            ),
        };
        Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(d)
            .args(["--database-url", &data, "--vault-url", &vault])
            .current_dir(d)
            .env("CUSTOS_MASTER_KEY", &self.key)
            .env_remove("CUSTOS_CONFIG")
            .output()
            .expect("custos runs")
    }
    async fn finish(self) {
        if let Some((a, b)) = &self.pg {
            custos_testkit::drop_postgres_database(a).await;
            custos_testkit::drop_postgres_database(b).await;
        }
    }
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Env::new(None)).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(data) = custos_testkit::postgres_database().await else { return };
                let Some(vault) = custos_testkit::postgres_database().await else { return };
                super::$name(super::Env::new(Some((data, vault)))).await
            } )* }
    };
}

on_both!(
    ops_discontinue_stops_a_feature_and_cessations_show_its_progress,
    ops_change_controller_publishes_a_version_that_pauses_nothing,
);

async fn ops_discontinue_stops_a_feature_and_cessations_show_its_progress(env: Env) {
    let out = env.custos(&["ops", "discontinue", "--feature", "ads", "--after", "30d"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("feature ads [collection_stopped] purposes personalized_ads"));
    let again = env.custos(&["ops", "discontinue", "--feature", "ads"]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("already discontinued"),
        "{}",
        text(&again)
    );
    let bad = env.custos(&["ops", "discontinue", "--feature", "ads", "--service"]);
    assert!(!bad.status.success(), "--feature and --service conflict");
    let list = env.custos(&["ops", "cessations"]);
    assert!(list.status.success(), "{}", text(&list));
    assert!(
        text(&list).contains("#1 feature ads [collection_stopped]"),
        "{}",
        text(&list)
    );
    assert!(text(&list).contains("0/0 erased"));
    // Not yet due: nothing is erased.
    let run = env.custos(&["ops", "run-cessations"]);
    assert!(run.status.success(), "{}", text(&run));
    assert!(!text(&run).contains("completed"));
    let res = env.custos(&["ops", "residency"]);
    assert!(text(&res).contains("declared region CN"), "{}", text(&res));
    assert!(text(&res).contains("object_storage\tCN"));
    env.finish().await;
}

async fn ops_change_controller_publishes_a_version_that_pauses_nothing(env: Env) {
    let out = env.custos(&[
        "ops",
        "change-controller",
        "--name-en",
        "Acquirer Ltd.",
        "--name-zh",
        "收购方有限公司",
        "--address",
        "1 New Road, Shanghai",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("paused purposes: none"),
        "{}",
        text(&out)
    );
    let versions = env.custos(&["policy", "versions"]);
    assert_eq!(
        text(&versions)
            .lines()
            .filter(|l| l.starts_with('#'))
            .count(),
        2,
        "{}",
        text(&versions)
    );
    env.finish().await;
}

#[test]
fn policy_records_exports_json_csv_and_html_with_every_assessment() {
    let dir = tempfile::tempdir().unwrap();
    let run = |format: &str| {
        let o = Command::new(BIN)
            .args([
                "policy",
                "records",
                &policy_file(),
                "--format",
                format,
                "--lang",
                "en",
            ])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    let purposes = json["purposes"].as_array().unwrap();
    assert!(purposes.len() >= 10);
    for p in purposes {
        assert!(p["assessment"]["measures"]["en"].is_string(), "{p}");
    }
    let csv = run("csv");
    assert_eq!(csv.lines().count(), purposes.len() + 1);
    assert!(csv.contains("location,") && csv.contains("PIA-2026-02-location"));
    assert!(run("html").contains("Impact assessment per purpose"));
}

#[test]
fn policy_check_fails_naming_a_purpose_without_its_impact_assessment() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(policy_file()).unwrap();
    let bad = src.replacen("impact_assessment = \"PIA-2026-11-improvement\"\n", "", 1);
    assert_ne!(bad, src, "the fixture edit must apply");
    std::fs::write(dir.path().join("bad.toml"), bad).unwrap();
    let out = Command::new(BIN)
        .args(["policy", "check", "bad.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("purposes[device_info]: has no impact_assessment id"),
        "{}",
        text(&out)
    );
}
