//! The insecure QEMU mode: QEMU's unsigned documents (encoded by `crate::testing`, as QEMU
//! writes them) refused by every real root with their own error, accepted in the mode with
//! every later check still in force, and nothing else accepted in the mode.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::document::parse_unverified;
use crate::root::TrustRoot;
use crate::testing::QemuDocument;
use crate::{Measurements, MockNsm, MockNsmConfig, Nsm};

/// 2023-11-14T22:13:20Z, whole seconds as QEMU writes them.
const T0: u64 = 1_700_000_000_000;

fn pcrs() -> BTreeMap<u16, Vec<u8>> {
    (0..16).map(|i| (i, vec![i as u8 + 0x10; 48])).collect()
}

fn document() -> QemuDocument {
    QemuDocument::new(pcrs(), T0)
        .public_key(&[0xaa; 32])
        .user_data(&[0xbb; 32])
        .nonce(&[0xcc; 16])
}

fn qemu() -> VerifyOptions {
    VerifyOptions::new(TrustRoot::insecure_qemu_unsigned())
}

/// The mode with every expectation a caller can set, all met by [`document`].
fn strict() -> VerifyOptions {
    qemu()
        .pcrs(pcrs().into_iter().filter(|(i, _)| *i <= 2))
        .public_key(vec![0xaa; 32])
        .user_data(vec![0xbb; 32])
        .nonce(vec![0xcc; 16])
        .max_age(Duration::from_secs(300), T0 + 1_000)
}

fn testdata(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn mock_nsm() -> MockNsm {
    MockNsm::new(MockNsmConfig::new(Measurements::of_executable(b"image"))).unwrap()
}

#[test]
fn every_real_root_refuses_an_unsigned_document_by_name() {
    let bytes = document().encode();
    let nsm = mock_nsm();
    for root in [
        TrustRoot::aws_nitro_root_g1().unwrap(),
        nsm.trust_root().unwrap(),
    ] {
        let error = verify(&bytes, &VerifyOptions::new(root)).unwrap_err();
        assert!(
            matches!(error, VerifyError::UnsignedQemuDocument),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains("unsigned document")
                && message.contains("QEMU's nitro-enclave NSM")
                && message.contains("--insecure-qemu-attestation"),
            "{message}"
        );
        assert_eq!(error.failed_check(), Check::CoseSignature);
    }
}

#[test]
fn the_qemu_mode_accepts_qemus_document_and_reports_itself() {
    let bytes = document().encode();
    let verified = verify(&bytes, &strict()).unwrap();
    let report = verified.report();
    assert_eq!(report.root, RootKind::InsecureQemuUnsigned);
    assert_eq!(report.root_sha256, [0; 32]);
    assert_eq!(report.chain_len, 0);
    assert_eq!(
        report.checks,
        vec![
            Check::Parse,
            Check::InsecureQemuShape,
            Check::DebugMode,
            Check::Pcrs,
            Check::PublicKey,
            Check::UserData,
            Check::Nonce,
            Check::MaxAge,
        ],
        "no certificate or signature check may be listed"
    );
    assert_eq!(report.pinned_pcrs, vec![0, 1, 2]);
    assert_eq!(report.age, Some(Duration::from_secs(1)));
    assert!(!report.debug_mode);
    // QEMU's 8-byte timestamp and its placeholders are read as they are.
    assert_eq!(verified.timestamp, T0);
    assert_eq!(verified.module_id, "i-234-enc5678");
    assert_eq!(verified.certificate, vec![0; 64]);
    assert_eq!(verified.cabundle, vec![vec![0; 64]]);
    assert_eq!(verified.pcrs.len(), 16);
    assert_eq!(parse_unverified(&bytes).unwrap(), *verified);

    // Null optional fields, as QEMU writes them when the enclave gives none.
    let bare = QemuDocument::new(pcrs(), T0).encode();
    let verified = verify(&bare, &qemu()).unwrap();
    assert_eq!(
        (&verified.public_key, &verified.user_data, &verified.nonce),
        (&None, &None, &None)
    );
}

#[test]
fn every_later_check_still_refuses_in_the_qemu_mode() {
    let bytes = document().encode();
    let refused = |options: VerifyOptions| verify(&bytes, &options).unwrap_err();

    assert!(matches!(
        refused(strict().pcr(0, vec![0xee; 48])),
        VerifyError::PcrMismatch { index: 0, .. }
    ));
    // A pinned PCR that QEMU did not lock is absent, and that is a refusal.
    assert!(matches!(
        refused(strict().pcr(20, vec![0; 48])),
        VerifyError::PcrMissing { index: 20 }
    ));
    assert!(matches!(
        refused(strict().nonce(vec![0xcd; 16])),
        VerifyError::NonceMismatch { .. }
    ));
    assert!(matches!(
        refused(strict().user_data(vec![0xbc; 32])),
        VerifyError::UserDataMismatch { .. }
    ));
    assert!(matches!(
        refused(strict().public_key(vec![0xab; 32])),
        VerifyError::PublicKeyMismatch { .. }
    ));
    assert!(matches!(
        refused(strict().max_age(Duration::from_secs(300), T0 + 301_000)),
        VerifyError::TooOld { .. }
    ));
    assert!(matches!(
        refused(strict().max_age(Duration::from_secs(300), T0 - 301_000)),
        VerifyError::FromTheFuture { .. }
    ));

    // Absent fields that the caller expects.
    let bare = QemuDocument::new(pcrs(), T0).encode();
    for options in [
        qemu().nonce(vec![1]),
        qemu().user_data(vec![1]),
        qemu().public_key(vec![1]),
    ] {
        assert!(verify(&bare, &options).is_err());
    }
}

#[test]
fn a_debug_mode_document_is_refused_unless_allowed() {
    let mut pcrs = pcrs();
    for index in 0..3 {
        pcrs.insert(index, vec![0; 48]);
    }
    let bytes = QemuDocument::new(pcrs, T0).encode();
    assert!(matches!(
        verify(&bytes, &qemu()),
        Err(VerifyError::DebugMode)
    ));
    let verified = verify(&bytes, &qemu().dangerous_allow_debug(true)).unwrap();
    assert!(verified.report().debug_mode);
}

#[test]
fn the_qemu_mode_refuses_signed_documents() {
    let production = testdata("aws-nitro-attestation-2022-10-13.cbor");
    let error = verify(&production, &qemu().dangerous_allow_debug(true)).unwrap_err();
    assert!(
        matches!(error, VerifyError::SignedDocumentInQemuMode),
        "{error}"
    );
    assert!(error.to_string().contains("signed (ES384) document"));
    assert_eq!(error.failed_check(), Check::InsecureQemuShape);

    let nsm = mock_nsm();
    let mock = nsm.attestation(None, None, None).unwrap();
    assert!(matches!(
        verify(&mock, &qemu()),
        Err(VerifyError::SignedDocumentInQemuMode)
    ));
}

/// Replaces the first occurrence of `from` (a placeholder with its CBOR head) by `to`.
fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("the pattern is in the document");
    [&bytes[..at], to, &bytes[at + from.len()..]].concat()
}

#[test]
fn only_qemus_exact_placeholders_are_accepted() {
    let bytes = QemuDocument::new(pcrs(), T0).encode();
    let zero64 = [&[0x58, 0x40][..], &[0; 64]].concat();
    let mut one = zero64.clone();
    one[40] = 1;

    // A non-zero signature: the last 64 bytes.
    let mut signed = bytes.clone();
    let last = signed.len() - 1;
    signed[last] = 1;
    assert!(matches!(
        verify(&signed, &qemu()),
        Err(VerifyError::NotQemuShape {
            field: "signature",
            ..
        })
    ));

    // A non-zero certificate: the first 64-zero-byte string of the payload. The payload's
    // own length is unchanged, so the envelope still parses.
    let certificate = replace(&bytes, &[b"certificate", &zero64[..]].concat(), &{
        [&b"certificate"[..], &one].concat()
    });
    assert!(matches!(
        verify(&certificate, &qemu()),
        Err(VerifyError::NotQemuShape {
            field: "certificate",
            ..
        })
    ));

    let cabundle_one = [&b"cabundle"[..], &[0x81], &one].concat();
    let cabundle = replace(
        &bytes,
        &[&b"cabundle"[..], &[0x81], &zero64].concat(),
        &cabundle_one,
    );
    assert!(matches!(
        verify(&cabundle, &qemu()),
        Err(VerifyError::NotQemuShape {
            field: "cabundle",
            ..
        })
    ));

    // Two entries in cabundle (a longer payload: encode it again by hand).
    let payload = QemuDocument::new(pcrs(), T0).payload();
    let two = replace(
        &payload,
        &[&b"cabundle"[..], &[0x81], &zero64].concat(),
        &[&b"cabundle"[..], &[0x82], &zero64, &zero64].concat(),
    );
    let mut envelope = vec![0x84, 0x43, 0xa1, 0x01, 0x20, 0xa0, 0x59];
    envelope.extend_from_slice(&(two.len() as u16).to_be_bytes());
    envelope.extend_from_slice(&two);
    envelope.extend_from_slice(&zero64);
    assert!(matches!(
        verify(&envelope, &qemu()),
        Err(VerifyError::NotQemuShape {
            field: "cabundle",
            ..
        })
    ));

    // QEMU's header with an ES384-sized signature, and the reverse, fail to parse.
    let mut long = bytes[..bytes.len() - 66].to_vec();
    long.extend_from_slice(&[0x58, 0x60]);
    long.extend_from_slice(&[0; 96]);
    assert!(matches!(
        verify(&long, &qemu()),
        Err(VerifyError::Parse(crate::ParseError::FieldLength {
            field: "signature",
            ..
        }))
    ));
    let es384_header = replace(
        &bytes,
        &[0x43, 0xa1, 0x01, 0x20],
        &[0x44, 0xa1, 0x01, 0x38, 0x22],
    );
    assert!(matches!(
        verify(&es384_header, &qemu()),
        Err(VerifyError::Parse(crate::ParseError::FieldLength {
            field: "signature",
            ..
        }))
    ));
}

#[test]
fn flipped_and_cut_documents_never_panic() {
    let bytes = document().encode();
    let nsm = mock_nsm();
    let modes = [
        strict(),
        qemu().dangerous_allow_debug(true),
        VerifyOptions::new(nsm.trust_root().unwrap()),
    ];
    let check = |candidate: &[u8]| {
        let parsed = parse_unverified(candidate);
        for options in &modes {
            if let Ok(verified) = verify(candidate, options) {
                // Whatever is accepted is exactly what the unverified parser reads, and
                // still meets every pinned expectation.
                assert_eq!(parsed.as_ref().ok(), Some(&*verified));
                assert_eq!(verified.report().root, RootKind::InsecureQemuUnsigned);
            }
        }
    };
    for position in 0..bytes.len() {
        for mask in [0x01, 0x20, 0x80, 0xff] {
            let mut flipped = bytes.clone();
            flipped[position] ^= mask;
            check(&flipped);
        }
        check(&bytes[..position]);
    }
    // Every accepted flip in the strict mode left the pinned fields alone.
    let mut accepted = 0;
    for position in 0..bytes.len() {
        let mut flipped = bytes.clone();
        flipped[position] ^= 0x01;
        if let Ok(verified) = verify(&flipped, &strict()) {
            accepted += 1;
            assert_eq!(verified.nonce.as_deref(), Some(&[0xcc; 16][..]));
            assert_eq!(verified.pcrs.get(&0), Some(&vec![0x10; 48]));
        }
    }
    // Unsigned: a flip in an unpinned PCR or the module id goes through. That is the mode.
    assert!(accepted > 0);
}

#[test]
fn the_qemu_mode_refuses_a_document_without_pcr0_1_or_2() {
    for missing in 0..3u16 {
        let mut pcrs = pcrs();
        pcrs.remove(&missing);
        let bytes = QemuDocument::new(pcrs, T0).encode();
        let error = verify(&bytes, &qemu().dangerous_allow_debug(true)).unwrap_err();
        assert!(
            error.to_string().contains(&format!("PCR{missing} ")),
            "PCR{missing}: {error}"
        );
        assert!(
            matches!(error, VerifyError::Parse(crate::ParseError::MissingPcr { index }) if index == missing),
            "{error:?}"
        );
    }
}
