//! Audit records: their one canonical CBOR encoding and the three hashes defined on it.
//!
//! A record is the CBOR map
//! `{seq, time, kind, actor, request, decision, changes, attestation}` with text keys in
//! exactly that order (the order of SPEC-trust section 4, not RFC 8949's key order), definite
//! lengths, shortest integer and float forms, and the maps inside `decision` and `changes`
//! sorted as RFC 8949 section 4.2.1 says. [`Record::from_bytes`] accepts only bytes that
//! [`Record::to_bytes`] would write back unchanged.
//!
//! - **record hash**: SHA-256 of the canonical encoding with `attestation` set to null, so a
//!   record can carry an attestation document whose `user_data` is its own record hash;
//! - **genesis hash**: the record hash of record 0, the log's identity;
//! - **leaf hash**: `SHA-256(0x00 || canonical encoding)`, attestation included: the leaf of
//!   the RFC 6962 tree.

mod canonical;
mod fields;
mod kind;

use std::io::Read;

use ciborium::Value;
use serde::{Deserialize, Serialize};

use crate::hash::{self, Hash};
pub use canonical::MAX_VALUE_DEPTH;
use canonical::{CompareWriter, ValueProblem};
pub use fields::{RecordFields, RecordHeader};
pub use kind::{AttestationRule, RecordKind, UnknownKind};

/// The largest encoded record accepted, in bytes (the frame limit between parent and
/// enclave).
pub const MAX_RECORD_LEN: usize = 1024 * 1024;

/// The CBOR encoding of null: what `attestation` is replaced with for the record hash.
const CBOR_NULL: u8 = 0xf6;

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Position in the log, from 0.
    pub seq: u64,
    /// When the enclave wrote it, in milliseconds since the Unix epoch.
    pub time: u64,
    /// What it is about.
    pub kind: RecordKind,
    /// The principal who caused it (for automatic transitions and enclave starts, the
    /// enclave's own name for itself).
    pub actor: String,
    /// The signed client request, verbatim as the client sent it (CBOR bytes), if any.
    pub request: Option<Vec<u8>>,
    /// The decision and its reasons; `Value::Null` when there is none.
    pub decision: Value,
    /// What changed, e.g. an array of events; for genesis, the genesis document.
    pub changes: Value,
    /// An NSM attestation document (COSE_Sign1 bytes), if any.
    pub attestation: Option<Vec<u8>>,
}

/// Why a record cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A map inside `decision` or `changes` has the same key twice.
    #[error("a map in `{field}` has a duplicate key")]
    DuplicateMapKey {
        /// `decision` or `changes`.
        field: &'static str,
    },
    /// `decision` or `changes` nests deeper than [`MAX_VALUE_DEPTH`].
    #[error("`{field}` nests deeper than {MAX_VALUE_DEPTH} levels")]
    TooDeep {
        /// `decision` or `changes`.
        field: &'static str,
    },
    /// The encoding would exceed [`MAX_RECORD_LEN`].
    #[error("the record would be {len} bytes, more than the limit of {MAX_RECORD_LEN}")]
    TooLarge {
        /// The encoded length.
        len: usize,
    },
    /// The CBOR serializer refused a value (not expected for values built with ciborium).
    #[error("the CBOR serializer refused the record: {0}")]
    Serializer(String),
}

/// Why bytes are not a canonical record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// More than [`MAX_RECORD_LEN`] bytes.
    #[error("a record is at most {MAX_RECORD_LEN} bytes, got {len}")]
    TooLarge {
        /// The length given.
        len: usize,
    },
    /// The bytes end inside the record.
    #[error("the record is cut short")]
    Truncated,
    /// Not well-formed CBOR.
    #[error("not well-formed CBOR at byte {offset}")]
    Syntax {
        /// Where decoding stopped.
        offset: usize,
    },
    /// Well-formed CBOR, but not a record (a field missing, unknown or of the wrong type).
    #[error("not a record: {reason}")]
    NotARecord {
        /// What the decoder objected to.
        reason: String,
    },
    /// Nested deeper than the decoder allows.
    #[error("nested deeper than {MAX_VALUE_DEPTH} levels")]
    TooDeep,
    /// A kind this build does not know.
    #[error(transparent)]
    UnknownKind(#[from] UnknownKind),
    /// Bytes after the record.
    #[error("{extra} bytes after the record")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A map in `decision` or `changes` has a key twice.
    #[error("a map in `{field}` has a duplicate key")]
    DuplicateMapKey {
        /// `decision` or `changes`.
        field: &'static str,
    },
    /// A map in `decision` or `changes` is not in canonical key order.
    #[error("a map in `{field}` is not in canonical key order")]
    UnsortedMapKeys {
        /// `decision` or `changes`.
        field: &'static str,
    },
    /// The bytes decode, but are not the one canonical encoding of what they decode to
    /// (non-shortest integers or floats, indefinite lengths, fields out of order ...).
    #[error("not the canonical encoding: first difference at byte {offset}")]
    NotCanonical {
        /// The first byte that differs from the canonical encoding.
        offset: usize,
    },
}

/// The record as serde sees it when writing: borrowed, field order fixed.
#[derive(Serialize)]
struct WireRef<'a> {
    seq: u64,
    time: u64,
    kind: &'a str,
    actor: &'a str,
    request: Option<&'a serde_bytes::Bytes>,
    decision: &'a Value,
    changes: &'a Value,
    attestation: Option<&'a serde_bytes::Bytes>,
}

/// The record as serde sees it when reading.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireOwned {
    seq: u64,
    time: u64,
    kind: String,
    actor: String,
    request: Option<serde_bytes::ByteBuf>,
    decision: Value,
    changes: Value,
    attestation: Option<serde_bytes::ByteBuf>,
}

/// ciborium's own recursion guard; our depth limit is checked after decoding, with a
/// clearer error.
const DECODER_RECURSION_LIMIT: usize = MAX_VALUE_DEPTH + 8;

impl Record {
    /// The canonical encoding.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        self.encode(self.attestation.as_deref())
    }

    /// The record hash: SHA-256 of the canonical encoding with `attestation` null.
    pub fn record_hash(&self) -> Result<Hash, EncodeError> {
        Ok(hash::sha256(&[&self.encode(None)?]))
    }

    /// The leaf hash: `SHA-256(0x00 || canonical encoding)`.
    pub fn leaf_hash(&self) -> Result<Hash, EncodeError> {
        Ok(hash::leaf_hash(&self.to_bytes()?))
    }

    fn encode(&self, attestation: Option<&[u8]>) -> Result<Vec<u8>, EncodeError> {
        let decision = canonical::canonicalize(&self.decision)
            .map_err(|problem| encode_problem("decision", problem))?;
        let changes = canonical::canonicalize(&self.changes)
            .map_err(|problem| encode_problem("changes", problem))?;
        let wire = WireRef {
            seq: self.seq,
            time: self.time,
            kind: self.kind.as_str(),
            actor: &self.actor,
            request: self.request.as_deref().map(serde_bytes::Bytes::new),
            decision: &decision,
            changes: &changes,
            attestation: attestation.map(serde_bytes::Bytes::new),
        };
        let mut out = Vec::with_capacity(256);
        ciborium::into_writer(&wire, &mut out)
            .map_err(|error| EncodeError::Serializer(error.to_string()))?;
        if out.len() > MAX_RECORD_LEN {
            return Err(EncodeError::TooLarge { len: out.len() });
        }
        Ok(out)
    }

    /// Decodes a record, refusing anything but its canonical encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Record, RecordError> {
        if bytes.len() > MAX_RECORD_LEN {
            return Err(RecordError::TooLarge { len: bytes.len() });
        }
        let mut reader = bytes;
        let wire: WireOwned =
            ciborium::de::from_reader_with_recursion_limit(&mut reader, DECODER_RECURSION_LIMIT)
                .map_err(decode_error)?;
        // A `&[u8]` reader cannot fail; an empty read means nothing is left.
        let mut probe = [0u8; 1];
        if reader.read(&mut probe).unwrap_or(0) != 0 {
            return Err(RecordError::TrailingBytes {
                extra: reader.len() + 1,
            });
        }
        canonical::check(&wire.decision).map_err(|p| decode_problem("decision", p))?;
        canonical::check(&wire.changes).map_err(|p| decode_problem("changes", p))?;
        let kind = wire.kind.parse::<RecordKind>()?;

        // Re-encode against the input: any other encoding of the same record differs.
        let mut compare = CompareWriter::new(bytes);
        let again = WireRef {
            seq: wire.seq,
            time: wire.time,
            kind: kind.as_str(),
            actor: &wire.actor,
            request: wire.request.as_deref().map(|b| serde_bytes::Bytes::new(b)),
            decision: &wire.decision,
            changes: &wire.changes,
            attestation: wire
                .attestation
                .as_deref()
                .map(|b| serde_bytes::Bytes::new(b)),
        };
        let written = ciborium::into_writer(&again, &mut compare);
        match (written, compare.first_difference()) {
            (Ok(()), None) => {}
            (_, Some(offset)) => return Err(RecordError::NotCanonical { offset }),
            (Err(_), None) => return Err(RecordError::NotCanonical { offset: 0 }),
        }
        Ok(Record {
            seq: wire.seq,
            time: wire.time,
            kind,
            actor: wire.actor,
            request: wire.request.map(|bytes| bytes.into_vec()),
            decision: wire.decision,
            changes: wire.changes,
            attestation: wire.attestation.map(|bytes| bytes.into_vec()),
        })
    }
}

/// The record hash of a record from its canonical bytes, without encoding it again:
/// `attestation` is the last field, so the bytes before it are shared.
///
/// `bytes` must be the canonical encoding of `record` (as after [`Record::from_bytes`]);
/// otherwise the result is simply a wrong hash, never a panic.
pub fn record_hash_of(bytes: &[u8], record: &Record) -> Hash {
    record_hash_from(bytes, record.attestation.as_deref())
}

/// [`record_hash_of`] for a record whose attestation document (the last field) is
/// `attestation`, as [`RecordFields::parse`] finds it.
pub fn record_hash_from(bytes: &[u8], attestation: Option<&[u8]>) -> Hash {
    let tail = match attestation {
        None => 1,
        Some(document) => bstr_header_len(document.len()) + document.len(),
    };
    let prefix = bytes
        .get(..bytes.len().saturating_sub(tail))
        .unwrap_or_default();
    hash::sha256(&[prefix, &[CBOR_NULL]])
}

/// The length of the CBOR header of a byte string of `len` bytes.
fn bstr_header_len(len: usize) -> usize {
    match len {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

fn encode_problem(field: &'static str, problem: ValueProblem) -> EncodeError {
    match problem {
        ValueProblem::DuplicateKey | ValueProblem::UnsortedKeys => {
            EncodeError::DuplicateMapKey { field }
        }
        ValueProblem::TooDeep => EncodeError::TooDeep { field },
    }
}

fn decode_problem(field: &'static str, problem: ValueProblem) -> RecordError {
    match problem {
        ValueProblem::DuplicateKey => RecordError::DuplicateMapKey { field },
        ValueProblem::UnsortedKeys => RecordError::UnsortedMapKeys { field },
        ValueProblem::TooDeep => RecordError::TooDeep,
    }
}

fn decode_error(error: ciborium::de::Error<std::io::Error>) -> RecordError {
    use ciborium::de::Error;
    match error {
        // Reading from a slice fails only at its end: the CBOR item was cut short.
        Error::Io(_) => RecordError::Truncated,
        Error::Syntax(offset) => RecordError::Syntax { offset },
        Error::Semantic(_, reason) => RecordError::NotARecord { reason },
        Error::RecursionLimitExceeded => RecordError::TooDeep,
    }
}

#[cfg(test)]
mod tests;
