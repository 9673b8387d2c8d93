//! From a command to events: who may (section 5), whether it is governed (section 6), and
//! what it changes, validated.

use std::collections::BTreeSet;

use crate::assignment::RoleActivation;
use crate::command::{ops, Command, ConnectionSpec};
use crate::event::Event;
use crate::ids::PrincipalId;
use crate::network::{Connection, ConnectionState};
use crate::operation::Operation;
use crate::principal::PrincipalType;
use crate::refusal::{Invalid, Problem, RecordKind, Refusal};
use crate::resources::{Community, VirtualEnclave};
use crate::rules::Mode;
use crate::scope::{Scope, ScopeKind};
use crate::state::{record_kind_of, PolicyState};
use crate::time::Timestamp;
use crate::workflow::Verdict;

/// An RBAC operation a command needs, and where.
type Need = (&'static str, Scope);

fn not_found(field: &str, what: RecordKind, id: &dyn ToString) -> Refusal {
    Refusal::Invalid(Invalid::at(
        field,
        Problem::NotFound {
            what,
            id: id.to_string(),
        },
    ))
}

fn wrong_kind(field: &str, scope: &Scope, expected: ScopeKind) -> Refusal {
    Refusal::Invalid(Invalid::at(
        field,
        Problem::WrongScopeKind {
            expected,
            found: scope.clone(),
            found_kind: scope.kind(),
        },
    ))
}

fn delete_op(kind: ScopeKind) -> Option<&'static str> {
    Some(match kind {
        ScopeKind::Community => ops::COMMUNITY_DELETE,
        ScopeKind::VirtualEnclave => ops::ENCLAVE_DELETE,
        ScopeKind::Workload => ops::WORKLOAD_DELETE,
        ScopeKind::EnclaveEndpoint => ops::ENCLAVE_ENDPOINT_DELETE,
        ScopeKind::CommunityEndpoint => ops::COMMUNITY_ENDPOINT_DELETE,
        ScopeKind::EnclaveConnection => ops::CONNECTION_DELETE,
        _ => return None,
    })
}

fn endpoint_write(scope: &Scope) -> &'static str {
    match scope.kind() {
        ScopeKind::CommunityEndpoint => ops::COMMUNITY_ENDPOINT_WRITE,
        _ => ops::ENCLAVE_ENDPOINT_WRITE,
    }
}

impl PolicyState {
    /// Runs a command for `actor` at time `at`: checks that the actor may (every operation
    /// the command needs, section 5), validates it against the state, and returns the events
    /// that carry it out, in the order to apply them. Nothing changes until the caller
    /// applies them. A governed operation whose settings require approvals is refused with
    /// [`Refusal::ApprovalRequired`] (the approval flow builds on that).
    ///
    /// `platform` is the engine itself: it needs no role and no approval. Verifying that a
    /// request really comes from `actor` is the caller's job.
    pub fn execute(
        &self,
        actor: &PrincipalId,
        command: &Command,
        at: Timestamp,
    ) -> Result<Vec<Event>, Refusal> {
        self.check_actor(actor)?;
        let outcome = match command {
            Command::Approve { id, comment } => {
                self.vote(actor, id, Verdict::Approve, comment.as_deref(), at)?
            }
            Command::Reject { id, comment } => {
                self.vote(actor, id, Verdict::Reject, comment.as_deref(), at)?
            }
            Command::DeleteApproval { id } => self.withdraw(actor, id, at)?,
            _ => {
                let events = self.authorize_and_plan(actor, command, at)?;
                if !actor.is_platform() {
                    if let Some(governance) = self.governance(command) {
                        if governance.required {
                            return Err(Refusal::ApprovalRequired(Box::new(governance)));
                        }
                    }
                }
                return Ok(events);
            }
        };
        Ok(outcome.events().cloned().collect())
    }

    /// Refuses actors that cannot act: unknown principals and groups (`platform` always can).
    pub(crate) fn check_actor(&self, actor: &PrincipalId) -> Result<(), Refusal> {
        if actor.is_platform() {
            return Ok(());
        }
        match self.principals.get(actor) {
            None => Err(Refusal::UnknownActor(actor.clone())),
            Some(p) if p.kind == PrincipalType::Group => {
                Err(Refusal::GroupCannotAct(actor.clone()))
            }
            Some(_) => Ok(()),
        }
    }

    /// Checks every RBAC operation the command needs (section 5), then validates it and
    /// builds its events. Governance is the caller's business.
    pub(crate) fn authorize_and_plan(
        &self,
        actor: &PrincipalId,
        command: &Command,
        at: Timestamp,
    ) -> Result<Vec<Event>, Refusal> {
        if !actor.is_platform() {
            for (operation, scope) in self.needs(actor, command)? {
                let op = Operation::trusted_action(operation);
                let decision = self.check(actor, &op, &scope, at);
                if !decision.allowed {
                    return Err(Refusal::NotAuthorized {
                        actor: actor.clone(),
                        operation: operation.to_owned(),
                        scope,
                        decision: Box::new(decision),
                    });
                }
            }
        }
        self.plan(actor, command, at)
    }

    /// The RBAC operations a command needs, each at its scope.
    fn needs(&self, actor: &PrincipalId, command: &Command) -> Result<Vec<Need>, Refusal> {
        let root = Scope::root;
        Ok(match command {
            Command::CreateCommunity { id, .. } | Command::UpdateCommunity { id, .. } => {
                vec![(ops::COMMUNITY_WRITE, id.clone())]
            }
            Command::CreateVirtualEnclave { id, .. } | Command::UpdateVirtualEnclave { id, .. } => {
                vec![(ops::ENCLAVE_WRITE, id.clone())]
            }
            Command::CreateWorkload(w) | Command::UpdateWorkload(w) => {
                vec![(ops::WORKLOAD_WRITE, w.id.clone())]
            }
            Command::CreateEndpoint(e) | Command::UpdateEndpoint(e) => {
                vec![(endpoint_write(&e.id), e.id.clone())]
            }
            Command::CreateConnection(c) | Command::UpdateConnection(c) => {
                vec![(ops::CONNECTION_WRITE, c.id.clone())]
            }
            Command::DeleteCommunity { id }
            | Command::DeleteVirtualEnclave { id }
            | Command::DeleteWorkload { id }
            | Command::DeleteEndpoint { id }
            | Command::DeleteConnection { id } => self
                .removal(id)
                .into_iter()
                .filter_map(|scope| Some((delete_op(scope.kind())?, scope)))
                .collect(),
            Command::SetMaintenanceMode { scope, .. } => match scope.kind() {
                ScopeKind::Community => vec![(ops::COMMUNITY_MAINTENANCE_WRITE, scope.clone())],
                ScopeKind::VirtualEnclave => vec![(ops::ENCLAVE_MAINTENANCE_WRITE, scope.clone())],
                _ => return Err(wrong_kind("scope", scope, ScopeKind::Community)),
            },
            Command::SetApprovalSettings { scope, .. } => match scope.kind() {
                ScopeKind::Community => {
                    vec![(ops::COMMUNITY_APPROVAL_SETTINGS_WRITE, scope.clone())]
                }
                ScopeKind::VirtualEnclave => {
                    vec![(ops::ENCLAVE_APPROVAL_SETTINGS_WRITE, scope.clone())]
                }
                _ => return Err(wrong_kind("scope", scope, ScopeKind::Community)),
            },
            Command::CreatePrincipal(_) | Command::UpdatePrincipal(_) => {
                vec![(ops::PRINCIPAL_WRITE, root())]
            }
            Command::DeletePrincipal { .. } => vec![(ops::PRINCIPAL_DELETE, root())],
            Command::AddGroupMember { .. } => vec![(ops::GROUP_MEMBER_WRITE, root())],
            Command::RemoveGroupMember { .. } => vec![(ops::GROUP_MEMBER_DELETE, root())],
            Command::DefineRole(role) => {
                // A redefinition changes what every existing assignment grants, so it needs
                // the right at the old assignable scopes as well as the new ones.
                let old = self.role_definitions.get(&role.id);
                let scopes: BTreeSet<&Scope> = role
                    .assignable_scopes
                    .iter()
                    .chain(old.into_iter().flat_map(|r| &r.assignable_scopes))
                    .collect();
                scopes
                    .into_iter()
                    .map(|s| (ops::ROLE_DEFINITION_WRITE, s.clone()))
                    .collect()
            }
            Command::DeleteRoleDefinition { id } => {
                let role = self
                    .role_definitions
                    .get(id)
                    .ok_or_else(|| not_found("id", RecordKind::RoleDefinition, id))?;
                role.assignable_scopes
                    .iter()
                    .map(|s| (ops::ROLE_DEFINITION_DELETE, s.clone()))
                    .collect()
            }
            Command::AssignRole(a) => vec![(ops::ROLE_ASSIGNMENT_WRITE, a.scope.clone())],
            Command::RemoveRoleAssignment { id } => {
                let a = self
                    .role_assignments
                    .get(id)
                    .ok_or_else(|| not_found("id", RecordKind::RoleAssignment, id))?;
                vec![(ops::ROLE_ASSIGNMENT_DELETE, a.scope.clone())]
            }
            Command::AssignEligibleRole(a) => vec![(ops::ROLE_ELIGIBILITY_WRITE, a.scope.clone())],
            Command::RemoveEligibleRole { id } => {
                let a = self
                    .eligible
                    .get(id)
                    .ok_or_else(|| not_found("id", RecordKind::EligibleRoleAssignment, id))?;
                vec![(ops::ROLE_ELIGIBILITY_DELETE, a.scope.clone())]
            }
            // Eligibility is checked when the activation is validated: no role is needed.
            Command::ActivateRole { .. } => Vec::new(),
            Command::DeactivateRole { id } => {
                let a = self
                    .activations
                    .get(id)
                    .ok_or_else(|| not_found("id", RecordKind::RoleActivation, id))?;
                match self.eligible.get(&a.eligible_assignment_id) {
                    Some(_) if &a.principal_id == actor => Vec::new(),
                    Some(e) => vec![(ops::ROLE_ASSIGNMENT_DELETE, e.scope.clone())],
                    None => Vec::new(),
                }
            }
            Command::CreateDenyAssignment(d) => vec![(ops::DENY_ASSIGNMENT_WRITE, d.scope.clone())],
            Command::DeleteDenyAssignment { id } => {
                let d = self
                    .deny_assignments
                    .get(id)
                    .ok_or_else(|| not_found("id", RecordKind::DenyAssignment, id))?;
                vec![(ops::DENY_ASSIGNMENT_DELETE, d.scope.clone())]
            }
            Command::AdmitImage { .. } => vec![(ops::IMAGE_WRITE, root())],
            Command::RetireImage { .. } => vec![(ops::IMAGE_DELETE, root())],
            Command::SetWitnesses(_) => vec![(ops::WITNESS_WRITE, root())],
            Command::Approve { .. } | Command::Reject { .. } | Command::DeleteApproval { .. } => {
                return Err(workflow_only(command))
            }
        })
    }

    /// Validates the command and builds its events.
    pub(crate) fn plan(
        &self,
        actor: &PrincipalId,
        command: &Command,
        at: Timestamp,
    ) -> Result<Vec<Event>, Refusal> {
        let one = |event| Ok(vec![event]);
        match command {
            Command::CreateCommunity { id, address_space } => {
                let community = Community {
                    id: id.clone(),
                    address_space: *address_space,
                    maintenance_mode_configuration: Default::default(),
                    approval_settings: Default::default(),
                };
                self.check_community(&community, Mode::Create)?;
                one(Event::CommunityPut(community))
            }
            Command::UpdateCommunity { id, address_space } => {
                let old = self
                    .communities
                    .get(id)
                    .ok_or_else(|| not_found("id", RecordKind::Community, id))?;
                let community = Community {
                    address_space: *address_space,
                    ..old.clone()
                };
                self.check_community(&community, Mode::Update)?;
                one(Event::CommunityPut(community))
            }
            Command::CreateVirtualEnclave { id, address_space } => {
                let enclave = VirtualEnclave {
                    id: id.clone(),
                    address_space: *address_space,
                    maintenance_mode_configuration: Default::default(),
                    approval_settings: Default::default(),
                };
                self.check_enclave(&enclave, Mode::Create)?;
                one(Event::VirtualEnclavePut(enclave))
            }
            Command::UpdateVirtualEnclave { id, address_space } => {
                let old = self
                    .enclaves
                    .get(id)
                    .ok_or_else(|| not_found("id", RecordKind::VirtualEnclave, id))?;
                let enclave = VirtualEnclave {
                    address_space: *address_space,
                    ..old.clone()
                };
                self.check_enclave(&enclave, Mode::Update)?;
                one(Event::VirtualEnclavePut(enclave))
            }
            Command::CreateWorkload(w) => {
                self.check_workload(w, Mode::Create)?;
                one(Event::WorkloadPut(w.clone()))
            }
            Command::UpdateWorkload(w) => {
                self.check_workload(w, Mode::Update)?;
                one(Event::WorkloadPut(w.clone()))
            }
            Command::CreateEndpoint(e) => {
                self.check_endpoint(e, Mode::Create)?;
                one(Event::EndpointPut(e.clone()))
            }
            Command::UpdateEndpoint(e) => {
                self.check_endpoint(e, Mode::Update)?;
                one(Event::EndpointPut(e.clone()))
            }
            Command::CreateConnection(spec) => {
                let connection = connection_of(spec);
                self.check_connection(&connection, Mode::Create)?;
                one(Event::ConnectionPut(connection))
            }
            Command::UpdateConnection(spec) => {
                let connection = connection_of(spec);
                self.check_connection(&connection, Mode::Update)?;
                one(Event::ConnectionPut(connection))
            }
            Command::DeleteCommunity { id }
            | Command::DeleteVirtualEnclave { id }
            | Command::DeleteWorkload { id }
            | Command::DeleteEndpoint { id }
            | Command::DeleteConnection { id } => {
                let expected = match command {
                    Command::DeleteCommunity { .. } => &[ScopeKind::Community][..],
                    Command::DeleteVirtualEnclave { .. } => &[ScopeKind::VirtualEnclave],
                    Command::DeleteWorkload { .. } => &[ScopeKind::Workload],
                    Command::DeleteEndpoint { .. } => {
                        &[ScopeKind::EnclaveEndpoint, ScopeKind::CommunityEndpoint]
                    }
                    _ => &[ScopeKind::EnclaveConnection],
                };
                if !expected.contains(&id.kind()) {
                    let first = expected.first().copied().unwrap_or(ScopeKind::Community);
                    return Err(wrong_kind("id", id, first));
                }
                if !self.scope_exists(id) {
                    return Err(not_found("id", record_kind_of(id.kind()), id));
                }
                Ok(self.removal_events(id, at))
            }
            Command::SetMaintenanceMode {
                scope,
                configuration,
            } => {
                if self.maintenance(scope).is_none() {
                    return Err(not_found("scope", record_kind_of(scope.kind()), scope));
                }
                self.check_maintenance(configuration)
                    .map_err(|e| e.under("configuration"))?;
                if let Some(expires_at) = configuration.expires_at {
                    if expires_at <= at {
                        return Err(Refusal::Invalid(Invalid::at(
                            "configuration.expiresAt",
                            Problem::ExpiryNotInFuture {
                                expires_at,
                                now: at,
                            },
                        )));
                    }
                }
                one(Event::MaintenanceModeSet {
                    scope: scope.clone(),
                    configuration: configuration.clone(),
                })
            }
            Command::SetApprovalSettings { scope, settings } => {
                if self.approval_settings(scope).is_none() {
                    return Err(not_found("scope", record_kind_of(scope.kind()), scope));
                }
                let enclave_level = scope.kind() == ScopeKind::VirtualEnclave;
                self.check_approval_settings(settings, enclave_level)
                    .map_err(|e| e.under("settings"))?;
                one(Event::ApprovalSettingsSet {
                    scope: scope.clone(),
                    settings: settings.clone(),
                })
            }
            Command::CreatePrincipal(p) => {
                self.check_principal(p, Mode::Create)?;
                one(Event::PrincipalPut(p.clone()))
            }
            Command::UpdatePrincipal(p) => {
                let old = self
                    .principals
                    .get(&p.id)
                    .ok_or_else(|| not_found("id", RecordKind::Principal, &p.id))?;
                if old.members != p.members {
                    return Err(Refusal::Invalid(Invalid::at(
                        "members",
                        Problem::MembersChangeThroughGroupCommands,
                    )));
                }
                self.check_principal(p, Mode::Update)?;
                one(Event::PrincipalPut(p.clone()))
            }
            Command::DeletePrincipal { id } => {
                let events = self.principal_removal(id, at)?;
                Ok(self.ending_lost_activations(events, at))
            }
            Command::AddGroupMember { group, member } => {
                self.check_membership(group, member, true)?;
                one(Event::GroupMemberAdded {
                    group: group.clone(),
                    member: member.clone(),
                })
            }
            Command::RemoveGroupMember { group, member } => {
                self.check_membership(group, member, false)?;
                let removed = vec![Event::GroupMemberRemoved {
                    group: group.clone(),
                    member: member.clone(),
                }];
                Ok(self.ending_lost_activations(removed, at))
            }
            Command::DefineRole(role) => {
                let mode = if self.role_definitions.contains_key(&role.id) {
                    Mode::Update
                } else {
                    Mode::Create
                };
                self.check_role_definition(role, mode)?;
                one(Event::RoleDefinitionPut(role.clone()))
            }
            Command::DeleteRoleDefinition { id } => {
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
                if !users.is_empty() {
                    return Err(Refusal::Invalid(Invalid::at("id", Problem::InUse(users))));
                }
                one(Event::RoleDefinitionDeleted { id: id.clone() })
            }
            Command::AssignRole(a) => {
                self.check_role_assignment(a)?;
                one(Event::RoleAssigned(a.clone()))
            }
            Command::RemoveRoleAssignment { id } => {
                if !self.role_assignments.contains_key(id) {
                    return Err(not_found("id", RecordKind::RoleAssignment, id));
                }
                one(Event::RoleAssignmentRemoved { id: id.clone() })
            }
            Command::AssignEligibleRole(a) => {
                self.check_eligible(a)?;
                one(Event::EligibleRoleAssigned(a.clone()))
            }
            Command::RemoveEligibleRole { id } => {
                if !self.eligible.contains_key(id) {
                    return Err(not_found("id", RecordKind::EligibleRoleAssignment, id));
                }
                let mut events: Vec<Event> = self
                    .activations
                    .values()
                    .filter(|a| &a.eligible_assignment_id == id)
                    .map(|a| Event::RoleActivationEnded {
                        id: a.id.clone(),
                        at,
                    })
                    .collect();
                events.push(Event::EligibleRoleAssignmentRemoved { id: id.clone() });
                Ok(events)
            }
            Command::ActivateRole {
                id,
                eligible_assignment_id,
                justification,
                duration_minutes,
            } => {
                let eligible = self.eligible.get(eligible_assignment_id).ok_or_else(|| {
                    not_found(
                        "eligibleAssignmentId",
                        RecordKind::EligibleRoleAssignment,
                        eligible_assignment_id,
                    )
                })?;
                let max = u64::from(eligible.max_activation_hours) * 60;
                let minutes = u64::from(*duration_minutes);
                if !(1..=max).contains(&minutes) {
                    return Err(Refusal::Invalid(Invalid::at(
                        "durationMinutes",
                        Problem::OutOfRange {
                            value: minutes,
                            min: 1,
                            max,
                        },
                    )));
                }
                let requested_end = at.checked_add_millis(i64::from(*duration_minutes) * 60_000);
                let end = match (requested_end, eligible.not_after) {
                    (Some(end), Some(limit)) => end.min(limit),
                    (Some(end), None) => end,
                    (None, Some(limit)) => limit,
                    (None, None) => {
                        return Err(Refusal::Invalid(Invalid::at(
                            "durationMinutes",
                            Problem::OutOfRange {
                                value: minutes,
                                min: 1,
                                max,
                            },
                        )))
                    }
                };
                let activation = RoleActivation {
                    id: id.clone(),
                    eligible_assignment_id: eligible_assignment_id.clone(),
                    principal_id: actor.clone(),
                    justification: justification.clone(),
                    start: at,
                    end,
                };
                self.check_activation(&activation)?;
                one(Event::RoleActivated(activation))
            }
            Command::DeactivateRole { id } => {
                if !self.activations.contains_key(id) {
                    return Err(not_found("id", RecordKind::RoleActivation, id));
                }
                one(Event::RoleActivationEnded { id: id.clone(), at })
            }
            Command::CreateDenyAssignment(d) => {
                self.check_deny(d)?;
                one(Event::DenyAssignmentPut(d.clone()))
            }
            Command::DeleteDenyAssignment { id } => {
                if !self.deny_assignments.contains_key(id) {
                    return Err(not_found("id", RecordKind::DenyAssignment, id));
                }
                one(Event::DenyAssignmentDeleted { id: id.clone() })
            }
            Command::AdmitImage { image } => {
                self.check_admission_command(image)?;
                one(Event::ImageAdmitted(crate::image::AdmittedImage {
                    pcrs: image.clone(),
                    admitted_at: Some(at),
                    approval_id: None,
                }))
            }
            Command::RetireImage { image } => {
                self.check_retirement(image)?;
                one(Event::ImageRetired {
                    pcrs: image.clone(),
                    at,
                    approval_id: None,
                })
            }
            // The set was checked as it was parsed (`WitnessSet` holds only valid sets).
            Command::SetWitnesses(set) => one(Event::WitnessesSet(set.clone())),
            Command::Approve { .. } | Command::Reject { .. } | Command::DeleteApproval { .. } => {
                Err(workflow_only(command))
            }
        }
    }
}

/// The approvals workflow decides these; they have no plan of their own.
fn workflow_only(command: &Command) -> Refusal {
    Refusal::Invalid(Invalid::at(
        "",
        Problem::WorkflowCommand(command.name().to_owned()),
    ))
}

/// The connection a spec asks for, Active.
pub(crate) fn connection_of(spec: &ConnectionSpec) -> Connection {
    Connection {
        id: spec.id.clone(),
        source_resource_id: spec.source_resource_id.clone(),
        source_cidr: spec.source_cidr,
        destination_endpoint_id: spec.destination_endpoint_id.clone(),
        state: ConnectionState::Active,
    }
}
