//! Bad frames sent straight to the real enclave-app over its unix socket: each gets its own
//! typed error, and the connection stays usable wherever the byte stream is still intact.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "end-to-end test: a failed step should fail the test loudly"
)]

use std::time::Duration;

use ciborium::Value;
use ea_protocol::frame::{read_frame, write_frame};
use ea_protocol::{decode_message, encode_message, EnclaveRequest, EnclaveResponse, ErrorCode};
use ea_tests::{binaries, wait_for_path, Process};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

const LIMIT: usize = 4096;

struct Enclave {
    _process: Process,
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
}

fn start_enclave() -> Enclave {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("enclave.sock");
    let process = Process::spawn(
        &binaries().path("enclave-app"),
        &[
            "--listen".into(),
            format!("unix:{}", socket.display()),
            "--nsm".into(),
            "mock".into(),
            // No store: these tests exercise frames, which the enclave answers in any phase.
            "--store".into(),
            format!("unix:{}", dir.path().join("no-store.sock").display()),
            "--log-key".into(),
            "ephemeral".into(),
            "--max-frame-bytes".into(),
            LIMIT.to_string(),
        ],
        &dir.path().join("enclave.log"),
    );
    wait_for_path(&socket, Duration::from_secs(20));
    Enclave {
        _process: process,
        _dir: dir,
        socket,
    }
}

async fn reply(stream: &mut UnixStream) -> (u64, EnclaveResponse) {
    let frame = tokio::time::timeout(Duration::from_secs(10), read_frame(stream, 1 << 20))
        .await
        .expect("reply in time")
        .unwrap()
        .expect("a reply frame");
    let envelope = decode_message::<EnclaveResponse>(&frame).unwrap();
    (envelope.id, envelope.body)
}

/// Raw CBOR, to send what the protocol crate's encoder never would.
fn cbor(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

fn envelope(version: u64, id: u64, kind: &'static str) -> Vec<u8> {
    cbor(&Value::Map(vec![
        ("v".into(), version.into()),
        ("id".into(), id.into()),
        ("body".into(), kind.into()),
    ]))
}

async fn assert_still_serving(stream: &mut UnixStream, id: u64) {
    let frame = encode_message(id, &EnclaveRequest::Health).unwrap();
    write_frame(stream, &frame, LIMIT).await.unwrap();
    let (reply_id, body) = reply(stream).await;
    assert_eq!(reply_id, id);
    assert!(matches!(body, EnclaveResponse::Health(_)), "{body:?}");
}

fn error_code(body: EnclaveResponse) -> ErrorCode {
    match body {
        EnclaveResponse::Error(e) => e.code,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

#[tokio::test]
async fn not_cbor_gets_malformed_frame_and_the_connection_survives() {
    let enclave = start_enclave();
    let mut stream = UnixStream::connect(&enclave.socket).await.unwrap();
    write_frame(&mut stream, &[0xff, 0xfe, 0x00], LIMIT)
        .await
        .unwrap();
    let (id, body) = reply(&mut stream).await;
    assert_eq!(id, ea_protocol::UNKNOWN_REQUEST_ID);
    assert_eq!(error_code(body), ErrorCode::MalformedFrame);
    assert_still_serving(&mut stream, 2).await;
}

#[tokio::test]
async fn unknown_version_and_unknown_message_keep_their_ids() {
    let enclave = start_enclave();
    let mut stream = UnixStream::connect(&enclave.socket).await.unwrap();
    write_frame(&mut stream, &envelope(99, 41, "Health"), LIMIT)
        .await
        .unwrap();
    let (id, body) = reply(&mut stream).await;
    assert_eq!((id, error_code(body)), (41, ErrorCode::UnsupportedVersion));

    write_frame(&mut stream, &envelope(1, 42, "SelfDestruct"), LIMIT)
        .await
        .unwrap();
    let (id, body) = reply(&mut stream).await;
    assert_eq!((id, error_code(body)), (42, ErrorCode::UnknownMessage));

    let wrong_shape = cbor(&Value::Map(vec![
        ("v".into(), 1.into()),
        ("id".into(), 43.into()),
        ("body".into(), 7.into()),
    ]));
    write_frame(&mut stream, &wrong_shape, LIMIT).await.unwrap();
    let (id, body) = reply(&mut stream).await;
    assert_eq!((id, error_code(body)), (43, ErrorCode::MalformedMessage));
    assert_still_serving(&mut stream, 44).await;
}

#[tokio::test]
async fn too_large_frame_gets_an_error_frame_then_the_connection_closes() {
    let enclave = start_enclave();
    let mut stream = UnixStream::connect(&enclave.socket).await.unwrap();
    // Announce one byte over the limit; send nothing else.
    stream
        .write_all(&((LIMIT + 1) as u32).to_be_bytes())
        .await
        .unwrap();
    let (id, body) = reply(&mut stream).await;
    assert_eq!((id, error_code(body)), (0, ErrorCode::FrameTooLarge));
    let after = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut stream, LIMIT))
        .await
        .unwrap();
    assert!(
        matches!(after, Ok(None)),
        "the enclave closes the connection: {after:?}"
    );

    // Other connections are unaffected.
    let mut other = UnixStream::connect(&enclave.socket).await.unwrap();
    assert_still_serving(&mut other, 1).await;
}

#[tokio::test]
async fn truncated_frame_closes_only_that_connection() {
    let enclave = start_enclave();
    let mut stream = UnixStream::connect(&enclave.socket).await.unwrap();
    stream.write_all(&[0, 0, 0, 100, 1, 2, 3]).await.unwrap();
    stream.shutdown().await.unwrap();
    let after = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut stream, LIMIT))
        .await
        .unwrap();
    assert!(matches!(after, Ok(None)), "{after:?}");
    let mut other = UnixStream::connect(&enclave.socket).await.unwrap();
    assert_still_serving(&mut other, 1).await;
}

#[tokio::test]
async fn many_requests_on_one_connection_are_answered_by_id() {
    let enclave = start_enclave();
    let mut stream = UnixStream::connect(&enclave.socket).await.unwrap();
    let mut batch = Vec::new();
    for id in 1..=100u64 {
        let request = if id % 2 == 0 {
            EnclaveRequest::Health
        } else {
            EnclaveRequest::Describe
        };
        let frame = encode_message(id, &request).unwrap();
        batch.extend(ea_protocol::frame::encode_frame(&frame, LIMIT).unwrap());
    }
    stream.write_all(&batch).await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..100 {
        let (id, body) = reply(&mut stream).await;
        match body {
            EnclaveResponse::Health(_) => assert_eq!(id % 2, 0),
            EnclaveResponse::Describe(_) => assert_eq!(id % 2, 1),
            other => panic!("unexpected {other:?}"),
        }
        assert!(seen.insert(id), "duplicate reply for {id}");
    }
    assert_eq!(seen.len(), 100);
}
