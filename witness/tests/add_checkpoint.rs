//! `POST /add-checkpoint` through the real binary: every answer of the C2SP tlog-witness
//! spec, and the consistency proof's edge cases.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests: a failure is reported by the panic"
)]

mod common;

use common::{add_checkpoint, http, Log, Setup, WITNESS_NAME};
use ea_audit::checkpoint::Checkpoint;
use ea_audit::cosignature::verify_cosignatures;
use ea_audit::hash::{empty_root, leaf_hash};
use witness::request::encode;

const GENESIS: &str = "genesis";

#[test]
fn a_first_checkpoint_from_size_zero_is_cosigned_200() {
    let setup = Setup::new();
    let log = Log::new(GENESIS, 10, 1, "");
    let witness = setup.start(&[&log]);
    let answer = add_checkpoint(witness.addr, &log.request(0, 7));
    assert_eq!(answer.status, 200, "{answer:?}");
    // One signature line: an em dash, the witness name, base64; it verifies as a
    // cosignature on the checkpoint under the witness key keygen printed.
    assert!(
        answer
            .body
            .starts_with(&format!("\u{2014} {WITNESS_NAME} ")),
        "{answer:?}"
    );
    assert_eq!(answer.body.matches('\n').count(), 1);
    assert!(answer.body.ends_with('\n'));
    let cosigned = format!("{}{}", log.note(7), answer.body);
    let verified =
        verify_cosignatures(&cosigned, std::slice::from_ref(&setup.verifier), 1).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(verified[0].timestamp()) < 60);
}

#[test]
fn a_log_grows_through_consistent_checkpoints() {
    let setup = Setup::new();
    let log = Log::new(GENESIS, 64, 1, "");
    let witness = setup.start(&[&log]);
    let mut old = 0;
    for new in [1, 2, 3, 8, 8, 13, 31, 32, 33, 64] {
        let answer = add_checkpoint(witness.addr, &log.request(old, new));
        assert_eq!(answer.status, 200, "{old} -> {new}: {answer:?}");
        old = new;
    }
}

#[test]
fn an_unknown_origin_is_404() {
    let setup = Setup::new();
    let log = Log::new(GENESIS, 5, 1, "");
    let other = Log::new("another genesis", 5, 1, "");
    let witness = setup.start(&[&log]);
    let answer = add_checkpoint(witness.addr, &other.request(0, 5));
    assert_eq!(answer.status, 404, "{answer:?}");
    assert!(answer.body.contains(other.origin()), "{answer:?}");
}

#[test]
fn a_checkpoint_the_log_key_did_not_sign_is_403() {
    let setup = Setup::new();
    let log = Log::new(GENESIS, 5, 1, "");
    // Same origin, another key.
    let impostor = Log::new(GENESIS, 5, 2, "");
    let witness = setup.start(&[&log]);
    let answer = add_checkpoint(witness.addr, &impostor.request(0, 5));
    assert_eq!(answer.status, 403, "{answer:?}");
    // The log's signature line moved onto another checkpoint.
    let good = log.note(5);
    let line = good.split("\n\n").nth(1).unwrap();
    let moved = format!("{}\n{line}", log.checkpoint(4).to_text());
    let answer = add_checkpoint(witness.addr, &encode(0, &[], &moved));
    assert_eq!(answer.status, 403, "{answer:?}");
    // Nothing was stored: a first checkpoint is still taken from size 0.
    assert_eq!(add_checkpoint(witness.addr, &log.request(0, 5)).status, 200);
}

#[test]
fn a_stale_old_size_is_409_with_the_stored_size() {
    let setup = Setup::new();
    let log = Log::new(GENESIS, 20, 1, "");
    let witness = setup.start(&[&log]);
    assert_eq!(
        add_checkpoint(witness.addr, &log.request(0, 12)).status,
        200
    );
    for old in [0, 5, 11, 13] {
        let answer = add_checkpoint(witness.addr, &log.request(old, 20));
        assert_eq!(answer.status, 409, "old {old}: {answer:?}");
        assert_eq!(answer.content_type.as_deref(), Some("text/x.tlog.size"));
        assert_eq!(answer.body, "12\n");
    }
    // With the size the 409 gave, the client gets its cosignature.
    assert_eq!(
        add_checkpoint(witness.addr, &log.request(12, 20)).status,
        200
    );
}

#[test]
fn a_bad_consistency_proof_is_422() {
    let setup = Setup::new();
    let log = Log::new(GENESIS, 20, 1, "");
    let fork = Log::new(GENESIS, 20, 1, " forked");
    let witness = setup.start(&[&log]);
    assert_eq!(add_checkpoint(witness.addr, &log.request(0, 6)).status, 200);
    let mut proof = log.proof(6, 20);
    proof[0] = leaf_hash(b"tampered");
    let answer = add_checkpoint(witness.addr, &encode(6, &proof, &log.note(20)));
    assert_eq!(answer.status, 422, "{answer:?}");
    // A proof one node short.
    let mut short = log.proof(6, 20);
    short.pop();
    assert_eq!(
        add_checkpoint(witness.addr, &encode(6, &short, &log.note(20))).status,
        422
    );
    // A forked history, signed by the log key, with its own valid proof.
    let answer = add_checkpoint(witness.addr, &fork.request(6, 20));
    assert_eq!(answer.status, 422, "{answer:?}");
    // The refusal is logged as evidence.
    assert!(witness.stderr().contains("inconsistent checkpoint"));
    // The stored state is unchanged.
    assert_eq!(
        add_checkpoint(witness.addr, &log.request(0, 20)).body,
        "6\n"
    );
}

#[test]
fn the_same_size_with_another_root_is_409_without_a_size_body() {
    let setup = Setup::new();
    let log = Log::new(GENESIS, 8, 1, "");
    let fork = Log::new(GENESIS, 8, 1, " forked");
    let witness = setup.start(&[&log]);
    assert_eq!(add_checkpoint(witness.addr, &log.request(0, 8)).status, 200);
    let answer = add_checkpoint(witness.addr, &encode(8, &[], &fork.note(8)));
    assert_eq!(answer.status, 409, "{answer:?}");
    // Not text/x.tlog.size: retrying at the stored size would not help.
    assert_ne!(answer.content_type.as_deref(), Some("text/x.tlog.size"));
    assert!(answer.body.contains("another root"), "{answer:?}");
}

#[test]
fn an_old_size_above_the_checkpoint_size_is_400() {
    let setup = Setup::new();
    let log = Log::new(GENESIS, 20, 1, "");
    let witness = setup.start(&[&log]);
    assert_eq!(
        add_checkpoint(witness.addr, &log.request(0, 12)).status,
        200
    );
    // A smaller checkpoint than the stored one, sent from the stored size.
    let answer = add_checkpoint(witness.addr, &encode(12, &[], &log.note(10)));
    assert_eq!(answer.status, 400, "{answer:?}");
    // And from its own size: 409 (the stored size is not 10), never a cosignature.
    let answer = add_checkpoint(witness.addr, &encode(10, &[], &log.note(10)));
    assert_eq!((answer.status, answer.body.as_str()), (409, "12\n"));
}

#[test]
fn proof_edge_cases() {
    let setup = Setup::new();
    let log = Log::new(GENESIS, 9, 1, "");
    let witness = setup.start(&[&log]);
    // Size 0 to size 0: the empty tree's root, an empty proof.
    let empty = Checkpoint {
        origin: log.origin().to_owned(),
        size: 0,
        root: empty_root(),
    };
    let answer = add_checkpoint(
        witness.addr,
        &encode(0, &[], &empty.sign(&log.signer).unwrap()),
    );
    assert_eq!(answer.status, 200, "0 -> 0: {answer:?}");
    // Size 0 with another root.
    let wrong = Checkpoint {
        root: leaf_hash(b"x"),
        ..empty
    };
    let answer = add_checkpoint(
        witness.addr,
        &encode(0, &[], &wrong.sign(&log.signer).unwrap()),
    );
    assert_eq!(answer.status, 422, "{answer:?}");
    // From size 0 the proof must be empty.
    let answer = add_checkpoint(witness.addr, &encode(0, &[leaf_hash(b"x")], &log.note(4)));
    assert_eq!(answer.status, 422, "{answer:?}");
    assert_eq!(add_checkpoint(witness.addr, &log.request(0, 4)).status, 200);
    // Equal sizes: an empty proof, the same root; cosigned again.
    assert_eq!(add_checkpoint(witness.addr, &log.request(4, 4)).status, 200);
    // Equal sizes with a proof: 422.
    let answer = add_checkpoint(witness.addr, &encode(4, &[leaf_hash(b"x")], &log.note(4)));
    assert_eq!(answer.status, 422, "{answer:?}");
    // 63 proof lines are read (and this proof is wrong); 64 are refused as malformed.
    let answer = add_checkpoint(
        witness.addr,
        &encode(4, &vec![leaf_hash(b"x"); 63], &log.note(9)),
    );
    assert_eq!(answer.status, 422, "{answer:?}");
    let answer = add_checkpoint(
        witness.addr,
        &encode(4, &vec![leaf_hash(b"x"); 64], &log.note(9)),
    );
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(add_checkpoint(witness.addr, &log.request(4, 9)).status, 200);
}

#[test]
fn malformed_requests_routes_and_sizes() {
    let setup = Setup::new();
    let log = Log::new(GENESIS, 5, 1, "");
    let witness = setup.start(&[&log]);
    for body in [
        "".to_owned(),
        "old 1".to_owned(),
        format!("old 01\n\n{}", log.note(5)),
        format!("old 0\n{}", log.note(5)),
        "old 0\n\nnot a checkpoint\n".to_owned(),
    ] {
        let answer = add_checkpoint(witness.addr, &body);
        assert_eq!(answer.status, 400, "{body:?}: {answer:?}");
    }
    let big = vec![b'a'; 64 * 1024 + 1];
    assert_eq!(
        http(witness.addr, "POST", "/add-checkpoint", &big).status,
        413
    );
    assert_eq!(
        http(witness.addr, "GET", "/add-checkpoint", b"").status,
        405
    );
    assert_eq!(http(witness.addr, "POST", "/other", b"").status, 404);
    // Still serving.
    assert_eq!(add_checkpoint(witness.addr, &log.request(0, 5)).status, 200);
}

#[test]
fn several_logs_and_several_keys_per_log() {
    let setup = Setup::new();
    let a = Log::new(GENESIS, 9, 1, "");
    let a_rotated = Log::new(GENESIS, 9, 2, "");
    let b = Log::new("another genesis", 9, 3, "");
    let witness = setup.start(&[&a, &a_rotated, &b]);
    assert_eq!(add_checkpoint(witness.addr, &a.request(0, 3)).status, 200);
    assert_eq!(
        add_checkpoint(witness.addr, &a_rotated.request(3, 9)).status,
        200
    );
    // Each log has its own state.
    assert_eq!(add_checkpoint(witness.addr, &b.request(0, 5)).status, 200);
    assert_eq!(add_checkpoint(witness.addr, &a.request(0, 9)).body, "9\n");
}
