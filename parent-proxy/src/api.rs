//! The REST routes, each a thin translation between JSON and an enclave request.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use ea_protocol::{Description, EnclaveRequest, EnclaveResponse};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::error::ApiError;
use crate::pool::EnclavePool;
use crate::store::SharedLogStore;

/// What every route needs.
#[derive(Clone)]
pub struct AppState {
    /// Connections to the enclave.
    pub pool: Arc<EnclavePool>,
    /// Longest wait for the enclave's answer to one request.
    pub request_timeout: Duration,
    /// The durable log store, read by the export routes (`crate::log_routes`).
    pub log: SharedLogStore,
    /// The log's leaf hashes, for consistency proofs.
    pub leaves: crate::log_routes::LeafCache,
}

impl AppState {
    pub(crate) async fn ask(&self, request: EnclaveRequest) -> Result<EnclaveResponse, ApiError> {
        match self.pool.call(&request, self.request_timeout).await? {
            EnclaveResponse::Error(reply) => Err(ApiError::from_enclave(reply)),
            response => Ok(response),
        }
    }
}

/// All routes of the API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/enclave", get(describe))
        .route("/v1/attestation", get(attestation))
        .merge(crate::log_routes::routes())
        .merge(crate::requests::routes())
        .fallback(not_found)
        .with_state(state)
}

/// What proves an answer of the unsigned routes (docs/api.md): answers to signed requests
/// carry the enclave's signature instead (`enclave-answer-signature`).
pub const PROOF_HEADER: &str = "enclave-answer-proof";
const HEALTH_PROOF: &str =
    "none: unsigned, relayed by the parent; the signed answer to a request proves the enclave serves";
const DESCRIBE_PROOF: &str =
    "none: unsigned, relayed by the parent; hints only, govctl checks the records they name";
const ATTESTATION_PROOF: &str =
    "the document itself: COSE_Sign1 chained to the attestation root, with your nonce inside";

fn unexpected(response: &EnclaveResponse) -> ApiError {
    ApiError::bad_gateway(format!(
        "the enclave answered with an unexpected message: {response:?}"
    ))
}

/// 200 only when the enclave serves; while it starts, waits for its genesis or has failed
/// to verify its log, 503 with its phase and why.
async fn health(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    match state.ask(EnclaveRequest::Health).await? {
        EnclaveResponse::Health(report) if report.status == "ok" => {
            Ok(([(PROOF_HEADER, HEALTH_PROOF)], Json(report)))
        }
        EnclaveResponse::Health(report) => Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "enclave_not_ready",
            format!(
                "the enclave is {}: {}",
                report.status,
                report.detail.unwrap_or_default()
            ),
        )),
        other => Err(unexpected(&other)),
    }
}

async fn describe(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    match state.ask(EnclaveRequest::Describe).await? {
        EnclaveResponse::Describe(description) => Ok((
            [(PROOF_HEADER, DESCRIBE_PROOF)],
            Json::<Description>(description),
        )),
        other => Err(unexpected(&other)),
    }
}

#[derive(Deserialize)]
struct AttestationQuery {
    nonce: Option<String>,
}

#[derive(Serialize)]
struct AttestationReply {
    /// Base64 of the COSE_Sign1 document.
    document: String,
}

async fn attestation(
    State(state): State<AppState>,
    query: Result<Query<AttestationQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let nonce = match query.nonce {
        Some(text) => Some(ByteBuf::from(
            hex::decode(&text).map_err(|_| ApiError::bad_request("nonce must be hex"))?,
        )),
        None => None,
    };
    match state.ask(EnclaveRequest::Attestation { nonce }).await? {
        EnclaveResponse::Attestation { document } => Ok((
            [(PROOF_HEADER, ATTESTATION_PROOF)],
            Json(AttestationReply {
                document: base64::engine::general_purpose::STANDARD.encode(document),
            }),
        )),
        other => Err(unexpected(&other)),
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(uri.path())
}
