//! The fuzz smoke run, on stable and in CI: every target over its committed seed corpus
//! (`fuzz/corpus/<target>`), then over a bounded number of mutations of those seeds.
//!
//! This is not coverage-guided fuzzing (that is `cargo fuzz`, see `fuzz/README.md`); it
//! makes sure that each target builds, that no seed or cheap mutation of one crashes, and
//! that a crash found by a long run, once its input is added to the corpus, stays fixed.
//! Mutations come from a fixed-seed generator, so a failure repeats; the report names the
//! target, the iteration and the input in hex.
//!
//! `EA_FUZZ_SMOKE_ITERATIONS` (default 2000) sets the mutations per target.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test runner: a failed step should fail the test loudly"
)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use ea_fuzz_targets::{Target, TARGETS};

const DEFAULT_ITERATIONS: usize = 2000;

/// The largest input the mutator makes; the formats' own limits are far above it, and
/// the seeds are all smaller.
const MAX_INPUT: usize = 64 * 1024;

/// xorshift64*: tiny, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that sit on boundaries of CBOR, DER and lengths.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0xff, 0x18, 0x19, 0x1a, 0x1b, 0x5f, 0x9f, 0xbf, 0xf6, 0xf7, 0x30, 0x04,
    0x02, 0x0a,
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut input = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let at = rng.below(len);
                input[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                input[at] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let at = rng.below(len + 1);
                input.insert(at, rng.next() as u8);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(16)).min(len);
                input.drain(at..end);
            }
            4 => input.truncate(rng.below(len + 1)),
            5 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(64)).min(len);
                let chunk = input[at..end].to_vec();
                let to = rng.below(len + 1);
                input.splice(to..to, chunk);
            }
            6 => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            _ if len >= 4 => {
                // A length-sized field set to something large or zero.
                let at = rng.below(len - 3);
                let value: u32 = [0, 1, 0x7fff_ffff, u32::MAX][rng.below(4)];
                input[at..at + 4].copy_from_slice(&value.to_be_bytes());
            }
            _ => input.push(rng.next() as u8),
        }
    }
    input.truncate(MAX_INPUT);
    input
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(target)
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(!seeds.is_empty(), "{} has no seeds", dir.display());
    seeds
}

fn run_one(target: &Target, what: &str, input: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| (target.run)(input))).is_err() {
        panic!(
            "fuzz target {} failed on {what}; input ({} bytes): {}",
            target.name,
            input.len(),
            hex::encode(input)
        );
    }
}

fn smoke(name: &str) {
    let target = TARGETS
        .iter()
        .find(|t| t.name == name)
        .expect("a target of that name");
    let seeds = seeds(name);
    for (n, seed) in seeds.iter().enumerate() {
        run_one(target, &format!("seed {n}"), seed);
    }
    let iterations = std::env::var("EA_FUZZ_SMOKE_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ITERATIONS);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
    for iteration in 0..iterations {
        let input = mutate(&mut rng, &seeds);
        run_one(target, &format!("mutation {iteration}"), &input);
    }
}

#[test]
fn every_target_has_a_smoke_test_and_a_corpus() {
    let tested = [
        "attestation",
        "audit_record",
        "checkpoint",
        "cms",
        "eif",
        "frame",
        "policy_state",
        "sealed_key",
        "signed_request",
    ];
    for target in TARGETS {
        assert!(
            tested.contains(&target.name),
            "{} is not smoke-tested",
            target.name
        );
        assert!(
            corpus_dir(target.name).is_dir(),
            "{} has no corpus",
            target.name
        );
    }
    assert_eq!(TARGETS.len(), tested.len());
}

#[test]
fn attestation() {
    smoke("attestation");
}

#[test]
fn audit_record() {
    smoke("audit_record");
}

#[test]
fn checkpoint() {
    smoke("checkpoint");
}

#[test]
fn cms() {
    smoke("cms");
}

#[test]
fn eif() {
    smoke("eif");
}

#[test]
fn frame() {
    smoke("frame");
}

#[test]
fn policy_state() {
    smoke("policy_state");
}

#[test]
fn sealed_key() {
    smoke("sealed_key");
}

#[test]
fn signed_request() {
    smoke("signed_request");
}

/// The mutator must actually change inputs, or the smoke run tests the seeds only.
#[test]
fn mutations_differ_from_their_seeds() {
    let seeds = vec![b"0123456789abcdef".to_vec()];
    let mut rng = Rng(1);
    let changed = (0..100)
        .filter(|_| mutate(&mut rng, &seeds) != seeds[0])
        .count();
    assert!(changed > 90, "{changed} of 100 mutations changed the seed");
}

/// The signing mode must reach past the signature, or the target tests envelopes only.
#[test]
fn the_signed_request_seeds_reach_past_the_signature() {
    let seeds = seeds("signed_request");
    let accepted = seeds
        .iter()
        .filter(|seed| ea_fuzz_targets::signed_request::accepted(seed))
        .count();
    assert_eq!(
        accepted, 1,
        "only check-to-sign is signed by the directory's key"
    );
}
