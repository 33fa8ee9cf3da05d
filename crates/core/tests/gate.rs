//! The purpose gate's decisions, built from the bundled declaration.
//! P1, P15, P28, P36, L4, L12, L14, P18, P20; DESIGN invariants 1 and 7.

use std::sync::Arc;

use custos_core::{
    AgeStatus, ConsentMethod, ConsentRecord, Decision, Denial, Gate, GateContext, Regime, SubjectId,
};
use custos_policy::{LegalBasis, Policy, Tier};

fn policy() -> Arc<Policy> {
    Arc::new(Policy::parse(custos_policy::BUNDLED_DECLARATION).unwrap())
}

fn record(seq: i64, s: SubjectId, purpose: &str, d: Decision, hash: &str) -> ConsentRecord {
    ConsentRecord {
        seq,
        subject: s,
        purpose: purpose.into(),
        decision: d,
        policy_hash: hash.into(),
        method: ConsentMethod::Api,
        at_ms: 0,
        receipt_id: uuid::Uuid::nil(),
        prev_hash: [0; 32],
        hash: [0; 32],
    }
}

fn gate_with(s: SubjectId, purpose: &str, d: Decision) -> (Gate, Arc<Policy>) {
    let p = policy();
    let gate = Gate::new(Regime::new(vec![p.clone()]).unwrap());
    gate.apply(&record(1, s, purpose, d, p.hash().as_str()));
    (gate, p)
}

const ADS_CAT: &[&str] = &["user.device.cookie_id"];

#[test]
fn consent_decides_and_the_latest_record_wins() {
    let s = SubjectId::random();
    let (gate, p) = gate_with(s, "personalized_ads", Decision::Given);
    let ctx = GateContext::default();
    let permit = gate
        .check_named(s, "personalized_ads", ADS_CAT, &ctx)
        .unwrap();
    assert_eq!(
        (permit.subject(), permit.purpose(), permit.basis()),
        (s, "personalized_ads", LegalBasis::Consent)
    );
    gate.apply(&record(
        2,
        s,
        "personalized_ads",
        Decision::Withdrawn,
        p.hash().as_str(),
    ));
    assert_eq!(
        gate.check_named(s, "personalized_ads", ADS_CAT, &ctx)
            .unwrap_err(),
        Denial::ConsentWithdrawn
    );
    // A replayed older record does not undo the withdrawal.
    gate.apply(&record(
        1,
        s,
        "personalized_ads",
        Decision::Given,
        p.hash().as_str(),
    ));
    assert_eq!(
        gate.check_named(s, "personalized_ads", ADS_CAT, &ctx)
            .unwrap_err(),
        Denial::ConsentWithdrawn
    );
    gate.apply(&record(
        3,
        s,
        "personalized_ads",
        Decision::Refused,
        p.hash().as_str(),
    ));
    assert_eq!(
        gate.check_named(s, "personalized_ads", ADS_CAT, &ctx)
            .unwrap_err(),
        Denial::ConsentRefused
    );
    assert_eq!(
        gate.check_named(SubjectId::random(), "personalized_ads", ADS_CAT, &ctx)
            .unwrap_err(),
        Denial::ConsentMissing
    );
}

#[test]
fn data_is_used_only_for_the_categories_its_purpose_declares() {
    let s = SubjectId::random();
    let (gate, _) = gate_with(s, "personalized_ads", Decision::Given);
    let ctx = GateContext::default();
    // P15: the ads purpose does not declare the phone number.
    let err = gate
        .check_named(s, "personalized_ads", &["user.contact.phone_number"], &ctx)
        .unwrap_err();
    assert_eq!(
        err,
        Denial::UndeclaredCategory("user.contact.phone_number".into())
    );
    // P28: a purpose the declaration does not have is refused outright.
    assert_eq!(
        gate.check_named(s, "resell_to_brokers", &[], &ctx)
            .unwrap_err(),
        Denial::UnknownPurpose
    );
    assert_eq!(
        gate.check_named(s, "catalog", &["user.not.a.category"], &ctx)
            .unwrap_err(),
        Denial::UndeclaredCategory("user.not.a.category".into())
    );
}

#[test]
fn every_basic_purpose_works_with_every_optional_consent_refused() {
    let p = policy();
    let gate = Gate::new(Regime::new(vec![p.clone()]).unwrap());
    let s = SubjectId::random();
    let mut seq = 0;
    for purpose in p.purposes().iter().filter(|x| x.tier == Tier::Additional) {
        seq += 1;
        gate.apply(&record(
            seq,
            s,
            &purpose.id,
            Decision::Refused,
            p.hash().as_str(),
        ));
    }
    let ctx = GateContext::default();
    let mut checked = 0;
    for purpose in p
        .purposes()
        .iter()
        .filter(|x| x.tier == Tier::Basic && x.basis != LegalBasis::Consent)
    {
        let cats: Vec<&str> = purpose.categories.iter().map(String::as_str).collect();
        assert!(
            gate.check_named(s, &purpose.id, &cats, &ctx).is_ok(),
            "basic purpose {} blocked",
            purpose.id
        );
        checked += 1;
    }
    assert!(checked >= 5, "the declaration has basic purposes to check");
    for purpose in p.purposes().iter().filter(|x| x.tier == Tier::Additional) {
        assert_eq!(
            gate.check_named(s, &purpose.id, &[], &ctx).unwrap_err(),
            Denial::ConsentRefused
        );
    }
}

#[test]
fn a_gpc_signal_objects_to_ads_and_sharing_only() {
    let s = SubjectId::random();
    let (gate, p) = gate_with(s, "personalized_ads", Decision::Given);
    gate.apply(&record(
        2,
        s,
        "partner_sharing",
        Decision::Given,
        p.hash().as_str(),
    ));
    gate.apply(&record(
        3,
        s,
        "device_info",
        Decision::Given,
        p.hash().as_str(),
    ));
    let gpc = GateContext {
        gpc: true,
        ..Default::default()
    };
    assert_eq!(
        gate.check_named(s, "personalized_ads", ADS_CAT, &gpc)
            .unwrap_err(),
        Denial::GpcObjection
    );
    assert_eq!(
        gate.check_named(s, "partner_sharing", &[], &gpc)
            .unwrap_err(),
        Denial::GpcObjection
    );
    assert!(gate.check_named(s, "device_info", &[], &gpc).is_ok());
}

#[test]
fn minors_need_a_guardian_except_where_the_law_itself_requires_processing() {
    let s = SubjectId::random();
    let (gate, _) = gate_with(s, "personalized_ads", Decision::Given);
    for age in [
        AgeStatus::Minor {
            guardian_consent: false,
        },
        AgeStatus::Child {
            guardian_consent: false,
        },
    ] {
        let ctx = GateContext {
            age,
            ..Default::default()
        };
        assert_eq!(
            gate.check_named(s, "personalized_ads", ADS_CAT, &ctx)
                .unwrap_err(),
            Denial::GuardianConsentRequired
        );
        assert_eq!(
            gate.check_named(s, "profile", &["user.name"], &ctx)
                .unwrap_err(),
            Denial::GuardianConsentRequired
        );
        assert!(
            gate.check_named(s, "security", &[], &ctx).is_ok(),
            "legal obligations still apply"
        );
    }
    let ctx = GateContext {
        age: AgeStatus::Child {
            guardian_consent: true,
        },
        ..Default::default()
    };
    assert!(gate
        .check_named(s, "personalized_ads", ADS_CAT, &ctx)
        .is_ok());
}

#[test]
fn storage_outside_the_region_and_ceased_services_are_refused() {
    let s = SubjectId::random();
    let (gate, _) = gate_with(s, "personalized_ads", Decision::Given);
    let abroad = GateContext {
        storage_region: Some("US"),
        ..Default::default()
    };
    assert_eq!(
        gate.check_named(s, "catalog", &[], &abroad).unwrap_err(),
        Denial::RegionNotAllowed("US".into())
    );
    let home = GateContext {
        storage_region: Some("CN"),
        ..Default::default()
    };
    assert!(gate.check_named(s, "catalog", &[], &home).is_ok());
    let ads = gate.regime().purpose("personalized_ads").unwrap();
    gate.set_ceased(&[ads]);
    assert_eq!(
        gate.check_named(s, "personalized_ads", ADS_CAT, &GateContext::default())
            .unwrap_err(),
        Denial::ServiceCeased
    );
}

#[test]
fn consent_under_an_older_version_counts_only_for_purposes_the_newer_did_not_widen() {
    let v1 = policy();
    let src = custos_policy::BUNDLED_DECLARATION;
    let at = src.find("id = \"personalized_feed\"").unwrap();
    let cats = at + src[at..].find("categories = [").unwrap() + "categories = [".len();
    let v2 = Arc::new(
        Policy::parse(&format!(
            "{}\"user.device.device_id\", {}",
            &src[..cats],
            &src[cats..]
        ))
        .unwrap(),
    );
    let s = SubjectId::random();
    let gate = Gate::new(Regime::new(vec![v1.clone(), v2.clone()]).unwrap());
    gate.apply(&record(
        1,
        s,
        "personalized_feed",
        Decision::Given,
        v1.hash().as_str(),
    ));
    gate.apply(&record(
        2,
        s,
        "personalized_ads",
        Decision::Given,
        v1.hash().as_str(),
    ));
    let ctx = GateContext::default();
    assert_eq!(
        gate.check_named(s, "personalized_feed", &[], &ctx)
            .unwrap_err(),
        Denial::ConsentOutdated
    );
    assert!(gate
        .check_named(s, "personalized_ads", ADS_CAT, &ctx)
        .is_ok());
    gate.apply(&record(
        3,
        s,
        "personalized_feed",
        Decision::Given,
        v2.hash().as_str(),
    ));
    assert!(gate
        .check_named(s, "personalized_feed", &["user.device.device_id"], &ctx)
        .is_ok());
}
