//! What the proxy does for an enclave booted under QEMU: it answers the boot heartbeat
//! (`--enclave-heartbeat`) and reaches the enclave through a hybrid vsock backend
//! (`--enclave vsock-uds:<path>:<port>`). Unix sockets stand in for everything; a fake
//! backend plays vhost-device-vsock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test"
)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ea_protocol::rpc::{serve_connection, ConnectionLimits, Handler};
use ea_protocol::{Address, EnclaveRequest, EnclaveResponse, HealthReport, Listener, Stream};
use parent_proxy::heartbeat::{self, HEARTBEAT};
use parent_proxy::{EnclavePool, PoolConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `byte` on a new heartbeat connection; returns what came back before the close.
async fn beat(address: &Address, byte: u8) -> Vec<u8> {
    let mut stream = Stream::connect(address).await.unwrap();
    stream.write_all(&[byte]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the proxy answers or closes")
        .unwrap();
    answer
}

#[tokio::test]
async fn the_heartbeat_is_echoed_a_wrong_byte_is_not_and_serving_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let address = Address::Unix(dir.path().join("vhost.sock_9000"));
    let listener = Listener::bind(&address).await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(heartbeat::serve(listener, stopped));

    assert_eq!(beat(&address, HEARTBEAT).await, [HEARTBEAT]);
    assert_eq!(
        beat(&address, 0x00).await,
        b"",
        "a wrong byte gets no answer"
    );
    // A rebooted enclave sends its heartbeat again.
    assert_eq!(beat(&address, HEARTBEAT).await, [HEARTBEAT]);
    // A connection that closes without a byte does not stop it either.
    drop(Stream::connect(&address).await.unwrap());
    assert_eq!(beat(&address, HEARTBEAT).await, [HEARTBEAT]);

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the heartbeat service stops")
        .unwrap();
}

/// An enclave that is always healthy.
#[derive(Clone)]
struct Healthy;

impl Handler<EnclaveRequest, EnclaveResponse> for Healthy {
    async fn handle(&self, request: EnclaveRequest) -> EnclaveResponse {
        match request {
            EnclaveRequest::Health => EnclaveResponse::Health(HealthReport::ok()),
            other => panic!("unexpected request {other:?}"),
        }
    }
}

/// A fake vhost-device-vsock at `path`: each `CONNECT 5000\n` gets `OK <n>\n` and then the
/// healthy enclave on the same stream; any other port is closed, as for a guest that does
/// not listen there.
fn fake_backend(path: &Path) {
    let listener = tokio::net::UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        let mut host_port = 1024u32;
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            host_port += 1;
            tokio::spawn(async move {
                let mut line = Vec::new();
                let mut byte = [0u8; 1];
                while byte != *b"\n" {
                    stream.read_exact(&mut byte).await.unwrap();
                    line.push(byte[0]);
                }
                if line != b"CONNECT 5000\n" {
                    return;
                }
                stream
                    .write_all(format!("OK {host_port}\n").as_bytes())
                    .await
                    .unwrap();
                let (_stop, stopped) = tokio::sync::watch::channel(false);
                serve_connection(
                    Stream::Unix(stream),
                    Healthy,
                    ConnectionLimits::default(),
                    stopped,
                )
                .await;
            });
        }
    });
}

#[tokio::test]
async fn the_pool_reaches_the_enclave_through_a_hybrid_vsock_backend() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vhost.sock");
    fake_backend(&path);
    let config = |port| PoolConfig {
        enclave: Address::VsockUds {
            path: path.clone(),
            port,
        },
        size: 2,
        limits: ConnectionLimits::default(),
        connect_timeout: Duration::from_secs(5),
        retry_after: Duration::from_millis(10),
    };
    let pool = EnclavePool::new(config(5000));
    for _ in 0..4 {
        let answer = pool
            .call(&EnclaveRequest::Health, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(answer, EnclaveResponse::Health(HealthReport::ok()));
    }

    // A port the guest does not listen on: the backend closes, the caller hears why.
    let pool = EnclavePool::new(config(5999));
    let error = pool
        .call(&EnclaveRequest::Health, Duration::from_secs(5))
        .await
        .unwrap_err();
    let message = error.message;
    assert!(
        message.contains("CONNECT 5999") && message.contains("closed"),
        "{message}"
    );
}

fn parent_proxy(dir: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parent-proxy"));
    command.args([
        "--listen",
        "127.0.0.1:0",
        "--insecure-http",
        "--store-path",
        &dir.join("log.sqlite").display().to_string(),
    ]);
    if !extra.contains(&"--store-listen") {
        command.args([
            "--store-listen",
            &format!("unix:{}", dir.join("store.sock").display()),
        ]);
    }
    command.args(extra).env("RUST_LOG", "info");
    command
}

/// Reads the "listening on http://..." line; returns the API's address.
fn listening(child: &mut Child) -> std::net::SocketAddr {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap()
}

/// `GET path` over plain HTTP/1.1; the whole response.
async fn get(api: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(api).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn the_binary_answers_the_heartbeat_and_serves_a_vsock_uds_enclave() {
    let dir = tempfile::tempdir().unwrap();
    let backend = dir.path().join("vhost.sock");
    fake_backend(&backend);
    let heartbeat_path = dir.path().join("vhost.sock_9000");
    let mut child = parent_proxy(
        dir.path(),
        &[
            "--enclave",
            &format!("vsock-uds:{}:5000", backend.display()),
            "--enclave-heartbeat",
            &format!("unix:{}", heartbeat_path.display()),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let api = listening(&mut child);

    // Bound before "listening on" is printed, so an enclave booted next finds it.
    let heartbeat = Address::Unix(heartbeat_path);
    assert_eq!(beat(&heartbeat, HEARTBEAT).await, [HEARTBEAT]);
    assert_eq!(beat(&heartbeat, 0x42).await, b"");
    assert_eq!(beat(&heartbeat, HEARTBEAT).await, [HEARTBEAT]);

    let response = get(api, "/v1/health").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""status":"ok""#), "{response}");

    child.kill().unwrap();
    child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(
        stderr.matches("enclave heartbeat received").count(),
        2,
        "{stderr}"
    );
    assert!(
        stderr.contains("WARN") && stderr.contains("wrong byte") && stderr.contains("0x42"),
        "{stderr}"
    );
}

#[test]
fn the_binary_refuses_to_listen_on_a_hybrid_vsock_socket() {
    let dir = tempfile::tempdir().unwrap();
    let backend = dir.path().join("vhost.sock");
    for flag in ["--enclave-heartbeat", "--store-listen"] {
        let output = parent_proxy(
            dir.path(),
            &[
                "--enclave",
                &format!("vsock-uds:{}:5000", backend.display()),
                flag,
                &format!("vsock-uds:{}:9000", backend.display()),
            ],
        )
        .output()
        .unwrap();
        assert!(!output.status.success(), "{flag}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(flag) && stderr.contains(&format!("unix:{}_9000", backend.display())),
            "{stderr}"
        );
    }
}
