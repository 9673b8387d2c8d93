//! What the log verifier reports when a log does not verify.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use crate::checkpoint::CheckpointError;
use crate::note::NoteError;
use crate::record::{RecordError, RecordKind};

/// An error from a checker passed in by the caller, kept as it was.
pub type CheckerError = Arc<dyn StdError + Send + Sync>;

/// The first thing wrong with a log, and the first record index it implicates.
#[derive(Debug, Clone)]
pub struct LogError {
    /// The first record index the error implicates; `None` when it implicates no record
    /// (a malformed checkpoint, checkpoints out of order or repeated).
    ///
    /// For a checkpoint whose root does not match, or whose signature fails, this is the
    /// first record the checkpoint covers that the previous verified checkpoint did not:
    /// the root proves that some record in that batch was changed, not which one.
    pub index: Option<u64>,
    /// What is wrong.
    pub kind: LogErrorKind,
}

/// What is wrong with a log. Checkpoints are numbered from 0 in the order they were given.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogErrorKind {
    /// There are no records at all.
    #[error("the log has no records")]
    EmptyLog,
    /// The bytes are not a canonical record.
    #[error("not a record: {0}")]
    Record(#[source] RecordError),
    /// The record's `seq` is not its position: a record was deleted, inserted or moved.
    #[error("the record says seq {found}")]
    SeqMismatch {
        /// The `seq` found.
        found: u64,
    },
    /// Record 0 is not a genesis record.
    #[error("record 0 must be genesis, found {found}")]
    NotGenesis {
        /// The kind found.
        found: RecordKind,
    },
    /// A genesis record after record 0.
    #[error("only record 0 may be genesis")]
    GenesisAgain,
    /// A record of a kind that must carry an attestation document has none.
    #[error("a {kind} record must carry an attestation document")]
    MissingAttestation {
        /// The record's kind.
        kind: RecordKind,
    },
    /// The attestation checker refused the record's attestation document.
    #[error("the attestation document of this {kind} record was refused: {source}")]
    Attestation {
        /// The record's kind.
        kind: RecordKind,
        /// The checker's error.
        #[source]
        source: CheckerError,
    },
    /// An enclave start's attestation names no public key.
    #[error("the enclave start attestation names no log key")]
    NoLogKey,
    /// An enclave start's attestation names a public key that is not 32 bytes.
    #[error("the attested log key is {len} bytes, an Ed25519 key is 32")]
    BadLogKey {
        /// The length found.
        len: usize,
    },
    /// The request checker refused the embedded client request.
    #[error("the embedded client request was refused: {source}")]
    Request {
        /// The checker's error.
        #[source]
        source: CheckerError,
    },
    /// A checkpoint note that does not parse.
    #[error("checkpoint {checkpoint} is malformed: {source}")]
    CheckpointMalformed {
        /// Which checkpoint.
        checkpoint: usize,
        /// Why.
        #[source]
        source: CheckpointError,
    },
    /// A checkpoint smaller than the one before it.
    #[error("checkpoint {checkpoint} has size {size}, smaller than the previous {previous}")]
    CheckpointOrder {
        /// Which checkpoint.
        checkpoint: usize,
        /// Its size.
        size: u64,
        /// The previous checkpoint's size.
        previous: u64,
    },
    /// A second checkpoint of the size of the one before it. A log has one checkpoint per
    /// size: every batch the enclave commits adds records, and the store keeps one
    /// checkpoint per size. A repeat is refused rather than checked again, so that a store
    /// cannot make a verifier hold or check the same checkpoint without end.
    #[error(
        "checkpoint {checkpoint} has size {size}, the same as the checkpoint before it: a log \
         has one checkpoint per size"
    )]
    CheckpointRepeated {
        /// Which checkpoint.
        checkpoint: usize,
        /// Its size.
        size: u64,
    },
    /// A checkpoint of another log.
    #[error("checkpoint {checkpoint} is for {found:?}, this log is {expected:?}")]
    CheckpointOrigin {
        /// Which checkpoint.
        checkpoint: usize,
        /// Its origin.
        found: String,
        /// This log's origin.
        expected: String,
    },
    /// A checkpoint not validly signed by a log key attested below its size.
    #[error(
        "checkpoint {checkpoint} (size {size}) is not signed by an attested log key: {source}"
    )]
    CheckpointSignature {
        /// Which checkpoint.
        checkpoint: usize,
        /// Its size.
        size: u64,
        /// Why.
        #[source]
        source: NoteError,
    },
    /// The records do not hash to the checkpoint's root.
    #[error("checkpoint {checkpoint} (size {size}) does not match the records' root")]
    RootMismatch {
        /// Which checkpoint.
        checkpoint: usize,
        /// Its size.
        size: u64,
    },
    /// A checkpoint covers more records than the log has: its tail was cut off.
    #[error("checkpoint {checkpoint} covers {size} records, the log has only {records}")]
    Truncated {
        /// Which checkpoint.
        checkpoint: usize,
        /// Its size.
        size: u64,
        /// The records present.
        records: u64,
    },
    /// A checkpoint signed only by the log key of an image whose enclave was superseded: a
    /// later `enclave_start` of another image, below the checkpoint's size, took over the
    /// log, and from that record on only keys attested at or after it count.
    #[error(
        "checkpoint {checkpoint} (size {size}) is signed by the log key of record {key_index}, \
         whose image was superseded by the enclave_start of another image at record \
         {superseded_by}: checkpoints of size above {superseded_by} must be signed by a key \
         attested at or after that record"
    )]
    SupersededKey {
        /// Which checkpoint.
        checkpoint: usize,
        /// Its size.
        size: u64,
        /// The `enclave_start` record that attested the key that signed it.
        key_index: u64,
        /// The `enclave_start` record of the image that took over.
        superseded_by: u64,
    },
    /// The log's first `enclave_start` shows another image than the genesis image the
    /// verifier pinned (`--pcrs`).
    #[error(
        "the log's first enclave_start shows PCR{pcr} = {found}, not the pinned genesis image's \
         {expected}: this log did not start under the image you expected"
    )]
    GenesisImage {
        /// The PCR that differs.
        pcr: u16,
        /// The pinned value (hex).
        expected: String,
        /// The document's value (hex, or `absent`).
        found: String,
    },
    /// An approval record attested by another image than the enclave writing the log.
    #[error(
        "the attestation document of this {kind} record shows another image than the \
         enclave_start at record {start} (PCR0 {found} instead of {expected}): only the enclave \
         that started there writes records until the next enclave_start"
    )]
    ForeignImage {
        /// The record's kind.
        kind: RecordKind,
        /// The `enclave_start` record of the image writing the log.
        start: u64,
        /// The PCR0 the record's document shows (hex).
        found: String,
        /// The PCR0 of the enclave writing the log (hex).
        expected: String,
    },
    /// Records after the last checkpoint, which no signature covers.
    #[error("records {from} to {} are not covered by any checkpoint", records - 1)]
    UnsignedRecords {
        /// The first uncovered record.
        from: u64,
        /// The number of records.
        records: u64,
    },
}

impl LogError {
    pub(crate) fn at(index: u64, kind: LogErrorKind) -> Self {
        Self {
            index: Some(index),
            kind,
        }
    }

    pub(crate) fn unplaced(kind: LogErrorKind) -> Self {
        Self { index: None, kind }
    }
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(index) => write!(f, "audit log, record {index}: {}", self.kind),
            None => write!(f, "audit log: {}", self.kind),
        }
    }
}

// The message already says everything, the kind's causes included: no source, so that an
// error chain (`{:#}`) does not print each cause again.
impl StdError for LogError {}
