//! Errors as clients see them: `{"error": {"code", "message"}}` with the matching HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ea_protocol::{ErrorCode, ErrorReply};

/// An error answered to an HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: String,
    /// What happened, for a person.
    pub message: String,
}

impl ApiError {
    /// Builds an error.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// 400: the client sent something we cannot use.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 413: the body is over the limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body exceeds the limit of {limit} bytes"),
        )
    }

    /// 503: the enclave cannot be reached.
    pub fn enclave_unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "enclave_unavailable",
            message,
        )
    }

    /// 503: too many requests in flight.
    pub fn overloaded(limit: usize) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!("{limit} requests are already in flight; retry shortly"),
        )
    }

    /// 503: too many client connections are open.
    pub fn too_many_connections(limit: usize) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            format!("{limit} client connections are already open; retry shortly"),
        )
    }

    /// 504: the enclave did not answer in time.
    pub fn timeout(after_ms: u128) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("the enclave did not answer within {after_ms} ms"),
        )
    }

    /// 404: no such route.
    pub fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {path}"),
        )
    }

    /// 502: the enclave answered something that is not an answer to our question.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "bad_enclave_reply", message)
    }

    /// Maps an error the enclave answered to the HTTP status that says whose fault it was.
    pub fn from_enclave(reply: ErrorReply) -> Self {
        let status = match &reply.code {
            ErrorCode::FrameTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Overloaded | ErrorCode::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            // The proxy built these frames: a mismatch between proxy and enclave versions.
            ErrorCode::MalformedFrame
            | ErrorCode::UnsupportedVersion
            | ErrorCode::UnknownMessage
            | ErrorCode::MalformedMessage
            | ErrorCode::ResponseTooLarge => StatusCode::BAD_GATEWAY,
            ErrorCode::Internal | ErrorCode::AttestationFailed => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorCode::StoreConflict
            | ErrorCode::StorageFailed
            | ErrorCode::CredentialsUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Other(_) => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            code: reply.code.as_str().to_owned(),
            message: reply.message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, axum::Json(body)).into_response()
    }
}
