//! `govctl genesis init` through the real binary: it checks the document as the enclave
//! will, so a key anyone could sign with never reaches a genesis.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "helper functions of tests fail loudly, like the tests themselves"
)]

use std::process::Command;

use base64::Engine as _;
use serde_json::json;

#[test]
fn genesis_init_refuses_an_ed25519_key_of_small_order_naming_the_principal() {
    let dir = tempfile::tempdir().unwrap();
    // The identity point: every signature whose R is [S]B verifies under it.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let public = dir.path().join("mallory.pub.json");
    let entry = json!({"principal": "mallory", "keyId": "k1", "algorithm": "Ed25519",
        "publicKey": base64::engine::general_purpose::STANDARD.encode(identity)});
    std::fs::write(&public, entry.to_string()).unwrap();
    let out = dir.path().join("genesis.json");
    let output = Command::new(env!("CARGO_BIN_EXE_govctl"))
        .args(["genesis", "init", "--name", "test", "--admin"])
        .arg(&public)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("govctl runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "accepted: {stderr}");
    assert!(
        stderr.contains("mallory") && stderr.contains("small order"),
        "{stderr}"
    );
    assert!(!out.exists(), "a refused genesis was written");
}
