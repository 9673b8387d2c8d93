//! The three scenarios of the Azure Enclave approvals documentation, as state and checks
//! (the approval flow itself is the next issue; here: who may approve, who may initiate, and
//! what governance the engine reports for the governed command).
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "helper functions of tests fail loudly, like the tests themselves"
)]

mod common;

use std::collections::BTreeSet;

use common::*;
use ea_policy::{ApprovalKey, Governance, PolicyState, Refusal, APPROVE, REJECT};
use serde_json::json;

fn approval_required(refusal: Refusal) -> Governance {
    match refusal {
        Refusal::ApprovalRequired(g) => *g,
        other => panic!("expected ApprovalRequired, got {other:?}"),
    }
}

fn set(ids: &[&str]) -> BTreeSet<ea_policy::PrincipalId> {
    ids.iter().map(|id| p(id)).collect()
}

/// 1. A community "cyber expert" must approve every enclave creation.
#[test]
fn cyber_expert_approves_enclave_creation() {
    let mut doc = base_json();
    doc["principals"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "expert", "type": "User", "displayName": "Cyber expert"}));
    doc["communities"][0]["approvalSettings"] = json!({"enclaveCreation": {
        "approvalPolicy": "Required", "minimumApproversRequired": 1, "mandatoryApprovers": ["expert"]}});
    doc["roleAssignments"] = json!([
        {"id": "ra-expert", "principalId": "expert", "roleDefinitionId": "Enclave Approver", "scope": C1},
        {"id": "ra-requester", "principalId": "alice", "roleDefinitionId": "Community Contributor", "scope": C1}
    ]);
    let state = load(doc);
    let target = "/communities/c1/virtualEnclaves/new";
    let create = "Microsoft.Mission/virtualEnclaves/write";

    assert!(
        allowed(&state, "expert", APPROVE, target),
        "the expert can approve"
    );
    assert!(allowed(&state, "expert", REJECT, target), "and reject");
    assert!(
        !allowed(&state, "expert", create, target),
        "but not create enclaves"
    );
    assert!(
        allowed(&state, "alice", create, target),
        "the requester can create enclaves"
    );
    assert!(
        !allowed(&state, "alice", APPROVE, target),
        "but not approve"
    );

    let refused = state
        .execute(
            &p("alice"),
            &cmd(json!({"createVirtualEnclave": {"id": target, "addressSpace": "10.9.0.0/16"}})),
            t0(),
        )
        .unwrap_err();
    let governance = approval_required(refused);
    assert_eq!(governance.key, ApprovalKey::EnclaveCreation);
    assert_eq!(governance.mandatory_approvers, set(&["expert"]));
    assert_eq!(governance.minimum_approvers_required, 1);
    // The expert's request for the same change is refused earlier: no write.
    let refused = state
        .execute(
            &p("expert"),
            &cmd(json!({"createVirtualEnclave": {"id": target, "addressSpace": "10.9.0.0/16"}})),
            t0(),
        )
        .unwrap_err();
    assert!(
        matches!(refused, Refusal::NotAuthorized { .. }),
        "{refused:?}"
    );
}

/// 2. A security group must approve connection creation and updates.
#[test]
fn security_group_approves_connections() {
    let endpoint = "/communities/c1/virtualEnclaves/e2/enclaveEndpoints/api";
    let connection = "/communities/c1/enclaveConnections/e1-api";
    let mut doc = base_json();
    let principals = doc["principals"].as_array_mut().unwrap();
    principals.push(json!({"id": "ann", "type": "User"}));
    principals.push(json!({"id": "ben", "type": "User"}));
    principals.push(json!({"id": "net-approvers", "type": "Group", "members": ["ann", "ben"]}));
    let required = json!({"approvalPolicy": "Required", "minimumApproversRequired": 1, "mandatoryApprovers": ["net-approvers"]});
    doc["communities"][0]["approvalSettings"] =
        json!({"connectionCreation": required, "connectionUpdate": required});
    doc["enclaveEndpoints"] = json!([{"id": endpoint, "ruleCollection": [
        {"endpointRuleName": "https", "destination": "10.2.0.0/24", "ports": "443", "protocols": ["TCP"]}]}]);
    doc["roleAssignments"] = json!([
        {"id": "ra-approvers", "principalId": "net-approvers", "roleDefinitionId": "Enclave Approver", "scope": C1},
        {"id": "ra-requester", "principalId": "alice", "roleDefinitionId": "Enclave Owner", "scope": C1}
    ]);
    let mut state = load(doc);
    let write = "Microsoft.Mission/enclaveConnections/write";

    for member in ["ann", "ben"] {
        assert!(
            allowed(&state, member, APPROVE, connection),
            "{member} approves through the group"
        );
        assert!(
            !allowed(&state, member, write, connection),
            "{member} cannot initiate"
        );
    }
    assert!(
        !allowed(&state, "dave", APPROVE, connection),
        "non-members cannot approve"
    );
    assert!(
        allowed(&state, "alice", write, connection),
        "the requester may create connections"
    );
    assert!(
        !allowed(&state, "alice", APPROVE, connection),
        "but not approve them"
    );

    let spec = json!({"id": connection, "sourceResourceId": E1, "sourceCidr": "10.1.0.0/24", "destinationEndpointId": endpoint});
    let create = cmd(json!({"createConnection": spec}));
    let governance = approval_required(state.execute(&p("alice"), &create, t0()).unwrap_err());
    assert_eq!(governance.key, ApprovalKey::ConnectionCreation);
    assert_eq!(governance.mandatory_approvers, set(&["net-approvers"]));

    // Once it exists (here: created by the engine, as an approved change would be), its
    // updates are governed too.
    run(&mut state, "platform", create).unwrap();
    let update = cmd(
        json!({"updateConnection": {"id": connection, "sourceResourceId": E1,
        "sourceCidr": "10.1.1.0/24", "destinationEndpointId": endpoint}}),
    );
    let governance = approval_required(state.execute(&p("alice"), &update, t0()).unwrap_err());
    assert_eq!(governance.key, ApprovalKey::ConnectionUpdate);
    assert_eq!(governance.mandatory_approvers, set(&["net-approvers"]));
}

/// 3. An enclave owner's endpoint names three trusted reviewers as its approvers.
#[test]
fn endpoint_with_three_trusted_reviewers() {
    let endpoint = "/communities/c1/virtualEnclaves/e2/enclaveEndpoints/ledger";
    let connection = "/communities/c1/enclaveConnections/e1-ledger";
    let mut doc = base_json();
    let principals = doc["principals"].as_array_mut().unwrap();
    for reviewer in ["rev1", "rev2", "rev3"] {
        principals.push(json!({"id": reviewer, "type": "User"}));
    }
    doc["roleAssignments"] = json!([
        {"id": "ra-owner", "principalId": "erin", "roleDefinitionId": "Enclave Owner", "scope": E2},
        {"id": "ra-rev1", "principalId": "rev1", "roleDefinitionId": "Enclave Approver", "scope": C1},
        {"id": "ra-rev2", "principalId": "rev2", "roleDefinitionId": "Enclave Approver", "scope": C1},
        {"id": "ra-rev3", "principalId": "rev3", "roleDefinitionId": "Enclave Approver", "scope": C1},
        {"id": "ra-requester", "principalId": "alice", "roleDefinitionId": "Enclave Owner", "scope": C1}
    ]);
    let mut state: PolicyState = load(doc);

    // The enclave owner creates the endpoint with its reviewers (nothing governs it here).
    run(
        &mut state,
        "erin",
        cmd(json!({"createEndpoint": {"id": endpoint, "approvers": ["rev1", "rev2", "rev3"], "ruleCollection": [
            {"endpointRuleName": "grpc", "destination": "10.2.7.0/24", "ports": "8443", "protocols": ["TCP"]}]}})),
    )
    .unwrap();
    assert_eq!(
        state.endpoint(&s(endpoint)).unwrap().approvers,
        set(&["rev1", "rev2", "rev3"])
    );

    for reviewer in ["rev1", "rev2", "rev3"] {
        assert!(
            allowed(&state, reviewer, APPROVE, connection),
            "{reviewer} may approve"
        );
        assert!(!allowed(
            &state,
            reviewer,
            "Microsoft.Mission/enclaveConnections/write",
            connection
        ));
    }
    assert!(
        !allowed(&state, "erin", APPROVE, connection),
        "the owner cannot approve"
    );

    // The community requires nothing, yet a connection to this endpoint needs a reviewer.
    let create = cmd(
        json!({"createConnection": {"id": connection, "sourceResourceId": E1,
        "sourceCidr": "10.1.0.0/24", "destinationEndpointId": endpoint}}),
    );
    let governance = approval_required(state.execute(&p("alice"), &create, t0()).unwrap_err());
    assert_eq!(governance.key, ApprovalKey::ConnectionCreation);
    assert!(governance.mandatory_approvers.is_empty());
    assert_eq!(
        governance.endpoint_approvers,
        set(&["rev1", "rev2", "rev3"])
    );
}
