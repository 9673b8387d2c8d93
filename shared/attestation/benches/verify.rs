//! Attestation throughput: verification of a mock document and of the production AWS
//! document (at its own time), plus parsing alone and mock document production.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup; a failure here is a broken benchmark"
)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ea_attestation::{
    parse_unverified, verify, Measurements, MockNsm, MockNsmConfig, Nsm, TrustRoot, ValidationTime,
    VerifyOptions,
};

fn production_document() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/aws-nitro-attestation-2022-10-13.cbor"
    ))
    .unwrap()
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("attestation");
    group.throughput(Throughput::Elements(1));

    let aws_doc = production_document();
    let aws = VerifyOptions::new(TrustRoot::aws_nitro_root_g1().unwrap())
        .at(ValidationTime::DocumentTime)
        .pcrs(parse_unverified(&aws_doc).unwrap().pcrs);
    group.bench_function("verify_aws_production_at_document_time", |b| {
        b.iter(|| verify(black_box(&aws_doc), &aws).unwrap())
    });

    let nsm = MockNsm::new(MockNsmConfig::new(Measurements::of_executable(b"bench"))).unwrap();
    let mock_doc = nsm
        .attestation(Some(&[7; 32]), Some(&[9; 32]), None)
        .unwrap();
    let mock = VerifyOptions::new(nsm.trust_root().unwrap())
        .pcrs(nsm.pcrs())
        .user_data(vec![7; 32])
        .nonce(vec![9; 32]);
    group.bench_function("verify_mock", |b| {
        b.iter(|| verify(black_box(&mock_doc), &mock).unwrap())
    });

    group.bench_function("parse_unverified_aws_production", |b| {
        b.iter(|| parse_unverified(black_box(&aws_doc)).unwrap())
    });

    group.bench_function("mock_attestation", |b| {
        b.iter(|| {
            nsm.attestation(Some(black_box(&[7; 32])), None, None)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(attestation, benches);
criterion_main!(attestation);
