//! The HTTP server: `POST /add-checkpoint`, plain HTTP/1.1, with bounds on what a client can
//! make the witness hold (body size, header and body time, connections).
//!
//! Answers follow C2SP tlog-witness: 200 with the cosignature line; 400, 403, 404, 409, 422
//! with a one-line reason (`text/plain`), except the 409 for a stale old size, whose body is
//! the stored size and a newline, as `text/x.tlog.size`. Also 413 for a body over the limit,
//! 408 for one too slow, 405 for another method, 404 for another path, 500 when the state
//! could not be stored (nothing was cosigned then).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::protocol::Refusal;
use crate::request::MAX_BODY_LEN;
use crate::{AddError, Service};

/// The path of the one route.
pub const ADD_CHECKPOINT: &str = "/add-checkpoint";
/// The content type of a 409's size body.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// Bounds on what clients can make the witness hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Connections open at once; more are closed at once.
    pub max_connections: usize,
    /// Time for a request's headers to arrive.
    pub header_timeout: Duration,
    /// Time for a request's body to arrive.
    pub body_timeout: Duration,
    /// Time open requests get to finish after shutdown is asked for.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: MAX_BODY_LEN,
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The answer to a refused request.
fn refusal(refusal: &Refusal) -> Response<Full<Bytes>> {
    let status =
        StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Refusal::OldSizeMismatch { stored, .. } = refusal {
        let mut response = text(status, format!("{stored}\n"));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(SIZE_CONTENT_TYPE));
        return response;
    }
    text(status, format!("{refusal}\n"))
}

/// The current time in POSIX seconds (0 before 1970).
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Answers one request.
async fn handle(
    service: Arc<Service>,
    limits: Limits,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if request.uri().path() != ADD_CHECKPOINT {
        return text(StatusCode::NOT_FOUND, "no such route\n".into());
    }
    if request.method() != Method::POST {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "add-checkpoint takes POST\n".into(),
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let too_large = || {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is at most {} bytes\n",
                limits.max_body_bytes
            ),
        )
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_body_bytes as u64) {
        return too_large();
    }
    let body = match tokio::time::timeout(
        limits.body_timeout,
        Limited::new(request.into_body(), limits.max_body_bytes).collect(),
    )
    .await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.is::<LengthLimitError>() => return too_large(),
        Ok(Err(error)) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read: {error}\n"),
            )
        }
        Err(_) => {
            return text(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time\n".into(),
            )
        }
    };
    let worker = service.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let outcome = worker.add_checkpoint(&body, now());
        (outcome, body)
    })
    .await;
    match outcome {
        Ok((Ok(line), _)) => {
            tracing::info!(%peer, cosignature = line.trim_end(), "cosigned");
            text(StatusCode::OK, line)
        }
        Ok((Err(AddError::Refused(refused)), body)) => {
            match &refused {
                // A checkpoint signed by the log that contradicts what the witness cosigned:
                // evidence of a fork (or of a broken client); the spec allows logging it.
                Refusal::RootMismatch { .. } | Refusal::BadProof { .. } => tracing::warn!(
                    %peer,
                    %refused,
                    request = %String::from_utf8_lossy(&body),
                    "refused an inconsistent checkpoint signed by the log"
                ),
                _ => tracing::info!(%peer, %refused, "refused"),
            }
            refusal(&refused)
        }
        Ok((Err(error), _)) => {
            tracing::error!(%peer, %error, "add-checkpoint failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the witness could not store its state; nothing was cosigned\n".into(),
            )
        }
        Err(error) => {
            tracing::error!(%peer, %error, "add-checkpoint worker failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n".into())
        }
    }
}

/// Serves `service` on `listener` until `shutdown` resolves, then lets open requests finish
/// within the grace period.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many connections; closing this one");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let service = service.clone();
        let handler = hyper::service::service_fn(move |request| {
            let service = service.clone();
            async move { Ok::<_, Infallible>(handle(service, limits, peer, request).await) }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(tcp), handler));
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing open connections");
    }
    Ok(())
}
