//! The ledger end to end in memory: signed bytes in, answers and records out, and the
//! records replayed into an equal state.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test"
)]

use base64::Engine as _;
use ea_audit::record::{Record, RecordFields, RecordKind};
use ea_ledger::{
    events_of, events_of_fields, Answer, Directory, Draft, Genesis, Ledger, Operation, Query,
    ReadResult, Rejected,
};
use ea_policy::{ApprovalStatus, Command};
use ea_protocol::signed::{
    encode_signed_request, RequestSigner, SignatureAlgorithm, SignedRequestError, MAX_CLOCK_SKEW_MS,
};
use serde_json::json;

const NOW: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

struct Party {
    id: &'static str,
    signer: RequestSigner,
}

impl Party {
    fn new(id: &'static str, alg: SignatureAlgorithm) -> Party {
        let (signer, _) = RequestSigner::generate(alg).unwrap();
        Party {
            id,
            signer: signer.with_key_id("k1"),
        }
    }

    fn key_json(&self) -> serde_json::Value {
        let alg = match self.signer.public_key().alg {
            SignatureAlgorithm::ES256 => "ES256",
            SignatureAlgorithm::Ed25519 => "Ed25519",
        };
        json!({"keyId": "k1", "algorithm": alg,
               "publicKey": base64::engine::general_purpose::STANDARD.encode(&self.signer.public_key().bytes)})
    }

    fn sign(&self, operation: &Operation, at: u64) -> Vec<u8> {
        encode_signed_request(&self.signer.sign(self.id, operation, at).unwrap())
    }
}

struct World {
    admin: Party,
    alice: Party,
    approver: Party,
    reader: Party,
}

fn world() -> World {
    World {
        admin: Party::new("admin", SignatureAlgorithm::Ed25519),
        alice: Party::new("alice", SignatureAlgorithm::ES256),
        approver: Party::new("approver", SignatureAlgorithm::Ed25519),
        reader: Party::new("reader", SignatureAlgorithm::Ed25519),
    }
}

fn genesis(w: &World, decision_logging: bool) -> Genesis {
    let doc = json!({
        "version": 1, "name": "test", "createdAt": "2026-01-01T00:00:00Z",
        "settings": {"decisionLogging": decision_logging},
        "policy": {
            "principals": [
                {"id": "admin", "type": "User", "keys": [w.admin.key_json()]},
                {"id": "alice", "type": "User", "keys": [w.alice.key_json()]},
                {"id": "approver", "type": "User", "keys": [w.approver.key_json()]},
                {"id": "reader", "type": "User", "keys": [w.reader.key_json()]}
            ],
            "communities": [{"id": "/communities/c1", "addressSpace": "10.0.0.0/8",
                "approvalSettings": {"enclaveCreation": {"approvalPolicy": "Required", "minimumApproversRequired": 1}}}],
            "roleAssignments": [
                {"id": "ra-admin", "principalId": "admin", "roleDefinitionId": "Owner", "scope": "/"},
                {"id": "ra-alice", "principalId": "alice", "roleDefinitionId": "Community Contributor", "scope": "/communities/c1"},
                {"id": "ra-approver", "principalId": "approver", "roleDefinitionId": "Enclave Approver", "scope": "/communities/c1"},
                {"id": "ra-reader", "principalId": "reader", "roleDefinitionId": "Community Reader", "scope": "/communities/c1"}
            ]
        }
    });
    Genesis::from_json(&doc.to_string()).unwrap()
}

fn submit(command: serde_json::Value) -> Operation {
    Operation::Submit {
        command: Box::new(serde_json::from_value::<Command>(command).unwrap()),
        justification: Some("because".into()),
    }
}

/// Runs signed bytes through authentication and the ledger, keeping every record.
struct Run {
    ledger: Ledger,
    records: Vec<Record>,
}

impl Run {
    fn new(genesis: &Genesis) -> Run {
        let (ledger, draft) = Ledger::from_genesis(genesis, 10_000).unwrap();
        let mut run = Run {
            ledger,
            records: Vec::new(),
        };
        run.keep(vec![draft], NOW);
        run
    }

    fn keep(&mut self, drafts: Vec<Draft>, time: u64) {
        for draft in drafts {
            let mut record = draft.into_record(time);
            record.seq = self.records.len() as u64;
            // Round trip through the canonical bytes, as the log stores them.
            let bytes = record.to_bytes().unwrap();
            self.records.push(Record::from_bytes(&bytes).unwrap());
        }
    }

    fn send(&mut self, bytes: &[u8], at: u64) -> Result<Answer, SignedRequestError> {
        let request = Directory::of(self.ledger.state()).authenticate(bytes, at)?;
        match self.ledger.execute(&request, at) {
            Ok(execution) => {
                self.keep(execution.drafts, at);
                Ok(execution.answer)
            }
            Err(Rejected::Request(e)) => Err(e),
            Err(other) => panic!("{other}"),
        }
    }

    fn kinds(&self) -> Vec<RecordKind> {
        self.records.iter().map(|r| r.kind).collect()
    }

    /// A fresh ledger rebuilt from the records alone, both ways: from decoded records (how
    /// an auditor follows the log) and from the fields located in their bytes (how the
    /// enclave recovers). The two must agree; the second is returned.
    fn replayed(&self, now: u64) -> Ledger {
        let mut decoded = Ledger::from_genesis_record(&self.records[0], 10_000).unwrap();
        let mut located = Ledger::from_genesis_record(&self.records[0], 10_000).unwrap();
        for record in &self.records[1..] {
            decoded.replay(record, now).unwrap();
            let bytes = record.to_bytes().unwrap();
            let fields = RecordFields::parse(&bytes).unwrap();
            assert_eq!(
                events_of_fields(&fields).unwrap(),
                events_of(record).unwrap(),
                "record {}",
                record.seq
            );
            located.replay_fields(&fields, now).unwrap();
        }
        assert_eq!(located.state(), decoded.state());
        assert_eq!(located.replay_cache_len(), decoded.replay_cache_len());
        located
    }
}

#[test]
fn every_refusal_of_a_signed_request_has_its_own_code() {
    let w = world();
    let mut run = Run::new(&genesis(&w, true));
    let read = Operation::Read(Query::RoleDefinitions);
    let good = w.alice.sign(&read, NOW);
    assert!(run.send(&good, NOW).is_ok());
    let code = |r: Result<Answer, SignedRequestError>| r.unwrap_err().code();
    assert_eq!(code(run.send(&good, NOW)), "replayed_request");
    assert_eq!(
        code(run.send(&w.alice.sign(&read, NOW - MAX_CLOCK_SKEW_MS - 1), NOW)),
        "stale_request"
    );
    assert_eq!(
        code(run.send(&w.alice.sign(&read, NOW + MAX_CLOCK_SKEW_MS + 1), NOW)),
        "future_request"
    );
    let mut flipped = w.alice.sign(&read, NOW);
    let last = flipped.len() - 1;
    flipped[last] ^= 1; // inside the signature
    assert_eq!(code(run.send(&flipped, NOW)), "bad_signature");
    // Someone else's key claiming to be alice.
    let mallory = Party::new("alice", SignatureAlgorithm::ES256);
    assert_eq!(
        code(run.send(&mallory.sign(&read, NOW), NOW)),
        "bad_signature"
    );
    let stranger = Party::new("stranger", SignatureAlgorithm::Ed25519);
    assert_eq!(
        code(run.send(&stranger.sign(&read, NOW), NOW)),
        "unknown_key"
    );
    let platform = Party::new("platform", SignatureAlgorithm::Ed25519);
    assert_eq!(
        code(run.send(&platform.sign(&read, NOW), NOW)),
        "reserved_principal"
    );
    assert_eq!(code(run.send(b"\xff\x00", NOW)), "malformed_request");
    // The admin revokes alice's key; her next request is refused as revoked.
    let mut alice = run
        .ledger
        .state()
        .principal(&"alice".parse().unwrap())
        .unwrap()
        .clone();
    alice.keys[0].revoked = true;
    let revoke = submit(json!({"updatePrincipal": serde_json::to_value(&alice).unwrap()}));
    assert!(matches!(
        run.send(&w.admin.sign(&revoke, NOW), NOW).unwrap(),
        Answer::Applied { .. }
    ));
    assert_eq!(
        code(run.send(&w.alice.sign(&read, NOW), NOW)),
        "revoked_key"
    );
    // Only reads and the revocation went through: genesis + one state change.
    assert_eq!(
        run.kinds(),
        vec![RecordKind::Genesis, RecordKind::StateChange]
    );
}

/// The order of P-256, big-endian.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `n - s`, big-endian, for `0 < s < n`.
fn order_minus(s: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(P256_ORDER[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = d as u8;
    }
    out
}

#[test]
fn a_high_s_es256_signature_is_refused_with_its_own_code_and_its_low_twin_accepted() {
    let w = world();
    let mut run = Run::new(&genesis(&w, true));
    let read = Operation::Read(Query::RoleDefinitions);
    let request = w.alice.signer.sign("alice", &read, NOW).unwrap();
    let (r, s) = request.sig.split_at(32);
    // (r, s) and (r, n - s) both verify under ECDSA; the larger s is the high one.
    let twin = order_minus(s);
    let (low, high) = if s < twin.as_slice() {
        (s.to_vec(), twin)
    } else {
        (twin, s.to_vec())
    };
    let with_s = |s: &[u8]| {
        let mut request = request.clone();
        request.sig = [r, s].concat();
        encode_signed_request(&request)
    };
    let error = run.send(&with_s(&high), NOW).unwrap_err();
    assert_eq!(error.code(), "high_s_signature", "{error}");
    assert_eq!(ea_ledger::request_error_status(error.code()), 401);
    assert!(run.send(&with_s(&low), NOW).is_ok());
}

#[test]
fn a_key_revoked_after_the_snapshot_is_refused_in_log_order() {
    let w = world();
    let mut run = Run::new(&genesis(&w, true));
    let read = Operation::Read(Query::RoleDefinitions);
    // Authenticated against the directory as it was...
    let snapshot = Directory::of(run.ledger.state());
    let stale = snapshot
        .authenticate(&w.alice.sign(&read, NOW), NOW)
        .unwrap();
    // ...then the key is revoked before the ledger decides it.
    let mut alice = run
        .ledger
        .state()
        .principal(&"alice".parse().unwrap())
        .unwrap()
        .clone();
    alice.keys[0].revoked = true;
    run.send(
        &w.admin.sign(
            &submit(json!({"updatePrincipal": serde_json::to_value(&alice).unwrap()})),
            NOW,
        ),
        NOW,
    )
    .unwrap();
    assert!(matches!(
        run.ledger.execute(&stale, NOW),
        Err(Rejected::Request(SignedRequestError::RevokedKey { .. }))
    ));
    assert!(run.ledger.take_directory_changed());
}

#[test]
fn changes_denials_approvals_and_decisions_are_recorded_and_replay_to_the_same_state() {
    let w = world();
    let mut run = Run::new(&genesis(&w, true));
    let enclave = json!({"createVirtualEnclave": {"id": "/communities/c1/virtualEnclaves/e1", "addressSpace": "10.1.0.0/16"}});

    // A reader cannot create: denied, recorded.
    let answer = run
        .send(&w.reader.sign(&submit(enclave.clone()), NOW), NOW)
        .unwrap();
    assert!(matches!(answer, Answer::Denied { ref code, .. } if code == "not_authorized"));
    assert_eq!(answer.status(), 403);

    // alice's creation is governed: pending.
    let answer = run.send(&w.alice.sign(&submit(enclave), NOW), NOW).unwrap();
    let Answer::Pending { approval } = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(approval.approval_status, ApprovalStatus::Pending);

    // The reader lists it; the approver approves it, which applies the change.
    let list = Operation::Read(Query::Approvals {
        status: Some(ApprovalStatus::Pending),
        scope: None,
        requester: None,
    });
    let Answer::Read { result } = run.send(&w.reader.sign(&list, NOW), NOW).unwrap() else {
        panic!()
    };
    assert!(matches!(*result, ReadResult::Approvals(ref a) if a.len() == 1));
    let approve = submit(json!({"approve": {"id": approval.id.as_str(), "comment": "fine"}}));
    let answer = run.send(&w.approver.sign(&approve, NOW), NOW).unwrap();
    assert!(
        matches!(answer, Answer::Voted { ref approval, ref events } if approval.approval_status == ApprovalStatus::Approved && !events.is_empty()),
        "{answer:?}"
    );

    // A check and a flow question are recorded as decisions.
    let check = Operation::Check {
        principal: None,
        operation: "Microsoft.Mission/virtualEnclaves/write".into(),
        scope: "/communities/c1/virtualEnclaves/e1".parse().unwrap(),
        data_action: false,
    };
    assert!(matches!(
        run.send(&w.alice.sign(&check, NOW), NOW).unwrap(),
        Answer::Decision { ref decision, .. } if decision.allowed
    ));

    assert_eq!(
        run.kinds(),
        vec![
            RecordKind::Genesis,
            RecordKind::Denied,
            RecordKind::ApprovalSubmitted,
            RecordKind::ApprovalDecision,
            RecordKind::ApprovalApplied,
            RecordKind::Decision,
        ]
    );
    // Every record with a request carries it verbatim and is signed by its actor.
    for record in &run.records {
        if let Some(request) = &record.request {
            let decoded = ea_protocol::signed::decode_signed_request(request).unwrap();
            let body: ea_protocol::signed::RequestBody<ciborium::Value> =
                ea_protocol::signed::decode_request_body(&decoded).unwrap();
            assert_eq!(body.principal, record.actor);
        }
    }

    let replayed = run.replayed(NOW);
    assert_eq!(replayed.state(), run.ledger.state());
    assert!(replayed
        .state()
        .enclave(&"/communities/c1/virtualEnclaves/e1".parse().unwrap())
        .is_some());
}

#[test]
fn replay_restores_the_nonces_that_could_still_be_replayed() {
    let w = world();
    let mut run = Run::new(&genesis(&w, true));
    let check = Operation::Check {
        principal: None,
        operation: "Microsoft.Mission/communities/read".into(),
        scope: "/communities/c1".parse().unwrap(),
        data_action: false,
    };
    let bytes = w.alice.sign(&check, NOW);
    run.send(&bytes, NOW).unwrap();
    // After a restart a minute later, the recorded request is still a replay.
    let mut restarted = run.replayed(NOW + 60_000);
    let request = Directory::of(restarted.state())
        .authenticate(&bytes, NOW + 60_000)
        .unwrap();
    assert!(matches!(
        restarted.execute(&request, NOW + 60_000),
        Err(Rejected::Request(SignedRequestError::Replayed))
    ));
}

#[test]
fn decision_logging_off_records_no_checks() {
    let w = world();
    let mut run = Run::new(&genesis(&w, false));
    let check = Operation::Check {
        principal: Some("reader".parse().unwrap()),
        operation: "Microsoft.Mission/communities/read".into(),
        scope: "/communities/c1".parse().unwrap(),
        data_action: false,
    };
    // alice may ask about the reader: Community Contributor's `*/read` covers
    // roleAssignments/read. Answered, and with decision logging off, not recorded.
    let answer = run.send(&w.alice.sign(&check, NOW), NOW).unwrap();
    assert!(matches!(answer, Answer::Decision { ref decision, .. } if decision.allowed));
    assert_eq!(run.kinds(), vec![RecordKind::Genesis]);
}

#[test]
fn expiry_is_an_automatic_record() {
    let w = world();
    let mut run = Run::new(&genesis(&w, true));
    let enclave = json!({"createVirtualEnclave": {"id": "/communities/c1/virtualEnclaves/e1", "addressSpace": "10.1.0.0/16"}});
    run.send(&w.alice.sign(&submit(enclave), NOW), NOW).unwrap();
    let due = run.ledger.next_due().unwrap();
    assert_eq!(due, NOW + 7 * 24 * 3_600_000, "the default lifetime");
    assert!(run.ledger.tick(due - 1).is_empty());
    let drafts = run.ledger.tick(due);
    assert_eq!(drafts.len(), 1);
    assert_eq!(drafts[0].kind, RecordKind::Automatic);
    run.keep(drafts, due);
    let replayed = run.replayed(due);
    assert_eq!(replayed.state(), run.ledger.state());
    assert_eq!(
        replayed.state().approvals().next().unwrap().approval_status,
        ApprovalStatus::Expired
    );
}

#[test]
fn genesis_must_let_someone_act() {
    let doc = json!({"version": 1, "name": "x", "createdAt": "2026-01-01T00:00:00Z",
        "policy": {"principals": [{"id": "g", "type": "Group"}]}});
    let error = Genesis::from_json(&doc.to_string()).unwrap_err();
    assert!(error.to_string().contains("nobody could act"), "{error}");
    let doc = json!({"version": 2, "name": "x", "createdAt": "2026-01-01T00:00:00Z", "policy": {}});
    assert!(Genesis::from_json(&doc.to_string())
        .unwrap_err()
        .to_string()
        .contains("version 2"));
    let error = Genesis::from_json(r#"{"version": 1}"#).unwrap_err();
    assert!(error.to_string().contains("missing field"), "{error}");
}

#[test]
fn genesis_refuses_ed25519_keys_anyone_could_sign_with_naming_the_principal() {
    let w = world();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    // The identity (small order), y = 2 (no curve point), and the identity encoded as
    // y = p + 1 (non-canonical; also of small order, so named as such).
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;
    let mut order_4_as_p = [0xffu8; 32];
    order_4_as_p[0] = 0xed;
    order_4_as_p[31] = 0x7f;
    for (bytes, why) in [
        (identity, "small order"),
        (not_a_point, "not a point"),
        (order_4_as_p, "small order"),
    ] {
        let doc = json!({"version": 1, "name": "x", "createdAt": "2026-01-01T00:00:00Z",
        "policy": {"principals": [
            {"id": "admin", "type": "User", "keys": [w.admin.key_json()]},
            {"id": "mallory", "type": "User", "keys": [
                {"keyId": "k1", "algorithm": "Ed25519", "publicKey": b64(&bytes)}]}
        ]}});
        let error = Genesis::from_json(&doc.to_string())
            .expect_err("a genesis with a forgeable key was accepted");
        let text = error.to_string();
        assert!(text.contains("mallory") && text.contains(why), "{text}");
    }
}

#[test]
fn every_answer_agrees_with_its_records_and_a_rewritten_answer_does_not() {
    use ea_ledger::check_answer_against_records as check;
    let w = world();
    let mut run = Run::new(&genesis(&w, true));
    // Sends, and returns the answer with the records it wrote; they must agree.
    let send = |run: &mut Run, bytes: Vec<u8>| {
        let before = run.records.len();
        let answer = run.send(&bytes, NOW).unwrap();
        let records = run.records[before..].to_vec();
        check(&answer, &records).unwrap_or_else(|e| panic!("{answer:?}: {e}"));
        (answer, records)
    };
    let enclave = json!({"createVirtualEnclave": {"id": "/communities/c1/virtualEnclaves/e1", "addressSpace": "10.1.0.0/16"}});
    let (denied, denied_records) = send(&mut run, w.reader.sign(&submit(enclave.clone()), NOW));
    let (pending, pending_records) = send(&mut run, w.alice.sign(&submit(enclave), NOW));
    let Answer::Pending { approval } = &pending else {
        panic!("{pending:?}")
    };
    let approve = submit(json!({"approve": {"id": approval.id.as_str()}}));
    let (voted, voted_records) = send(&mut run, w.approver.sign(&approve, NOW));
    assert_eq!(voted_records.len(), 2);
    let principal = submit(json!({"createPrincipal": {"id": "bob", "type": "User"}}));
    let (applied, applied_records) = send(&mut run, w.admin.sign(&principal, NOW));
    let check_op = Operation::Check {
        principal: None,
        operation: "Microsoft.Mission/virtualEnclaves/write".into(),
        scope: "/communities/c1/virtualEnclaves/e1".parse().unwrap(),
        data_action: false,
    };
    let (decision, decision_records) = send(&mut run, w.reader.sign(&check_op, NOW));
    let (read, read_records) = send(
        &mut run,
        w.reader.sign(&Operation::Read(Query::RoleDefinitions), NOW),
    );
    assert!(read_records.is_empty());

    // What a parent could make of them, keeping the genuine records and receipts.
    let Answer::Applied { command, events } = &applied else {
        panic!("{applied:?}")
    };
    let refused = |answer: &Answer, records: &[Record]| {
        let error = check(answer, records).expect_err("a rewritten answer passed");
        eprintln!("refused as it should: {error}");
    };
    // A refusal turned into a success.
    refused(
        &Answer::Applied {
            command: "createVirtualEnclave".into(),
            events: Vec::new(),
        },
        &denied_records,
    );
    // A success with other effects than those recorded.
    refused(
        &Answer::Applied {
            command: command.clone(),
            events: events[..events.len() - 1].to_vec(),
        },
        &applied_records,
    );
    refused(
        &Answer::Applied {
            command: "deletePrincipal".into(),
            events: events.clone(),
        },
        &applied_records,
    );
    // A check's deny turned into an allow.
    let Answer::Decision {
        principal,
        operation,
        scope,
        decision: verdict,
    } = &decision
    else {
        panic!("{decision:?}")
    };
    assert!(!verdict.allowed, "a reader may not create enclaves");
    let mut flipped = verdict.clone();
    flipped.allowed = true;
    refused(
        &Answer::Decision {
            principal: principal.clone(),
            operation: operation.clone(),
            scope: scope.clone(),
            decision: flipped,
        },
        &decision_records,
    );
    // Another request's records, or none, or too many.
    refused(&applied, &denied_records);
    refused(&pending, &applied_records);
    refused(&voted, &voted_records[..1]);
    refused(&applied, &[]);
    refused(&denied, &[]);
    refused(&read, &applied_records);
    refused(
        &applied,
        &[applied_records.clone(), decision_records.clone()].concat(),
    );
    // A denial with another code.
    let Answer::Denied {
        code,
        message,
        refusal,
    } = &denied
    else {
        panic!("{denied:?}")
    };
    assert_eq!(code, "not_authorized");
    refused(
        &Answer::Denied {
            code: "approval_required".into(),
            message: message.clone(),
            refusal: refusal.clone(),
        },
        &denied_records,
    );
    // The pending answer for another approval.
    let Answer::Pending { approval } = &pending else {
        panic!()
    };
    let mut other = approval.clone();
    other.id = serde_json::from_value(json!("00000000-0000-4000-8000-000000000000")).unwrap();
    refused(&Answer::Pending { approval: other }, &pending_records);
}
