//! `govctl attestation verify` on the real AWS documents of shared/attestation/testdata.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions"
)]

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

const PRODUCTION: &str = "aws-nitro-attestation-2022-10-13.cbor";
const DEBUG_B64: &str = "aws-nitro-attestation-debug-2023-09-18.b64";
const DEBUG_CBOR: &str = "aws-nitro-attestation-debug-2022-10-12.cbor";
const PCR0: &str = "f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b";
const PCR8: &str = "8790eb3cce6c83d07e84b126dc61ca923333d6f66615c4a79157de48c5ab2418bdc60746ea7b7afbff03a1c6210201cb";

fn testdata(name: &str) -> String {
    format!(
        "{}/../shared/attestation/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn govctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_govctl"))
        .args(args)
        .output()
        .expect("run govctl")
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn production_document_verifies_at_its_own_time_with_pinned_pcrs() {
    let pcr0 = format!("0={PCR0}");
    let pcr8 = format!("8={PCR8}");
    let file = testdata(PRODUCTION);
    let output = govctl(&[
        "attestation",
        "verify",
        &file,
        "--at-document-time",
        "--pcr",
        &pcr0,
        "--pcr",
        &pcr8,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = json(&output);
    assert_eq!(summary["verified"], true);
    assert_eq!(
        summary["module_id"],
        "i-020b6af9246d90e92-enc0183d09086c24190"
    );
    assert_eq!(summary["timestamp"], "2022-10-13T08:58:02.136Z");
    assert_eq!(summary["pcrs"]["0"], PCR0);
    assert_eq!(summary["public_key"], serde_json::Value::Null);
    assert_eq!(summary["nonce"].as_str().map(str::len), Some(512));
    assert_eq!(summary["debug_mode"], false);
    assert_eq!(summary["root"]["kind"], "aws-nitro-enclaves-root-g1");
    assert_eq!(summary["pinned_pcrs"], serde_json::json!([0, 8]));
    let checks: Vec<&str> = summary["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        [
            "parse",
            "certificate_chain",
            "certificate_validity",
            "certificate_constraints",
            "cose_signature",
            "debug_mode",
            "pcrs"
        ]
    );
}

#[test]
fn a_changed_pcr_is_refused_with_exit_code_1_naming_the_check() {
    let wrong = format!("0={}", "00".repeat(48));
    let file = testdata(PRODUCTION);
    let output = govctl(&[
        "attestation",
        "verify",
        &file,
        "--at-document-time",
        "--pcr",
        &wrong,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let message = stderr(&output);
    assert!(message.contains("check pcrs failed"), "{message}");
    assert!(message.contains("PCR0 mismatch"), "{message}");
}

#[test]
fn today_every_document_is_refused_because_its_certificates_expired() {
    for name in [PRODUCTION, DEBUG_CBOR, DEBUG_B64] {
        let file = testdata(name);
        let output = govctl(&["attestation", "verify", &file, "--allow-debug"]);
        assert_eq!(output.status.code(), Some(1), "{name}");
        let message = stderr(&output);
        assert!(
            message.contains("check certificate_validity failed")
                && message.contains("leaf certificate expired"),
            "{name}: {message}"
        );
    }
}

#[test]
fn an_explicit_time_inside_the_validity_is_accepted() {
    let file = testdata(PRODUCTION);
    let output = govctl(&[
        "attestation",
        "verify",
        &file,
        "--at",
        "2022-10-13T10:00:00Z",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(json(&output)["validated_at"], "2022-10-13T10:00:00Z");
}

#[test]
fn base64_debug_document_from_stdin_needs_allow_debug() {
    let input = std::fs::read(testdata(DEBUG_B64)).unwrap();
    let run = |extra: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_govctl"))
            .args(["attestation", "verify", "-", "--at-document-time"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&input).unwrap();
        child.wait_with_output().unwrap()
    };

    let refused = run(&[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("check debug_mode failed"));

    let accepted = run(&["--allow-debug"]);
    assert!(accepted.status.success(), "{}", stderr(&accepted));
    let summary = json(&accepted);
    assert_eq!(summary["debug_mode"], true);
    assert_eq!(summary["user_data"].as_str().map(str::len), Some(182));
}

#[test]
fn expected_fields_and_max_age_are_checked() {
    let file = testdata(DEBUG_CBOR);
    let base = [
        "attestation",
        "verify",
        file.as_str(),
        "--at-document-time",
        "--allow-debug",
    ];

    let output = govctl(&[&base[..], &["--nonce", "00"]].concat());
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("check nonce failed"));

    let output = govctl(&[&base[..], &["--user-data", "00"]].concat());
    assert!(stderr(&output).contains("check user_data failed"));

    let output = govctl(&[&base[..], &["--public-key", "00"]].concat());
    assert!(stderr(&output).contains("check public_key failed"));

    let output = govctl(&[&base[..], &["--max-age", "1h"]].concat());
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("check max_age failed"));
}

#[test]
fn a_mock_root_refuses_aws_documents() {
    let ca = ea_attestation::MockCa::generate(1_665_651_482_136).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mock-root.pem");
    std::fs::write(&root, ca.root_pem().unwrap()).unwrap();
    let file = testdata(PRODUCTION);
    let output = govctl(&[
        "attestation",
        "verify",
        &file,
        "--at-document-time",
        "--root",
        root.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("check certificate_chain failed: untrusted root"),
        "{message}"
    );
}

#[test]
fn bad_arguments_are_errors_not_refusals() {
    let file = testdata(PRODUCTION);
    let output = govctl(&["attestation", "verify", &file, "--pcr", "40=00"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("PCR index must be below 32"));
    let output = govctl(&["attestation", "verify", "/nonexistent/doc.cbor"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("/nonexistent/doc.cbor"));
}

/// A document as QEMU's nitro-enclave machine writes it: unsigned.
fn qemu_document(dir: &std::path::Path) -> String {
    let pcrs = (0..16u16).map(|i| (i, vec![i as u8 + 1; 48])).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let document = ea_attestation::testing::QemuDocument::new(pcrs, now)
        .nonce(&[7; 8])
        .encode();
    let path = dir.join("qemu.cbor");
    std::fs::write(&path, document).unwrap();
    path.display().to_string()
}

#[test]
fn an_unsigned_qemu_document_is_refused_by_name_without_the_insecure_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = qemu_document(dir.path());

    // The AWS root (the default) and an explicit root alike.
    let ca = ea_attestation::MockCa::generate(1_665_651_482_136).unwrap();
    let root = dir.path().join("mock-root.pem");
    std::fs::write(&root, ca.root_pem().unwrap()).unwrap();
    for extra in [vec![], vec!["--root", root.to_str().unwrap()]] {
        let mut args = vec!["attestation", "verify", &file];
        args.extend(extra);
        let output = govctl(&args);
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        let text = stderr(&output);
        assert!(
            text.contains("unsigned document")
                && text.contains("QEMU's nitro-enclave NSM")
                && text.contains("--insecure-qemu-attestation"),
            "{text}"
        );
        assert!(!text.contains("WARNING"), "{text}");
    }
}

#[test]
fn the_insecure_qemu_flag_accepts_it_warns_and_still_checks_the_pins() {
    let dir = tempfile::tempdir().unwrap();
    let file = qemu_document(dir.path());
    let pcr0 = format!("0={}", hex::encode([1u8; 48]));
    let output = govctl(&[
        "attestation",
        "verify",
        &file,
        "--insecure-qemu-attestation",
        "--pcr",
        &pcr0,
        "--nonce",
        "0707070707070707",
        "--max-age",
        "5m",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("govctl: WARNING: insecure QEMU mode"),
        "{}",
        stderr(&output)
    );
    let summary = json(&output);
    assert_eq!(summary["root"]["kind"], "insecure-qemu-unsigned");
    assert_eq!(summary["chain_len"], 0);
    assert_eq!(
        summary["checks"],
        serde_json::json!([
            "parse",
            "insecure_qemu_unsigned_shape",
            "debug_mode",
            "pcrs",
            "nonce",
            "max_age"
        ])
    );

    // A PCR pin still binds.
    let wrong = format!("0={}", hex::encode([2u8; 48]));
    let output = govctl(&[
        "attestation",
        "verify",
        &file,
        "--insecure-qemu-attestation",
        "--pcr",
        &wrong,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("PCR0 mismatch"),
        "{}",
        stderr(&output)
    );

    // The mode accepts nothing signed.
    let output = govctl(&[
        "attestation",
        "verify",
        &testdata(PRODUCTION),
        "--insecure-qemu-attestation",
        "--at-document-time",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("signed (ES384) document"),
        "{}",
        stderr(&output)
    );

    // It is exclusive with --root: a usage error.
    let output = govctl(&[
        "attestation",
        "verify",
        &file,
        "--insecure-qemu-attestation",
        "--root",
        "root.pem",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn the_insecure_qemu_flag_excludes_a_root_everywhere_it_exists() {
    for args in [
        &[
            "attestation",
            "fetch",
            "--insecure-qemu-attestation",
            "--root",
            "r.pem",
        ][..],
        &[
            "trust",
            "init",
            "--insecure-qemu-attestation",
            "--root",
            "r.pem",
        ],
        &[
            "genesis",
            "submit",
            "g.json",
            "--trust-out",
            "t.json",
            "--insecure-qemu-attestation",
            "--root",
            "r.pem",
        ],
    ] {
        let output = govctl(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains("cannot be used with"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    // Without --trust-out, genesis submit has nothing to pin: the flag is refused.
    let output = govctl(&["genesis", "submit", "g.json", "--insecure-qemu-attestation"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}
