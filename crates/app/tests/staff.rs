//! Staff accounts through their use cases, on SQLite and PostgreSQL (P24): password and
//! TOTP both required, a code works once, repeated failures lock the account, sessions
//! are hashed at rest and end when idle, on sign-out or when the account is disabled;
//! sign-ins, failures and role changes land in the audit log.

use std::sync::Arc;

use custos_app::config::MasterKeySource;
use custos_app::ops::{Actor, OpsConfig, Role};
use custos_app::{App, AppError, Config};
use custos_core::{FakeClock, Personal};
use custos_crypto::{MasterKey, OsRng};
use custos_store::on_db;

struct Env {
    app: App,
    clock: Arc<FakeClock>,
    dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl Env {
    async fn open(pg: Option<(String, String)>) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let cfg =
            Config {
                data_dir: dir.path().to_path_buf(),
                database_url: pg.as_ref().map(|p| p.0.clone()).unwrap_or_else(|| {
                    format!("sqlite://{}", dir.path().join("custos.db").display())
                }),
                vault_url: pg.as_ref().map(|p| p.1.clone()).unwrap_or_else(|| {
                    format!("sqlite://{}", dir.path().join("keys.db").display())
                }),
                master_key: MasterKeySource::Inline(MasterKey::generate(&mut OsRng).to_base64()),
                ops: OpsConfig {
                    staff_max_failures: Some(3),
                    ..Default::default()
                },
                ..Default::default()
            };
        let clock = Arc::new(FakeClock::default());
        let app = App::open(&cfg, clock.clone()).await.unwrap();
        Env {
            app,
            clock,
            dir,
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
    async fn finish(self) {
        self.app.shutdown().await;
        if let Some((a, b)) = &self.pg {
            custos_testkit::drop_postgres_database(a).await;
            custos_testkit::drop_postgres_database(b).await;
        }
    }
    fn now_secs(&self) -> u64 {
        (self.app.kernel.clock.now_ms() / 1000) as u64
    }
    /// The code an authenticator app shows now.
    async fn code(&self, username: &str) -> String {
        let t = self.app.ops.staff_totp(username).await.unwrap();
        t.generate(self.now_secs())
    }
    async fn create(&self, username: &str, role: Role) -> Personal<String> {
        self.app
            .ops
            .create_staff(&Actor::Cli, username, role, None)
            .await
            .unwrap()
            .password
    }
    async fn sign_in(
        &self,
        username: &str,
        pw: &Personal<String>,
        code: Option<&str>,
    ) -> Result<String, AppError> {
        self.app
            .ops
            .sign_in(username, pw, code, None)
            .await
            .map(|s| s.token.expose().clone())
    }
    /// (actor, action, target, outcome) of every audit entry.
    async fn audit(&self) -> Vec<(String, String, String, String)> {
        custos_store::audit::entries(&self.app.kernel.db, 0, 10_000, None)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.actor, e.action, e.target, e.outcome))
            .collect()
    }
    fn step(&self) {
        self.clock.advance(time::Duration::seconds(30));
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
    sign_in_needs_the_password_and_a_fresh_totp_code,
    repeated_failures_lock_the_account_until_the_lockout_ends,
    sessions_are_hashed_at_rest_and_end_when_idle_signed_out_or_disabled,
    role_changes_apply_at_once_are_audited_and_keep_one_admin,
);

async fn sign_in_needs_the_password_and_a_fresh_totp_code(env: Env) {
    let pw = env.create("alice", Role::Support).await;
    let code = env.code("alice").await;
    // Missing second factor: refused before anything is checked.
    for missing in [None, Some(""), Some("  ")] {
        let e = env.sign_in("alice", &pw, missing).await.unwrap_err();
        assert_eq!(e.code(), "totp_required");
    }
    // A wrong code, a wrong password with the right code, an unknown user.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(
        env.sign_in("alice", &pw, Some(wrong))
            .await
            .unwrap_err()
            .code(),
        "invalid_credentials"
    );
    let bad_pw = Personal::new("not-the-password".to_owned());
    assert_eq!(
        env.sign_in("alice", &bad_pw, Some(&code))
            .await
            .unwrap_err()
            .code(),
        "invalid_credentials"
    );
    assert_eq!(
        env.sign_in("mallory", &pw, Some(&code))
            .await
            .unwrap_err()
            .code(),
        "invalid_credentials"
    );
    // The right pair signs in once.
    let token = env.sign_in("alice", &pw, Some(&code)).await.unwrap();
    assert!(token.starts_with("staff_"));
    let me = env.app.ops.authenticate_staff(&token).await.unwrap();
    assert_eq!((me.username.as_str(), me.role), ("alice", Role::Support));
    // The same code again, even with the right password, is a replay.
    assert_eq!(
        env.sign_in("alice", &pw, Some(&code))
            .await
            .unwrap_err()
            .code(),
        "totp_replayed"
    );
    // So is the code of the step before once a later one was used.
    env.step();
    let next = env.code("alice").await;
    env.sign_in("alice", &pw, Some(&next)).await.unwrap();
    assert_eq!(
        env.sign_in("alice", &pw, Some(&code))
            .await
            .unwrap_err()
            .code(),
        "totp_replayed"
    );
    let outcomes: Vec<(String, String)> = env
        .audit()
        .await
        .into_iter()
        .filter(|e| e.1 == "staff.sign_in")
        .map(|e| (e.2, e.3))
        .collect();
    let failed = outcomes.iter().filter(|o| o.1 == "failed").count();
    let ok = outcomes.iter().filter(|o| o.1 == "succeeded").count();
    // 3 missing + wrong code + wrong password + unknown + 2 replays; 2 successes.
    assert_eq!((failed, ok), (8, 2), "{outcomes:?}");
    assert!(outcomes.contains(&("staff:(unknown)".into(), "failed".into())));
    env.finish().await;
}

async fn repeated_failures_lock_the_account_until_the_lockout_ends(env: Env) {
    let pw = env.create("bob", Role::Analyst).await;
    let bad = Personal::new("wrong-password-1".to_owned());
    let code = env.code("bob").await;
    for _ in 0..3 {
        assert_eq!(
            env.sign_in("bob", &bad, Some(&code))
                .await
                .unwrap_err()
                .code(),
            "invalid_credentials"
        );
    }
    // Locked: even the right password and code are refused, with a wait.
    match env.sign_in("bob", &pw, Some(&code)).await.unwrap_err() {
        AppError::Throttled {
            code,
            retry_after_secs,
        } => {
            assert_eq!(code, "staff_locked");
            assert!(retry_after_secs > 0 && retry_after_secs <= 15 * 60);
        }
        other => panic!("expected staff_locked, got {other:?}"),
    }
    let locked = env.app.ops.list_staff().await.unwrap();
    assert!(locked[0].locked_until_ms.is_some());
    // Parallel guesses cannot pass the lock either.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let app = env.app.clone();
        let bad = bad.clone();
        let code = code.clone();
        tasks.push(tokio::spawn(async move {
            app.ops
                .sign_in("bob", &bad, Some(&code), None)
                .await
                .unwrap_err()
                .code()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), "staff_locked");
    }
    env.clock.advance(time::Duration::minutes(16));
    let fresh = env.code("bob").await;
    env.sign_in("bob", &pw, Some(&fresh)).await.unwrap();
    assert!(env
        .audit()
        .await
        .iter()
        .any(|e| e.1 == "staff.sign_in" && e.3 == "locked"));
    env.finish().await;
}

async fn sessions_are_hashed_at_rest_and_end_when_idle_signed_out_or_disabled(env: Env) {
    env.create("root", Role::Admin).await;
    let pw = env.create("carol", Role::PrivacyOfficer).await;
    let t1 = env
        .sign_in("carol", &pw, Some(&env.code("carol").await))
        .await
        .unwrap();
    // Only a keyed hash of the token is stored.
    let (n,): (i64,) = on_db!(&env.app.kernel.db, p => sqlx::query_as(
        "SELECT COUNT(*) FROM staff_sessions WHERE token_hash = $1")
        .bind(t1.as_bytes().to_vec()).fetch_one(p).await.unwrap());
    assert_eq!(n, 0);
    if env.pg.is_none() {
        assert!(custos_testkit::files_contain(env.dir.path(), t1.as_bytes()).is_empty());
    }
    // Idle for longer than 30 minutes: gone.
    env.clock.advance(time::Duration::minutes(31));
    assert!(matches!(
        env.app.ops.authenticate_staff(&t1).await,
        Err(AppError::Unauthenticated)
    ));
    // Sign-out ends a session.
    env.step();
    let t2 = env
        .sign_in("carol", &pw, Some(&env.code("carol").await))
        .await
        .unwrap();
    env.app.ops.sign_out(&t2).await.unwrap();
    assert!(env.app.ops.authenticate_staff(&t2).await.is_err());
    // Disabling ends every session at once, and no sign-in works any more.
    env.step();
    let t3 = env
        .sign_in("carol", &pw, Some(&env.code("carol").await))
        .await
        .unwrap();
    env.app.ops.authenticate_staff(&t3).await.unwrap();
    env.app
        .ops
        .update_staff(&Actor::Cli, "carol", None, Some(true))
        .await
        .unwrap();
    assert!(env.app.ops.authenticate_staff(&t3).await.is_err());
    env.step();
    assert_eq!(
        env.sign_in("carol", &pw, Some(&env.code("carol").await))
            .await
            .unwrap_err()
            .code(),
        "invalid_credentials"
    );
    // A forged token of the right shape is unknown.
    let forged = format!("staff_{}", "A".repeat(43));
    assert!(env.app.ops.authenticate_staff(&forged).await.is_err());
    env.finish().await;
}

async fn role_changes_apply_at_once_are_audited_and_keep_one_admin(env: Env) {
    env.create("root", Role::Admin).await;
    let pw = env.create("dave", Role::Support).await;
    let t = env
        .sign_in("dave", &pw, Some(&env.code("dave").await))
        .await
        .unwrap();
    let admin = Actor::Staff(custos_app::ops::StaffMember {
        id: 0,
        username: "root".into(),
        role: Role::Admin,
    });
    env.app
        .ops
        .update_staff(&admin, "dave", Some(Role::Analyst), None)
        .await
        .unwrap();
    // The running session has the new role on its next request.
    assert_eq!(
        env.app.ops.authenticate_staff(&t).await.unwrap().role,
        Role::Analyst
    );
    // The only admin cannot be demoted or disabled.
    for (role, disabled) in [(Some(Role::Support), None), (None, Some(true))] {
        assert_eq!(
            env.app
                .ops
                .update_staff(&admin, "root", role, disabled)
                .await
                .unwrap_err()
                .code(),
            "last_admin"
        );
    }
    assert_eq!(
        env.app
            .ops
            .create_staff(&admin, "dave", Role::Admin, None)
            .await
            .unwrap_err()
            .code(),
        "username_taken"
    );
    let audit = env.audit().await;
    assert!(
        audit.contains(&(
            "staff:root".into(),
            "staff.role_change".into(),
            "staff:dave".into(),
            "succeeded".into()
        )),
        "{audit:?}"
    );
    assert_eq!(
        audit.iter().filter(|e| e.1 == "staff.create").count(),
        2,
        "{audit:?}"
    );
    // Every entry above is covered by a verifying chain.
    let v = custos_app::ops::audit::verify(&env.app.kernel, |_| {})
        .await
        .unwrap();
    assert_eq!(v.first_bad, None);
    assert_eq!(v.entries_checked, audit.len() as i64);
    env.finish().await;
}
