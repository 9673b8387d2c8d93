//! The HTTP(S) accept loop, with the limits that apply before any route runs.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::error::ApiError;

/// Plain HTTP (loopback only, checked by the caller) or TLS.
#[derive(Clone)]
pub enum Transport {
    /// TLS with this configuration.
    Tls(Arc<rustls::ServerConfig>),
    /// No TLS. Only for loopback test stacks.
    InsecureHttp,
}

/// Bounds on what clients can make the proxy hold.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest request body; larger ones get 413 before routing (bodies are read up to this
    /// size before routing, so `max_body_bytes * max_in_flight` bounds the memory they take).
    pub max_body_bytes: usize,
    /// Requests relayed at once; further ones get 503 at once rather than queueing.
    pub max_in_flight: usize,
    /// Client connections open at once; one more gets 503 `too_many_connections` and is
    /// closed.
    pub max_connections: usize,
    /// Time allowed for a TLS handshake and for request headers to arrive.
    pub handshake_timeout: Duration,
    /// Time allowed for a request body to arrive.
    pub body_timeout: Duration,
    /// Time in-flight requests get to finish after shutdown is asked for.
    pub shutdown_grace: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_in_flight: 1024,
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Applies the body and in-flight limits, then routes.
///
/// The body is read (up to the limit) before routing, so an oversized body gets 413 on every
/// route, including unknown ones, whether or not it announced its length.
async fn limited(
    router: Router,
    in_flight: Arc<Semaphore>,
    limits: HttpLimits,
    request: Request<Incoming>,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_body_bytes as u64) {
        return ApiError::payload_too_large(limits.max_body_bytes).into_response();
    }
    let Ok(_permit) = in_flight.try_acquire_owned() else {
        return ApiError::overloaded(limits.max_in_flight).into_response();
    };
    let (parts, body) = request.into_parts();
    let collected = tokio::time::timeout(
        limits.body_timeout,
        Limited::new(body, limits.max_body_bytes).collect(),
    )
    .await;
    let body = match collected {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.is::<LengthLimitError>() => {
            return ApiError::payload_too_large(limits.max_body_bytes).into_response()
        }
        Ok(Err(error)) => {
            return ApiError::bad_request(format!("the request body could not be read: {error}"))
                .into_response()
        }
        Err(_) => {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} ms",
                    limits.body_timeout.as_millis()
                ),
            )
            .into_response()
        }
    };
    match router
        .oneshot(Request::from_parts(parts, Body::from(body)))
        .await
    {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// Connections over the limit answered 503 at once; more are closed without an answer.
const MAX_REFUSING: usize = 64;

/// Answers every request of a connection over the limit with 503 `too_many_connections`,
/// then closes it.
async fn refuse_connection(
    tcp: tokio::net::TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    limits: HttpLimits,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let service = hyper::service::service_fn(move |_: Request<Incoming>| async move {
        let mut response = ApiError::too_many_connections(limits.max_connections).into_response();
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        Ok::<_, Infallible>(response)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.handshake_timeout)
        .keep_alive(false);
    let served = match acceptor {
        Some(acceptor) => {
            match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => builder.serve_connection(TokioIo::new(tls), service).await,
                _ => return,
            }
        }
        None => builder.serve_connection(TokioIo::new(tcp), service).await,
    };
    if let Err(error) = served {
        tracing::debug!(%error, "refused connection ended with an error");
    }
}

/// Serves until `shutdown` resolves, then lets open requests finish within the grace period.
pub async fn serve(
    listener: TcpListener,
    transport: Transport,
    router: Router,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let acceptor = match &transport {
        Transport::Tls(config) => Some(tokio_rustls::TlsAcceptor::from(config.clone())),
        Transport::InsecureHttp => None,
    };
    tokio::pin!(shutdown);
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
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
        let _ = tcp.set_nodelay(true);
        let Ok(slot) = connections.clone().try_acquire_owned() else {
            // Over the limit: say so (503) rather than leave the client in the backlog, as
            // long as that itself stays bounded; beyond, the connection is just closed.
            if let Ok(permit) = refusing.clone().try_acquire_owned() {
                tracing::debug!(%peer, "refusing a connection over the limit");
                tokio::spawn(refuse_connection(tcp, acceptor.clone(), limits, permit));
            }
            continue;
        };
        let router = router.clone();
        let in_flight = in_flight.clone();
        let service = hyper::service::service_fn(move |request| {
            let router = router.clone();
            let in_flight = in_flight.clone();
            async move { Ok::<_, Infallible>(limited(router, in_flight, limits, request).await) }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.handshake_timeout);
        match &acceptor {
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let _slot = slot;
                    let tls =
                        match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp))
                            .await
                        {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(error)) => {
                                tracing::debug!(%peer, %error, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let connection = builder.serve_connection(TokioIo::new(tls), service);
                    if let Err(error) = watcher.watch(connection).await {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                });
            }
            None => {
                let connection = builder.serve_connection(TokioIo::new(tcp), service);
                let watched = graceful.watch(connection);
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Err(error) = watched.await {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                });
            }
        }
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
