//! Roles and the actor who issues a command.

use super::PersonId;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a person may do. `viewer` reads; `responder` declares, acknowledges and posts updates;
/// `commander` also escalates, resolves and hands over command; `approver` approves recovery
/// steps; `admin` may do everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Responder,
    Commander,
    Approver,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Responder,
        Role::Commander,
        Role::Approver,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Responder => "responder",
            Role::Commander => "commander",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// Whether holding `self` is enough where `required` is asked for. Commander includes
    /// responder (a commander must be able to do what a responder does); approver is a separate
    /// duty and grants only itself and reading, so approving stays apart from running.
    pub fn grants(self, required: Role) -> bool {
        match (self, required) {
            (Role::Admin, _) | (_, Role::Viewer) => true,
            (Role::Commander, Role::Responder | Role::Commander) => true,
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown role `{s}`; accepted: viewer, responder, commander, approver, admin"
                )
            })
    }
}

/// The roles one actor holds. Everyone is at least a viewer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleSet(Vec<Role>);

impl RoleSet {
    pub fn new(roles: impl IntoIterator<Item = Role>) -> Self {
        let mut v: Vec<Role> = roles.into_iter().collect();
        v.sort();
        v.dedup();
        Self(v)
    }
    pub fn allows(&self, required: Role) -> bool {
        required == Role::Viewer || self.0.iter().any(|r| r.grants(required))
    }
    pub fn iter(&self) -> impl Iterator<Item = Role> + '_ {
        self.0.iter().copied()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Who issued a command: a stable id (a configured person's id, or `system:<what>` for Spotter
/// itself and `source:<id>` for an alert source) and the roles that id holds. Display names are
/// looked up for output only; they never decide anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: String,
    pub person: Option<PersonId>,
    pub roles: RoleSet,
    /// Acting through a credential that grants at most this role (the shared API token): the
    /// roles are capped, and commanding an incident does not lift the cap either.
    pub limited_to: Option<Role>,
}

impl Actor {
    /// Spotter acting on its own (scheduler jobs, alert intake).
    pub fn system(what: &str) -> Self {
        Self {
            id: format!("system:{what}"),
            person: None,
            roles: RoleSet::new([Role::Admin]),
            limited_to: None,
        }
    }
    pub fn allows(&self, required: Role) -> bool {
        self.roles.allows(required)
    }

    /// The same actor through a credential that grants at most `cap`: the roles both allow,
    /// never more than either.
    pub fn limited_to(mut self, cap: Role) -> Self {
        self.roles = RoleSet::new(
            Role::ALL
                .into_iter()
                .filter(|r| self.roles.allows(*r) && cap.grants(*r)),
        );
        // Limited twice: the narrower limit stays.
        self.limited_to = match self.limited_to {
            Some(earlier) if cap.grants(earlier) => Some(earlier),
            _ => Some(cap),
        };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(roles: &[Role]) -> Actor {
        Actor {
            id: "x".into(),
            person: None,
            roles: RoleSet::new(roles.iter().copied()),
            limited_to: None,
        }
    }

    #[test]
    fn a_limited_actor_never_has_more_than_its_limit_nor_more_than_the_person() {
        let admin = actor(&[Role::Admin]).limited_to(Role::Responder);
        assert!(admin.allows(Role::Responder));
        assert!(!admin.allows(Role::Commander));
        assert!(!admin.allows(Role::Admin));
        assert_eq!(admin.limited_to, Some(Role::Responder));
        let approver = actor(&[Role::Approver]).limited_to(Role::Commander);
        assert!(!approver.allows(Role::Responder));
        assert!(!approver.allows(Role::Approver));
        assert!(!actor(&[Role::Viewer])
            .limited_to(Role::Admin)
            .allows(Role::Responder));
        assert_eq!(
            actor(&[Role::Admin]).limited_to(Role::Admin).roles,
            RoleSet::new(Role::ALL)
        );
        // Limited twice, the narrower limit stays.
        let twice = actor(&[Role::Admin])
            .limited_to(Role::Responder)
            .limited_to(Role::Admin);
        assert_eq!(twice.limited_to, Some(Role::Responder));
    }

    #[test]
    fn role_grants_follow_the_documented_lattice() {
        assert!(Role::Admin.grants(Role::Approver));
        assert!(Role::Commander.grants(Role::Responder));
        assert!(!Role::Responder.grants(Role::Commander));
        assert!(!Role::Approver.grants(Role::Responder));
        assert!(!Role::Commander.grants(Role::Approver));
        assert!(RoleSet::default().allows(Role::Viewer));
        assert!(!RoleSet::default().allows(Role::Responder));
    }
}
