//! The audit log on SQLite and PostgreSQL (P24, L3): append-only, hash-chained, heads
//! signed with Ed25519. Playing an attacker with raw database access (triggers dropped),
//! one flipped byte, one dropped entry, two swapped entries and a history rewritten with
//! recomputed hashes are each detected and the entry named.

use std::sync::Arc;

use custos_app::config::MasterKeySource;
use custos_app::ops::OpsConfig;
use custos_app::{App, Config};
use custos_core::{FakeClock, SubjectId};
use custos_crypto::{MasterKey, OsRng};
use custos_store::audit::{self, NewEntry};
use custos_store::{on_db, Db};

struct Env {
    app: App,
    pg: Option<(String, String)>,
    _dir: tempfile::TempDir,
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
                    audit_sign_every: Some(4),
                    ..Default::default()
                },
                ..Default::default()
            };
        let app = App::open(&cfg, Arc::new(FakeClock::default()))
            .await
            .unwrap();
        Env { app, pg, _dir: dir }
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
    fn db(&self) -> &Db {
        &self.app.kernel.db
    }
    /// `n` entries, as operator decisions would write them.
    async fn seed(&self, n: usize) {
        for i in 0..n {
            self.app
                .ops
                .record(
                    "staff:alice",
                    "operator.catalog.write",
                    &format!("DELETE /api/v1/operator/items/{i}"),
                    "allowed",
                    "",
                    serde_json::json!({ "role": "admin" }),
                )
                .await
                .unwrap();
        }
    }
    async fn verify(&self) -> audit::AuditVerification {
        custos_app::ops::audit::verify(&self.app.kernel, |_| {})
            .await
            .unwrap()
    }
    async fn exec(&self, sql: &str) {
        on_db!(self.db(), p => sqlx::query(sql).execute(p).await.map(|_| ()).unwrap());
    }
    /// Lets the test play an attacker with raw database access.
    async fn drop_guards(&self) {
        match self.db() {
            Db::Sqlite(_) => {
                self.exec("DROP TRIGGER audit_log_append_only_u").await;
                self.exec("DROP TRIGGER audit_log_append_only_d").await;
            }
            Db::Postgres(_) => {
                self.exec("DROP TRIGGER audit_log_append_only ON audit_log")
                    .await
            }
        }
    }
    async fn first_bad(&self) -> audit::BadEntry {
        self.verify().await.first_bad.expect("tampering detected")
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
    an_intact_log_verifies_with_its_signed_heads,
    the_database_refuses_to_update_or_delete_audit_entries,
    verify_names_the_entry_with_one_flipped_byte,
    verify_names_a_dropped_entry_and_a_dropped_tail,
    verify_names_two_swapped_entries,
    a_rewritten_history_with_recomputed_hashes_fails_the_signed_head,
    concurrent_appends_form_one_chain,
    users_appear_in_the_log_only_by_pseudonym,
);

async fn an_intact_log_verifies_with_its_signed_heads(env: Env) {
    env.seed(10).await;
    let v = env.verify().await;
    assert_eq!(v.first_bad, None);
    assert_eq!((v.entries_checked, v.head_seq), (10, 10));
    // Signed at the first entry and then every 4: 1, 5, 9.
    assert_eq!(v.signed_heads_checked, 3);
    // An export signs the current head, so the page verifies to its end.
    let page = env.app.ops.audit_page(0, 1000, None).await.unwrap();
    assert_eq!(page.entries.len(), 10);
    assert_eq!(page.signed_heads.last().unwrap().seq, 10);
    let key = custos_crypto::verifying_key_from_jwk(&page.key).unwrap();
    let last = page.signed_heads.last().unwrap();
    let payload = custos_crypto::verify_jws(&key, &last.jws).unwrap();
    let claim: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(claim["hash"], hex::encode(page.entries[9].hash));
    assert_eq!(env.verify().await.signed_heads_checked, 4);
    env.finish().await;
}

async fn the_database_refuses_to_update_or_delete_audit_entries(env: Env) {
    env.seed(3).await;
    for sql in [
        "UPDATE audit_log SET outcome = 'denied' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 2",
        "UPDATE audit_signed_heads SET jws = 'x'",
        "DELETE FROM audit_signed_heads",
    ] {
        let r = on_db!(env.db(), p => sqlx::query(sql).execute(p).await.map(|_| ()));
        assert!(r.is_err(), "{sql} was allowed");
    }
    assert_eq!(env.verify().await.first_bad, None);
    env.finish().await;
}

async fn verify_names_the_entry_with_one_flipped_byte(env: Env) {
    env.seed(12).await;
    env.drop_guards().await;
    let (detail,): (String,) = on_db!(env.db(), p => sqlx::query_as("SELECT detail FROM audit_log WHERE seq = 7").fetch_one(p).await.unwrap());
    let mut bytes = detail.into_bytes();
    let i = bytes.iter().position(|b| *b == b'a').unwrap();
    bytes[i] ^= 0x02; // 'a' -> 'c'
    let flipped = String::from_utf8(bytes).unwrap();
    on_db!(env.db(), p => sqlx::query("UPDATE audit_log SET detail = $1 WHERE seq = 7")
        .bind(flipped).execute(p).await.map(|_| ()).unwrap());
    let bad = env.first_bad().await;
    assert_eq!(bad.seq, 7, "{}", bad.reason);
    assert!(bad.reason.contains("altered"), "{}", bad.reason);
    env.finish().await;
}

async fn verify_names_a_dropped_entry_and_a_dropped_tail(env: Env) {
    env.seed(12).await;
    env.drop_guards().await;
    env.exec("DELETE FROM audit_log WHERE seq = 6").await;
    let bad = env.first_bad().await;
    assert_eq!(bad.seq, 6, "{}", bad.reason);
    assert!(bad.reason.contains("missing"), "{}", bad.reason);
    // Dropping the tail instead is caught by the signed head and the head row.
    env.exec("DELETE FROM audit_log WHERE seq >= 6").await;
    let bad = env.first_bad().await;
    assert_eq!(bad.seq, 6, "{}", bad.reason);
    assert!(bad.reason.contains("removed"), "{}", bad.reason);
    env.finish().await;
}

async fn verify_names_two_swapped_entries(env: Env) {
    env.seed(12).await;
    env.drop_guards().await;
    // Swap entries 3 and 8 whole (content and hashes), keeping the sequence numbers.
    env.exec("UPDATE audit_log SET seq = -3 WHERE seq = 3")
        .await;
    env.exec("UPDATE audit_log SET seq = 3 WHERE seq = 8").await;
    env.exec("UPDATE audit_log SET seq = 8 WHERE seq = -3")
        .await;
    let bad = env.first_bad().await;
    assert_eq!(bad.seq, 3, "{}", bad.reason);
    assert!(bad.reason.contains("reordered"), "{}", bad.reason);
    env.finish().await;
}

async fn a_rewritten_history_with_recomputed_hashes_fails_the_signed_head(env: Env) {
    env.seed(12).await;
    env.drop_guards().await;
    // The attacker changes entry 2 and recomputes every later link and the head, so the
    // chain alone is consistent; only the signed heads (they lack the key) disagree.
    let entries = audit::entries(env.db(), 0, 100, None).await.unwrap();
    let mut prev = [0u8; 32];
    for e in &entries {
        let mut fields = NewEntry {
            at_ms: e.at_ms,
            actor: e.actor.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            outcome: e.outcome.clone(),
            reason: e.reason.clone(),
            detail: e.detail.clone(),
        };
        if e.seq == 2 {
            fields.outcome = "denied".into();
        }
        let hash = audit::entry_hash(&prev, e.seq, &fields);
        on_db!(env.db(), p => sqlx::query(
            "UPDATE audit_log SET outcome = $1, prev_hash = $2, hash = $3 WHERE seq = $4")
            .bind(&fields.outcome).bind(prev.to_vec()).bind(hash.to_vec()).bind(e.seq)
            .execute(p).await.map(|_| ()).unwrap());
        prev = hash;
    }
    on_db!(env.db(), p => sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(prev.to_vec()).execute(p).await.map(|_| ()).unwrap());
    let bad = env.first_bad().await;
    // The first signed head after the change (entry 5) no longer matches.
    assert_eq!(bad.seq, 5, "{}", bad.reason);
    assert!(bad.reason.contains("signed"), "{}", bad.reason);
    env.finish().await;
}

async fn concurrent_appends_form_one_chain(env: Env) {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let app = env.app.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                app.ops
                    .record(
                        "cli",
                        "test.append",
                        &format!("{t}/{i}"),
                        "succeeded",
                        "",
                        serde_json::json!({}),
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let v = env.verify().await;
    assert_eq!(v.first_bad, None);
    assert_eq!(v.entries_checked, 80);
    env.finish().await;
}

async fn users_appear_in_the_log_only_by_pseudonym(env: Env) {
    let subject = SubjectId::random();
    let actor = custos_app::ops::Actor::Cli;
    let reason =
        custos_app::ops::subjects::AccessReason::Purpose("user asked about their data".into());
    let summary = env
        .app
        .ops
        .subject_data(&actor, subject, &reason)
        .await
        .unwrap();
    assert_eq!(summary["subject"], subject.to_string());
    let entries = audit::entries(env.db(), 0, 100, None).await.unwrap();
    let read = entries
        .iter()
        .find(|e| e.action == "subject.data.read")
        .expect("the read is audited");
    assert_eq!(read.reason, "user asked about their data");
    assert_eq!(
        read.target,
        custos_app::ops::audit::subject_ref(&env.app.kernel, subject)
    );
    let id = subject.to_string();
    for e in &entries {
        let text = format!(
            "{} {} {} {} {}",
            e.actor, e.action, e.target, e.reason, e.detail
        );
        assert!(
            !text.contains(&id) && !text.contains(&id.replace('-', "")),
            "{text}"
        );
    }
    // Auditors find the reads of one user by that user's id.
    let page = env.app.ops.audit_page(0, 100, Some(subject)).await.unwrap();
    assert_eq!(page.entries.len(), 1);
    env.finish().await;
}
