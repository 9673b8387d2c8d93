//! The enclave's client of the parent's log store. The parent is untrusted: what it answers
//! is checked by the callers (records against checkpoints, sealed keys by their AEAD tag).

use std::sync::Arc;
use std::time::Duration;

use ea_protocol::rpc::{CallError, Connection, ConnectionLimits};
use ea_protocol::{Address, ErrorCode, StoreRequest, StoreResponse};
use serde_bytes::ByteBuf;
use tokio::sync::Mutex;

type StoreConnection = Connection<StoreRequest, StoreResponse>;

/// Why the store did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection could be made.
    #[error("the log store at {address} is unreachable: {source}")]
    Unreachable {
        /// The store's address.
        address: Address,
        /// Why.
        source: std::io::Error,
    },
    /// The connection closed or broke before the answer.
    #[error("the connection to the log store broke: {0}")]
    Call(#[from] CallError),
    /// No answer in time.
    #[error("the log store did not answer within {0:?}")]
    Timeout(Duration),
    /// The store refused.
    #[error("the log store refused: {code}: {message}")]
    Refused {
        /// Its code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// An answer of the wrong kind.
    #[error("the log store answered {0} to {1}")]
    Unexpected(&'static str, &'static str),
}

/// A reconnecting client of the store.
pub struct StoreClient {
    address: Address,
    limits: ConnectionLimits,
    timeout: Duration,
    connection: Mutex<Option<Arc<StoreConnection>>>,
}

fn kind(response: &StoreResponse) -> &'static str {
    match response {
        StoreResponse::Head { .. } => "Head",
        StoreResponse::Appended { .. } => "Appended",
        StoreResponse::Records { .. } => "Records",
        StoreResponse::Checkpoints { .. } => "Checkpoints",
        StoreResponse::Stored => "Stored",
        StoreResponse::SealedKey { .. } => "SealedKey",
        StoreResponse::Credentials { .. } => "Credentials",
        StoreResponse::WitnessAnswers { .. } => "WitnessAnswers",
        StoreResponse::Error(_) => "Error",
    }
}

impl StoreClient {
    /// A client of the store at `address`; connects on first use.
    pub fn new(address: Address, limits: ConnectionLimits, timeout: Duration) -> Self {
        Self {
            address,
            limits,
            timeout,
            connection: Mutex::new(None),
        }
    }

    /// The store's address.
    pub fn address(&self) -> &Address {
        &self.address
    }

    async fn connection(&self) -> Result<Arc<StoreConnection>, StoreError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            if !connection.is_closed() {
                return Ok(connection.clone());
            }
        }
        let connection = tokio::time::timeout(
            self.timeout,
            StoreConnection::connect(&self.address, self.limits),
        )
        .await
        .map_err(|_| StoreError::Timeout(self.timeout))?
        .map_err(|source| StoreError::Unreachable {
            address: self.address.clone(),
            source,
        })?;
        let connection = Arc::new(connection);
        *slot = Some(connection.clone());
        Ok(connection)
    }

    async fn call(&self, request: &StoreRequest) -> Result<StoreResponse, StoreError> {
        let connection = self.connection().await?;
        match tokio::time::timeout(self.timeout, connection.call(request)).await {
            Err(_) => Err(StoreError::Timeout(self.timeout)),
            Ok(Err(error)) => Err(error.into()),
            Ok(Ok(StoreResponse::Error(reply))) => Err(StoreError::Refused {
                code: reply.code,
                message: reply.message,
            }),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// Asks the parent to submit `checkpoint` to its witnesses now; their answers, unchecked.
    pub async fn submit_to_witnesses(
        &self,
        checkpoint: String,
    ) -> Result<Vec<ea_protocol::WitnessReply>, StoreError> {
        match self
            .call(&StoreRequest::SubmitToWitnesses { checkpoint })
            .await?
        {
            StoreResponse::WitnessAnswers { answers } => Ok(answers),
            other => Err(StoreError::Unexpected(kind(&other), "WitnessAnswers")),
        }
    }

    /// The number of stored records and the latest checkpoint.
    pub async fn head(&self) -> Result<(u64, Option<String>), StoreError> {
        match self.call(&StoreRequest::Head).await? {
            StoreResponse::Head { size, checkpoint } => Ok((size, checkpoint)),
            other => Err(StoreError::Unexpected(kind(&other), "Head")),
        }
    }

    /// Appends records with their checkpoint; returns once the store says they are durable.
    pub async fn append(
        &self,
        first_index: u64,
        records: Vec<Vec<u8>>,
        checkpoint: String,
    ) -> Result<u64, StoreError> {
        let expected = first_index + records.len() as u64;
        let request = StoreRequest::Append {
            first_index,
            records: records.into_iter().map(ByteBuf::from).collect(),
            checkpoint,
        };
        match self.call(&request).await? {
            StoreResponse::Appended { size } if size == expected => Ok(size),
            StoreResponse::Appended { .. } => Err(StoreError::Unexpected("a wrong size", "Append")),
            other => Err(StoreError::Unexpected(kind(&other), "Append")),
        }
    }

    /// One page of records from `from`.
    pub async fn read_records(
        &self,
        from: u64,
        max_count: u32,
        max_bytes: u32,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        match self
            .call(&StoreRequest::ReadRecords {
                from,
                max_count,
                max_bytes,
            })
            .await?
        {
            StoreResponse::Records { from: got, records } if got == from => {
                Ok(records.into_iter().map(ByteBuf::into_vec).collect())
            }
            StoreResponse::Records { .. } => Err(StoreError::Unexpected(
                "records from another index",
                "ReadRecords",
            )),
            other => Err(StoreError::Unexpected(kind(&other), "ReadRecords")),
        }
    }

    /// One page of checkpoints for sizes from `from_size`.
    pub async fn read_checkpoints(
        &self,
        from_size: u64,
        max_count: u32,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        match self
            .call(&StoreRequest::ReadCheckpoints {
                from_size,
                max_count,
            })
            .await?
        {
            StoreResponse::Checkpoints { checkpoints } => Ok(checkpoints),
            other => Err(StoreError::Unexpected(kind(&other), "ReadCheckpoints")),
        }
    }

    /// Stores the sealed log key.
    pub async fn put_sealed_key(&self, sealed: Vec<u8>) -> Result<(), StoreError> {
        match self
            .call(&StoreRequest::PutSealedKey {
                sealed: ByteBuf::from(sealed),
            })
            .await?
        {
            StoreResponse::Stored => Ok(()),
            other => Err(StoreError::Unexpected(kind(&other), "PutSealedKey")),
        }
    }

    /// The sealed log key, if one was stored.
    pub async fn get_sealed_key(&self) -> Result<Option<Vec<u8>>, StoreError> {
        match self.call(&StoreRequest::GetSealedKey).await? {
            StoreResponse::SealedKey { sealed } => Ok(sealed.map(ByteBuf::into_vec)),
            other => Err(StoreError::Unexpected(kind(&other), "GetSealedKey")),
        }
    }
}
