//! Reading the parent's log back at start (or after a failed commit), verifying all of it,
//! and replaying it into a ledger.
//!
//! The parent is untrusted: every checkpoint must be signed by an attested log key, every
//! record must be in the tree the checkpoints sign, and the first record that does not fit
//! stops the start with its index. Nothing is written until the whole log has verified.
//!
//! Two passes share that contract:
//! - the **fast pass** runs first. It proves the log authentic (the tree over the records
//!   against every attested checkpoint, [`LogVerifier::add_authenticated_record`]) on one
//!   thread while another decodes each record's events straight from its bytes and replays
//!   them, and the store is read ahead of both. It skips what this enclave checked before it
//!   wrote each record (canonical form, client signatures, approval records' own documents);
//!   a record that no checkpoint covers fails it.
//! - the **full pass** runs only when the fast one fails on the log's content. It checks
//!   every record as an auditor does and names the first bad index, which the fast pass,
//!   which finds a changed record only when its checkpoint does not match, cannot always do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ea_audit::record::{Record, RecordFields};
use ea_audit::verify::{AttestationChecker, SkipRequestChecks, VerifyOptions};
use ea_audit::{LogError, LogSummary, LogVerifier, MerkleTree};
use ea_ledger::Ledger;
use ea_protocol::store::{MAX_CHECKPOINTS_PER_READ, MAX_RECORDS_PER_READ};
use tokio::sync::mpsc;

use crate::store_client::{StoreClient, StoreError};

/// Why the log could not be recovered.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The store could not be read.
    #[error("reading the log from the parent failed: {0}")]
    Store(#[from] StoreError),
    /// The log does not verify; nothing has been changed.
    #[error("the parent's log does not verify: {0}")]
    Invalid(LogError),
    /// The store returned fewer records than its head announced.
    #[error("the parent announced {announced} records but returned only {returned}")]
    Short {
        /// What `Head` said.
        announced: u64,
        /// What the reads returned.
        returned: u64,
    },
    /// A record verified but could not be replayed into the state.
    #[error("record {index} could not be replayed: {reason}")]
    Replay {
        /// The record's index.
        index: u64,
        /// Why.
        reason: String,
    },
}

// By hand rather than `#[from]`, which would make the error its source too and print it
// twice in a chain.
impl From<LogError> for RecoveryError {
    fn from(error: LogError) -> Self {
        RecoveryError::Invalid(error)
    }
}

/// Most bytes of records asked for in one read, leaving room in a 1 MiB frame.
const READ_BYTES: u32 = 768 * 1024;

/// Pages read ahead of the slower of the two fast-pass threads.
const PAGES_AHEAD: usize = 4;

/// The verified log: its summary and its tree, ready to be appended to.
pub struct RecoveredLog {
    /// What the verifier established.
    pub summary: LogSummary,
    /// The tree over every record.
    pub tree: MerkleTree,
}

/// How to rebuild the ledger from the log.
#[derive(Debug, Clone, Copy)]
pub struct ReplayOptions {
    /// The capacity of the ledger's replay cache.
    pub replay_capacity: usize,
    /// Now, unix milliseconds: nonces of requests still fresh at this time are remembered.
    pub now_ms: u64,
}

/// Reads, verifies and replays the whole log. Returns `Ok(None)` when the log is empty.
///
/// Every record must be covered by a checkpoint. The parent stores a batch and its
/// checkpoint in one transaction, so records after the last checkpoint were not written by
/// this enclave: they are refused, with the index of the first.
pub async fn recover_log<A>(
    store: &StoreClient,
    attestation: A,
    options: ReplayOptions,
) -> Result<Option<(Ledger, RecoveredLog)>, RecoveryError>
where
    A: AttestationChecker + Clone + Send + 'static,
{
    let (size, _) = store.head().await?;
    if size == 0 {
        return Ok(None);
    }
    let started = Instant::now();
    let fast = fast_pass(store, attestation.clone(), options, size).await;
    match fast {
        Ok(recovered) => Ok(Some(recovered)),
        Err(FastFailure::Store(error)) => Err(error),
        Err(FastFailure::Content(reason)) => {
            tracing::warn!(
                %reason,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "the log failed the fast check; checking every record to find the first bad one"
            );
            full_pass(store, attestation, options, size).await.map(Some)
        }
    }
}

/// Why the fast pass stopped.
enum FastFailure {
    /// The store failed or misbehaved: checking the content again would not help.
    Store(RecoveryError),
    /// Something in the log: the full pass finds what.
    Content(String),
}

/// A page of records and the index of its first.
struct Page {
    first: u64,
    records: Vec<Vec<u8>>,
}

/// What one fast-pass thread did, and for how long it was busy.
struct Worked<T> {
    result: Result<T, String>,
    busy: Duration,
}

async fn fast_pass<A>(
    store: &StoreClient,
    attestation: A,
    options: ReplayOptions,
    size: u64,
) -> Result<(Ledger, RecoveredLog), FastFailure>
where
    A: AttestationChecker + Send + 'static,
{
    let mut verifier = LogVerifier::new(attestation, SkipRequestChecks, VerifyOptions::default());
    add_checkpoints(store, &mut verifier)
        .await
        .map_err(|error| match error {
            RecoveryError::Invalid(error) => FastFailure::Content(error.to_string()),
            other => FastFailure::Store(other),
        })?;

    let (to_verifier, pages_to_verify) = mpsc::channel::<Arc<Page>>(PAGES_AHEAD);
    let (to_replayer, pages_to_replay) = mpsc::channel::<Arc<Page>>(PAGES_AHEAD);
    let verifying = tokio::task::spawn_blocking(move || verify_pages(verifier, pages_to_verify));
    let replaying = tokio::task::spawn_blocking(move || replay_pages(options, pages_to_replay));

    let mut next = 0;
    let mut reading = Duration::ZERO;
    let mut read_failure = None;
    while next < size {
        let started = Instant::now();
        let records = store
            .read_records(next, MAX_RECORDS_PER_READ, READ_BYTES)
            .await;
        reading += started.elapsed();
        let records = match records {
            Ok(records) if records.is_empty() => {
                read_failure = Some(RecoveryError::Short {
                    announced: size,
                    returned: next,
                });
                break;
            }
            Ok(records) => records,
            Err(error) => {
                read_failure = Some(error.into());
                break;
            }
        };
        let page = Arc::new(Page {
            first: next,
            records,
        });
        next += page.records.len() as u64;
        // A thread that stopped has failed: its result says why.
        if to_verifier.send(page.clone()).await.is_err() || to_replayer.send(page).await.is_err() {
            break;
        }
    }
    drop((to_verifier, to_replayer));
    let verified = join(verifying).await;
    let replayed = join(replaying).await;
    if let Some(error) = read_failure {
        return Err(FastFailure::Store(error));
    }
    tracing::info!(
        reading_ms = reading.as_millis() as u64,
        verifying_ms = verified.busy.as_millis() as u64,
        replaying_ms = replayed.busy.as_millis() as u64,
        "log read back (verified and replayed side by side)"
    );
    let log = verified.result.map_err(FastFailure::Content)?;
    let ledger = replayed.result.map_err(FastFailure::Content)?;
    Ok((ledger, log))
}

async fn join<T>(task: tokio::task::JoinHandle<Worked<T>>) -> Worked<T> {
    task.await.unwrap_or_else(|error| Worked {
        result: Err(format!("a recovery thread stopped: {error}")),
        busy: Duration::ZERO,
    })
}

/// The verifying thread: the tree against the checkpoints.
fn verify_pages<A: AttestationChecker>(
    mut verifier: LogVerifier<A, SkipRequestChecks>,
    mut pages: mpsc::Receiver<Arc<Page>>,
) -> Worked<RecoveredLog> {
    let mut busy = Duration::ZERO;
    while let Some(page) = pages.blocking_recv() {
        let started = Instant::now();
        for bytes in &page.records {
            if let Err(error) = verifier.add_authenticated_record(bytes) {
                return Worked {
                    result: Err(error.to_string()),
                    busy,
                };
            }
        }
        busy += started.elapsed();
    }
    let started = Instant::now();
    let result = verifier
        .finish_with_tree()
        .map(|(summary, tree)| RecoveredLog { summary, tree })
        .map_err(|error| error.to_string());
    busy += started.elapsed();
    Worked { result, busy }
}

/// The replaying thread: each record's events into the ledger, in order.
fn replay_pages(options: ReplayOptions, mut pages: mpsc::Receiver<Arc<Page>>) -> Worked<Ledger> {
    let mut busy = Duration::ZERO;
    let mut ledger: Option<Ledger> = None;
    while let Some(page) = pages.blocking_recv() {
        let started = Instant::now();
        for (index, bytes) in (page.first..).zip(&page.records) {
            if let Err(reason) = replay_one(&mut ledger, options, bytes) {
                return Worked {
                    result: Err(format!("record {index} could not be replayed: {reason}")),
                    busy,
                };
            }
        }
        busy += started.elapsed();
    }
    let result = ledger.ok_or_else(|| "the log has no genesis record".to_owned());
    Worked { result, busy }
}

fn replay_one(
    ledger: &mut Option<Ledger>,
    options: ReplayOptions,
    bytes: &[u8],
) -> Result<(), String> {
    match ledger {
        // The genesis document is a value tree by nature: decode record 0 in full.
        None => {
            let record = Record::from_bytes(bytes).map_err(|e| e.to_string())?;
            let genesis = Ledger::from_genesis_record(&record, options.replay_capacity)
                .map_err(|e| e.to_string())?;
            *ledger = Some(genesis);
            Ok(())
        }
        Some(ledger) => {
            let fields = RecordFields::parse(bytes).map_err(|e| e.to_string())?;
            ledger
                .replay_fields(&fields, options.now_ms)
                .map_err(|e| e.to_string())
        }
    }
}

/// Adds every checkpoint the store holds, in order.
async fn add_checkpoints<A: AttestationChecker>(
    store: &StoreClient,
    verifier: &mut LogVerifier<A, SkipRequestChecks>,
) -> Result<(), RecoveryError> {
    let mut from_size = 0;
    loop {
        let page = store
            .read_checkpoints(from_size, MAX_CHECKPOINTS_PER_READ)
            .await?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        from_size = last + 1;
        for (_, note) in &page {
            verifier.add_checkpoint(note)?;
        }
    }
}

/// Every check an auditor makes, record by record in one thread, so that the error names
/// the first bad index.
async fn full_pass<A: AttestationChecker>(
    store: &StoreClient,
    attestation: A,
    options: ReplayOptions,
    size: u64,
) -> Result<(Ledger, RecoveredLog), RecoveryError> {
    let mut verifier = LogVerifier::new(attestation, SkipRequestChecks, VerifyOptions::default());
    add_checkpoints(store, &mut verifier).await?;
    let mut ledger: Option<Ledger> = None;
    let mut next = 0;
    while next < size {
        let records = store
            .read_records(next, MAX_RECORDS_PER_READ, READ_BYTES)
            .await?;
        if records.is_empty() {
            return Err(RecoveryError::Short {
                announced: size,
                returned: next,
            });
        }
        for bytes in records {
            let record = verifier.add_record(&bytes)?;
            let replayed = match &mut ledger {
                None => Ledger::from_genesis_record(&record, options.replay_capacity)
                    .map(|genesis| ledger = Some(genesis)),
                Some(ledger) => ledger.replay(&record, options.now_ms),
            };
            replayed.map_err(|error| RecoveryError::Replay {
                index: next,
                reason: error.to_string(),
            })?;
            next += 1;
        }
    }
    let (summary, tree) = verifier.finish_with_tree()?;
    // INVARIANT: the verifier accepted record 0 as genesis, which made the ledger.
    let ledger = ledger.ok_or(RecoveryError::Short {
        announced: size,
        returned: 0,
    })?;
    Ok((ledger, RecoveredLog { summary, tree }))
}
