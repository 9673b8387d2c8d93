//! The signature section: the signing certificate (whose digest is PCR8) and the COSE_Sign1
//! signature over PCR0.
//!
//! nitro-cli writes the section as the CBOR of a list of `PcrSignature { signing_certificate,
//! signature }` records (serde field names as map keys; each byte string serialized as a CBOR
//! array of small integers, which is how serde treats `Vec<u8>`). Only the first record is
//! used. `signing_certificate` holds the certificate in PEM; `signature` an untagged
//! COSE_Sign1 whose payload is the CBOR of `PcrInfo { register_index: 0, register_value:
//! PCR0 }`.

use ciborium::Value;
use der::{Decode, Encode};
use x509_cert::Certificate;

/// Why the signature section could not be read. Each of these makes nitro-cli refuse the
/// image as well.
#[derive(Debug, thiserror::Error)]
pub enum SignatureSectionError {
    /// Not CBOR at all, or CBOR nested too deep.
    #[error("not CBOR: {0}")]
    Cbor(#[from] ciborium::de::Error<std::io::Error>),
    /// Bytes after the CBOR value.
    #[error("{count} bytes follow the CBOR list of signatures")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The top-level value is not a non-empty array of maps.
    #[error("expected a non-empty CBOR array of PCR signature maps")]
    NotASignatureList,
    /// A required field of the first record is missing or not a byte string.
    #[error("the first PCR signature has no byte-string field {field:?}")]
    MissingField {
        /// The field's name.
        field: &'static str,
    },
    /// `signing_certificate` contains no `BEGIN CERTIFICATE` PEM block.
    #[error("the signing certificate is not a PEM certificate")]
    NoPemCertificate,
    /// The PEM block does not hold an X.509 certificate.
    #[error("the signing certificate does not parse as X.509: {0}")]
    Certificate(#[source] der::Error),
}

/// The parsed signature section: what PCR8 measures and what the signature check needs.
#[derive(Debug, Clone)]
pub struct PcrSignature {
    certificate: Certificate,
    certificate_der: Vec<u8>,
    cose_sign1: Vec<u8>,
}

impl PcrSignature {
    /// Reads the section's bytes.
    pub fn parse(section: &[u8]) -> Result<Self, SignatureSectionError> {
        let mut rest = section;
        let value: Value = ciborium::de::from_reader(&mut rest)?;
        if !rest.is_empty() {
            return Err(SignatureSectionError::TrailingBytes { count: rest.len() });
        }
        let Value::Array(records) = value else {
            return Err(SignatureSectionError::NotASignatureList);
        };
        let Some(Value::Map(first)) = records.into_iter().next() else {
            return Err(SignatureSectionError::NotASignatureList);
        };
        let pem = byte_field(&first, "signing_certificate")?;
        let cose_sign1 = byte_field(&first, "signature")?;
        let (certificate, certificate_der) = certificate_from_pem(&pem)?;
        Ok(Self {
            certificate,
            certificate_der,
            cose_sign1,
        })
    }

    /// The signing certificate, DER-encoded: PCR8 is the extend of its SHA-384.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// The parsed signing certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The COSE_Sign1 bytes as stored.
    pub fn cose_sign1(&self) -> &[u8] {
        &self.cose_sign1
    }
}

/// Parses the first PEM certificate in `pem` and returns it with its DER encoding.
pub(crate) fn certificate_from_pem(
    pem: &[u8],
) -> Result<(Certificate, Vec<u8>), SignatureSectionError> {
    let block = first_pem_certificate(pem).ok_or(SignatureSectionError::NoPemCertificate)?;
    // Decode the PEM to DER first and parse the DER: der 0.7's streaming PEM decoder
    // (`DecodePem::from_pem`) never returns on some truncated inputs, e.g. a body of "MIIB".
    let (label, der) = der::pem::decode_vec(block)
        .map_err(|error| SignatureSectionError::Certificate(der::Error::from(error)))?;
    if label != "CERTIFICATE" {
        return Err(SignatureSectionError::NoPemCertificate);
    }
    let certificate = Certificate::from_der(&der).map_err(SignatureSectionError::Certificate)?;
    // nitro-cli hashes OpenSSL's DER re-encoding of the parsed certificate, not the PEM
    // payload; re-encoding here gives the same bytes for any DER-valid certificate.
    let der = certificate
        .to_der()
        .map_err(SignatureSectionError::Certificate)?;
    Ok((certificate, der))
}

/// Finds `-----BEGIN CERTIFICATE-----` ... `-----END CERTIFICATE-----` and returns that block,
/// so text around it (as OpenSSL tolerates) does not matter.
fn first_pem_certificate(pem: &[u8]) -> Option<&[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let start = find(pem, BEGIN)?;
    let tail = pem.get(start..)?;
    let end = find(tail, END)?.checked_add(END.len())?;
    tail.get(..end)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A field holding bytes, either as serde writes `Vec<u8>` (an array of integers 0..=255) or
/// as a CBOR byte string.
fn byte_field(
    map: &[(Value, Value)],
    field: &'static str,
) -> Result<Vec<u8>, SignatureSectionError> {
    let missing = SignatureSectionError::MissingField { field };
    let value = map
        .iter()
        .find_map(|(key, value)| (key.as_text() == Some(field)).then_some(value))
        .ok_or(SignatureSectionError::MissingField { field })?;
    match value {
        Value::Bytes(bytes) => Ok(bytes.clone()),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_integer()
                    .and_then(|int| u8::try_from(int).ok())
                    .ok_or(SignatureSectionError::MissingField { field })
            })
            .collect(),
        _ => Err(missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate_pem() -> (String, Vec<u8>) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["signer.example".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), cert.der().to_vec())
    }

    fn section(entries: Vec<Value>) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(&Value::Array(entries), &mut out).unwrap();
        out
    }

    fn entry(cert: Value, signature: Value) -> Value {
        Value::Map(vec![
            (Value::Text("signing_certificate".into()), cert),
            (Value::Text("signature".into()), signature),
        ])
    }

    fn ints(bytes: &[u8]) -> Value {
        Value::Array(bytes.iter().map(|b| Value::Integer((*b).into())).collect())
    }

    #[test]
    fn reads_integer_arrays_and_byte_strings_and_finds_pem_among_text() {
        let (pem, der) = certificate_pem();
        let noisy = format!("subject=CN = signer\nissuer=CN = signer\n{pem}trailing text\n");
        let cases = [
            entry(ints(pem.as_bytes()), ints(b"cose")),
            entry(
                Value::Bytes(noisy.into_bytes()),
                Value::Bytes(b"cose".to_vec()),
            ),
        ];
        for case in cases {
            let parsed = PcrSignature::parse(&section(vec![case])).unwrap();
            assert_eq!(parsed.certificate_der(), der);
            assert_eq!(parsed.cose_sign1(), b"cose");
        }
    }

    #[test]
    fn refuses_malformed_sections() {
        let (pem, _) = certificate_pem();
        let good = entry(ints(pem.as_bytes()), ints(b"cose"));
        let garbled_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let too_big = Value::Array(vec![Value::Integer(256.into())]);
        type Check = fn(&SignatureSectionError) -> bool;
        let cases: Vec<(Vec<u8>, Check)> = vec![
            (vec![], |e| matches!(e, SignatureSectionError::Cbor(_))),
            ([section(vec![good.clone()]), vec![0]].concat(), |e| {
                matches!(e, SignatureSectionError::TrailingBytes { count: 1 })
            }),
            (section(vec![]), |e| {
                matches!(e, SignatureSectionError::NotASignatureList)
            }),
            (section(vec![Value::Integer(1.into())]), |e| {
                matches!(e, SignatureSectionError::NotASignatureList)
            }),
            (
                section(vec![Value::Map(vec![(
                    Value::Text("signature".into()),
                    ints(b"x"),
                )])]),
                |e| {
                    matches!(
                        e,
                        SignatureSectionError::MissingField {
                            field: "signing_certificate"
                        }
                    )
                },
            ),
            (section(vec![entry(ints(pem.as_bytes()), too_big)]), |e| {
                matches!(
                    e,
                    SignatureSectionError::MissingField { field: "signature" }
                )
            }),
            (section(vec![entry(ints(b"not pem"), ints(b"x"))]), |e| {
                matches!(e, SignatureSectionError::NoPemCertificate)
            }),
            (
                section(vec![entry(ints(garbled_pem.as_bytes()), ints(b"x"))]),
                |e| matches!(e, SignatureSectionError::Certificate(_)),
            ),
        ];
        for (bytes, expected) in cases {
            let error = PcrSignature::parse(&bytes).unwrap_err();
            assert!(expected(&error), "{error:?}");
        }
    }
}
