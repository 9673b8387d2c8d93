//! Writing a whole store file at once (a backup, an import) without ever leaving half of one
//! where a store is expected: the file is built under a temporary name in the destination's
//! directory, flushed to disk, and only then given its name, which it takes only if nothing
//! else has it.
//!
//! SQLite keeps part of a store beside it while the store is open or after a crash (`-wal`,
//! `-shm`, `-journal`). Such a file next to a destination would be read as part of the new
//! store the next time it is opened (a stale write-ahead log replayed into another database),
//! so a destination with one is refused.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::schema::OLDEST_READABLE;
use super::{db_error, BUSY_TIMEOUT, SCHEMA_VERSION};
use crate::store::StoreError;

/// What SQLite may keep beside a database file.
const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Why a whole store file (a backup, an import) could not be written where it was asked for.
/// Nothing was written at the destination.
#[derive(Debug, thiserror::Error)]
pub enum StoreFileError {
    /// There is no store to copy.
    #[error(
        "there is no log store at {}; nothing was written: give the --store-path parent-proxy \
         runs with",
        path.display()
    )]
    NoStore {
        /// The path given.
        path: PathBuf,
    },
    /// The destination exists (a backup never overwrites anything).
    #[error(
        "{} already exists; nothing was written: a backup never overwrites a file, so give a \
         new name (for example one with the date)",
        path.display()
    )]
    Exists {
        /// The destination.
        path: PathBuf,
    },
    /// The destination is a store that holds something.
    #[error(
        "{} already holds a log ({records} records, {checkpoints} checkpoints{}); nothing was \
         written: an import never writes into an existing log, so give another --store-path \
         or move this store (and any -wal file beside it) away first",
        path.display(),
        if *sealed_key { ", a sealed log key" } else { "" }
    )]
    NotEmpty {
        /// The destination.
        path: PathBuf,
        /// Records it holds.
        records: u64,
        /// Checkpoints it holds.
        checkpoints: u64,
        /// Whether it holds a sealed log key.
        sealed_key: bool,
    },
    /// The destination exists and is not a log store of this schema.
    #[error(
        "{} exists and is not an empty log store (schema version {found}); nothing was written: \
         give another --store-path or move the file away",
        path.display()
    )]
    NotAStore {
        /// The destination.
        path: PathBuf,
        /// Its `PRAGMA user_version`.
        found: i64,
    },
    /// SQLite's files of another database lie beside the destination.
    #[error(
        "{} exists beside {}: a process has that store open, or it was not closed cleanly, and \
         SQLite would read it into whatever is written there; nothing was written: stop \
         parent-proxy first (after a crash, start and stop it once so that SQLite folds the \
         file back into its store), or give another path",
        sidecar.display(),
        path.display()
    )]
    InUse {
        /// The destination.
        path: PathBuf,
        /// The file found beside it.
        sidecar: PathBuf,
    },
    /// The destination cannot be named in SQL (SQLite takes it as text).
    #[error("{} is not valid UTF-8; give a path that is", path.display())]
    NotUtf8 {
        /// The destination.
        path: PathBuf,
    },
    /// SQLite's copy (`VACUUM INTO`) failed: reading the store, or writing the copy.
    #[error(
        "copying {} into {} failed: {source}; nothing was written (check the space and \
         permissions where the copy goes)",
        store.display(),
        to.display()
    )]
    Copy {
        /// The store copied.
        store: PathBuf,
        /// The file it was copied to.
        to: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A file operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The store (source or destination) could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a destination holds before it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Destination {
    /// Nothing: the name is free.
    Absent,
    /// An empty store (a proxy started on it once, before any genesis): it may be replaced.
    EmptyStore,
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreFileError {
    let path = path.to_owned();
    move |source| StoreFileError::Io {
        action,
        path,
        source,
    }
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Refuses `path` if SQLite's files of a database lie beside it.
fn check_no_sidecars(path: &Path) -> Result<(), StoreFileError> {
    for suffix in SIDECARS {
        let sidecar = with_suffix(path, suffix);
        if sidecar.symlink_metadata().is_ok() {
            return Err(StoreFileError::InUse {
                path: path.to_owned(),
                sidecar,
            });
        }
    }
    Ok(())
}

/// Whether `path` is free for a new file (`Absent`), refusing anything else.
pub(crate) fn check_free(path: &Path) -> Result<(), StoreFileError> {
    if path.symlink_metadata().is_ok() {
        return Err(StoreFileError::Exists {
            path: path.to_owned(),
        });
    }
    check_no_sidecars(path)
}

/// Whether `path` may receive an imported store: free, or an empty store that no process
/// has open.
pub(crate) fn check_replaceable(path: &Path) -> Result<Destination, StoreFileError> {
    let metadata = match path.symlink_metadata() {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            check_no_sidecars(path)?;
            return Ok(Destination::Absent);
        }
        Err(error) => return Err(io_error("reading", path)(error)),
    };
    if !metadata.is_file() {
        return Err(StoreFileError::NotAStore {
            path: path.to_owned(),
            found: 0,
        });
    }
    // SQLite takes an empty file for an empty database of no schema.
    let contents = match metadata.len() {
        0 => None,
        _ => Some(contents(path)?),
    };
    // Reading it folded any -wal file left by a crash back into it, and removed the -wal
    // and -shm files when the connection closed, unless another process has it open: a
    // running proxy keeps them. That comes first: a store in use is never to be moved.
    check_no_sidecars(path)?;
    match contents {
        Some(c) if c.records > 0 || c.checkpoints > 0 || c.sealed_key => {
            Err(StoreFileError::NotEmpty {
                path: path.to_owned(),
                records: c.records,
                checkpoints: c.checkpoints,
                sealed_key: c.sealed_key,
            })
        }
        _ => Ok(Destination::EmptyStore),
    }
}

/// What a store file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Contents {
    pub(crate) records: u64,
    pub(crate) checkpoints: u64,
    pub(crate) last_checkpoint_size: Option<u64>,
    pub(crate) sealed_key: bool,
}

/// Opens an existing store file read-only (it is never created, never changed), beside any
/// proxy that has it open.
pub(crate) fn open_existing(path: &Path) -> Result<Connection, StoreError> {
    open_with(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
}

fn open_with(path: &Path, access: OpenFlags) -> Result<Connection, StoreError> {
    let db = |e| db_error(path, e);
    // Without SQLITE_OPEN_CREATE: a mistyped path is an error, not a new empty store.
    let connection =
        Connection::open_with_flags(path, access | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(db)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
    Ok(connection)
}

/// Refuses a store of a schema version this build does not read (an older one it reads as
/// it is: what the whole-file commands read did not change).
pub(crate) fn check_version(connection: &Connection, path: &Path) -> Result<(), StoreError> {
    let found: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| db_error(path, e))?;
    if !(OLDEST_READABLE..=SCHEMA_VERSION).contains(&found) {
        return Err(StoreError::UnsupportedSchema {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Counts what the store at `path` holds; an empty database (no schema) holds nothing.
fn contents(path: &Path) -> Result<Contents, StoreFileError> {
    // Read-write, though it only reads: closing a read-write connection, when it is the last
    // one, folds the -wal file into the store and removes it (a read-only one cannot), which
    // tells a store no one has open from one a proxy is serving.
    let connection = open_with(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let found: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| db_error(path, e))?;
    let tables: i64 = connection
        .query_row("SELECT COUNT(*) FROM sqlite_schema", [], |row| row.get(0))
        .map_err(|e| db_error(path, e))?;
    match (found, tables) {
        (0, 0) => Ok(Contents {
            records: 0,
            checkpoints: 0,
            last_checkpoint_size: None,
            sealed_key: false,
        }),
        (OLDEST_READABLE..=SCHEMA_VERSION, _) => Ok(count(&connection, path)?),
        (found, _) => Err(StoreFileError::NotAStore {
            path: path.to_owned(),
            found,
        }),
    }
}

/// Counts what a store of this schema holds, in one read transaction.
pub(crate) fn count(connection: &Connection, path: &Path) -> Result<Contents, StoreError> {
    let db = |e| db_error(path, e);
    let negative = |value: i64| StoreError::Corrupt {
        path: path.to_owned(),
        problem: crate::store::Corruption::Negative(value),
    };
    let to_u64 = |value: i64| u64::try_from(value).map_err(|_| negative(value));
    connection.execute_batch("BEGIN").map_err(db)?;
    let counted = (|| -> rusqlite::Result<_> {
        let records: i64 =
            connection.query_row("SELECT COUNT(*) FROM records", [], |row| row.get(0))?;
        let checkpoints: i64 =
            connection.query_row("SELECT COUNT(*) FROM checkpoints", [], |row| row.get(0))?;
        let last: Option<i64> =
            connection.query_row("SELECT MAX(size) FROM checkpoints", [], |row| row.get(0))?;
        let sealed_key = connection
            .query_row("SELECT 1 FROM sealed_key WHERE id = 0", [], |_| Ok(()))
            .optional()?
            .is_some();
        Ok((records, checkpoints, last, sealed_key))
    })();
    connection.execute_batch("COMMIT").map_err(db)?;
    let (records, checkpoints, last, sealed_key) = counted.map_err(db)?;
    Ok(Contents {
        records: to_u64(records)?,
        checkpoints: to_u64(checkpoints)?,
        last_checkpoint_size: last.map(to_u64).transpose()?,
        sealed_key,
    })
}

/// A file being written under a temporary name beside its destination; removed when dropped
/// unless it was published.
#[derive(Debug)]
pub(crate) struct Partial {
    path: PathBuf,
    destination: PathBuf,
    published: bool,
}

impl Partial {
    /// A temporary name for `destination`, in its directory (a rename never crosses file
    /// systems), hidden, and named after this process, so that two runs never share one.
    pub(crate) fn beside(destination: &Path) -> Result<Partial, StoreFileError> {
        let name = destination
            .file_name()
            .ok_or_else(|| StoreFileError::Io {
                action: "naming a file beside",
                path: destination.to_owned(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"),
            })?
            .to_string_lossy();
        let directory = match destination.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        if !directory.is_dir() {
            return Err(StoreFileError::Io {
                action: "writing into",
                path: directory.to_owned(),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    "no such directory (create it first)",
                ),
            });
        }
        let path =
            destination.with_file_name(format!(".{name}.partial-{pid}", pid = std::process::id()));
        // Left by an earlier run of this process id that was killed: it is ours to remove.
        remove_with_sidecars(&path);
        Ok(Partial {
            path,
            destination: destination.to_owned(),
            published: false,
        })
    }

    /// The temporary file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary path as SQL text.
    pub(crate) fn sql_path(&self) -> Result<&str, StoreFileError> {
        self.path.to_str().ok_or_else(|| StoreFileError::NotUtf8 {
            path: self.destination.clone(),
        })
    }

    /// Flushes the finished file to disk and gives it the destination's name: only if the
    /// name is still free (`Absent`), or in place of the empty store checked before
    /// (`EmptyStore`). Then flushes the directory, so that the name survives a power cut.
    pub(crate) fn publish(mut self, destination: Destination) -> Result<(), StoreFileError> {
        // Whatever SQLite kept beside the file was folded in when its connection closed.
        check_no_sidecars(&self.path)?;
        File::open(&self.path)
            .and_then(|file| file.sync_all())
            .map_err(io_error("flushing", &self.path))?;
        match destination {
            Destination::Absent => self.link_if_free()?,
            Destination::EmptyStore => {
                // Checked again just before: it must still be an empty store no one has open.
                if check_replaceable(&self.destination)? != Destination::EmptyStore {
                    return Err(StoreFileError::Exists {
                        path: self.destination.clone(),
                    });
                }
                std::fs::rename(&self.path, &self.destination)
                    .map_err(io_error("renaming the finished file to", &self.destination))?;
            }
        }
        self.published = true;
        let directory = match self.destination.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        File::open(&directory)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error("flushing the directory", &directory))
    }

    /// Gives the file the destination's name only if no file has it: a hard link fails
    /// rather than replace one, where a rename would replace it silently.
    fn link_if_free(&self) -> Result<(), StoreFileError> {
        check_no_sidecars(&self.destination)?;
        match std::fs::hard_link(&self.path, &self.destination) {
            Ok(()) => {
                std::fs::remove_file(&self.path)
                    .map_err(io_error("removing the temporary name", &self.path))?;
                Ok(())
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                Err(StoreFileError::Exists {
                    path: self.destination.clone(),
                })
            }
            // A file system without hard links (some network and FUSE ones): checked, then
            // renamed, which leaves a moment in which another file could take the name.
            Err(_) => {
                if self.destination.symlink_metadata().is_ok() {
                    return Err(StoreFileError::Exists {
                        path: self.destination.clone(),
                    });
                }
                std::fs::rename(&self.path, &self.destination)
                    .map_err(io_error("renaming the finished file to", &self.destination))
            }
        }
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.published {
            remove_with_sidecars(&self.path);
        }
    }
}

/// Removes a temporary file and whatever SQLite kept beside it, if they exist.
fn remove_with_sidecars(path: &Path) {
    let _ = std::fs::remove_file(path);
    for suffix in SIDECARS {
        let _ = std::fs::remove_file(with_suffix(path, suffix));
    }
}
