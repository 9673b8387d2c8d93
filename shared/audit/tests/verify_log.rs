//! The log verification core against good logs and each kind of tampering.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions; a panic is a failed test"
)]

mod common;

use common::{FakeAttestation, LogBuilder, OtherPcrs};
use ea_audit::record::{Record, RecordKind};
use ea_audit::verify::{
    verify_log, LogError, LogErrorKind, LogSummary, LogVerifier, SkipRequestChecks, VerifyOptions,
};

fn verify(log: &LogBuilder) -> Result<LogSummary, LogError> {
    verify_parts(&log.records, &log.checkpoints, log)
}

fn verify_parts(
    records: &[Vec<u8>],
    checkpoints: &[String],
    log: &LogBuilder,
) -> Result<LogSummary, LogError> {
    verify_log(
        records,
        checkpoints,
        FakeAttestation,
        log.request_checker(),
        VerifyOptions::default(),
    )
}

/// Genesis, enclave start, checkpoint at 2, then 5 batches of 4 records (every third an
/// approval decision), a checkpoint after each: sizes 2, 6, 10, 14, 18, 22.
fn sample() -> LogBuilder {
    LogBuilder::batched(1, 5, 4, 3)
}

#[test]
fn a_good_log_verifies() {
    let log = sample();
    let summary = verify(&log).unwrap();
    assert_eq!(summary.records, 22);
    assert_eq!(summary.checkpoint_size, 22);
    assert_eq!(summary.checkpoints, 6);
    assert_eq!(summary.root, log.tree.root());
    assert_eq!(summary.genesis_hash, log.genesis);
    assert_eq!(summary.origin, log.origin);
    assert_eq!(summary.log_keys.len(), 1);
    assert_eq!(summary.log_keys[0].index, 1);
    assert_eq!(&summary.log_keys[0].verifier, log.signer.verifier());
}

#[test]
fn records_then_checkpoints_also_verifies_and_returns_the_tree() {
    let log = sample();
    let mut v = LogVerifier::new(FakeAttestation, SkipRequestChecks, VerifyOptions::default());
    let decoded: Vec<Record> = log
        .records
        .iter()
        .map(|r| v.add_record(r).unwrap())
        .collect();
    assert_eq!(decoded[0].kind, RecordKind::Genesis);
    for c in &log.checkpoints {
        v.add_checkpoint(c).unwrap();
    }
    let (summary, tree) = v.finish_with_tree().unwrap();
    assert_eq!(tree.root(), summary.root);
    assert_eq!(tree.size(), 22);
}

#[test]
fn a_restarted_enclave_with_a_new_key() {
    let mut log = sample();
    log.restart(2);
    log.push_many(3, 0);
    log.checkpoint();
    let summary = verify(&log).unwrap();
    assert_eq!(summary.log_keys.len(), 2);
    assert_eq!(summary.log_keys[1].index, 22);
    assert_eq!(summary.checkpoint_size, 26);
}

fn expect(result: Result<LogSummary, LogError>, index: Option<u64>) -> LogErrorKind {
    let error = result.expect_err("the log verified");
    assert_eq!(error.index, index, "{error}");
    error.kind
}

#[test]
fn a_changed_byte_names_the_first_record_of_its_batch() {
    let log = sample();
    // Record 13 is in the batch 10..14; change a letter of its actor.
    let mut records = log.records.clone();
    let at = records[13].windows(5).position(|w| w == b"alice").unwrap();
    records[13][at] = b'A';
    let kind = expect(verify_parts(&records, &log.checkpoints, &log), Some(10));
    assert!(
        matches!(
            kind,
            LogErrorKind::RootMismatch {
                checkpoint: 3,
                size: 14
            }
        ),
        "{kind:?}"
    );
    // Record 12 is an approval decision: its own attestation names it exactly.
    let mut records = log.records.clone();
    let at = records[12].windows(5).position(|w| w == b"alice").unwrap();
    records[12][at] = b'A';
    let kind = expect(verify_parts(&records, &log.checkpoints, &log), Some(12));
    assert!(matches!(kind, LogErrorKind::Attestation { .. }), "{kind:?}");
}

#[test]
fn a_changed_byte_names_the_exact_record_with_one_checkpoint_per_record() {
    let log = LogBuilder::batched(1, 12, 1, 0);
    for target in [2usize, 7, 13] {
        let mut records = log.records.clone();
        let at = records[target]
            .windows(5)
            .position(|w| w == b"alice")
            .unwrap();
        records[target][at] = b'A';
        let kind = expect(
            verify_parts(&records, &log.checkpoints, &log),
            Some(target as u64),
        );
        assert!(
            matches!(kind, LogErrorKind::RootMismatch { .. }),
            "{kind:?}"
        );
    }
}

#[test]
fn a_changed_byte_that_breaks_the_encoding_or_signature_names_the_record() {
    let log = sample();
    let mut records = log.records.clone();
    records[8].push(0);
    let kind = expect(verify_parts(&records, &log.checkpoints, &log), Some(8));
    assert!(matches!(kind, LogErrorKind::Record(_)), "{kind:?}");

    // A byte inside the signed request body: the request signature fails at that record.
    let mut records = log.records.clone();
    let at = records[9]
        .windows(10)
        .position(|w| w == b"assignRole")
        .unwrap();
    records[9][at] = b'A';
    let kind = expect(verify_parts(&records, &log.checkpoints, &log), Some(9));
    assert!(matches!(kind, LogErrorKind::Request { .. }), "{kind:?}");
}

#[test]
fn a_deleted_record() {
    let log = sample();
    let mut records = log.records.clone();
    records.remove(7);
    let kind = expect(verify_parts(&records, &log.checkpoints, &log), Some(7));
    assert!(
        matches!(kind, LogErrorKind::SeqMismatch { found: 8 }),
        "{kind:?}"
    );
}

#[test]
fn two_swapped_records() {
    let log = sample();
    let mut records = log.records.clone();
    records.swap(11, 15);
    let kind = expect(verify_parts(&records, &log.checkpoints, &log), Some(11));
    assert!(
        matches!(kind, LogErrorKind::SeqMismatch { found: 15 }),
        "{kind:?}"
    );
}

#[test]
fn a_truncated_tail_with_an_old_checkpoint_for_the_larger_tree() {
    let log = sample();
    let records = &log.records[..19];
    let kind = expect(verify_parts(records, &log.checkpoints, &log), Some(19));
    assert!(
        matches!(
            kind,
            LogErrorKind::Truncated {
                checkpoint: 5,
                size: 22,
                records: 19
            }
        ),
        "{kind:?}"
    );
}

#[test]
fn a_checkpoint_signed_by_another_key() {
    let mut log = sample();
    let mut forger = LogBuilder::new(9);
    forger.origin = log.origin.clone();
    forger.signer =
        ea_audit::note::NoteSigner::new(&log.origin, Box::new(common::key_pair(9))).unwrap();
    forger.tree = log.tree.clone();
    log.checkpoints[4] = forger.checkpoint_note(18);
    let kind = expect(verify(&log), Some(14));
    assert!(
        matches!(
            kind,
            LogErrorKind::CheckpointSignature {
                checkpoint: 4,
                size: 18,
                ..
            }
        ),
        "{kind:?}"
    );
}

#[test]
fn a_checkpoint_signed_before_its_key_was_attested() {
    // The second key is attested at index 22; a checkpoint of size 22 does not cover that
    // record, so the new key may not sign it.
    let mut log = sample();
    log.restart(2);
    let early = log.checkpoint_note(22);
    // In place of the genuine checkpoint of size 22: only the key rule refuses it, naming
    // the first record of its batch (18..22).
    let mut checkpoints = log.checkpoints.clone();
    assert_eq!(checkpoints.len(), 6);
    checkpoints[5] = early.clone();
    let kind = expect(verify_parts(&log.records, &checkpoints, &log), Some(18));
    assert!(
        matches!(
            kind,
            LogErrorKind::CheckpointSignature {
                checkpoint: 5,
                size: 22,
                ..
            }
        ),
        "{kind:?}"
    );
    // After the genuine one: a log has one checkpoint per size, so it is refused before
    // its signature is looked at.
    log.checkpoints.push(early);
    let kind = expect(verify(&log), None);
    assert!(
        matches!(
            kind,
            LogErrorKind::CheckpointRepeated {
                checkpoint: 6,
                size: 22,
            }
        ),
        "{kind:?}"
    );
}

#[test]
fn an_attestation_for_other_pcrs() {
    let log = sample();
    let error = verify_log(
        &log.records,
        &log.checkpoints,
        OtherPcrs,
        log.request_checker(),
        VerifyOptions::default(),
    )
    .unwrap_err();
    assert_eq!(error.index, Some(1));
    assert!(
        matches!(
            error.kind,
            LogErrorKind::Attestation {
                kind: RecordKind::EnclaveStart,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("other PCRs"), "{error}");
}

#[test]
fn approval_records_need_their_own_attestation() {
    let log = sample();
    // Record 4 is the first approval decision (third record of the first batch).
    let mut record = Record::from_bytes(&log.records[4]).unwrap();
    assert_eq!(record.kind, RecordKind::ApprovalDecision);
    let mut records = log.records.clone();

    let attestation = record.attestation.take();
    records[4] = record.to_bytes().unwrap();
    let kind = expect(verify_parts(&records, &log.checkpoints, &log), Some(4));
    assert!(
        matches!(kind, LogErrorKind::MissingAttestation { .. }),
        "{kind:?}"
    );

    // The attestation of another record: its user_data is the wrong record hash.
    let other = Record::from_bytes(&log.records[8]).unwrap();
    record.attestation = other.attestation;
    records[4] = record.to_bytes().unwrap();
    let kind = expect(verify_parts(&records, &log.checkpoints, &log), Some(4));
    assert!(matches!(kind, LogErrorKind::Attestation { .. }), "{kind:?}");
    assert!(attestation.is_some());
}

#[test]
fn genesis_rules() {
    let log = sample();
    let kind = expect(verify_parts(&log.records[1..], &[], &log), Some(0));
    assert!(
        matches!(kind, LogErrorKind::SeqMismatch { found: 1 }),
        "{kind:?}"
    );

    let mut first = Record::from_bytes(&log.records[1]).unwrap();
    first.seq = 0;
    let kind = expect(
        verify_parts(&[first.to_bytes().unwrap()], &[], &log),
        Some(0),
    );
    assert!(matches!(kind, LogErrorKind::NotGenesis { .. }), "{kind:?}");

    let mut again = Record::from_bytes(&log.records[0]).unwrap();
    again.seq = 2;
    let records = vec![
        log.records[0].clone(),
        log.records[1].clone(),
        again.to_bytes().unwrap(),
    ];
    let kind = expect(verify_parts(&records, &[], &log), Some(2));
    assert!(matches!(kind, LogErrorKind::GenesisAgain), "{kind:?}");

    let kind = expect(verify_parts(&[], &[], &log), Some(0));
    assert!(matches!(kind, LogErrorKind::EmptyLog), "{kind:?}");
}

#[test]
fn unsigned_records_after_the_last_checkpoint() {
    let mut log = sample();
    log.push_many(2, 0);
    let kind = expect(verify(&log), Some(22));
    assert!(
        matches!(
            kind,
            LogErrorKind::UnsignedRecords {
                from: 22,
                records: 24
            }
        ),
        "{kind:?}"
    );
    let summary = verify_log(
        &log.records,
        &log.checkpoints,
        FakeAttestation,
        log.request_checker(),
        VerifyOptions {
            allow_unsigned_tail: true,
        },
    )
    .unwrap();
    assert_eq!((summary.records, summary.checkpoint_size), (24, 22));
}

#[test]
fn checkpoints_out_of_order_or_of_another_log() {
    let log = sample();
    let mut checkpoints = log.checkpoints.clone();
    checkpoints.swap(2, 3);
    let kind = expect(verify_parts(&log.records, &checkpoints, &log), None);
    assert!(
        matches!(
            kind,
            LogErrorKind::CheckpointOrder {
                checkpoint: 3,
                size: 10,
                previous: 14
            }
        ),
        "{kind:?}"
    );

    let other = LogBuilder::batched(1, 5, 4, 3);
    let mut foreign = other;
    foreign.origin = "enclave-approvals/0123456789abcdef".into();
    foreign.signer =
        ea_audit::note::NoteSigner::new(&foreign.origin, Box::new(common::key_pair(1))).unwrap();
    let mut checkpoints = log.checkpoints.clone();
    checkpoints[1] = foreign.checkpoint_note(6);
    let kind = expect(verify_parts(&log.records, &checkpoints, &log), Some(2));
    assert!(
        matches!(kind, LogErrorKind::CheckpointOrigin { checkpoint: 1, .. }),
        "{kind:?}"
    );

    let mut checkpoints = log.checkpoints.clone();
    checkpoints[2] = checkpoints[2].replace('\u{2014}', "-");
    let kind = expect(verify_parts(&log.records, &checkpoints, &log), None);
    assert!(
        matches!(
            kind,
            LogErrorKind::CheckpointMalformed { checkpoint: 2, .. }
        ),
        "{kind:?}"
    );
}

#[test]
fn a_second_checkpoint_of_the_same_size_is_refused_naming_the_size() {
    // One checkpoint per size: the store keeps one per size and every batch adds records.
    // The same note again, thousands of times, or another note of the same size and root
    // (Ed25519 is deterministic: a second signature by the log key is the same note), is
    // refused at the first repeat, whether the records come first or the checkpoints do.
    let log = sample();
    let mut checkpoints = log.checkpoints.clone();
    checkpoints.insert(2, log.checkpoints[1].clone());
    let mut thousands = log.checkpoints.clone();
    let repeated = std::iter::repeat_n(log.checkpoints[1].clone(), 5000);
    thousands.splice(2..2, repeated);
    for (name, checkpoints) in [("once", checkpoints), ("5000 times", thousands)] {
        let error = verify_parts(&log.records, &checkpoints, &log).expect_err(name);
        let message = error.to_string();
        assert_eq!(error.index, None, "{name}: {message}");
        assert!(
            format!("{:?}", error.kind).starts_with("CheckpointRepeated"),
            "{name}: {message}"
        );
        assert!(
            message.contains("checkpoint 2 has size 6"),
            "{name}: {message}"
        );

        let mut v = LogVerifier::new(FakeAttestation, SkipRequestChecks, VerifyOptions::default());
        for record in &log.records {
            v.add_record(record).unwrap();
        }
        let refused = checkpoints
            .iter()
            .map(|c| v.add_checkpoint(c))
            .position(|added| added.is_err());
        assert_eq!(refused, Some(2), "{name}: records first");
    }
}

#[test]
fn a_failed_verifier_stays_failed() {
    let log = sample();
    let mut v = LogVerifier::new(
        FakeAttestation,
        log.request_checker(),
        VerifyOptions::default(),
    );
    v.add_record(&log.records[0]).unwrap();
    let first = v.add_record(&log.records[2]).unwrap_err();
    assert_eq!(first.index, Some(1));
    let again = v.add_record(&log.records[1]).unwrap_err();
    assert_eq!(again.index, Some(1));
    assert!(matches!(again.kind, LogErrorKind::SeqMismatch { found: 2 }));
    assert_eq!(v.finish().unwrap_err().index, Some(1));
}

/// The note with one bit of its (first) signature flipped, still well-formed.
fn corrupt_signature(note: &str) -> String {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    let (text, line) = note.rsplit_once("\n\n").unwrap();
    let (prefix, blob) = line.trim_end().rsplit_once(' ').unwrap();
    let mut raw = STANDARD.decode(blob).unwrap();
    raw[10] ^= 0x01;
    format!("{text}\n\n{prefix} {}\n", STANDARD.encode(raw))
}

#[test]
fn a_checkpoint_with_a_corrupted_signature_by_the_log_key() {
    let mut log = sample();
    log.checkpoints[2] = corrupt_signature(&log.checkpoints[2]);
    let kind = expect(verify(&log), Some(6));
    assert!(
        matches!(
            kind,
            LogErrorKind::CheckpointSignature {
                checkpoint: 2,
                size: 10,
                ..
            }
        ),
        "{kind:?}"
    );
}

#[test]
fn a_bad_signature_queued_for_batch_verification_comes_before_a_later_error() {
    let mut log = sample();
    log.checkpoints[2] = corrupt_signature(&log.checkpoints[2]);
    let mut records = log.records.clone();
    records.remove(15);
    let kind = expect(verify_parts(&records, &log.checkpoints, &log), Some(6));
    assert!(
        matches!(
            kind,
            LogErrorKind::CheckpointSignature { checkpoint: 2, .. }
        ),
        "{kind:?}"
    );
}

#[test]
fn the_first_bad_signature_among_many_batches() {
    // 150 checkpoints: more than one batch of signatures.
    let mut log = LogBuilder::batched(1, 150, 2, 0);
    log.checkpoints[140] = corrupt_signature(&log.checkpoints[140]);
    log.checkpoints[70] = corrupt_signature(&log.checkpoints[70]);
    log.checkpoints[100] = corrupt_signature(&log.checkpoints[100]);
    // Checkpoint 70 covers size 2 + 70 * 2 = 142; its batch starts at 140.
    let kind = expect(verify(&log), Some(140));
    assert!(
        matches!(
            kind,
            LogErrorKind::CheckpointSignature {
                checkpoint: 70,
                size: 142,
                ..
            }
        ),
        "{kind:?}"
    );
    let clean = LogBuilder::batched(1, 150, 2, 0);
    assert_eq!(verify(&clean).unwrap().checkpoints, 151);
}

/// The recovery mode: records added with `add_authenticated_record`, every checkpoint first.
fn verify_authenticated(
    records: &[Vec<u8>],
    checkpoints: &[String],
    options: VerifyOptions,
) -> Result<LogSummary, LogError> {
    let mut v = LogVerifier::new(FakeAttestation, SkipRequestChecks, options);
    for c in checkpoints {
        v.add_checkpoint(c)?;
    }
    for r in records {
        v.add_authenticated_record(r)?;
    }
    v.finish()
}

#[test]
fn the_authenticated_mode_accepts_what_the_full_mode_accepts() {
    let mut log = sample();
    log.restart(2);
    log.push_many(3, 0);
    log.checkpoint();
    let full = verify(&log).unwrap();
    let fast =
        verify_authenticated(&log.records, &log.checkpoints, VerifyOptions::default()).unwrap();
    assert_eq!(fast, full);
}

#[test]
fn the_authenticated_mode_refuses_every_tampering_the_tree_shows() {
    let log = sample();
    let options = VerifyOptions::default();
    let run = |records: &[Vec<u8>], checkpoints: &[String]| {
        verify_authenticated(records, checkpoints, options).expect_err("the log verified")
    };

    // A changed byte anywhere: the root of its batch's checkpoint.
    let mut records = log.records.clone();
    let at = records[13].windows(5).position(|w| w == b"alice").unwrap();
    records[13][at] = b'A';
    let error = run(&records, &log.checkpoints);
    assert!(
        matches!(error.kind, LogErrorKind::RootMismatch { size: 14, .. }),
        "{error}"
    );

    // A deleted record and two swapped ones: the sequence.
    let mut records = log.records.clone();
    records.remove(4);
    assert_eq!(run(&records, &log.checkpoints).index, Some(4));
    let mut records = log.records.clone();
    records.swap(3, 6);
    assert_eq!(run(&records, &log.checkpoints).index, Some(3));

    // A cut tail under the checkpoint for the longer log.
    let error = run(&log.records[..20], &log.checkpoints);
    assert!(
        matches!(error.kind, LogErrorKind::Truncated { .. }),
        "{error}"
    );

    // A checkpoint signed by a key no enclave_start attested.
    let mut checkpoints = log.checkpoints.clone();
    checkpoints[4] = corrupt_signature(&checkpoints[4]);
    let error = run(&log.records, &checkpoints);
    assert!(
        matches!(error.kind, LogErrorKind::CheckpointSignature { .. }),
        "{error}"
    );

    // The enclave_start document is still checked: it makes the log key.
    let error = {
        let mut v = LogVerifier::new(OtherPcrs, SkipRequestChecks, options);
        log.checkpoints
            .iter()
            .try_for_each(|c| v.add_checkpoint(c))
            .and_then(|()| {
                log.records
                    .iter()
                    .try_for_each(|r| v.add_authenticated_record(r))
            })
            .and_then(|()| v.finish().map(drop))
            .expect_err("the log verified")
    };
    assert_eq!(error.index, Some(1));
    assert!(
        matches!(error.kind, LogErrorKind::Attestation { .. }),
        "{error}"
    );
}

#[test]
fn the_authenticated_mode_refuses_records_no_checkpoint_covers_whatever_the_options() {
    let mut log = sample();
    log.push_many(2, 0);
    let error = verify_authenticated(
        &log.records,
        &log.checkpoints,
        VerifyOptions {
            allow_unsigned_tail: true,
        },
    )
    .expect_err("an unsigned tail was accepted");
    assert_eq!(error.index, Some(22));
    assert!(
        matches!(
            error.kind,
            LogErrorKind::UnsignedRecords {
                from: 22,
                records: 24
            }
        ),
        "{error}"
    );
}

/// A request checker that defers its verdicts to `flush`, refusing the records in `bad`.
struct Deferring {
    bad: Vec<u64>,
    queued: std::cell::RefCell<Vec<u64>>,
}

#[derive(Debug, thiserror::Error)]
#[error("deferred refusal")]
struct DeferredRefusal;

impl ea_audit::verify::RequestChecker for Deferring {
    type Error = DeferredRefusal;
    fn check(&self, record: &Record) -> Result<(), DeferredRefusal> {
        self.queued.borrow_mut().push(record.seq);
        Ok(())
    }
    fn flush(&self) -> Result<(), (u64, DeferredRefusal)> {
        let queued = std::mem::take(&mut *self.queued.borrow_mut());
        match queued.into_iter().find(|seq| self.bad.contains(seq)) {
            Some(seq) => Err((seq, DeferredRefusal)),
            None => Ok(()),
        }
    }
}

#[test]
fn deferred_request_checks_are_reported_first_and_at_their_own_index() {
    let log = sample();
    let run = |records: &[Vec<u8>], checkpoints: &[String], bad: &[u64]| {
        let checker = Deferring {
            bad: bad.to_vec(),
            queued: Default::default(),
        };
        verify_log(
            records,
            checkpoints,
            FakeAttestation,
            &checker,
            VerifyOptions::default(),
        )
    };
    assert!(run(&log.records, &log.checkpoints, &[]).is_ok());
    // Flushed at the end.
    let error = run(&log.records, &log.checkpoints, &[7]).unwrap_err();
    assert_eq!(error.index, Some(7));
    assert!(
        matches!(error.kind, LogErrorKind::Request { .. }),
        "{error}"
    );
    // A later failure does not hide it.
    let mut records = log.records.clone();
    records.remove(15);
    assert_eq!(
        run(&records, &log.checkpoints, &[7]).unwrap_err().index,
        Some(7)
    );
    // An earlier one does.
    assert_eq!(
        run(&records, &log.checkpoints, &[18]).unwrap_err().index,
        Some(15)
    );
    // Against a queued checkpoint signature failure, the lower index wins.
    let mut checkpoints = log.checkpoints.clone();
    checkpoints[3] = corrupt_signature(&checkpoints[3]);
    assert_eq!(
        run(&log.records, &checkpoints, &[13]).unwrap_err().index,
        Some(10)
    );
    assert_eq!(
        run(&log.records, &checkpoints, &[7]).unwrap_err().index,
        Some(7)
    );
}

/// The sample log, then an enclave of image 0xbb with its own key (seed 2) takes over:
/// its enclave_start at 22, a checkpoint at 23, then 4 records and a checkpoint at 27.
fn upgraded() -> LogBuilder {
    let mut log = sample();
    log.restart_image(2, 0xbb);
    log.checkpoint();
    log.push_many(4, 2);
    log.checkpoint();
    log
}

#[test]
fn a_new_image_with_its_own_key_takes_over_the_log() {
    let log = upgraded();
    let summary = verify(&log).unwrap();
    assert_eq!(summary.records, 27);
    let keys: Vec<(u64, u64, u8)> = summary
        .log_keys
        .iter()
        .map(|k| (k.index, k.era, k.image[&0][0]))
        .collect();
    assert_eq!(keys, vec![(1, 1, 0xee), (22, 22, 0xbb)]);
    assert_eq!(
        verify_authenticated(&log.records, &log.checkpoints, VerifyOptions::default())
            .unwrap()
            .log_keys
            .len(),
        2
    );

    // A restart of the same image stays in its era; the old image's return opens a new one.
    let mut log = upgraded();
    log.restart_image(2, 0xbb);
    log.push_many(1, 0);
    log.checkpoint();
    log.restart_image(1, common::DEFAULT_IMAGE);
    log.push_many(1, 0);
    log.checkpoint();
    let eras: Vec<u64> = verify(&log)
        .unwrap()
        .log_keys
        .iter()
        .map(|k| k.era)
        .collect();
    assert_eq!(eras, vec![1, 22, 22, 29]);
}

#[test]
fn an_old_image_key_signs_nothing_after_the_new_image_started() {
    let log = upgraded();
    // The old key (seed 1) signs the checkpoint at 27: the new image started at 22.
    let mut old = LogBuilder::new(1);
    old.tree = log.tree.clone();
    old.origin = log.origin.clone();
    let forged = old.checkpoint_note(27);
    let mut checkpoints = log.checkpoints.clone();
    *checkpoints.last_mut().unwrap() = forged.clone();
    let full = expect(verify_parts(&log.records, &checkpoints, &log), Some(23));
    assert!(
        matches!(
            full,
            LogErrorKind::SupersededKey {
                size: 27,
                key_index: 1,
                superseded_by: 22,
                ..
            }
        ),
        "{full}"
    );
    assert!(full.to_string().contains("superseded"), "{full}");
    // Recovery's authenticated pass refuses it the same way, at the same index.
    let error = verify_authenticated(&log.records, &checkpoints, VerifyOptions::default())
        .expect_err("the old key's checkpoint was accepted");
    assert_eq!(error.index, Some(23));
    assert!(
        matches!(error.kind, LogErrorKind::SupersededKey { .. }),
        "{error}"
    );

    // Its signature beside the new key's is ignored, like any key's a verifier does not
    // count; the checkpoint at the new image's own start must be the new key's too.
    let mut both = log.checkpoints.clone();
    let last = both.last().unwrap().clone();
    let old_line = forged.lines().last().unwrap();
    *both.last_mut().unwrap() = format!("{last}{old_line}\n");
    verify_parts(&log.records, &both, &log).unwrap();
    let mut at_start = log.checkpoints.clone();
    at_start[6] = old.checkpoint_note(23);
    let error = expect(verify_parts(&log.records, &at_start, &log), Some(22));
    assert!(
        matches!(error, LogErrorKind::SupersededKey { size: 23, .. }),
        "{error}"
    );
}

#[test]
fn the_pinned_genesis_image_is_the_first_start_s() {
    let log = upgraded();
    let pinned = |pcrs| {
        let mut v = LogVerifier::new(
            FakeAttestation,
            log.request_checker(),
            VerifyOptions::default(),
        )
        .pin_genesis_image(pcrs);
        for c in &log.checkpoints {
            v.add_checkpoint(c).unwrap();
        }
        log.records
            .iter()
            .try_for_each(|r| v.add_record(r).map(drop))
            .and_then(|()| v.finish())
    };
    pinned(common::fake_pcrs(common::DEFAULT_IMAGE)).unwrap();
    let error = pinned(common::fake_pcrs(0xbb)).expect_err("another genesis image was accepted");
    assert_eq!(error.index, Some(1));
    assert!(
        matches!(error.kind, LogErrorKind::GenesisImage { pcr: 0, .. }),
        "{error}"
    );
}

#[test]
fn an_approval_record_attested_by_another_image_is_refused() {
    let mut log = upgraded();
    // The enclave of image 0xbb writes an approval record attested by the old image.
    log.image = common::DEFAULT_IMAGE;
    log.push(RecordKind::ApprovalDecision);
    log.checkpoint();
    let error = expect(verify(&log), Some(27));
    assert!(
        matches!(error, LogErrorKind::ForeignImage { start: 22, .. }),
        "{error}"
    );
}
