//! Faults under load, with the whole stack including the local KMS: kill -9 of the enclave,
//! of the parent-proxy and of the KMS at random points (a bounded number of rounds), and a
//! full disk on the parent's store. After each, the service comes back by itself or after a
//! restart, every change acknowledged to a client is in the log, the log verifies, and the
//! served state is the log's replay.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "end-to-end test: a failed step should fail the test loudly"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ea_tests::kms::LocalKms;
use ea_tests::load::{check_after_faults, stream, Clients};
use ea_tests::{binaries, Deployment, LocalStack};
use serde_json::json;

fn policy() -> serde_json::Value {
    json!({
        "communities": [{"id": "/communities/c1", "addressSpace": "10.0.0.0/8"}],
        "roleAssignments": [{"id": "ra-admin", "principalId": "admin",
                             "roleDefinitionId": "Owner", "scope": "/"}]
    })
}

/// A small deterministic generator, seeded from the clock (the seed is printed, so a failing
/// schedule can be replayed with FAULT_SEED).
struct Schedule(u64);

impl Schedule {
    fn new() -> Schedule {
        let seed = std::env::var("FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(ea_tests::now_ms);
        println!("fault schedule seed: {seed} (FAULT_SEED={seed} replays it)");
        Schedule(seed | 1)
    }

    fn next(&mut self, bound: u64) -> u64 {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

fn describe(d: &Deployment) -> serde_json::Value {
    let output = std::process::Command::new(binaries().path("govctl"))
        .args(["describe", "--endpoint", &d.stack.url])
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
}

#[test]
fn kill_9_of_enclave_parent_and_kms_at_random_points_under_load() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut kms = LocalKms::prepare(dir.path());
    let enclave_args = kms.enclave_args();
    let proxy_args = kms.proxy_args();
    let stack = LocalStack::start_in(
        dir,
        &enclave_args.iter().map(String::as_str).collect::<Vec<_>>(),
        &proxy_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let mut d = Deployment::on(stack, scratch, &["admin"], policy(), json!({}));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let streaming = runtime.spawn(stream(Clients::of(&d, "admin"), 8, stop.clone()));
    let mut schedule = Schedule::new();
    // Every victim at least once, in a random order, at random points.
    let mut victims = vec!["enclave", "parent", "kms"];
    for i in (1..victims.len()).rev() {
        victims.swap(i, schedule.next(i as u64 + 1) as usize);
    }
    victims.push(["enclave", "parent", "kms"][schedule.next(3) as usize]);
    for victim in victims {
        std::thread::sleep(Duration::from_millis(300 + schedule.next(900)));
        println!("kill -9 {victim}");
        match victim {
            "enclave" => {
                d.stack.kill_enclave();
                d.stack.start_enclave();
            }
            "parent" => {
                d.stack.kill_proxy();
                d.stack.restart_proxy();
            }
            _ => {
                // The KMS is needed only when the enclave starts: kill it, then restart the
                // enclave while it is down. The enclave waits for KMS (it neither serves nor
                // gives up), and serves again once KMS is back.
                kms.kill();
                d.stack.kill_enclave();
                d.stack.start_enclave();
                let deadline = Instant::now() + Duration::from_secs(3);
                while Instant::now() < deadline {
                    let description = describe(&d);
                    assert_ne!(description["phase"], "serving", "served without its key");
                    assert_ne!(description["phase"], "failed", "{description}");
                    std::thread::sleep(Duration::from_millis(200));
                }
                let description = describe(&d);
                assert!(
                    description["error"].is_null(),
                    "an outage is not a failure: {description}"
                );
                kms.start();
            }
        }
        d.wait_serving(Duration::from_secs(60));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let acknowledged = runtime.block_on(streaming).unwrap();
    assert!(
        acknowledged.len() > 20,
        "too few changes went through: {}",
        acknowledged.len()
    );
    check_after_faults(&d, "admin", &acknowledged);
}

#[test]
fn a_full_disk_on_the_parent_loses_nothing_and_the_service_comes_back() {
    // A store quota makes SQLite fail with SQLITE_FULL, exactly as a full disk does.
    let d = Deployment::start_with_proxy(
        &["admin"],
        policy(),
        json!({}),
        &[],
        &["--store-max-bytes", "262144"],
    );
    let mut d = d;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let streaming = runtime.spawn(stream(Clients::of(&d, "admin"), 4, stop.clone()));
    // Wait until the store is full: writes are refused as not durable.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let gov = d.govctl("admin", &["principal", "create", "probe-full"]);
        if gov.code == Some(1) && gov.stderr.contains("not_durable") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the store never filled: {}\n{}",
            gov.stderr,
            d.stack.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::SeqCst);
    let mut acknowledged = runtime.block_on(streaming).unwrap();
    assert!(!acknowledged.is_empty());
    // Full: writes get a clear, retryable error; what needs no writing is still answered.
    // (A read decided in the same batch as a write that fails is refused too: it may have
    // seen that write. Retried once the writes stop, it succeeds.)
    // One small record may still fit where the last, larger batch did not: write until the
    // store refuses.
    let refused = (0..20)
        .map(|i| {
            d.govctl(
                "admin",
                &["principal", "create", &format!("probe-full-{i}")],
            )
        })
        .find(|gov| gov.code != Some(0))
        .expect("a full store accepted 20 more records");
    assert_eq!(refused.code, Some(1));
    assert!(
        refused.stderr.contains("out of space"),
        "{}",
        refused.stderr
    );
    d.wait_serving(Duration::from_secs(30));
    d.govctl("admin", &["read", "get", "/communities/c1"])
        .expect(0);
    d.govctl("admin", &["describe"]).expect(0);

    // More space (the quota raised, as an operator would free the disk): writes resume.
    d.stack.kill_proxy();
    d.stack
        .restart_proxy_with(&["--store-max-bytes", "67108864"]);
    d.wait_serving(Duration::from_secs(60));
    let stop = Arc::new(AtomicBool::new(false));
    let streaming = runtime.spawn(stream(Clients::of(&d, "admin"), 4, stop.clone()));
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    let after = runtime.block_on(streaming).unwrap();
    assert!(
        !after.is_empty(),
        "writes resume once there is space\n{}",
        d.stack.logs()
    );
    acknowledged.extend(after);
    check_after_faults(&d, "admin", &acknowledged);
}
