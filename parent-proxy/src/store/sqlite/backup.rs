//! `parent-proxy backup`: an online, consistent copy of the store into a new file, taken
//! beside a proxy that keeps appending.
//!
//! The copy is one `VACUUM INTO` statement on a connection of its own. It reads the whole
//! store in one read transaction, so the copy is the store as of one commit: every append
//! committed before the statement started is in it, whole, with its checkpoint, and nothing
//! of a later one is. In WAL mode a reader never blocks the writer, so the proxy keeps
//! appending meanwhile (its WAL grows until the copy ends, then folds back in as usual).
//! SQLite's stepwise backup API was the other choice; it restarts from the first page
//! whenever another process writes between two steps, which under steady appends may be
//! every time, or else copies all in one step, which is what `VACUUM INTO` does, with a
//! compact file (no free pages) as a bonus and no extra rusqlite feature.
//!
//! SQLite does not flush a `VACUUM INTO` file to disk, and writes it where it is told: so it
//! writes under a temporary name ([`Partial`]), which is checked, flushed and only then
//! named, never over an existing file.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::files::{
    check_free, check_version, count, open_existing, Destination, Partial, StoreFileError,
};
use super::{db_error, schema};
use crate::store::{Corruption, StoreError};

/// What a backup copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// The file written.
    pub path: PathBuf,
    /// Records in the copy.
    pub records: u64,
    /// Checkpoints in the copy.
    pub checkpoints: u64,
    /// The size of its last checkpoint (`None` for a store that holds none yet).
    pub last_checkpoint_size: Option<u64>,
    /// Whether the copy holds the sealed log key.
    pub sealed_key: bool,
    /// The copy's size on disk.
    pub bytes: u64,
}

/// Copies the store at `store` into the new file `to`, which must not exist; see the module
/// documentation.
pub fn backup(store: &Path, to: &Path) -> Result<BackupSummary, StoreFileError> {
    check_free(to)?;
    if !store.is_file() {
        return Err(StoreFileError::NoStore {
            path: store.to_owned(),
        });
    }
    let source = open_existing(store)?;
    check_version(&source, store)?;
    let partial = Partial::beside(to)?;
    source
        .execute("VACUUM INTO ?1", [partial.sql_path()?])
        .map_err(|source| StoreFileError::Copy {
            store: store.to_owned(),
            to: to.to_owned(),
            source,
        })?;
    source
        .close()
        .map_err(|(_, e)| StoreFileError::Store(db_error(store, e)))?;

    let copy = partial.path();
    let db = |e| StoreFileError::Store(db_error(copy, e));
    let connection = Connection::open_with_flags(
        copy,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db)?;
    // One self-contained file (no -wal beside it to forget when it is copied elsewhere); the
    // proxy puts it back in WAL mode when it opens it.
    connection
        .query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
        .map_err(db)?;
    check_version(&connection, copy)?;
    quick_check(&connection, copy)?;
    schema::check_integrity(&connection, copy)?;
    let contents = count(&connection, copy)?;
    connection.close().map_err(|(_, e)| db(e))?;
    let bytes = std::fs::metadata(copy)
        .map(|metadata| metadata.len())
        .map_err(|source| StoreFileError::Io {
            action: "reading the size of",
            path: copy.to_owned(),
            source,
        })?;
    partial.publish(Destination::Absent)?;
    Ok(BackupSummary {
        path: to.to_owned(),
        records: contents.records,
        checkpoints: contents.checkpoints,
        last_checkpoint_size: contents.last_checkpoint_size,
        sealed_key: contents.sealed_key,
        bytes,
    })
}

/// `PRAGMA quick_check` of a finished copy: every page and row well formed (not the index
/// contents, which `integrity_check` would also compare). A copy is checked once, when it is
/// made, rather than when it is needed.
fn quick_check(connection: &Connection, path: &Path) -> Result<(), StoreError> {
    let verdict: String = connection
        .query_row("PRAGMA quick_check(1)", [], |row| row.get(0))
        .map_err(|e| db_error(path, e))?;
    if verdict != "ok" {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            problem: Corruption::QuickCheck(verdict),
        });
    }
    Ok(())
}
