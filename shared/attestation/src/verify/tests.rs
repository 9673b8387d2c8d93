//! Chain and envelope checks on documents built here, with certificates that break one rule
//! each.

use std::collections::BTreeMap;

use aws_nitro_enclaves_cose::header_map::HeaderMap;
use aws_nitro_enclaves_cose::CoseSign1;
use p384::ecdsa::SigningKey;
use p384::pkcs8::DecodePrivateKey as _;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
};

use super::*;
use crate::document::encode_payload;
use crate::root::TrustRoot;
use crate::x509::CertificateError;
use crate::{CertPosition, Digest, ParseError};

const T0: u64 = 1_700_000_000_000;
const DAY: u64 = 24 * 3600;

fn key() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap()
}

fn params(cn: &str, is_ca: IsCa, usages: Vec<KeyUsagePurpose>) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = is_ca;
    p.key_usages = usages;
    p.not_before = time::OffsetDateTime::from_unix_timestamp((T0 / 1000 - DAY) as i64).unwrap();
    p.not_after = time::OffsetDateTime::from_unix_timestamp((T0 / 1000 + DAY) as i64).unwrap();
    p
}

fn ca(path_len: u8) -> (IsCa, Vec<KeyUsagePurpose>) {
    (
        IsCa::Ca(BasicConstraints::Constrained(path_len)),
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
    )
}

/// root -> intermediate -> leaf; each `tweak` may change the parameters before signing.
struct Chain {
    root: Vec<u8>,
    intermediate: Vec<u8>,
    leaf: Vec<u8>,
    leaf_key: KeyPair,
}

#[derive(Default)]
struct Tweaks {
    root: Option<fn(&mut CertificateParams)>,
    intermediate: Option<fn(&mut CertificateParams)>,
    leaf: Option<fn(&mut CertificateParams)>,
    p256_leaf: bool,
}

fn chain(tweaks: Tweaks) -> Chain {
    let root_key = key();
    let (is_ca, usages) = ca(1);
    let mut root_params = params("test root", is_ca, usages);
    if let Some(tweak) = tweaks.root {
        tweak(&mut root_params);
    }
    let root = root_params.self_signed(&root_key).unwrap();

    let int_key = key();
    let (is_ca, usages) = ca(0);
    let mut int_params = params("test intermediate", is_ca, usages);
    if let Some(tweak) = tweaks.intermediate {
        tweak(&mut int_params);
    }
    let intermediate = int_params.signed_by(&int_key, &root, &root_key).unwrap();

    let leaf_key = if tweaks.p256_leaf {
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()
    } else {
        key()
    };
    let mut leaf_params = params(
        "test leaf",
        IsCa::ExplicitNoCa,
        vec![KeyUsagePurpose::DigitalSignature],
    );
    if let Some(tweak) = tweaks.leaf {
        tweak(&mut leaf_params);
    }
    let leaf = leaf_params
        .signed_by(&leaf_key, &intermediate, &int_key)
        .unwrap();
    Chain {
        root: root.der().to_vec(),
        intermediate: intermediate.der().to_vec(),
        leaf: leaf.der().to_vec(),
        leaf_key,
    }
}

fn doc_fields(chain: &Chain) -> AttestationDocument {
    AttestationDocument {
        module_id: "i-test-enc1".to_owned(),
        digest: Digest::Sha384,
        timestamp: T0,
        pcrs: (0..16).map(|i| (i, vec![i as u8 + 1; 48])).collect(),
        certificate: chain.leaf.clone(),
        cabundle: vec![chain.root.clone(), chain.intermediate.clone()],
        public_key: None,
        user_data: None,
        nonce: None,
    }
}

fn sign(doc: &AttestationDocument, key: &KeyPair) -> Vec<u8> {
    let signing = SigningKey::from_pkcs8_der(&key.serialize_der()).unwrap();
    CoseSign1::new::<Sha2>(
        &encode_payload(doc),
        &HeaderMap::new(),
        &crate::cose_keys::Es384PrivateKey(&signing),
    )
    .unwrap()
    .as_bytes(false)
    .unwrap()
}

fn options(root_der: &[u8]) -> VerifyOptions {
    VerifyOptions::new(TrustRoot::from_der(root_der).unwrap())
}

fn verify_chain(chain: &Chain) -> Result<Verified<AttestationDocument>, VerifyError> {
    if chain.leaf_key.is_compatible(&PKCS_ECDSA_P384_SHA384) {
        verify(
            &sign(&doc_fields(chain), &chain.leaf_key),
            &options(&chain.root),
        )
    } else {
        // A leaf that cannot sign ES384 is refused before its signature matters; sign with
        // any P-384 key.
        verify(&sign(&doc_fields(chain), &key()), &options(&chain.root))
    }
}

#[test]
fn a_well_formed_chain_verifies() {
    let chain = chain(Tweaks::default());
    let verified = verify_chain(&chain).unwrap();
    assert_eq!(verified.report().chain_len, 3);
}

#[test]
fn cabundle_zero_is_never_trusted_nor_used() {
    let good = chain(Tweaks::default());
    // Garbage in cabundle[0]: ignored, the pinned root decides.
    let mut doc = doc_fields(&good);
    doc.cabundle[0] = vec![0x30, 0x00];
    assert!(verify(&sign(&doc, &good.leaf_key), &options(&good.root)).is_ok());

    // An attacker's chain that names the pinned root in cabundle[0] is still refused.
    let attacker = chain(Tweaks::default());
    let mut doc = doc_fields(&attacker);
    doc.cabundle[0] = good.root.clone();
    assert!(matches!(
        verify(&sign(&doc, &attacker.leaf_key), &options(&good.root)),
        Err(VerifyError::UntrustedRoot { .. })
    ));
}

#[test]
fn a_leaf_signed_by_another_intermediate_is_refused() {
    let a = chain(Tweaks::default());
    let b = chain(Tweaks::default());
    // Same names, different keys: the names chain, the signature does not.
    let mut doc = doc_fields(&a);
    doc.certificate = b.leaf.clone();
    assert!(matches!(
        verify(&sign(&doc, &b.leaf_key), &options(&a.root)),
        Err(VerifyError::BadCertificateSignature {
            position: CertPosition::Leaf
        })
    ));
}

#[test]
fn an_issuer_name_mismatch_is_refused() {
    let chain = chain(Tweaks {
        intermediate: Some(|p| {
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, "renamed intermediate");
            p.distinguished_name = dn;
        }),
        ..Tweaks::default()
    });
    // The leaf names "test intermediate"; swap in an intermediate with another subject.
    let other = self::chain(Tweaks {
        intermediate: Some(|p| {
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, "someone else");
            p.distinguished_name = dn;
        }),
        ..Tweaks::default()
    });
    let mut doc = doc_fields(&chain);
    doc.cabundle[1] = other.intermediate.clone();
    assert!(matches!(
        verify(&sign(&doc, &chain.leaf_key), &options(&chain.root)),
        Err(VerifyError::IssuerMismatch {
            position: CertPosition::Leaf
        })
    ));
}

#[test]
fn a_leaf_that_is_a_ca_is_refused() {
    let chain = chain(Tweaks {
        leaf: Some(|p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained)),
        ..Tweaks::default()
    });
    assert!(matches!(verify_chain(&chain), Err(VerifyError::LeafIsCa)));
}

#[test]
fn a_leaf_without_digital_signature_is_refused() {
    let chain = chain(Tweaks {
        leaf: Some(|p| p.key_usages = vec![KeyUsagePurpose::KeyEncipherment]),
        ..Tweaks::default()
    });
    assert!(matches!(
        verify_chain(&chain),
        Err(VerifyError::MissingKeyUsage {
            position: CertPosition::Leaf,
            usage: "digitalSignature"
        })
    ));
}

#[test]
fn an_intermediate_without_key_cert_sign_is_refused() {
    let chain = chain(Tweaks {
        intermediate: Some(|p| p.key_usages = vec![KeyUsagePurpose::DigitalSignature]),
        ..Tweaks::default()
    });
    assert!(matches!(
        verify_chain(&chain),
        Err(VerifyError::MissingKeyUsage {
            position: CertPosition::Cabundle(1),
            usage: "keyCertSign"
        })
    ));
}

#[test]
fn an_intermediate_that_is_not_a_ca_is_refused() {
    let chain = chain(Tweaks {
        intermediate: Some(|p| p.is_ca = IsCa::ExplicitNoCa),
        ..Tweaks::default()
    });
    assert!(matches!(
        verify_chain(&chain),
        Err(VerifyError::NotACa {
            position: CertPosition::Cabundle(1)
        })
    ));
}

#[test]
fn path_len_is_enforced() {
    let chain = chain(Tweaks {
        root: Some(|p| p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0))),
        ..Tweaks::default()
    });
    assert!(matches!(
        verify_chain(&chain),
        Err(VerifyError::PathLenExceeded {
            position: CertPosition::Root,
            path_len: 0,
            below: 1
        })
    ));
}

#[test]
fn a_p256_leaf_is_refused() {
    let chain = chain(Tweaks {
        p256_leaf: true,
        ..Tweaks::default()
    });
    assert!(matches!(
        verify_chain(&chain),
        Err(VerifyError::Certificate {
            position: CertPosition::Leaf,
            source: CertificateError::UnsupportedKey
        })
    ));
}

#[test]
fn an_unknown_critical_extension_is_refused() {
    let chain = chain(Tweaks {
        intermediate: Some(|p| {
            let mut ext = CustomExtension::from_oid_content(&[1, 2, 3, 4], vec![0x05, 0x00]);
            ext.set_criticality(true);
            p.custom_extensions = vec![ext];
        }),
        ..Tweaks::default()
    });
    assert!(matches!(
        verify_chain(&chain),
        Err(VerifyError::Certificate {
            position: CertPosition::Cabundle(1),
            source: CertificateError::UnknownCriticalExtension { .. }
        })
    ));
}

#[test]
fn an_expired_intermediate_is_refused() {
    let chain = chain(Tweaks {
        intermediate: Some(|p| {
            p.not_after =
                time::OffsetDateTime::from_unix_timestamp((T0 / 1000 - 1) as i64).unwrap();
        }),
        ..Tweaks::default()
    });
    assert!(matches!(
        verify_chain(&chain),
        Err(VerifyError::CertificateExpired {
            position: CertPosition::Cabundle(1),
            ..
        })
    ));
}

#[test]
fn a_root_outside_its_validity_is_refused() {
    let chain = chain(Tweaks {
        root: Some(|p| {
            p.not_before =
                time::OffsetDateTime::from_unix_timestamp((T0 / 1000 + 1) as i64).unwrap();
        }),
        ..Tweaks::default()
    });
    assert!(matches!(
        verify_chain(&chain),
        Err(VerifyError::CertificateNotYetValid {
            position: CertPosition::Root,
            ..
        })
    ));
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let chain = chain(Tweaks::default());
    let doc = sign(&doc_fields(&chain), &key());
    assert!(matches!(
        verify(&doc, &options(&chain.root)),
        Err(VerifyError::BadSignature)
    ));
}

#[test]
fn the_pcrs_of_the_options_need_not_be_all_of_the_document() {
    let chain = chain(Tweaks::default());
    let doc = sign(&doc_fields(&chain), &chain.leaf_key);
    let pins: BTreeMap<u16, Vec<u8>> = [(3, vec![4u8; 48])].into();
    let verified = verify(&doc, &options(&chain.root).pcrs(pins)).unwrap();
    assert_eq!(verified.report().pinned_pcrs, vec![3]);
    assert_eq!(verified.clone().into_inner().pcrs.len(), 16);
}

#[test]
fn a_signed_document_without_pcr0_1_or_2_is_refused_naming_it() {
    let chain = chain(Tweaks::default());
    // Debug mode allowed and nothing pinned: the presence of PCR0-2 is all that is left
    // between such a document and acceptance.
    let lenient = options(&chain.root).dangerous_allow_debug(true);
    for missing in 0..3u16 {
        let mut doc = doc_fields(&chain);
        doc.pcrs.remove(&missing);
        let error = verify(&sign(&doc, &chain.leaf_key), &lenient).unwrap_err();
        assert!(
            error.to_string().contains(&format!("PCR{missing} ")),
            "PCR{missing}: {error}"
        );
        assert!(
            matches!(error, VerifyError::Parse(ParseError::MissingPcr { index }) if index == missing),
            "{error:?}"
        );
        assert_eq!(error.failed_check(), Check::Parse);
    }
    // No PCR0-2 at all, which "all zero" held of over an empty set: not debug mode, refused.
    let mut doc = doc_fields(&chain);
    doc.pcrs.retain(|index, _| *index > 2);
    let error = verify(&sign(&doc, &chain.leaf_key), &lenient).unwrap_err();
    assert!(error.to_string().contains("PCR0 "), "{error}");
    // All present: accepted as before.
    assert!(verify(&sign(&doc_fields(&chain), &chain.leaf_key), &lenient).is_ok());
}
