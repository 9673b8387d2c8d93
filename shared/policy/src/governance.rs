//! Which commands are governed operations (SPEC-policy section 6) and what their approval
//! settings require.

use crate::approval::{ApprovalKey, Governance};
use crate::command::Command;
use crate::scope::ScopeKind;
use crate::state::PolicyState;

impl PolicyState {
    /// Whether and how a command is governed (section 6): the key, the combined settings of
    /// the community and (for enclave-level keys) the enclave, and endpoint approvers
    /// (section 6.1). `None` for operations that are never governed.
    pub fn governance(&self, command: &Command) -> Option<Governance> {
        let (key, target, enclave, endpoint) = match command {
            Command::CreateVirtualEnclave { id, .. } => {
                (ApprovalKey::EnclaveCreation, id.clone(), None, None)
            }
            Command::CreateConnection(c) => (
                ApprovalKey::ConnectionCreation,
                c.id.clone(),
                Some(c.source_resource_id.clone()),
                Some(&c.destination_endpoint_id),
            ),
            Command::UpdateConnection(c) => (
                ApprovalKey::ConnectionUpdate,
                c.id.clone(),
                Some(c.source_resource_id.clone()),
                Some(&c.destination_endpoint_id),
            ),
            Command::CreateEndpoint(e) | Command::UpdateEndpoint(e) => match e.id.kind() {
                ScopeKind::CommunityEndpoint => (
                    ApprovalKey::CommunityEndpointUpdate,
                    e.id.clone(),
                    None,
                    None,
                ),
                _ => (
                    ApprovalKey::EnclaveEndpointUpdate,
                    e.id.clone(),
                    e.id.enclave(),
                    None,
                ),
            },
            Command::SetMaintenanceMode { scope, .. } => match scope.kind() {
                ScopeKind::Community => (
                    ApprovalKey::CommunityMaintenanceMode,
                    scope.clone(),
                    None,
                    None,
                ),
                _ => (
                    ApprovalKey::EnclaveMaintenanceMode,
                    scope.clone(),
                    Some(scope.clone()),
                    None,
                ),
            },
            Command::ActivateRole {
                eligible_assignment_id,
                ..
            } => {
                let eligible = self.eligible.get(eligible_assignment_id)?;
                (
                    ApprovalKey::RoleActivation,
                    eligible.scope.clone(),
                    None,
                    None,
                )
            }
            Command::AdmitImage { .. } | Command::RetireImage { .. } => {
                let setting = self.root_approval_settings.image_change();
                return Some(Governance::combine(
                    ApprovalKey::ImageChange,
                    crate::scope::Scope::root(),
                    [&setting],
                    Default::default(),
                ));
            }
            Command::SetWitnesses(_) => {
                let setting = self.root_approval_settings.witness_change();
                return Some(Governance::combine(
                    ApprovalKey::WitnessChange,
                    crate::scope::Scope::root(),
                    [&setting],
                    Default::default(),
                ));
            }
            _ => return None,
        };
        let community = target.community().and_then(|c| self.communities.get(&c));
        let enclave = enclave.and_then(|e| self.enclaves.get(&e));
        let settings = community
            .and_then(|c| c.approval_settings.get(key))
            .into_iter()
            .chain(enclave.and_then(|e| e.approval_settings.get(key)));
        let endpoint_approvers = endpoint
            .and_then(|e| self.endpoints.get(e))
            .map(|e| e.approvers.clone())
            .unwrap_or_default();
        Some(Governance::combine(
            key,
            target,
            settings,
            endpoint_approvers,
        ))
    }
}
