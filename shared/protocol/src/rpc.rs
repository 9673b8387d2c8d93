//! Many concurrent requests over one connection: a server loop and a multiplexing client.
//!
//! The server always answers: a frame it cannot decode gets an error reply with whatever
//! request id could be read, and the connection stays up. Only a frame that breaks the byte
//! stream (too long, truncated) closes the connection, after an error frame where possible.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter, WriteHalf};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::frame::{read_frame, FrameError, LENGTH_PREFIX_LEN};
use crate::message::{
    decode_message, encode_message, DecodeError, EncodeError, ErrorCode, ErrorReply, WireMessage,
    WireReply, UNKNOWN_REQUEST_ID,
};
use crate::transport::Stream;
use crate::Address;

/// Limits of one connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Largest frame body accepted or sent.
    pub max_frame_len: usize,
    /// Requests of one connection handled at once; further frames wait unread.
    pub max_in_flight: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_frame_len: crate::frame::DEFAULT_MAX_FRAME_LEN,
            max_in_flight: 256,
        }
    }
}

/// Handles one request and always produces a reply.
pub trait Handler<Req, Resp>: Clone + Send + Sync + 'static {
    /// Answers `request`.
    fn handle(&self, request: Req) -> impl Future<Output = Resp> + Send;
}

/// Frames queued for the writer task of a connection.
type Outbox = mpsc::Sender<Vec<u8>>;

/// Writes queued frames, coalescing whatever is queued into one flush. A write error ends it
/// (and so closes the queue, which its senders see); the error is logged here, since nobody
/// else learns why.
async fn write_queued<W: AsyncWrite + Unpin>(writer: W, mut queue: mpsc::Receiver<Vec<u8>>) {
    let mut writer = BufWriter::new(writer);
    let written: std::io::Result<()> = async {
        while let Some(frame) = queue.recv().await {
            writer.write_all(&frame).await?;
            while let Ok(frame) = queue.try_recv() {
                writer.write_all(&frame).await?;
            }
            writer.flush().await?;
        }
        Ok(())
    }
    .await;
    match written {
        Ok(()) => {
            let _ = writer.shutdown().await;
        }
        Err(error) => tracing::warn!(%error, "writing to the connection failed; closing it"),
    }
}

/// Encodes a reply into a whole frame; a reply too large for a frame becomes an error reply.
fn reply_frame<Resp: WireReply>(id: u64, reply: &Resp, limit: usize) -> Option<Vec<u8>> {
    let encoded = match encode_message(id, reply) {
        Ok(bytes) if bytes.len() <= limit => bytes,
        Ok(bytes) => {
            let error = Resp::from_error(ErrorReply::new(
                ErrorCode::ResponseTooLarge,
                format!(
                    "the reply of {} bytes exceeds the frame limit of {limit}",
                    bytes.len()
                ),
            ));
            encode_message(id, &error).ok()?
        }
        Err(e) => {
            let error = Resp::from_error(ErrorReply::new(ErrorCode::Internal, e.to_string()));
            encode_message(id, &error).ok()?
        }
    };
    crate::frame::encode_frame(&encoded, usize::MAX).ok()
}

/// Serves one connection until the peer closes it, the stream breaks, or `shutdown` turns
/// true; in-flight requests are answered before it returns.
pub async fn serve_connection<Req, Resp, H>(
    stream: Stream,
    handler: H,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) where
    Req: WireMessage,
    Resp: WireReply,
    H: Handler<Req, Resp>,
{
    let (mut reader, writer) = tokio::io::split(stream);
    let (outbox, queue) = mpsc::channel::<Vec<u8>>(limits.max_in_flight.max(1));
    let writer_task = tokio::spawn(write_queued(writer, queue));
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));

    loop {
        let frame = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            // The writer failed: no reply could reach the peer any more.
            () = outbox.closed() => break,
            frame = read_frame(&mut reader, limits.max_frame_len) => frame,
        };
        let bytes = match frame {
            Ok(Some(bytes)) => bytes,
            Ok(None) => break,
            Err(FrameError::TooLarge { declared, limit }) => {
                tracing::warn!(declared, limit, "closing connection: frame too large");
                let reply = Resp::from_error(ErrorReply::new(
                    ErrorCode::FrameTooLarge,
                    format!("frame of {declared} bytes exceeds the limit of {limit} bytes; closing the connection"),
                ));
                if let Some(frame) = reply_frame(UNKNOWN_REQUEST_ID, &reply, limits.max_frame_len) {
                    let _ = outbox.send(frame).await;
                }
                break;
            }
            Err(error) => {
                tracing::debug!(%error, "closing connection");
                break;
            }
        };
        let request = match decode_message::<Req>(&bytes) {
            Ok(request) => request,
            Err(error) => {
                tracing::debug!(%error, "refusing frame");
                let reply = Resp::from_error(error.to_reply());
                if let Some(frame) = reply_frame(error.request_id(), &reply, limits.max_frame_len) {
                    if outbox.send(frame).await.is_err() {
                        break;
                    }
                }
                continue;
            }
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let handler = handler.clone();
        let outbox = outbox.clone();
        let limit = limits.max_frame_len;
        tokio::spawn(async move {
            let reply = handler.handle(request.body).await;
            if let Some(frame) = reply_frame(request.id, &reply, limit) {
                let _ = outbox.send(frame).await;
            }
            drop(permit);
        });
    }
    // Answer what is in flight before closing: every task holds a clone of the outbox, so
    // the writer ends once the last of them has sent its reply.
    drop(outbox);
    let _ = writer_task.await;
}

/// Why a call on a [`Connection`] produced no reply.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The connection is closed (peer gone, stream broken); the request may or may not have
    /// been processed.
    #[error("connection closed before the reply arrived")]
    Closed,
    /// The request could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The request is larger than a frame may be.
    #[error("request of {size} bytes exceeds the frame limit of {limit} bytes")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// Frame limit.
        limit: usize,
    },
    /// The peer's reply could not be decoded.
    #[error("the reply could not be decoded: {0}")]
    Decode(DecodeError),
}

type Pending<Resp> = Mutex<HashMap<u64, oneshot::Sender<Result<Resp, CallError>>>>;

struct Shared<Resp> {
    pending: Pending<Resp>,
    closed: AtomicBool,
}

impl<Resp> Shared<Resp> {
    fn fail_all(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let drained: Vec<_> = match self.pending.lock() {
            Ok(mut pending) => pending.drain().collect(),
            Err(poisoned) => poisoned.into_inner().drain().collect(),
        };
        for (_, waiter) in drained {
            let _ = waiter.send(Err(CallError::Closed));
        }
    }

    fn take(&self, id: u64) -> Option<oneshot::Sender<Result<Resp, CallError>>> {
        match self.pending.lock() {
            Ok(mut pending) => pending.remove(&id),
            Err(poisoned) => poisoned.into_inner().remove(&id),
        }
    }
}

/// Removes a pending entry if the caller gives up (timeout, cancellation).
struct PendingGuard<'a, Resp> {
    shared: &'a Shared<Resp>,
    id: u64,
}

impl<Resp> Drop for PendingGuard<'_, Resp> {
    fn drop(&mut self) {
        self.shared.take(self.id);
    }
}

/// A client connection that carries many concurrent calls, matched to replies by id.
pub struct Connection<Req, Resp> {
    outbox: Outbox,
    shared: Arc<Shared<Resp>>,
    next_id: AtomicU64,
    limits: ConnectionLimits,
    _request: PhantomData<fn(Req)>,
}

impl<Req, Resp> std::fmt::Debug for Connection<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("closed", &self.shared.closed.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl<Req, Resp> Connection<Req, Resp>
where
    Req: WireMessage,
    Resp: WireReply,
{
    /// Connects to `address`.
    pub async fn connect(address: &Address, limits: ConnectionLimits) -> std::io::Result<Self> {
        Ok(Self::over(Stream::connect(address).await?, limits))
    }

    /// Uses an established stream.
    pub fn over(stream: Stream, limits: ConnectionLimits) -> Self {
        let (mut reader, writer): (_, WriteHalf<Stream>) = tokio::io::split(stream);
        let (outbox, queue) = mpsc::channel(limits.max_in_flight.max(1));
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        });
        let writer_shared = shared.clone();
        tokio::spawn(async move {
            write_queued(writer, queue).await;
            // Whatever is pending now can never be answered: a frame may have been cut short.
            writer_shared.fail_all();
        });
        let reader_shared = shared.clone();
        tokio::spawn(async move {
            loop {
                match read_frame(&mut reader, limits.max_frame_len).await {
                    Ok(Some(bytes)) => match decode_message::<Resp>(&bytes) {
                        Ok(reply) => {
                            if let Some(waiter) = reader_shared.take(reply.id) {
                                let _ = waiter.send(Ok(reply.body));
                            }
                        }
                        Err(error) => {
                            if let Some(waiter) = reader_shared.take(error.request_id()) {
                                let _ = waiter.send(Err(CallError::Decode(error)));
                            } else {
                                tracing::warn!(%error, "undecodable reply for no pending call");
                            }
                        }
                    },
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(%error, "connection broken");
                        break;
                    }
                }
            }
            reader_shared.fail_all();
        });
        Self {
            outbox,
            shared,
            next_id: AtomicU64::new(1),
            limits,
            _request: PhantomData,
        }
    }

    /// True once the connection can carry no more calls.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst) || self.outbox.is_closed()
    }

    /// Sends `request` and waits for its reply. Wrap in a timeout to bound the wait.
    pub async fn call(&self, request: &Req) -> Result<Resp, CallError> {
        if self.is_closed() {
            return Err(CallError::Closed);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = encode_message(id, request)?;
        let too_large = || CallError::TooLarge {
            size: body.len(),
            limit: self.limits.max_frame_len,
        };
        if body.len() > self.limits.max_frame_len {
            return Err(too_large());
        }
        let declared = u32::try_from(body.len()).map_err(|_| too_large())?;
        let mut frame = Vec::with_capacity(LENGTH_PREFIX_LEN + body.len());
        frame.extend_from_slice(&declared.to_be_bytes());
        frame.extend_from_slice(&body);

        let (waiter, reply) = oneshot::channel();
        match self.shared.pending.lock() {
            Ok(mut pending) => pending.insert(id, waiter),
            Err(poisoned) => poisoned.into_inner().insert(id, waiter),
        };
        let _guard = PendingGuard {
            shared: &self.shared,
            id,
        };
        // The reader may have failed everything between our check and the insert.
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(CallError::Closed);
        }
        self.outbox
            .send(frame)
            .await
            .map_err(|_| CallError::Closed)?;
        reply.await.map_err(|_| CallError::Closed)?
    }
}
