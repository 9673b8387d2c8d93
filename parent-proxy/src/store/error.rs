//! Why the log store did not do what was asked.

use std::path::PathBuf;

use ea_audit::checkpoint::CheckpointError;
use ea_audit::note::NoteError;

/// An error of a [`super::LogStore`]. Each says whose fault it was: the caller's
/// (`Conflict`, `CheckpointSize`, `BadCheckpoint`, `IndexOutOfRange`, `NoCheckpoint`,
/// `BadCosignature`), the disk's (`Full`,
/// `Io`) or the file's (`Corrupt`, `UnsupportedSchema`). None of them carries record or key
/// bytes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The append did not start at the end of the log: another writer appended, or the
    /// caller's view of the log is stale. Nothing was written.
    #[error("append at index {got} refused: the log has {expected} records")]
    Conflict {
        /// The current number of records, where an append must start.
        expected: u64,
        /// Where the refused append started.
        got: u64,
    },
    /// The checkpoint of an append names another tree size than the append reaches.
    #[error("the checkpoint names tree size {named}, but the append reaches {expected}")]
    CheckpointSize {
        /// The size after the append.
        expected: u64,
        /// The size the checkpoint names.
        named: u64,
    },
    /// The checkpoint of an append is not a checkpoint note.
    #[error("the checkpoint is not a signed checkpoint note: {source}")]
    BadCheckpoint {
        /// What the parser objected to.
        #[source]
        source: CheckpointError,
    },
    /// Cosignatures for a size the store holds no checkpoint of.
    #[error("no checkpoint of size {size} is stored, so none of its cosignatures can be")]
    NoCheckpoint {
        /// The size given.
        size: u64,
    },
    /// A cosignature is not one well-formed signature line.
    #[error("a cosignature is not one signature line `— <name> <base64>`: {source}")]
    BadCosignature {
        /// What the note parser objected to.
        #[source]
        source: NoteError,
    },
    /// An index or size beyond what the store can hold (2^63 - 1).
    #[error("index {index} is beyond what the store can hold")]
    IndexOutOfRange {
        /// The index.
        index: u64,
    },
    /// The disk (or the store's configured size limit) is full. The transaction was rolled
    /// back: nothing of it is visible, and the store works again once space is freed.
    #[error("the log store {} is out of space; nothing was written", path.display())]
    Full {
        /// The database file.
        path: PathBuf,
    },
    /// Reading or writing the database failed.
    #[error("the log store {} failed: {source}", path.display())]
    Io {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite could not put the file in WAL mode (some network file systems cannot).
    #[error(
        "the log store {} cannot use WAL mode (journal mode is {mode}); put it on a local file system",
        path.display()
    )]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// The database does not hold a well-formed log.
    #[error("the log store {} is damaged: {problem}", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        problem: Corruption,
    },
    /// The database was written by a newer (or unknown) version of the schema.
    #[error(
        "the log store {} has schema version {found}; this build reads version {supported}",
        path.display()
    )]
    UnsupportedSchema {
        /// The database file.
        path: PathBuf,
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The version this build writes.
        supported: i64,
    },
}

/// What is wrong with a damaged store.
#[derive(Debug, thiserror::Error)]
pub enum Corruption {
    /// Records are not numbered 0, 1, 2, ... without gaps.
    #[error("{count} records are stored, but their indexes run from {min} to {max}")]
    NotContiguous {
        /// Rows in the records table.
        count: u64,
        /// The smallest index.
        min: i64,
        /// The largest index.
        max: i64,
    },
    /// A checkpoint covers records that are not stored.
    #[error("a checkpoint covers {checkpoint_size} records, but only {records} are stored")]
    CheckpointBeyondRecords {
        /// The largest checkpoint size.
        checkpoint_size: u64,
        /// The records stored.
        records: u64,
    },
    /// A read found a row out of sequence.
    #[error("expected record {expected}, found record {found}")]
    Gap {
        /// The index that should have come next.
        expected: u64,
        /// The index that did.
        found: i64,
    },
    /// A stored index or size is negative.
    #[error("a stored index or size is negative ({0})")]
    Negative(i64),
    /// SQLite itself reports the file as damaged or not a database.
    #[error("{0}")]
    Database(#[source] rusqlite::Error),
    /// `PRAGMA quick_check` found a problem; its first report, in SQLite's words.
    #[error("SQLite's quick_check reports: {0}")]
    QuickCheck(String),
}
