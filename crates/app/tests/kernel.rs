//! The kernel's promises, through its public API, on SQLite and PostgreSQL.
//! P3, P23, P35, P38, P39, L1, L4, DESIGN invariants 1 and 4.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use custos_app::config::MasterKeySource;
use custos_app::consent::DecisionInput;
use custos_app::{AppError, Config, Kernel};
use custos_core::{ConsentMethod, Decision, Denial, FakeClock, GateContext, Personal, SubjectId};
use custos_crypto::{MasterKey, OsRng};
use custos_policy::Policy;
use custos_store::db::Schema;
use custos_store::personal::{Field, PersonalStore};
use custos_store::Db;

const PHONE: &str = "+8613912345678";
const NICKNAME: &str = "LiXiaolong-Nick-4417";
const LAT: f64 = 30.274_084_7;
const LON: f64 = 120.155_070_1;

struct Env {
    kernel: Arc<Kernel>,
    cfg: Config,
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
                policy: None,
                ..Default::default()
            };
        let kernel = Kernel::open(&cfg, Arc::new(FakeClock::default()))
            .await
            .unwrap();
        Env {
            kernel,
            cfg,
            dir,
            pg,
        }
    }
    async fn sqlite() -> Option<Env> {
        Some(Env::open(None).await)
    }
    /// Data and vault in two separate PostgreSQL databases, as the docs recommend.
    async fn postgres() -> Option<Env> {
        let data = custos_testkit::postgres_database().await?;
        let vault = custos_testkit::postgres_database().await?;
        Some(Env::open(Some((data, vault))).await)
    }
    async fn finish(self) {
        self.kernel.shutdown().await;
        if let Some((a, b)) = &self.pg {
            custos_testkit::drop_postgres_database(a).await;
            custos_testkit::drop_postgres_database(b).await;
        }
    }
    /// Every byte of the data store: the SQLite files, or a `pg_dump` of both databases.
    fn dump(&self) -> Vec<u8> {
        match &self.pg {
            None => std::fs::read_dir(self.dir.path())
                .unwrap()
                .flatten()
                .flat_map(|e| std::fs::read(e.path()).unwrap_or_default())
                .collect(),
            Some((data, vault)) => [data, vault].iter().flat_map(|url| pg_dump(url)).collect(),
        }
    }
}

fn pg_dump(url: &str) -> Vec<u8> {
    let out = Command::new("pg_dump")
        .arg("--dbname")
        .arg(url)
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.len() > 1000, "dump unexpectedly small");
    out.stdout
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
    personal_values_never_appear_in_the_database_or_its_dump,
    after_erasure_a_copy_taken_before_cannot_be_decrypted,
    withdrawal_stops_processing_at_once_and_deletes_what_the_purpose_stored,
    a_separate_consent_cannot_be_bundled_with_others,
    a_new_version_pauses_only_the_purposes_it_changed,
    receipts_verify_with_the_published_key_and_belong_to_their_subject,
    an_erased_anonymous_token_no_longer_identifies_anyone,
);

async fn an_erased_anonymous_token_no_longer_identifies_anyone(env: Env) {
    let k = &env.kernel;
    let (token, s) = k.new_anonymous_subject().await.unwrap();
    assert_eq!(k.anonymous_subject(&token).await.unwrap(), Some(s));
    assert_eq!(
        k.anonymous_subject(&token).await.unwrap(),
        Some(s),
        "cached answer agrees"
    );
    k.erase_subject(s).await.unwrap();
    assert_eq!(k.anonymous_subject(&token).await.unwrap(), None);
    assert_eq!(k.anonymous_subject("not-a-token").await.unwrap(), None);
    env.finish().await;
}

fn give(purpose: &str) -> Vec<DecisionInput> {
    vec![DecisionInput {
        purpose: purpose.into(),
        decision: Decision::Given,
    }]
}

async fn store_all(k: &Kernel, s: SubjectId) {
    let ctx = GateContext::default();
    k.record_decisions(s, false, &give("location"), ConsentMethod::Dialog)
        .await
        .unwrap();
    k.store_field(
        s,
        "account",
        &Field::new("phone", "user.contact.phone_number"),
        &Personal::new(PHONE.as_bytes().to_vec()),
        &ctx,
    )
    .await
    .unwrap();
    let permit = k
        .permit(s, "account", &["user.contact.phone_number"], &ctx)
        .unwrap();
    k.personal
        .put_lookup(
            &permit,
            "user.contact.phone_number",
            "phone",
            &Personal::new(PHONE.as_bytes().to_vec()),
            0,
        )
        .await
        .unwrap();
    k.store_field(
        s,
        "profile",
        &Field::new("nickname", "user.name"),
        &Personal::new(NICKNAME.as_bytes().to_vec()),
        &ctx,
    )
    .await
    .unwrap();
    let geohash = k.store_location(s, LAT, LON, &ctx).await.unwrap();
    assert_eq!(geohash.len(), 5);
}

async fn personal_values_never_appear_in_the_database_or_its_dump(env: Env) {
    let k = &env.kernel;
    let s = SubjectId::random();
    store_all(k, s).await;
    let now = k.clock.now_ms();
    // Everything reads back through the API…
    assert_eq!(
        k.personal
            .get(s, "nickname", now)
            .await
            .unwrap()
            .unwrap()
            .expose(),
        NICKNAME.as_bytes()
    );
    assert_eq!(
        k.personal.find("phone", PHONE.as_bytes()).await.unwrap(),
        Some(s)
    );
    let geo = k.personal.get(s, "location", now).await.unwrap().unwrap();
    // …but none of it, nor the coordinates, is in the stored bytes.
    let dump = env.dump();
    let geo_text = String::from_utf8(geo.expose().clone()).unwrap();
    for needle in [
        PHONE,
        "13912345678",
        NICKNAME,
        "30.27408",
        "120.15507",
        geo_text.as_str(),
    ] {
        assert!(
            !custos_testkit::contains(&dump, needle.as_bytes()),
            "`{needle}` found in the stored bytes"
        );
    }
    env.finish().await;
}

async fn after_erasure_a_copy_taken_before_cannot_be_decrypted(env: Env) {
    let k = env.kernel.clone();
    let (s, other) = (SubjectId::random(), SubjectId::random());
    store_all(&k, s).await;
    store_all(&k, other).await;
    // Take a copy of the data database as it is before erasure.
    let copy_url = match &env.pg {
        None => {
            if let Db::Sqlite(p) = &k.db {
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(p)
                    .await
                    .unwrap();
            }
            let copy: PathBuf = env.dir.path().join("backup.db");
            std::fs::copy(env.dir.path().join("custos.db"), &copy).unwrap();
            format!("sqlite://{}", copy.display())
        }
        Some((data, _)) => {
            let url = custos_testkit::postgres_database().await.unwrap();
            let dump = pg_dump(data);
            let mut psql = Command::new("psql")
                .args(["-q", "-v", "ON_ERROR_STOP=1", "--dbname", &url])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            use std::io::Write;
            psql.stdin.take().unwrap().write_all(&dump).unwrap();
            assert!(psql.wait().unwrap().success());
            url
        }
    };
    let counts = k.erase_subject(s).await.unwrap();
    assert!(counts.key_destroyed);
    assert!(counts.fields >= 3);
    // The copy still holds the ciphertexts, and the live vault and master key are at hand…
    let copy = PersonalStore::new(
        Db::connect(&copy_url, Schema::Data).await.unwrap(),
        k.vault.clone(),
        k.ring.clone(),
    );
    let now = k.clock.now_ms();
    assert_eq!(
        copy.list(s).await.unwrap().len(),
        counts.fields as usize,
        "the copy predates erasure"
    );
    // …yet the erased subject cannot be read from it, while the other subject can.
    for field in ["nickname", "phone", "location"] {
        assert!(
            copy.get(s, field, now).await.unwrap().is_none(),
            "{field} readable after erasure"
        );
    }
    assert_eq!(
        copy.get(other, "nickname", now)
            .await
            .unwrap()
            .unwrap()
            .expose(),
        NICKNAME.as_bytes()
    );
    if let Some((_, _)) = &env.pg {
        custos_testkit::drop_postgres_database(&copy_url).await;
    }
    env.finish().await;
}

async fn withdrawal_stops_processing_at_once_and_deletes_what_the_purpose_stored(env: Env) {
    let k = &env.kernel;
    let s = SubjectId::random();
    store_all(k, s).await;
    assert!(k
        .personal
        .get(s, "location", k.clock.now_ms())
        .await
        .unwrap()
        .is_some());
    k.withdraw(s, false, "location", ConsentMethod::Settings)
        .await
        .unwrap();
    assert!(
        k.personal
            .get(s, "location", k.clock.now_ms())
            .await
            .unwrap()
            .is_none(),
        "withdrawal deletes the purpose's data"
    );
    let err = k
        .store_location(s, LAT, LON, &GateContext::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppError::Denied(Denial::ConsentWithdrawn)),
        "{err:?}"
    );
    // Basic features are untouched by the withdrawal (P1).
    assert!(k
        .personal
        .get(s, "nickname", k.clock.now_ms())
        .await
        .unwrap()
        .is_some());
    let statuses = k.purpose_statuses(s).await.unwrap();
    assert_eq!(
        statuses
            .iter()
            .find(|p| p.purpose == "location")
            .unwrap()
            .status,
        "consent_withdrawn"
    );
    env.finish().await;
}

async fn a_separate_consent_cannot_be_bundled_with_others(env: Env) {
    let k = &env.kernel;
    let s = SubjectId::random();
    let bundle = vec![
        DecisionInput {
            purpose: "partner_sharing".into(),
            decision: Decision::Given,
        },
        DecisionInput {
            purpose: "personalized_ads".into(),
            decision: Decision::Given,
        },
    ];
    let err = k
        .record_decisions(s, false, &bundle, ConsentMethod::Dialog)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "separate_consent_bundled");
    assert!(
        k.consent_history(s).await.unwrap().is_empty(),
        "nothing recorded from a refused bundle"
    );
    k.record_decisions(s, false, &give("partner_sharing"), ConsentMethod::Dialog)
        .await
        .unwrap();
    // Refusing many at once is fine.
    let refuse_all: Vec<_> = ["partner_sharing", "personalized_ads", "location"]
        .iter()
        .map(|p| DecisionInput {
            purpose: (*p).into(),
            decision: Decision::Refused,
        })
        .collect();
    k.record_decisions(s, false, &refuse_all, ConsentMethod::Dialog)
        .await
        .unwrap();
    assert_eq!(k.consent_history(s).await.unwrap().len(), 4);
    env.finish().await;
}

async fn a_new_version_pauses_only_the_purposes_it_changed(env: Env) {
    let k = &env.kernel;
    let s = SubjectId::random();
    for p in ["personalized_feed", "personalized_ads"] {
        k.record_decisions(s, false, &give(p), ConsentMethod::Dialog)
            .await
            .unwrap();
    }
    // v2 adds a category to the feed purpose only.
    let src = custos_policy::BUNDLED_DECLARATION;
    let v1 = Policy::parse(src).unwrap();
    let feed = v1.purpose("personalized_feed").unwrap();
    assert!(!feed
        .categories
        .contains(&"user.device.device_id".to_string()));
    let marker = "id = \"personalized_feed\"";
    let at = src.find(marker).unwrap();
    let cats = at + src[at..].find("categories = [").unwrap() + "categories = [".len();
    let v2_src = format!(
        "{}\"user.device.device_id\", {}",
        &src[..cats],
        &src[cats..]
    );
    let v2 = Policy::parse(&v2_src).unwrap();
    assert!(custos_policy::diff(&v1, &v2)
        .needs_consent()
        .contains(&"personalized_feed"));
    k.publish(&v2).await.unwrap();
    let st = k.purpose_statuses(s).await.unwrap();
    let status = |p: &str| st.iter().find(|x| x.purpose == p).unwrap().status;
    assert_eq!(status("personalized_feed"), "consent_outdated");
    assert_eq!(status("personalized_ads"), "active");
    // Agreeing to the new version resumes it.
    k.record_decisions(s, false, &give("personalized_feed"), ConsentMethod::Dialog)
        .await
        .unwrap();
    let st = k.purpose_statuses(s).await.unwrap();
    assert_eq!(
        st.iter()
            .find(|x| x.purpose == "personalized_feed")
            .unwrap()
            .status,
        "active"
    );
    // A reopened kernel derives the same from the stored versions and ledger.
    let cfg = env.cfg.clone();
    k.shutdown().await;
    let again = Kernel::open(&cfg, Arc::new(FakeClock::default()))
        .await
        .unwrap();
    let st = again.purpose_statuses(s).await.unwrap();
    assert_eq!(
        st.iter()
            .find(|x| x.purpose == "personalized_feed")
            .unwrap()
            .status,
        "active"
    );
    again.shutdown().await;
    if let Some((a, b)) = &env.pg {
        custos_testkit::drop_postgres_database(a).await;
        custos_testkit::drop_postgres_database(b).await;
    }
}

async fn receipts_verify_with_the_published_key_and_belong_to_their_subject(env: Env) {
    let k = &env.kernel;
    let s = SubjectId::random();
    let r = k
        .record_decisions(s, false, &give("personalized_ads"), ConsentMethod::Dialog)
        .await
        .unwrap();
    let vk = custos_crypto::verifying_key_from_jwk(&k.signer.public_jwk()).unwrap();
    let payload: serde_json::Value =
        serde_json::from_slice(&custos_crypto::verify_jws(&vk, &r.jws).unwrap()).unwrap();
    assert_eq!(payload, r.receipt);
    assert_eq!(payload["version"], "KI-CR-v1.1.0");
    assert_eq!(payload["piiPrincipalId"], s.to_string());
    assert_eq!(payload["custos"]["decisions"][0]["decision"], "given");
    let again = k.receipt(s, r.receipt_id).await.unwrap();
    assert_eq!(again.jws, r.jws, "a receipt is stable");
    assert!(matches!(
        k.receipt(SubjectId::random(), r.receipt_id).await,
        Err(AppError::NotFound)
    ));
    env.finish().await;
}
