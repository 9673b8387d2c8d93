//! How events change the state: the only way it changes. Each event is checked to fit
//! (references exist, nothing still depends on what goes) before anything moves, so a
//! refused event leaves the state as it was.

use crate::approval::ApprovalSettings;
use crate::assignment::{EligibleRoleAssignment, RoleActivation, RoleAssignment};
use crate::check::GrantSource;
use crate::deny::{DenyAssignment, ManagedOf};
use crate::event::Event;
use crate::ids::{ApprovalId, AssignmentId, PrincipalId, RoleId};
use crate::index::Derived;
use crate::maintenance::MaintenanceModeConfiguration;
use crate::principal::{Principal, PrincipalType};
use crate::refusal::{ApplyError, Invalid, Problem, RecordKind};
use crate::roles::{is_built_in, RoleDefinition};
use crate::scope::{Scope, ScopeKind};
use crate::state::{record_kind_of, PolicyState};
use crate::workflow::{Approval, ApprovalStatus};

fn not_found(what: RecordKind, id: impl ToString) -> Problem {
    Problem::NotFound {
        what,
        id: id.to_string(),
    }
}

fn in_use(references: Vec<String>) -> Result<(), Problem> {
    if references.is_empty() {
        Ok(())
    } else {
        Err(Problem::InUse(references))
    }
}

/// Changes.
impl PolicyState {
    /// Applies one event. An event that does not fit (a reference to something missing, a
    /// duplicate, a deletion of something still in use) changes nothing and is reported: it
    /// means the event log and this state disagree.
    pub fn apply(&mut self, event: &Event) -> Result<(), ApplyError> {
        self.apply_inner(event)
            .map_err(|(field, problem)| ApplyError {
                event: event.name().to_owned(),
                invalid: Invalid::at(field, problem),
            })
    }

    fn apply_inner(&mut self, event: &Event) -> Result<(), (&'static str, Problem)> {
        match event {
            Event::PrincipalPut(p) => self.put_principal(p),
            Event::PrincipalDeleted { id } => self.delete_principal(id).map_err(|e| ("id", e)),
            Event::GroupMemberAdded { group, member } => self.add_member(group, member),
            Event::GroupMemberRemoved { group, member } => self.remove_member(group, member),
            Event::RoleDefinitionPut(role) => self.put_role(role).map_err(|e| ("id", e)),
            Event::RoleDefinitionDeleted { id } => self.delete_role(id).map_err(|e| ("id", e)),
            Event::RoleAssigned(a) => self.add_assignment(a),
            Event::RoleAssignmentRemoved { id } => {
                self.remove_assignment(id).map_err(|e| ("id", e))
            }
            Event::EligibleRoleAssigned(a) => self.add_eligible(a),
            Event::EligibleRoleAssignmentRemoved { id } => {
                self.remove_eligible(id).map_err(|e| ("id", e))
            }
            Event::RoleActivated(a) => self.add_activation(a),
            Event::RoleActivationEnded { id, .. } => {
                self.remove_activation(id).map_err(|e| ("id", e))
            }
            Event::DenyAssignmentPut(d) => self.put_deny(d),
            Event::DenyAssignmentDeleted { id } => self.delete_deny(id).map_err(|e| ("id", e)),
            Event::CommunityPut(c) => {
                self.expect_kind(&c.id, ScopeKind::Community)?;
                self.expect_settings_principals(
                    &c.maintenance_mode_configuration,
                    &c.approval_settings,
                )?;
                self.index.set_derived(
                    &managed(&c.id)?,
                    Some(Derived::Managed(ManagedOf::Community)),
                );
                self.communities.insert(c.id.clone(), c.clone());
                Ok(())
            }
            Event::VirtualEnclavePut(e) => {
                self.expect_kind(&e.id, ScopeKind::VirtualEnclave)?;
                self.expect_parent(&e.id, ScopeKind::Community)?;
                self.expect_settings_principals(
                    &e.maintenance_mode_configuration,
                    &e.approval_settings,
                )?;
                self.index
                    .set_derived(&managed(&e.id)?, Some(Derived::Managed(ManagedOf::Enclave)));
                self.enclaves.insert(e.id.clone(), e.clone());
                Ok(())
            }
            Event::WorkloadPut(w) => {
                self.expect_kind(&w.id, ScopeKind::Workload)?;
                self.expect_parent(&w.id, ScopeKind::VirtualEnclave)?;
                self.expect_principals("privilegedPrincipals", w.privileged_principals.iter())?;
                let derived = w.protected.then_some(Derived::ProtectedWorkload);
                self.index.set_derived(&w.id, derived);
                self.workloads.insert(w.id.clone(), w.clone());
                Ok(())
            }
            Event::EndpointPut(e) => {
                let parent = match e.id.kind() {
                    ScopeKind::CommunityEndpoint => ScopeKind::Community,
                    ScopeKind::EnclaveEndpoint => ScopeKind::VirtualEnclave,
                    found_kind => {
                        return Err((
                            "id",
                            Problem::WrongScopeKind {
                                expected: ScopeKind::EnclaveEndpoint,
                                found: e.id.clone(),
                                found_kind,
                            },
                        ))
                    }
                };
                self.expect_parent(&e.id, parent)?;
                self.expect_principals("approvers", e.approvers.iter())?;
                self.endpoints.insert(e.id.clone(), e.clone());
                Ok(())
            }
            Event::ConnectionPut(c) => {
                self.expect_kind(&c.id, ScopeKind::EnclaveConnection)?;
                self.expect_parent(&c.id, ScopeKind::Community)?;
                if !self.enclaves.contains_key(&c.source_resource_id) {
                    return Err((
                        "sourceResourceId",
                        not_found(RecordKind::VirtualEnclave, &c.source_resource_id),
                    ));
                }
                if let Some(old) = self.connections.get(&c.id) {
                    let source = old.source_resource_id.clone();
                    self.index.remove_connection(&source, &c.id);
                }
                self.index.add_connection(&c.source_resource_id, &c.id);
                self.connections.insert(c.id.clone(), c.clone());
                Ok(())
            }
            Event::ConnectionStateChanged { id, state } => {
                let connection = self
                    .connections
                    .get_mut(id)
                    .ok_or_else(|| ("id", not_found(RecordKind::Connection, id)))?;
                connection.state = *state;
                Ok(())
            }
            Event::MaintenanceModeSet {
                scope,
                configuration,
            } => {
                self.expect_principals(
                    "configuration.principals",
                    configuration.principals.iter(),
                )?;
                let slot = self.maintenance_mut(scope).map_err(|e| ("scope", e))?;
                *slot = configuration.clone();
                Ok(())
            }
            Event::MaintenanceModeExpired { scope, .. } => {
                let slot = self.maintenance_mut(scope).map_err(|e| ("scope", e))?;
                *slot = MaintenanceModeConfiguration::default();
                Ok(())
            }
            Event::ApprovalSettingsSet { scope, settings } => {
                self.expect_settings_principals(
                    &MaintenanceModeConfiguration::default(),
                    settings,
                )?;
                let slot = match scope.kind() {
                    ScopeKind::Community => self
                        .communities
                        .get_mut(scope)
                        .map(|c| &mut c.approval_settings),
                    ScopeKind::VirtualEnclave => self
                        .enclaves
                        .get_mut(scope)
                        .map(|e| &mut e.approval_settings),
                    _ => None,
                };
                let slot = slot.ok_or_else(|| ("scope", not_found(RecordKind::Scope, scope)))?;
                *slot = settings.clone();
                Ok(())
            }
            Event::CommunityDeleted { id }
            | Event::VirtualEnclaveDeleted { id }
            | Event::WorkloadDeleted { id }
            | Event::EndpointDeleted { id }
            | Event::ConnectionDeleted { id } => self.delete_resource(id).map_err(|e| ("id", e)),
            Event::ApprovalRequested(approval) => {
                if self.approvals.contains_key(&approval.id) {
                    return Err((
                        "id",
                        Problem::AlreadyExists {
                            what: RecordKind::Approval,
                            id: approval.id.to_string(),
                        },
                    ));
                }
                self.approvals
                    .insert(approval.id.clone(), approval.as_ref().clone());
                Ok(())
            }
            Event::ApprovalVoted { id, vote } => {
                let approval = self.pending_approval_mut(id)?;
                approval.votes.push(vote.clone());
                Ok(())
            }
            Event::ApprovalClosed {
                id,
                status,
                at,
                reason,
            } => {
                let approval = self.pending_approval_mut(id)?;
                approval.approval_status = *status;
                approval.closed_at = Some(*at);
                approval.status_reason = reason.clone();
                Ok(())
            }
            Event::ImageAdmitted(image) => {
                self.check_admission(&image.pcrs)
                    .map_err(|invalid| ("pcrs", invalid.problem))?;
                self.images.insert(image.pcrs.clone(), image.clone());
                Ok(())
            }
            Event::ImageRetired { pcrs, .. } => {
                self.check_retirement(pcrs)
                    .map_err(|invalid| ("pcrs", invalid.problem))?;
                self.images.remove(pcrs);
                Ok(())
            }
            Event::ImageStarted { pcrs } => {
                self.check_start(pcrs)
                    .map_err(|invalid| ("pcrs", invalid.problem))?;
                self.running_image = Some(pcrs.clone());
                Ok(())
            }
            Event::WitnessesSet(set) => {
                self.witnesses = Some(set.clone());
                Ok(())
            }
        }
    }

    /// A pending approval, for a vote or its closing.
    fn pending_approval_mut(
        &mut self,
        id: &ApprovalId,
    ) -> Result<&mut Approval, (&'static str, Problem)> {
        match self.approvals.get_mut(id) {
            Some(approval) if approval.approval_status == ApprovalStatus::Pending => Ok(approval),
            Some(approval) => Err((
                "id",
                Problem::ApprovalClosed {
                    id: id.clone(),
                    status: approval.approval_status,
                },
            )),
            None => Err(("id", not_found(RecordKind::Approval, id))),
        }
    }

    fn expect_kind(
        &self,
        scope: &Scope,
        expected: ScopeKind,
    ) -> Result<(), (&'static str, Problem)> {
        if scope.kind() == expected {
            Ok(())
        } else {
            Err((
                "id",
                Problem::WrongScopeKind {
                    expected,
                    found: scope.clone(),
                    found_kind: scope.kind(),
                },
            ))
        }
    }

    fn expect_parent(&self, scope: &Scope, kind: ScopeKind) -> Result<(), (&'static str, Problem)> {
        let parent = scope.ancestor_of_kind(kind);
        match parent {
            Some(parent) if self.scope_exists(&parent) => Ok(()),
            Some(parent) => Err(("id", not_found(record_kind_of(kind), parent))),
            None => Err(("id", not_found(record_kind_of(kind), scope))),
        }
    }

    fn expect_principals<'a>(
        &self,
        field: &'static str,
        mut ids: impl Iterator<Item = &'a PrincipalId>,
    ) -> Result<(), (&'static str, Problem)> {
        match ids.find(|id| !self.principals.contains_key(*id)) {
            Some(missing) => Err((field, not_found(RecordKind::Principal, missing))),
            None => Ok(()),
        }
    }

    fn expect_settings_principals(
        &self,
        maintenance: &MaintenanceModeConfiguration,
        approvals: &ApprovalSettings,
    ) -> Result<(), (&'static str, Problem)> {
        self.expect_principals(
            "maintenanceModeConfiguration.principals",
            maintenance.principals.iter(),
        )?;
        self.expect_principals(
            "approvalSettings",
            approvals
                .iter()
                .flat_map(|(_, setting)| setting.mandatory_approvers.iter()),
        )
    }

    fn maintenance_mut(
        &mut self,
        scope: &Scope,
    ) -> Result<&mut MaintenanceModeConfiguration, Problem> {
        let slot = match scope.kind() {
            ScopeKind::Community => self
                .communities
                .get_mut(scope)
                .map(|c| &mut c.maintenance_mode_configuration),
            ScopeKind::VirtualEnclave => self
                .enclaves
                .get_mut(scope)
                .map(|e| &mut e.maintenance_mode_configuration),
            _ => None,
        };
        slot.ok_or_else(|| not_found(RecordKind::Scope, scope))
    }

    fn put_principal(&mut self, p: &Principal) -> Result<(), (&'static str, Problem)> {
        if p.id.is_platform() {
            return Err(("id", Problem::ReservedPrincipalId(p.id.clone())));
        }
        if let Some(old) = self.principals.get(&p.id) {
            if old.kind != p.kind {
                return Err(("type", Problem::PrincipalTypeChanged));
            }
        }
        if p.kind != PrincipalType::Group && !p.members.is_empty() {
            return Err(("members", Problem::MembersOnNonGroup));
        }
        self.expect_principals("members", p.members.iter())?;
        for member in &p.members {
            if self.would_cycle(&p.id, member) {
                return Err((
                    "members",
                    Problem::GroupCycle {
                        group: p.id.clone(),
                        member: member.clone(),
                    },
                ));
            }
        }
        if let Some(old) = self.principals.get(&p.id) {
            for member in &old.members {
                self.index.remove_membership(&p.id, member);
            }
        }
        for member in &p.members {
            self.index.add_membership(&p.id, member);
        }
        self.principals.insert(p.id.clone(), p.clone());
        Ok(())
    }

    /// Whether making `member` a member of `group` would close a cycle: `member` is `group`
    /// or already contains it (directly or through nested groups).
    pub(crate) fn would_cycle(&self, group: &PrincipalId, member: &PrincipalId) -> bool {
        self.index.closure(group).contains(member)
    }

    fn delete_principal(&mut self, id: &PrincipalId) -> Result<(), Problem> {
        let principal = self
            .principals
            .get(id)
            .ok_or_else(|| not_found(RecordKind::Principal, id))?;
        in_use(self.references_to_principal(id))?;
        for member in principal.members.clone() {
            self.index.remove_membership(id, &member);
        }
        self.principals.remove(id);
        Ok(())
    }

    fn add_member(
        &mut self,
        group: &PrincipalId,
        member: &PrincipalId,
    ) -> Result<(), (&'static str, Problem)> {
        let g = self
            .principals
            .get(group)
            .ok_or_else(|| ("group", not_found(RecordKind::Principal, group)))?;
        if g.kind != PrincipalType::Group {
            return Err(("group", Problem::NotAGroup(group.clone())));
        }
        if g.members.contains(member) {
            return Err((
                "member",
                Problem::Membership {
                    group: group.clone(),
                    member: member.clone(),
                    is_member: true,
                },
            ));
        }
        self.expect_principals("member", std::iter::once(member))?;
        if self.would_cycle(group, member) {
            return Err((
                "member",
                Problem::GroupCycle {
                    group: group.clone(),
                    member: member.clone(),
                },
            ));
        }
        if let Some(g) = self.principals.get_mut(group) {
            g.members.insert(member.clone());
        }
        self.index.add_membership(group, member);
        Ok(())
    }

    fn remove_member(
        &mut self,
        group: &PrincipalId,
        member: &PrincipalId,
    ) -> Result<(), (&'static str, Problem)> {
        let g = self
            .principals
            .get_mut(group)
            .ok_or_else(|| ("group", not_found(RecordKind::Principal, group)))?;
        if !g.members.remove(member) {
            return Err((
                "member",
                Problem::Membership {
                    group: group.clone(),
                    member: member.clone(),
                    is_member: false,
                },
            ));
        }
        self.index.remove_membership(group, member);
        Ok(())
    }

    fn put_role(&mut self, role: &RoleDefinition) -> Result<(), Problem> {
        if is_built_in(role.id.as_str()) {
            return Err(Problem::BuiltInRole(role.id.to_string()));
        }
        self.index.put_role(role);
        self.role_definitions.insert(role.id.clone(), role.clone());
        Ok(())
    }

    fn delete_role(&mut self, id: &RoleId) -> Result<(), Problem> {
        if !self.role_definitions.contains_key(id) {
            return Err(not_found(RecordKind::RoleDefinition, id));
        }
        let users: Vec<String> = self
            .role_assignments
            .values()
            .filter(|a| &a.role_definition_id == id)
            .map(|a| format!("role assignment {}", a.id))
            .chain(
                self.eligible
                    .values()
                    .filter(|a| &a.role_definition_id == id)
                    .map(|a| format!("eligible role assignment {}", a.id)),
            )
            .collect();
        in_use(users)?;
        self.role_definitions.remove(id);
        self.index.remove_role(id);
        Ok(())
    }

    fn expect_assignment_refs(
        &self,
        principal: &PrincipalId,
        role: &RoleId,
        scope: &Scope,
    ) -> Result<(), (&'static str, Problem)> {
        self.expect_principals("principalId", std::iter::once(principal))?;
        if self.index.role(role).is_none() {
            return Err((
                "roleDefinitionId",
                not_found(RecordKind::RoleDefinition, role),
            ));
        }
        if !self.scope_exists(scope) {
            return Err(("scope", not_found(RecordKind::Scope, scope)));
        }
        Ok(())
    }

    fn add_assignment(&mut self, a: &RoleAssignment) -> Result<(), (&'static str, Problem)> {
        if self.role_assignments.contains_key(&a.id) {
            return Err(("id", already(RecordKind::RoleAssignment, &a.id)));
        }
        self.expect_assignment_refs(&a.principal_id, &a.role_definition_id, &a.scope)?;
        self.index.add_grant(
            &a.scope,
            &a.principal_id,
            GrantSource::RoleAssignment { id: a.id.clone() },
            &a.role_definition_id,
            a.not_before,
            a.not_after,
        );
        self.role_assignments.insert(a.id.clone(), a.clone());
        Ok(())
    }

    fn remove_assignment(&mut self, id: &AssignmentId) -> Result<(), Problem> {
        let a = self
            .role_assignments
            .remove(id)
            .ok_or_else(|| not_found(RecordKind::RoleAssignment, id))?;
        self.index.remove_grant(
            &a.scope,
            &a.principal_id,
            &GrantSource::RoleAssignment { id: a.id.clone() },
        );
        Ok(())
    }

    fn add_eligible(&mut self, a: &EligibleRoleAssignment) -> Result<(), (&'static str, Problem)> {
        if self.eligible.contains_key(&a.id) {
            return Err(("id", already(RecordKind::EligibleRoleAssignment, &a.id)));
        }
        self.expect_assignment_refs(&a.principal_id, &a.role_definition_id, &a.scope)?;
        self.eligible.insert(a.id.clone(), a.clone());
        Ok(())
    }

    fn remove_eligible(&mut self, id: &AssignmentId) -> Result<(), Problem> {
        if !self.eligible.contains_key(id) {
            return Err(not_found(RecordKind::EligibleRoleAssignment, id));
        }
        let active: Vec<String> = self
            .activations
            .values()
            .filter(|a| &a.eligible_assignment_id == id)
            .map(|a| format!("role activation {}", a.id))
            .collect();
        in_use(active)?;
        self.eligible.remove(id);
        Ok(())
    }

    fn add_activation(&mut self, a: &RoleActivation) -> Result<(), (&'static str, Problem)> {
        if self.activations.contains_key(&a.id) {
            return Err(("id", already(RecordKind::RoleActivation, &a.id)));
        }
        let eligible = self
            .eligible
            .get(&a.eligible_assignment_id)
            .ok_or_else(|| {
                (
                    "eligibleAssignmentId",
                    not_found(
                        RecordKind::EligibleRoleAssignment,
                        &a.eligible_assignment_id,
                    ),
                )
            })?;
        self.expect_principals("principalId", std::iter::once(&a.principal_id))?;
        let not_before = eligible.not_before.map_or(a.start, |t| t.max(a.start));
        let not_after = eligible.not_after.map_or(a.end, |t| t.min(a.end));
        let (scope, role) = (eligible.scope.clone(), eligible.role_definition_id.clone());
        self.index.add_grant(
            &scope,
            &a.principal_id,
            activation_source(a),
            &role,
            Some(not_before),
            Some(not_after),
        );
        self.activations.insert(a.id.clone(), a.clone());
        Ok(())
    }

    fn remove_activation(&mut self, id: &AssignmentId) -> Result<(), Problem> {
        let a = self
            .activations
            .remove(id)
            .ok_or_else(|| not_found(RecordKind::RoleActivation, id))?;
        if let Some(eligible) = self.eligible.get(&a.eligible_assignment_id) {
            let scope = eligible.scope.clone();
            self.index
                .remove_grant(&scope, &a.principal_id, &activation_source(&a));
        }
        Ok(())
    }

    fn put_deny(&mut self, d: &DenyAssignment) -> Result<(), (&'static str, Problem)> {
        if !self.scope_exists(&d.scope) {
            return Err(("scope", not_found(RecordKind::Scope, &d.scope)));
        }
        if let crate::deny::DenyPrincipals::Listed(list) = &d.principals {
            self.expect_principals("principals", list.iter())?;
        }
        self.expect_principals("excludePrincipals", d.exclude_principals.iter())?;
        if let Some(old) = self.deny_assignments.get(&d.id) {
            let scope = old.scope.clone();
            self.index.remove_deny(&scope, &d.id);
        }
        self.index.put_deny(d);
        self.deny_assignments.insert(d.id.clone(), d.clone());
        Ok(())
    }

    fn delete_deny(&mut self, id: &AssignmentId) -> Result<(), Problem> {
        let d = self
            .deny_assignments
            .remove(id)
            .ok_or_else(|| not_found(RecordKind::DenyAssignment, id))?;
        self.index.remove_deny(&d.scope, id);
        Ok(())
    }

    fn delete_resource(&mut self, id: &Scope) -> Result<(), Problem> {
        if !self.scope_exists(id) || !is_resource(id.kind()) {
            return Err(not_found(record_kind_of(id.kind()), id));
        }
        let mut refs = self.resources_under(id);
        refs.extend(self.assignments_under(id));
        if matches!(
            id.kind(),
            ScopeKind::CommunityEndpoint | ScopeKind::EnclaveEndpoint
        ) {
            refs.extend(
                self.connections
                    .values()
                    .filter(|c| {
                        &c.destination_endpoint_id == id
                            && c.state != crate::network::ConnectionState::Disconnected
                    })
                    .map(|c| format!("{} (not Disconnected)", c.id)),
            );
        }
        in_use(refs)?;
        match id.kind() {
            ScopeKind::Community => {
                self.communities.remove(id);
                self.index
                    .set_derived(&managed(id).map_err(|(_, p)| p)?, None);
            }
            ScopeKind::VirtualEnclave => {
                self.enclaves.remove(id);
                self.index
                    .set_derived(&managed(id).map_err(|(_, p)| p)?, None);
            }
            ScopeKind::Workload => {
                self.workloads.remove(id);
                self.index.set_derived(id, None);
            }
            ScopeKind::CommunityEndpoint | ScopeKind::EnclaveEndpoint => {
                self.endpoints.remove(id);
            }
            ScopeKind::EnclaveConnection => {
                if let Some(c) = self.connections.remove(id) {
                    self.index.remove_connection(&c.source_resource_id, id);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn activation_source(a: &RoleActivation) -> GrantSource {
    GrantSource::Activation {
        id: a.id.clone(),
        eligible_assignment_id: a.eligible_assignment_id.clone(),
    }
}

fn already(what: RecordKind, id: impl ToString) -> Problem {
    Problem::AlreadyExists {
        what,
        id: id.to_string(),
    }
}

fn managed(owner: &Scope) -> Result<Scope, (&'static str, Problem)> {
    owner
        .join("managed")
        .map_err(|_| ("id", not_found(RecordKind::Scope, owner)))
}

fn is_resource(kind: ScopeKind) -> bool {
    !matches!(
        kind,
        ScopeKind::Root
            | ScopeKind::CommunityManaged
            | ScopeKind::EnclaveManaged
            | ScopeKind::Resource
    )
}
