//! Parser and encoder tests: golden bytes of the real documents, and one malformed input per
//! parse error.

use std::collections::BTreeMap;

use super::*;
use crate::cbor::{CborError, Writer};
use crate::limits::MAX_DOCUMENT_LEN;

fn testdata(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn real_documents() -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let b64 = String::from_utf8(testdata("aws-nitro-attestation-debug-2023-09-18.b64")).unwrap();
    vec![
        testdata("aws-nitro-attestation-2022-10-13.cbor"),
        testdata("aws-nitro-attestation-debug-2022-10-12.cbor"),
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .unwrap(),
    ]
}

#[test]
fn re_encoding_a_real_payload_gives_back_its_bytes() {
    for document in real_documents() {
        let cose = parse_cose(&document).unwrap();
        let doc = parse_payload(cose.payload).unwrap();
        assert_eq!(encode_payload(&doc), cose.payload);
    }
}

fn sample() -> AttestationDocument {
    AttestationDocument {
        module_id: "i-1-enc2".to_owned(),
        digest: Digest::Sha384,
        timestamp: 1,
        pcrs: (0..3).map(|i| (i, vec![0; 48])).collect(),
        certificate: vec![1],
        cabundle: vec![vec![2]],
        public_key: None,
        user_data: Some(vec![]),
        nonce: None,
    }
}

/// Writes one value.
type Encode = Box<dyn Fn(&mut Writer)>;
/// A payload key and how to write its value.
type Entry = (&'static str, Encode);

/// A payload map written by hand.
fn payload(entries: &[Entry]) -> Vec<u8> {
    let mut w = Writer::new();
    w.map(entries.len());
    for (key, value) in entries {
        w.text(key);
        value(&mut w);
    }
    w.into_bytes()
}

fn base_entries() -> Vec<Entry> {
    vec![
        ("module_id", Box::new(|w: &mut Writer| w.text("m"))),
        ("digest", Box::new(|w: &mut Writer| w.text("SHA384"))),
        ("timestamp", Box::new(|w: &mut Writer| w.unsigned(5))),
        (
            "pcrs",
            Box::new(|w: &mut Writer| {
                w.map(3);
                for index in 0..3 {
                    w.unsigned(index);
                    w.bytes(&[0; 48]);
                }
            }),
        ),
        ("certificate", Box::new(|w: &mut Writer| w.bytes(&[1]))),
        (
            "cabundle",
            Box::new(|w: &mut Writer| {
                w.array(1);
                w.bytes(&[2]);
            }),
        ),
        // One optional field, so that removing any mandatory one leaves a valid entry count.
        ("nonce", Box::new(|w: &mut Writer| w.null())),
    ]
}

/// The base payload with `replace` removed, then added back with `value` when given.
fn with(replace: &'static str, value: Option<Encode>) -> Result<AttestationDocument, ParseError> {
    let mut entries = base_entries();
    entries.retain(|(k, _)| *k != replace);
    if let Some(value) = value {
        entries.push((replace, value));
    }
    parse_payload(&payload(&entries))
}

#[test]
fn the_minimal_payload_parses_with_optional_fields_absent() {
    let doc = with("none", None).unwrap();
    assert_eq!(
        (doc.public_key, doc.user_data, doc.nonce),
        (None, None, None)
    );
    let round = parse_payload(&encode_payload(&sample())).unwrap();
    assert_eq!(round, sample());
}

#[test]
fn each_malformed_payload_has_its_own_error() {
    assert!(matches!(
        with("module_id", None),
        Err(ParseError::MissingField { field: "module_id" })
    ));
    assert!(matches!(
        with("digest", Some(Box::new(|w| w.text("SHA256")))),
        Err(ParseError::UnsupportedDigest { .. })
    ));
    assert!(matches!(
        with("timestamp", Some(Box::new(|w| w.unsigned(0)))),
        Err(ParseError::ZeroTimestamp)
    ));
    assert!(matches!(
        with("module_id", Some(Box::new(|w| w.text("")))),
        Err(ParseError::FieldLength {
            field: "module_id",
            ..
        })
    ));
    assert!(matches!(
        with(
            "pcrs",
            Some(Box::new(|w| {
                w.map(1);
                w.unsigned(32);
                w.bytes(&[0; 48]);
            }))
        ),
        Err(ParseError::PcrIndex { index: 32 })
    ));
    assert!(matches!(
        with(
            "pcrs",
            Some(Box::new(|w| {
                w.map(1);
                w.unsigned(3);
                w.bytes(&[0; 32]);
            }))
        ),
        Err(ParseError::PcrLength { index: 3, len: 32 })
    ));
    assert!(matches!(
        with(
            "pcrs",
            Some(Box::new(|w| {
                w.map(2);
                w.unsigned(3);
                w.bytes(&[0; 48]);
                w.unsigned(3);
                w.bytes(&[0; 48]);
            }))
        ),
        Err(ParseError::DuplicatePcr { index: 3 })
    ));
    assert!(matches!(
        with("pcrs", Some(Box::new(|w| w.map(0)))),
        Err(ParseError::FieldLength { field: "pcrs", .. })
    ));
    assert!(matches!(
        with("cabundle", Some(Box::new(|w| w.array(0)))),
        Err(ParseError::FieldLength {
            field: "cabundle",
            ..
        })
    ));
    assert!(matches!(
        with(
            "cabundle",
            Some(Box::new(|w| {
                w.array(9);
                for _ in 0..9 {
                    w.bytes(&[1]);
                }
            }))
        ),
        Err(ParseError::FieldLength {
            field: "cabundle",
            len: 9,
            ..
        })
    ));
    assert!(matches!(
        with("certificate", Some(Box::new(|w| w.bytes(&[0; 1025])))),
        Err(ParseError::FieldLength {
            field: "certificate",
            len: 1025,
            ..
        })
    ));
    assert!(matches!(
        with("nonce", Some(Box::new(|w| w.bytes(&[0; 513])))),
        Err(ParseError::FieldLength {
            field: "nonce",
            len: 513,
            ..
        })
    ));
    assert!(matches!(
        with("user_data", Some(Box::new(|w| w.text("text")))),
        Err(ParseError::Cbor {
            field: "user_data",
            source: CborError::UnexpectedType { .. }
        })
    ));
    assert!(matches!(
        with("public_key", Some(Box::new(|w| w.bytes(&[])))),
        Err(ParseError::FieldLength {
            field: "public_key",
            len: 0,
            ..
        })
    ));
    assert!(matches!(
        with("colour", Some(Box::new(|w| w.null()))),
        Err(ParseError::UnknownField { .. })
    ));
    assert!(matches!(
        with("timestamp", Some(Box::new(|w| w.null()))),
        Err(ParseError::Cbor {
            field: "timestamp",
            ..
        })
    ));
}

/// A `pcrs` map of the given indexes, each 48 bytes of 0x11.
fn pcrs_of(indexes: &'static [u16]) -> Encode {
    Box::new(move |w: &mut Writer| {
        w.map(indexes.len());
        for &index in indexes {
            w.unsigned(u64::from(index));
            w.bytes(&[0x11; 48]);
        }
    })
}

#[test]
fn pcr0_1_and_2_are_mandatory() {
    for (indexes, missing) in [
        (&[1u16, 2, 3][..], 0u16),
        (&[0, 2, 3][..], 1),
        (&[0, 1, 3][..], 2),
        (&[3, 4][..], 0),
    ] {
        let error = with("pcrs", Some(pcrs_of(indexes))).unwrap_err();
        assert!(
            error.to_string().contains(&format!("PCR{missing} ")),
            "{indexes:?}: {error}"
        );
        assert_eq!(error, ParseError::MissingPcr { index: missing });
    }
    assert!(with("pcrs", Some(pcrs_of(&[0, 1, 2]))).is_ok());
}

#[test]
fn duplicate_keys_and_trailing_bytes_are_refused() {
    let mut entries = base_entries();
    entries.push(("digest", Box::new(|w: &mut Writer| w.text("SHA384"))));
    assert!(matches!(
        parse_payload(&payload(&entries)),
        Err(ParseError::DuplicateField { field: "digest" })
    ));

    let mut bytes = encode_payload(&sample());
    bytes.push(0);
    assert!(matches!(
        parse_payload(&bytes),
        Err(ParseError::TrailingBytes { count: 1, .. })
    ));
}

#[test]
fn envelope_errors() {
    let real = &real_documents()[0];
    assert!(matches!(
        parse_cose(&vec![0u8; MAX_DOCUMENT_LEN + 1]),
        Err(ParseError::DocumentTooLarge { .. })
    ));
    let mut three = real.clone();
    three[0] = 0x83;
    assert!(matches!(
        parse_cose(&three),
        Err(ParseError::CoseArrayLength { len: 3 })
    ));
    let mut es256 = real.clone();
    es256[5] = 0x26; // {1: -7}
    assert!(matches!(
        parse_cose(&es256),
        Err(ParseError::UnsupportedProtectedHeader) | Err(ParseError::Cbor { .. })
    ));
    let mut indefinite = real.clone();
    indefinite[0] = 0x9f;
    assert!(matches!(
        parse_cose(&indefinite),
        Err(ParseError::Cbor {
            source: CborError::IndefiniteLength,
            ..
        })
    ));
    let mut unprotected = real.clone();
    unprotected[6] = 0xa1;
    assert!(matches!(
        parse_cose(&unprotected),
        Err(ParseError::UnprotectedHeaderNotEmpty { entries: 1 })
    ));
    // The signature length is part of the envelope.
    let short = &real[..real.len() - 1];
    assert!(parse_cose(short).is_err());
}

#[test]
fn debug_mode_means_pcr0_to_2_zero_or_absent() {
    let mut doc = sample();
    doc.pcrs = (0..3).map(|i| (i, vec![0; 48])).collect();
    assert!(doc.is_debug_mode());
    doc.pcrs.insert(1, vec![1; 48]);
    assert!(!doc.is_debug_mode());
    doc.pcrs = BTreeMap::from([(5, vec![1; 48])]);
    assert!(
        doc.is_debug_mode(),
        "a document that measures nothing is not production"
    );
}
