//! A connection whose writes fail must say so at once: the caller of a client connection gets
//! an error instead of waiting for a reply that can never come, and a server stops reading
//! requests it could not answer. (Under load a vsock write can fail in the middle of a frame.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed set-up should fail loudly"
)]

use std::net::Shutdown;
use std::time::Duration;

use ea_protocol::rpc::{serve_connection, CallError, Connection, ConnectionLimits, Handler};
use ea_protocol::{StoreRequest, StoreResponse, Stream};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

/// A unix stream pair whose second end no longer reads: writes to the first end fail with
/// EPIPE, while the second end can still write to the first.
fn pair_that_cannot_be_written() -> (UnixStream, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let theirs = theirs.into_std().unwrap();
    theirs.shutdown(Shutdown::Read).unwrap();
    (ours, UnixStream::from_std(theirs).unwrap())
}

#[tokio::test]
async fn a_call_whose_frame_cannot_be_written_fails_at_once() {
    let (ours, _theirs) = pair_that_cannot_be_written();
    let connection: Connection<StoreRequest, StoreResponse> =
        Connection::over(Stream::Unix(ours), ConnectionLimits::default());
    let outcome =
        tokio::time::timeout(Duration::from_secs(5), connection.call(&StoreRequest::Head))
            .await
            .expect("the call must fail at once, not wait for a reply that cannot come");
    assert!(matches!(outcome, Err(CallError::Closed)), "{outcome:?}");
}

#[derive(Clone)]
struct Answers;

impl Handler<StoreRequest, StoreResponse> for Answers {
    async fn handle(&self, _request: StoreRequest) -> StoreResponse {
        StoreResponse::Appended { size: 0 }
    }
}

#[tokio::test]
async fn a_server_that_cannot_answer_stops_reading() {
    let (ours, mut theirs) = pair_that_cannot_be_written();
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(serve_connection(
        Stream::Unix(ours),
        Answers,
        ConnectionLimits::default(),
        shutdown,
    ));
    // One request: its reply cannot be written, so the server must end the connection rather
    // than keep reading requests whose replies would be lost. The peer keeps its end open.
    let frame = ea_protocol::encode_message(1, &StoreRequest::Head).unwrap();
    theirs
        .write_all(&u32::try_from(frame.len()).unwrap().to_be_bytes())
        .await
        .unwrap();
    theirs.write_all(&frame).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server ends the connection")
        .unwrap();
}
