//! A hostile parent instance: frames between the real parent-proxy and the real enclave-app,
//! and between the enclave and the parent's log store, are flipped, truncated, duplicated,
//! reordered, replayed, delayed, withheld or forged (tests/src/hostile.rs). For each, the
//! enclave refuses what was tampered with (a specific error), changes no state that is not in
//! the log, loses nothing it acknowledged without the client being able to prove it, does not
//! panic, and goes on serving.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "end-to-end test: a failed step should fail the test loudly"
)]

use std::time::{Duration, Instant};

use ea_ledger::Operation;
use ea_protocol::{EnclaveRequest, EnclaveResponse, ErrorCode, StoreRequest, StoreResponse};
use ea_tests::hostile::{message, Action, Frame, HostileDeployment, Side};
use ea_tests::load::check_after_faults;
use ea_tests::{binaries, now_ms, Deployment};
use serde_bytes::ByteBuf;
use serde_json::{json, Value};

fn policy() -> Value {
    json!({
        "communities": [{"id": "/communities/c1", "addressSpace": "10.0.0.0/8"}],
        "roleAssignments": [
            {"id": "ra-admin", "principalId": "admin", "roleDefinitionId": "Owner", "scope": "/"}
        ]
    })
}

fn create_principal(id: &str) -> Operation {
    Operation::Submit {
        command: Box::new(
            serde_json::from_value(json!({"createPrincipal": {"id": id, "type": "User"}}))
                .expect("a valid command"),
        ),
        justification: None,
    }
}

/// The principals the enclave serves (its whole state, read with admin's key).
fn principals(d: &Deployment) -> Vec<String> {
    let state = d.govctl("admin", &["read", "state"]).expect(0);
    state.json["result"]["state"]["principals"]
        .as_array()
        .expect("principals")
        .iter()
        .filter_map(|p| p["id"].as_str().map(str::to_owned))
        .collect()
}

/// The number of records in the log, as the enclave describes it.
fn log_size(d: &Deployment) -> u64 {
    let described = d.govctl("admin", &["describe"]).expect(0);
    described.json["log_size"]
        .as_u64()
        .unwrap_or_else(|| panic!("describe: {}", described.stdout))
}

/// No process panicked and the enclave still runs.
fn no_panic(d: &mut Deployment) {
    let logs = d.stack.logs();
    assert!(!logs.contains("panicked"), "a process panicked:\n{logs}");
    if let Some(enclave) = d.stack.enclave.as_mut() {
        assert!(enclave.is_running(), "the enclave exited:\n{logs}");
    }
}

fn is_signed(frame: &Frame) -> bool {
    frame.from == Side::Client
        && matches!(
            frame.decode::<EnclaveRequest>().map(|e| e.body),
            Some(EnclaveRequest::Signed { .. })
        )
}

/// The API replies the enclave sent for request `id` on `connection`.
fn replies(frames: &[Frame], connection: u64, id: u64) -> Vec<(u16, Value)> {
    frames
        .iter()
        .filter(|f| f.from == Side::Server && f.connection == connection)
        .filter_map(|f| f.decode::<EnclaveResponse>())
        .filter(|e| e.id == id)
        .filter_map(|e| match e.body {
            EnclaveResponse::Api { status, body, .. } => {
                Some((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
            }
            _ => None,
        })
        .collect()
}

/// Sends `body` to the enclave on a connection of the parent's own and decodes the answer.
fn inject(h: &HostileDeployment, body: &[u8]) -> Option<EnclaveResponse> {
    h.api
        .send(body, Duration::from_secs(10))
        .and_then(|reply| ea_protocol::decode_message::<EnclaveResponse>(&reply).ok())
        .map(|e| e.body)
}

fn api_code(response: &Option<EnclaveResponse>) -> (u16, String) {
    match response {
        Some(EnclaveResponse::Api { status, body, .. }) => {
            let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let code = body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (*status, code)
        }
        other => panic!("expected an API answer, got {other:?}"),
    }
}

#[test]
fn any_byte_flipped_between_proxy_and_enclave_is_refused_never_a_different_request() {
    let h = HostileDeployment::start(&["admin"], policy(), &[], &[]);
    let d = &h.deployment;
    let signed = d.sign("admin", &create_principal("flipped"), now_ms());
    let frame = message(
        7,
        &EnclaveRequest::Signed {
            request: ByteBuf::from(signed.clone()),
        },
    );
    let before = log_size(d);
    let mut refusals = std::collections::BTreeMap::<String, u32>::new();
    // Every byte of the frame in turn (envelope, message kind, the signed request and its
    // signature), one bit flipped, sent by the parent on a connection of its own.
    for position in 0..frame.len() {
        let mut altered = frame.clone();
        altered[position] ^= 0x04;
        let answer = inject(&h, &altered);
        let still_the_request =
            ea_protocol::decode_message::<EnclaveRequest>(&altered).is_ok_and(|e| {
                e.body
                    == EnclaveRequest::Signed {
                        request: ByteBuf::from(signed.clone()),
                    }
            });
        let outcome = match &answer {
            // The connection was closed: the frame could not be read at all.
            None => "connection closed".to_owned(),
            Some(EnclaveResponse::Error(error)) => {
                assert!(
                    matches!(
                        error.code,
                        ErrorCode::MalformedFrame
                            | ErrorCode::MalformedMessage
                            | ErrorCode::UnknownMessage
                            | ErrorCode::UnsupportedVersion
                    ),
                    "byte {position}: {error}"
                );
                error.code.as_str().to_owned()
            }
            Some(EnclaveResponse::Api { .. }) => {
                let (status, code) = api_code(&answer);
                // Only a flip outside the signed request (the request id) leaves it intact;
                // then it is the same request: applied once, a replay after that.
                if status == 200 || code == "replayed_request" {
                    assert!(
                        still_the_request,
                        "byte {position}: a changed request was accepted ({status} {code})"
                    );
                } else {
                    assert!(
                        matches!(status, 400 | 401),
                        "byte {position}: {status} {code}"
                    );
                }
                format!("{status} {code}")
            }
            Some(other) => panic!("byte {position}: unexpected answer {other:?}"),
        };
        *refusals.entry(outcome).or_default() += 1;
    }
    eprintln!("outcomes of {} flipped frames: {refusals:?}", frame.len());
    // The signed request itself was never altered into something accepted: at most the one
    // intact request (flipped id) was applied, once.
    let after = log_size(d);
    assert!(after - before <= 1, "{before} -> {after}");
    let accepted = principals(d).contains(&"flipped".to_owned());
    assert_eq!(accepted, after - before == 1);
    let mut d = h.deployment;
    no_panic(&mut d);
    d.govctl("admin", &["principal", "create", "after-flips"])
        .expect(0);
    check_after_faults(&d, "admin", &[]);
}

#[test]
fn truncated_duplicated_reordered_and_delayed_frames() {
    let h = HostileDeployment::start(&["admin"], policy(), &[], &["--request-timeout-ms", "2000"]);

    // Truncated: the enclave closes the connection; the client gets a retryable error, the
    // change is not made, and the proxy reconnects.
    let mut armed = true;
    h.api.set(move |frame| {
        if armed && is_signed(frame) {
            armed = false;
            return Action::Truncate(frame.body.len() / 2);
        }
        Action::Forward
    });
    let gov = h
        .deployment
        .govctl("admin", &["principal", "create", "truncated"]);
    assert_eq!(gov.code, Some(1), "{}", gov.stderr);
    assert!(
        matches!(gov.error_code().as_str(), "enclave_unavailable" | "timeout"),
        "{}",
        gov.stderr
    );
    h.api.faithful();
    assert!(!principals(&h.deployment).contains(&"truncated".to_owned()));
    h.deployment
        .govctl("admin", &["principal", "create", "after-truncation"])
        .expect(0);

    // Duplicated: the enclave applies the request once and refuses the copy as a replay.
    h.api.forget();
    let mut armed = true;
    h.api.set(move |frame| {
        if armed && is_signed(frame) {
            armed = false;
            return Action::Duplicate;
        }
        Action::Forward
    });
    let before = log_size(&h.deployment);
    // Which of the two answers reaches the proxy first is a race: a parent that duplicates
    // can show the client the refusal of the copy. The log says what happened.
    let gov = h
        .deployment
        .govctl("admin", &["principal", "create", "duplicated"]);
    assert!(
        gov.code == Some(0) || gov.error_code() == "replayed_request",
        "{gov:?}"
    );
    h.api.faithful();
    assert!(principals(&h.deployment).contains(&"duplicated".to_owned()));
    let seen = h.api.seen();
    let first = seen.iter().find(|f| is_signed(f)).expect("the request");
    let id = first.decode::<EnclaveRequest>().expect("decodes").id;
    let mut answers = replies(&seen, first.connection, id);
    answers.sort_by_key(|(status, _)| *status);
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0].0, 200, "{answers:?}");
    assert_eq!(answers[1].0, 409, "{answers:?}");
    assert_eq!(answers[1].1["error"]["code"], "replayed_request");
    // One record for the one change (the describe and read requests write none).
    assert_eq!(log_size(&h.deployment), before + 1);

    // Reordered: the first of two requests is held back until the second has passed.
    let mut armed = true;
    h.api.set(move |frame| {
        if armed && is_signed(frame) {
            armed = false;
            return Action::HoldUntilNext;
        }
        Action::Forward
    });
    let d = &h.deployment;
    std::thread::scope(|scope| {
        let first = scope.spawn(|| d.govctl("admin", &["principal", "create", "reordered-1"]));
        std::thread::sleep(Duration::from_millis(300));
        let second = scope.spawn(|| d.govctl("admin", &["principal", "create", "reordered-2"]));
        first.join().expect("first").expect(0);
        second.join().expect("second").expect(0);
    });
    h.api.faithful();

    // Delayed within the proxy's timeout: slower, nothing else.
    h.api.set(|frame| match frame.from {
        Side::Client => Action::Delay(Duration::from_millis(400)),
        Side::Server => Action::Forward,
    });
    let started = Instant::now();
    h.deployment
        .govctl("admin", &["principal", "create", "delayed"])
        .expect(0);
    assert!(started.elapsed() >= Duration::from_millis(400));

    // Delayed past it: the client gets 504 and cannot know; the change may still be made,
    // and then it is in the log like any other (the retry says it exists).
    h.api.set(|frame| {
        if is_signed(frame) {
            Action::Delay(Duration::from_millis(3000))
        } else {
            Action::Forward
        }
    });
    let gov = h
        .deployment
        .govctl("admin", &["principal", "create", "late"]);
    assert_eq!(gov.code, Some(1), "{}", gov.stderr);
    assert_eq!(gov.error_code(), "timeout", "{}", gov.stderr);
    h.api.faithful();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !principals(&h.deployment).contains(&"late".to_owned()) {
        assert!(
            Instant::now() < deadline,
            "the delayed request never arrived"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let retry = h
        .deployment
        .govctl("admin", &["principal", "create", "late"]);
    assert_eq!(retry.code, Some(3), "{}", retry.stdout);

    let mut d = h.deployment;
    no_panic(&mut d);
    check_after_faults(&d, "admin", &[]);
}

#[test]
fn replayed_frames_are_refused_even_after_the_enclave_restarts() {
    let mut h = HostileDeployment::start(&["admin"], policy(), &[], &[]);
    h.api.forget();
    h.deployment
        .govctl("admin", &["principal", "create", "once"])
        .expect(0);
    h.deployment.govctl("admin", &["read", "state"]).expect(0);
    let recorded: Vec<Vec<u8>> = h
        .api
        .seen()
        .into_iter()
        .filter(is_signed)
        .map(|f| f.body)
        .collect();
    assert_eq!(recorded.len(), 2, "a change and a read");
    let before = log_size(&h.deployment);

    let replay = |h: &HostileDeployment, frames: &[Vec<u8>]| {
        for frame in frames {
            let answer = inject(h, frame);
            assert_eq!(
                api_code(&answer),
                (409, "replayed_request".to_owned()),
                "{answer:?}"
            );
        }
    };
    replay(&h, &recorded);
    // The genesis, replayed: there is one already.
    let genesis =
        std::fs::read(h.deployment.stack.dir.path().join("genesis.json")).expect("the genesis");
    let answer = inject(
        &h,
        &message(
            9,
            &EnclaveRequest::Genesis {
                document: ByteBuf::from(genesis),
            },
        ),
    );
    let (status, _) = api_code(&answer);
    assert_eq!(status, 409, "{answer:?}");

    // A new enclave run rebuilds its replay cache from the log: the change is still refused.
    // (The read is not in the log: replayed to a new run, it is answered again, with what
    // the parent saw answered the first time, as of now; docs/security.md.)
    h.deployment.stack.kill_enclave();
    h.deployment.stack.start_enclave();
    h.deployment.wait_serving(Duration::from_secs(30));
    let restarted = log_size(&h.deployment);
    replay(&h, &recorded[..1]);
    assert_eq!(log_size(&h.deployment), restarted);
    assert!(restarted > before, "the restart is recorded");

    let mut d = h.deployment;
    no_panic(&mut d);
    check_after_faults(&d, "admin", &[]);
}

fn is_appended(frame: &Frame) -> bool {
    frame.from == Side::Server
        && matches!(
            frame.decode::<StoreResponse>().map(|e| e.body),
            Some(StoreResponse::Appended { .. })
        )
}

#[test]
fn withheld_acknowledgements_are_never_taken_for_durability() {
    let h = HostileDeployment::start(&["admin"], policy(), &["--store-timeout-ms", "1500"], &[]);
    h.store.set(|frame| {
        if is_appended(frame) {
            Action::Drop
        } else {
            Action::Forward
        }
    });
    // The store wrote the record but the enclave never heard: the client is not told it
    // is done.
    let gov = h
        .deployment
        .govctl("admin", &["principal", "create", "withheld"]);
    assert_eq!(gov.code, Some(1), "{}", gov.stderr);
    assert!(
        matches!(gov.error_code().as_str(), "not_durable" | "recovering"),
        "{}",
        gov.stderr
    );
    h.store.faithful();
    h.deployment.wait_serving(Duration::from_secs(30));
    // The enclave rebuilt its state from the log, which holds the record: the change is
    // there, as the log says.
    assert!(principals(&h.deployment).contains(&"withheld".to_owned()));
    h.deployment
        .govctl("admin", &["principal", "create", "after-withholding"])
        .expect(0);
    let mut d = h.deployment;
    no_panic(&mut d);
    check_after_faults(&d, "admin", &[]);
}

#[test]
fn a_forged_acknowledgement_is_caught_and_the_receipt_proves_it() {
    let h = HostileDeployment::start(&["admin"], policy(), &[], &[]);
    // The parent drops one append and answers "durable" itself.
    let mut armed = true;
    h.store.set(move |frame| {
        if !armed || frame.from != Side::Client {
            return Action::Forward;
        }
        match frame.decode::<StoreRequest>() {
            Some(envelope) => match envelope.body {
                StoreRequest::Append {
                    first_index,
                    records,
                    ..
                } => {
                    armed = false;
                    let size = first_index + records.len() as u64;
                    Action::Answer(message(envelope.id, &StoreResponse::Appended { size }))
                }
                _ => Action::Forward,
            },
            None => Action::Forward,
        }
    });
    // The enclave cannot tell at once: the client holds a valid receipt.
    let receipt = h.deployment.stack.dir.path().join("forged-reply.json");
    let receipt_arg = receipt.display().to_string();
    h.deployment
        .govctl(
            "admin",
            &[
                "principal",
                "create",
                "forged",
                "--receipt-out",
                &receipt_arg,
            ],
        )
        .expect(0);

    // The next append does not fit the store's log: the enclave rebuilds from the log,
    // finds it shorter than what it acknowledged, and refuses to go on (it would fork).
    // A client that remembers the acknowledged tree sees the store's log is shorter and
    // sends nothing (exit 4); one without that memory sends, and the enclave refuses.
    let remembered = h
        .deployment
        .govctl("admin", &["principal", "create", "next"]);
    assert_eq!(remembered.code, Some(4), "{}", remembered.stderr);
    assert!(
        remembered.stderr.contains("rolled back or forked"),
        "{}",
        remembered.stderr
    );
    let next = h.deployment.govctl(
        "admin",
        &["principal", "create", "next", "--dangerous-skip-receipts"],
    );
    assert_eq!(next.code, Some(1), "{}", next.stderr);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let health = std::process::Command::new(binaries().path("govctl"))
            .args(["health", "--endpoint", &h.deployment.stack.url])
            .output()
            .expect("govctl health");
        let text = String::from_utf8_lossy(&health.stdout).into_owned()
            + &String::from_utf8_lossy(&health.stderr);
        if text.contains("forged an acknowledgement") {
            assert!(!health.status.success());
            break;
        }
        assert!(Instant::now() < deadline, "health never said why: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let refused = h.deployment.govctl(
        "admin",
        &[
            "principal",
            "create",
            "refused",
            "--dangerous-skip-receipts",
        ],
    );
    assert_eq!(refused.code, Some(1));
    assert_eq!(refused.error_code(), "recovering", "{}", refused.stderr);

    // The auditor: the log verifies on its own, but not with the client's receipt.
    let audit = h.deployment.stack.dir.path().join("audit");
    let fetched = std::process::Command::new(binaries().path("govctl"))
        .args([
            "audit",
            "fetch",
            "--endpoint",
            &h.deployment.stack.url,
            "--out",
        ])
        .arg(&audit)
        .output()
        .expect("govctl audit fetch");
    assert!(fetched.status.success(), "{fetched:?}");
    let verify = |receipts: &[&std::path::Path]| {
        let mut command = std::process::Command::new(binaries().path("govctl"));
        command
            .args(["audit", "verify"])
            .arg(&audit)
            .arg("--root")
            .arg(h.deployment.stack.mock_root())
            .arg("--pcrs")
            .arg(h.deployment.measurements());
        for receipt in receipts {
            command.arg("--receipt").arg(receipt);
        }
        command.output().expect("govctl audit verify")
    };
    assert!(verify(&[]).status.success());
    let caught = verify(&[&receipt]);
    assert_eq!(caught.status.code(), Some(1), "{caught:?}");
    let stderr = String::from_utf8_lossy(&caught.stderr);
    assert!(
        stderr.contains("acknowledged records are missing"),
        "{stderr}"
    );
    let mut d = h.deployment;
    no_panic(&mut d);
}

/// Copies the store files of `from` (a SQLite file and its journal) over those of `to`. Only
/// while no proxy has them open.
fn copy_store(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for file in ["log.sqlite", "log.sqlite-wal", "log.sqlite-shm"] {
        // A journal left from the other copy would be replayed onto this one.
        std::fs::remove_file(to.join(file)).ok();
        if from.join(file).exists() {
            std::fs::copy(from.join(file), to.join(file)).unwrap();
        }
    }
}

/// The root hash, in hex, of a signed checkpoint note.
fn root_of(note: &str) -> String {
    let (_, checkpoint) = ea_audit::checkpoint::parse_unverified(note).unwrap();
    checkpoint.root.to_hex()
}

#[test]
fn a_second_enclave_with_the_same_kms_key_cannot_lead_a_running_one_onto_its_branch() {
    // With the log key sealed through KMS, every enclave of the image gets the same key. A
    // parent can run a second enclave on a copy of its store: that enclave writes its own
    // records there, signed with the same key, so the copy becomes another branch of the
    // log that verifies. The parent then fails the running enclave's next append and, when
    // it rebuilds its state, serves it that branch, as long as the log it acknowledged.
    let (mut h, kms) = HostileDeployment::start_with_kms(&["admin"], policy());
    let dir = h.deployment.stack.dir.path().to_owned();
    h.deployment
        .govctl("admin", &["principal", "create", "before-the-copy"])
        .expect(0);

    // The parent copies its store as it stands.
    h.deployment.stack.kill_proxy();
    copy_store(&dir, &dir.join("copy"));
    h.deployment.stack.restart_proxy();

    // The running enclave acknowledges one more change: the log it vouches for ends there.
    let receipt = dir.join("ours.json");
    h.deployment
        .govctl(
            "admin",
            &[
                "principal",
                "create",
                "ours",
                "--receipt-out",
                receipt.to_str().unwrap(),
            ],
        )
        .expect(0);
    let acknowledged = log_size(&h.deployment);
    let reply: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    let ours = root_of(
        reply["records"][0]["receipt"]["checkpoint"]
            .as_str()
            .unwrap(),
    );

    // The parent puts the copy back and starts a second enclave of the same image on it:
    // KMS releases the same log key, and its `enclave_start` record, signed with that key,
    // takes the index the running enclave gave to "ours".
    h.deployment.stack.kill_proxy();
    copy_store(&dir.join("copy"), &dir);
    h.deployment.stack.restart_proxy();
    let second_log = dir.join("second-enclave.log");
    let mut argv: Vec<String> = vec![
        "--listen".into(),
        format!("unix:{}", dir.join("second-enclave.sock").display()),
        "--nsm".into(),
        "mock".into(),
        "--mock-ca-dir".into(),
        h.deployment.stack.mock_ca_dir().display().to_string(),
        "--store".into(),
        format!("unix:{}", dir.join("store.sock").display()),
    ];
    argv.extend(kms.enclave_args());
    let second = ea_tests::Process::spawn(&binaries().path("enclave-app"), &argv, &second_log);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&second_log)
        .unwrap_or_default()
        .contains("log recovered")
    {
        assert!(
            Instant::now() < deadline,
            "the second enclave did not start:\n{}",
            h.deployment.stack.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    second.kill();

    // The parent fails the running enclave's next append; the enclave rebuilds from the
    // store, which now holds the other branch, exactly as long as what it acknowledged.
    let mut armed = true;
    h.store.set(move |frame| {
        if armed && frame.from == Side::Client {
            if let Some(envelope) = frame.decode::<StoreRequest>() {
                if matches!(envelope.body, StoreRequest::Append { .. }) {
                    armed = false;
                    let refusal =
                        ea_protocol::ErrorReply::new(ErrorCode::StorageFailed, "disk full");
                    return Action::Answer(message(envelope.id, &StoreResponse::Error(refusal)));
                }
            }
        }
        Action::Forward
    });
    h.store.forget();
    // A client that saw the first branch refuses the store's other branch before sending
    // (exit 4); one without that memory sends, and the enclave refuses.
    let remembered = h
        .deployment
        .govctl("admin", &["principal", "create", "refused-append"]);
    assert_eq!(remembered.code, Some(4), "{}", remembered.stderr);
    assert!(
        remembered.stderr.contains("rolled back or forked"),
        "{}",
        remembered.stderr
    );
    let gov = h.deployment.govctl(
        "admin",
        &[
            "principal",
            "create",
            "refused-append",
            "--dangerous-skip-receipts",
        ],
    );
    assert_eq!(gov.code, Some(1), "{}", gov.stderr);

    // The enclave refuses the branch: phase `failed`, naming the size and both roots.
    let deadline = Instant::now() + Duration::from_secs(30);
    let described = loop {
        let described = h.deployment.govctl("admin", &["describe"]).json;
        if described["phase"] == "failed" {
            break described;
        }
        if Instant::now() > deadline {
            let adopted = h
                .deployment
                .govctl("admin", &["principal", "create", "on-their-branch"]);
            panic!(
                "the enclave did not refuse the other branch: {described}\n\
                 a change after the rebuild: exit {:?} {}\n{}",
                adopted.code,
                adopted.stderr,
                h.deployment.stack.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let error = described["error"].as_str().unwrap_or_default();
    let theirs = h
        .store
        .seen()
        .iter()
        .filter_map(|f| f.decode::<StoreResponse>())
        .find_map(|e| match e.body {
            StoreResponse::Checkpoints { checkpoints } => checkpoints
                .into_iter()
                .find(|(size, _)| *size == acknowledged)
                .map(|(_, note)| root_of(&note)),
            _ => None,
        })
        .expect("the enclave read the other branch's checkpoint");
    assert_ne!(ours, theirs);
    for expected in [&format!("size {acknowledged}"), &ours, &theirs] {
        assert!(error.contains(expected.as_str()), "{expected} in {error}");
    }
    let health = std::process::Command::new(binaries().path("govctl"))
        .args(["health", "--endpoint", &h.deployment.stack.url])
        .output()
        .unwrap();
    assert!(!health.status.success());
    let refused = h.deployment.govctl(
        "admin",
        &[
            "principal",
            "create",
            "after-the-fork",
            "--dangerous-skip-receipts",
        ],
    );
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);

    // Nothing written after the refused append.
    let appends = h
        .store
        .seen()
        .iter()
        .filter(|f| {
            matches!(
                f.decode::<StoreRequest>().map(|e| e.body),
                Some(StoreRequest::Append { .. } | StoreRequest::PutSealedKey { .. })
            )
        })
        .count();
    assert_eq!(appends, 1, "only the append the parent refused");
    let mut d = h.deployment;
    no_panic(&mut d);
}

#[test]
fn forged_store_answers_are_refused() {
    let mut h = HostileDeployment::start(&["admin"], policy(), &[], &[]);
    for i in 0..3 {
        h.deployment
            .govctl("admin", &["principal", "create", &format!("p{i}")])
            .expect(0);
    }
    let size = log_size(&h.deployment);

    // An acknowledgement of another size than the append's: not taken for durability.
    h.store.set(|frame| {
        if frame.from == Side::Server {
            if let Some(envelope) = frame.decode::<StoreResponse>() {
                if let StoreResponse::Appended { size } = envelope.body {
                    return Action::Replace(message(
                        envelope.id,
                        &StoreResponse::Appended { size: size + 5 },
                    ));
                }
            }
        }
        Action::Forward
    });
    let gov = h
        .deployment
        .govctl("admin", &["principal", "create", "wrong-size"]);
    assert_eq!(gov.code, Some(1), "{}", gov.stderr);
    h.store.faithful();
    h.deployment.wait_serving(Duration::from_secs(30));

    // Records altered on their way back to a starting enclave: it refuses the log and names
    // the record; nothing is written.
    let failed = refused_at_start(&mut h, |envelope| match envelope.body {
        StoreResponse::Records { from, mut records } => {
            if let Some(last) = records.last_mut() {
                let middle = last.len() / 2;
                last[middle] ^= 0x01;
            }
            Some(StoreResponse::Records { from, records })
        }
        _ => None,
    });
    assert!(failed.contains("record"), "{failed}");

    // A checkpoint altered: its signature does not verify.
    let failed = refused_at_start(&mut h, |envelope| match envelope.body {
        StoreResponse::Checkpoints { mut checkpoints } => {
            if let Some((_, note)) = checkpoints.last_mut() {
                // One character of the signature itself (after the key id) in the last line.
                if let Some(at) = note.rfind(' ').map(|space| space + 12) {
                    let flipped = if &note[at..=at] == "A" { "B" } else { "A" };
                    note.replace_range(at..=at, flipped);
                }
            }
            Some(StoreResponse::Checkpoints { checkpoints })
        }
        _ => None,
    });
    assert!(failed.contains("signature"), "{failed}");

    // A log cut short: the last record is withheld, but a checkpoint covers it.
    let failed = refused_at_start(&mut h, |envelope| match envelope.body {
        StoreResponse::Head { size, checkpoint } => Some(StoreResponse::Head {
            size: size - 1,
            checkpoint,
        }),
        StoreResponse::Records { from, mut records } => {
            records.pop();
            Some(StoreResponse::Records { from, records })
        }
        _ => None,
    });
    assert!(failed.contains("the log has only"), "{failed}");

    // The parent relays faithfully again: a new run verifies the log and serves it, with
    // nothing lost and nothing added by the failed runs.
    h.deployment.stack.kill_enclave();
    h.store.faithful();
    h.deployment.stack.start_enclave();
    h.deployment.wait_serving(Duration::from_secs(30));
    let names = principals(&h.deployment);
    for i in 0..3 {
        assert!(names.contains(&format!("p{i}")));
    }
    assert!(log_size(&h.deployment) >= size);
    let mut d = h.deployment;
    no_panic(&mut d);
    check_after_faults(&d, "admin", &[]);
}

/// Restarts the enclave with the store's answers rewritten by `forge` (`None`: unchanged),
/// waits until it refuses the log, and returns the error it describes. Nothing is written
/// meanwhile: the store's size does not change.
fn refused_at_start(
    h: &mut HostileDeployment,
    mut forge: impl FnMut(ea_protocol::Envelope<StoreResponse>) -> Option<StoreResponse>
        + Send
        + 'static,
) -> String {
    h.deployment.stack.kill_enclave();
    h.store.set(move |frame| {
        if frame.from == Side::Server {
            if let Some(envelope) = frame.decode::<StoreResponse>() {
                let id = envelope.id;
                if let Some(forged) = forge(envelope) {
                    return Action::Replace(message(id, &forged));
                }
            }
        }
        Action::Forward
    });
    h.store.forget();
    h.deployment.stack.start_enclave();
    let deadline = Instant::now() + Duration::from_secs(30);
    let described = loop {
        let output = std::process::Command::new(binaries().path("govctl"))
            .args(["describe", "--endpoint", &h.deployment.stack.url])
            .output()
            .expect("govctl describe");
        let json: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        if json["phase"] == "failed" {
            break json;
        }
        assert!(
            Instant::now() < deadline,
            "the enclave never refused: {json}\n{}",
            h.deployment.stack.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let appends = h
        .store
        .seen()
        .iter()
        .filter(|f| {
            matches!(
                f.decode::<StoreRequest>().map(|e| e.body),
                Some(StoreRequest::Append { .. } | StoreRequest::PutSealedKey { .. })
            )
        })
        .count();
    assert_eq!(appends, 0, "a refusing enclave wrote to the store");
    described["error"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn govctl_refuses_answers_the_parent_rewrote_around_genuine_receipts() {
    // The answer's JSON crosses the parent as it is; only its records are proven. A parent
    // that rewrites the answer (a refusal into a success), corrupts a record, or hands back
    // another request's answer must not get govctl to print success.
    let h = HostileDeployment::start(&["admin", "outsider"], policy(), &[], &[]);
    let d = &h.deployment;
    let genuine = d
        .govctl("admin", &["principal", "create", "genuine"])
        .expect(0);
    assert!(
        genuine.stderr.contains("receipt verified"),
        "{}",
        genuine.stderr
    );

    // Rewrites the body of every API answer from the enclave with `forge`.
    let rewrite = |forge: fn(&mut Value) -> bool| {
        h.api.set(move |frame| {
            if frame.from == Side::Server {
                if let Some(envelope) = frame.decode::<EnclaveResponse>() {
                    if let EnclaveResponse::Api {
                        body, signature, ..
                    } = &envelope.body
                    {
                        let mut json: Value = serde_json::from_slice(body).unwrap();
                        if forge(&mut json) {
                            // The forger keeps the enclave's signature: it cannot make one.
                            let forged = EnclaveResponse::Api {
                                status: 200,
                                body: ByteBuf::from(serde_json::to_vec(&json).unwrap()),
                                signature: signature.clone(),
                            };
                            return Action::Replace(message(envelope.id, &forged));
                        }
                    }
                }
            }
            Action::Forward
        });
    };
    let refused = |user: &str, id: &str, why: &str| {
        let gov = d.govctl(user, &["principal", "create", id]);
        assert_ne!(gov.code, Some(0), "govctl printed success: {}", gov.stdout);
        assert!(
            gov.stderr.contains(why),
            "expected {why:?} in govctl's error: {}",
            gov.stderr
        );
        assert!(!gov.stdout.contains("\"applied\""), "{}", gov.stdout);
    };

    // The outsider's request is refused and recorded as such; the parent says "applied".
    rewrite(|json| {
        if json["result"]["outcome"] != "denied" {
            return false;
        }
        json["result"] = json!({"outcome": "applied", "command": "createPrincipal", "events": []});
        true
    });
    refused("outsider", "forged-success", "not the enclave's answer");

    // One byte of the record changed: its receipt no longer proves it.
    rewrite(|json| {
        let Some(record) = json["records"][0]["record"].as_str() else {
            return false;
        };
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        let mut bytes = engine.decode(record).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        json["records"][0]["record"] = json!(engine.encode(bytes));
        true
    });
    refused("admin", "corrupted-record", "not the enclave's answer");

    // The genuine answer to one request, handed back for the next.
    let first_answer =
        std::sync::Arc::new(std::sync::Mutex::new(None::<(Vec<u8>, Option<String>)>));
    let keep = first_answer.clone();
    h.api.set(move |frame| {
        if frame.from == Side::Server {
            if let Some(envelope) = frame.decode::<EnclaveResponse>() {
                if let EnclaveResponse::Api {
                    status: 200,
                    body,
                    signature,
                } = &envelope.body
                {
                    let mut kept = keep.lock().unwrap();
                    match kept.as_ref() {
                        None => *kept = Some((body.to_vec(), signature.clone())),
                        Some((old, old_signature)) => {
                            let replayed = EnclaveResponse::Api {
                                status: 200,
                                body: ByteBuf::from(old.clone()),
                                signature: old_signature.clone(),
                            };
                            return Action::Replace(message(envelope.id, &replayed));
                        }
                    }
                }
            }
        }
        Action::Forward
    });
    d.govctl("admin", &["principal", "create", "first"])
        .expect(0);
    refused(
        "admin",
        "second",
        "not the enclave's answer to this request",
    );

    // An honest parent again: govctl goes back to printing success.
    h.api.faithful();
    d.govctl("admin", &["principal", "create", "after-forgeries"])
        .expect(0);
}

#[test]
fn answers_without_a_record_are_proven_by_the_enclave_s_signature() {
    // Reads, checks and errors: the parent rewrites them keeping the enclave's signature
    // header (it cannot make one), or drops the header and makes up the whole answer.
    // govctl refuses each; an honest relay again gets answers it accepts.
    let h = HostileDeployment::start(&["admin", "outsider"], policy(), &[], &[]);
    let d = &h.deployment;
    d.govctl("admin", &["principal", "create", "genuine"])
        .expect(0);

    // Rewrites the status and body of the next API answer with `forge`; `keep_signature`
    // says whether the forged answer keeps the enclave's signature header.
    let rewrite = |forge: fn(u16, &mut Value) -> Option<u16>, keep_signature: bool| {
        h.api.set(move |frame| {
            if frame.from == Side::Server {
                if let Some(envelope) = frame.decode::<EnclaveResponse>() {
                    if let EnclaveResponse::Api {
                        status,
                        body,
                        signature,
                    } = &envelope.body
                    {
                        let mut json: Value = serde_json::from_slice(body).unwrap();
                        if let Some(new_status) = forge(*status, &mut json) {
                            let forged = EnclaveResponse::Api {
                                status: new_status,
                                body: ByteBuf::from(serde_json::to_vec(&json).unwrap()),
                                signature: if keep_signature {
                                    signature.clone()
                                } else {
                                    None
                                },
                            };
                            return Action::Replace(message(envelope.id, &forged));
                        }
                    }
                }
            }
            Action::Forward
        });
    };
    let refused = |gov: ea_tests::Gov, why: &str| {
        assert_ne!(gov.code, Some(0), "govctl accepted: {}", gov.stdout);
        assert!(
            gov.stderr.contains(why),
            "expected {why:?} in govctl's error: {}",
            gov.stderr
        );
    };

    // A forged read: a principal that does not exist, added to the list.
    rewrite(
        |status, json| {
            let principals = json
                .pointer_mut("/result/result/principals")?
                .as_array_mut()?;
            principals.push(json!({"id": "planted", "type": "User"}));
            Some(status)
        },
        true,
    );
    refused(
        d.govctl("admin", &["read", "principals"]),
        "not the enclave's answer",
    );

    // A check's record stripped: the answer alone, as if decision logging were off.
    rewrite(
        |status, json| {
            let records = json.get_mut("records")?.as_array_mut()?;
            if records.is_empty() {
                return None;
            }
            records.clear();
            Some(status)
        },
        true,
    );
    refused(
        d.govctl(
            "admin",
            &[
                "check",
                "--principal",
                "outsider",
                "--op",
                "Microsoft.Mission/virtualEnclaves/write",
                "--scope",
                "/communities/c1",
            ],
        ),
        "not the enclave's answer",
    );

    // An error turned into a success, with the error's signature kept.
    rewrite(
        |status, json| {
            if status < 400 {
                return None;
            }
            *json = json!({"result": {"outcome": "applied", "command": "createPrincipal", "events": []}, "records": []});
            Some(200)
        },
        true,
    );
    refused(
        d.govctl("outsider", &["principal", "create", "by-the-outsider"]),
        "not the enclave's answer",
    );

    // The same success, made up without any signature.
    rewrite(
        |status, json| {
            if status < 400 {
                return None;
            }
            *json = json!({"result": {"outcome": "applied", "command": "createPrincipal", "events": []}, "records": []});
            Some(200)
        },
        false,
    );
    refused(
        d.govctl("outsider", &["principal", "create", "by-the-outsider"]),
        "carries no enclave signature",
    );
    assert!(!principals(d).contains(&"by-the-outsider".to_owned()));

    // An honest relay: the same read and check are accepted.
    h.api.faithful();
    let read = d.govctl("admin", &["read", "principals"]).expect(0);
    assert!(!read.stdout.contains("planted"), "{}", read.stdout);
    let check = d.govctl(
        "admin",
        &[
            "check",
            "--principal",
            "outsider",
            "--op",
            "Microsoft.Mission/virtualEnclaves/write",
            "--scope",
            "/communities/c1",
        ],
    );
    assert_eq!(check.code, Some(3), "{} {}", check.stdout, check.stderr);
}
