//! A local KMS for a stack: the mock CA made ahead (the KMS must know its root before the
//! enclave first asks), the image's measurements, the key policy `govctl kms-policy` writes
//! from them, credentials on both sides, and `local-kms` on a fixed loopback port so that a
//! restart keeps the relay's upstream valid.

use std::path::{Path, PathBuf};
use std::process::Command;

use ea_attestation::{Measurements, MockCaSource, MockNsm, MockNsmConfig};
use serde_json::json;

use crate::{binaries, measurements_json, Process};

/// The key the enclave's log key is sealed under.
pub const KEY_ID: &str = "5f0c6a8e-2d1b-4c3a-9e7f-0a1b2c3d4e5f";

/// A running (or killed) local KMS.
pub struct LocalKms {
    process: Option<Process>,
    dir: PathBuf,
    /// Its `host:port`.
    pub address: String,
    starts: u32,
}

impl LocalKms {
    /// Prepares `dir` (mock CA, `pcrs.json`, key policy, credentials) and starts the KMS.
    pub fn prepare(dir: &Path) -> LocalKms {
        MockNsm::new(
            MockNsmConfig::new(Measurements::of_executable(b"unused"))
                .ca(MockCaSource::Directory(dir.join("mock-ca"))),
        )
        .expect("the mock CA");
        std::fs::write(dir.join("pcrs.json"), measurements_json("aa").to_string())
            .expect("writing pcrs.json");
        let output = Command::new(binaries().path("govctl"))
            .args(["kms-policy", "--pcrs"])
            .arg(dir.join("pcrs.json"))
            .args([
                "--key-admin",
                "arn:aws:iam::111122223333:role/KeyAdmin",
                "--enclave-role",
                "arn:aws:iam::111122223333:role/EnclaveInstance",
                "--out",
            ])
            .arg(dir.join("policy.json"))
            .output()
            .expect("running govctl kms-policy");
        assert!(output.status.success(), "{output:?}");
        std::fs::write(
            dir.join("aws-credentials"),
            "[default]\naws_access_key_id = AKIALOCALENCLAVE\naws_secret_access_key = local secret\n",
        )
        .expect("writing credentials");
        std::fs::write(
            dir.join("kms-credentials.json"),
            json!({"credentials": [{
                "access_key_id": "AKIALOCALENCLAVE",
                "secret_access_key": "local secret",
                "principal_arn": "arn:aws:sts::111122223333:assumed-role/EnclaveInstance/i-local"
            }]})
            .to_string(),
        )
        .expect("writing KMS credentials");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut kms = LocalKms {
            process: None,
            dir: dir.to_owned(),
            address: format!("127.0.0.1:{port}"),
            starts: 0,
        };
        kms.start();
        kms
    }

    /// Starts it (again), on the same port, from the same state file.
    pub fn start(&mut self) {
        assert!(self.process.is_none(), "the local KMS already runs");
        let dir = &self.dir;
        let args: Vec<String> = vec![
            "--listen".into(),
            format!("tcp:{}", self.address),
            "--state".into(),
            dir.join("kms-state.json").display().to_string(),
            "--credentials".into(),
            dir.join("kms-credentials.json").display().to_string(),
            "--attestation-root".into(),
            dir.join("mock-ca/mock-root.pem").display().to_string(),
            "--ca-out".into(),
            dir.join("kms-ca.pem").display().to_string(),
            "--key".into(),
            format!("{KEY_ID}={}", dir.join("policy.json").display()),
        ];
        self.starts += 1;
        let mut process = Process::spawn(
            &binaries().path("local-kms"),
            &args,
            &dir.join(format!("local-kms-{}.log", self.starts)),
        );
        process.wait_for_stdout_line("listening on https://");
        self.process = Some(process);
    }

    /// SIGKILLs it.
    pub fn kill(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill();
        }
    }

    /// The enclave's flags for this KMS (through the proxy's relay at `dir/kms-relay.sock`),
    /// with the measurements in `dir/pcrs.json`.
    pub fn enclave_args(&self) -> Vec<String> {
        let dir = &self.dir;
        vec![
            "--mock-measurements".into(),
            dir.join("pcrs.json").display().to_string(),
            "--log-key".into(),
            "kms".into(),
            "--kms-key-id".into(),
            KEY_ID.into(),
            "--kms-region".into(),
            "eu-west-1".into(),
            "--kms-address".into(),
            format!("unix:{}", dir.join("kms-relay.sock").display()),
            "--kms-host".into(),
            "localhost".into(),
            "--kms-ca".into(),
            dir.join("kms-ca.pem").display().to_string(),
        ]
    }

    /// The proxy's flags: the relay to this KMS and the static credentials.
    pub fn proxy_args(&self) -> Vec<String> {
        let dir = &self.dir;
        vec![
            "--kms-relay-listen".into(),
            format!("unix:{}", dir.join("kms-relay.sock").display()),
            "--kms-relay-endpoint".into(),
            self.address.clone(),
            "--kms-relay-allow".into(),
            self.address.clone(),
            "--aws-credentials".into(),
            format!("static:{}", dir.join("aws-credentials").display()),
        ]
    }
}
