//! AWS credentials for the enclave's KMS calls, from the parent.
//!
//! The enclave has no network and no instance metadata; the parent fetches the instance
//! role's short-lived credentials (IMDSv2) and answers [`StoreRequest::GetCredentials`] on
//! the store service. [`ParentCredentials`] is the SDK's credentials provider over that:
//! it asks when it has nothing or what it has expires within five minutes, and keeps the
//! answer otherwise. The parent learns nothing from this it did not have: the credentials
//! are its own, and KMS releases keys only against an attestation document.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::{self, future, ProvideCredentials};
use aws_credential_types::Credentials;
use ea_protocol::rpc::{CallError, Connection, ConnectionLimits};
use ea_protocol::{Address, ErrorCode, StoreRequest, StoreResponse};

/// Credentials are fetched again when they expire within this margin.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// How long one fetch from the parent may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the parent gave no credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// No connection to the parent's store service.
    #[error("the parent's store service at {address} is unreachable: {source}")]
    Unreachable {
        /// Its address.
        address: Address,
        /// Why.
        source: std::io::Error,
    },
    /// The connection broke.
    #[error("asking the parent for credentials failed: {0}")]
    Call(#[from] CallError),
    /// No answer in time.
    #[error("the parent did not answer the credentials request within {0:?}")]
    Timeout(Duration),
    /// The parent refused (e.g. started without `--aws-credentials`, or IMDS failed).
    #[error("the parent has no credentials for the enclave: {code}: {message}")]
    Refused {
        /// Its code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// An answer of another kind.
    #[error("the parent answered a credentials request with something else")]
    Unexpected,
    /// Credentials that expired already.
    #[error("the parent's credentials expired at {expiration_ms} ms since the epoch")]
    Expired {
        /// Their expiry.
        expiration_ms: u64,
    },
}

/// The future a [`CredentialsSource`] returns.
pub type FetchFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Credentials, CredentialsError>> + Send + 'a>>;

/// Where fresh credentials come from. [`StoreCredentialsSource`] asks the parent's store
/// service on a connection of its own; an enclave that already holds a store client can
/// implement this over it instead.
pub trait CredentialsSource: Send + Sync + std::fmt::Debug + 'static {
    /// Fetches credentials.
    fn fetch(&self) -> FetchFuture<'_>;
}

/// Converts the store's answer into SDK credentials.
pub fn credentials_from_reply(reply: StoreResponse) -> Result<Credentials, CredentialsError> {
    match reply {
        StoreResponse::Credentials {
            access_key_id,
            secret_access_key,
            session_token,
            expiration_ms,
        } => Ok(Credentials::new(
            access_key_id,
            secret_access_key.expose(),
            session_token.map(|t| t.expose().to_owned()),
            expiration_ms.map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            "parent-instance",
        )),
        StoreResponse::Error(reply) => Err(CredentialsError::Refused {
            code: reply.code,
            message: reply.message,
        }),
        _ => Err(CredentialsError::Unexpected),
    }
}

/// Asks the parent's store service ([`StoreRequest::GetCredentials`]), one connection per
/// fetch (credentials are fetched about once an hour).
#[derive(Debug, Clone)]
pub struct StoreCredentialsSource {
    address: Address,
    limits: ConnectionLimits,
    timeout: Duration,
}

impl StoreCredentialsSource {
    /// A source asking the store service at `address` (`vsock:3:5001` in an enclave).
    pub fn new(address: Address) -> Self {
        Self {
            address,
            limits: ConnectionLimits::default(),
            timeout: FETCH_TIMEOUT,
        }
    }
}

impl CredentialsSource for StoreCredentialsSource {
    fn fetch(&self) -> FetchFuture<'_> {
        Box::pin(async move {
            let ask = async {
                let connection =
                    Connection::<StoreRequest, StoreResponse>::connect(&self.address, self.limits)
                        .await
                        .map_err(|source| CredentialsError::Unreachable {
                            address: self.address.clone(),
                            source,
                        })?;
                credentials_from_reply(connection.call(&StoreRequest::GetCredentials).await?)
            };
            tokio::time::timeout(self.timeout, ask)
                .await
                .map_err(|_| CredentialsError::Timeout(self.timeout))?
        })
    }
}

/// The SDK's credentials provider over a [`CredentialsSource`], with a cache.
#[derive(Debug)]
pub struct ParentCredentials<S> {
    source: S,
    cached: tokio::sync::Mutex<Option<Credentials>>,
}

impl<S: CredentialsSource> ParentCredentials<S> {
    /// A provider asking `source`.
    pub fn new(source: S) -> Self {
        Self {
            source,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// Cached credentials while they have more than [`REFRESH_MARGIN`] left, else fresh
    /// ones from the source.
    pub async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        if let Some(credentials) = cached.as_ref() {
            let fresh = credentials
                .expiry()
                .is_none_or(|expiry| expiry > now + REFRESH_MARGIN);
            if fresh {
                return Ok(credentials.clone());
            }
        }
        let credentials = self.source.fetch().await?;
        if let Some(expiry) = credentials.expiry() {
            if expiry <= now {
                let expiration_ms = expiry
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                return Err(CredentialsError::Expired { expiration_ms });
            }
        }
        *cached = Some(credentials.clone());
        Ok(credentials)
    }
}

impl<S: CredentialsSource> ProvideCredentials for ParentCredentials<S> {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.credentials()
                .await
                .map_err(provider::error::CredentialsError::provider_error)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "test")]

    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[derive(Debug)]
    struct Counting {
        calls: AtomicU32,
        lifetime: Option<Duration>,
    }

    impl CredentialsSource for Counting {
        fn fetch(&self) -> FetchFuture<'_> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst);
                Ok(Credentials::new(
                    format!("ASIA{n}"),
                    "secret",
                    Some("token".into()),
                    self.lifetime.map(|l| SystemTime::now() + l),
                    "test",
                ))
            })
        }
    }

    #[tokio::test]
    async fn caches_until_shortly_before_expiry() {
        let long = ParentCredentials::new(Counting {
            calls: AtomicU32::new(0),
            lifetime: Some(Duration::from_secs(3600)),
        });
        assert_eq!(long.credentials().await.unwrap().access_key_id(), "ASIA0");
        assert_eq!(long.credentials().await.unwrap().access_key_id(), "ASIA0");

        // Four minutes left is inside the refresh margin: every call asks again.
        let short = ParentCredentials::new(Counting {
            calls: AtomicU32::new(0),
            lifetime: Some(Duration::from_secs(240)),
        });
        assert_eq!(short.credentials().await.unwrap().access_key_id(), "ASIA0");
        assert_eq!(short.credentials().await.unwrap().access_key_id(), "ASIA1");

        let static_profile = ParentCredentials::new(Counting {
            calls: AtomicU32::new(0),
            lifetime: None,
        });
        static_profile.credentials().await.unwrap();
        assert_eq!(
            static_profile.credentials().await.unwrap().access_key_id(),
            "ASIA0"
        );
    }

    #[test]
    fn store_replies_convert() {
        let reply = StoreResponse::Credentials {
            access_key_id: "ASIAX".into(),
            secret_access_key: ea_protocol::Secret::new("s"),
            session_token: None,
            expiration_ms: Some(1_000),
        };
        let credentials = credentials_from_reply(reply).unwrap();
        assert_eq!(credentials.secret_access_key(), "s");
        assert_eq!(
            credentials.expiry(),
            Some(UNIX_EPOCH + Duration::from_secs(1))
        );
        let refused = credentials_from_reply(StoreResponse::Error(ea_protocol::ErrorReply::new(
            ErrorCode::InvalidInput,
            "no credentials source",
        )));
        assert!(matches!(refused, Err(CredentialsError::Refused { .. })));
        assert!(matches!(
            credentials_from_reply(StoreResponse::Stored),
            Err(CredentialsError::Unexpected)
        ));
    }
}
