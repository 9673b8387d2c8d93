//! Backup and restore of the parent's log store, with the real binaries:
//! - `parent-proxy backup` beside a proxy under load from 64 clients holds every change
//!   acknowledged before it began, and a proxy and an enclave started on the copy recover it,
//!   serve, and the log verifies;
//! - `parent-proxy import` of a `govctl audit fetch` directory gives a store a stack serves
//!   and whose log verifies; a tampered directory (a flipped byte, a removed record, a forged
//!   checkpoint) is refused at its first bad record with nothing written;
//! - with the log key sealed through KMS, an imported store needs the sealed key from a
//!   backup (`--sealed-key-from`); without it the enclave refuses to start, as documented;
//! - a backup never overwrites a file, an import never writes into a store holding a log.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "end-to-end test: a failed step should fail the test loudly"
)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ea_tests::kms::LocalKms;
use ea_tests::load::{check_after_faults, stream, Clients};
use ea_tests::{binaries, Deployment, LocalStack, Process};
use serde_json::json;

fn policy() -> serde_json::Value {
    json!({
        "communities": [{"id": "/communities/c1", "addressSpace": "10.0.0.0/8"}],
        "roleAssignments": [{"id": "ra-admin", "principalId": "admin",
                             "roleDefinitionId": "Owner", "scope": "/"}]
    })
}

/// Runs `parent-proxy` with `args`.
fn parent_proxy<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(binaries().path("parent-proxy"))
        .args(args)
        .output()
        .expect("running parent-proxy")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `parent-proxy backup` of `d`'s store into `to`; panics unless it succeeds. Returns stdout.
fn backup(d: &Deployment, to: &Path) -> String {
    let store = d.stack.dir.path().join("log.sqlite");
    let output = parent_proxy(&[
        OsStr::new("backup"),
        OsStr::new("--store-path"),
        store.as_os_str(),
        OsStr::new("--to"),
        to.as_os_str(),
    ]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "backup failed: {stdout}\n{stderr}");
    stdout
}

/// The number after `label` on a line of `stdout`.
fn number_after(stdout: &str, label: &str) -> u64 {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(label))
        .and_then(|rest| rest.split([' ', ',']).find(|w| !w.is_empty()))
        .and_then(|word| word.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} line in {stdout}"))
}

/// `govctl audit fetch` of `d`'s log into a new directory under `parent`.
fn fetch(d: &Deployment, parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    let output = Command::new(binaries().path("govctl"))
        .args(["audit", "fetch", "--endpoint", &d.stack.url, "--out"])
        .arg(&dir)
        .output()
        .expect("running govctl audit fetch");
    assert!(output.status.success(), "{output:?}");
    dir
}

/// `parent-proxy import` of `from` into `store`, pinned to `d`'s mock root and PCRs, with
/// `extra` arguments.
fn import(d: &Deployment, from: &Path, store: &Path, extra: &[&OsStr]) -> Output {
    let mut args = vec![
        OsStr::new("import"),
        OsStr::new("--from"),
        from.as_os_str(),
        OsStr::new("--store-path"),
        store.as_os_str(),
    ];
    let root = d.stack.mock_root();
    let pcrs = d.measurements();
    args.extend([
        OsStr::new("--root"),
        root.as_os_str(),
        OsStr::new("--pcrs"),
        pcrs.as_os_str(),
    ]);
    args.extend_from_slice(extra);
    parent_proxy(&args)
}

/// Some changes through govctl, so that the log holds embedded requests of several kinds;
/// `n` makes the enclave's address space (10.n.0.0/16) unique.
fn make_changes(d: &Deployment, tag: &str, n: u8) {
    for i in 0..3 {
        d.govctl("admin", &["principal", "create", &format!("{tag}-{i}")])
            .expect(0);
    }
    d.govctl(
        "admin",
        &[
            "enclave",
            "create",
            &format!("/communities/c1/virtualEnclaves/{tag}"),
            "--address-space",
            &format!("10.{n}.0.0/16"),
        ],
    )
    .expect(0);
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_backup_under_load_holds_every_earlier_change_and_a_stack_on_it_recovers_and_serves() {
    let d = Deployment::start(&["admin"], policy());
    let scratch = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let streaming = runtime.spawn(stream(Clients::of(&d, "admin"), 64, stop.clone()));
    std::thread::sleep(Duration::from_millis(2000));

    let copy = scratch.path().join("backup.sqlite");
    let began = Instant::now();
    let stdout = backup(&d, &copy);
    let ended = Instant::now();
    println!("{stdout}");
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    let acknowledged = runtime.block_on(streaming).unwrap();
    // A client that talks to the service after the backup: its trust file remembers a tree
    // the backup does not have.
    d.govctl("admin", &["principal", "create", "after-the-backup"])
        .expect(0);

    let before: Vec<_> = acknowledged
        .iter()
        .filter(|ack| ack.at < began)
        .cloned()
        .collect();
    let after = acknowledged.iter().filter(|ack| ack.at > ended).count();
    assert!(
        before.len() > 20,
        "too few changes before the backup: {}",
        before.len()
    );
    assert!(after > 0, "the proxy went on serving after the backup");
    let records = number_after(&stdout, "records:");
    let last = before.iter().map(|ack| ack.index).max().unwrap();
    assert!(
        records > last,
        "the backup ({records} records) ends before record {last}, acknowledged before it began"
    );
    assert!(
        stdout.contains(&format!("the last of size {records}")),
        "the backup ends at a checkpoint: {stdout}"
    );
    assert_eq!(
        names(scratch.path()),
        ["backup.sqlite"],
        "no temporary file left"
    );

    // The restore test docs/deployment.md gives for any machine: a proxy alone (no enclave)
    // on a scratch copy serves the log, and `govctl audit verify` accepts it.
    let alone = tempfile::tempdir().unwrap();
    let scratch_copy = alone.path().join("restore-test.sqlite");
    std::fs::copy(&copy, &scratch_copy).unwrap();
    let args: Vec<String> = vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--insecure-http".into(),
        "--enclave".into(),
        format!("unix:{}", alone.path().join("no-enclave.sock").display()),
        "--store-listen".into(),
        format!("unix:{}", alone.path().join("store.sock").display()),
        "--store-path".into(),
        scratch_copy.display().to_string(),
    ];
    let mut proxy = Process::spawn(
        &binaries().path("parent-proxy"),
        &args,
        &alone.path().join("proxy.log"),
    );
    let url = proxy.wait_for_stdout_line("listening on ");
    let audit = alone.path().join("audit");
    let output = Command::new(binaries().path("govctl"))
        .args(["audit", "fetch", "--endpoint", &url, "--out"])
        .arg(&audit)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let output = Command::new(binaries().path("govctl"))
        .args(["audit", "verify"])
        .arg(&audit)
        .arg("--root")
        .arg(d.stack.mock_root())
        .arg("--pcrs")
        .arg(d.measurements())
        .output()
        .unwrap();
    let (verified, stderr) = text(&output);
    assert!(output.status.success(), "{verified}\n{stderr}");
    assert!(
        verified.starts_with(&format!(
            "verified {records} records up to checkpoint {records}"
        )),
        "{verified}"
    );
    // The backup does not extend the tree the client's trust file remembers (signed after
    // the backup was taken): `--since` says so.
    let output = Command::new(binaries().path("govctl"))
        .args(["audit", "verify"])
        .arg(&audit)
        .arg("--root")
        .arg(d.stack.mock_root())
        .arg("--pcrs")
        .arg(d.measurements())
        .arg("--since")
        .arg(&d.trust)
        .output()
        .unwrap();
    let (refused, stderr) = text(&output);
    assert!(!output.status.success(), "{refused}");
    assert!(
        format!("{refused}{stderr}").contains("rolled back or forked since"),
        "{refused}\n{stderr}"
    );
    proxy.kill();

    // Restore: a proxy and an enclave on the copy recover it, serve, and every change
    // acknowledged before the backup began is in the log at its index, which verifies.
    let restored = d.restore_on(&copy);
    drop(d);
    // To that client the restored log is a rollback: govctl stops with its own exit code
    // and keeps both signed trees as evidence, until told the rollback is explained.
    let rolled_back = restored.govctl("admin", &["principal", "create", "after-restore"]);
    assert_eq!(rolled_back.code, Some(4), "{}", rolled_back.stderr);
    assert!(
        rolled_back
            .stderr
            .contains("the log was rolled back or forked"),
        "{}",
        rolled_back.stderr
    );
    let trust_dir = restored.trust.parent().unwrap();
    let evidence: Vec<_> = std::fs::read_dir(trust_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".rollback-"))
        .collect();
    assert_eq!(evidence.len(), 1, "one evidence file");
    let evidence: serde_json::Value =
        serde_json::from_slice(&std::fs::read(evidence[0].path()).unwrap()).unwrap();
    assert!(
        evidence["remembered"]["size"].as_u64() > evidence["answer"]["size"].as_u64(),
        "{evidence}"
    );
    restored
        .govctl("admin", &["trust", "forget-checkpoint"])
        .expect(0);
    restored
        .govctl("admin", &["principal", "create", "after-restore"])
        .expect(0);
    check_after_faults(&restored, "admin", &before);
    // The log as it now is extends what the client remembers since.
    let audit = fetch(&restored, scratch.path(), "audit-after-restore");
    let output = Command::new(binaries().path("govctl"))
        .args(["audit", "verify"])
        .arg(&audit)
        .arg("--root")
        .arg(restored.stack.mock_root())
        .arg("--pcrs")
        .arg(restored.measurements())
        .arg("--since")
        .arg(&restored.trust)
        .output()
        .unwrap();
    let (verified, stderr) = text(&output);
    assert!(output.status.success(), "{verified}\n{stderr}");
    assert!(
        stderr.contains("the log extends the checkpoint"),
        "{stderr}"
    );
}

#[test]
fn an_imported_audit_export_serves_and_its_log_verifies() {
    let d = Deployment::start(&["admin"], policy());
    make_changes(&d, "before-export", 1);
    let scratch = tempfile::tempdir().unwrap();
    let export = fetch(&d, scratch.path(), "audit");
    let size = {
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(export.join("manifest.json")).unwrap()).unwrap();
        manifest["size"].as_u64().unwrap()
    };

    let stores = scratch.path().join("stores");
    std::fs::create_dir(&stores).unwrap();
    let store = stores.join("log.sqlite");
    let output = import(&d, &export, &store, &[]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "import failed: {stdout}\n{stderr}");
    println!("{stdout}");
    assert!(
        stdout.starts_with(&format!("imported {size} records")),
        "{stdout}"
    );
    assert!(stdout.contains("sealed log key: NOT restored"), "{stdout}");
    assert!(
        stdout.contains(&format!("genesis:        {}", d.genesis_hash)),
        "{stdout}"
    );
    assert_eq!(names(&stores), ["log.sqlite"]);

    let restored = d.restore_on(&store);
    drop(d);
    make_changes(&restored, "after-import", 2);
    check_after_faults(&restored, "admin", &[]);
}

#[test]
fn a_tampered_export_is_refused_at_its_first_bad_record_with_nothing_written() {
    let d = Deployment::start(&["admin"], policy());
    make_changes(&d, "c", 3);
    let scratch = tempfile::tempdir().unwrap();
    let export = fetch(&d, scratch.path(), "audit");
    let records = std::fs::read(export.join("records.cbor-seq")).unwrap();
    // Where each record starts, after its length prefix.
    let mut spans = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let len = u32::from_be_bytes(records[at..at + 4].try_into().unwrap()) as usize;
        spans.push((at, at + 4 + len));
        at += 4 + len;
    }
    let target = scratch.path().join("stores").join("log.sqlite");
    std::fs::create_dir(target.parent().unwrap()).unwrap();
    let refused = |name: &str, records: &[u8], checkpoints: Option<&str>| -> String {
        let dir = scratch.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("records.cbor-seq"), records).unwrap();
        match checkpoints {
            Some(text) => std::fs::write(dir.join("checkpoints.txt"), text).unwrap(),
            None => {
                std::fs::copy(export.join("checkpoints.txt"), dir.join("checkpoints.txt")).unwrap();
            }
        }
        let output = import(&d, &dir, &target, &[]);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(1), "{name}: {stdout}\n{stderr}");
        assert!(stderr.contains("nothing was written"), "{name}: {stderr}");
        assert!(
            names(target.parent().unwrap()).is_empty(),
            "{name}: nothing is written, not even a temporary file"
        );
        stderr
    };

    // A flipped byte in the middle of the last record but one.
    let victim = spans.len() - 2;
    let (start, end) = spans[victim];
    let mut flipped = records.clone();
    flipped[(start + 4 + end) / 2] ^= 0x20;
    let stderr = refused("flipped", &flipped, None);
    let index: usize = stderr
        .split("refused at record ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no record named: {stderr}"));
    assert!(
        index <= victim,
        "record {index} named for a change in {victim}: {stderr}"
    );

    // Record 3 removed: record 4 stands at index 3.
    let mut removed = records[..spans[3].0].to_vec();
    removed.extend_from_slice(&records[spans[3].1..]);
    let stderr = refused("removed", &removed, None);
    assert!(
        stderr.contains("refused at record 3: the record says seq 4"),
        "{stderr}"
    );

    // The last checkpoint forged: its root replaced by the one before it (still a
    // well-formed note, but its signature no longer matches).
    let text = std::fs::read_to_string(export.join("checkpoints.txt")).unwrap();
    let notes: Vec<&str> = text.split("---\n").filter(|n| !n.is_empty()).collect();
    let root = |note: &str| note.lines().nth(2).unwrap().to_owned();
    let (last, previous) = (notes[notes.len() - 1], notes[notes.len() - 2]);
    let forged_last = last.replacen(&root(last), &root(previous), 1);
    assert_ne!(forged_last, last);
    let mut forged: String = notes[..notes.len() - 1]
        .iter()
        .map(|note| format!("{note}---\n"))
        .collect();
    forged.push_str(&format!("{forged_last}---\n"));
    let stderr = refused("forged", &records, Some(&forged));
    assert!(stderr.contains("refused at record "), "{stderr}");
    assert!(stderr.contains("checkpoint"), "{stderr}");

    // The untouched export imports into the same place.
    let output = import(&d, &export, &target, &[]);
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn backup_never_overwrites_and_import_never_writes_into_a_log() {
    let d = Deployment::start(&["admin"], policy());
    make_changes(&d, "c", 4);
    let scratch = tempfile::tempdir().unwrap();

    // The flag-only invocation serves (every stack here); the subcommands are listed.
    let help = text(&parent_proxy(&["--help"])).0;
    assert!(help.contains("backup") && help.contains("import"), "{help}");

    let existing = scratch.path().join("existing.sqlite");
    std::fs::write(&existing, b"last night's backup").unwrap();
    let store = d.stack.dir.path().join("log.sqlite");
    let output = parent_proxy(&[
        OsStr::new("backup"),
        OsStr::new("--store-path"),
        store.as_os_str(),
        OsStr::new("--to"),
        existing.as_os_str(),
    ]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("never overwrites"), "{stderr}");
    assert_eq!(std::fs::read(&existing).unwrap(), b"last night's backup");

    let export = fetch(&d, scratch.path(), "audit");
    // A store holding a log: a backup of this one.
    let copy = scratch.path().join("copy.sqlite");
    backup(&d, &copy);
    let before = std::fs::read(&copy).unwrap();
    let output = import(&d, &export, &copy, &[]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("already holds a log"), "{stderr}");
    assert_eq!(std::fs::read(&copy).unwrap(), before);

    // The live store, which the running proxy has open.
    let output = import(&d, &export, &store, &[]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stop parent-proxy first"), "{stderr}");
    d.govctl("admin", &["principal", "create", "still-serving"])
        .expect(0);
}

fn describe(d: &Deployment) -> serde_json::Value {
    let output = Command::new(binaries().path("govctl"))
        .args(["describe", "--endpoint", &d.stack.url])
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
}

#[test]
fn with_a_kms_sealed_log_key_an_import_needs_the_sealed_key_from_a_backup() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _kms = LocalKms::prepare(dir.path());
    let enclave = _kms.enclave_args();
    let proxy = _kms.proxy_args();
    let stack = LocalStack::start_in(
        dir,
        &enclave.iter().map(String::as_str).collect::<Vec<_>>(),
        &proxy.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let mut d = Deployment::on(
        stack,
        tempfile::tempdir().unwrap(),
        &["admin"],
        policy(),
        json!({}),
    );
    let log_key = describe(&d)["log_key"].as_str().unwrap().to_owned();
    make_changes(&d, "before-backup", 5);
    let copy = scratch.path().join("backup.sqlite");
    let stdout = backup(&d, &copy);
    assert!(stdout.contains("sealed log key: included"), "{stdout}");
    // The export is newer than the backup: what an import is for.
    make_changes(&d, "after-backup", 6);
    let export = fetch(&d, scratch.path(), "audit");

    let without = scratch.path().join("without-key.sqlite");
    let output = import(&d, &export, &without, &[]);
    assert!(output.status.success(), "{output:?}");
    let with = scratch.path().join("with-key.sqlite");
    let output = import(
        &d,
        &export,
        &with,
        &[OsStr::new("--sealed-key-from"), copy.as_os_str()],
    );
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("sealed log key: copied from"), "{stdout}");

    // Without the sealed key, the enclave (--log-key kms) refuses the log, as documented.
    d.stack.kill_enclave();
    d.stack.kill_proxy();
    let without_arg = without.display().to_string();
    d.stack.restart_proxy_with(&["--store-path", &without_arg]);
    d.stack.start_enclave();
    let deadline = Instant::now() + Duration::from_secs(60);
    let refused = loop {
        let description = describe(&d);
        if description["phase"] == "failed" {
            break description;
        }
        assert_ne!(description["phase"], "serving", "{description}");
        assert!(
            Instant::now() < deadline,
            "{description}\n{}",
            d.stack.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no sealed log key"),
        "{refused}"
    );

    // With it, the same log key is unsealed and the log goes on under it.
    d.stack.kill_enclave();
    d.stack.kill_proxy();
    let with_arg = with.display().to_string();
    d.stack.restart_proxy_with(&["--store-path", &with_arg]);
    d.stack.start_enclave();
    d.wait_serving(Duration::from_secs(60));
    assert_eq!(
        describe(&d)["log_key"],
        log_key.as_str(),
        "the same log key"
    );
    make_changes(&d, "after-import", 7);
    check_after_faults(&d, "admin", &[]);
}
