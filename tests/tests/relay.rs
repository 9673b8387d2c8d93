//! The relay from HTTP client through parent-proxy to enclave-app, with the real binaries.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "end-to-end test: a failed step should fail the test loudly"
)]

use std::time::Duration;

use ea_tests::{binaries, get_json, wait_for_status, LocalStack, Process};
use nix::sys::signal::Signal;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[tokio::test]
async fn health_and_describe_are_relayed() {
    let stack = LocalStack::start(&[], &[]);
    let client = client();
    // Before its genesis the enclave answers, and says it does not serve yet (once it has
    // reached the store: `starting` until then).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (status, body) = loop {
        let (status, body) = get_json(&client, &format!("{}/v1/health", stack.url)).await;
        let starting = body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("is starting"));
        if !starting || std::time::Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "enclave_not_ready");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("awaiting_genesis"),
        "{body}"
    );
    let (status, body) = get_json(&client, &format!("{}/v1/enclave", stack.url)).await;
    assert_eq!(status, 200);
    assert_eq!(body["phase"], "awaiting_genesis");

    ea_tests::submit_minimal_genesis(&stack.url, stack.dir.path(), None);
    let (status, body) = get_json(&client, &format!("{}/v1/health", stack.url)).await;
    assert_eq!(
        (status, &body),
        (200, &serde_json::json!({"status": "ok"})),
        "{}",
        stack.logs()
    );

    let (status, body) = get_json(&client, &format!("{}/v1/enclave", stack.url)).await;
    assert_eq!(status, 200);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["protocol_version"], ea_protocol::PROTOCOL_VERSION);
    assert_eq!(body["nsm"], "mock");
    assert_eq!(body["phase"], "serving");
    assert!(body["uptime_ms"].is_u64());
}

#[tokio::test]
async fn proxy_answers_503_while_the_enclave_is_down_and_recovers_after_restart() {
    let mut stack = LocalStack::serving(&[], &[]);
    let client = client();
    let health = format!("{}/v1/health", stack.url);
    // Use every pooled connection once, so each must notice the restart.
    for _ in 0..8 {
        assert_eq!(get_json(&client, &health).await.0, 200);
    }

    stack.kill_enclave();
    let (status, body) = get_json(&client, &health).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "enclave_unavailable");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("enclave"));

    stack.start_enclave();
    wait_for_status(&client, &health, 200, Duration::from_secs(10)).await;
    for _ in 0..8 {
        let (status, body) = get_json(&client, &health).await;
        assert_eq!(status, 200, "{body}\n{}", stack.logs());
    }
}

#[tokio::test]
async fn two_hundred_concurrent_requests_are_all_answered_correctly() {
    let stack = LocalStack::serving(&[], &[]);
    let client = client();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let client = client.clone();
        let url = stack.url.clone();
        tasks.spawn(async move {
            if i % 2 == 0 {
                let (status, body) = get_json(&client, &format!("{url}/v1/health")).await;
                (
                    status == 200 && body == serde_json::json!({"status": "ok"}),
                    body,
                )
            } else {
                let (status, body) = get_json(&client, &format!("{url}/v1/enclave")).await;
                (
                    status == 200 && body["nsm"] == "mock" && body["protocol_version"] == 1,
                    body,
                )
            }
        });
    }
    let mut answered = 0;
    while let Some(result) = tasks.join_next().await {
        let (ok, body) = result.unwrap();
        assert!(ok, "wrong answer: {body}");
        answered += 1;
    }
    assert_eq!(answered, 200);
}

#[tokio::test]
async fn oversized_bodies_get_413_on_every_route() {
    let stack = LocalStack::serving(&[], &["--max-body-bytes", "1024"]);
    let client = client();
    for path in ["/v1/health", "/v1/enclave", "/no/such/route"] {
        let url = format!("{}{path}", stack.url);
        // Announced length over the limit.
        let response = client
            .post(&url)
            .body(vec![0u8; 1025])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 413, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "payload_too_large");
        // Chunked, no announced length: the status line is all we need.
        let status = chunked_post_status(&stack.url, path, &[&[1u8; 600], &[2u8; 600]]).await;
        assert_eq!(status, 413, "chunked {path}");
    }
    // At the limit is fine.
    let response = client
        .get(format!("{}/v1/health", stack.url))
        .body(vec![0u8; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

/// Sends a chunked POST by hand (no Content-Length) and returns the response status.
async fn chunked_post_status(base: &str, path: &str, chunks: &[&[u8]]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = base.strip_prefix("http://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {authority}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in chunks {
        request.extend(format!("{:x}\r\n", chunk.len()).bytes());
        request.extend_from_slice(chunk);
        request.extend(b"\r\n");
    }
    request.extend(b"0\r\n\r\n");
    // The proxy may answer and close before reading everything: a write error is fine.
    let _ = stream.write_all(&request).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn unknown_routes_are_json_404() {
    let stack = LocalStack::start(&[], &[]);
    let (status, body) = get_json(&client(), &format!("{}/v2/nothing", stack.url)).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn a_silent_enclave_gives_504_after_the_request_timeout() {
    // A stand-in enclave that accepts connections and never answers.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("silent.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mut proxy = Process::spawn(
        &binaries().path("parent-proxy"),
        &ea_tests::with_store_args(
            dir.path(),
            &[
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--enclave".into(),
                format!("unix:{}", socket.display()),
                "--insecure-http".into(),
                "--request-timeout-ms".into(),
                "300".into(),
            ],
        ),
        &dir.path().join("proxy.log"),
    );
    let url = proxy.wait_for_stdout_line("listening on ");
    let (status, body) = get_json(&client(), &format!("{url}/v1/health")).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "timeout");
}

#[tokio::test]
async fn in_flight_limit_gives_503_overloaded() {
    // With room for one request and a silent enclave holding it, the next gets 503 at once.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("silent.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mut proxy = Process::spawn(
        &binaries().path("parent-proxy"),
        &ea_tests::with_store_args(
            dir.path(),
            &[
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--enclave".into(),
                format!("unix:{}", socket.display()),
                "--insecure-http".into(),
                "--max-in-flight".into(),
                "1".into(),
                "--request-timeout-ms".into(),
                "3000".into(),
            ],
        ),
        &dir.path().join("proxy.log"),
    );
    let url = proxy.wait_for_stdout_line("listening on ");
    let client = client();
    let held = tokio::spawn({
        let client = client.clone();
        let url = url.clone();
        async move { get_json(&client, &format!("{url}/v1/health")).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = get_json(&client, &format!("{url}/v1/health")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "overloaded");
    assert_eq!(held.await.unwrap().0, 504);
}

#[tokio::test]
async fn insecure_http_is_refused_on_a_non_loopback_address() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Process::spawn(
        &binaries().path("parent-proxy"),
        &ea_tests::with_store_args(
            dir.path(),
            &[
                "--listen".into(),
                "0.0.0.0:0".into(),
                "--enclave".into(),
                "unix:/nonexistent.sock".into(),
                "--insecure-http".into(),
            ],
        ),
        &dir.path().join("proxy.log"),
    );
    let code = proxy.wait_exit(Duration::from_secs(10));
    assert_ne!(code, Some(0));
    assert!(code.is_some(), "the proxy should exit");
    let log = std::fs::read_to_string(dir.path().join("proxy.log")).unwrap();
    assert!(log.contains("only accepted with a loopback"), "{log}");
}

#[tokio::test]
async fn https_with_a_certificate_from_files_and_govctl_health() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();

    let socket = dir.path().join("enclave.sock");
    let _enclave = Process::spawn(
        &binaries().path("enclave-app"),
        &[
            "--listen".into(),
            format!("unix:{}", socket.display()),
            "--nsm".into(),
            "mock".into(),
            "--store".into(),
            format!("unix:{}", dir.path().join("store.sock").display()),
            "--log-key".into(),
            "ephemeral".into(),
        ],
        &dir.path().join("enclave.log"),
    );
    ea_tests::wait_for_path(&socket, Duration::from_secs(20));
    let mut proxy = Process::spawn(
        &binaries().path("parent-proxy"),
        &ea_tests::with_store_args(
            dir.path(),
            &[
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--enclave".into(),
                format!("unix:{}", socket.display()),
                "--tls-cert".into(),
                dir.path().join("cert.pem").display().to_string(),
                "--tls-key".into(),
                dir.path().join("key.pem").display().to_string(),
            ],
        ),
        &dir.path().join("proxy.log"),
    );
    let url = proxy.wait_for_stdout_line("listening on ");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    // The genesis goes through TLS too, trusting the self-signed certificate.
    ea_tests::submit_minimal_genesis(&url, dir.path(), Some(&dir.path().join("cert.pem")));
    // govctl trusts the self-signed certificate only when told to.
    let govctl = binaries().path("govctl");
    let output = std::process::Command::new(&govctl)
        .args(["health", "--ca-cert"])
        .arg(dir.path().join("cert.pem"))
        .env("GOVCTL_ENDPOINT", &url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["status"], "ok");

    let output = std::process::Command::new(&govctl)
        .args(["health", "--endpoint", &url])
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "an untrusted certificate must be refused"
    );
}

#[tokio::test]
async fn sigterm_stops_both_binaries_cleanly() {
    let mut stack = LocalStack::serving(&[], &[]);
    assert_eq!(
        get_json(&client(), &format!("{}/v1/health", stack.url))
            .await
            .0,
        200
    );
    let socket = stack.enclave_socket();
    let enclave = stack.enclave.take().unwrap();
    enclave.signal(Signal::SIGTERM);
    assert_eq!(enclave.wait_exit(Duration::from_secs(15)), Some(0));
    assert!(
        !socket.exists(),
        "the enclave removes its socket file on a clean stop"
    );
    let proxy = stack.proxy.take().unwrap();
    proxy.signal(Signal::SIGTERM);
    assert_eq!(proxy.wait_exit(Duration::from_secs(15)), Some(0));
}

#[test]
fn the_enclaves_sockets_are_bound_when_the_proxy_says_it_listens() {
    // Scripts start the enclave on the proxy's "listening on" line: the log store and the
    // KMS relay must accept connections from then on, not a moment later.
    let dir = tempfile::tempdir().unwrap();
    let upstream = "127.0.0.1:9"; // never contacted here
    let argv: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--enclave",
        &format!("unix:{}", dir.path().join("enclave.sock").display()),
        "--insecure-http",
        "--kms-relay-listen",
        &format!("unix:{}", dir.path().join("kms-relay.sock").display()),
        "--kms-relay-endpoint",
        upstream,
        "--kms-relay-allow",
        upstream,
    ]
    .map(str::to_owned)
    .to_vec();
    let mut proxy = Process::spawn(
        &binaries().path("parent-proxy"),
        &ea_tests::with_store_args(dir.path(), &argv),
        &dir.path().join("proxy.log"),
    );
    proxy.wait_for_stdout_line("listening on ");
    for socket in ["store.sock", "kms-relay.sock"] {
        std::os::unix::net::UnixStream::connect(dir.path().join(socket))
            .unwrap_or_else(|e| panic!("{socket} is not accepting connections yet: {e}"));
    }
}
