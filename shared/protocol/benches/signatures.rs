//! Request signatures on this machine: signing (clients), ring's verification (the rule),
//! verification through a key's precomputed table (the enclave's hot path), and building a
//! table. `cargo bench -p ea-protocol --bench signatures`
#![allow(
    clippy::expect_used,
    missing_docs,
    reason = "benchmark harness: inputs are built here and a failure should stop the run"
)]
use criterion::{criterion_group, criterion_main, Criterion};
use ea_protocol::key_tables::KeyTables;
use ea_protocol::signed::{RequestSigner, SignatureAlgorithm};

fn signatures(c: &mut Criterion) {
    let (signer, _) = RequestSigner::generate(SignatureAlgorithm::Ed25519).expect("a key");
    // About the size of a signed change request.
    let body = vec![0x5a; 300];
    let request = signer.sign_body_bytes(body.clone()).expect("signed");
    let key = signer.public_key().clone();

    c.bench_function("ed25519 sign (dalek, clients)", |b| {
        b.iter(|| signer.sign_body_bytes(body.clone()))
    });
    c.bench_function("ed25519 verify (ring, the rule)", |b| {
        b.iter(|| assert!(key.verify(&body, &request.sig)))
    });
    let tables = KeyTables::new(1, 1);
    assert!(tables.verify(&key, &body, &request.sig));
    c.bench_function("ed25519 verify (key table)", |b| {
        b.iter(|| assert!(tables.verify(&key, &body, &request.sig)))
    });
    c.bench_function("ed25519 key table build", |b| {
        b.iter(|| {
            let fresh = KeyTables::new(1, 1);
            assert!(fresh.verify(&key, &body, &request.sig));
        })
    });
}

criterion_group!(benches, signatures);
criterion_main!(benches);
