//! The authorization decision (SPEC-policy section 5), with its explanation.

use serde::{Deserialize, Serialize};

use crate::assignment::within;
use crate::deny::{DenyKind, DenyView};
use crate::ids::{AssignmentId, PrincipalId, RoleId};
use crate::index::{CompiledRole, Derived, IndexedGrant, ScopeEntry, Slot};
use crate::operation::Operation;
use crate::scope::Scope;
use crate::state::PolicyState;
use crate::time::Timestamp;

/// An answer and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Allow or deny.
    pub allowed: bool,
    /// Which assignments decided.
    pub reason: Reason,
}

/// Why a decision came out as it did, chosen canonically, so that equal states give equal
/// decisions that encode to equal bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// Denied by these deny assignments (step 1): every one that applies, sorted by scope
    /// (ancestors first), kind and id.
    DenyAssignments(Vec<DenyMatch>),
    /// Allowed by this role assignment (step 2). When several grant the operation, the one
    /// named is the first in canonical order: nearest the root, then by the id of the
    /// principal or group holding it, then by assignment id. Looking no further keeps the
    /// cost of an allow independent of how many assignments would also allow it.
    RoleAssignment(GrantMatch),
    /// Denied: no deny assignment applied and no role assignment granted it (step 3).
    NotAuthorized,
}

/// A deny assignment that applied.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DenyMatch {
    /// Where the deny assignment sits.
    pub scope: Scope,
    /// Which kind.
    pub kind: DenyKind,
    /// The id of a custom deny assignment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<AssignmentId>,
    /// The listed principal or group through which it applied; absent for `Everyone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<PrincipalId>,
}

/// Where a grant comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GrantSource {
    /// A role assignment.
    #[serde(rename_all = "camelCase")]
    RoleAssignment {
        /// Its id.
        id: AssignmentId,
    },
    /// An activation of an eligible assignment.
    #[serde(rename_all = "camelCase")]
    Activation {
        /// The activation's id.
        id: AssignmentId,
        /// The eligible assignment it activated.
        eligible_assignment_id: AssignmentId,
    },
}

/// A role assignment (or activation) that granted the operation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantMatch {
    /// The scope of the assignment (the requested scope or an ancestor).
    pub scope: Scope,
    /// Which assignment.
    pub source: GrantSource,
    /// Which role.
    pub role: RoleId,
    /// Who holds the assignment: the principal itself, or a group it belongs to.
    pub principal_id: PrincipalId,
    /// Whether it applied through a group.
    pub via_group: bool,
}

impl Decision {
    fn deny(matched: Vec<DenyMatch>) -> Decision {
        Decision {
            allowed: false,
            reason: Reason::DenyAssignments(matched),
        }
    }
}

impl PolicyState {
    /// May `principal` do `operation` at `scope` at time `at`? Section 5, in order: a deny
    /// assignment that applies denies; else a role assignment of the principal or its
    /// groups at the scope or an ancestor, active at `at`, whose role grants the operation,
    /// allows; else deny.
    ///
    /// The scope need not exist (one may ask whether a resource could be created). The
    /// cost depends on the scope's depth and the principal's groups, not on the number of
    /// assignments in the state.
    pub fn check(
        &self,
        principal: &PrincipalId,
        operation: &Operation,
        scope: &Scope,
        at: Timestamp,
    ) -> Decision {
        let holders = self.index.closure_slots(principal);
        let mut closure: Vec<&PrincipalId> =
            holders.iter().filter_map(|h| self.index.name(*h)).collect();
        if closure.is_empty() {
            closure.push(principal);
        }
        // Each ancestor's index entry, looked up once for both steps; `true` for the scope
        // itself.
        let depth = scope.depth();
        let path: Vec<(&ScopeEntry, bool)> = scope
            .ancestors()
            .enumerate()
            .filter_map(|(level, (prefix, _))| Some((self.index.at(prefix)?, level + 1 == depth)))
            .collect();
        let mut denied = self.denials(principal, &closure, operation, &path, at);

        // The combining rule, as one match: deny assignments first, then grants, then the
        // default.
        match denied.is_empty() {
            // Step 1: a deny assignment applies; grants are not even looked at.
            false => {
                denied.sort();
                Decision::deny(denied)
            }
            true => match self.first_grant(principal, &holders, operation, &path, at) {
                // Step 2: some role assignment grants it.
                Some(grant) => Decision {
                    allowed: true,
                    reason: Reason::RoleAssignment(grant),
                },
                // Step 3: nothing grants it.
                None => Decision {
                    allowed: false,
                    reason: Reason::NotAuthorized,
                },
            },
        }
    }

    /// Every deny assignment that denies `operation` to `principal` (whose groups, itself
    /// included, are `closure`) at `scope`: custom ones on the path, and those the platform
    /// derives on managed groups and protected workloads of the path.
    fn denials(
        &self,
        principal: &PrincipalId,
        closure: &[&PrincipalId],
        operation: &Operation,
        path: &[(&ScopeEntry, bool)],
        at: Timestamp,
    ) -> Vec<DenyMatch> {
        let mut denied = Vec::new();
        for &(entry, own) in path {
            let mut consider = |view: DenyView<'_>| {
                if let Some(through) = view.denies(principal, closure, operation, own) {
                    denied.push(DenyMatch {
                        scope: entry.scope.clone(),
                        kind: view.kind,
                        id: view.id.cloned(),
                        through,
                    });
                }
            };
            for deny in &entry.denies {
                consider(DenyView::custom(deny));
            }
            match entry.derived {
                Some(Derived::Managed(of)) => {
                    if let Some(config) = self.maintenance_of_managed(&entry.scope) {
                        for view in DenyView::managed_group(of, config, at) {
                            consider(view);
                        }
                    }
                }
                Some(Derived::ProtectedWorkload) => {
                    if let Some(workload) = self.workloads.get(&entry.scope) {
                        consider(DenyView::protected_workload(
                            &workload.privileged_principals,
                        ));
                    }
                }
                None => {}
            }
        }
        denied
    }

    /// The first grant in canonical order (see [`Reason::RoleAssignment`]): at the first
    /// scope from the root down where any grant applies, the one of the holder with the
    /// smallest id, and of its grants there the one with the smallest source (the index
    /// keeps each holder's grants sorted, so that is the first that applies).
    fn first_grant(
        &self,
        principal: &PrincipalId,
        holders: &[Slot],
        operation: &Operation,
        path: &[(&ScopeEntry, bool)],
        at: Timestamp,
    ) -> Option<GrantMatch> {
        for &(entry, _) in path {
            if entry.grants.is_empty() {
                continue;
            }
            let mut best: Option<(&PrincipalId, &IndexedGrant, &CompiledRole)> = None;
            for &holder in holders {
                let Some(list) = entry.grants.get(&holder) else {
                    continue;
                };
                let Some(holder_id) = self.index.name(holder) else {
                    continue;
                };
                let first = list.iter().find_map(|grant| {
                    let role = self.index.compiled_role(grant.role)?;
                    let applies =
                        within(at, grant.not_before, grant.not_after) && role.grants(operation);
                    applies.then_some((grant, role))
                });
                if let Some((grant, role)) = first {
                    let better = best.is_none_or(|(id, other, _)| {
                        (holder_id, &grant.source) < (id, &other.source)
                    });
                    if better {
                        best = Some((holder_id, grant, role));
                    }
                }
            }
            if let Some((holder_id, grant, role)) = best {
                return Some(GrantMatch {
                    scope: entry.scope.clone(),
                    source: grant.source.clone(),
                    role: role.definition.id.clone(),
                    principal_id: holder_id.clone(),
                    via_group: holder_id != principal,
                });
            }
        }
        None
    }
}
