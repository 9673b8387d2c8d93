//! Helpers shared by the integration tests: a small base state and short constructors.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: each test file uses a different subset, and failing loudly is the point"
)]

use ea_policy::{
    Command, Decision, Event, Operation, OperationKind, PolicyState, PrincipalId, Reason, Refusal,
    Scope, Timestamp,
};
use serde_json::{json, Value};

pub const T0: &str = "2025-06-01T12:00:00Z";

pub fn t(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

pub fn t0() -> Timestamp {
    t(T0)
}

/// `t0` plus some minutes.
pub fn after(minutes: i64) -> Timestamp {
    t0().checked_add_millis(minutes * 60_000).unwrap()
}

pub fn p(id: &str) -> PrincipalId {
    PrincipalId::new(id).unwrap()
}

pub fn s(scope: &str) -> Scope {
    Scope::parse(scope).unwrap()
}

pub fn op(text: &str) -> Operation {
    Operation::parse(text).unwrap()
}

pub fn data_op(text: &str) -> Operation {
    Operation::new(text, OperationKind::DataAction).unwrap()
}

pub const C1: &str = "/communities/c1";
pub const C1_MANAGED: &str = "/communities/c1/managed";
pub const E1: &str = "/communities/c1/virtualEnclaves/e1";
pub const E1_MANAGED: &str = "/communities/c1/virtualEnclaves/e1/managed";
pub const E2: &str = "/communities/c1/virtualEnclaves/e2";
pub const W1: &str = "/communities/c1/virtualEnclaves/e1/workloads/w1";
pub const W2: &str = "/communities/c1/virtualEnclaves/e1/workloads/w2";

/// One community with two enclaves and two workloads; users alice, bob, carol, dave, erin;
/// group `team` (bob) nested in group `admins` (team, carol).
pub fn base_json() -> Value {
    json!({
        "principals": [
            {"id": "alice", "type": "User"},
            {"id": "bob", "type": "User"},
            {"id": "carol", "type": "User"},
            {"id": "dave", "type": "User"},
            {"id": "erin", "type": "User"},
            {"id": "team", "type": "Group", "members": ["bob"]},
            {"id": "admins", "type": "Group", "members": ["team", "carol"]}
        ],
        "communities": [{"id": C1, "addressSpace": "10.0.0.0/8"}],
        "virtualEnclaves": [
            {"id": E1, "addressSpace": "10.1.0.0/16"},
            {"id": E2, "addressSpace": "10.2.0.0/16"}
        ],
        "workloads": [{"id": W1}, {"id": W2}]
    })
}

pub fn load(doc: Value) -> PolicyState {
    match PolicyState::from_json(&doc.to_string()) {
        Ok(state) => state,
        Err(e) => panic!("fixture does not load: {e}"),
    }
}

pub fn base() -> PolicyState {
    load(base_json())
}

/// A command from its JSON form (so the tests also pin the command format).
pub fn cmd(value: Value) -> Command {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("bad command {value}: {e}"))
}

/// Executes as `actor` at `at` and applies the events.
pub fn run_at(
    state: &mut PolicyState,
    actor: &str,
    command: Command,
    at: Timestamp,
) -> Result<Vec<Event>, Refusal> {
    let events = state.execute(&p(actor), &command, at)?;
    for event in &events {
        state
            .apply(event)
            .unwrap_or_else(|e| panic!("event from execute does not apply: {e}"));
    }
    Ok(events)
}

pub fn run(state: &mut PolicyState, actor: &str, command: Command) -> Result<Vec<Event>, Refusal> {
    run_at(state, actor, command, t0())
}

/// Executes as `platform`, which must succeed.
pub fn setup(state: &mut PolicyState, command: Value) {
    let c = cmd(command);
    if let Err(e) = run(state, "platform", c.clone()) {
        panic!("setup command {c:?} refused: {e}");
    }
}

pub fn assign(state: &mut PolicyState, id: &str, principal: &str, role: &str, scope: &str) {
    setup(
        state,
        json!({"assignRole": {"id": id, "principalId": principal, "roleDefinitionId": role, "scope": scope}}),
    );
}

pub fn decide_at(
    state: &PolicyState,
    who: &str,
    operation: &Operation,
    scope: &str,
    at: Timestamp,
) -> Decision {
    state.check(&p(who), operation, &s(scope), at)
}

pub fn decide(state: &PolicyState, who: &str, operation: &str, scope: &str) -> Decision {
    decide_at(state, who, &op(operation), scope, t0())
}

pub fn allowed(state: &PolicyState, who: &str, operation: &str, scope: &str) -> bool {
    decide(state, who, operation, scope).allowed
}

/// The kinds of deny assignments that denied, or `None` when none did.
pub fn denied_by(decision: &Decision) -> Option<Vec<ea_policy::DenyKind>> {
    match &decision.reason {
        Reason::DenyAssignments(matches) => Some(matches.iter().map(|m| m.kind).collect()),
        _ => None,
    }
}

/// The id of the role assignment that allowed (`activation:<id>` for an activation).
pub fn granted_by(decision: &Decision) -> Option<String> {
    match &decision.reason {
        Reason::RoleAssignment(grant) => Some(match &grant.source {
            ea_policy::GrantSource::RoleAssignment { id } => id.to_string(),
            ea_policy::GrantSource::Activation { id, .. } => format!("activation:{id}"),
        }),
        _ => None,
    }
}
