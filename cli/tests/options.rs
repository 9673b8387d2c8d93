//! Options that every signed subcommand shares are accepted after the subcommand too, as
//! docs/api.md's examples write them (`govctl read list ... --print-signed`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test")]

use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

fn govctl(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_govctl"))
        .args(args)
        .current_dir(dir)
        // Nothing listens here: --print-signed must not send anything.
        .env("GOVCTL_ENDPOINT", "http://127.0.0.1:9")
        .env("GOVCTL_IDENTITY", dir.join("admin.identity.json"))
        .env_remove("GOVCTL_TRUST")
        .output()
        .expect("running govctl")
}

#[test]
fn print_signed_and_trust_are_accepted_after_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let keygen = govctl(
        dir.path(),
        &[
            "keygen",
            "--principal",
            "admin",
            "--out",
            "admin.identity.json",
            "--public-out",
            "admin.pub",
        ],
    );
    assert!(keygen.status.success(), "{keygen:?}");
    for args in [
        &["read", "list", "/communities/c1", "--print-signed"][..],
        &[
            "enclave",
            "create",
            "/communities/c1/virtualEnclaves/e1",
            "--address-space",
            "10.1.0.0/16",
            "--print-signed",
        ],
        &[
            "approvals",
            "list",
            "--print-signed",
            "--trust",
            "unused.json",
        ],
    ] {
        let output = govctl(dir.path(), args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let envelope = STANDARD
            .decode(String::from_utf8(output.stdout).unwrap().trim())
            .expect("a base64 signed request");
        assert!(envelope.len() > 64, "{args:?}");
    }
}
