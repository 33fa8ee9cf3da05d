//! Policy revisions and change of controller through their use cases, on SQLite and
//! PostgreSQL (P31, P35, L4): a published version pauses, per user, exactly the purposes
//! it added or widened until that user agrees; every other purpose keeps running; a
//! controller-only change pauses nothing; users are told in their inbox.

use std::sync::Arc;

use custos_app::config::MasterKeySource;
use custos_app::consent::DecisionInput;
use custos_app::ops::controller::NewController;
use custos_app::{App, AppError, Config};
use custos_core::{ConsentMethod, Decision, Denial, FakeClock, GateContext, SubjectId};
use custos_crypto::{MasterKey, OsRng};
use custos_policy::{Policy, Text, BUNDLED_DECLARATION};

struct Env {
    app: App,
    _dir: tempfile::TempDir,
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
                ..Default::default()
            };
        let app = App::open(&cfg, Arc::new(FakeClock::default()))
            .await
            .unwrap();
        Env { app, _dir: dir, pg }
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
    /// A signed-up account (the inbox belongs to accounts).
    async fn account(&self) -> SubjectId {
        let s = SubjectId::random();
        custos_store::identity::create_account(&self.app.kernel.db, s, 1)
            .await
            .unwrap();
        s
    }
    async fn give(&self, s: SubjectId, purpose: &str) {
        self.app
            .kernel
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
    fn allowed(&self, s: SubjectId, purpose: &str) -> Result<(), Denial> {
        match self
            .app
            .kernel
            .permit(s, purpose, &[], &GateContext::default())
        {
            Ok(_) => Ok(()),
            Err(AppError::Denied(d)) => Err(d),
            Err(e) => panic!("unexpected error {e}"),
        }
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
    an_added_purpose_is_blocked_until_the_user_agrees_and_other_purposes_keep_running,
    a_widened_purpose_pauses_until_agree_while_unchanged_purposes_keep_running,
    a_plain_agree_does_not_cover_a_separate_consent_purpose,
    the_changes_since_a_version_are_rendered_per_purpose,
    a_controller_change_keeps_every_consent_valid_and_notifies_every_user,
);

/// The bundled declaration with a new consent purpose `price_alerts`.
pub fn with_added_purpose() -> Policy {
    let addition = r#"

[[purposes]]
id = "price_alerts"
data_use = "essential.service.notifications"
tier = "additional"
basis = "consent"
categories = ["user.unique_id.pseudonymous", "user.content.private"]
methods = ["storage", "use"]
retention = { days = 30, from = "withdrawal" }
impact_assessment = "PIA-2026-03-personalization"
name = { en = "Price drop alerts", zh = "降价提醒" }
description = { en = "Tells you when a bookmarked item gets cheaper.", zh = "收藏的商品降价时提醒您。" }
"#;
    Policy::parse(&format!("{BUNDLED_DECLARATION}{addition}")).unwrap()
}

/// The bundled declaration with one more category for `purpose`.
pub fn widened(purpose: &str, category: &str) -> Policy {
    let src = BUNDLED_DECLARATION;
    let at = src.find(&format!("id = \"{purpose}\"\ndata_use")).unwrap();
    let cats = at + src[at..].find("categories = [").unwrap() + "categories = [".len();
    let out = format!("{}\"{category}\", {}", &src[..cats], &src[cats..]);
    Policy::parse(&out).unwrap()
}

async fn an_added_purpose_is_blocked_until_the_user_agrees_and_other_purposes_keep_running(
    env: Env,
) {
    let s = env.account().await;
    env.give(s, "personalized_ads").await;
    let v2 = with_added_purpose();
    let out = env.app.policy_ops.publish_revision(&v2).await.unwrap();
    assert!(out.published);
    assert_eq!(out.paused_purposes, vec!["price_alerts".to_owned()]);
    assert_eq!(out.notified, 1);
    // Told in the inbox.
    let inbox = env.app.signals.inbox(s).await.unwrap();
    assert!(
        inbox.iter().any(|m| m.body.contains("Price drop alerts")),
        "{inbox:?}"
    );
    assert_eq!(env.allowed(s, "price_alerts"), Err(Denial::ConsentMissing));
    assert_eq!(env.allowed(s, "personalized_ads"), Ok(()));
    // A plain Agree does not opt in to a new purpose (nothing bundled, L2)…
    let plain = env
        .app
        .policy_ops
        .agree(s, false, v2.hash().as_str(), None)
        .await
        .unwrap();
    assert!(plain.agreed.is_empty() && plain.receipt.is_none());
    assert_eq!(env.allowed(s, "price_alerts"), Err(Denial::ConsentMissing));
    // …agreeing to it by name does, with a receipt in the ledger.
    let agreed = env
        .app
        .policy_ops
        .agree(
            s,
            false,
            v2.hash().short(),
            Some(&["price_alerts".to_owned()]),
        )
        .await
        .unwrap();
    assert_eq!(agreed.agreed, vec!["price_alerts".to_owned()]);
    assert!(agreed.receipt.is_some());
    assert_eq!(env.allowed(s, "price_alerts"), Ok(()));
    assert_eq!(env.allowed(s, "personalized_ads"), Ok(()));
    let history = env.app.kernel.consent_history(s).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.purpose.as_str(), last.policy_hash.as_str()),
        ("price_alerts", v2.hash().as_str())
    );
    // A purpose the version did not touch cannot be agreed through it.
    let err = env
        .app
        .policy_ops
        .agree(s, false, v2.hash().as_str(), Some(&["device_info".into()]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_in_version");
    env.finish().await;
}

async fn a_widened_purpose_pauses_until_agree_while_unchanged_purposes_keep_running(env: Env) {
    let s = env.account().await;
    let other = env.account().await;
    for p in ["personalized_feed", "personalized_ads"] {
        env.give(s, p).await;
    }
    env.give(other, "personalized_ads").await;
    assert_eq!(env.allowed(s, "personalized_feed"), Ok(()));
    let v2 = widened("personalized_feed", "user.device.device_id");
    let out = env.app.policy_ops.publish_revision(&v2).await.unwrap();
    assert_eq!(out.paused_purposes, vec!["personalized_feed".to_owned()]);
    assert_eq!(out.notified, 2);

    assert_eq!(
        env.allowed(s, "personalized_feed"),
        Err(Denial::ConsentOutdated)
    );
    assert_eq!(env.allowed(s, "personalized_ads"), Ok(()));
    assert_eq!(env.allowed(other, "personalized_ads"), Ok(()));
    let pending = env.app.policy_ops.pending_reconsent(s).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].version, v2.hash().as_str());
    assert_eq!(pending[0].purposes, vec!["personalized_feed".to_owned()]);
    // The other user never consented to the feed: nothing to renew.
    assert!(env
        .app
        .policy_ops
        .pending_reconsent(other)
        .await
        .unwrap()
        .is_empty());

    let agreed = env
        .app
        .policy_ops
        .agree(s, false, v2.hash().as_str(), None)
        .await
        .unwrap();
    assert_eq!(agreed.agreed, vec!["personalized_feed".to_owned()]);
    assert!(agreed.still_pending.is_empty());
    assert_eq!(env.allowed(s, "personalized_feed"), Ok(()));
    assert_eq!(env.allowed(s, "personalized_ads"), Ok(()));
    assert!(env
        .app
        .policy_ops
        .pending_reconsent(s)
        .await
        .unwrap()
        .is_empty());
    // Publishing the same content again announces nothing.
    let again = env.app.policy_ops.publish_revision(&v2).await.unwrap();
    assert!(!again.published);
    assert_eq!(env.app.policy_ops.announcements().await.unwrap().len(), 1);
    env.finish().await;
}

async fn a_plain_agree_does_not_cover_a_separate_consent_purpose(env: Env) {
    let s = env.account().await;
    env.give(s, "location").await;
    env.give(s, "personalized_feed").await;
    let src = widened("personalized_feed", "user.device.device_id")
        .source()
        .to_owned();
    let at = src.find("id = \"location\"\ndata_use").unwrap();
    let m = at + src[at..].find("methods = [").unwrap() + "methods = [".len();
    let v2 = Policy::parse(&format!("{}\"profiling\", {}", &src[..m], &src[m..])).unwrap();
    env.app.policy_ops.publish_revision(&v2).await.unwrap();
    let pending = env.app.policy_ops.pending_reconsent(s).await.unwrap();
    assert_eq!(pending[0].purposes, vec!["personalized_feed".to_owned()]);
    assert_eq!(pending[0].separate, vec!["location".to_owned()]);
    let plain = env
        .app
        .policy_ops
        .agree(s, false, v2.hash().as_str(), None)
        .await
        .unwrap();
    assert_eq!(plain.still_pending, vec!["location".to_owned()]);
    assert_eq!(env.allowed(s, "location"), Err(Denial::ConsentOutdated));
    assert_eq!(env.allowed(s, "personalized_feed"), Ok(()));
    env.app
        .policy_ops
        .agree(s, false, v2.hash().as_str(), Some(&["location".into()]))
        .await
        .unwrap();
    assert_eq!(env.allowed(s, "location"), Ok(()));
    env.finish().await;
}

async fn the_changes_since_a_version_are_rendered_per_purpose(env: Env) {
    let v1 = env.app.kernel.gate.regime().current().clone();
    let v2 = widened("personalized_feed", "user.device.device_id");
    env.app.policy_ops.publish_revision(&v2).await.unwrap();
    let (old, new, diff) = env
        .app
        .policy_ops
        .changes_since(&v1.hash().as_str()[..10])
        .unwrap();
    assert_eq!(old.hash(), v1.hash());
    assert_eq!(new.hash(), v2.hash());
    assert_eq!(diff.needs_consent(), vec!["personalized_feed"]);
    let html = custos_policy::records::changes_html(&old, &new, &diff, custos_policy::Lang::En);
    assert!(html.contains("Personalized suggestions"), "{html}");
    assert!(html.contains("paused until you agree"));
    let err = env.app.policy_ops.changes_since("zzzzzz").unwrap_err();
    assert_eq!(err.code(), "invalid_version");
    env.finish().await;
}

async fn a_controller_change_keeps_every_consent_valid_and_notifies_every_user(env: Env) {
    let s = env.account().await;
    for p in ["personalized_feed", "location", "personalized_ads"] {
        env.give(s, p).await;
    }
    let before = env.app.kernel.gate.regime().current().clone();
    let out = env
        .app
        .policy_ops
        .change_controller(&NewController {
            name: Some(Text {
                en: "Acquirer Holdings Ltd.".into(),
                zh: "收购方控股有限公司".into(),
            }),
            address: Some(Text {
                en: "1 New Road, Shanghai".into(),
                zh: "上海市新路 1 号".into(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(out.published);
    assert!(out.paused_purposes.is_empty());
    let after = env.app.kernel.gate.regime().current().clone();
    assert_ne!(after.hash(), before.hash());
    // Only the controller differs.
    let mut d = after.declaration().clone();
    d.controller = before.declaration().controller.clone();
    assert_eq!(&d, before.declaration());
    assert_eq!(
        after.declaration().controller.name.en,
        "Acquirer Holdings Ltd."
    );
    // Re-rendered from the new version.
    let page = custos_policy::render::html(&after, custos_policy::Lang::En);
    assert!(page.contains("Acquirer Holdings Ltd."));
    // Every consent stays valid; processing continues.
    for p in ["personalized_feed", "location", "personalized_ads"] {
        assert_eq!(env.allowed(s, p), Ok(()), "{p}");
    }
    assert!(env
        .app
        .policy_ops
        .pending_reconsent(s)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(out.notified, 1);
    let inbox = env.app.signals.inbox(s).await.unwrap();
    assert!(inbox
        .iter()
        .any(|m| m.body.contains("Acquirer Holdings Ltd.")));
    let ann = env.app.policy_ops.announcements().await.unwrap();
    assert_eq!(
        ann.last().unwrap().kind,
        custos_store::revisions::AnnouncementKind::ControllerChange
    );
    // The same particulars again are refused.
    let err = env
        .app
        .policy_ops
        .change_controller(&NewController {
            name: Some(after.declaration().controller.name.clone()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "controller_unchanged");
    env.finish().await;
}
