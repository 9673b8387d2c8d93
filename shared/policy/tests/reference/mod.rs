//! A tiny, obviously-correct reference model of SPEC-policy section 5: linear scans over
//! every assignment, no index, group membership by fixpoint, wildcards by recursion, and the
//! platform's deny assignments written out again from the spec's text (4.1 to 4.3).

use std::collections::BTreeSet;

use ea_policy::{
    within, Decision, DenyKind, DenyMatch, DenyPrincipals, GrantMatch, GrantSource,
    MaintenanceMode, MaintenanceModeConfiguration, Operation, OperationKind, Permissions,
    PolicyState, PrincipalId, PrincipalType, Reason, Scope, Timestamp,
};

/// `*` matches any run of characters; everything else itself, ignoring ASCII case.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((c, rest)) => text
            .split_first()
            .is_some_and(|(t, tail)| t.eq_ignore_ascii_case(c) && glob(rest, tail)),
    }
}

fn any_match(patterns: &[String], op: &str) -> bool {
    patterns.iter().any(|p| glob(p.as_bytes(), op.as_bytes()))
}

fn strings(list: &[ea_policy::Pattern]) -> Vec<String> {
    list.iter().map(|p| p.as_str().to_owned()).collect()
}

/// Whether the permissions cover `op`, from their pattern strings.
fn covers(permissions: &Permissions, op: &Operation) -> bool {
    let text = op.as_lowercase();
    let (yes, no) = match op.kind() {
        OperationKind::Action => (&permissions.actions, &permissions.not_actions),
        OperationKind::DataAction => (&permissions.data_actions, &permissions.not_data_actions),
    };
    any_match(&strings(yes), text) && !any_match(&strings(no), text)
}

fn ancestor_or_self(ancestor: &Scope, scope: &Scope) -> bool {
    let (a, s) = (ancestor.as_str(), scope.as_str());
    a == "/" || a == s || s.starts_with(&format!("{a}/"))
}

/// The principal and every group that contains it, by fixpoint over all groups.
fn closure(state: &PolicyState, principal: &PrincipalId) -> BTreeSet<PrincipalId> {
    let mut found = BTreeSet::from([principal.clone()]);
    loop {
        let before = found.len();
        for group in state
            .principals()
            .filter(|p| p.kind == PrincipalType::Group)
        {
            if group.members.iter().any(|m| found.contains(m)) {
                found.insert(group.id.clone());
            }
        }
        if found.len() == before {
            return found;
        }
    }
}

struct Deny {
    scope: Scope,
    kind: DenyKind,
    id: Option<ea_policy::AssignmentId>,
    actions: Vec<String>,
    not_actions: Vec<String>,
    data_actions: Vec<String>,
    not_data_actions: Vec<String>,
    everyone: bool,
    listed: BTreeSet<PrincipalId>,
    excluded: BTreeSet<PrincipalId>,
    platform_excluded: bool,
    children: bool,
}

fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn platform_deny(
    scope: Scope,
    kind: DenyKind,
    not_actions: Vec<String>,
    excluded: BTreeSet<PrincipalId>,
) -> Deny {
    Deny {
        scope,
        kind,
        id: None,
        actions: owned(&["*"]),
        not_actions,
        data_actions: Vec::new(),
        not_data_actions: Vec::new(),
        everyone: true,
        listed: BTreeSet::new(),
        excluded,
        platform_excluded: true,
        children: true,
    }
}

/// Section 4.1 and 4.2, from the spec's lists and table.
fn managed_group(
    owner: &Scope,
    community: bool,
    config: &MaintenanceModeConfiguration,
    at: Timestamp,
) -> [Deny; 2] {
    let scope = Scope::parse(&format!("{}/managed", owner.as_str())).unwrap();
    let expired = config.expires_at.is_some_and(|end| at >= end);
    let mode = if expired {
        MaintenanceMode::Off
    } else {
        config.mode
    };
    let maintainers = config.principals.clone();
    let (deny_all_excluded, dataplane_excluded) = match mode {
        MaintenanceMode::Off => (BTreeSet::new(), BTreeSet::new()),
        MaintenanceMode::General => (maintainers, BTreeSet::new()),
        MaintenanceMode::Advanced => (maintainers.clone(), maintainers),
    };
    let mut dataplane = owned(&[
        "*/read",
        "Microsoft.Resources/tags/*",
        "Microsoft.Insights/alertRules/*",
        "Microsoft.Support/*",
    ]);
    dataplane.extend(owned(if community {
        &[
            "Microsoft.Network/azureFirewalls/networkRuleCollections/write",
            "Microsoft.Network/azureFirewalls/applicationRuleCollections/write",
            "Microsoft.Network/azureFirewalls/natRuleCollections/write",
            "Microsoft.Network/firewallPolicies/ruleGroups/write",
            "Microsoft.Network/virtualHubs/write",
            "Microsoft.Network/virtualWans/virtualHubs/read",
            "Microsoft.Network/virtualWans/join/action",
            "Microsoft.Network/virtualHubs/routeTables/write",
        ]
    } else {
        &[
            "Microsoft.Resources/deployments/*",
            "Microsoft.Network/privateDnsZones/*",
            "Microsoft.Network/privateDnsOperationResults/*",
            "Microsoft.Network/privateDnsOperationStatuses/*",
            "Microsoft.Network/virtualNetworks/join/action",
            "Microsoft.Network/virtualNetworks/subnets/join/action",
            "Microsoft.Authorization/policyExemptions/*",
            "Microsoft.Network/routeTables/routes/write",
        ]
    }));
    [
        platform_deny(
            scope.clone(),
            DenyKind::PlatformDenyAll,
            owned(&["*/read", "Microsoft.Resources/tags/*"]),
            deny_all_excluded,
        ),
        platform_deny(
            scope,
            DenyKind::PlatformAllowDataplaneActions,
            dataplane,
            dataplane_excluded,
        ),
    ]
}

fn all_denies(state: &PolicyState, at: Timestamp) -> Vec<Deny> {
    let mut all = Vec::new();
    for d in state.deny_assignments() {
        let (everyone, listed) = match &d.principals {
            DenyPrincipals::Everyone => (true, BTreeSet::new()),
            DenyPrincipals::Listed(list) => (false, list.clone()),
        };
        all.push(Deny {
            scope: d.scope.clone(),
            kind: DenyKind::Custom,
            id: Some(d.id.clone()),
            actions: strings(&d.permissions.actions),
            not_actions: strings(&d.permissions.not_actions),
            data_actions: strings(&d.permissions.data_actions),
            not_data_actions: strings(&d.permissions.not_data_actions),
            everyone,
            listed,
            excluded: d.exclude_principals.clone(),
            platform_excluded: false,
            children: !d.do_not_apply_to_child_scopes,
        });
    }
    for c in state.communities() {
        all.extend(managed_group(
            &c.id,
            true,
            &c.maintenance_mode_configuration,
            at,
        ));
    }
    for e in state.enclaves() {
        all.extend(managed_group(
            &e.id,
            false,
            &e.maintenance_mode_configuration,
            at,
        ));
    }
    for w in state.workloads().filter(|w| w.protected) {
        all.push(platform_deny(
            w.id.clone(),
            DenyKind::ProtectedWorkload,
            owned(&["*/read"]),
            w.privileged_principals.clone(),
        ));
    }
    all
}

/// Section 5, step 2 alone: the grants of every assignment that applies.
fn grants(
    state: &PolicyState,
    principal: &PrincipalId,
    op: &Operation,
    scope: &Scope,
    at: Timestamp,
) -> Vec<GrantMatch> {
    let mine = closure(state, principal);
    let grants_op =
        |role: &ea_policy::RoleId| state.role(role).is_some_and(|r| covers(&r.permissions, op));
    let mut out = Vec::new();
    for a in state.role_assignments() {
        if mine.contains(&a.principal_id)
            && ancestor_or_self(&a.scope, scope)
            && within(at, a.not_before, a.not_after)
            && grants_op(&a.role_definition_id)
        {
            out.push(GrantMatch {
                scope: a.scope.clone(),
                source: GrantSource::RoleAssignment { id: a.id.clone() },
                role: a.role_definition_id.clone(),
                principal_id: a.principal_id.clone(),
                via_group: &a.principal_id != principal,
            });
        }
    }
    for act in state.activations() {
        let Some(eligible) = state.eligible_assignment(&act.eligible_assignment_id) else {
            continue;
        };
        if mine.contains(&act.principal_id)
            && ancestor_or_self(&eligible.scope, scope)
            && within(at, Some(act.start), Some(act.end))
            && within(at, eligible.not_before, eligible.not_after)
            && grants_op(&eligible.role_definition_id)
        {
            out.push(GrantMatch {
                scope: eligible.scope.clone(),
                source: GrantSource::Activation {
                    id: act.id.clone(),
                    eligible_assignment_id: eligible.id.clone(),
                },
                role: eligible.role_definition_id.clone(),
                principal_id: act.principal_id.clone(),
                via_group: &act.principal_id != principal,
            });
        }
    }
    out
}

/// Whether the principal's role assignments alone grant the operation.
pub fn roles_grant(
    state: &PolicyState,
    principal: &PrincipalId,
    op: &Operation,
    scope: &Scope,
    at: Timestamp,
) -> bool {
    !grants(state, principal, op, scope, at).is_empty()
}

/// Section 5, by linear scan.
pub fn check(
    state: &PolicyState,
    principal: &PrincipalId,
    op: &Operation,
    scope: &Scope,
    at: Timestamp,
) -> Decision {
    let mine = closure(state, principal);
    let text = op.as_lowercase();
    let mut denied = Vec::new();
    for d in all_denies(state, at) {
        let reaches = d.scope == *scope || (d.children && ancestor_or_self(&d.scope, scope));
        let (yes, no) = match op.kind() {
            OperationKind::Action => (&d.actions, &d.not_actions),
            OperationKind::DataAction => (&d.data_actions, &d.not_data_actions),
        };
        let matches_op = any_match(yes, text) && !any_match(no, text);
        let platform_escapes = d.platform_excluded && principal.is_platform();
        let excluded = mine.iter().any(|m| d.excluded.contains(m));
        let through = mine.iter().find(|m| d.listed.contains(*m)).cloned();
        let targeted = d.everyone || through.is_some();
        if reaches && matches_op && !platform_escapes && !excluded && targeted {
            denied.push(DenyMatch {
                scope: d.scope,
                kind: d.kind,
                id: d.id,
                through: if d.everyone { None } else { through },
            });
        }
    }
    if !denied.is_empty() {
        denied.sort();
        return Decision {
            allowed: false,
            reason: Reason::DenyAssignments(denied),
        };
    }
    // Nearest the root, then the holder's id, then the assignment.
    let first = grants(state, principal, op, scope, at)
        .into_iter()
        .min_by(|a, b| {
            (&a.scope, &a.principal_id, &a.source).cmp(&(&b.scope, &b.principal_id, &b.source))
        });
    match first {
        Some(grant) => Decision {
            allowed: true,
            reason: Reason::RoleAssignment(grant),
        },
        None => Decision {
            allowed: false,
            reason: Reason::NotAuthorized,
        },
    }
}
