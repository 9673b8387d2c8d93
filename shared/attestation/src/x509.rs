//! The certificate facts the verifier needs, read once per certificate: the exact bytes that
//! were signed, the P-384 key, validity, basicConstraints and keyUsage.
//!
//! Only what Nitro uses is accepted: ECDSA P-384 keys, ecdsa-with-SHA384 signatures, X.509 v3.
//! Certificate signatures are checked with `ring` (the project's signature library); the leaf
//! key is also kept as a RustCrypto key for the COSE signature.
//! A critical extension other than basicConstraints or keyUsage is refused (RFC 5280 §4.2:
//! a verifier must reject certificates with critical extensions it does not process).

use p384::ecdsa::VerifyingKey;
use ring::signature::{UnparsedPublicKey, ECDSA_P384_SHA384_ASN1};
use thiserror::Error;
use x509_cert::certificate::Version;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, Encode, Reader, SliceReader};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
use x509_cert::name::Name;
use x509_cert::Certificate;

const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");

/// Why one certificate, taken alone, is unacceptable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// Not DER, or not an X.509 certificate.
    #[error("not a DER X.509 certificate: {0}")]
    Malformed(x509_cert::der::Error),
    /// Not version 3 (extensions need v3).
    #[error("not an X.509 v3 certificate")]
    NotV3,
    /// Signed with something other than ecdsa-with-SHA384, or the two algorithm fields differ.
    #[error("signature algorithm {oid} is not ecdsa-with-SHA384")]
    UnsupportedSignatureAlgorithm {
        /// The algorithm found.
        oid: ObjectIdentifier,
    },
    /// The subject key is not an EC key on P-384.
    #[error("subject key is not an ECDSA P-384 key")]
    UnsupportedKey,
    /// The same extension twice.
    #[error("extension {oid} appears more than once")]
    DuplicateExtension {
        /// The extension.
        oid: ObjectIdentifier,
    },
    /// A critical extension we do not process.
    #[error("unknown critical extension {oid}")]
    UnknownCriticalExtension {
        /// The extension.
        oid: ObjectIdentifier,
    },
    /// basicConstraints or keyUsage that does not decode.
    #[error("extension {oid} does not decode: {source}")]
    BadExtension {
        /// The extension.
        oid: ObjectIdentifier,
        /// The decoding problem.
        source: x509_cert::der::Error,
    },
}

/// A certificate that passed the per-certificate checks.
#[derive(Debug, Clone)]
pub(crate) struct CertInfo {
    pub(crate) der: Vec<u8>,
    tbs_der: Vec<u8>,
    signature: Vec<u8>,
    pub(crate) subject: Name,
    pub(crate) issuer: Name,
    /// The key as an uncompressed SEC1 point (97 bytes). Its validity as a curve point is
    /// checked where it is used: by `ring` when it verifies a certificate, by `p384` when it
    /// becomes the COSE key.
    point: Vec<u8>,
    /// Validity, in seconds since the epoch (certificates have a one-second resolution).
    pub(crate) not_before: u64,
    pub(crate) not_after: u64,
    pub(crate) basic_constraints: Option<BasicConstraints>,
    pub(crate) key_usage: Option<KeyUsage>,
}

impl CertInfo {
    pub(crate) fn parse(der: &[u8]) -> Result<Self, CertificateError> {
        let cert = Certificate::from_der(der).map_err(CertificateError::Malformed)?;
        let tbs = &cert.tbs_certificate;
        if tbs.version != Version::V3 {
            return Err(CertificateError::NotV3);
        }
        for alg in [&cert.signature_algorithm, &tbs.signature] {
            if alg.oid != ECDSA_WITH_SHA384 || alg.parameters.is_some() {
                return Err(CertificateError::UnsupportedSignatureAlgorithm { oid: alg.oid });
            }
        }
        let point = p384_point(tbs)?;

        let mut basic_constraints = None;
        let mut key_usage = None;
        let mut seen: Vec<ObjectIdentifier> = Vec::new();
        for ext in tbs.extensions.as_deref().unwrap_or(&[]) {
            if seen.contains(&ext.extn_id) {
                return Err(CertificateError::DuplicateExtension { oid: ext.extn_id });
            }
            seen.push(ext.extn_id);
            let bad = |source| CertificateError::BadExtension {
                oid: ext.extn_id,
                source,
            };
            match ext.extn_id {
                BASIC_CONSTRAINTS => {
                    basic_constraints =
                        Some(BasicConstraints::from_der(ext.extn_value.as_bytes()).map_err(bad)?);
                }
                KEY_USAGE => {
                    key_usage = Some(KeyUsage::from_der(ext.extn_value.as_bytes()).map_err(bad)?);
                }
                oid if ext.critical => {
                    return Err(CertificateError::UnknownCriticalExtension { oid });
                }
                _ => {}
            }
        }

        Ok(Self {
            der: der.to_vec(),
            tbs_der: raw_tbs(der)?.to_vec(),
            signature: cert
                .signature
                .as_bytes()
                .ok_or(CertificateError::Malformed(
                    x509_cert::der::ErrorKind::Noncanonical {
                        tag: x509_cert::der::Tag::BitString,
                    }
                    .into(),
                ))?
                .to_vec(),
            subject: tbs.subject.clone(),
            issuer: tbs.issuer.clone(),
            point,
            not_before: tbs.validity.not_before.to_unix_duration().as_secs(),
            not_after: tbs.validity.not_after.to_unix_duration().as_secs(),
            basic_constraints,
            key_usage,
        })
    }

    /// The key as a RustCrypto key (for the COSE signature); fails for points off the curve.
    pub(crate) fn p384_key(&self) -> Result<VerifyingKey, CertificateError> {
        VerifyingKey::from_sec1_bytes(&self.point).map_err(|_| CertificateError::UnsupportedKey)
    }

    /// The uncompressed SEC1 point of the subject key.
    pub(crate) fn point(&self) -> &[u8] {
        &self.point
    }

    /// True when `issuer`'s key signed this certificate's TBS bytes.
    pub(crate) fn signed_by(&self, issuer: &CertInfo) -> bool {
        UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, &issuer.point)
            .verify(&self.tbs_der, &self.signature)
            .is_ok()
    }

    /// The DER encoding of the names, compared byte for byte: the NSM's chains reuse the exact
    /// encoding of each issuer's subject.
    pub(crate) fn issued_by_name(&self, issuer: &CertInfo) -> bool {
        match (self.issuer.to_der(), issuer.subject.to_der()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }

    pub(crate) fn is_ca(&self) -> bool {
        self.basic_constraints.as_ref().is_some_and(|bc| bc.ca)
    }

    pub(crate) fn path_len(&self) -> Option<u8> {
        self.basic_constraints
            .as_ref()
            .and_then(|bc| bc.path_len_constraint)
    }

    pub(crate) fn can_sign_certificates(&self) -> bool {
        self.key_usage.as_ref().is_some_and(|ku| ku.key_cert_sign())
    }

    pub(crate) fn can_sign_data(&self) -> bool {
        self.key_usage
            .as_ref()
            .is_some_and(|ku| ku.digital_signature())
    }
}

fn p384_point(tbs: &x509_cert::TbsCertificate) -> Result<Vec<u8>, CertificateError> {
    let spki = &tbs.subject_public_key_info;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if spki.algorithm.oid != ID_EC_PUBLIC_KEY || curve != Some(SECP384R1) {
        return Err(CertificateError::UnsupportedKey);
    }
    let point = spki
        .subject_public_key
        .as_bytes()
        .ok_or(CertificateError::UnsupportedKey)?;
    // Uncompressed points only, as `ring` takes them; the NSM writes no others.
    if point.len() != 97 || point.first() != Some(&0x04) {
        return Err(CertificateError::UnsupportedKey);
    }
    Ok(point.to_vec())
}

/// The TBSCertificate exactly as it appears in the input: the signature covers these bytes,
/// not a re-encoding of them.
fn raw_tbs(der: &[u8]) -> Result<&[u8], CertificateError> {
    let mut reader = SliceReader::new(der).map_err(CertificateError::Malformed)?;
    reader
        .sequence(|inner| {
            inner.tlv_bytes().and_then(|tbs| {
                // Skip the rest so the nested reader accepts the sequence as fully read.
                let rest = inner.remaining_len();
                inner.read_slice(rest)?;
                Ok(tbs)
            })
        })
        .map_err(CertificateError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The AWS Nitro Enclaves Root-G1, as embedded in the crate.
    fn aws_root_der() -> Vec<u8> {
        crate::root::aws_root_der().unwrap()
    }

    #[test]
    fn aws_root_facts() {
        let root = CertInfo::parse(&aws_root_der()).unwrap();
        assert!(root.is_ca());
        assert_eq!(root.path_len(), None);
        assert!(root.can_sign_certificates());
        assert!(root.issued_by_name(&root));
        assert!(root.signed_by(&root));
        assert_eq!(root.not_before, 1_572_269_285); // 2019-10-28T13:28:05Z
        assert_eq!(root.not_after, 2_519_044_085); // 2049-10-28T14:28:05Z
    }

    #[test]
    fn raw_tbs_is_the_signed_prefix() {
        let der = aws_root_der();
        let tbs = raw_tbs(&der).unwrap();
        // SEQUENCE header of 4 bytes, then the TBS.
        assert_eq!(tbs, &der[4..4 + tbs.len()]);
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            CertInfo::parse(&[0x30, 0x03, 0x02, 0x01, 0x00]),
            Err(CertificateError::Malformed(_))
        ));
    }
}
