//! Answers the parent's messages: health, description and attestation at any time; the
//! genesis document and signed requests through the [`Service`].

use std::sync::Arc;

use ea_attestation::limits::MAX_NONCE_LEN;
use ea_attestation::Nsm;
use ea_protocol::rpc::Handler;
use ea_protocol::{EnclaveRequest, EnclaveResponse, ErrorCode, ErrorReply};
use serde_bytes::ByteBuf;

use crate::service::Service;

/// Answers the parent's requests.
#[derive(Clone)]
pub struct EnclaveHandler {
    service: Arc<Service>,
    nsm: Arc<dyn Nsm>,
}

impl EnclaveHandler {
    /// A handler over the service and its NSM.
    pub fn new(service: Arc<Service>, nsm: Arc<dyn Nsm>) -> Self {
        Self { service, nsm }
    }

    async fn attestation(&self, nonce: Option<ByteBuf>) -> EnclaveResponse {
        if let Some(nonce) = &nonce {
            if nonce.len() > MAX_NONCE_LEN {
                return EnclaveResponse::Error(ErrorReply::new(
                    ErrorCode::InvalidInput,
                    format!(
                        "the nonce is {} bytes; at most {MAX_NONCE_LEN} are accepted",
                        nonce.len()
                    ),
                ));
            }
        }
        let nsm = self.nsm.clone();
        // The NSM call blocks (an ioctl, or P-384 signing in the mock).
        let document = tokio::task::spawn_blocking(move || {
            nsm.attestation(None, nonce.as_deref().map(|n| n.as_slice()), None)
        })
        .await;
        match document {
            Ok(Ok(document)) => EnclaveResponse::Attestation {
                document: ByteBuf::from(document),
            },
            Ok(Err(error)) => EnclaveResponse::Error(ErrorReply::new(
                ErrorCode::AttestationFailed,
                format!("the NSM could not produce a document: {error}"),
            )),
            Err(_) => EnclaveResponse::Error(ErrorReply::new(
                ErrorCode::Internal,
                "the attestation task stopped unexpectedly",
            )),
        }
    }
}

impl Handler<EnclaveRequest, EnclaveResponse> for EnclaveHandler {
    async fn handle(&self, request: EnclaveRequest) -> EnclaveResponse {
        match request {
            EnclaveRequest::Health => EnclaveResponse::Health(self.service.health()),
            EnclaveRequest::Describe => EnclaveResponse::Describe(self.service.describe()),
            EnclaveRequest::Attestation { nonce } => self.attestation(nonce).await,
            EnclaveRequest::Genesis { document } => self.service.genesis(&document).await,
            EnclaveRequest::Signed { request } => self.service.signed(&request).await,
        }
    }
}
