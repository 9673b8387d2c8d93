//! The Nitro enclave boot heartbeat (`--enclave-heartbeat`), for enclaves booted under QEMU.
//!
//! Once its kernel is up, a Nitro enclave's init connects to the parent on vsock port 9000,
//! sends the byte 0xB7 and waits for the same byte back before it starts the application. On
//! EC2, nitro-cli answers it. Under QEMU's `nitro-enclave` machine nobody does: the guest's
//! connection to CID 2 port 9000 arrives, through `vhost-device-vsock --uds-path <P>`, at the
//! unix socket `<P>_9000`, and the proxy can listen there and answer instead. Off by default,
//! since on EC2 the port is nitro-cli's.

use std::time::Duration;

use ea_protocol::{Address, Listener, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::listen::{accept_until_shutdown, bound_or_retry};

/// The heartbeat byte, sent by the enclave and echoed by the parent (nitro-cli's value).
pub const HEARTBEAT: u8 = 0xB7;
/// Heartbeat connections held at once: one enclave sends one, so a few cover its reboots.
const MAX_CONNECTIONS: usize = 4;
/// How long a connection may take to send its byte: the init sends it as soon as it has
/// connected, so a silent connection is not a heartbeat and must not hold a slot.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers one connection: reads one byte, echoes it if it is [`HEARTBEAT`], closes.
async fn answer(mut stream: Stream, peer: String) {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(READ_TIMEOUT, stream.read_exact(&mut byte)).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            tracing::warn!(%peer, %error, "enclave heartbeat connection ended before its byte");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "enclave heartbeat connection sent nothing in {READ_TIMEOUT:?}; closing");
            return;
        }
    }
    let [byte] = byte;
    if byte != HEARTBEAT {
        tracing::warn!(
            %peer, byte = format_args!("{byte:#04x}"), expected = format_args!("{HEARTBEAT:#04x}"),
            "enclave heartbeat with the wrong byte; closing without an answer"
        );
        return;
    }
    tracing::info!(%peer, "enclave heartbeat received");
    if let Err(error) = stream.write_all(&[HEARTBEAT]).await {
        tracing::warn!(%peer, %error, "cannot answer the enclave heartbeat");
    }
}

/// Answers heartbeats on `listener` until `shutdown` turns true. It keeps accepting after
/// each one: a rebooted enclave sends its heartbeat again.
pub async fn serve(listener: Listener, shutdown: watch::Receiver<bool>) {
    let connections = accept_until_shutdown(
        &listener,
        MAX_CONNECTIONS,
        "enclave heartbeat",
        &shutdown,
        answer,
    )
    .await;
    drop(connections);
}

/// Answers heartbeats until `shutdown`, on `bound` if the start-up bind succeeded, else on
/// `listen` once it can be bound (retrying, as the store service does).
pub async fn run(listen: Address, bound: Option<Listener>, shutdown: watch::Receiver<bool>) {
    let Some(listener) = bound_or_retry(bound, &listen, "enclave heartbeat", &shutdown).await
    else {
        return;
    };
    tracing::info!(%listen, "answering the enclave boot heartbeat");
    serve(listener, shutdown).await;
}
