//! Events: the only way the state changes. Replaying a state's events from an empty state
//! rebuilds it exactly; the audit log stores them.

use serde::{Deserialize, Serialize};

use crate::approval::ApprovalSettings;
use crate::assignment::{EligibleRoleAssignment, RoleActivation, RoleAssignment};
use crate::deny::DenyAssignment;
use crate::ids::{ApprovalId, AssignmentId, PrincipalId, RoleId};
use crate::image::{AdmittedImage, ImagePcrs};
use crate::maintenance::MaintenanceModeConfiguration;
use crate::network::{Connection, ConnectionState, Endpoint};
use crate::principal::Principal;
use crate::resources::{Community, VirtualEnclave, Workload};
use crate::roles::RoleDefinition;
use crate::scope::Scope;
use crate::time::Timestamp;
use crate::workflow::{Approval, ApprovalStatus, ApprovalVote};

/// One change of the state. `...Put` events create or replace a whole record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Event {
    /// A principal was created or its name or keys changed.
    PrincipalPut(Principal),
    /// A principal was deleted.
    PrincipalDeleted {
        /// Which.
        id: PrincipalId,
    },
    /// `member` joined `group`.
    GroupMemberAdded {
        /// The group.
        group: PrincipalId,
        /// The new member.
        member: PrincipalId,
    },
    /// `member` left `group`.
    GroupMemberRemoved {
        /// The group.
        group: PrincipalId,
        /// The former member.
        member: PrincipalId,
    },
    /// A custom role was defined or redefined.
    RoleDefinitionPut(RoleDefinition),
    /// A custom role was deleted.
    RoleDefinitionDeleted {
        /// Which.
        id: RoleId,
    },
    /// A role was assigned.
    RoleAssigned(RoleAssignment),
    /// A role assignment was removed.
    RoleAssignmentRemoved {
        /// Which.
        id: AssignmentId,
    },
    /// A role was made eligible.
    EligibleRoleAssigned(EligibleRoleAssignment),
    /// An eligible assignment was removed.
    EligibleRoleAssignmentRemoved {
        /// Which.
        id: AssignmentId,
    },
    /// An eligible role was activated.
    RoleActivated(RoleActivation),
    /// An activation ended (its window closed, or it was ended early).
    RoleActivationEnded {
        /// Which.
        id: AssignmentId,
        /// When.
        at: Timestamp,
    },
    /// A deny assignment was created or replaced.
    DenyAssignmentPut(DenyAssignment),
    /// A deny assignment was deleted.
    DenyAssignmentDeleted {
        /// Which.
        id: AssignmentId,
    },
    /// A community was created or replaced.
    CommunityPut(Community),
    /// A community was deleted.
    CommunityDeleted {
        /// Which.
        id: Scope,
    },
    /// An enclave was created or replaced.
    VirtualEnclavePut(VirtualEnclave),
    /// An enclave was deleted.
    VirtualEnclaveDeleted {
        /// Which.
        id: Scope,
    },
    /// A workload was created or replaced.
    WorkloadPut(Workload),
    /// A workload was deleted.
    WorkloadDeleted {
        /// Which.
        id: Scope,
    },
    /// An endpoint was created or replaced.
    EndpointPut(Endpoint),
    /// An endpoint was deleted.
    EndpointDeleted {
        /// Which.
        id: Scope,
    },
    /// A connection was created or replaced.
    ConnectionPut(Connection),
    /// A connection's state changed.
    ConnectionStateChanged {
        /// Which.
        id: Scope,
        /// Its new state.
        state: ConnectionState,
    },
    /// A connection was deleted.
    ConnectionDeleted {
        /// Which.
        id: Scope,
    },
    /// A community's or enclave's maintenance mode was set.
    MaintenanceModeSet {
        /// The community or enclave.
        scope: Scope,
        /// The new configuration.
        configuration: MaintenanceModeConfiguration,
    },
    /// A maintenance mode reached its `expiresAt` and turned Off.
    MaintenanceModeExpired {
        /// The community or enclave.
        scope: Scope,
        /// When.
        at: Timestamp,
    },
    /// A community's or enclave's approval settings were set.
    ApprovalSettingsSet {
        /// The community or enclave.
        scope: Scope,
        /// The new settings.
        settings: ApprovalSettings,
    },
    /// A governed operation was submitted and waits for approvals (status Pending).
    ApprovalRequested(Box<Approval>),
    /// A vote on a pending approval was counted.
    ApprovalVoted {
        /// The approval.
        id: ApprovalId,
        /// The vote.
        vote: ApprovalVote,
    },
    /// A pending approval ended.
    ApprovalClosed {
        /// The approval.
        id: ApprovalId,
        /// Approved, Rejected, Expired, Deleted or Failed.
        status: ApprovalStatus,
        /// When.
        at: Timestamp,
        /// Why it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// An image was admitted to continue the log: by an approved `admitImage`, or (made by
    /// the ledger, never recorded as an event) the genesis image at the log's first start.
    ImageAdmitted(AdmittedImage),
    /// An admitted image was retired by an approved `retireImage`.
    ImageRetired {
        /// The image, as admitted.
        pcrs: ImagePcrs,
        /// When.
        at: Timestamp,
        /// The approval that retired it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        approval_id: Option<ApprovalId>,
    },
    /// An enclave of this image started on the log (its `enclave_start` record). Made by
    /// the ledger from that record, never recorded as an event: it is refused unless the
    /// image is admitted, and makes it the image writing the log.
    ImageStarted {
        /// The image its attestation document shows.
        pcrs: ImagePcrs,
    },
    /// The witness set was replaced by an approved `setWitnesses`.
    WitnessesSet(crate::witness::WitnessSet),
}

impl Event {
    /// The event's name, as in its JSON tag.
    pub fn name(&self) -> &'static str {
        match self {
            Event::PrincipalPut(_) => "principalPut",
            Event::PrincipalDeleted { .. } => "principalDeleted",
            Event::GroupMemberAdded { .. } => "groupMemberAdded",
            Event::GroupMemberRemoved { .. } => "groupMemberRemoved",
            Event::RoleDefinitionPut(_) => "roleDefinitionPut",
            Event::RoleDefinitionDeleted { .. } => "roleDefinitionDeleted",
            Event::RoleAssigned(_) => "roleAssigned",
            Event::RoleAssignmentRemoved { .. } => "roleAssignmentRemoved",
            Event::EligibleRoleAssigned(_) => "eligibleRoleAssigned",
            Event::EligibleRoleAssignmentRemoved { .. } => "eligibleRoleAssignmentRemoved",
            Event::RoleActivated(_) => "roleActivated",
            Event::RoleActivationEnded { .. } => "roleActivationEnded",
            Event::DenyAssignmentPut(_) => "denyAssignmentPut",
            Event::DenyAssignmentDeleted { .. } => "denyAssignmentDeleted",
            Event::CommunityPut(_) => "communityPut",
            Event::CommunityDeleted { .. } => "communityDeleted",
            Event::VirtualEnclavePut(_) => "virtualEnclavePut",
            Event::VirtualEnclaveDeleted { .. } => "virtualEnclaveDeleted",
            Event::WorkloadPut(_) => "workloadPut",
            Event::WorkloadDeleted { .. } => "workloadDeleted",
            Event::EndpointPut(_) => "endpointPut",
            Event::EndpointDeleted { .. } => "endpointDeleted",
            Event::ConnectionPut(_) => "connectionPut",
            Event::ConnectionStateChanged { .. } => "connectionStateChanged",
            Event::ConnectionDeleted { .. } => "connectionDeleted",
            Event::MaintenanceModeSet { .. } => "maintenanceModeSet",
            Event::MaintenanceModeExpired { .. } => "maintenanceModeExpired",
            Event::ApprovalSettingsSet { .. } => "approvalSettingsSet",
            Event::ApprovalRequested(_) => "approvalRequested",
            Event::ApprovalVoted { .. } => "approvalVoted",
            Event::ApprovalClosed { .. } => "approvalClosed",
            Event::ImageAdmitted(_) => "imageAdmitted",
            Event::ImageRetired { .. } => "imageRetired",
            Event::ImageStarted { .. } => "imageStarted",
            Event::WitnessesSet(_) => "witnessesSet",
        }
    }
}
