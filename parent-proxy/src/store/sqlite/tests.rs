use rusqlite::Connection;

use super::*;
use crate::store::testing::{self, TestLog};

fn temp_store() -> (tempfile::TempDir, PathBuf, SqliteLogStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    let store = SqliteLogStore::open(&path).unwrap();
    (dir, path, store)
}

/// Appends `batches` batches of `per_batch` records; returns the log builder.
fn fill(store: &SqliteLogStore, batches: u64, per_batch: u64) -> TestLog {
    let mut log = TestLog::new();
    for _ in 0..batches {
        let (first, records, checkpoint) = log.batch(per_batch);
        store.append(first, &records, &checkpoint).unwrap();
    }
    log
}

fn all_records(store: &SqliteLogStore) -> Vec<Vec<u8>> {
    store.read_records(0, usize::MAX, usize::MAX).unwrap()
}

#[test]
fn follows_the_store_contract() {
    let (_dir, _, store) = temp_store();
    testing::contract(&store);
}

#[test]
fn uses_wal_with_full_sync_and_records_its_schema_version() {
    let (_dir, path, store) = temp_store();
    let synchronous: i64 = lock(&store.writer)
        .query_row("PRAGMA synchronous", [], |row| row.get(0))
        .unwrap();
    assert_eq!(synchronous, 2, "FULL");
    drop(store);
    let raw = Connection::open(&path).unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

#[test]
fn reopening_keeps_everything() {
    let (_dir, path, store) = temp_store();
    let mut log = fill(&store, 4, 3);
    store.put_sealed_key(b"ciphertext").unwrap();
    let head = store.head().unwrap();
    let records = all_records(&store);
    let checkpoints = store.read_checkpoints(0, 100).unwrap();
    drop(store);

    let store = SqliteLogStore::open(&path).unwrap();
    assert_eq!(store.head().unwrap(), head);
    assert_eq!(head.size, 12);
    assert_eq!(all_records(&store), records);
    assert_eq!(store.read_checkpoints(0, 100).unwrap(), checkpoints);
    assert_eq!(store.get_sealed_key().unwrap().unwrap(), b"ciphertext");
    // And it goes on where it stopped.
    let (first, more, checkpoint) = log.batch(2);
    assert_eq!(store.append(first, &more, &checkpoint).unwrap(), 14);
}

#[test]
fn a_missing_record_is_refused_on_open_naming_the_file() {
    let (_dir, path, store) = temp_store();
    fill(&store, 3, 2);
    drop(store);
    Connection::open(&path)
        .unwrap()
        .execute("DELETE FROM records WHERE idx = 2", [])
        .unwrap();

    let error = SqliteLogStore::open(&path).unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Corrupt {
                problem: Corruption::NotContiguous {
                    count: 5,
                    min: 0,
                    max: 5
                },
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
}

#[test]
fn a_cut_off_tail_under_a_checkpoint_is_refused_on_open() {
    let (_dir, path, store) = temp_store();
    fill(&store, 3, 2);
    drop(store);
    Connection::open(&path)
        .unwrap()
        .execute("DELETE FROM records WHERE idx = 5", [])
        .unwrap();
    assert!(matches!(
        SqliteLogStore::open(&path),
        Err(StoreError::Corrupt {
            problem: Corruption::CheckpointBeyondRecords {
                checkpoint_size: 6,
                records: 5
            },
            ..
        })
    ));
}

#[test]
fn a_record_not_starting_at_zero_is_refused_on_open() {
    let (_dir, path, store) = temp_store();
    fill(&store, 1, 3);
    drop(store);
    let raw = Connection::open(&path).unwrap();
    raw.execute("DELETE FROM checkpoints", []).unwrap();
    // Shifted as a whole: as many rows as indexes span, but not from 0.
    raw.execute("UPDATE records SET idx = idx + 10", [])
        .unwrap();
    drop(raw);
    assert!(matches!(
        SqliteLogStore::open(&path),
        Err(StoreError::Corrupt {
            problem: Corruption::NotContiguous {
                count: 3,
                min: 10,
                max: 12
            },
            ..
        })
    ));
}

#[test]
fn another_schema_version_is_refused() {
    let (_dir, path, store) = temp_store();
    drop(store);
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 7")
        .unwrap();
    assert!(matches!(
        SqliteLogStore::open(&path),
        Err(StoreError::UnsupportedSchema {
            found: 7,
            supported: SCHEMA_VERSION,
            ..
        })
    ));
}

#[test]
fn a_file_that_is_not_a_database_is_reported_as_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let error = SqliteLogStore::open(&path).unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Corrupt {
                problem: Corruption::Database(_),
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn disk_full_rolls_back_and_the_store_recovers_when_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    // A freshly created store takes a handful of pages; leave room for a few batches.
    let options = SqliteOptions {
        max_page_count: Some(12),
    };
    let store = SqliteLogStore::open_with(&path, &options).unwrap();
    let big = |index: u64| {
        let mut record = TestLog::record(index);
        record.resize(3000, b'r');
        record
    };

    // Append batches of large records until the "disk" is full.
    let (full_at, failed) = loop {
        let first = store.head().unwrap().size;
        let records: Vec<Vec<u8>> = (first..first + 3).map(big).collect();
        let checkpoint = checkpoint_for(&records, first);
        match store.append(first, &records, &checkpoint) {
            Ok(size) => assert!(size < 100, "the limit never hit"),
            Err(StoreError::Full { path: reported }) => {
                assert_eq!(reported, path);
                break (first, (records, checkpoint));
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    };
    assert!(full_at > 0, "at least one batch fitted");

    // Nothing of the failed batch is visible, and what was there reads back intact.
    let head = store.head().unwrap();
    assert_eq!(head.size, full_at);
    assert_eq!(head.checkpoint.as_ref().unwrap().size, full_at);
    let records = all_records(&store);
    assert_eq!(records.len() as u64, full_at);
    assert_eq!(records, (0..full_at).map(big).collect::<Vec<_>>());
    assert!(store.read_checkpoints(full_at + 1, 10).unwrap().is_empty());

    // Once space is freed the same append goes through.
    store.set_max_page_count(10_000);
    let (records, checkpoint) = failed;
    assert_eq!(
        store.append(full_at, &records, &checkpoint).unwrap(),
        full_at + 3
    );
    drop(store);
    let store = SqliteLogStore::open(&path).unwrap();
    assert_eq!(store.head().unwrap().size, full_at + 3);
    assert_eq!(all_records(&store).len() as u64, full_at + 3);
}

/// A checkpoint naming the size after appending `records` at `first` (the store checks the
/// size it names, not its root).
fn checkpoint_for(records: &[Vec<u8>], first: u64) -> String {
    let mut log = TestLog::new();
    let (_, _, checkpoint) = log.batch(first + records.len() as u64);
    checkpoint
}

#[test]
fn a_second_writer_on_the_same_file_cannot_fork_the_log() {
    let (_dir, path, store) = temp_store();
    let other = SqliteLogStore::open(&path).unwrap();
    let mut log = TestLog::new();
    let (first, records, checkpoint) = log.batch(2);
    assert_eq!(store.append(first, &records, &checkpoint).unwrap(), 2);
    // The other writer still believes the log is empty.
    assert!(matches!(
        other.append(0, &records, &checkpoint),
        Err(StoreError::Conflict {
            expected: 2,
            got: 0
        })
    ));
    assert_eq!(other.head().unwrap().size, 2);
}

/// Makes the store at `path` a version 1 store, as an older proxy wrote it: no
/// cosignatures table.
fn downgrade_to_v1(path: &Path) {
    Connection::open(path)
        .unwrap()
        .execute_batch("DROP TABLE cosignatures; PRAGMA user_version = 1;")
        .unwrap();
}

#[test]
fn a_store_of_version_1_opens_and_gains_the_cosignatures_table() {
    let (_dir, path, store) = temp_store();
    let log = fill(&store, 2, 3);
    store.put_sealed_key(b"ciphertext").unwrap();
    let checkpoints = store.read_checkpoints(0, 10).unwrap();
    drop(store);
    downgrade_to_v1(&path);

    let store = SqliteLogStore::open(&path).unwrap();
    let version: i64 = lock(&store.reader)
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(store.read_checkpoints(0, 10).unwrap(), checkpoints);
    assert_eq!(store.get_sealed_key().unwrap().unwrap(), b"ciphertext");
    assert_eq!(store.cosigned_checkpoint().unwrap(), None);
    let latest = log.checkpoint();
    store
        .put_cosignatures(6, &[testing::cosign(1, 30, &latest)])
        .unwrap();
    drop(store);
    // And the cosignatures survive a reopen.
    let store = SqliteLogStore::open(&path).unwrap();
    let cosigned = store.cosigned_checkpoint().unwrap().unwrap();
    assert_eq!(cosigned.size, 6);
    assert_eq!(
        cosigned.note,
        format!("{latest}{}", testing::cosign(1, 30, &latest))
    );
}

#[test]
fn a_backup_carries_the_cosignatures_and_an_older_store_is_backed_up_as_it_is() {
    let (dir, path, store) = temp_store();
    let log = fill(&store, 2, 2);
    let latest = log.checkpoint();
    store
        .put_cosignatures(4, &[testing::cosign(1, 40, &latest)])
        .unwrap();
    let cosigned = store.cosigned_checkpoint().unwrap();
    let to = dir.path().join("backup.sqlite");
    backup(&path, &to).unwrap();
    let copy = SqliteLogStore::open(&to).unwrap();
    assert_eq!(copy.cosigned_checkpoint().unwrap(), cosigned);
    drop((copy, store));

    // A store an older proxy left behind: copied as version 1, upgraded when opened.
    downgrade_to_v1(&path);
    let old = dir.path().join("old-backup.sqlite");
    let summary = backup(&path, &old).unwrap();
    assert_eq!(summary.records, 4);
    assert_eq!(read_kept_key(&old).unwrap().sealed, None);
    let version: i64 = Connection::open(&old)
        .unwrap()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 1);
    let reopened = SqliteLogStore::open(&old).unwrap();
    assert_eq!(reopened.head().unwrap().size, 4);
    assert_eq!(reopened.cosigned_checkpoint().unwrap(), None);
}
