//! SPEC-policy section 3: roles and role assignments, one row per sentence of the spec.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "helper functions of tests fail loudly, like the tests themselves"
)]

mod common;

use common::*;
use ea_policy::{Refusal, APPROVE, REJECT};
use serde_json::json;

/// A row: assignments given (id, principal, role, scope), then who asks what where, and the
/// expected answer.
struct Row {
    rule: &'static str,
    assignments: &'static [(&'static str, &'static str, &'static str)],
    who: &'static str,
    op: &'static str,
    scope: &'static str,
    allowed: bool,
}

const ROWS: &[Row] = &[
    Row {
        rule: "permissions granted at a scope reach every scope below it",
        assignments: &[("alice", "Contributor", C1)],
        who: "alice",
        op: "Microsoft.Compute/virtualMachines/write",
        scope: W1,
        allowed: true,
    },
    Row {
        rule: "...and not the scope above it",
        assignments: &[("alice", "Contributor", E1)],
        who: "alice",
        op: "Microsoft.Compute/virtualMachines/write",
        scope: C1,
        allowed: false,
    },
    Row {
        rule: "...nor a sibling",
        assignments: &[("alice", "Contributor", E1)],
        who: "alice",
        op: "Microsoft.Compute/virtualMachines/write",
        scope: E2,
        allowed: false,
    },
    Row {
        rule: "an assignment at / reaches every community",
        assignments: &[("alice", "Reader", "/")],
        who: "alice",
        op: "Microsoft.Compute/virtualMachines/read",
        scope: W2,
        allowed: true,
    },
    Row {
        rule: "matching is case-insensitive (operation)",
        assignments: &[("alice", "Reader", C1)],
        who: "alice",
        op: "MICROSOFT.COMPUTE/VIRTUALMACHINES/READ",
        scope: E1,
        allowed: true,
    },
    Row {
        rule: "matching is case-insensitive (scope)",
        assignments: &[("alice", "Reader", C1)],
        who: "alice",
        op: "Microsoft.Compute/virtualMachines/read",
        scope: "/COMMUNITIES/C1/virtualenclaves/E1",
        allowed: true,
    },
    Row {
        rule: "* matches any run of characters, / included",
        assignments: &[("alice", "Enclave Contributor", E1)],
        who: "alice",
        op: "Microsoft.Network/virtualNetworks/subnets/write",
        scope: E1,
        allowed: true,
    },
    Row {
        rule: "an op matching Actions but also NotActions of the same role is not granted",
        assignments: &[("alice", "Contributor", C1)],
        who: "alice",
        op: "Microsoft.Authorization/roleAssignments/write",
        scope: E1,
        allowed: false,
    },
    Row {
        rule: "NotActions only subtracts inside its own role: another role still grants",
        assignments: &[("alice", "Contributor", C1), ("alice", "Enclave Owner", E1)],
        who: "alice",
        op: "Microsoft.Authorization/roleAssignments/write",
        scope: E1,
        allowed: true,
    },
    Row {
        rule: "* in Actions grants no data action",
        assignments: &[("alice", "Owner", "/")],
        who: "alice",
        op: APPROVE,
        scope: E1,
        allowed: false,
    },
    Row {
        rule: "additive across assignments: direct Reader plus Contributor through a group",
        assignments: &[("bob", "Reader", E1), ("team", "Contributor", E1)],
        who: "bob",
        op: "Microsoft.Compute/virtualMachines/write",
        scope: W1,
        allowed: true,
    },
    Row {
        rule: "group membership is transitive (nested groups)",
        assignments: &[("admins", "Contributor", C1)],
        who: "bob",
        op: "Microsoft.Compute/virtualMachines/write",
        scope: W1,
        allowed: true,
    },
    Row {
        rule: "a group's assignment does not reach non-members",
        assignments: &[("admins", "Contributor", C1)],
        who: "dave",
        op: "Microsoft.Compute/virtualMachines/write",
        scope: W1,
        allowed: false,
    },
    Row {
        rule: "owners may assign roles at their scope: Owner",
        assignments: &[("alice", "Owner", E1)],
        who: "alice",
        op: "Microsoft.Authorization/roleAssignments/write",
        scope: W1,
        allowed: true,
    },
    Row {
        rule: "owners may assign roles: Community Owner",
        assignments: &[("alice", "Community Owner", C1)],
        who: "alice",
        op: "Microsoft.Authorization/roleAssignments/write",
        scope: E1,
        allowed: true,
    },
    Row {
        rule: "owners may assign roles: Enclave Owner",
        assignments: &[("alice", "Enclave Owner", E1)],
        who: "alice",
        op: "Microsoft.Authorization/roleAssignments/write",
        scope: E1,
        allowed: true,
    },
    Row {
        rule: "contributors cannot assign roles: Community Contributor",
        assignments: &[("alice", "Community Contributor", C1)],
        who: "alice",
        op: "Microsoft.Authorization/roleAssignments/write",
        scope: E1,
        allowed: false,
    },
    Row {
        rule: "contributors cannot assign roles: Enclave Contributor",
        assignments: &[("alice", "Enclave Contributor", E1)],
        who: "alice",
        op: "Microsoft.Authorization/roleAssignments/write",
        scope: E1,
        allowed: false,
    },
    Row {
        rule: "only owners may change maintenance mode: Community Owner",
        assignments: &[("alice", "Community Owner", C1)],
        who: "alice",
        op: "Microsoft.Mission/communities/maintenanceMode/write",
        scope: C1,
        allowed: true,
    },
    Row {
        rule: "only owners may change maintenance mode: not Community Contributor",
        assignments: &[("alice", "Community Contributor", C1)],
        who: "alice",
        op: "Microsoft.Mission/communities/maintenanceMode/write",
        scope: C1,
        allowed: false,
    },
    Row {
        rule: "only owners may change maintenance mode: not Contributor",
        assignments: &[("alice", "Contributor", C1)],
        who: "alice",
        op: "Microsoft.Mission/virtualEnclaves/maintenanceMode/write",
        scope: E1,
        allowed: false,
    },
    Row {
        rule: "only owners may change maintenance mode: Enclave Owner",
        assignments: &[("alice", "Enclave Owner", E1)],
        who: "alice",
        op: "Microsoft.Mission/virtualEnclaves/maintenanceMode/write",
        scope: E1,
        allowed: true,
    },
    Row {
        rule: "only owners may change maintenance mode: not Enclave Contributor",
        assignments: &[("alice", "Enclave Contributor", E1)],
        who: "alice",
        op: "Microsoft.Mission/virtualEnclaves/maintenanceMode/write",
        scope: E1,
        allowed: false,
    },
    Row {
        rule: "no owner can approve without the Approver role",
        assignments: &[
            ("alice", "Community Owner", C1),
            ("alice", "Enclave Owner", E1),
        ],
        who: "alice",
        op: REJECT,
        scope: E1,
        allowed: false,
    },
    Row {
        rule: "the Enclave Approver approves",
        assignments: &[("alice", "Enclave Approver", C1)],
        who: "alice",
        op: APPROVE,
        scope: E1,
        allowed: true,
    },
    Row {
        rule: "the Approver role grants no write, so it never initiates a change",
        assignments: &[("alice", "Enclave Approver", C1)],
        who: "alice",
        op: "Microsoft.Mission/virtualEnclaves/write",
        scope: E1,
        allowed: false,
    },
];

#[test]
fn rows() {
    for row in ROWS {
        let mut state = base();
        for (i, (principal, role, scope)) in row.assignments.iter().enumerate() {
            assign(&mut state, &format!("ra-{i}"), principal, role, scope);
        }
        let decision = decide(&state, row.who, row.op, row.scope);
        assert_eq!(decision.allowed, row.allowed, "{}: {decision:?}", row.rule);
    }
}

#[test]
fn assignments_exist_only_inside_their_window() {
    let mut state = base();
    setup(
        &mut state,
        json!({"assignRole": {"id": "ra-w", "principalId": "alice", "roleDefinitionId": "Reader",
            "scope": C1, "notBefore": "2025-06-01T12:00:00Z", "notAfter": "2025-06-01T13:00:00Z"}}),
    );
    let read = op("Microsoft.Compute/virtualMachines/read");
    let at = |minutes| decide_at(&state, "alice", &read, E1, after(minutes)).allowed;
    assert!(!at(-1), "before notBefore");
    assert!(at(0), "at notBefore");
    assert!(at(59), "inside");
    assert!(!at(60), "at notAfter");
}

#[test]
fn custom_roles_need_role_definitions_write() {
    let mut state = base();
    assign(&mut state, "ra-1", "alice", "Enclave Owner", E1);
    assign(&mut state, "ra-2", "bob", "Enclave Contributor", E1);
    let define = json!({"defineRole": {"id": "Approver Lite", "permissions": {
        "actions": ["*/read"], "dataActions": [APPROVE]}, "assignableScopes": [E1]}});
    let refused = run(&mut state, "bob", cmd(define.clone())).unwrap_err();
    assert!(
        matches!(refused, Refusal::NotAuthorized { .. }),
        "{refused:?}"
    );
    run(&mut state, "alice", cmd(define)).unwrap();
    // A custom role listing the data action lets its holder approve.
    run(
        &mut state,
        "alice",
        cmd(json!({"assignRole": {"id": "ra-3", "principalId": "carol", "roleDefinitionId": "Approver Lite", "scope": E1}})),
    )
    .unwrap();
    assert!(allowed(&state, "carol", APPROVE, W1));
    assert!(!allowed(
        &state,
        "carol",
        "Microsoft.Mission/virtualEnclaves/write",
        E1
    ));
    // It cannot be assigned outside its assignable scopes.
    let outside = run(
        &mut state,
        "platform",
        cmd(json!({"assignRole": {"id": "ra-4", "principalId": "carol", "roleDefinitionId": "Approver Lite", "scope": E2}})),
    )
    .unwrap_err();
    assert!(outside.to_string().contains("not assignable"), "{outside}");
}

mod just_in_time {
    use super::*;
    use ea_policy::{Event, Problem};

    fn eligible(state: &mut ea_policy::PolicyState, principal: &str, max_hours: Option<u8>) {
        let mut a = json!({"id": "el-1", "principalId": principal, "roleDefinitionId": "Contributor", "scope": E1});
        if let Some(h) = max_hours {
            a["maxActivationHours"] = json!(h);
        }
        setup(state, json!({"assignEligibleRole": a}));
    }

    fn activate(minutes: u32, justification: &str) -> ea_policy::Command {
        cmd(
            json!({"activateRole": {"id": "act-1", "eligibleAssignmentId": "el-1",
            "justification": justification, "durationMinutes": minutes}}),
        )
    }

    const WRITE: &str = "Microsoft.Compute/virtualMachines/write";

    #[test]
    fn eligible_grants_nothing_until_activated() {
        let mut state = base();
        eligible(&mut state, "alice", None);
        assert!(!allowed(&state, "alice", WRITE, W1));
        run(&mut state, "alice", activate(60, "incident 42")).unwrap();
        let decision = decide(&state, "alice", WRITE, W1);
        assert!(decision.allowed);
        assert_eq!(granted_by(&decision).as_deref(), Some("activation:act-1"));
    }

    #[test]
    fn activation_needs_a_justification() {
        let mut state = base();
        eligible(&mut state, "alice", None);
        let refused = run(&mut state, "alice", activate(60, "  ")).unwrap_err();
        assert!(
            matches!(&refused, Refusal::Invalid(i) if i.field == "justification"),
            "{refused:?}"
        );
    }

    #[test]
    fn activation_lasts_at_most_max_activation_default_eight_hours() {
        let mut state = base();
        eligible(&mut state, "alice", None);
        let refused = run(&mut state, "alice", activate(8 * 60 + 1, "x")).unwrap_err();
        assert!(
            matches!(&refused, Refusal::Invalid(i) if i.field == "durationMinutes"),
            "{refused:?}"
        );
        run(&mut state, "alice", activate(8 * 60, "x")).unwrap();

        let mut state = base();
        eligible(&mut state, "alice", Some(1));
        assert!(run(&mut state, "alice", activate(61, "x")).is_err());
        assert!(run(&mut state, "alice", activate(60, "x")).is_ok());
    }

    #[test]
    fn max_activation_is_one_to_twenty_four_hours() {
        for (hours, ok) in [(0u8, false), (1, true), (24, true), (25, false)] {
            let mut state = base();
            let a = json!({"assignEligibleRole": {"id": "el-1", "principalId": "alice",
                "roleDefinitionId": "Contributor", "scope": E1, "maxActivationHours": hours}});
            assert_eq!(run(&mut state, "platform", cmd(a)).is_ok(), ok, "{hours}");
        }
    }

    #[test]
    fn only_the_eligible_principal_or_a_member_of_the_eligible_group_activates_for_itself() {
        let mut state = base();
        eligible(&mut state, "admins", None);
        let refused = run(&mut state, "dave", activate(60, "x")).unwrap_err();
        assert!(
            matches!(&refused, Refusal::Invalid(i) if matches!(i.problem, Problem::NotEligible(_))),
            "{refused:?}"
        );
        // bob is in team, team is in admins.
        run(&mut state, "bob", activate(60, "x")).unwrap();
        assert!(allowed(&state, "bob", WRITE, W1));
        assert!(
            !allowed(&state, "carol", WRITE, W1),
            "carol did not activate"
        );
    }

    #[test]
    fn leaving_the_eligible_group_ends_the_activation() {
        let mut state = base();
        eligible(&mut state, "team", None);
        run(&mut state, "bob", activate(60, "x")).unwrap();
        assert!(allowed(&state, "bob", WRITE, W1));
        let events = run(
            &mut state,
            "platform",
            cmd(json!({"removeGroupMember": {"group": "team", "member": "bob"}})),
        )
        .unwrap();
        assert!(
            matches!(events.first(), Some(Event::RoleActivationEnded { .. })),
            "{events:?}"
        );
        assert!(!allowed(&state, "bob", WRITE, W1));
        // The state is still one a policy file can describe.
        assert!(ea_policy::PolicyState::from_json(&state.to_json_pretty()).is_ok());
    }

    #[test]
    fn an_activation_ends_by_itself_when_its_window_closes() {
        let mut state = base();
        eligible(&mut state, "alice", None);
        run(&mut state, "alice", activate(30, "x")).unwrap();
        let write = op(WRITE);
        assert!(decide_at(&state, "alice", &write, W1, after(29)).allowed);
        assert!(!decide_at(&state, "alice", &write, W1, after(30)).allowed);
        assert!(state.due_events(after(29)).is_empty());
        let due = state.due_events(after(45));
        assert!(
            matches!(due.as_slice(), [Event::RoleActivationEnded { at, .. }] if *at == after(30)),
            "{due:?}"
        );
        for e in &due {
            state.apply(e).unwrap();
        }
        assert_eq!(state.activations().count(), 0);
    }

    #[test]
    fn activation_is_governed_when_role_activation_says_so() {
        let mut state = base();
        eligible(&mut state, "alice", None);
        setup(
            &mut state,
            json!({"setApprovalSettings": {"scope": C1, "settings": {"roleActivation": {
                "approvalPolicy": "Required", "minimumApproversRequired": 1}}}}),
        );
        let refused = run(&mut state, "alice", activate(60, "x")).unwrap_err();
        assert!(
            matches!(&refused, Refusal::ApprovalRequired(g) if g.key == ea_policy::ApprovalKey::RoleActivation),
            "{refused:?}"
        );
    }
}
