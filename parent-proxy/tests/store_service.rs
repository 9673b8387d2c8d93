//! The store service over a unix socket, with the enclave's own client type
//! (`ea_protocol::rpc::Connection`) and with raw, malformed frames.
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

use common::{FullDisk, LogBuilder};
use ea_protocol::rpc::{Connection, ConnectionLimits};
use ea_protocol::{
    decode_message, encode_message, Address, ErrorCode, Listener, StoreRequest, StoreResponse,
    Stream,
};
use parent_proxy::store::service::{self, StoreService};
use parent_proxy::store::{LogStore, SqliteLogStore};
use serde_bytes::ByteBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

type StoreConnection = Connection<StoreRequest, StoreResponse>;

struct Running {
    _dir: tempfile::TempDir,
    address: Address,
    limits: ConnectionLimits,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(store: Arc<dyn LogStore>, max_frame_len: usize) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let address = Address::Unix(dir.path().join("store.sock"));
        let listener = Listener::bind(&address).await.unwrap();
        let limits = ConnectionLimits {
            max_frame_len,
            max_in_flight: 16,
        };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(service::serve(
            listener,
            StoreService::new(store, max_frame_len),
            limits,
            stopped,
        ));
        Running {
            _dir: dir,
            address,
            limits,
            stop,
            task,
        }
    }

    async fn connect(&self) -> StoreConnection {
        StoreConnection::connect(&self.address, self.limits)
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the service stops")
            .unwrap();
    }
}

fn sqlite(dir: &tempfile::TempDir) -> Arc<dyn LogStore> {
    Arc::new(SqliteLogStore::open(dir.path().join("log.sqlite")).unwrap())
}

fn append_request(first_index: u64, records: Vec<Vec<u8>>, checkpoint: String) -> StoreRequest {
    StoreRequest::Append {
        first_index,
        records: records.into_iter().map(ByteBuf::from).collect(),
        checkpoint,
    }
}

fn error_code(response: StoreResponse) -> (ErrorCode, String) {
    match response {
        StoreResponse::Error(reply) => (reply.code, reply.message),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn answers_every_kind_of_request() {
    let data = tempfile::tempdir().unwrap();
    let running = Running::start(sqlite(&data), ea_protocol::DEFAULT_MAX_FRAME_LEN).await;
    let client = running.connect().await;
    let mut log = LogBuilder::new();

    assert_eq!(
        client.call(&StoreRequest::Head).await.unwrap(),
        StoreResponse::Head {
            size: 0,
            checkpoint: None
        }
    );
    let (first, batch_one, checkpoint_one) = log.batch(3);
    assert_eq!(
        client
            .call(&append_request(
                first,
                batch_one.clone(),
                checkpoint_one.clone()
            ))
            .await
            .unwrap(),
        StoreResponse::Appended { size: 3 }
    );
    let (first, batch_two, checkpoint_two) = log.batch(2);
    assert_eq!(
        client
            .call(&append_request(
                first,
                batch_two.clone(),
                checkpoint_two.clone()
            ))
            .await
            .unwrap(),
        StoreResponse::Appended { size: 5 }
    );
    assert_eq!(
        client.call(&StoreRequest::Head).await.unwrap(),
        StoreResponse::Head {
            size: 5,
            checkpoint: Some(checkpoint_two.clone())
        }
    );

    let all: Vec<ByteBuf> = batch_one
        .iter()
        .chain(&batch_two)
        .cloned()
        .map(ByteBuf::from)
        .collect();
    assert_eq!(
        client
            .call(&StoreRequest::ReadRecords {
                from: 1,
                max_count: 3,
                max_bytes: u32::MAX
            })
            .await
            .unwrap(),
        StoreResponse::Records {
            from: 1,
            records: all[1..4].to_vec()
        }
    );
    assert_eq!(
        client
            .call(&StoreRequest::ReadRecords {
                from: 0,
                max_count: u32::MAX,
                max_bytes: u32::MAX
            })
            .await
            .unwrap(),
        StoreResponse::Records {
            from: 0,
            records: all.clone()
        }
    );
    assert_eq!(
        client
            .call(&StoreRequest::ReadRecords {
                from: 9,
                max_count: 10,
                max_bytes: 1000
            })
            .await
            .unwrap(),
        StoreResponse::Records {
            from: 9,
            records: vec![]
        }
    );
    assert_eq!(
        client
            .call(&StoreRequest::ReadCheckpoints {
                from_size: 0,
                max_count: 10
            })
            .await
            .unwrap(),
        StoreResponse::Checkpoints {
            checkpoints: vec![(3, checkpoint_one), (5, checkpoint_two)]
        }
    );

    assert_eq!(
        client.call(&StoreRequest::GetSealedKey).await.unwrap(),
        StoreResponse::SealedKey { sealed: None }
    );
    let sealed = ByteBuf::from(b"nonce+ciphertext+tag".to_vec());
    assert_eq!(
        client
            .call(&StoreRequest::PutSealedKey {
                sealed: sealed.clone()
            })
            .await
            .unwrap(),
        StoreResponse::Stored
    );
    assert_eq!(
        client.call(&StoreRequest::GetSealedKey).await.unwrap(),
        StoreResponse::SealedKey {
            sealed: Some(sealed)
        }
    );
    running.stop().await;
}

#[tokio::test]
async fn refuses_a_conflicting_append_and_a_wrong_checkpoint() {
    let data = tempfile::tempdir().unwrap();
    let running = Running::start(sqlite(&data), ea_protocol::DEFAULT_MAX_FRAME_LEN).await;
    let client = running.connect().await;
    let mut log = LogBuilder::new();
    let (first, records, checkpoint) = log.batch(2);
    let append = append_request(first, records, checkpoint);
    assert_eq!(
        client.call(&append).await.unwrap(),
        StoreResponse::Appended { size: 2 }
    );

    // The same append again: a second writer, or a stale view of the log.
    let (code, message) = error_code(client.call(&append).await.unwrap());
    assert_eq!(code, ErrorCode::StoreConflict);
    assert_eq!(code.as_str(), "store_conflict");
    assert!(message.contains("the log has 2 records"), "{message}");

    // A checkpoint that does not name the size the append reaches.
    let (first, records, _) = log.batch(2);
    let (_, _, later_checkpoint) = log.batch(1);
    let (code, message) = error_code(
        client
            .call(&append_request(first, records, later_checkpoint))
            .await
            .unwrap(),
    );
    assert_eq!(code, ErrorCode::MalformedMessage);
    assert!(message.contains("names tree size 5"), "{message}");
    assert_eq!(
        client.call(&StoreRequest::Head).await.unwrap(),
        StoreResponse::Head {
            size: 2,
            checkpoint: match client
                .call(&StoreRequest::ReadCheckpoints {
                    from_size: 2,
                    max_count: 1
                })
                .await
                .unwrap()
            {
                StoreResponse::Checkpoints { checkpoints } => Some(checkpoints[0].1.clone()),
                other => panic!("{other:?}"),
            }
        }
    );
    running.stop().await;
}

#[tokio::test]
async fn replies_fit_in_the_frame_limit() {
    let data = tempfile::tempdir().unwrap();
    let store = sqlite(&data);
    let mut log = LogBuilder::new();
    log.fill(store.as_ref(), &[40, 40]);
    // Records are about 100 bytes and checkpoints about 200: 2 KiB frames hold a few of each.
    let running = Running::start(store, 2048).await;
    let client = running.connect().await;

    let mut from = 0;
    while from < 80 {
        match client
            .call(&StoreRequest::ReadRecords {
                from,
                max_count: u32::MAX,
                max_bytes: u32::MAX,
            })
            .await
            .unwrap()
        {
            StoreResponse::Records { records, .. } => {
                assert!(!records.is_empty() && records.len() < 40);
                from += records.len() as u64;
            }
            other => panic!("{other:?}"),
        }
    }
    let mut from_size = 0;
    let mut seen = Vec::new();
    loop {
        match client
            .call(&StoreRequest::ReadCheckpoints {
                from_size,
                max_count: u32::MAX,
            })
            .await
            .unwrap()
        {
            StoreResponse::Checkpoints { checkpoints } if checkpoints.is_empty() => break,
            StoreResponse::Checkpoints { checkpoints } => {
                from_size = checkpoints.last().unwrap().0 + 1;
                seen.extend(checkpoints.into_iter().map(|(size, _)| size));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, [40, 80]);
    running.stop().await;
}

/// Writes one frame with `body`.
async fn send_raw(stream: &mut Stream, body: &[u8]) {
    stream
        .write_all(&(body.len() as u32).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(body).await.unwrap();
}

/// Reads one frame and decodes it as a store reply.
async fn receive(stream: &mut Stream) -> (u64, StoreResponse) {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut body).await.unwrap();
    let envelope = decode_message::<StoreResponse>(&body).unwrap();
    (envelope.id, envelope.body)
}

#[tokio::test]
async fn survives_malformed_frames() {
    let data = tempfile::tempdir().unwrap();
    let running = Running::start(sqlite(&data), 4096).await;
    let mut raw = Stream::connect(&running.address).await.unwrap();

    // Not CBOR.
    send_raw(&mut raw, &[0xff, 0x00, 0x13]).await;
    let (id, reply) = receive(&mut raw).await;
    assert_eq!(id, 0);
    assert_eq!(error_code(reply).0, ErrorCode::MalformedFrame);

    // A message kind the store does not know.
    let unknown = encode_message(7, &ciborium::Value::Text("Format".into())).unwrap();
    send_raw(&mut raw, &unknown).await;
    let (id, reply) = receive(&mut raw).await;
    assert_eq!(id, 7);
    assert_eq!(error_code(reply).0, ErrorCode::UnknownMessage);

    // A known kind with wrong fields: an append whose records are not byte strings.
    let wrong = ciborium::Value::Map(vec![(
        "Append".into(),
        ciborium::Value::Map(vec![
            ("first_index".into(), 0.into()),
            ("records".into(), ciborium::Value::Text("x".into())),
            ("checkpoint".into(), "".into()),
        ]),
    )]);
    send_raw(&mut raw, &encode_message(8, &wrong).unwrap()).await;
    let (id, reply) = receive(&mut raw).await;
    assert_eq!(id, 8);
    assert_eq!(error_code(reply).0, ErrorCode::MalformedMessage);

    // An append with a checkpoint that is not a note, and one far beyond the end.
    let bad_note = append_request(0, vec![b"r".to_vec()], "garbage".into());
    send_raw(&mut raw, &encode_message(9, &bad_note).unwrap()).await;
    assert_eq!(
        error_code(receive(&mut raw).await.1).0,
        ErrorCode::MalformedMessage
    );
    let far = append_request(u64::MAX, vec![b"r".to_vec()], "garbage".into());
    send_raw(&mut raw, &encode_message(10, &far).unwrap()).await;
    assert_eq!(
        error_code(receive(&mut raw).await.1).0,
        ErrorCode::StoreConflict
    );

    // The connection still works.
    send_raw(&mut raw, &encode_message(11, &StoreRequest::Head).unwrap()).await;
    assert_eq!(
        receive(&mut raw).await,
        (
            11,
            StoreResponse::Head {
                size: 0,
                checkpoint: None
            }
        )
    );

    // A frame over the limit closes this connection, after saying why...
    raw.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
    let (_, reply) = receive(&mut raw).await;
    assert_eq!(error_code(reply).0, ErrorCode::FrameTooLarge);
    let mut rest = Vec::new();
    raw.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());

    // ...and a frame cut short ends another; the service goes on serving new ones.
    let mut cut = Stream::connect(&running.address).await.unwrap();
    cut.write_all(&[0, 0, 0, 50, 1, 2, 3]).await.unwrap();
    cut.shutdown().await.unwrap();
    drop(cut);
    let client = running.connect().await;
    assert_eq!(
        client.call(&StoreRequest::Head).await.unwrap(),
        StoreResponse::Head {
            size: 0,
            checkpoint: None
        }
    );
    running.stop().await;
}

#[tokio::test]
async fn a_failing_disk_is_an_error_reply_and_the_service_goes_on() {
    let running = Running::start(Arc::new(FullDisk), ea_protocol::DEFAULT_MAX_FRAME_LEN).await;
    let client = running.connect().await;
    let mut log = LogBuilder::new();
    let (first, records, checkpoint) = log.batch(1);
    for request in [
        append_request(first, records, checkpoint),
        StoreRequest::Head,
        StoreRequest::GetSealedKey,
    ] {
        let (code, message) = error_code(client.call(&request).await.unwrap());
        assert_eq!(code, ErrorCode::StorageFailed);
        assert!(message.contains("free space"), "{message}");
        assert!(!client.is_closed());
    }
    running.stop().await;
}
