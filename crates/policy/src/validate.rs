//! Structural and legal checks on a declaration.
//!
//! Owns the rules a declaration must satisfy before it can become a [`crate::Policy`]:
//! schema and region format, unique ids, fideslang keys and DPV terms, references between
//! entries (purposes → categories and partners, features → purposes), and the legal
//! structure of consent: additional features need their own opt-in (P1), basic features
//! never depend on optional purposes (DESIGN invariant 7), sensitive data, other
//! controllers and cross-border transfers need separate consent (L1, P20), every purpose
//! declares a retention (L9) and, where PIPL 55 asks for one, an impact assessment (L10).
//!
//! [`validate`] never stops at the first problem: it returns every [`Violation`], each
//! naming the entry it is about (`purposes[personalized_feed]`, `categories[user.foo]`,
//! `features[browse]`, `partners[adnet]`, or a top-level key such as `region`).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::model::{
    taxonomy, Category, Declaration, LegalBasis, Method, Purpose, RetentionFrom, RiskLevel, Text,
    Tier, SINKS,
};

/// Network logs must be kept at least six months (Cybersecurity Law art. 21, L9). The
/// longest six-month span is 184 days (e.g. 1 July to 1 January), so anything shorter could
/// fall short of six calendar months.
pub const MIN_SECURITY_LOG_DAYS: u32 = 184;

/// One broken rule, naming the declaration entry it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The offending entry: `schema`, `region`, `controller`, `categories[KEY]`,
    /// `purposes[ID]`, `features[ID]` or `partners[ID]`.
    pub entry: String,
    /// What is wrong and, where it helps, how to fix it.
    pub message: String,
}

impl Violation {
    pub fn new(entry: impl Into<String>, message: impl Into<String>) -> Violation {
        Violation {
            entry: entry.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.entry, self.message)
    }
}

/// Checks every rule and returns every violation (empty when the declaration is valid).
pub fn validate(d: &Declaration) -> Vec<Violation> {
    let mut v = Vec::new();
    check_header(d, &mut v);
    check_duplicates(d, &mut v);
    for c in &d.categories {
        check_category(c, &mut v);
    }
    check_partners(d, &mut v);
    for p in &d.purposes {
        check_purpose(d, p, &mut v);
    }
    check_features(d, &mut v);
    check_assessments(d, &mut v);
    check_transfers(d, &mut v);
    v
}

/// Whether a purpose processes sensitive personal information: flagged itself, or using a
/// category declared sensitive.
pub fn is_effectively_sensitive(d: &Declaration, p: &Purpose) -> bool {
    p.sensitive || !sensitive_categories(d, p).is_empty()
}

fn sensitive_categories<'a>(d: &'a Declaration, p: &'a Purpose) -> Vec<&'a str> {
    p.categories
        .iter()
        .filter(|key| d.categories.iter().any(|c| &c.key == *key && c.sensitive))
        .map(String::as_str)
        .collect()
}

fn entry(kind: &str, id: &str) -> String {
    format!("{kind}[{id}]")
}

fn is_region(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// `dpv:CamelCase` or `dpv-pd:CamelCase`.
fn is_dpv_term(s: &str) -> bool {
    let Some(local) = s.strip_prefix("dpv-pd:").or_else(|| s.strip_prefix("dpv:")) else {
        return false;
    };
    let mut chars = local.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphanumeric())
}

/// Ids travel through URLs, the ledger and rendered pages: keep them `snake_case`.
fn is_snake_id(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && s.len() <= 64
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

/// A plain address (`local@domain.tld`) with no characters that could break a `mailto:`
/// link or markup.
pub(crate) fn is_plain_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b));
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-".contains(&b));
    local_ok && domain_ok
}

fn check_text(entry: &str, field: &str, t: &Text, v: &mut Vec<Violation>) {
    if t.en.trim().is_empty() {
        v.push(Violation::new(entry, format!("{field}.en is empty")));
    }
    if t.zh.trim().is_empty() {
        v.push(Violation::new(entry, format!("{field}.zh is empty")));
    }
}

fn check_header(d: &Declaration, v: &mut Vec<Violation>) {
    if d.schema != 1 {
        v.push(Violation::new(
            "schema",
            format!("schema is {}, but only schema 1 exists", d.schema),
        ));
    }
    if !is_region(&d.region) {
        v.push(Violation::new(
            "region",
            format!(
                "`{}` is not an ISO 3166-1 alpha-2 code (two uppercase letters, e.g. \"CN\")",
                d.region
            ),
        ));
    }
    if d.revision.trim().is_empty() {
        v.push(Violation::new("revision", "the revision label is empty"));
    }
    check_text("app", "app", &d.app, v);
    let c = &d.controller;
    check_text("controller", "name", &c.name, v);
    check_text("controller", "address", &c.address, v);
    check_text("controller", "complaint_route", &c.complaint_route, v);
    if !is_plain_email(&c.email) {
        v.push(Violation::new(
            "controller",
            format!(
                "email `{}` is not a plain address like name@example.org",
                c.email
            ),
        ));
    }
    if c.phone.trim().is_empty() {
        v.push(Violation::new(
            "controller",
            "phone is empty: users must be able to reach the controller (P37)",
        ));
    }
    if let Some(dpo) = &c.dpo_email {
        if !is_plain_email(dpo) {
            v.push(Violation::new(
                "controller",
                format!("dpo_email `{dpo}` is not a plain address like name@example.org"),
            ));
        }
    }
}

fn check_duplicates(d: &Declaration, v: &mut Vec<Violation>) {
    fn dups<'a>(
        kind: &str,
        what: &str,
        ids: impl Iterator<Item = &'a str>,
        v: &mut Vec<Violation>,
    ) {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for id in ids {
            *seen.entry(id).or_default() += 1;
        }
        for (id, n) in seen.into_iter().filter(|(_, n)| *n > 1) {
            v.push(Violation::new(
                entry(kind, id),
                format!("{what} is declared {n} times; each {what} must be unique"),
            ));
        }
    }
    dups(
        "categories",
        "key",
        d.categories.iter().map(|c| c.key.as_str()),
        v,
    );
    dups(
        "purposes",
        "id",
        d.purposes.iter().map(|p| p.id.as_str()),
        v,
    );
    dups(
        "features",
        "id",
        d.features.iter().map(|f| f.id.as_str()),
        v,
    );
    dups(
        "partners",
        "id",
        d.partners.iter().map(|p| p.id.as_str()),
        v,
    );
}

fn check_category(c: &Category, v: &mut Vec<Violation>) {
    let e = entry("categories", &c.key);
    if !taxonomy::is_category(&c.key) {
        v.push(Violation::new(
            &e,
            format!(
                "`{}` is not a fideslang 3.1.4 data category (see crates/policy/taxonomy)",
                c.key
            ),
        ));
    }
    if !is_dpv_term(&c.dpv) {
        v.push(Violation::new(
            &e,
            format!(
                "dpv `{}` is not a DPV term of the form `dpv-pd:CamelCase` or `dpv:CamelCase`",
                c.dpv
            ),
        ));
    }
    check_text(&e, "name", &c.name, v);
}

fn check_partners(d: &Declaration, v: &mut Vec<Violation>) {
    for p in &d.partners {
        let e = entry("partners", &p.id);
        if !is_snake_id(&p.id) {
            v.push(Violation::new(
                &e,
                "id must be snake_case: a lowercase letter, then lowercase letters, digits or _",
            ));
        }
        if !is_region(&p.region) {
            v.push(Violation::new(
                &e,
                format!(
                    "region `{}` is not an ISO 3166-1 alpha-2 code (two uppercase letters)",
                    p.region
                ),
            ));
        } else if p.cross_border && p.region == d.region {
            v.push(Violation::new(
                &e,
                format!(
                    "cross_border is set but the partner stores data in {}, the declared region",
                    p.region
                ),
            ));
        }
        if p.contact.trim().is_empty() {
            v.push(Violation::new(&e, "contact is empty"));
        }
        check_text(&e, "name", &p.name, v);
        check_text(&e, "description", &p.description, v);
        check_text(&e, "security_measures", &p.security_measures, v);
        if is_region(&p.region) && p.region != d.region {
            match &p.risks {
                None => v.push(Violation::new(
                    &e,
                    format!(
                        "stores data in {}, outside the declared region {}, but declares no \
                         risks: users must be told them before a cross-border transfer (P20)",
                        p.region, d.region
                    ),
                )),
                Some(r) => check_text(&e, "risks", r, v),
            }
        }
        // The allow-list (P29): only categories a purpose naming the partner processes.
        let reachable: Vec<&String> = d
            .purposes
            .iter()
            .filter(|pu| pu.recipients.contains(&p.id))
            .flat_map(|pu| pu.categories.iter())
            .collect();
        for f in &p.fields {
            if !reachable.contains(&f) {
                v.push(Violation::new(
                    &e,
                    format!(
                        "fields names `{f}`, which no purpose naming this partner as a \
                         recipient processes"
                    ),
                ));
            }
        }
        if p.contract.as_ref().is_some_and(|c| c.trim().is_empty()) {
            v.push(Violation::new(&e, "contract is empty"));
        }
    }
}

fn check_purpose(d: &Declaration, p: &Purpose, v: &mut Vec<Violation>) {
    let e = entry("purposes", &p.id);
    let mut push = |message: String| v.push(Violation::new(&e, message));

    if !is_snake_id(&p.id) {
        push(
            "id must be snake_case: a lowercase letter, then lowercase letters, digits or _".into(),
        );
    }
    if !taxonomy::is_data_use(&p.data_use) {
        push(format!(
            "data_use `{}` is not a fideslang 3.1.4 data use (see crates/policy/taxonomy)",
            p.data_use
        ));
    }
    for (field, t) in [("name", &p.name), ("description", &p.description)] {
        for (lang, s) in [("en", &t.en), ("zh", &t.zh)] {
            if s.trim().is_empty() {
                push(format!("{field}.{lang} is empty"));
            }
        }
    }

    // Categories.
    if p.categories.is_empty() {
        push("lists no categories: every purpose must say which data it processes".into());
    }
    for key in &p.categories {
        if !d.categories.iter().any(|c| &c.key == key) {
            push(format!(
                "uses category `{key}`, which is not declared under [[categories]]"
            ));
        }
    }

    // Retention (L9).
    match p.retention {
        None => {
            push("has no retention: every purpose must say how long its data is kept (L9)".into())
        }
        Some(r) => {
            if r.days == 0 {
                push("retention is 0 days: declare how many days the data is kept (L9)".into());
            }
            if r.from == RetentionFrom::Withdrawal && p.basis != LegalBasis::Consent {
                push(format!(
                    "retention runs from withdrawal, but the basis is {}: only consent can be withdrawn",
                    p.basis.as_str()
                ));
            }
            if p.data_use.starts_with("essential.service.security")
                && p.basis == LegalBasis::LegalObligation
                && r.days < MIN_SECURITY_LOG_DAYS
            {
                push(format!(
                    "security logs are kept {} days, but the law asks for at least six months \
                     ({MIN_SECURITY_LOG_DAYS} days) (L9)",
                    r.days
                ));
            }
        }
    }

    // Tier and basis (P1).
    if p.tier == Tier::Additional && p.basis != LegalBasis::Consent {
        push(format!(
            "is additional but its basis is {}: an additional purpose needs its own opt-in, \
             so its basis must be consent (P1)",
            p.basis.as_str()
        ));
    }
    if p.separate_consent && p.basis != LegalBasis::Consent {
        push(format!(
            "asks for separate_consent but its basis is {}: separate consent only exists on \
             a consent basis",
            p.basis.as_str()
        ));
    }

    // Recipients: declared partners, other controllers, cross-border (P20, P29, L1).
    for rid in &p.recipients {
        let Some(partner) = d.partners.iter().find(|x| &x.id == rid) else {
            push(format!(
                "names recipient `{rid}`, which is not declared under [[partners]]"
            ));
            continue;
        };
        if is_region(&d.region)
            && partner.region != d.region
            && !(partner.cross_border && p.separate_consent)
        {
            let mut missing = Vec::new();
            if !partner.cross_border {
                missing.push(format!("partners[{rid}].cross_border = true"));
            }
            if !p.separate_consent {
                missing.push(format!("purposes[{}].separate_consent = true", p.id));
            }
            push(format!(
                "sends data to partner `{rid}` in {}, outside the declared region {}; a \
                 cross-border transfer needs {} (P20, L1)",
                partner.region,
                d.region,
                missing.join(" and ")
            ));
        }
        if partner.independent_controller && !p.separate_consent {
            push(format!(
                "gives data to partner `{rid}`, an independent controller, without \
                 separate_consent (L1)"
            ));
        }
    }

    // Sensitive personal information (PIPL 28-29, L1).
    let sensitive_cats = sensitive_categories(d, p);
    let sensitive = p.sensitive || !sensitive_cats.is_empty();
    if sensitive && !p.separate_consent {
        let why = if sensitive_cats.is_empty() {
            "is marked sensitive".to_owned()
        } else {
            format!("uses sensitive categories {}", sensitive_cats.join(", "))
        };
        push(format!("{why} but does not ask for separate_consent (L1)"));
    }

    // Impact assessment (PIPL 55-56, L10): every purpose names a declared record.
    let pia = p
        .impact_assessment
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    match pia {
        None => {
            let mut reasons = Vec::new();
            if sensitive {
                reasons.push("processes sensitive data");
            }
            if p.methods
                .iter()
                .any(|m| matches!(m, Method::Profiling | Method::AutomatedDecision))
            {
                reasons.push("profiles people or decides automatically");
            }
            if !p.recipients.is_empty() {
                reasons.push("hands data to partners");
            }
            if reasons.is_empty() {
                push(
                    "has no impact_assessment id: every purpose needs an impact assessment \
                     record declared under [[assessments]] (PIPL 55-56, L10)"
                        .into(),
                );
            } else {
                push(format!(
                    "{} but has no impact_assessment id (PIPL 55, L10)",
                    reasons.join(", ")
                ));
            }
        }
        Some(id) => {
            if !d.assessments.iter().any(|a| a.id == id) {
                push(format!(
                    "names impact assessment `{id}`, which is not declared under [[assessments]] \
                     (L10)"
                ));
            }
        }
    }
}

/// `YYYY-MM-DD` with a plausible month and day.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if !(digits(0..4) && digits(5..7) && digits(8..10)) {
        return false;
    }
    let month: u32 = s[5..7].parse().unwrap_or(0);
    let day: u32 = s[8..10].parse().unwrap_or(0);
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// Assessment ids appear in records and pages: letters, digits, `-`, `_`, `.`.
fn is_record_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn check_assessments(d: &Declaration, v: &mut Vec<Violation>) {
    let mut seen = BTreeMap::<&str, usize>::new();
    for a in &d.assessments {
        *seen.entry(a.id.as_str()).or_default() += 1;
        let e = entry("assessments", &a.id);
        if !is_record_id(&a.id) {
            v.push(Violation::new(
                &e,
                "id must be letters, digits, `-`, `_` or `.` (at most 64)",
            ));
        }
        if !is_date(&a.assessed_on) {
            v.push(Violation::new(
                &e,
                format!("assessed_on `{}` is not a date YYYY-MM-DD", a.assessed_on),
            ));
        }
        if a.assessor.trim().is_empty() {
            v.push(Violation::new(&e, "assessor is empty"));
        }
        check_text(&e, "lawfulness", &a.lawfulness, v);
        check_text(&e, "risks", &a.risks, v);
        check_text(&e, "measures", &a.measures, v);
        if a.residual_risk == RiskLevel::High {
            v.push(Violation::new(
                &e,
                "concludes a high residual risk: processing may not go ahead until further \
                 measures bring it down (PIPL 55-56)",
            ));
        }
    }
    for (id, n) in seen.into_iter().filter(|(_, n)| *n > 1) {
        v.push(Violation::new(
            entry("assessments", id),
            format!("id is declared {n} times; each id must be unique"),
        ));
    }
}

fn check_transfers(d: &Declaration, v: &mut Vec<Violation>) {
    for t in &d.transfers {
        let e = entry("transfers", &format!("{}:{}", t.sink, t.region));
        if !SINKS.contains(&t.sink.as_str()) {
            v.push(Violation::new(
                &e,
                format!("sink `{}` is not one of {}", t.sink, SINKS.join(", ")),
            ));
        }
        if !is_region(&t.region) {
            v.push(Violation::new(
                &e,
                format!("region `{}` is not an ISO 3166-1 alpha-2 code", t.region),
            ));
        } else if t.region == d.region {
            v.push(Violation::new(
                &e,
                format!(
                    "region {} is the declared region: only transfers abroad are declared",
                    t.region
                ),
            ));
        }
        if t.purposes.is_empty() {
            v.push(Violation::new(
                &e,
                "lists no purposes: say whose data goes abroad",
            ));
        }
        for pid in &t.purposes {
            if !d.purposes.iter().any(|p| &p.id == pid) {
                v.push(Violation::new(
                    &e,
                    format!("names purpose `{pid}`, which is not declared under [[purposes]]"),
                ));
            }
        }
        check_text(&e, "recipient", &t.recipient, v);
        check_text(&e, "security_measures", &t.security_measures, v);
        check_text(&e, "risks", &t.risks, v);
        match d.purposes.iter().find(|p| p.id == t.consent_purpose) {
            None => v.push(Violation::new(
                &e,
                format!(
                    "consent_purpose `{}` is not declared under [[purposes]]",
                    t.consent_purpose
                ),
            )),
            Some(cp) => {
                if cp.basis != LegalBasis::Consent
                    || !cp.separate_consent
                    || !cp.methods.contains(&Method::Transfer)
                {
                    v.push(Violation::new(
                        &e,
                        format!(
                            "consent_purpose `{}` must rest on separate consent (basis = \
                             \"consent\", separate_consent = true) and list the method \
                             `transfer` (P20, L1)",
                            cp.id
                        ),
                    ));
                }
            }
        }
    }
}

fn check_features(d: &Declaration, v: &mut Vec<Violation>) {
    for f in &d.features {
        let e = entry("features", &f.id);
        if !is_snake_id(&f.id) {
            v.push(Violation::new(
                &e,
                "id must be snake_case: a lowercase letter, then lowercase letters, digits or _",
            ));
        }
        check_text(&e, "name", &f.name, v);
        check_text(&e, "description", &f.description, v);
        if f.purposes.is_empty() {
            v.push(Violation::new(
                &e,
                "lists no purposes: every feature must say what it uses data for (P2)",
            ));
        }
        let mut has_opt_in = false;
        for pid in &f.purposes {
            let Some(p) = d.purposes.iter().find(|p| &p.id == pid) else {
                v.push(Violation::new(
                    &e,
                    format!("relies on purpose `{pid}`, which is not declared under [[purposes]]"),
                ));
                continue;
            };
            if p.tier == Tier::Additional {
                has_opt_in = true;
                if f.tier == Tier::Basic {
                    v.push(Violation::new(
                        &e,
                        format!(
                            "is basic but relies on additional purpose `{pid}`: a basic feature \
                             must work with every optional consent refused (P1, invariant 7)"
                        ),
                    ));
                }
            }
        }
        if f.tier == Tier::Additional && !has_opt_in && !f.purposes.is_empty() {
            v.push(Violation::new(
                &e,
                "is additional but relies on no additional purpose, so there is nothing to opt \
                 in to: make it basic or give it its own consent-based purpose (P1)",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpv_terms_need_a_known_prefix_and_camel_case() {
        assert!(is_dpv_term("dpv-pd:TelephoneNumber"));
        assert!(is_dpv_term("dpv:Consent"));
        assert!(is_dpv_term("dpv-pd:IPAddress"));
        assert!(!is_dpv_term("dpv-pd:telephoneNumber"));
        assert!(!is_dpv_term("pd:TelephoneNumber"));
        assert!(!is_dpv_term("dpv-pd:"));
        assert!(!is_dpv_term("dpv-pd:Phone Number"));
    }

    #[test]
    fn plain_emails_exclude_markup_characters() {
        assert!(is_plain_email("privacy@example.org"));
        assert!(!is_plain_email("a<b>@example.org"));
        assert!(!is_plain_email("privacy@example"));
        assert!(!is_plain_email("@example.org"));
        assert!(!is_plain_email("x@example.org)"));
    }

    #[test]
    fn ids_are_snake_case() {
        assert!(is_snake_id("personalized_feed"));
        assert!(is_snake_id("a1"));
        assert!(!is_snake_id("Feed"));
        assert!(!is_snake_id("1feed"));
        assert!(!is_snake_id("feed-x"));
        assert!(!is_snake_id(""));
    }
}
