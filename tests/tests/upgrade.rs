//! Image upgrades with the real binaries: an image change proposed and approved by two
//! owners of `/`, the old enclave stopped and the new image (the mock NSM with other
//! measurements) started on the same store, under load; and the refusals: an image never
//! admitted, only proposed, or retired; a parent that appends an `enclave_start` of an
//! unadmitted image; an old image's key signing after the new image took over. Then the same
//! upgrade through the local KMS, each image's log key sealed under its own KMS key.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "end-to-end test: a failed step should fail the test loudly"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ciborium::Value as Cbor;
use ea_attestation::{Measurements, MockCaSource, MockNsm, MockNsmConfig, Nsm};
use ea_audit::checkpoint::{log_origin, Checkpoint};
use ea_audit::hash::{leaf_hash, Hash};
use ea_audit::note::NoteSigner;
use ea_audit::record::{Record, RecordKind};
use ea_audit::MerkleTree;
use ea_ledger::{Genesis, Ledger};
use ea_protocol::rpc::{Connection, ConnectionLimits};
use ea_protocol::{Address, StoreRequest, StoreResponse};
use ea_tests::load::{check_after_faults, stream, Clients};
use ea_tests::{binaries, measurements_json, Deployment, Gov, LocalStack, Process};
use nix::sys::signal::Signal;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};

const OWNERS: [&str; 3] = ["admin", "owner2", "owner3"];

/// One community; admin, owner2 and owner3 Owner at `/`; reader a Community Reader.
fn policy() -> Value {
    json!({
        "communities": [{"id": "/communities/c1", "addressSpace": "10.0.0.0/8"}],
        "roleAssignments": [
            {"id": "ra-admin", "principalId": "admin", "roleDefinitionId": "Owner", "scope": "/"},
            {"id": "ra-owner2", "principalId": "owner2", "roleDefinitionId": "Owner", "scope": "/"},
            {"id": "ra-owner3", "principalId": "owner3", "roleDefinitionId": "Owner", "scope": "/"}
        ]
    })
}

/// A measurements file of the image whose PCR0 is all `byte`s.
fn image_file(dir: &Path, byte: &str) -> PathBuf {
    let path = dir.join(format!("pcrs-{byte}.json"));
    std::fs::write(&path, measurements_json(byte).to_string()).unwrap();
    path
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn get(url: &str) -> Value {
    runtime()
        .block_on(ea_tests::get_json(&reqwest::Client::new(), url))
        .1
}

/// The enclave's description once it is in `phase` (or panics after a minute).
fn wait_phase(stack: &LocalStack, phase: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let described = get(&format!("{}/v1/enclave", stack.url));
        if described["phase"] == phase {
            return described;
        }
        assert!(
            Instant::now() < deadline,
            "the enclave is not {phase}: {described}\n{}",
            stack.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The size of the log the parent's store holds.
fn stored_size(stack: &LocalStack) -> u64 {
    get(&format!("{}/v1/log/checkpoint", stack.url))["size"]
        .as_u64()
        .unwrap()
}

/// `user` proposes admitting the image of `pcrs`; returns the approval's id.
fn propose(d: &Deployment, user: &str, verb: &str, pcrs: &Path) -> String {
    let gov = d
        .govctl(
            user,
            &[
                "image",
                verb,
                "--pcrs",
                pcrs.to_str().unwrap(),
                "--justification",
                "release 2",
            ],
        )
        .expect(0);
    assert_eq!(gov.json["outcome"], "pending", "{}", gov.stdout);
    assert_eq!(gov.json["approval"]["settings"]["key"], "imageChange");
    gov.json["approval"]["id"].as_str().unwrap().to_owned()
}

fn approve(d: &Deployment, user: &str, id: &str) -> Gov {
    d.govctl(user, &["approvals", "approve", id])
}

/// `propose` then two approvals; returns the approval's id.
fn admit(d: &Deployment, verb: &str, pcrs: &Path) -> String {
    let id = propose(d, "admin", verb, pcrs);
    approve(d, "owner2", &id).expect(0);
    let done = approve(d, "owner3", &id).expect(0);
    assert_eq!(
        done.json["approval"]["approvalStatus"], "Approved",
        "{}",
        done.stdout
    );
    id
}

/// Stops the running enclave (SIGTERM) and starts one of the image in `pcrs`.
fn switch_image(d: &mut Deployment, pcrs: &Path, extra: &[&str]) {
    if let Some(enclave) = d.stack.enclave.take() {
        enclave.signal(Signal::SIGTERM);
        enclave.wait_exit(Duration::from_secs(20));
    }
    let mut flags = vec!["--mock-measurements", pcrs.to_str().unwrap()];
    flags.extend_from_slice(extra);
    d.stack.start_enclave_with(&flags);
}

/// `govctl audit fetch` then `govctl audit verify --pcrs genesis` (with `--json`).
fn audit(stack: &LocalStack, genesis_pcrs: &Path) -> (PathBuf, std::process::Output) {
    let dir = stack
        .dir
        .path()
        .join(format!("audit-{}", ea_tests::now_ms()));
    let output = Command::new(binaries().path("govctl"))
        .args(["audit", "fetch", "--endpoint", &stack.url, "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let output = Command::new(binaries().path("govctl"))
        .args(["audit", "verify"])
        .arg(&dir)
        .arg("--root")
        .arg(stack.mock_root())
        .arg("--pcrs")
        .arg(genesis_pcrs)
        .output()
        .unwrap();
    (dir, output)
}

#[test]
fn an_upgrade_under_load_keeps_every_change_and_clients_keep_their_trust_file() {
    let mut d = Deployment::start(&OWNERS, policy());
    let old = d.measurements();
    let new = image_file(d.stack.dir.path(), "dd");
    let rt = runtime();
    let stop = Arc::new(AtomicBool::new(false));
    let streaming = rt.spawn(stream(Clients::of(&d, "admin"), 64, stop.clone()));
    std::thread::sleep(Duration::from_millis(800));

    // The image change, under load: proposed by one owner, approved by two others.
    let id = admit(&d, "propose", &new);
    let images = d.govctl("owner2", &["image", "list"]).expect(0);
    let images = images.json["result"]["images"].as_array().unwrap().clone();
    assert_eq!(images.len(), 2, "{images:?}");
    let admitted = images
        .iter()
        .find(|i| i["pcrs"]["PCR0"] == "dd".repeat(48))
        .unwrap();
    assert_eq!(admitted["approvalId"], id.as_str());
    assert!(admitted["record"].as_u64().is_some());
    std::thread::sleep(Duration::from_millis(500));

    // A client's trust file as it was before the upgrade.
    let trust_before = d.stack.dir.path().join("trust-before-the-upgrade.json");
    std::fs::copy(&d.trust, &trust_before).unwrap();

    // The old enclave stops; the new image starts on the same store, under load.
    switch_image(&mut d, &new, &[]);
    d.wait_serving(Duration::from_secs(60));
    let described = get(&format!("{}/v1/enclave", d.stack.url));
    assert_eq!(described["image"]["PCR0"], "dd".repeat(48));
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    let acknowledged = rt.block_on(streaming).unwrap();
    assert!(acknowledged.len() > 100, "{} changes", acknowledged.len());
    let new_start = described["log_key_index"].as_u64().unwrap();
    assert!(
        acknowledged.iter().any(|a| a.index > new_start),
        "changes were acknowledged under the new image"
    );

    // Every acknowledged change is in the log, which verifies with the genesis PCRs, and the
    // served state is its replay.
    check_after_faults(&d, "admin", &acknowledged);
    let (_, verified) = audit(&d.stack, &old);
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{verified:?}");
    let image_1 = format!("image 1:     PCR0 {}", "aa".repeat(48));
    let image_2 = format!("image 2:     PCR0 {}", "dd".repeat(48));
    assert!(stdout.contains(&image_1), "{stdout}");
    assert!(stdout.contains(&image_2), "{stdout}");
    assert!(stdout.contains(&format!("approval {id}")), "{stdout}");
    assert!(
        stdout.contains(&format!("records {new_start} to ")),
        "{stdout}"
    );
    // The new image's key is its own: not the one the old image signed with.
    let keys: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("log key:     "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(keys.len(), 2, "{stdout}");
    assert_ne!(keys[0], keys[1]);

    // A client goes on with the trust file it had: it learns the new key and image from the
    // verified records that attest and admit them.
    std::fs::copy(&trust_before, &d.trust).unwrap();
    let before = std::fs::read_to_string(&d.trust).unwrap();
    assert!(!before.contains("admittedBy"), "{before}");
    d.govctl("owner3", &["principal", "create", "after-the-upgrade"])
        .expect(0);
    let after = std::fs::read_to_string(&d.trust).unwrap();
    assert!(after.contains("admittedBy"), "{after}");
    assert!(after.contains(&"dd".repeat(48)), "{after}");
}

#[test]
fn an_image_never_admitted_or_only_proposed_does_not_start_and_writes_nothing() {
    let mut d = Deployment::start(&OWNERS, policy());
    let other = image_file(d.stack.dir.path(), "ee");

    // Never admitted: the enclave stops in `failed`, naming its PCRs and the admitted set.
    let size = stored_size(&d.stack);
    switch_image(&mut d, &other, &[]);
    let described = wait_phase(&d.stack, "failed");
    let error = described["error"].as_str().unwrap();
    assert!(error.contains(&"ee".repeat(48)), "{error}");
    assert!(
        error.contains(&"aa".repeat(48)),
        "names the admitted image: {error}"
    );
    assert!(error.contains("govctl image propose"), "{error}");
    assert_eq!(stored_size(&d.stack), size, "nothing was written");

    // Proposed, and one owner alone: the requester cannot approve it, and one approval of
    // two is not enough.
    let genesis_image = d.measurements();
    switch_image(&mut d, &genesis_image, &[]);
    d.wait_serving(Duration::from_secs(60));
    let id = propose(&d, "admin", "propose", &other);
    let own = approve(&d, "admin", &id).expect(3);
    assert_eq!(own.error_code(), "separation_of_duties", "{}", own.stdout);
    let first = approve(&d, "owner2", &id).expect(0);
    assert_eq!(first.json["approval"]["approvalStatus"], "Pending");
    let size = stored_size(&d.stack);
    switch_image(&mut d, &other, &[]);
    let described = wait_phase(&d.stack, "failed");
    assert!(
        described["error"]
            .as_str()
            .unwrap()
            .contains("not admitted"),
        "{described}"
    );
    assert_eq!(stored_size(&d.stack), size, "nothing was written");
}

#[test]
fn a_retired_image_cannot_restart_the_log() {
    let mut d = Deployment::start(&OWNERS, policy());
    let old = d.measurements();
    let new = image_file(d.stack.dir.path(), "dd");
    admit(&d, "propose", &new);
    // The image writing the log cannot be retired.
    let refused = d
        .govctl(
            "admin",
            &[
                "image",
                "retire",
                "--pcrs",
                old.to_str().unwrap(),
                "--justification",
                "too early",
            ],
        )
        .expect(3);
    assert!(
        refused.stdout.contains("writing this log"),
        "{}",
        refused.stdout
    );
    switch_image(&mut d, &new, &[]);
    d.wait_serving(Duration::from_secs(60));
    // Now the old image is retired, by an approved change.
    admit(&d, "retire", &old);
    let images = d.govctl("admin", &["image", "list"]).expect(0);
    assert_eq!(images.json["result"]["images"].as_array().unwrap().len(), 1);

    // Rolling back to it needs a new approval: it stops in `failed`, writing nothing.
    let size = stored_size(&d.stack);
    switch_image(&mut d, &old, &[]);
    let described = wait_phase(&d.stack, "failed");
    let error = described["error"].as_str().unwrap();
    assert!(error.contains("not admitted"), "{error}");
    assert_eq!(stored_size(&d.stack), size, "nothing was written");
    // The log verifies, and its history says who retired what.
    let (_, verified) = audit(&d.stack, &old);
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{verified:?}");
    assert!(stdout.contains("retired by record"), "{stdout}");
}

/// A log built in the test process, as a parent that holds keys of its own images (or an
/// old image's key) could write it: real mock-NSM documents under the stack's mock CA.
struct Forged {
    batches: Vec<(u64, Vec<Vec<u8>>, String)>,
    pending: Vec<Vec<u8>>,
    first: u64,
    tree: MerkleTree,
    origin: String,
    genesis_hash: Hash,
    ca: PathBuf,
}

impl Forged {
    /// Genesis (naming `images` as admitted) with one user.
    fn new(ca: &Path, images: &[&str]) -> Forged {
        let user = Ed25519KeyPair::from_seed_unchecked(&[9; 32]).unwrap();
        use base64::Engine as _;
        let key = base64::engine::general_purpose::STANDARD.encode(user.public_key().as_ref());
        let images: Vec<Value> = images
            .iter()
            .map(|b| json!({"pcrs": {"PCR0": b.repeat(48), "PCR1": "bb".repeat(48), "PCR2": "cc".repeat(48)}}))
            .collect();
        let genesis = Genesis::from_json(
            &json!({"version": 1, "name": "forged", "createdAt": "2026-01-01T00:00:00Z",
            "policy": {
                "principals": [{"id": "admin", "type": "User", "keys": [
                    {"keyId": "k1", "algorithm": "Ed25519", "publicKey": key}]}],
                "images": images
            }})
            .to_string(),
        )
        .unwrap();
        let record = Ledger::from_genesis(&genesis, 16)
            .unwrap()
            .1
            .into_record(ea_tests::now_ms());
        let genesis_hash = record.record_hash().unwrap();
        let mut forged = Forged {
            batches: Vec::new(),
            pending: Vec::new(),
            first: 0,
            tree: MerkleTree::new(),
            origin: log_origin(&genesis_hash),
            genesis_hash,
            ca: ca.to_owned(),
        };
        forged.push(record);
        forged
    }

    fn push(&mut self, mut record: Record) {
        record.seq = self.tree.size();
        let bytes = record.to_bytes().unwrap();
        self.tree.push(leaf_hash(&bytes));
        self.pending.push(bytes);
    }

    /// An `enclave_start` of image `byte` attesting the key of `seed`.
    fn start(&mut self, byte: &str, seed: u8) -> u64 {
        let measurements = Measurements::from_json(&measurements_json(byte).to_string()).unwrap();
        let nsm = MockNsm::new(
            MockNsmConfig::new(measurements).ca(MockCaSource::Directory(self.ca.clone())),
        )
        .unwrap();
        let key = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
        let document = nsm
            .attestation(
                Some(self.genesis_hash.as_bytes()),
                None,
                Some(key.public_key().as_ref()),
            )
            .unwrap();
        let index = self.tree.size();
        self.push(Record {
            seq: 0,
            time: ea_tests::now_ms(),
            kind: RecordKind::EnclaveStart,
            actor: "platform".into(),
            request: None,
            decision: Cbor::Null,
            changes: Cbor::Map(Vec::new()),
            attestation: Some(document),
        });
        index
    }

    /// A record that changes nothing.
    fn denied(&mut self) -> u64 {
        let index = self.tree.size();
        self.push(Record {
            seq: 0,
            time: ea_tests::now_ms(),
            kind: RecordKind::Denied,
            actor: "admin".into(),
            request: None,
            decision: Cbor::Null,
            changes: Cbor::Array(Vec::new()),
            attestation: None,
        });
        index
    }

    /// The pending records as one batch, with a checkpoint signed by the key of `seed`.
    fn checkpoint(&mut self, seed: u8) {
        let key = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
        let signer = NoteSigner::new(&self.origin, Box::new(key)).unwrap();
        let note = Checkpoint {
            origin: self.origin.clone(),
            size: self.tree.size(),
            root: self.tree.root(),
        }
        .sign(&signer)
        .unwrap();
        let records = std::mem::take(&mut self.pending);
        self.batches.push((self.first, records, note));
        self.first = self.tree.size();
    }

    /// Appends every batch to the parent's store, as the parent would.
    fn store(&self, stack: &LocalStack) {
        let address = Address::Unix(stack.dir.path().join("store.sock"));
        runtime().block_on(async {
            let store = Connection::<StoreRequest, StoreResponse>::connect(
                &address,
                ConnectionLimits::default(),
            )
            .await
            .unwrap();
            for (first, records, checkpoint) in &self.batches {
                let appended = store
                    .call(&StoreRequest::Append {
                        first_index: *first,
                        records: records
                            .iter()
                            .cloned()
                            .map(serde_bytes::ByteBuf::from)
                            .collect(),
                        checkpoint: checkpoint.clone(),
                    })
                    .await
                    .unwrap();
                assert!(
                    matches!(appended, StoreResponse::Appended { .. }),
                    "{appended:?}"
                );
            }
        });
    }
}

/// A stack whose enclave made the mock CA and was stopped before any genesis.
fn empty_stack() -> LocalStack {
    let mut stack = LocalStack::start(&[], &[]);
    ea_tests::wait_for_path(&stack.mock_root(), Duration::from_secs(20));
    stack.kill_enclave();
    stack
}

/// Starts an enclave of image `byte` on the forged log and returns its failure.
fn refused_by_recovery(stack: &mut LocalStack, byte: &str) -> String {
    let pcrs = image_file(stack.dir.path(), byte);
    stack.start_enclave_with(&["--mock-measurements", pcrs.to_str().unwrap()]);
    let described = wait_phase(stack, "failed");
    described["error"].as_str().unwrap().to_owned()
}

fn refused_by_audit(stack: &LocalStack, genesis: &str) -> String {
    let pcrs = image_file(stack.dir.path(), genesis);
    let (_, output) = audit(stack, &pcrs);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_enclave_start_of_an_unadmitted_image_is_named_by_recovery_and_audit() {
    let mut stack = empty_stack();
    let mut log = Forged::new(&stack.mock_ca_dir(), &["aa"]);
    log.start("aa", 1);
    log.checkpoint(1);
    log.denied();
    log.checkpoint(1);
    // The parent runs an image nobody admitted and lets it append its start.
    let forged = log.start("ee", 2);
    log.denied();
    log.checkpoint(2);
    log.store(&stack);

    let error = refused_by_recovery(&mut stack, "aa");
    assert!(error.contains(&format!("record {forged}")), "{error}");
    assert!(error.contains("not admitted"), "{error}");
    assert!(error.contains(&"ee".repeat(48)), "{error}");
    let error = refused_by_audit(&stack, "aa");
    assert!(
        error.contains(&format!("refused at record {forged}")),
        "{error}"
    );
    assert!(error.contains("not admitted"), "{error}");
}

#[test]
fn an_old_image_key_signing_after_the_new_image_started_is_refused() {
    let mut stack = empty_stack();
    // Both images admitted from the genesis on; the new one takes over at `takeover`.
    let mut log = Forged::new(&stack.mock_ca_dir(), &["aa", "dd"]);
    log.start("aa", 1);
    log.checkpoint(1);
    let takeover = log.start("dd", 2);
    log.checkpoint(2);
    // The old image's key (seed 1) signs a batch after the new image's enclave_start.
    let batch = log.denied();
    log.checkpoint(1);
    log.store(&stack);

    let error = refused_by_recovery(&mut stack, "dd");
    assert!(error.contains(&format!("record {batch}")), "{error}");
    assert!(
        error.contains(&format!(
            "superseded by the enclave_start of another image at record {takeover}"
        )),
        "{error}"
    );
    let error = refused_by_audit(&stack, "aa");
    assert!(
        error.contains(&format!("refused at record {batch}")),
        "{error}"
    );
    assert!(error.contains("superseded"), "{error}");
}

// ----- the same upgrade through the local KMS --------------------------------------------

const KEY_OLD: &str = "0a0a0a0a-2d1b-4c3a-9e7f-0a1b2c3d4e5f";
const KEY_NEW: &str = "0d0d0d0d-2d1b-4c3a-9e7f-0a1b2c3d4e5f";
const KEY_ADMIN: &str = "arn:aws:iam::111122223333:role/KeyAdmin";
const ENCLAVE_ROLE: &str = "arn:aws:iam::111122223333:role/EnclaveInstance";

/// `govctl kms-policy` for one image, to `out`.
fn kms_policy(args: &[&str], out: &Path) -> std::process::Output {
    let output = Command::new(binaries().path("govctl"))
        .arg("kms-policy")
        .args(args)
        .args([
            "--key-admin",
            KEY_ADMIN,
            "--enclave-role",
            ENCLAVE_ROLE,
            "--out",
        ])
        .arg(out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    output
}

/// A local KMS holding one key per image, each with the policy `govctl kms-policy` wrote.
fn start_kms(dir: &Path, keys: &[(&str, &Path)]) -> (Process, String) {
    std::fs::write(
        dir.join("aws-credentials"),
        "[default]\naws_access_key_id = AKIALOCALENCLAVE\naws_secret_access_key = local secret\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("kms-credentials.json"),
        json!({"credentials": [{
            "access_key_id": "AKIALOCALENCLAVE",
            "secret_access_key": "local secret",
            "principal_arn": "arn:aws:sts::111122223333:assumed-role/EnclaveInstance/i-local"
        }]})
        .to_string(),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let mut args: Vec<String> = vec![
        "--listen".into(),
        format!("tcp:{address}"),
        "--state".into(),
        dir.join("kms-state.json").display().to_string(),
        "--credentials".into(),
        dir.join("kms-credentials.json").display().to_string(),
        "--attestation-root".into(),
        dir.join("mock-ca/mock-root.pem").display().to_string(),
        "--ca-out".into(),
        dir.join("kms-ca.pem").display().to_string(),
    ];
    for (id, policy) in keys {
        args.extend(["--key".into(), format!("{id}={}", policy.display())]);
    }
    let mut process = Process::spawn(
        &binaries().path("local-kms"),
        &args,
        &dir.join("local-kms.log"),
    );
    process.wait_for_stdout_line("listening on https://");
    (process, address)
}

fn sealed_keys(stack: &LocalStack) -> Vec<u8> {
    let address = Address::Unix(stack.dir.path().join("store.sock"));
    runtime().block_on(async {
        let store = Connection::<StoreRequest, StoreResponse>::connect(
            &address,
            ConnectionLimits::default(),
        )
        .await
        .unwrap();
        match store.call(&StoreRequest::GetSealedKey).await.unwrap() {
            StoreResponse::SealedKey { sealed: Some(blob) } => blob.into_vec(),
            other => panic!("no sealed keys: {other:?}"),
        }
    })
}

fn put_sealed_keys(stack: &LocalStack, bytes: Vec<u8>) {
    let address = Address::Unix(stack.dir.path().join("store.sock"));
    runtime().block_on(async {
        let store = Connection::<StoreRequest, StoreResponse>::connect(
            &address,
            ConnectionLimits::default(),
        )
        .await
        .unwrap();
        let stored = store
            .call(&StoreRequest::PutSealedKey {
                sealed: serde_bytes::ByteBuf::from(bytes),
            })
            .await
            .unwrap();
        assert_eq!(stored, StoreResponse::Stored);
    });
}

#[test]
fn the_upgrade_through_the_local_kms_seals_each_image_s_key_under_its_own_policy() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    MockNsm::new(
        MockNsmConfig::new(Measurements::of_executable(b"unused"))
            .ca(MockCaSource::Directory(dir.path().join("mock-ca"))),
    )
    .unwrap();
    let old = image_file(dir.path(), "aa");
    std::fs::copy(&old, dir.path().join("pcrs.json")).unwrap();
    let new = image_file(dir.path(), "dd");
    // The old image's key: a policy for it alone. The new image's key: an immutable policy
    // for it alone (nobody can ever admit another image to it).
    let old_policy = dir.path().join("policy-old.json");
    kms_policy(&["--pcrs", old.to_str().unwrap()], &old_policy);
    let new_policy = dir.path().join("policy-new.json");
    kms_policy(
        &["--pcrs", new.to_str().unwrap(), "--immutable"],
        &new_policy,
    );
    assert!(!std::fs::read_to_string(&new_policy)
        .unwrap()
        .contains("kms:PutKeyPolicy"));
    let (_kms, address) = start_kms(
        dir.path(),
        &[(KEY_OLD, &old_policy), (KEY_NEW, &new_policy)],
    );
    let kms_ca = dir.path().join("kms-ca.pem").display().to_string();
    let relay = format!("unix:{}", dir.path().join("kms-relay.sock").display());
    let credentials = format!("static:{}", dir.path().join("aws-credentials").display());
    let enclave_args = [
        "--mock-measurements",
        old.to_str().unwrap(),
        "--log-key",
        "kms",
        "--kms-key-id",
        KEY_OLD,
        "--kms-region",
        "eu-west-1",
        "--kms-address",
        &relay,
        "--kms-host",
        "localhost",
        "--kms-ca",
        &kms_ca,
    ];
    let proxy_args = [
        "--kms-relay-listen",
        &relay,
        "--kms-relay-endpoint",
        &address,
        "--kms-relay-allow",
        &address,
        "--aws-credentials",
        &credentials,
    ];
    let stack = LocalStack::start_in(dir, &enclave_args, &proxy_args);
    let mut d = Deployment::on(stack, scratch, &OWNERS, policy(), json!({}));
    d.govctl("admin", &["principal", "create", "before"])
        .expect(0);
    let old_key = get(&format!("{}/v1/enclave", d.stack.url))["log_key"].clone();

    // The upgrade: approved, then the new image (its own KMS key baked in) starts.
    admit(&d, "propose", &new);
    switch_image(&mut d, &new, &["--kms-key-id", KEY_NEW]);
    d.wait_serving(Duration::from_secs(90));
    let described = get(&format!("{}/v1/enclave", d.stack.url));
    let new_key = described["log_key"].clone();
    assert_ne!(new_key, old_key, "a key of its own");
    d.govctl("owner2", &["principal", "create", "after"])
        .expect(0);

    // The store's key set: one key per image, the new one sealed under the new key.
    let stored = sealed_keys(&d.stack);
    let ea_kms::StoredLogKeys::Set(set) = ea_kms::StoredLogKeys::from_bytes(&stored).unwrap()
    else {
        panic!("not a key set")
    };
    assert_eq!(set.len(), 2);
    let digest = |byte: &str| {
        let measurements = Measurements::from_json(&measurements_json(byte).to_string()).unwrap();
        let nsm = MockNsm::new(MockNsmConfig::new(measurements)).unwrap();
        let locked: std::collections::BTreeMap<u16, Vec<u8>> = ea_attestation::locked_pcrs(&nsm)
            .unwrap()
            .into_iter()
            .collect();
        let image = ea_audit::verify::image_of(&locked);
        ea_kms::image_digest(image.iter().map(|(i, v)| (*i, v.as_slice())))
    };
    let (old_digest, new_digest) = (digest("aa"), digest("dd"));
    assert!(set.get(&new_digest).unwrap().kms_key_id.ends_with(KEY_NEW));
    assert!(set.get(&old_digest).unwrap().kms_key_id.ends_with(KEY_OLD));

    // The parent swaps the blobs: neither image unseals the other's; the enclave stops in
    // `failed` and writes nothing.
    let mut swapped = set.clone();
    swapped.insert(old_digest, set.get(&new_digest).unwrap().clone());
    swapped.insert(new_digest, set.get(&old_digest).unwrap().clone());
    put_sealed_keys(&d.stack, swapped.to_bytes().unwrap());
    for (pcrs, key) in [(&old, KEY_OLD), (&new, KEY_NEW)] {
        let size = stored_size(&d.stack);
        switch_image(&mut d, pcrs, &["--kms-key-id", key]);
        let described = wait_phase(&d.stack, "failed");
        let error = described["error"].as_str().unwrap();
        assert!(error.contains("unsealing this image's log key"), "{error}");
        assert_eq!(stored_size(&d.stack), size, "nothing was written");
    }
    // Put back, the new image unseals its own key again and goes on.
    put_sealed_keys(&d.stack, stored);
    switch_image(&mut d, &new, &["--kms-key-id", KEY_NEW]);
    d.wait_serving(Duration::from_secs(90));
    assert_eq!(
        get(&format!("{}/v1/enclave", d.stack.url))["log_key"],
        new_key,
        "its own key, unsealed"
    );
    d.govctl("owner3", &["principal", "create", "again"])
        .expect(0);
    let (log, verified) = audit(&d.stack, &old);
    assert!(verified.status.success(), "{verified:?}");

    // The key policy from the log: exactly the two images it admits, one statement each.
    let from_log = d.stack.dir.path().join("policy-from-log.json");
    kms_policy(
        &[
            "--from-log",
            log.to_str().unwrap(),
            "--genesis-pcrs",
            old.to_str().unwrap(),
            "--root",
            d.stack.mock_root().to_str().unwrap(),
        ],
        &from_log,
    );
    let policy: Value = serde_json::from_str(&std::fs::read_to_string(&from_log).unwrap()).unwrap();
    let sids: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["Sid"].as_str())
        .collect();
    assert_eq!(
        sids,
        [
            "KeyAdministration",
            "EnclaveWithAttestation1",
            "EnclaveWithAttestation2",
            "DenyWithoutAttestation"
        ]
    );
    // An immutable policy from the log only for an image the log admits.
    let output = Command::new(binaries().path("govctl"))
        .arg("kms-policy")
        .args([
            "--from-log",
            log.to_str().unwrap(),
            "--genesis-pcrs",
            old.to_str().unwrap(),
        ])
        .args([
            "--root",
            d.stack.mock_root().to_str().unwrap(),
            "--immutable",
            "--pcrs",
        ])
        .arg(image_file(d.stack.dir.path(), "ee"))
        .args(["--key-admin", KEY_ADMIN, "--enclave-role", ENCLAVE_ROLE])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("does not admit"),
        "{output:?}"
    );
}
