//! Checking the COSE_Sign1 signature over PCR0 that a signed EIF carries, and the few fixed
//! CBOR shapes that needs.
//!
//! nitro-cli's `describe-eif` reports `"SignatureCheck": true` when the signature verifies
//! with the signing certificate's key and its payload is exactly the CBOR of
//! `PcrInfo { register_index: 0, register_value: PCR0 }`. The encodings below are written
//! out by hand: they are fixed shapes, and an infallible encoder keeps errors out of them.

use ciborium::Value;
use der::asn1::ObjectIdentifier;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED};

use crate::measure::Pcr;
use crate::signature::PcrSignature;

/// A COSE signature algorithm this crate verifies (and, with the `writer` feature, writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoseAlgorithm {
    /// ECDSA P-256 with SHA-256 (COSE -7).
    Es256,
    /// ECDSA P-384 with SHA-384 (COSE -35), what a P-384 signing key gives with nitro-cli.
    Es384,
}

impl CoseAlgorithm {
    /// The COSE algorithm identifier.
    pub const fn id(self) -> i64 {
        match self {
            Self::Es256 => -7,
            Self::Es384 => -35,
        }
    }

    fn from_id(id: i128) -> Option<Self> {
        match id {
            -7 => Some(Self::Es256),
            -35 => Some(Self::Es384),
            _ => None,
        }
    }

    fn curve(self) -> ObjectIdentifier {
        match self {
            Self::Es256 => SECP256R1,
            Self::Es384 => SECP384R1,
        }
    }
}

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// Why the PCR0 signature of a signed EIF did not check out. The image's PCRs are still
/// what they are; this only says whether the signature vouches for them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureCheckError {
    /// The signature bytes are not a COSE_Sign1 structure; `part` names what is wrong.
    #[error("the signature is not a well-formed COSE_Sign1 ({part})")]
    Malformed {
        /// Which part of the structure is wrong.
        part: &'static str,
    },
    /// An algorithm other than ES256 or ES384 (for example ES512, which this crate cannot
    /// verify).
    #[error("COSE algorithm {id} is not supported here (ES256 and ES384 are)")]
    UnsupportedAlgorithm {
        /// The COSE algorithm identifier.
        id: i128,
    },
    /// The certificate's key is not an EC key on the algorithm's curve.
    #[error("the signing certificate's key does not match the COSE algorithm {algorithm:?}")]
    KeyMismatch {
        /// The algorithm the signature claims.
        algorithm: CoseAlgorithm,
    },
    /// The signature does not verify.
    #[error("the signature does not verify with the signing certificate's key")]
    BadSignature,
    /// The signature verifies but signs something other than this image's PCR0.
    #[error("the signature is valid but does not sign this image's PCR0")]
    PayloadMismatch,
}

/// Checks that `signature` is a valid signature by its certificate's key over `pcr0`.
pub fn check_pcr0_signature(
    signature: &PcrSignature,
    pcr0: &Pcr,
) -> Result<(), SignatureCheckError> {
    let parts = CoseSign1::parse(signature.cose_sign1())?;
    let spki = &signature
        .certificate()
        .tbs_certificate
        .subject_public_key_info;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|any| any.decode_as::<ObjectIdentifier>().ok());
    if spki.algorithm.oid != EC_PUBLIC_KEY || curve != Some(parts.algorithm.curve()) {
        return Err(SignatureCheckError::KeyMismatch {
            algorithm: parts.algorithm,
        });
    }
    let verifier = match parts.algorithm {
        CoseAlgorithm::Es256 => &ECDSA_P256_SHA256_FIXED,
        CoseAlgorithm::Es384 => &ECDSA_P384_SHA384_FIXED,
    };
    let to_be_signed = sig_structure(&parts.protected, &parts.payload);
    UnparsedPublicKey::new(verifier, spki.subject_public_key.raw_bytes())
        .verify(&to_be_signed, &parts.signature)
        .map_err(|_| SignatureCheckError::BadSignature)?;
    if parts.payload != pcr_info(0, pcr0) {
        return Err(SignatureCheckError::PayloadMismatch);
    }
    Ok(())
}

/// The parts of a COSE_Sign1 that verification needs.
struct CoseSign1 {
    protected: Vec<u8>,
    algorithm: CoseAlgorithm,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl CoseSign1 {
    fn parse(bytes: &[u8]) -> Result<Self, SignatureCheckError> {
        let malformed = |part| SignatureCheckError::Malformed { part };
        let mut rest = bytes;
        let mut value: Value =
            ciborium::de::from_reader(&mut rest).map_err(|_| malformed("not CBOR"))?;
        if !rest.is_empty() {
            return Err(malformed("trailing bytes"));
        }
        // Tag 18 marks a COSE_Sign1; nitro-cli writes it untagged.
        if let Value::Tag(18, inner) = value {
            value = *inner;
        }
        let Value::Array(items) = value else {
            return Err(malformed("not an array"));
        };
        let [Value::Bytes(protected), Value::Map(_), Value::Bytes(payload), Value::Bytes(signature)] =
            <[Value; 4]>::try_from(items).map_err(|_| malformed("not four elements"))?
        else {
            return Err(malformed("element types"));
        };
        let mut header_bytes = protected.as_slice();
        let header: Value = ciborium::de::from_reader(&mut header_bytes)
            .map_err(|_| malformed("protected header is not CBOR"))?;
        let id = header
            .as_map()
            .and_then(|map| {
                map.iter()
                    .find(|(key, _)| key.as_integer() == Some(1.into()))
                    .and_then(|(_, alg)| alg.as_integer())
            })
            .map(i128::from)
            .ok_or(malformed("no algorithm in the protected header"))?;
        let algorithm =
            CoseAlgorithm::from_id(id).ok_or(SignatureCheckError::UnsupportedAlgorithm { id })?;
        Ok(Self {
            protected,
            algorithm,
            payload,
            signature,
        })
    }
}

/// CBOR of nitro-cli's `PcrInfo { register_index, register_value }`: a two-entry map with
/// text keys in field order, the value as an array of integers.
pub(crate) fn pcr_info(register_index: u8, register_value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + 2 * register_value.len());
    head(&mut out, MAP, 2);
    text(&mut out, "register_index");
    head(&mut out, UNSIGNED, register_index.into());
    text(&mut out, "register_value");
    int_array(&mut out, register_value);
    out
}

/// The COSE `Sig_structure` for a COSE_Sign1 with empty external data (RFC 9052 4.4).
pub(crate) fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + protected.len() + payload.len());
    head(&mut out, ARRAY, 4);
    text(&mut out, "Signature1");
    bytes(&mut out, protected);
    bytes(&mut out, &[]);
    bytes(&mut out, payload);
    out
}

pub(crate) const UNSIGNED: u8 = 0;
#[cfg(feature = "writer")]
const NEGATIVE: u8 = 1;
pub(crate) const BYTES: u8 = 2;
const TEXT: u8 = 3;
pub(crate) const ARRAY: u8 = 4;
pub(crate) const MAP: u8 = 5;

/// Writes a CBOR head in its shortest form.
pub(crate) fn head(out: &mut Vec<u8>, major: u8, argument: u64) {
    let major = major << 5;
    match argument {
        0..=23 => out.push(major | argument.to_be_bytes()[7]),
        24..=0xff => {
            out.push(major | 24);
            out.push(argument.to_be_bytes()[7]);
        }
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&argument.to_be_bytes()[6..]);
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&argument.to_be_bytes()[4..]);
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&argument.to_be_bytes());
        }
    }
}

pub(crate) fn text(out: &mut Vec<u8>, value: &str) {
    head(out, TEXT, len(value.len()));
    out.extend_from_slice(value.as_bytes());
}

pub(crate) fn bytes(out: &mut Vec<u8>, value: &[u8]) {
    head(out, BYTES, len(value.len()));
    out.extend_from_slice(value);
}

/// Bytes as serde writes a `Vec<u8>` into CBOR: an array of unsigned integers.
pub(crate) fn int_array(out: &mut Vec<u8>, value: &[u8]) {
    head(out, ARRAY, len(value.len()));
    for byte in value {
        head(out, UNSIGNED, (*byte).into());
    }
}

/// A negative integer `-1 - magnitude`.
#[cfg(feature = "writer")]
pub(crate) fn negative(out: &mut Vec<u8>, magnitude: u64) {
    head(out, NEGATIVE, magnitude);
}

fn len(len: usize) -> u64 {
    // usize is at most 64 bits on every target Rust supports.
    u64::try_from(len).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ciborium_bytes(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).unwrap();
        out
    }

    #[test]
    fn pcr_info_is_the_cbor_serde_gives_nitro_cli_s_struct() {
        // Written out from RFC 8949: map(2), text(14) "register_index", 0, text(14)
        // "register_value", array(48) of the values (0..=23 in one byte, 24.. as 0x18 nn).
        let mut expected = vec![0xa2, 0x6e];
        expected.extend_from_slice(b"register_index");
        expected.extend_from_slice(&[0x00, 0x6e]);
        expected.extend_from_slice(b"register_value");
        expected.extend_from_slice(&[0x98, 0x30]);
        for value in 0u8..48 {
            if value < 24 {
                expected.push(value);
            } else {
                expected.extend_from_slice(&[0x18, value]);
            }
        }
        let register: Vec<u8> = (0..48).collect();
        assert_eq!(pcr_info(0, &register), expected);
    }

    #[test]
    fn heads_use_the_shortest_form() {
        let cases: [(u64, &[u8]); 8] = [
            (0, &[0x40]),
            (23, &[0x57]),
            (24, &[0x58, 24]),
            (255, &[0x58, 0xff]),
            (256, &[0x59, 1, 0]),
            (65_536, &[0x5a, 0, 1, 0, 0]),
            (u64::from(u32::MAX), &[0x5a, 0xff, 0xff, 0xff, 0xff]),
            (1 << 32, &[0x5b, 0, 0, 0, 1, 0, 0, 0, 0]),
        ];
        for (argument, expected) in cases {
            let mut out = Vec::new();
            head(&mut out, BYTES, argument);
            assert_eq!(out, expected, "{argument}");
        }
    }

    #[test]
    fn sig_structure_matches_ciborium() {
        let expected = Value::Array(vec![
            Value::Text("Signature1".into()),
            Value::Bytes(vec![0xa1, 0x01, 0x38, 0x22]),
            Value::Bytes(vec![]),
            Value::Bytes(vec![9; 300]),
        ]);
        assert_eq!(
            sig_structure(&[0xa1, 0x01, 0x38, 0x22], &[9; 300]),
            ciborium_bytes(&expected)
        );
    }

    fn cose(protected: &Value, items: impl FnOnce(Vec<u8>) -> Value) -> Vec<u8> {
        ciborium_bytes(&items(ciborium_bytes(protected)))
    }

    #[test]
    fn cose_sign1_parsing_accepts_tag_18_and_reads_the_algorithm() {
        let protected = Value::Map(vec![(
            Value::Integer(1.into()),
            Value::Integer((-35).into()),
        )]);
        let array = |p: Vec<u8>| {
            Value::Array(vec![
                Value::Bytes(p),
                Value::Map(vec![]),
                Value::Bytes(b"payload".to_vec()),
                Value::Bytes(vec![1; 96]),
            ])
        };
        let untagged = CoseSign1::parse(&cose(&protected, array)).unwrap();
        assert_eq!(untagged.algorithm, CoseAlgorithm::Es384);
        assert_eq!(untagged.payload, b"payload");
        let tagged = cose(&protected, |p| Value::Tag(18, Box::new(array(p))));
        assert_eq!(CoseSign1::parse(&tagged).unwrap().signature, vec![1; 96]);
    }

    #[test]
    fn cose_sign1_parsing_refuses_other_shapes() {
        let es512 = Value::Map(vec![(
            Value::Integer(1.into()),
            Value::Integer((-36).into()),
        )]);
        let four = |p: Vec<u8>| {
            Value::Array(vec![
                Value::Bytes(p),
                Value::Map(vec![]),
                Value::Bytes(vec![]),
                Value::Bytes(vec![]),
            ])
        };
        assert_eq!(
            CoseSign1::parse(&cose(&es512, four)).err(),
            Some(SignatureCheckError::UnsupportedAlgorithm { id: -36 })
        );
        let no_alg = Value::Map(vec![]);
        let three =
            |p: Vec<u8>| Value::Array(vec![Value::Bytes(p), Value::Map(vec![]), Value::Null]);
        for bytes in [
            cose(&no_alg, four),
            cose(&no_alg, three),
            vec![0xff],
            [cose(&no_alg, four), vec![0]].concat(),
        ] {
            assert!(matches!(
                CoseSign1::parse(&bytes),
                Err(SignatureCheckError::Malformed { .. })
            ));
        }
    }

    proptest! {
        #[test]
        fn hand_encoders_match_ciborium(data in proptest::collection::vec(any::<u8>(), 0..400), s in ".{0,300}") {
            let mut ours = Vec::new();
            int_array(&mut ours, &data);
            bytes(&mut ours, &data);
            text(&mut ours, &s);
            let mut theirs = ciborium_bytes(&Value::Array(
                data.iter().map(|b| Value::Integer((*b).into())).collect(),
            ));
            theirs.extend(ciborium_bytes(&Value::Bytes(data.clone())));
            theirs.extend(ciborium_bytes(&Value::Text(s.clone())));
            prop_assert_eq!(ours, theirs);
        }
    }
}
