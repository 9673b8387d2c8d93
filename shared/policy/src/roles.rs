//! Role definitions: permission lists, the built-in table of SPEC-policy section 3, and
//! custom roles.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::ids::RoleId;
use crate::operation::{Operation, OperationKind, APPROVE, REJECT};
use crate::scope::Scope;
use crate::wildcard::Pattern;

/// `Actions`, `NotActions`, `DataActions`, `NotDataActions`: the shape shared by role
/// definitions and deny assignments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Permissions {
    /// Control-plane operations covered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Pattern>,
    /// Subtracted from `actions` (inside this one definition only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_actions: Vec<Pattern>,
    /// Data operations covered; `*` in `actions` never covers these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_actions: Vec<Pattern>,
    /// Subtracted from `data_actions`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_data_actions: Vec<Pattern>,
}

impl Permissions {
    /// Whether `op` matches an entry of the list of its kind and no entry of the matching
    /// `Not` list.
    pub fn covers(&self, op: &Operation) -> bool {
        let (yes, no) = match op.kind() {
            OperationKind::Action => (&self.actions, &self.not_actions),
            OperationKind::DataAction => (&self.data_actions, &self.not_data_actions),
        };
        let lower = op.as_lowercase();
        yes.iter().any(|p| p.matches_lowercase(lower))
            && !no.iter().any(|p| p.matches_lowercase(lower))
    }

    /// Whether it covers nothing at all.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.data_actions.is_empty()
    }

    /// Every pattern, for validation and limits.
    pub(crate) fn len(&self) -> usize {
        self.actions.len()
            + self.not_actions.len()
            + self.data_actions.len()
            + self.not_data_actions.len()
    }

    fn from_lists(actions: &[&str], not_actions: &[&str], data_actions: &[&str]) -> Permissions {
        let compile = |list: &[&str]| list.iter().map(|p| Pattern::compile(p)).collect();
        Permissions {
            actions: compile(actions),
            not_actions: compile(not_actions),
            data_actions: compile(data_actions),
            not_data_actions: Vec::new(),
        }
    }
}

/// A role: a named set of permissions, assignable at some scopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleDefinition {
    /// The role's id (for built-in roles, their name).
    pub id: RoleId,
    /// What the role is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What it grants.
    pub permissions: Permissions,
    /// Where it may be assigned: these scopes and everything below them.
    pub assignable_scopes: BTreeSet<Scope>,
}

impl RoleDefinition {
    /// Whether the role grants `op` (section 3).
    pub fn grants(&self, op: &Operation) -> bool {
        self.permissions.covers(op)
    }

    /// Whether the role may be assigned at `scope`.
    pub fn assignable_at(&self, scope: &Scope) -> bool {
        self.assignable_scopes.iter().any(|s| s.contains(scope))
    }
}

/// Names of the built-in roles.
pub mod builtin {
    /// `*`.
    pub const OWNER: &str = "Owner";
    /// `*` except authorization writes and maintenance mode.
    pub const CONTRIBUTOR: &str = "Contributor";
    /// `*/read`.
    pub const READER: &str = "Reader";
    /// Everything in Mission, Authorization and Insights.
    pub const COMMUNITY_OWNER: &str = "Community Owner";
    /// Mission and Insights except maintenance mode.
    pub const COMMUNITY_CONTRIBUTOR: &str = "Community Contributor";
    /// `*/read`.
    pub const COMMUNITY_READER: &str = "Community Reader";
    /// Enclaves, connections, authorization and network.
    pub const ENCLAVE_OWNER: &str = "Enclave Owner";
    /// Enclaves, connections, network, deployments; no authorization, no maintenance mode.
    pub const ENCLAVE_CONTRIBUTOR: &str = "Enclave Contributor";
    /// `*/read`.
    pub const ENCLAVE_READER: &str = "Enclave Reader";
    /// `*/read` and the approve/reject data actions.
    pub const ENCLAVE_APPROVER: &str = "Enclave Approver";
}

static BUILT_IN: LazyLock<BTreeMap<RoleId, RoleDefinition>> =
    LazyLock::new(|| {
        use builtin::*;
        let role = |name: &str, description: &str, permissions: Permissions| {
            let id = RoleId::trusted(name);
            let definition = RoleDefinition {
                id: id.clone(),
                description: Some(description.to_owned()),
                permissions,
                assignable_scopes: BTreeSet::from([Scope::root()]),
            };
            (id, definition)
        };
        let reads = &["*/read"][..];
        BTreeMap::from([
        role(
            OWNER,
            "Full access, including assigning roles.",
            Permissions::from_lists(&["*"], &[], &[]),
        ),
        role(
            CONTRIBUTOR,
            "Full access except assigning roles and changing maintenance mode.",
            Permissions::from_lists(
                &["*"],
                &[
                    "Microsoft.Authorization/*/write",
                    "Microsoft.Authorization/*/delete",
                    "Microsoft.Authorization/elevateAccess/action",
                    "Microsoft.Mission/*/maintenanceMode/write",
                ],
                &[],
            ),
        ),
        role(READER, "Read everything.", Permissions::from_lists(reads, &[], &[])),
        role(
            COMMUNITY_OWNER,
            "Manage a community, its enclaves and its role assignments.",
            Permissions::from_lists(
                &[
                    "Microsoft.Mission/*",
                    "Microsoft.Authorization/*",
                    "Microsoft.Insights/*",
                    "*/read",
                ],
                &[],
                &[],
            ),
        ),
        role(
            COMMUNITY_CONTRIBUTOR,
            "Manage a community and its enclaves, without role assignments or maintenance mode.",
            Permissions::from_lists(
                &["Microsoft.Mission/*", "Microsoft.Insights/*", "*/read"],
                &["Microsoft.Mission/*/maintenanceMode/write"],
                &[],
            ),
        ),
        role(COMMUNITY_READER, "Read a community.", Permissions::from_lists(reads, &[], &[])),
        role(
            ENCLAVE_OWNER,
            "Manage an enclave, its connections, network and role assignments.",
            Permissions::from_lists(
                &[
                    "Microsoft.Mission/virtualEnclaves/*",
                    "Microsoft.Mission/enclaveConnections/*",
                    "Microsoft.Authorization/*",
                    "Microsoft.Network/*",
                    "*/read",
                ],
                &[],
                &[],
            ),
        ),
        role(
            ENCLAVE_CONTRIBUTOR,
            "Manage an enclave's resources, without role assignments or maintenance mode.",
            Permissions::from_lists(
                &[
                    "Microsoft.Mission/virtualEnclaves/*",
                    "Microsoft.Mission/enclaveConnections/*",
                    "Microsoft.Network/*",
                    "Microsoft.Resources/deployments/*",
                    "*/read",
                ],
                &[
                    "Microsoft.Authorization/*",
                    "Microsoft.Mission/virtualEnclaves/maintenanceMode/write",
                ],
                &[],
            ),
        ),
        role(ENCLAVE_READER, "Read an enclave.", Permissions::from_lists(reads, &[], &[])),
        role(
            ENCLAVE_APPROVER,
            "Read, and approve or reject governed operations; initiate nothing.",
            Permissions::from_lists(reads, &[], &[APPROVE, REJECT]),
        ),
    ])
    });

/// The built-in roles by id.
pub fn built_in_roles() -> &'static BTreeMap<RoleId, RoleDefinition> {
    &BUILT_IN
}

/// Whether `id` names a built-in role, ignoring case (custom roles may not shadow them).
pub fn is_built_in(id: &str) -> bool {
    BUILT_IN.keys().any(|k| k.as_str().eq_ignore_ascii_case(id))
}

#[cfg(test)]
mod tests {
    use super::builtin::*;
    use super::*;

    fn grants(role: &str, op: &str) -> bool {
        built_in_roles()[role].grants(&Operation::parse(op).unwrap())
    }

    /// Section 3's table and prose, one row per rule.
    #[test]
    fn built_in_table() {
        let cases: &[(&str, &str, bool)] = &[
            // Owner: everything except data actions.
            (OWNER, "Microsoft.Authorization/roleAssignments/write", true),
            (
                OWNER,
                "Microsoft.Mission/communities/maintenanceMode/write",
                true,
            ),
            (OWNER, APPROVE, false),
            // Contributor: NotActions subtract authorization writes and maintenance mode.
            (CONTRIBUTOR, "Microsoft.Network/virtualNetworks/write", true),
            (
                CONTRIBUTOR,
                "Microsoft.Authorization/roleAssignments/write",
                false,
            ),
            (
                CONTRIBUTOR,
                "Microsoft.Authorization/roleAssignments/delete",
                false,
            ),
            (
                CONTRIBUTOR,
                "Microsoft.Authorization/roleAssignments/read",
                true,
            ),
            (
                CONTRIBUTOR,
                "Microsoft.Authorization/elevateAccess/action",
                false,
            ),
            (
                CONTRIBUTOR,
                "Microsoft.Mission/virtualEnclaves/maintenanceMode/write",
                false,
            ),
            (CONTRIBUTOR, REJECT, false),
            // Readers read only.
            (READER, "Microsoft.Mission/approvals/read", true),
            (READER, "Microsoft.Mission/virtualEnclaves/write", false),
            (
                COMMUNITY_READER,
                "Microsoft.Network/virtualNetworks/read",
                true,
            ),
            (
                ENCLAVE_READER,
                "Microsoft.Network/virtualNetworks/delete",
                false,
            ),
            // Community owner and contributor.
            (
                COMMUNITY_OWNER,
                "Microsoft.Mission/communities/maintenanceMode/write",
                true,
            ),
            (
                COMMUNITY_OWNER,
                "Microsoft.Authorization/roleAssignments/write",
                true,
            ),
            (
                COMMUNITY_OWNER,
                "Microsoft.Network/virtualNetworks/write",
                false,
            ),
            (COMMUNITY_OWNER, APPROVE, false),
            (
                COMMUNITY_CONTRIBUTOR,
                "Microsoft.Mission/virtualEnclaves/write",
                true,
            ),
            (
                COMMUNITY_CONTRIBUTOR,
                "Microsoft.Mission/communities/maintenanceMode/write",
                false,
            ),
            (
                COMMUNITY_CONTRIBUTOR,
                "Microsoft.Authorization/roleAssignments/write",
                false,
            ),
            // Enclave owner and contributor.
            (
                ENCLAVE_OWNER,
                "Microsoft.Mission/virtualEnclaves/maintenanceMode/write",
                true,
            ),
            (
                ENCLAVE_OWNER,
                "Microsoft.Mission/enclaveConnections/write",
                true,
            ),
            (
                ENCLAVE_OWNER,
                "Microsoft.Authorization/roleAssignments/write",
                true,
            ),
            (ENCLAVE_OWNER, "Microsoft.Mission/communities/write", false),
            (
                ENCLAVE_CONTRIBUTOR,
                "Microsoft.Resources/deployments/write",
                true,
            ),
            (
                ENCLAVE_CONTRIBUTOR,
                "Microsoft.Mission/virtualEnclaves/maintenanceMode/write",
                false,
            ),
            (
                ENCLAVE_CONTRIBUTOR,
                "Microsoft.Authorization/roleAssignments/write",
                false,
            ),
            (
                ENCLAVE_CONTRIBUTOR,
                "Microsoft.Authorization/roleAssignments/read",
                false,
            ),
            // The approver approves and rejects, reads, and writes nothing.
            (ENCLAVE_APPROVER, APPROVE, true),
            (ENCLAVE_APPROVER, REJECT, true),
            (ENCLAVE_APPROVER, "Microsoft.Mission/approvals/read", true),
            (
                ENCLAVE_APPROVER,
                "Microsoft.Mission/virtualEnclaves/write",
                false,
            ),
            (
                ENCLAVE_APPROVER,
                "Microsoft.Mission/enclaveConnections/write",
                false,
            ),
        ];
        for &(role, op, expected) in cases {
            assert_eq!(grants(role, op), expected, "{role} / {op}");
        }
        assert_eq!(built_in_roles().len(), 10);
    }

    #[test]
    fn star_in_actions_grants_no_data_action() {
        let custom = RoleDefinition {
            id: RoleId::new("x").unwrap(),
            description: None,
            permissions: Permissions::from_lists(&["*"], &[], &["Microsoft.Mission/approvals/*"]),
            assignable_scopes: BTreeSet::from([Scope::root()]),
        };
        assert!(custom.grants(&Operation::parse(APPROVE).unwrap()));
        let mut no_data = custom.clone();
        no_data.permissions.data_actions.clear();
        assert!(!no_data.grants(&Operation::parse(APPROVE).unwrap()));
        let data_read =
            Operation::new("Contoso.Data/blobs/read", OperationKind::DataAction).unwrap();
        // `*/read` in Actions does not grant a data action that ends in `/read`.
        assert!(!built_in_roles()[READER].grants(&data_read));
    }

    #[test]
    fn built_in_names_are_reserved_in_any_case() {
        assert!(is_built_in("enclave approver"));
        assert!(!is_built_in("Approver"));
        assert!(built_in_roles()[OWNER].assignable_at(&Scope::parse("/communities/c").unwrap()));
    }
}
