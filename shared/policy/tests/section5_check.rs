//! SPEC-policy section 5: the order of the decision and its explanation.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "helper functions of tests fail loudly, like the tests themselves"
)]

mod common;

use common::*;
use ea_policy::{Decision, DenyKind, DenyMatch, GrantMatch, GrantSource, Reason};
use serde_json::json;

const WRITE: &str = "Microsoft.Compute/virtualMachines/write";

#[test]
fn step_1_a_deny_assignment_that_applies_denies_naming_it() {
    let mut state = base();
    assign(&mut state, "ra-1", "bob", "Owner", E1);
    setup(
        &mut state,
        json!({"createDenyAssignment": {"id": "no-vm", "scope": E1,
            "permissions": {"actions": ["Microsoft.Compute/*"]}, "principals": ["admins"]}}),
    );
    let decision = decide(&state, "bob", WRITE, W1);
    assert_eq!(
        decision,
        Decision {
            allowed: false,
            reason: Reason::DenyAssignments(vec![DenyMatch {
                scope: s(E1),
                kind: DenyKind::Custom,
                id: Some("no-vm".parse().unwrap()),
                through: Some(p("admins")),
            }]),
        }
    );
}

#[test]
fn step_2_a_role_assignment_allows_naming_role_scope_and_group() {
    let mut state = base();
    assign(&mut state, "ra-group", "team", "Contributor", C1);
    assign(&mut state, "ra-direct", "bob", "Enclave Contributor", E1);
    assign(&mut state, "ra-reader", "bob", "Reader", E1);
    let decision = decide(&state, "bob", "Microsoft.Network/virtualNetworks/write", W1);
    let grant = |id: &str, role: &str, scope: &str, principal: &str, via_group| GrantMatch {
        scope: s(scope),
        source: GrantSource::RoleAssignment {
            id: id.parse().unwrap(),
        },
        role: role.parse().unwrap(),
        principal_id: p(principal),
        via_group,
    };
    // Two assignments grant it; the one nearest the root is named.
    assert_eq!(
        decision,
        Decision {
            allowed: true,
            reason: Reason::RoleAssignment(grant("ra-group", "Contributor", C1, "team", true)),
        }
    );
    // At one scope, the holder with the smaller id first, then the assignment id.
    let mut state = base();
    assign(&mut state, "z", "team", "Reader", E1);
    assign(&mut state, "y", "bob", "Reader", E1);
    assign(&mut state, "x", "bob", "Enclave Reader", E1);
    let decision = decide(&state, "bob", "Microsoft.Network/virtualNetworks/read", W1);
    assert_eq!(
        decision.reason,
        Reason::RoleAssignment(grant("x", "Enclave Reader", E1, "bob", false))
    );
}

#[test]
fn step_3_otherwise_not_authorized_naming_no_assignment() {
    let mut state = base();
    assign(&mut state, "ra-1", "bob", "Reader", E1);
    let decision = decide(&state, "bob", WRITE, W1);
    assert_eq!(
        decision,
        Decision {
            allowed: false,
            reason: Reason::NotAuthorized
        }
    );
    // Unknown principals too: nothing applies to them.
    assert_eq!(
        decide(&state, "mallory", WRITE, W1).reason,
        Reason::NotAuthorized
    );
}

#[test]
fn deny_wins_over_allow_whatever_their_scopes() {
    let mut state = base();
    // A deny at the community, an allow at the workload itself.
    assign(&mut state, "ra-1", "alice", "Owner", W1);
    setup(
        &mut state,
        json!({"createDenyAssignment": {"id": "d", "scope": C1,
            "permissions": {"actions": ["*"], "notActions": ["*/read"]}, "principals": "Everyone"}}),
    );
    assert!(!allowed(&state, "alice", WRITE, W1));
    assert!(allowed(
        &state,
        "alice",
        "Microsoft.Compute/virtualMachines/read",
        W1
    ));
}

#[test]
fn decisions_encode_canonically() {
    let mut state = base();
    assign(&mut state, "b", "team", "Reader", C1);
    assign(&mut state, "a", "bob", "Reader", C1);
    let decision = decide(&state, "bob", "Microsoft.Compute/virtualMachines/read", E1);
    let json = serde_json::to_string(&decision).unwrap();
    assert_eq!(
        json,
        r#"{"allowed":true,"reason":{"roleAssignment":{"scope":"/communities/c1","source":{"roleAssignment":{"id":"a"}},"role":"Reader","principalId":"bob","viaGroup":false}}}"#
    );
    let mut cbor = Vec::new();
    ciborium::into_writer(&decision, &mut cbor).unwrap();
    let back: Decision = ciborium::from_reader(cbor.as_slice()).unwrap();
    assert_eq!(back, decision);
    let mut again = Vec::new();
    ciborium::into_writer(
        &decide(&state, "bob", "Microsoft.Compute/virtualMachines/read", E1),
        &mut again,
    )
    .unwrap();
    assert_eq!(cbor, again);
}
