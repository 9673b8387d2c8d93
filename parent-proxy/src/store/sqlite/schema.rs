//! The database layout, its version, and the checks made when a file is opened.
//!
//! A store of an older version is brought up to this one when the proxy opens it (each
//! step one transaction, adding what the next version has); the whole-file commands
//! (`parent-proxy backup`, reading a backup's sealed key) read every version from
//! [`OLDEST_READABLE`] on as it is, since nothing they read changed.
//!
//! Version 1:
//! - `records(idx INTEGER PRIMARY KEY, bytes BLOB)`: record `idx` of the log, canonical bytes;
//! - `records_count(idx)`: an index holding only the keys, so that counting the records on
//!   open reads a few bytes per record instead of every record (measured at 1,000,000
//!   records of 300 bytes: 10 ms instead of 320 ms, for about 5 us more per insert);
//! - `checkpoints(size INTEGER PRIMARY KEY, note TEXT)`: the signed note for each size;
//! - `sealed_key(id INTEGER PRIMARY KEY CHECK (id = 0), sealed BLOB)`: at most one row.
//!
//! Version 2 adds:
//! - `cosignatures(size, name, key_id, line)`, keyed by `(size, name, key_id)`: a witness's
//!   cosignature line on the checkpoint of `size`, one per witness key (name and key id).

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::db_error;
use crate::store::{Corruption, StoreError};

/// The schema version this build writes and reads (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 2;

/// The oldest version the whole-file commands read as it is (the proxy upgrades it on open).
pub const OLDEST_READABLE: i64 = 1;

const CREATE_V1: &str = "
    CREATE TABLE records (idx INTEGER PRIMARY KEY NOT NULL, bytes BLOB NOT NULL);
    CREATE INDEX records_count ON records (idx);
    CREATE TABLE checkpoints (size INTEGER PRIMARY KEY NOT NULL, note TEXT NOT NULL);
    CREATE TABLE sealed_key (
        id INTEGER PRIMARY KEY NOT NULL CHECK (id = 0),
        sealed BLOB NOT NULL
    );
    PRAGMA user_version = 1;
";

/// From version 1 to 2: the witnesses' cosignatures.
const UPGRADE_TO_V2: &str = "
    CREATE TABLE cosignatures (
        size INTEGER NOT NULL,
        name TEXT NOT NULL,
        key_id INTEGER NOT NULL,
        line TEXT NOT NULL,
        PRIMARY KEY (size, name, key_id)
    );
    PRAGMA user_version = 2;
";

/// Creates the tables in a new file, upgrades an older one, or checks the version of an
/// existing one; a file of a newer version is refused.
pub(super) fn create_or_check(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let db = |e| db_error(path, e);
    // IMMEDIATE: two processes opening a new file at once must not both create the tables.
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(db)?;
    match version {
        0 => {
            tx.execute_batch(CREATE_V1).map_err(db)?;
            tx.execute_batch(UPGRADE_TO_V2).map_err(db)?;
            tx.commit().map_err(db)
        }
        1 => {
            tx.execute_batch(UPGRADE_TO_V2).map_err(db)?;
            tx.commit().map_err(db)
        }
        SCHEMA_VERSION => Ok(()),
        found => Err(StoreError::UnsupportedSchema {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        }),
    }
}

/// The cheap checks made on every open: the records are numbered 0..count without gaps, and
/// no checkpoint covers more records than are stored. A full `PRAGMA integrity_check` reads
/// the whole file; the enclave verifies every record it reads anyway.
pub(super) fn check_integrity(connection: &Connection, path: &Path) -> Result<(), StoreError> {
    let db = |e| db_error(path, e);
    let corrupt = |problem| StoreError::Corrupt {
        path: path.to_owned(),
        problem,
    };
    let count: i64 = connection
        .query_row("SELECT COUNT(*) FROM records", [], |row| row.get(0))
        .map_err(db)?;
    let count = u64::try_from(count).map_err(|_| corrupt(Corruption::Negative(count)))?;
    // Two queries: SQLite answers a lone MIN or MAX from the end of the index, but scans
    // the table for both at once.
    let min: Option<i64> = connection
        .query_row("SELECT MIN(idx) FROM records", [], |row| row.get(0))
        .map_err(db)?;
    let max: Option<i64> = connection
        .query_row("SELECT MAX(idx) FROM records", [], |row| row.get(0))
        .map_err(db)?;
    if let (Some(min), Some(max)) = (min, max) {
        let contiguous = min == 0 && u64::try_from(max).is_ok_and(|max| max + 1 == count);
        if !contiguous {
            return Err(corrupt(Corruption::NotContiguous { count, min, max }));
        }
    }
    let largest: Option<i64> = connection
        .query_row("SELECT MAX(size) FROM checkpoints", [], |row| row.get(0))
        .map_err(db)?;
    if let Some(largest) = largest {
        let checkpoint_size =
            u64::try_from(largest).map_err(|_| corrupt(Corruption::Negative(largest)))?;
        if checkpoint_size > count {
            return Err(corrupt(Corruption::CheckpointBeyondRecords {
                checkpoint_size,
                records: count,
            }));
        }
    }
    Ok(())
}
