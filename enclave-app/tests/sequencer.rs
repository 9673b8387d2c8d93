//! The sequencer against an in-memory store served over a unix socket: group commit, receipts
//! that verify, and failure handling when the store refuses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test"
)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ea_audit::hash::leaf_hash;
use ea_audit::note::NoteSigner;
use ea_audit::record::{Record, RecordKind};
use ea_audit::{log_origin, verify_receipt, MerkleTree};
use ea_protocol::rpc::{serve_connection, ConnectionLimits, Handler};
use ea_protocol::{Address, ErrorCode, ErrorReply, Listener, StoreRequest, StoreResponse};
use enclave_app::audit_log::AuditLog;
use enclave_app::sequencer::{
    Application, Context, Recover, Sequencer, SequencerConfig, SequencerError,
};
use enclave_app::store_client::StoreClient;
use serde_bytes::ByteBuf;

#[derive(Clone, Default)]
struct MemoryStore {
    records: Arc<Mutex<Vec<Vec<u8>>>>,
    appends: Arc<AtomicUsize>,
    refuse: Arc<AtomicBool>,
    /// Extra time each append takes, in ms (a slow disk).
    delay_ms: Arc<AtomicUsize>,
    /// Answer appends as durable without storing them (a lying parent).
    forge: Arc<AtomicBool>,
}

impl Handler<StoreRequest, StoreResponse> for MemoryStore {
    async fn handle(&self, request: StoreRequest) -> StoreResponse {
        match request {
            StoreRequest::Append {
                first_index,
                records,
                ..
            } => {
                if self.refuse.load(Ordering::SeqCst) {
                    return StoreResponse::Error(ErrorReply::new(
                        ErrorCode::StorageFailed,
                        "disk full",
                    ));
                }
                // Stand-in for the fsync the real store waits for.
                let delay = 5 + self.delay_ms.load(Ordering::SeqCst) as u64;
                tokio::time::sleep(Duration::from_millis(delay)).await;
                if self.refuse.load(Ordering::SeqCst) {
                    return StoreResponse::Error(ErrorReply::new(
                        ErrorCode::StorageFailed,
                        "disk full",
                    ));
                }
                let mut stored = self.records.lock().unwrap();
                if self.forge.load(Ordering::SeqCst) {
                    return StoreResponse::Appended {
                        size: first_index + records.len() as u64,
                    };
                }
                if first_index != stored.len() as u64 {
                    return StoreResponse::Error(ErrorReply::new(
                        ErrorCode::StoreConflict,
                        "conflict",
                    ));
                }
                stored.extend(records.into_iter().map(ByteBuf::into_vec));
                self.appends.fetch_add(1, Ordering::SeqCst);
                StoreResponse::Appended {
                    size: stored.len() as u64,
                }
            }
            StoreRequest::Head => StoreResponse::Head {
                size: self.records.lock().unwrap().len() as u64,
                checkpoint: None,
            },
            _ => StoreResponse::Error(ErrorReply::new(ErrorCode::Internal, "not in this test")),
        }
    }
}

/// A counter that records every increment.
struct Counter {
    value: u64,
}

impl Application for Counter {
    type Request = u64;
    type Reply = u64;

    fn execute(&mut self, by: u64, context: &mut Context<'_>) -> u64 {
        // 0 reads: no record.
        if by == 0 {
            return self.value;
        }
        self.value += by;
        context.append(increment(by, context.now)).unwrap();
        self.value
    }
    fn tick(&mut self, _: &mut Context<'_>) {}
    fn next_due(&self) -> Option<u64> {
        None
    }
    fn committed(&mut self) {}
}

/// The record of one increment.
fn increment(by: u64, time: u64) -> Record {
    Record {
        seq: 0,
        time,
        kind: RecordKind::StateChange,
        actor: "tester".into(),
        request: None,
        decision: ciborium::Value::Null,
        changes: ciborium::Value::Integer(by.into()),
        attestation: None,
    }
}

/// The time the tests' clock always reads.
const NOW: u64 = 1_700_000_000_000;

/// A log holding genesis and one increment record for each of `increments` (written at
/// [`NOW`]), all durable: what a rebuild from a store holding them returns.
fn log_of(increments: &[u64]) -> AuditLog {
    let mut log = fresh_log();
    for &by in increments {
        log.append(increment(by, NOW)).unwrap();
    }
    if log.has_pending() {
        log.take_batch().unwrap();
    }
    log.mark_durable(log.next_index());
    log
}

fn fresh_log() -> AuditLog {
    let genesis = Record {
        seq: 0,
        time: 0,
        kind: RecordKind::Genesis,
        actor: "platform".into(),
        request: None,
        decision: ciborium::Value::Null,
        changes: ciborium::Value::Null,
        attestation: None,
    };
    let hash = genesis.record_hash().unwrap();
    let origin = log_origin(&hash);
    let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[9; 32]).unwrap();
    let signer = NoteSigner::new(&origin, Box::new(key)).unwrap();
    let mut tree = MerkleTree::new();
    tree.push(leaf_hash(&genesis.to_bytes().unwrap()));
    AuditLog::new(tree, signer, origin, hash)
}

async fn serve_store(store: MemoryStore) -> (tempfile::TempDir, Address) {
    let dir = tempfile::tempdir().unwrap();
    let address = Address::Unix(dir.path().join("store.sock"));
    let listener = Listener::bind(&address).await.unwrap();
    tokio::spawn(async move {
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(serve_connection(
                stream,
                store.clone(),
                ConnectionLimits::default(),
                stop.clone(),
            ));
        }
    });
    (dir, address)
}

fn never_recovers() -> Recover<Counter> {
    Arc::new(|| Box::pin(async { Err(anyhow::anyhow!("no recovery in this test")) }))
}

#[tokio::test]
async fn concurrent_requests_share_commits_and_get_receipts_that_verify() {
    let memory = MemoryStore::default();
    // The genesis record is already durable.
    memory.records.lock().unwrap().push(vec![]);
    let (_dir, address) = serve_store(memory.clone()).await;
    let store = Arc::new(StoreClient::new(
        address,
        ConnectionLimits::default(),
        Duration::from_secs(5),
    ));
    let log = fresh_log();
    let pinned = log.verifier();
    let sequencer = Sequencer::start(
        Counter { value: 0 },
        log,
        store,
        Arc::new(|| 1_700_000_000_000),
        never_recovers(),
        SequencerConfig::default(),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let sequencer = sequencer.clone();
        tasks.spawn(async move { sequencer.submit(1).await });
    }
    let mut values = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let committed = result.unwrap().unwrap();
        assert_eq!(committed.receipts.len(), 1);
        let receipt = &committed.receipts[0];
        let stored = memory.records.lock().unwrap()[receipt.index as usize].clone();
        let verified = verify_receipt(&stored, receipt, std::slice::from_ref(&pinned)).unwrap();
        assert!(verified.checkpoint().size > receipt.index);
        values.push(committed.reply);
    }
    values.sort_unstable();
    assert_eq!(
        values,
        (1..=200).collect::<Vec<_>>(),
        "each request saw every earlier one"
    );
    let appends = memory.appends.load(Ordering::SeqCst);
    assert!(
        appends < 200,
        "group commit: {appends} appends for 200 requests"
    );
    assert_eq!(memory.records.lock().unwrap().len(), 201);
}

#[tokio::test]
async fn a_refused_commit_fails_the_batch_and_triggers_recovery() {
    let memory = MemoryStore::default();
    memory.records.lock().unwrap().push(vec![]);
    memory.refuse.store(true, Ordering::SeqCst);
    let (_dir, address) = serve_store(memory.clone()).await;
    let store = Arc::new(StoreClient::new(
        address,
        ConnectionLimits::default(),
        Duration::from_secs(5),
    ));
    let recoveries = Arc::new(AtomicUsize::new(0));
    let recover: Recover<Counter> = {
        let recoveries = recoveries.clone();
        let memory = memory.clone();
        Arc::new(move || {
            recoveries.fetch_add(1, Ordering::SeqCst);
            // The rebuilt state is what the store holds: nothing was applied.
            memory.refuse.store(false, Ordering::SeqCst);
            Box::pin(async { Ok((Counter { value: 0 }, fresh_log())) })
        })
    };
    let sequencer = Sequencer::start(
        Counter { value: 0 },
        fresh_log(),
        store,
        Arc::new(|| 1_700_000_000_000),
        recover,
        SequencerConfig::default(),
    );
    match sequencer.submit(5).await {
        Err(SequencerError::NotDurable(message)) => {
            assert!(message.contains("disk full"), "{message}")
        }
        other => panic!("expected NotDurable, got {other:?}"),
    }
    // After recovery the effect of the failed request is gone.
    let committed = sequencer.submit(1).await.unwrap();
    assert_eq!(committed.reply, 1);
    assert_eq!(recoveries.load(Ordering::SeqCst), 1);
    assert_eq!(memory.records.lock().unwrap().len(), 2);
}

async fn slow_store_sequencer(
    memory: &MemoryStore,
    recover: Recover<Counter>,
) -> (tempfile::TempDir, Sequencer<Counter>) {
    memory.records.lock().unwrap().push(vec![]);
    let (dir, address) = serve_store(memory.clone()).await;
    let store = Arc::new(StoreClient::new(
        address,
        ConnectionLimits::default(),
        Duration::from_secs(5),
    ));
    let sequencer = Sequencer::start(
        Counter { value: 0 },
        fresh_log(),
        store,
        Arc::new(|| 1_700_000_000_000),
        recover,
        SequencerConfig::default(),
    );
    (dir, sequencer)
}

#[tokio::test]
async fn a_request_decided_during_a_commit_is_answered_only_after_it() {
    let memory = MemoryStore::default();
    memory.delay_ms.store(300, Ordering::SeqCst);
    let (_dir, sequencer) = slow_store_sequencer(&memory, never_recovers()).await;
    let started = std::time::Instant::now();
    let write = tokio::spawn({
        let sequencer = sequencer.clone();
        async move { sequencer.submit(7).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A read decided while the write's batch is in flight sees the write...
    let read = sequencer.submit(0).await.unwrap();
    assert_eq!(read.reply, 7);
    // ...and so must not be answered before the write is durable.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(memory.records.lock().unwrap().len(), 2);
    write.await.unwrap().unwrap();
}

#[tokio::test]
async fn when_a_commit_fails_the_batch_decided_on_top_of_it_fails_too() {
    let memory = MemoryStore::default();
    memory.delay_ms.store(300, Ordering::SeqCst);
    let recoveries = Arc::new(AtomicUsize::new(0));
    let recover: Recover<Counter> = {
        let recoveries = recoveries.clone();
        let memory = memory.clone();
        Arc::new(move || {
            recoveries.fetch_add(1, Ordering::SeqCst);
            memory.refuse.store(false, Ordering::SeqCst);
            memory.delay_ms.store(0, Ordering::SeqCst);
            Box::pin(async { Ok((Counter { value: 0 }, fresh_log())) })
        })
    };
    let (_dir, sequencer) = slow_store_sequencer(&memory, recover).await;
    let first = tokio::spawn({
        let sequencer = sequencer.clone();
        async move { sequencer.submit(5).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The first batch is in flight; the parent will refuse it.
    memory.refuse.store(true, Ordering::SeqCst);
    let second = sequencer.submit(1).await;
    assert!(
        matches!(second, Err(SequencerError::NotDurable(_))),
        "decided on top of a batch that failed: {second:?}"
    );
    assert!(matches!(
        first.await.unwrap(),
        Err(SequencerError::NotDurable(_))
    ));
    assert_eq!(recoveries.load(Ordering::SeqCst), 1);
    // The rebuilt state holds neither.
    assert_eq!(sequencer.submit(1).await.unwrap().reply, 1);
}

#[tokio::test]
async fn a_parent_that_forged_an_acknowledgement_is_not_followed_into_a_fork() {
    let memory = MemoryStore::default();
    let recoveries = Arc::new(AtomicUsize::new(0));
    let recover: Recover<Counter> = {
        let recoveries = recoveries.clone();
        Arc::new(move || {
            recoveries.fetch_add(1, Ordering::SeqCst);
            // What the parent's store really holds: only genesis.
            Box::pin(async { Ok((Counter { value: 0 }, fresh_log())) })
        })
    };
    let (_dir, sequencer) = slow_store_sequencer(&memory, recover).await;
    memory.forge.store(true, Ordering::SeqCst);
    // Acknowledged by a parent that stored nothing.
    sequencer.submit(1).await.unwrap();
    memory.forge.store(false, Ordering::SeqCst);
    // The next append does not fit what the store holds...
    assert!(matches!(
        sequencer.submit(1).await,
        Err(SequencerError::NotDurable(_))
    ));
    // ...and the store's log is shorter than what was acknowledged: no rebuild is accepted,
    // nothing is decided on a forked log.
    for _ in 0..3 {
        assert!(matches!(
            sequencer.submit(1).await,
            Err(SequencerError::Recovering)
        ));
    }
    assert!(recoveries.load(Ordering::SeqCst) >= 1);
    assert_eq!(memory.records.lock().unwrap().len(), 1, "nothing written");
}

#[tokio::test]
async fn a_rebuilt_log_on_another_branch_is_refused_and_nothing_more_is_written() {
    // The enclave acknowledged genesis and `+1` (size 2). After a failed commit the parent
    // serves another branch that verifies (a second enclave of the same image, holding the
    // same KMS log key, wrote it on a copy of the store): as long, or longer. Adopting it
    // would make this enclave sign checkpoints for two different trees.
    let ours = log_of(&[1]).tree().root();
    for (name, branch) in [("as long", vec![2]), ("longer", vec![2, 3])] {
        let theirs = log_of(&branch).tree().root_at(2).unwrap();
        assert_ne!(ours, theirs);
        let memory = MemoryStore::default();
        let recoveries = Arc::new(AtomicUsize::new(0));
        let recover: Recover<Counter> = {
            let recoveries = recoveries.clone();
            Arc::new(move || {
                recoveries.fetch_add(1, Ordering::SeqCst);
                let branch = branch.clone();
                Box::pin(async move {
                    let value = branch.iter().sum();
                    Ok((Counter { value }, log_of(&branch)))
                })
            })
        };
        let (_dir, sequencer) = slow_store_sequencer(&memory, recover).await;
        let acknowledged = sequencer.submit(1).await.unwrap();
        assert_eq!(acknowledged.receipts[0].index, 1);
        memory.refuse.store(true, Ordering::SeqCst);
        assert!(
            matches!(
                sequencer.submit(1).await,
                Err(SequencerError::NotDurable(_))
            ),
            "{name}"
        );
        // The store would take appends again: none may come.
        memory.refuse.store(false, Ordering::SeqCst);
        let appends = memory.appends.load(Ordering::SeqCst);
        for _ in 0..3 {
            let message = match sequencer.submit(1).await {
                Err(error) => error.to_string(),
                Ok(committed) => panic!(
                    "{name}: the enclave adopted the other branch and went on (value {})",
                    committed.reply
                ),
            };
            for expected in ["size 2", &ours.to_hex(), &theirs.to_hex()] {
                assert!(
                    message.contains(expected),
                    "{name}: {expected} in {message}"
                );
            }
        }
        assert_eq!(memory.appends.load(Ordering::SeqCst), appends, "{name}");
        assert_eq!(memory.records.lock().unwrap().len(), 2, "{name}");
        assert_eq!(
            recoveries.load(Ordering::SeqCst),
            1,
            "{name}: final, not retried"
        );
        // Health sees it as stopped, not as still rebuilding.
        let failed = sequencer.failed().unwrap_or_default();
        assert!(failed.contains("another branch"), "{name}: {failed}");
        assert_eq!(sequencer.rebuilding(), None, "{name}");
    }
}

#[tokio::test]
async fn a_rebuilt_log_that_extends_what_was_acknowledged_is_adopted() {
    // The parent stored the failed batch (`+5`) but its answer was lost: the log read back
    // holds the acknowledged tree as its prefix, and the enclave goes on from it.
    let memory = MemoryStore::default();
    let recover: Recover<Counter> = {
        let memory = memory.clone();
        Arc::new(move || {
            memory.refuse.store(false, Ordering::SeqCst);
            Box::pin(async { Ok((Counter { value: 6 }, log_of(&[1, 5]))) })
        })
    };
    let (_dir, sequencer) = slow_store_sequencer(&memory, recover).await;
    sequencer.submit(1).await.unwrap();
    memory.refuse.store(true, Ordering::SeqCst);
    assert!(matches!(
        sequencer.submit(5).await,
        Err(SequencerError::NotDurable(_))
    ));
    // A read (no record) sees the rebuilt state.
    assert_eq!(sequencer.submit(0).await.unwrap().reply, 6);
}
