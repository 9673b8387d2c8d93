//! The witness set through the ledger: a genesis may name it, invalid sets are refused
//! saying why, `setWitnesses` is the governed operation `witnessChange` (two owners of `/`
//! approve, never the requester), and a replay of the records has the new set.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::result_large_err,
    reason = "test"
)]

use base64::Engine as _;
use ea_audit::cosignature::CosignatureSigner;
use ea_audit::record::{Record, RecordFields, RecordKind};
use ea_ledger::{Answer, Directory, Draft, Genesis, Ledger, Operation, Query, ReadResult};
use ea_policy::{ApprovalStatus, Command, WitnessSet};
use ea_protocol::signed::{encode_signed_request, RequestSigner, SignatureAlgorithm};
use serde_json::json;

const NOW: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

struct Party {
    id: &'static str,
    signer: RequestSigner,
}

impl Party {
    fn new(id: &'static str) -> Party {
        let (signer, _) = RequestSigner::generate(SignatureAlgorithm::Ed25519).unwrap();
        Party {
            id,
            signer: signer.with_key_id("k1"),
        }
    }

    fn principal(&self) -> serde_json::Value {
        json!({"id": self.id, "type": "User", "keys": [{"keyId": "k1", "algorithm": "Ed25519",
               "publicKey": base64::engine::general_purpose::STANDARD.encode(&self.signer.public_key().bytes)}]})
    }
}

fn vkey(name: &str, seed: u8) -> String {
    CosignatureSigner::from_seed(name, &[seed; 32])
        .unwrap()
        .verifier()
        .to_string()
}

fn genesis_json(witnesses: Option<serde_json::Value>, owners: &[Party]) -> String {
    let mut policy = json!({
        "principals": owners.iter().map(Party::principal).collect::<Vec<_>>(),
        "roleAssignments": owners.iter().map(|o| json!({"id": format!("ra-{}", o.id),
            "principalId": o.id, "roleDefinitionId": "Owner", "scope": "/"})).collect::<Vec<_>>()
    });
    if let Some(witnesses) = witnesses {
        policy["witnesses"] = witnesses;
    }
    json!({"version": 1, "name": "witnesses", "createdAt": "2026-01-01T00:00:00Z",
           "policy": policy})
    .to_string()
}

struct Run {
    ledger: Ledger,
    records: Vec<Record>,
    owners: Vec<Party>,
}

impl Run {
    fn new(witnesses: Option<serde_json::Value>) -> Run {
        let owners = vec![Party::new("alice"), Party::new("bob"), Party::new("carol")];
        let genesis = Genesis::from_json(&genesis_json(witnesses, &owners)).unwrap();
        let (ledger, draft) = Ledger::from_genesis(&genesis, 1000).unwrap();
        let mut run = Run {
            ledger,
            records: Vec::new(),
            owners,
        };
        run.keep(vec![draft]);
        run
    }

    fn keep(&mut self, drafts: Vec<Draft>) {
        for draft in drafts {
            let mut record = draft.into_record(NOW);
            record.seq = self.records.len() as u64;
            self.records.push(record);
        }
    }

    fn send(&mut self, who: usize, operation: Operation) -> Answer {
        let party = &self.owners[who];
        let bytes = encode_signed_request(&party.signer.sign(party.id, &operation, NOW).unwrap());
        let request = Directory::of(self.ledger.state())
            .authenticate(&bytes, NOW)
            .unwrap();
        let execution = self.ledger.execute(&request, NOW).unwrap();
        self.keep(execution.drafts);
        execution.answer
    }

    fn read_witnesses(&mut self) -> Option<WitnessSet> {
        match self.send(2, Operation::Read(Query::Witnesses)) {
            Answer::Read { result } => match *result {
                ReadResult::Witnesses(set) => set,
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    fn replay(&self) -> Ledger {
        let mut decoded = Ledger::from_genesis_record(&self.records[0], 1000).unwrap();
        let mut located = Ledger::from_genesis_record(&self.records[0], 1000).unwrap();
        for record in &self.records[1..] {
            let bytes = record.to_bytes().unwrap();
            let fields = RecordFields::parse(&bytes).unwrap();
            decoded.apply_record(record).unwrap();
            located.replay_fields(&fields, NOW).unwrap();
        }
        assert_eq!(decoded.state(), located.state());
        located
    }
}

fn approve(id: &ea_policy::ApprovalId) -> Operation {
    Operation::Submit {
        command: Box::new(Command::Approve {
            id: id.clone(),
            comment: None,
        }),
        justification: None,
    }
}

fn set_witnesses(set: serde_json::Value) -> Operation {
    Operation::Submit {
        command: Box::new(serde_json::from_value(json!({ "setWitnesses": set })).unwrap()),
        justification: Some("new witnesses".into()),
    }
}

#[test]
fn a_genesis_may_name_witnesses_and_without_them_encodes_as_before() {
    let set = json!({"threshold": 2, "keys": [vkey("w1", 1), vkey("w2", 2)]});
    let mut run = Run::new(Some(set.clone()));
    let witnesses = run.ledger.witnesses().unwrap().clone();
    assert_eq!(witnesses.threshold(), 2);
    assert_eq!(serde_json::to_value(&witnesses).unwrap(), set);
    assert_eq!(run.read_witnesses(), Some(witnesses));

    // Absent: no set, and the document encodes without the key (the same genesis hash as
    // before witnesses existed).
    let mut run = Run::new(None);
    assert!(run.ledger.witnesses().is_none());
    assert_eq!(run.read_witnesses(), None);
    let genesis = Genesis::from_json(&genesis_json(None, &run.owners)).unwrap();
    let encoded = serde_json::to_value(&genesis).unwrap();
    assert!(encoded["policy"].get("witnesses").is_none(), "{encoded}");
}

#[test]
fn invalid_witness_sets_are_refused_saying_why() {
    let owners = vec![Party::new("alice")];
    let cases = [
        (json!({"threshold": 0, "keys": [vkey("w1", 1)]}), "not 0"),
        (
            json!({"threshold": 2, "keys": [vkey("w1", 1)]}),
            "the witness threshold must be from 1 to the number of witnesses (1), not 2",
        ),
        (
            json!({"threshold": 1, "keys": [vkey("w1", 1), vkey("w1", 2)]}),
            "witness w1 is named twice",
        ),
        (json!({"threshold": 1, "keys": []}), "at least one witness"),
        (
            json!({"threshold": 1, "keys": ["not a key"]}),
            "\"not a key\" is not a witness verifier key",
        ),
    ];
    for (set, expected) in cases {
        let error = Genesis::from_json(&genesis_json(Some(set.clone()), &owners)).unwrap_err();
        assert!(error.to_string().contains(expected), "{set}: {error}");
    }
    // A command with an invalid set does not even parse.
    let refused = serde_json::from_value::<Command>(
        json!({"setWitnesses": {"threshold": 3, "keys": [vkey("w1", 1)]}}),
    )
    .unwrap_err();
    assert!(refused.to_string().contains("not 3"), "{refused}");
}

#[test]
fn a_witness_change_needs_two_owners_and_replays_to_the_new_set() {
    let mut run = Run::new(Some(json!({"threshold": 1, "keys": [vkey("w1", 1)]})));
    let new_set = json!({"threshold": 2, "keys": [vkey("w2", 2), vkey("w3", 3)]});
    let pending = run.send(0, set_witnesses(new_set.clone()));
    let Answer::Pending { approval } = pending else {
        panic!("{pending:?}")
    };
    assert_eq!(approval.settings.key.as_str(), "witnessChange");
    assert_eq!(approval.settings.minimum_approvers_required, 2);
    assert_eq!(run.ledger.witnesses().unwrap().keys()[0].name(), "w1");

    // The requester cannot approve their own change.
    let own = run.send(0, approve(&approval.id));
    assert!(matches!(own, Answer::Denied { .. }), "{own:?}");
    // One owner is not enough.
    let one = run.send(1, approve(&approval.id));
    let Answer::Voted {
        approval: after, ..
    } = one
    else {
        panic!("{one:?}")
    };
    assert_eq!(after.approval_status, ApprovalStatus::Pending);
    assert_eq!(run.ledger.witnesses().unwrap().keys()[0].name(), "w1");
    // The second applies it.
    let two = run.send(2, approve(&approval.id));
    let Answer::Voted {
        approval: after, ..
    } = two
    else {
        panic!("{two:?}")
    };
    assert_eq!(after.approval_status, ApprovalStatus::Approved);
    assert_eq!(
        run.records.last().unwrap().kind,
        RecordKind::ApprovalApplied
    );
    let expected: WitnessSet = serde_json::from_value(new_set).unwrap();
    assert_eq!(run.ledger.witnesses(), Some(&expected));
    assert_eq!(run.read_witnesses(), Some(expected.clone()));

    // After a restart: the records replay to the new set.
    let replayed = run.replay();
    assert_eq!(replayed.witnesses(), Some(&expected));
}
