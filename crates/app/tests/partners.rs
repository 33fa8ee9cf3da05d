//! Partners and sharing through their use cases, on SQLite and PostgreSQL (P16, P29, P30,
//! P32, L1): the registry comes from the declaration; `Ops::share` needs the separate
//! consent (or a legal exception of the sharing subset, recorded), strips fields off the
//! allow-list, honours GPC, refuses partners abroad without cross-border consent and
//! partners without a contract, and logs every share; public disclosure needs a separate
//! consent record; data from third parties is recorded with its source, stored encrypted,
//! shown to the user, and sensitive fields wait for the user's confirmation.

use std::sync::Arc;

use custos_app::config::MasterKeySource;
use custos_app::consent::DecisionInput;
use custos_app::ops::partners::{
    InboundFieldInput, InboundInput, RecordingSink, ShareBasis, PSEUDONYM_FIELD, TRAITS_FIELD,
};
use custos_app::ops::Actor;
use custos_app::{App, Config};
use custos_core::{ConsentMethod, Decision, FakeClock, GateContext, Personal, SubjectId};
use custos_crypto::{MasterKey, OsRng};
use custos_policy::{LegalBasis, Policy};
use custos_store::personal::Field;

struct Env {
    app: App,
    sink: Arc<RecordingSink>,
    dir: tempfile::TempDir,
    sqlite: bool,
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
                // Cancellations are erased on the next run (the erasure test below).
                rights: custos_app::rights::RightsConfig {
                    cooling_off_days: Some(0),
                    ..Default::default()
                },
                ..Default::default()
            };
        let app = App::open(&cfg, Arc::new(FakeClock::default()))
            .await
            .unwrap();
        let sink = Arc::new(RecordingSink::default());
        app.ops.set_partner_sink(sink.clone());
        Env {
            app,
            sink,
            dir,
            sqlite: pg.is_none(),
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
    async fn decide(&self, s: SubjectId, purpose: &str, decision: Decision) {
        self.app
            .kernel
            .record_decisions(
                s,
                false,
                &[DecisionInput {
                    purpose: purpose.into(),
                    decision,
                }],
                ConsentMethod::Settings,
            )
            .await
            .unwrap();
    }
    async fn put(&self, s: SubjectId, purpose: &str, field: &str, category: &str, value: &str) {
        self.app
            .kernel
            .store_field(
                s,
                purpose,
                &Field::new(field, category),
                &Personal::new(value.as_bytes().to_vec()),
                &GateContext::default(),
            )
            .await
            .unwrap();
    }
    /// A user with a nickname and, under the feed consent, one preference trait.
    async fn user(&self) -> SubjectId {
        let s = SubjectId::random();
        self.put(s, "profile", "nickname", "user.name", "Xiao Ming")
            .await;
        self.decide(s, "personalized_feed", Decision::Given).await;
        self.put(
            s,
            "personalized_feed",
            "trait:tag:dress",
            "user.demographic.profile",
            "0.8",
        )
        .await;
        s
    }
    async fn share(
        &self,
        s: SubjectId,
        partner: &str,
        fields: &[&str],
        basis: &ShareBasis,
    ) -> Result<custos_app::ops::partners::ShareOutcome, String> {
        self.share_ctx(s, partner, fields, basis, &GateContext::default())
            .await
    }
    async fn share_ctx(
        &self,
        s: SubjectId,
        partner: &str,
        fields: &[&str],
        basis: &ShareBasis,
        ctx: &GateContext<'_>,
    ) -> Result<custos_app::ops::partners::ShareOutcome, String> {
        let fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        self.app
            .ops
            .share(&Actor::OperatorToken, s, partner, &fields, basis, ctx)
            .await
            .map_err(|e| e.code().to_owned())
    }
    fn deliveries(&self) -> usize {
        self.sink.deliveries.lock().unwrap().len()
    }
    /// Publishes the bundled declaration plus a partner abroad, a partner without a
    /// contract, and a public-disclosure purpose.
    async fn publish_extended(&self) {
        let text = format!("{}\n{EXTRA}", custos_policy::BUNDLED_DECLARATION);
        let policy = Policy::parse(&text).unwrap();
        self.app.kernel.publish(&policy).await.unwrap();
    }
}

const EXTRA: &str = r#"
[[partners]]
id = "overseas_brand"
region = "SG"
cross_border = true
independent_controller = true
contact = "privacy@overseas-brand.example"
fields = ["user.unique_id.pseudonymous"]
contract = "JCA-2026-SG-01"
name = { en = "Overseas Brand Pte. Ltd.", zh = "海外品牌有限公司" }
description = { en = "A brand partner abroad.", zh = "境外品牌合作方。" }
security_measures = { en = "Contract with equal protection.", zh = "签订同等保护合同。" }
risks = { en = "Foreign law may allow access by authorities.", zh = "境外法律可能允许当地机关访问。" }

[[partners]]
id = "unbound_brand"
region = "CN"
contact = "privacy@unbound-brand.example"
name = { en = "Unbound Brand Co.", zh = "无约品牌公司" }
description = { en = "A partner without a contract yet.", zh = "尚未签约的合作方。" }
security_measures = { en = "None yet.", zh = "暂无。" }

[[purposes]]
id = "overseas_offers"
data_use = "third_party_sharing"
tier = "additional"
basis = "consent"
separate_consent = true
categories = ["user.unique_id.pseudonymous"]
methods = ["use", "transfer"]
recipients = ["overseas_brand"]
retention = { days = 30, from = "withdrawal" }
impact_assessment = "PIA-2026-05-partner-sharing"
name = { en = "Offers from a partner abroad", zh = "境外合作方优惠" }
description = { en = "With your separate agreement, a partner abroad receives a pseudonymous ID.", zh = "经您单独同意，境外合作方接收去标识化编号。" }

[[purposes]]
id = "public_showcase"
data_use = "marketing.communications"
tier = "additional"
basis = "consent"
separate_consent = true
categories = ["user.name"]
methods = ["use", "disclosure"]
retention = { days = 30, from = "withdrawal" }
impact_assessment = "PIA-2026-05-partner-sharing"
name = { en = "Showing your nickname publicly", zh = "公开展示您的昵称" }
description = { en = "With your separate agreement, we publish your nickname in the winners list.", zh = "经您单独同意，我们在获奖名单中公开您的昵称。" }

[[features]]
id = "overseas_and_showcase"
tier = "additional"
purposes = ["overseas_offers", "public_showcase"]
name = { en = "Overseas offers and showcase", zh = "境外优惠与展示" }
description = { en = "Offers from abroad and the winners list.", zh = "境外优惠与获奖名单。" }
"#;

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { if let Some(env) = super::Env::sqlite().await { super::$name(env).await } } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { if let Some(env) = super::Env::postgres().await { super::$name(env).await } } )* }
    };
}

on_both!(
    the_registry_comes_from_the_declaration,
    a_share_needs_the_separate_consent_and_strips_fields_off_the_allow_list,
    gpc_signals_and_recorded_gpc_objections_stop_sharing,
    a_legal_exception_is_recorded_and_only_the_sharing_subset_counts,
    partners_abroad_need_cross_border_consent_and_every_partner_a_contract,
    public_disclosure_is_impossible_without_a_separate_consent_record,
    inbound_data_is_recorded_encrypted_shown_and_sensitive_fields_wait_for_confirmation,
    erasure_rekeys_the_share_log_deletes_inbound_data_and_names_the_partners_to_tell,
);

fn consent(purpose: &str) -> ShareBasis {
    ShareBasis::Consent {
        purpose: purpose.into(),
    }
}

async fn the_registry_comes_from_the_declaration(env: Env) {
    let partners = env.app.ops.partners();
    let ids: Vec<&str> = partners.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["sms_gateway", "push_channel", "xingyao_brands"]);
    let x = partners.iter().find(|p| p.id == "xingyao_brands").unwrap();
    assert_eq!(x.purposes, ["partner_sharing"]);
    assert_eq!(
        x.allowed_fields,
        ["user.unique_id.pseudonymous", "user.demographic.profile"]
    );
    assert_eq!(x.contract.as_deref(), Some("JCA-2026-003"));
    assert_eq!(x.region, "CN");
    assert!(x.independent_controller);
    assert_eq!(
        partners
            .iter()
            .find(|p| p.id == "sms_gateway")
            .unwrap()
            .purposes,
        ["account"]
    );
}

async fn a_share_needs_the_separate_consent_and_strips_fields_off_the_allow_list(env: Env) {
    let s = env.user().await;
    let fields = [PSEUDONYM_FIELD, TRAITS_FIELD, "nickname"];
    let basis = consent("partner_sharing");
    // The feed consent (a general one) does not cover giving data to another controller.
    assert_eq!(
        env.share(s, "xingyao_brands", &fields, &basis)
            .await
            .unwrap_err(),
        "consent_missing"
    );
    // A purpose that does not name the partner is no basis for it.
    assert_eq!(
        env.share(s, "xingyao_brands", &fields, &consent("personalized_feed"))
            .await
            .unwrap_err(),
        "partner_not_recipient"
    );
    assert_eq!(env.deliveries(), 0);
    assert!(env.app.ops.shares_of(s).await.unwrap().is_empty());

    env.decide(s, "partner_sharing", Decision::Given).await;
    let out = env
        .share(s, "xingyao_brands", &fields, &basis)
        .await
        .unwrap();
    assert_eq!(out.sent, [PSEUDONYM_FIELD, TRAITS_FIELD]);
    assert_eq!(out.stripped, ["nickname"]);
    assert_eq!(out.status, "delivered");
    {
        let d = env.sink.deliveries.lock().unwrap();
        assert_eq!(d.len(), 1);
        let json = d[0].to_json().to_string();
        assert!(!json.contains("Xiao Ming"), "a stripped field left: {json}");
        assert!(
            !json.contains(&s.to_string()),
            "the internal id left: {json}"
        );
        assert!(json.contains("tag:dress"));
        assert_eq!(d[0].fields.len(), 2);
    }
    // Only stripped fields: nothing leaves.
    assert_eq!(
        env.share(s, "xingyao_brands", &["nickname"], &basis)
            .await
            .unwrap_err(),
        "nothing_to_share"
    );
    let log = env.app.ops.shares_of(s).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].partner, "xingyao_brands");
    assert_eq!(log[0].purpose.as_deref(), Some("partner_sharing"));
    assert_eq!(log[0].basis, "consent");
    assert_eq!(log[0].fields, [PSEUDONYM_FIELD, TRAITS_FIELD]);
    assert_eq!(log[0].stripped, ["nickname"]);

    // Withdrawal stops the next share at once (P39).
    env.decide(s, "partner_sharing", Decision::Withdrawn).await;
    assert_eq!(
        env.share(s, "xingyao_brands", &fields, &basis)
            .await
            .unwrap_err(),
        "consent_withdrawn"
    );
    assert_eq!(env.deliveries(), 1);
    // Another subject's share log is its own.
    assert!(env
        .app
        .ops
        .shares_of(SubjectId::random())
        .await
        .unwrap()
        .is_empty());
}

async fn gpc_signals_and_recorded_gpc_objections_stop_sharing(env: Env) {
    let s = env.user().await;
    env.decide(s, "partner_sharing", Decision::Given).await;
    let basis = consent("partner_sharing");
    let gpc = GateContext {
        gpc: true,
        ..Default::default()
    };
    assert_eq!(
        env.share_ctx(s, "xingyao_brands", &[PSEUDONYM_FIELD], &basis, &gpc)
            .await
            .unwrap_err(),
        "gpc_objection"
    );
    // Recorded in the ledger as an objection, it holds for later requests without the header.
    assert!(env.app.signals.record_gpc_objection(s).await.unwrap() >= 1);
    assert_eq!(
        env.share(s, "xingyao_brands", &[PSEUDONYM_FIELD], &basis)
            .await
            .unwrap_err(),
        "gpc_objection"
    );
    assert_eq!(env.deliveries(), 0);
    assert!(env.app.ops.shares_of(s).await.unwrap().is_empty());
}

async fn a_legal_exception_is_recorded_and_only_the_sharing_subset_counts(env: Env) {
    let s = env.user().await;
    let research = ShareBasis::Exception {
        basis: LegalBasis::Research,
        reference: "STUDY-1".into(),
        reason: "a study".into(),
    };
    assert_eq!(
        env.share(s, "xingyao_brands", &[PSEUDONYM_FIELD], &research)
            .await
            .unwrap_err(),
        "basis_not_allowed"
    );
    let unexplained = ShareBasis::Exception {
        basis: LegalBasis::CriminalInvestigation,
        reference: "".into(),
        reason: "fraud".into(),
    };
    assert_eq!(
        env.share(s, "xingyao_brands", &[PSEUDONYM_FIELD], &unexplained)
            .await
            .unwrap_err(),
        "missing_field"
    );
    let order = ShareBasis::Exception {
        basis: LegalBasis::CriminalInvestigation,
        reference: "Hangzhou PSB 2026-117".into(),
        reason: "assistance order in a fraud case".into(),
    };
    let out = env
        .share(s, "xingyao_brands", &[PSEUDONYM_FIELD], &order)
        .await
        .unwrap();
    assert_eq!(out.sent, [PSEUDONYM_FIELD]);
    let log = env.app.ops.shares_of(s).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].basis, "criminal_investigation");
    assert_eq!(log[0].purpose, None);
    assert_eq!(
        log[0].exception_ref.as_deref(),
        Some("Hangzhou PSB 2026-117")
    );
    assert_eq!(
        log[0].exception_reason.as_deref(),
        Some("assistance order in a fraud case")
    );
}

async fn partners_abroad_need_cross_border_consent_and_every_partner_a_contract(env: Env) {
    env.publish_extended().await;
    let s = env.user().await;
    let basis = consent("overseas_offers");
    assert_eq!(
        env.share(s, "overseas_brand", &[PSEUDONYM_FIELD], &basis)
            .await
            .unwrap_err(),
        "cross_border_consent_required"
    );
    let order = ShareBasis::Exception {
        basis: LegalBasis::LegalObligation,
        reference: "ORDER-9".into(),
        reason: "a request".into(),
    };
    assert_eq!(
        env.share(s, "overseas_brand", &[PSEUDONYM_FIELD], &order)
            .await
            .unwrap_err(),
        "cross_border_consent_required"
    );
    // Consent to sharing with the domestic partner does not cover the one abroad.
    env.decide(s, "partner_sharing", Decision::Given).await;
    assert_eq!(
        env.share(s, "overseas_brand", &[PSEUDONYM_FIELD], &basis)
            .await
            .unwrap_err(),
        "cross_border_consent_required"
    );
    assert_eq!(env.deliveries(), 0);
    env.decide(s, "overseas_offers", Decision::Given).await;
    let out = env
        .share(
            s,
            "overseas_brand",
            &[PSEUDONYM_FIELD, TRAITS_FIELD],
            &basis,
        )
        .await
        .unwrap();
    assert_eq!(out.sent, [PSEUDONYM_FIELD]);
    assert_eq!(out.stripped, [TRAITS_FIELD]);
    // Each partner sees its own pseudonym for the user.
    env.share(
        s,
        "xingyao_brands",
        &[PSEUDONYM_FIELD],
        &consent("partner_sharing"),
    )
    .await
    .unwrap();
    {
        let d = env.sink.deliveries.lock().unwrap();
        assert_eq!(d.len(), 2);
        assert_ne!(d[0].subject_ref, d[1].subject_ref);
        assert_ne!(d[0].fields[0].1.expose(), d[1].fields[0].1.expose());
    }
    // No contract, no share — whatever the basis.
    assert_eq!(
        env.share(s, "unbound_brand", &[PSEUDONYM_FIELD], &order)
            .await
            .unwrap_err(),
        "partner_contract_missing"
    );
    assert_eq!(
        env.share(s, "nobody", &[PSEUDONYM_FIELD], &order)
            .await
            .unwrap_err(),
        "unknown_partner"
    );
}

async fn public_disclosure_is_impossible_without_a_separate_consent_record(env: Env) {
    let s = env.user().await;
    let ops = &env.app.ops;
    let nickname = vec!["nickname".to_owned()];
    let ctx = GateContext::default();
    // The bundled declaration declares no public disclosure at all.
    let e = ops
        .disclose_publicly(&Actor::Cli, s, "partner_sharing", &nickname, &ctx)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "separate_consent_required");
    let e = ops
        .disclose_publicly(&Actor::Cli, s, "profile", &nickname, &ctx)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "separate_consent_required");

    env.publish_extended().await;
    let e = ops
        .disclose_publicly(&Actor::Cli, s, "public_showcase", &nickname, &ctx)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "consent_missing");
    env.decide(s, "public_showcase", Decision::Refused).await;
    let e = ops
        .disclose_publicly(&Actor::Cli, s, "public_showcase", &nickname, &ctx)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "consent_missing");
    assert!(ops.shares_of(s).await.unwrap().is_empty());

    env.decide(s, "public_showcase", Decision::Given).await;
    let d = ops
        .disclose_publicly(&Actor::Cli, s, "public_showcase", &nickname, &ctx)
        .await
        .unwrap();
    assert_eq!(d.fields.len(), 1);
    assert_eq!(d.fields[0].1.expose(), "Xiao Ming");
    // Only the purpose's categories: the traits are not part of it.
    let e = ops
        .disclose_publicly(
            &Actor::Cli,
            s,
            "public_showcase",
            &[TRAITS_FIELD.to_owned()],
            &ctx,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "undeclared_category");
    let log = ops.shares_of(s).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].partner, "public");
    assert_eq!(log[0].id, d.share_id);
}

async fn inbound_data_is_recorded_encrypted_shown_and_sensitive_fields_wait_for_confirmation(
    env: Env,
) {
    let ops = &env.app.ops;
    let s = SubjectId::random();
    const GPS: &str = "31.230416,121.473701";
    let location = InboundInput {
        subject: s,
        source: "Xingyao Brand Services".into(),
        consent_commitment:
            "The user agreed in the Xingyao app on 2026-10-01 that we may pass this on.".into(),
        purpose: "location".into(),
        fields: vec![InboundFieldInput {
            name: "gps".into(),
            category: "user.location.precise".into(),
            value: Personal::new(GPS.into()),
        }],
    };
    // Without the user's consent to the purpose, nothing is received (P15).
    let e = ops
        .receive_inbound(&Actor::OperatorToken, &location)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "consent_missing");
    assert!(ops.inbound_of(s).await.unwrap().is_empty());
    // The source's consent commitment is required.
    let mut uncommitted = location.clone();
    uncommitted.consent_commitment = " ".into();
    let e = ops
        .receive_inbound(&Actor::OperatorToken, &uncommitted)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "missing_field");

    env.decide(s, "location", Decision::Given).await;
    let rec = ops
        .receive_inbound(&Actor::OperatorToken, &location)
        .await
        .unwrap();
    assert_eq!(rec.source, "Xingyao Brand Services");
    assert!(rec.fields[0].sensitive);
    assert!(!rec.fields[0].confirmed);
    let nick = InboundInput {
        purpose: "profile".into(),
        fields: vec![InboundFieldInput {
            name: "nickname".into(),
            category: "user.name".into(),
            value: Personal::new("Mingming".into()),
        }],
        ..location.clone()
    };
    let plain = ops
        .receive_inbound(&Actor::OperatorToken, &nick)
        .await
        .unwrap();
    assert!(!plain.fields[0].sensitive);

    // The user sees what arrived, from whom, with the commitment and the values.
    let seen = ops.inbound_of(s).await.unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].consent_commitment, location.consent_commitment);
    assert_eq!(seen[0].fields[0].value.as_deref(), Some(GPS));
    // …and was told by an inbox message.
    let inbox = env.app.signals.inbox(s).await.unwrap();
    assert_eq!(inbox.len(), 2);
    assert!(inbox[0].body.contains("Xingyao Brand Services"));

    // Non-sensitive: usable at once; sensitive: only after the user confirms.
    assert_eq!(
        ops.inbound_value(s, plain.id, "nickname")
            .await
            .unwrap()
            .expose(),
        b"Mingming"
    );
    assert_eq!(
        ops.inbound_value(s, rec.id, "gps")
            .await
            .unwrap_err()
            .code(),
        "confirmation_required"
    );
    // Another user cannot confirm it.
    assert_eq!(
        ops.confirm_inbound(SubjectId::random(), rec.id)
            .await
            .unwrap_err()
            .code(),
        "not_found"
    );
    let confirmed = ops.confirm_inbound(s, rec.id).await.unwrap();
    assert!(confirmed.fields[0].confirmed);
    assert_eq!(
        ops.inbound_value(s, rec.id, "gps").await.unwrap().expose(),
        GPS.as_bytes()
    );
    // Stored like first-party data: encrypted, nowhere in the database file in clear.
    if env.sqlite {
        let hits = custos_testkit::files_contain(env.dir.path(), GPS.as_bytes());
        assert!(hits.is_empty(), "found in clear in {hits:?}");
        let hits = custos_testkit::files_contain(env.dir.path(), b"Mingming");
        assert!(hits.is_empty(), "found in clear in {hits:?}");
    }
}

/// L8: a cancelled account's share log stays as the record that shares happened but no
/// longer names the subject, its inbound third-party data is gone, and the partner that
/// actually received data is among the partners owed an erasure notice.
async fn erasure_rekeys_the_share_log_deletes_inbound_data_and_names_the_partners_to_tell(
    env: Env,
) {
    let s = env.user().await;
    env.decide(s, "partner_sharing", Decision::Given).await;
    env.share(
        s,
        "xingyao_brands",
        &[PSEUDONYM_FIELD, TRAITS_FIELD],
        &consent("partner_sharing"),
    )
    .await
    .unwrap();
    env.decide(s, "location", Decision::Given).await;
    env.app
        .ops
        .receive_inbound(
            &Actor::OperatorToken,
            &InboundInput {
                subject: s,
                source: "Xingyao Brand Services".into(),
                consent_commitment: "The user agreed in the Xingyao app on 2026-10-01.".into(),
                purpose: "location".into(),
                fields: vec![InboundFieldInput {
                    name: "gps".into(),
                    category: "user.location.precise".into(),
                    value: Personal::new("31.230416,121.473701".into()),
                }],
            },
        )
        .await
        .unwrap();
    assert_eq!(env.app.ops.shares_of(s).await.unwrap().len(), 1);
    assert_eq!(env.app.ops.inbound_of(s).await.unwrap().len(), 1);
    let shares_before = custos_store::shares::shares_of(&env.app.kernel.db, s)
        .await
        .unwrap();
    assert_eq!(shares_before.len(), 1);

    let identity = &env.app.identity;
    let session = identity.create_session(s, true).await.unwrap();
    let session = identity.authenticate(session.token.expose()).await.unwrap();
    let who = identity.reauthenticated(&session).unwrap();
    env.app.rights.request_cancellation(&who).await.unwrap();
    let reports = env.app.rights.run_due_cancellations().await.unwrap();
    assert_eq!(reports.len(), 1, "the cancellation was not carried out");
    assert!(
        reports[0]
            .partners_to_notify
            .iter()
            .any(|p| p == "xingyao_brands"),
        "{:?}",
        reports[0].partners_to_notify
    );
    assert!(env.app.ops.shares_of(s).await.unwrap().is_empty());
    assert!(env.app.ops.inbound_of(s).await.unwrap().is_empty());
}
