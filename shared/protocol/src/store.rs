//! Messages between the enclave and the parent's durable log store.
//!
//! The enclave connects to the parent (vsock CID 3 in production) and asks it to append
//! records, read them back, and keep sealed keys. Nothing the store answers is believed
//! without verification: records are checked against signed checkpoints, sealed keys are
//! authenticated ciphertext. The store can lose or withhold data, never forge it unnoticed.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::message::{ErrorReply, WireMessage, WireReply};

/// The default vsock port of the parent's store service.
pub const DEFAULT_STORE_PORT: u32 = 5001;

/// Most records returned by one read, whatever the caller asks for.
pub const MAX_RECORDS_PER_READ: u32 = 4096;

/// Most checkpoints returned by one read.
pub const MAX_CHECKPOINTS_PER_READ: u32 = 4096;

/// What the enclave asks the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreRequest {
    /// The number of records and the latest checkpoint.
    Head,
    /// Appends `records` at index `first_index` together with the checkpoint that covers
    /// them, in one durable step (fsync) before answering. Refused unless `first_index` is
    /// the current number of records, so two writers can never fork the log.
    Append {
        /// Index of the first record; must equal the store's current size.
        first_index: u64,
        /// Canonical record encodings.
        records: Vec<ByteBuf>,
        /// The signed checkpoint (signed-note text) for size `first_index + records.len()`.
        checkpoint: String,
    },
    /// Records from index `from`, at most `max_count` (capped at [`MAX_RECORDS_PER_READ`])
    /// and stopping before the reply would exceed `max_bytes`.
    ReadRecords {
        /// First index.
        from: u64,
        /// Most records wanted.
        max_count: u32,
        /// Most record bytes wanted (at least one record is returned if any exists).
        max_bytes: u32,
    },
    /// Checkpoints for tree sizes of at least `from_size`, in increasing size order.
    ReadCheckpoints {
        /// Smallest tree size wanted.
        from_size: u64,
        /// Most checkpoints wanted (capped at [`MAX_CHECKPOINTS_PER_READ`]).
        max_count: u32,
    },
    /// Stores (replaces) the sealed log key blob.
    PutSealedKey {
        /// Opaque to the store: authenticated ciphertext and the KMS data key ciphertext.
        sealed: ByteBuf,
    },
    /// Returns the sealed log key blob, if one was stored.
    GetSealedKey,
    /// Returns short-lived AWS credentials of the parent instance's role, for the enclave's
    /// own (TLS-protected) calls to KMS. Signing with them is all they are good for: KMS
    /// releases keys only to a request whose attestation document the key policy accepts.
    GetCredentials,
    /// Submits `checkpoint` (a signed note) to every witness the parent is configured with,
    /// now, and returns their answers as they came. The enclave asks this at start when its
    /// log names a witness set, and trusts nothing in the answer but cosignatures it verifies
    /// itself (docs/audit-log.md section 9).
    SubmitToWitnesses {
        /// The checkpoint note.
        checkpoint: String,
    },
}

impl WireMessage for StoreRequest {
    const KINDS: &'static [&'static str] = &[
        "Head",
        "Append",
        "ReadRecords",
        "ReadCheckpoints",
        "PutSealedKey",
        "GetSealedKey",
        "GetCredentials",
        "SubmitToWitnesses",
    ];
}

/// What the store answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreResponse {
    /// Answer to [`StoreRequest::Head`].
    Head {
        /// Records stored.
        size: u64,
        /// The latest checkpoint, if any.
        checkpoint: Option<String>,
    },
    /// Answer to [`StoreRequest::Append`]: durable up to `size`.
    Appended {
        /// Records stored after the append.
        size: u64,
    },
    /// Answer to [`StoreRequest::ReadRecords`].
    Records {
        /// Index of the first record returned.
        from: u64,
        /// The records.
        records: Vec<ByteBuf>,
    },
    /// Answer to [`StoreRequest::ReadCheckpoints`]: `(tree size, signed note)` pairs.
    Checkpoints {
        /// The checkpoints, by increasing size.
        checkpoints: Vec<(u64, String)>,
    },
    /// Answer to [`StoreRequest::PutSealedKey`].
    Stored,
    /// Answer to [`StoreRequest::GetSealedKey`].
    SealedKey {
        /// The blob, if one was stored.
        sealed: Option<ByteBuf>,
    },
    /// Answer to [`StoreRequest::GetCredentials`].
    Credentials {
        /// The access key id.
        access_key_id: String,
        /// The secret access key (never printed by `Debug`).
        secret_access_key: Secret,
        /// The session token of temporary credentials.
        session_token: Option<Secret>,
        /// When they expire, in milliseconds since the Unix epoch (`None`: long-term
        /// credentials of a local profile).
        expiration_ms: Option<u64>,
    },
    /// Answer to [`StoreRequest::SubmitToWitnesses`]: one per configured witness.
    WitnessAnswers {
        /// The answers, in the order of the parent's witnesses.
        answers: Vec<WitnessReply>,
    },
    /// The request failed.
    Error(ErrorReply),
}

/// One witness's answer to a submitted checkpoint, relayed unchecked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessReply {
    /// The witness's URL, as the parent was configured with it.
    pub url: String,
    /// The HTTP status; 0 when no usable answer came (the detail is then in `body`).
    pub status: u16,
    /// The body: the cosignature lines on 200, the witness's size on 409, a reason otherwise.
    pub body: String,
}

/// A string that `Debug` never prints: a credential on its way to the enclave. It is sent as
/// a plain CBOR text string.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl WireMessage for StoreResponse {
    const KINDS: &'static [&'static str] = &[
        "Head",
        "Appended",
        "Records",
        "Checkpoints",
        "Stored",
        "SealedKey",
        "Credentials",
        "WitnessAnswers",
        "Error",
    ];
}

impl WireReply for StoreResponse {
    fn from_error(error: ErrorReply) -> Self {
        StoreResponse::Error(error)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]

    use super::*;
    use crate::{decode_message, encode_message};

    #[test]
    fn witness_submissions_round_trip() {
        let request = StoreRequest::SubmitToWitnesses {
            checkpoint: "log\n1\nAAAA\n\n— log AAAA\n".into(),
        };
        let decoded =
            decode_message::<StoreRequest>(&encode_message(4, &request).unwrap()).unwrap();
        assert_eq!(decoded.body, request);
        let reply = StoreResponse::WitnessAnswers {
            answers: vec![WitnessReply {
                url: "http://127.0.0.1:1".into(),
                status: 409,
                body: "7\n".into(),
            }],
        };
        let decoded = decode_message::<StoreResponse>(&encode_message(4, &reply).unwrap()).unwrap();
        assert_eq!(decoded.body, reply);
    }

    #[test]
    fn credentials_round_trip_and_never_show_in_debug() {
        let reply = StoreResponse::Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Secret::new("very-secret"),
            session_token: Some(Secret::new("token-secret")),
            expiration_ms: Some(1_700_000_000_000),
        };
        let decoded = decode_message::<StoreResponse>(&encode_message(3, &reply).unwrap()).unwrap();
        assert_eq!(decoded.body, reply);
        let printed = format!("{reply:?}");
        assert!(printed.contains("ASIAEXAMPLE"));
        assert!(!printed.contains("very-secret"), "{printed}");
        assert!(!printed.contains("token-secret"), "{printed}");
        let request = decode_message::<StoreRequest>(
            &encode_message(4, &StoreRequest::GetCredentials).unwrap(),
        )
        .unwrap();
        assert_eq!(request.body, StoreRequest::GetCredentials);
    }
}
