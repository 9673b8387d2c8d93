//! Communities, virtual enclaves and workloads (SPEC-policy section 1).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::approval::ApprovalSettings;
use crate::cidr::Cidr;
use crate::ids::PrincipalId;
use crate::maintenance::MaintenanceModeConfiguration;
use crate::scope::Scope;

/// A community: the root governance boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Community {
    /// Its scope (`/communities/{c}`).
    pub id: Scope,
    /// Every enclave's address space lies inside it.
    pub address_space: Cidr,
    /// Maintenance mode of its managed resource group.
    #[serde(default, skip_serializing_if = "MaintenanceModeConfiguration::is_off")]
    pub maintenance_mode_configuration: MaintenanceModeConfiguration,
    /// Which governed operations need approvals.
    #[serde(default, skip_serializing_if = "is_default")]
    pub approval_settings: ApprovalSettings,
}

/// A virtual enclave: a network-isolated landing zone inside a community.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualEnclave {
    /// Its scope (`/communities/{c}/virtualEnclaves/{e}`).
    pub id: Scope,
    /// Inside the community's, overlapping no other enclave's of that community.
    pub address_space: Cidr,
    /// Maintenance mode of its managed resource group.
    #[serde(default, skip_serializing_if = "MaintenanceModeConfiguration::is_off")]
    pub maintenance_mode_configuration: MaintenanceModeConfiguration,
    /// Enclave-level approval settings: they can tighten the community's, never loosen them.
    #[serde(default, skip_serializing_if = "is_default")]
    pub approval_settings: ApprovalSettings,
}

/// A workload resource group inside an enclave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    /// Its scope (`.../virtualEnclaves/{e}/workloads/{w}`).
    pub id: Scope,
    /// A protected workload carries a deny assignment (section 4.3).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub protected: bool,
    /// Who escapes that deny assignment (directly or through a group).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub privileged_principals: BTreeSet<PrincipalId>,
}

fn is_default(settings: &ApprovalSettings) -> bool {
    *settings == ApprovalSettings::default()
}
