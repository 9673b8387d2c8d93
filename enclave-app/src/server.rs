//! The accept loop: one task per connection, clean shutdown on request.

use std::time::Duration;

use ea_protocol::frame::write_frame;
use ea_protocol::rpc::{serve_connection, ConnectionLimits, Handler};
use ea_protocol::{
    encode_message, Address, EnclaveRequest, EnclaveResponse, ErrorCode, ErrorReply, Listener,
    DEFAULT_MAX_FRAME_LEN, UNKNOWN_REQUEST_ID,
};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How the server listens and what it accepts.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub listen: Address,
    /// Frame and concurrency limits of each connection.
    pub limits: ConnectionLimits,
    /// Connections served at once; one more gets an `overloaded` error frame and is closed.
    pub max_connections: usize,
    /// How long in-flight requests may take to finish after shutdown is asked for.
    pub shutdown_grace: Duration,
}

/// Connections over the limit told why at once; more are closed without a word.
const MAX_REFUSING: usize = 16;

/// Sends an `overloaded` error frame on a connection over the limit, then closes it.
async fn refuse(mut stream: ea_protocol::Stream, limit: usize) {
    let reply = EnclaveResponse::Error(ErrorReply::new(
        ErrorCode::Overloaded,
        format!("{limit} connections are already open (--max-connections); closing this one"),
    ));
    if let Ok(body) = encode_message(UNKNOWN_REQUEST_ID, &reply) {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            write_frame(&mut stream, &body, DEFAULT_MAX_FRAME_LEN),
        )
        .await;
    }
}

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish
/// (up to the grace period) and returns.
pub async fn serve<H>(
    listener: Listener,
    handler: H,
    config: &ServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()>
where
    H: Handler<EnclaveRequest, EnclaveResponse>,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut refusing = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        // Reap after accepting, not before waiting: connections that closed while we
        // waited must not count against the one just accepted.
        while connections.try_join_next().is_some() {}
        while refusing.try_join_next().is_some() {}
        match accepted {
            Ok((stream, peer)) if connections.len() >= config.max_connections => {
                // Say why before closing, so that the parent's logs name the limit; the
                // refusals themselves are bounded too.
                tracing::warn!(%peer, limit = config.max_connections, "refusing a connection over the limit");
                if refusing.len() < MAX_REFUSING {
                    refusing.spawn(refuse(stream, config.max_connections));
                }
            }
            Ok((stream, peer)) => {
                tracing::debug!(%peer, "connection accepted");
                connections.spawn(serve_connection::<EnclaveRequest, EnclaveResponse, H>(
                    stream,
                    handler.clone(),
                    config.limits,
                    stop_rx.clone(),
                ));
            }
            Err(error) => {
                // Out of descriptors and the like: wait a little rather than spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracing::info!(connections = connections.len(), "shutting down");
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("grace period over; abandoning unfinished requests");
        connections.abort_all();
    }
    Ok(())
}
