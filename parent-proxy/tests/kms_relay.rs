//! The KMS relay: bytes from a unix socket (vsock's stand-in) reach a loopback upstream and
//! come back unchanged; the binary refuses an endpoint that is not allow-listed at start.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test"
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use ea_protocol::{Address, Listener, Stream};
use parent_proxy::kms_relay::{self, Endpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An upstream that answers each connection's bytes reversed, after the client shuts its
/// write half (so the relay must carry both directions and the half-close).
async fn reversing_upstream() -> Endpoint {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut received = Vec::new();
                socket.read_to_end(&mut received).await.unwrap();
                received.reverse();
                socket.write_all(&received).await.unwrap();
            });
        }
    });
    format!("127.0.0.1:{port}").parse().unwrap()
}

async fn round_trip(address: &Address, payload: &[u8]) -> Vec<u8> {
    let mut stream = Stream::connect(address).await.unwrap();
    stream.write_all(payload).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    answer
}

#[tokio::test]
async fn bytes_go_through_a_unix_socket_relay_to_the_upstream_and_back() {
    let upstream = reversing_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let address = Address::Unix(dir.path().join("kms-relay.sock"));
    let listener = Listener::bind(&address).await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relay = tokio::spawn(kms_relay::serve(listener, upstream, stopped));

    // Several connections at once, each with its own bytes (a TLS stream is opaque bytes).
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let address = address.clone();
            tokio::spawn(async move {
                let payload: Vec<u8> = (0..100_000u32).map(|n| (n as u8) ^ i).collect();
                let answer = round_trip(&address, &payload).await;
                let mut expected = payload;
                expected.reverse();
                assert_eq!(answer, expected, "connection {i}");
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), relay)
        .await
        .expect("the relay stops")
        .unwrap();
}

fn parent_proxy(dir: &std::path::Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parent-proxy"));
    command
        .args([
            "--listen",
            "127.0.0.1:0",
            "--insecure-http",
            "--enclave",
            &format!("unix:{}", dir.join("enclave.sock").display()),
            "--store-listen",
            &format!("unix:{}", dir.join("store.sock").display()),
            "--store-path",
            &dir.join("log.sqlite").display().to_string(),
        ])
        .args(extra)
        .env("RUST_LOG", "warn");
    command
}

#[test]
fn an_endpoint_that_is_not_allow_listed_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let relay = format!("unix:{}", dir.path().join("kms-relay.sock").display());
    let output = parent_proxy(
        dir.path(),
        &[
            "--kms-relay-listen",
            &relay,
            "--kms-relay-endpoint",
            "127.0.0.1:4430",
        ],
    )
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("KMS relay endpoint 127.0.0.1:4430 is not allowed")
            && stderr.contains("--kms-relay-allow"),
        "{stderr}"
    );

    // An endpoint without the listen address (or the other way round) is a usage error.
    let output = parent_proxy(
        dir.path(),
        &["--kms-relay-endpoint", "kms.eu-west-1.amazonaws.com:443"],
    )
    .output()
    .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--kms-relay-listen"));
}

#[tokio::test]
async fn the_binary_relays_to_an_explicitly_allowed_loopback_endpoint() {
    let upstream = reversing_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let relay_path = dir.path().join("kms-relay.sock");
    let relay = format!("unix:{}", relay_path.display());
    let upstream_text = upstream.to_string();
    let mut child = parent_proxy(
        dir.path(),
        &[
            "--kms-relay-listen",
            &relay,
            "--kms-relay-endpoint",
            &upstream_text,
            "--kms-relay-allow",
            &upstream_text,
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .spawn()
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on http://"), "{line}");
    // The relay binds beside the API; wait for its socket.
    for _ in 0..100 {
        if relay_path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = round_trip(&Address::Unix(relay_path), b"client hello").await;
    assert_eq!(answer, b"olleh tneilc");
    child.kill().unwrap();
    child.wait().unwrap();
}
