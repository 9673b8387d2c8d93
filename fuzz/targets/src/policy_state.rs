//! Policy state documents, commands and events from arbitrary bytes: loading, executing,
//! applying and deciding never panic; a document that loads writes itself back unchanged.

use ea_policy::{
    Address, Command, Event, Operation, PolicyState, PrincipalId, Protocol, Scope, Timestamp,
};

fn decide_everywhere(state: &PolicyState) {
    let at = Timestamp::EPOCH;
    let ops = [
        "Microsoft.Network/virtualNetworks/write",
        "Microsoft.Mission/approvals/approve/action",
    ];
    let mut scopes: Vec<Scope> = vec![Scope::root()];
    scopes.extend(state.communities().map(|c| c.id.clone()));
    scopes.extend(state.enclaves().map(|e| e.id.clone()));
    scopes.extend(state.workloads().map(|w| w.id.clone()));
    for principal in state.principals().take(8) {
        for scope in scopes.iter().take(16) {
            for op in ops {
                if let Ok(op) = Operation::parse(op) {
                    let _ = state.check(&principal.id, &op, scope, at);
                }
            }
        }
    }
    for enclave in state.enclaves().take(4) {
        if let Ok(to) = "10.1.2.3".parse::<Address>() {
            let _ = state.flow(&enclave.id, &to, 443, Protocol::Tcp);
        }
    }
    let _ = state.due_events(at);
    let _ = state.effective_deny_assignments(at);
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(state) = PolicyState::from_json(text) {
        let canonical = state.to_json_pretty();
        let again = PolicyState::from_json(&canonical).expect("canonical output loads");
        assert!(again == state, "canonical output is the same state");
        assert_eq!(again.to_json_pretty(), canonical);
        decide_everywhere(&state);
    }
    // A command from JSON, executed by the engine and by someone, against a small state.
    if let Ok(command) = serde_json::from_str::<Command>(text) {
        let base = r#"{"principals": [{"id": "alice", "type": "User"}, {"id": "g", "type": "Group", "members": ["alice"]}],
            "communities": [{"id": "/communities/c1", "addressSpace": "10.0.0.0/8"}],
            "virtualEnclaves": [{"id": "/communities/c1/virtualEnclaves/e1", "addressSpace": "10.1.0.0/16"}],
            "roleAssignments": [{"id": "ra", "principalId": "g", "roleDefinitionId": "Owner", "scope": "/"}]}"#;
        let mut state = PolicyState::from_json(base).expect("the base state loads");
        for actor in ["platform", "alice"] {
            let Ok(actor) = PrincipalId::new(actor) else {
                continue;
            };
            if let Ok(events) = state.execute(&actor, &command, Timestamp::EPOCH) {
                for event in &events {
                    state.apply(event).expect("events from execute apply");
                }
            }
        }
        decide_everywhere(&state);
    }
    // Events from JSON, replayed on an empty state: refused or applied, never a panic.
    if let Ok(events) = serde_json::from_str::<Vec<Event>>(text) {
        let mut state = PolicyState::new();
        for event in &events {
            let _ = state.apply(event);
        }
        decide_everywhere(&state);
    }
}
