//! The audit log export routes, read straight from the parent's store.
//!
//! The parent is untrusted, but what it serves here is verifiable: records are checked
//! against checkpoints signed by a log key that an attestation document binds to the enclave
//! image (`govctl audit verify`). So these routes need no enclave round trip.
//!
//! - `GET /v1/log/checkpoint` → `{"size": N, "checkpoint": "<signed note>"}`, 404 when the
//!   log is empty;
//! - `GET /v1/log/records?from=A&to=B` → `{"from": A, "records": ["<base64>", ...]}`: records
//!   of `[A, B)`, at most [`MAX_PAGE`] and about [`MAX_PAGE_BYTES`] per page (at least one
//!   record when `A` exists), so a page may end before `B`; `to` is optional;
//! - `GET /v1/log/checkpoints?from_size=N` → `{"checkpoints": [{"size", "checkpoint"}, ...]}`:
//!   checkpoints of size at least `N` (default 0), at most [`MAX_PAGE`], by increasing size;
//! - `GET /v1/log/consistency?from=A&to=B` → `{"from": A, "to": B, "proof": ["<base64>", ...]}`:
//!   the RFC 9162 consistency proof between the trees of sizes `A` and `B` (`A <= B`), 404
//!   when the log holds fewer than `B` records. Clients check it against the roots they hold
//!   signed; the proxy keeps the leaf hashes in memory ([`LeafCache`]) to answer quickly;
//! - `GET /v1/log/witnessed` → `{"size": N, "checkpoint": "<signed note>"}`: the largest
//!   checkpoint witnesses cosigned, its note carrying the log's signature and the witnesses'
//!   cosignature lines (`crate::witnesses` submits, the store keeps them); 404 when none.
//!   Clients check the cosignatures with the witness keys they pin.
//!
//! Bad query parameters get a 400 JSON error; a failing store a 503.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use std::sync::{Arc, Mutex};

use ea_audit::hash::{leaf_hash, Hash};
use ea_audit::proof::ConsistencyProof;
use ea_audit::MerkleTree;

use crate::api::AppState;
use crate::error::ApiError;
use crate::store::{page_len, SharedLogStore, StoreError, StoredCheckpoint};

/// Most records or checkpoints in one page.
pub const MAX_PAGE: u64 = 1000;

/// Most record (or note) bytes in one page, before base64; a single larger record is still
/// served, alone.
pub const MAX_PAGE_BYTES: usize = 8 << 20;

/// The export routes, to be merged into the API router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/log/checkpoint", get(checkpoint))
        .route("/v1/log/records", get(records))
        .route("/v1/log/checkpoints", get(checkpoints))
        .route("/v1/log/consistency", get(consistency))
        .route("/v1/log/witnessed", get(witnessed))
}

/// The log's leaf hashes, read from the store once and extended as clients ask for larger
/// trees (about 34 bytes per record: ea_audit's tree). Records never change once stored, so
/// what was read stays right; a store replaced under a running proxy is not supported
/// anyway (restoring restarts it). The consistency route and the witness submitter
/// (`crate::witnesses`) share one.
#[derive(Clone, Default)]
pub struct LeafCache(Arc<Mutex<MerkleTree>>);

/// What [`LeafCache::consistency_proof`] found: the proof, or the size the store holds when
/// it holds fewer records than asked for.
pub type ProofOrSize = Result<ConsistencyProof, u64>;

impl LeafCache {
    /// Reads the store's records up to `to` into the cache (if it lacks them) and returns
    /// the consistency proof from `from` to `to` (`from <= to`, checked by the caller), or,
    /// if the store holds fewer than `to` records, how many it holds. Also returns the root
    /// of the tree of `to` records when there is one, for callers that check it against a
    /// checkpoint. Blocks on the store: call it off the async runtime's threads.
    pub fn consistency_proof(
        &self,
        store: &SharedLogStore,
        from: u64,
        to: u64,
    ) -> Result<(ProofOrSize, Option<Hash>), StoreError> {
        let mut tree = match self.0.lock() {
            Ok(tree) => tree,
            Err(poisoned) => poisoned.into_inner(),
        };
        while tree.size() < to {
            let missing = usize::try_from(to - tree.size()).unwrap_or(usize::MAX);
            let page =
                store.read_records(tree.size(), missing.min(MAX_PAGE as usize), MAX_PAGE_BYTES)?;
            if page.is_empty() {
                break;
            }
            for record in &page {
                tree.push(leaf_hash(record));
            }
        }
        let root = tree.root_at(to);
        let proof = tree
            .consistency_proof(from, to)
            .map_err(|_| tree.size().min(to));
        Ok((proof, root))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    from: u64,
    to: u64,
}

#[derive(Debug, Serialize)]
struct ConsistencyJson {
    from: u64,
    to: u64,
    proof: Vec<String>,
}

async fn consistency(
    State(state): State<AppState>,
    query: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<ConsistencyJson>, ApiError> {
    let Query(ConsistencyQuery { from, to }) = query.map_err(|r| bad_query(&r))?;
    if from > to {
        return Err(ApiError::bad_request(format!(
            "`from` ({from}) is past `to` ({to}): a consistency proof goes from the smaller tree"
        )));
    }
    let leaves = state.leaves.clone();
    let (proof, _) = read(&state, move |store| {
        leaves.consistency_proof(store, from, to)
    })
    .await?;
    match proof {
        Ok(proof) => Ok(Json(ConsistencyJson {
            from,
            to,
            proof: proof
                .path
                .iter()
                .map(|hash| STANDARD.encode(hash.as_bytes()))
                .collect(),
        })),
        Err(size) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "beyond_the_log",
            format!("the log holds {size} records, fewer than {to}"),
        )),
    }
}

/// A checkpoint in JSON.
#[derive(Debug, Serialize)]
struct CheckpointJson {
    size: u64,
    checkpoint: String,
}

impl From<StoredCheckpoint> for CheckpointJson {
    fn from(stored: StoredCheckpoint) -> Self {
        Self {
            size: stored.size,
            checkpoint: stored.note,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordsQuery {
    from: u64,
    to: Option<u64>,
}

#[derive(Debug, Serialize)]
struct RecordsJson {
    from: u64,
    records: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointsQuery {
    from_size: Option<u64>,
}

#[derive(Debug, Serialize)]
struct CheckpointsJson {
    checkpoints: Vec<CheckpointJson>,
}

/// The HTTP error for a store error. Only the parent's own problems reach here: requests
/// the routes build are always well formed.
fn store_failed(error: &StoreError) -> ApiError {
    tracing::error!(%error, "log export: the store failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_failed",
        format!("the log store cannot be read: {error}"),
    )
}

/// Runs a store read on a blocking thread.
async fn read<T: Send + 'static>(
    state: &AppState,
    call: impl FnOnce(&SharedLogStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.log.clone();
    match tokio::task::spawn_blocking(move || call(&store)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(store_failed(&error)),
        Err(join) => {
            tracing::error!(error = %join, "log export: a store read panicked");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "reading the log store failed unexpectedly; see the proxy's log",
            ))
        }
    }
}

fn bad_query(rejection: &QueryRejection) -> ApiError {
    ApiError::bad_request(format!("bad query parameters: {}", rejection.body_text()))
}

async fn checkpoint(State(state): State<AppState>) -> Result<Json<CheckpointJson>, ApiError> {
    let head = read(&state, |store| store.head()).await?;
    match head.checkpoint {
        Some(checkpoint) => Ok(Json(checkpoint.into())),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "log_empty",
            "the audit log has no checkpoint yet",
        )),
    }
}

async fn witnessed(State(state): State<AppState>) -> Result<Json<CheckpointJson>, ApiError> {
    match read(&state, |store| store.cosigned_checkpoint()).await? {
        Some(checkpoint) => Ok(Json(checkpoint.into())),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_witnessed",
            "no witness has cosigned a checkpoint of this log yet (or this parent submits to none)",
        )),
    }
}

async fn records(
    State(state): State<AppState>,
    query: Result<Query<RecordsQuery>, QueryRejection>,
) -> Result<Json<RecordsJson>, ApiError> {
    let Query(RecordsQuery { from, to }) = query.map_err(|r| bad_query(&r))?;
    let to = to.unwrap_or(u64::MAX);
    if to < from {
        return Err(ApiError::bad_request(format!(
            "`to` ({to}) is before `from` ({from})"
        )));
    }
    // INVARIANT: MAX_PAGE fits in usize.
    let count = (to - from).min(MAX_PAGE) as usize;
    let records = read(&state, move |store| {
        store.read_records(from, count, MAX_PAGE_BYTES)
    })
    .await?;
    Ok(Json(RecordsJson {
        from,
        records: records.iter().map(|bytes| STANDARD.encode(bytes)).collect(),
    }))
}

async fn checkpoints(
    State(state): State<AppState>,
    query: Result<Query<CheckpointsQuery>, QueryRejection>,
) -> Result<Json<CheckpointsJson>, ApiError> {
    let Query(CheckpointsQuery { from_size }) = query.map_err(|r| bad_query(&r))?;
    let from_size = from_size.unwrap_or(0);
    let mut checkpoints = read(&state, move |store| {
        store.read_checkpoints(from_size, MAX_PAGE as usize)
    })
    .await?;
    let fit = page_len(
        checkpoints.iter().map(|c| c.note.len()),
        usize::MAX,
        MAX_PAGE_BYTES,
    );
    checkpoints.truncate(fit);
    Ok(Json(CheckpointsJson {
        checkpoints: checkpoints.into_iter().map(Into::into).collect(),
    }))
}
