use std::fmt;
use std::time::Duration;

use thiserror::Error;

use super::Check;
use crate::document::ParseError;
use crate::timestamp::UnixMillis;
use crate::x509::CertificateError;

/// Where a certificate sits in the chain `[certificate, cabundle[n-1], ..., cabundle[1],
/// pinned root]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertPosition {
    /// The document's `certificate`, whose key signs the document.
    Leaf,
    /// `cabundle[i]`, an intermediate CA.
    Cabundle(usize),
    /// The pinned root given by the caller (never `cabundle[0]`).
    Root,
}

impl fmt::Display for CertPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertPosition::Leaf => f.write_str("leaf certificate"),
            CertPosition::Cabundle(i) => write!(f, "cabundle[{i}]"),
            CertPosition::Root => f.write_str("pinned root"),
        }
    }
}

/// Bytes shown as lowercase hex in messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Hex(pub Vec<u8>);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl fmt::Debug for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hex({self})")
    }
}

/// Shows an optional document field: its hex, or that it is absent.
#[derive(Clone, PartialEq, Eq)]
pub struct MaybeHex(pub Option<Vec<u8>>);

impl fmt::Display for MaybeHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(bytes) => f.write_str(&hex::encode(bytes)),
            None => f.write_str("none"),
        }
    }
}

impl fmt::Debug for MaybeHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MaybeHex({self})")
    }
}

/// Why a document was refused. Each variant names the check that failed, in the order the
/// checks run: parse, chain, validity, constraints, signature (or, in the insecure QEMU mode,
/// the unsigned shape in their place), debug mode, PCRs, fields, age.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The bytes are not a well-formed document within bounds.
    #[error("parse: {0}")]
    Parse(#[from] ParseError),
    /// A certificate of the document is unacceptable on its own.
    #[error("{position}: {source}")]
    Certificate {
        /// Which certificate.
        position: CertPosition,
        /// What is wrong with it.
        source: CertificateError,
    },
    /// A certificate's issuer name is not the subject of the next certificate in the chain.
    #[error("{position}: issuer is not the subject of the next certificate in the chain")]
    IssuerMismatch {
        /// Which certificate.
        position: CertPosition,
    },
    /// A certificate's signature does not verify with the next certificate's key.
    #[error("{position}: signature does not verify with its issuer's key")]
    BadCertificateSignature {
        /// Which certificate.
        position: CertPosition,
    },
    /// The chain does not end at the pinned root.
    #[error("untrusted root: the chain's top certificate is issued by {issuer:?}, not by the pinned root {root:?}")]
    UntrustedRoot {
        /// Issuer of the top certificate of the chain.
        issuer: String,
        /// Subject of the pinned root.
        root: String,
    },
    /// A certificate is not yet valid at the validation time.
    #[error("{position} is not valid before {not_before} (checked at {at})")]
    CertificateNotYetValid {
        /// Which certificate.
        position: CertPosition,
        /// Its notBefore.
        not_before: UnixMillis,
        /// The validation time.
        at: UnixMillis,
    },
    /// A certificate has expired at the validation time.
    #[error("{position} expired at {not_after} (checked at {at})")]
    CertificateExpired {
        /// Which certificate.
        position: CertPosition,
        /// Its notAfter.
        not_after: UnixMillis,
        /// The validation time.
        at: UnixMillis,
    },
    /// A certificate that issues another one is not a CA (basicConstraints).
    #[error("{position} issues a certificate but is not a CA (basicConstraints)")]
    NotACa {
        /// Which certificate.
        position: CertPosition,
    },
    /// A CA has more CAs below it than its pathLenConstraint allows.
    #[error("{position} allows {path_len} CA(s) below it, the chain has {below}")]
    PathLenExceeded {
        /// Which certificate.
        position: CertPosition,
        /// Its pathLenConstraint.
        path_len: u8,
        /// CAs between it and the leaf.
        below: usize,
    },
    /// A certificate lacks the keyUsage bit its role needs.
    #[error("{position} lacks keyUsage {usage}")]
    MissingKeyUsage {
        /// Which certificate.
        position: CertPosition,
        /// The missing usage (`keyCertSign` or `digitalSignature`).
        usage: &'static str,
    },
    /// The leaf certificate is a CA, or carries a pathLenConstraint.
    #[error("leaf certificate is a CA (basicConstraints)")]
    LeafIsCa,
    /// The COSE signature does not verify with the leaf key.
    #[error(
        "bad signature: the COSE_Sign1 signature does not verify with the leaf certificate's key"
    )]
    BadSignature,
    /// The COSE library read the envelope differently from our parser.
    #[error("COSE_Sign1 rejected by the COSE decoder")]
    CoseRejected(#[source] aws_nitro_enclaves_cose::error::CoseError),
    /// The COSE library saw a different payload than our parser (a parser differential).
    #[error("COSE decoder and parser disagree on the payload")]
    PayloadDisagreement,
    /// The document is unsigned, as QEMU's `nitro-enclave` NSM writes it, and the caller
    /// pinned a real root. Such a document proves nothing; it is accepted only in the insecure
    /// QEMU mode ([`crate::TrustRoot::insecure_qemu_unsigned`]).
    #[error(
        "unsigned document: its protected header is {{1: -1}} and its signature a 64-byte \
         placeholder, as QEMU's nitro-enclave NSM writes them; it proves nothing about Nitro \
         hardware and is accepted only in the insecure QEMU mode (--insecure-qemu-attestation)"
    )]
    UnsignedQemuDocument,
    /// In the insecure QEMU mode, a signed (ES384) document: the mode accepts only QEMU's
    /// unsigned shape, so that it can never stand in for a real root.
    #[error(
        "signed (ES384) document, but verification is in the insecure QEMU mode \
         (--insecure-qemu-attestation), which accepts only QEMU's unsigned documents; verify \
         signed documents against their root instead"
    )]
    SignedDocumentInQemuMode,
    /// In the insecure QEMU mode, a document with the unsigned envelope whose placeholders are
    /// not exactly QEMU's.
    #[error("not QEMU's unsigned document: {field} is not {expected}")]
    NotQemuShape {
        /// The field that differs (`signature`, `certificate`, `cabundle`).
        field: &'static str,
        /// What QEMU writes there.
        expected: &'static str,
    },
    /// PCR0, 1 and 2 are zero and the caller did not allow debug mode.
    #[error("debug mode: PCR0, PCR1 and PCR2 are all zero (enclave started with --debug-mode)")]
    DebugMode,
    /// A PCR the caller pins is absent from the document.
    #[error("PCR{index} is pinned but absent from the document")]
    PcrMissing {
        /// The PCR index.
        index: u16,
    },
    /// A PCR differs from the pinned value.
    #[error("PCR{index} mismatch: expected {expected}, document has {actual}")]
    PcrMismatch {
        /// The PCR index.
        index: u16,
        /// The pinned value.
        expected: Hex,
        /// The document's value.
        actual: Hex,
    },
    /// `public_key` differs from the expected one, or is absent.
    #[error("public_key mismatch: expected {expected}, document has {actual}")]
    PublicKeyMismatch {
        /// Expected.
        expected: Hex,
        /// In the document.
        actual: MaybeHex,
    },
    /// `user_data` differs from the expected one, or is absent.
    #[error("user_data mismatch: expected {expected}, document has {actual}")]
    UserDataMismatch {
        /// Expected.
        expected: Hex,
        /// In the document.
        actual: MaybeHex,
    },
    /// `nonce` differs from the expected one, or is absent.
    #[error("nonce mismatch: expected {expected}, document has {actual}")]
    NonceMismatch {
        /// Expected.
        expected: Hex,
        /// In the document.
        actual: MaybeHex,
    },
    /// The document is older than the caller's maximum age.
    #[error("too old: document is {age:?} old, the maximum is {max:?}")]
    TooOld {
        /// Its age at the caller's `now`.
        age: Duration,
        /// The maximum.
        max: Duration,
    },
    /// The document's timestamp is later than the caller's `now` plus the allowed skew.
    #[error("document time {timestamp} is after now ({now}) plus the allowed clock skew")]
    FromTheFuture {
        /// The document's timestamp.
        timestamp: UnixMillis,
        /// The caller's now.
        now: UnixMillis,
    },
}

impl VerifyError {
    /// The check that refused the document.
    pub fn failed_check(&self) -> Check {
        match self {
            VerifyError::Parse(_) => Check::Parse,
            VerifyError::Certificate { .. }
            | VerifyError::IssuerMismatch { .. }
            | VerifyError::BadCertificateSignature { .. }
            | VerifyError::UntrustedRoot { .. } => Check::CertificateChain,
            VerifyError::CertificateNotYetValid { .. } | VerifyError::CertificateExpired { .. } => {
                Check::CertificateValidity
            }
            VerifyError::NotACa { .. }
            | VerifyError::PathLenExceeded { .. }
            | VerifyError::MissingKeyUsage { .. }
            | VerifyError::LeafIsCa => Check::CertificateConstraints,
            VerifyError::BadSignature
            | VerifyError::CoseRejected(_)
            | VerifyError::PayloadDisagreement
            | VerifyError::UnsignedQemuDocument => Check::CoseSignature,
            VerifyError::SignedDocumentInQemuMode | VerifyError::NotQemuShape { .. } => {
                Check::InsecureQemuShape
            }
            VerifyError::DebugMode => Check::DebugMode,
            VerifyError::PcrMissing { .. } | VerifyError::PcrMismatch { .. } => Check::Pcrs,
            VerifyError::PublicKeyMismatch { .. } => Check::PublicKey,
            VerifyError::UserDataMismatch { .. } => Check::UserData,
            VerifyError::NonceMismatch { .. } => Check::Nonce,
            VerifyError::TooOld { .. } | VerifyError::FromTheFuture { .. } => Check::MaxAge,
        }
    }
}
