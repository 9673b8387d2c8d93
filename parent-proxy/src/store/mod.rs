//! The parent's durable log store: the audit records, the checkpoints that sign them and the
//! sealed log key, kept for the enclave on the parent's disk.
//!
//! The parent is untrusted, and so is this store: the enclave verifies everything it reads
//! back (records against signed checkpoints, the sealed key by its AEAD tag). What the store
//! must get right is durability and order: an append is one transaction that holds all its
//! records and their checkpoint, answered only after it is on disk, and refused unless it
//! starts exactly at the end of the log, so two writers can never fork it.
//!
//! Beside the log it keeps the cosignatures witnesses made on its checkpoints
//! ([`LogStore::put_cosignatures`]), which the export routes serve with the checkpoint they
//! cosign ([`LogStore::cosigned_checkpoint`]); they are the witnesses' statements, written by
//! the parent's witness submitter (`crate::witnesses`), never read by the enclave.
//!
//! [`LogStore`] is the contract, with two implementations: [`SqliteLogStore`] for real and
//! [`MemoryLogStore`] for tests. Its methods block (SQLite does); async callers run them on
//! a blocking thread. [`service`] answers the enclave's [`ea_protocol::StoreRequest`]s with
//! them.
//!
//! ```
//! use ea_audit::{hash::leaf_hash, note::NoteSigner, Checkpoint, MerkleTree};
//! use parent_proxy::store::{LogStore, SqliteLogStore, StoreError};
//!
//! let dir = tempfile::tempdir()?;
//! let store = SqliteLogStore::open(dir.path().join("log.sqlite"))?;
//!
//! // The enclave appends records with the checkpoint it signed for the new size.
//! let records = vec![b"record 0".to_vec(), b"record 1".to_vec()];
//! let tree = MerkleTree::from_leaves(records.iter().map(|r| leaf_hash(r)));
//! let origin = "enclave-approvals/0123456789abcdef";
//! let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[1; 32]).unwrap();
//! let checkpoint = Checkpoint { origin: origin.into(), size: tree.size(), root: tree.root() }
//!     .sign(&NoteSigner::new(origin, Box::new(key))?)?;
//! assert_eq!(store.append(0, &records, &checkpoint)?, 2);
//!
//! // An append that does not start at the end is refused: the log cannot fork.
//! assert!(matches!(
//!     store.append(1, &records, &checkpoint),
//!     Err(StoreError::Conflict { expected: 2, got: 1 })
//! ));
//! assert_eq!(store.read_records(0, 10, 1 << 20)?, records);
//! assert_eq!(store.head()?.checkpoint.map(|c| c.note), Some(checkpoint));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cosigned;
mod error;
mod memory;
pub mod service;
mod sqlite;

use std::sync::Arc;

pub use error::{Corruption, StoreError};
pub use memory::MemoryLogStore;
pub use sqlite::{
    backup, read_kept_key, BackupSummary, BuiltStore, KeptKey, SqliteLogStore, SqliteOptions,
    StoreBuilder, StoreFileError, SCHEMA_VERSION,
};

/// A checkpoint as stored: the tree size it covers and its signed-note text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The tree size the checkpoint names.
    pub size: u64,
    /// The signed note, verbatim.
    pub note: String,
}

/// The end of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogHead {
    /// The number of records stored.
    pub size: u64,
    /// The checkpoint of the largest size, if any.
    pub checkpoint: Option<StoredCheckpoint>,
}

/// Durable storage for one append-only log. Every method blocks until it is done.
///
/// Implementations must make [`LogStore::append`] atomic and durable: either all records and
/// the checkpoint are stored, or nothing is, and the call returns only once they would
/// survive a power cut.
pub trait LogStore: Send + Sync + 'static {
    /// The number of records and the latest checkpoint.
    fn head(&self) -> Result<LogHead, StoreError>;

    /// Appends `records` at `first_index` with `checkpoint`, the signed note for the new
    /// size, in one durable transaction; returns the new size.
    ///
    /// Refused with [`StoreError::Conflict`] unless `first_index` is the current size, and
    /// with [`StoreError::CheckpointSize`] unless the note names the new size. An append of
    /// no records stores the checkpoint for the current size in place of the one stored.
    fn append(
        &self,
        first_index: u64,
        records: &[Vec<u8>],
        checkpoint: &str,
    ) -> Result<u64, StoreError>;

    /// Records from index `from`, at most `max_count` of them, stopping before their total
    /// length would exceed `max_bytes` (but returning at least one record if `from` exists
    /// and `max_count > 0`). Empty when `from` is at or past the end.
    fn read_records(
        &self,
        from: u64,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Checkpoints of size at least `from_size`, by increasing size, at most `max_count`.
    fn read_checkpoints(
        &self,
        from_size: u64,
        max_count: usize,
    ) -> Result<Vec<StoredCheckpoint>, StoreError>;

    /// Stores the sealed log key, replacing any stored before, durably.
    fn put_sealed_key(&self, sealed: &[u8]) -> Result<(), StoreError>;

    /// The sealed log key, if one was stored.
    fn get_sealed_key(&self) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores witness cosignature lines (`— <witness name> <base64>`, with or without a
    /// final newline) for the checkpoint of `size`, durably: one line per witness key (name
    /// and key id) and size, a newer line of the same key replacing the older. Storing the
    /// same lines again changes nothing.
    ///
    /// Refused with [`StoreError::NoCheckpoint`] when no checkpoint of that size is stored,
    /// and with [`StoreError::BadCosignature`] (nothing stored) when a line is not one
    /// well-formed signature line. Signatures are not checked: the store knows no witness
    /// keys, and clients verify them with the keys they pin.
    fn put_cosignatures(&self, size: u64, lines: &[String]) -> Result<(), StoreError>;

    /// The largest checkpoint that has cosignatures, as one signed note: the stored note
    /// with every cosignature line of its size appended as further signature lines (by
    /// witness name, then key id; lines beyond what a note may hold are left out). `None`
    /// when no stored checkpoint has any.
    fn cosigned_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError>;
}

/// A store shared between the enclave's service and the export routes.
pub type SharedLogStore = Arc<dyn LogStore>;

/// The tree size a checkpoint note names; the signature is not checked (the store cannot
/// know the keys, and the enclave verifies what it reads back).
fn checkpoint_size(note: &str) -> Result<u64, StoreError> {
    ea_audit::checkpoint::parse_unverified(note)
        .map(|(_, checkpoint)| checkpoint.size)
        .map_err(|source| StoreError::BadCheckpoint { source })
}

/// Checks that `checkpoint` names the size an append of `count` records at `first_index`
/// reaches, and returns that size.
fn size_after_append(first_index: u64, count: usize, checkpoint: &str) -> Result<u64, StoreError> {
    let new_size = u64::try_from(count)
        .ok()
        .and_then(|count| first_index.checked_add(count))
        .ok_or(StoreError::IndexOutOfRange { index: first_index })?;
    let named = checkpoint_size(checkpoint)?;
    if named != new_size {
        return Err(StoreError::CheckpointSize {
            expected: new_size,
            named,
        });
    }
    Ok(new_size)
}

/// How many of `lengths` fit: at most `max_count`, total at most `max_bytes`, at least one
/// when there is one and `max_count > 0`.
pub(crate) fn page_len(
    lengths: impl IntoIterator<Item = usize>,
    max_count: usize,
    max_bytes: usize,
) -> usize {
    let mut total = 0usize;
    let mut taken = 0usize;
    for len in lengths.into_iter().take(max_count) {
        total = total.saturating_add(len);
        if taken > 0 && total > max_bytes {
            break;
        }
        taken += 1;
    }
    taken
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_stop_at_count_and_bytes_but_never_return_nothing() {
        assert_eq!(page_len([10, 10, 10], 2, 100), 2);
        assert_eq!(page_len([10, 10, 10], 5, 25), 2);
        assert_eq!(page_len([10, 10, 10], 5, 30), 3);
        assert_eq!(
            page_len([500, 10], 5, 100),
            1,
            "one record even if it is too large"
        );
        assert_eq!(page_len([10], 0, 100), 0);
        assert_eq!(page_len([], 5, 100), 0);
    }
}
