//! Change of controller (P31): on a merger, acquisition or asset transfer the operator
//! records the new controller. That is a new declaration version differing from the
//! current one only in its `[controller]` section, published, rendered and announced to
//! every user like any revision. Because no purpose changes, the regime pauses nothing:
//! every consent stays valid and processing continues under the same commitments.

use custos_policy::{Declaration, Policy, Text};
use custos_store::revisions::AnnouncementKind;

use super::revisions::{PolicyOps, RevisionOutcome};
use crate::{AppError, AppResult};

/// The new controller's particulars; what is not given stays as it was.
#[derive(Debug, Clone, Default)]
pub struct NewController {
    pub name: Option<Text>,
    pub address: Option<Text>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub dpo_email: Option<String>,
}

/// The current declaration with only its controller replaced.
pub fn with_controller(current: &Policy, c: &NewController) -> AppResult<Policy> {
    let mut d: Declaration = current.declaration().clone();
    if let Some(n) = &c.name {
        d.controller.name = n.clone();
    }
    if let Some(a) = &c.address {
        d.controller.address = a.clone();
    }
    if let Some(e) = &c.email {
        d.controller.email = e.clone();
    }
    if let Some(p) = &c.phone {
        d.controller.phone = p.clone();
    }
    if let Some(e) = &c.dpo_email {
        d.controller.dpo_email = Some(e.clone());
    }
    if d.controller == current.declaration().controller {
        return Err(AppError::bad(
            "controller_unchanged",
            "the new controller's particulars are the current ones",
        ));
    }
    let source = format!(
        "# Published by `custos ops change-controller`: only [controller] differs from {}.\n{}",
        current.hash(),
        toml::to_string(&d).map_err(|e| AppError::Internal(e.to_string()))?
    );
    Policy::parse(&source).map_err(|e| AppError::bad("invalid_controller", e.to_string()))
}

impl PolicyOps {
    /// Records the new controller as a new version, re-renders the policy from it,
    /// notifies every user, and keeps every consent in force.
    pub async fn change_controller(&self, c: &NewController) -> AppResult<RevisionOutcome> {
        let current = self.kernel.gate.regime().current().clone();
        let next = with_controller(&current, c)?;
        let change = custos_policy::diff(&current, &next);
        if !change.purposes.is_empty() {
            return Err(AppError::Internal(
                "a controller change altered a purpose".into(),
            ));
        }
        self.publish_as(&next, AnnouncementKind::ControllerChange)
            .await
    }
}
