//! Resource bounds: each limit, exceeded, gives a clear error (or, where waiting is the
//! answer, backpressure), and the service goes on working. Body size, proxy in-flight
//! requests and frame size are tested in relay.rs and frames.rs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "end-to-end test: a failed step should fail the test loudly"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ea_protocol::frame::{read_frame, write_frame};
use ea_protocol::{decode_message, encode_message, EnclaveRequest, EnclaveResponse, ErrorCode};
use ea_protocol::{StoreRequest, DEFAULT_MAX_FRAME_LEN};
use ea_tests::hostile::{HostileDeployment, Side};
use ea_tests::load::{check_after_faults, stream, Clients};
use ea_tests::{get_json, Deployment};
use serde_json::{json, Value};

fn policy() -> Value {
    json!({
        "communities": [{"id": "/communities/c1", "addressSpace": "10.0.0.0/8", "approvalSettings": {
            "enclaveCreation": {"approvalPolicy": "Required", "minimumApproversRequired": 1}
        }}],
        "roleAssignments": [
            {"id": "ra-admin", "principalId": "admin", "roleDefinitionId": "Owner", "scope": "/"},
            {"id": "ra-alice", "principalId": "alice", "roleDefinitionId": "Community Contributor",
             "scope": "/communities/c1"}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connection_over_the_proxy_limit_gets_503_and_the_others_go_on() {
    let d = tokio::task::spawn_blocking(|| {
        Deployment::start_with_proxy(
            &["admin", "alice"],
            policy(),
            json!({}),
            &[],
            &["--max-connections", "2"],
        )
    })
    .await
    .unwrap();
    let address = d.stack.url.trim_start_matches("http://").to_owned();
    // Two idle connections take both slots.
    let held: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(&address).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = reqwest::Client::new();
    let (status, body) = get_json(&client, &format!("{}/v1/health", d.stack.url)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "too_many_connections");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = get_json(
        &reqwest::Client::new(),
        &format!("{}/v1/health", d.stack.url),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn health_on(socket: &std::path::Path) -> Option<EnclaveResponse> {
    let mut stream = tokio::net::UnixStream::connect(socket).await.ok()?;
    let request = encode_message(5, &EnclaveRequest::Health).unwrap();
    write_frame(&mut stream, &request, DEFAULT_MAX_FRAME_LEN)
        .await
        .ok()?;
    let frame = tokio::time::timeout(
        Duration::from_secs(5),
        read_frame(&mut stream, DEFAULT_MAX_FRAME_LEN),
    )
    .await
    .ok()?
    .ok()??;
    decode_message::<EnclaveResponse>(&frame)
        .ok()
        .map(|e| e.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_enclave_limit_is_told_why_and_the_proxy_keeps_serving() {
    let d = tokio::task::spawn_blocking(|| {
        // One pooled connection, opened by the genesis submission before the test fills
        // the enclave: an operator sizes --max-connections above the proxy's pool.
        Deployment::start_with_proxy(
            &["admin", "alice"],
            policy(),
            json!({}),
            &["--max-connections", "6"],
            &["--pool-size", "1"],
        )
    })
    .await
    .unwrap();
    let socket = d.stack.enclave_socket();
    // The proxy holds one; whatever else connects takes the rest, then is refused.
    let mut held = Vec::new();
    let refusal = loop {
        assert!(held.len() < 6, "never refused");
        let mut stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
        let request = encode_message(1, &EnclaveRequest::Health).unwrap();
        // A refused connection gets its error frame at once and is then closed, so the
        // request may meet a closed socket (broken pipe); the refusal is still there to read.
        let _ = write_frame(&mut stream, &request, DEFAULT_MAX_FRAME_LEN).await;
        let frame = tokio::time::timeout(
            Duration::from_secs(5),
            read_frame(&mut stream, DEFAULT_MAX_FRAME_LEN),
        )
        .await
        .expect("an answer in time")
        .unwrap()
        .expect("a frame");
        match decode_message::<EnclaveResponse>(&frame).unwrap().body {
            EnclaveResponse::Health(_) => held.push(stream),
            EnclaveResponse::Error(error) => break error,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(refusal.code, ErrorCode::Overloaded);
    assert!(refusal.message.contains("--max-connections"), "{refusal}");
    // The proxy's own connections are unaffected.
    let (status, _) = get_json(
        &reqwest::Client::new(),
        &format!("{}/v1/health", d.stack.url),
    )
    .await;
    assert_eq!(status, 200);
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(matches!(
        health_on(&socket).await,
        Some(EnclaveResponse::Health(_))
    ));
}

#[test]
fn a_full_replay_cache_refuses_new_requests_and_forgets_nothing() {
    let mut d = Deployment::start_with(
        &["admin", "alice"],
        policy(),
        json!({}),
        &["--replay-cache-capacity", "3"],
    );
    let mut refused = None;
    for i in 0..5 {
        let gov = d.govctl("admin", &["principal", "create", &format!("p{i}")]);
        if gov.code != Some(0) {
            refused = Some(gov);
            break;
        }
    }
    let refused = refused.expect("the cache never filled");
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert_eq!(
        refused.error_code(),
        "replay_cache_full",
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("503"), "{}", refused.stderr);
    // What needs no nonce still works: health, describe, attestation.
    d.wait_serving(Duration::from_secs(5));
    let described = std::process::Command::new(ea_tests::binaries().path("govctl"))
        .args(["describe", "--endpoint", &d.stack.url])
        .output()
        .unwrap();
    assert!(described.status.success());
    // An operator gives it more room (the nonces held are rebuilt from the log, so nothing
    // accepted becomes replayable): requests go through again.
    d.stack.kill_enclave();
    d.stack
        .start_enclave_with(&["--replay-cache-capacity", "1000"]);
    d.wait_serving(Duration::from_secs(30));
    d.govctl("admin", &["principal", "create", "after"])
        .expect(0);
    check_after_faults(&d, "admin", &[]);
}

#[test]
fn pending_approvals_per_requester_are_bounded() {
    let d = Deployment::start_with(
        &["admin", "alice"],
        policy(),
        json!({"maxPendingApprovalsPerRequester": 2}),
        &[],
    );
    let create = |name: &str| {
        d.govctl(
            "alice",
            &[
                "enclave",
                "create",
                &format!("/communities/c1/virtualEnclaves/{name}"),
                "--address-space",
                "10.9.0.0/16",
                "--justification",
                "limits",
            ],
        )
    };
    let mut ids = Vec::new();
    for name in ["e1", "e2"] {
        let pending = create(name).expect(0);
        assert_eq!(pending.json["outcome"], "pending", "{}", pending.stdout);
        ids.push(pending.json["approval"]["id"].as_str().unwrap().to_owned());
    }
    let third = create("e3");
    assert_eq!(
        third.error_code(),
        "too_many_pending_approvals",
        "{}\n{}",
        third.stdout,
        third.stderr
    );
    // Others may still submit, and alice may once one of hers is closed.
    d.govctl("alice", &["approvals", "delete", &ids[0]])
        .expect(0);
    let again = create("e3").expect(0);
    assert_eq!(again.json["outcome"], "pending");
}

#[test]
fn batches_never_exceed_max_batch_and_nothing_is_lost() {
    let h = HostileDeployment::start(&["admin", "alice"], policy(), &["--max-batch", "2"], &[]);
    h.store.forget();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let streaming = runtime.spawn(stream(Clients::of(&h.deployment, "admin"), 8, stop.clone()));
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    let acknowledged = runtime.block_on(streaming).unwrap();
    assert!(acknowledged.len() > 10, "{}", acknowledged.len());
    let sizes: Vec<usize> = h
        .store
        .seen()
        .iter()
        .filter(|f| f.from == Side::Client)
        .filter_map(|f| match f.decode::<StoreRequest>()?.body {
            StoreRequest::Append { records, .. } => Some(records.len()),
            _ => None,
        })
        .collect();
    // One record per request here: a batch of at most 2 requests is at most 2 records.
    assert!(sizes.iter().all(|&n| n <= 2), "{sizes:?}");
    assert!(
        sizes.contains(&2),
        "8 clients never filled a batch: {sizes:?}"
    );
    check_after_faults(&h.deployment, "admin", &acknowledged);
}

#[test]
fn a_decision_queue_of_one_is_backpressure_not_failure() {
    // Clients against a decision loop that takes one request at a time: the others wait in
    // their connections, none is refused, and everything acknowledged is in the log.
    let d = Deployment::start_with(
        &["admin", "alice"],
        policy(),
        json!({}),
        &["--decision-queue", "1"],
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let clients = Clients::of(&d, "admin");
    let http = reqwest::Client::new();
    let burst: Vec<u16> = runtime.block_on(async {
        let mut sends = tokio::task::JoinSet::new();
        for i in 0..32 {
            let request = clients.create_principal(&format!("burst-{i}"));
            let send = http
                .post(format!("{}/v1/requests", clients.url))
                .header("content-type", "application/cbor")
                .body(request)
                .send();
            sends.spawn(async move { send.await.map_or(0, |r| r.status().as_u16()) });
        }
        sends.join_all().await
    });
    assert!(burst.iter().all(|&status| status == 200), "{burst:?}");
    let stop = Arc::new(AtomicBool::new(false));
    let streaming = runtime.spawn(stream(clients, 8, stop.clone()));
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::SeqCst);
    let acknowledged = runtime.block_on(streaming).unwrap();
    assert!(acknowledged.len() > 10, "{}", acknowledged.len());
    check_after_faults(&d, "admin", &acknowledged);
}

#[test]
fn one_request_in_flight_per_enclave_connection_is_backpressure_not_failure() {
    let d = Deployment::start_with(
        &["admin", "alice"],
        policy(),
        json!({}),
        &["--max-in-flight-per-connection", "1"],
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let streaming = runtime.spawn(stream(Clients::of(&d, "admin"), 8, stop.clone()));
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::SeqCst);
    let acknowledged = runtime.block_on(streaming).unwrap();
    assert!(acknowledged.len() > 10, "{}", acknowledged.len());
    check_after_faults(&d, "admin", &acknowledged);
}
