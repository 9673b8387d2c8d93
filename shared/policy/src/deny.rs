//! Deny assignments (SPEC-policy section 4): the ones users write, and the ones the platform
//! derives from resources (4.1 managed groups, 4.2 maintenance mode, 4.3 protected
//! workloads). Derived ones are computed on demand from the resource they belong to, never
//! stored, so they cannot drift from it.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::LazyLock;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{AssignmentId, PrincipalId};
use crate::maintenance::{MaintenanceMode, MaintenanceModeConfiguration};
use crate::operation::Operation;
use crate::roles::Permissions;
use crate::scope::Scope;
use crate::time::Timestamp;

/// Whom a deny assignment targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyPrincipals {
    /// Every principal (`"Everyone"` in JSON).
    Everyone,
    /// These principals and the members of these groups.
    Listed(BTreeSet<PrincipalId>),
}

impl Serialize for DenyPrincipals {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            DenyPrincipals::Everyone => serializer.serialize_str(EVERYONE),
            DenyPrincipals::Listed(list) => list.serialize(serializer),
        }
    }
}

const EVERYONE: &str = "Everyone";

struct DenyPrincipalsVisitor;

impl<'de> Visitor<'de> for DenyPrincipalsVisitor {
    type Value = DenyPrincipals;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"Everyone\" or a list of principal ids")
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<DenyPrincipals, E> {
        if text == EVERYONE {
            Ok(DenyPrincipals::Everyone)
        } else {
            Err(E::invalid_value(de::Unexpected::Str(text), &self))
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DenyPrincipals, A::Error> {
        let mut list = BTreeSet::new();
        while let Some(id) = seq.next_element::<PrincipalId>()? {
            list.insert(id);
        }
        Ok(DenyPrincipals::Listed(list))
    }
}

impl<'de> Deserialize<'de> for DenyPrincipals {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DenyPrincipalsVisitor)
    }
}

/// A deny assignment written by a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DenyAssignment {
    /// Its id.
    pub id: AssignmentId,
    /// A name for people to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where it applies.
    pub scope: Scope,
    /// What it denies.
    pub permissions: Permissions,
    /// Whom it denies.
    pub principals: DenyPrincipals,
    /// Who escapes it (directly or through a group).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub exclude_principals: BTreeSet<PrincipalId>,
    /// Only at `scope` itself, not below it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub do_not_apply_to_child_scopes: bool,
}

/// Which deny assignment: a user's or one the platform derives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DenyKind {
    /// Written by a user (has an id).
    Custom,
    /// 4.1 "Deny All" on a managed resource group.
    PlatformDenyAll,
    /// 4.1 "Allow Dataplane Actions" on a managed resource group.
    PlatformAllowDataplaneActions,
    /// 4.3 on a protected workload.
    ProtectedWorkload,
}

impl DenyKind {
    /// The name Azure gives it.
    pub fn display_name(self) -> &'static str {
        match self {
            DenyKind::Custom => "Custom deny assignment",
            DenyKind::PlatformDenyAll => "Deny All",
            DenyKind::PlatformAllowDataplaneActions => "Allow Dataplane Actions",
            DenyKind::ProtectedWorkload => "Protected workload",
        }
    }
}

const READ_AND_TAGS: [&str; 2] = ["*/read", "Microsoft.Resources/tags/*"];
const DATAPLANE_COMMON: [&str; 2] = ["Microsoft.Insights/alertRules/*", "Microsoft.Support/*"];
const DATAPLANE_COMMUNITY: [&str; 8] = [
    "Microsoft.Network/azureFirewalls/networkRuleCollections/write",
    "Microsoft.Network/azureFirewalls/applicationRuleCollections/write",
    "Microsoft.Network/azureFirewalls/natRuleCollections/write",
    "Microsoft.Network/firewallPolicies/ruleGroups/write",
    "Microsoft.Network/virtualHubs/write",
    "Microsoft.Network/virtualWans/virtualHubs/read",
    "Microsoft.Network/virtualWans/join/action",
    "Microsoft.Network/virtualHubs/routeTables/write",
];
const DATAPLANE_ENCLAVE: [&str; 8] = [
    "Microsoft.Resources/deployments/*",
    "Microsoft.Network/privateDnsZones/*",
    "Microsoft.Network/privateDnsOperationResults/*",
    "Microsoft.Network/privateDnsOperationStatuses/*",
    "Microsoft.Network/virtualNetworks/join/action",
    "Microsoft.Network/virtualNetworks/subnets/join/action",
    "Microsoft.Authorization/policyExemptions/*",
    "Microsoft.Network/routeTables/routes/write",
];

fn deny_star_except(exceptions: &[&str]) -> Permissions {
    Permissions {
        actions: vec![crate::wildcard::Pattern::compile("*")],
        not_actions: exceptions
            .iter()
            .map(|p| crate::wildcard::Pattern::compile(p))
            .collect(),
        data_actions: Vec::new(),
        not_data_actions: Vec::new(),
    }
}

static DENY_ALL: LazyLock<Permissions> = LazyLock::new(|| deny_star_except(&READ_AND_TAGS));
static DATAPLANE_ON_COMMUNITY: LazyLock<Permissions> = LazyLock::new(|| {
    let list: Vec<&str> = READ_AND_TAGS
        .iter()
        .chain(&DATAPLANE_COMMON)
        .chain(&DATAPLANE_COMMUNITY)
        .copied()
        .collect();
    deny_star_except(&list)
});
static DATAPLANE_ON_ENCLAVE: LazyLock<Permissions> = LazyLock::new(|| {
    let list: Vec<&str> = READ_AND_TAGS
        .iter()
        .chain(&DATAPLANE_COMMON)
        .chain(&DATAPLANE_ENCLAVE)
        .copied()
        .collect();
    deny_star_except(&list)
});
static PROTECTED: LazyLock<Permissions> = LazyLock::new(|| deny_star_except(&["*/read"]));

static NOBODY: BTreeSet<PrincipalId> = BTreeSet::new();

/// Which managed group a pair of platform deny assignments sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ManagedOf {
    Community,
    Enclave,
}

/// A deny assignment of any kind, borrowed from the state: what [`crate::PolicyState::check`]
/// evaluates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DenyView<'a> {
    pub kind: DenyKind,
    pub id: Option<&'a AssignmentId>,
    pub permissions: &'a Permissions,
    pub everyone: bool,
    pub principals: &'a BTreeSet<PrincipalId>,
    pub excluded: &'a BTreeSet<PrincipalId>,
    pub excludes_platform: bool,
    pub applies_below: bool,
}

impl<'a> DenyView<'a> {
    pub fn custom(deny: &'a DenyAssignment) -> DenyView<'a> {
        let (everyone, principals) = match &deny.principals {
            DenyPrincipals::Everyone => (true, &NOBODY),
            DenyPrincipals::Listed(list) => (false, list),
        };
        DenyView {
            kind: DenyKind::Custom,
            id: Some(&deny.id),
            permissions: &deny.permissions,
            everyone,
            principals,
            excluded: &deny.exclude_principals,
            excludes_platform: false,
            applies_below: !deny.do_not_apply_to_child_scopes,
        }
    }

    /// The two deny assignments of a managed group, as maintenance mode shapes them at `at`.
    pub fn managed_group(
        of: ManagedOf,
        maintenance: &'a MaintenanceModeConfiguration,
        at: Timestamp,
    ) -> [DenyView<'a>; 2] {
        let mode = maintenance.effective_mode(at);
        let maintainers = &maintenance.principals;
        let platform_only = &NOBODY;
        let (deny_all_excluded, dataplane_excluded) = match mode {
            MaintenanceMode::Off => (platform_only, platform_only),
            MaintenanceMode::General => (maintainers, platform_only),
            MaintenanceMode::Advanced => (maintainers, maintainers),
        };
        let dataplane: &'static Permissions = match of {
            ManagedOf::Community => &DATAPLANE_ON_COMMUNITY,
            ManagedOf::Enclave => &DATAPLANE_ON_ENCLAVE,
        };
        let platform = |kind, permissions, excluded| DenyView {
            kind,
            id: None,
            permissions,
            everyone: true,
            principals: &NOBODY,
            excluded,
            excludes_platform: true,
            applies_below: true,
        };
        [
            platform(DenyKind::PlatformDenyAll, &*DENY_ALL, deny_all_excluded),
            platform(
                DenyKind::PlatformAllowDataplaneActions,
                dataplane,
                dataplane_excluded,
            ),
        ]
    }

    /// The deny assignment of a protected workload.
    pub fn protected_workload(privileged: &'a BTreeSet<PrincipalId>) -> DenyView<'a> {
        DenyView {
            kind: DenyKind::ProtectedWorkload,
            id: None,
            permissions: &PROTECTED,
            everyone: true,
            principals: &NOBODY,
            excluded: privileged,
            excludes_platform: true,
            applies_below: true,
        }
    }

    /// Whether it denies `op` to the principal whose id and groups are `closure` (in any
    /// order, the principal itself included), at a scope that is (`at_own_scope`) or is
    /// below its scope. Returns the listed principal or group through which it applied (the
    /// smallest id, when several are listed; `None` for Everyone).
    pub fn denies(
        &self,
        principal: &PrincipalId,
        closure: &[&PrincipalId],
        op: &Operation,
        at_own_scope: bool,
    ) -> Option<Option<PrincipalId>> {
        if !at_own_scope && !self.applies_below {
            return None;
        }
        if self.excludes_platform && principal.is_platform() {
            return None;
        }
        if !self.permissions.covers(op) {
            return None;
        }
        if closure.iter().any(|p| self.excluded.contains(*p)) {
            return None;
        }
        if self.everyone {
            return Some(None);
        }
        closure
            .iter()
            .filter(|p| self.principals.contains(**p))
            .min()
            .map(|p| Some((*p).clone()))
    }

    /// An owned copy, for listings and exports.
    pub fn to_effective(self, scope: Scope) -> EffectiveDeny {
        let mut exclude_principals = self.excluded.clone();
        if self.excludes_platform {
            exclude_principals.insert(PrincipalId::platform());
        }
        EffectiveDeny {
            kind: self.kind,
            id: self.id.cloned(),
            scope,
            permissions: self.permissions.clone(),
            principals: if self.everyone {
                DenyPrincipals::Everyone
            } else {
                DenyPrincipals::Listed(self.principals.clone())
            },
            exclude_principals,
            do_not_apply_to_child_scopes: !self.applies_below,
        }
    }
}

/// A deny assignment as it stands at some instant, derived ones materialized (with
/// `platform` written out in `excludePrincipals`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveDeny {
    /// Whose.
    pub kind: DenyKind,
    /// The id of a custom one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<AssignmentId>,
    /// Where.
    pub scope: Scope,
    /// What.
    pub permissions: Permissions,
    /// Whom.
    pub principals: DenyPrincipals,
    /// Who escapes.
    pub exclude_principals: BTreeSet<PrincipalId>,
    /// Only at `scope` itself.
    pub do_not_apply_to_child_scopes: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(text: &str) -> Operation {
        Operation::parse(text).unwrap()
    }

    #[test]
    fn principals_are_everyone_or_a_list() {
        assert_eq!(
            serde_json::from_str::<DenyPrincipals>("\"Everyone\"").unwrap(),
            DenyPrincipals::Everyone
        );
        let listed = serde_json::from_str::<DenyPrincipals>("[\"b\",\"a\"]").unwrap();
        assert_eq!(serde_json::to_string(&listed).unwrap(), "[\"a\",\"b\"]");
        assert!(serde_json::from_str::<DenyPrincipals>("\"everyone\"").is_err());
        let mut cbor = Vec::new();
        ciborium::into_writer(&DenyPrincipals::Everyone, &mut cbor).unwrap();
        assert_eq!(
            ciborium::from_reader::<DenyPrincipals, _>(cbor.as_slice()).unwrap(),
            DenyPrincipals::Everyone
        );
    }

    /// Section 4.1's lists: what each platform deny assignment leaves open.
    #[test]
    fn platform_lists() {
        let off = MaintenanceModeConfiguration::default();
        let at = Timestamp::EPOCH;
        let user = PrincipalId::new("u").unwrap();
        let closure = [&user];
        let denied = |of, text: &str| -> Vec<DenyKind> {
            DenyView::managed_group(of, &off, at)
                .iter()
                .filter(|d| d.denies(&user, &closure, &op(text), true).is_some())
                .map(|d| d.kind)
                .collect()
        };
        use DenyKind::*;
        let both = vec![PlatformDenyAll, PlatformAllowDataplaneActions];
        let only_deny_all = vec![PlatformDenyAll];
        for of in [ManagedOf::Community, ManagedOf::Enclave] {
            assert!(denied(of, "Microsoft.Network/virtualNetworks/read").is_empty());
            assert!(denied(of, "Microsoft.Resources/tags/write").is_empty());
            assert_eq!(denied(of, "Microsoft.Network/virtualNetworks/write"), both);
            assert_eq!(
                denied(of, "Microsoft.Insights/alertRules/write"),
                only_deny_all
            );
            assert_eq!(
                denied(of, "Microsoft.Support/supportTickets/write"),
                only_deny_all
            );
        }
        for community_only in DATAPLANE_COMMUNITY {
            if community_only.ends_with("/read") {
                continue;
            }
            assert_eq!(denied(ManagedOf::Community, community_only), only_deny_all);
            assert_eq!(
                denied(ManagedOf::Enclave, community_only),
                both,
                "{community_only}"
            );
        }
        for enclave_only in [
            "Microsoft.Resources/deployments/write",
            "Microsoft.Network/privateDnsZones/A/write",
            "Microsoft.Network/privateDnsOperationResults/x/action",
            "Microsoft.Network/privateDnsOperationStatuses/x/action",
            "Microsoft.Network/virtualNetworks/join/action",
            "Microsoft.Network/virtualNetworks/subnets/join/action",
            "Microsoft.Authorization/policyExemptions/write",
            "Microsoft.Network/routeTables/routes/write",
        ] {
            assert_eq!(denied(ManagedOf::Enclave, enclave_only), only_deny_all);
            assert_eq!(
                denied(ManagedOf::Community, enclave_only),
                both,
                "{enclave_only}"
            );
        }
        // Data actions are never denied by the platform's lists.
        assert!(denied(ManagedOf::Enclave, crate::operation::APPROVE).is_empty());
    }

    #[test]
    fn platform_is_always_excluded_and_custom_ones_honour_lists() {
        let off = MaintenanceModeConfiguration::default();
        let platform = PrincipalId::platform();
        for d in DenyView::managed_group(ManagedOf::Enclave, &off, Timestamp::EPOCH) {
            assert!(d
                .denies(&platform, &[&platform], &op("a/b/write"), true)
                .is_none());
        }
        let g = PrincipalId::new("g").unwrap();
        let u = PrincipalId::new("u").unwrap();
        let deny = DenyAssignment {
            id: AssignmentId::new("d1").unwrap(),
            name: None,
            scope: Scope::root(),
            permissions: deny_star_except(&[]),
            principals: DenyPrincipals::Listed(BTreeSet::from([g.clone()])),
            exclude_principals: BTreeSet::new(),
            do_not_apply_to_child_scopes: true,
        };
        let view = DenyView::custom(&deny);
        let closure = [&g, &u];
        assert_eq!(
            view.denies(&u, &closure, &op("a/b/write"), true),
            Some(Some(g.clone()))
        );
        assert_eq!(view.denies(&u, &[&u], &op("a/b/write"), true), None);
        assert_eq!(view.denies(&u, &closure, &op("a/b/write"), false), None);
        let mut excluded = deny.clone();
        excluded.exclude_principals.insert(g.clone());
        assert_eq!(
            DenyView::custom(&excluded).denies(&u, &closure, &op("a/b/write"), true),
            None
        );
    }
}
