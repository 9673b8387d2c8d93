//! Witnesses, end to end through the real binaries: parent-proxy submits the log's
//! checkpoints to two `witness` processes, `GET /v1/log/witnessed` serves their cosignatures,
//! `govctl audit verify --witness` requires them, a witness that was down catches up, a dead
//! witness slows no change, and a fork of the log under the same KMS-sealed key is refused by
//! the witnesses and never cosigned.
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
use ea_audit::note::NoteVerifier;
use ea_ledger::Operation;
use ea_tests::kms::LocalKms;
use ea_tests::{binaries, get_json, now_ms, Deployment, LocalStack, Process};
use serde_json::{json, Value};

fn policy() -> Value {
    json!({
        "communities": [{"id": "/communities/c1", "addressSpace": "10.0.0.0/8"}],
        "roleAssignments": [
            {"id": "ra-admin", "principalId": "admin", "roleDefinitionId": "Owner", "scope": "/"}
        ]
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

/// A `witness` process on a fixed loopback port, with its key and state in the stack's
/// directory, restartable on both.
struct WitnessProcess {
    name: String,
    dir: PathBuf,
    port: u16,
    log: String,
    vkey: String,
    process: Option<Process>,
    starts: u32,
}

impl WitnessProcess {
    /// Makes a key (`witness keygen`) for witness `number` in `dir`.
    fn keygen(dir: &Path, number: u32) -> (String, PathBuf, String) {
        let name = format!("witness-{number}.test.invalid/w");
        let key = dir.join(format!("witness-{number}.key"));
        let output = Command::new(binaries().path("witness"))
            .args(["keygen", "--name", &name, "--out"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let vkey = String::from_utf8(output.stdout).unwrap().trim().to_owned();
        (name, key, vkey)
    }

    /// Makes its key and starts it on `port`, following the log `origin` under `log_key`.
    fn start(dir: &Path, number: u32, port: u16, origin: &str, log_key: &str) -> Self {
        let (name, _, vkey) = Self::keygen(dir, number);
        let mut witness = WitnessProcess {
            name,
            dir: dir.to_owned(),
            port,
            log: format!("{origin}={log_key}"),
            vkey,
            process: None,
            starts: 0,
        };
        witness.restart();
        witness
    }

    fn number(&self) -> &str {
        self.name
            .trim_start_matches("witness-")
            .split('.')
            .next()
            .unwrap()
    }

    fn restart(&mut self) {
        assert!(self.process.is_none());
        self.starts += 1;
        let number = self.number().to_owned();
        let args: Vec<String> = vec![
            "--listen".into(),
            format!("127.0.0.1:{}", self.port),
            "--db".into(),
            self.dir
                .join(format!("witness-{number}.db"))
                .display()
                .to_string(),
            "--key-file".into(),
            self.dir
                .join(format!("witness-{number}.key"))
                .display()
                .to_string(),
            "--name".into(),
            self.name.clone(),
            "--log".into(),
            self.log.clone(),
        ];
        let mut process = Process::spawn(
            &binaries().path("witness"),
            &args,
            &self
                .dir
                .join(format!("witness-{number}-{}.log", self.starts)),
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

    fn add_checkpoint(&self) -> String {
        format!("http://127.0.0.1:{}/add-checkpoint", self.port)
    }
}

/// The proxy flags that submit to witnesses on `ports`, every 200 ms.
fn witness_flags(ports: &[u16]) -> Vec<String> {
    let mut flags = Vec::new();
    for port in ports {
        flags.push("--witness".to_owned());
        flags.push(format!("http://127.0.0.1:{port}"));
    }
    flags.extend(["--witness-interval-ms".to_owned(), "200".to_owned()]);
    flags
}

/// The log's origin and key, from the enclave's description.
fn log_key(d: &Deployment) -> (String, String) {
    let described = d.govctl("admin", &["describe"]).expect(0);
    let key = described.json["log_key"].as_str().unwrap().to_owned();
    let origin = key.split('+').next().unwrap().to_owned();
    (origin, key)
}

fn log_size(d: &Deployment) -> u64 {
    d.govctl("admin", &["describe"]).expect(0).json["log_size"]
        .as_u64()
        .unwrap()
}

/// What `GET /v1/log/witnessed` serves: status, size and note.
async fn witnessed(d: &Deployment) -> (u16, Value) {
    get_json(
        &reqwest::Client::new(),
        &format!("{}/v1/log/witnessed", d.stack.url),
    )
    .await
}

/// Waits until the witnessed checkpoint has `size` and valid cosignatures of every one of
/// `witnesses`, and a log signature that verifies with `log_key`; returns the note.
async fn wait_witnessed(
    d: &Deployment,
    size: u64,
    log_key: &str,
    witnesses: &[&WitnessProcess],
) -> String {
    let keys: Vec<CosignatureVerifier> = witnesses.iter().map(|w| w.key()).collect();
    let log_key: NoteVerifier = log_key.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = witnessed(d).await;
        if status == 200 && body["size"] == size {
            let note = body["checkpoint"].as_str().unwrap().to_owned();
            ea_audit::checkpoint::open_checkpoint(&note, std::slice::from_ref(&log_key), None)
                .unwrap();
            if verify_cosignatures(&note, &keys, keys.len()).is_ok() {
                return note;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of size {size} cosigned by {:?}: {status} {body}\n{}",
            witnesses.iter().map(|w| &w.name).collect::<Vec<_>>(),
            d.stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `govctl` (no identity, endpoint or trust needed) with `args`.
fn govctl(args: &[&str]) -> std::process::Output {
    Command::new(binaries().path("govctl"))
        .args(args)
        .output()
        .unwrap()
}

fn create_principal(id: &str) -> Operation {
    Operation::Submit {
        command: Box::new(
            serde_json::from_value(json!({"createPrincipal": {"id": id, "type": "User"}})).unwrap(),
        ),
        justification: None,
    }
}

#[tokio::test]
async fn witnesses_cosign_the_log_clients_require_them_and_a_dead_one_slows_nothing() {
    let ports = [free_port(), free_port()];
    // Two more witnesses that are never any use: one accepts connections and never answers,
    // nothing listens on the other.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_ports = [silent.local_addr().unwrap().port(), free_port()];
    let all_ports: Vec<u16> = ports.iter().chain(&dead_ports).copied().collect();
    let flags = witness_flags(&all_ports);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut d = Deployment::start_with_proxy(&["admin"], policy(), json!({}), &[], &flags);
    let dir = d.stack.dir.path().to_owned();
    let (origin, key) = log_key(&d);
    let w1 = WitnessProcess::start(&dir, 1, ports[0], &origin, &key);
    let mut w2 = WitnessProcess::start(&dir, 2, ports[1], &origin, &key);

    // Changes are answered as fast with dead witnesses as without any: the submitter is
    // never on the append path (a request to the silent one waits 10 s for nothing).
    for i in 0..3 {
        let started = Instant::now();
        d.govctl("admin", &["principal", "create", &format!("p{i}")])
            .expect(0);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a change took {:?} with a dead witness configured",
            started.elapsed()
        );
    }
    let size = log_size(&d);
    wait_witnessed(&d, size, &key, &[&w1, &w2]).await;

    // An auditor fetches the log with the witnessed checkpoint and requires both.
    let audit = dir.join("audit");
    let endpoint = d.stack.url.clone();
    let out = govctl(&[
        "audit",
        "fetch",
        "--endpoint",
        &endpoint,
        "--out",
        audit.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(audit.join("witnessed.json").exists());
    let root = d.stack.mock_root();
    let pcrs = d.measurements();
    let verify = |dir: &Path, extra: &[&str]| {
        let mut args = vec![
            "audit",
            "verify",
            dir.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
            "--pcrs",
            pcrs.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = govctl(&args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = verify(
        &audit,
        &[
            "--witness",
            &w1.vkey,
            "--witness",
            &w2.vkey,
            "--witness-threshold",
            "2",
        ],
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("witnessed:   checkpoint {size} (root ")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("witness:     {} cosigned at", w1.name)),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("witness:     {} cosigned at", w2.name)),
        "{stdout}"
    );

    // A key that did not cosign, a threshold above the witnesses, no witnessed checkpoint:
    // refused.
    let (_, _, stranger) = WitnessProcess::keygen(&dir, 3);
    let (code, _, stderr) = verify(&audit, &["--witness", &w1.vkey, "--witness", &stranger]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("lacks the required cosignatures"),
        "{stderr}"
    );
    let (code, _, stderr) = verify(
        &audit,
        &[
            "--witness",
            &w1.vkey,
            "--witness",
            &w2.vkey,
            "--witness-threshold",
            "3",
        ],
    );
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("threshold of 3"), "{stderr}");
    let bare = dir.join("audit-without-witnesses");
    std::fs::create_dir(&bare).unwrap();
    for file in ["records.cbor-seq", "checkpoints.txt", "manifest.json"] {
        std::fs::copy(audit.join(file), bare.join(file)).unwrap();
    }
    let (code, _, stderr) = verify(&bare, &["--witness", &w1.vkey]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("holds no witnessed checkpoint"), "{stderr}");
    // Without --witness the same directory verifies as before.
    assert_eq!(verify(&bare, &[]).0, Some(0));

    // A trust file pins the witnesses.
    let trust = dir.join("trust-with-witnesses.json");
    let out = govctl(&[
        "trust",
        "init",
        "--endpoint",
        &endpoint,
        "--trust",
        trust.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
        "--pcrs",
        pcrs.to_str().unwrap(),
        "--witness",
        &w1.vkey,
        "--witness",
        &w2.vkey,
        "--witness-threshold",
        "1",
    ]);
    assert!(out.status.success(), "{out:?}");
    let file: Value = serde_json::from_slice(&std::fs::read(&trust).unwrap()).unwrap();
    assert_eq!(file["witnesses"], json!([w1.vkey, w2.vkey]));
    assert_eq!(file["witnessThreshold"], 1);

    // Witness two goes down: witness one alone cosigns what follows.
    w2.kill();
    d.govctl("admin", &["principal", "create", "while-w2-is-down"])
        .expect(0);
    let size = log_size(&d);
    let note = wait_witnessed(&d, size, &key, &[&w1]).await;
    assert!(
        verify_cosignatures(&note, &[w2.key()], 1).is_err(),
        "witness two was down"
    );
    // Back up: it catches up on the checkpoint it missed.
    w2.restart();
    wait_witnessed(&d, size, &key, &[&w1, &w2]).await;

    // A restarted proxy knows nothing of what the witnesses hold: their 409s tell it, and it
    // sends again from there.
    d.stack.kill_proxy();
    d.stack.restart_proxy();
    d.govctl("admin", &["principal", "create", "after-the-restart"])
        .expect(0);
    let size = log_size(&d);
    wait_witnessed(&d, size, &key, &[&w1, &w2]).await;
    assert!(
        d.stack.logs().contains("witness holds another size"),
        "the restarted proxy resynchronised through a 409"
    );
    drop(silent);
}

/// Copies the store files (as a parent with access to its disk can).
fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for file in ["log.sqlite", "log.sqlite-wal", "log.sqlite-shm"] {
        std::fs::remove_file(to.join(file)).ok();
        if from.join(file).exists() {
            std::fs::copy(from.join(file), to.join(file)).unwrap();
        }
    }
}

fn root_of(note: &str) -> ea_audit::Hash {
    ea_audit::checkpoint::parse_unverified(note).unwrap().1.root
}

/// The stored checkpoint of `size`, through the export route.
async fn checkpoint_of(d: &Deployment, size: u64) -> String {
    let (status, body) = get_json(
        &reqwest::Client::new(),
        &format!("{}/v1/log/checkpoints?from_size={size}", d.stack.url),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checkpoints"][0]["size"], size, "{body}");
    body["checkpoints"][0]["checkpoint"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn post(url: &str, body: String) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn a_fork_under_the_same_kms_key_is_refused_by_the_witnesses_and_never_cosigned() {
    // With the log key sealed through KMS, an enclave of the image started on a copy of the
    // store signs with the same key: the copy becomes another branch of the log.
    let dir = tempfile::tempdir().unwrap();
    let kms = LocalKms::prepare(dir.path());
    let ports = [free_port(), free_port()];
    let mut proxy = kms.proxy_args();
    proxy.extend(witness_flags(&ports));
    let enclave = kms.enclave_args();
    let stack = LocalStack::start_in(
        dir,
        &enclave.iter().map(String::as_str).collect::<Vec<_>>(),
        &proxy.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let mut d = Deployment::on(
        stack,
        tempfile::tempdir().unwrap(),
        &["admin"],
        policy(),
        json!({}),
    );
    let dir = d.stack.dir.path().to_owned();
    let (origin, key) = log_key(&d);
    let w1 = WitnessProcess::start(&dir, 1, ports[0], &origin, &key);
    let w2 = WitnessProcess::start(&dir, 2, ports[1], &origin, &key);
    d.govctl("admin", &["principal", "create", "before-the-copy"])
        .expect(0);
    let copied = log_size(&d);
    let before = wait_witnessed(&d, copied, &key, &[&w1, &w2]).await;

    // The parent copies its store; the enclave acknowledges one more change, which both
    // witnesses cosign.
    d.stack.kill_proxy();
    copy_store(&dir, &dir.join("copy"));
    d.stack.restart_proxy();
    d.govctl("admin", &["principal", "create", "ours"])
        .expect(0);
    let ours_size = log_size(&d);
    let ours = wait_witnessed(&d, ours_size, &key, &[&w1, &w2]).await;

    // The parent puts the copy back and starts the enclave again on it: KMS gives it the
    // same key, and its enclave_start takes the index the change "ours" had.
    d.stack.kill_enclave();
    d.stack.kill_proxy();
    copy_store(&dir.join("copy"), &dir);
    d.stack.restart_proxy();
    d.stack.start_enclave();
    d.wait_serving(Duration::from_secs(60));
    let fork_size = log_size(&d);
    assert_eq!(
        fork_size, ours_size,
        "the fork has the size of what it replaced"
    );
    let theirs = checkpoint_of(&d, fork_size).await;
    assert_eq!(
        ea_audit::checkpoint::parse_unverified(&theirs)
            .unwrap()
            .1
            .origin,
        origin
    );
    assert_ne!(root_of(&theirs), root_of(&ours));

    // Submitted again and again, it is never cosigned: the witnesses hold "ours" at that
    // size (409, another root). What the parent serves stays what was cosigned before the
    // copy, which both branches extend.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, served) = witnessed(&d).await;
    assert_eq!(status, 200, "{served}");
    assert_eq!(served["size"], copied, "{served}");
    assert_eq!(
        root_of(served["checkpoint"].as_str().unwrap()),
        root_of(&before)
    );
    let (status, answer) = post(&w1.add_checkpoint(), format!("old {ours_size}\n\n{theirs}")).await;
    assert_eq!(status, 409, "{answer}");

    // The fork grows past what the witnesses hold: its consistency proof from their size
    // does not verify against their root (422), and it is still never cosigned.
    let signed = d.sign("admin", &create_principal("theirs"), now_ms());
    let (status, body) = d.post_signed(signed).await;
    assert_eq!(status, 200, "{body}");
    let larger = log_size(&d);
    assert!(larger > ours_size);
    let grown = checkpoint_of(&d, larger).await;
    let (status, proof) = get_json(
        &reqwest::Client::new(),
        &format!(
            "{}/v1/log/consistency?from={ours_size}&to={larger}",
            d.stack.url
        ),
    )
    .await;
    assert_eq!(status, 200, "{proof}");
    let lines: String = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}\n", p.as_str().unwrap()))
        .collect();
    let (status, answer) = post(
        &w2.add_checkpoint(),
        format!("old {ours_size}\n{lines}\n{grown}"),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, served) = witnessed(&d).await;
    assert_eq!(served["size"], copied, "{served}");

    // Both witnesses logged the refused checkpoints as evidence, and the proxy said why.
    let logs = d.stack.logs();
    assert!(
        logs.matches("refused an inconsistent checkpoint signed by the log")
            .count()
            >= 2,
        "{logs}"
    );
    assert!(logs.contains("refuses this checkpoint"), "{logs}");
}
