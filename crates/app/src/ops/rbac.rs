//! Roles and the least-privilege permission matrix (P24). Each operator action names
//! one [`Permission`]; each [`Role`] holds only the permissions its work needs. The
//! matrix is [`Role::permissions`]; the README prints the same table.

use serde::Serialize;

/// A staff role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Answers users: rights tickets, moderation, reads a user's data for a named ticket.
    Support,
    /// Sees aggregate figures only, never one user's data.
    Analyst,
    /// Reviews the audit log and who has which role.
    SecurityOfficer,
    /// Owns rights requests end to end, erasure runs, reads for a named purpose, the audit log.
    PrivacyOfficer,
    /// Runs the service: catalog, staff accounts, the audit log; no user data.
    Admin,
}

/// Something an operator endpoint lets staff do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Import, delete and upload media of catalog items.
    CatalogWrite,
    /// Hide or publish users' comments.
    CommentsModerate,
    /// List rights tickets that are due (they hold what users wrote).
    RightsTicketsRead,
    /// Answer a rights ticket (in progress, completed, refused).
    RightsTicketsDecide,
    /// Erase the accounts whose cancellation cooling-off ended.
    CancellationsRun,
    /// Read one user's personal data, naming a ticket or purpose.
    SubjectDataRead,
    /// Aggregate figures (consent counts per purpose, small counts suppressed).
    StatsRead,
    /// Read and export the audit log.
    AuditRead,
    /// List staff accounts and their roles.
    StaffRead,
    /// Create staff accounts, change roles, disable accounts.
    StaffManage,
    /// Record incidents, find and notify affected users, announce, report to the regulator.
    IncidentsManage,
    /// Share a user's data with a registered partner, or release it for public disclosure.
    PartnersShare,
    /// Record data about a user received from a third party.
    InboundRecord,
    /// Change the policy's lifecycle: discontinue a feature or the service, run the
    /// erasure of discontinued data, record a new controller; read cessation progress
    /// and sink regions.
    PolicyManage,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Support,
        Role::Analyst,
        Role::SecurityOfficer,
        Role::PrivacyOfficer,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Support => "support",
            Role::Analyst => "analyst",
            Role::SecurityOfficer => "security_officer",
            Role::PrivacyOfficer => "privacy_officer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The permission matrix.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Support => &[
                CommentsModerate,
                RightsTicketsRead,
                RightsTicketsDecide,
                SubjectDataRead,
            ],
            Role::Analyst => &[StatsRead],
            Role::SecurityOfficer => &[AuditRead, StaffRead, IncidentsManage],
            Role::PrivacyOfficer => &[
                RightsTicketsRead,
                RightsTicketsDecide,
                CancellationsRun,
                SubjectDataRead,
                StatsRead,
                AuditRead,
                IncidentsManage,
                PartnersShare,
                InboundRecord,
                PolicyManage,
            ],
            Role::Admin => &[
                CatalogWrite,
                AuditRead,
                StaffRead,
                StaffManage,
                PolicyManage,
            ],
        }
    }

    pub fn can(self, p: Permission) -> bool {
        self.permissions().contains(&p)
    }
}

impl Permission {
    pub const ALL: [Permission; 14] = [
        Permission::CatalogWrite,
        Permission::CommentsModerate,
        Permission::RightsTicketsRead,
        Permission::RightsTicketsDecide,
        Permission::CancellationsRun,
        Permission::SubjectDataRead,
        Permission::StatsRead,
        Permission::AuditRead,
        Permission::StaffRead,
        Permission::StaffManage,
        Permission::IncidentsManage,
        Permission::PartnersShare,
        Permission::InboundRecord,
        Permission::PolicyManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::CatalogWrite => "catalog.write",
            Permission::CommentsModerate => "comments.moderate",
            Permission::RightsTicketsRead => "rights.tickets.read",
            Permission::RightsTicketsDecide => "rights.tickets.decide",
            Permission::CancellationsRun => "rights.cancellations.run",
            Permission::SubjectDataRead => "subject.data.read",
            Permission::StatsRead => "stats.read",
            Permission::AuditRead => "audit.read",
            Permission::StaffRead => "staff.read",
            Permission::StaffManage => "staff.manage",
            Permission::IncidentsManage => "incidents.manage",
            Permission::PartnersShare => "partners.share",
            Permission::InboundRecord => "inbound.record",
            Permission::PolicyManage => "policy.manage",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_back_and_only_admins_manage_staff_or_the_catalog() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
        for p in [Permission::StaffManage, Permission::CatalogWrite] {
            let holders: Vec<Role> = Role::ALL.into_iter().filter(|r| r.can(p)).collect();
            assert_eq!(holders, vec![Role::Admin], "{p:?}");
        }
        // No role that sees the audit log reads users' data without the audit behind it,
        // and the analyst never reads one user's data.
        assert!(!Role::Analyst.can(Permission::SubjectDataRead));
        assert!(!Role::Admin.can(Permission::SubjectDataRead));
    }
}
