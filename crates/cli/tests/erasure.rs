//! `custos erasure verify` after an account cancellation (P19, L8): the scan of the data
//! database, the vault and the data directory (search index, media) finds the subject
//! before erasure and nothing but the de-identified ledger records after it.

use std::process::{Command, Output};
use std::sync::Arc;

use custos_app::catalog::input::Format;
use custos_app::config::MasterKeySource;
use custos_app::consent::DecisionInput;
use custos_app::rights::RightsConfig;
use custos_app::{App, Config};
use custos_core::{ConsentMethod, Decision, FakeClock, GateContext, SubjectId};
use custos_crypto::{MasterKey, OsRng};

const BIN: &str = env!("CARGO_BIN_EXE_custos");

fn verify(dir: &std::path::Path, key: &str, subject: SubjectId) -> Output {
    Command::new(BIN)
        .args(["erasure", "verify", &subject.to_string(), "--data-dir"])
        .arg(dir)
        .current_dir(dir)
        .env("CUSTOS_MASTER_KEY", key)
        .env_remove("CUSTOS_DATABASE_URL")
        .env_remove("CUSTOS_VAULT_URL")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_verify_finds_nothing_of_a_cancelled_account_but_its_de_identified_ledger_records()
{
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate(&mut OsRng).to_base64();
    let cfg = Config {
        data_dir: dir.path().to_path_buf(),
        database_url: format!("sqlite://{}", dir.path().join("custos.db").display()),
        vault_url: format!("sqlite://{}", dir.path().join("keys.db").display()),
        master_key: MasterKeySource::Inline(key.clone()),
        policy: None,
        rights: RightsConfig {
            cooling_off_days: Some(0),
            ..Default::default()
        },
        ..Default::default()
    };
    let clock = Arc::new(FakeClock::default());
    let app = App::open(&cfg, clock.clone()).await.unwrap();
    let ids = app
        .catalog
        .import_text(
            "external_id,title_zh,title_en,description_zh,description_en,category,tags,price_min,price_max,currency\n\
             sku-1,夏季连衣裙,Summer dress,轻薄透气,Light and airy,clothing,summer,199,259,CNY\n",
            Format::Csv,
            false,
            &mut |_| {},
        )
        .await
        .unwrap()
        .ids;
    let user = SubjectId::random();
    let ctx = GateContext::default();
    app.kernel
        .record_decisions(
            user,
            false,
            &[DecisionInput {
                purpose: "partner_sharing".into(),
                decision: Decision::Given,
            }],
            ConsentMethod::Dialog,
        )
        .await
        .unwrap();
    app.catalog
        .bookmark(user, &ctx, ids[0], Some("collection"))
        .await
        .unwrap();
    app.catalog
        .comment(user, &ctx, ids[0], "nice", false)
        .await
        .unwrap();
    let token = app.identity.create_session(user, true).await.unwrap();
    let session = app
        .identity
        .authenticate(token.token.expose())
        .await
        .unwrap();
    let who = app.identity.reauthenticated(&session).unwrap();
    app.rights.request_cancellation(&who).await.unwrap();

    // Before erasure the scan finds the subject.
    let before = verify(dir.path(), &key, user);
    assert!(!before.status.success(), "{}", text(&before));
    assert!(
        text(&before).contains("bookmarks.subject"),
        "{}",
        text(&before)
    );

    assert_eq!(app.rights.run_due_cancellations().await.unwrap().len(), 1);
    app.shutdown().await;

    let after = verify(dir.path(), &key, user);
    assert!(after.status.success(), "{}", text(&after));
    assert!(
        text(&after).contains("erasure verified: 0 hits"),
        "{}",
        text(&after)
    );
    assert!(text(&after).contains("consent_ledger"), "{}", text(&after));
}
