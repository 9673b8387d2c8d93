//! Approval settings (SPEC-policy section 6) as state: which governed operations need
//! approvals, how many and from whom. The approval flow itself reads these.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::PrincipalId;
use crate::scope::Scope;

/// A governed operation's key in `approvalSettings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ApprovalKey {
    /// Create an enclave.
    EnclaveCreation,
    /// Create a connection.
    ConnectionCreation,
    /// Update a connection.
    ConnectionUpdate,
    /// Create or change an enclave endpoint.
    EnclaveEndpointUpdate,
    /// Create or change a community endpoint.
    CommunityEndpointUpdate,
    /// Change a community's maintenance mode.
    CommunityMaintenanceMode,
    /// Change an enclave's maintenance mode.
    EnclaveMaintenanceMode,
    /// Activate an eligible role.
    RoleActivation,
    /// Admit or retire an enclave image (at `/`; approvers must hold Owner at `/`).
    ImageChange,
    /// Replace the witness set (at `/`; approvers must hold Owner at `/`).
    WitnessChange,
}

impl ApprovalKey {
    /// Whether an enclave's own `approvalSettings` may carry this key.
    pub fn is_enclave_level(self) -> bool {
        matches!(
            self,
            ApprovalKey::ConnectionCreation
                | ApprovalKey::ConnectionUpdate
                | ApprovalKey::EnclaveEndpointUpdate
                | ApprovalKey::EnclaveMaintenanceMode
        )
    }

    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalKey::EnclaveCreation => "enclaveCreation",
            ApprovalKey::ConnectionCreation => "connectionCreation",
            ApprovalKey::ConnectionUpdate => "connectionUpdate",
            ApprovalKey::EnclaveEndpointUpdate => "enclaveEndpointUpdate",
            ApprovalKey::CommunityEndpointUpdate => "communityEndpointUpdate",
            ApprovalKey::CommunityMaintenanceMode => "communityMaintenanceMode",
            ApprovalKey::EnclaveMaintenanceMode => "enclaveMaintenanceMode",
            ApprovalKey::RoleActivation => "roleActivation",
            ApprovalKey::ImageChange => "imageChange",
            ApprovalKey::WitnessChange => "witnessChange",
        }
    }

    /// Every key a community or enclave may carry, in order (`imageChange` and `witnessChange` live at
    /// `/`).
    pub const ALL: [ApprovalKey; 8] = [
        ApprovalKey::EnclaveCreation,
        ApprovalKey::ConnectionCreation,
        ApprovalKey::ConnectionUpdate,
        ApprovalKey::EnclaveEndpointUpdate,
        ApprovalKey::CommunityEndpointUpdate,
        ApprovalKey::CommunityMaintenanceMode,
        ApprovalKey::EnclaveMaintenanceMode,
        ApprovalKey::RoleActivation,
    ];
}

impl fmt::Display for ApprovalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether approvals are needed.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum ApprovalPolicy {
    /// Approvals are needed.
    Required,
    /// The change applies at once.
    #[default]
    NotRequired,
}

fn one() -> u32 {
    1
}

/// One governed operation's setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalSetting {
    /// Required or not.
    pub approval_policy: ApprovalPolicy,
    /// Distinct valid approvals needed (at least 1).
    #[serde(default = "one")]
    pub minimum_approvers_required: u32,
    /// Principals or groups that must each approve (a group: any one member).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub mandatory_approvers: BTreeSet<PrincipalId>,
}

/// The most approvers a setting may require; more could never be gathered in practice.
pub const MAX_MINIMUM_APPROVERS: u32 = 100;

/// `approvalSettings` of a community (every key) or an enclave (the enclave-level keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalSettings {
    /// Create an enclave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enclave_creation: Option<ApprovalSetting>,
    /// Create a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_creation: Option<ApprovalSetting>,
    /// Update a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_update: Option<ApprovalSetting>,
    /// Create or change an enclave endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enclave_endpoint_update: Option<ApprovalSetting>,
    /// Create or change a community endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub community_endpoint_update: Option<ApprovalSetting>,
    /// Change a community's maintenance mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub community_maintenance_mode: Option<ApprovalSetting>,
    /// Change an enclave's maintenance mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enclave_maintenance_mode: Option<ApprovalSetting>,
    /// Activate an eligible role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_activation: Option<ApprovalSetting>,
    /// How long a pending approval lives, in hours (community only; 7 days when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_lifetime_hours: Option<u32>,
}

/// Default lifetime of a pending approval (section 6, step 7).
pub const DEFAULT_APPROVAL_LIFETIME_HOURS: u32 = 7 * 24;

impl ApprovalSettings {
    /// The setting for `key`, if any.
    pub fn get(&self, key: ApprovalKey) -> Option<&ApprovalSetting> {
        match key {
            ApprovalKey::EnclaveCreation => self.enclave_creation.as_ref(),
            ApprovalKey::ConnectionCreation => self.connection_creation.as_ref(),
            ApprovalKey::ConnectionUpdate => self.connection_update.as_ref(),
            ApprovalKey::EnclaveEndpointUpdate => self.enclave_endpoint_update.as_ref(),
            ApprovalKey::CommunityEndpointUpdate => self.community_endpoint_update.as_ref(),
            ApprovalKey::CommunityMaintenanceMode => self.community_maintenance_mode.as_ref(),
            ApprovalKey::EnclaveMaintenanceMode => self.enclave_maintenance_mode.as_ref(),
            ApprovalKey::RoleActivation => self.role_activation.as_ref(),
            ApprovalKey::ImageChange | ApprovalKey::WitnessChange => None,
        }
    }

    /// Every key that has a setting, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (ApprovalKey, &ApprovalSetting)> {
        ApprovalKey::ALL
            .into_iter()
            .filter_map(|key| Some((key, self.get(key)?)))
    }
}

/// What a governed operation needs, combining the community's setting, the enclave's
/// (which can only tighten it) and the endpoint's approvers (section 6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Governance {
    /// The governed operation.
    pub key: ApprovalKey,
    /// The resource it changes (where the RBAC operation is checked).
    pub target: Scope,
    /// Whether approvals are needed at all.
    pub required: bool,
    /// Distinct approvals needed (0 when not required by the settings).
    pub minimum_approvers_required: u32,
    /// Who must each approve.
    pub mandatory_approvers: BTreeSet<PrincipalId>,
    /// One approval from these is also needed (endpoint approvers, section 6.1).
    pub endpoint_approvers: BTreeSet<PrincipalId>,
}

impl Governance {
    /// Folds the settings that apply, community first; a later one can only tighten.
    pub(crate) fn combine<'a>(
        key: ApprovalKey,
        target: Scope,
        settings: impl IntoIterator<Item = &'a ApprovalSetting>,
        endpoint_approvers: BTreeSet<PrincipalId>,
    ) -> Governance {
        let mut governance = Governance {
            key,
            target,
            required: false,
            minimum_approvers_required: 0,
            mandatory_approvers: BTreeSet::new(),
            endpoint_approvers,
        };
        for setting in settings {
            if setting.approval_policy == ApprovalPolicy::Required {
                governance.required = true;
                governance.minimum_approvers_required = governance
                    .minimum_approvers_required
                    .max(setting.minimum_approvers_required);
                governance
                    .mandatory_approvers
                    .extend(setting.mandatory_approvers.iter().cloned());
            }
        }
        governance.required |= !governance.endpoint_approvers.is_empty();
        governance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(policy: ApprovalPolicy, minimum: u32, mandatory: &[&str]) -> ApprovalSetting {
        ApprovalSetting {
            approval_policy: policy,
            minimum_approvers_required: minimum,
            mandatory_approvers: mandatory
                .iter()
                .map(|p| PrincipalId::new(p).unwrap())
                .collect(),
        }
    }

    #[test]
    fn an_enclave_tightens_and_never_loosens() {
        let target = Scope::parse("/communities/c/enclaveConnections/n").unwrap();
        let community = setting(ApprovalPolicy::Required, 2, &["expert"]);
        let enclave_loose = setting(ApprovalPolicy::NotRequired, 1, &[]);
        let g = Governance::combine(
            ApprovalKey::ConnectionCreation,
            target.clone(),
            [&community, &enclave_loose],
            BTreeSet::new(),
        );
        assert!(g.required);
        assert_eq!(g.minimum_approvers_required, 2);
        let enclave_tight = setting(ApprovalPolicy::Required, 3, &["lead"]);
        let g = Governance::combine(
            ApprovalKey::ConnectionCreation,
            target.clone(),
            [&community, &enclave_tight],
            BTreeSet::new(),
        );
        assert_eq!(g.minimum_approvers_required, 3);
        assert_eq!(g.mandatory_approvers.len(), 2);
        let none = Governance::combine(
            ApprovalKey::ConnectionCreation,
            target.clone(),
            [],
            BTreeSet::new(),
        );
        assert!(!none.required);
        let endpoint_only = Governance::combine(
            ApprovalKey::ConnectionCreation,
            target,
            [],
            BTreeSet::from([PrincipalId::new("reviewer").unwrap()]),
        );
        assert!(endpoint_only.required);
    }

    #[test]
    fn settings_json_uses_the_api_names() {
        let json = r#"{"enclaveCreation":{"approvalPolicy":"Required","minimumApproversRequired":1,"mandatoryApprovers":["expert"]}}"#;
        let s: ApprovalSettings = serde_json::from_str(json).unwrap();
        assert_eq!(s.iter().count(), 1);
        assert_eq!(serde_json::to_string(&s).unwrap(), json);
        assert!(serde_json::from_str::<ApprovalSettings>(r#"{"bogus":{}}"#).is_err());
    }
}
