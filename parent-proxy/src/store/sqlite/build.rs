//! A new store written in one go, from a log verified elsewhere (`parent-proxy import`).
//!
//! The store is built under a temporary name ([`Partial`]) and becomes a store only when
//! [`StoreBuilder::publish`] names it, so until then a failure leaves nothing but a
//! temporary file, which is removed. That is why the build needs neither a journal nor a
//! flush after each step: the finished file is flushed once, before it is named.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use super::files::{check_replaceable, check_version, open_existing, Destination, Partial};
use super::{db_error, schema, to_sql_index, StoreFileError};
use crate::store::{checkpoint_size, StoreError};

/// What a published store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltStore {
    /// The store file.
    pub path: PathBuf,
    /// Records written.
    pub records: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// The size of the last checkpoint written.
    pub last_checkpoint_size: Option<u64>,
    /// Whether a sealed log key was written.
    pub sealed_key: bool,
}

/// Writes a new store: records in index order, each checkpoint as it comes, at most one
/// sealed key; nothing is a store until [`StoreBuilder::publish`].
#[derive(Debug)]
pub struct StoreBuilder {
    connection: Connection,
    partial: Partial,
    destination: Destination,
    built: BuiltStore,
}

impl StoreBuilder {
    /// Starts a store for `target`, which must not exist or be an empty store no process
    /// has open (checked now, and again when it is published).
    pub fn create(target: &Path) -> Result<StoreBuilder, StoreFileError> {
        let destination = check_replaceable(target)?;
        let partial = Partial::beside(target)?;
        let path = partial.path();
        let db = |e| StoreFileError::Store(db_error(path, e));
        let mut connection = Connection::open(path).map_err(db)?;
        // A failed build is removed, never repaired: no journal, no flush until the end.
        connection
            .query_row("PRAGMA journal_mode = OFF", [], |_| Ok(()))
            .map_err(db)?;
        connection
            .execute_batch("PRAGMA synchronous = OFF;")
            .map_err(db)?;
        schema::create_or_check(&mut connection, path)?;
        // One transaction for the whole build: SQLite writes each page once.
        connection.execute_batch("BEGIN").map_err(db)?;
        Ok(StoreBuilder {
            connection,
            destination,
            built: BuiltStore {
                path: target.to_owned(),
                records: 0,
                checkpoints: 0,
                last_checkpoint_size: None,
                sealed_key: false,
            },
            partial,
        })
    }

    fn db(&self, error: rusqlite::Error) -> StoreError {
        db_error(self.partial.path(), error)
    }

    /// Writes the next record.
    pub fn push_record(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let index = to_sql_index(self.built.records)?;
        self.connection
            .prepare_cached("INSERT INTO records (idx, bytes) VALUES (?1, ?2)")
            .and_then(|mut statement| statement.execute(params![index, bytes]))
            .map_err(|e| self.db(e))?;
        self.built.records += 1;
        Ok(())
    }

    /// Writes a checkpoint under the size its note names. The caller verified it: the store
    /// only reads the size, as it does on every append.
    pub fn push_checkpoint(&mut self, note: &str) -> Result<(), StoreError> {
        let size = checkpoint_size(note)?;
        let sql_size = to_sql_index(size)?;
        self.connection
            .prepare_cached("INSERT INTO checkpoints (size, note) VALUES (?1, ?2)")
            .and_then(|mut statement| statement.execute(params![sql_size, note]))
            .map_err(|e| self.db(e))?;
        self.built.checkpoints += 1;
        self.built.last_checkpoint_size = Some(size);
        Ok(())
    }

    /// Writes the sealed log key.
    pub fn put_sealed_key(&mut self, sealed: &[u8]) -> Result<(), StoreError> {
        self.connection
            .execute(
                "INSERT OR REPLACE INTO sealed_key (id, sealed) VALUES (0, ?1)",
                params![sealed],
            )
            .map_err(|e| self.db(e))?;
        self.built.sealed_key = true;
        Ok(())
    }

    /// Commits, checks the store as the proxy does when it opens one, flushes it to disk and
    /// gives it its name.
    pub fn publish(self) -> Result<BuiltStore, StoreFileError> {
        let StoreBuilder {
            connection,
            partial,
            destination,
            built,
        } = self;
        let path = partial.path();
        let db = |e| StoreFileError::Store(db_error(path, e));
        connection.execute_batch("COMMIT").map_err(db)?;
        schema::check_integrity(&connection, path)?;
        connection.close().map_err(|(_, e)| db(e))?;
        partial.publish(destination)?;
        Ok(built)
    }
}

/// What a store holds of its own, beyond the log: its first record (to tell which log it
/// is) and its sealed log key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptKey {
    /// Record 0, if any.
    pub first_record: Option<Vec<u8>>,
    /// The sealed log key, if any.
    pub sealed: Option<Vec<u8>>,
}

/// Reads the first record and the sealed log key of the store (or a backup of one) at
/// `path`, without changing it.
pub fn read_kept_key(path: &Path) -> Result<KeptKey, StoreFileError> {
    if !path.is_file() {
        return Err(StoreFileError::NoStore {
            path: path.to_owned(),
        });
    }
    let connection = open_existing(path)?;
    check_version(&connection, path)?;
    let db = |e| StoreFileError::Store(db_error(path, e));
    let first_record = connection
        .query_row("SELECT bytes FROM records WHERE idx = 0", [], |row| {
            row.get(0)
        })
        .optional()
        .map_err(db)?;
    let sealed = connection
        .query_row("SELECT sealed FROM sealed_key WHERE id = 0", [], |row| {
            row.get(0)
        })
        .optional()
        .map_err(db)?;
    Ok(KeptKey {
        first_record,
        sealed,
    })
}
