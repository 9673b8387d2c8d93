//! `govctl audit fetch` against the real export routes (served in-process by parent-proxy's
//! router) and `govctl audit verify` on logs made here with ea-audit and a mock NSM: a good
//! log verifies; each tampering is refused at the right record.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use ciborium::Value;
use ea_attestation::{Measurements, MockNsm, MockNsmConfig, Nsm};
use ea_audit::note::NoteSigner;
use ea_audit::record::{Record, RecordKind};
use ea_audit::{log_origin, Checkpoint};
use ea_protocol::rpc::ConnectionLimits;
use parent_proxy::api::{router, AppState};
use parent_proxy::store::{LogStore, MemoryLogStore};
use parent_proxy::{serve, EnclavePool, HttpLimits, PoolConfig, Transport};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::Value as Json;

const LOG_KEY_SEED: [u8; 32] = [21; 32];

/// A log as the enclave would have written it: records, and a checkpoint after each batch.
struct Log {
    records: Vec<Vec<u8>>,
    /// `(first index, count)` of each batch; one checkpoint per batch.
    batches: Vec<(u64, u64)>,
    checkpoints: Vec<String>,
    origin: String,
}

fn mock_nsm(image: &[u8]) -> MockNsm {
    MockNsm::new(MockNsmConfig::new(Measurements::of_executable(image))).unwrap()
}

/// alice's signing key, the one the genesis document gives her.
static ALICE: std::sync::LazyLock<ea_protocol::signed::RequestSigner> =
    std::sync::LazyLock::new(|| {
        ea_protocol::signed::RequestSigner::generate(
            ea_protocol::signed::SignatureAlgorithm::Ed25519,
        )
        .unwrap()
        .0
        .with_key_id("k1")
    });

/// A genesis document in which alice holds the key [`ALICE`].
fn genesis_document() -> Value {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode(&ALICE.public_key().bytes);
    let genesis = ea_ledger::Genesis::from_json(
        &serde_json::json!({
            "version": 1, "name": "test log", "createdAt": "2023-11-14T22:13:20Z",
            "policy": {"principals": [{"id": "alice", "type": "User",
                "keys": [{"keyId": "k1", "algorithm": "Ed25519", "publicKey": key}]}]}
        })
        .to_string(),
    )
    .unwrap();
    genesis.to_value().unwrap()
}

/// A record of `kind`; `label` tells records apart in `decision`. Genesis records carry a
/// real genesis document, the others an (empty) list of events, as the enclave writes them.
fn record(seq: u64, kind: RecordKind, label: &str) -> Record {
    Record {
        seq,
        time: 1_700_000_000_000 + seq,
        kind,
        actor: if kind == RecordKind::StateChange {
            "alice".into()
        } else {
            "platform".into()
        },
        request: None,
        decision: Value::Text(label.into()),
        changes: match kind {
            RecordKind::Genesis => genesis_document(),
            _ => Value::Array(Vec::new()),
        },
        attestation: None,
    }
}

fn signer(origin: &str, seed: [u8; 32]) -> NoteSigner {
    NoteSigner::new(
        origin,
        Box::new(Ed25519KeyPair::from_seed_unchecked(&seed).unwrap()),
    )
    .unwrap()
}

fn sign_checkpoint(origin: &str, records: &[Vec<u8>], seed: [u8; 32]) -> String {
    let tree =
        ea_audit::MerkleTree::from_leaves(records.iter().map(|r| ea_audit::hash::leaf_hash(r)));
    Checkpoint {
        origin: origin.to_owned(),
        size: tree.size(),
        root: tree.root(),
    }
    .sign(&signer(origin, seed))
    .unwrap()
}

/// Ten records: genesis, the enclave start that attests the log key, state changes, and an
/// approval decision (record 4) attested with its own record hash. The first batch is
/// records 0 and 1 (the key must be attested inside the tree it signs); then one record
/// per batch. `customize` may change a record before it is encoded.
fn build_log(nsm: &dyn Nsm, customize: impl Fn(&mut Record)) -> Log {
    let mut genesis = record(0, RecordKind::Genesis, "the genesis document");
    customize(&mut genesis);
    let genesis_hash = genesis.record_hash().unwrap();
    let origin = log_origin(&genesis_hash);
    let log_key = Ed25519KeyPair::from_seed_unchecked(&LOG_KEY_SEED).unwrap();

    let mut records = Vec::new();
    for seq in 0..10 {
        let mut r = match seq {
            // Customized above already: its hash names the log.
            0 => genesis.clone(),
            1 => {
                let mut start = record(1, RecordKind::EnclaveStart, "started");
                start.attestation = Some(
                    nsm.attestation(
                        Some(genesis_hash.as_bytes()),
                        None,
                        Some(log_key.public_key().as_ref()),
                    )
                    .unwrap(),
                );
                start
            }
            4 => record(4, RecordKind::ApprovalDecision, "approved"),
            seq => record(
                seq,
                RecordKind::StateChange,
                &format!("change number {seq}"),
            ),
        };
        if seq > 0 {
            customize(&mut r);
        }
        if r.kind == RecordKind::ApprovalDecision {
            let own = r.record_hash().unwrap();
            r.attestation = Some(nsm.attestation(Some(own.as_bytes()), None, None).unwrap());
        }
        records.push(r.to_bytes().unwrap());
    }
    let mut batches = vec![(0, 2)];
    batches.extend((2..10).map(|first| (first, 1)));
    let checkpoints = batches
        .iter()
        .map(|(first, count)| {
            sign_checkpoint(&origin, &records[..(first + count) as usize], LOG_KEY_SEED)
        })
        .collect();
    Log {
        records,
        batches,
        checkpoints,
        origin,
    }
}

/// Writes the documented layout directly (independently of govctl's writer).
fn write_dir(dir: &Path, records: &[Vec<u8>], checkpoints: &[String]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut bytes = Vec::new();
    for record in records {
        bytes.extend_from_slice(&(record.len() as u32).to_be_bytes());
        bytes.extend_from_slice(record);
    }
    std::fs::write(dir.join("records.cbor-seq"), bytes).unwrap();
    let mut text = String::new();
    for note in checkpoints {
        text.push_str(note);
        text.push_str("---\n");
    }
    std::fs::write(dir.join("checkpoints.txt"), text).unwrap();
}

fn govctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_govctl"))
        .args(args)
        .output()
        .unwrap()
}

/// The pins for `nsm`'s image, as `--pcr N=HEX` arguments.
fn pcr_args(nsm: &MockNsm) -> Vec<String> {
    nsm.pcrs()
        .into_iter()
        .filter(|(index, _)| *index < 3)
        .flat_map(|(index, value)| {
            [
                "--pcr".to_owned(),
                format!("{index}={}", hex::encode(value)),
            ]
        })
        .collect()
}

struct Verifier {
    _dir: tempfile::TempDir,
    root: PathBuf,
    pcrs: Vec<String>,
}

impl Verifier {
    /// Verifies with `nsm`'s mock root and `pins`' PCRs.
    fn new(nsm: &MockNsm, pins: &MockNsm) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("mock-root.pem");
        std::fs::write(&root, nsm.mock_root_pem().unwrap()).unwrap();
        Self {
            _dir: dir,
            root,
            pcrs: pcr_args(pins),
        }
    }

    fn run(&self, log_dir: &Path, extra: &[&str]) -> (Option<i32>, Json, String) {
        let mut args = vec![
            "audit".to_owned(),
            "verify".to_owned(),
            log_dir.display().to_string(),
            "--root".to_owned(),
            self.root.display().to_string(),
            "--json".to_owned(),
        ];
        args.extend(self.pcrs.iter().cloned());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let output = govctl(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (
            output.status.code(),
            json,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Expects a refusal at `index`; returns the error text.
    fn refused_at(&self, log_dir: &Path, index: u64) -> String {
        let (code, json, stderr) = self.run(log_dir, &[]);
        assert_eq!(code, Some(1), "{json}\n{stderr}");
        assert_eq!(json["verified"], false);
        assert_eq!(json["index"], index, "{json}");
        assert!(
            stderr.contains(&format!("refused at record {index}")),
            "{stderr}"
        );
        json["error"].as_str().unwrap().to_owned()
    }
}

/// Serves `store` through parent-proxy's router on a loopback port.
struct Endpoint {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Endpoint {
    async fn serve(store: Arc<dyn LogStore>) -> Endpoint {
        let pool = EnclavePool::new(PoolConfig {
            enclave: "unix:/nonexistent/enclave.sock".parse().unwrap(),
            size: 1,
            limits: ConnectionLimits::default(),
            connect_timeout: Duration::from_millis(100),
            retry_after: Duration::from_millis(100),
        });
        let state = AppState {
            pool: Arc::new(pool),
            request_timeout: Duration::from_secs(1),
            log: store,
            leaves: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            Transport::InsecureHttp,
            router(state),
            HttpLimits::default(),
            async move {
                let _ = stopped.await;
            },
        ));
        Endpoint {
            url,
            stop: Some(stop),
            server,
        }
    }

    async fn fetch(&self, out: &Path) -> Output {
        let args = [
            "audit".to_owned(),
            "fetch".to_owned(),
            "--endpoint".to_owned(),
            self.url.clone(),
            "--out".to_owned(),
            out.display().to_string(),
        ];
        tokio::task::spawn_blocking(move || {
            govctl(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap()
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.server.await.unwrap().unwrap();
    }
}

fn append_batches(store: &dyn LogStore, log: &Log, batches: std::ops::Range<usize>) {
    for i in batches {
        let (first, count) = log.batches[i];
        let records = &log.records[first as usize..(first + count) as usize];
        store.append(first, records, &log.checkpoints[i]).unwrap();
    }
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_writes_the_documented_layout_and_the_log_verifies() {
    let nsm = mock_nsm(b"enclave image A");
    let log = build_log(&nsm, |_| {});
    let store: Arc<dyn LogStore> = Arc::new(MemoryLogStore::new());
    append_batches(store.as_ref(), &log, 0..log.batches.len());
    let endpoint = Endpoint::serve(store).await;

    let work = tempfile::tempdir().unwrap();
    let fetched = work.path().join("fetched");
    let output = endpoint.fetch(&fetched).await;
    assert_success(&output);
    endpoint.stop().await;

    // Byte for byte the layout of the documentation.
    let expected = work.path().join("expected");
    write_dir(&expected, &log.records, &log.checkpoints);
    for file in ["records.cbor-seq", "checkpoints.txt"] {
        assert_eq!(
            std::fs::read(fetched.join(file)).unwrap(),
            std::fs::read(expected.join(file)).unwrap(),
            "{file}"
        );
    }
    let manifest: Json =
        serde_json::from_slice(&std::fs::read(fetched.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["size"], 10);
    assert_eq!(manifest["checkpoints"], 9);
    assert_eq!(manifest["origin"], log.origin.as_str());
    assert!(manifest["endpoint"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));

    let verifier = Verifier::new(&nsm, &nsm);
    let (code, json, stderr) = verifier.run(&fetched, &[]);
    assert_eq!(code, Some(0), "{json}\n{stderr}");
    assert_eq!(json["verified"], true);
    assert_eq!(json["records"], 10);
    assert_eq!(json["checkpoint_size"], 10);
    assert_eq!(json["checkpoints"], 9);
    assert_eq!(json["origin"], log.origin.as_str());
    assert_eq!(json["log_keys"][0]["index"], 1);

    // The plain-text form, and the PCRs from a measurements file instead of --pcr.
    let pcrs_json = work.path().join("pcrs.json");
    let mut measurements = serde_json::Map::new();
    measurements.insert("HashAlgorithm".into(), "Sha384 { ... }".into());
    for (index, value) in nsm.pcrs().into_iter().filter(|(i, _)| *i < 3) {
        measurements.insert(format!("PCR{index}"), hex::encode(value).into());
    }
    std::fs::write(&pcrs_json, Json::Object(measurements).to_string()).unwrap();
    let output = govctl(&[
        "audit",
        "verify",
        fetched.to_str().unwrap(),
        "--root",
        verifier.root.to_str().unwrap(),
        "--pcrs",
        pcrs_json.to_str().unwrap(),
    ]);
    assert_success(&output);
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.starts_with("verified 10 records up to checkpoint 10"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_fetch_downloads_only_what_was_added() {
    let nsm = mock_nsm(b"enclave image A");
    let log = build_log(&nsm, |_| {});
    let store: Arc<dyn LogStore> = Arc::new(MemoryLogStore::new());
    append_batches(store.as_ref(), &log, 0..4);
    let endpoint = Endpoint::serve(store.clone()).await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("log");

    let first = endpoint.fetch(&dir).await;
    assert_success(&first);
    assert!(
        String::from_utf8_lossy(&first.stdout).starts_with("fetched 5 records and 4 checkpoints")
    );

    // A fetch interrupted after writing part of a record leaves bytes the manifest does not
    // vouch for; the next fetch cuts them off.
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("records.cbor-seq"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, &[0, 0, 0, 9, 1]))
        .unwrap();
    append_batches(store.as_ref(), &log, 4..log.batches.len());
    let second = endpoint.fetch(&dir).await;
    assert_success(&second);
    assert!(
        String::from_utf8_lossy(&second.stdout)
            .starts_with("fetched 5 records and 5 checkpoints (10 records, 9 checkpoints in all)"),
        "{}",
        String::from_utf8_lossy(&second.stdout)
    );
    let nothing_new = endpoint.fetch(&dir).await;
    assert_success(&nothing_new);
    assert!(String::from_utf8_lossy(&nothing_new.stdout)
        .starts_with("fetched 0 records and 0 checkpoints"));
    endpoint.stop().await;

    let expected = work.path().join("expected");
    write_dir(&expected, &log.records, &log.checkpoints);
    for file in ["records.cbor-seq", "checkpoints.txt"] {
        assert_eq!(
            std::fs::read(dir.join(file)).unwrap(),
            std::fs::read(expected.join(file)).unwrap(),
            "{file}"
        );
    }
    let (code, json, _) = Verifier::new(&nsm, &nsm).run(&dir, &[]);
    assert_eq!((code, &json["records"]), (Some(0), &Json::from(10)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_refuses_a_log_that_shrank_or_another_log() {
    let nsm = mock_nsm(b"enclave image A");
    let log = build_log(&nsm, |_| {});
    let full: Arc<dyn LogStore> = Arc::new(MemoryLogStore::new());
    append_batches(full.as_ref(), &log, 0..log.batches.len());
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("log");
    let endpoint = Endpoint::serve(full).await;
    assert_success(&endpoint.fetch(&dir).await);
    endpoint.stop().await;

    let shorter: Arc<dyn LogStore> = Arc::new(MemoryLogStore::new());
    append_batches(shorter.as_ref(), &log, 0..3);
    let endpoint = Endpoint::serve(shorter).await;
    let output = endpoint.fetch(&dir).await;
    endpoint.stop().await;
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("lost or withheld"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let other_log = build_log(&nsm, |r| {
        if r.seq == 0 {
            r.changes = Value::Text("another genesis".into());
        }
    });
    let other: Arc<dyn LogStore> = Arc::new(MemoryLogStore::new());
    append_batches(other.as_ref(), &other_log, 0..other_log.batches.len());
    let endpoint = Endpoint::serve(other).await;
    let output = endpoint.fetch(&dir).await;
    endpoint.stop().await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("another directory"));
}

/// The good log in a fresh directory, changed by `tamper` (records, checkpoints) first.
fn tampered(
    log: &Log,
    tamper: impl FnOnce(&mut Vec<Vec<u8>>, &mut Vec<String>),
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut records = log.records.clone();
    let mut checkpoints = log.checkpoints.clone();
    tamper(&mut records, &mut checkpoints);
    write_dir(dir.path(), &records, &checkpoints);
    dir
}

#[test]
fn each_tampering_is_refused_at_the_right_record() {
    let nsm = mock_nsm(b"enclave image A");
    let log = build_log(&nsm, |_| {});
    let verifier = Verifier::new(&nsm, &nsm);
    let good = tampered(&log, |_, _| {});
    assert_eq!(verifier.run(good.path(), &[]).0, Some(0));

    // A changed byte that keeps the record canonical: only the checkpoint over it can tell,
    // and it names its batch (record 5 alone).
    let changed = tampered(&log, |records, _| {
        let record = &mut records[5];
        let at = record
            .windows(13)
            .position(|w| w == b"change number")
            .unwrap();
        record[at] = b'C';
    });
    let why = verifier.refused_at(changed.path(), 5);
    assert!(why.contains("does not match"), "{why}");

    // A changed byte that breaks the encoding is named by the record itself.
    let broken = tampered(&log, |records, _| records[7][0] ^= 0x20);
    verifier.refused_at(broken.path(), 7);

    // A deleted record.
    let deleted = tampered(&log, |records, _| {
        records.remove(4);
    });
    let why = verifier.refused_at(deleted.path(), 4);
    assert!(why.contains("seq 5"), "{why}");

    // Two swapped records.
    let swapped = tampered(&log, |records, _| records.swap(6, 7));
    verifier.refused_at(swapped.path(), 6);

    // The tail cut off, the larger checkpoints still there.
    let truncated = tampered(&log, |records, _| records.truncate(8));
    let why = verifier.refused_at(truncated.path(), 8);
    assert!(why.contains("the log has only 8"), "{why}");

    // The tail cut off in the middle of a record.
    let cut = tempfile::tempdir().unwrap();
    write_dir(cut.path(), &log.records, &log.checkpoints);
    let file = cut.path().join("records.cbor-seq");
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    verifier.refused_at(cut.path(), 9);

    // The checkpoint of size 7 (batch of record 6) re-signed by a key no enclave attested.
    let resigned = tampered(&log, |records, checkpoints| {
        checkpoints[5] = sign_checkpoint(&log.origin, &records[..7], [99; 32]);
    });
    let why = verifier.refused_at(resigned.path(), 6);
    assert!(why.contains("not signed by an attested log key"), "{why}");
}

#[test]
fn attestation_documents_must_match_the_pins_and_the_root() {
    let image_a = mock_nsm(b"enclave image A");
    let image_b = mock_nsm(b"enclave image B");
    let log_b = build_log(&image_b, |_| {});
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), &log_b.records, &log_b.checkpoints);

    // Image B's documents are sound, but the auditor expects image A's PCRs as the genesis
    // image: the log's first enclave_start is named.
    let why = Verifier::new(&image_b, &image_a).refused_at(dir.path(), 1);
    assert!(
        why.contains("first enclave_start") && why.contains("genesis image"),
        "{why}"
    );
    // The right PCRs under another root.
    Verifier::new(&image_a, &image_b).refused_at(dir.path(), 1);
    // The AWS root (no --root) refuses mock documents.
    let mut args = vec!["audit", "verify", dir.path().to_str().unwrap()];
    let pins = pcr_args(&image_b);
    args.extend(pins.iter().map(String::as_str));
    let output = govctl(&args);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("refused at record 1"));
    // No PCRs at all is a usage error, not a verdict.
    let output = govctl(&["audit", "verify", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--pcr"));
}

#[test]
fn debug_mode_documents_are_refused_unless_allowed() {
    let zero = BTreeMap::from([(0u16, [0u8; 48]), (1, [0; 48]), (2, [0; 48])]);
    let debug = MockNsm::new(MockNsmConfig::new(Measurements::new(zero).unwrap())).unwrap();
    let log = build_log(&debug, |_| {});
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), &log.records, &log.checkpoints);
    let verifier = Verifier::new(&debug, &debug);
    let why = verifier.refused_at(dir.path(), 1);
    assert!(why.contains("debug"), "{why}");
    let (code, json, stderr) = verifier.run(dir.path(), &["--allow-debug"]);
    assert_eq!(code, Some(0), "{json}\n{stderr}");
}

#[test]
fn embedded_requests_are_checked_with_the_keys_of_the_log() {
    // alice's genuine request (her key comes from the genesis record) verifies; a request in
    // her name signed by any other key is refused at its record.
    let nsm = mock_nsm(b"enclave image A");
    let sign = |signer: &ea_protocol::signed::RequestSigner, issued_at: u64| {
        ea_protocol::signed::encode_signed_request(
            &signer
                .sign("alice", &Value::Text("op".into()), issued_at)
                .unwrap(),
        )
    };
    let genuine = sign(&ALICE, 1_700_000_000_000);
    let log = build_log(&nsm, |r| {
        if r.seq == 3 {
            r.request = Some(genuine.clone());
        }
    });
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), &log.records, &log.checkpoints);
    let (code, json, stderr) = Verifier::new(&nsm, &nsm).run(dir.path(), &[]);
    assert_eq!(code, Some(0), "{json}\n{stderr}");

    let (mallory, _) = ea_protocol::signed::RequestSigner::generate(
        ea_protocol::signed::SignatureAlgorithm::Ed25519,
    )
    .unwrap();
    let forged = sign(&mallory.with_key_id("k1"), 1_700_000_000_000);
    let log = build_log(&nsm, |r| {
        if r.seq == 3 {
            r.request = Some(forged.clone());
        }
    });
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), &log.records, &log.checkpoints);
    let why = Verifier::new(&nsm, &nsm).refused_at(dir.path(), 3);
    assert!(why.contains("signature does not verify"), "{why}");

    // A genuine signature on a request issued long before its record was written.
    let backdated = sign(&ALICE, 1_700_000_000_000 - 3_600_000);
    let log = build_log(&nsm, |r| {
        if r.seq == 3 {
            r.request = Some(backdated.clone());
        }
    });
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), &log.records, &log.checkpoints);
    let why = Verifier::new(&nsm, &nsm).refused_at(dir.path(), 3);
    assert!(why.contains("issued"), "{why}");
}

#[test]
fn unsigned_qemu_documents_need_the_insecure_flag() {
    let image = Arc::new(mock_nsm(b"enclave image A"));
    let qemu = ea_attestation::testing::QemuNsm::new(image.clone());
    let log = build_log(&qemu, |_| {});
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), &log.records, &log.checkpoints);
    let path = dir.path().to_str().unwrap();

    // A root (here the mock's) refuses the first document, and says what it is.
    let why = Verifier::new(&image, &image).refused_at(dir.path(), 1);
    assert!(
        why.contains("unsigned document") && why.contains("--insecure-qemu-attestation"),
        "{why}"
    );

    // With the flag: the log verifies, and the run says how little that means.
    let pins = pcr_args(&image);
    let mut args = vec![
        "audit",
        "verify",
        path,
        "--insecure-qemu-attestation",
        "--json",
    ];
    args.extend(pins.iter().map(String::as_str));
    let output = govctl(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("WARNING: insecure QEMU mode"), "{stderr}");

    // The PCRs still decide: another image's pins refuse it.
    let other = pcr_args(&mock_nsm(b"enclave image B"));
    let mut args = vec!["audit", "verify", path, "--insecure-qemu-attestation"];
    args.extend(other.iter().map(String::as_str));
    let output = govctl(&args);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("refused at record 1"));

    // And the flag excludes --root.
    let mut args = vec!["audit", "verify", path, "--insecure-qemu-attestation"];
    args.extend(["--root", "root.pem"]);
    args.extend(pins.iter().map(String::as_str));
    assert_eq!(govctl(&args).status.code(), Some(2));
}
