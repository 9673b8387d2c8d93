//! Key release end to end, in one process: the real `aws-sdk-kms` client, through the
//! enclave's connector (rustls, over 127.0.0.1), against the local KMS; attestation
//! documents from a mock NSM whose root the local KMS trusts; the log key's policy as
//! `govctl kms-policy` prints it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use aws_credential_types::Credentials;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyEncryptionMechanism, RecipientInfo};
use ea_attestation::testing::QemuNsm;
use ea_attestation::{Measurements, MockCaSource, MockNsm, MockNsmConfig, Nsm, TrustRoot};
use ea_kms::cms::{self, RecipientCheck};
use ea_kms::policy::enclave_key_policy;
use ea_kms::sigv4::Credential;
use ea_kms::{KmsConfig, KmsError, LogKeyRelease, RecipientKey, SealError, SealedLogKey};
use ea_protocol::{Address, Listener};
use local_kms::ops::{default_policy, LocalKms, Settings};
use local_kms::server::{serve, Shared};
use local_kms::state::KeyStore;

const REGION: &str = "eu-west-1";
const ACCOUNT: &str = "111122223333";
const LOG_KEY: &str = "0b7a1c9e-5f7e-4f1a-9a39-3f0d6c1e2a44";
const OPEN_KEY: &str = "7d3e2b10-1c4b-4d7e-8a5f-2b9c0e6d1f38";
const ADMIN: &str = "arn:aws:iam::111122223333:role/KeyAdmin";
const ENCLAVE_ROLE: &str = "arn:aws:iam::111122223333:role/EnclaveInstance";
const ENCLAVE_SESSION: &str = "arn:aws:sts::111122223333:assumed-role/EnclaveInstance/i-local";
const GENESIS: [u8; 32] = [0x6e; 32];
/// A binding for tests where only KMS's answer matters.
const BINDING: ea_kms::LogKeyBinding = ea_kms::LogKeyBinding {
    genesis_hash: GENESIS,
    genesis_image: [0xa0; 32],
    image: [0xa0; 32],
};

/// The binding of a key sealed by `enclave` for the log `GENESIS` that it started.
fn binding(enclave: &MockNsm) -> ea_kms::LogKeyBinding {
    let pcrs = enclave.pcrs();
    let image = ea_kms::image_digest(pcrs.iter().map(|(i, v)| (*i, v.as_slice())));
    ea_kms::LogKeyBinding {
        genesis_hash: GENESIS,
        genesis_image: image,
        image,
    }
}

fn enclave_credentials() -> Credentials {
    Credentials::new(
        "ASIAENCLAVE",
        "enclave secret",
        Some("session token".into()),
        None,
        "test",
    )
}

fn admin_credentials() -> Credentials {
    Credentials::new("AKIAADMIN", "admin secret", None, None, "test")
}

fn nsm(ca_dir: &Path, image: &[u8]) -> Arc<MockNsm> {
    Arc::new(
        MockNsm::new(
            MockNsmConfig::new(Measurements::of_executable(image))
                .ca(MockCaSource::Directory(ca_dir.to_owned())),
        )
        .unwrap(),
    )
}

/// A local KMS on 127.0.0.1 with the log key (policy pinned to `nsm`'s PCR0/1/2) and an
/// open key (default policy), stopped when dropped.
struct Kms {
    dir: tempfile::TempDir,
    address: Address,
    ca_pem: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Kms {
    async fn start(dir: tempfile::TempDir, enclave: &MockNsm) -> Kms {
        Kms::start_with_root(dir, enclave, enclave.trust_root().unwrap()).await
    }

    /// A local KMS that checks Recipients against `root` instead of `enclave`'s mock root.
    async fn start_with_root(dir: tempfile::TempDir, enclave: &MockNsm, root: TrustRoot) -> Kms {
        let kms = LocalKms::new(
            Settings {
                region: REGION.into(),
                account: ACCOUNT.into(),
                attestation_root: Some(root),
            },
            KeyStore::open(&dir.path().join("state.json")).unwrap(),
        );
        let pcrs: BTreeMap<u16, Vec<u8>> = enclave
            .pcrs()
            .into_iter()
            .filter(|(index, _)| *index <= 2)
            .collect();
        let policy = enclave_key_policy(ADMIN, ENCLAVE_ROLE, &pcrs).to_json_pretty();
        kms.ensure_key(LOG_KEY, policy, 0).unwrap();
        kms.ensure_key(OPEN_KEY, default_policy(ACCOUNT), 0)
            .unwrap();
        let verifier = ea_kms::sigv4::SigV4Verifier::new(
            REGION,
            "kms",
            [
                Credential {
                    access_key_id: "ASIAENCLAVE".into(),
                    secret_access_key: "enclave secret".to_owned().into(),
                    session_token: Some("session token".to_owned().into()),
                    principal_arn: ENCLAVE_SESSION.into(),
                },
                Credential {
                    access_key_id: "AKIAADMIN".into(),
                    secret_access_key: "admin secret".to_owned().into(),
                    session_token: None,
                    principal_arn: ADMIN.into(),
                },
            ],
        );
        let (identity, _) =
            local_kms::tls::generate(&["localhost".into(), "127.0.0.1".into()], None, None)
                .unwrap();
        let listener = Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let address = listener.local_address().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            identity.config,
            Arc::new(Shared {
                kms: Arc::new(kms),
                verifier,
            }),
            async move {
                let _ = stopped.await;
            },
        ));
        Kms {
            dir,
            address,
            ca_pem: identity.ca_pem,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn release(&self, nsm: Arc<dyn Nsm>, key_id: &str, credentials: Credentials) -> LogKeyRelease {
        LogKeyRelease::new(
            KmsConfig {
                address: self.address.clone(),
                host: "localhost".into(),
                region: REGION.into(),
                key_id: key_id.into(),
                extra_ca_pem: Some(self.ca_pem.clone().into_bytes()),
            },
            nsm,
            credentials,
        )
        .unwrap()
    }

    /// Stops the server and hands back its directory (state file included).
    async fn stop(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
        self.dir
    }
}

/// The error code of an SDK service error (AccessDeniedException is not in KMS's model, so
/// the SDK has no `is_...` for it).
fn code<E: aws_sdk_kms::error::ProvideErrorMetadata>(error: &E) -> &str {
    error.code().unwrap_or_default()
}

fn refused_code(error: &KmsError) -> &str {
    match error {
        KmsError::Refused { code, .. } => code,
        other => panic!("expected a refusal, got: {other}"),
    }
}

#[tokio::test]
async fn seal_and_unseal_through_the_sdk_and_a_restart() {
    let ca_dir = tempfile::tempdir().unwrap();
    let enclave = nsm(ca_dir.path(), b"enclave image A");
    let kms = Kms::start(tempfile::tempdir().unwrap(), &enclave).await;
    let release = kms.release(enclave.clone(), LOG_KEY, enclave_credentials());

    let seed = [0x5e; 32];
    let sealed = release.seal(&seed, &binding(&enclave)).await.unwrap();
    assert_eq!(
        sealed.kms_key_id,
        format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{LOG_KEY}")
    );
    let stored = sealed.to_bytes().unwrap();

    let sealed = SealedLogKey::from_bytes(&stored).unwrap();
    assert_eq!(
        *release.unseal(&sealed, &binding(&enclave)).await.unwrap(),
        seed
    );

    // Another log's genesis hash: KMS releases the data key, the seal refuses.
    let mut other = binding(&enclave);
    other.genesis_hash = [0x6f; 32];
    let error = release.unseal(&sealed, &other).await.unwrap_err();
    assert!(
        matches!(error, KmsError::Seal(SealError::Open { version: 2 })),
        "{error}"
    );

    // The local KMS restarts from its state file: the same key opens the same blob.
    let dir = kms.stop().await;
    let kms = Kms::start(dir, &enclave).await;
    let release = kms.release(enclave.clone(), LOG_KEY, enclave_credentials());
    assert_eq!(
        *release.unseal(&sealed, &binding(&enclave)).await.unwrap(),
        seed
    );
    kms.stop().await;
}

#[tokio::test]
async fn generate_data_key_and_decrypt_with_a_recipient_give_the_same_key_as_cms() {
    let ca_dir = tempfile::tempdir().unwrap();
    let enclave = nsm(ca_dir.path(), b"enclave image A");
    let kms = Kms::start(tempfile::tempdir().unwrap(), &enclave).await;
    let client = kms.release(enclave.clone(), LOG_KEY, enclave_credentials());
    let client = client.client();

    let recipient = |key: &RecipientKey| {
        RecipientInfo::builder()
            .attestation_document(Blob::new(
                enclave
                    .attestation(None, None, Some(key.public_key_der()))
                    .unwrap(),
            ))
            .key_encryption_algorithm(KeyEncryptionMechanism::RsaesOaepSha256)
            .build()
    };
    let key = RecipientKey::generate().unwrap();
    let generated = client
        .generate_data_key()
        .key_id(LOG_KEY)
        .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
        .recipient(recipient(&key))
        .send()
        .await
        .unwrap();
    assert!(
        generated.plaintext.is_none(),
        "no Plaintext with a Recipient"
    );
    let envelope = generated.ciphertext_for_recipient.unwrap();
    // KMS's shape: BER with an indefinite-length outer SEQUENCE.
    assert_eq!(&envelope.as_ref()[..2], [0x30, 0x80]);
    let data_key = cms::open(envelope.as_ref(), &key, RecipientCheck::KeyId).unwrap();
    assert_eq!(data_key.len(), 32);

    let key = RecipientKey::generate().unwrap();
    let decrypted = client
        .decrypt()
        .ciphertext_blob(generated.ciphertext_blob.unwrap())
        .recipient(recipient(&key))
        .send()
        .await
        .unwrap();
    assert!(decrypted.plaintext.is_none());
    let again = cms::open(
        decrypted.ciphertext_for_recipient.unwrap().as_ref(),
        &key,
        RecipientCheck::KeyId,
    )
    .unwrap();
    assert_eq!(again, data_key);

    // GenerateRandom with a Recipient, too.
    let key = RecipientKey::generate().unwrap();
    let random = client
        .generate_random()
        .number_of_bytes(100)
        .recipient(recipient(&key))
        .send()
        .await
        .unwrap();
    assert!(random.plaintext.is_none());
    let bytes = cms::open(
        random.ciphertext_for_recipient.unwrap().as_ref(),
        &key,
        RecipientCheck::KeyId,
    )
    .unwrap();
    assert_eq!(bytes.len(), 100);
    kms.stop().await;
}

#[tokio::test]
async fn another_image_is_denied_and_so_is_a_caller_without_attestation() {
    let ca_dir = tempfile::tempdir().unwrap();
    let enclave = nsm(ca_dir.path(), b"enclave image A");
    let kms = Kms::start(tempfile::tempdir().unwrap(), &enclave).await;
    let sealed = kms
        .release(enclave.clone(), LOG_KEY, enclave_credentials())
        .seal(&[1; 32], &BINDING)
        .await
        .unwrap();

    // Same mock CA, different image: a different PCR0.
    let other = nsm(ca_dir.path(), b"enclave image B");
    let release = kms.release(other.clone(), LOG_KEY, enclave_credentials());
    let error = release.unseal(&sealed, &BINDING).await.unwrap_err();
    assert_eq!(refused_code(&error), "AccessDeniedException");
    let text = error.to_string();
    println!("{text}");
    let other_pcr0 = hex::encode(&other.pcrs()[&0]);
    assert!(
        text.contains("the key policy does not allow this enclave")
            && text.contains(&other_pcr0)
            && text.contains("EnclaveWithAttestation")
            && text.contains("StringEqualsIgnoreCase on kms:RecipientAttestation:ImageSha384"),
        "{text}"
    );
    let error = release.seal(&[1; 32], &BINDING).await.unwrap_err();
    assert_eq!(refused_code(&error), "AccessDeniedException");

    // The enclave role without a Recipient: the Null-condition Deny.
    let client = kms.release(enclave.clone(), LOG_KEY, enclave_credentials());
    let error = client
        .client()
        .decrypt()
        .ciphertext_blob(Blob::new(sealed.ciphertext_blob.clone()))
        .send()
        .await
        .unwrap_err();
    let service = error.into_service_error();
    assert_eq!(code(&service), "AccessDeniedException", "{service}");
    assert!(
        aws_sdk_kms::error::ProvideErrorMetadata::message(&service)
            .unwrap()
            .contains(
                "explicit deny in a resource-based policy (statement \"DenyWithoutAttestation\")"
            ),
        "{service}"
    );
    kms.stop().await;
}

#[tokio::test]
async fn a_key_without_the_condition_lets_a_non_attested_caller_decrypt() {
    let ca_dir = tempfile::tempdir().unwrap();
    let enclave = nsm(ca_dir.path(), b"enclave image A");
    let kms = Kms::start(tempfile::tempdir().unwrap(), &enclave).await;
    let client = kms.release(enclave, OPEN_KEY, enclave_credentials());
    let encrypted = client
        .client()
        .encrypt()
        .key_id(OPEN_KEY)
        .plaintext(Blob::new(b"not attested".to_vec()))
        .send()
        .await
        .unwrap();
    let decrypted = client
        .client()
        .decrypt()
        .ciphertext_blob(encrypted.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(decrypted.plaintext.unwrap().as_ref(), b"not attested");
    kms.stop().await;
}

#[tokio::test]
async fn wrong_credentials_are_refused_with_kms_error_codes() {
    let ca_dir = tempfile::tempdir().unwrap();
    let enclave = nsm(ca_dir.path(), b"enclave image A");
    let kms = Kms::start(tempfile::tempdir().unwrap(), &enclave).await;
    for (credentials, code) in [
        (
            Credentials::new(
                "ASIAENCLAVE",
                "wrong secret",
                Some("session token".into()),
                None,
                "t",
            ),
            "InvalidSignatureException",
        ),
        (
            Credentials::new(
                "ASIAUNKNOWN",
                "enclave secret",
                Some("session token".into()),
                None,
                "t",
            ),
            "UnrecognizedClientException",
        ),
        (
            Credentials::new(
                "ASIAENCLAVE",
                "enclave secret",
                Some("old token".into()),
                None,
                "t",
            ),
            "UnrecognizedClientException",
        ),
    ] {
        let release = kms.release(enclave.clone(), LOG_KEY, credentials);
        let error = release.seal(&[1; 32], &BINDING).await.unwrap_err();
        assert_eq!(refused_code(&error), code, "{error}");
        assert!(!error.to_string().contains("wrong secret"));
    }
    kms.stop().await;
}

#[tokio::test]
async fn key_administration_through_the_sdk() {
    let ca_dir = tempfile::tempdir().unwrap();
    let enclave = nsm(ca_dir.path(), b"enclave image A");
    let kms = Kms::start(tempfile::tempdir().unwrap(), &enclave).await;
    let admin = kms.release(enclave.clone(), LOG_KEY, admin_credentials());
    let admin = admin.client();

    let policy = enclave_key_policy(ADMIN, ENCLAVE_ROLE, &BTreeMap::from([(0, vec![0xaa; 48])]))
        .to_json_pretty();
    let created = admin.create_key().policy(&policy).send().await.unwrap();
    let metadata = created.key_metadata.unwrap();
    let key_id = metadata.key_id().to_owned();
    assert!(metadata.arn().unwrap().ends_with(&key_id));
    let read = admin.get_key_policy().key_id(&key_id).send().await.unwrap();
    assert_eq!(read.policy.unwrap(), policy);

    // The admin manages the key but cannot use it.
    let error = admin
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&error), "AccessDeniedException", "{error}");

    // A policy that would lock the admin out is refused, as KMS does.
    let lockout = enclave_key_policy(
        "arn:aws:iam::111122223333:role/Someone",
        ENCLAVE_ROLE,
        &BTreeMap::from([(0, vec![0xaa; 48])]),
    )
    .to_json_pretty();
    let error = admin
        .put_key_policy()
        .key_id(&key_id)
        .policy(lockout)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(error.is_malformed_policy_document_exception(), "{error}");
    // A policy the model cannot evaluate is refused with its path.
    let error = admin
        .put_key_policy()
        .key_id(&key_id)
        .policy(r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "NotAction": "kms:Decrypt", "Resource": "*"}]}"#)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(error.is_malformed_policy_document_exception(), "{error}");

    // The enclave role may not read the policy.
    let enclave_client = kms.release(enclave, LOG_KEY, enclave_credentials());
    let error = enclave_client
        .client()
        .get_key_policy()
        .key_id(&key_id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&error), "AccessDeniedException", "{error}");
    kms.stop().await;
}

#[tokio::test]
async fn a_stale_attestation_document_is_refused() {
    #[derive(Debug)]
    struct TenMinutesAgo;
    impl ea_attestation::Clock for TenMinutesAgo {
        fn now_unix_ms(&self) -> u64 {
            ea_attestation::SystemClock.now_unix_ms() - 10 * 60 * 1000
        }
    }
    // The stale NSM makes the mock CA (valid from ten minutes ago); the KMS trusts it.
    let ca_dir = tempfile::tempdir().unwrap();
    let stale = Arc::new(
        MockNsm::new(
            MockNsmConfig::new(Measurements::of_executable(b"enclave image A"))
                .ca(MockCaSource::Directory(ca_dir.path().to_owned()))
                .clock(Arc::new(TenMinutesAgo)),
        )
        .unwrap(),
    );
    let enclave = nsm(ca_dir.path(), b"enclave image A");
    let kms = Kms::start(tempfile::tempdir().unwrap(), &enclave).await;
    let error = kms
        .release(stale, LOG_KEY, enclave_credentials())
        .seal(&[1; 32], &BINDING)
        .await
        .unwrap_err();
    assert_eq!(refused_code(&error), "ValidationException");
    assert!(
        error
            .to_string()
            .contains("attestation document is not valid"),
        "{error}"
    );
    kms.stop().await;
}

#[tokio::test]
async fn no_credentials_from_the_parent_is_a_clear_error() {
    let ca_dir = tempfile::tempdir().unwrap();
    let enclave = nsm(ca_dir.path(), b"enclave image A");
    let kms = Kms::start(tempfile::tempdir().unwrap(), &enclave).await;
    let missing = Address::Unix(ca_dir.path().join("no-store.sock"));
    let release = LogKeyRelease::new(
        KmsConfig {
            address: kms.address.clone(),
            host: "localhost".into(),
            region: REGION.into(),
            key_id: LOG_KEY.into(),
            extra_ca_pem: Some(kms.ca_pem.clone().into_bytes()),
        },
        enclave,
        ea_kms::credentials::ParentCredentials::new(
            ea_kms::credentials::StoreCredentialsSource::new(missing),
        ),
    )
    .unwrap();
    let error = release.seal(&[1; 32], &BINDING).await.unwrap_err();
    let text = error.to_string();
    println!("{text}");
    assert!(
        matches!(
            error,
            KmsError::Unreachable {
                operation: "GenerateDataKey",
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("the parent's store service at unix:") && text.contains("is unreachable"),
        "{text}"
    );
    kms.stop().await;
}

#[tokio::test]
async fn a_tls_name_the_certificate_does_not_have_is_refused() {
    let ca_dir = tempfile::tempdir().unwrap();
    let enclave = nsm(ca_dir.path(), b"enclave image A");
    let kms = Kms::start(tempfile::tempdir().unwrap(), &enclave).await;
    let release = LogKeyRelease::new(
        KmsConfig {
            address: kms.address.clone(),
            host: "kms.eu-west-1.amazonaws.com".into(),
            region: REGION.into(),
            key_id: LOG_KEY.into(),
            extra_ca_pem: Some(kms.ca_pem.clone().into_bytes()),
        },
        enclave,
        enclave_credentials(),
    )
    .unwrap();
    let error = release.seal(&[1; 32], &BINDING).await.unwrap_err();
    let text = error.to_string();
    println!("{text}");
    assert!(matches!(error, KmsError::Unreachable { .. }), "{text}");
    assert!(
        text.contains("TLS with kms.eu-west-1.amazonaws.com"),
        "{text}"
    );
    kms.stop().await;
}

#[tokio::test]
async fn qemus_unsigned_documents_need_the_insecure_mode_and_still_meet_the_key_policy() {
    let ca_dir = tempfile::tempdir().unwrap();
    let enclave = nsm(ca_dir.path(), b"enclave image A");
    let qemu: Arc<dyn Nsm> = Arc::new(QemuNsm::new(enclave.clone()));

    // By default (a real root, here the mock's): refused, and the refusal says what it is.
    let kms = Kms::start(tempfile::tempdir().unwrap(), &enclave).await;
    let error = kms
        .release(qemu.clone(), LOG_KEY, enclave_credentials())
        .seal(&[1; 32], &BINDING)
        .await
        .unwrap_err();
    assert_eq!(refused_code(&error), "ValidationException");
    let text = error.to_string();
    assert!(
        text.contains("unsigned document") && text.contains("--insecure-qemu-attestation"),
        "{text}"
    );
    kms.stop().await;

    // In the insecure QEMU mode the same documents release the key, seal and unseal...
    let kms = Kms::start_with_root(
        tempfile::tempdir().unwrap(),
        &enclave,
        TrustRoot::insecure_qemu_unsigned(),
    )
    .await;
    let release = kms.release(qemu.clone(), LOG_KEY, enclave_credentials());
    let seed = [0x5e; 32];
    let sealed = release.seal(&seed, &BINDING).await.unwrap();
    assert_eq!(*release.unseal(&sealed, &BINDING).await.unwrap(), seed);

    // ...but only to the image the key policy names: another PCR0 is denied.
    let other: Arc<dyn Nsm> = Arc::new(QemuNsm::new(nsm(ca_dir.path(), b"enclave image B")));
    let error = kms
        .release(other, LOG_KEY, enclave_credentials())
        .unseal(&sealed, &BINDING)
        .await
        .unwrap_err();
    assert_eq!(refused_code(&error), "AccessDeniedException", "{error}");

    // And the mode accepts nothing but QEMU's shape: the mock's signed documents are refused.
    let error = kms
        .release(enclave.clone(), LOG_KEY, enclave_credentials())
        .seal(&[1; 32], &BINDING)
        .await
        .unwrap_err();
    assert_eq!(refused_code(&error), "ValidationException");
    assert!(
        error.to_string().contains("signed (ES384) document"),
        "{error}"
    );
    kms.stop().await;
}

#[tokio::test]
async fn an_immutable_policy_needs_the_bypass_and_then_nobody_can_change_it() {
    let ca_dir = tempfile::tempdir().unwrap();
    let enclave = nsm(ca_dir.path(), b"enclave image A");
    let kms = Kms::start(tempfile::tempdir().unwrap(), &enclave).await;
    let admin = kms.release(enclave.clone(), LOG_KEY, admin_credentials());
    let admin = admin.client();
    let immutable = ea_kms::policy::log_key_policy(ADMIN, ENCLAVE_ROLE, &[enclave.pcrs()], true)
        .to_json_pretty();
    // AWS's lockout safety check: a policy that lets the caller never change it again is
    // refused unless the caller says it means it.
    let error = admin
        .create_key()
        .policy(&immutable)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(error.is_malformed_policy_document_exception(), "{error}");
    let key_id = admin
        .create_key()
        .policy(&immutable)
        .bypass_policy_lockout_safety_check(true)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id()
        .to_owned();
    // From then on no principal may replace it: not the administrator, with or without
    // the bypass, nor anyone else.
    let open = enclave_key_policy(ADMIN, ENCLAVE_ROLE, &BTreeMap::from([(0, vec![0xcc; 48])]))
        .to_json_pretty();
    for bypass in [false, true] {
        let error = admin
            .put_key_policy()
            .key_id(&key_id)
            .policy(&open)
            .bypass_policy_lockout_safety_check(bypass)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert_eq!(code(&error), "AccessDeniedException", "{error}");
    }
    // The image it names gets its key, sealed under it.
    let release = kms.release(enclave.clone(), &key_id, enclave_credentials());
    let sealed = release.seal(&[7; 32], &BINDING).await.unwrap();
    assert_eq!(*release.unseal(&sealed, &BINDING).await.unwrap(), [7; 32]);
    kms.stop().await;
}

#[tokio::test]
async fn with_one_key_per_image_neither_image_unseals_the_other_s_key() {
    let ca_dir = tempfile::tempdir().unwrap();
    let old = nsm(ca_dir.path(), b"enclave image A");
    let new = nsm(ca_dir.path(), b"enclave image B");
    let kms = Kms::start(tempfile::tempdir().unwrap(), &old).await;
    let admin = kms.release(old.clone(), LOG_KEY, admin_credentials());
    let admin = admin.client();
    let mut keys = Vec::new();
    for image in [&old, &new] {
        let policy = ea_kms::policy::log_key_policy(ADMIN, ENCLAVE_ROLE, &[image.pcrs()], true)
            .to_json_pretty();
        let created = admin
            .create_key()
            .policy(&policy)
            .bypass_policy_lockout_safety_check(true)
            .send()
            .await
            .unwrap();
        keys.push(created.key_metadata.unwrap().key_id().to_owned());
    }
    let binding = |image: &MockNsm| {
        let pcrs = image.pcrs();
        let own = ea_kms::image_digest(pcrs.iter().map(|(i, v)| (*i, v.as_slice())));
        let genesis = {
            let pcrs = old.pcrs();
            ea_kms::image_digest(pcrs.iter().map(|(i, v)| (*i, v.as_slice())))
        };
        ea_kms::LogKeyBinding {
            genesis_hash: GENESIS,
            genesis_image: genesis,
            image: own,
        }
    };
    let release_old = kms.release(old.clone(), &keys[0], enclave_credentials());
    let release_new = kms.release(new.clone(), &keys[1], enclave_credentials());
    let old_blob = release_old.seal(&[1; 32], &binding(&old)).await.unwrap();
    let new_blob = release_new.seal(&[2; 32], &binding(&new)).await.unwrap();
    assert_eq!(
        *release_old.unseal(&old_blob, &binding(&old)).await.unwrap(),
        [1; 32]
    );
    assert_eq!(
        *release_new.unseal(&new_blob, &binding(&new)).await.unwrap(),
        [2; 32]
    );
    // Each blob handed to the other image (a parent swapping them): refused.
    let error = release_old
        .unseal(&new_blob, &binding(&old))
        .await
        .expect_err("the old image opened the new image's key");
    println!("old image, new blob: {error}");
    let error = release_new
        .unseal(&old_blob, &binding(&new))
        .await
        .expect_err("the new image opened the old image's key");
    println!("new image, old blob: {error}");
    // Even pointed at the other image's KMS key, KMS releases nothing: its policy names
    // the other image only.
    let error = kms
        .release(old.clone(), &keys[1], enclave_credentials())
        .unseal(&new_blob, &binding(&old))
        .await
        .unwrap_err();
    assert_eq!(refused_code(&error), "AccessDeniedException", "{error}");
    kms.stop().await;
}
