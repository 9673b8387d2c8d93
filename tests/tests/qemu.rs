//! The real enclave image, booted under QEMU's `nitro-enclave` machine through
//! `scripts/run-qemu.sh`, as a user runs it: our kernel, our init, enclave-app on the virtio
//! NSM (`/dev/nsm`), vsock through vhost-device-vsock, the log key sealed through the local
//! KMS by TLS from inside the guest via the parent's relay.
//!
//! Needs what `scripts/setup-qemu.sh` installs and builds. Without it the test prints one
//! SKIPPED line, unless `EA_REQUIRE_QEMU=1` (CI), where a missing part fails it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "end-to-end test: a failed step should fail the test loudly"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ea_tests::{binaries, workspace_root, Gov, Process};
use nix::sys::signal::Signal;

/// The parts `scripts/setup-qemu.sh --print-env` names, or why they are missing.
fn qemu_parts() -> Result<Vec<(String, String)>, String> {
    let output = Command::new("bash")
        .arg(workspace_root().join("scripts/setup-qemu.sh"))
        .arg("--print-env")
        .output()
        .map_err(|e| format!("running scripts/setup-qemu.sh --print-env: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// True when the test can run; prints SKIPPED (or fails under `EA_REQUIRE_QEMU=1`) otherwise.
fn qemu_available(test: &str) -> bool {
    match qemu_parts() {
        Ok(_) => true,
        Err(why) => {
            assert!(
                std::env::var("EA_REQUIRE_QEMU").as_deref() != Ok("1"),
                "EA_REQUIRE_QEMU=1 but QEMU's parts are missing: {why}"
            );
            println!("SKIPPED {test}: QEMU's parts are missing ({why}); run scripts/setup-qemu.sh");
            false
        }
    }
}

/// One run of `scripts/run-qemu.sh` on a state directory.
struct QemuStack {
    script: Option<Process>,
    url: String,
    dir: PathBuf,
    /// Seconds from starting the script to its "is up" block.
    up_after: Duration,
}

impl QemuStack {
    /// [`QemuStack::start`], again once if the guest's very first vsock connection (init's
    /// heartbeat) never reached the host: seen once in a CI dry run, on the fifth boot of the
    /// test, with every host-side socket listening (vhost-device-vsock 0.3.0; docs/qemu.md).
    /// Nothing is written before that heartbeat, so a second boot tests the same thing.
    fn start_serving(dir: &Path, port: &str, extra_env: &[(&str, &str)]) -> QemuStack {
        match QemuStack::start(dir, port, extra_env) {
            Ok(stack) => stack,
            Err(why) if why.contains("heartbeat to the parent") => {
                println!("the guest's heartbeat never reached the host; booting once more:\n{why}");
                QemuStack::start(dir, port, extra_env).unwrap_or_else(|e| panic!("{e}"))
            }
            Err(why) => panic!("{why}"),
        }
    }

    /// Starts the script and waits for its endpoint line; `extra_env` adds variables.
    fn start(dir: &Path, port: &str, extra_env: &[(&str, &str)]) -> Result<QemuStack, String> {
        let mut env = vec![("EA_PORT", port), ("EA_QEMU_DIR", dir.to_str().unwrap())];
        env.extend_from_slice(extra_env);
        let started = Instant::now();
        // Through `env --default-signal=INT`, as run_local.rs explains: a background process
        // of a non-interactive shell inherits SIGINT ignored, and bash could not trap it.
        let mut script = Process::spawn_with_env(
            Path::new("env"),
            &[
                "--default-signal=INT".to_owned(),
                "bash".to_owned(),
                workspace_root()
                    .join("scripts/run-qemu.sh")
                    .display()
                    .to_string(),
            ],
            &env,
            &dir.join("script.log"),
        );
        match script.try_wait_for_stdout_line("endpoint: ") {
            Some(url) => Ok(QemuStack {
                script: Some(script),
                url,
                dir: dir.to_owned(),
                up_after: started.elapsed(),
            }),
            None => {
                let code = script.wait_exit(Duration::from_secs(30));
                Err(format!(
                    "run-qemu.sh exited ({code:?}) before it was up; its stderr:\n{}",
                    std::fs::read_to_string(dir.join("script.log")).unwrap_or_default()
                ))
            }
        }
    }

    /// Runs govctl against this stack, as the admin, with its trust file.
    fn govctl(&self, identity: &str, args: &[&str]) -> Gov {
        let identity = if identity.contains('/') {
            PathBuf::from(identity)
        } else {
            self.dir.join(format!("{identity}.identity.json"))
        };
        let output = Command::new(binaries().path("govctl"))
            .args(args)
            .current_dir(&self.dir)
            .env("GOVCTL_ENDPOINT", &self.url)
            .env("GOVCTL_IDENTITY", identity)
            .env("GOVCTL_TRUST", self.dir.join("trust.json"))
            .output()
            .expect("running govctl");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        Gov {
            code: output.status.code(),
            json: serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null),
            stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Ctrl-C, and waits for the script (and so QEMU and every process) to stop.
    fn stop(mut self) {
        let script = self.script.take().unwrap();
        script.signal(Signal::SIGINT);
        assert!(
            script.wait_exit(Duration::from_secs(60)).is_some(),
            "run-qemu.sh did not stop on Ctrl-C"
        );
    }
}

/// Prints the tail of the guest's console and of the stack's logs when the test fails.
struct ConsoleOnFailure(PathBuf);

impl Drop for ConsoleOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for log in ["console.log", "proxy.log", "kms.log", "script.log"] {
                let text = std::fs::read_to_string(self.0.join(log)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("--- last lines of {log} ---");
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

fn free_port() -> String {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port().to_string()
}

fn pcrs_of(json: &serde_json::Value) -> Vec<(String, String)> {
    ["PCR0", "PCR1", "PCR2"]
        .iter()
        .map(|name| {
            let value = json[*name]
                .as_str()
                .unwrap_or_else(|| panic!("{name} missing in {json}"));
            ((*name).to_owned(), value.to_ascii_lowercase())
        })
        .collect()
}

/// The PCRs AWS's own image-format crate computes for the image (eif/crosscheck).
fn crosscheck_pcrs(eif: &Path) -> serde_json::Value {
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("crosscheck");
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["run", "--quiet", "--locked", "--manifest-path"])
        .arg(root.join("eif/crosscheck/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .arg("--")
        .arg(eif)
        .output()
        .expect("running eif-crosscheck");
    assert!(
        output.status.success(),
        "eif-crosscheck failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("eif-crosscheck prints JSON")
}

#[test]
fn the_real_image_boots_under_qemu_serves_and_keeps_its_log_and_key() {
    if !qemu_available("the_real_image_boots_under_qemu_serves_and_keeps_its_log_and_key") {
        return;
    }
    binaries(); // build first, so the script's own build is a quick no-op
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("stack");
    std::fs::create_dir_all(&dir).unwrap();
    let _console = ConsoleOnFailure(dir.clone());
    let port = free_port();

    // --- First boot: genesis, then the whole API through the real image. -----------------
    let stack = QemuStack::start_serving(&dir, &port, &[]);
    println!(
        "first start: up after {:.1} s (includes building the image)",
        stack.up_after.as_secs_f64()
    );
    let describe = stack.govctl("admin", &["describe"]).expect(0);
    assert_eq!(describe.json["phase"], "serving", "{}", describe.stdout);
    assert_eq!(
        describe.json["nsm"], "device-insecure-qemu",
        "{}",
        describe.stdout
    );
    let log_key = describe.json["log_key"].clone();
    assert!(
        !log_key.is_null(),
        "describe names the log key: {}",
        describe.stdout
    );

    // The three PCR computations agree: govctl's, AWS's crate's, and the booted enclave's.
    let eif = dir.join("eif/enclave.eif");
    let ours = stack
        .govctl("admin", &["eif", "pcrs", eif.to_str().unwrap()])
        .expect(0);
    let aws = crosscheck_pcrs(&eif);
    assert_eq!(aws["CrcOk"], true, "{aws}");
    assert_eq!(
        pcrs_of(&ours.json),
        pcrs_of(&aws),
        "govctl and aws-nitro-enclaves-image-format"
    );
    let pcrs_file = dir.join("pcrs.json");
    let fetched = stack
        .govctl(
            "admin",
            &[
                "attestation",
                "fetch",
                "--pcrs",
                pcrs_file.to_str().unwrap(),
                "--insecure-qemu-attestation",
            ],
        )
        .expect(0);
    assert!(
        fetched.stderr.contains("insecure") || fetched.stderr.contains("INSECURE"),
        "the insecure mode warns: {}",
        fetched.stderr
    );
    let doc_pcrs = &fetched.json["pcrs"];
    for (name, value) in pcrs_of(&ours.json) {
        let index = &name[3..];
        assert_eq!(
            doc_pcrs[index]
                .as_str()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some(value.as_str()),
            "{name} in the booted enclave's attestation document: {}",
            fetched.stdout
        );
    }
    // Without the flag the same document is refused, by name.
    let refused = stack.govctl(
        "admin",
        &[
            "attestation",
            "fetch",
            "--pcrs",
            pcrs_file.to_str().unwrap(),
        ],
    );
    assert_ne!(refused.code, Some(0), "{}", refused.stdout);
    assert!(refused.stderr.contains("unsigned"), "{}", refused.stderr);

    // A change, then an approval flow whose records carry the virtio NSM's documents.
    stack
        .govctl(
            "admin",
            &[
                "enclave",
                "create",
                "/communities/c1/virtualEnclaves/e1",
                "--address-space",
                "10.1.0.0/16",
            ],
        )
        .expect(0);
    for user in ["alice", "expert"] {
        stack
            .govctl(
                "admin",
                &[
                    "keygen",
                    "--principal",
                    user,
                    "--out",
                    &format!("{user}.identity.json"),
                    "--public-out",
                    &format!("{user}.pub"),
                ],
            )
            .expect(0);
        stack
            .govctl(
                "admin",
                &["principal", "create", user, "--key", &format!("{user}.pub")],
            )
            .expect(0);
    }
    stack
        .govctl(
            "admin",
            &[
                "role",
                "assign",
                "--principal",
                "alice",
                "--role",
                "Community Contributor",
                "--scope",
                "/communities/c1",
            ],
        )
        .expect(0);
    stack
        .govctl(
            "admin",
            &[
                "role",
                "assign",
                "--principal",
                "expert",
                "--role",
                "Enclave Approver",
                "--scope",
                "/communities/c1",
            ],
        )
        .expect(0);
    std::fs::write(
        dir.join("settings.json"),
        r#"{"enclaveCreation": {"approvalPolicy": "Required", "minimumApproversRequired": 1, "mandatoryApprovers": ["expert"]}}"#,
    )
    .unwrap();
    stack
        .govctl(
            "admin",
            &[
                "approval-settings",
                "set",
                "/communities/c1",
                "--file",
                "settings.json",
            ],
        )
        .expect(0);
    let pending = stack
        .govctl(
            "alice",
            &[
                "enclave",
                "create",
                "/communities/c1/virtualEnclaves/e2",
                "--address-space",
                "10.2.0.0/16",
                "--justification",
                "team B",
            ],
        )
        .expect(0);
    assert_eq!(pending.json["outcome"], "pending", "{}", pending.stdout);
    let approval_id = pending.json["approval"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a pending approval id: {}", pending.stdout))
        .to_owned();
    let approved = stack
        .govctl(
            "expert",
            &["approvals", "approve", &approval_id, "--comment", "ok"],
        )
        .expect(0);
    assert_eq!(
        approved.json["approval"]["approvalStatus"], "Approved",
        "{}",
        approved.stdout
    );

    // A check, answered with its explanation.
    let check = stack.govctl(
        "admin",
        &[
            "check",
            "--principal",
            "alice",
            "--op",
            "Microsoft.Mission/virtualEnclaves/write",
            "--scope",
            "/communities/c1/virtualEnclaves/e3",
        ],
    );
    assert!(
        matches!(check.code, Some(0 | 3)),
        "{} {}",
        check.stdout,
        check.stderr
    );

    // The audit log verifies offline, in the same mode, and only in it.
    stack
        .govctl("admin", &["audit", "fetch", "--out", "audit"])
        .expect(0);
    let verified = stack
        .govctl(
            "admin",
            &[
                "audit",
                "verify",
                "audit",
                "--pcrs",
                pcrs_file.to_str().unwrap(),
                "--insecure-qemu-attestation",
            ],
        )
        .expect(0);
    println!("audit verify: {}", verified.stdout.trim());
    let refused = stack.govctl(
        "admin",
        &[
            "audit",
            "verify",
            "audit",
            "--pcrs",
            pcrs_file.to_str().unwrap(),
        ],
    );
    assert_ne!(refused.code, Some(0), "{}", refused.stdout);
    let size_before = stack.govctl("admin", &["describe"]).expect(0).json["log_size"].clone();
    stack.stop();

    // --- Second boot of the same image: it unseals its key through KMS and recovers. ------
    let stack = QemuStack::start_serving(&dir, &port, &[]);
    println!("restart: up after {:.1} s", stack.up_after.as_secs_f64());
    let describe = stack.govctl("admin", &["describe"]).expect(0);
    assert_eq!(describe.json["phase"], "serving", "{}", describe.stdout);
    assert_eq!(
        describe.json["log_key"], log_key,
        "the same log key, unsealed"
    );
    assert!(
        describe.json["log_size"].as_u64() > size_before.as_u64(),
        "the log continues (its new enclave_start record): {} after {}",
        describe.json["log_size"],
        size_before
    );
    stack.govctl("admin", &["read", "list"]).expect(0);
    stack
        .govctl(
            "admin",
            &[
                "enclave",
                "create",
                "/communities/c1/virtualEnclaves/e4",
                "--address-space",
                "10.4.0.0/16",
            ],
        )
        .expect(0);
    stack.stop();

    // --- An image with other PCRs (one more baked argument): the log does not admit it, so
    // it stops before asking KMS anything, and gets nothing from it. ---------------------
    let kms_log_before = std::fs::read_to_string(dir.join("kms.log")).unwrap_or_default();
    let refused = QemuStack::start(&dir, &port, &[("EA_ENCLAVE_ARGS", "--max-batch 256")]);
    let Err(why) = refused else {
        panic!("an image with other PCRs must not start on this log and key");
    };
    assert!(
        why.contains("\"phase\": \"failed\"") && why.contains("not admitted by this log"),
        "the enclave stops in failed, its image not admitted: {why}"
    );
    let kms_log = std::fs::read_to_string(dir.join("kms.log")).unwrap_or_default();
    let new_lines = kms_log.get(kms_log_before.len()..).unwrap_or_default();
    assert!(
        !new_lines
            .lines()
            .any(|line| line.contains("answered") && line.contains("Decrypt")),
        "no Decrypt was answered for the other image:\n{new_lines}"
    );
    let other_pcrs = dir.join("other-image.pcrs.json");
    std::fs::copy(dir.join("eif/pcrs.json"), &other_pcrs).unwrap();

    // --- The upgrade between two real images: the other image admitted by two owners on
    // the running first image, the key policy rewritten from the log, then the other image
    // starts on the same store, makes and seals its own log key, and serves. -----------------
    let stack = QemuStack::start_serving(&dir, &port, &[]);
    for owner in ["owner2", "owner3"] {
        stack
            .govctl(
                "admin",
                &[
                    "keygen",
                    "--principal",
                    owner,
                    "--out",
                    &format!("{owner}.identity.json"),
                    "--public-out",
                    &format!("{owner}.pub"),
                ],
            )
            .expect(0);
        stack
            .govctl(
                "admin",
                &[
                    "principal",
                    "create",
                    owner,
                    "--key",
                    &format!("{owner}.pub"),
                ],
            )
            .expect(0);
        stack
            .govctl(
                "admin",
                &[
                    "role",
                    "assign",
                    "--principal",
                    owner,
                    "--role",
                    "Owner",
                    "--scope",
                    "/",
                ],
            )
            .expect(0);
    }
    let proposed = stack
        .govctl(
            "admin",
            &[
                "image",
                "propose",
                "--pcrs",
                other_pcrs.to_str().unwrap(),
                "--justification",
                "release 2",
            ],
        )
        .expect(0);
    assert_eq!(proposed.json["outcome"], "pending", "{}", proposed.stdout);
    let image_change = proposed.json["approval"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a pending image change: {}", proposed.stdout))
        .to_owned();
    for owner in ["owner2", "owner3"] {
        stack
            .govctl(owner, &["approvals", "approve", &image_change])
            .expect(0);
    }
    stack
        .govctl("admin", &["audit", "fetch", "--out", "audit-admitted"])
        .expect(0);
    stack
        .govctl(
            "admin",
            &[
                "kms-policy",
                "--from-log",
                "audit-admitted",
                "--genesis-pcrs",
                pcrs_file.to_str().unwrap(),
                "--insecure-qemu-attestation",
                "--key-admin",
                "arn:aws:iam::111122223333:role/KeyAdmin",
                "--enclave-role",
                "arn:aws:iam::111122223333:role/EnclaveInstance",
                "--out",
                "kms-policy.json",
            ],
        )
        .expect(0);
    stack.stop();

    let stack = QemuStack::start_serving(&dir, &port, &[("EA_ENCLAVE_ARGS", "--max-batch 256")]);
    println!(
        "the admitted second image: up after {:.1} s",
        stack.up_after.as_secs_f64()
    );
    let describe = stack.govctl("admin", &["describe"]).expect(0);
    assert_eq!(describe.json["phase"], "serving", "{}", describe.stdout);
    assert_ne!(
        describe.json["log_key"], log_key,
        "the second image has a log key of its own"
    );
    let other =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&other_pcrs).unwrap())
            .unwrap();
    assert_eq!(
        describe.json["image"]["PCR0"]
            .as_str()
            .map(str::to_ascii_lowercase),
        Some(pcrs_of(&other)[0].1.clone()),
        "{}",
        describe.stdout
    );
    // Clients go on with the trust file they had.
    stack
        .govctl(
            "owner2",
            &[
                "enclave",
                "create",
                "/communities/c1/virtualEnclaves/e5",
                "--address-space",
                "10.5.0.0/16",
            ],
        )
        .expect(0);
    stack
        .govctl("admin", &["audit", "fetch", "--out", "audit-upgraded"])
        .expect(0);
    let verified = stack
        .govctl(
            "admin",
            &[
                "audit",
                "verify",
                "audit-upgraded",
                "--pcrs",
                pcrs_file.to_str().unwrap(),
                "--insecure-qemu-attestation",
            ],
        )
        .expect(0);
    assert!(
        verified.stdout.contains("image 2:")
            && verified
                .stdout
                .contains(&format!("approval {image_change}")),
        "audit verify shows both images: {}",
        verified.stdout
    );
    stack.stop();
}
