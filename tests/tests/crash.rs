//! Crash safety: a stream of signed state changes from concurrent clients, and in the middle
//! of it kill -9 of the enclave or, separately, of the parent-proxy. After the restart every
//! change that was acknowledged to a client is in the log (at the index its receipt names,
//! with the client's request verbatim), the log verifies, and the state the enclave serves
//! equals the replay of the log.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "end-to-end test: a failed step should fail the test loudly"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ea_tests::load::{check_after_faults, stream, Clients};
use ea_tests::Deployment;
use serde_json::json;

fn admin_only() -> Deployment {
    Deployment::start(
        &["admin"],
        json!({
            "communities": [{"id": "/communities/c1", "addressSpace": "10.0.0.0/8"}],
            "roleAssignments": [{"id": "ra-admin", "principalId": "admin",
                                 "roleDefinitionId": "Owner", "scope": "/"}]
        }),
    )
}

/// Streams, crashes with `crash` after a while, restarts, streams a little more, then checks
/// everything acknowledged against the verified log and the served state.
fn crash_in_the_middle(crash: fn(&mut Deployment)) {
    let mut d = admin_only();
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let streaming = runtime.spawn(stream(Clients::of(&d, "admin"), 8, stop.clone()));
    std::thread::sleep(Duration::from_millis(1500));
    crash(&mut d);
    std::thread::sleep(Duration::from_millis(1500));
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
fn kill_9_of_the_enclave_loses_nothing_acknowledged() {
    crash_in_the_middle(|d| {
        d.stack.kill_enclave();
        d.stack.start_enclave();
        d.wait_serving(Duration::from_secs(60));
    });
}

#[test]
fn kill_9_of_the_parent_loses_nothing_acknowledged() {
    crash_in_the_middle(|d| {
        d.stack.kill_proxy();
        std::thread::sleep(Duration::from_millis(300));
        d.stack.restart_proxy();
        d.wait_serving(Duration::from_secs(60));
    });
}
