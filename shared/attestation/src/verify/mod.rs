//! The verifier: every check of SPEC-trust §3, in its order, as one pure function.
//!
//! The insecure QEMU mode ([`crate::TrustRoot::insecure_qemu_unsigned`]) runs through the
//! same function: only the chain and signature checks are replaced by a check of QEMU's exact
//! unsigned shape; everything after them is shared.

mod chain;
mod error;
mod options;
mod qemu;

use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use aws_nitro_enclaves_cose::CoseSign1;

pub use error::{CertPosition, Hex, MaybeHex, VerifyError};
pub use options::{MaxAge, ValidationTime, VerifyOptions};

use crate::cose_keys::{Es384PublicKey, Sha2};
use crate::document::{parse_cose, parse_payload, AttestationDocument, Envelope};
use crate::root::{Anchor, RootKind};
use crate::timestamp::UnixMillis;

/// How far a document's timestamp may be ahead of the caller's `now` before it is refused:
/// the same tolerance the enclave grants signed requests (SPEC-trust §2).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// One check the verifier ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    /// Bounded parsing of COSE_Sign1 and the payload.
    Parse,
    /// Insecure QEMU mode only, in place of every certificate and signature check: the
    /// document has exactly the unsigned shape of QEMU's `nitro-enclave` NSM. Proves nothing.
    InsecureQemuShape,
    /// Issuer names and signatures from the leaf up to the pinned root.
    CertificateChain,
    /// Each certificate (and the root) valid at the validation time.
    CertificateValidity,
    /// basicConstraints, pathLen and keyUsage for each role.
    CertificateConstraints,
    /// The COSE_Sign1 ES384 signature with the leaf key.
    CoseSignature,
    /// Debug mode (PCR0, 1, 2 zero) refused, or explicitly allowed.
    DebugMode,
    /// The pinned PCRs.
    Pcrs,
    /// The expected `public_key`.
    PublicKey,
    /// The expected `user_data`.
    UserData,
    /// The expected `nonce`.
    Nonce,
    /// The maximum age at the caller's `now`.
    MaxAge,
}

impl Check {
    /// A stable snake_case name, for JSON and logs.
    pub fn name(self) -> &'static str {
        match self {
            Check::Parse => "parse",
            Check::InsecureQemuShape => "insecure_qemu_unsigned_shape",
            Check::CertificateChain => "certificate_chain",
            Check::CertificateValidity => "certificate_validity",
            Check::CertificateConstraints => "certificate_constraints",
            Check::CoseSignature => "cose_signature",
            Check::DebugMode => "debug_mode",
            Check::Pcrs => "pcrs",
            Check::PublicKey => "public_key",
            Check::UserData => "user_data",
            Check::Nonce => "nonce",
            Check::MaxAge => "max_age",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationReport {
    /// The checks that ran and passed, in order.
    pub checks: Vec<Check>,
    /// The moment the certificates were checked at.
    pub validated_at: UnixMillis,
    /// Which root the chain ended at; [`RootKind::InsecureQemuUnsigned`] when the document
    /// was accepted unsigned, in the insecure QEMU mode.
    pub root: RootKind,
    /// SHA-256 of that root (all zero in the insecure QEMU mode).
    pub root_sha256: [u8; 32],
    /// Certificates in the chain, the pinned root included (0 in the insecure QEMU mode).
    pub chain_len: usize,
    /// The document is a debug-mode one (accepted only because the caller allowed it).
    pub debug_mode: bool,
    /// The PCR indexes that were compared with pinned values.
    pub pinned_pcrs: Vec<u16>,
    /// The document's age at the caller's `now`, when a maximum age was checked.
    pub age: Option<Duration>,
}

/// A value that passed verification. Only this crate's verifier constructs one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<T> {
    value: T,
    report: VerificationReport,
}

impl<T> Verified<T> {
    /// What was checked.
    pub fn report(&self) -> &VerificationReport {
        &self.report
    }

    /// The verified value, leaving the proof of verification behind.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// Verifies a Nitro attestation document (raw COSE_Sign1 bytes) against `options`.
///
/// The checks run in this order and the first failure is returned: bounded parsing; the chain
/// `[certificate, cabundle[n-1], ..., cabundle[1]]` up to the pinned root; each certificate's
/// validity at the validation time; basicConstraints, pathLen, keyUsage; the COSE signature
/// with the leaf key; debug mode; pinned PCRs; `public_key`, `user_data`, `nonce`; age.
///
/// An unsigned document (QEMU's) is refused with [`VerifyError::UnsignedQemuDocument`] by
/// every real root. In the insecure QEMU mode the chain and signature checks are replaced by
/// [`Check::InsecureQemuShape`], signed documents are refused
/// ([`VerifyError::SignedDocumentInQemuMode`]), and every later check runs as usual.
///
/// A pure function: no clock, no I/O, no global state.
pub fn verify(
    document: &[u8],
    options: &VerifyOptions,
) -> Result<Verified<AttestationDocument>, VerifyError> {
    let mut checks = Vec::with_capacity(11);

    let cose = parse_cose(document)?;
    let doc = parse_payload(cose.payload)?;
    checks.push(Check::Parse);

    let at = match options.at {
        ValidationTime::DocumentTime => doc.timestamp,
        ValidationTime::At(at) => at,
    };
    let chain_len = match (&options.root.anchor, cose.envelope) {
        (Anchor::Certificate { cert, .. }, Envelope::Es384) => {
            let chain = chain::check_chain(&doc, cert, at)?;
            checks.extend([
                Check::CertificateChain,
                Check::CertificateValidity,
                Check::CertificateConstraints,
            ]);
            check_cose_signature(document, cose.payload, &chain.leaf_key)?;
            checks.push(Check::CoseSignature);
            chain.len
        }
        // Named apart from every other failure so that whoever meets one knows what it is
        // and which explicit switch accepts it.
        (Anchor::Certificate { .. }, Envelope::QemuUnsigned) => {
            return Err(VerifyError::UnsignedQemuDocument)
        }
        // The mode must never stand in for a real root, even for a document that would
        // verify against one: whoever wants that passes the root.
        (Anchor::InsecureQemuUnsigned, Envelope::Es384) => {
            return Err(VerifyError::SignedDocumentInQemuMode)
        }
        (Anchor::InsecureQemuUnsigned, Envelope::QemuUnsigned) => {
            qemu::check_shape(&doc, cose.signature)?;
            checks.push(Check::InsecureQemuShape);
            0
        }
    };

    let debug_mode = doc.is_debug_mode();
    if debug_mode && !options.allow_debug {
        return Err(VerifyError::DebugMode);
    }
    checks.push(Check::DebugMode);

    check_pcrs(&doc, options)?;
    if !options.pcrs.is_empty() {
        checks.push(Check::Pcrs);
    }
    check_fields(&doc, options, &mut checks)?;

    let age = match options.max_age {
        Some(limit) => {
            let age = check_age(doc.timestamp, limit)?;
            checks.push(Check::MaxAge);
            Some(age)
        }
        None => None,
    };

    Ok(Verified {
        report: VerificationReport {
            checks,
            validated_at: UnixMillis(at),
            root: options.root.kind(),
            root_sha256: options.root.fingerprint_sha256(),
            chain_len,
            debug_mode,
            pinned_pcrs: options.pcrs.keys().copied().collect(),
            age,
        },
        value: doc,
    })
}

/// Verifies through `aws-nitro-enclaves-cose`, then makes sure it signed the very payload our
/// parser read, so a parser differential cannot smuggle in unsigned fields.
fn check_cose_signature(
    document: &[u8],
    payload: &[u8],
    leaf_key: &p384::ecdsa::VerifyingKey,
) -> Result<(), VerifyError> {
    let cose = CoseSign1::from_bytes(document).map_err(VerifyError::CoseRejected)?;
    let verified = cose
        .verify_signature::<Sha2>(&Es384PublicKey(leaf_key))
        .map_err(VerifyError::CoseRejected)?;
    if !verified {
        return Err(VerifyError::BadSignature);
    }
    let signed_payload = cose
        .get_payload::<Sha2>(None)
        .map_err(VerifyError::CoseRejected)?;
    if signed_payload != payload {
        return Err(VerifyError::PayloadDisagreement);
    }
    Ok(())
}

fn check_pcrs(doc: &AttestationDocument, options: &VerifyOptions) -> Result<(), VerifyError> {
    for (&index, expected) in &options.pcrs {
        let actual = doc
            .pcrs
            .get(&index)
            .ok_or(VerifyError::PcrMissing { index })?;
        if actual != expected {
            return Err(VerifyError::PcrMismatch {
                index,
                expected: Hex(expected.clone()),
                actual: Hex(actual.clone()),
            });
        }
    }
    Ok(())
}

fn check_fields(
    doc: &AttestationDocument,
    options: &VerifyOptions,
    checks: &mut Vec<Check>,
) -> Result<(), VerifyError> {
    if let Some(expected) = &options.public_key {
        if doc.public_key.as_ref() != Some(expected) {
            return Err(VerifyError::PublicKeyMismatch {
                expected: Hex(expected.clone()),
                actual: MaybeHex(doc.public_key.clone()),
            });
        }
        checks.push(Check::PublicKey);
    }
    if let Some(expected) = &options.user_data {
        if doc.user_data.as_ref() != Some(expected) {
            return Err(VerifyError::UserDataMismatch {
                expected: Hex(expected.clone()),
                actual: MaybeHex(doc.user_data.clone()),
            });
        }
        checks.push(Check::UserData);
    }
    if let Some(expected) = &options.nonce {
        if doc.nonce.as_ref() != Some(expected) {
            return Err(VerifyError::NonceMismatch {
                expected: Hex(expected.clone()),
                actual: MaybeHex(doc.nonce.clone()),
            });
        }
        checks.push(Check::Nonce);
    }
    Ok(())
}

fn check_age(timestamp: u64, limit: MaxAge) -> Result<Duration, VerifyError> {
    let skew = u64::try_from(MAX_CLOCK_SKEW.as_millis()).unwrap_or(u64::MAX);
    if timestamp > limit.now.saturating_add(skew) {
        return Err(VerifyError::FromTheFuture {
            timestamp: UnixMillis(timestamp),
            now: UnixMillis(limit.now),
        });
    }
    let age = Duration::from_millis(limit.now.saturating_sub(timestamp));
    if age > limit.max {
        return Err(VerifyError::TooOld {
            age,
            max: limit.max,
        });
    }
    Ok(age)
}

#[cfg(test)]
mod qemu_tests;
#[cfg(test)]
mod tests;
