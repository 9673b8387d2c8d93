//! Property tests on random states built by random commands: determinism, replay, the
//! monotonicity of role and deny assignments, and agreement with a reference model.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "helper functions of tests fail loudly, like the tests themselves"
)]

mod common;
mod reference;

use common::*;
use ea_policy::{
    Command, Decision, DenyPrincipals, Event, MaintenanceJustification, MaintenanceMode,
    MaintenanceModeConfiguration, Operation, PolicyDocument, PolicyState, Reason, Scope, Timestamp,
};
use proptest::prelude::*;
use serde_json::json;

const USERS: &[&str] = &["u1", "u2", "u3", "u4", "u5"];
const GROUPS: &[&str] = &["g1", "g2", "g3"];
const ROLES: &[&str] = &[
    "Owner",
    "Contributor",
    "Reader",
    "Community Owner",
    "Enclave Contributor",
    "Enclave Approver",
    "r1",
    "r2",
];
const PATTERNS: &[&str] = &[
    "*",
    "*/read",
    "*/write",
    "Microsoft.Network/*",
    "Microsoft.Mission/*",
    "Microsoft.Network/virtualNetworks/write",
    "Microsoft.Resources/*",
    "Microsoft.Mission/approvals/*",
    "microsoft.mission/approvals/approve/action",
];
const OPS: &[&str] = &[
    "Microsoft.Mission/virtualEnclaves/write",
    "Microsoft.Mission/virtualEnclaves/workloads/write",
    "Microsoft.Network/virtualNetworks/write",
    "Microsoft.Network/virtualNetworks/read",
    "Microsoft.Resources/tags/write",
    "Microsoft.Resources/deployments/write",
    "Microsoft.Authorization/roleAssignments/write",
    "Microsoft.Mission/communities/maintenanceMode/write",
    "Microsoft.Network/virtualNetworks/join/action",
    "Microsoft.Support/tickets/write",
    "Microsoft.Network/virtualHubs/write",
    "Microsoft.Mission/approvals/approve/action",
    "Microsoft.Mission/approvals/reject/action",
];
const SCOPES: &[&str] = &[
    "/",
    "/communities/c1",
    "/communities/c1/managed",
    "/communities/c1/virtualEnclaves/e1",
    "/communities/c1/virtualEnclaves/e1/managed",
    "/communities/c1/virtualEnclaves/e1/workloads/w1",
    "/communities/c1/virtualEnclaves/e1/workloads/w2",
    "/communities/c1/virtualEnclaves/e2",
    "/communities/c1/virtualEnclaves/e2/managed",
    "/communities/c2",
    "/communities/c2/virtualEnclaves/e3",
    "/communities/c2/virtualEnclaves/e3/workloads/w1",
];
/// Scopes asked about: the above and some below them.
const ASKED: &[&str] = &[
    "/communities/c1/virtualEnclaves/e1/managed/providers/microsoft.network/virtualnetworks/v",
    "/communities/c1/virtualEnclaves/e1/workloads/w1/vm",
    "/communities/c2/managed",
    "/communities/c1/virtualEnclaves/e9",
];
const ENCLAVES: &[&str] = &[
    "/communities/c1/virtualEnclaves/e1",
    "/communities/c1/virtualEnclaves/e2",
    "/communities/c2/virtualEnclaves/e3",
];
const WORKLOADS: &[&str] = &[
    "/communities/c1/virtualEnclaves/e1/workloads/w1",
    "/communities/c1/virtualEnclaves/e1/workloads/w2",
    "/communities/c2/virtualEnclaves/e3/workloads/w1",
];

fn principals() -> impl Strategy<Value = &'static str> {
    prop::sample::select([USERS, GROUPS].concat())
}

fn some_principals(max: usize) -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(principals(), 0..=max)
}

fn window() -> impl Strategy<Value = (Option<i64>, Option<i64>)> {
    prop_oneof![
        3 => Just((None, None)),
        1 => (-120i64..120, 1i64..240).prop_map(|(start, len)| (Some(start), Some(start + len))),
        1 => (-120i64..120).prop_map(|start| (Some(start), None)),
        1 => (-120i64..120).prop_map(|end| (None, Some(end))),
    ]
}

fn minutes(m: Option<i64>) -> serde_json::Value {
    m.map_or(serde_json::Value::Null, |m| json!(after(m).to_rfc3339()))
}

fn permissions() -> impl Strategy<Value = serde_json::Value> {
    (
        prop::collection::vec(prop::sample::select(PATTERNS), 1..3),
        prop::collection::vec(prop::sample::select(PATTERNS), 0..2),
        prop::collection::vec(prop::sample::select(PATTERNS), 0..2),
    )
        .prop_map(|(actions, not_actions, data_actions)| {
            json!({"actions": actions, "notActions": not_actions, "dataActions": data_actions})
        })
}

/// A command and who runs it (platform for administration; the user itself for
/// activations).
fn command() -> impl Strategy<Value = (&'static str, serde_json::Value)> {
    let id = || (0u8..40).prop_map(|i| format!("x{i}"));
    // Few eligibilities, so that activations find them.
    let eligible_id = || (0u8..3).prop_map(|i| format!("el{i}"));
    prop_oneof![
        20 => (id(), principals(), prop::sample::select(ROLES), prop::sample::select(SCOPES), window()).prop_map(
            |(id, principal, role, scope, (nb, na))| ("platform", json!({"assignRole": {"id": id, "principalId": principal,
                "roleDefinitionId": role, "scope": scope, "notBefore": minutes(nb), "notAfter": minutes(na)}}))),
        3 => (prop::sample::select(GROUPS), principals()).prop_map(|(group, member)| ("platform", json!({"addGroupMember": {"group": group, "member": member}}))),
        1 => (prop::sample::select(GROUPS), principals()).prop_map(|(group, member)| ("platform", json!({"removeGroupMember": {"group": group, "member": member}}))),
        3 => (id(), prop::sample::select(SCOPES), permissions(), prop::option::of(some_principals(2)), some_principals(2), any::<bool>()).prop_map(
            |(id, scope, permissions, listed, excluded, here_only)| ("platform", json!({"createDenyAssignment": {"id": id, "scope": scope,
                "permissions": permissions, "principals": listed.map_or(json!("Everyone"), |l| json!(l)),
                "excludePrincipals": excluded, "doNotApplyToChildScopes": here_only}}))),
        3 => (prop::sample::select(["/communities/c1", "/communities/c2", ENCLAVES[0], ENCLAVES[1], ENCLAVES[2]].to_vec()),
              prop::sample::select(vec!["Off", "General", "Advanced"]), some_principals(2), prop::option::of(1i64..300)).prop_map(
            |(scope, mode, principals, expires)| {
                let off = mode == "Off";
                ("platform", json!({"setMaintenanceMode": {"scope": scope, "configuration": {"mode": mode,
                    "principals": if off { vec![] } else { principals },
                    "justification": if off { "Off" } else { "Networking" },
                    "expiresAt": if off { serde_json::Value::Null } else { minutes(expires) }}}}))
            }),
        2 => (prop::sample::select(WORKLOADS), any::<bool>(), some_principals(2)).prop_map(|(id, protected, privileged)|
            ("platform", json!({"updateWorkload": {"id": id, "protected": protected, "privilegedPrincipals": privileged}}))),
        2 => (prop::sample::select(vec!["r1", "r2"]), permissions()).prop_map(|(id, permissions)|
            ("platform", json!({"defineRole": {"id": id, "permissions": permissions, "assignableScopes": ["/"]}}))),
        4 => (id(), eligible_id(), prop::sample::select(USERS), 1u32..60).prop_map(|(id, eligible, user, minutes)|
            (user, json!({"activateRole": {"id": id, "eligibleAssignmentId": eligible, "justification": "on call", "durationMinutes": minutes}}))),
        2 => prop_oneof![
            id().prop_map(|id| ("platform", json!({"removeRoleAssignment": {"id": id}}))),
            id().prop_map(|id| ("platform", json!({"deleteDenyAssignment": {"id": id}}))),
            eligible_id().prop_map(|id| ("platform", json!({"removeEligibleRole": {"id": id}}))),
            id().prop_map(|id| ("platform", json!({"deactivateRole": {"id": id}}))),
        ],
        1 => prop_oneof![
            prop::sample::select(WORKLOADS).prop_map(|id| ("platform", json!({"deleteWorkload": {"id": id}}))),
            prop::sample::select(ENCLAVES).prop_map(|id| ("platform", json!({"deleteVirtualEnclave": {"id": id}}))),
            prop::sample::select(USERS).prop_map(|id| ("platform", json!({"deletePrincipal": {"id": id}}))),
        ],
    ]
}

/// An eligibility, made before the random commands so that activations can find it.
fn eligibility() -> impl Strategy<Value = (&'static str, serde_json::Value)> {
    (0u8..3, principals(), prop::sample::select(ROLES), prop::sample::select(SCOPES), 1u8..4, window()).prop_map(
        |(id, principal, role, scope, hours, (nb, na))| ("platform", json!({"assignEligibleRole": {"id": format!("el{id}"),
            "principalId": principal, "roleDefinitionId": role, "scope": scope, "maxActivationHours": hours,
            "notBefore": minutes(nb), "notAfter": minutes(na)}})))
}

fn start() -> PolicyState {
    let mut principals: Vec<_> = USERS
        .iter()
        .map(|u| json!({"id": u, "type": "User"}))
        .collect();
    principals.extend(GROUPS.iter().map(|g| json!({"id": g, "type": "Group"})));
    load(json!({
        "principals": principals,
        "communities": [
            {"id": "/communities/c1", "addressSpace": "10.0.0.0/8"},
            {"id": "/communities/c2", "addressSpace": "172.16.0.0/12"}
        ],
        "virtualEnclaves": [
            {"id": ENCLAVES[0], "addressSpace": "10.1.0.0/16"},
            {"id": ENCLAVES[1], "addressSpace": "10.2.0.0/16"},
            {"id": ENCLAVES[2], "addressSpace": "172.16.1.0/24"}
        ],
        "workloads": WORKLOADS.iter().map(|w| json!({"id": w})).collect::<Vec<_>>()
    }))
}

/// Runs the commands (refused ones change nothing) and returns the state and every event.
fn build(commands: &[(&str, serde_json::Value)]) -> (PolicyState, Vec<Event>) {
    let mut state = start();
    let mut log = Vec::new();
    for (actor, command) in commands {
        let Ok(command) = serde_json::from_value::<Command>(strip_nulls(command.clone())) else {
            continue;
        };
        if let Ok(events) = state.execute(&p(actor), &command, t0()) {
            for event in &events {
                state.apply(event).unwrap_or_else(|e| panic!("{e}"));
            }
            log.extend(events);
        }
    }
    (state, log)
}

fn strip_nulls(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

#[derive(Debug, Clone)]
struct Ask {
    principal: &'static str,
    operation: Operation,
    scope: Scope,
    at: Timestamp,
}

fn ask() -> impl Strategy<Value = Ask> {
    let who = prop_oneof![
        6 => prop::sample::select(USERS),
        1 => prop::sample::select([GROUPS, &["platform", "stranger"]].concat()),
    ];
    let scope = prop::sample::select([SCOPES, ASKED].concat());
    (
        who,
        prop::sample::select(OPS),
        scope,
        prop::sample::select(vec![-30i64, 0, 30, 90, 200, 400]),
    )
        .prop_map(|(principal, operation, scope, minutes)| Ask {
            principal,
            operation: op(operation),
            scope: s(scope),
            at: after(minutes),
        })
}

fn check(state: &PolicyState, a: &Ask) -> Decision {
    state.check(&p(a.principal), &a.operation, &a.scope, a.at)
}

fn commands() -> impl Strategy<Value = Vec<(&'static str, serde_json::Value)>> {
    (
        prop::collection::vec(eligibility(), 0..4),
        prop::collection::vec(command(), 0..60),
    )
        .prop_map(|(mut first, then)| {
            first.extend(then);
            first
        })
}

proptest! {
    // Extra assignments are sometimes refused (a scope deleted by the commands, an empty
    // list); those cases are skipped, so allow many rejects when many cases are asked for
    // (`PROPTEST_CASES`, default 256).
    #![proptest_config(ProptestConfig {
        max_global_rejects: 1_000_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_index_agrees_with_the_reference_model(commands in commands(), asks in prop::collection::vec(ask(), 1..30)) {
        let (state, _) = build(&commands);
        for a in &asks {
            let expected = reference::check(&state, &p(a.principal), &a.operation, &a.scope, a.at);
            prop_assert_eq!(check(&state, a), expected, "{:?}", a);
        }
    }

    #[test]
    fn decisions_are_deterministic(commands in commands(), asks in prop::collection::vec(ask(), 1..10)) {
        let (state, _) = build(&commands);
        let (again, _) = build(&commands);
        let reloaded = PolicyState::from_json(&state.to_json_pretty()).unwrap();
        for a in &asks {
            let d = check(&state, a);
            prop_assert_eq!(&d, &check(&state, a));
            prop_assert_eq!(&d, &check(&again, a));
            // A freshly built index decides like the incrementally maintained one.
            prop_assert_eq!(&d, &check(&reloaded, a));
            let (mut x, mut y) = (Vec::new(), Vec::new());
            ciborium::into_writer(&d, &mut x).unwrap();
            ciborium::into_writer(&check(&again, a), &mut y).unwrap();
            prop_assert_eq!(x, y);
        }
    }

    #[test]
    fn replaying_the_events_gives_an_equal_state(commands in commands()) {
        let (state, log) = build(&commands);
        let mut cbor = Vec::new();
        ciborium::into_writer(&log, &mut cbor).unwrap();
        let decoded: Vec<Event> = ciborium::from_reader(cbor.as_slice()).unwrap();
        let mut replayed = start();
        for event in &decoded {
            replayed.apply(event).unwrap();
        }
        prop_assert_eq!(&replayed, &state);
        prop_assert_eq!(replayed.to_json_pretty(), state.to_json_pretty());
    }

    #[test]
    fn adding_a_role_assignment_never_turns_an_allow_into_a_deny(
        commands in commands(),
        extra in (principals(), prop::sample::select(ROLES), prop::sample::select(SCOPES), window()),
        asks in prop::collection::vec(ask(), 1..20),
    ) {
        let (state, _) = build(&commands);
        let (principal, role, scope, (nb, na)) = extra;
        let mut more = state.clone();
        let add = strip_nulls(json!({"assignRole": {"id": "extra", "principalId": principal, "roleDefinitionId": role,
            "scope": scope, "notBefore": minutes(nb), "notAfter": minutes(na)}}));
        prop_assume!(run(&mut more, "platform", cmd(add)).is_ok());
        for a in &asks {
            if check(&state, a).allowed {
                prop_assert!(check(&more, a).allowed, "{:?}", a);
            }
        }
    }

    #[test]
    fn adding_a_deny_assignment_never_turns_a_deny_into_an_allow(
        commands in commands(),
        extra in (
            prop::sample::select(SCOPES),
            permissions(),
            prop::option::of(prop::collection::vec(principals(), 1..=2)),
            some_principals(2),
            any::<bool>(),
        ),
        asks in prop::collection::vec(ask(), 1..20),
    ) {
        let (state, _) = build(&commands);
        let (scope, permissions, listed, excluded, here_only) = extra;
        let mut more = state.clone();
        let add = json!({"createDenyAssignment": {"id": "extra", "scope": scope, "permissions": permissions,
            "principals": listed.map_or(json!("Everyone"), |l| json!(l)), "excludePrincipals": excluded,
            "doNotApplyToChildScopes": here_only}});
        prop_assume!(run(&mut more, "platform", cmd(add)).is_ok());
        for a in &asks {
            if !check(&state, a).allowed {
                prop_assert!(!check(&more, a).allowed, "{:?}", a);
            }
        }
    }

    #[test]
    fn a_principal_excluded_from_every_deny_gets_exactly_what_its_roles_give(
        commands in commands(),
        who in prop::sample::select(USERS),
        asks in prop::collection::vec(ask(), 1..20),
    ) {
        let (state, _) = build(&commands);
        // Exclude `who` from every deny assignment there is: custom ones, the platform's
        // (maintenance mode Advanced naming it) and protected workloads' (privileged).
        let mut doc: PolicyDocument = state.to_document();
        let id = p(who);
        for d in &mut doc.deny_assignments {
            d.exclude_principals.insert(id.clone());
        }
        let maintained = MaintenanceModeConfiguration {
            mode: MaintenanceMode::Advanced,
            principals: [id.clone()].into(),
            justification: MaintenanceJustification::Governance,
            expires_at: None,
        };
        for c in &mut doc.communities {
            c.maintenance_mode_configuration = maintained.clone();
        }
        for e in &mut doc.virtual_enclaves {
            e.maintenance_mode_configuration = maintained.clone();
        }
        for w in &mut doc.workloads {
            w.privileged_principals.insert(id.clone());
        }
        prop_assume!(doc.principals.iter().any(|p| p.id == id));
        let excluded = PolicyState::from_document(&doc).unwrap();
        for a in &asks {
            let d = excluded.check(&id, &a.operation, &a.scope, a.at);
            prop_assert!(!matches!(d.reason, Reason::DenyAssignments(_)), "{:?}", d);
            let roles_give = reference::roles_grant(&excluded, &id, &a.operation, &a.scope, a.at);
            prop_assert_eq!(d.allowed, roles_give, "{:?}", a);
        }
        // And the deny assignments themselves were untouched but for the exclusion.
        for (before, after) in state.deny_assignments().zip(excluded.deny_assignments()) {
            prop_assert_eq!(&before.principals, &after.principals);
            prop_assert!(!matches!(after.principals, DenyPrincipals::Listed(ref l) if l.is_empty()));
        }
    }
}
