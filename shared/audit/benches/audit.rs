//! Benchmarks of the audit library: tree append and roots, proofs, and the log verification
//! core on 100,000 synthetic records, against the request-signature checks alone.
//!
//! Run: `cargo bench -p ea-audit --bench audit`
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

use std::hint::black_box;

use common::{FakeAttestation, LogBuilder};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ea_audit::hash::{leaf_hash, Hash};
use ea_audit::proof::verify_consistency;
use ea_audit::record::Record;
use ea_audit::tree::MerkleTree;
use ea_audit::verify::{verify_log, SkipRequestChecks, VerifyOptions};

const MILLION: u64 = 1_000_000;
const RECORDS: usize = 100_000;

fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

fn tree(c: &mut Criterion) {
    let hashes = leaves(MILLION);
    let big = MerkleTree::from_leaves(hashes.iter().copied());
    let mut group = c.benchmark_group("tree");

    group.throughput(Throughput::Elements(MILLION));
    group.sample_size(10);
    group.bench_function("append 1M leaves", |b| {
        b.iter(|| black_box(MerkleTree::from_leaves(hashes.iter().copied()).size()))
    });
    group.sample_size(100);

    group.throughput(Throughput::Elements(1));
    // The tree grows by one leaf per iteration, from a million leaves on.
    let mut growing = big.clone();
    group.bench_function("append 1 leaf + root, at 1M", |b| {
        b.iter(|| {
            growing.push(leaf_hash(b"new"));
            black_box(growing.root())
        })
    });
    let mut size = 0u64;
    group.bench_function("root at a past size, 1M tree", |b| {
        b.iter(|| {
            size = (size + 7_919) % MILLION + 1;
            black_box(big.root_at(size))
        })
    });
    let mut index = 0u64;
    group.bench_function("inclusion proof, 1M tree", |b| {
        b.iter(|| {
            index = (index + 7_919) % MILLION;
            black_box(big.inclusion_proof(index, MILLION).unwrap())
        })
    });
    let proof = big.inclusion_proof(123_457, MILLION).unwrap();
    let root = big.root();
    let leaf = big.leaf(123_457).unwrap();
    group.bench_function("inclusion verify, 1M tree", |b| {
        b.iter(|| proof.verify(black_box(&leaf), &root).unwrap())
    });
    let old_root = big.root_at(654_321).unwrap();
    group.bench_function("consistency proof 654321 -> 1M, generate", |b| {
        b.iter(|| black_box(big.consistency_proof(654_321, MILLION).unwrap()))
    });
    let consistency = big.consistency_proof(654_321, MILLION).unwrap();
    group.bench_function("consistency proof 654321 -> 1M, verify", |b| {
        b.iter(|| {
            verify_consistency(654_321, MILLION, &old_root, &root, &consistency.path).unwrap()
        })
    });
    group.finish();
}

fn verification(c: &mut Criterion) {
    // 100,000 records after genesis and the enclave start, every 20th an approval decision
    // with a 4.4 kB (fake) attestation document; a checkpoint every 16 records (a group
    // commit), and in the worst case after every record.
    let batched = LogBuilder::batched(1, RECORDS / 16, 16, 20);
    let single = LogBuilder::batched(1, RECORDS, 1, 20);
    let requests: Vec<Vec<u8>> = batched
        .records
        .iter()
        .filter_map(|r| Record::from_bytes(r).unwrap().request)
        .collect();
    let checker = batched.request_checker();
    let mut group = c.benchmark_group("verify 100k records");
    group.sample_size(10);
    group.throughput(Throughput::Elements(RECORDS as u64));

    group.bench_function("request signature checks alone", |b| {
        b.iter(|| {
            for request in &requests {
                checker.check_bytes(request).unwrap();
            }
        })
    });
    group.bench_function("verify_log, checkpoint per 16 records", |b| {
        b.iter(|| {
            verify_log(
                &batched.records,
                &batched.checkpoints,
                FakeAttestation,
                &checker,
                VerifyOptions::default(),
            )
            .unwrap()
        })
    });
    group.bench_function("verify_log, checkpoint per record", |b| {
        b.iter(|| {
            verify_log(
                &single.records,
                &single.checkpoints,
                FakeAttestation,
                single.request_checker(),
                VerifyOptions::default(),
            )
            .unwrap()
        })
    });
    group.bench_function("verify_log without request checks, per 16", |b| {
        b.iter(|| {
            verify_log(
                &batched.records,
                &batched.checkpoints,
                FakeAttestation,
                SkipRequestChecks,
                VerifyOptions::default(),
            )
            .unwrap()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("per record");
    let record = &batched.records[100];
    group.bench_function("decode (canonical check)", |b| {
        b.iter(|| Record::from_bytes(black_box(record)).unwrap())
    });
    group.bench_function("leaf hash", |b| b.iter(|| leaf_hash(black_box(record))));
    let note = &batched.checkpoints[10];
    let key = [batched.signer.verifier().clone()];
    group.bench_function("checkpoint open (parse + Ed25519 verify)", |b| {
        b.iter(|| ea_audit::checkpoint::open_checkpoint(black_box(note), &key, None).unwrap())
    });
    group.finish();
}

criterion_group!(benches, tree, verification);
criterion_main!(benches);
