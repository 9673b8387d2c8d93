//! Images through the ledger: the first `enclave_start` admits the genesis image, an image
//! change approved by two owners admits another, and a start of an image the log does not
//! admit at that point is refused on replay, both ways (decoded records and located fields).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::result_large_err,
    reason = "test"
)]

use std::collections::BTreeMap;

use base64::Engine as _;
use ciborium::Value;
use ea_attestation::{Measurements, MockNsm, MockNsmConfig, Nsm};
use ea_audit::record::{Record, RecordFields, RecordKind};
use ea_ledger::{
    Answer, Directory, Draft, Genesis, ImageView, Ledger, Operation, Query, ReadResult,
    ReplayError, PLATFORM_ACTOR,
};
use ea_policy::{ApprovalStatus, Command, ImagePcrs};
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

    fn sign(&self, operation: &Operation, at: u64) -> Vec<u8> {
        encode_signed_request(&self.signer.sign(self.id, operation, at).unwrap())
    }
}

fn measurements(byte: u8) -> Measurements {
    Measurements::new(BTreeMap::from([
        (0, [byte; 48]),
        (1, [byte; 48]),
        (2, [byte; 48]),
    ]))
    .unwrap()
}

fn image(byte: u8) -> ImagePcrs {
    let value = [byte; 48];
    ImagePcrs::from_pcrs([(0, &value[..]), (1, &value[..]), (2, &value[..])]).unwrap()
}

struct Run {
    ledger: Ledger,
    records: Vec<Record>,
    owners: [Party; 3],
}

impl Run {
    fn new(genesis_images: serde_json::Value) -> Run {
        let owners = [Party::new("alice"), Party::new("bob"), Party::new("carol")];
        let mut policy = json!({
            "principals": owners.iter().map(Party::principal).collect::<Vec<_>>(),
            "roleAssignments": owners.iter().map(|o| json!({"id": format!("ra-{}", o.id),
                "principalId": o.id, "roleDefinitionId": "Owner", "scope": "/"})).collect::<Vec<_>>()
        });
        if !genesis_images.is_null() {
            policy["images"] = genesis_images;
        }
        let genesis = Genesis::from_json(
            &json!({"version": 1, "name": "images", "createdAt": "2026-01-01T00:00:00Z",
                    "policy": policy})
            .to_string(),
        )
        .unwrap();
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

    /// An `enclave_start` record of an enclave measuring `byte`, replayed into the ledger.
    fn start(&mut self, byte: u8) -> Result<(), ReplayError> {
        let record = start_record(self.records.len() as u64, byte);
        self.ledger.replay(&record, NOW)?;
        self.records.push(record);
        Ok(())
    }

    fn send(&mut self, who: usize, operation: Operation) -> Answer {
        let bytes = self.owners[who].sign(&operation, NOW);
        let request = Directory::of(self.ledger.state())
            .authenticate(&bytes, NOW)
            .unwrap();
        let execution = self.ledger.execute(&request, NOW).unwrap();
        self.keep(execution.drafts);
        assert_eq!(self.ledger.records(), self.records.len() as u64);
        execution.answer
    }

    fn images(&mut self) -> Vec<ImageView> {
        match self.send(0, Operation::Read(Query::Images)) {
            Answer::Read { result } => match *result {
                ReadResult::Images(images) => images,
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    /// alice proposes `byte`, bob and carol approve; returns the approval's final answer.
    fn admit(&mut self, byte: u8) -> Answer {
        let command: Command = serde_json::from_value(json!({"admitImage": {"image": {
            "PCR0": hex(byte), "PCR1": hex(byte), "PCR2": hex(byte)}}}))
        .unwrap();
        let pending = self.send(
            0,
            Operation::Submit {
                command: Box::new(command),
                justification: Some("release".into()),
            },
        );
        let Answer::Pending { approval } = pending else {
            panic!("{pending:?}")
        };
        let vote = |id: &ea_policy::ApprovalId| Operation::Submit {
            command: Box::new(Command::Approve {
                id: id.clone(),
                comment: None,
            }),
            justification: None,
        };
        self.send(1, vote(&approval.id));
        self.send(2, vote(&approval.id))
    }

    /// Both replays of the records so far: decoded records and located fields.
    fn replay(&self) -> Result<Ledger, (u64, ReplayError)> {
        let mut decoded = Ledger::from_genesis_record(&self.records[0], 1000).unwrap();
        let mut located = Ledger::from_genesis_record(&self.records[0], 1000).unwrap();
        for record in &self.records[1..] {
            let bytes = record.to_bytes().unwrap();
            let fields = RecordFields::parse(&bytes).unwrap();
            let a = decoded.apply_record(record).map_err(|e| (record.seq, e));
            let b = located
                .replay_fields(&fields, NOW)
                .map_err(|e| (record.seq, e));
            assert_eq!(a.is_ok(), b.is_ok(), "record {}", record.seq);
            a?;
        }
        assert_eq!(decoded.state(), located.state());
        assert_eq!(decoded.images(), located.images());
        Ok(located)
    }
}

fn hex(byte: u8) -> String {
    format!("{byte:02x}").repeat(48)
}

fn start_record(seq: u64, byte: u8) -> Record {
    let nsm = MockNsm::new(MockNsmConfig::new(measurements(byte))).unwrap();
    let document = nsm
        .attestation(Some(b"genesis hash"), None, Some(&[7; 32]))
        .unwrap();
    Record {
        seq,
        time: NOW,
        kind: RecordKind::EnclaveStart,
        actor: PLATFORM_ACTOR.into(),
        request: None,
        decision: Value::Null,
        changes: Value::Map(Vec::new()),
        attestation: Some(document),
    }
}

#[test]
fn the_first_start_admits_its_image_and_an_approved_change_admits_the_next() {
    let mut run = Run::new(serde_json::Value::Null);
    run.start(0xaa).unwrap();
    let images = run.images();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].pcrs, image(0xaa));
    assert_eq!(
        images[0].record,
        Some(1),
        "the first enclave_start admitted it"
    );
    assert_eq!(images[0].running_since, Some(1));
    assert_eq!(images[0].approval_id, None);

    // Another image cannot start before it is admitted.
    let refused = run.ledger.check_start(&image(0xbb)).unwrap_err();
    assert!(
        matches!(refused, ReplayError::ImageNotAdmitted(_)),
        "{refused}"
    );
    assert!(refused.to_string().contains(&hex(0xbb)), "{refused}");

    let done = run.admit(0xbb);
    let Answer::Voted { approval, .. } = done else {
        panic!("{done:?}")
    };
    assert_eq!(approval.approval_status, ApprovalStatus::Approved);
    let applied = run.records.len() as u64 - 1;
    assert_eq!(
        run.records[applied as usize].kind,
        RecordKind::ApprovalApplied
    );
    let images = run.images();
    let new = images.iter().find(|i| i.pcrs == image(0xbb)).unwrap();
    assert_eq!(
        new.record,
        Some(applied),
        "the approval_applied record admitted it"
    );
    assert_eq!(new.approval_id.as_ref(), Some(&approval.id));
    assert_eq!(new.running_since, None);

    run.ledger.check_start(&image(0xbb)).unwrap();
    run.start(0xbb).unwrap();
    let start = run.records.len() as u64 - 1;
    let images = run.images();
    let new = images.iter().find(|i| i.pcrs == image(0xbb)).unwrap();
    assert_eq!(new.running_since, Some(start));

    // The records replay to the same state and the same history, both ways.
    let replayed = run.replay().unwrap();
    assert_eq!(replayed.images(), run.ledger.images());
    assert_eq!(replayed.records(), run.records.len() as u64);
}

#[test]
fn a_start_of_an_image_not_admitted_at_that_point_is_refused_on_replay() {
    let mut run = Run::new(serde_json::Value::Null);
    run.start(0xaa).unwrap();
    // A parent appends the start of an image nobody admitted.
    run.records.push(start_record(2, 0xcc));
    let (index, error) = run.replay().err().unwrap();
    assert_eq!(index, 2);
    let message = error.to_string();
    assert!(message.contains(&hex(0xcc)), "{message}");
    assert!(
        message.contains(&hex(0xaa)),
        "names the admitted sets: {message}"
    );

    // Admitted afterwards is too late for a start before the admission.
    let mut run = Run::new(serde_json::Value::Null);
    run.start(0xaa).unwrap();
    let early = start_record(2, 0xbb);
    run.ledger.replay(&early, NOW).unwrap_err();
    run.records.push(early);
    let (index, _) = run.replay().err().unwrap();
    assert_eq!(index, 2);
}

#[test]
fn a_genesis_that_names_its_images_refuses_a_first_start_of_another() {
    let run =
        Run::new(json!([{"pcrs": {"PCR0": hex(0xaa), "PCR1": hex(0xaa), "PCR2": hex(0xaa)}}]));
    let images = run.ledger.images();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].record, Some(0), "record 0 admitted it");
    let refused = run.ledger.check_start(&image(0xbb)).unwrap_err();
    assert!(refused.to_string().contains("not admitted"), "{refused}");
    run.ledger.check_start(&image(0xaa)).unwrap();
}
