//! The policy state and how events change it.

use std::collections::BTreeMap;

use crate::approval::ApprovalSettings;
use crate::assignment::{EligibleRoleAssignment, RoleActivation, RoleAssignment};
use crate::deny::{DenyAssignment, DenyView, EffectiveDeny, ManagedOf};
use crate::ids::{ApprovalId, AssignmentId, PrincipalId, RoleId};
use crate::image::{AdmittedImage, ImagePcrs, RootApprovalSettings};
use crate::index::Index;
use crate::maintenance::MaintenanceModeConfiguration;
use crate::network::{Connection, Endpoint};
use crate::principal::Principal;
use crate::refusal::RecordKind;
use crate::resources::{Community, VirtualEnclave, Workload};
use crate::roles::RoleDefinition;
use crate::scope::{Scope, ScopeKind};
use crate::time::Timestamp;
use crate::workflow::Approval;

/// Everything the engine decides on: resources, principals, roles and assignments.
///
/// Changes come only through [`PolicyState::apply`] of [`crate::Event`]s, which
/// [`PolicyState::execute`] produces from commands; replaying the same events from
/// [`PolicyState::new`] gives an equal state. Equality compares the records, not the index.
#[derive(Debug, Clone, Default)]
pub struct PolicyState {
    pub(crate) principals: BTreeMap<PrincipalId, Principal>,
    pub(crate) role_definitions: BTreeMap<RoleId, RoleDefinition>,
    pub(crate) communities: BTreeMap<Scope, Community>,
    pub(crate) enclaves: BTreeMap<Scope, VirtualEnclave>,
    pub(crate) workloads: BTreeMap<Scope, Workload>,
    pub(crate) endpoints: BTreeMap<Scope, Endpoint>,
    pub(crate) connections: BTreeMap<Scope, Connection>,
    pub(crate) role_assignments: BTreeMap<AssignmentId, RoleAssignment>,
    pub(crate) eligible: BTreeMap<AssignmentId, EligibleRoleAssignment>,
    pub(crate) activations: BTreeMap<AssignmentId, RoleActivation>,
    pub(crate) deny_assignments: BTreeMap<AssignmentId, DenyAssignment>,
    pub(crate) approvals: BTreeMap<ApprovalId, Approval>,
    /// Images admitted to continue the log, by their PCRs.
    pub(crate) images: BTreeMap<ImagePcrs, AdmittedImage>,
    /// The image of the last `enclave_start` (reported by the ledger).
    pub(crate) running_image: Option<ImagePcrs>,
    /// `approvalSettings` at `/`: `imageChange`.
    pub(crate) root_approval_settings: RootApprovalSettings,
    /// The witnesses whose cosignatures the log requires, if any.
    pub(crate) witnesses: Option<crate::witness::WitnessSet>,
    pub(crate) index: Index,
}

impl PartialEq for PolicyState {
    fn eq(&self, other: &Self) -> bool {
        self.principals == other.principals
            && self.role_definitions == other.role_definitions
            && self.communities == other.communities
            && self.enclaves == other.enclaves
            && self.workloads == other.workloads
            && self.endpoints == other.endpoints
            && self.connections == other.connections
            && self.role_assignments == other.role_assignments
            && self.eligible == other.eligible
            && self.activations == other.activations
            && self.deny_assignments == other.deny_assignments
            && self.approvals == other.approvals
            && self.images == other.images
            && self.running_image == other.running_image
            && self.root_approval_settings == other.root_approval_settings
            && self.witnesses == other.witnesses
    }
}

impl Eq for PolicyState {}

/// Read access.
impl PolicyState {
    /// An empty state: no principals, no resources, the built-in roles.
    pub fn new() -> PolicyState {
        PolicyState::default()
    }

    /// A principal.
    pub fn principal(&self, id: &PrincipalId) -> Option<&Principal> {
        self.principals.get(id)
    }
    /// Every principal, by id.
    pub fn principals(&self) -> impl Iterator<Item = &Principal> {
        self.principals.values()
    }
    /// A role, built-in or custom.
    pub fn role(&self, id: &RoleId) -> Option<&RoleDefinition> {
        self.index.role(id)
    }
    /// Every custom role, by id.
    pub fn custom_roles(&self) -> impl Iterator<Item = &RoleDefinition> {
        self.role_definitions.values()
    }
    /// A community.
    pub fn community(&self, id: &Scope) -> Option<&Community> {
        self.communities.get(id)
    }
    /// Every community.
    pub fn communities(&self) -> impl Iterator<Item = &Community> {
        self.communities.values()
    }
    /// An enclave.
    pub fn enclave(&self, id: &Scope) -> Option<&VirtualEnclave> {
        self.enclaves.get(id)
    }
    /// Every enclave.
    pub fn enclaves(&self) -> impl Iterator<Item = &VirtualEnclave> {
        self.enclaves.values()
    }
    /// A workload.
    pub fn workload(&self, id: &Scope) -> Option<&Workload> {
        self.workloads.get(id)
    }
    /// Every workload.
    pub fn workloads(&self) -> impl Iterator<Item = &Workload> {
        self.workloads.values()
    }
    /// An endpoint of either kind.
    pub fn endpoint(&self, id: &Scope) -> Option<&Endpoint> {
        self.endpoints.get(id)
    }
    /// Every endpoint.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints.values()
    }
    /// A connection.
    pub fn connection(&self, id: &Scope) -> Option<&Connection> {
        self.connections.get(id)
    }
    /// Every connection.
    pub fn connections(&self) -> impl Iterator<Item = &Connection> {
        self.connections.values()
    }
    /// A role assignment.
    pub fn role_assignment(&self, id: &AssignmentId) -> Option<&RoleAssignment> {
        self.role_assignments.get(id)
    }
    /// Every role assignment.
    pub fn role_assignments(&self) -> impl Iterator<Item = &RoleAssignment> {
        self.role_assignments.values()
    }
    /// An eligible assignment.
    pub fn eligible_assignment(&self, id: &AssignmentId) -> Option<&EligibleRoleAssignment> {
        self.eligible.get(id)
    }
    /// Every eligible assignment.
    pub fn eligible_assignments(&self) -> impl Iterator<Item = &EligibleRoleAssignment> {
        self.eligible.values()
    }
    /// An activation.
    pub fn activation(&self, id: &AssignmentId) -> Option<&RoleActivation> {
        self.activations.get(id)
    }
    /// Every activation.
    pub fn activations(&self) -> impl Iterator<Item = &RoleActivation> {
        self.activations.values()
    }
    /// A custom deny assignment.
    pub fn deny_assignment(&self, id: &AssignmentId) -> Option<&DenyAssignment> {
        self.deny_assignments.get(id)
    }
    /// Every custom deny assignment.
    pub fn deny_assignments(&self) -> impl Iterator<Item = &DenyAssignment> {
        self.deny_assignments.values()
    }

    /// Every deny assignment in force at `at`: the custom ones, the two on every managed
    /// group shaped by its maintenance mode, and one per protected workload.
    pub fn effective_deny_assignments(&self, at: Timestamp) -> Vec<EffectiveDeny> {
        let mut all: Vec<EffectiveDeny> = self
            .deny_assignments
            .values()
            .map(|d| DenyView::custom(d).to_effective(d.scope.clone()))
            .collect();
        let managed = self
            .communities
            .values()
            .map(|c| {
                (
                    &c.id,
                    ManagedOf::Community,
                    &c.maintenance_mode_configuration,
                )
            })
            .chain(
                self.enclaves
                    .values()
                    .map(|e| (&e.id, ManagedOf::Enclave, &e.maintenance_mode_configuration)),
            );
        for (owner, of, config) in managed {
            if let Ok(group) = owner.join("managed") {
                for view in DenyView::managed_group(of, config, at) {
                    all.push(view.to_effective(group.clone()));
                }
            }
        }
        for workload in self.workloads.values().filter(|w| w.protected) {
            all.push(
                DenyView::protected_workload(&workload.privileged_principals)
                    .to_effective(workload.id.clone()),
            );
        }
        all.sort_by(|a, b| (&a.scope, a.kind, &a.id).cmp(&(&b.scope, b.kind, &b.id)));
        all
    }

    /// The principal and every group it belongs to, directly or through nested groups.
    pub fn groups_closure(&self, principal: &PrincipalId) -> Vec<PrincipalId> {
        self.index.closure(principal)
    }

    /// Whether the scope designates something that exists: the root, a stored resource, a
    /// managed group of a stored community or enclave, or anything below a managed group or
    /// workload that exists.
    pub fn scope_exists(&self, scope: &Scope) -> bool {
        match scope.kind() {
            ScopeKind::Root => true,
            ScopeKind::Community => self.communities.contains_key(scope),
            ScopeKind::VirtualEnclave => self.enclaves.contains_key(scope),
            ScopeKind::Workload => self.workloads.contains_key(scope),
            ScopeKind::CommunityEndpoint | ScopeKind::EnclaveEndpoint => {
                self.endpoints.contains_key(scope)
            }
            ScopeKind::EnclaveConnection => self.connections.contains_key(scope),
            ScopeKind::CommunityManaged | ScopeKind::EnclaveManaged | ScopeKind::Resource => scope
                .parent()
                .is_some_and(|parent| self.scope_exists(&parent)),
        }
    }

    /// The maintenance configuration that shapes the deny assignments of a managed group.
    pub(crate) fn maintenance_of_managed(
        &self,
        managed: &Scope,
    ) -> Option<&MaintenanceModeConfiguration> {
        let owner = managed.as_str().strip_suffix("/managed")?;
        match managed.kind() {
            ScopeKind::CommunityManaged => self
                .communities
                .get(owner)
                .map(|c| &c.maintenance_mode_configuration),
            ScopeKind::EnclaveManaged => self
                .enclaves
                .get(owner)
                .map(|e| &e.maintenance_mode_configuration),
            _ => None,
        }
    }

    /// The maintenance configuration of a community or enclave.
    pub fn maintenance(&self, scope: &Scope) -> Option<&MaintenanceModeConfiguration> {
        match scope.kind() {
            ScopeKind::Community => self
                .communities
                .get(scope)
                .map(|c| &c.maintenance_mode_configuration),
            ScopeKind::VirtualEnclave => self
                .enclaves
                .get(scope)
                .map(|e| &e.maintenance_mode_configuration),
            _ => None,
        }
    }

    /// The approval settings of a community or enclave.
    pub fn approval_settings(&self, scope: &Scope) -> Option<&ApprovalSettings> {
        match scope.kind() {
            ScopeKind::Community => self.communities.get(scope).map(|c| &c.approval_settings),
            ScopeKind::VirtualEnclave => self.enclaves.get(scope).map(|e| &e.approval_settings),
            _ => None,
        }
    }
}

pub(crate) fn record_kind_of(kind: ScopeKind) -> RecordKind {
    match kind {
        ScopeKind::Community => RecordKind::Community,
        ScopeKind::VirtualEnclave => RecordKind::VirtualEnclave,
        ScopeKind::Workload => RecordKind::Workload,
        ScopeKind::CommunityEndpoint | ScopeKind::EnclaveEndpoint => RecordKind::Endpoint,
        ScopeKind::EnclaveConnection => RecordKind::Connection,
        _ => RecordKind::Scope,
    }
}
