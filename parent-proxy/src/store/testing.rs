//! What every [`LogStore`] must do, as one test run against each implementation, and a
//! small log builder with real signed checkpoints.

use ea_audit::cosignature::{verify_cosignatures, CosignatureSigner, CosignatureVerifier};
use ea_audit::hash::leaf_hash;
use ea_audit::note::NoteSigner;
use ea_audit::{Checkpoint, MerkleTree};

use super::{LogStore, StoreError, StoredCheckpoint};

/// Builds batches of (synthetic) records and the checkpoints that sign them.
pub(crate) struct TestLog {
    signer: NoteSigner,
    origin: String,
    tree: MerkleTree,
}

impl TestLog {
    pub(crate) fn new() -> Self {
        let origin = "enclave-approvals/0123456789abcdef".to_owned();
        let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[3; 32]).unwrap();
        let signer = NoteSigner::new(&origin, Box::new(key)).unwrap();
        Self {
            signer,
            origin,
            tree: MerkleTree::new(),
        }
    }

    /// The bytes of record `index`: distinct, of varying length.
    pub(crate) fn record(index: u64) -> Vec<u8> {
        let mut bytes = format!("record {index}:").into_bytes();
        bytes.resize(20 + (index as usize % 7) * 10, b'x');
        bytes
    }

    /// The checkpoint for the tree as it is.
    pub(crate) fn checkpoint(&self) -> String {
        self.checkpoint_signed_by(&self.signer)
    }

    /// The checkpoint for the tree as it is, signed by a key from `seed` (the same note
    /// text with another signature).
    pub(crate) fn checkpoint_with_key(&self, seed: u8) -> String {
        let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
        self.checkpoint_signed_by(&NoteSigner::new(&self.origin, Box::new(key)).unwrap())
    }

    /// The verifier of the key of [`TestLog::checkpoint_with_key`].
    pub(crate) fn verifier_of_key(&self, seed: u8) -> ea_audit::note::NoteVerifier {
        let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
        NoteSigner::new(&self.origin, Box::new(key))
            .unwrap()
            .verifier()
            .clone()
    }

    fn checkpoint_signed_by(&self, signer: &NoteSigner) -> String {
        Checkpoint {
            origin: self.origin.clone(),
            size: self.tree.size(),
            root: self.tree.root(),
        }
        .sign(signer)
        .unwrap()
    }

    /// The next `count` records and the checkpoint after them.
    pub(crate) fn batch(&mut self, count: u64) -> (u64, Vec<Vec<u8>>, String) {
        let first = self.tree.size();
        let records: Vec<Vec<u8>> = (first..first + count).map(Self::record).collect();
        for record in &records {
            self.tree.push(leaf_hash(record));
        }
        (first, records, self.checkpoint())
    }
}

fn sizes(checkpoints: &[StoredCheckpoint]) -> Vec<u64> {
    checkpoints.iter().map(|c| c.size).collect()
}

/// The contract of [`LogStore`], run against a fresh store.
pub(crate) fn contract(store: &dyn LogStore) {
    let mut log = TestLog::new();
    let head = store.head().unwrap();
    assert_eq!((head.size, head.checkpoint), (0, None));
    assert!(store.read_records(0, 10, 1 << 20).unwrap().is_empty());
    assert!(store.read_checkpoints(0, 10).unwrap().is_empty());
    assert_eq!(store.get_sealed_key().unwrap(), None);

    let (first, records, checkpoint) = log.batch(3);
    assert_eq!(store.append(first, &records, &checkpoint).unwrap(), 3);
    let head = store.head().unwrap();
    assert_eq!(head.size, 3);
    assert_eq!(
        head.checkpoint,
        Some(StoredCheckpoint {
            size: 3,
            note: checkpoint.clone()
        })
    );

    // Appends that do not start at the end change nothing.
    let (_, more, next_checkpoint) = log.batch(2);
    for wrong in [0, 2, 4, u64::MAX] {
        match store.append(wrong, &more, &next_checkpoint) {
            Err(StoreError::Conflict { expected: 3, got }) => assert_eq!(got, wrong),
            other => panic!("append at {wrong}: {other:?}"),
        }
    }
    // A checkpoint for another size, or no checkpoint at all, is refused.
    assert!(matches!(
        store.append(3, &more[..1], &next_checkpoint),
        Err(StoreError::CheckpointSize {
            expected: 4,
            named: 5
        })
    ));
    assert!(matches!(
        store.append(3, &more, "not a note\n"),
        Err(StoreError::BadCheckpoint { .. })
    ));
    assert_eq!(store.head().unwrap().size, 3);
    assert_eq!(store.read_checkpoints(0, 10).unwrap().len(), 1);

    assert_eq!(store.append(3, &more, &next_checkpoint).unwrap(), 5);
    let all: Vec<Vec<u8>> = (0..5).map(TestLog::record).collect();
    assert_eq!(store.read_records(0, 100, 1 << 20).unwrap(), all);
    assert_eq!(store.read_records(1, 2, 1 << 20).unwrap(), all[1..3]);
    let two = all[2].len() + all[3].len();
    assert_eq!(store.read_records(2, 100, two).unwrap(), all[2..4]);
    assert_eq!(store.read_records(2, 100, two - 1).unwrap(), all[2..3]);
    assert_eq!(
        store.read_records(2, 100, 0).unwrap(),
        all[2..3],
        "at least one"
    );
    assert!(store.read_records(2, 0, 1 << 20).unwrap().is_empty());
    assert!(store.read_records(5, 100, 1 << 20).unwrap().is_empty());
    assert!(store
        .read_records(u64::MAX, 100, 1 << 20)
        .unwrap()
        .is_empty());

    assert_eq!(sizes(&store.read_checkpoints(0, 10).unwrap()), [3, 5]);
    assert_eq!(sizes(&store.read_checkpoints(4, 10).unwrap()), [5]);
    assert_eq!(sizes(&store.read_checkpoints(0, 1).unwrap()), [3]);
    assert!(store.read_checkpoints(6, 10).unwrap().is_empty());
    assert!(store.read_checkpoints(u64::MAX, 10).unwrap().is_empty());

    // An append of no records re-signs the current size.
    let resigned = log.checkpoint_with_key(4);
    assert_ne!(resigned, next_checkpoint);
    assert_eq!(store.append(5, &[], &resigned).unwrap(), 5);
    assert_eq!(store.head().unwrap().checkpoint.unwrap().note, resigned);
    assert_eq!(sizes(&store.read_checkpoints(0, 10).unwrap()), [3, 5]);

    store.put_sealed_key(b"sealed one").unwrap();
    assert_eq!(store.get_sealed_key().unwrap().unwrap(), b"sealed one");
    store.put_sealed_key(b"sealed two").unwrap();
    assert_eq!(store.get_sealed_key().unwrap().unwrap(), b"sealed two");

    cosignatures(store, &log, &resigned);
}

/// A witness's cosignature line on the checkpoint text of `note`, made at `time`.
pub(crate) fn cosign(witness: u8, time: u64, note: &str) -> String {
    let (parsed, _) = ea_audit::checkpoint::parse_unverified(note).unwrap();
    CosignatureSigner::from_seed(&format!("witness.example/w{witness}"), &[witness; 32])
        .unwrap()
        .sign(time, parsed.unverified_text())
        .unwrap()
}

/// The witnesses' keys of [`cosign`].
pub(crate) fn witness_keys(witnesses: &[u8]) -> Vec<CosignatureVerifier> {
    witnesses
        .iter()
        .map(|&w| {
            CosignatureSigner::from_seed(&format!("witness.example/w{w}"), &[w; 32])
                .unwrap()
                .verifier()
                .clone()
        })
        .collect()
}

/// The cosignature part of the contract, on a store holding checkpoints of sizes 3 and 5
/// (`latest` is the one of size 5).
fn cosignatures(store: &dyn LogStore, log: &TestLog, latest: &str) {
    let three = store.read_checkpoints(3, 1).unwrap().remove(0).note;
    assert_eq!(store.cosigned_checkpoint().unwrap(), None);

    // Cosignatures for a size with no checkpoint, or lines that are not signature lines,
    // are refused and store nothing.
    assert!(matches!(
        store.put_cosignatures(4, &[cosign(1, 10, latest)]),
        Err(StoreError::NoCheckpoint { size: 4 })
    ));
    assert!(matches!(
        store.put_cosignatures(3, &[cosign(1, 10, &three), "no line".into()]),
        Err(StoreError::BadCosignature { .. })
    ));
    assert_eq!(store.cosigned_checkpoint().unwrap(), None);

    store.put_cosignatures(3, &[cosign(1, 10, &three)]).unwrap();
    let cosigned = store.cosigned_checkpoint().unwrap().unwrap();
    assert_eq!(cosigned.size, 3);
    assert_eq!(cosigned.note, format!("{three}{}", cosign(1, 10, &three)));

    // The latest cosigned checkpoint wins; each witness's newer line replaces its older one
    // for the same size; lines come by witness name; storing again changes nothing.
    store.put_cosignatures(5, &[cosign(2, 20, latest)]).unwrap();
    store
        .put_cosignatures(5, &[cosign(1, 21, latest), cosign(2, 22, latest)])
        .unwrap();
    store.put_cosignatures(5, &[cosign(1, 21, latest)]).unwrap();
    let cosigned = store.cosigned_checkpoint().unwrap().unwrap();
    assert_eq!(cosigned.size, 5);
    assert_eq!(
        cosigned.note,
        format!("{latest}{}{}", cosign(1, 21, latest), cosign(2, 22, latest))
    );
    let verified = verify_cosignatures(&cosigned.note, &witness_keys(&[1, 2]), 2).unwrap();
    assert_eq!(
        verified.iter().map(|v| v.timestamp()).collect::<Vec<_>>(),
        [21, 22]
    );
    // The log signature still verifies with the log key alone (the witnesses' lines are of
    // keys it does not know).
    let log_key = log.verifier_of_key(4);
    ea_audit::checkpoint::open_checkpoint(&cosigned.note, &[log_key], None).unwrap();
    // Size 3 kept its own line.
    store.put_cosignatures(3, &[]).unwrap();
    assert_eq!(store.cosigned_checkpoint().unwrap().unwrap().size, 5);
}
