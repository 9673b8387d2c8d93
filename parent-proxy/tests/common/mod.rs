//! Shared by the integration tests: a log of real ea-audit records with signed checkpoints,
//! and a store whose disk always fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    dead_code,
    reason = "test helpers; each test file uses a part of them"
)]

use std::path::PathBuf;

use ea_audit::hash::leaf_hash;
use ea_audit::note::NoteSigner;
use ea_audit::record::{Record, RecordKind};
use ea_audit::{log_origin, Checkpoint, MerkleTree};
use parent_proxy::store::{LogHead, LogStore, StoreError, StoredCheckpoint};

/// Builds a log: genesis first, then state changes, each batch with its signed checkpoint.
pub struct LogBuilder {
    signer: NoteSigner,
    origin: String,
    tree: MerkleTree,
    /// Set on a fork: records after the genesis say so, so the tree differs.
    branch: Option<String>,
}

impl LogBuilder {
    pub fn new() -> Self {
        let genesis = Self::record_at(0);
        let origin = log_origin(&genesis.record_hash().unwrap());
        let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[11; 32]).unwrap();
        Self {
            signer: NoteSigner::new(&origin, Box::new(key)).unwrap(),
            origin,
            tree: MerkleTree::new(),
            branch: None,
        }
    }

    /// A log of the same origin and log key whose records after the genesis differ (a
    /// fork, as a second enclave with the same key could write).
    pub fn fork(branch: &str) -> Self {
        Self {
            branch: Some(branch.to_owned()),
            ..Self::new()
        }
    }

    /// The log key's verifier.
    pub fn verifier(&self) -> ea_audit::note::NoteVerifier {
        self.signer.verifier().clone()
    }

    /// The origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn record(&self, seq: u64) -> Record {
        let mut record = Self::record_at(seq);
        if let (Some(branch), true) = (&self.branch, seq > 0) {
            record.changes = ciborium::Value::Text(format!("change number {seq} of {branch}"));
        }
        record
    }

    /// Record `seq`: genesis at 0, a state change elsewhere.
    pub fn record_at(seq: u64) -> Record {
        Record {
            seq,
            time: 1_700_000_000_000 + seq,
            kind: if seq == 0 {
                RecordKind::Genesis
            } else {
                RecordKind::StateChange
            },
            actor: "alice".into(),
            request: None,
            decision: ciborium::Value::Null,
            changes: ciborium::Value::Text(format!("change number {seq}")),
            attestation: None,
        }
    }

    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// The next `count` records (canonical bytes) and the checkpoint after them.
    pub fn batch(&mut self, count: u64) -> (u64, Vec<Vec<u8>>, String) {
        let first = self.tree.size();
        let records: Vec<Vec<u8>> = (first..first + count)
            .map(|seq| self.record(seq).to_bytes().unwrap())
            .collect();
        for record in &records {
            self.tree.push(leaf_hash(record));
        }
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size: self.tree.size(),
            root: self.tree.root(),
        }
        .sign(&self.signer)
        .unwrap();
        (first, records, checkpoint)
    }

    /// Appends batches of these sizes to `store`; returns every checkpoint written.
    pub fn fill(&mut self, store: &dyn LogStore, batches: &[u64]) -> Vec<(u64, String)> {
        let mut written = Vec::new();
        for &count in batches {
            let (first, records, checkpoint) = self.batch(count);
            let size = store.append(first, &records, &checkpoint).unwrap();
            written.push((size, checkpoint));
        }
        written
    }
}

/// A store on a disk that has failed: every call is refused as full.
pub struct FullDisk;

impl FullDisk {
    fn error() -> StoreError {
        StoreError::Full {
            path: PathBuf::from("/var/lib/enclave-approvals/log.sqlite"),
        }
    }
}

impl LogStore for FullDisk {
    fn head(&self) -> Result<LogHead, StoreError> {
        Err(Self::error())
    }
    fn append(&self, _: u64, _: &[Vec<u8>], _: &str) -> Result<u64, StoreError> {
        Err(Self::error())
    }
    fn read_records(&self, _: u64, _: usize, _: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        Err(Self::error())
    }
    fn read_checkpoints(&self, _: u64, _: usize) -> Result<Vec<StoredCheckpoint>, StoreError> {
        Err(Self::error())
    }
    fn put_sealed_key(&self, _: &[u8]) -> Result<(), StoreError> {
        Err(Self::error())
    }
    fn get_sealed_key(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Err(Self::error())
    }
    fn put_cosignatures(&self, _: u64, _: &[String]) -> Result<(), StoreError> {
        Err(Self::error())
    }
    fn cosigned_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        Err(Self::error())
    }
}
