//! Role assignments, eligible (just-in-time) assignments and their activations
//! (SPEC-policy section 3).

use serde::{Deserialize, Serialize};

use crate::ids::{AssignmentId, PrincipalId, RoleId};
use crate::scope::Scope;
use crate::time::Timestamp;

/// Whether `at` is inside `[not_before, not_after)`; a missing bound is open.
pub fn within(at: Timestamp, not_before: Option<Timestamp>, not_after: Option<Timestamp>) -> bool {
    not_before.is_none_or(|t| at >= t) && not_after.is_none_or(|t| at < t)
}

/// A role given to a principal (or group) at a scope, optionally for a window of time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleAssignment {
    /// Its id.
    pub id: AssignmentId,
    /// Who holds it (a user, service principal or group).
    pub principal_id: PrincipalId,
    /// Which role.
    pub role_definition_id: RoleId,
    /// Where: this scope and everything below it.
    pub scope: Scope,
    /// Before this instant the assignment does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    /// From this instant on the assignment does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Timestamp>,
}

impl RoleAssignment {
    /// Whether the assignment exists at `at`.
    pub fn active_at(&self, at: Timestamp) -> bool {
        within(at, self.not_before, self.not_after)
    }
}

/// Default and bounds of an activation's length, in hours (section 3).
pub const DEFAULT_MAX_ACTIVATION_HOURS: u8 = 8;
/// The longest `maxActivationHours` allowed.
pub const MAX_ACTIVATION_HOURS: u8 = 24;

fn default_max_activation() -> u8 {
    DEFAULT_MAX_ACTIVATION_HOURS
}

/// A role a principal may activate for itself, for a while, with a justification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EligibleRoleAssignment {
    /// Its id.
    pub id: AssignmentId,
    /// Who may activate it (a group: each member for itself).
    pub principal_id: PrincipalId,
    /// Which role.
    pub role_definition_id: RoleId,
    /// Where.
    pub scope: Scope,
    /// The longest activation, 1 to 24 hours.
    #[serde(default = "default_max_activation")]
    pub max_activation_hours: u8,
    /// Before this instant it cannot be activated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    /// From this instant it cannot be activated, and activations end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Timestamp>,
}

/// An activation of an eligible assignment by one principal, for `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleActivation {
    /// Its id.
    pub id: AssignmentId,
    /// The eligible assignment activated.
    pub eligible_assignment_id: AssignmentId,
    /// Who activated it and now holds the role (the eligible principal or one of its
    /// group's members).
    pub principal_id: PrincipalId,
    /// Why.
    pub justification: String,
    /// From.
    pub start: Timestamp,
    /// Until (exclusive).
    pub end: Timestamp,
}

impl RoleActivation {
    /// Whether the activation grants its role at `at`.
    pub fn active_at(&self, at: Timestamp) -> bool {
        within(at, Some(self.start), Some(self.end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_unix_millis(ms).unwrap()
    }

    #[test]
    fn windows_are_half_open() {
        assert!(within(t(5), None, None));
        assert!(within(t(5), Some(t(5)), Some(t(6))));
        assert!(!within(t(6), Some(t(5)), Some(t(6))));
        assert!(!within(t(4), Some(t(5)), None));
        assert!(within(t(4), None, Some(t(5))));
    }
}
