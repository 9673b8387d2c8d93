//! The validation rules of each record, shared by commands and state files: what a record
//! must satisfy, given the state it is about to enter. One file per family of records.

mod assignments;
mod directory;
mod resources;

use std::collections::BTreeSet;

use crate::approval::{ApprovalSettings, MAX_MINIMUM_APPROVERS};
use crate::assignment::{
    EligibleRoleAssignment, RoleActivation, RoleAssignment, MAX_ACTIVATION_HOURS,
};
use crate::cidr::Cidr;
use crate::deny::{DenyAssignment, DenyPrincipals};
use crate::ids::{AssignmentId, PrincipalId, RoleId};
use crate::maintenance::MaintenanceModeConfiguration;
use crate::network::{Connection, ConnectionState, Endpoint};
use crate::principal::{Principal, PrincipalType};
use crate::refusal::{Invalid, Problem, RecordKind};
use crate::resources::{Community, VirtualEnclave, Workload};
use crate::roles::{is_built_in, Permissions, RoleDefinition};
use crate::scope::{Scope, ScopeKind};
use crate::state::{record_kind_of, PolicyState};
use crate::time::Timestamp;

/// Longest display name, description or justification, in characters.
pub const MAX_TEXT: usize = 1024;
/// Most patterns in one role or deny assignment.
pub const MAX_PATTERNS: usize = 200;
/// Most rules in one endpoint.
pub const MAX_RULES: usize = 100;
/// Longest approval lifetime: a year.
pub const MAX_APPROVAL_LIFETIME_HOURS: u32 = 365 * 24;

/// Whether a record is new or replaces one with the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Create,
    Update,
}

pub(super) type Checked = Result<(), Invalid>;

pub(super) fn text(field: &str, value: Option<&str>) -> Checked {
    match value {
        Some(v) if v.chars().count() > MAX_TEXT => {
            Err(Invalid::at(field, Problem::TextTooLong(MAX_TEXT)))
        }
        _ => Ok(()),
    }
}

pub(super) fn kind(field: &str, scope: &Scope, expected: ScopeKind) -> Checked {
    if scope.kind() == expected {
        Ok(())
    } else {
        Err(Invalid::at(
            field,
            Problem::WrongScopeKind {
                expected,
                found: scope.clone(),
                found_kind: scope.kind(),
            },
        ))
    }
}

pub(super) fn range(field: &str, value: u64, min: u64, max: u64) -> Checked {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Invalid::at(field, Problem::OutOfRange { value, min, max }))
    }
}

pub(super) fn window(not_before: Option<Timestamp>, not_after: Option<Timestamp>) -> Checked {
    match (not_before, not_after) {
        (Some(not_before), Some(not_after)) if not_before >= not_after => Err(Invalid::at(
            "notAfter",
            Problem::EmptyWindow {
                not_before,
                not_after,
            },
        )),
        _ => Ok(()),
    }
}

pub(super) fn permissions(field: &str, p: &Permissions) -> Checked {
    if p.is_empty() {
        return Err(Invalid::at(field, Problem::NoPermissions));
    }
    if p.len() > MAX_PATTERNS {
        return Err(Invalid::at(field, Problem::TooManyPatterns(MAX_PATTERNS)));
    }
    Ok(())
}

impl PolicyState {
    pub(super) fn exists(
        &self,
        field: &str,
        what: RecordKind,
        found: bool,
        id: &dyn ToString,
    ) -> Checked {
        if found {
            Ok(())
        } else {
            Err(Invalid::at(
                field,
                Problem::NotFound {
                    what,
                    id: id.to_string(),
                },
            ))
        }
    }

    pub(super) fn fresh(
        &self,
        mode: Mode,
        what: RecordKind,
        present: bool,
        id: &dyn ToString,
    ) -> Checked {
        match (mode, present) {
            (Mode::Create, true) => Err(Invalid::at(
                "id",
                Problem::AlreadyExists {
                    what,
                    id: id.to_string(),
                },
            )),
            (Mode::Update, false) => self.exists("id", what, false, id),
            _ => Ok(()),
        }
    }

    pub(crate) fn known_principals<'a>(
        &self,
        field: &str,
        ids: impl IntoIterator<Item = &'a PrincipalId>,
    ) -> Checked {
        for id in ids {
            self.exists(
                field,
                RecordKind::Principal,
                self.principals.contains_key(id),
                id,
            )?;
        }
        Ok(())
    }

    pub(super) fn scope_present(&self, field: &str, scope: &Scope) -> Checked {
        self.exists(
            field,
            record_kind_of(scope.kind()),
            self.scope_exists(scope),
            scope,
        )
    }
}
