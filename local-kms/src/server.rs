//! HTTPS in front of [`LocalKms`]: TLS (rustls), HTTP/1.1 (hyper), `POST /` with
//! `X-Amz-Target: TrentService.<Operation>`, SigV4 checked before anything else.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ea_kms::sigv4::{SigV4Verifier, SignedRequest};
use ea_protocol::Listener;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;

use crate::error::{ErrorType, KmsFault};
use crate::ops::LocalKms;

/// Largest request body (KMS's largest, PutKeyPolicy with 32 KiB of policy, fits easily).
pub const MAX_BODY: usize = 256 * 1024;
/// Time for a client to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time in-flight requests get after a stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// What every request needs.
#[derive(Debug)]
pub struct Shared {
    /// The operations.
    pub kms: Arc<LocalKms>,
    /// The credentials check.
    pub verifier: SigV4Verifier,
}

fn now() -> (u64, u64) {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (
        since.as_secs(),
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
    )
}

fn respond(status: u16, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}

async fn answer(shared: &Shared, request: Request<Incoming>) -> Result<String, KmsFault> {
    let (parts, body) = request.into_parts();
    if parts.method != hyper::Method::POST || parts.uri.path() != "/" {
        return Err(KmsFault::new(
            ErrorType::UnknownOperation,
            format!(
                "{} {} is not a KMS request (POST / expected)",
                parts.method,
                parts.uri.path()
            ),
        ));
    }
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|_| {
            KmsFault::new(
                ErrorType::Validation,
                format!("the request body is larger than {MAX_BODY} bytes or broke off"),
            )
        })?
        .to_bytes();
    let headers: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    let (now_secs, now_ms) = now();
    let caller = shared.verifier.verify(
        &SignedRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or_default(),
            headers: &headers,
            body: &body,
        },
        now_secs,
    );
    let caller = match caller {
        Ok(caller) => caller,
        Err(error) => {
            tracing::warn!(%error, "request refused: signature");
            return Err(error.into());
        }
    };
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("TrentService."))
        .ok_or_else(|| {
            KmsFault::new(
                ErrorType::UnknownOperation,
                "X-Amz-Target must be TrentService.<Operation>",
            )
        })?
        .to_owned();
    let kms = shared.kms.clone();
    let op = operation.clone();
    let result = tokio::task::spawn_blocking(move || kms.handle(&op, &body, &caller, now_ms))
        .await
        .map_err(|_| KmsFault::new(ErrorType::Internal, "the operation failed unexpectedly"))?;
    match &result {
        Ok(_) => tracing::info!(operation, "answered"),
        Err(fault) => tracing::info!(operation, %fault, "refused"),
    }
    result.map(|value| value.to_string())
}

/// Serves `listener` with TLS `config` until `shutdown` resolves, then gives in-flight
/// requests a few seconds.
pub async fn serve(
    listener: Listener,
    config: Arc<rustls::ServerConfig>,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::info!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move {
                    let response = match answer(&shared, request).await {
                        Ok(body) => respond(200, body),
                        Err(fault) => respond(fault.error_type.status(), fault.body()),
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service);
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}; stopping anyway");
    }
}
