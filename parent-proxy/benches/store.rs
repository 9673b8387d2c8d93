//! The log store's append rate on this machine's disk: SQLite in WAL mode with
//! `synchronous=FULL`, one transaction (one fsync) per append, batches of 1, 10 and 100
//! records of 300 bytes each with their checkpoint.
//!
//! Criterion reports the time per append (= per fsync) and, as throughput, records per
//! second. Run with `cargo bench -p parent-proxy --bench store`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark set-up")]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ea_audit::hash::leaf_hash;
use ea_audit::note::NoteSigner;
use ea_audit::{Checkpoint, MerkleTree};
use parent_proxy::store::{LogStore, SqliteLogStore};

const RECORD_LEN: usize = 300;

/// Appends batches to one store, signing a real checkpoint for each (outside the timing).
struct Writer {
    store: SqliteLogStore,
    tree: MerkleTree,
    signer: NoteSigner,
    origin: String,
}

impl Writer {
    fn new(dir: &std::path::Path) -> Self {
        let origin = "enclave-approvals/0123456789abcdef".to_owned();
        let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[5; 32]).unwrap();
        Self {
            store: SqliteLogStore::open(dir.join("bench.sqlite")).unwrap(),
            tree: MerkleTree::new(),
            signer: NoteSigner::new(&origin, Box::new(key)).unwrap(),
            origin,
        }
    }

    /// The next batch and its checkpoint.
    fn prepare(&mut self, count: u64) -> (u64, Vec<Vec<u8>>, String) {
        let first = self.tree.size();
        let records: Vec<Vec<u8>> = (first..first + count)
            .map(|index| {
                let mut record = index.to_be_bytes().to_vec();
                record.resize(RECORD_LEN, 0xa5);
                record
            })
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
}

fn appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("sqlite_append_300B_full_sync");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    for batch in [1u64, 10, 100] {
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, &batch| {
            // /tmp is on the instance's disk here, not tmpfs: fsync reaches the device.
            let dir = tempfile::tempdir().unwrap();
            let mut writer = Writer::new(dir.path());
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let (first, records, checkpoint) = writer.prepare(batch);
                    let start = Instant::now();
                    writer.store.append(first, &records, &checkpoint).unwrap();
                    total += start.elapsed();
                }
                total
            });
        });
    }
    group.finish();
}

criterion_group!(benches, appends);
criterion_main!(benches);
