//! The witness's state survives `kill -9`: it is committed before the answer, and two
//! requests from the same size cannot both be cosigned. Also the key file and the start-up
//! checks, through the real binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests: a failure is reported by the panic"
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{add_checkpoint, Log, Running, Setup, WITNESS_NAME};
use ea_audit::cosignature::CosignatureVerifier;
use witness::store::Store;

const GENESIS: &str = "genesis";

#[test]
fn a_cosigned_state_is_committed_before_the_reply() {
    let setup = Setup::new();
    let log = Log::new(GENESIS, 30, 1, "");
    let witness = setup.start(&[&log]);
    assert_eq!(
        add_checkpoint(witness.addr, &log.request(0, 11)).status,
        200
    );
    // SIGKILL as soon as the answer is read: nothing gets to run after it.
    witness.kill_9();
    // The file holds the cosigned checkpoint, as the log sent it.
    let stored = Store::open(setup.db())
        .unwrap()
        .get(log.origin())
        .unwrap()
        .unwrap();
    assert_eq!(stored.state.size, 11);
    assert_eq!(stored.state.root, log.tree.root_at(11).unwrap());
    assert_eq!(stored.note, log.note(11));
    let witness = setup.start(&[&log]);
    let answer = add_checkpoint(witness.addr, &log.request(0, 30));
    assert_eq!(answer.status, 409, "{answer:?}");
    assert_eq!(
        answer.body, "11\n",
        "the state of the last 200 survived kill -9"
    );
    assert_eq!(
        add_checkpoint(witness.addr, &log.request(11, 30)).status,
        200
    );
}

#[test]
fn repeated_kills_right_after_replies_lose_nothing() {
    let setup = Setup::new();
    let log = Log::new(GENESIS, 40, 1, "");
    let mut old = 0;
    for new in [1, 5, 6, 17, 40] {
        let witness = setup.start(&[&log]);
        // The stored size is the last one cosigned.
        let probe = add_checkpoint(witness.addr, &log.request(0, new));
        if old == 0 {
            assert_eq!(probe.status, 200, "{probe:?}");
        } else {
            assert_eq!(
                (probe.status, probe.body.as_str()),
                (409, format!("{old}\n").as_str())
            );
            assert_eq!(
                add_checkpoint(witness.addr, &log.request(old, new)).status,
                200
            );
        }
        witness.kill_9();
        old = new;
    }
    let witness = setup.start(&[&log]);
    assert_eq!(
        add_checkpoint(witness.addr, &log.request(0, 40)).body,
        "40\n"
    );
}

#[test]
fn a_refused_request_changes_nothing_across_a_restart() {
    let setup = Setup::new();
    let log = Log::new(GENESIS, 20, 1, "");
    let fork = Log::new(GENESIS, 20, 1, " forked");
    let witness = setup.start(&[&log]);
    assert_eq!(add_checkpoint(witness.addr, &log.request(0, 8)).status, 200);
    assert_eq!(
        add_checkpoint(witness.addr, &fork.request(8, 20)).status,
        422
    );
    witness.kill_9();
    let witness = setup.start(&[&log]);
    assert_eq!(
        add_checkpoint(witness.addr, &fork.request(0, 20)).body,
        "8\n"
    );
    assert_eq!(
        add_checkpoint(witness.addr, &log.request(8, 20)).status,
        200
    );
}

#[test]
fn concurrent_requests_from_the_same_size_cosign_only_one() {
    // The race of the spec: requests A (to size N) and B (to N + K), both from the stored
    // size. Whichever is checked first wins; the other must get 409, never a cosignature
    // that would roll the state back.
    let setup = Setup::new();
    let log = Log::new(GENESIS, 40, 1, "");
    let witness = setup.start(&[&log]);
    assert_eq!(add_checkpoint(witness.addr, &log.request(0, 4)).status, 200);
    let addr = witness.addr;
    let bodies: Vec<(u64, String)> = (5..=40).map(|new| (new, log.request(4, new))).collect();
    let threads: Vec<_> = bodies
        .into_iter()
        .map(|(new, body)| std::thread::spawn(move || (new, add_checkpoint(addr, &body))))
        .collect();
    let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let winners: Vec<u64> = answers
        .iter()
        .filter(|(_, a)| a.status == 200)
        .map(|(new, _)| *new)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for (_, answer) in answers.iter().filter(|(_, a)| a.status != 200) {
        assert_eq!(answer.status, 409, "{answer:?}");
    }
    witness.kill_9();
    let witness = setup.start(&[&log]);
    let answer = add_checkpoint(witness.addr, &log.request(0, 40));
    assert_eq!(answer.body, format!("{}\n", winners[0]));
}

#[test]
fn keygen_writes_an_owner_only_key_and_prints_its_verifier_key() {
    let setup = Setup::new();
    let mode = std::fs::metadata(setup.key_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(setup.verifier.name(), WITNESS_NAME);
    assert!(setup
        .verifier
        .to_string()
        .parse::<CosignatureVerifier>()
        .is_ok());
    // A second keygen never overwrites the key.
    let out = Command::new(env!("CARGO_BIN_EXE_witness"))
        .args(["keygen", "--name", WITNESS_NAME, "--out"])
        .arg(setup.key_file())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("key file"));
}

/// Runs the serving command with `args` and expects it to exit with an error naming `why`.
fn refuses_to_start(setup: &Setup, args: &[&str], why: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_witness"))
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(setup.db())
        .arg("--key-file")
        .arg(setup.key_file())
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(why), "{why:?} not in {stderr}");
}

#[test]
fn start_up_checks() {
    let setup = Setup::new();
    let log = Log::new(GENESIS, 1, 1, "");
    let spec = log.spec();
    // The key file is for another name.
    refuses_to_start(
        &setup,
        &["--name", "witness.test/other", "--log", &spec],
        "not of \"witness.test/other\"",
    );
    // No log.
    refuses_to_start(&setup, &["--name", WITNESS_NAME], "no log configured");
    // A log key not named after its origin.
    let wrong = format!(
        "enclave-approvals/0000000000000000={}",
        log.signer.verifier()
    );
    refuses_to_start(
        &setup,
        &["--name", WITNESS_NAME, "--log", &wrong],
        "not after the origin",
    );
    // A key file others can read.
    std::fs::set_permissions(setup.key_file(), std::fs::Permissions::from_mode(0o640)).unwrap();
    refuses_to_start(
        &setup,
        &["--name", WITNESS_NAME, "--log", &spec],
        "chmod 600",
    );
}

#[test]
fn a_config_file_gives_the_same_witness() {
    let setup = Setup::new();
    let log = Log::new(GENESIS, 9, 1, "");
    let config = setup.dir.path().join("witness.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndb = {:?}\nkey_file = {:?}\nname = {WITNESS_NAME:?}\nlog = [{:?}]\n",
            setup.db(),
            setup.key_file(),
            log.spec()
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_witness"));
    command.arg("--config").arg(&config);
    let witness = Running::spawn(command, &setup.dir.path().join("stderr.log"));
    assert_eq!(add_checkpoint(witness.addr, &log.request(0, 9)).status, 200);
    witness.kill_9();
    // The same state, started with flags.
    let witness = setup.start(&[&log]);
    assert_eq!(add_checkpoint(witness.addr, &log.request(0, 9)).body, "9\n");
}
