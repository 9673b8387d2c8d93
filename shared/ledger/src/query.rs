//! Reads: each item is shown only if the reader may read it where it lives (its `read`
//! operation at its scope, section 5), so a read never reveals more than the reader's roles
//! allow.

use ea_policy::{built_in_roles, Operation, PolicyState, PrincipalId, Scope, ScopeKind, Timestamp};

use crate::answer::{Answer, ReadResult, Resource};
use crate::operation::Query;

/// The `read` operation of a resource kind.
fn read_operation(kind: ScopeKind) -> &'static str {
    match kind {
        ScopeKind::Community => "Microsoft.Mission/communities/read",
        ScopeKind::VirtualEnclave => "Microsoft.Mission/virtualEnclaves/read",
        ScopeKind::Workload => "Microsoft.Mission/virtualEnclaves/workloads/read",
        ScopeKind::EnclaveEndpoint => "Microsoft.Mission/virtualEnclaves/enclaveEndpoints/read",
        ScopeKind::CommunityEndpoint => "Microsoft.Mission/communities/communityEndpoints/read",
        ScopeKind::EnclaveConnection => "Microsoft.Mission/enclaveConnections/read",
        _ => "Microsoft.Resources/resources/read",
    }
}

struct Reader<'a> {
    state: &'a PolicyState,
    who: &'a PrincipalId,
    at: Timestamp,
}

impl Reader<'_> {
    fn may(&self, operation: &str, scope: &Scope) -> bool {
        Operation::parse(operation)
            .is_ok_and(|op| self.state.check(self.who, &op, scope, self.at).allowed)
    }

    fn resource(&self, scope: &Scope) -> Option<Resource> {
        let s = self.state;
        match scope.kind() {
            ScopeKind::Community => s.community(scope).cloned().map(Resource::Community),
            ScopeKind::VirtualEnclave => s.enclave(scope).cloned().map(Resource::VirtualEnclave),
            ScopeKind::Workload => s.workload(scope).cloned().map(Resource::Workload),
            ScopeKind::EnclaveEndpoint | ScopeKind::CommunityEndpoint => {
                s.endpoint(scope).cloned().map(Resource::Endpoint)
            }
            ScopeKind::EnclaveConnection => s.connection(scope).cloned().map(Resource::Connection),
            _ => None,
        }
    }

    fn readable(&self, resource: &Resource) -> bool {
        let id = resource.id();
        self.may(read_operation(id.kind()), id)
    }
}

/// Answers a read for `who` at `at`.
pub(crate) fn read(state: &PolicyState, who: &PrincipalId, query: &Query, at: Timestamp) -> Answer {
    let reader = Reader { state, who, at };
    let ok = |result| Answer::Read {
        result: Box::new(result),
    };
    match query {
        Query::Resource { scope } => match reader.resource(scope) {
            Some(resource) if reader.readable(&resource) => {
                ok(ReadResult::Resource(Box::new(resource)))
            }
            // Not found and not readable look the same: existence is information too.
            _ => Answer::error(
                "not_found",
                format!("no resource {scope} that {who} may read"),
            ),
        },
        Query::Resources { scope } => {
            let under = |id: &Scope| scope.contains(id);
            let all = state
                .communities()
                .filter(|c| under(&c.id))
                .map(|c| Resource::Community(c.clone()))
                .chain(
                    state
                        .enclaves()
                        .filter(|e| under(&e.id))
                        .map(|e| Resource::VirtualEnclave(e.clone())),
                )
                .chain(
                    state
                        .workloads()
                        .filter(|w| under(&w.id))
                        .map(|w| Resource::Workload(w.clone())),
                )
                .chain(
                    state
                        .endpoints()
                        .filter(|e| under(&e.id))
                        .map(|e| Resource::Endpoint(e.clone())),
                )
                .chain(
                    state
                        .connections()
                        .filter(|c| under(&c.id))
                        .map(|c| Resource::Connection(c.clone())),
                );
            let mut resources: Vec<Resource> = all.filter(|r| reader.readable(r)).collect();
            resources.sort_by(|a, b| a.id().cmp(b.id()));
            ok(ReadResult::Resources(resources))
        }
        Query::Approvals {
            status,
            scope,
            requester,
        } => {
            let approvals = state
                .approvals()
                .filter(|a| status.is_none_or(|s| a.approval_status == s))
                .filter(|a| scope.as_ref().is_none_or(|s| s.contains(a.target())))
                .filter(|a| requester.as_ref().is_none_or(|r| &a.requester == r))
                .filter(|a| {
                    &a.requester == who
                        || reader.may("Microsoft.Mission/approvals/read", a.target())
                })
                .cloned()
                .collect();
            ok(ReadResult::Approvals(approvals))
        }
        Query::Approval { id } => match state.approval(id) {
            Some(a)
                if &a.requester == who
                    || reader.may("Microsoft.Mission/approvals/read", a.target()) =>
            {
                ok(ReadResult::Approval(Box::new(a.clone())))
            }
            _ => Answer::error(
                "approval_not_found",
                format!("no approval {id} that {who} may read"),
            ),
        },
        Query::RoleAssignments { scope, principal } => {
            let wanted = |at: &Scope, holder: &PrincipalId| {
                scope.as_ref().is_none_or(|s| s.contains(at))
                    && principal.as_ref().is_none_or(|p| p == holder)
                    && (holder == who
                        || reader.may("Microsoft.Authorization/roleAssignments/read", at))
            };
            let role_assignments = state
                .role_assignments()
                .filter(|a| wanted(&a.scope, &a.principal_id))
                .cloned()
                .collect();
            let eligible_role_assignments = state
                .eligible_assignments()
                .filter(|a| wanted(&a.scope, &a.principal_id))
                .cloned()
                .collect();
            let role_activations = state
                .activations()
                .filter(|a| {
                    state
                        .eligible_assignment(&a.eligible_assignment_id)
                        .is_some_and(|e| wanted(&e.scope, &a.principal_id))
                })
                .cloned()
                .collect();
            ok(ReadResult::RoleAssignments {
                role_assignments,
                eligible_role_assignments,
                role_activations,
            })
        }
        Query::DenyAssignments { scope } => {
            let denies = state
                .deny_assignments()
                .filter(|d| scope.as_ref().is_none_or(|s| s.contains(&d.scope)))
                .filter(|d| reader.may("Microsoft.Authorization/denyAssignments/read", &d.scope))
                .cloned()
                .collect();
            ok(ReadResult::DenyAssignments(denies))
        }
        Query::Principals { id } => {
            let directory = reader.may("Microsoft.Authorization/principals/read", &Scope::root());
            let principals: Vec<_> = state
                .principals()
                .filter(|p| id.as_ref().is_none_or(|id| &p.id == id))
                .filter(|p| directory || &p.id == who)
                .cloned()
                .collect();
            match (id, principals.is_empty()) {
                (Some(id), true) => Answer::error(
                    "not_found",
                    format!("no principal {id} that {who} may read"),
                ),
                _ => ok(ReadResult::Principals(principals)),
            }
        }
        Query::State => {
            if reader.may("Microsoft.Mission/state/read", &Scope::root()) {
                ok(ReadResult::State(Box::new(state.to_document())))
            } else {
                Answer::error(
                    "not_authorized",
                    format!(
                        "{who} may not read the whole state (Microsoft.Mission/state/read at /)"
                    ),
                )
            }
        }
        // The ledger answers it (it knows the records that admitted each image).
        Query::Images => Answer::error(
            "internal",
            "the images query is answered by the ledger, not the state",
        ),
        Query::Witnesses => ok(ReadResult::Witnesses(state.witnesses().cloned())),
        Query::RoleDefinitions => {
            let roles = built_in_roles()
                .values()
                .chain(state.custom_roles())
                .cloned()
                .collect();
            ok(ReadResult::RoleDefinitions(roles))
        }
    }
}
