//! Our signed notes, checkpoints, proofs and cosignatures against another implementation:
//! Cloudflare azul's `signed_note` and `tlog_tiles` (0.2.0), in both directions.
//!
//! Neither crate implements tlog-cosignature. For cosignatures these tests check what they
//! do implement (note parsing and encoding, the key id rule `SHA-256(name || 0x0A || type ||
//! key)[:4]`, verification and signing through their `Verifier`/`Signer` traits), with the
//! cosignature/v1 message built here in a few lines from the spec, independently of ours.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests: a failure is reported by the panic"
)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ea_audit::checkpoint::{log_origin, open_checkpoint, Checkpoint};
use ea_audit::cosignature::{verify_cosignatures, CosignatureSigner, CosignatureVerifier};
use ea_audit::hash::{leaf_hash, Hash};
use ea_audit::note::{NoteSigner, NoteVerifier};
use ea_audit::proof::{root_from_inclusion, verify_consistency};
use ea_audit::tree::MerkleTree;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};
use ring::signature::Ed25519KeyPair;
use signed_note::{Note, Signer, StandardSigner, StandardVerifier, Verifier, VerifierList};
use tlog_tiles::{HashReader, TreeProof};

fn note_signer(name: &str, seed: u8) -> NoteSigner {
    NoteSigner::new(
        name,
        Box::new(Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap()),
    )
    .unwrap()
}

/// signed_note's private key text for an Ed25519 seed: `PRIVATE+KEY+<name>+<id>+<base64(01 ||
/// seed)>`.
fn their_skey(name: &str, seed: u8) -> String {
    let public = SigningKey::from_bytes(&[seed; 32])
        .verifying_key()
        .to_bytes();
    let mut typed_public = vec![0x01];
    typed_public.extend_from_slice(&public);
    let mut private = vec![0x01];
    private.extend_from_slice(&[seed; 32]);
    format!(
        "PRIVATE+KEY+{name}+{:08x}+{}",
        signed_note::key_id(name, &typed_public),
        STANDARD.encode(private)
    )
}

fn leaves(n: u64) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("record {i}").into_bytes()).collect()
}

fn our_tree(records: &[Vec<u8>]) -> MerkleTree {
    MerkleTree::from_leaves(records.iter().map(|r| leaf_hash(r)))
}

/// tlog_tiles' hash storage, as its tests keep it: every stored hash in index order.
struct Storage(Vec<tlog_tiles::Hash>);

impl HashReader for Storage {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        Ok(indexes.iter().map(|&i| self.0[i as usize]).collect())
    }
}

fn their_storage(records: &[Vec<u8>]) -> Storage {
    let mut storage = Storage(Vec::new());
    for (n, record) in records.iter().enumerate() {
        let hashes = tlog_tiles::stored_hashes(n as u64, record, &storage).unwrap();
        storage.0.extend(hashes);
    }
    storage
}

fn theirs(hash: &Hash) -> tlog_tiles::Hash {
    tlog_tiles::Hash(hash.0)
}

fn ours(hash: &tlog_tiles::Hash) -> Hash {
    Hash(hash.0)
}

#[test]
fn our_checkpoints_verify_with_signed_note_and_parse_with_tlog_tiles() {
    let records = leaves(13);
    let tree = our_tree(&records);
    let origin = log_origin(&leaf_hash(b"genesis"));
    let signer = note_signer(&origin, 3);
    let checkpoint = Checkpoint {
        origin: origin.clone(),
        size: tree.size(),
        root: tree.root(),
    };
    let note = checkpoint.sign(&signer).unwrap();

    let verifier = StandardVerifier::new(&signer.verifier().to_string()).unwrap();
    assert_eq!(verifier.key_id(), signer.verifier().key_id());
    let parsed = Note::from_bytes(note.as_bytes()).unwrap();
    let (verified, unverified) = parsed
        .verify(&VerifierList::new(vec![Box::new(verifier)]))
        .unwrap();
    assert_eq!((verified.len(), unverified.len()), (1, 0));
    assert_eq!(parsed.text(), checkpoint.to_text().as_bytes());
    assert_eq!(parsed.to_bytes(), note.as_bytes());

    let theirs = tlog_tiles::Checkpoint::from_bytes(parsed.text()).unwrap();
    assert_eq!(theirs.origin(), origin);
    assert_eq!(theirs.size(), 13);
    assert_eq!(ours(theirs.hash()), tree.root());
    assert_eq!(theirs.extension(), "");
    assert_eq!(theirs.to_bytes(), checkpoint.to_text().as_bytes());
}

#[test]
fn their_checkpoints_verify_with_ours() {
    let records = leaves(21);
    let tree = our_tree(&records);
    let origin = log_origin(&leaf_hash(b"another genesis"));
    let text = tlog_tiles::Checkpoint::new(&origin, 21, theirs(&tree.root()), "")
        .unwrap()
        .to_bytes();
    let signer = StandardSigner::new(&their_skey(&origin, 5)).unwrap();
    let mut note = Note::new(&text, &[]).unwrap();
    note.add_sigs(&[&signer]).unwrap();
    let note = String::from_utf8(note.to_bytes()).unwrap();

    // Their verifier key text is ours, for the same key and name.
    let their_vkey = signed_note::new_ed25519_verifier_key(
        &origin,
        &SigningKey::from_bytes(&[5; 32]).verifying_key(),
    );
    assert_eq!(their_vkey, note_signer(&origin, 5).verifier().to_string());
    let pinned: NoteVerifier = their_vkey.parse().unwrap();
    let opened = open_checkpoint(&note, &[pinned], Some(&origin)).unwrap();
    assert_eq!(
        opened.checkpoint(),
        &Checkpoint {
            origin,
            size: 21,
            root: tree.root()
        }
    );
}

#[test]
fn roots_and_proofs_agree_with_tlog_tiles() {
    let records = leaves(40);
    let storage = their_storage(&records);
    let tree = our_tree(&records);
    for new in 1..=40u64 {
        let root = tree.root_at(new).unwrap();
        assert_eq!(
            ours(&tlog_tiles::tree_hash(new, &storage).unwrap()),
            root,
            "root at {new}"
        );
        for old in 1..=new {
            let old_root = tree.root_at(old).unwrap();
            // Ours, checked by theirs.
            let proof = tree.consistency_proof(old, new).unwrap().path;
            let as_theirs: TreeProof = proof.iter().map(theirs).collect();
            tlog_tiles::check_tree(&as_theirs, new, theirs(&root), old, theirs(&old_root))
                .unwrap_or_else(|e| panic!("{old} -> {new}: {e}"));
            // Theirs, checked by ours; and the same nodes.
            let their_proof = tlog_tiles::prove_tree(new, old, &storage).unwrap();
            let as_ours: Vec<Hash> = their_proof.iter().map(ours).collect();
            verify_consistency(old, new, &old_root, &root, &as_ours).unwrap();
            assert_eq!(as_ours, proof, "{old} -> {new}");
        }
        for index in 0..new {
            let leaf = leaf_hash(&records[index as usize]);
            let proof = tree.inclusion_proof(index, new).unwrap().path;
            let as_theirs: Vec<tlog_tiles::Hash> = proof.iter().map(theirs).collect();
            tlog_tiles::check_record(&as_theirs, new, theirs(&root), index, theirs(&leaf))
                .unwrap_or_else(|e| panic!("{index} in {new}: {e}"));
            let their_proof = tlog_tiles::prove_record(new, index, &storage).unwrap();
            let as_ours: Vec<Hash> = their_proof.iter().map(ours).collect();
            assert_eq!(
                root_from_inclusion(index, new, &leaf, &as_ours).unwrap(),
                root
            );
        }
    }
}

/// A cosignature/v1 verifier through signed_note's `Verifier` trait, written from the spec.
struct CosignatureV1Verifier {
    name: String,
    key: ed25519_dalek::VerifyingKey,
}

impl CosignatureV1Verifier {
    fn typed_key(&self) -> Vec<u8> {
        let mut typed = vec![0x04];
        typed.extend_from_slice(self.key.as_bytes());
        typed
    }
}

impl Verifier for CosignatureV1Verifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        signed_note::key_id(&self.name, &self.typed_key())
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Some((time, signature)) = sig.split_first_chunk::<8>() else {
            return false;
        };
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        let mut message =
            format!("cosignature/v1\ntime {}\n", u64::from_be_bytes(*time)).into_bytes();
        message.extend_from_slice(msg);
        self.key.verify(&message, &signature).is_ok()
    }
}

/// A cosignature/v1 signer through signed_note's `Signer` trait, written from the spec.
struct CosignatureV1Signer {
    verifier: CosignatureV1Verifier,
    key: SigningKey,
    time: u64,
}

impl Signer for CosignatureV1Signer {
    fn name(&self) -> &str {
        &self.verifier.name
    }
    fn key_id(&self) -> u32 {
        self.verifier.key_id()
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        let mut message = format!("cosignature/v1\ntime {}\n", self.time).into_bytes();
        message.extend_from_slice(msg);
        let mut out = self.time.to_be_bytes().to_vec();
        out.extend_from_slice(&self.key.sign(&message).to_bytes());
        Ok(out)
    }
}

fn their_cosigner(name: &str, seed: u8, time: u64) -> CosignatureV1Signer {
    let key = SigningKey::from_bytes(&[seed; 32]);
    CosignatureV1Signer {
        verifier: CosignatureV1Verifier {
            name: name.to_owned(),
            key: key.verifying_key(),
        },
        key,
        time,
    }
}

#[test]
fn our_cosignatures_verify_through_signed_note() {
    let tree = our_tree(&leaves(7));
    let origin = log_origin(&leaf_hash(b"genesis"));
    let log = note_signer(&origin, 3);
    let checkpoint = Checkpoint {
        origin: origin.clone(),
        size: 7,
        root: tree.root(),
    };
    let mut note = checkpoint.sign(&log).unwrap();
    let w1 = CosignatureSigner::from_seed("witness.example/w1", &[11; 32]).unwrap();
    let w2 = CosignatureSigner::from_seed("witness.example/w2", &[12; 32]).unwrap();
    let line1 = w1.sign(1_700_000_001, &checkpoint.to_text()).unwrap();
    let line2 = w2.sign(1_700_000_002, &checkpoint.to_text()).unwrap();
    note.push_str(&line1);
    note.push_str(&line2);

    let parsed = Note::from_bytes(note.as_bytes()).unwrap();
    assert_eq!(parsed.to_bytes(), note.as_bytes());
    let theirs_w1 = their_cosigner("witness.example/w1", 11, 0).verifier;
    let theirs_w2 = their_cosigner("witness.example/w2", 12, 0).verifier;
    // The key ids: signed_note's general rule over type 0x04 and the key gives ours.
    assert_eq!(theirs_w1.key_id(), w1.verifier().key_id());
    assert_eq!(theirs_w2.key_id(), w2.verifier().key_id());
    assert_eq!(
        signed_note::Signature::from_bytes(line1.trim_end().as_bytes())
            .unwrap()
            .to_bytes(),
        line1.as_bytes()
    );

    // Their note verification with the log key and the two witnesses: all three verify.
    let known = VerifierList::new(vec![
        Box::new(StandardVerifier::new(&log.verifier().to_string()).unwrap()),
        Box::new(theirs_w1),
        Box::new(theirs_w2),
    ]);
    let (verified, unverified) = parsed.verify(&known).unwrap();
    assert_eq!((verified.len(), unverified.len()), (3, 0));

    // With only the log key, the cosignatures are unknown lines.
    let log_only = VerifierList::new(vec![Box::new(
        StandardVerifier::new(&log.verifier().to_string()).unwrap(),
    )]);
    let (verified, unverified) = parsed.verify(&log_only).unwrap();
    assert_eq!((verified.len(), unverified.len()), (1, 2));
}

#[test]
fn cosignatures_made_through_signed_note_verify_with_ours() {
    let tree = our_tree(&leaves(9));
    let origin = log_origin(&leaf_hash(b"genesis"));
    let text = Checkpoint {
        origin: origin.clone(),
        size: 9,
        root: tree.root(),
    }
    .to_text();
    let log = StandardSigner::new(&their_skey(&origin, 3)).unwrap();
    let w1 = their_cosigner("witness.example/w1", 11, 1_700_000_123);
    let w2 = their_cosigner("witness.example/w2", 12, 1_700_000_456);
    let mut note = Note::new(text.as_bytes(), &[]).unwrap();
    note.add_sigs(&[&log, &w1, &w2]).unwrap();
    let note = String::from_utf8(note.to_bytes()).unwrap();

    let log_key: NoteVerifier = note_signer(&origin, 3)
        .verifier()
        .to_string()
        .parse()
        .unwrap();
    open_checkpoint(&note, &[log_key], Some(&origin)).unwrap();
    let pinned: Vec<CosignatureVerifier> = [(&w1, 11u8), (&w2, 12)]
        .iter()
        .map(|(w, seed)| {
            let vkey = format!(
                "{}+{:08x}+{}",
                w.verifier.name,
                w.verifier.key_id(),
                STANDARD.encode(w.verifier.typed_key())
            );
            let parsed: CosignatureVerifier = vkey.parse().unwrap();
            assert_eq!(
                parsed,
                *CosignatureSigner::from_seed(&w.verifier.name, &[*seed; 32])
                    .unwrap()
                    .verifier()
            );
            parsed
        })
        .collect();
    let verified = verify_cosignatures(&note, &pinned, 2).unwrap();
    let got: Vec<(&str, u64)> = verified
        .iter()
        .map(|v| (v.witness().name(), v.timestamp()))
        .collect();
    assert_eq!(
        got,
        [
            ("witness.example/w1", 1_700_000_123),
            ("witness.example/w2", 1_700_000_456)
        ]
    );
}
