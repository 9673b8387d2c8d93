//! Process plumbing shared by the project's binaries: structured logs on stderr and a future
//! that resolves when the process is asked to stop.
//!
//! Kept apart from the libraries with real concerns so that none of them has to know about
//! signals or log formats.
//!
//! ```no_run
//! # async fn run() {
//! ea_runtime::init_logging();
//! ea_runtime::shutdown_signal().await;
//! # }
//! ```
#![warn(missing_docs)]

use std::io::IsTerminal;

/// Logs to stderr at the level `RUST_LOG` gives (default `info`), coloured only on a terminal.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Resolves on SIGTERM or SIGINT. If the handlers cannot be installed it never resolves
/// (the process can still be stopped with SIGKILL) and says so in the log.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
