//! `custos jobs run` and the schedule `custos serve` starts (L9, L8), on SQLite and
//! PostgreSQL: the purge removes what is past its declared retention and says what it
//! removed per store; a second process skips a job whose lock another holds; `serve` runs
//! the purge in-process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use custos_app::config::MasterKeySource;
use custos_app::consent::DecisionInput;
use custos_app::signals::EventInput;
use custos_app::{App, Config};
use custos_core::{Clock, ConsentMethod, Decision, FakeClock, GateContext, SubjectId};
use custos_crypto::{MasterKey, OsRng};
use custos_store::db::Schema;
use custos_store::Db;

const BIN: &str = env!("CARGO_BIN_EXE_custos");
const DAY: i64 = 86_400_000;

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
    fn data_url(&self) -> String {
        match &self.pg {
            Some((d, _)) => d.clone(),
            None => format!("sqlite://{}", self.dir.path().join("custos.db").display()),
        }
    }
    fn vault_url(&self) -> String {
        match &self.pg {
            Some((_, v)) => v.clone(),
            None => format!("sqlite://{}", self.dir.path().join("keys.db").display()),
        }
    }
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(["--database-url", &self.data_url()])
            .args(["--vault-url", &self.vault_url()])
            .current_dir(self.dir.path())
            .env("CUSTOS_MASTER_KEY", &self.key);
        cmd
    }
    fn custos(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("custos runs")
    }
    async fn db(&self) -> Db {
        Db::connect(&self.data_url(), Schema::Data).await.unwrap()
    }
    async fn events(&self) -> i64 {
        let db = self.db().await;
        let n = match &db {
            Db::Sqlite(p) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM service_events")
                    .fetch_one(p)
                    .await
            }
            Db::Postgres(p) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM service_events")
                    .fetch_one(p)
                    .await
            }
        }
        .unwrap();
        db.close().await;
        n
    }
    /// Stores, through the app, 2 service-log events and a location that the real clock
    /// puts past their retention (written 200 days ago), and one event written yesterday.
    async fn seed(&self) {
        let cfg = Config {
            data_dir: self.dir.path().to_path_buf(),
            database_url: self.data_url(),
            vault_url: self.vault_url(),
            master_key: MasterKeySource::Inline(self.key.clone()),
            ..Default::default()
        };
        let real_now = custos_core::SystemClock.now_ms();
        let clock = Arc::new(FakeClock::at_ms(real_now - 200 * DAY));
        let app = App::open(&cfg, clock.clone()).await.unwrap();
        let s = SubjectId::random();
        let ctx = GateContext::default();
        for purpose in ["service_logs_analytics", "location"] {
            app.kernel
                .record_decisions(
                    s,
                    false,
                    &[DecisionInput {
                        purpose: purpose.into(),
                        decision: Decision::Given,
                    }],
                    ConsentMethod::Dialog,
                )
                .await
                .unwrap();
        }
        let event = |at_ms| EventInput {
            kind: "browse".into(),
            at_ms,
            target: Some("1".into()),
            ip: None,
            carrier: None,
            language: None,
        };
        let now = clock.now_ms();
        app.signals
            .ingest(Some(s), None, &[event(now), event(now)], &ctx)
            .await
            .unwrap();
        app.signals.set_location_enabled(s, true).await.unwrap();
        app.signals
            .report_location(s, 30.27, 120.15, &ctx)
            .await
            .unwrap();
        clock.advance(time::Duration::days(199));
        let now = clock.now_ms();
        app.signals
            .ingest(Some(s), None, &[event(now)], &ctx)
            .await
            .unwrap();
        app.shutdown().await;
    }
    async fn finish(self) {
        if let Some((a, b)) = &self.pg {
            custos_testkit::drop_postgres_database(a).await;
            custos_testkit::drop_postgres_database(b).await;
        }
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
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
    jobs_run_once_purges_what_is_past_retention_and_reports_it_per_store,
    a_second_process_skips_a_job_whose_lock_another_holds,
    serve_runs_the_purge_on_its_schedule,
);

#[test]
fn jobs_run_help_explains_once_and_job() {
    let out = Command::new(BIN)
        .args(["jobs", "run", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = text(&out);
    for w in [
        "--once",
        "--job",
        "purge",
        "cancellations",
        "incident-alarms",
        "all",
        "retention",
    ] {
        assert!(help.contains(w), "{w} missing from:\n{help}");
    }
}

async fn jobs_run_once_purges_what_is_past_retention_and_reports_it_per_store(env: Env) {
    env.seed().await;
    assert_eq!(env.events().await, 3);
    let out = env.custos(&["jobs", "run", "--once"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let purge = t.lines().find(|l| l.starts_with("purge:")).expect(&t);
    assert!(purge.contains("service_events 2"), "{t}");
    assert!(purge.contains("personal_fields 1"), "{t}");
    assert!(purge.contains("kept: consent ledger"), "{t}");
    assert!(
        t.lines().any(|l| l == "cancellations: erased 0 account(s)"),
        "{t}"
    );
    assert_eq!(
        env.events().await,
        1,
        "yesterday's event is within retention"
    );

    // Only the purge, and now there is nothing left to remove.
    let out = env.custos(&["jobs", "run", "--once", "--job", "purge"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("purge: removed 0 record(s)"), "{t}");
    assert!(!t.contains("cancellations"), "{t}");

    // Only the incident alarm check: no incident, no alarm.
    let out = env.custos(&["jobs", "run", "--once", "--job", "incident-alarms"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("raised 0 alarm(s)"), "{t}");
    assert!(!t.contains("purge"), "{t}");
    env.finish().await;
}

async fn a_second_process_skips_a_job_whose_lock_another_holds(env: Env) {
    env.seed().await;
    let db = env.db().await;
    let now = custos_core::SystemClock.now_ms();
    let held = custos_store::retention::try_lock(&db, "purge", now, 600_000)
        .await
        .unwrap()
        .expect("the lock is free");
    let out = env.custos(&["jobs", "run", "--once"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("purge: skipped, another process is running it"),
        "{t}"
    );
    assert!(t.contains("cancellations: erased 0"), "{t}");
    assert_eq!(env.events().await, 3, "nothing was purged");

    held.release().await.unwrap();
    db.close().await;
    let out = env.custos(&["jobs", "run", "--once", "--job", "purge"]);
    let t = text(&out);
    assert!(t.contains("purge: removed 3 record(s)"), "{t}");
    assert_eq!(env.events().await, 1);
    env.finish().await;
}

/// A running `custos serve`; killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve_runs_the_purge_on_its_schedule(env: Env) {
    env.seed().await;
    std::fs::write(
        env.dir.path().join("custos.toml"),
        "[jobs]\npurge_interval_secs = 1\n",
    )
    .unwrap();
    let log = env.dir.path().join("serve.log");
    let mut cmd = env.command(&["serve", "--listen", "127.0.0.1:0", "--log-format", "text"]);
    cmd.stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = cmd.spawn().expect("serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let server = Server(child);
    assert!(line.starts_with("listening on "), "{line}");
    // The schedule's first purge runs at start; wait until it has logged its summary (at
    // most 30 s), then look at its effect.
    let logs = || std::fs::read_to_string(&log).unwrap();
    for _ in 0..300 {
        if logs().contains("job finished") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);
    let logs = logs();
    assert_eq!(env.events().await, 1, "{logs}");
    assert!(logs.contains("background jobs scheduled"), "{logs}");
    assert!(
        logs.contains("removed records past their retention") && logs.contains("service_events 2"),
        "{logs}"
    );
    env.finish().await;
}
