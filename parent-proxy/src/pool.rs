//! A pool of multiplexed connections to the enclave that heals itself when the enclave restarts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ea_protocol::rpc::{CallError, Connection, ConnectionLimits};
use ea_protocol::{Address, EnclaveRequest, EnclaveResponse};
use tokio::sync::Mutex;

use crate::error::ApiError;

type EnclaveConnection = Connection<EnclaveRequest, EnclaveResponse>;

/// How the pool reaches the enclave.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The enclave's address.
    pub enclave: Address,
    /// Connections kept open; requests are spread over them.
    pub size: usize,
    /// Frame and in-flight limits of each connection.
    pub limits: ConnectionLimits,
    /// Longest wait for a connection to be established.
    pub connect_timeout: Duration,
    /// After a failed connect, requests fail fast for this long instead of piling up.
    pub retry_after: Duration,
}

/// Connections to the enclave.
pub struct EnclavePool {
    config: PoolConfig,
    slots: Vec<Mutex<Option<Arc<EnclaveConnection>>>>,
    next: AtomicUsize,
    /// When the last connection attempt failed; cleared by any success, so that once the
    /// enclave is back every slot reconnects at once.
    failed_at: std::sync::Mutex<Option<Instant>>,
}

impl EnclavePool {
    /// A pool that connects lazily, on first use.
    pub fn new(config: PoolConfig) -> Self {
        let slots = (0..config.size.max(1)).map(|_| Mutex::new(None)).collect();
        Self {
            config,
            slots,
            next: AtomicUsize::new(0),
            failed_at: std::sync::Mutex::new(None),
        }
    }

    /// The enclave's address.
    pub fn enclave(&self) -> &Address {
        &self.config.enclave
    }

    async fn connection(&self) -> Result<Arc<EnclaveConnection>, ApiError> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let Some(slot) = self.slots.get(index) else {
            return Err(ApiError::enclave_unavailable("no connection slots"));
        };
        let mut slot = slot.lock().await;
        if let Some(connection) = slot.as_ref() {
            if !connection.is_closed() {
                return Ok(connection.clone());
            }
        }
        *slot = None;
        if let Some(failed_at) = self.last_failure() {
            if failed_at.elapsed() < self.config.retry_after {
                return Err(ApiError::enclave_unavailable(format!(
                    "the enclave at {} is not reachable (retrying shortly)",
                    self.config.enclave
                )));
            }
        }
        let connect = EnclaveConnection::connect(&self.config.enclave, self.config.limits);
        match tokio::time::timeout(self.config.connect_timeout, connect).await {
            Ok(Ok(connection)) => {
                tracing::info!(enclave = %self.config.enclave, slot = index, "connected to the enclave");
                let connection = Arc::new(connection);
                *slot = Some(connection.clone());
                self.set_last_failure(None);
                Ok(connection)
            }
            Ok(Err(error)) => {
                self.set_last_failure(Some(Instant::now()));
                tracing::warn!(enclave = %self.config.enclave, %error, "cannot connect to the enclave");
                Err(ApiError::enclave_unavailable(format!(
                    "cannot connect to the enclave at {}: {error}",
                    self.config.enclave
                )))
            }
            Err(_) => {
                self.set_last_failure(Some(Instant::now()));
                Err(ApiError::enclave_unavailable(format!(
                    "connecting to the enclave at {} timed out",
                    self.config.enclave
                )))
            }
        }
    }

    fn last_failure(&self) -> Option<Instant> {
        match self.failed_at.lock() {
            Ok(guard) => *guard,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    fn set_last_failure(&self, at: Option<Instant>) {
        match self.failed_at.lock() {
            Ok(mut guard) => *guard = at,
            Err(poisoned) => *poisoned.into_inner() = at,
        }
    }

    /// Sends one request and waits up to `timeout` for the answer. Error replies of the
    /// enclave come back as `Ok(EnclaveResponse::Error(..))`.
    pub async fn call(
        &self,
        request: &EnclaveRequest,
        timeout: Duration,
    ) -> Result<EnclaveResponse, ApiError> {
        let started = Instant::now();
        let connection = tokio::time::timeout(timeout, self.connection())
            .await
            .map_err(|_| ApiError::timeout(timeout.as_millis()))??;
        let remaining = timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(remaining, connection.call(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(CallError::Closed)) => Err(ApiError::enclave_unavailable(
                "the connection to the enclave closed before it answered",
            )),
            Ok(Err(CallError::TooLarge { size, limit })) => Err(ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request needs a frame of {size} bytes; the limit is {limit}"),
            )),
            Ok(Err(error @ (CallError::Encode(_) | CallError::Decode(_)))) => {
                Err(ApiError::bad_gateway(error.to_string()))
            }
            Err(_) => Err(ApiError::timeout(timeout.as_millis())),
        }
    }
}
