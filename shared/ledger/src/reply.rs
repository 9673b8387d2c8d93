//! The JSON body of the enclave's answers, as the proxy relays them unchanged.
//!
//! A reply to a request that wrote records carries each record's canonical bytes with its
//! receipt, so the client can check, without trusting the proxy, that its own signed
//! request is in the record, that the record is in the log, and that an attested log key
//! signed the checkpoint (`govctl` does all three before it prints success).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ea_audit::Receipt;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::answer::Answer;

/// A successful reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reply {
    /// The answer.
    pub result: Answer,
    /// The records the request wrote, in order, with their receipts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<RecordProof>,
    /// The index of the `enclave_start` record whose attestation document binds the key
    /// that signed the receipts' checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_key_index: Option<u64>,
}

/// One record and the proof that it is in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordProof {
    /// The record's canonical CBOR bytes (base64 in JSON).
    #[serde(with = "base64_bytes")]
    pub record: Vec<u8>,
    /// Its receipt.
    pub receipt: Receipt,
}

/// An error reply: `{"error": {"code", "message"}}`, the shape every layer uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable snake_case code.
    pub code: String,
    /// For people.
    pub message: String,
}

impl ErrorReply {
    /// An error reply.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

/// The HTTP status of a refused signed request, by its code.
pub fn request_error_status(code: &str) -> u16 {
    match code {
        "unknown_key" | "revoked_key" | "bad_signature" | "high_s_signature"
        | "algorithm_mismatch" | "reserved_principal" | "stale_request" | "future_request" => 401,
        "replayed_request" => 409,
        "replay_cache_full" => 503,
        _ => 400,
    }
}

/// Serde helpers for bytes as standard base64 strings.
pub mod base64_bytes {
    use super::*;

    /// Serializes bytes as base64.
    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    /// Deserializes base64 into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text)
            .map_err(|_| serde::de::Error::custom("not standard base64"))
    }
}
