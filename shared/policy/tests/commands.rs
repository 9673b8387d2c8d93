//! Commands: validation, authorization, governance, cascades.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "helper functions of tests fail loudly, like the tests themselves"
)]

mod common;

use common::*;
use ea_policy::{Event, Invalid, PolicyState, Problem, Refusal, ScopeKind};
use serde_json::{json, Value};

fn refusal(state: &PolicyState, actor: &str, command: Value) -> Refusal {
    state
        .execute(&p(actor), &cmd(command.clone()), t0())
        .expect_err(&format!("{command} should be refused"))
}

fn invalid(state: &PolicyState, command: Value) -> Invalid {
    match refusal(state, "platform", command) {
        Refusal::Invalid(i) => i,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

mod address_spaces {
    use super::*;

    #[test]
    fn an_enclave_lies_inside_its_community() {
        let state = base();
        let i = invalid(
            &state,
            json!({"createVirtualEnclave": {"id": "/communities/c1/virtualEnclaves/e9", "addressSpace": "192.168.0.0/16"}}),
        );
        assert_eq!(i.field, "addressSpace");
        assert!(
            matches!(i.problem, Problem::OutsideAddressSpace { .. }),
            "{i}"
        );
    }

    #[test]
    fn siblings_do_not_overlap() {
        let state = base();
        for overlapping in ["10.1.128.0/17", "10.0.0.0/14", "10.2.0.0/16"] {
            let i = invalid(
                &state,
                json!({"createVirtualEnclave": {"id": "/communities/c1/virtualEnclaves/e9", "addressSpace": overlapping}}),
            );
            assert!(
                matches!(i.problem, Problem::OverlapsSibling { .. }),
                "{overlapping}: {i}"
            );
        }
        let mut state = base();
        setup(
            &mut state,
            json!({"createVirtualEnclave": {"id": "/communities/c1/virtualEnclaves/e9", "addressSpace": "10.3.0.0/16"}}),
        );
        // An enclave does not overlap itself when it grows.
        setup(
            &mut state,
            json!({"updateVirtualEnclave": {"id": E1, "addressSpace": "10.1.0.0/17"}}),
        );
        let i = invalid(
            &state,
            json!({"updateVirtualEnclave": {"id": E1, "addressSpace": "10.0.0.0/14"}}),
        );
        assert!(matches!(i.problem, Problem::OverlapsSibling { .. }), "{i}");
    }

    #[test]
    fn enclaves_of_other_communities_are_not_siblings() {
        let mut state = base();
        setup(
            &mut state,
            json!({"createCommunity": {"id": "/communities/c2", "addressSpace": "10.0.0.0/8"}}),
        );
        setup(
            &mut state,
            json!({"createVirtualEnclave": {"id": "/communities/c2/virtualEnclaves/x", "addressSpace": "10.1.0.0/16"}}),
        );
    }

    #[test]
    fn a_community_cannot_shrink_away_from_its_enclaves() {
        let state = base();
        let i = invalid(
            &state,
            json!({"updateCommunity": {"id": C1, "addressSpace": "10.1.0.0/16"}}),
        );
        assert!(matches!(i.problem, Problem::WouldExclude { .. }), "{i}");
    }

    #[test]
    fn connections_stay_inside_their_source() {
        let mut state = base();
        setup(
            &mut state,
            json!({"createEndpoint": {"id": "/communities/c1/communityEndpoints/out", "ruleCollection": [
            {"endpointRuleName": "r", "destination": "0.0.0.0/0", "ports": "*", "protocols": ["ANY"]}]}}),
        );
        let conn = |cidr: &str| {
            json!({"createConnection": {"id": "/communities/c1/enclaveConnections/k", "sourceResourceId": E1,
            "sourceCidr": cidr, "destinationEndpointId": "/communities/c1/communityEndpoints/out"}})
        };
        assert_eq!(invalid(&state, conn("10.2.0.0/24")).field, "sourceCidr");
        setup(&mut state, conn("10.1.3.0/24"));
        let i = invalid(
            &state,
            json!({"updateVirtualEnclave": {"id": E1, "addressSpace": "10.1.0.0/23"}}),
        );
        assert!(matches!(i.problem, Problem::WouldExclude { .. }), "{i}");
    }
}

mod references {
    use super::*;

    #[test]
    fn assignment_scopes_must_exist() {
        let state = base();
        let i = invalid(
            &state,
            json!({"assignRole": {"id": "x", "principalId": "alice", "roleDefinitionId": "Reader",
            "scope": "/communities/c1/virtualEnclaves/nope"}}),
        );
        assert_eq!(i.field, "scope");
        // Below a managed group or workload anything exists once the group does.
        let mut state = base();
        setup(
            &mut state,
            json!({"assignRole": {"id": "x", "principalId": "alice", "roleDefinitionId": "Reader",
            "scope": format!("{W1}/providers/Microsoft.Compute/virtualMachines/vm1")}}),
        );
    }

    #[test]
    fn principals_and_roles_must_exist_and_assignments_be_unique() {
        let mut state = base();
        assert_eq!(invalid(&state, json!({"assignRole": {"id": "x", "principalId": "ghost", "roleDefinitionId": "Reader", "scope": C1}})).field, "principalId");
        assert_eq!(invalid(&state, json!({"assignRole": {"id": "x", "principalId": "alice", "roleDefinitionId": "Janitor", "scope": C1}})).field, "roleDefinitionId");
        assign(&mut state, "x", "alice", "Reader", C1);
        let again = invalid(
            &state,
            json!({"assignRole": {"id": "y", "principalId": "alice", "roleDefinitionId": "Reader", "scope": "/COMMUNITIES/C1"}}),
        );
        assert!(
            matches!(again.problem, Problem::DuplicateAssignment(ref id) if id == "x"),
            "{again}"
        );
        let same_id = invalid(
            &state,
            json!({"assignRole": {"id": "x", "principalId": "bob", "roleDefinitionId": "Reader", "scope": C1}}),
        );
        assert!(
            matches!(same_id.problem, Problem::AlreadyExists { .. }),
            "{same_id}"
        );
        let window = invalid(
            &state,
            json!({"assignRole": {"id": "z", "principalId": "bob", "roleDefinitionId": "Reader", "scope": C1,
            "notBefore": "2025-01-02T00:00:00Z", "notAfter": "2025-01-01T00:00:00Z"}}),
        );
        assert_eq!(window.field, "notAfter");
    }

    #[test]
    fn scopes_must_have_the_right_kind() {
        let state = base();
        let i = invalid(&state, json!({"createWorkload": {"id": E2}}));
        assert!(
            matches!(
                i.problem,
                Problem::WrongScopeKind {
                    expected: ScopeKind::Workload,
                    ..
                }
            ),
            "{i}"
        );
        let i = invalid(
            &state,
            json!({"createWorkload": {"id": "/communities/c1/virtualEnclaves/nope/workloads/w"}}),
        );
        assert!(matches!(i.problem, Problem::NotFound { .. }), "{i}");
    }
}

mod groups {
    use super::*;

    #[test]
    fn cycles_are_refused() {
        let state = base();
        // admins contains team; team in turn may not contain admins.
        let i = invalid(
            &state,
            json!({"addGroupMember": {"group": "team", "member": "admins"}}),
        );
        assert!(matches!(i.problem, Problem::GroupCycle { .. }), "{i}");
        let i = invalid(
            &state,
            json!({"addGroupMember": {"group": "team", "member": "team"}}),
        );
        assert!(matches!(i.problem, Problem::GroupCycle { .. }), "{i}");
        let i = invalid(
            &state,
            json!({"addGroupMember": {"group": "alice", "member": "bob"}}),
        );
        assert!(matches!(i.problem, Problem::NotAGroup(_)), "{i}");
        let i = invalid(
            &state,
            json!({"addGroupMember": {"group": "team", "member": "bob"}}),
        );
        assert!(
            matches!(
                i.problem,
                Problem::Membership {
                    is_member: true,
                    ..
                }
            ),
            "{i}"
        );
    }

    #[test]
    fn membership_changes_take_effect() {
        let mut state = base();
        assign(&mut state, "ra", "admins", "Reader", C1);
        assert!(!allowed(&state, "dave", "Microsoft.Compute/disks/read", E1));
        setup(
            &mut state,
            json!({"addGroupMember": {"group": "team", "member": "dave"}}),
        );
        assert!(allowed(&state, "dave", "Microsoft.Compute/disks/read", E1));
        setup(
            &mut state,
            json!({"removeGroupMember": {"group": "team", "member": "dave"}}),
        );
        assert!(!allowed(&state, "dave", "Microsoft.Compute/disks/read", E1));
    }
}

mod principals {
    use super::*;

    /// 32 bytes of 0x11, base64.
    const KEY: &str = "ERERERERERERERERERERERERERERERERERERERERERE=";

    #[test]
    fn platform_cannot_be_a_principal() {
        let state = base();
        let i = invalid(
            &state,
            json!({"createPrincipal": {"id": "Platform", "type": "User"}}),
        );
        assert!(matches!(i.problem, Problem::ReservedPrincipalId(_)), "{i}");
    }

    #[test]
    fn keys_are_checked_and_revocation_is_final() {
        let mut state = base();
        let bad = invalid(
            &state,
            json!({"createPrincipal": {"id": "svc", "type": "ServicePrincipal",
            "keys": [{"keyId": "k1", "algorithm": "ES256", "publicKey": KEY}]}}),
        );
        assert_eq!(bad.field, "keys[0].publicKey");
        let key = json!({"keyId": "k1", "algorithm": "Ed25519", "publicKey": KEY});
        setup(
            &mut state,
            json!({"createPrincipal": {"id": "svc", "type": "ServicePrincipal", "keys": [key]}}),
        );
        let mut revoked = key.clone();
        revoked["revoked"] = json!(true);
        setup(
            &mut state,
            json!({"updatePrincipal": {"id": "svc", "type": "ServicePrincipal", "keys": [revoked]}}),
        );
        let i = invalid(
            &state,
            json!({"updatePrincipal": {"id": "svc", "type": "ServicePrincipal", "keys": [key]}}),
        );
        assert!(matches!(i.problem, Problem::KeyUnrevoked(_)), "{i}");
        let i = invalid(
            &state,
            json!({"updatePrincipal": {"id": "svc", "type": "ServicePrincipal", "keys": []}}),
        );
        assert!(matches!(i.problem, Problem::KeyRemoved(_)), "{i}");
        let i = invalid(
            &state,
            json!({"updatePrincipal": {"id": "svc", "type": "User"}}),
        );
        assert!(
            matches!(
                i.problem,
                Problem::KeyRemoved(_) | Problem::PrincipalTypeChanged
            ),
            "{i}"
        );
        let i = invalid(
            &state,
            json!({"createPrincipal": {"id": "g", "type": "Group", "keys": [key]}}),
        );
        assert!(matches!(i.problem, Problem::KeysOnGroup), "{i}");
    }

    #[test]
    fn deletion_takes_assignments_along_but_not_configuration() {
        let mut state = base();
        assign(&mut state, "ra-bob", "bob", "Reader", C1);
        setup(&mut state, json!({"deletePrincipal": {"id": "bob"}}));
        assert!(state.role_assignments().next().is_none());
        assert!(!state
            .principal(&p("team"))
            .unwrap()
            .members
            .contains(&p("bob")));

        let mut state = base();
        setup(
            &mut state,
            json!({"updateWorkload": {"id": W1, "protected": true, "privilegedPrincipals": ["carol"]}}),
        );
        let i = invalid(&state, json!({"deletePrincipal": {"id": "carol"}}));
        assert!(matches!(i.problem, Problem::InUse(_)), "{i}");
    }
}

mod authorization {
    use super::*;

    #[test]
    fn only_authorized_principals_change_anything() {
        let mut state = base();
        assign(&mut state, "ra", "alice", "Enclave Contributor", E1);
        let r = refusal(
            &state,
            "alice",
            json!({"assignRole": {"id": "x", "principalId": "alice", "roleDefinitionId": "Owner", "scope": E1}}),
        );
        match r {
            Refusal::NotAuthorized {
                operation,
                scope,
                decision,
                ..
            } => {
                assert_eq!(operation, "Microsoft.Authorization/roleAssignments/write");
                assert_eq!(scope, s(E1));
                assert!(!decision.allowed);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            refusal(&state, "ghost", json!({"deleteWorkload": {"id": W1}})),
            Refusal::UnknownActor(_)
        ));
        assert!(matches!(
            refusal(&state, "team", json!({"deleteWorkload": {"id": W1}})),
            Refusal::GroupCannotAct(_)
        ));
        run(&mut state, "alice", cmd(json!({"createWorkload": {"id": "/communities/c1/virtualEnclaves/e1/workloads/w3"}}))).unwrap();
        assert!(matches!(
            refusal(
                &state,
                "alice",
                json!({"createWorkload": {"id": "/communities/c1/virtualEnclaves/e2/workloads/w3"}})
            ),
            Refusal::NotAuthorized { .. }
        ));
    }

    #[test]
    fn authorization_comes_before_validation() {
        let state = base();
        // An unauthorized actor learns nothing about the address plan.
        let r = refusal(
            &state,
            "dave",
            json!({"createVirtualEnclave": {"id": "/communities/c1/virtualEnclaves/e9", "addressSpace": "10.1.0.0/16"}}),
        );
        assert!(matches!(r, Refusal::NotAuthorized { .. }), "{r:?}");
    }

    #[test]
    fn redefining_a_role_needs_the_right_at_its_old_scopes_too() {
        let mut state = base();
        setup(
            &mut state,
            json!({"defineRole": {"id": "ops", "permissions": {"actions": ["*/read"]}, "assignableScopes": [E2]}}),
        );
        assign(&mut state, "ra", "alice", "Enclave Owner", E1);
        let r = refusal(
            &state,
            "alice",
            json!({"defineRole": {"id": "ops", "permissions": {"actions": ["*"]}, "assignableScopes": [E1]}}),
        );
        assert!(
            matches!(r, Refusal::NotAuthorized { ref scope, .. } if *scope == s(E2)),
            "{r:?}"
        );
    }
}

mod governance {
    use super::*;
    use ea_policy::ApprovalKey;

    #[test]
    fn each_governed_command_reports_its_key() {
        let mut state = base();
        let required = json!({"approvalPolicy": "Required", "minimumApproversRequired": 1});
        setup(
            &mut state,
            json!({"setApprovalSettings": {"scope": C1, "settings": {
            "enclaveCreation": required, "connectionCreation": required, "enclaveEndpointUpdate": required,
            "communityEndpointUpdate": required, "communityMaintenanceMode": required, "enclaveMaintenanceMode": required}}}),
        );
        assign(&mut state, "ra", "alice", "Owner", "/");
        let rule = json!([{"endpointRuleName": "r", "destination": "10.2.0.0/16", "ports": "*", "protocols": ["ANY"]}]);
        let cases = [
            (
                json!({"createVirtualEnclave": {"id": "/communities/c1/virtualEnclaves/e9", "addressSpace": "10.9.0.0/16"}}),
                ApprovalKey::EnclaveCreation,
            ),
            (
                json!({"createEndpoint": {"id": "/communities/c1/virtualEnclaves/e2/enclaveEndpoints/n", "ruleCollection": rule}}),
                ApprovalKey::EnclaveEndpointUpdate,
            ),
            (
                json!({"createEndpoint": {"id": "/communities/c1/communityEndpoints/n", "ruleCollection": rule}}),
                ApprovalKey::CommunityEndpointUpdate,
            ),
            (
                json!({"setMaintenanceMode": {"scope": C1, "configuration": {"mode": "Off", "justification": "Off"}}}),
                ApprovalKey::CommunityMaintenanceMode,
            ),
            (
                json!({"setMaintenanceMode": {"scope": E1, "configuration": {"mode": "Off", "justification": "Off"}}}),
                ApprovalKey::EnclaveMaintenanceMode,
            ),
        ];
        for (command, key) in cases {
            match refusal(&state, "alice", command.clone()) {
                Refusal::ApprovalRequired(g) => assert_eq!(g.key, key, "{command}"),
                other => panic!("{command}: {other:?}"),
            }
            // The engine itself applies approved changes.
            assert!(state.execute(&p("platform"), &cmd(command), t0()).is_ok());
        }
        // Ungoverned operations go through.
        run(&mut state, "alice", cmd(json!({"createWorkload": {"id": "/communities/c1/virtualEnclaves/e1/workloads/w9"}}))).unwrap();
    }

    #[test]
    fn an_enclave_can_tighten_but_not_loosen() {
        let mut state = base();
        setup(
            &mut state,
            json!({"setApprovalSettings": {"scope": C1, "settings": {
            "connectionCreation": {"approvalPolicy": "Required", "minimumApproversRequired": 2}}}}),
        );
        setup(
            &mut state,
            json!({"setApprovalSettings": {"scope": E1, "settings": {
            "connectionCreation": {"approvalPolicy": "NotRequired"}}}}),
        );
        let spec = json!({"id": "/communities/c1/enclaveConnections/k", "sourceResourceId": E1,
            "sourceCidr": "10.1.0.0/24", "destinationEndpointId": "/communities/c1/communityEndpoints/out"});
        let g = state
            .governance(&cmd(json!({"createConnection": spec.clone()})))
            .unwrap();
        assert!(g.required);
        assert_eq!(g.minimum_approvers_required, 2);
        setup(
            &mut state,
            json!({"setApprovalSettings": {"scope": E1, "settings": {
            "connectionCreation": {"approvalPolicy": "Required", "minimumApproversRequired": 3, "mandatoryApprovers": ["carol"]}}}}),
        );
        let g = state
            .governance(&cmd(json!({"createConnection": spec})))
            .unwrap();
        assert_eq!(g.minimum_approvers_required, 3);
        // Community-only keys are refused on an enclave.
        let i = invalid(
            &state,
            json!({"setApprovalSettings": {"scope": E1, "settings": {
            "enclaveCreation": {"approvalPolicy": "Required"}}}}),
        );
        assert_eq!(i.field, "settings.enclaveCreation");
        let i = invalid(
            &state,
            json!({"setApprovalSettings": {"scope": C1, "settings": {
            "enclaveCreation": {"approvalPolicy": "Required", "minimumApproversRequired": 0}}}}),
        );
        assert_eq!(i.field, "settings.enclaveCreation.minimumApproversRequired");
    }
}

mod deletion {
    use super::*;

    #[test]
    fn deleting_an_enclave_removes_what_is_in_it_and_disconnects_connections_to_it() {
        let mut state = base();
        let ep = "/communities/c1/virtualEnclaves/e2/enclaveEndpoints/db";
        setup(
            &mut state,
            json!({"createEndpoint": {"id": ep, "ruleCollection": [
            {"endpointRuleName": "r", "destination": "10.2.0.0/16", "ports": "*", "protocols": ["ANY"]}]}}),
        );
        setup(
            &mut state,
            json!({"createConnection": {"id": "/communities/c1/enclaveConnections/in", "sourceResourceId": E1,
            "sourceCidr": "10.1.0.0/24", "destinationEndpointId": ep}}),
        );
        setup(
            &mut state,
            json!({"createConnection": {"id": "/communities/c1/enclaveConnections/out", "sourceResourceId": E2,
            "sourceCidr": "10.2.0.0/24", "destinationEndpointId": ep}}),
        );
        assign(&mut state, "ra-e2", "alice", "Reader", E2);
        assign(
            &mut state,
            "ra-out",
            "alice",
            "Reader",
            "/communities/c1/enclaveConnections/out",
        );
        assign(&mut state, "ra-c1", "alice", "Reader", C1);
        let events = run(
            &mut state,
            "platform",
            cmd(json!({"deleteVirtualEnclave": {"id": E2}})),
        )
        .unwrap();
        assert!(state.enclave(&s(E2)).is_none());
        assert!(state.endpoint(&s(ep)).is_none());
        assert!(
            state
                .connection(&s("/communities/c1/enclaveConnections/out"))
                .is_none(),
            "sourced in E2"
        );
        assert_eq!(
            state
                .connection(&s("/communities/c1/enclaveConnections/in"))
                .unwrap()
                .state,
            ea_policy::ConnectionState::Disconnected
        );
        let left: Vec<_> = state.role_assignments().map(|a| a.id.to_string()).collect();
        assert_eq!(left, ["ra-c1"]);
        assert!(matches!(
            events.last(),
            Some(Event::VirtualEnclaveDeleted { .. })
        ));
    }

    #[test]
    fn deleting_needs_the_right_on_everything_deleted() {
        let mut state = base();
        assign(&mut state, "ra", "alice", "Owner", E1);
        setup(
            &mut state,
            json!({"updateWorkload": {"id": W1, "protected": true}}),
        );
        // The protected workload's deny assignment stops the cascade.
        let r = refusal(&state, "alice", json!({"deleteVirtualEnclave": {"id": E1}}));
        assert!(
            matches!(r, Refusal::NotAuthorized { ref scope, .. } if *scope == s(W1)),
            "{r:?}"
        );
        setup(&mut state, json!({"updateWorkload": {"id": W1}}));
        run(
            &mut state,
            "alice",
            cmd(json!({"deleteVirtualEnclave": {"id": E1}})),
        )
        .unwrap();
    }

    #[test]
    fn apply_refuses_events_that_do_not_fit() {
        let mut state = base();
        let before = state.clone();
        let e = state.apply(&Event::VirtualEnclaveDeleted {
            id: s("/communities/c1/virtualEnclaves/nope"),
        });
        assert!(e.is_err());
        // Deleting a community that still has enclaves is not an event that fits.
        let e = state
            .apply(&Event::CommunityDeleted { id: s(C1) })
            .unwrap_err();
        assert!(matches!(e.invalid.problem, Problem::InUse(_)), "{e}");
        assert_eq!(state, before, "refused events change nothing");
    }
}

#[test]
fn commands_and_events_round_trip_through_json_and_cbor() {
    let mut state = base();
    let command = cmd(
        json!({"assignRole": {"id": "x", "principalId": "alice", "roleDefinitionId": "Reader", "scope": C1,
        "notAfter": "2026-01-01T00:00:00Z"}}),
    );
    let json = serde_json::to_string(&command).unwrap();
    assert_eq!(
        serde_json::from_str::<ea_policy::Command>(&json).unwrap(),
        command
    );
    let events = run(&mut state, "platform", command).unwrap();
    let mut cbor = Vec::new();
    ciborium::into_writer(&events, &mut cbor).unwrap();
    let back: Vec<Event> = ciborium::from_reader(cbor.as_slice()).unwrap();
    assert_eq!(back, events);
    let mut fresh = base();
    for e in &back {
        fresh.apply(e).unwrap();
    }
    assert_eq!(fresh, state);
}
