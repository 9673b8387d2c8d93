//! The mock NSM: PCR semantics through the `Nsm` trait, the shape of its documents, and the
//! verifier's checks on them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions"
)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ea_attestation::{
    locked_pcrs, parse_unverified, verify, Check, Clock, Measurements, MockCaSource, MockNsm,
    MockNsmConfig, Nsm, NsmError, RootKind, TrustRoot, ValidationTime, VerifyError, VerifyOptions,
    LEAF_LIFETIME, RANDOM_LEN,
};
use sha2::{Digest as _, Sha384};

const T0: u64 = 1_700_000_000_000;

/// A clock the test moves by hand.
#[derive(Debug)]
struct TestClock(AtomicU64);

impl Clock for TestClock {
    fn now_unix_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn measurements() -> Measurements {
    Measurements::of_executable(b"the enclave image")
}

fn mock_at(clock: &Arc<TestClock>) -> MockNsm {
    let config = MockNsmConfig::new(measurements())
        .module_id("i-mock000000000000-enc0123456789abcdef")
        .clock(clock.clone());
    MockNsm::new(config).unwrap()
}

fn mock() -> (MockNsm, Arc<TestClock>) {
    let clock = Arc::new(TestClock(AtomicU64::new(T0)));
    (mock_at(&clock), clock)
}

fn mock_options(nsm: &MockNsm) -> VerifyOptions {
    VerifyOptions::new(nsm.trust_root().unwrap())
}

#[test]
fn mock_documents_verify_with_the_mock_root_and_not_with_the_aws_root() {
    let (nsm, _) = mock();
    let doc = nsm
        .attestation(Some(b"user"), Some(b"nonce"), Some(b"key"))
        .unwrap();
    let verified = verify(&doc, &mock_options(&nsm).pcrs(nsm.pcrs())).unwrap();
    assert_eq!(verified.report().root, RootKind::Explicit);
    assert_eq!(verified.report().chain_len, 3);
    assert_eq!(verified.timestamp, T0);
    assert_eq!(verified.user_data.as_deref(), Some(&b"user"[..]));

    let aws = VerifyOptions::new(TrustRoot::aws_nitro_root_g1().unwrap());
    let error = verify(&doc, &aws).unwrap_err();
    assert!(
        matches!(error, VerifyError::UntrustedRoot { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("untrusted root"));

    // Another mock's root does not do either.
    let (other, _) = mock();
    assert!(matches!(
        verify(&doc, &mock_options(&other)),
        Err(VerifyError::UntrustedRoot { .. })
    ));
}

#[test]
fn mock_root_pem_is_a_usable_trust_root() {
    let (nsm, _) = mock();
    let pem = nsm.mock_root_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let root = TrustRoot::from_pem(pem.as_bytes()).unwrap();
    assert_eq!(root.kind(), RootKind::Explicit);
    let doc = nsm.attestation(None, None, None).unwrap();
    assert!(verify(&doc, &VerifyOptions::new(root)).is_ok());
}

#[test]
fn mock_documents_have_the_real_shape() {
    let (nsm, _) = mock();
    let doc = nsm.attestation(None, Some(b"n"), None).unwrap();
    // Untagged COSE_Sign1: array(4), protected {1: -35}, unprotected {}.
    assert_eq!(&doc[..7], &[0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0]);
    // Payload: a map of 9 whose first key is "module_id", as the NSM writes it.
    let payload_start = 7 + 3; // bstr head with a 2-byte length
    assert_eq!(doc[7], 0x59);
    assert_eq!(doc[payload_start], 0xa9);
    assert_eq!(&doc[payload_start + 1..payload_start + 11], b"imodule_id");
    // The signature is 96 bytes, r || s.
    assert_eq!(&doc[doc.len() - 98..doc.len() - 96], &[0x58, 0x60]);

    let parsed = parse_unverified(&doc).unwrap();
    assert_eq!(parsed.cabundle.len(), 2);
    assert_eq!(parsed.cabundle[0], nsm.ca().root_der());
    assert_eq!(parsed.cabundle[1], nsm.ca().intermediate_der());
    assert_eq!(parsed.pcrs.len(), 16, "PCR0..15 are locked at boot");
    assert_eq!(parsed.public_key, None);
    assert_eq!(parsed.user_data, None);
    assert_eq!(parsed.nonce.as_deref(), Some(&b"n"[..]));
    assert_eq!(parsed.module_id, "i-mock000000000000-enc0123456789abcdef");
    // Absent optional fields are CBOR null (0xf6) after their keys.
    let needle = |key: &[u8]| {
        let mut k = vec![0x60 + key.len() as u8];
        k.extend_from_slice(key);
        k.push(0xf6);
        doc.windows(k.len()).any(|w| w == k.as_slice())
    };
    assert!(needle(b"public_key") && needle(b"user_data") && !needle(b"nonce"));
}

#[test]
fn the_pcr_user_data_nonce_and_public_key_checks_each_refuse_a_mismatch() {
    let (nsm, _) = mock();
    let doc = nsm
        .attestation(Some(b"user"), Some(b"nonce"), Some(b"public key"))
        .unwrap();
    let all = mock_options(&nsm)
        .pcrs(nsm.pcrs())
        .user_data(b"user".to_vec())
        .nonce(b"nonce".to_vec())
        .public_key(b"public key".to_vec());
    let report = verify(&doc, &all).unwrap().report().clone();
    for check in [Check::Pcrs, Check::PublicKey, Check::UserData, Check::Nonce] {
        assert!(report.checks.contains(&check), "{check} did not run");
    }

    let mut wrong_pcr = nsm.pcrs()[&1].clone();
    wrong_pcr[0] ^= 1;
    assert!(matches!(
        verify(&doc, &all.clone().pcr(1, wrong_pcr)),
        Err(VerifyError::PcrMismatch { index: 1, .. })
    ));
    assert!(matches!(
        verify(&doc, &all.clone().user_data(b"other".to_vec())),
        Err(VerifyError::UserDataMismatch { .. })
    ));
    assert!(matches!(
        verify(&doc, &all.clone().nonce(b"nonce2".to_vec())),
        Err(VerifyError::NonceMismatch { .. })
    ));
    assert!(matches!(
        verify(&doc, &all.clone().public_key(b"public kez".to_vec())),
        Err(VerifyError::PublicKeyMismatch { .. })
    ));

    // Expected fields that the document does not carry.
    let bare = nsm.attestation(None, None, None).unwrap();
    let base = mock_options(&nsm);
    assert!(matches!(
        verify(&bare, &base.clone().user_data(vec![])),
        Err(VerifyError::UserDataMismatch { .. })
    ));
    assert!(matches!(
        verify(&bare, &base.clone().nonce(vec![1])),
        Err(VerifyError::NonceMismatch { .. })
    ));
    let error = verify(&bare, &base.public_key(vec![1])).unwrap_err();
    assert!(error.to_string().ends_with("document has none"), "{error}");
}

#[test]
fn max_age_refuses_an_old_document() {
    let (nsm, _) = mock();
    let doc = nsm.attestation(None, None, None).unwrap();
    let max = Duration::from_secs(300);

    let fresh = verify(&doc, &mock_options(&nsm).max_age(max, T0 + 299_000)).unwrap();
    assert_eq!(fresh.report().age, Some(Duration::from_secs(299)));
    assert!(fresh.report().checks.contains(&Check::MaxAge));

    match verify(&doc, &mock_options(&nsm).max_age(max, T0 + 301_000)) {
        Err(VerifyError::TooOld { age, max: limit }) => {
            assert_eq!(age, Duration::from_secs(301));
            assert_eq!(limit, max);
        }
        other => panic!("{other:?}"),
    }
    // A document far ahead of the caller's clock is refused too.
    let error = verify(&doc, &mock_options(&nsm).max_age(max, T0 - 600_000)).unwrap_err();
    assert!(
        matches!(error, VerifyError::FromTheFuture { .. }),
        "{error}"
    );
    assert_eq!(error.failed_check(), Check::MaxAge);
}

#[test]
fn certificates_are_checked_at_the_given_time() {
    let (nsm, _) = mock();
    let doc = nsm.attestation(None, None, None).unwrap();
    let later = T0 + u64::try_from(LEAF_LIFETIME.as_millis()).unwrap() + 1000;
    assert!(matches!(
        verify(&doc, &mock_options(&nsm).at(ValidationTime::At(later))),
        Err(VerifyError::CertificateExpired { .. })
    ));
    assert!(verify(&doc, &mock_options(&nsm).at(ValidationTime::At(T0 + 1000))).is_ok());
}

#[test]
fn the_leaf_is_renewed_before_it_expires() {
    let (nsm, clock) = mock();
    let first = parse_unverified(&nsm.attestation(None, None, None).unwrap()).unwrap();
    clock.0.store(T0 + 4 * 3600 * 1000, Ordering::SeqCst);
    let doc = nsm.attestation(None, None, None).unwrap();
    let second = parse_unverified(&doc).unwrap();
    assert_ne!(first.certificate, second.certificate);
    assert_eq!(second.timestamp, T0 + 4 * 3600 * 1000);
    assert!(verify(&doc, &mock_options(&nsm)).is_ok());
}

#[test]
fn pcr_extend_matches_sha384_of_old_value_and_data() {
    let (nsm, _) = mock();
    let before = nsm.describe_pcr(16).unwrap();
    assert!(!before.locked);
    assert_eq!(before.value, vec![0u8; 48]);
    let after = nsm.extend_pcr(16, b"config v1").unwrap();
    let mut h = Sha384::new();
    h.update(&before.value);
    h.update(b"config v1");
    assert_eq!(after, h.finalize().to_vec());
    assert_eq!(nsm.describe_pcr(16).unwrap().value, after);
}

#[test]
fn boot_pcrs_come_from_the_measurements_and_are_locked() {
    let (nsm, _) = mock();
    let description = nsm.describe().unwrap();
    assert_eq!(description.max_pcrs, 32);
    assert_eq!(description.locked_pcrs, (0..16).collect());
    for (index, value) in measurements().pcrs() {
        let state = nsm.describe_pcr(*index).unwrap();
        assert!(state.locked);
        assert_eq!(state.value, value.to_vec());
    }
    assert!(matches!(
        nsm.extend_pcr(0, b"x"),
        Err(NsmError::ReadOnlyIndex { index: 0 })
    ));
    assert_eq!(locked_pcrs(&nsm).unwrap(), nsm.pcrs());
}

#[test]
fn locked_pcrs_cannot_be_extended_and_appear_in_documents() {
    let (nsm, _) = mock();
    let value = nsm.extend_pcr(20, b"app state").unwrap();
    nsm.lock_pcr(20).unwrap();
    assert!(matches!(
        nsm.extend_pcr(20, b"more"),
        Err(NsmError::ReadOnlyIndex { index: 20 })
    ));
    assert!(matches!(
        nsm.lock_pcr(20),
        Err(NsmError::ReadOnlyIndex { index: 20 })
    ));
    assert_eq!(nsm.describe_pcr(20).unwrap().value, value);
    let doc = nsm.attestation(None, None, None).unwrap();
    let verified = verify(&doc, &mock_options(&nsm).pcr(20, value)).unwrap();
    assert_eq!(verified.pcrs.len(), 17);
}

#[test]
fn lock_pcrs_locks_zero_to_range() {
    let (nsm, _) = mock();
    nsm.lock_pcrs(24).unwrap();
    assert_eq!(nsm.describe().unwrap().locked_pcrs, (0..24).collect());
    assert!(!nsm.describe_pcr(24).unwrap().locked);
    assert!(matches!(
        nsm.extend_pcr(23, b"x"),
        Err(NsmError::ReadOnlyIndex { index: 23 })
    ));
    assert!(nsm.extend_pcr(24, b"x").is_ok());
    assert!(matches!(
        nsm.lock_pcrs(33),
        Err(NsmError::InvalidLockRange { range: 33 })
    ));
    assert!(matches!(
        nsm.describe_pcr(32),
        Err(NsmError::InvalidIndex { index: 32 })
    ));
}

#[test]
fn attestation_inputs_are_bounded() {
    let (nsm, _) = mock();
    assert!(matches!(
        nsm.attestation(Some(&[0; 513]), None, None),
        Err(NsmError::InputTooLarge {
            field: "user_data",
            len: 513,
            max: 512
        })
    ));
    assert!(matches!(
        nsm.attestation(None, Some(&[0; 513]), None),
        Err(NsmError::InputTooLarge { field: "nonce", .. })
    ));
    assert!(matches!(
        nsm.attestation(None, None, Some(&[0; 1025])),
        Err(NsmError::InputTooLarge {
            field: "public_key",
            ..
        })
    ));
    assert!(matches!(
        nsm.attestation(None, None, Some(&[])),
        Err(NsmError::InvalidArgument { .. })
    ));
    // The largest accepted inputs give a document verifiers accept.
    let doc = nsm
        .attestation(Some(&[1; 512]), Some(&[2; 512]), Some(&[3; 1024]))
        .unwrap();
    assert!(verify(&doc, &mock_options(&nsm)).is_ok());
}

#[test]
fn get_random_returns_fresh_entropy() {
    let (nsm, _) = mock();
    let a = nsm.get_random().unwrap();
    let b = nsm.get_random().unwrap();
    assert_eq!(a.len(), RANDOM_LEN);
    assert_ne!(a, b);
}

#[test]
fn a_saved_ca_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicU64::new(T0)));
    let config = || {
        MockNsmConfig::new(measurements())
            .clock(clock.clone())
            .ca(MockCaSource::Directory(dir.path().join("ca")))
    };
    let first = MockNsm::new(config()).unwrap();
    let root = first.trust_root().unwrap();
    drop(first);
    let second = MockNsm::new(config()).unwrap();
    let doc = second.attestation(None, None, None).unwrap();
    assert!(verify(&doc, &VerifyOptions::new(root)).is_ok());
}

#[test]
fn debug_mode_mock_documents_need_allow_debug() {
    let zeros = Measurements::new((0..3).map(|i| (i, [0u8; 48])).collect()).unwrap();
    let nsm = MockNsm::new(MockNsmConfig::new(zeros)).unwrap();
    let doc = nsm.attestation(None, None, None).unwrap();
    assert!(matches!(
        verify(&doc, &mock_options(&nsm)),
        Err(VerifyError::DebugMode)
    ));
    assert!(verify(&doc, &mock_options(&nsm).dangerous_allow_debug(true)).is_ok());
}
