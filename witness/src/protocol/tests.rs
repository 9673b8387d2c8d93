use super::*;
use ea_audit::checkpoint::log_origin;
use ea_audit::cosignature::verify_cosignatures;
use ea_audit::hash::leaf_hash;
use ea_audit::note::NoteSigner;
use ea_audit::tree::MerkleTree;
use ring::signature::Ed25519KeyPair;

use crate::request::encode;

/// A log as the enclave keeps it: records, their tree, and a log key signing checkpoints.
struct Log {
    tree: MerkleTree,
    signer: NoteSigner,
}

impl Log {
    /// `size` records; `fork` changes their contents (another history of the same log).
    fn new(size: u64, key_seed: u8, fork: &str) -> Self {
        let origin = log_origin(&leaf_hash(b"genesis"));
        let key = Ed25519KeyPair::from_seed_unchecked(&[key_seed; 32]).unwrap();
        Self {
            tree: MerkleTree::from_leaves(
                (0..size).map(|i| leaf_hash(format!("record {i}{fork}").as_bytes())),
            ),
            signer: NoteSigner::new(&origin, Box::new(key)).unwrap(),
        }
    }

    fn origin(&self) -> &str {
        self.signer.name()
    }

    fn checkpoint(&self, size: u64) -> Checkpoint {
        Checkpoint {
            origin: self.origin().to_owned(),
            size,
            root: self.tree.root_at(size).unwrap(),
        }
    }

    fn note(&self, size: u64) -> String {
        self.checkpoint(size).sign(&self.signer).unwrap()
    }

    fn proof(&self, old: u64, new: u64) -> Vec<Hash> {
        self.tree.consistency_proof(old, new).unwrap().path
    }

    /// A request from `old` to `new` with the right proof.
    fn request(&self, old: u64, new: u64) -> String {
        encode(old, &self.proof(old, new), &self.note(new))
    }

    fn state(&self, size: u64) -> LogState {
        LogState {
            size,
            root: self.tree.root_at(size).unwrap(),
            cosigned_at: 1,
        }
    }
}

fn witness(log: &Log) -> Witness {
    let cosigner = CosignatureSigner::from_seed("witness.example/w1", &[9; 32]).unwrap();
    Witness::new(cosigner, [log.signer.verifier().clone()]).unwrap()
}

fn submit(witness: &Witness, body: &str, stored: &LogState) -> Result<LogState, Refusal> {
    witness.check(body.as_bytes())?.advance(stored, 1_000)
}

#[test]
fn a_first_checkpoint_is_accepted_from_size_zero_and_cosigned() {
    let log = Log::new(20, 1, "");
    let w = witness(&log);
    let submission = w.check(log.request(0, 13).as_bytes()).unwrap();
    let state = submission.advance(&LogState::empty(), 1_000).unwrap();
    assert_eq!(
        state,
        LogState {
            size: 13,
            root: log.tree.root_at(13).unwrap(),
            cosigned_at: 1_000
        }
    );
    let line = w.cosign(&submission, &state).unwrap();
    let note = format!("{}{line}", log.note(13));
    let verified = verify_cosignatures(&note, &[w.cosigner().verifier().clone()], 1).unwrap();
    assert_eq!(verified[0].timestamp(), 1_000);
}

#[test]
fn consistent_growth_is_accepted() {
    let log = Log::new(40, 1, "");
    let w = witness(&log);
    for (old, new) in [(1, 2), (3, 7), (8, 40), (13, 21), (5, 5), (1, 40)] {
        assert_eq!(
            submit(&w, &log.request(old, new), &log.state(old)),
            Ok(LogState {
                size: new,
                root: log.tree.root_at(new).unwrap(),
                cosigned_at: 1_000
            }),
            "{old} -> {new}"
        );
    }
}

#[test]
fn size_zero_edge_cases() {
    let log = Log::new(5, 1, "");
    let w = witness(&log);
    // A size-0 checkpoint with the empty root, with an empty proof, over nothing stored.
    let empty = Checkpoint {
        origin: log.origin().to_owned(),
        size: 0,
        root: empty_root(),
    };
    let body = encode(0, &[], &empty.sign(&log.signer).unwrap());
    assert_eq!(
        submit(&w, &body, &LogState::empty()).unwrap().size,
        0,
        "0 -> 0"
    );
    // Size 0 with another root: no tree of size 0 has it.
    let wrong = Checkpoint {
        root: leaf_hash(b"x"),
        ..empty
    };
    let body = encode(0, &[], &wrong.sign(&log.signer).unwrap());
    let refusal = submit(&w, &body, &LogState::empty()).unwrap_err();
    assert_eq!(refusal, Refusal::EmptyTreeRoot);
    assert_eq!(refusal.status(), 422);
    // From size 0 the proof must be empty.
    let body = encode(0, &[leaf_hash(b"x")], &log.note(5));
    let refusal = submit(&w, &body, &LogState::empty()).unwrap_err();
    assert!(
        matches!(
            refusal,
            Refusal::BadProof {
                old: 0,
                size: 5,
                source: ProofError::WrongLength
            }
        ),
        "{refusal:?}"
    );
    assert_eq!(refusal.status(), 422);
}

#[test]
fn equal_sizes_need_an_empty_proof_and_the_same_root() {
    let log = Log::new(8, 1, "");
    let fork = Log::new(8, 1, " forked");
    let w = witness(&log);
    assert_eq!(
        submit(&w, &encode(8, &[], &log.note(8)), &log.state(8))
            .unwrap()
            .size,
        8
    );
    let refusal = submit(
        &w,
        &encode(8, &[leaf_hash(b"x")], &log.note(8)),
        &log.state(8),
    )
    .unwrap_err();
    assert!(matches!(refusal, Refusal::BadProof { .. }), "{refusal:?}");
    assert_eq!(refusal.status(), 422);
    // The same size, another history, signed by the same key: a fork.
    let refusal = submit(&w, &encode(8, &[], &fork.note(8)), &log.state(8)).unwrap_err();
    assert_eq!(refusal, Refusal::RootMismatch { size: 8 });
    assert_eq!(refusal.status(), 409);
}

#[test]
fn inconsistent_checkpoints_are_refused() {
    let log = Log::new(20, 1, "");
    let fork = Log::new(20, 1, " forked");
    let w = witness(&log);
    // A proof with one hash changed.
    let mut proof = log.proof(6, 20);
    proof[1] = leaf_hash(b"tampered");
    let refusal = submit(&w, &encode(6, &proof, &log.note(20)), &log.state(6)).unwrap_err();
    assert!(
        matches!(
            refusal,
            Refusal::BadProof {
                source: ProofError::RootMismatch,
                ..
            }
        ),
        "{refusal:?}"
    );
    // A proof one hash short, and the proof for other sizes.
    proof = log.proof(6, 20);
    proof.pop();
    assert!(matches!(
        submit(&w, &encode(6, &proof, &log.note(20)), &log.state(6)),
        Err(Refusal::BadProof { .. })
    ));
    assert!(matches!(
        submit(
            &w,
            &encode(6, &log.proof(7, 20), &log.note(20)),
            &log.state(6)
        ),
        Err(Refusal::BadProof { .. })
    ));
    // The forked history, with its own (valid) proof: not consistent with what was stored.
    let refusal = submit(&w, &fork.request(6, 20), &log.state(6)).unwrap_err();
    assert!(matches!(refusal, Refusal::BadProof { .. }), "{refusal:?}");
    assert_eq!(refusal.status(), 422);
}

#[test]
fn old_sizes() {
    let log = Log::new(20, 1, "");
    let w = witness(&log);
    // old above the checkpoint's size: 400, before the state is looked at.
    let refusal = w
        .check(encode(12, &[], &log.note(10)).as_bytes())
        .unwrap_err();
    assert_eq!(refusal, Refusal::OldBeyondSize { old: 12, size: 10 });
    assert_eq!(refusal.status(), 400);
    // old not the stored size: 409 with the stored size.
    let refusal = submit(&w, &log.request(5, 10), &log.state(7)).unwrap_err();
    assert_eq!(refusal, Refusal::OldSizeMismatch { old: 5, stored: 7 });
    assert_eq!(refusal.status(), 409);
    let refusal = submit(&w, &log.request(0, 10), &log.state(7)).unwrap_err();
    assert_eq!(refusal, Refusal::OldSizeMismatch { old: 0, stored: 7 });
    // A smaller checkpoint than the stored one: its old size cannot be the stored size
    // without being above its own size, so it is 400 or 409, never accepted.
    assert_eq!(
        submit(&w, &encode(7, &[], &log.note(5)), &log.state(7)),
        Err(Refusal::OldBeyondSize { old: 7, size: 5 })
    );
    assert_eq!(
        submit(&w, &log.request(3, 5), &log.state(7)),
        Err(Refusal::OldSizeMismatch { old: 3, stored: 7 })
    );
}

#[test]
fn origins_and_log_signatures() {
    let log = Log::new(5, 1, "");
    let w = witness(&log);
    // Another log: 404.
    let mut other = Log::new(5, 1, "");
    other.signer = NoteSigner::new(
        "enclave-approvals/0000000000000000",
        Box::new(Ed25519KeyPair::from_seed_unchecked(&[1; 32]).unwrap()),
    )
    .unwrap();
    let refusal = w.check(other.request(0, 5).as_bytes()).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::UnknownOrigin {
            origin: "enclave-approvals/0000000000000000".to_owned()
        }
    );
    assert_eq!(refusal.status(), 404);
    // The right origin, another key: 403.
    let impostor = Log::new(5, 2, "");
    let refusal = w.check(impostor.request(0, 5).as_bytes()).unwrap_err();
    assert!(
        matches!(
            refusal,
            Refusal::NotSignedByLog {
                source: NoteError::NoKnownSignature,
                ..
            }
        ),
        "{refusal:?}"
    );
    assert_eq!(refusal.status(), 403);
    // The log key's line moved onto another checkpoint: its signature fails, 403.
    let good = log.note(5);
    let line = good.split("\n\n").nth(1).unwrap();
    let moved = format!("{}\n{line}", log.checkpoint(4).to_text());
    let refusal = w.check(encode(0, &[], &moved).as_bytes()).unwrap_err();
    assert!(
        matches!(
            refusal,
            Refusal::NotSignedByLog {
                source: NoteError::BadSignature { .. },
                ..
            }
        ),
        "{refusal:?}"
    );
    // Unknown signature lines beside the log's are ignored.
    let cosigned = format!(
        "{good}{}",
        CosignatureSigner::from_seed("someone.else/w", &[3; 32])
            .unwrap()
            .sign(7, &log.checkpoint(5).to_text())
            .unwrap()
    );
    assert!(w.check(encode(0, &[], &cosigned).as_bytes()).is_ok());
}

#[test]
fn malformed_checkpoints_are_400() {
    let log = Log::new(5, 1, "");
    let w = witness(&log);
    let with_extension = log
        .signer
        .sign(&format!("{}extension line\n", log.checkpoint(5).to_text()))
        .unwrap();
    for note in ["", "not a note\n", with_extension.as_str()] {
        let refusal = w.check(encode(0, &[], note).as_bytes()).unwrap_err();
        assert!(
            matches!(refusal, Refusal::BadCheckpoint(_)),
            "{note:?}: {refusal:?}"
        );
        assert_eq!(refusal.status(), 400);
    }
    let refusal = w.check(b"old 1\n").unwrap_err();
    assert!(matches!(refusal, Refusal::Malformed(_)));
    assert_eq!(refusal.status(), 400);
}

#[test]
fn a_log_may_have_several_keys() {
    let log = Log::new(9, 1, "");
    let rotated = Log::new(9, 2, "");
    let cosigner = CosignatureSigner::from_seed("witness.example/w1", &[9; 32]).unwrap();
    let w = Witness::new(
        cosigner,
        [
            log.signer.verifier().clone(),
            rotated.signer.verifier().clone(),
            log.signer.verifier().clone(),
        ],
    )
    .unwrap();
    assert_eq!(w.logs()[log.origin()].len(), 2);
    assert!(submit(&w, &log.request(0, 4), &LogState::empty()).is_ok());
    assert!(submit(&w, &rotated.request(4, 9), &log.state(4)).is_ok());
}

#[test]
fn cosignature_times_never_go_back() {
    let log = Log::new(9, 1, "");
    let w = witness(&log);
    let stored = LogState {
        cosigned_at: 5_000,
        ..log.state(4)
    };
    let state = w
        .check(log.request(4, 9).as_bytes())
        .unwrap()
        .advance(&stored, 1_000)
        .unwrap();
    assert_eq!(state.cosigned_at, 5_000);
}

#[test]
fn configuration_errors() {
    let cosigner = || CosignatureSigner::from_seed("witness.example/w1", &[9; 32]).unwrap();
    assert_eq!(
        Witness::new(cosigner(), []).unwrap_err(),
        ConfigError::NoLogs
    );
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = NoteVerifier::new("enclave-approvals/0000000000000000", identity).unwrap();
    assert!(matches!(
        Witness::new(cosigner(), [weak]),
        Err(ConfigError::WeakLogKey {
            problem: WeakKey::SmallOrder,
            ..
        })
    ));
}

#[test]
fn sizes_beyond_2_pow_63_are_refused() {
    let log = Log::new(1, 1, "");
    let w = witness(&log);
    let huge = Checkpoint {
        origin: log.origin().to_owned(),
        size: MAX_SIZE + 1,
        root: leaf_hash(b"x"),
    };
    let refusal = w
        .check(encode(0, &[], &huge.sign(&log.signer).unwrap()).as_bytes())
        .unwrap_err();
    assert_eq!(refusal, Refusal::SizeTooLarge { size: MAX_SIZE + 1 });
    assert_eq!(refusal.status(), 400);
}
