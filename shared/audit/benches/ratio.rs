//! The verification core against the request-signature checks alone, on 1,000,000 records.
//!
//! A shared machine's load drifts over minutes, which makes two separate benchmarks of a
//! ratio unreliable. So this one measures both in turns, chunk by chunk over the same
//! records: the signature checks of a chunk's requests alone, then the whole verification of
//! that chunk (the same signature checks, plus decoding, hashing, attestation and checkpoint
//! checks). It prints both rates and their ratio, for three rounds.
//!
//! Run: `cargo bench -p ea-audit --bench ratio` (or `-- 100000 16 4 1`: the number of
//! records, then the checkpoint cadences).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs,
    reason = "benchmark harness: inputs are built here and a failure should stop the run"
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{FakeAttestation, LogBuilder};
use ea_audit::record::Record;
use ea_audit::verify::{LogVerifier, VerifyOptions};

const CHUNK: usize = 4096;

fn main() {
    // Arguments: the number of records, then the checkpoint cadences to try.
    let numbers: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let records = numbers.first().copied().unwrap_or(1_000_000);
    let cadences = match numbers.get(1..) {
        Some(rest) if !rest.is_empty() => rest.to_vec(),
        _ => vec![16, 4, 1],
    };
    let rounds = if records > 200_000 { 1 } else { 3 };
    for batch in cadences {
        let started = Instant::now();
        let log = LogBuilder::batched(1, records / batch, batch, 20);
        let requests: Vec<Option<Vec<u8>>> = log
            .records
            .iter()
            .map(|r| Record::from_bytes(r).unwrap().request)
            .collect();
        println!(
            "{} records, a checkpoint every {batch} record(s), every 20th an approval \
             decision with a 4.4 kB attestation (built in {:.0?})",
            log.records.len(),
            started.elapsed()
        );
        for round in 1..=rounds {
            let (signatures, verify) = paired(&log, &requests);
            let n = log.records.len() as f64;
            let sig_rate = n / signatures.as_secs_f64();
            let verify_rate = n / verify.as_secs_f64();
            println!(
                "  round {round}: signature checks alone {sig_rate:>8.0} records/s, \
                 full verification {verify_rate:>8.0} records/s, ratio {:.1}%",
                100.0 * verify_rate / sig_rate
            );
        }
    }
}

/// Times, chunk by chunk, the signature checks alone and then the full verification.
fn paired(log: &LogBuilder, requests: &[Option<Vec<u8>>]) -> (Duration, Duration) {
    let checker = log.request_checker();
    let mut verifier = LogVerifier::new(FakeAttestation, &checker, VerifyOptions::default());
    let mut checkpoints = log.checkpoints.iter().peekable();
    let (mut signatures, mut verify) = (Duration::ZERO, Duration::ZERO);
    for (chunk_index, chunk) in log.records.chunks(CHUNK).enumerate() {
        let first = chunk_index * CHUNK;
        let start = Instant::now();
        for request in requests[first..first + chunk.len()].iter().flatten() {
            checker.check_bytes(request).unwrap();
        }
        signatures += start.elapsed();

        let end = (first + chunk.len()) as u64;
        let start = Instant::now();
        while let Some(note) = checkpoints.next_if(|note| checkpoint_size(note) <= end) {
            verifier.add_checkpoint(note).unwrap();
        }
        for record in chunk {
            verifier.add_record(record).unwrap();
        }
        verify += start.elapsed();
    }
    let start = Instant::now();
    let summary = verifier.finish().unwrap();
    verify += start.elapsed();
    assert_eq!(summary.records, log.records.len() as u64);
    (signatures, verify)
}

/// The size line of a checkpoint note: the harness's bookkeeping, cheap, and counted on the
/// verification side.
fn checkpoint_size(note: &str) -> u64 {
    note.lines().nth(1).unwrap().parse().unwrap()
}
