//! A stream of signed state changes from concurrent clients, and the checks that follow a
//! fault: every change acknowledged to a client is in the log (at the index its receipt
//! names, with the client's request verbatim), the log verifies, and the state the enclave
//! serves equals the replay of the log.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ea_ledger::Operation;
use ea_protocol::signed::RequestSigner;
use serde_json::{json, Value};

use crate::{binaries, now_ms, Deployment};

/// A change acknowledged to a client: its request, and the record its receipt names.
#[derive(Debug, Clone)]
pub struct Acknowledged {
    /// The principal it created.
    pub id: String,
    /// The signed request, as sent.
    pub request: Vec<u8>,
    /// The record's index.
    pub index: u64,
    /// The record's bytes, as the reply carried them.
    pub record: Vec<u8>,
    /// When the client had the whole reply: the record was durable before this.
    pub at: Instant,
}

/// What the clients need: where to send, and a signer allowed to create principals.
pub struct Clients {
    /// The service's URL.
    pub url: String,
    /// Who signs.
    pub principal: String,
    /// With which key.
    pub signer: RequestSigner,
}

impl Clients {
    /// `user`'s clients of `d`.
    pub fn of(d: &Deployment, user: &str) -> Arc<Clients> {
        Arc::new(Clients {
            url: d.stack.url.clone(),
            principal: user.to_owned(),
            signer: d.signer(user),
        })
    }

    /// A signed request creating principal `id`.
    pub fn create_principal(&self, id: &str) -> Vec<u8> {
        let operation = Operation::Submit {
            command: Box::new(
                serde_json::from_value(json!({"createPrincipal": {"id": id, "type": "User"}}))
                    .expect("a valid command"),
            ),
            justification: None,
        };
        ea_protocol::signed::encode_signed_request(
            &self
                .signer
                .sign(&self.principal, &operation, now_ms())
                .expect("signing"),
        )
    }
}

/// Runs `clients` concurrent clients creating principals until `stop`; returns what was
/// acknowledged (200 with a receipt). Failures (the service down, not durable, recovering)
/// are retried with a new request.
pub async fn stream(
    clients: Arc<Clients>,
    count: usize,
    stop: Arc<AtomicBool>,
) -> Vec<Acknowledged> {
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let counter = Arc::new(AtomicU64::new(0));
    // Each stream creates principals of its own, so that a second stream after a fault is
    // not refused as creating what the first one already did.
    let run = now_ms();
    let mut tasks = Vec::new();
    for _ in 0..count {
        let (clients, stop, acknowledged, counter) = (
            clients.clone(),
            stop.clone(),
            acknowledged.clone(),
            counter.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("an HTTP client");
            while !stop.load(Ordering::SeqCst) {
                let id = format!("p-{run}-{}", counter.fetch_add(1, Ordering::SeqCst));
                let request = clients.create_principal(&id);
                let sent = http
                    .post(format!("{}/v1/requests", clients.url))
                    .header("content-type", "application/cbor")
                    .body(request.clone())
                    .send()
                    .await;
                let Ok(response) = sent else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                if response.status().as_u16() != 200 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                let Ok(body) = response.json::<Value>().await else {
                    continue;
                };
                let at = Instant::now();
                let proof = &body["records"][0];
                let (Some(index), Some(record)) =
                    (proof["receipt"]["index"].as_u64(), proof["record"].as_str())
                else {
                    panic!("an acknowledged change without a receipt: {body}");
                };
                let record = base64::engine::general_purpose::STANDARD
                    .decode(record)
                    .expect("base64 record");
                if let Ok(mut all) = acknowledged.lock() {
                    all.push(Acknowledged {
                        id,
                        request,
                        index,
                        record,
                        at,
                    });
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let all = acknowledged.lock().map(|a| a.clone()).unwrap_or_default();
    all
}

/// Fetches and verifies the log, and checks every acknowledged change against it and the
/// served state against its replay. Panics with the stack's logs when anything is off.
pub fn check_after_faults(d: &Deployment, admin: &str, acknowledged: &[Acknowledged]) {
    let dir = d.stack.dir.path();
    let audit = dir.join(format!("audit-{}", now_ms()));
    let output = std::process::Command::new(binaries().path("govctl"))
        .args(["audit", "fetch", "--endpoint", &d.stack.url, "--out"])
        .arg(&audit)
        .output()
        .expect("running govctl audit fetch");
    assert!(output.status.success(), "{output:?}");
    let replayed = audit.join("replayed-state.json");
    let output = std::process::Command::new(binaries().path("govctl"))
        .args(["audit", "verify"])
        .arg(&audit)
        .arg("--root")
        .arg(d.stack.mock_root())
        .arg("--pcrs")
        .arg(d.measurements())
        .arg("--state-out")
        .arg(&replayed)
        .output()
        .expect("running govctl audit verify");
    assert!(
        output.status.success(),
        "the log does not verify: {output:?}\n{}",
        d.stack.logs()
    );
    let served = d.govctl(admin, &["read", "state"]).expect(0);
    let replayed: Value =
        serde_json::from_str(&std::fs::read_to_string(&replayed).expect("the replayed state"))
            .expect("state JSON");
    assert_eq!(
        served.json["result"]["state"], replayed,
        "the served state is the replay of the log"
    );

    let records = std::fs::read(audit.join("records.cbor-seq")).expect("the records");
    let mut by_index = Vec::new();
    let mut rest = records.as_slice();
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        by_index.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    let principals: Vec<&str> = replayed["principals"]
        .as_array()
        .expect("principals")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    for ack in acknowledged {
        let stored = by_index
            .get(ack.index as usize)
            .unwrap_or_else(|| panic!("acknowledged record {} is missing", ack.index));
        assert_eq!(
            stored, &ack.record,
            "record {} is the acknowledged one",
            ack.index
        );
        let record = ea_audit::record::Record::from_bytes(stored).expect("a record");
        assert_eq!(record.request.as_deref(), Some(ack.request.as_slice()));
        assert!(principals.contains(&ack.id.as_str()), "{} lost", ack.id);
    }
}
