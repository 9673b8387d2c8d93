//! The pinned root a document's chain must end at.
//!
//! The AWS Nitro Enclaves Root-G1 certificate is embedded in the crate and its SHA-256
//! fingerprint is checked against the value AWS publishes every time it is loaded. Any other
//! root (the mock NSM's) is used only when the caller hands it over explicitly.
//!
//! One "root" is no certificate at all: [`TrustRoot::insecure_qemu_unsigned`] selects the
//! insecure QEMU mode, in which the verifier accepts only the unsigned documents of QEMU's
//! `nitro-enclave` machine. It lives here, rather than as a verifier switch, so that it
//! travels through every caller's existing root plumbing and a caller can never hold a real
//! root and the QEMU mode at once.

use std::fmt;

use sha2::{Digest as _, Sha256};
use thiserror::Error;
use x509_cert::der::{DecodePem, Encode};
use x509_cert::Certificate;

use crate::x509::{CertInfo, CertificateError};

/// The AWS Nitro Enclaves Root-G1 certificate, from
/// <https://aws-nitro-enclaves.amazonaws.com/AWS_NitroEnclaves_Root-G1.zip>; it is also
/// `cabundle[0]` of every production attestation document.
const AWS_NITRO_ROOT_G1_PEM: &str = include_str!("aws_nitro_enclaves_root_g1.pem");

/// SHA-256 of the DER of AWS Nitro Enclaves Root-G1, as AWS publishes it.
pub const AWS_NITRO_ROOT_G1_SHA256: [u8; 32] = [
    0x64, 0x1a, 0x03, 0x21, 0xa3, 0xe2, 0x44, 0xef, 0xe4, 0x56, 0x46, 0x31, 0x95, 0xd6, 0x06, 0x31,
    0x7e, 0xd7, 0xcd, 0xcc, 0x3c, 0x17, 0x56, 0xe0, 0x98, 0x93, 0xf3, 0xc6, 0x8f, 0x79, 0xbb, 0x5b,
];

/// Why a root certificate cannot be pinned.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TrustRootError {
    /// Not a PEM certificate.
    #[error("not a PEM certificate: {0}")]
    Pem(x509_cert::der::Error),
    /// The certificate itself is unacceptable (algorithm, key, extensions).
    #[error("root certificate: {0}")]
    Certificate(#[from] CertificateError),
    /// A root must be a CA that may sign certificates.
    #[error("root certificate is not a CA with keyCertSign")]
    NotACa,
    /// A root signs itself.
    #[error("root certificate is not self-signed")]
    NotSelfSigned,
    /// The embedded AWS root does not have the published fingerprint (a corrupted build).
    #[error("embedded AWS root has SHA-256 {actual}, not the published {expected}")]
    FingerprintMismatch {
        /// The published fingerprint.
        expected: String,
        /// The fingerprint of the embedded bytes.
        actual: String,
    },
}

/// Which root a [`TrustRoot`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    /// AWS Nitro Enclaves Root-G1: documents from real Nitro hardware.
    AwsNitroRootG1,
    /// A root the caller supplied (the mock NSM's, in tests and local runs).
    Explicit,
    /// No root: the insecure QEMU mode ([`TrustRoot::insecure_qemu_unsigned`]). Documents are
    /// unsigned and prove nothing about hardware or about who wrote them.
    InsecureQemuUnsigned,
}

impl RootKind {
    /// A stable kebab-case name, for JSON, logs and trust files.
    pub fn name(self) -> &'static str {
        match self {
            RootKind::AwsNitroRootG1 => "aws-nitro-enclaves-root-g1",
            RootKind::Explicit => "explicit",
            RootKind::InsecureQemuUnsigned => "insecure-qemu-unsigned",
        }
    }
}

impl fmt::Display for RootKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the verifier anchors a document to.
#[derive(Clone)]
pub(crate) enum Anchor {
    /// A pinned certificate: the chain must end at it, and the COSE signature must verify.
    Certificate {
        cert: CertInfo,
        fingerprint: [u8; 32],
    },
    /// Nothing: only QEMU's unsigned shape is accepted, and nothing about it is proven.
    InsecureQemuUnsigned,
}

/// A pinned root certificate (self-signed, a CA, ECDSA P-384), or the insecure QEMU mode.
#[derive(Clone)]
pub struct TrustRoot {
    pub(crate) anchor: Anchor,
    kind: RootKind,
}

impl fmt::Debug for TrustRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.anchor {
            Anchor::Certificate { cert, fingerprint } => f
                .debug_struct("TrustRoot")
                .field("kind", &self.kind)
                .field("subject", &cert.subject.to_string())
                .field("sha256", &hex::encode(fingerprint))
                .finish(),
            Anchor::InsecureQemuUnsigned => f
                .debug_struct("TrustRoot")
                .field("kind", &self.kind)
                .finish(),
        }
    }
}

pub(crate) fn aws_root_der() -> Result<Vec<u8>, TrustRootError> {
    Certificate::from_pem(AWS_NITRO_ROOT_G1_PEM.as_bytes())
        .and_then(|cert| cert.to_der())
        .map_err(TrustRootError::Pem)
}

impl TrustRoot {
    /// The AWS Nitro Enclaves Root-G1, checked against its published SHA-256 fingerprint
    /// `641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b`.
    pub fn aws_nitro_root_g1() -> Result<Self, TrustRootError> {
        let der = aws_root_der()?;
        let fingerprint: [u8; 32] = Sha256::digest(&der).into();
        if fingerprint != AWS_NITRO_ROOT_G1_SHA256 {
            return Err(TrustRootError::FingerprintMismatch {
                expected: hex::encode(AWS_NITRO_ROOT_G1_SHA256),
                actual: hex::encode(fingerprint),
            });
        }
        Self::build(&der, RootKind::AwsNitroRootG1)
    }

    /// An explicitly trusted root from PEM, such as the mock NSM's
    /// ([`crate::MockNsm::mock_root_pem`]). Documents chaining to it are *not* from Nitro
    /// hardware; pass it only where a mock enclave is intended.
    pub fn from_pem(pem: &[u8]) -> Result<Self, TrustRootError> {
        let der = Certificate::from_pem(pem)
            .and_then(|cert| cert.to_der())
            .map_err(TrustRootError::Pem)?;
        Self::from_der(&der)
    }

    /// An explicitly trusted root from DER; see [`TrustRoot::from_pem`].
    pub fn from_der(der: &[u8]) -> Result<Self, TrustRootError> {
        let fingerprint: [u8; 32] = Sha256::digest(der).into();
        let kind = if fingerprint == AWS_NITRO_ROOT_G1_SHA256 {
            RootKind::AwsNitroRootG1
        } else {
            RootKind::Explicit
        };
        Self::build(der, kind)
    }

    fn build(der: &[u8], kind: RootKind) -> Result<Self, TrustRootError> {
        let cert = CertInfo::parse(der)?;
        if !cert.is_ca() || !cert.can_sign_certificates() {
            return Err(TrustRootError::NotACa);
        }
        if !cert.issued_by_name(&cert) || !cert.signed_by(&cert) {
            return Err(TrustRootError::NotSelfSigned);
        }
        Ok(Self {
            anchor: Anchor::Certificate {
                fingerprint: Sha256::digest(der).into(),
                cert,
            },
            kind,
        })
    }

    /// **Insecure.** No root at all: the verifier then accepts only the unsigned documents of
    /// QEMU's `nitro-enclave` machine (protected header `{1: -1}`, a 64-byte zero signature, a
    /// 64-byte zero `certificate`, a `cabundle` of one 64-byte zero entry) and refuses signed
    /// ones. Bounded parsing, debug mode, pinned PCRs, `public_key`, `user_data`, `nonce` and
    /// age are still checked, but anyone can write such a document: it proves nothing about
    /// the hardware, the image or who produced it. For booting the real enclave image under
    /// QEMU during development only; a normal root refuses these documents with
    /// [`crate::VerifyError::UnsignedQemuDocument`].
    pub fn insecure_qemu_unsigned() -> Self {
        Self {
            anchor: Anchor::InsecureQemuUnsigned,
            kind: RootKind::InsecureQemuUnsigned,
        }
    }

    /// Which root this is.
    pub fn kind(&self) -> RootKind {
        self.kind
    }

    /// True in the insecure QEMU mode ([`TrustRoot::insecure_qemu_unsigned`]): callers warn
    /// on every use.
    pub fn is_insecure_qemu_unsigned(&self) -> bool {
        self.kind == RootKind::InsecureQemuUnsigned
    }

    /// SHA-256 of the root's DER; all zero in the insecure QEMU mode, which has no root.
    pub fn fingerprint_sha256(&self) -> [u8; 32] {
        match &self.anchor {
            Anchor::Certificate { fingerprint, .. } => *fingerprint,
            Anchor::InsecureQemuUnsigned => [0; 32],
        }
    }

    /// The root's subject, RFC 4514 style; in the insecure QEMU mode, a sentence saying that
    /// there is none.
    pub fn subject(&self) -> String {
        match &self.anchor {
            Anchor::Certificate { cert, .. } => cert.subject.to_string(),
            Anchor::InsecureQemuUnsigned => {
                "none (insecure QEMU mode: unsigned documents accepted)".to_owned()
            }
        }
    }

    /// The root certificate, DER; empty in the insecure QEMU mode.
    pub fn der(&self) -> &[u8] {
        match &self.anchor {
            Anchor::Certificate { cert, .. } => &cert.der,
            Anchor::InsecureQemuUnsigned => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_root_loads_with_its_published_fingerprint() {
        let root = TrustRoot::aws_nitro_root_g1().unwrap();
        assert_eq!(root.kind(), RootKind::AwsNitroRootG1);
        assert_eq!(
            hex::encode(root.fingerprint_sha256()),
            "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
        );
        assert_eq!(root.subject(), "CN=aws.nitro-enclaves,OU=AWS,O=Amazon,C=US");
    }

    #[test]
    fn aws_root_given_explicitly_is_recognised() {
        let der = aws_root_der().unwrap();
        assert_eq!(
            TrustRoot::from_der(&der).unwrap().kind(),
            RootKind::AwsNitroRootG1
        );
    }

    #[test]
    fn the_qemu_mode_has_no_root_and_says_so() {
        let root = TrustRoot::insecure_qemu_unsigned();
        assert_eq!(root.kind(), RootKind::InsecureQemuUnsigned);
        assert!(root.is_insecure_qemu_unsigned());
        assert!(!TrustRoot::aws_nitro_root_g1()
            .unwrap()
            .is_insecure_qemu_unsigned());
        assert_eq!(root.fingerprint_sha256(), [0; 32]);
        assert!(root.der().is_empty());
        assert!(root.subject().contains("insecure QEMU mode"));
        assert_eq!(root.kind().to_string(), "insecure-qemu-unsigned");
    }

    #[test]
    fn not_pem_is_refused() {
        assert!(matches!(
            TrustRoot::from_pem(b"hello"),
            Err(TrustRootError::Pem(_))
        ));
    }
}
