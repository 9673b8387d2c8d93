//! Versioned messages inside frames, and their decoding with a typed error per failure.
//!
//! Every frame body is the CBOR map `{v: protocol version, id: request id, body: message}`.
//! The request id lets one connection carry many requests at once; replies carry the id of
//! the request they answer. Id 0 is reserved for errors about a frame whose id could not be
//! read.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// The request id used for replies to frames whose own id could not be read.
pub const UNKNOWN_REQUEST_ID: u64 = 0;

/// A message type that can travel in a frame.
pub trait WireMessage: Serialize + DeserializeOwned + Send + 'static {
    /// The names of every message kind of this type, as they appear on the wire. A body whose
    /// kind is not listed is reported as an unknown message rather than a malformed one.
    const KINDS: &'static [&'static str];
}

/// A message type that answers requests: it must be able to carry an error.
pub trait WireReply: WireMessage {
    /// Wraps an error into a reply.
    fn from_error(error: ErrorReply) -> Self;
}

/// Machine-readable error codes, shared by every layer from the frame to the policy engine.
///
/// They travel as snake_case strings; a code this build does not know is kept as
/// [`ErrorCode::Other`] so that newer peers remain understandable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ErrorCode {
    /// A frame exceeded the size limit; the connection is closed.
    FrameTooLarge,
    /// A frame body is not a single well-formed CBOR item.
    MalformedFrame,
    /// The frame's protocol version is not one this build speaks.
    UnsupportedVersion,
    /// The message kind is not one this build knows.
    UnknownMessage,
    /// The message kind is known but its fields are wrong.
    MalformedMessage,
    /// The reply would not fit in a frame.
    ResponseTooLarge,
    /// Too many requests are in flight; try again later.
    Overloaded,
    /// The service is shutting down.
    ShuttingDown,
    /// The service failed in a way that is not the caller's fault.
    Internal,
    /// An append did not start at the end of the log (another writer, or a stale view).
    StoreConflict,
    /// The store could not make data durable (disk full, I/O error); nothing was written.
    StorageFailed,
    /// A field of the request is out of range or of the wrong shape.
    InvalidInput,
    /// The NSM could not produce an attestation document.
    AttestationFailed,
    /// The parent has no AWS credentials to give (none configured, or IMDS failed).
    CredentialsUnavailable,
    /// A code this build does not know.
    Other(String),
}

impl ErrorCode {
    /// The code as it appears on the wire and in HTTP error bodies.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::MalformedFrame => "malformed_frame",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::UnknownMessage => "unknown_message",
            ErrorCode::MalformedMessage => "malformed_message",
            ErrorCode::ResponseTooLarge => "response_too_large",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Internal => "internal",
            ErrorCode::StoreConflict => "store_conflict",
            ErrorCode::StorageFailed => "storage_failed",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::AttestationFailed => "attestation_failed",
            ErrorCode::CredentialsUnavailable => "credentials_unavailable",
            ErrorCode::Other(code) => code,
        }
    }

    /// Every code this build knows, for tests and documentation.
    pub const KNOWN: &'static [ErrorCode] = &[
        ErrorCode::FrameTooLarge,
        ErrorCode::MalformedFrame,
        ErrorCode::UnsupportedVersion,
        ErrorCode::UnknownMessage,
        ErrorCode::MalformedMessage,
        ErrorCode::ResponseTooLarge,
        ErrorCode::Overloaded,
        ErrorCode::ShuttingDown,
        ErrorCode::Internal,
        ErrorCode::StoreConflict,
        ErrorCode::StorageFailed,
        ErrorCode::InvalidInput,
        ErrorCode::AttestationFailed,
        ErrorCode::CredentialsUnavailable,
    ];
}

impl From<String> for ErrorCode {
    fn from(code: String) -> Self {
        ErrorCode::KNOWN
            .iter()
            .find(|known| known.as_str() == code)
            .cloned()
            .unwrap_or(ErrorCode::Other(code))
    }
}

impl From<ErrorCode> for String {
    fn from(code: ErrorCode) -> Self {
        code.as_str().to_owned()
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error carried in a reply: a code for programs and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What kind of failure.
    pub code: ErrorCode,
    /// A sentence that says what failed and, where it helps, what to do.
    pub message: String,
}

impl ErrorReply {
    /// Builds an error reply.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// A decoded frame body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<T> {
    /// The request id.
    pub id: u64,
    /// The message.
    pub body: T,
}

#[derive(Serialize)]
struct EnvelopeRef<'a, T> {
    v: u16,
    id: u64,
    body: &'a T,
}

/// Why a frame body is not a message we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not one well-formed CBOR item (or bytes after it).
    #[error("frame is not a single CBOR item: {0}")]
    NotCbor(String),
    /// CBOR, but not a map with `v`, `id` and `body`.
    #[error("frame is not a message envelope: {0}")]
    NotAnEnvelope(&'static str),
    /// A protocol version this build does not speak.
    #[error("protocol version {version} is not supported (this build speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion {
        /// The request id, for the reply.
        id: u64,
        /// The version the peer sent.
        version: u64,
    },
    /// A message kind this build does not know.
    #[error("unknown message kind {kind:?}")]
    UnknownMessage {
        /// The request id, for the reply.
        id: u64,
        /// The kind the peer sent.
        kind: String,
    },
    /// A known message kind with wrong fields.
    #[error("malformed message: {reason}")]
    Malformed {
        /// The request id, for the reply.
        id: u64,
        /// What the decoder objected to.
        reason: String,
    },
}

impl DecodeError {
    /// The id of the request this error is about, or [`UNKNOWN_REQUEST_ID`].
    pub fn request_id(&self) -> u64 {
        match self {
            DecodeError::NotCbor(_) | DecodeError::NotAnEnvelope(_) => UNKNOWN_REQUEST_ID,
            DecodeError::UnsupportedVersion { id, .. }
            | DecodeError::UnknownMessage { id, .. }
            | DecodeError::Malformed { id, .. } => *id,
        }
    }

    /// The error code a reply to this frame carries.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::NotCbor(_) | DecodeError::NotAnEnvelope(_) => ErrorCode::MalformedFrame,
            DecodeError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            DecodeError::UnknownMessage { .. } => ErrorCode::UnknownMessage,
            DecodeError::Malformed { .. } => ErrorCode::MalformedMessage,
        }
    }

    /// The reply a peer gets for this frame.
    pub fn to_reply(&self) -> ErrorReply {
        ErrorReply::new(self.code(), self.to_string())
    }
}

/// Why a message could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("message could not be encoded as CBOR: {0}")]
pub struct EncodeError(String);

/// Encodes `body` with request id `id` into a frame body.
pub fn encode_message<T: Serialize>(id: u64, body: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    ciborium::into_writer(
        &EnvelopeRef {
            v: PROTOCOL_VERSION,
            id,
            body,
        },
        &mut out,
    )
    .map_err(|e| EncodeError(e.to_string()))?;
    Ok(out)
}

/// Decodes a frame body into a message of type `T`.
pub fn decode_message<T: WireMessage>(frame: &[u8]) -> Result<Envelope<T>, DecodeError> {
    use ciborium::Value;

    let mut rest = frame;
    let value: Value =
        ciborium::from_reader(&mut rest).map_err(|e| DecodeError::NotCbor(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::NotCbor(format!(
            "{} bytes follow the first item",
            rest.len()
        )));
    }
    let Value::Map(entries) = value else {
        return Err(DecodeError::NotAnEnvelope("not a map"));
    };
    let mut version = None;
    let mut id = None;
    let mut body = None;
    for (key, value) in entries {
        match key.as_text() {
            Some("v") => version = Some(value),
            Some("id") => id = Some(value),
            Some("body") => body = Some(value),
            _ => return Err(DecodeError::NotAnEnvelope("unexpected key")),
        }
    }
    let id = id
        .and_then(|v| v.as_integer())
        .and_then(|i| u64::try_from(i).ok())
        .ok_or(DecodeError::NotAnEnvelope("missing or invalid id"))?;
    let version = version
        .and_then(|v| v.as_integer())
        .and_then(|i| u64::try_from(i).ok())
        .ok_or(DecodeError::Malformed {
            id,
            reason: "missing or invalid v".into(),
        })?;
    if version != u64::from(PROTOCOL_VERSION) {
        return Err(DecodeError::UnsupportedVersion { id, version });
    }
    let body = body.ok_or(DecodeError::Malformed {
        id,
        reason: "missing body".into(),
    })?;
    let kind = message_kind(&body);
    match body.deserialized::<T>() {
        Ok(body) => Ok(Envelope { id, body }),
        Err(error) => match kind {
            Some(kind) if !T::KINDS.contains(&kind.as_str()) => {
                Err(DecodeError::UnknownMessage { id, kind })
            }
            _ => Err(DecodeError::Malformed {
                id,
                reason: error.to_string(),
            }),
        },
    }
}

/// The kind of an externally tagged message: a bare string or a one-entry map's key.
fn message_kind(body: &ciborium::Value) -> Option<String> {
    match body {
        ciborium::Value::Text(kind) => Some(kind.clone()),
        ciborium::Value::Map(entries) if entries.len() == 1 => entries
            .first()
            .and_then(|(k, _)| k.as_text())
            .map(str::to_owned),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Sample {
        Ping,
        Echo { text: String },
    }

    impl WireMessage for Sample {
        const KINDS: &'static [&'static str] = &["Ping", "Echo"];
    }

    fn raw(value: &ciborium::Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).unwrap();
        out
    }

    fn envelope(v: i64, id: i64, body: ciborium::Value) -> ciborium::Value {
        ciborium::Value::Map(vec![
            ("v".into(), v.into()),
            ("id".into(), id.into()),
            ("body".into(), body),
        ])
    }

    #[test]
    fn round_trip() {
        let bytes = encode_message(7, &Sample::Echo { text: "hi".into() }).unwrap();
        let decoded = decode_message::<Sample>(&bytes).unwrap();
        assert_eq!(
            decoded,
            Envelope {
                id: 7,
                body: Sample::Echo { text: "hi".into() }
            }
        );
        let bytes = encode_message(8, &Sample::Ping).unwrap();
        assert_eq!(decode_message::<Sample>(&bytes).unwrap().body, Sample::Ping);
    }

    #[test]
    fn not_cbor() {
        let err = decode_message::<Sample>(&[0xff, 0x00]).unwrap_err();
        assert!(matches!(err, DecodeError::NotCbor(_)), "{err:?}");
        assert_eq!(err.request_id(), UNKNOWN_REQUEST_ID);
        assert_eq!(err.code(), ErrorCode::MalformedFrame);
        assert!(matches!(
            decode_message::<Sample>(&[]),
            Err(DecodeError::NotCbor(_))
        ));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode_message(1, &Sample::Ping).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode_message::<Sample>(&bytes),
            Err(DecodeError::NotCbor(_))
        ));
    }

    #[test]
    fn not_an_envelope() {
        let bytes = raw(&ciborium::Value::Integer(5.into()));
        assert!(matches!(
            decode_message::<Sample>(&bytes),
            Err(DecodeError::NotAnEnvelope(_))
        ));
        let no_id = raw(&ciborium::Value::Map(vec![("v".into(), 1.into())]));
        assert!(matches!(
            decode_message::<Sample>(&no_id),
            Err(DecodeError::NotAnEnvelope(_))
        ));
    }

    #[test]
    fn unknown_version_keeps_the_id() {
        let bytes = raw(&envelope(2, 42, "Ping".into()));
        let err = decode_message::<Sample>(&bytes).unwrap_err();
        assert_eq!(err, DecodeError::UnsupportedVersion { id: 42, version: 2 });
        assert_eq!(err.code(), ErrorCode::UnsupportedVersion);
        assert_eq!(err.request_id(), 42);
    }

    #[test]
    fn unknown_message_and_malformed_message_differ() {
        let bytes = raw(&envelope(1, 3, "Launch".into()));
        let err = decode_message::<Sample>(&bytes).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnknownMessage {
                id: 3,
                kind: "Launch".into()
            }
        );

        let wrong_field = ciborium::Value::Map(vec![(
            "Echo".into(),
            ciborium::Value::Map(vec![("text".into(), 5.into())]),
        )]);
        let err = decode_message::<Sample>(&raw(&envelope(1, 4, wrong_field))).unwrap_err();
        assert!(
            matches!(err, DecodeError::Malformed { id: 4, .. }),
            "{err:?}"
        );
        assert_eq!(err.code(), ErrorCode::MalformedMessage);
    }

    #[test]
    fn error_codes_round_trip_as_strings() {
        for code in ErrorCode::KNOWN {
            let mut out = Vec::new();
            ciborium::into_writer(code, &mut out).unwrap();
            let back: ErrorCode = ciborium::from_reader(out.as_slice()).unwrap();
            assert_eq!(&back, code);
        }
        assert_eq!(
            ErrorCode::from("from_the_future".to_owned()),
            ErrorCode::Other("from_the_future".into())
        );
    }
}
