//! Signed requests and the genesis document, relayed to the enclave byte for byte.
//!
//! The proxy cannot alter what it relays without the enclave noticing (the signature covers
//! the body), and cannot forge an answer that a client accepts (answers that change the log
//! carry receipts checked against an attested key). So these routes only move bytes and
//! translate transports:
//!
//! - `POST /v1/genesis`: the genesis document (JSON), once, while the enclave's log is empty;
//! - `POST /v1/requests`: a signed request, as `application/cbor` (the envelope's bytes) or
//!   JSON `{"signedRequest": "<base64 of the envelope>"}`;
//! - `GET` reads (`/v1/resources[/<scope>]`, `/v1/approvals[/<id>]`, `/v1/role-assignments`,
//!   `/v1/deny-assignments`, `/v1/principals[/<id>]`, `/v1/role-definitions`, `/v1/state`,
//!   `/v1/images`, `/v1/witnesses`): the signed read goes in the `X-Signed-Request` header (base64). The enclave answers the signed
//!   query, filtered to what the signer may read; the route must name the same kind of read.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ea_ledger::{Operation, Query};
use ea_protocol::signed::{decode_request_body, decode_signed_request};
use ea_protocol::{EnclaveRequest, EnclaveResponse};
use serde::Deserialize;
use serde_bytes::ByteBuf;

use crate::api::AppState;
use crate::error::ApiError;

/// The header a signed read travels in.
pub const SIGNED_REQUEST_HEADER: &str = "x-signed-request";

/// The routes, to be merged into the API router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/genesis", post(genesis))
        .route("/v1/requests", post(requests))
        .route("/v1/resources", get(read(ReadKind::Resources)))
        .route("/v1/resources/{*scope}", get(read(ReadKind::Resources)))
        .route("/v1/approvals", get(read(ReadKind::Approvals)))
        .route("/v1/approvals/{id}", get(read(ReadKind::Approvals)))
        .route("/v1/role-assignments", get(read(ReadKind::RoleAssignments)))
        .route("/v1/deny-assignments", get(read(ReadKind::DenyAssignments)))
        .route("/v1/principals", get(read(ReadKind::Principals)))
        .route("/v1/principals/{id}", get(read(ReadKind::Principals)))
        .route("/v1/role-definitions", get(read(ReadKind::RoleDefinitions)))
        .route("/v1/state", get(read(ReadKind::State)))
        .route("/v1/images", get(read(ReadKind::Images)))
        .route("/v1/witnesses", get(read(ReadKind::Witnesses)))
}

/// Relays an enclave answer: its status and JSON body unchanged, and the enclave's
/// signature over them in the `enclave-answer-signature` header.
fn relay(response: EnclaveResponse) -> Result<Response, ApiError> {
    match response {
        EnclaveResponse::Api {
            status,
            body,
            signature,
        } => {
            let status = StatusCode::from_u16(status).map_err(|_| {
                ApiError::bad_gateway(format!("the enclave answered HTTP status {status}"))
            })?;
            let signature = signature
                .map(|value| {
                    HeaderValue::from_str(&value).map_err(|_| {
                        ApiError::bad_gateway(
                            "the enclave's answer signature is not a header value",
                        )
                    })
                })
                .transpose()?;
            let mut response = (status, body.into_vec()).into_response();
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if let Some(signature) = signature {
                headers.insert(ea_audit::answer::ANSWER_HEADER, signature);
            }
            Ok(response)
        }
        other => Err(ApiError::bad_gateway(format!(
            "the enclave answered with an unexpected message: {other:?}"
        ))),
    }
}

async fn genesis(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let request = EnclaveRequest::Genesis {
        document: ByteBuf::from(body.to_vec()),
    };
    relay(state.ask(request).await?)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsonEnvelope {
    signed_request: String,
}

fn is_cbor(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().starts_with("application/cbor"))
}

async fn requests(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let bytes = if is_cbor(&headers) {
        body.to_vec()
    } else {
        let envelope: JsonEnvelope = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "expected application/cbor, or JSON {{\"signedRequest\": \"<base64>\"}}: {e}"
            ))
        })?;
        STANDARD
            .decode(envelope.signed_request.trim())
            .map_err(|_| ApiError::bad_request("signedRequest is not standard base64"))?
    };
    relay(
        state
            .ask(EnclaveRequest::Signed {
                request: ByteBuf::from(bytes),
            })
            .await?,
    )
}

/// The kind of read a GET route serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadKind {
    Resources,
    Approvals,
    RoleAssignments,
    DenyAssignments,
    Principals,
    RoleDefinitions,
    State,
    Images,
    Witnesses,
}

impl ReadKind {
    fn of(query: &Query) -> ReadKind {
        match query {
            Query::Resource { .. } | Query::Resources { .. } => ReadKind::Resources,
            Query::Approvals { .. } | Query::Approval { .. } => ReadKind::Approvals,
            Query::RoleAssignments { .. } => ReadKind::RoleAssignments,
            Query::DenyAssignments { .. } => ReadKind::DenyAssignments,
            Query::Principals { .. } => ReadKind::Principals,
            Query::RoleDefinitions => ReadKind::RoleDefinitions,
            Query::State => ReadKind::State,
            Query::Images => ReadKind::Images,
            Query::Witnesses => ReadKind::Witnesses,
        }
    }
}

/// What kind of read the signed request asks for. Only a hint for routing errors: the
/// enclave verifies the signature and answers the signed query, whatever the route.
fn signed_read_kind(bytes: &[u8]) -> Result<ReadKind, ApiError> {
    let not_a_read = || {
        ApiError::bad_request(format!(
            "{SIGNED_REQUEST_HEADER} must hold a signed read (govctl read --print-signed <kind> ...)"
        ))
    };
    let envelope =
        decode_signed_request(bytes).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let body = decode_request_body::<Operation>(&envelope).map_err(|_| not_a_read())?;
    match body.operation {
        Operation::Read(query) => Ok(ReadKind::of(&query)),
        _ => Err(not_a_read()),
    }
}

/// What a read handler returns.
type ReadFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, ApiError>> + Send>>;

/// The handler of a GET route serving reads of `kind`.
fn read(kind: ReadKind) -> impl Fn(State<AppState>, HeaderMap) -> ReadFuture + Clone + Send {
    move |State(state): State<AppState>, headers: HeaderMap| {
        Box::pin(async move {
            let header = headers.get(SIGNED_REQUEST_HEADER).ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "signature_required",
                    format!(
                        "reads are signed: put a signed read (govctl read --print-signed <kind> ...) in the \
                         {SIGNED_REQUEST_HEADER} header"
                    ),
                )
            })?;
            let text = header
                .to_str()
                .map_err(|_| ApiError::bad_request("the signed read is not ASCII base64"))?;
            let bytes = STANDARD
                .decode(text.trim())
                .map_err(|_| ApiError::bad_request("the signed read is not standard base64"))?;
            let signed = signed_read_kind(&bytes)?;
            if signed != kind {
                return Err(ApiError::bad_request(format!(
                    "this route serves {kind:?} reads, but the signed request reads {signed:?}"
                )));
            }
            relay(
                state
                    .ask(EnclaveRequest::Signed {
                        request: ByteBuf::from(bytes),
                    })
                    .await?,
            )
        })
    }
}
