//! `scripts/run-local.sh`, as a new user runs it: it builds, starts the stack, prints the
//! endpoint once healthy, and stops everything on Ctrl-C.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "end-to-end test: a failed step should fail the test loudly"
)]

use std::time::Duration;

use ea_tests::{binaries, get_json, workspace_root, Process};
use nix::sys::signal::Signal;

#[tokio::test]
async fn run_local_starts_a_healthy_stack_and_stops_it_on_ctrl_c() {
    binaries(); // build first, so the script's own build is a quick no-op
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port().to_string()
    };
    let local_dir = dir.path().join("stack");
    // Through `env --default-signal=INT`: a process started in the background by a
    // non-interactive shell (a CI runner's, say) inherits SIGINT ignored, and bash cannot
    // trap a signal ignored on entry, so Ctrl-C would never reach the script.
    let mut script = Process::spawn_with_env(
        std::path::Path::new("env"),
        &[
            "--default-signal=INT".to_owned(),
            "bash".to_owned(),
            workspace_root()
                .join("scripts/run-local.sh")
                .display()
                .to_string(),
        ],
        &[
            ("EA_PORT", port.as_str()),
            ("EA_LOCAL_DIR", local_dir.to_str().unwrap()),
        ],
        &dir.path().join("script.log"),
    );
    let url = script.wait_for_stdout_line("endpoint: ");
    assert_eq!(url, format!("http://127.0.0.1:{port}"));

    let client = reqwest::Client::new();
    let (status, body) = get_json(&client, &format!("{url}/v1/health")).await;
    assert_eq!(status, 200, "{body}");

    script.signal(Signal::SIGINT);
    assert!(
        script.wait_exit(Duration::from_secs(30)).is_some(),
        "the script exits on Ctrl-C"
    );
    // Everything it started is gone: nothing listens on the port any more.
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap()))
            .await
            .is_err(),
        "the proxy is still listening after Ctrl-C"
    );
}
