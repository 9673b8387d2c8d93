//! The verifier against real AWS Nitro attestation documents (testdata/).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions"
)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{document, production_pcrs, ALL, DEBUG_2022, DEBUG_2023, PRODUCTION};
use ea_attestation::{
    parse_unverified, verify, CertPosition, Check, MockCa, ParseError, RootKind, TrustRoot,
    ValidationTime, VerifyError, VerifyOptions,
};

fn aws() -> VerifyOptions {
    VerifyOptions::new(TrustRoot::aws_nitro_root_g1().unwrap())
}

#[test]
fn production_document_verifies_at_its_own_time_with_its_pcrs_pinned() {
    let options = aws()
        .at(ValidationTime::DocumentTime)
        .pcrs(production_pcrs());
    let verified = verify(&document(PRODUCTION), &options).unwrap();
    assert_eq!(
        verified.module_id,
        "i-020b6af9246d90e92-enc0183d09086c24190"
    );
    assert_eq!(verified.timestamp, 1_665_651_482_136);
    assert_eq!(verified.nonce.as_ref().map(Vec::len), Some(256));
    assert_eq!(verified.public_key, None);
    assert_eq!(verified.user_data, None);

    let report = verified.report();
    assert_eq!(report.root, RootKind::AwsNitroRootG1);
    assert_eq!(report.chain_len, 5);
    assert!(!report.debug_mode);
    assert_eq!(report.pinned_pcrs, vec![0, 1, 2, 3, 4, 8]);
    assert_eq!(
        report.checks,
        vec![
            Check::Parse,
            Check::CertificateChain,
            Check::CertificateValidity,
            Check::CertificateConstraints,
            Check::CoseSignature,
            Check::DebugMode,
            Check::Pcrs,
        ]
    );
    assert_eq!(report.validated_at.to_string(), "2022-10-13T08:58:02.136Z");
}

#[test]
fn production_document_verifies_at_an_explicit_time_inside_the_leaf_validity() {
    // The leaf is valid 08:57:59 .. 11:58:02 UTC on 2022-10-13.
    let at = 1_665_651_482_136 + 60 * 60 * 1000;
    assert!(verify(&document(PRODUCTION), &aws().at(ValidationTime::At(at))).is_ok());
}

#[test]
fn production_document_is_refused_with_any_pinned_pcr_changed() {
    let doc = document(PRODUCTION);
    for (index, value) in production_pcrs() {
        for position in [0, 23, 47] {
            let mut changed = value.clone();
            changed[position] ^= 0x80;
            let options = aws().pcrs(production_pcrs()).pcr(index, changed.clone());
            match verify(&doc, &options) {
                Err(VerifyError::PcrMismatch {
                    index: got,
                    expected,
                    actual,
                }) => {
                    assert_eq!(got, index);
                    assert_eq!(expected.0, changed);
                    assert_eq!(actual.0, value);
                }
                other => panic!("PCR{index} byte {position}: {other:?}"),
            }
        }
    }
}

#[test]
fn a_pinned_pcr_must_be_present() {
    // The NSM attests PCR0..15; PCR16 is not in the document.
    let error = verify(&document(PRODUCTION), &aws().pcr(16, vec![0; 48])).unwrap_err();
    assert!(
        matches!(error, VerifyError::PcrMissing { index: 16 }),
        "{error}"
    );
}

#[test]
fn debug_documents_verify_only_when_debug_mode_is_allowed() {
    for name in [DEBUG_2022, DEBUG_2023] {
        let doc = document(name);
        let error = verify(&doc, &aws()).unwrap_err();
        assert!(matches!(error, VerifyError::DebugMode), "{name}: {error}");
        assert_eq!(error.failed_check(), Check::DebugMode);
        assert!(error.to_string().contains("debug mode"));

        let verified = verify(&doc, &aws().dangerous_allow_debug(true)).unwrap();
        assert!(verified.report().debug_mode);
        assert!(verified.is_debug_mode());
        assert!(verified.pcrs[&0].iter().all(|&b| b == 0));
    }
    // The production document is not debug mode, allowed or not.
    let verified = verify(&document(PRODUCTION), &aws().dangerous_allow_debug(true)).unwrap();
    assert!(!verified.report().debug_mode);
}

#[test]
fn debug_documents_carry_their_fields() {
    let doc = verify(&document(DEBUG_2022), &aws().dangerous_allow_debug(true)).unwrap();
    assert_eq!(doc.public_key.as_ref().map(Vec::len), Some(19));
    assert_eq!(doc.user_data.as_ref().map(Vec::len), Some(13));
    assert_eq!(doc.nonce, None);
    let public_key = doc.public_key.clone().unwrap();
    let user_data = doc.user_data.clone().unwrap();
    let options = aws()
        .dangerous_allow_debug(true)
        .public_key(public_key)
        .user_data(user_data);
    let checks = verify(&document(DEBUG_2022), &options)
        .unwrap()
        .report()
        .checks
        .clone();
    assert!(checks.contains(&Check::PublicKey) && checks.contains(&Check::UserData));
    // A nonce is expected but the document has none.
    let error = verify(&document(DEBUG_2022), &options.nonce(vec![1, 2, 3])).unwrap_err();
    assert!(
        matches!(&error, VerifyError::NonceMismatch { actual, .. } if actual.0.is_none()),
        "{error}"
    );

    let doc = verify(&document(DEBUG_2023), &aws().dangerous_allow_debug(true)).unwrap();
    assert_eq!(doc.user_data.as_ref().map(Vec::len), Some(91));
    assert_eq!(doc.nonce.as_ref().map(Vec::len), Some(256));
}

#[test]
fn every_document_is_refused_today_because_its_leaf_expired() {
    let now = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    for name in ALL {
        let options = aws()
            .at(ValidationTime::At(now))
            .dangerous_allow_debug(true);
        let error = verify(&document(name), &options).unwrap_err();
        assert_eq!(error.failed_check(), Check::CertificateValidity, "{name}");
        assert!(
            matches!(
                error,
                VerifyError::CertificateExpired { position: CertPosition::Leaf, at, .. }
                    if at.0 == now
            ),
            "{name}: {error}"
        );
    }
}

#[test]
fn documents_are_refused_before_their_leaf_was_issued() {
    let error = verify(
        &document(PRODUCTION),
        &aws().at(ValidationTime::At(1_665_651_482_136 - 10 * 60 * 1000)),
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            VerifyError::CertificateNotYetValid {
                position: CertPosition::Leaf,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn aws_documents_are_refused_with_another_root() {
    let mock = MockCa::generate(1_665_651_482_136).unwrap();
    let options = VerifyOptions::new(TrustRoot::from_der(mock.root_der()).unwrap());
    for name in ALL {
        let error = verify(&document(name), &options).unwrap_err();
        assert!(
            matches!(error, VerifyError::UntrustedRoot { .. }),
            "{name}: {error}"
        );
        assert!(error.to_string().contains("aws.nitro-enclaves"), "{error}");
    }
}

#[test]
fn parse_unverified_reads_every_field() {
    let doc = parse_unverified(&document(PRODUCTION)).unwrap();
    assert_eq!(doc.digest.as_str(), "SHA384");
    assert_eq!(doc.pcrs.len(), 16);
    assert_eq!(doc.cabundle.len(), 4);
    assert_eq!(doc.certificate.len(), 639);
    for (index, value) in production_pcrs() {
        assert_eq!(doc.pcrs[&index], value);
    }
}

#[test]
fn tag_18_is_accepted_and_other_tags_are_refused() {
    let mut tagged = vec![0xd2]; // tag 18
    tagged.extend(document(PRODUCTION));
    assert!(verify(&tagged, &aws()).is_ok());

    tagged[0] = 0xd3; // tag 19
    assert!(matches!(
        verify(&tagged, &aws()),
        Err(VerifyError::Parse(ParseError::UnexpectedTag { tag: 19 }))
    ));
}

#[test]
fn truncated_and_extended_documents_are_refused() {
    let doc = document(PRODUCTION);
    for len in [0, 1, 2, 7, 100, doc.len() / 2, doc.len() - 1] {
        assert!(
            matches!(verify(&doc[..len], &aws()), Err(VerifyError::Parse(_))),
            "length {len}"
        );
    }
    let mut longer = doc.clone();
    longer.push(0);
    assert!(matches!(
        verify(&longer, &aws()),
        Err(VerifyError::Parse(ParseError::TrailingBytes {
            count: 1,
            ..
        }))
    ));
}

/// Every single-bit flip anywhere in a document (envelope, payload, certificates, signature)
/// must be refused. Runs on all cores: each flip is a full verification.
#[test]
fn every_flipped_byte_is_refused() {
    for name in ALL {
        let doc = document(name);
        let options = aws().dangerous_allow_debug(true);
        assert!(
            verify(&doc, &options).is_ok(),
            "{name} must verify unflipped"
        );

        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let accepted: Vec<usize> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|worker| {
                    let (doc, options) = (&doc, &options);
                    scope.spawn(move || {
                        let mut accepted = Vec::new();
                        let mut flipped = doc.clone();
                        for position in (worker..doc.len()).step_by(threads) {
                            flipped[position] ^= 0x01;
                            if verify(&flipped, options).is_ok() {
                                accepted.push(position);
                            }
                            flipped[position] ^= 0x01;
                        }
                        accepted
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        assert!(
            accepted.is_empty(),
            "{name}: flips accepted at {accepted:?}"
        );
    }
}
