//! Reading the parent's log back at start (or after a failed commit), verifying all of it,
//! and handing each record to the caller to replay.
//!
//! The parent is untrusted: every checkpoint must be signed by an attested log key, every
//! record must be in the tree the checkpoints sign, and the first record that does not fit
//! stops the start with its index. Nothing is written until the whole log has verified.

use std::time::{Duration, Instant};

use ea_audit::record::Record;
use ea_audit::verify::{AttestationChecker, SkipRequestChecks, VerifyOptions};
use ea_audit::{LogError, LogSummary, LogVerifier, MerkleTree};
use ea_protocol::store::{MAX_CHECKPOINTS_PER_READ, MAX_RECORDS_PER_READ};

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

/// The verified log: its summary and its tree, ready to be appended to.
pub struct RecoveredLog {
    /// What the verifier established.
    pub summary: LogSummary,
    /// The tree over every record.
    pub tree: MerkleTree,
}

/// Reads and verifies the whole log, calling `replay` with each record in order once it has
/// passed the per-record checks. Returns `Ok(None)` when the log is empty.
///
/// Records after the last checkpoint are accepted: the enclave may have stopped after the
/// parent stored a batch and before any reply left. Their checkpoint was signed with the
/// batch, so a missing one means the parent lost it; the tail is still verified against the
/// tree when the next checkpoint is signed.
pub async fn recover_log<A: AttestationChecker>(
    store: &StoreClient,
    attestation: A,
    mut replay: impl FnMut(u64, &Record) -> Result<(), String>,
) -> Result<Option<RecoveredLog>, RecoveryError> {
    let (size, _) = store.head().await?;
    if size == 0 {
        return Ok(None);
    }
    let mut verifier = LogVerifier::new(
        attestation,
        SkipRequestChecks,
        VerifyOptions {
            allow_unsigned_tail: true,
        },
    );
    let mut from_size = 0;
    loop {
        let page = store
            .read_checkpoints(from_size, MAX_CHECKPOINTS_PER_READ)
            .await?;
        let Some((last, _)) = page.last() else { break };
        from_size = last + 1;
        for (_, note) in &page {
            verifier.add_checkpoint(note)?;
        }
    }
    let mut next = 0;
    let (mut reading, mut verifying, mut replaying) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    while next < size {
        let started = Instant::now();
        let records = store
            .read_records(next, MAX_RECORDS_PER_READ, READ_BYTES)
            .await?;
        reading += started.elapsed();
        if records.is_empty() {
            return Err(RecoveryError::Short {
                announced: size,
                returned: next,
            });
        }
        for bytes in records {
            let started = Instant::now();
            let record = verifier.add_record(&bytes)?;
            let verified = Instant::now();
            verifying += verified - started;
            replay(next, &record).map_err(|reason| RecoveryError::Replay {
                index: next,
                reason,
            })?;
            replaying += verified.elapsed();
            next += 1;
        }
    }
    tracing::info!(
        reading_ms = reading.as_millis() as u64,
        verifying_ms = verifying.as_millis() as u64,
        replaying_ms = replaying.as_millis() as u64,
        "log read back"
    );
    let (summary, tree) = verifier.finish_with_tree()?;
    Ok(Some(RecoveredLog { summary, tree }))
}
