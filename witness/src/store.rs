//! The witness's state in one SQLite file: for each log, the latest checkpoint it cosigned.
//!
//! WAL journal and `synchronous=FULL`: a commit returns once the WAL is on disk, so a state
//! that [`Store::advance`] returned survives a crash or a power cut. Reading the stored state,
//! deciding, and writing the new state happen in one `BEGIN IMMEDIATE` transaction, which
//! holds SQLite's write lock from the start: two requests (in this process or another on the
//! same file) cannot both check against the same stored size, the race the spec warns of.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use ea_audit::hash::Hash;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::protocol::LogState;

/// The schema version, in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;

/// How long a connection waits for another process's lock on the file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the store failed; no cosignature is given then.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (I/O, a full disk, a lock held too long, a damaged file).
    #[error("witness database {path}: {source}")]
    Database {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file does not run in WAL mode.
    #[error("witness database {path}: journal mode is {mode}, not WAL")]
    NoWal {
        /// The file.
        path: PathBuf,
        /// The mode SQLite reported.
        mode: String,
    },
    /// The file was written by another version of the witness.
    #[error(
        "witness database {path}: schema version {found}, this witness knows {SCHEMA_VERSION}"
    )]
    SchemaVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: i64,
    },
    /// A row that the schema's checks should have kept out.
    #[error("witness database {path}: the row of {origin:?} is damaged")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The log's origin.
        origin: String,
    },
}

/// The latest checkpoint cosigned for one log, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The log's origin.
    pub origin: String,
    /// Size, root and cosigning time.
    pub state: LogState,
    /// The checkpoint note as the log sent it.
    pub note: String,
}

/// The witness's state file.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    connection: Mutex<Connection>,
}

impl Store {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        let db = |source| StoreError::Database {
            path: path.clone(),
            source,
        };
        let connection = Connection::open(&path).map_err(db)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        let mode: String = connection
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NoWal { path, mode });
        }
        connection
            .execute_batch("PRAGMA synchronous = FULL;")
            .map_err(db)?;
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(db)?;
        match version {
            0 => connection
                .execute_batch(
                    "BEGIN IMMEDIATE;
                     CREATE TABLE IF NOT EXISTS checkpoints (
                         origin      TEXT PRIMARY KEY NOT NULL,
                         size        INTEGER NOT NULL CHECK (size >= 0),
                         root        BLOB NOT NULL CHECK (length(root) = 32),
                         cosigned_at INTEGER NOT NULL CHECK (cosigned_at >= 0),
                         note        TEXT NOT NULL
                     ) STRICT;
                     PRAGMA user_version = 1;
                     COMMIT;",
                )
                .map_err(db)?,
            SCHEMA_VERSION => {}
            found => return Err(StoreError::SchemaVersion { path, found }),
        }
        Ok(Self {
            path,
            connection: Mutex::new(connection),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the guard was held cannot leave a transaction open: rusqlite rolls
        // an unfinished transaction back when it is dropped, during unwinding too.
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn db(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Database {
            path: self.path.clone(),
            source,
        }
    }

    /// What is stored for the log `origin`, if anything.
    pub fn get(&self, origin: &str) -> Result<Option<StoredCheckpoint>, StoreError> {
        let connection = self.lock();
        read(&connection, origin)
            .map_err(|e| self.db(e))?
            .map(|row| self.decode(origin, row))
            .transpose()
    }

    /// Every stored log, by origin.
    pub fn all(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let connection = self.lock();
        let rows = (|| {
            let mut statement = connection.prepare(
                "SELECT origin, size, root, cosigned_at, note FROM checkpoints ORDER BY origin",
            )?;
            let rows = statement.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, Row::from_sql(row, 1)?))
            })?;
            rows.collect::<Result<Vec<_>, _>>()
        })()
        .map_err(|e| self.db(e))?;
        rows.into_iter()
            .map(|(origin, row)| self.decode(&origin, row))
            .collect()
    }

    /// In one transaction: reads the state of `origin` (the empty state if none is stored),
    /// asks `decide` for the next one, and stores it with `note`; returns it once committed.
    /// When `decide` refuses, nothing is written.
    pub fn advance<E: From<StoreError>>(
        &self,
        origin: &str,
        note: &str,
        decide: impl FnOnce(&LogState) -> Result<LogState, E>,
    ) -> Result<LogState, E> {
        let mut connection = self.lock();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db(e))?;
        let stored = match read(&transaction, origin).map_err(|e| self.db(e))? {
            Some(row) => self.decode(origin, row)?.state,
            None => LogState::empty(),
        };
        let next = decide(&stored)?;
        let (Ok(size), Ok(cosigned_at)) =
            (i64::try_from(next.size), i64::try_from(next.cosigned_at))
        else {
            // The protocol refuses such sizes and times before they get here.
            return Err(StoreError::Damaged {
                path: self.path.clone(),
                origin: origin.to_owned(),
            }
            .into());
        };
        transaction
            .execute(
                "INSERT INTO checkpoints (origin, size, root, cosigned_at, note)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (origin) DO UPDATE SET
                     size = excluded.size, root = excluded.root,
                     cosigned_at = excluded.cosigned_at, note = excluded.note",
                params![origin, size, next.root.0.as_slice(), cosigned_at, note],
            )
            .map_err(|e| self.db(e))?;
        transaction.commit().map_err(|e| self.db(e))?;
        Ok(next)
    }

    fn decode(&self, origin: &str, row: Row) -> Result<StoredCheckpoint, StoreError> {
        let damaged = || StoreError::Damaged {
            path: self.path.clone(),
            origin: origin.to_owned(),
        };
        Ok(StoredCheckpoint {
            origin: origin.to_owned(),
            state: LogState {
                size: u64::try_from(row.size).map_err(|_| damaged())?,
                root: Hash::from_slice(&row.root).map_err(|_| damaged())?,
                cosigned_at: u64::try_from(row.cosigned_at).map_err(|_| damaged())?,
            },
            note: row.note,
        })
    }
}

/// A row as SQLite returns it.
struct Row {
    size: i64,
    root: Vec<u8>,
    cosigned_at: i64,
    note: String,
}

impl Row {
    fn from_sql(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Self> {
        Ok(Self {
            size: row.get(first)?,
            root: row.get(first + 1)?,
            cosigned_at: row.get(first + 2)?,
            note: row.get(first + 3)?,
        })
    }
}

fn read(connection: &Connection, origin: &str) -> rusqlite::Result<Option<Row>> {
    connection
        .query_row(
            "SELECT size, root, cosigned_at, note FROM checkpoints WHERE origin = ?1",
            [origin],
            |row| Row::from_sql(row, 0),
        )
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ea_audit::hash::leaf_hash;

    #[derive(Debug, PartialEq)]
    enum TestError {
        Store(String),
        Refused,
    }

    impl From<StoreError> for TestError {
        fn from(error: StoreError) -> Self {
            TestError::Store(error.to_string())
        }
    }

    fn state(size: u64) -> LogState {
        LogState {
            size,
            root: leaf_hash(&size.to_be_bytes()),
            cosigned_at: 100 + size,
        }
    }

    #[test]
    fn wal_and_synchronous_full() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("w.db")).unwrap();
        let connection = store.lock();
        let mode: String = connection
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let synchronous: i64 = connection
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(synchronous, 2, "FULL");
    }

    #[test]
    fn advance_stores_and_refusals_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let store = Store::open(&path).unwrap();
        assert_eq!(store.get("a").unwrap(), None);
        let got = store
            .advance("a", "note 5\n", |stored| {
                assert_eq!(*stored, LogState::empty());
                Ok::<_, TestError>(state(5))
            })
            .unwrap();
        assert_eq!(got, state(5));
        assert_eq!(
            store.advance("a", "note 9\n", |stored| {
                assert_eq!(*stored, state(5));
                Err::<LogState, _>(TestError::Refused)
            }),
            Err(TestError::Refused)
        );
        store
            .advance("b", "note b\n", |_| Ok::<_, TestError>(state(1)))
            .unwrap();
        drop(store);
        // Reopened: what was committed, and nothing of the refusal.
        let store = Store::open(&path).unwrap();
        let a = store.get("a").unwrap().unwrap();
        assert_eq!((a.state, a.note.as_str()), (state(5), "note 5\n"));
        let all: Vec<_> = store.all().unwrap().into_iter().map(|c| c.origin).collect();
        assert_eq!(all, ["a", "b"]);
    }

    #[test]
    fn another_schema_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        drop(Store::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 7;")
            .unwrap();
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::SchemaVersion { found: 7, .. })
        ));
    }

    #[test]
    fn concurrent_advances_are_serialized() {
        // Two threads each read the state and write size + 1, many times: with the check
        // and the write in one transaction, no increment is lost.
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::open(dir.path().join("w.db")).unwrap());
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        store
                            .advance("a", "n\n", |s| Ok::<_, TestError>(state(s.size + 1)))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store.get("a").unwrap().unwrap().state.size, 100);
    }

    #[test]
    fn two_processes_worth_of_connections_do_not_lose_updates() {
        // Two stores on one file (as two witness processes would be): SQLite's write lock,
        // taken at BEGIN IMMEDIATE, serializes them.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let first = std::sync::Arc::new(Store::open(&path).unwrap());
        let second = std::sync::Arc::new(Store::open(&path).unwrap());
        let threads: Vec<_> = [first.clone(), second]
            .into_iter()
            .map(|store| {
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        store
                            .advance("a", "n\n", |s| Ok::<_, TestError>(state(s.size + 1)))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(first.get("a").unwrap().unwrap().state.size, 50);
    }
}
