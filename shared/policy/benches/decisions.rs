//! Decision throughput and latency on the generated realistic state (`ea_policy::generate`):
//! `cargo bench -p ea-policy --features bench-support`.
//!
//! - `check/realistic-5000`: one decision per iteration, cycling through 20,000 checks (half
//!   derived from real assignments, half random), on one core.
//! - `check/assignments/{500,5000,50000}`: the same at three sizes, with the population
//!   fixed (2,000 users, 100 groups), so each principal also holds 100 times more assignments
//!   at 50,000 than at 500.
//! - `check/scaled-population/{500,5000,50000}`: users and groups grow with the assignments
//!   (2,000 users per 5,000), so what is relevant to one principal stays the same and only the
//!   total grows: the case the index is built for.
//! - `load/realistic-5000`: building the state (every record validated, every event applied).
//! - Before the criterion groups, a plain pass prints p50/p99 per decision, which criterion
//!   does not report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "benchmark set-up fails loudly"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ea_policy::generate::{generate, Generated, Shape};
use ea_policy::PolicyState;

const CHECKS: usize = 20_000;

fn state(assignments: usize) -> Generated {
    generate(&Shape::realistic(assignments), CHECKS).expect("the generator builds a valid state")
}

fn decide(g: &Generated, i: usize) -> bool {
    let r = &g.requests[i % g.requests.len()];
    g.state
        .check(&r.principal, &r.operation, &r.scope, g.at)
        .allowed
}

/// p50 and p99 of single decisions, timed one by one over several passes.
fn percentiles(g: &Generated) -> (Duration, Duration, f64) {
    for i in 0..g.requests.len() {
        black_box(decide(g, i));
    }
    let mut samples = Vec::with_capacity(g.requests.len() * 5);
    let mut allowed = 0usize;
    for _ in 0..5 {
        for i in 0..g.requests.len() {
            let start = Instant::now();
            allowed += usize::from(black_box(decide(g, i)));
            samples.push(start.elapsed());
        }
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99), allowed as f64 / samples.len() as f64)
}

fn report(_: &mut Criterion) {
    for size in [500, 5_000, 50_000] {
        let g = state(size);
        let (p50, p99, allowed) = percentiles(&g);
        println!(
            "latency/{size} assignments: p50 {p50:.2?}, p99 {p99:.2?} ({:.0}% of checks allowed)",
            allowed * 100.0
        );
    }
}

fn realistic(c: &mut Criterion) {
    let g = state(5_000);
    let mut group = c.benchmark_group("check");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("realistic-5000", |b| {
        b.iter(|| {
            i += 1;
            decide(&g, i)
        })
    });
    group.finish();
}

fn scaling(c: &mut Criterion) {
    let mut group = c.benchmark_group("check/assignments");
    group.throughput(Throughput::Elements(1));
    for size in [500, 5_000, 50_000] {
        let g = state(size);
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::from_parameter(size), &g, |b, g| {
            b.iter(|| {
                i += 1;
                decide(g, i)
            })
        });
    }
    group.finish();
}

fn scaled_population(c: &mut Criterion) {
    let mut group = c.benchmark_group("check/scaled-population");
    group.throughput(Throughput::Elements(1));
    for size in [500, 5_000, 50_000] {
        let shape = Shape {
            users: 2_000 * size / 5_000,
            groups: (100 * size / 5_000).max(1),
            ..Shape::realistic(size)
        };
        let g = generate(&shape, CHECKS).expect("the generator builds a valid state");
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::from_parameter(size), &g, |b, g| {
            b.iter(|| {
                i += 1;
                decide(g, i)
            })
        });
    }
    group.finish();
}

fn load(c: &mut Criterion) {
    let doc = state(5_000).state.to_document();
    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    group.bench_function("realistic-5000", |b| {
        b.iter(|| PolicyState::from_document(black_box(&doc)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, report, realistic, scaling, scaled_population, load);
criterion_main!(benches);
