//! Attestation through the whole stack: the mock enclave's documents, fetched with a nonce
//! through the proxy, verify against the mock root and the pinned PCRs, and nothing else.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "end-to-end test: a failed step should fail the test loudly"
)]

use std::process::Command;

use ea_tests::{binaries, get_json, LocalStack};

const PCR0: &str = "aa";
const PCR1: &str = "bb";
const PCR2: &str = "cc";

fn measurements(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("pcrs.json");
    let json = serde_json::json!({
        "HashAlgorithm": "Sha384 { ... }",
        "PCR0": PCR0.repeat(48),
        "PCR1": PCR1.repeat(48),
        "PCR2": PCR2.repeat(48),
    });
    std::fs::write(&path, json.to_string()).unwrap();
    path
}

fn govctl(args: &[&str]) -> std::process::Output {
    Command::new(binaries().path("govctl"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_fetched_document_verifies_against_the_mock_root_and_pinned_pcrs() {
    let scratch = tempfile::tempdir().unwrap();
    let pcrs = measurements(scratch.path());
    let pcrs_arg = pcrs.display().to_string();
    let stack = LocalStack::start(&["--mock-measurements", &pcrs_arg], &[]);
    let root = stack.mock_root().display().to_string();
    let saved = scratch.path().join("doc.cbor");

    let output = govctl(&[
        "attestation",
        "fetch",
        "--endpoint",
        &stack.url,
        "--root",
        &root,
        "--pcrs",
        &pcrs_arg,
        "--out",
        saved.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        stack.logs()
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["verified"], true);
    assert_eq!(summary["pcrs"]["0"], PCR0.repeat(48));
    assert_eq!(
        summary["nonce"].as_str().unwrap().len(),
        64,
        "a 32-byte random nonce"
    );
    assert_eq!(summary["debug_mode"], false);
    for check in ["signature", "nonce", "max_age"] {
        assert!(
            summary["checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c.as_str().unwrap().contains(check)),
            "check {check} missing from {summary}"
        );
    }

    // The saved document verifies offline, and is refused with a wrong PCR.
    let saved = saved.to_str().unwrap();
    assert!(govctl(&["attestation", "verify", saved, "--root", &root])
        .status
        .success());
    let wrong = format!("1={}", "00".repeat(48));
    let output = govctl(&[
        "attestation",
        "verify",
        saved,
        "--root",
        &root,
        "--pcr",
        &wrong,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("PCR"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn mock_documents_are_refused_under_the_aws_root_and_with_wrong_pcrs() {
    let stack = LocalStack::start(&[], &[]);
    // No --root: the AWS Nitro Enclaves root is pinned, and the mock chain does not reach it.
    let output = govctl(&["attestation", "fetch", "--endpoint", &stack.url]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("root"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let root = stack.mock_root().display().to_string();
    let wrong = format!("0={}", "11".repeat(48));
    let output = govctl(&[
        "attestation",
        "fetch",
        "--endpoint",
        &stack.url,
        "--root",
        &root,
        "--pcr",
        &wrong,
    ]);
    assert_eq!(output.status.code(), Some(1));
}

#[tokio::test]
async fn bad_nonces_are_refused_with_400() {
    let stack = LocalStack::start(&[], &[]);
    let client = reqwest::Client::new();
    let (status, body) = get_json(&client, &format!("{}/v1/attestation?nonce=zz", stack.url)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    let long = "ab".repeat(513);
    let (status, body) = get_json(
        &client,
        &format!("{}/v1/attestation?nonce={long}", stack.url),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_input");
    let (status, body) = get_json(&client, &format!("{}/v1/attestation", stack.url)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["document"].as_str().unwrap().len() > 1000);
}
