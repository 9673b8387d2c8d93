//! SPEC-policy section 7: network isolation decisions.
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
    Address, ConnectionState, FlowDecision, FlowMatch, FlowMiss, FlowReason, Missing, PolicyState,
    Protocol,
};
use serde_json::json;

const HUB: &str = "/communities/c1/communityEndpoints/hub";
const DB: &str = "/communities/c1/virtualEnclaves/e2/enclaveEndpoints/db";
const TO_DB: &str = "/communities/c1/enclaveConnections/e1-to-db";
const TO_HUB: &str = "/communities/c1/enclaveConnections/e1-to-hub";

fn state() -> PolicyState {
    let mut doc = base_json();
    doc["enclaveEndpoints"] = json!([{"id": DB, "ruleCollection": [
        {"endpointRuleName": "postgres", "destination": "10.2.5.0/24", "ports": "5432", "protocols": ["TCP"]},
        {"endpointRuleName": "dns", "destination": "10.2.0.53", "ports": "*", "protocols": ["ANY"]}
    ]}]);
    doc["communityEndpoints"] = json!([{"id": HUB, "ruleCollection": [
        {"endpointRuleName": "updates", "destination": "*.contoso.com", "ports": "443,8000-8100", "protocols": ["HTTPS"]}
    ]}]);
    doc["enclaveConnections"] = json!([
        {"id": TO_DB, "sourceResourceId": E1, "sourceCidr": "10.1.0.0/24", "destinationEndpointId": DB, "state": "Active"},
        {"id": TO_HUB, "sourceResourceId": E1, "sourceCidr": "10.1.0.0/16", "destinationEndpointId": HUB, "state": "Connected"}
    ]);
    load(doc)
}

fn flow(state: &PolicyState, from: &str, to: &str, port: u16, protocol: Protocol) -> FlowDecision {
    state.flow(&s(from), &to.parse::<Address>().unwrap(), port, protocol)
}

fn missing(decision: &FlowDecision) -> Vec<(String, Missing)> {
    match &decision.reason {
        FlowReason::NotCovered(misses) => misses
            .iter()
            .map(|m: &FlowMiss| (m.connection.to_string(), m.missing.clone()))
            .collect(),
        other => panic!("expected NotCovered, got {other:?}"),
    }
}

#[test]
fn inside_the_enclave_is_allowed() {
    let d = flow(&state(), E1, "10.1.200.7", 22, Protocol::Tcp);
    assert!(d.allowed);
    assert!(matches!(d.reason, FlowReason::SameEnclave { .. }));
}

#[test]
fn through_an_active_connection_with_a_covering_rule() {
    let d = flow(&state(), E1, "10.2.5.9", 5432, Protocol::Tcp);
    assert_eq!(
        d,
        FlowDecision {
            allowed: true,
            reason: FlowReason::Connections(vec![FlowMatch {
                connection: s(TO_DB),
                endpoint: s(DB),
                rule: "postgres".into(),
            }]),
        }
    );
}

#[test]
fn any_covers_every_protocol_and_star_every_port() {
    let state = state();
    for protocol in [Protocol::Tcp, Protocol::Udp, Protocol::Icmp] {
        assert!(
            flow(&state, E1, "10.2.0.53", 53, protocol).allowed,
            "{protocol:?}"
        );
        assert!(
            flow(&state, E1, "10.2.0.53", 65535, protocol).allowed,
            "{protocol:?}"
        );
    }
}

#[test]
fn host_name_rules_match_host_names() {
    let state = state();
    assert!(flow(&state, E1, "Updates.Contoso.com", 8080, Protocol::Https).allowed);
    assert!(!flow(&state, E1, "contoso.com", 443, Protocol::Https).allowed);
}

#[test]
fn denial_names_the_missing_piece_per_connection() {
    let state = state();
    let port = flow(&state, E1, "10.2.5.9", 5433, Protocol::Tcp);
    assert!(!port.allowed);
    assert_eq!(
        missing(&port),
        [
            (TO_DB.to_owned(), Missing::NoRuleForPort),
            (TO_HUB.to_owned(), Missing::NoRuleForDestination),
        ]
    );
    let protocol = flow(&state, E1, "10.2.5.9", 5432, Protocol::Udp);
    assert_eq!(
        missing(&protocol)[0],
        (TO_DB.to_owned(), Missing::NoRuleForProtocol)
    );
    let elsewhere = flow(&state, E1, "192.168.1.1", 443, Protocol::Tcp);
    assert_eq!(
        missing(&elsewhere)[0],
        (TO_DB.to_owned(), Missing::NoRuleForDestination)
    );
}

#[test]
fn another_enclave_is_reachable_only_through_a_connection() {
    let state = state();
    // e2 has no connection at all.
    let d = flow(&state, E2, "10.1.0.5", 22, Protocol::Tcp);
    assert_eq!(d.reason, FlowReason::NoConnection(s(E2)));
    assert!(!d.allowed);
}

#[test]
fn only_active_connections_count() {
    let mut doc = base_json();
    doc["enclaveEndpoints"] = json!([{"id": DB, "ruleCollection": [
        {"endpointRuleName": "all", "destination": "10.2.0.0/16", "ports": "*", "protocols": ["ANY"]}]}]);
    for state_name in ["PendingApproval", "PendingUpdate", "Disconnected", "Failed"] {
        doc["enclaveConnections"] = json!([{"id": TO_DB, "sourceResourceId": E1, "sourceCidr": "10.1.0.0/16",
            "destinationEndpointId": DB, "state": state_name}]);
        let state = load(doc.clone());
        let d = flow(&state, E1, "10.2.0.1", 80, Protocol::Tcp);
        assert!(!d.allowed, "{state_name}");
        assert!(
            matches!(missing(&d)[0].1, Missing::NotActive(_)),
            "{state_name}"
        );
    }
}

#[test]
fn a_connection_whose_endpoint_was_deleted_is_disconnected() {
    let mut state = state();
    setup(&mut state, json!({"deleteEndpoint": {"id": DB}}));
    assert_eq!(
        state.connection(&s(TO_DB)).unwrap().state,
        ConnectionState::Disconnected
    );
    let d = flow(&state, E1, "10.2.5.9", 5432, Protocol::Tcp);
    assert_eq!(
        missing(&d)[0],
        (
            TO_DB.to_owned(),
            Missing::NotActive(ConnectionState::Disconnected)
        )
    );
    // A state file may not claim otherwise.
    let mut doc = base_json();
    doc["enclaveConnections"] = json!([{"id": TO_DB, "sourceResourceId": E1, "sourceCidr": "10.1.0.0/16",
        "destinationEndpointId": DB, "state": "Active"}]);
    let err = PolicyState::from_json(&doc.to_string())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("enclaveConnections[0].destinationEndpointId:"),
        "{err}"
    );
}

#[test]
fn an_unknown_source_is_denied() {
    let d = flow(
        &state(),
        "/communities/c1/virtualEnclaves/nope",
        "10.1.0.1",
        1,
        Protocol::Tcp,
    );
    assert!(!d.allowed);
    assert!(matches!(d.reason, FlowReason::UnknownSourceEnclave(_)));
}
