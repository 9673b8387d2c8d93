//! Tampering with the audit log, each kind detected both by `govctl audit verify` and by the
//! enclave's own recovery, at the right record: a changed record, a deleted record, two
//! swapped records, a truncated tail presented with a checkpoint for a larger tree, a
//! checkpoint signed by another key, attestation documents for other PCRs.
//!
//! The genuine log is written by a real stack. For recovery, a hostile store in this process
//! serves the tampered log to a fresh `enclave-app`, which must not start, must name the
//! first bad record, and must write nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "end-to-end test: a failed step should fail the test loudly"
)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ea_audit::note::NoteSigner;
use ea_protocol::rpc::{serve_connection, Connection, ConnectionLimits, Handler};
use ea_protocol::{
    Address, EnclaveRequest, EnclaveResponse, ErrorCode, ErrorReply, Listener, StoreRequest,
    StoreResponse,
};
use ea_tests::{binaries, measurements_json, Deployment, Process};
use serde_bytes::ByteBuf;
use serde_json::json;

/// A log: records in order, and checkpoints by size.
#[derive(Clone)]
struct Log {
    records: Vec<Vec<u8>>,
    checkpoints: Vec<(u64, String)>,
}

/// Writes a genuine log through a real stack: genesis, the enclave start, then one state
/// change per batch.
async fn genuine() -> (Deployment, Log) {
    let d = Deployment::start(
        &["admin"],
        json!({
            "communities": [{"id": "/communities/c1", "addressSpace": "10.0.0.0/8"}],
            "roleAssignments": [{"id": "ra-admin", "principalId": "admin",
                                 "roleDefinitionId": "Owner", "scope": "/"}]
        }),
    );
    for n in 1..=6 {
        d.govctl(
            "admin",
            &[
                "enclave",
                "create",
                &format!("/communities/c1/virtualEnclaves/e{n}"),
                "--address-space",
                &format!("10.{n}.0.0/16"),
            ],
        )
        .expect(0);
    }
    let client = reqwest::Client::new();
    let (status, page) =
        ea_tests::get_json(&client, &format!("{}/v1/log/records?from=0", d.stack.url)).await;
    assert_eq!(status, 200, "{page}");
    let records: Vec<Vec<u8>> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            base64::engine::general_purpose::STANDARD
                .decode(r.as_str().unwrap())
                .unwrap()
        })
        .collect();
    assert_eq!(records.len(), 8, "genesis, start, six changes");
    let (_, page) =
        ea_tests::get_json(&client, &format!("{}/v1/log/checkpoints", d.stack.url)).await;
    let checkpoints = page["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["size"].as_u64().unwrap(),
                c["checkpoint"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (
        d,
        Log {
            records,
            checkpoints,
        },
    )
}

/// A store that serves a given log. It counts every attempt to write; unless `writable`, it
/// refuses them.
#[derive(Clone)]
struct HostileStore {
    log: Arc<std::sync::Mutex<Log>>,
    writable: bool,
    writes: Arc<AtomicUsize>,
}

impl Handler<StoreRequest, StoreResponse> for HostileStore {
    async fn handle(&self, request: StoreRequest) -> StoreResponse {
        let mut log = self.log.lock().unwrap();
        match request {
            StoreRequest::Head => StoreResponse::Head {
                size: log.records.len() as u64,
                checkpoint: log.checkpoints.last().map(|(_, c)| c.clone()),
            },
            StoreRequest::ReadRecords {
                from, max_count, ..
            } => StoreResponse::Records {
                from,
                records: log
                    .records
                    .iter()
                    .skip(from as usize)
                    .take(max_count as usize)
                    .map(|r| ByteBuf::from(r.clone()))
                    .collect(),
            },
            StoreRequest::ReadCheckpoints {
                from_size,
                max_count,
            } => StoreResponse::Checkpoints {
                checkpoints: log
                    .checkpoints
                    .iter()
                    .filter(|(size, _)| *size >= from_size)
                    .take(max_count as usize)
                    .cloned()
                    .collect(),
            },
            StoreRequest::GetSealedKey => StoreResponse::SealedKey { sealed: None },
            StoreRequest::Append {
                first_index,
                records,
                checkpoint,
            } if self.writable && first_index == log.records.len() as u64 => {
                self.writes.fetch_add(1, Ordering::SeqCst);
                log.records
                    .extend(records.into_iter().map(ByteBuf::into_vec));
                let size = log.records.len() as u64;
                log.checkpoints.push((size, checkpoint));
                StoreResponse::Appended { size }
            }
            _ => {
                self.writes.fetch_add(1, Ordering::SeqCst);
                StoreResponse::Error(ErrorReply::new(ErrorCode::StorageFailed, "read-only"))
            }
        }
    }
}

/// Serves `log` from a hostile store to a fresh enclave-app (the stack's mock CA, the given
/// measurements) and returns its description once it has given up or started.
async fn recover(
    d: &Deployment,
    log: Log,
    writable: bool,
    measurements: &Path,
    name: &str,
) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let store_socket = dir.path().join("store.sock");
    let listener = Listener::bind(&Address::Unix(store_socket.clone()))
        .await
        .unwrap();
    let store = HostileStore {
        log: Arc::new(std::sync::Mutex::new(log)),
        writable,
        writes: Arc::default(),
    };
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let serving = store.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_connection::<StoreRequest, StoreResponse, _>(
                stream,
                serving.clone(),
                ConnectionLimits::default(),
                stopped.clone(),
            ));
        }
    });
    let socket = dir.path().join("enclave.sock");
    let args: Vec<String> = vec![
        "--listen".into(),
        format!("unix:{}", socket.display()),
        "--nsm".into(),
        "mock".into(),
        "--mock-ca-dir".into(),
        d.stack.mock_ca_dir().display().to_string(),
        "--mock-measurements".into(),
        measurements.display().to_string(),
        "--store".into(),
        format!("unix:{}", store_socket.display()),
        "--log-key".into(),
        "ephemeral".into(),
    ];
    let _enclave = Process::spawn(
        &binaries().path("enclave-app"),
        &args,
        &dir.path().join(format!("{name}.log")),
    );
    ea_tests::wait_for_path(&socket, Duration::from_secs(30));
    let log = dir.path().join(format!("{name}.log"));
    let mut attempts = 0;
    let connection = loop {
        match Connection::<EnclaveRequest, EnclaveResponse>::connect(
            &Address::Unix(socket.clone()),
            ConnectionLimits::default(),
        )
        .await
        {
            Ok(connection) => break connection,
            Err(error) if attempts < 50 => {
                attempts += 1;
                let _ = error;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!(
                "{name}: cannot reach the enclave: {error}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let EnclaveResponse::Describe(description) =
            connection.call(&EnclaveRequest::Describe).await.unwrap()
        else {
            panic!("not a description")
        };
        if matches!(description.phase.as_str(), "failed" | "serving") {
            if !writable {
                assert_eq!(
                    store.writes.load(Ordering::SeqCst),
                    0,
                    "{name}: the enclave tried to write to a log that does not verify"
                );
            }
            return serde_json::to_value(&description).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{name}: still {}",
            description.phase
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes `log` in the export layout and runs `govctl audit verify --json` on it.
fn verify(log: &Log, dir: &Path, root: &Path, pcrs: &Path) -> serde_json::Value {
    std::fs::create_dir_all(dir).unwrap();
    let mut bytes = Vec::new();
    for record in &log.records {
        bytes.extend_from_slice(&(record.len() as u32).to_be_bytes());
        bytes.extend_from_slice(record);
    }
    std::fs::write(dir.join("records.cbor-seq"), bytes).unwrap();
    let mut text = String::new();
    for (_, note) in &log.checkpoints {
        text.push_str(note);
        text.push_str("---\n");
    }
    std::fs::write(dir.join("checkpoints.txt"), text).unwrap();
    let output = std::process::Command::new(binaries().path("govctl"))
        .args(["audit", "verify", "--json", "--root"])
        .arg(root)
        .arg("--pcrs")
        .arg(pcrs)
        .arg(dir)
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

struct Case {
    name: &'static str,
    log: Log,
    measurements: PathBuf,
    index: u64,
    why: &'static str,
}

fn tampered(genuine: &Log, change: impl FnOnce(&mut Log)) -> Log {
    let mut log = genuine.clone();
    change(&mut log);
    log
}

/// A checkpoint for the same tree as `note`, signed by a key the log never attested.
fn forged(note: &str) -> String {
    let (_, checkpoint) = ea_audit::checkpoint::parse_unverified(note).unwrap();
    let seed = [0x66u8; 32];
    let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    let signer = NoteSigner::new(&checkpoint.origin, Box::new(key)).unwrap();
    checkpoint.sign(&signer).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tampering_is_caught_by_the_auditor_and_by_the_enclave_at_the_right_record() {
    let (d, log) = genuine().await;
    let pcrs = d.measurements();
    let other_pcrs = d.stack.dir.path().join("other-pcrs.json");
    std::fs::write(&other_pcrs, measurements_json("ee").to_string()).unwrap();
    let scratch = tempfile::tempdir().unwrap();

    // The genuine log passes both.
    let verdict = verify(
        &log,
        &scratch.path().join("genuine"),
        &d.stack.mock_root(),
        &pcrs,
    );
    assert_eq!(verdict["verified"], true, "{verdict}");
    let described = recover(&d, log.clone(), true, &pcrs, "genuine").await;
    assert_eq!(described["phase"], "serving", "{described}");

    let cases = vec![
        Case {
            name: "a changed byte in record 5",
            log: tampered(&log, |l| {
                let record = &mut l.records[5];
                let at = record.windows(7).position(|w| w == b"applied").unwrap();
                record[at] = b'A';
            }),
            measurements: pcrs.clone(),
            index: 5,
            why: "root",
        },
        Case {
            name: "record 4 deleted",
            log: tampered(&log, |l| {
                l.records.remove(4);
            }),
            measurements: pcrs.clone(),
            index: 4,
            why: "seq 5",
        },
        Case {
            name: "records 3 and 6 swapped",
            log: tampered(&log, |l| l.records.swap(3, 6)),
            measurements: pcrs.clone(),
            index: 3,
            why: "seq 6",
        },
        Case {
            name: "the tail cut at 5, the checkpoint for 8 kept",
            log: tampered(&log, |l| l.records.truncate(5)),
            measurements: pcrs.clone(),
            index: 5,
            why: "the log has only 5",
        },
        Case {
            // The parent stores a batch and its checkpoint in one transaction: a record
            // after the last checkpoint is one the enclave never wrote. Replayed, it would
            // change the state and be signed into the next checkpoint.
            name: "a record the parent appended after the last checkpoint",
            log: tampered(&log, |l| {
                let end = l.records.len() as u64;
                let mut record = ea_audit::Record::from_bytes(&l.records[5]).unwrap();
                record.seq = end;
                l.records.push(record.to_bytes().unwrap());
            }),
            measurements: pcrs.clone(),
            index: log.records.len() as u64,
            why: "not covered by any checkpoint",
        },
        Case {
            name: "the checkpoint for 6 signed by another key",
            log: tampered(&log, |l| {
                let entry = l
                    .checkpoints
                    .iter_mut()
                    .find(|(size, _)| *size == 6)
                    .unwrap();
                entry.1 = forged(&entry.1);
            }),
            measurements: pcrs.clone(),
            index: 5,
            why: "not signed by an attested log key",
        },
        Case {
            name: "attestation documents for other PCRs",
            log: log.clone(),
            measurements: other_pcrs.clone(),
            index: 1,
            why: "PCR",
        },
    ];
    for case in cases {
        let dir = scratch.path().join(case.name.replace(' ', "-"));
        let verdict = verify(&case.log, &dir, &d.stack.mock_root(), &case.measurements);
        assert_eq!(verdict["verified"], false, "{}: {verdict}", case.name);
        assert_eq!(verdict["index"], case.index, "{}: {verdict}", case.name);
        assert!(
            verdict["error"].as_str().unwrap().contains(case.why),
            "{}: {verdict}",
            case.name
        );

        let described = recover(&d, case.log, false, &case.measurements, case.name).await;
        assert_eq!(described["phase"], "failed", "{}: {described}", case.name);
        let error = described["error"].as_str().unwrap();
        if case.measurements == other_pcrs {
            // The log is sound; the enclave's image is not one it admits: it says so, with
            // its PCRs and the admitted image (the auditor above, who pinned the other
            // PCRs as the genesis image, names record 1).
            assert!(
                error.contains("not admitted") && error.contains(&"ee".repeat(48)),
                "{}: {error}",
                case.name
            );
            continue;
        }
        assert!(
            error.contains(&format!("record {}", case.index)),
            "{}: the enclave names record {}: {error}",
            case.name,
            case.index
        );
    }
}
