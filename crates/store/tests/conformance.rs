//! One storage contract, two backends: every test here runs on SQLite and on PostgreSQL.
//! (L3, P23, P38, DESIGN invariants 3 and 4.)

use std::sync::Arc;

use custos_core::{
    ConsentMethod, ConsentRecord, Decision, Gate, GateContext, Personal, Regime, SubjectId,
};
use custos_crypto::{Keyring, MasterKey, OsRng};
use custos_policy::Policy;
use custos_store::db::Schema;
use custos_store::ledger::{self, NewDecision};
use custos_store::personal::{Field, PersonalStore};
use custos_store::vault::Vault;
use custos_store::{on_db, policy_versions, Backend, Db, StoreError};
use uuid::Uuid;

/// A database pair (data, vault) on one backend, cleaned up by `finish`.
struct Env {
    url: String,
    db: Db,
    vault_db: Db,
    _dir: Option<tempfile::TempDir>,
}

impl Env {
    async fn sqlite() -> Option<Env> {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("custos.db").display());
        let db = Db::connect(&url, Schema::Data).await.unwrap();
        let vault_db = Db::connect(
            &format!("sqlite://{}", dir.path().join("keys.db").display()),
            Schema::Vault,
        )
        .await
        .unwrap();
        Some(Env {
            url,
            db,
            vault_db,
            _dir: Some(dir),
        })
    }
    async fn postgres() -> Option<Env> {
        let url = custos_testkit::postgres_database().await?;
        let db = Db::connect(&url, Schema::Data).await.unwrap();
        let vault_db = Db::connect(&url, Schema::Vault).await.unwrap();
        Some(Env {
            url,
            db,
            vault_db,
            _dir: None,
        })
    }
    /// A second, independent pool on the same database (another process, in effect).
    async fn second_pool(&self) -> Db {
        Db::connect(&self.url, Schema::Data).await.unwrap()
    }
    async fn finish(self) {
        self.db.close().await;
        self.vault_db.close().await;
        if self.db.backend() == Backend::Postgres {
            custos_testkit::drop_postgres_database(&self.url).await;
        }
    }
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { if let Some(env) = super::Env::sqlite().await { super::$name(env).await } } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { if let Some(env) = super::Env::postgres().await { super::$name(env).await } } )*
        }
    };
}

on_both!(
    appended_records_form_an_intact_chain,
    concurrent_appenders_from_two_pools_lose_and_fork_nothing,
    verify_names_the_first_altered_record,
    verify_names_a_removed_record,
    verify_names_swapped_records,
    the_ledger_refuses_updates_and_deletes,
    policy_versions_are_immutable_and_found_by_prefix,
    personal_fields_are_stored_encrypted_and_need_a_matching_permit,
    a_write_after_a_withdrawal_elsewhere_is_refused,
    erasure_destroys_the_key_and_every_row,
    concurrent_key_creation_agrees_on_one_key,
);

fn decision(subject: SubjectId, purpose: &str, d: Decision) -> NewDecision {
    NewDecision {
        subject,
        purpose: purpose.into(),
        decision: d,
        policy_hash: "0".repeat(64),
        method: ConsentMethod::Api,
        receipt_id: Uuid::new_v4(),
        at_ms: 1_767_225_600_000,
    }
}

fn subject() -> SubjectId {
    SubjectId::from_u128(rand::random())
}

async fn appended_records_form_an_intact_chain(env: Env) {
    let s = subject();
    let batch: Vec<_> = (0..250)
        .map(|i| decision(s, if i % 2 == 0 { "a" } else { "b" }, Decision::Given))
        .collect();
    let recs = ledger::append(&env.db, &batch).await.unwrap();
    assert_eq!(
        recs.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=250).collect::<Vec<_>>()
    );
    let more = ledger::append(&env.db, &[decision(s, "a", Decision::Withdrawn)])
        .await
        .unwrap();
    assert_eq!(more[0].seq, 251);
    assert_eq!(more[0].prev_hash, recs[249].hash);
    let v = ledger::verify(&env.db, |_| {}).await.unwrap();
    assert_eq!(
        (v.records_checked, v.head_seq, v.first_bad),
        (251, 251, None)
    );
    assert_eq!(ledger::for_subject(&env.db, s).await.unwrap().len(), 251);
    assert_eq!(ledger::subject_head(&env.db, s).await.unwrap(), 251);
    let latest = ledger::latest_decisions(&env.db).await.unwrap();
    assert_eq!(latest.len(), 2, "one latest record per (subject, purpose)");
    assert_eq!(latest.last().unwrap().decision, Decision::Withdrawn);
    env.finish().await;
}

async fn concurrent_appenders_from_two_pools_lose_and_fork_nothing(env: Env) {
    let pools = [env.db.clone(), env.second_pool().await];
    let mut tasks = Vec::new();
    for t in 0..8 {
        let db = pools[t % 2].clone();
        tasks.push(tokio::spawn(async move {
            let s = subject();
            for i in 0..40 {
                let batch: Vec<_> = (0..(1 + i % 3))
                    .map(|_| decision(s, "p", Decision::Given))
                    .collect();
                ledger::append(&db, &batch).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let expected: i64 = 8 * (0..40).map(|i| 1 + i % 3).sum::<i64>();
    let v = ledger::verify(&env.db, |_| {}).await.unwrap();
    assert_eq!(v.first_bad, None);
    assert_eq!(v.records_checked, expected);
    assert_eq!(ledger::head(&env.db).await.unwrap(), expected);
    pools[1].close().await;
    env.finish().await;
}

/// Lets the test play an attacker with raw database access: drop the append-only guard.
async fn disable_guards(db: &Db) {
    match db {
        Db::Sqlite(p) => {
            for t in [
                "consent_ledger_append_only_u",
                "consent_ledger_append_only_d",
            ] {
                sqlx::query(&format!("DROP TRIGGER {t}"))
                    .execute(p)
                    .await
                    .unwrap();
            }
        }
        Db::Postgres(p) => {
            sqlx::query("DROP TRIGGER consent_ledger_append_only ON consent_ledger")
                .execute(p)
                .await
                .unwrap();
        }
    }
}

async fn seed(env: &Env, n: usize) -> Vec<ConsentRecord> {
    let s = subject();
    let batch: Vec<_> = (0..n).map(|_| decision(s, "p", Decision::Given)).collect();
    ledger::append(&env.db, &batch).await.unwrap()
}

async fn verify_names_the_first_altered_record(env: Env) {
    seed(&env, 20).await;
    disable_guards(&env.db).await;
    // Flip one byte of record 7's purpose ("p" -> "q").
    on_db!(&env.db, p => sqlx::query("UPDATE consent_ledger SET purpose = 'q' WHERE seq = 7").execute(p).await.map(|_| ()).unwrap());
    let v = ledger::verify(&env.db, |_| {}).await.unwrap();
    let bad = v.first_bad.expect("tampering detected");
    assert_eq!(bad.seq, 7);
    assert!(bad.reason.contains("altered"), "{}", bad.reason);
    env.finish().await;
}

async fn verify_names_a_removed_record(env: Env) {
    seed(&env, 20).await;
    disable_guards(&env.db).await;
    on_db!(&env.db, p => sqlx::query("DELETE FROM consent_ledger WHERE seq = 12").execute(p).await.map(|_| ()).unwrap());
    let bad = ledger::verify(&env.db, |_| {})
        .await
        .unwrap()
        .first_bad
        .expect("removal detected");
    assert_eq!(bad.seq, 12);
    // Removing the tail is caught by the head.
    on_db!(&env.db, p => sqlx::query("DELETE FROM consent_ledger WHERE seq >= 12").execute(p).await.map(|_| ()).unwrap());
    let bad = ledger::verify(&env.db, |_| {})
        .await
        .unwrap()
        .first_bad
        .expect("truncation detected");
    assert_eq!(bad.seq, 12);
    env.finish().await;
}

async fn verify_names_swapped_records(env: Env) {
    let recs = seed(&env, 10).await;
    disable_guards(&env.db).await;
    // Swap the contents of records 4 and 5 while keeping their sequence numbers.
    let (a, b) = (&recs[3], &recs[4]);
    on_db!(&env.db, p => {
        let mut tx = p.begin().await.unwrap();
        for (seq, src) in [(4i64, b), (5i64, a)] {
            sqlx::query("UPDATE consent_ledger SET receipt_id = $1, prev_hash = $2, hash = $3 WHERE seq = $4")
                .bind(src.receipt_id.as_bytes().to_vec()).bind(src.prev_hash.to_vec()).bind(src.hash.to_vec()).bind(seq)
                .execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    });
    let bad = ledger::verify(&env.db, |_| {})
        .await
        .unwrap()
        .first_bad
        .expect("reordering detected");
    assert_eq!(bad.seq, 4);
    env.finish().await;
}

async fn the_ledger_refuses_updates_and_deletes(env: Env) {
    seed(&env, 3).await;
    let upd = on_db!(&env.db, p => sqlx::query("UPDATE consent_ledger SET purpose = 'x' WHERE seq = 1").execute(p).await.map(|_| ()));
    assert!(upd.is_err(), "update must be refused");
    let del = on_db!(&env.db, p => sqlx::query("DELETE FROM consent_ledger WHERE seq = 1").execute(p).await.map(|_| ()));
    assert!(del.is_err(), "delete must be refused");
    assert_eq!(
        ledger::verify(&env.db, |_| {}).await.unwrap().first_bad,
        None
    );
    env.finish().await;
}

async fn policy_versions_are_immutable_and_found_by_prefix(env: Env) {
    let p1 = Policy::parse(custos_policy::BUNDLED_DECLARATION).unwrap();
    let (v1, new) = policy_versions::publish(&env.db, &p1, 1).await.unwrap();
    assert!(new);
    let (again, new) = policy_versions::publish(&env.db, &p1, 2).await.unwrap();
    assert!(!new);
    assert_eq!(again, v1);
    let src2 =
        custos_policy::BUNDLED_DECLARATION.replacen("revision = \"", "revision = \"second ", 1);
    let p2 = Policy::parse(&src2).unwrap();
    let (v2, _) = policy_versions::publish(&env.db, &p2, 3).await.unwrap();
    assert!(v2.seq > v1.seq);
    assert_eq!(
        policy_versions::find(&env.db, &v2.hash[..10])
            .await
            .unwrap()
            .unwrap()
            .hash,
        v2.hash
    );
    assert_eq!(policy_versions::list(&env.db).await.unwrap().len(), 2);
    let loaded = policy_versions::load_all(&env.db).await.unwrap();
    assert_eq!(loaded[1].hash(), p2.hash());
    let upd = on_db!(&env.db, p => sqlx::query("UPDATE policy_versions SET revision = 'x'").execute(p).await.map(|_| ()));
    assert!(upd.is_err(), "published versions cannot change");
    env.finish().await;
}

struct Kit {
    gate: Gate,
    personal: PersonalStore,
    regime_hash: String,
}

fn kit(env: &Env) -> Kit {
    let ring = Arc::new(Keyring::new(&MasterKey::generate(&mut OsRng)));
    let policy = Arc::new(Policy::parse(custos_policy::BUNDLED_DECLARATION).unwrap());
    let regime_hash = policy.hash().to_string();
    let gate = Gate::new(Regime::new(vec![policy]).unwrap());
    let vault = Vault::new(env.vault_db.clone(), ring.clone());
    Kit {
        gate,
        personal: PersonalStore::new(env.db.clone(), vault, ring),
        regime_hash,
    }
}

async fn give(env: &Env, kit: &Kit, s: SubjectId, purpose: &str, d: Decision) {
    let mut nd = decision(s, purpose, d);
    nd.policy_hash = kit.regime_hash.clone();
    let recs = ledger::append(&env.db, &[nd]).await.unwrap();
    kit.gate.apply_all(&recs);
}

fn db_files_contain(env: &Env, needle: &[u8]) -> Vec<String> {
    env._dir
        .as_ref()
        .map(|d| custos_testkit::files_contain(d.path(), needle))
        .unwrap_or_default()
}

async fn personal_fields_are_stored_encrypted_and_need_a_matching_permit(env: Env) {
    let kit = kit(&env);
    let s = subject();
    let ctx = GateContext::default();
    // Contract-based purpose: no consent needed.
    let permit = kit
        .gate
        .check_named(s, "profile", &["user.name"], &ctx)
        .unwrap();
    let nick = Personal::new("Zhang-Wei-Nickname-7731".as_bytes().to_vec());
    kit.personal
        .put(
            &permit,
            &Field::new("nickname", "user.name"),
            &nick,
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        kit.personal
            .get(s, "nickname", 11)
            .await
            .unwrap()
            .unwrap()
            .expose(),
        nick.expose()
    );
    assert!(
        db_files_contain(&env, b"Zhang-Wei-Nickname-7731").is_empty(),
        "plaintext found in database files"
    );
    // A permit for user.name does not cover another category, nor another subject.
    let wrong = kit
        .personal
        .put(
            &permit,
            &Field::new("phone", "user.contact.phone_number"),
            &nick,
            10,
            None,
        )
        .await;
    assert!(matches!(wrong, Err(StoreError::PermitMismatch)));
    // A consent-based purpose needs consent first.
    assert!(kit
        .gate
        .check_named(s, "location", &["user.location.imprecise"], &ctx)
        .is_err());
    give(&env, &kit, s, "location", Decision::Given).await;
    let permit = kit
        .gate
        .check_named(s, "location", &["user.location.imprecise"], &ctx)
        .unwrap();
    let geo = Personal::new(b"wx4g0".to_vec());
    kit.personal
        .put(
            &permit,
            &Field::new("location", "user.location.imprecise"),
            &geo,
            10,
            Some(100),
        )
        .await
        .unwrap();
    assert_eq!(kit.personal.list(s).await.unwrap().len(), 2);
    // Expired values are not returned and are purged.
    assert!(kit
        .personal
        .get(s, "location", 100)
        .await
        .unwrap()
        .is_none());
    assert_eq!(kit.personal.purge_expired(100).await.unwrap(), 1);
    env.finish().await;
}

async fn a_write_after_a_withdrawal_elsewhere_is_refused(env: Env) {
    let kit = kit(&env);
    let s = subject();
    give(&env, &kit, s, "location", Decision::Given).await;
    let permit = kit
        .gate
        .check_named(
            s,
            "location",
            &["user.location.imprecise"],
            &GateContext::default(),
        )
        .unwrap();
    // Another process withdraws; this process's gate has not heard of it yet.
    let mut w = decision(s, "location", Decision::Withdrawn);
    w.policy_hash = kit.regime_hash.clone();
    ledger::append(&env.second_pool().await, &[w])
        .await
        .unwrap();
    let r = kit
        .personal
        .put(
            &permit,
            &Field::new("location", "user.location.imprecise"),
            &Personal::new(b"wx4g0".to_vec()),
            1,
            None,
        )
        .await;
    assert!(matches!(r, Err(StoreError::StaleConsent)), "{r:?}");
    env.finish().await;
}

async fn erasure_destroys_the_key_and_every_row(env: Env) {
    let kit = kit(&env);
    let (s, other) = (subject(), subject());
    for who in [s, other] {
        let permit = kit
            .gate
            .check_named(who, "profile", &["user.name"], &GateContext::default())
            .unwrap();
        kit.personal
            .put(
                &permit,
                &Field::new("nickname", "user.name"),
                &Personal::new(b"nick".to_vec()),
                1,
                None,
            )
            .await
            .unwrap();
        let permit = kit
            .gate
            .check_named(
                who,
                "account",
                &["user.contact.phone_number"],
                &GateContext::default(),
            )
            .unwrap();
        kit.personal
            .put_lookup(
                &permit,
                "user.contact.phone_number",
                "phone",
                &Personal::new(who.to_string().into_bytes()),
                1,
            )
            .await
            .unwrap();
    }
    assert_eq!(
        kit.personal
            .find("phone", s.to_string().as_bytes())
            .await
            .unwrap(),
        Some(s)
    );
    let counts = kit.personal.erase(s).await.unwrap();
    assert_eq!(
        (counts.fields, counts.lookups, counts.key_destroyed),
        (1, 1, true)
    );
    assert!(kit.personal.get(s, "nickname", 2).await.unwrap().is_none());
    assert_eq!(
        kit.personal
            .find("phone", s.to_string().as_bytes())
            .await
            .unwrap(),
        None
    );
    // The other subject is untouched.
    assert!(kit
        .personal
        .get(other, "nickname", 2)
        .await
        .unwrap()
        .is_some());
    env.finish().await;
}

async fn concurrent_key_creation_agrees_on_one_key(env: Env) {
    let ring = Arc::new(Keyring::new(&MasterKey::generate(&mut OsRng)));
    let vault = Vault::new(env.vault_db.clone(), ring);
    let s = subject();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let v = vault.clone();
        tasks.push(tokio::spawn(async move {
            let k = v.get_or_create(s, 1).await.unwrap();
            k.cipher().seal(b"b", b"probe", &mut OsRng)
        }));
    }
    let mut sealed_all = Vec::new();
    for t in tasks {
        sealed_all.push(t.await.unwrap());
    }
    let key = vault.get(s).await.unwrap().unwrap();
    for sealed in sealed_all {
        assert_eq!(key.cipher().open(b"b", &sealed).unwrap(), b"probe");
    }
    assert!(vault.destroy(s).await.unwrap());
    assert!(vault.get(s).await.unwrap().is_none());
    env.finish().await;
}
