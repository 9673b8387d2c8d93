//! `govctl kms-policy` through the real binary: the policy it prints is read back by the
//! same model the local KMS evaluates, and decides as the key release needs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "integration test"
)]

use std::collections::BTreeMap;
use std::process::{Command, Output};

use ea_kms::policy::{attestation_context, Decision, KeyPolicy, RequestContext};

const ADMIN: &str = "arn:aws:iam::111122223333:role/KeyAdmin";
const ROLE: &str = "arn:aws:iam::111122223333:role/EnclaveInstance";
const SESSION: &str = "arn:aws:sts::111122223333:assumed-role/EnclaveInstance/i-0abc";
const KEY: &str = "arn:aws:kms:eu-west-1:111122223333:key/k";

fn govctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_govctl"))
        .args(args)
        .output()
        .expect("run govctl")
}

/// A measurements document as `govctl eif pcrs` writes it.
fn pcrs_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("pcrs.json");
    let json = serde_json::json!({
        "HashAlgorithm": "Sha384 { ... }",
        "PCR0": "a0".repeat(48),
        "PCR1": "a1".repeat(48),
        "PCR2": "a2".repeat(48),
        "PCR8": "a8".repeat(48),
    });
    std::fs::write(&path, json.to_string()).unwrap();
    path
}

fn pcrs(values: &[(u16, u8)]) -> BTreeMap<u16, Vec<u8>> {
    values.iter().map(|&(i, b)| (i, vec![b; 48])).collect()
}

#[test]
fn prints_a_policy_that_releases_only_to_the_measured_image() {
    let dir = tempfile::tempdir().unwrap();
    let file = pcrs_file(dir.path());
    let out = dir.path().join("policy.json");
    let output = govctl(&[
        "kms-policy",
        "--pcrs",
        file.to_str().unwrap(),
        "--key-admin",
        ADMIN,
        "--enclave-role",
        ROLE,
        "--pcr-indices",
        "0,1,2,8",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), printed);
    let policy = KeyPolicy::from_json(&printed).unwrap();
    let json: serde_json::Value = serde_json::from_str(&printed).unwrap();
    let conditions = &json["Statement"][1]["Condition"]["StringEqualsIgnoreCase"];
    assert_eq!(
        conditions["kms:RecipientAttestation:ImageSha384"],
        "a0".repeat(48)
    );
    assert_eq!(conditions["kms:RecipientAttestation:PCR8"], "a8".repeat(48));

    let request = |who: &str, action: &str| RequestContext::new(who, action, KEY);
    let image = pcrs(&[(0, 0xa0), (1, 0xa1), (2, 0xa2), (8, 0xa8), (3, 0x33)]);
    let decide = |r: RequestContext| policy.evaluate(&r);
    assert!(
        decide(request(SESSION, "kms:Decrypt").with_values(attestation_context(&image)))
            .is_allowed()
    );
    assert!(decide(
        request(SESSION, "kms:GenerateDataKey").with_values(attestation_context(&image))
    )
    .is_allowed());
    let mut other = image.clone();
    other.insert(8, vec![0xb8; 48]);
    assert!(matches!(
        decide(request(SESSION, "kms:Decrypt").with_values(attestation_context(&other))),
        Decision::ImplicitDeny { .. }
    ));
    assert!(matches!(
        decide(request(SESSION, "kms:Decrypt")),
        Decision::Deny { .. }
    ));
    assert!(decide(request(ADMIN, "kms:PutKeyPolicy")).is_allowed());
    assert!(
        !decide(request(ADMIN, "kms:Decrypt").with_values(attestation_context(&image)))
            .is_allowed()
    );
}

#[test]
fn refuses_what_would_make_a_weak_policy() {
    let dir = tempfile::tempdir().unwrap();
    let file = pcrs_file(dir.path());
    let file = file.to_str().unwrap();
    for (admin, role, extra, expected) in [
        (ADMIN, ROLE, vec!["--pcr-indices", "1,2"], "must include 0"),
        (ADMIN, ROLE, vec!["--pcr-indices", "0,4"], "has no PCR4"),
        (
            ROLE,
            ROLE,
            vec![],
            "--key-admin and --enclave-role are the same principal",
        ),
        (
            ADMIN,
            "EnclaveInstance",
            vec![],
            "is not an IAM principal ARN",
        ),
    ] {
        let mut full = vec![
            "kms-policy",
            "--pcrs",
            file,
            "--key-admin",
            admin,
            "--enclave-role",
            role,
        ];
        full.extend(extra);
        let output = govctl(&full);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{full:?}: {stderr}");
    }

    let debug = dir.path().join("debug.json");
    std::fs::write(
        &debug,
        serde_json::json!({"PCR0": "00".repeat(48), "PCR1": "00".repeat(48), "PCR2": "00".repeat(48)})
            .to_string(),
    )
    .unwrap();
    let output = govctl(&[
        "kms-policy",
        "--pcrs",
        debug.to_str().unwrap(),
        "--key-admin",
        ADMIN,
        "--enclave-role",
        ROLE,
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("debug-mode measurements"));
}
