//! The bodies of the fuzz targets, one module per untrusted format, shared by two runners:
//! `cargo fuzz` (the `fuzz/` crate, coverage-guided, nightly) and the smoke run in
//! `tests/smoke.rs` (the committed seeds and their mutations, stable, in CI).
//!
//! Each `run` must never panic on any input except through an assertion of this crate: an
//! assertion is an oracle (a round trip, a signature that must verify), and its failure is a
//! finding, which is why the crate allows `expect` on values the oracle says must exist.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

pub mod attestation;
pub mod audit_record;
pub mod checkpoint;
pub mod cms;
pub mod eif;
pub mod frame;
pub mod policy_state;
pub mod sealed_key;
pub mod signed_request;

/// A target: its name (also its corpus folder, `fuzz/corpus/<name>`) and its body.
pub struct Target {
    /// The name `cargo fuzz run` takes.
    pub name: &'static str,
    /// Runs one input.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "attestation",
        run: attestation::run,
    },
    Target {
        name: "audit_record",
        run: audit_record::run,
    },
    Target {
        name: "checkpoint",
        run: checkpoint::run,
    },
    Target {
        name: "cms",
        run: cms::run,
    },
    Target {
        name: "eif",
        run: eif::run,
    },
    Target {
        name: "frame",
        run: frame::run,
    },
    Target {
        name: "policy_state",
        run: policy_state::run,
    },
    Target {
        name: "sealed_key",
        run: sealed_key::run,
    },
    Target {
        name: "signed_request",
        run: signed_request::run,
    },
];
