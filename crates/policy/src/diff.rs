//! What changed between two versions of the declaration, purpose by purpose, and which
//! changes need fresh consent.
//!
//! Owns the re-consent rule (P3, P35, L4): a new version pauses a consent-based purpose
//! only when it *widens* the processing the user agreed to — the purpose is new, it uses a
//! new category, method or recipient, a recipient moved region or became a controller or
//! cross-border, its basis or data use changed, its data is kept longer or from a different
//! moment, the storage region moved, or separate consent / sensitivity was switched on.
//! Narrowing changes (fewer categories, shorter retention, fewer recipients) and wording
//! changes are listed but need no new consent; purposes on other bases never do.

use std::fmt;

use serde::Serialize;

use crate::model::{LegalBasis, Partner, Purpose, Retention, RetentionFrom};
use crate::validate::is_effectively_sensitive;
use crate::{Policy, PolicyHash};

/// Per-purpose changes from one version to the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyDiff {
    pub from: PolicyHash,
    pub to: PolicyHash,
    /// Purposes that changed, in the new declaration's order, then removed ones.
    pub purposes: Vec<PurposeChange>,
    /// Changes outside any purpose that users are told about (fields `region`,
    /// `controller`); a region change is also listed under every purpose it moves.
    pub general: Vec<FieldChange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    Added,
    Removed,
    Changed,
}

impl ChangeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeStatus::Added => "added",
            ChangeStatus::Removed => "removed",
            ChangeStatus::Changed => "changed",
        }
    }
}

impl fmt::Display for ChangeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurposeChange {
    pub purpose: String,
    pub status: ChangeStatus,
    /// Empty for added and removed purposes.
    pub changes: Vec<FieldChange>,
    /// Processing for this purpose pauses until the user agrees to the new version.
    pub needs_consent: bool,
}

/// One changed field. Set-valued fields (`categories`, `methods`, `recipients`) fill
/// `added`/`removed`; single values (`retention`, `basis`, `data_use`, `tier`,
/// `separate_consent`, `sensitive`, `anonymous`, `impact_assessment`, `region`, a changed
/// recipient under `recipients`) fill `before`/`after`; `wording` means only the name or
/// description text changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl FieldChange {
    fn set(field: &str, added: Vec<String>, removed: Vec<String>) -> FieldChange {
        FieldChange {
            field: field.to_owned(),
            added,
            removed,
            before: None,
            after: None,
        }
    }
    fn value(field: &str, before: Option<String>, after: Option<String>) -> FieldChange {
        FieldChange {
            field: field.to_owned(),
            added: Vec::new(),
            removed: Vec::new(),
            before,
            after,
        }
    }
}

impl PolicyDiff {
    /// Ids of the purposes that pause until the user agrees to the new version.
    pub fn needs_consent(&self) -> Vec<&str> {
        self.purposes
            .iter()
            .filter(|c| c.needs_consent)
            .map(|c| c.purpose.as_str())
            .collect()
    }

    /// True when nothing a user could notice changed.
    pub fn is_empty(&self) -> bool {
        self.purposes.is_empty() && self.general.is_empty()
    }
}

/// Compares two versions.
pub fn diff(old: &Policy, new: &Policy) -> PolicyDiff {
    let od = old.declaration();
    let nd = new.declaration();
    let region_change = (od.region != nd.region)
        .then(|| FieldChange::value("region", Some(od.region.clone()), Some(nd.region.clone())));

    let mut purposes = Vec::new();
    for np in new.purposes() {
        match old.purpose(&np.id) {
            None => purposes.push(PurposeChange {
                purpose: np.id.clone(),
                status: ChangeStatus::Added,
                changes: Vec::new(),
                needs_consent: np.basis == LegalBasis::Consent,
            }),
            Some(op) => {
                let mut changes = compare(old, op, new, np);
                if let Some(rc) = &region_change {
                    changes.push((rc.clone(), true));
                }
                if !changes.is_empty() {
                    let widens = changes.iter().any(|(_, w)| *w);
                    purposes.push(PurposeChange {
                        purpose: np.id.clone(),
                        status: ChangeStatus::Changed,
                        changes: changes.into_iter().map(|(c, _)| c).collect(),
                        needs_consent: widens && np.basis == LegalBasis::Consent,
                    });
                }
            }
        }
    }
    for op in old.purposes() {
        if new.purpose(&op.id).is_none() {
            purposes.push(PurposeChange {
                purpose: op.id.clone(),
                status: ChangeStatus::Removed,
                changes: Vec::new(),
                needs_consent: false,
            });
        }
    }

    let mut general = Vec::new();
    if let Some(rc) = region_change {
        general.push(rc);
    }
    if od.controller != nd.controller {
        general.push(FieldChange::value(
            "controller",
            Some(od.controller.name.en.clone()),
            Some(nd.controller.name.en.clone()),
        ));
    }

    PolicyDiff {
        from: old.hash().clone(),
        to: new.hash().clone(),
        purposes,
        general,
    }
}

/// Items of `new` missing from `old` and items of `old` missing from `new`, in order.
fn set_diff(old: &[String], new: &[String]) -> (Vec<String>, Vec<String>) {
    let added = new.iter().filter(|x| !old.contains(x)).cloned().collect();
    let removed = old.iter().filter(|x| !new.contains(x)).cloned().collect();
    (added, removed)
}

fn on_off(b: bool) -> Option<String> {
    Some(b.to_string())
}

/// `180d`, `15d after account closed`, `7d after withdrawal`.
pub fn retention_label(r: &Retention) -> String {
    match r.from {
        RetentionFrom::Collection => format!("{}d", r.days),
        RetentionFrom::AccountClosed => format!("{}d after account closed", r.days),
        RetentionFrom::Withdrawal => format!("{}d after withdrawal", r.days),
    }
}

fn partner_label(p: &Partner) -> String {
    let mut s = format!("{}: {}", p.id, p.region);
    if p.cross_border {
        s.push_str(", cross-border");
    }
    if p.independent_controller {
        s.push_str(", independent controller");
    }
    s
}

/// Field changes between two versions of one purpose, each with whether it widens.
fn compare(old: &Policy, op: &Purpose, new: &Policy, np: &Purpose) -> Vec<(FieldChange, bool)> {
    let mut out = Vec::new();

    let (added, removed) = set_diff(&op.categories, &np.categories);
    if !added.is_empty() || !removed.is_empty() {
        let widens = !added.is_empty();
        out.push((FieldChange::set("categories", added, removed), widens));
    }

    let methods =
        |p: &Purpose| -> Vec<String> { p.methods.iter().map(|m| m.as_str().to_owned()).collect() };
    let (added, removed) = set_diff(&methods(op), &methods(np));
    if !added.is_empty() || !removed.is_empty() {
        let widens = !added.is_empty();
        out.push((FieldChange::set("methods", added, removed), widens));
    }

    let (added, removed) = set_diff(&op.recipients, &np.recipients);
    if !added.is_empty() || !removed.is_empty() {
        let widens = !added.is_empty();
        out.push((FieldChange::set("recipients", added, removed), widens));
    }
    // A recipient kept across versions may itself have changed in ways that widen.
    for rid in np.recipients.iter().filter(|r| op.recipients.contains(r)) {
        if let (Some(a), Some(b)) = (old.partner(rid), new.partner(rid)) {
            let (la, lb) = (partner_label(a), partner_label(b));
            if la != lb {
                let widens = a.region != b.region
                    || (b.cross_border && !a.cross_border)
                    || (b.independent_controller && !a.independent_controller);
                out.push((FieldChange::value("recipients", Some(la), Some(lb)), widens));
            }
        }
    }

    // Cross-border transfers of the purpose's data (P20): a new destination widens.
    let transfers = |pol: &Policy, id: &str| -> Vec<String> {
        pol.transfers_for(id)
            .map(|t| format!("{}: {}", t.sink, t.region))
            .collect()
    };
    let (added, removed) = set_diff(&transfers(old, &op.id), &transfers(new, &np.id));
    if !added.is_empty() || !removed.is_empty() {
        let widens = !added.is_empty();
        out.push((FieldChange::set("transfers", added, removed), widens));
    }

    if op.retention != np.retention {
        let widens = match (op.retention, np.retention) {
            (Some(a), Some(b)) => b.days > a.days || b.from != a.from,
            // A retention appearing or disappearing cannot be judged narrower.
            _ => true,
        };
        out.push((
            FieldChange::value(
                "retention",
                op.retention.as_ref().map(retention_label),
                np.retention.as_ref().map(retention_label),
            ),
            widens,
        ));
    }

    if op.basis != np.basis {
        out.push((
            FieldChange::value(
                "basis",
                Some(op.basis.as_str().to_owned()),
                Some(np.basis.as_str().to_owned()),
            ),
            true,
        ));
    }
    if op.data_use != np.data_use {
        out.push((
            FieldChange::value(
                "data_use",
                Some(op.data_use.clone()),
                Some(np.data_use.clone()),
            ),
            true,
        ));
    }
    if op.tier != np.tier {
        out.push((
            FieldChange::value(
                "tier",
                Some(op.tier.as_str().to_owned()),
                Some(np.tier.as_str().to_owned()),
            ),
            false,
        ));
    }
    if op.separate_consent != np.separate_consent {
        out.push((
            FieldChange::value(
                "separate_consent",
                on_off(op.separate_consent),
                on_off(np.separate_consent),
            ),
            np.separate_consent,
        ));
    }
    // Sensitivity as the law sees it: the purpose's flag or any sensitive category.
    let (os, ns) = (
        is_effectively_sensitive(old.declaration(), op),
        is_effectively_sensitive(new.declaration(), np),
    );
    if os != ns {
        out.push((FieldChange::value("sensitive", on_off(os), on_off(ns)), ns));
    }
    if op.anonymous != np.anonymous {
        out.push((
            FieldChange::value("anonymous", on_off(op.anonymous), on_off(np.anonymous)),
            false,
        ));
    }
    if op.impact_assessment != np.impact_assessment {
        out.push((
            FieldChange::value(
                "impact_assessment",
                op.impact_assessment.clone(),
                np.impact_assessment.clone(),
            ),
            false,
        ));
    }
    if op.name != np.name || op.description != np.description {
        out.push((FieldChange::value("wording", None, None), false));
    }
    out
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.field)?;
        for a in &self.added {
            write!(f, " +{a}")?;
        }
        for r in &self.removed {
            write!(f, " -{r}")?;
        }
        if self.before.is_some() || self.after.is_some() {
            write!(
                f,
                " {} → {}",
                self.before.as_deref().unwrap_or("none"),
                self.after.as_deref().unwrap_or("none")
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for PurposeChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.purpose, self.status)?;
        for (i, c) in self.changes.iter().enumerate() {
            f.write_str(if i == 0 { " — " } else { "; " })?;
            write!(f, "{c}")?;
        }
        if self.needs_consent {
            f.write_str(" [needs fresh consent]")?;
        }
        Ok(())
    }
}

impl fmt::Display for PolicyDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "policy {} → {}", self.from.short(), self.to.short())?;
        if self.is_empty() {
            return writeln!(f, "no purpose changed");
        }
        for g in &self.general {
            writeln!(f, "{g}")?;
        }
        for c in &self.purposes {
            writeln!(f, "{c}")?;
        }
        Ok(())
    }
}
