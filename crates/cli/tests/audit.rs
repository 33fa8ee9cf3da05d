//! `custos admin create-staff` and `custos audit verify|export` as an operator uses them:
//! real processes, a SQLite data directory and a PostgreSQL database (P24, L3).

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_custos");

fn custos(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(dir)
        .env_remove("CUSTOS_MASTER_KEY")
        .env_remove("CUSTOS_DATABASE_URL")
        .env_remove("CUSTOS_OPERATOR_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("custos runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Creates three staff accounts, checks verify and export, then lets `tamper` alter the
/// database and expects verify to name entry 2.
async fn create_verify_export_tamper<F, Fut>(dir: &Path, env: &[(&str, &str)], tamper: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let args = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = extra.to_vec();
        v.extend(["--data-dir", "data"]);
        v
    };
    let first = custos(
        &args(&[
            "admin",
            "create-staff",
            "--username",
            "root",
            "--role",
            "admin",
        ]),
        dir,
        env,
    );
    assert!(first.status.success(), "{}", text(&first));
    let out = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(out.contains("TOTP secret: "), "{out}");
    assert!(out.contains("otpauth://totp/Custos:root?"), "{out}");
    assert!(out.contains("password:"), "{out}");
    let again = custos(
        &args(&[
            "admin",
            "create-staff",
            "--username",
            "root",
            "--role",
            "support",
        ]),
        dir,
        env,
    );
    assert!(!again.status.success());
    assert!(text(&again).contains("username_taken"), "{}", text(&again));
    let bad_role = custos(
        &args(&[
            "admin",
            "create-staff",
            "--username",
            "eve",
            "--role",
            "root",
        ]),
        dir,
        env,
    );
    assert!(!bad_role.status.success());
    assert!(
        text(&bad_role).contains("security_officer"),
        "{}",
        text(&bad_role)
    );
    for (u, r) in [("sam", "support"), ("sue", "security_officer")] {
        let o = custos(
            &args(&["admin", "create-staff", "--username", u, "--role", r]),
            dir,
            env,
        );
        assert!(o.status.success(), "{}", text(&o));
    }
    let ok = custos(&args(&["audit", "verify"]), dir, env);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        text(&ok).contains("audit log intact: 3 entries"),
        "{}",
        text(&ok)
    );

    let exported = custos(&args(&["audit", "export", "-o", "audit.jsonl"]), dir, env);
    assert!(exported.status.success(), "{}", text(&exported));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["type"], "key");
    assert_eq!(lines[0]["key"]["crv"], "Ed25519");
    let entries: Vec<&serde_json::Value> = lines.iter().filter(|l| l["type"] == "entry").collect();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[1]["action"], "staff.create");
    assert_eq!(entries[1]["actor"], "cli");
    assert_eq!(entries[1]["target"], "staff:sam");
    // The export ends with a head signed over the last entry.
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "signed_head");
    assert_eq!(last["seq"], 3);
    assert_eq!(last["hash"], entries[2]["hash"]);

    tamper().await;
    let bad = custos(&args(&["audit", "verify"]), dir, env);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(text(&bad).contains("ALTERED at entry 2"), "{}", text(&bad));
}

#[tokio::test]
async fn create_staff_then_verify_export_and_detect_tampering_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("data/custos.db").display());
    create_verify_export_tamper(dir.path(), &[], || async move {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query("DROP TRIGGER audit_log_append_only_u")
            .execute(&pool)
            .await
            .unwrap();
        // One byte: support -> supporu.
        sqlx::query(
            "UPDATE audit_log SET detail = replace(detail, 'support', 'supporu') WHERE seq = 2",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    })
    .await;
}

#[tokio::test]
async fn create_staff_then_verify_export_and_detect_tampering_on_postgres() {
    let Some(url) = custos_testkit::postgres_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = String::from_utf8(custos(&["keygen"], dir.path(), &[]).stdout).unwrap();
    let env = [
        ("CUSTOS_MASTER_KEY", key.trim()),
        ("CUSTOS_DATABASE_URL", url.as_str()),
    ];
    let tamper_url = url.clone();
    create_verify_export_tamper(dir.path(), &env, || async move {
        let pool = sqlx::PgPool::connect(&tamper_url).await.unwrap();
        sqlx::query("DROP TRIGGER audit_log_append_only ON audit_log")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("DELETE FROM audit_log WHERE seq = 2")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    })
    .await;
    custos_testkit::drop_postgres_database(&url).await;
}
