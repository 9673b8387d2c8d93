//! The JSON document format (docs/policy-state.md): loading, errors with paths, canonical
//! output, and the documented example.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "helper functions of tests fail loudly, like the tests themselves"
)]

mod common;

use common::*;
use ea_policy::{
    Address, DenyKind, LoadError, PolicyDocument, PolicyState, Problem, Protocol, Reason,
};
use serde_json::json;

const DOC: &str = include_str!("../../../docs/policy-state.md");

/// The first ```json block of the document.
fn documented_example() -> String {
    let start = DOC.find("```json\n").expect("the example") + "```json\n".len();
    let end = DOC[start..].find("```").expect("its end") + start;
    DOC[start..end].to_owned()
}

fn load_err(doc: serde_json::Value) -> String {
    match PolicyState::from_json(&doc.to_string()) {
        Ok(_) => panic!("should not load: {doc}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_documented_example_loads_and_answers_as_documented() {
    let state = PolicyState::from_json(&documented_example()).unwrap();
    let vm = "/communities/c1/virtualEnclaves/e1/workloads/web/providers/Microsoft.Compute/virtualMachines/vm1";
    assert!(allowed(
        &state,
        "bob",
        "Microsoft.Compute/virtualMachines/restart/action",
        vm
    ));
    assert!(!allowed(
        &state,
        "bob",
        "Microsoft.Compute/virtualMachines/delete",
        "/communities/c1/virtualEnclaves/e1/workloads/web"
    ));
    assert!(allowed(
        &state,
        "expert",
        ea_policy::APPROVE,
        "/communities/c1/virtualEnclaves/e3"
    ));
    let ledger = decide(
        &state,
        "bob",
        "Microsoft.Compute/virtualMachines/restart/action",
        "/communities/c1/virtualEnclaves/e1/workloads/ledger",
    );
    assert_eq!(denied_by(&ledger), Some(vec![DenyKind::ProtectedWorkload]));
    let from = s("/communities/c1/virtualEnclaves/e1");
    let db: Address = "10.2.5.10".parse().unwrap();
    assert!(state.flow(&from, &db, 5432, Protocol::Tcp).allowed);
    assert!(!state.flow(&from, &db, 22, Protocol::Tcp).allowed);
    // And the documented canonical form: writing it out and reading it back is stable.
    let canonical = state.to_json_pretty();
    let again = PolicyState::from_json(&canonical).unwrap();
    assert_eq!(again, state);
    assert_eq!(again.to_json_pretty(), canonical);
}

#[test]
fn structural_errors_name_the_json_path() {
    let mut doc = base_json();
    doc["virtualEnclaves"] = json!([
        {"id": E1, "addressSpace": "10.1.0.0/16"},
        {"id": E2, "addressSpace": "10.2.0.0/16"},
        {"id": "/communities/c1/virtualEnclaves/e3", "addressSpace": "10.0.0.0/33"}
    ]);
    let err = load_err(doc);
    assert!(
        err.starts_with("virtualEnclaves[2].addressSpace: 10.0.0.0/33 is not a CIDR"),
        "{err}"
    );
    let mut doc = base_json();
    doc["workloads"][1]["protectd"] = json!(true);
    assert!(load_err(doc).starts_with("workloads[1].protectd: unknown field"));
    let mut doc = base_json();
    doc["principals"][0]["id"] = json!("a b");
    assert!(load_err(doc).starts_with("principals[0].id: \"a b\" is not a valid principal id"));
    let mut doc = base_json();
    doc["communities"][0]["id"] = json!("/subscriptions/x");
    assert!(load_err(doc).starts_with("communities[0].id: \"/subscriptions/x\" is not a scope"));
    assert!(matches!(
        PolicyState::from_json("{} trailing"),
        Err(LoadError::Structure { .. })
    ));
}

#[test]
fn rule_errors_name_record_and_field_and_all_are_reported() {
    let mut doc = base_json();
    doc["virtualEnclaves"] = json!([
        {"id": E1, "addressSpace": "10.1.0.0/16"},
        {"id": E2, "addressSpace": "10.1.128.0/17"}
    ]);
    doc["roleAssignments"] = json!([
        {"id": "ra", "principalId": "alice", "roleDefinitionId": "Reader", "scope": "/communities/c1/virtualEnclaves/e9"}
    ]);
    doc["principals"][5]["members"] = json!(["bob", "admins"]);
    let err = match PolicyState::from_json(&doc.to_string()) {
        Err(LoadError::Invalid(errors)) => errors,
        other => panic!("{other:?}"),
    };
    let paths: Vec<&str> = err.0.iter().map(|e| e.path.as_str()).collect();
    // Members are added in document order: the cycle closes at admins, the second group.
    assert_eq!(
        paths,
        [
            "principals[6].members",
            "virtualEnclaves[1].addressSpace",
            "roleAssignments[0].scope"
        ]
    );
    assert!(matches!(err.0[0].problem, Problem::GroupCycle { .. }));
    assert!(matches!(err.0[1].problem, Problem::OverlapsSibling { .. }));
    assert_eq!(
        err.to_string().lines().nth(1).unwrap(),
        "virtualEnclaves[1].addressSpace: 10.1.128.0/17 overlaps /communities/c1/virtualEnclaves/e1's address space 10.1.0.0/16"
    );
}

#[test]
fn duplicates_and_versions_are_refused() {
    let mut doc = base_json();
    doc["workloads"] =
        json!([{"id": W1}, {"id": "/Communities/C1/virtualEnclaves/E1/workloads/W1"}]);
    let err = load_err(doc);
    assert!(err.starts_with("workloads[1].id: workload /communities/c1/virtualEnclaves/e1/workloads/w1 already exists"), "{err}");
    let mut doc = base_json();
    doc["version"] = json!(2);
    assert_eq!(
        load_err(doc),
        "version: version 2 is not supported (expected 1)"
    );
}

#[test]
fn output_is_canonical_whatever_the_input_order() {
    let mut shuffled = base_json();
    shuffled["principals"].as_array_mut().unwrap().reverse();
    shuffled["virtualEnclaves"]
        .as_array_mut()
        .unwrap()
        .reverse();
    shuffled["workloads"] =
        json!([{"id": "/COMMUNITIES/c1/virtualEnclaves/e1/workloads/W2"}, {"id": W1}]);
    let a = load(base_json());
    let b = load(shuffled);
    assert_eq!(a, b);
    assert_eq!(a.to_json_pretty(), b.to_json_pretty());
    let doc: PolicyDocument = serde_json::from_str(&a.to_json_pretty()).unwrap();
    assert_eq!(doc.workloads[1].id.as_str(), W2);
}

#[test]
fn serde_of_policy_state_validates() {
    let mut doc = base_json();
    doc["virtualEnclaves"][1]["addressSpace"] = json!("10.1.0.0/16");
    let err = serde_json::from_value::<PolicyState>(doc)
        .unwrap_err()
        .to_string();
    assert!(err.contains("virtualEnclaves[1].addressSpace"), "{err}");
    let state: PolicyState = serde_json::from_value(base_json()).unwrap();
    assert_eq!(state, base());
    // A decision on a state read back is the same decision.
    let back: PolicyState = serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    assert_eq!(
        decide(
            &back,
            "bob",
            "Microsoft.Network/virtualNetworks/write",
            E1_MANAGED
        ),
        decide(
            &state,
            "bob",
            "Microsoft.Network/virtualNetworks/write",
            E1_MANAGED
        )
    );
    assert_eq!(
        decide(&back, "bob", "Microsoft.Network/virtualNetworks/write", E1).reason,
        Reason::NotAuthorized
    );
}
