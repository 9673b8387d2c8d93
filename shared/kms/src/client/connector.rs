//! The SDK's HTTP client: one HTTPS/1.1 exchange per request over a connection to a fixed
//! [`Address`], TLS terminated here by rustls.
//!
//! Inside the enclave the address is the parent's relay (`vsock:3:<port>`), which forwards
//! bytes to KMS: the parent sees only TLS records. The certificate must name `host` (the
//! KMS endpoint's name), whatever address the bytes travel through. A connection per
//! request keeps this simple; the enclave calls KMS a few times per start.

use std::sync::Arc;
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use ea_protocol::{Address, Stream};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;

/// Largest KMS response read (KMS answers are a few KiB).
pub const MAX_RESPONSE_LEN: usize = 1024 * 1024;
/// Time to connect and finish the TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for the whole exchange once connected.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why one exchange failed; the SDK wraps it as the source of a dispatch failure.
#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    #[error("the request body is a stream; KMS requests are expected in memory")]
    StreamingBody,
    #[error("building the HTTP request: {0}")]
    Request(String),
    #[error("connecting to {address}: {source}")]
    Connect {
        address: Address,
        source: std::io::Error,
    },
    #[error("TLS with {host} through {address}: {source}")]
    Tls {
        host: String,
        address: Address,
        source: std::io::Error,
    },
    #[error(
        "no connection and TLS handshake with {host} through {address} within {0:?}",
        CONNECT_TIMEOUT
    )]
    ConnectTimeout { host: String, address: Address },
    #[error("HTTP exchange with {host}: {source}")]
    Http { host: String, source: hyper::Error },
    #[error("the response body from {host} exceeds {MAX_RESPONSE_LEN} bytes or broke off")]
    Body { host: String },
}

/// An SDK HTTP client that sends every request to one address over TLS for one host name.
#[derive(Clone)]
pub struct RelayHttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    address: Address,
    host: String,
    server_name: ServerName<'static>,
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for RelayHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayHttpClient")
            .field("address", &self.inner.address)
            .field("host", &self.inner.host)
            .finish_non_exhaustive()
    }
}

impl RelayHttpClient {
    /// A client connecting to `address`, expecting a certificate for `server_name`.
    pub fn new(
        address: Address,
        host: String,
        server_name: ServerName<'static>,
        tls: Arc<rustls::ClientConfig>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                address,
                host,
                server_name,
                tls: tokio_rustls::TlsConnector::from(tls),
            }),
        }
    }
}

impl Inner {
    async fn exchange(&self, request: HttpRequest) -> Result<HttpResponse, ConnectorError> {
        let request = request
            .try_into_http1x()
            .map_err(|e| ConnectorError::user(Box::new(ExchangeError::Request(e.to_string()))))?;
        let (mut parts, body) = request.into_parts();
        let body = body
            .bytes()
            .ok_or_else(|| ConnectorError::user(Box::new(ExchangeError::StreamingBody)))?
            .to_vec();
        // Origin form on the wire; the Host header is what SigV4 signed (the endpoint's host).
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        parts.uri = path.parse().map_err(|e: http::uri::InvalidUri| {
            ConnectorError::user(Box::new(ExchangeError::Request(e.to_string())))
        })?;
        if !parts.headers.contains_key(http::header::HOST) {
            let host = http::HeaderValue::from_str(&self.host).map_err(|e| {
                ConnectorError::user(Box::new(ExchangeError::Request(e.to_string())))
            })?;
            parts.headers.insert(http::header::HOST, host);
        }
        let request = http::Request::from_parts(parts, Full::new(hyper::body::Bytes::from(body)));

        let tls = tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
            .await
            .map_err(|_| {
                ConnectorError::timeout(Box::new(ExchangeError::ConnectTimeout {
                    host: self.host.clone(),
                    address: self.address.clone(),
                }))
            })??;
        let exchange = async {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|source| self.http_error(source))?;
            // The connection task ends when the exchange does (the sender is dropped).
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let response = sender
                .send_request(request)
                .await
                .map_err(|source| self.http_error(source))?;
            let (parts, body) = response.into_parts();
            let bytes = Limited::new(body, MAX_RESPONSE_LEN)
                .collect()
                .await
                .map_err(|_| {
                    ConnectorError::io(Box::new(ExchangeError::Body {
                        host: self.host.clone(),
                    }))
                })?
                .to_bytes();
            let response = http::Response::from_parts(parts, SdkBody::from(bytes));
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(Box::new(e), None))
        };
        tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                ConnectorError::timeout(
                    format!("no answer from {} within {EXCHANGE_TIMEOUT:?}", self.host).into(),
                )
            })?
    }

    async fn connect(&self) -> Result<tokio_rustls::client::TlsStream<Stream>, ConnectorError> {
        let stream = Stream::connect(&self.address).await.map_err(|source| {
            ConnectorError::io(Box::new(ExchangeError::Connect {
                address: self.address.clone(),
                source,
            }))
        })?;
        self.tls
            .connect(self.server_name.clone(), stream)
            .await
            .map_err(|source| {
                ConnectorError::io(Box::new(ExchangeError::Tls {
                    host: self.host.clone(),
                    address: self.address.clone(),
                    source,
                }))
            })
    }

    fn http_error(&self, source: hyper::Error) -> ConnectorError {
        ConnectorError::io(Box::new(ExchangeError::Http {
            host: self.host.clone(),
            source,
        }))
    }
}

impl HttpConnector for RelayHttpClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        HttpConnectorFuture::new(async move { inner.exchange(request).await })
    }
}

impl HttpClient for RelayHttpClient {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}
