//! The log export routes, in-process through the API router, over a store of real ea-audit
//! records; and that they sit behind the same limits as every other route.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::{FullDisk, LogBuilder};
use ea_audit::Record;
use ea_protocol::rpc::ConnectionLimits;
use http_body_util::BodyExt;
use parent_proxy::api::{router, AppState};
use parent_proxy::store::{LogStore, MemoryLogStore, SqliteLogStore};
use parent_proxy::{serve, EnclavePool, HttpLimits, PoolConfig, Transport};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

fn state(log: Arc<dyn LogStore>) -> AppState {
    // No enclave is running: the export routes must not need one.
    let pool = EnclavePool::new(PoolConfig {
        enclave: "unix:/nonexistent/enclave.sock".parse().unwrap(),
        size: 1,
        limits: ConnectionLimits::default(),
        connect_timeout: Duration::from_millis(100),
        retry_after: Duration::from_millis(100),
    });
    AppState {
        pool: Arc::new(pool),
        request_timeout: Duration::from_secs(1),
        log,
        leaves: Default::default(),
    }
}

async fn get(log: &Arc<dyn LogStore>, uri: &str) -> (StatusCode, Value) {
    let response = router(state(log.clone()))
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {bytes:?}"));
    (status, json)
}

fn decoded(json: &Value) -> Vec<Vec<u8>> {
    json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| STANDARD.decode(r.as_str().unwrap()).unwrap())
        .collect()
}

fn error_code(json: &Value) -> &str {
    json["error"]["code"].as_str().unwrap()
}

/// A SQLite store in a temporary directory, filled with batches of these sizes.
fn filled(batches: &[u64]) -> (tempfile::TempDir, Arc<dyn LogStore>, Vec<(u64, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteLogStore::open(dir.path().join("log.sqlite")).unwrap();
    let checkpoints = LogBuilder::new().fill(&store, batches);
    (dir, Arc::new(store), checkpoints)
}

#[tokio::test]
async fn an_empty_log_has_no_checkpoint() {
    let log: Arc<dyn LogStore> = Arc::new(MemoryLogStore::new());
    let (status, json) = get(&log, "/v1/log/checkpoint").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&json), "log_empty");
    let (status, json) = get(&log, "/v1/log/records?from=0").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json, serde_json::json!({"from": 0, "records": []}));
    let (status, json) = get(&log, "/v1/log/checkpoints").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json, serde_json::json!({"checkpoints": []}));
}

#[tokio::test]
async fn serves_the_latest_checkpoint_the_records_and_every_checkpoint() {
    let (_dir, log, written) = filled(&[2, 5, 1, 17]);
    let (status, json) = get(&log, "/v1/log/checkpoint").await;
    assert_eq!(status, StatusCode::OK);
    let (last_size, last_note) = written.last().unwrap();
    assert_eq!(
        json,
        serde_json::json!({"size": last_size, "checkpoint": last_note})
    );

    // Every record, decoded from base64, is the canonical record at its index.
    let (status, json) = get(&log, "/v1/log/records?from=0").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["from"], 0);
    let records = decoded(&json);
    assert_eq!(records.len(), 25);
    for (index, bytes) in records.iter().enumerate() {
        let record = Record::from_bytes(bytes).unwrap();
        assert_eq!(record, LogBuilder::record_at(index as u64));
    }

    // Half-open ranges.
    let (_, json) = get(&log, "/v1/log/records?from=3&to=7").await;
    assert_eq!(json["from"], 3);
    assert_eq!(decoded(&json), records[3..7]);
    let (_, json) = get(&log, "/v1/log/records?from=20&to=100").await;
    assert_eq!(decoded(&json), records[20..]);
    let (_, json) = get(&log, "/v1/log/records?from=4&to=4").await;
    assert!(decoded(&json).is_empty());
    let (_, json) = get(&log, "/v1/log/records?from=25").await;
    assert!(decoded(&json).is_empty());

    let (status, json) = get(&log, "/v1/log/checkpoints?from_size=0").await;
    assert_eq!(status, StatusCode::OK);
    let expected: Vec<Value> = written
        .iter()
        .map(|(size, note)| serde_json::json!({"size": size, "checkpoint": note}))
        .collect();
    assert_eq!(json["checkpoints"], Value::Array(expected.clone()));
    let (_, json) = get(&log, "/v1/log/checkpoints?from_size=3").await;
    assert_eq!(json["checkpoints"], Value::Array(expected[1..].to_vec()));
    let (_, json) = get(&log, "/v1/log/checkpoints?from_size=26").await;
    assert_eq!(json["checkpoints"], Value::Array(vec![]));
}

#[tokio::test]
async fn pages_hold_at_most_a_thousand() {
    let log: Arc<dyn LogStore> = Arc::new(MemoryLogStore::new());
    let mut builder = LogBuilder::new();
    // 1,205 records, one checkpoint per record: 1,205 checkpoints.
    builder.fill(log.as_ref(), &[1; 1205]);

    let (_, json) = get(&log, "/v1/log/records?from=0").await;
    assert_eq!(decoded(&json).len(), 1000);
    let (_, json) = get(&log, "/v1/log/records?from=1000&to=5000").await;
    assert_eq!(decoded(&json).len(), 205);

    let (_, json) = get(&log, "/v1/log/checkpoints").await;
    let page = json["checkpoints"].as_array().unwrap();
    assert_eq!(page.len(), 1000);
    assert_eq!(page.last().unwrap()["size"], 1000);
    let (_, json) = get(&log, "/v1/log/checkpoints?from_size=1001").await;
    assert_eq!(json["checkpoints"].as_array().unwrap().len(), 205);
}

#[tokio::test]
async fn bad_query_parameters_get_a_json_400() {
    let log: Arc<dyn LogStore> = Arc::new(MemoryLogStore::new());
    for uri in [
        "/v1/log/records",
        "/v1/log/records?from=abc",
        "/v1/log/records?from=-1",
        "/v1/log/records?from=5&to=3",
        "/v1/log/records?from=1&limit=3",
        "/v1/log/records?from=18446744073709551616",
        "/v1/log/checkpoints?from_size=x",
        "/v1/log/checkpoints?size=1",
    ] {
        let (status, json) = get(&log, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(error_code(&json), "bad_request", "{uri}");
        assert!(!json["error"]["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_failing_store_is_a_503() {
    let log: Arc<dyn LogStore> = Arc::new(FullDisk);
    for uri in [
        "/v1/log/checkpoint",
        "/v1/log/records?from=0",
        "/v1/log/checkpoints",
    ] {
        let (status, json) = get(&log, uri).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert_eq!(error_code(&json), "storage_failed");
    }
}

/// Sends one raw HTTP/1.1 request and returns the status line.
async fn status_line(address: std::net::SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    while !response.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed without a status line");
        response.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    text.lines().next().unwrap().to_owned()
}

#[tokio::test]
async fn the_export_routes_are_behind_the_body_limit() {
    let (_dir, log, _) = filled(&[3]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let limits = HttpLimits {
        max_body_bytes: 16,
        ..HttpLimits::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        Transport::InsecureHttp,
        router(state(log)),
        limits,
        async move {
            let _ = stopped.await;
        },
    ));

    let ok = status_line(
        address,
        "GET /v1/log/checkpoint HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.contains(" 200 "), "{ok}");
    let body = "x".repeat(64);
    let too_large = status_line(
        address,
        &format!(
            "GET /v1/log/records?from=0 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(too_large.contains(" 413 "), "{too_large}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn consistency_proofs_between_any_two_sizes_verify_against_the_roots() {
    let (_dir, log, _) = filled(&[2, 5, 1, 17]);
    let (_, json) = get(&log, "/v1/log/records?from=0").await;
    let tree = ea_audit::MerkleTree::from_leaves(
        decoded(&json)
            .iter()
            .map(|record| ea_audit::hash::leaf_hash(record)),
    );
    for from in 0..=25u64 {
        for to in from..=25u64 {
            let (status, json) =
                get(&log, &format!("/v1/log/consistency?from={from}&to={to}")).await;
            assert_eq!(status, StatusCode::OK, "{from}..{to}: {json}");
            assert_eq!(
                (json["from"].as_u64(), json["to"].as_u64()),
                (Some(from), Some(to))
            );
            let proof: Vec<ea_audit::Hash> = json["proof"]
                .as_array()
                .unwrap()
                .iter()
                .map(|node| {
                    ea_audit::Hash(
                        STANDARD
                            .decode(node.as_str().unwrap())
                            .unwrap()
                            .try_into()
                            .unwrap(),
                    )
                })
                .collect();
            if from == 0 || from == to {
                assert!(proof.is_empty(), "{from}..{to}");
            }
            ea_audit::proof::verify_consistency(
                from,
                to,
                &tree.root_at(from).unwrap(),
                &tree.root_at(to).unwrap(),
                &proof,
            )
            .unwrap_or_else(|e| panic!("{from}..{to}: {e}"));
        }
    }
    let (status, json) = get(&log, "/v1/log/consistency?from=3&to=26").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
    assert_eq!(error_code(&json), "beyond_the_log");
    let (status, json) = get(&log, "/v1/log/consistency?from=5&to=4").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    let (status, _) = get(&log, "/v1/log/consistency?from=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
