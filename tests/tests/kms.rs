//! Key release through the real binaries, the way an enclave does it in production, with
//! unix sockets for vsock: `govctl kms-policy` writes the key policy from the image's PCRs;
//! `local-kms` serves it; `parent-proxy` relays the enclave's TLS to it and hands out the
//! (static-profile) credentials; the enclave side (`ea_kms::LogKeyRelease` with a mock NSM,
//! in this process) seals the log key, stores the blob with the parent, and after a restart
//! of the KMS unseals it again. Another image is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "end-to-end test: a failed step should fail the test loudly"
)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ea_attestation::{Measurements, MockCaSource, MockNsm, MockNsmConfig};
use ea_kms::credentials::{ParentCredentials, StoreCredentialsSource};
use ea_kms::{KmsConfig, KmsError, LogKeyRelease, SealedLogKey};
use ea_protocol::rpc::{Connection, ConnectionLimits};
use ea_protocol::{Address, StoreRequest, StoreResponse};
use ea_tests::{binaries, with_store_args, Process};
use nix::sys::signal::Signal;

const KEY_ID: &str = "5f0c6a8e-2d1b-4c3a-9e7f-0a1b2c3d4e5f";
const GENESIS: [u8; 32] = [0x42; 32];
/// What the sealed key is bound to: this log, and one image (its own genesis image).
const BINDING: ea_kms::LogKeyBinding = ea_kms::LogKeyBinding {
    genesis_hash: GENESIS,
    genesis_image: [0xa0; 32],
    image: [0xa0; 32],
};

fn mock_nsm(ca_dir: &Path, image: &[u8]) -> Arc<MockNsm> {
    Arc::new(
        MockNsm::new(
            MockNsmConfig::new(Measurements::of_executable(image))
                .ca(MockCaSource::Directory(ca_dir.to_owned())),
        )
        .unwrap(),
    )
}

fn start_kms(dir: &Path, run: u32) -> (Process, String) {
    let args: Vec<String> = [
        "--listen",
        "tcp:127.0.0.1:0",
        "--state",
        &dir.join("kms-state.json").display().to_string(),
        "--credentials",
        &dir.join("kms-credentials.json").display().to_string(),
        "--attestation-root",
        &dir.join("mock-ca/mock-root.pem").display().to_string(),
        "--ca-out",
        &dir.join("kms-ca.pem").display().to_string(),
        "--key",
        &format!("{KEY_ID}={}", dir.join("policy.json").display()),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut kms = Process::spawn(
        &binaries().path("local-kms"),
        &args,
        &dir.join(format!("local-kms-{run}.log")),
    );
    let url = kms.wait_for_stdout_line("listening on https://");
    (kms, url)
}

/// parent-proxy with the KMS relay to `kms_endpoint` and the static credentials profile.
fn start_proxy(dir: &Path, kms_endpoint: &str, run: u32) -> Process {
    let args = with_store_args(
        dir,
        &[
            "--listen",
            "127.0.0.1:0",
            "--insecure-http",
            "--enclave",
            &format!("unix:{}", dir.join("enclave.sock").display()),
            "--kms-relay-listen",
            &format!("unix:{}", dir.join("kms-relay.sock").display()),
            "--kms-relay-endpoint",
            kms_endpoint,
            "--kms-relay-allow",
            kms_endpoint,
            "--aws-credentials",
            &format!("static:{}", dir.join("aws-credentials").display()),
        ]
        .map(str::to_owned),
    );
    // A proxy that was killed leaves its socket files behind: waiting for the paths below
    // would then pass before the new proxy has bound them.
    for socket in ["kms-relay.sock", "store.sock"] {
        let _ = std::fs::remove_file(dir.join(socket));
    }
    let mut proxy = Process::spawn(
        &binaries().path("parent-proxy"),
        &args,
        &dir.join(format!("proxy-{run}.log")),
    );
    // The proxy binds both sockets before it prints this line.
    proxy.wait_for_stdout_line("listening on ");
    proxy
}

fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log") {
            out.push_str(&format!("==> {} <==\n", path.display()));
            out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
    out
}

#[tokio::test]
async fn the_log_key_is_released_through_the_parent_relay_and_survives_a_kms_restart() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let enclave = mock_nsm(&dir.join("mock-ca"), b"enclave image v1");

    // The image's PCRs, as `govctl eif pcrs` would print them, and the policy from them.
    let pcrs = enclave.pcrs();
    let measurements = serde_json::json!({
        "HashAlgorithm": "Sha384 { ... }",
        "PCR0": hex::encode(&pcrs[&0]),
        "PCR1": hex::encode(&pcrs[&1]),
        "PCR2": hex::encode(&pcrs[&2]),
    });
    std::fs::write(dir.join("pcrs.json"), measurements.to_string()).unwrap();
    let output = std::process::Command::new(binaries().path("govctl"))
        .args([
            "kms-policy",
            "--pcrs",
            &dir.join("pcrs.json").display().to_string(),
            "--key-admin",
            "arn:aws:iam::111122223333:role/KeyAdmin",
            "--enclave-role",
            "arn:aws:iam::111122223333:role/EnclaveInstance",
            "--out",
            &dir.join("policy.json").display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The same credentials on both sides: the parent's profile, the KMS's principal table.
    std::fs::write(
        dir.join("aws-credentials"),
        "[default]\naws_access_key_id = AKIALOCALENCLAVE\naws_secret_access_key = local secret\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("kms-credentials.json"),
        serde_json::json!({"credentials": [{
            "access_key_id": "AKIALOCALENCLAVE",
            "secret_access_key": "local secret",
            "principal_arn": "arn:aws:sts::111122223333:assumed-role/EnclaveInstance/i-local"
        }]})
        .to_string(),
    )
    .unwrap();

    let (kms, kms_url) = start_kms(dir, 1);
    let proxy = start_proxy(dir, kms_url.trim_start_matches("https://"), 1);
    let relay = dir.join("kms-relay.sock");

    let store_address = Address::Unix(dir.join("store.sock"));
    let release_for = |nsm: Arc<MockNsm>| {
        LogKeyRelease::new(
            KmsConfig {
                address: Address::Unix(relay.clone()),
                host: "localhost".into(),
                region: "eu-west-1".into(),
                key_id: KEY_ID.into(),
                extra_ca_pem: Some(std::fs::read(dir.join("kms-ca.pem")).unwrap()),
            },
            nsm,
            ParentCredentials::new(StoreCredentialsSource::new(store_address.clone())),
        )
        .unwrap()
    };

    // First start: seal, and keep the blob with the parent.
    let seed = [0x5e; 32];
    let sealed = release_for(enclave.clone())
        .seal(&seed, &BINDING)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(dir)));
    let store = Connection::<StoreRequest, StoreResponse>::connect(
        &store_address,
        ConnectionLimits::default(),
    )
    .await
    .unwrap();
    let put = StoreRequest::PutSealedKey {
        sealed: serde_bytes::ByteBuf::from(sealed.to_bytes().unwrap()),
    };
    assert_eq!(store.call(&put).await.unwrap(), StoreResponse::Stored);

    // The KMS stops cleanly on SIGTERM and comes back from its state file, with a new CA.
    kms.signal(Signal::SIGTERM);
    assert_eq!(
        kms.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        logs(dir)
    );
    let (_kms, kms_url_2) = start_kms(dir, 2);
    assert_ne!(kms_url_2, kms_url, "a new port, so the relay must be told");
    drop(proxy);
    let _proxy = start_proxy(dir, kms_url_2.trim_start_matches("https://"), 2);

    // Later start: the blob from the parent's store, the data key from KMS.
    let store = Connection::<StoreRequest, StoreResponse>::connect(
        &store_address,
        ConnectionLimits::default(),
    )
    .await
    .unwrap();
    let StoreResponse::SealedKey { sealed: Some(blob) } =
        store.call(&StoreRequest::GetSealedKey).await.unwrap()
    else {
        panic!("no sealed key in the store");
    };
    let sealed = SealedLogKey::from_bytes(&blob).unwrap();
    let opened = release_for(enclave.clone())
        .unseal(&sealed, &BINDING)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(dir)));
    assert_eq!(*opened, seed);

    // Another image, same mock CA: KMS refuses, and says why.
    let other = mock_nsm(&dir.join("mock-ca"), b"enclave image v2");
    let error = release_for(other)
        .unseal(&sealed, &BINDING)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, KmsError::Refused { code, .. } if code == "AccessDeniedException"),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("kms:RecipientAttestation:ImageSha384"),
        "{error}"
    );
}
