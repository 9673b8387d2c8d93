//! Image changes (`imageChange`): admitting and retiring enclave images is a governed
//! operation at `/`, approved by at least two principals holding Owner at `/`, never the
//! requester; enclave starts are refused for images that are not admitted.
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
    AdmittedImage, ApprovalId, ApprovalRefusal, ApprovalStatus, Event, ImagePcrs, Outcome,
    PolicyState, Problem, Refusal, Submission, Timestamp,
};
use serde_json::{json, Value};

fn pcrs(byte: &str) -> Value {
    json!({"PCR0": byte.repeat(48), "PCR1": byte.repeat(48), "PCR2": byte.repeat(48)})
}

fn image(byte: &str) -> ImagePcrs {
    serde_json::from_value(pcrs(byte)).unwrap()
}

/// alice, bob and carol Owners at `/` (carol through the `admins` group), dave Owner of the
/// community only, erin an Enclave Approver at `/`; image `aa` admitted and running.
fn owners(extra: Value) -> PolicyState {
    let mut doc = base_json();
    doc["roleAssignments"] = json!([
        {"id": "ra-alice", "principalId": "alice", "roleDefinitionId": "Owner", "scope": "/"},
        {"id": "ra-bob", "principalId": "bob", "roleDefinitionId": "Owner", "scope": "/"},
        {"id": "ra-admins", "principalId": "admins", "roleDefinitionId": "Owner", "scope": "/"},
        {"id": "ra-dave", "principalId": "dave", "roleDefinitionId": "Owner", "scope": C1},
        {"id": "ra-erin", "principalId": "erin", "roleDefinitionId": "Enclave Approver", "scope": "/"}
    ]);
    doc["images"] = json!([{"pcrs": pcrs("aa")}]);
    if let Some(settings) = extra.get("approvalSettings") {
        doc["approvalSettings"] = settings.clone();
    }
    let mut state = load(doc);
    state
        .apply(&Event::ImageStarted { pcrs: image("aa") })
        .unwrap();
    state
}

fn submission(id: &str) -> Submission<'static> {
    Submission {
        justification: Some("release 2.0"),
        approval_id: ApprovalId::new(id).unwrap(),
        max_pending_per_requester: 10,
    }
}

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
    submit_at(state, actor, command, "img-1", t0())
}

fn vote(state: &mut PolicyState, actor: &str, verb: &str) -> Result<Outcome, Refusal> {
    submit(state, actor, json!({verb: {"id": "img-1"}}))
}

fn admit(byte: &str) -> Value {
    json!({"admitImage": {"image": pcrs(byte)}})
}

fn admitted(state: &PolicyState) -> Vec<ImagePcrs> {
    state.images().map(|i| i.pcrs.clone()).collect()
}

#[test]
fn an_image_change_is_pending_and_needs_two_owners_at_the_root() {
    let mut state = owners(json!({}));
    let outcome = submit(&mut state, "alice", admit("bb")).unwrap();
    assert!(matches!(outcome, Outcome::Pending { .. }), "{outcome:?}");
    let approval = state.approval(&ApprovalId::new("img-1").unwrap()).unwrap();
    assert_eq!(approval.settings.key.as_str(), "imageChange");
    assert_eq!(approval.settings.minimum_approvers_required, 2);
    assert_eq!(approval.target().as_str(), "/");
    assert_eq!(admitted(&state), vec![image("aa")], "nothing admitted yet");

    // The requester cannot approve her own change.
    let own = vote(&mut state, "alice", "approve").unwrap_err();
    assert!(
        matches!(own, Refusal::Approval(ApprovalRefusal::OwnRequest(_))),
        "{own}"
    );
    // An owner of a community, or an approver at the root, is not an owner of `/`.
    for outsider in ["dave", "erin"] {
        let refused = vote(&mut state, outsider, "approve").unwrap_err();
        assert_eq!(refused.code(), "owner_required", "{refused}");
        assert!(refused.to_string().contains("Owner role at /"), "{refused}");
    }
    // One owner is not enough.
    let first = vote(&mut state, "bob", "approve").unwrap();
    assert!(matches!(
        first,
        Outcome::Voted {
            completion: None,
            ..
        }
    ));
    assert_eq!(admitted(&state), vec![image("aa")]);
    // Owner through a group counts; the second approval admits the image.
    let second = vote(&mut state, "carol", "approve").unwrap();
    let Outcome::Voted {
        completion: Some(completion),
        ..
    } = second
    else {
        panic!("not completed: {second:?}")
    };
    assert_eq!(completion.status, ApprovalStatus::Approved);
    assert_eq!(admitted(&state), vec![image("aa"), image("bb")]);
    let new = state.admitted_image(&image("bb")).unwrap();
    assert_eq!(new.approval_id.as_ref().unwrap().as_str(), "img-1");
    assert_eq!(new.admitted_at, Some(t0()));
}

#[test]
fn one_owner_alone_cannot_admit_an_image() {
    let state = owners(json!({}));
    // Not without the approval...
    let direct = state
        .execute(&p("alice"), &cmd(admit("bb")), t0())
        .unwrap_err();
    assert_eq!(direct.code(), "approval_required");
    // ...nor by loosening imageChange: only a genesis sets it, and never below two.
    let loose = json!({"approvalSettings": {"imageChange": {
        "approvalPolicy": "NotRequired", "minimumApproversRequired": 1}}});
    let mut doc = base_json();
    doc["approvalSettings"] = loose["approvalSettings"].clone();
    let error = PolicyState::from_json(&doc.to_string()).unwrap_err();
    assert!(error.to_string().contains("at least 2"), "{error}");
    doc["approvalSettings"]["imageChange"] =
        json!({"approvalPolicy": "Required", "minimumApproversRequired": 1});
    assert!(PolicyState::from_json(&doc.to_string()).is_err());
    // A community cannot carry imageChange.
    let mut doc = base_json();
    doc["communities"][0]["approvalSettings"] =
        json!({"imageChange": {"approvalPolicy": "Required", "minimumApproversRequired": 2}});
    assert!(PolicyState::from_json(&doc.to_string()).is_err());
}

#[test]
fn mandatory_approvers_and_a_higher_minimum_apply() {
    let mut state = owners(json!({"approvalSettings": {"imageChange": {
        "approvalPolicy": "Required", "minimumApproversRequired": 2,
        "mandatoryApprovers": ["carol"]}}}));
    submit(&mut state, "alice", admit("bb")).unwrap();
    let refused = vote(&mut state, "bob", "approve").unwrap_err();
    assert_eq!(refused.code(), "not_an_eligible_approver", "{refused}");
    // A principal named in imageChange cannot be deleted.
    let delete = state
        .execute(
            &p("alice"),
            &cmd(json!({"deletePrincipal": {"id": "carol"}})),
            t0(),
        )
        .unwrap_err();
    assert!(delete.to_string().contains("imageChange"), "{delete}");
}

#[test]
fn a_rejection_or_an_expiry_admits_nothing() {
    let mut state = owners(json!({}));
    submit(&mut state, "alice", admit("bb")).unwrap();
    vote(&mut state, "bob", "approve").unwrap();
    vote(&mut state, "carol", "reject").unwrap();
    assert_eq!(admitted(&state), vec![image("aa")]);

    let mut state = owners(json!({}));
    submit(&mut state, "alice", admit("bb")).unwrap();
    let week = t0().checked_add_millis(7 * 24 * 3_600_000).unwrap();
    for event in state.due_events(week) {
        state.apply(&event).unwrap();
    }
    let expired = state.approval(&ApprovalId::new("img-1").unwrap()).unwrap();
    assert_eq!(expired.approval_status, ApprovalStatus::Expired);
    assert_eq!(admitted(&state), vec![image("aa")]);
}

#[test]
fn retiring_keeps_a_successor_and_never_the_running_image() {
    let mut state = owners(json!({}));
    // The only image cannot be retired.
    let last = state
        .submit(
            &p("alice"),
            &cmd(json!({"retireImage": {"image": pcrs("aa")}})),
            &submission("r0"),
            t0(),
        )
        .unwrap_err();
    assert!(last.to_string().contains("only admitted image"), "{last}");

    submit(&mut state, "alice", admit("bb")).unwrap();
    vote(&mut state, "bob", "approve").unwrap();
    vote(&mut state, "carol", "approve").unwrap();
    // `aa` still writes the log: it cannot be retired before `bb` has started.
    let running = state
        .submit(
            &p("alice"),
            &cmd(json!({"retireImage": {"image": pcrs("aa")}})),
            &submission("r1"),
            after(1),
        )
        .unwrap_err();
    assert!(
        running.to_string().contains("writing this log"),
        "{running}"
    );

    state
        .apply(&Event::ImageStarted { pcrs: image("bb") })
        .unwrap();
    submit_at(
        &mut state,
        "alice",
        json!({"retireImage": {"image": pcrs("aa")}}),
        "img-2",
        after(2),
    )
    .unwrap();
    for voter in ["bob", "carol"] {
        submit_at(
            &mut state,
            voter,
            json!({"approve": {"id": "img-2"}}),
            "x",
            after(3),
        )
        .unwrap();
    }
    assert_eq!(admitted(&state), vec![image("bb")]);
    // A retired image cannot start again.
    let refused = state
        .apply(&Event::ImageStarted { pcrs: image("aa") })
        .unwrap_err();
    assert!(matches!(
        refused.invalid.problem,
        Problem::ImageNotAdmitted { .. }
    ));
    let message = refused.to_string();
    assert!(
        message.contains(&"aa".repeat(48)) && message.contains(&"bb".repeat(48)),
        "{message}"
    );
}

#[test]
fn images_are_refused_twice_in_debug_mode_and_unknown() {
    let mut state = owners(json!({}));
    let twice = submit(&mut state, "alice", admit("aa")).unwrap_err();
    assert_eq!(twice.code(), "already_exists", "{twice}");
    let debug = submit(&mut state, "alice", admit("00")).unwrap_err();
    assert!(debug.to_string().contains("debug-mode"), "{debug}");
    let unknown = submit(
        &mut state,
        "alice",
        json!({"retireImage": {"image": pcrs("cc")}}),
    )
    .unwrap_err();
    assert_eq!(unknown.code(), "not_found", "{unknown}");
    // Only owners of `/` may propose (the RBAC operation at `/`).
    let dave = submit(&mut state, "dave", admit("bb")).unwrap_err();
    assert_eq!(dave.code(), "not_authorized", "{dave}");
}

#[test]
fn the_document_keeps_images_and_settings() {
    let state = owners(json!({"approvalSettings": {"imageChange": {
        "approvalPolicy": "Required", "minimumApproversRequired": 3}}}));
    let doc = state.to_document();
    assert_eq!(
        doc.images,
        vec![AdmittedImage {
            pcrs: image("aa"),
            admitted_at: None,
            approval_id: None
        }]
    );
    assert_eq!(
        doc.approval_settings
            .image_change
            .as_ref()
            .unwrap()
            .minimum_approvers_required,
        3
    );
    let again = PolicyState::from_document(&doc).unwrap();
    assert_eq!(again.to_document(), doc);
}
