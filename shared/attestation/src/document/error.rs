use thiserror::Error;

use crate::cbor::CborError;

/// Why a document could not be parsed. Every variant is the sender's fault: the bytes are not
/// a well-formed Nitro attestation document within our bounds.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The whole document is larger than [`crate::limits::MAX_DOCUMENT_LEN`].
    #[error("document is {len} bytes, more than the {max} accepted")]
    DocumentTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Malformed CBOR while reading the named field.
    #[error("{field}: {source}")]
    Cbor {
        /// What was being read.
        field: &'static str,
        /// The CBOR problem.
        source: CborError,
    },
    /// Bytes follow the named item where nothing may.
    #[error("{count} trailing byte(s) after the {field}")]
    TrailingBytes {
        /// The item that should have ended the input.
        field: &'static str,
        /// How many bytes follow.
        count: usize,
    },
    /// A tag other than 18 (COSE_Sign1) in front of the document.
    #[error("CBOR tag {tag} in front of the document; only tag 18 (COSE_Sign1) is accepted")]
    UnexpectedTag {
        /// The tag found.
        tag: u64,
    },
    /// COSE_Sign1 is an array of exactly four items.
    #[error("COSE_Sign1 must be an array of 4 items, this one has {len}")]
    CoseArrayLength {
        /// The array length found.
        len: u64,
    },
    /// The protected header is neither exactly `{1: -35}` (alg: ES384), as the NSM writes it,
    /// nor exactly `{1: -1}`, as QEMU's unsigned `nitro-enclave` NSM writes it.
    #[error("protected header is neither {{1: -35}} (ES384) nor QEMU's unsigned {{1: -1}}")]
    UnsupportedProtectedHeader,
    /// The NSM leaves the unprotected header empty.
    #[error("unprotected header must be an empty map, this one has {entries} entries")]
    UnprotectedHeaderNotEmpty {
        /// Its entry count.
        entries: u64,
    },
    /// A string or array outside its allowed length.
    #[error("{field} has length {len}, outside the accepted {min}..={max}")]
    FieldLength {
        /// The field.
        field: &'static str,
        /// Its length.
        len: u64,
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
    },
    /// A payload key that is not one of the nine defined ones.
    #[error("unknown payload key {key:?}")]
    UnknownField {
        /// The key (at most 32 bytes, longer keys fail with `FieldLength`).
        key: String,
    },
    /// A payload key that appears more than once.
    #[error("payload key {field} appears more than once")]
    DuplicateField {
        /// The key.
        field: &'static str,
    },
    /// A mandatory payload key is absent (or null).
    #[error("payload lacks the mandatory {field}")]
    MissingField {
        /// The key.
        field: &'static str,
    },
    /// `digest` is not `"SHA384"`.
    #[error("digest is {found:?}; only \"SHA384\" is accepted")]
    UnsupportedDigest {
        /// The value found (at most 16 bytes, longer values fail with `FieldLength`).
        found: String,
    },
    /// `timestamp` is zero.
    #[error("timestamp is zero")]
    ZeroTimestamp,
    /// A PCR index outside `0..32`.
    #[error("PCR index {index} is outside 0..32")]
    PcrIndex {
        /// The index found.
        index: u64,
    },
    /// The same PCR index twice.
    #[error("PCR{index} appears more than once")]
    DuplicatePcr {
        /// The index.
        index: u16,
    },
    /// PCR0 (image), PCR1 (kernel and bootstrap) or PCR2 (application) is absent: every
    /// Nitro document carries all three (QEMU's too: PCR0 to 15).
    #[error(
        "PCR{index} is missing: every attestation document must measure PCR0, PCR1 and PCR2 \
         (image, kernel, application); this one does not come from a Nitro (or QEMU) NSM"
    )]
    MissingPcr {
        /// The first of 0, 1, 2 that is absent.
        index: u16,
    },
    /// A PCR value that is not 48 bytes (SHA-384).
    #[error("PCR{index} is {len} bytes; SHA-384 PCRs are 48")]
    PcrLength {
        /// The index.
        index: u16,
        /// Its length.
        len: u64,
    },
}

impl ParseError {
    pub(crate) fn cbor(field: &'static str) -> impl FnOnce(CborError) -> ParseError {
        move |source| ParseError::Cbor { field, source }
    }
}
