//! Commands: what principals ask the engine to change, and the RBAC operation each needs.

use serde::{Deserialize, Serialize};

use crate::approval::ApprovalSettings;
use crate::assignment::{EligibleRoleAssignment, RoleAssignment};
use crate::cidr::Cidr;
use crate::deny::DenyAssignment;
use crate::ids::{ApprovalId, AssignmentId, PrincipalId, RoleId};
use crate::image::ImagePcrs;
use crate::maintenance::MaintenanceModeConfiguration;
use crate::network::Endpoint;
use crate::principal::Principal;
use crate::resources::Workload;
use crate::roles::RoleDefinition;
use crate::scope::Scope;

/// The operations commands are checked against (section 6's table, plus ours for the
/// directory, approval settings and assignments).
pub mod ops {
    /// Create or update a community.
    pub const COMMUNITY_WRITE: &str = "Microsoft.Mission/communities/write";
    /// Delete a community.
    pub const COMMUNITY_DELETE: &str = "Microsoft.Mission/communities/delete";
    /// Create or update an enclave.
    pub const ENCLAVE_WRITE: &str = "Microsoft.Mission/virtualEnclaves/write";
    /// Delete an enclave.
    pub const ENCLAVE_DELETE: &str = "Microsoft.Mission/virtualEnclaves/delete";
    /// Create or update a workload.
    pub const WORKLOAD_WRITE: &str = "Microsoft.Mission/virtualEnclaves/workloads/write";
    /// Delete a workload.
    pub const WORKLOAD_DELETE: &str = "Microsoft.Mission/virtualEnclaves/workloads/delete";
    /// Create or change an enclave endpoint.
    pub const ENCLAVE_ENDPOINT_WRITE: &str =
        "Microsoft.Mission/virtualEnclaves/enclaveEndpoints/write";
    /// Delete an enclave endpoint.
    pub const ENCLAVE_ENDPOINT_DELETE: &str =
        "Microsoft.Mission/virtualEnclaves/enclaveEndpoints/delete";
    /// Create or change a community endpoint.
    pub const COMMUNITY_ENDPOINT_WRITE: &str =
        "Microsoft.Mission/communities/communityEndpoints/write";
    /// Delete a community endpoint.
    pub const COMMUNITY_ENDPOINT_DELETE: &str =
        "Microsoft.Mission/communities/communityEndpoints/delete";
    /// Create or update a connection.
    pub const CONNECTION_WRITE: &str = "Microsoft.Mission/enclaveConnections/write";
    /// Delete a connection.
    pub const CONNECTION_DELETE: &str = "Microsoft.Mission/enclaveConnections/delete";
    /// Change a community's maintenance mode.
    pub const COMMUNITY_MAINTENANCE_WRITE: &str =
        "Microsoft.Mission/communities/maintenanceMode/write";
    /// Change an enclave's maintenance mode.
    pub const ENCLAVE_MAINTENANCE_WRITE: &str =
        "Microsoft.Mission/virtualEnclaves/maintenanceMode/write";
    /// Change a community's approval settings.
    pub const COMMUNITY_APPROVAL_SETTINGS_WRITE: &str =
        "Microsoft.Mission/communities/approvalSettings/write";
    /// Change an enclave's approval settings.
    pub const ENCLAVE_APPROVAL_SETTINGS_WRITE: &str =
        "Microsoft.Mission/virtualEnclaves/approvalSettings/write";
    /// Assign a role.
    pub const ROLE_ASSIGNMENT_WRITE: &str = "Microsoft.Authorization/roleAssignments/write";
    /// Remove a role assignment (or end someone else's activation).
    pub const ROLE_ASSIGNMENT_DELETE: &str = "Microsoft.Authorization/roleAssignments/delete";
    /// Make a role eligible.
    pub const ROLE_ELIGIBILITY_WRITE: &str =
        "Microsoft.Authorization/roleEligibilitySchedules/write";
    /// Remove an eligible assignment.
    pub const ROLE_ELIGIBILITY_DELETE: &str =
        "Microsoft.Authorization/roleEligibilitySchedules/delete";
    /// Define a custom role (at each of its assignable scopes).
    pub const ROLE_DEFINITION_WRITE: &str = "Microsoft.Authorization/roleDefinitions/write";
    /// Delete a custom role (at each of its assignable scopes).
    pub const ROLE_DEFINITION_DELETE: &str = "Microsoft.Authorization/roleDefinitions/delete";
    /// Create a deny assignment.
    pub const DENY_ASSIGNMENT_WRITE: &str = "Microsoft.Authorization/denyAssignments/write";
    /// Delete a deny assignment.
    pub const DENY_ASSIGNMENT_DELETE: &str = "Microsoft.Authorization/denyAssignments/delete";
    /// Create or change a principal (at `/`). Under Authorization: membership and keys are
    /// authority, so Contributor's `Microsoft.Authorization/*/write` exclusion covers them.
    pub const PRINCIPAL_WRITE: &str = "Microsoft.Authorization/principals/write";
    /// Delete a principal (at `/`).
    pub const PRINCIPAL_DELETE: &str = "Microsoft.Authorization/principals/delete";
    /// Admit an enclave image to continue the log (at `/`; governed: `imageChange`).
    pub const IMAGE_WRITE: &str = "Microsoft.Mission/enclaveImages/write";
    /// Retire an admitted enclave image (at `/`; governed: `imageChange`).
    pub const IMAGE_DELETE: &str = "Microsoft.Mission/enclaveImages/delete";
    /// Replace the witness set (at `/`; governed: `witnessChange`).
    pub const WITNESS_WRITE: &str = "Microsoft.Mission/witnesses/write";
    /// Add a group member (at `/`).
    pub const GROUP_MEMBER_WRITE: &str = "Microsoft.Authorization/groups/members/write";
    /// Remove a group member (at `/`).
    pub const GROUP_MEMBER_DELETE: &str = "Microsoft.Authorization/groups/members/delete";
}

/// A change a principal asks for. Create commands refuse an existing id, update commands a
/// missing one; deletes cascade (section "Deletion" of docs/policy-state.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Command {
    /// Create a community.
    CreateCommunity {
        /// `/communities/{c}`.
        id: Scope,
        /// Its address space.
        address_space: Cidr,
    },
    /// Change a community's address space (it must still hold every enclave).
    UpdateCommunity {
        /// Which.
        id: Scope,
        /// The new address space.
        address_space: Cidr,
    },
    /// Delete a community and everything in it.
    DeleteCommunity {
        /// Which.
        id: Scope,
    },
    /// Create an enclave (governed: `enclaveCreation`).
    CreateVirtualEnclave {
        /// `/communities/{c}/virtualEnclaves/{e}`.
        id: Scope,
        /// Inside the community's, clear of the other enclaves'.
        address_space: Cidr,
    },
    /// Change an enclave's address space.
    UpdateVirtualEnclave {
        /// Which.
        id: Scope,
        /// The new address space.
        address_space: Cidr,
    },
    /// Delete an enclave and everything in it.
    DeleteVirtualEnclave {
        /// Which.
        id: Scope,
    },
    /// Create a workload.
    CreateWorkload(Workload),
    /// Replace a workload's settings.
    UpdateWorkload(Workload),
    /// Delete a workload.
    DeleteWorkload {
        /// Which.
        id: Scope,
    },
    /// Create an enclave or community endpoint (governed).
    CreateEndpoint(Endpoint),
    /// Replace an endpoint's rules and approvers (governed).
    UpdateEndpoint(Endpoint),
    /// Delete an endpoint; its connections become Disconnected.
    DeleteEndpoint {
        /// Which.
        id: Scope,
    },
    /// Create a connection (governed: `connectionCreation` and endpoint approvers).
    CreateConnection(ConnectionSpec),
    /// Change a connection (governed: `connectionUpdate` and endpoint approvers); it becomes
    /// Active again.
    UpdateConnection(ConnectionSpec),
    /// Delete a connection.
    DeleteConnection {
        /// Which.
        id: Scope,
    },
    /// Set a community's or enclave's maintenance mode (governed).
    SetMaintenanceMode {
        /// The community or enclave.
        scope: Scope,
        /// The configuration.
        configuration: MaintenanceModeConfiguration,
    },
    /// Set a community's or enclave's approval settings.
    SetApprovalSettings {
        /// The community or enclave.
        scope: Scope,
        /// The settings.
        settings: ApprovalSettings,
    },
    /// Create a principal.
    CreatePrincipal(Principal),
    /// Change a principal's name or keys (members change through the group commands).
    UpdatePrincipal(Principal),
    /// Delete a principal that nothing refers to any more; its assignments and memberships
    /// go with it.
    DeletePrincipal {
        /// Which.
        id: PrincipalId,
    },
    /// Add a member to a group.
    AddGroupMember {
        /// The group.
        group: PrincipalId,
        /// The new member.
        member: PrincipalId,
    },
    /// Remove a member from a group.
    RemoveGroupMember {
        /// The group.
        group: PrincipalId,
        /// The member.
        member: PrincipalId,
    },
    /// Define or redefine a custom role.
    DefineRole(RoleDefinition),
    /// Delete a custom role that no assignment uses.
    DeleteRoleDefinition {
        /// Which.
        id: RoleId,
    },
    /// Assign a role.
    AssignRole(RoleAssignment),
    /// Remove a role assignment.
    RemoveRoleAssignment {
        /// Which.
        id: AssignmentId,
    },
    /// Make a role eligible.
    AssignEligibleRole(EligibleRoleAssignment),
    /// Remove an eligible assignment (ending its activations).
    RemoveEligibleRole {
        /// Which.
        id: AssignmentId,
    },
    /// Activate an eligible role for oneself (governed: `roleActivation`).
    ActivateRole {
        /// The new activation's id.
        id: AssignmentId,
        /// The eligible assignment.
        eligible_assignment_id: AssignmentId,
        /// Why.
        justification: String,
        /// For how long, at most the assignment's `maxActivationHours`.
        duration_minutes: u32,
    },
    /// End an activation early.
    DeactivateRole {
        /// Which.
        id: AssignmentId,
    },
    /// Create a deny assignment.
    CreateDenyAssignment(DenyAssignment),
    /// Delete a deny assignment.
    DeleteDenyAssignment {
        /// Which.
        id: AssignmentId,
    },
    /// Approve a pending approval (the data action `approvals/approve/action` at its
    /// target).
    Approve {
        /// Which approval.
        id: ApprovalId,
        /// Why, optionally.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// Reject a pending approval (`approvals/reject/action`); one valid rejection ends it.
    Reject {
        /// Which approval.
        id: ApprovalId,
        /// Why, optionally.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// Withdraw a pending approval (its requester, or an owner of its target).
    DeleteApproval {
        /// Which approval.
        id: ApprovalId,
    },
    /// Admit an enclave image: once approved, an enclave of this image may continue the
    /// log with its own log key (governed: `imageChange`, approvers Owner at `/`).
    AdmitImage {
        /// The image's PCRs.
        image: ImagePcrs,
    },
    /// Retire an admitted image: no enclave of it may start on the log again (governed:
    /// `imageChange`). Neither the last admitted image nor the one writing the log.
    RetireImage {
        /// The image's PCRs, as admitted.
        image: ImagePcrs,
    },
    /// Replace the witness set: the witnesses whose cosignatures the enclave requires
    /// before it serves, and auditors before they trust a checkpoint (governed:
    /// `witnessChange`, approvers Owner at `/`).
    SetWitnesses(crate::witness::WitnessSet),
}

impl Command {
    /// The command's name, as in its JSON tag.
    pub fn name(&self) -> &'static str {
        match self {
            Command::CreateCommunity { .. } => "createCommunity",
            Command::UpdateCommunity { .. } => "updateCommunity",
            Command::DeleteCommunity { .. } => "deleteCommunity",
            Command::CreateVirtualEnclave { .. } => "createVirtualEnclave",
            Command::UpdateVirtualEnclave { .. } => "updateVirtualEnclave",
            Command::DeleteVirtualEnclave { .. } => "deleteVirtualEnclave",
            Command::CreateWorkload(_) => "createWorkload",
            Command::UpdateWorkload(_) => "updateWorkload",
            Command::DeleteWorkload { .. } => "deleteWorkload",
            Command::CreateEndpoint(_) => "createEndpoint",
            Command::UpdateEndpoint(_) => "updateEndpoint",
            Command::DeleteEndpoint { .. } => "deleteEndpoint",
            Command::CreateConnection(_) => "createConnection",
            Command::UpdateConnection(_) => "updateConnection",
            Command::DeleteConnection { .. } => "deleteConnection",
            Command::SetMaintenanceMode { .. } => "setMaintenanceMode",
            Command::SetApprovalSettings { .. } => "setApprovalSettings",
            Command::CreatePrincipal(_) => "createPrincipal",
            Command::UpdatePrincipal(_) => "updatePrincipal",
            Command::DeletePrincipal { .. } => "deletePrincipal",
            Command::AddGroupMember { .. } => "addGroupMember",
            Command::RemoveGroupMember { .. } => "removeGroupMember",
            Command::DefineRole(_) => "defineRole",
            Command::DeleteRoleDefinition { .. } => "deleteRoleDefinition",
            Command::AssignRole(_) => "assignRole",
            Command::RemoveRoleAssignment { .. } => "removeRoleAssignment",
            Command::AssignEligibleRole(_) => "assignEligibleRole",
            Command::RemoveEligibleRole { .. } => "removeEligibleRole",
            Command::ActivateRole { .. } => "activateRole",
            Command::DeactivateRole { .. } => "deactivateRole",
            Command::CreateDenyAssignment(_) => "createDenyAssignment",
            Command::DeleteDenyAssignment { .. } => "deleteDenyAssignment",
            Command::Approve { .. } => "approve",
            Command::Reject { .. } => "reject",
            Command::DeleteApproval { .. } => "deleteApproval",
            Command::AdmitImage { .. } => "admitImage",
            Command::RetireImage { .. } => "retireImage",
            Command::SetWitnesses(_) => "setWitnesses",
        }
    }
}

/// A connection as requested (its state is the engine's to set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionSpec {
    /// `/communities/{c}/enclaveConnections/{n}`.
    pub id: Scope,
    /// The source enclave.
    pub source_resource_id: Scope,
    /// Addresses of the source enclave it carries.
    pub source_cidr: Cidr,
    /// The destination endpoint.
    pub destination_endpoint_id: Scope,
}
