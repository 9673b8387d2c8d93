//! The store service: the enclave connects to the parent and asks it, with
//! [`StoreRequest`]s, to append records, read them back and keep the sealed key.
//!
//! Every request gets an answer, errors included; a store failure is an error reply, never a
//! reason to stop serving. Appends are taken one at a time in arrival order (a fair lock):
//! the enclave batches many records into one append, so one append is one transaction and
//! one fsync. Store calls block, so they run on tokio's blocking threads.

use std::sync::Arc;

use ea_protocol::rpc::{serve_connection, ConnectionLimits, Handler};
use ea_protocol::store::{MAX_CHECKPOINTS_PER_READ, MAX_RECORDS_PER_READ};
use ea_protocol::{Address, ErrorCode, ErrorReply, Listener, StoreRequest, StoreResponse};
use serde_bytes::ByteBuf;
use tokio::sync::watch;

use super::{page_len, SharedLogStore, StoreError};
use crate::credentials::CredentialsSource;
use crate::listen::{accept_until_shutdown, bound_or_retry};

/// Bytes of a reply frame that are not record or note bytes: the envelope and the message
/// around the list (a generous bound; the CBOR headers are a few bytes each).
const REPLY_OVERHEAD: usize = 64;
/// Bytes of CBOR framing per record in a reply (a byte-string header: at most 9).
const PER_RECORD_OVERHEAD: usize = 9;
/// Bytes of CBOR framing per checkpoint in a reply (array, size, text header).
const PER_CHECKPOINT_OVERHEAD: usize = 20;
/// Connections served at once; the enclave needs one or two.
const MAX_CONNECTIONS: usize = 16;

/// Answers [`StoreRequest`]s from a [`super::LogStore`].
#[derive(Clone)]
pub struct StoreService {
    store: SharedLogStore,
    appends: Arc<tokio::sync::Mutex<()>>,
    max_frame_len: usize,
    credentials: Option<Arc<CredentialsSource>>,
    witnesses: Option<crate::witnesses::OnDemand>,
}

impl std::fmt::Debug for StoreService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreService")
            .field("max_frame_len", &self.max_frame_len)
            .field("credentials", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

/// The error reply for a store error: the code says whose problem it is, the message what
/// to do about it.
pub fn error_reply(error: &StoreError) -> ErrorReply {
    match error {
        StoreError::Conflict { .. } => ErrorReply::new(
            ErrorCode::StoreConflict,
            format!("{error}; read the head and rebuild from the stored log before appending"),
        ),
        StoreError::CheckpointSize { .. }
        | StoreError::BadCheckpoint { .. }
        | StoreError::IndexOutOfRange { .. }
        | StoreError::NoCheckpoint { .. }
        | StoreError::BadCosignature { .. } => {
            ErrorReply::new(ErrorCode::MalformedMessage, error.to_string())
        }
        StoreError::Full { .. } => ErrorReply::new(
            ErrorCode::StorageFailed,
            format!("{error}; free space on the parent instance, then retry"),
        ),
        StoreError::Io { .. }
        | StoreError::NoWal { .. }
        | StoreError::Corrupt { .. }
        | StoreError::UnsupportedSchema { .. } => ErrorReply::new(
            ErrorCode::StorageFailed,
            format!("{error}; nothing was written; check the parent instance's disk and the proxy's log"),
        ),
    }
}

/// The most record bytes a reply of `count` records can carry within a frame.
fn record_budget(max_frame_len: usize, count: usize) -> usize {
    max_frame_len
        .saturating_sub(REPLY_OVERHEAD)
        .saturating_sub(count.saturating_mul(PER_RECORD_OVERHEAD))
}

impl StoreService {
    /// A service over `store` whose replies fit in frames of `max_frame_len` bytes.
    pub fn new(store: SharedLogStore, max_frame_len: usize) -> Self {
        Self {
            store,
            appends: Arc::new(tokio::sync::Mutex::new(())),
            max_frame_len,
            credentials: None,
            witnesses: None,
        }
    }

    /// Answers [`StoreRequest::SubmitToWitnesses`] by submitting to these witnesses
    /// (without them, such requests get an empty list of answers).
    pub fn with_witnesses(mut self, witnesses: crate::witnesses::OnDemand) -> Self {
        self.witnesses = Some(witnesses);
        self
    }

    /// Answers [`StoreRequest::GetCredentials`] from `source` (without one, such requests
    /// get `credentials_unavailable`).
    pub fn with_credentials(mut self, source: Arc<CredentialsSource>) -> Self {
        self.credentials = Some(source);
        self
    }

    async fn credentials(&self) -> StoreResponse {
        let Some(source) = &self.credentials else {
            return StoreResponse::Error(ErrorReply::new(
                ErrorCode::CredentialsUnavailable,
                "this parent-proxy was started without --aws-credentials",
            ));
        };
        match source.credentials().await {
            Ok(credentials) => {
                tracing::info!(
                    access_key_id = %credentials.access_key_id,
                    expiration_ms = credentials.expiration_ms,
                    "credentials handed to the enclave"
                );
                StoreResponse::Credentials {
                    access_key_id: credentials.access_key_id,
                    secret_access_key: credentials.secret_access_key,
                    session_token: credentials.session_token,
                    expiration_ms: credentials.expiration_ms,
                }
            }
            Err(error) => {
                tracing::error!(%error, "no credentials for the enclave");
                StoreResponse::Error(ErrorReply::new(
                    ErrorCode::CredentialsUnavailable,
                    error.to_string(),
                ))
            }
        }
    }

    /// Runs `call` on a blocking thread and turns its error into a reply.
    async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        call: impl FnOnce(&SharedLogStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreResponse> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || call(&store)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                match &error {
                    StoreError::Conflict { .. } => tracing::warn!(%error, "{what} refused"),
                    StoreError::CheckpointSize { .. }
                    | StoreError::BadCheckpoint { .. }
                    | StoreError::IndexOutOfRange { .. }
                    | StoreError::NoCheckpoint { .. }
                    | StoreError::BadCosignature { .. } => {
                        tracing::warn!(%error, "{what}: bad request from the enclave")
                    }
                    _ => tracing::error!(%error, "{what} failed"),
                }
                Err(StoreResponse::Error(error_reply(&error)))
            }
            Err(join) => {
                tracing::error!(error = %join, "{what} panicked");
                Err(StoreResponse::Error(ErrorReply::new(
                    ErrorCode::Internal,
                    format!("the log store failed unexpectedly during {what}; see the proxy's log"),
                )))
            }
        }
    }

    /// Answers one request.
    pub async fn answer(&self, request: StoreRequest) -> StoreResponse {
        let outcome = match request {
            StoreRequest::Head => self
                .blocking("head", |store| store.head())
                .await
                .map(|head| StoreResponse::Head {
                    size: head.size,
                    checkpoint: head.checkpoint.map(|c| c.note),
                }),
            StoreRequest::Append {
                first_index,
                records,
                checkpoint,
            } => {
                // Fair: appends are taken in the order they arrived.
                let _turn = self.appends.lock().await;
                let records: Vec<Vec<u8>> = records.into_iter().map(ByteBuf::into_vec).collect();
                self.blocking("append", move |store| {
                    store.append(first_index, &records, &checkpoint)
                })
                .await
                .map(|size| StoreResponse::Appended { size })
            }
            StoreRequest::ReadRecords {
                from,
                max_count,
                max_bytes,
            } => {
                let count = max_count.min(MAX_RECORDS_PER_READ) as usize;
                let bytes = (max_bytes as usize).min(record_budget(self.max_frame_len, count));
                self.blocking("read records", move |store| {
                    store.read_records(from, count, bytes)
                })
                .await
                .map(|records| StoreResponse::Records {
                    from,
                    records: records.into_iter().map(ByteBuf::from).collect(),
                })
            }
            StoreRequest::ReadCheckpoints {
                from_size,
                max_count,
            } => {
                let count = max_count.min(MAX_CHECKPOINTS_PER_READ) as usize;
                let budget = self.max_frame_len.saturating_sub(REPLY_OVERHEAD);
                self.blocking("read checkpoints", move |store| {
                    store.read_checkpoints(from_size, count)
                })
                .await
                .map(|mut checkpoints| {
                    let fit = page_len(
                        checkpoints
                            .iter()
                            .map(|c| c.note.len() + PER_CHECKPOINT_OVERHEAD),
                        count,
                        budget,
                    );
                    checkpoints.truncate(fit);
                    StoreResponse::Checkpoints {
                        checkpoints: checkpoints.into_iter().map(|c| (c.size, c.note)).collect(),
                    }
                })
            }
            StoreRequest::PutSealedKey { sealed } => self
                .blocking("store the sealed key", move |store| {
                    store.put_sealed_key(&sealed)
                })
                .await
                .map(|()| StoreResponse::Stored),
            StoreRequest::GetSealedKey => self
                .blocking("read the sealed key", |store| store.get_sealed_key())
                .await
                .map(|sealed| StoreResponse::SealedKey {
                    sealed: sealed.map(ByteBuf::from),
                }),
            StoreRequest::GetCredentials => Ok(self.credentials().await),
            StoreRequest::SubmitToWitnesses { checkpoint } => Ok(StoreResponse::WitnessAnswers {
                answers: match &self.witnesses {
                    Some(witnesses) => witnesses.submit(&checkpoint).await,
                    None => Vec::new(),
                },
            }),
        };
        outcome.unwrap_or_else(|error| error)
    }
}

impl Handler<StoreRequest, StoreResponse> for StoreService {
    async fn handle(&self, request: StoreRequest) -> StoreResponse {
        self.answer(request).await
    }
}

/// Serves every connection accepted on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: Listener,
    service: StoreService,
    limits: ConnectionLimits,
    shutdown: watch::Receiver<bool>,
) {
    let mut connections = accept_until_shutdown(
        &listener,
        MAX_CONNECTIONS,
        "log store",
        &shutdown,
        |stream, peer| {
            tracing::info!(%peer, "log store connection");
            let service = service.clone();
            let shutdown = shutdown.clone();
            async move {
                serve_connection(stream, service, limits, shutdown).await;
                tracing::info!(%peer, "log store connection closed");
            }
        },
    )
    .await;
    // In-flight requests are answered before the connections close.
    while connections.join_next().await.is_some() {}
}

/// Serves until `shutdown`, on `bound` if the start-up bind succeeded, else on `address`
/// once it can be bound (see [`crate::listen::bind_with_retry`]).
pub async fn run(
    address: Address,
    bound: Option<Listener>,
    service: StoreService,
    limits: ConnectionLimits,
    shutdown: watch::Receiver<bool>,
) {
    let Some(listener) = bound_or_retry(bound, &address, "log store", &shutdown).await else {
        return;
    };
    tracing::info!(%address, "log store listening");
    serve(listener, service, limits, shutdown).await;
}
