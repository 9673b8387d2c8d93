//! Section 6 (governed operations and approvals) and 6.1 (endpoint approvers), rule by rule,
//! through `PolicyState::submit` and the events it returns.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

mod common;

use common::*;
use ea_policy::{
    ApprovalId, ApprovalRefusal, ApprovalStatus, ConnectionState, Event, Outcome, PolicyState,
    Refusal, Submission, Timestamp,
};
use serde_json::{json, Value};

const NEW_ENCLAVE: &str = "/communities/c1/virtualEnclaves/new";
const CONN: &str = "/communities/c1/enclaveConnections/conn1";
const EP: &str = "/communities/c1/communityEndpoints/internet";

/// The base state, with `expert` a mandatory approver of enclave creation, alice a Community
/// Contributor (the requester), carol and dave Enclave Approvers at the community, erin an
/// Enclave Reader, bob a Community Owner without the Approver role.
fn governed(minimum: u32, mandatory: &[&str]) -> PolicyState {
    let mut doc = base_json();
    doc["principals"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "expert", "type": "User"}));
    doc["communities"][0]["approvalSettings"] = json!({
        "enclaveCreation": {"approvalPolicy": "Required", "minimumApproversRequired": minimum,
                            "mandatoryApprovers": mandatory},
        "connectionCreation": {"approvalPolicy": "Required", "minimumApproversRequired": 1},
        "connectionUpdate": {"approvalPolicy": "Required", "minimumApproversRequired": 1},
        "approvalLifetimeHours": 24
    });
    doc["communityEndpoints"] = json!([{"id": EP, "ruleCollection": [
        {"endpointRuleName": "https", "destination": "0.0.0.0/0", "ports": "443", "protocols": ["TCP"]}]}]);
    doc["roleAssignments"] = json!([
        {"id": "ra-alice", "principalId": "alice", "roleDefinitionId": "Community Contributor", "scope": C1},
        {"id": "ra-alice-approver", "principalId": "alice", "roleDefinitionId": "Enclave Approver", "scope": C1},
        {"id": "ra-bob", "principalId": "bob", "roleDefinitionId": "Community Owner", "scope": C1},
        {"id": "ra-carol", "principalId": "carol", "roleDefinitionId": "Enclave Approver", "scope": C1},
        {"id": "ra-dave", "principalId": "dave", "roleDefinitionId": "Enclave Approver", "scope": C1},
        {"id": "ra-expert", "principalId": "expert", "roleDefinitionId": "Enclave Approver", "scope": C1},
        {"id": "ra-erin", "principalId": "erin", "roleDefinitionId": "Enclave Reader", "scope": C1}
    ]);
    load(doc)
}

fn submission(id: &str) -> Submission<'static> {
    Submission {
        justification: Some("ticket 42"),
        approval_id: ApprovalId::new(id).unwrap(),
        max_pending_per_requester: 10,
    }
}

/// Submits as `actor` at `at` and applies the outcome's events.
fn submit_at(
    state: &mut PolicyState,
    actor: &str,
    command: Value,
    id: &str,
    at: Timestamp,
) -> Result<Outcome, Refusal> {
    let outcome = state.submit(&p(actor), &cmd(command), &submission(id), at)?;
    for event in outcome.events() {
        state
            .apply(event)
            .unwrap_or_else(|e| panic!("event {event:?} does not apply: {e}"));
    }
    Ok(outcome)
}

fn submit(state: &mut PolicyState, actor: &str, command: Value) -> Result<Outcome, Refusal> {
    submit_at(state, actor, command, "apr-1", t0())
}

fn approve(state: &mut PolicyState, actor: &str, id: &str) -> Result<Outcome, Refusal> {
    submit(
        state,
        actor,
        json!({"approve": {"id": id, "comment": "ok"}}),
    )
}

fn reject(state: &mut PolicyState, actor: &str, id: &str) -> Result<Outcome, Refusal> {
    submit(state, actor, json!({"reject": {"id": id}}))
}

fn create_enclave() -> Value {
    json!({"createVirtualEnclave": {"id": NEW_ENCLAVE, "addressSpace": "10.9.0.0/16"}})
}

fn status(state: &PolicyState, id: &str) -> ApprovalStatus {
    state
        .approval(&ApprovalId::new(id).unwrap())
        .unwrap()
        .approval_status
}

fn approval_refusal(result: Result<Outcome, Refusal>) -> ApprovalRefusal {
    match result {
        Err(Refusal::Approval(refusal)) => refusal,
        other => panic!("expected an approval refusal, got {other:?}"),
    }
}

fn completion_status(outcome: &Outcome) -> Option<ApprovalStatus> {
    match outcome {
        Outcome::Voted { completion, .. } => completion.as_ref().map(|c| c.status),
        _ => None,
    }
}

#[test]
fn not_required_applies_at_once() {
    let mut state = base();
    assign(&mut state, "ra", "alice", "Community Contributor", C1);
    let outcome = submit(&mut state, "alice", create_enclave()).unwrap();
    assert!(matches!(outcome, Outcome::Applied { .. }));
    assert!(state.enclave(&s(NEW_ENCLAVE)).is_some());
}

#[test]
fn required_creates_a_pending_approval_with_the_settings_copied_in() {
    let mut state = governed(1, &["expert"]);
    let outcome = submit(&mut state, "alice", create_enclave()).unwrap();
    assert!(
        matches!(outcome, Outcome::Pending { ref approval_id, .. } if approval_id.as_str() == "apr-1")
    );
    assert!(
        state.enclave(&s(NEW_ENCLAVE)).is_none(),
        "nothing changes yet"
    );
    let approval = state.approval(&ApprovalId::new("apr-1").unwrap()).unwrap();
    assert_eq!(approval.approval_status, ApprovalStatus::Pending);
    assert_eq!(approval.requester, p("alice"));
    assert_eq!(approval.justification, "ticket 42");
    assert_eq!(
        approval.expires_at,
        after(24 * 60),
        "the community's lifetime"
    );
    assert!(approval.settings.mandatory_approvers.contains(&p("expert")));

    // Later changes to the settings do not affect it: dropping the mandatory approver does
    // not let carol's approval complete it.
    setup(
        &mut state,
        json!({"setApprovalSettings": {"scope": C1, "settings": {
        "enclaveCreation": {"approvalPolicy": "NotRequired"}}}}),
    );
    let refusal = approval_refusal(approve(&mut state, "carol", "apr-1"));
    assert!(matches!(
        refusal,
        ApprovalRefusal::NotAnEligibleApprover { .. }
    ));
    approve(&mut state, "expert", "apr-1").unwrap();
    assert_eq!(status(&state, "apr-1"), ApprovalStatus::Approved);
    assert!(
        state.enclave(&s(NEW_ENCLAVE)).is_some(),
        "applied in the same step"
    );
}

#[test]
fn the_rbac_check_at_submission_ends_a_denied_request() {
    let mut state = governed(1, &[]);
    // erin is a reader: she cannot even submit.
    let refusal = submit(&mut state, "erin", create_enclave()).unwrap_err();
    assert!(
        matches!(refusal, Refusal::NotAuthorized { .. }),
        "{refusal:?}"
    );
    assert!(
        state.approvals().next().is_none(),
        "no approval was created"
    );
}

#[test]
fn separation_of_duties() {
    let mut state = governed(1, &[]);
    submit(&mut state, "alice", create_enclave()).unwrap();
    // alice holds Enclave Approver too, but it is her own request.
    assert!(matches!(
        approval_refusal(approve(&mut state, "alice", "apr-1")),
        ApprovalRefusal::OwnRequest(_)
    ));
    assert!(matches!(
        approval_refusal(reject(&mut state, "alice", "apr-1")),
        ApprovalRefusal::OwnRequest(_)
    ));
    // A reader can read but not decide.
    let refusal = approve(&mut state, "erin", "apr-1").unwrap_err();
    assert!(
        matches!(refusal, Refusal::NotAuthorized { ref operation, .. } if operation.ends_with("approve/action"))
    );
    // An owner without the Approver role cannot approve: `*`-style actions grant no data action.
    assert!(matches!(
        approve(&mut state, "bob", "apr-1").unwrap_err(),
        Refusal::NotAuthorized { .. }
    ));
    // An approver cannot initiate any change.
    let refusal = submit_at(
        &mut state,
        "carol",
        json!({"createVirtualEnclave": {"id": "/communities/c1/virtualEnclaves/x", "addressSpace": "10.8.0.0/16"}}),
        "apr-2",
        t0(),
    )
    .unwrap_err();
    assert!(matches!(refusal, Refusal::NotAuthorized { .. }));
    assert_eq!(status(&state, "apr-1"), ApprovalStatus::Pending);
}

#[test]
fn minimum_reached_with_a_mandatory_approver_missing_stays_pending() {
    // The minimum is one approval, and both expert and carol are mandatory.
    let mut state = governed(1, &["expert", "carol"]);
    submit(&mut state, "alice", create_enclave()).unwrap();
    let outcome = approve(&mut state, "carol", "apr-1").unwrap();
    assert_eq!(
        completion_status(&outcome),
        None,
        "the minimum is reached, expert is missing"
    );
    // dave is not among the mandatory approvers, so his vote is refused, not counted.
    assert!(matches!(
        approval_refusal(approve(&mut state, "dave", "apr-1")),
        ApprovalRefusal::NotAnEligibleApprover { .. }
    ));
    assert_eq!(status(&state, "apr-1"), ApprovalStatus::Pending);
    let outcome = approve(&mut state, "expert", "apr-1").unwrap();
    assert_eq!(completion_status(&outcome), Some(ApprovalStatus::Approved));
}

#[test]
fn a_mandatory_group_is_satisfied_by_any_member_and_the_minimum_counts_distinct_principals() {
    // `admins` = team (bob) + carol. Minimum 3: carol (an admin), dave, expert.
    let mut state = governed(3, &[]);
    setup(
        &mut state,
        json!({"setApprovalSettings": {"scope": C1, "settings": {
        "enclaveCreation": {"approvalPolicy": "Required", "minimumApproversRequired": 2, "mandatoryApprovers": ["admins"]}}}}),
    );
    submit(&mut state, "alice", create_enclave()).unwrap();
    // bob is in `admins` through `team`, but holds no approver role.
    assert!(matches!(
        approve(&mut state, "bob", "apr-1").unwrap_err(),
        Refusal::NotAuthorized { .. }
    ));
    assign(&mut state, "ra-bob-approver", "bob", "Enclave Approver", C1);
    assert_eq!(
        completion_status(&approve(&mut state, "bob", "apr-1").unwrap()),
        None,
        "one of two"
    );
    assert!(matches!(
        approval_refusal(approve(&mut state, "bob", "apr-1")),
        ApprovalRefusal::AlreadyVoted(_)
    ));
    let outcome = approve(&mut state, "carol", "apr-1").unwrap();
    assert_eq!(completion_status(&outcome), Some(ApprovalStatus::Approved));
}

#[test]
fn one_rejection_ends_it_and_nothing_is_created() {
    let mut state = governed(2, &[]);
    submit(&mut state, "alice", create_enclave()).unwrap();
    approve(&mut state, "carol", "apr-1").unwrap();
    reject(&mut state, "dave", "apr-1").unwrap();
    assert_eq!(status(&state, "apr-1"), ApprovalStatus::Rejected);
    assert!(state.enclave(&s(NEW_ENCLAVE)).is_none());
    assert!(matches!(
        approval_refusal(approve(&mut state, "expert", "apr-1")),
        ApprovalRefusal::NotPending {
            status: ApprovalStatus::Rejected,
            ..
        }
    ));
}

#[test]
fn an_expired_approval_cannot_be_approved_and_expires_by_itself() {
    let mut state = governed(1, &[]);
    submit(&mut state, "alice", create_enclave()).unwrap();
    assert_eq!(state.next_due(), Some(after(24 * 60)));
    let late = after(24 * 60 + 1);
    let refusal = state
        .submit(
            &p("carol"),
            &cmd(json!({"approve": {"id": "apr-1"}})),
            &submission("x"),
            late,
        )
        .unwrap_err();
    assert!(matches!(
        refusal,
        Refusal::Approval(ApprovalRefusal::Expired { .. })
    ));
    let due = state.due_events(late);
    assert!(
        matches!(due.as_slice(), [Event::ApprovalClosed { status: ApprovalStatus::Expired, at, .. }] if *at == after(24 * 60)),
        "{due:?}"
    );
    for event in &due {
        state.apply(event).unwrap();
    }
    assert_eq!(status(&state, "apr-1"), ApprovalStatus::Expired);
    assert_eq!(state.next_due(), None);
}

#[test]
fn an_approved_change_that_no_longer_fits_fails_with_the_reason() {
    let mut state = governed(1, &[]);
    submit(&mut state, "alice", create_enclave()).unwrap();
    // Meanwhile the platform creates an enclave over the same address space.
    setup(
        &mut state,
        json!({"createVirtualEnclave": {"id": "/communities/c1/virtualEnclaves/other", "addressSpace": "10.9.0.0/16"}}),
    );
    let outcome = approve(&mut state, "carol", "apr-1").unwrap();
    assert_eq!(completion_status(&outcome), Some(ApprovalStatus::Failed));
    let approval = state.approval(&ApprovalId::new("apr-1").unwrap()).unwrap();
    assert_eq!(approval.approval_status, ApprovalStatus::Failed);
    assert!(
        approval
            .status_reason
            .as_deref()
            .unwrap()
            .contains("10.9.0.0/16"),
        "{:?}",
        approval.status_reason
    );
    assert!(state.enclave(&s(NEW_ENCLAVE)).is_none());
}

#[test]
fn only_the_requester_or_an_owner_deletes_a_pending_approval() {
    let mut state = governed(1, &[]);
    submit(&mut state, "alice", create_enclave()).unwrap();
    assert!(matches!(
        approval_refusal(submit(
            &mut state,
            "carol",
            json!({"deleteApproval": {"id": "apr-1"}})
        )),
        ApprovalRefusal::CannotDelete { .. }
    ));
    submit(
        &mut state,
        "bob",
        json!({"deleteApproval": {"id": "apr-1"}}),
    )
    .unwrap();
    assert_eq!(status(&state, "apr-1"), ApprovalStatus::Deleted);

    submit_at(&mut state, "alice", create_enclave(), "apr-2", t0()).unwrap();
    submit(
        &mut state,
        "alice",
        json!({"deleteApproval": {"id": "apr-2"}}),
    )
    .unwrap();
    assert_eq!(status(&state, "apr-2"), ApprovalStatus::Deleted);
}

#[test]
fn one_pending_approval_per_resource_and_a_bounded_number_per_requester() {
    let mut state = governed(1, &[]);
    submit(&mut state, "alice", create_enclave()).unwrap();
    assert!(matches!(
        approval_refusal(submit_at(
            &mut state,
            "alice",
            create_enclave(),
            "apr-2",
            t0()
        )),
        ApprovalRefusal::PendingForTarget(_)
    ));
    assert!(matches!(
        approval_refusal(submit_at(
            &mut state,
            "alice",
            json!({"createVirtualEnclave": {"id": "/communities/c1/virtualEnclaves/b", "addressSpace": "10.7.0.0/16"}}),
            "apr-1",
            t0()
        )),
        ApprovalRefusal::IdTaken(_)
    ));
    let limited = Submission {
        max_pending_per_requester: 1,
        ..submission("apr-3")
    };
    let refusal = state
        .submit(
            &p("alice"),
            &cmd(json!({"createVirtualEnclave": {"id": "/communities/c1/virtualEnclaves/b", "addressSpace": "10.7.0.0/16"}})),
            &limited,
            t0(),
        )
        .unwrap_err();
    assert!(matches!(
        refusal,
        Refusal::Approval(ApprovalRefusal::TooManyPending { limit: 1, .. })
    ));
}

fn create_connection() -> Value {
    json!({"createConnection": {"id": CONN, "sourceResourceId": E1, "sourceCidr": "10.1.0.0/24",
        "destinationEndpointId": EP}})
}

fn connection_state(state: &PolicyState) -> Option<ConnectionState> {
    state.connection(&s(CONN)).map(|c| c.state)
}

fn flows(state: &PolicyState) -> bool {
    state
        .flow(
            &s(E1),
            &"8.8.8.8".parse().unwrap(),
            443,
            ea_policy::Protocol::Tcp,
        )
        .allowed
}

#[test]
fn connection_states_follow_the_approval() {
    let mut state = governed(1, &[]);
    submit(&mut state, "alice", create_connection()).unwrap();
    assert_eq!(
        connection_state(&state),
        Some(ConnectionState::PendingApproval)
    );
    assert!(!flows(&state), "a pending connection carries no traffic");
    approve(&mut state, "carol", "apr-1").unwrap();
    assert_eq!(connection_state(&state), Some(ConnectionState::Active));
    assert!(flows(&state));

    // An update waits in PendingUpdate; its rejection restores the connection.
    let update = json!({"updateConnection": {"id": CONN, "sourceResourceId": E1,
        "sourceCidr": "10.1.1.0/24", "destinationEndpointId": EP}});
    submit_at(&mut state, "alice", update.clone(), "apr-2", t0()).unwrap();
    assert_eq!(
        connection_state(&state),
        Some(ConnectionState::PendingUpdate)
    );
    reject(&mut state, "carol", "apr-2").unwrap();
    assert_eq!(connection_state(&state), Some(ConnectionState::Active));
    assert_eq!(
        state.connection(&s(CONN)).unwrap().source_cidr.to_string(),
        "10.1.0.0/24"
    );
    // Approved, the update applies.
    submit_at(&mut state, "alice", update, "apr-3", t0()).unwrap();
    approve(&mut state, "dave", "apr-3").unwrap();
    assert_eq!(
        state.connection(&s(CONN)).unwrap().source_cidr.to_string(),
        "10.1.1.0/24"
    );
}

#[test]
fn a_rejected_connection_is_never_created_and_a_failed_one_is_marked() {
    let mut state = governed(1, &[]);
    submit(&mut state, "alice", create_connection()).unwrap();
    reject(&mut state, "carol", "apr-1").unwrap();
    assert_eq!(
        connection_state(&state),
        None,
        "a rejection creates nothing"
    );

    submit_at(&mut state, "alice", create_connection(), "apr-2", t0()).unwrap();
    // The endpoint goes away before the approval: the placeholder is Disconnected, and the
    // approved change can no longer apply.
    setup(&mut state, json!({"deleteEndpoint": {"id": EP}}));
    let outcome = approve(&mut state, "carol", "apr-2").unwrap();
    assert_eq!(completion_status(&outcome), Some(ApprovalStatus::Failed));
    assert_eq!(
        connection_state(&state),
        Some(ConnectionState::Disconnected)
    );
}

#[test]
fn endpoint_approvers_add_one_approval_of_their_own() {
    let mut state = governed(1, &[]);
    setup(
        &mut state,
        json!({"updateEndpoint": {"id": EP, "ruleCollection": [
        {"endpointRuleName": "https", "destination": "0.0.0.0/0", "ports": "443", "protocols": ["TCP"]}],
        "approvers": ["expert"]}}),
    );
    submit(&mut state, "alice", create_connection()).unwrap();
    let approval = state.approval(&ApprovalId::new("apr-1").unwrap()).unwrap();
    assert!(approval.settings.endpoint_approvers.contains(&p("expert")));
    // The community asks for one approval from anyone with the role; the endpoint adds one
    // from its own approvers. carol's vote counts towards the minimum but cannot complete it.
    assert_eq!(
        completion_status(&approve(&mut state, "carol", "apr-1").unwrap()),
        None
    );
    assert_eq!(
        connection_state(&state),
        Some(ConnectionState::PendingApproval)
    );
    let outcome = approve(&mut state, "expert", "apr-1").unwrap();
    assert_eq!(completion_status(&outcome), Some(ApprovalStatus::Approved));
    assert_eq!(connection_state(&state), Some(ConnectionState::Active));
}

#[test]
fn role_activation_is_governed_when_the_community_says_so() {
    let mut state = governed(1, &[]);
    setup(
        &mut state,
        json!({"setApprovalSettings": {"scope": C1, "settings": {
        "roleActivation": {"approvalPolicy": "Required", "minimumApproversRequired": 1}}}}),
    );
    setup(
        &mut state,
        json!({"assignEligibleRole": {"id": "el-1", "principalId": "erin",
        "roleDefinitionId": "Enclave Contributor", "scope": E1, "maxActivationHours": 2}}),
    );
    let activate = json!({"activateRole": {"id": "act-1", "eligibleAssignmentId": "el-1",
        "justification": "incident", "durationMinutes": 60}});
    assert!(matches!(
        submit(&mut state, "erin", activate).unwrap(),
        Outcome::Pending { .. }
    ));
    assert!(!allowed(
        &state,
        "erin",
        "Microsoft.Network/virtualNetworks/write",
        W1
    ));
    approve(&mut state, "carol", "apr-1").unwrap();
    assert!(allowed(
        &state,
        "erin",
        "Microsoft.Network/virtualNetworks/write",
        W1
    ));
}

#[test]
fn replaying_the_events_rebuilds_the_same_state() {
    let mut state = governed(2, &[]);
    let start = state.clone();
    let mut events: Vec<Event> = Vec::new();
    let mut run = |state: &mut PolicyState, actor: &str, command: Value, id: &str| {
        let outcome = submit_at(state, actor, command, id, t0()).unwrap();
        events.extend(outcome.events().cloned());
    };
    run(&mut state, "alice", create_enclave(), "apr-1");
    run(
        &mut state,
        "carol",
        json!({"approve": {"id": "apr-1"}}),
        "unused",
    );
    run(
        &mut state,
        "dave",
        json!({"approve": {"id": "apr-1"}}),
        "unused",
    );
    run(&mut state, "alice", create_connection(), "apr-2");
    run(
        &mut state,
        "dave",
        json!({"reject": {"id": "apr-2"}}),
        "unused",
    );
    let mut replayed = start;
    for event in &events {
        replayed.apply(event).unwrap();
    }
    assert_eq!(replayed, state);
    assert_eq!(status(&replayed, "apr-1"), ApprovalStatus::Approved);
    // And the state with its approvals survives the document round trip.
    let reloaded = PolicyState::from_json(&state.to_json_pretty()).unwrap();
    assert_eq!(reloaded, state);
}
