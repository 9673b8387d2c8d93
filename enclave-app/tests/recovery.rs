//! Recovery against a hostile store, in the test process: a real log (genesis, an
//! `enclave_start` attested by a fake document, then records and signed checkpoints) served
//! by an in-memory store that can repeat, reorder, inflate or misplace what it lists. Each
//! misbehaviour ends in a clear error: no panic, no hang, nothing written, and memory bounded
//! by what the records read so far need.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ciborium::Value;
use ea_attestation::{Measurements, MockNsm, MockNsmConfig, Nsm};
use ea_audit::checkpoint::{log_origin, Checkpoint};
use ea_audit::hash::{leaf_hash, Hash};
use ea_audit::note::NoteSigner;
use ea_audit::record::{Record, RecordKind};
use ea_audit::verify::{AttestationChecker, AttestedKey};
use ea_audit::{LogSummary, MerkleTree};
use ea_ledger::{Genesis, Ledger};
use ea_protocol::rpc::{serve_connection, ConnectionLimits, Handler};
use ea_protocol::store::{MAX_CHECKPOINTS_PER_READ, MAX_RECORDS_PER_READ};
use ea_protocol::{Address, ErrorCode, ErrorReply, Listener, StoreRequest, StoreResponse};
use enclave_app::recovery::{recover_log, RecoveredLog, ReplayOptions};
use enclave_app::store_client::StoreClient;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_bytes::ByteBuf;

const TIME: u64 = 1_700_000_000_000;

/// Accepts a mock NSM's document, unverified, when its `user_data` is the one expected (the
/// ledger reads the image of `enclave_start` documents, so they are real documents; what
/// these tests exercise is the store, not the attestation).
#[derive(Clone)]
struct FakeAttestation;

impl AttestationChecker for FakeAttestation {
    type Error = std::io::Error;
    fn check(&self, document: &[u8], expected: &[u8]) -> Result<AttestedKey, std::io::Error> {
        let refused = || std::io::Error::other("not an attestation for this log");
        let parsed = ea_attestation::parse_unverified(document).map_err(|_| refused())?;
        if parsed.user_data.as_deref() != Some(expected) {
            return Err(refused());
        }
        Ok(AttestedKey {
            public_key: parsed.public_key,
        })
    }
}

/// A log as the enclave writes it: genesis, its `enclave_start`, then `denied` records (they
/// replay as nothing), a checkpoint at 2 and after every `every` records, and at the end.
struct Log {
    records: Vec<Vec<u8>>,
    checkpoints: Vec<(u64, String)>,
    tree: MerkleTree,
    origin: String,
    signer: NoteSigner,
}

impl Log {
    fn new(size: u64, every: u64) -> Log {
        let genesis = Genesis::from_json(
            &serde_json::json!({
                "version": 1, "name": "recovery", "createdAt": "2026-01-01T00:00:00Z",
                "settings": {},
                "policy": {
                    // The Ed25519 public key of the seed [9; 32].
                    "principals": [{"id": "admin", "type": "User", "keys": [{
                        "keyId": "k1", "algorithm": "Ed25519",
                        "publicKey": "/RckOFqgx1tk+3jNYC+h2ZH96/drE8WO1wLqyDXp9hg="
                    }]}],
                    "communities": [{"id": "/communities/c1", "addressSpace": "10.0.0.0/8"}],
                    "roleAssignments": [{"id": "ra-admin", "principalId": "admin",
                                         "roleDefinitionId": "Owner", "scope": "/"}]
                }
            })
            .to_string(),
        )
        .unwrap();
        let (_, draft) = Ledger::from_genesis(&genesis, 16).unwrap();
        let genesis = draft.into_record(TIME);
        let genesis_hash = genesis.record_hash().unwrap();
        let origin = log_origin(&genesis_hash);
        let key = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
        let nsm =
            MockNsm::new(MockNsmConfig::new(Measurements::of_executable(b"recovery"))).unwrap();
        let document = nsm
            .attestation(
                Some(genesis_hash.as_bytes()),
                None,
                Some(key.public_key().as_ref()),
            )
            .unwrap();
        let signer = NoteSigner::new(&origin, Box::new(key)).unwrap();
        let mut log = Log {
            records: Vec::new(),
            checkpoints: Vec::new(),
            tree: MerkleTree::new(),
            origin,
            signer,
        };
        log.push(genesis);
        log.push(Record {
            seq: 1,
            time: TIME,
            kind: RecordKind::EnclaveStart,
            actor: "platform".into(),
            request: None,
            decision: Value::Null,
            changes: Value::Null,
            attestation: Some(document),
        });
        log.checkpoint();
        while log.tree.size() < size {
            log.push(Record {
                seq: log.tree.size(),
                time: TIME,
                kind: RecordKind::Denied,
                actor: "tester".into(),
                request: None,
                decision: Value::Null,
                changes: Value::Null,
                attestation: None,
            });
            if (log.tree.size() - 2) % every == 0 || log.tree.size() == size {
                log.checkpoint();
            }
        }
        log
    }

    fn push(&mut self, record: Record) {
        let bytes = record.to_bytes().unwrap();
        self.tree.push(leaf_hash(&bytes));
        self.records.push(bytes);
    }

    fn checkpoint(&mut self) {
        let size = self.tree.size();
        let note = self.note(size, self.tree.root());
        self.checkpoints.push((size, note));
    }

    /// A checkpoint note signed by the log key, for any size and root.
    fn note(&self, size: u64, root: Hash) -> String {
        Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
        }
        .sign(&self.signer)
        .unwrap()
    }

    fn size(&self) -> u64 {
        self.records.len() as u64
    }
}

/// What the store serves, how it misbehaves, and what it saw.
#[derive(Default)]
struct State {
    records: Vec<Vec<u8>>,
    /// The size `Head` announces.
    head: u64,
    /// The checkpoints listed, in this order (they may repeat or be out of order).
    listed: Vec<(u64, String)>,
    /// List every checkpoint whatever `from_size` asks.
    ignore_from_size: bool,
    /// Pages one longer than asked (and than any honest store's).
    long_record_pages: bool,
    long_checkpoint_pages: bool,
    /// One past the last record index served.
    records_served: u64,
    /// Sizes of the checkpoints served, in order.
    checkpoints_served: Vec<u64>,
    /// The most checkpoints served at once whose records had not been served yet.
    most_ahead: usize,
    /// Appends and sealed keys asked to be stored.
    writes: usize,
}

#[derive(Clone, Default)]
struct HostileStore(Arc<Mutex<State>>);

impl HostileStore {
    fn serving(log: &Log) -> HostileStore {
        HostileStore(Arc::new(Mutex::new(State {
            records: log.records.clone(),
            head: log.size(),
            listed: log.checkpoints.clone(),
            ..State::default()
        })))
    }

    fn with(&self, change: impl FnOnce(&mut State)) -> &Self {
        change(&mut self.0.lock().unwrap());
        self
    }

    fn state<T>(&self, read: impl FnOnce(&State) -> T) -> T {
        read(&self.0.lock().unwrap())
    }
}

impl Handler<StoreRequest, StoreResponse> for HostileStore {
    async fn handle(&self, request: StoreRequest) -> StoreResponse {
        let mut state = self.0.lock().unwrap();
        match request {
            StoreRequest::Head => StoreResponse::Head {
                size: state.head,
                checkpoint: state.listed.last().map(|(_, note)| note.clone()),
            },
            StoreRequest::ReadRecords {
                from,
                max_count,
                max_bytes,
            } => {
                let count = if state.long_record_pages {
                    max_count as usize + 1
                } else {
                    max_count.min(MAX_RECORDS_PER_READ) as usize
                };
                let mut bytes = 0;
                let records: Vec<ByteBuf> = state
                    .records
                    .iter()
                    .skip(usize::try_from(from).unwrap_or(usize::MAX))
                    .take(count)
                    .take_while(|record| {
                        bytes += record.len();
                        bytes <= max_bytes as usize || state.long_record_pages
                    })
                    .map(|record| ByteBuf::from(record.clone()))
                    .collect();
                state.records_served = state.records_served.max(from + records.len() as u64);
                StoreResponse::Records { from, records }
            }
            StoreRequest::ReadCheckpoints {
                from_size,
                max_count,
            } => {
                let count = if state.long_checkpoint_pages {
                    max_count as usize + 1
                } else {
                    max_count.min(MAX_CHECKPOINTS_PER_READ) as usize
                };
                // Within a frame, as the real store does.
                let mut bytes = 0;
                let checkpoints: Vec<(u64, String)> = state
                    .listed
                    .iter()
                    .filter(|(size, _)| state.ignore_from_size || *size >= from_size)
                    .take(count)
                    .take_while(|(_, note)| {
                        bytes += note.len() + 16;
                        bytes <= 900 * 1024 || state.long_checkpoint_pages
                    })
                    .cloned()
                    .collect();
                let sizes = checkpoints.iter().map(|(size, _)| *size);
                state.checkpoints_served.extend(sizes);
                let served = state.records_served;
                let ahead = state
                    .checkpoints_served
                    .iter()
                    .filter(|size| **size > served)
                    .count();
                state.most_ahead = state.most_ahead.max(ahead);
                StoreResponse::Checkpoints { checkpoints }
            }
            StoreRequest::Append { .. } | StoreRequest::PutSealedKey { .. } => {
                state.writes += 1;
                StoreResponse::Error(ErrorReply::new(ErrorCode::StorageFailed, "read only"))
            }
            _ => StoreResponse::Error(ErrorReply::new(ErrorCode::Internal, "not in this test")),
        }
    }
}

/// Recovers from `store`, giving up after `limit` (a hang is a failure too), and checks
/// that nothing was written.
async fn recover(
    store: &HostileStore,
    limit: Duration,
) -> Result<(LogSummary, MerkleTree), String> {
    let dir = tempfile::tempdir().unwrap();
    let address = Address::Unix(dir.path().join("store.sock"));
    let listener = Listener::bind(&address).await.unwrap();
    let serving = store.clone();
    let server = tokio::spawn(async move {
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(serve_connection(
                stream,
                serving.clone(),
                ConnectionLimits::default(),
                stop.clone(),
            ));
        }
    });
    let client = StoreClient::new(
        address,
        ConnectionLimits::default(),
        Duration::from_secs(10),
    );
    let options = ReplayOptions {
        replay_capacity: 1024,
        now_ms: TIME,
    };
    let recovered = tokio::time::timeout(limit, recover_log(&client, FakeAttestation, options))
        .await
        .unwrap_or_else(|_| panic!("recovery did not end within {limit:?}"));
    server.abort();
    assert_eq!(store.state(|s| s.writes), 0, "recovery wrote to the store");
    match recovered {
        Ok(Some((_, RecoveredLog { summary, tree }))) => Ok((summary, tree)),
        Ok(None) => Err("no log".into()),
        Err(error) => Err(error.to_string()),
    }
}

const LIMIT: Duration = Duration::from_secs(60);

/// The error recovery refuses the log with.
async fn refused(store: &HostileStore, limit: Duration) -> String {
    match recover(store, limit).await {
        Ok((summary, _)) => panic!(
            "the log was accepted: {} records, {} checkpoints",
            summary.records, summary.checkpoints
        ),
        Err(error) => {
            eprintln!("refused: {error}");
            error
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_read_as_the_records_need_them() {
    // More checkpoints than one page holds: they are read page by page as the records
    // reach them, never all before the first record.
    let log = Log::new(12_002, 2);
    let checkpoints = log.checkpoints.len();
    assert!(checkpoints > MAX_CHECKPOINTS_PER_READ as usize);
    let store = HostileStore::serving(&log);
    let (summary, tree) = recover(&store, LIMIT).await.unwrap();
    assert_eq!(summary.records, 12_002);
    assert_eq!(summary.checkpoint_size, 12_002);
    assert_eq!(summary.checkpoints, checkpoints);
    assert_eq!(tree.root(), log.tree.root());
    let most_ahead = store.state(|s| s.most_ahead);
    eprintln!("at most {most_ahead} checkpoints served ahead of their records");
    assert!(
        most_ahead <= MAX_CHECKPOINTS_PER_READ as usize,
        "{most_ahead} checkpoints were held before their records were read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_sizes_near_u64_max_are_refused_without_a_panic() {
    let log = Log::new(40, 10);
    let root = log.tree.root();
    for last in [u64::MAX - 1, u64::MAX] {
        // Listed after the genuine ones, signed by the log key, for trees nobody has.
        let store = HostileStore::serving(&log);
        store.with(|s| {
            s.listed.push((u64::MAX - 1, log.note(u64::MAX - 1, root)));
            if last == u64::MAX {
                s.listed.push((u64::MAX, log.note(u64::MAX, root)));
            }
        });
        let error = refused(&store, LIMIT).await;
        assert!(
            error.contains(&format!(
                "covers {} records, the log has only 40",
                u64::MAX - 1
            )),
            "{error}"
        );
    }
    // A head that announces u64::MAX records.
    let store = HostileStore::serving(&log);
    store.with(|s| s.head = u64::MAX);
    let error = refused(&store, LIMIT).await;
    assert!(
        error.contains(&format!("announced {} records", u64::MAX)),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_checkpoint_is_refused_naming_its_size() {
    // The same checkpoint listed thousands of times.
    let log = Log::new(40, 10);
    let store = HostileStore::serving(&log);
    store.with(|s| {
        let (size, note) = s.listed[1].clone();
        assert_eq!(size, 12);
        let copies = std::iter::repeat_n((size, note), 5000);
        s.listed.splice(2..2, copies);
    });
    let error = refused(&store, LIMIT).await;
    assert!(
        error.contains("listed two checkpoints of size 12"),
        "{error}"
    );

    // The same note listed at every size from 13 to 21: the listing is in order, the notes
    // are not.
    let store = HostileStore::serving(&log);
    store.with(|s| {
        let note = s.listed[1].1.clone();
        let copies = (13..22).map(|size| (size, note.clone()));
        s.listed.splice(2..2, copies);
    });
    let error = refused(&store, LIMIT).await;
    assert!(
        error.contains("checkpoint 2 has size 12, the same as the checkpoint before it"),
        "{error}"
    );

    // A store that lists everything again whatever is asked: it would be read forever.
    let store = HostileStore::serving(&log);
    store.with(|s| s.ignore_from_size = true);
    let error = refused(&store, Duration::from_secs(5)).await;
    assert!(
        error.contains("listed a checkpoint of size 2 when asked for sizes from 41"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_far_ahead_of_the_records_are_refused_without_reading_them_all() {
    // Thousands of checkpoints for trees larger than the log, signed by the log key: the
    // first one is enough to refuse the log, the rest are not read.
    let log = Log::new(40, 10);
    let genuine = log.checkpoints.len();
    let root = log.tree.root();
    let store = HostileStore::serving(&log);
    store.with(|s| {
        s.listed
            .extend((41..20_041).map(|size| (size, log.note(size, root))));
    });
    let error = refused(&store, LIMIT).await;
    assert!(
        error.contains("covers 41 records, the log has only 40"),
        "{error}"
    );
    let served = store.state(|s| s.checkpoints_served.len());
    // Read twice (the fast pass, then the full pass that names the record), each time at
    // most one page beyond the log.
    assert!(
        served <= 2 * (genuine + MAX_CHECKPOINTS_PER_READ as usize),
        "{served} checkpoints served"
    );

    // A checkpoint listed at size 100 whose note is for a tree of a million records: the
    // records it claims to cover are not all read before the log is refused.
    let log = Log::new(50_002, 10);
    let store = HostileStore::serving(&log);
    let far = log.note(1_000_000, log.tree.root());
    store.with(|s| {
        let at = s.listed.iter().position(|(size, _)| *size == 102).unwrap();
        s.listed[at].1 = far;
    });
    let error = refused(&store, LIMIT).await;
    assert!(
        error.contains("listed a checkpoint at size 102 whose note is for another size"),
        "{error}"
    );
    let read = store.state(|s| s.records_served);
    assert!(read < 40_000, "{read} records read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_longer_than_asked_are_refused() {
    let log = Log::new(12_002, 2);
    let store = HostileStore::serving(&log);
    store.with(|s| s.long_record_pages = true);
    let error = refused(&store, LIMIT).await;
    assert!(
        error.contains(&format!(
            "returned 4097 records when at most {MAX_RECORDS_PER_READ} were asked for"
        )),
        "{error}"
    );

    let store = HostileStore::serving(&log);
    store.with(|s| s.long_checkpoint_pages = true);
    let error = refused(&store, LIMIT).await;
    assert!(
        error.contains(&format!(
            "returned 4097 checkpoints when at most {MAX_CHECKPOINTS_PER_READ} were asked for"
        )),
        "{error}"
    );
}
