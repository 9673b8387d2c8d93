//! The log store in one SQLite file: WAL journal, `synchronous=FULL`, one transaction per
//! append.
//!
//! With WAL and `synchronous=FULL`, a commit returns after the WAL is fsynced, so one append
//! costs one fsync whatever the number of records in it: that is why the enclave batches
//! (group commit). Appends go through one writer connection; reads use a second connection,
//! which in WAL mode reads the last committed state without waiting for the writer.
//!
//! Whole files are written here too, never through an open store: a copy of a store taken
//! beside a running proxy ([`backup()`]) and a new store built from a verified log
//! ([`StoreBuilder`], for `parent-proxy import`).

mod backup;
mod build;
mod files;
mod schema;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod whole_file_tests;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};

pub use backup::{backup, BackupSummary};
pub use build::{read_kept_key, BuiltStore, KeptKey, StoreBuilder};
pub use files::StoreFileError;
pub use schema::SCHEMA_VERSION;

use super::cosigned::{append_to_note, parse_lines};
use super::{size_after_append, Corruption, LogHead, LogStore, StoreError, StoredCheckpoint};

/// How long a connection waits for a lock held by another process on the same file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Choices for opening a [`SqliteLogStore`].
#[derive(Debug, Clone, Default)]
pub struct SqliteOptions {
    /// The largest the database may grow, in pages (`PRAGMA max_page_count`; a page is 4 KiB
    /// by default). Reaching it fails appends with [`StoreError::Full`], exactly as a full
    /// disk does. `None` leaves SQLite's limit (about 4 billion pages).
    pub max_page_count: Option<u32>,
}

/// A [`LogStore`] in a SQLite file.
#[derive(Debug)]
pub struct SqliteLogStore {
    path: PathBuf,
    // Dropped before the writer: the last connection to close folds the WAL back into the
    // file and removes it, which a read-only one cannot do, so a store closed cleanly is one
    // self-contained file (which `parent-proxy import` takes for a store no one has open).
    reader: Mutex<Connection>,
    writer: Mutex<Connection>,
}

/// Maps SQLite's errors to the store's: a full disk and a damaged file are told apart from
/// other failures, because the operator's remedy differs.
fn db_error(path: &Path, error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreError::Full {
            path: path.to_owned(),
        },
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt {
            path: path.to_owned(),
            problem: Corruption::Database(error),
        },
        _ => StoreError::Io {
            path: path.to_owned(),
            source: error,
        },
    }
}

fn lock(connection: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while a guard was held cannot leave a transaction open: rusqlite rolls back an
    // unfinished transaction when it is dropped, during unwinding too.
    connection
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An index as SQLite stores it; indexes beyond `i64::MAX` cannot exist in the store.
fn to_sql_index(index: u64) -> Result<i64, StoreError> {
    i64::try_from(index).map_err(|_| StoreError::IndexOutOfRange { index })
}

impl SqliteLogStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, &SqliteOptions::default())
    }

    /// Opens (or creates) the store at `path` with `options`.
    ///
    /// Refuses a file with another schema version, and one whose records are not numbered
    /// 0, 1, 2, ... without gaps or whose checkpoints cover records it does not hold.
    pub fn open_with(path: impl AsRef<Path>, options: &SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        let db = |e| db_error(&path, e);
        let mut writer = Connection::open(&path).map_err(db)?;
        writer.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        let mode: String = writer
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            // Without WAL a commit is not one fsync, and readers would block the writer.
            return Err(StoreError::NoWal { path, mode });
        }
        writer
            .execute_batch("PRAGMA synchronous = FULL;")
            .map_err(db)?;
        if let Some(pages) = options.max_page_count {
            set_max_page_count(&writer, pages).map_err(db)?;
        }
        schema::create_or_check(&mut writer, &path)?;
        schema::check_integrity(&writer, &path)?;

        let reader = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db)?;
        reader.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        Ok(Self {
            path,
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self, error: rusqlite::Error) -> StoreError {
        db_error(&self.path, error)
    }

    fn corrupt(&self, problem: Corruption) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            problem,
        }
    }

    /// Changes the size limit of a store that is open (tests fill the "disk", then free it).
    #[cfg(test)]
    fn set_max_page_count(&self, pages: u32) {
        set_max_page_count(&lock(&self.writer), pages).unwrap();
    }
}

fn set_max_page_count(connection: &Connection, pages: u32) -> rusqlite::Result<()> {
    // The pragma answers with the limit in effect (never below the current size).
    connection.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
}

/// The number of records, from the largest index (records are contiguous from 0: checked on
/// open, kept by every append).
fn stored_size(connection: &Connection) -> rusqlite::Result<Option<i64>> {
    connection.query_row("SELECT MAX(idx) FROM records", [], |row| row.get(0))
}

impl LogStore for SqliteLogStore {
    fn head(&self) -> Result<LogHead, StoreError> {
        let mut reader = lock(&self.reader);
        // One read transaction, so that the size and the checkpoint are of the same moment.
        let tx = reader.transaction().map_err(|e| self.db(e))?;
        let max = stored_size(&tx).map_err(|e| self.db(e))?;
        let size = match max {
            None => 0,
            Some(max) => u64::try_from(max)
                .map_err(|_| self.corrupt(Corruption::Negative(max)))?
                .saturating_add(1),
        };
        let latest: Option<(i64, String)> = tx
            .query_row(
                "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| self.db(e))?;
        let checkpoint = match latest {
            None => None,
            Some((size, note)) => Some(StoredCheckpoint {
                size: u64::try_from(size).map_err(|_| self.corrupt(Corruption::Negative(size)))?,
                note,
            }),
        };
        Ok(LogHead { size, checkpoint })
    }

    fn append(
        &self,
        first_index: u64,
        records: &[Vec<u8>],
        checkpoint: &str,
    ) -> Result<u64, StoreError> {
        let mut writer = lock(&self.writer);
        // IMMEDIATE takes the write lock now, so the size read below cannot change before
        // the commit, even with another process on the same file.
        let tx = writer
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db(e))?;
        let size = match stored_size(&tx).map_err(|e| self.db(e))? {
            None => 0,
            Some(max) => u64::try_from(max)
                .map_err(|_| self.corrupt(Corruption::Negative(max)))?
                .saturating_add(1),
        };
        if first_index != size {
            return Err(StoreError::Conflict {
                expected: size,
                got: first_index,
            });
        }
        let new_size = size_after_append(first_index, records.len(), checkpoint)?;
        let sql_size = to_sql_index(new_size)?;
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO records (idx, bytes) VALUES (?1, ?2)")
                .map_err(|e| self.db(e))?;
            for (index, record) in (to_sql_index(first_index)?..).zip(records) {
                insert
                    .execute(params![index, record])
                    .map_err(|e| self.db(e))?;
            }
            tx.prepare_cached("INSERT OR REPLACE INTO checkpoints (size, note) VALUES (?1, ?2)")
                .and_then(|mut statement| statement.execute(params![sql_size, checkpoint]))
                .map_err(|e| self.db(e))?;
        }
        // On any error above, dropping `tx` rolls everything back. The commit returns once
        // the WAL is on disk (synchronous = FULL).
        tx.commit().map_err(|e| self.db(e))?;
        Ok(new_size)
    }

    fn read_records(
        &self,
        from: u64,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let Ok(start) = i64::try_from(from) else {
            return Ok(Vec::new());
        };
        if max_count == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(max_count).unwrap_or(i64::MAX);
        let reader = lock(&self.reader);
        let mut statement = reader
            .prepare_cached("SELECT idx, bytes FROM records WHERE idx >= ?1 ORDER BY idx LIMIT ?2")
            .map_err(|e| self.db(e))?;
        let mut rows = statement
            .query(params![start, limit])
            .map_err(|e| self.db(e))?;
        let mut records = Vec::new();
        let mut total = 0usize;
        let mut expected = from;
        while let Some(row) = rows.next().map_err(|e| self.db(e))? {
            let index: i64 = row.get(0).map_err(|e| self.db(e))?;
            if u64::try_from(index).ok() != Some(expected) {
                return Err(self.corrupt(Corruption::Gap {
                    expected,
                    found: index,
                }));
            }
            let bytes = row
                .get_ref(1)
                .and_then(|value| value.as_blob().map_err(Into::into))
                .map_err(|e| self.db(e))?;
            total = total.saturating_add(bytes.len());
            if !records.is_empty() && total > max_bytes {
                break;
            }
            records.push(bytes.to_vec());
            expected += 1;
        }
        Ok(records)
    }

    fn read_checkpoints(
        &self,
        from_size: u64,
        max_count: usize,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let Ok(start) = i64::try_from(from_size) else {
            return Ok(Vec::new());
        };
        let limit = i64::try_from(max_count).unwrap_or(i64::MAX);
        let reader = lock(&self.reader);
        let mut statement = reader
            .prepare_cached(
                "SELECT size, note FROM checkpoints WHERE size >= ?1 ORDER BY size LIMIT ?2",
            )
            .map_err(|e| self.db(e))?;
        let rows = statement
            .query_map(params![start, limit], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(|e| self.db(e))?;
        let mut checkpoints = Vec::new();
        for row in rows {
            let (size, note) = row.map_err(|e| self.db(e))?;
            let size = u64::try_from(size).map_err(|_| self.corrupt(Corruption::Negative(size)))?;
            checkpoints.push(StoredCheckpoint { size, note });
        }
        Ok(checkpoints)
    }

    fn put_sealed_key(&self, sealed: &[u8]) -> Result<(), StoreError> {
        lock(&self.writer)
            .prepare_cached("INSERT OR REPLACE INTO sealed_key (id, sealed) VALUES (0, ?1)")
            .and_then(|mut statement| statement.execute(params![sealed]))
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    fn get_sealed_key(&self) -> Result<Option<Vec<u8>>, StoreError> {
        lock(&self.reader)
            .query_row("SELECT sealed FROM sealed_key WHERE id = 0", [], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|e| self.db(e))
    }

    fn put_cosignatures(&self, size: u64, lines: &[String]) -> Result<(), StoreError> {
        let parsed = parse_lines(lines)?;
        let sql_size = to_sql_index(size)?;
        let mut writer = lock(&self.writer);
        // One small transaction (one fsync), at most once per witness and submission: it
        // takes the write lock an append waits for only that long.
        let tx = writer
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db(e))?;
        let stored = tx
            .query_row(
                "SELECT 1 FROM checkpoints WHERE size = ?1",
                params![sql_size],
                |_| Ok(()),
            )
            .optional()
            .map_err(|e| self.db(e))?;
        if stored.is_none() {
            return Err(StoreError::NoCheckpoint { size });
        }
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO cosignatures (size, name, key_id, line) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(|e| self.db(e))?;
            for line in &parsed {
                insert
                    .execute(params![sql_size, line.name, line.key_id, line.line])
                    .map_err(|e| self.db(e))?;
            }
        }
        tx.commit().map_err(|e| self.db(e))
    }

    fn cosigned_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let mut reader = lock(&self.reader);
        // One read transaction: the note and its lines of the same moment.
        let tx = reader.transaction().map_err(|e| self.db(e))?;
        let latest: Option<(i64, String)> = tx
            .query_row(
                // Walks the cosignatures' key from the largest size: one step when the
                // latest cosigned size has its checkpoint, as it always has.
                "SELECT c.size, k.note FROM cosignatures c JOIN checkpoints k ON k.size = c.size \
                 ORDER BY c.size DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| self.db(e))?;
        let Some((sql_size, note)) = latest else {
            return Ok(None);
        };
        let size =
            u64::try_from(sql_size).map_err(|_| self.corrupt(Corruption::Negative(sql_size)))?;
        let mut statement = tx
            .prepare_cached("SELECT line FROM cosignatures WHERE size = ?1 ORDER BY name, key_id")
            .map_err(|e| self.db(e))?;
        let lines = statement
            .query_map(params![sql_size], |row| row.get::<_, String>(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
            .map_err(|e| self.db(e))?;
        Ok(Some(StoredCheckpoint {
            size,
            note: append_to_note(&note, lines.iter().map(String::as_str)),
        }))
    }
}
