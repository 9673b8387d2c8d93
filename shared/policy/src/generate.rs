//! A realistic, seeded policy state and a stream of checks against it, shared by this
//! crate's criterion bench and `benches/cedar-compare`, so that both measure the same work.
//!
//! Shape (the defaults of [`Shape::realistic`]): one community, 50 enclaves of 5 workloads,
//! 2,000 users each in 1 to 3 of 100 groups, 10 custom roles of 20 concrete operations,
//! role assignments 60% to users and 40% to groups, 2% at the community, 38% at enclaves and
//! 60% at workloads (a tenth with a time window), 100 deny assignments, a few enclaves in
//! maintenance mode and a tenth of the workloads protected. Half of the checks follow a real
//! assignment (its principal or a member of its group, one of its role's operations, its
//! scope or below); the other half are random.
//!
//! Only behind the `bench-support` feature: none of this is needed to decide anything.

use std::collections::{BTreeMap, BTreeSet};

use crate::assignment::RoleAssignment;
use crate::cidr::Cidr;
use crate::deny::{DenyAssignment, DenyPrincipals};
use crate::document::PolicyDocument;
use crate::ids::{AssignmentId, PrincipalId, RoleId};
use crate::maintenance::{MaintenanceJustification, MaintenanceMode, MaintenanceModeConfiguration};
use crate::operation::Operation;
use crate::principal::{Principal, PrincipalType};
use crate::resources::{Community, VirtualEnclave, Workload};
use crate::roles::{Permissions, RoleDefinition};
use crate::scope::Scope;
use crate::state::PolicyState;
use crate::time::Timestamp;
use crate::wildcard::Pattern;

/// How big a state to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Enclaves in the one community.
    pub enclaves: usize,
    /// Workloads per enclave.
    pub workloads_per_enclave: usize,
    /// Users.
    pub users: usize,
    /// Groups (each user is in 1 to 3).
    pub groups: usize,
    /// Custom roles.
    pub roles: usize,
    /// Operations per role.
    pub operations_per_role: usize,
    /// Role assignments.
    pub role_assignments: usize,
    /// Custom deny assignments.
    pub deny_assignments: usize,
    /// Seed of the generator.
    pub seed: u64,
}

impl Shape {
    /// The shape of the benchmark, with `role_assignments` assignments.
    pub fn realistic(role_assignments: usize) -> Shape {
        Shape {
            enclaves: 50,
            workloads_per_enclave: 5,
            users: 2_000,
            groups: 100,
            roles: 10,
            operations_per_role: 20,
            role_assignments,
            deny_assignments: 100,
            seed: 0x5eed_0fea_9011_c7a1,
        }
    }
}

/// One check to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Who.
    pub principal: PrincipalId,
    /// What.
    pub operation: Operation,
    /// Where.
    pub scope: Scope,
}

/// A generated state and the checks to run against it.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The state.
    pub state: PolicyState,
    /// Every operation roles, deny assignments and requests use (no wildcards).
    pub vocabulary: Vec<String>,
    /// The checks.
    pub requests: Vec<Request>,
    /// The time to check at.
    pub at: Timestamp,
}

/// SplitMix64: small, seeded, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        let n = n.max(1) as u64;
        usize::try_from(self.next() % n).unwrap_or(0)
    }

    fn percent(&mut self) -> usize {
        self.below(100)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }
}

const RESOURCE_TYPES: &[&str] = &[
    "Microsoft.Compute/virtualMachines",
    "Microsoft.Compute/disks",
    "Microsoft.Compute/snapshots",
    "Microsoft.Network/virtualNetworks",
    "Microsoft.Network/virtualNetworks/subnets",
    "Microsoft.Network/networkSecurityGroups",
    "Microsoft.Network/networkInterfaces",
    "Microsoft.Network/privateDnsZones",
    "Microsoft.Network/routeTables",
    "Microsoft.Storage/storageAccounts",
    "Microsoft.Storage/storageAccounts/blobServices",
    "Microsoft.KeyVault/vaults",
    "Microsoft.Sql/servers",
    "Microsoft.Sql/servers/databases",
    "Microsoft.Web/sites",
    "Microsoft.ContainerService/managedClusters",
    "Microsoft.OperationalInsights/workspaces",
    "Microsoft.Insights/alertRules",
    "Microsoft.Resources/deployments",
    "Microsoft.Resources/tags",
    "Microsoft.Mission/virtualEnclaves/workloads",
    "Microsoft.Mission/virtualEnclaves/enclaveEndpoints",
    "Microsoft.Mission/enclaveConnections",
    "Microsoft.Authorization/roleAssignments",
];

const ACTIONS: &[&str] = &[
    "Microsoft.Compute/virtualMachines/start/action",
    "Microsoft.Compute/virtualMachines/restart/action",
    "Microsoft.Compute/virtualMachines/deallocate/action",
    "Microsoft.Storage/storageAccounts/listKeys/action",
    "Microsoft.Web/sites/restart/action",
    "Microsoft.Network/virtualNetworks/join/action",
];

fn vocabulary() -> Vec<String> {
    let mut ops: Vec<String> = RESOURCE_TYPES
        .iter()
        .flat_map(|t| ["read", "write", "delete"].map(|verb| format!("{t}/{verb}")))
        .collect();
    ops.extend(ACTIONS.iter().map(|a| (*a).to_owned()));
    ops
}

fn id<T>(
    make: impl Fn(&str) -> Result<T, crate::ids::IdError>,
    text: String,
) -> Result<T, GenerateError> {
    make(&text).map_err(|_| GenerateError::Internal("an id"))
}

/// Why generation failed: a bug in the generator, never a property of the shape.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The generated document breaks a rule.
    #[error("the generated state is invalid: {0}")]
    Invalid(#[from] crate::document::ValidationErrors),
    /// A value the generator builds did not parse.
    #[error("the generator built an invalid {0}")]
    Internal(&'static str),
}

trait Need<T> {
    fn need(self, what: &'static str) -> Result<T, GenerateError>;
}

impl<T> Need<T> for Option<T> {
    fn need(self, what: &'static str) -> Result<T, GenerateError> {
        self.ok_or(GenerateError::Internal(what))
    }
}

impl<T, E> Need<T> for Result<T, E> {
    fn need(self, what: &'static str) -> Result<T, GenerateError> {
        self.map_err(|_| GenerateError::Internal(what))
    }
}

/// Generates a state of `shape` and `requests` checks against it. The same shape gives the
/// same state and checks.
pub fn generate(shape: &Shape, requests: usize) -> Result<Generated, GenerateError> {
    let mut rng = Rng(shape.seed);
    let at = Timestamp::parse_rfc3339("2025-06-01T12:00:00Z").need("a time")?;
    let day = 86_400_000;
    let vocabulary = vocabulary();
    let mut doc = PolicyDocument::default();

    let community = Scope::parse("/communities/c0").need("a scope")?;
    doc.communities.push(Community {
        id: community.clone(),
        address_space: Cidr::parse("10.0.0.0/8").need("an address space")?,
        maintenance_mode_configuration: MaintenanceModeConfiguration::default(),
        approval_settings: Default::default(),
    });

    let users: Vec<PrincipalId> = (0..shape.users)
        .map(|i| id(PrincipalId::new, format!("u{i:05}")))
        .collect::<Result<_, _>>()?;
    let groups: Vec<PrincipalId> = (0..shape.groups)
        .map(|i| id(PrincipalId::new, format!("g{i:03}")))
        .collect::<Result<_, _>>()?;
    let mut members: BTreeMap<PrincipalId, BTreeSet<PrincipalId>> = BTreeMap::new();
    for user in &users {
        let count = 1 + rng.below(3);
        for _ in 0..count {
            if let Some(group) = rng.pick(&groups) {
                members
                    .entry(group.clone())
                    .or_default()
                    .insert(user.clone());
            }
        }
        doc.principals
            .push(Principal::new(user.clone(), PrincipalType::User));
    }
    for group in &groups {
        let mut principal = Principal::new(group.clone(), PrincipalType::Group);
        principal.members = members.get(group).cloned().unwrap_or_default();
        doc.principals.push(principal);
    }
    let member_lists: BTreeMap<&PrincipalId, Vec<PrincipalId>> = members
        .iter()
        .map(|(g, m)| (g, m.iter().cloned().collect()))
        .collect();

    let mut enclaves = Vec::new();
    let mut workloads = Vec::new();
    for e in 0..shape.enclaves {
        let enclave = community
            .join(&format!("virtualEnclaves/e{e:03}"))
            .need("a scope")?;
        let mut maintenance = MaintenanceModeConfiguration::default();
        if e % 17 == 3 {
            maintenance = MaintenanceModeConfiguration {
                mode: if e % 2 == 0 {
                    MaintenanceMode::General
                } else {
                    MaintenanceMode::Advanced
                },
                principals: groups.iter().take(1).cloned().collect(),
                justification: MaintenanceJustification::Networking,
                expires_at: at.checked_add_millis(day),
            };
        }
        let second = u8::try_from(e % 250).need("an address")?;
        let third = u8::try_from(e / 250).need("an address")?;
        doc.virtual_enclaves.push(VirtualEnclave {
            id: enclave.clone(),
            address_space: Cidr::parse(&format!("10.{second}.{third}.0/24"))
                .need("an address space")?,
            maintenance_mode_configuration: maintenance,
            approval_settings: Default::default(),
        });
        for w in 0..shape.workloads_per_enclave {
            let workload = enclave.join(&format!("workloads/w{w}")).need("a scope")?;
            let protected = rng.percent() < 10;
            doc.workloads.push(Workload {
                id: workload.clone(),
                protected,
                privileged_principals: if protected {
                    rng.pick(&groups).cloned().into_iter().collect()
                } else {
                    BTreeSet::new()
                },
            });
            workloads.push(workload);
        }
        enclaves.push(enclave);
    }

    let mut roles = Vec::new();
    for r in 0..shape.roles {
        let role = id(RoleId::new, format!("bench-role-{r}"))?;
        let mut ops = BTreeSet::new();
        while ops.len() < shape.operations_per_role.min(vocabulary.len()) {
            if let Some(op) = rng.pick(&vocabulary) {
                ops.insert(op.clone());
            }
        }
        let ops: Vec<String> = ops.into_iter().collect();
        doc.role_definitions.push(RoleDefinition {
            id: role.clone(),
            description: None,
            permissions: Permissions {
                actions: ops
                    .iter()
                    .filter_map(|op| Pattern::parse(op).ok())
                    .collect(),
                ..Permissions::default()
            },
            assignable_scopes: BTreeSet::from([Scope::root()]),
        });
        roles.push((role, ops));
    }

    let mut taken = BTreeSet::new();
    let mut assignments: Vec<(PrincipalId, usize, Scope)> = Vec::new();
    let mut attempts = 0usize;
    while assignments.len() < shape.role_assignments && attempts < shape.role_assignments * 20 {
        attempts += 1;
        let principal = if rng.percent() < 60 {
            rng.pick(&users)
        } else {
            rng.pick(&groups)
        }
        .cloned()
        .need("a pick from an empty list")?;
        let roll = rng.percent();
        let scope = if roll < 2 {
            community.clone()
        } else if roll < 40 {
            rng.pick(&enclaves)
                .cloned()
                .need("a pick from an empty list")?
        } else {
            rng.pick(&workloads)
                .cloned()
                .need("a pick from an empty list")?
        };
        let role = rng.below(roles.len());
        if !taken.insert((principal.clone(), role, scope.clone())) {
            continue;
        }
        let (role_id, _) = roles.get(role).need("a role index")?;
        let window = rng.percent();
        let (not_before, not_after) = match window {
            0..=7 => (at.checked_add_millis(-day), at.checked_add_millis(day)),
            8..=9 => (at.checked_add_millis(-2 * day), at.checked_add_millis(-day)),
            _ => (None, None),
        };
        doc.role_assignments.push(RoleAssignment {
            id: id(AssignmentId::new, format!("ra-{:06}", assignments.len()))?,
            principal_id: principal.clone(),
            role_definition_id: role_id.clone(),
            scope: scope.clone(),
            not_before,
            not_after,
        });
        assignments.push((principal, role, scope));
    }

    for d in 0..shape.deny_assignments {
        let scope = if rng.percent() < 50 {
            rng.pick(&enclaves)
                .cloned()
                .need("a pick from an empty list")?
        } else {
            rng.pick(&workloads)
                .cloned()
                .need("a pick from an empty list")?
        };
        let count = 3 + rng.below(3);
        let actions: BTreeSet<String> = (0..count)
            .filter_map(|_| rng.pick(&vocabulary).cloned())
            .collect();
        let (principals, exclude_principals) = if rng.percent() < 50 {
            let excluded = (0..1 + rng.below(3))
                .filter_map(|_| rng.pick(&groups).cloned())
                .collect();
            (DenyPrincipals::Everyone, excluded)
        } else {
            let listed = (0..1 + rng.below(5))
                .filter_map(|_| {
                    if rng.percent() < 50 {
                        rng.pick(&users)
                    } else {
                        rng.pick(&groups)
                    }
                    .cloned()
                })
                .collect();
            (DenyPrincipals::Listed(listed), BTreeSet::new())
        };
        doc.deny_assignments.push(DenyAssignment {
            id: id(AssignmentId::new, format!("deny-{d:04}"))?,
            name: None,
            scope,
            permissions: Permissions {
                actions: actions
                    .iter()
                    .filter_map(|op| Pattern::parse(op).ok())
                    .collect(),
                ..Permissions::default()
            },
            principals,
            exclude_principals,
            do_not_apply_to_child_scopes: rng.percent() < 10,
        });
    }

    let state = PolicyState::from_document(&doc)?;

    let mut out = Vec::with_capacity(requests);
    for i in 0..requests {
        let request = if i % 2 == 0 {
            let (holder, role, scope) = rng
                .pick(&assignments)
                .need("a pick from an empty list")?
                .clone();
            let principal = match member_lists.get(&holder) {
                Some(list) => rng.pick(list).cloned().unwrap_or(holder),
                None => holder,
            };
            let (_, ops) = roles.get(role).need("a role index")?;
            let op = rng.pick(ops).need("a pick from an empty list")?;
            let scope = below(&mut rng, &scope).need("a scope")?;
            Request {
                principal,
                operation: Operation::parse(op).need("an operation")?,
                scope,
            }
        } else {
            let roll = rng.percent();
            let scope = if roll < 5 {
                community.clone()
            } else if roll < 15 {
                rng.pick(&enclaves)
                    .need("a pick from an empty list")?
                    .join("managed/providers/Microsoft.Network/virtualNetworks/vnet")
                    .need("a scope")?
            } else if roll < 40 {
                rng.pick(&enclaves)
                    .cloned()
                    .need("a pick from an empty list")?
            } else {
                let workload = rng
                    .pick(&workloads)
                    .need("a pick from an empty list")?
                    .clone();
                below(&mut rng, &workload).need("a scope")?
            };
            Request {
                principal: rng
                    .pick(&users)
                    .cloned()
                    .need("a pick from an empty list")?,
                operation: Operation::parse(
                    rng.pick(&vocabulary).need("a pick from an empty list")?,
                )
                .need("an operation")?,
                scope,
            }
        };
        out.push(request);
    }

    Ok(Generated {
        state,
        vocabulary,
        requests: out,
        at,
    })
}

/// `scope` itself or something one level below it.
fn below(rng: &mut Rng, scope: &Scope) -> Option<Scope> {
    if rng.percent() < 50 {
        return Some(scope.clone());
    }
    let child = match scope.kind() {
        crate::scope::ScopeKind::Community => format!("virtualEnclaves/e{:03}", rng.below(50)),
        crate::scope::ScopeKind::VirtualEnclave => format!("workloads/w{}", rng.below(5)),
        _ => format!(
            "providers/Microsoft.Compute/virtualMachines/vm{}",
            rng.below(10)
        ),
    };
    scope.join(&child).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_the_requested_shape_deterministically() {
        let shape = Shape {
            users: 200,
            groups: 20,
            role_assignments: 500,
            ..Shape::realistic(500)
        };
        let a = generate(&shape, 100).map_err(|e| e.to_string()).unwrap();
        let b = generate(&shape, 100).unwrap();
        assert_eq!(a.state, b.state);
        assert_eq!(a.requests, b.requests);
        assert_eq!(a.state.role_assignments().count(), 500);
        assert_eq!(a.state.deny_assignments().count(), 100);
        assert_eq!(a.state.enclaves().count(), 50);
        assert_eq!(a.state.workloads().count(), 250);
        let allowed = a
            .requests
            .iter()
            .filter(|r| {
                a.state
                    .check(&r.principal, &r.operation, &r.scope, a.at)
                    .allowed
            })
            .count();
        assert!(
            allowed > 10 && allowed < 90,
            "a mix of allows and denies: {allowed}"
        );
    }
}
