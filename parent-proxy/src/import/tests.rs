//! The import's driver over a small log of real records and signed checkpoints, with an
//! attestation checker that takes a document to be the key it attests (the real checker,
//! and the request checker, run in the end-to-end tests on logs a real enclave wrote).

use ciborium::Value;
use ea_audit::hash::leaf_hash;
use ea_audit::note::NoteSigner;
use ea_audit::verify::{AttestedKey, SkipRequestChecks};
use ea_audit::{log_origin, Checkpoint, MerkleTree, Record, RecordKind};
use ring::signature::{Ed25519KeyPair, KeyPair as _};

use super::*;
use crate::store::{LogStore, SqliteLogStore};

struct KeyIsTheDocument;

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl AttestationChecker for KeyIsTheDocument {
    type Error = Never;
    fn check(&self, document: &[u8], _: &[u8]) -> Result<AttestedKey, Never> {
        Ok(AttestedKey {
            public_key: Some(document.to_vec()),
        })
    }
}

fn record(seq: u64, kind: RecordKind, changes: Value) -> Record {
    Record {
        seq,
        time: 1_700_000_000_000 + seq,
        kind,
        actor: "enclave".into(),
        request: None,
        decision: Value::Null,
        changes,
        attestation: None,
    }
}

/// An export of `count` records (genesis named `name`, an enclave start attesting the log
/// key, state changes), a checkpoint after every `per` records from the second on.
fn export(name: &str, count: u64, per: u64) -> (Vec<Vec<u8>>, Vec<String>) {
    let key = Ed25519KeyPair::from_seed_unchecked(&[8; 32]).unwrap();
    let genesis = record(0, RecordKind::Genesis, Value::Text(name.into()));
    let origin = log_origin(&genesis.record_hash().unwrap());
    let mut start = record(1, RecordKind::EnclaveStart, Value::Null);
    start.attestation = Some(key.public_key().as_ref().to_vec());
    let signer = NoteSigner::new(&origin, Box::new(key)).unwrap();
    let mut records = vec![genesis.to_bytes().unwrap(), start.to_bytes().unwrap()];
    for seq in 2..count {
        let change = record(seq, RecordKind::StateChange, Value::Text(format!("{seq}")));
        records.push(change.to_bytes().unwrap());
    }
    let mut tree = MerkleTree::new();
    let mut notes = Vec::new();
    for (i, bytes) in records.iter().enumerate() {
        tree.push(leaf_hash(bytes));
        let size = i as u64 + 1;
        if size >= 2 && (size % per == 0 || size == count) {
            let checkpoint = Checkpoint {
                origin: origin.clone(),
                size,
                root: tree.root(),
            };
            notes.push(checkpoint.sign(&signer).unwrap());
        }
    }
    (records, notes)
}

fn write_export(dir: &Path, records: &[Vec<u8>], notes: &[String]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut file = Vec::new();
    for bytes in records {
        file.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        file.extend_from_slice(bytes);
    }
    std::fs::write(dir.join(RECORDS), file).unwrap();
    let text: String = notes.iter().map(|note| format!("{note}---\n")).collect();
    std::fs::write(dir.join(CHECKPOINTS), text).unwrap();
}

fn run(
    dir: &Path,
    target: &Path,
    key: Option<&SealedKeySource>,
) -> Result<ImportSummary, ImportError> {
    let verification = Verification {
        attestation: KeyIsTheDocument,
        requests: SkipRequestChecks,
        genesis_image: None,
    };
    import(dir, target, verification, key)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_verified_export_becomes_a_store_with_every_record_and_checkpoint() {
    let scratch = tempfile::tempdir().unwrap();
    let (records, notes) = export("one", 11, 3);
    let dir = scratch.path().join("audit");
    write_export(&dir, &records, &notes);
    let stores = scratch.path().join("stores");
    std::fs::create_dir(&stores).unwrap();
    let target = stores.join("log.sqlite");

    let summary = run(&dir, &target, None).unwrap();
    assert_eq!((summary.store.records, summary.log.records), (11, 11));
    assert_eq!(summary.store.checkpoints, notes.len() as u64);
    assert_eq!(summary.store.last_checkpoint_size, Some(11));
    assert!(!summary.store.sealed_key);
    assert_eq!(summary.log.log_keys.len(), 1);
    assert_eq!(names(&stores), ["log.sqlite"]);

    let store = SqliteLogStore::open(&target).unwrap();
    assert_eq!(store.read_records(0, 100, usize::MAX).unwrap(), records);
    let stored: Vec<String> = store
        .read_checkpoints(0, 100)
        .unwrap()
        .into_iter()
        .map(|c| c.note)
        .collect();
    assert_eq!(stored, notes);
    assert_eq!(store.get_sealed_key().unwrap(), None);
}

#[test]
fn a_tampered_export_is_refused_at_its_first_bad_record_and_nothing_is_written() {
    let scratch = tempfile::tempdir().unwrap();
    let (records, notes) = export("one", 12, 2);
    let target = scratch.path().join("log.sqlite");
    let refused = |name: &str, records: &[Vec<u8>], notes: &[String]| {
        let dir = scratch.path().join(name);
        write_export(&dir, records, notes);
        let error = run(&dir, &target, None).unwrap_err();
        assert!(!target.exists(), "{name}: nothing is written");
        assert!(
            names(scratch.path()).iter().all(|n| !n.contains("partial")),
            "{name}: no temporary file is left"
        );
        match error {
            ImportError::Refused { refusal, .. } => refusal,
            other => panic!("{name}: {other}"),
        }
    };

    // One bit flipped in record 5's time: still a canonical record, but the root of its
    // batch (records 4 and 5) differs, so the batch's first record is named.
    let mut later = Record::from_bytes(&records[5]).unwrap();
    later.time ^= 1;
    let later = later.to_bytes().unwrap();
    let at = (0..later.len())
        .find(|&i| later[i] != records[5][i])
        .unwrap();
    let mut flipped = records.clone();
    flipped[5][at] ^= 0x01;
    assert_eq!(flipped[5], later);
    let refusal = refused("a", &flipped, &notes);
    assert_eq!(refusal.index(), Some(4), "{refusal}");

    // Record 6 removed: record 7 now sits at index 6.
    let mut removed = records.clone();
    removed.remove(6);
    let refusal = refused("b", &removed, &notes);
    assert_eq!(refusal.index(), Some(6), "{refusal}");
    assert!(refusal.to_string().contains("seq 7"), "{refusal}");

    // A checkpoint signed by a key no enclave start attested.
    let mut forged = notes.clone();
    let other = Ed25519KeyPair::from_seed_unchecked(&[9; 32]).unwrap();
    let genesis = Record::from_bytes(&records[0]).unwrap();
    let origin = log_origin(&genesis.record_hash().unwrap());
    let tree = MerkleTree::from_leaves(records.iter().take(8).map(|r| leaf_hash(r)));
    forged[3] = Checkpoint {
        origin: origin.clone(),
        size: 8,
        root: tree.root(),
    }
    .sign(&NoteSigner::new(&origin, Box::new(other)).unwrap())
    .unwrap();
    let refusal = refused("c", &records, &forged);
    assert_eq!(refusal.index(), Some(6), "{refusal}");

    // A records file cut inside record 9.
    let dir = scratch.path().join("d");
    write_export(&dir, &records, &notes);
    let file = std::fs::read(dir.join(RECORDS)).unwrap();
    std::fs::write(
        dir.join(RECORDS),
        &file[..file.len() - records[11].len() - 6],
    )
    .unwrap();
    let error = run(&dir, &target, None).unwrap_err();
    assert!(error.to_string().contains("at record 10"), "{error}");
    assert!(error.to_string().contains("nothing was written"), "{error}");

    // Records after the last checkpoint are unsigned.
    let refusal = refused("e", &records, &notes[..notes.len() - 1]);
    assert_eq!(refusal.index(), Some(10), "{refusal}");
    assert!(!target.exists());
}

#[test]
fn a_store_that_holds_a_log_is_never_written_into() {
    let scratch = tempfile::tempdir().unwrap();
    let (records, notes) = export("one", 5, 1);
    let dir = scratch.path().join("audit");
    write_export(&dir, &records, &notes);
    let target = scratch.path().join("log.sqlite");
    run(&dir, &target, None).unwrap();
    let before = std::fs::read(&target).unwrap();
    let error = run(&dir, &target, None).unwrap_err();
    assert!(
        matches!(
            error,
            ImportError::Destination(StoreFileError::NotEmpty { records: 5, .. })
        ),
        "{error}"
    );
    assert_eq!(std::fs::read(&target).unwrap(), before);

    // Not an export at all.
    let error = run(scratch.path(), &scratch.path().join("new.sqlite"), None).unwrap_err();
    assert!(error.to_string().contains("govctl audit fetch"), "{error}");
}

#[test]
fn the_sealed_key_comes_only_from_a_store_of_the_same_log() {
    let scratch = tempfile::tempdir().unwrap();
    let (records, notes) = export("one", 5, 1);
    let dir = scratch.path().join("audit");
    write_export(&dir, &records, &notes);

    // A backup of the same log with its sealed key.
    let backup = scratch.path().join("backup.sqlite");
    let store = SqliteLogStore::open(&backup).unwrap();
    store.append(0, &records[..3], &notes[1]).unwrap();
    store.put_sealed_key(b"sealed for one").unwrap();
    drop(store);
    let source = SealedKeySource::read(&backup).unwrap();
    let target = scratch.path().join("log.sqlite");
    let summary = run(&dir, &target, Some(&source)).unwrap();
    assert!(summary.store.sealed_key);
    let store = SqliteLogStore::open(&target).unwrap();
    assert_eq!(
        store.get_sealed_key().unwrap().as_deref(),
        Some(&b"sealed for one"[..])
    );
    drop(store);

    // Another log's.
    let (other_records, other_notes) = export("two", 3, 1);
    let other = scratch.path().join("other.sqlite");
    let store = SqliteLogStore::open(&other).unwrap();
    store
        .append(0, &other_records[..2], &other_notes[0])
        .unwrap();
    store.put_sealed_key(b"sealed for two").unwrap();
    drop(store);
    let source = SealedKeySource::read(&other).unwrap();
    let target = scratch.path().join("log-2.sqlite");
    let error = run(&dir, &target, Some(&source)).unwrap_err();
    assert!(
        matches!(error, ImportError::SealedKeyOfAnotherLog { .. }),
        "{error}"
    );
    assert!(!target.exists());

    // A store without one.
    let keyless = scratch.path().join("keyless.sqlite");
    drop(SqliteLogStore::open(&keyless).unwrap());
    assert!(matches!(
        SealedKeySource::read(&keyless).unwrap_err(),
        ImportError::NoSealedKey { .. }
    ));
}
