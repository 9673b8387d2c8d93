//! Backups and built stores: consistent under a writer, never over an existing file, never
//! half-written.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rusqlite::Connection;

use super::*;
use crate::store::testing::TestLog;

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn everything(store: &SqliteLogStore) -> (Vec<Vec<u8>>, Vec<StoredCheckpoint>, Option<Vec<u8>>) {
    (
        store.read_records(0, usize::MAX, usize::MAX).unwrap(),
        store.read_checkpoints(0, usize::MAX).unwrap(),
        store.get_sealed_key().unwrap(),
    )
}

#[test]
fn a_backup_beside_a_writer_is_one_commit_of_the_store_and_holds_every_earlier_append() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    let store = Arc::new(SqliteLogStore::open(&path).unwrap());
    store.put_sealed_key(b"sealed").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut log = TestLog::new();
            let mut batches = 0u64;
            while !stop.load(Ordering::SeqCst) || batches < 50 {
                let (first, records, checkpoint) = log.batch(1 + batches % 5);
                store.append(first, &records, &checkpoint).unwrap();
                batches += 1;
            }
        })
    };
    while store.head().unwrap().size < 100 {
        std::thread::yield_now();
    }
    let before = store.head().unwrap().size;
    let to = dir.path().join("backup.sqlite");
    let summary = backup(&path, &to).unwrap();
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();

    assert!(summary.records >= before, "{summary:?} < {before}");
    assert_eq!(summary.last_checkpoint_size, Some(summary.records));
    assert!(summary.sealed_key);
    assert_eq!(summary.bytes, std::fs::metadata(&to).unwrap().len());
    let live = everything(&store);
    assert!(
        live.0.len() as u64 > summary.records,
        "the writer went on after the backup"
    );
    // Self-contained, and nothing left behind but the two stores.
    let mode: String = Connection::open(&to)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    drop(store);
    assert_eq!(names(dir.path()), ["backup.sqlite", "log.sqlite"]);

    // The copy opens as a store, and is a prefix of the live log ending at a checkpoint.
    let copy = SqliteLogStore::open(&to).unwrap();
    let (records, checkpoints, sealed) = everything(&copy);
    assert_eq!(records.len() as u64, summary.records);
    assert_eq!(records[..], live.0[..records.len()]);
    assert_eq!(checkpoints.len() as u64, summary.checkpoints);
    assert_eq!(checkpoints[..], live.1[..checkpoints.len()]);
    assert_eq!(sealed.as_deref(), Some(&b"sealed"[..]));
}

#[test]
fn a_backup_never_overwrites_and_needs_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    let store = SqliteLogStore::open(&path).unwrap();
    let mut log = TestLog::new();
    let (first, records, checkpoint) = log.batch(3);
    store.append(first, &records, &checkpoint).unwrap();

    let to = dir.path().join("backup.sqlite");
    std::fs::write(&to, b"an older backup").unwrap();
    let error = backup(&path, &to).unwrap_err();
    assert!(matches!(error, StoreFileError::Exists { .. }), "{error}");
    assert!(error.to_string().contains("never overwrites"), "{error}");
    assert_eq!(std::fs::read(&to).unwrap(), b"an older backup");

    // A stale -wal beside the destination would be replayed into the copy when opened.
    let other = dir.path().join("other.sqlite");
    std::fs::write(dir.path().join("other.sqlite-wal"), b"stale").unwrap();
    let error = backup(&path, &other).unwrap_err();
    assert!(matches!(error, StoreFileError::InUse { .. }), "{error}");
    assert!(!other.exists());

    let error = backup(
        &dir.path().join("typo.sqlite"),
        &dir.path().join("new.sqlite"),
    )
    .unwrap_err();
    assert!(matches!(error, StoreFileError::NoStore { .. }), "{error}");
    assert!(error.to_string().contains("--store-path"), "{error}");
    assert!(
        !dir.path().join("typo.sqlite").exists(),
        "no store was made"
    );
    assert!(!dir.path().join("new.sqlite").exists());

    // No such directory: said before anything is tried.
    let error = backup(&path, &dir.path().join("missing").join("b.sqlite")).unwrap_err();
    assert!(error.to_string().contains("create it first"), "{error}");

    // Not a store: SQLite's own error, and nothing written.
    std::fs::write(
        dir.path().join("notes.txt"),
        b"not a database at all, clearly",
    )
    .unwrap();
    assert!(backup(
        &dir.path().join("notes.txt"),
        &dir.path().join("new.sqlite")
    )
    .is_err());
    assert!(!dir.path().join("new.sqlite").exists());
    drop(store);
    assert!(names(dir.path())
        .iter()
        .all(|name| !name.contains("partial")));
}

#[test]
fn a_built_store_opens_with_everything_written() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("imported.sqlite");
    let mut log = TestLog::new();
    let mut builder = StoreBuilder::create(&target).unwrap();
    let mut notes = Vec::new();
    for count in [1, 3, 2] {
        let (_, records, checkpoint) = log.batch(count);
        builder.push_checkpoint(&checkpoint).unwrap();
        for record in &records {
            builder.push_record(record).unwrap();
        }
        notes.push(checkpoint);
    }
    builder.put_sealed_key(b"kept").unwrap();
    assert!(!target.exists(), "not a store before it is published");
    let built = builder.publish().unwrap();
    assert_eq!(
        (built.records, built.checkpoints, built.last_checkpoint_size),
        (6, 3, Some(6))
    );
    assert!(built.sealed_key);
    assert_eq!(names(dir.path()), ["imported.sqlite"]);

    let store = SqliteLogStore::open(&target).unwrap();
    let (records, checkpoints, sealed) = everything(&store);
    assert_eq!(records, (0..6).map(TestLog::record).collect::<Vec<_>>());
    assert_eq!(
        checkpoints.into_iter().map(|c| c.note).collect::<Vec<_>>(),
        notes
    );
    assert_eq!(sealed.as_deref(), Some(&b"kept"[..]));
    let kept = read_kept_key(&target).unwrap();
    assert_eq!(kept.first_record, Some(TestLog::record(0)));
    assert_eq!(kept.sealed.as_deref(), Some(&b"kept"[..]));
}

#[test]
fn a_build_goes_only_where_no_log_is_and_leaves_nothing_when_abandoned() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new();

    // An empty store (a proxy started once, before any genesis) may be replaced...
    let empty = dir.path().join("empty.sqlite");
    drop(SqliteLogStore::open(&empty).unwrap());
    let mut builder = StoreBuilder::create(&empty).unwrap();
    let (_, records, checkpoint) = log.batch(1);
    builder.push_checkpoint(&checkpoint).unwrap();
    builder.push_record(&records[0]).unwrap();
    builder.publish().unwrap();
    assert_eq!(
        SqliteLogStore::open(&empty).unwrap().head().unwrap().size,
        1
    );

    // ... but not while a proxy has it open, and a store holding anything never.
    let open = dir.path().join("open.sqlite");
    let in_use = SqliteLogStore::open(&open).unwrap();
    let error = StoreBuilder::create(&open).unwrap_err();
    assert!(matches!(error, StoreFileError::InUse { .. }), "{error}");
    assert!(error.to_string().contains("stop parent-proxy"), "{error}");
    drop(in_use);
    let error = StoreBuilder::create(&empty).unwrap_err();
    assert!(
        matches!(
            error,
            StoreFileError::NotEmpty {
                records: 1,
                checkpoints: 1,
                sealed_key: false,
                ..
            }
        ),
        "{error}"
    );
    let sealed_only = dir.path().join("sealed-only.sqlite");
    SqliteLogStore::open(&sealed_only)
        .unwrap()
        .put_sealed_key(b"k")
        .unwrap();
    assert!(matches!(
        StoreBuilder::create(&sealed_only).unwrap_err(),
        StoreFileError::NotEmpty {
            sealed_key: true,
            ..
        }
    ));
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"not a database").unwrap();
    assert!(StoreBuilder::create(&text).is_err());
    assert_eq!(std::fs::read(&text).unwrap(), b"not a database");

    // Abandoned: only the temporary file existed, and it is gone.
    let before = names(dir.path());
    let abandoned = dir.path().join("abandoned.sqlite");
    let mut builder = StoreBuilder::create(&abandoned).unwrap();
    builder.push_record(b"record").unwrap();
    drop(builder);
    assert_eq!(names(dir.path()), before);
}
