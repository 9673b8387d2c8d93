//! The witness submitter against the real witness service (the `witness` crate's, served in
//! process over loopback HTTP): cosignatures stored and served, a witness that was down
//! catching up, a fork refused, a dead witness delaying no other.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test"
)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::LogBuilder;
use ea_audit::cosignature::{verify_cosignatures, CosignatureSigner, CosignatureVerifier};
use ea_audit::note::NoteVerifier;
use ea_protocol::rpc::ConnectionLimits;
use http_body_util::BodyExt;
use parent_proxy::api::{router, AppState};
use parent_proxy::log_routes::LeafCache;
use parent_proxy::store::{LogStore, MemoryLogStore, SqliteLogStore};
use parent_proxy::witnesses::{run, SubmitterConfig, WitnessUrl};
use parent_proxy::{EnclavePool, PoolConfig};
use serde_json::Value;
use tokio::sync::{oneshot, watch};
use tower::ServiceExt;
use witness::http::{serve, Limits};
use witness::protocol::Witness;
use witness::store::Store;
use witness::Service;

/// A witness served on loopback, stoppable and restartable on the same port and state.
struct RunningWitness {
    seed: u8,
    address: SocketAddr,
    db: std::path::PathBuf,
    log_key: NoteVerifier,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn name(seed: u8) -> String {
    format!("witness.example/w{seed}")
}

fn verifier(seed: u8) -> CosignatureVerifier {
    CosignatureSigner::from_seed(&name(seed), &[seed; 32])
        .unwrap()
        .verifier()
        .clone()
}

impl RunningWitness {
    async fn start(dir: &Path, seed: u8, log_key: NoteVerifier) -> RunningWitness {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut witness = RunningWitness {
            seed,
            address,
            db: dir.join(format!("witness-{seed}.db")),
            log_key,
            stop: None,
            task: None,
        };
        witness.serve(listener);
        witness
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let cosigner = CosignatureSigner::from_seed(&name(self.seed), &[self.seed; 32]).unwrap();
        let service = Arc::new(Service::new(
            Witness::new(cosigner, [self.log_key.clone()]).unwrap(),
            Store::open(&self.db).unwrap(),
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        self.stop = Some(stop);
        self.task = Some(tokio::spawn(async move {
            serve(listener, service, Limits::default(), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        }));
    }

    fn url(&self) -> WitnessUrl {
        format!("http://{}", self.address).parse().unwrap()
    }

    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    async fn restart(&mut self) {
        assert!(self.task.is_none());
        let listener = tokio::net::TcpListener::bind(self.address).await.unwrap();
        self.serve(listener);
    }

    /// The size this witness holds for `origin` (its own state file).
    fn holds(&self, origin: &str) -> Option<u64> {
        Store::open(&self.db)
            .unwrap()
            .get(origin)
            .unwrap()
            .map(|stored| stored.state.size)
    }
}

/// A submitter over `store`, stopped when the returned sender is dropped or set.
fn submit(store: Arc<dyn LogStore>, witnesses: Vec<WitnessUrl>) -> watch::Sender<bool> {
    let (stop, stopped) = watch::channel(false);
    let mut config = SubmitterConfig::new(witnesses, Duration::from_millis(50));
    config.max_backoff = Duration::from_millis(400);
    config.request_timeout = Duration::from_secs(5);
    tokio::spawn(run(config, store, LeafCache::default(), stopped));
    stop
}

/// Waits until the store's cosigned checkpoint has `size` and cosignatures of all of
/// `witnesses` that verify; returns the note.
async fn wait_cosigned(store: &Arc<dyn LogStore>, size: u64, witnesses: &[u8]) -> String {
    let keys: Vec<CosignatureVerifier> = witnesses.iter().map(|&w| verifier(w)).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let cosigned = store.cosigned_checkpoint().unwrap();
        if let Some(c) = &cosigned {
            if c.size == size && verify_cosignatures(&c.note, &keys, keys.len()).is_ok() {
                return c.note.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of size {size} cosigned by {witnesses:?}; the store has {cosigned:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get(log: &Arc<dyn LogStore>, uri: &str) -> (StatusCode, Value) {
    let pool = EnclavePool::new(PoolConfig {
        enclave: "unix:/nonexistent/enclave.sock".parse().unwrap(),
        size: 1,
        limits: ConnectionLimits::default(),
        connect_timeout: Duration::from_millis(100),
        retry_after: Duration::from_millis(100),
    });
    let state = AppState {
        pool: Arc::new(pool),
        request_timeout: Duration::from_secs(1),
        log: log.clone(),
        leaves: Default::default(),
    };
    let response = router(state)
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn two_witnesses_cosign_the_same_checkpoints_and_the_route_serves_them() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn LogStore> =
        Arc::new(SqliteLogStore::open(dir.path().join("log.sqlite")).unwrap());
    let mut log = LogBuilder::new();
    let (status, body) = get(&store, "/v1/log/witnessed").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_witnessed");

    log.fill(&*store, &[1, 3]);
    let one = RunningWitness::start(dir.path(), 1, log.verifier()).await;
    let two = RunningWitness::start(dir.path(), 2, log.verifier()).await;
    let _stop = submit(store.clone(), vec![one.url(), two.url()]);
    let note = wait_cosigned(&store, 4, &[1, 2]).await;

    // Served as it is stored: the log's signature verifies with the log key, and the two
    // cosignatures with the witness keys.
    let (status, body) = get(&store, "/v1/log/witnessed").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["size"], 4);
    assert_eq!(body["checkpoint"], note.as_str());
    let opened = ea_audit::checkpoint::open_checkpoint(&note, &[log.verifier()], None).unwrap();
    assert_eq!(opened.checkpoint().size, 4);

    // The log grows in several appends between two rounds: both witnesses move on, with a
    // consistency proof from the size they hold.
    log.fill(&*store, &[2, 5, 1]);
    wait_cosigned(&store, 12, &[1, 2]).await;
    assert_eq!(one.holds(log.origin()), Some(12));
    assert_eq!(two.holds(log.origin()), Some(12));
}

#[tokio::test]
async fn a_witness_that_was_down_catches_up_and_a_restarted_submitter_resyncs() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn LogStore> = Arc::new(MemoryLogStore::new());
    let mut log = LogBuilder::new();
    log.fill(&*store, &[2]);
    let one = RunningWitness::start(dir.path(), 1, log.verifier()).await;
    let mut two = RunningWitness::start(dir.path(), 2, log.verifier()).await;
    let stop = submit(store.clone(), vec![one.url(), two.url()]);
    wait_cosigned(&store, 2, &[1, 2]).await;

    // Witness two goes down; the log grows; witness one alone cosigns.
    two.stop().await;
    log.fill(&*store, &[3]);
    wait_cosigned(&store, 5, &[1]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(two.holds(log.origin()), Some(2));

    // Back up: it gets the checkpoint it missed, with the proof from what it holds.
    two.restart().await;
    wait_cosigned(&store, 5, &[1, 2]).await;

    // A new submitter (a restarted proxy) believes both hold nothing: their 409s state the
    // sizes they hold, and it sends again from there.
    drop(stop);
    log.fill(&*store, &[4]);
    let _stop = submit(store.clone(), vec![one.url(), two.url()]);
    wait_cosigned(&store, 9, &[1, 2]).await;
}

#[tokio::test]
async fn a_fork_of_the_log_is_refused_by_the_witnesses_and_never_stored_cosigned() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn LogStore> = Arc::new(MemoryLogStore::new());
    let mut log = LogBuilder::new();
    log.fill(&*store, &[2, 2]);
    let one = RunningWitness::start(dir.path(), 1, log.verifier()).await;
    let two = RunningWitness::start(dir.path(), 2, log.verifier()).await;
    let stop = submit(store.clone(), vec![one.url(), two.url()]);
    wait_cosigned(&store, 4, &[1, 2]).await;
    drop(stop);

    // Another branch under the same key: the same size with another root (409), then a
    // larger tree that does not extend the cosigned one (422).
    let forked: Arc<dyn LogStore> = Arc::new(MemoryLogStore::new());
    let mut fork = LogBuilder::fork("the other branch");
    assert_eq!(fork.verifier(), log.verifier());
    fork.fill(&*forked, &[2, 2]);
    let _stop = submit(forked.clone(), vec![one.url(), two.url()]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(forked.cosigned_checkpoint().unwrap(), None);
    fork.fill(&*forked, &[3]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(forked.cosigned_checkpoint().unwrap(), None);
    assert_eq!(one.holds(log.origin()), Some(4));
    assert_eq!(two.holds(log.origin()), Some(4));

    // The witnesses answer the fork exactly so.
    let body = |old: u64, proof: &[ea_audit::Hash], note: &str| {
        parent_proxy::witnesses::request_body(old, proof, note)
    };
    let url = one.url().add_checkpoint();
    let post = |body: String| {
        let url = url.clone();
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .body(body)
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    };
    let same_size = forked.read_checkpoints(4, 1).unwrap().remove(0).note;
    assert_eq!(post(body(4, &[], &same_size)).await, 409);
    let larger = forked.head().unwrap().checkpoint.unwrap().note;
    let records = forked.read_records(0, 100, 1 << 20).unwrap();
    let tree =
        ea_audit::MerkleTree::from_leaves(records.iter().map(|r| ea_audit::hash::leaf_hash(r)));
    let proof = tree.consistency_proof(4, 7).unwrap().path;
    assert_eq!(post(body(4, &proof, &larger)).await, 422);
}

#[tokio::test]
async fn a_dead_or_silent_witness_delays_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn LogStore> = Arc::new(MemoryLogStore::new());
    let mut log = LogBuilder::new();
    log.fill(&*store, &[3]);
    // One that accepts connections and never answers, one where nothing listens.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url: WitnessUrl = format!("http://{}", silent.local_addr().unwrap())
        .parse()
        .unwrap();
    let closed_url: WitnessUrl = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", probe.local_addr().unwrap())
            .parse()
            .unwrap()
    };
    let one = RunningWitness::start(dir.path(), 1, log.verifier()).await;
    let started = Instant::now();
    let _stop = submit(store.clone(), vec![silent_url, closed_url, one.url()]);
    wait_cosigned(&store, 3, &[1]).await;
    log.fill(&*store, &[2]);
    wait_cosigned(&store, 5, &[1]).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the live witness waited for the dead ones: {:?}",
        started.elapsed()
    );
    drop(silent);
}

#[tokio::test]
async fn an_on_demand_submission_relays_each_witness_answer_with_a_proof_from_what_it_holds() {
    use parent_proxy::witnesses::OnDemand;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn LogStore> = Arc::new(MemoryLogStore::new());
    let mut log = LogBuilder::new();
    let first = log.fill(&*store, &[2]);
    let (_, small) = first.last().unwrap().clone();
    let one = RunningWitness::start(dir.path(), 1, log.verifier()).await;
    let mut two = RunningWitness::start(dir.path(), 2, log.verifier()).await;
    let mut config = SubmitterConfig::new(vec![one.url(), two.url()], Duration::from_millis(50));
    config.request_timeout = Duration::from_secs(5);
    let on_demand = OnDemand::new(&config, store.clone(), LeafCache::default()).unwrap();
    let text = |note: &str| {
        ea_audit::note::Note::parse(note)
            .unwrap()
            .unverified_text()
            .to_owned()
    };

    // Both cosign the first checkpoint; the answers come in the witnesses' order.
    let answers = on_demand.submit(&small).await;
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0].url, one.url().to_string());
    for (answer, seed) in answers.iter().zip([1, 2]) {
        assert_eq!(answer.status, 200, "{answer:?}");
        verifier(seed)
            .verify_line(&text(&small), &answer.body)
            .unwrap();
    }

    // The log grows: each witness answers 409 with its size, and the submission is sent
    // again with the proof from there. A witness down answers nothing (status 0).
    let grown = log.fill(&*store, &[3]);
    let (_, large) = grown.last().unwrap().clone();
    two.stop().await;
    let answers = on_demand.submit(&large).await;
    assert_eq!(answers[0].status, 200, "{:?}", answers[0]);
    verifier(1)
        .verify_line(&text(&large), &answers[0].body)
        .unwrap();
    assert_eq!(answers[1].status, 0, "{:?}", answers[1]);

    // The earlier checkpoint again (a rolled-back store): the witness that saw more answers
    // 409 with the size it holds, and nothing cosigns it.
    let answers = on_demand.submit(&small).await;
    assert_eq!(answers[0].status, 409, "{:?}", answers[0]);
    assert_eq!(answers[0].body, "5\n");
}
