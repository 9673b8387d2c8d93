//! What a deletion takes along, and the automatic transitions that come with time.

use std::collections::BTreeSet;

use crate::event::Event;
use crate::ids::PrincipalId;
use crate::network::ConnectionState;
use crate::refusal::{Invalid, Problem, RecordKind, Refusal};
use crate::scope::{Scope, ScopeKind};
use crate::state::PolicyState;
use crate::time::Timestamp;

impl PolicyState {
    /// The resources a deletion of `root` removes, in the order to delete them (children
    /// first): connections in it or from an enclave in it, endpoints, workloads, enclaves,
    /// then `root`. Managed groups have no records: they go with their owner.
    pub(crate) fn removal(&self, root: &Scope) -> Vec<Scope> {
        let under = |s: &Scope| root.contains(s);
        let mut removed: Vec<Scope> = self
            .connections
            .values()
            .filter(|c| under(&c.id) || under(&c.source_resource_id))
            .map(|c| c.id.clone())
            .collect();
        removed.extend(self.endpoints.keys().filter(|s| under(s)).cloned());
        removed.extend(self.workloads.keys().filter(|s| under(s)).cloned());
        removed.extend(self.enclaves.keys().filter(|s| under(s)).cloned());
        removed.extend(self.communities.keys().filter(|s| under(s)).cloned());
        removed
    }

    /// The events of a deletion of `root`: assignments at removed scopes go first, then
    /// connections to removed endpoints become Disconnected, then the resources go.
    pub(crate) fn removal_events(&self, root: &Scope, at: Timestamp) -> Vec<Event> {
        let removed = self.removal(root);
        let gone = |s: &Scope| removed.iter().any(|r| r.contains(s));
        let mut events = Vec::new();
        for a in self.activations.values() {
            if self
                .eligible
                .get(&a.eligible_assignment_id)
                .is_some_and(|e| gone(&e.scope))
            {
                events.push(Event::RoleActivationEnded {
                    id: a.id.clone(),
                    at,
                });
            }
        }
        for e in self.eligible.values().filter(|e| gone(&e.scope)) {
            events.push(Event::EligibleRoleAssignmentRemoved { id: e.id.clone() });
        }
        for a in self.role_assignments.values().filter(|a| gone(&a.scope)) {
            events.push(Event::RoleAssignmentRemoved { id: a.id.clone() });
        }
        for d in self.deny_assignments.values().filter(|d| gone(&d.scope)) {
            events.push(Event::DenyAssignmentDeleted { id: d.id.clone() });
        }
        for c in self.connections.values() {
            if !removed.contains(&c.id)
                && gone(&c.destination_endpoint_id)
                && c.state != ConnectionState::Disconnected
            {
                events.push(Event::ConnectionStateChanged {
                    id: c.id.clone(),
                    state: ConnectionState::Disconnected,
                });
            }
        }
        for scope in removed {
            let id = scope.clone();
            events.push(match scope.kind() {
                ScopeKind::EnclaveConnection => Event::ConnectionDeleted { id },
                ScopeKind::EnclaveEndpoint | ScopeKind::CommunityEndpoint => {
                    Event::EndpointDeleted { id }
                }
                ScopeKind::Workload => Event::WorkloadDeleted { id },
                ScopeKind::VirtualEnclave => Event::VirtualEnclaveDeleted { id },
                _ => Event::CommunityDeleted { id },
            });
        }
        events
    }

    /// `events` preceded by the end of every activation they leave without its eligibility:
    /// one who leaves a group (or whose group goes) loses what the group made it eligible
    /// for, activated or not.
    pub(crate) fn ending_lost_activations(&self, events: Vec<Event>, at: Timestamp) -> Vec<Event> {
        let mut after = self.clone();
        if events.iter().any(|e| after.apply(e).is_err()) {
            // Validation passed, so this does not happen; the events then speak for
            // themselves and `apply` reports the misfit.
            return events;
        }
        let mut ended: Vec<Event> = after
            .activations
            .values()
            .filter(|a| {
                after
                    .eligible
                    .get(&a.eligible_assignment_id)
                    .is_none_or(|e| {
                        !after
                            .index
                            .closure(&a.principal_id)
                            .contains(&e.principal_id)
                    })
            })
            .map(|a| Event::RoleActivationEnded {
                id: a.id.clone(),
                at,
            })
            .collect();
        ended.extend(events);
        ended
    }

    /// The events of a principal's deletion: its activations, eligibilities, assignments and
    /// memberships go with it; names of it in deny assignments and settings block it.
    pub(crate) fn principal_removal(
        &self,
        id: &PrincipalId,
        at: Timestamp,
    ) -> Result<Vec<Event>, Refusal> {
        if id.is_platform() {
            return Err(Refusal::Invalid(Invalid::at(
                "id",
                Problem::ReservedPrincipalId(id.clone()),
            )));
        }
        if !self.principals.contains_key(id) {
            return Err(Refusal::Invalid(Invalid::at(
                "id",
                Problem::NotFound {
                    what: RecordKind::Principal,
                    id: id.to_string(),
                },
            )));
        }
        let blocking = self.configuration_references(id);
        if !blocking.is_empty() {
            return Err(Refusal::Invalid(Invalid::at(
                "id",
                Problem::InUse(blocking),
            )));
        }
        let eligible_of: BTreeSet<_> = self
            .eligible
            .values()
            .filter(|e| &e.principal_id == id)
            .map(|e| e.id.clone())
            .collect();
        let mut events: Vec<Event> = self
            .activations
            .values()
            .filter(|a| &a.principal_id == id || eligible_of.contains(&a.eligible_assignment_id))
            .map(|a| Event::RoleActivationEnded {
                id: a.id.clone(),
                at,
            })
            .collect();
        events.extend(
            eligible_of
                .into_iter()
                .map(|id| Event::EligibleRoleAssignmentRemoved { id }),
        );
        events.extend(
            self.role_assignments
                .values()
                .filter(|a| &a.principal_id == id)
                .map(|a| Event::RoleAssignmentRemoved { id: a.id.clone() }),
        );
        events.extend(
            self.principals
                .values()
                .filter(|g| g.members.contains(id))
                .map(|g| Event::GroupMemberRemoved {
                    group: g.id.clone(),
                    member: id.clone(),
                }),
        );
        events.push(Event::PrincipalDeleted { id: id.clone() });
        Ok(events)
    }

    /// The automatic transitions due at `at`, for the caller to record and apply:
    /// maintenance modes past their `expiresAt` turn Off, activations past their end end,
    /// pending approvals past their `expiresAt` expire (releasing connection placeholders).
    pub fn due_events(&self, at: Timestamp) -> Vec<Event> {
        let mut events = Vec::new();
        let configured = self
            .communities
            .values()
            .map(|c| (&c.id, &c.maintenance_mode_configuration))
            .chain(
                self.enclaves
                    .values()
                    .map(|e| (&e.id, &e.maintenance_mode_configuration)),
            );
        for (scope, config) in configured {
            if let Some(expires_at) = config.expires_at {
                if expires_at <= at {
                    events.push(Event::MaintenanceModeExpired {
                        scope: scope.clone(),
                        at: expires_at,
                    });
                }
            }
        }
        for a in self.activations.values().filter(|a| a.end <= at) {
            events.push(Event::RoleActivationEnded {
                id: a.id.clone(),
                at: a.end,
            });
        }
        events.extend(self.expiring_approvals(at));
        events
    }
}
