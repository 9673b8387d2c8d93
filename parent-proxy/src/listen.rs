//! Listening for the enclave's connections (log store, KMS relay): binding with retries, and
//! an accept loop that holds a bounded number of connections.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ea_protocol::{Address, Listener, Stream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Binds `address` for `what`; if binding fails (the address is in use, vsock is not
/// available yet), says so and tries again, backing off to 30 s, so that the rest of the
/// proxy keeps working meanwhile. `None` if `shutdown` turns true first.
pub async fn bind_with_retry(
    address: &Address,
    what: &'static str,
    shutdown: &watch::Receiver<bool>,
) -> Option<Listener> {
    let mut shutdown = shutdown.clone();
    let mut delay = Duration::from_millis(500);
    loop {
        match Listener::bind(address).await {
            Ok(listener) => return Some(listener),
            Err(error) => {
                tracing::error!(
                    %address, %error, retry_in_ms = delay.as_millis() as u64,
                    "cannot listen for the enclave's {what} connections"
                );
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => return None,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Binds `address` for `what` at start-up, once: the proxy announces that it is listening
/// only after this, so an enclave started next finds its sockets. On failure it says so and
/// returns `None`; the caller then keeps trying in the background ([`bind_with_retry`]).
pub async fn bind_at_start(address: &Address, what: &'static str) -> Option<Listener> {
    match Listener::bind(address).await {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::error!(
                %address, %error,
                "cannot listen for the enclave's {what} connections yet; retrying in the background"
            );
            None
        }
    }
}

/// `bound` if the start-up bind succeeded, else `address` once [`bind_with_retry`] binds it;
/// `None` if `shutdown` turns true first.
pub async fn bound_or_retry(
    bound: Option<Listener>,
    address: &Address,
    what: &'static str,
    shutdown: &watch::Receiver<bool>,
) -> Option<Listener> {
    match bound {
        Some(listener) => Some(listener),
        None => bind_with_retry(address, what, shutdown).await,
    }
}

/// Accepts connections on `listener` until `shutdown` turns true, at most `max_connections`
/// at once (a further one waits unaccepted), each handled by the task `handle` makes.
/// Returns the connections still running, for the caller to wait for or to drop (which
/// aborts them).
pub async fn accept_until_shutdown<F, T>(
    listener: &Listener,
    max_connections: usize,
    what: &'static str,
    shutdown: &watch::Receiver<bool>,
    mut handle: F,
) -> JoinSet<()>
where
    F: FnMut(Stream, String) -> T,
    T: Future<Output = ()> + Send + 'static,
{
    let mut shutdown = shutdown.clone();
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut connections = JoinSet::new();
    loop {
        // The semaphore is never closed, so this only waits.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let task = handle(stream, peer);
                connections.spawn(async move {
                    task.await;
                    drop(slot);
                });
            }
            Err(error) => {
                tracing::warn!(%error, "accepting a {what} connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    connections
}
