//! The log key through KMS with the real enclave-app: `local-kms` serves the key policy that
//! `govctl kms-policy` wrote from the image's PCRs; `parent-proxy` relays the enclave's TLS
//! to it and hands the enclave (static-profile) credentials; the enclave seals its log key at
//! genesis, keeps the blob with the parent, and after a restart unseals the same key (the log
//! continues under it and verifies). An image with another PCR0 gets nothing from KMS and
//! does not start.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "end-to-end test: a failed step should fail the test loudly"
)]

use std::process::Command;
use std::time::Duration;

use ea_tests::kms::LocalKms;
use ea_tests::{binaries, measurements_json, Deployment, LocalStack};
use serde_json::json;

fn describe(d: &Deployment) -> serde_json::Value {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(ea_tests::get_json(
        &reqwest::Client::new(),
        &format!("{}/v1/enclave", d.stack.url),
    ))
    .1
}

#[test]
fn the_same_image_gets_its_log_key_back_and_another_image_does_not_start() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _kms = LocalKms::prepare(dir.path());
    let pcrs = dir.path().join("pcrs.json");
    let enclave: Vec<String> = _kms.enclave_args();
    let proxy: Vec<String> = _kms.proxy_args();
    let stack_dir = dir.path().to_owned();
    let stack = LocalStack::start_in(
        dir,
        &enclave.iter().map(String::as_str).collect::<Vec<_>>(),
        &proxy.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let policy = json!({
        "communities": [{"id": "/communities/c1", "addressSpace": "10.0.0.0/8"}],
        "roleAssignments": [{"id": "ra-admin", "principalId": "admin",
                             "roleDefinitionId": "Owner", "scope": "/"}]
    });
    // First start: the genesis seals the new log key through KMS.
    let mut d = Deployment::on(stack, scratch, &["admin"], policy, json!({}));
    let first = describe(&d);
    let log_key = first["log_key"].as_str().unwrap().to_owned();
    assert!(
        std::fs::read_to_string(stack_dir.join("local-kms-1.log"))
            .unwrap()
            .contains("GenerateDataKey"),
        "the key came from KMS"
    );
    d.govctl(
        "admin",
        &[
            "enclave",
            "create",
            "/communities/c1/virtualEnclaves/e1",
            "--address-space",
            "10.1.0.0/16",
        ],
    )
    .expect(0);

    // Restart: the same image unseals the same log key; the log goes on under it.
    d.stack.kill_enclave();
    d.stack.start_enclave();
    d.wait_serving(Duration::from_secs(60));
    let second = describe(&d);
    assert_eq!(second["log_key"], log_key, "the same key, unsealed");
    assert_ne!(
        second["log_key_index"], first["log_key_index"],
        "a new enclave_start"
    );
    d.govctl(
        "admin",
        &[
            "enclave",
            "create",
            "/communities/c1/virtualEnclaves/e2",
            "--address-space",
            "10.2.0.0/16",
        ],
    )
    .expect(0);
    let audit = stack_dir.join("audit");
    let output = Command::new(binaries().path("govctl"))
        .args(["audit", "fetch", "--endpoint", &d.stack.url, "--out"])
        .arg(&audit)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let output = Command::new(binaries().path("govctl"))
        .args(["audit", "verify"])
        .arg(&audit)
        .arg("--root")
        .arg(d.stack.mock_root())
        .arg("--pcrs")
        .arg(&pcrs)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");

    // Another image (PCR0 changed) with a new, empty log: KMS releases nothing, the genesis
    // cannot be written, the enclave does not serve, and says why.
    d.stack.kill_enclave();
    let other = stack_dir.join("other-pcrs.json");
    std::fs::write(&other, measurements_json("ee").to_string()).unwrap();
    std::fs::remove_file(stack_dir.join("log.sqlite")).ok();
    d.stack.kill_proxy();
    for suffix in ["log.sqlite", "log.sqlite-wal", "log.sqlite-shm"] {
        std::fs::remove_file(stack_dir.join(suffix)).ok();
    }
    d.stack.restart_proxy();
    d.stack
        .start_enclave_with(&["--mock-measurements", other.to_str().unwrap()]);
    let genesis = stack_dir.join("genesis.json");
    let mut refused = None;
    let mut last = String::new();
    for _ in 0..100 {
        let output = Command::new(binaries().path("govctl"))
            .args(["genesis", "submit"])
            .arg(&genesis)
            .args(["--endpoint", &d.stack.url])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if stderr.contains("enclave_starting") || stderr.contains("enclave_unavailable") {
            last = stderr;
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        assert!(
            !output.status.success(),
            "another image must not get the key"
        );
        refused = Some(stderr);
        break;
    }
    let refused = refused.unwrap_or_else(|| {
        panic!(
            "the enclave did not answer the genesis: {last}\n{}",
            d.stack.logs()
        )
    });
    assert!(refused.contains("AccessDeniedException"), "{refused}");
    let health = Command::new(binaries().path("govctl"))
        .args(["health", "--endpoint", &d.stack.url])
        .output()
        .unwrap();
    assert!(!health.status.success(), "it does not serve");
}
