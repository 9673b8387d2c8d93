//! An enclave restarted on a log whose genesis names witnesses serves only once enough of
//! them freshly cosigned the log's head, through the real binaries: a restart with both
//! witnesses up serves; one witness down (threshold 2) waits in `awaiting_witnesses` until it
//! is back; both down waits; and the store replaced by an earlier copy while the witnesses
//! cosigned a later tree is never served, with nothing appended.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "end-to-end test: a failed step should fail the test loudly"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ea_audit::cosignature::{verify_cosignatures, CosignatureVerifier};
use ea_tests::kms::LocalKms;
use ea_tests::{binaries, get_json, Deployment, LocalStack, Process};
use serde_json::{json, Value};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

/// A `witness` process whose key is made before the genesis names it, started once the log
/// key is known, restartable on its state.
struct Witness {
    number: u32,
    name: String,
    dir: PathBuf,
    port: u16,
    vkey: String,
    log: Option<String>,
    process: Option<Process>,
    starts: u32,
}

impl Witness {
    fn keygen(dir: &Path, number: u32) -> Witness {
        let name = format!("witness-{number}.test.invalid/w");
        let key = dir.join(format!("witness-{number}.key"));
        let output = Command::new(binaries().path("witness"))
            .args(["keygen", "--name", &name, "--out"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        Witness {
            number,
            name,
            dir: dir.to_owned(),
            port: free_port(),
            vkey: String::from_utf8(output.stdout).unwrap().trim().to_owned(),
            log: None,
            process: None,
            starts: 0,
        }
    }

    fn start(&mut self) {
        assert!(self.process.is_none());
        self.starts += 1;
        let n = self.number;
        let args: Vec<String> = vec![
            "--listen".into(),
            format!("127.0.0.1:{}", self.port),
            "--db".into(),
            self.dir
                .join(format!("witness-{n}.db"))
                .display()
                .to_string(),
            "--key-file".into(),
            self.dir
                .join(format!("witness-{n}.key"))
                .display()
                .to_string(),
            "--name".into(),
            self.name.clone(),
            "--log".into(),
            self.log.clone().unwrap(),
        ];
        let mut process = Process::spawn(
            &binaries().path("witness"),
            &args,
            &self.dir.join(format!("witness-{n}-{}.log", self.starts)),
        );
        process.wait_for_stdout_line("listening on ");
        self.process = Some(process);
    }

    fn kill(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill();
        }
    }

    fn key(&self) -> CosignatureVerifier {
        self.vkey.parse().unwrap()
    }
}

/// The enclave's description, read whatever its phase.
async fn describe(d: &Deployment) -> Value {
    let (status, body) = get_json(
        &reqwest::Client::new(),
        &format!("{}/v1/enclave", d.stack.url),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The size of the store's latest checkpoint.
async fn stored_size(d: &Deployment) -> u64 {
    let (status, body) = get_json(
        &reqwest::Client::new(),
        &format!("{}/v1/log/checkpoint", d.stack.url),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["size"].as_u64().unwrap()
}

/// Waits for the phase `awaiting_witnesses` with a detail containing `expected`.
async fn wait_awaiting(d: &Deployment, expected: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = describe(d).await;
        if body["phase"] == "awaiting_witnesses" {
            let detail = body["error"].as_str().unwrap_or_default().to_owned();
            if detail.contains(expected) {
                return detail;
            }
        }
        assert!(
            Instant::now() < deadline,
            "not awaiting witnesses with {expected:?}: {body}\n{}",
            d.stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the parent serves a witnessed checkpoint of `size` cosigned by both.
async fn wait_witnessed(d: &Deployment, size: u64, witnesses: &[&Witness]) {
    let keys: Vec<CosignatureVerifier> = witnesses.iter().map(|w| w.key()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get_json(
            &reqwest::Client::new(),
            &format!("{}/v1/log/witnessed", d.stack.url),
        )
        .await;
        if status == 200
            && body["size"] == size
            && verify_cosignatures(body["checkpoint"].as_str().unwrap(), &keys, keys.len()).is_ok()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of size {size} cosigned: {status} {body}\n{}",
            d.stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for file in ["log.sqlite", "log.sqlite-wal", "log.sqlite-shm"] {
        std::fs::remove_file(to.join(file)).ok();
        if from.join(file).exists() {
            std::fs::copy(from.join(file), to.join(file)).unwrap();
        }
    }
}

fn restart_enclave(d: &mut Deployment) {
    d.stack.kill_enclave();
    d.stack.start_enclave();
}

#[tokio::test]
async fn an_enclave_serves_a_witnessed_log_only_with_fresh_cosignatures_of_its_witnesses() {
    // The log key is sealed through KMS: an enclave of the image restarted on the store signs
    // with the key the witnesses know.
    let dir = tempfile::tempdir().unwrap();
    let kms = LocalKms::prepare(dir.path());
    let mut w1 = Witness::keygen(dir.path(), 1);
    let mut w2 = Witness::keygen(dir.path(), 2);
    let mut proxy = kms.proxy_args();
    for w in [&w1, &w2] {
        proxy.push("--witness".into());
        proxy.push(format!("http://127.0.0.1:{}", w.port));
    }
    proxy.extend(["--witness-interval-ms".to_owned(), "200".to_owned()]);
    let enclave = kms.enclave_args();
    let stack = LocalStack::start_in(
        dir,
        &enclave.iter().map(String::as_str).collect::<Vec<_>>(),
        &proxy.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let policy = json!({
        "roleAssignments": [
            {"id": "ra-admin", "principalId": "admin", "roleDefinitionId": "Owner", "scope": "/"}
        ],
        "witnesses": {"threshold": 2, "keys": [w1.vkey, w2.vkey]},
    });
    let mut d = Deployment::on(
        stack,
        tempfile::tempdir().unwrap(),
        &["admin"],
        policy,
        json!({}),
    );
    let dir = d.stack.dir.path().to_owned();
    let described = describe(&d).await;
    assert_eq!(described["witnesses"]["threshold"], 2, "{described}");
    let key = described["log_key"].as_str().unwrap().to_owned();
    let origin = key.split('+').next().unwrap().to_owned();
    for w in [&mut w1, &mut w2] {
        w.log = Some(format!("{origin}={key}"));
        w.start();
    }
    d.govctl("admin", &["principal", "create", "p1"]).expect(0);
    wait_witnessed(&d, stored_size(&d).await, &[&w1, &w2]).await;

    // (1) A restart with both witnesses up: fresh cosignatures of the head, then serving.
    restart_enclave(&mut d);
    d.wait_serving(Duration::from_secs(60));
    d.govctl("admin", &["principal", "create", "p2"]).expect(0);

    // (3) One witness down, threshold 2: not serving, and the phase says why; then back.
    w2.kill();
    let before = stored_size(&d).await;
    restart_enclave(&mut d);
    let detail = wait_awaiting(&d, "1 of the 2 required").await;
    assert!(detail.contains("no answer"), "{detail}");
    assert_eq!(
        stored_size(&d).await,
        before,
        "nothing is written while awaiting"
    );
    w2.start();
    d.wait_serving(Duration::from_secs(60));

    // (4) A parent that withholds every answer (both witnesses stopped): not serving.
    w1.kill();
    w2.kill();
    restart_enclave(&mut d);
    wait_awaiting(&d, "0 of the 2 required").await;
    w1.start();
    w2.start();
    d.wait_serving(Duration::from_secs(60));

    // (2) The store replaced by an earlier copy while the witnesses cosigned a later tree.
    d.stack.kill_proxy();
    copy_store(&dir, &dir.join("copy"));
    d.stack.restart_proxy();
    d.govctl("admin", &["principal", "create", "after-the-copy"])
        .expect(0);
    let later = stored_size(&d).await;
    wait_witnessed(&d, later, &[&w1, &w2]).await;
    d.stack.kill_enclave();
    d.stack.kill_proxy();
    copy_store(&dir.join("copy"), &dir);
    d.stack.restart_proxy();
    let copied = stored_size(&d).await;
    assert!(copied < later);
    d.stack.start_enclave();
    let detail = wait_awaiting(&d, "0 of the 2 required").await;
    assert!(detail.contains(": 409"), "{detail}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(describe(&d).await["phase"], "awaiting_witnesses");
    assert_eq!(stored_size(&d).await, copied, "nothing was appended");
}
