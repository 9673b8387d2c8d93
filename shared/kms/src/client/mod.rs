//! The enclave's side of key release: `aws-sdk-kms` over [`RelayHttpClient`] (TLS inside
//! the enclave), every call with a `Recipient` carrying a fresh RSA key, every answer opened
//! from `CiphertextForRecipient`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ea_kms::client::{KmsConfig, LogKeyRelease};
//! use ea_kms::credentials::{ParentCredentials, StoreCredentialsSource};
//!
//! # async fn start(nsm: Arc<dyn ea_attestation::Nsm>) -> Result<(), Box<dyn std::error::Error>> {
//! let config = KmsConfig {
//!     address: "vsock:3:8000".parse()?,            // the parent's KMS relay
//!     host: "kms.eu-west-1.amazonaws.com".into(),  // what the certificate must name
//!     region: "eu-west-1".into(),
//!     key_id: "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab".into(),
//!     extra_ca_pem: None,
//! };
//! let credentials = ParentCredentials::new(StoreCredentialsSource::new("vsock:3:5001".parse()?));
//! let release = LogKeyRelease::new(config, nsm, credentials)?;
//!
//! // First start of this image: a new data key seals the log key seed, bound to the log,
//! // its genesis image and this image; the parent stores the blob.
//! let seed = [7u8; 32];
//! let binding = ea_kms::LogKeyBinding {
//!     genesis_hash: [1u8; 32],
//!     genesis_image: [2u8; 32], // ea_kms::image_digest of the PCRs
//!     image: [2u8; 32],
//! };
//! let sealed = release.seal(&seed, &binding).await?;
//! let blob = sealed.to_bytes()?;
//!
//! // Later starts: KMS releases the data key again only to an enclave its policy accepts.
//! let sealed = ea_kms::SealedLogKey::from_bytes(&blob)?;
//! let seed_again = release.unseal(&sealed, &binding).await?;
//! assert_eq!(*seed_again, seed);
//! # Ok(())
//! # }
//! ```

mod connector;
mod error;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kms::config::{BehaviorVersion, ProvideCredentials, Region};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeyEncryptionMechanism, RecipientInfo};
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use ea_attestation::Nsm;
use ea_protocol::Address;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use zeroize::Zeroizing;

pub use connector::{RelayHttpClient, MAX_RESPONSE_LEN};
pub use error::KmsError;

use crate::cms::{self, RecipientCheck};
use crate::recipient::RecipientKey;
use crate::seal::{seal_log_key, LogKeyBinding, SealedLogKey, KEY_LEN};

/// Where and how the enclave reaches KMS.
#[derive(Debug, Clone)]
pub struct KmsConfig {
    /// Where connections go: `vsock:3:<port>` (the parent's relay) in an enclave,
    /// `tcp:127.0.0.1:<port>` for a local KMS.
    pub address: Address,
    /// The KMS endpoint's host name: the TLS server name, the `Host` header, what SigV4
    /// signs (`kms.<region>.amazonaws.com`; `localhost` for a local KMS).
    pub host: String,
    /// The region requests are signed for.
    pub region: String,
    /// The KMS key: key id, key ARN, alias name or alias ARN.
    pub key_id: String,
    /// PEM certificates trusted besides the public web roots (a local KMS's CA).
    pub extra_ca_pem: Option<Vec<u8>>,
}

/// Seals and unseals the log key seed through KMS (see the module documentation).
pub struct LogKeyRelease {
    client: aws_sdk_kms::Client,
    nsm: Arc<dyn Nsm>,
    key_id: String,
}

impl std::fmt::Debug for LogKeyRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogKeyRelease")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// The TLS configuration: the public web roots (KMS's certificates chain to them) and the
/// extra CA, ring as the provider, HTTP/1.1.
fn tls_config(extra_ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, KmsError> {
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca_pem {
        let certificates = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| KmsError::ExtraCa(e.to_string()))?;
        if certificates.is_empty() {
            return Err(KmsError::ExtraCa("no certificate in the PEM".into()));
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|e| KmsError::ExtraCa(e.to_string()))?;
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(KmsError::Tls)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl LogKeyRelease {
    /// A KMS client for `config`, attesting with `nsm`, signing with `credentials` (in an
    /// enclave: [`crate::credentials::ParentCredentials`]).
    pub fn new(
        config: KmsConfig,
        nsm: Arc<dyn Nsm>,
        credentials: impl ProvideCredentials + 'static,
    ) -> Result<Self, KmsError> {
        let server_name = ServerName::try_from(config.host.clone())
            .map_err(|_| KmsError::Host(config.host.clone()))?;
        let http = RelayHttpClient::new(
            config.address.clone(),
            config.host.clone(),
            server_name,
            tls_config(config.extra_ca_pem.as_deref())?,
        );
        let sdk_config = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .endpoint_url(format!("https://{}", config.host))
            .credentials_provider(credentials)
            .http_client(http)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(90))
                    .build(),
            )
            .build();
        Ok(Self {
            client: aws_sdk_kms::Client::from_conf(sdk_config),
            nsm,
            key_id: config.key_id,
        })
    }

    /// The SDK client, for calls this type does not wrap.
    pub fn client(&self) -> &aws_sdk_kms::Client {
        &self.client
    }

    /// A fresh RSA key and an attestation document carrying it, made on a blocking thread
    /// (key generation takes a noticeable fraction of a second).
    async fn recipient(&self) -> Result<(RecipientKey, RecipientInfo, Option<String>), KmsError> {
        let nsm = self.nsm.clone();
        let (key, document) = tokio::task::spawn_blocking(move || {
            let key = RecipientKey::generate().map_err(KmsError::RecipientKey)?;
            let document = nsm
                .attestation(None, None, Some(key.public_key_der()))
                .map_err(KmsError::Attestation)?;
            Ok::<_, KmsError>((key, document))
        })
        .await
        .map_err(|_| KmsError::Internal("the key generation task stopped"))??;
        // For error messages only: which image this enclave is.
        let pcr0 = ea_attestation::parse_unverified(&document)
            .ok()
            .and_then(|doc| doc.pcrs.get(&0).map(hex::encode));
        let recipient = RecipientInfo::builder()
            .attestation_document(Blob::new(document))
            .key_encryption_algorithm(KeyEncryptionMechanism::RsaesOaepSha256)
            .build();
        Ok((key, recipient, pcr0))
    }

    /// Opens a `CiphertextForRecipient` into a 32-byte data key.
    fn data_key(
        operation: &'static str,
        key: &RecipientKey,
        plaintext: Option<Blob>,
        ciphertext_for_recipient: Option<Blob>,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, KmsError> {
        if let Some(plaintext) = plaintext {
            // Not used; the bytes go out of scope at once (the SDK's Blob cannot be zeroed).
            drop(plaintext);
            return Err(KmsError::PlaintextReturned { operation });
        }
        let envelope =
            ciphertext_for_recipient.ok_or(KmsError::NoCiphertextForRecipient { operation })?;
        // AnyKeyId: see RecipientCheck; the single-use key is what authenticates.
        let opened = cms::open(envelope.as_ref(), key, RecipientCheck::AnyKeyId)
            .map_err(|source| KmsError::Cms { operation, source })?;
        let data_key: [u8; KEY_LEN] =
            opened
                .as_slice()
                .try_into()
                .map_err(|_| KmsError::DataKeyLength {
                    operation,
                    len: opened.len(),
                })?;
        Ok(Zeroizing::new(data_key))
    }

    /// `Decrypt` of a data key's `CiphertextBlob` with a Recipient.
    async fn decrypt_data_key(
        &self,
        ciphertext_blob: &[u8],
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, KmsError> {
        const OPERATION: &str = "Decrypt";
        let (key, recipient, pcr0) = self.recipient().await?;
        let output = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(ciphertext_blob))
            .recipient(recipient)
            .send()
            .await
            .map_err(|e| error::from_sdk(OPERATION, &self.key_id, pcr0.as_deref(), e))?;
        Self::data_key(
            OPERATION,
            &key,
            output.plaintext,
            output.ciphertext_for_recipient,
        )
    }

    /// First start of an image on a log: `GenerateDataKey` (AES_256) with a Recipient, then
    /// seals `log_key_seed` under the data key, bound to `binding` (at
    /// [`crate::LOG_KEY_VERSION`]). Before returning it
    /// asks KMS to `Decrypt` the new data key once, so that a key policy that allows
    /// `GenerateDataKey` but not `Decrypt` fails now, not at the next start with a sealed
    /// key that nothing can open. Store the result with [`SealedLogKey::to_bytes`].
    pub async fn seal(
        &self,
        log_key_seed: &[u8; KEY_LEN],
        binding: &LogKeyBinding,
    ) -> Result<SealedLogKey, KmsError> {
        const OPERATION: &str = "GenerateDataKey";
        let (key, recipient, pcr0) = self.recipient().await?;
        let output = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .recipient(recipient)
            .send()
            .await
            .map_err(|e| error::from_sdk(OPERATION, &self.key_id, pcr0.as_deref(), e))?;
        let data_key = Self::data_key(
            OPERATION,
            &key,
            output.plaintext,
            output.ciphertext_for_recipient,
        )?;
        drop(key);
        let ciphertext_blob = output
            .ciphertext_blob
            .ok_or(KmsError::MissingField {
                operation: OPERATION,
                field: "CiphertextBlob",
            })?
            .into_inner();
        let kms_key_id = output.key_id.unwrap_or_else(|| self.key_id.clone());

        let again = self.decrypt_data_key(&ciphertext_blob).await?;
        if !crate::secrets_equal(again.as_ref(), data_key.as_ref()) {
            return Err(KmsError::RoundTrip);
        }
        seal_log_key(
            &data_key,
            log_key_seed,
            binding,
            kms_key_id,
            ciphertext_blob,
        )
        .map_err(KmsError::Seal)
    }

    /// Later starts: asks KMS to `Decrypt` the stored data key (with a Recipient, under the
    /// configured key id, whatever key the blob names) and opens the seed.
    pub async fn unseal(
        &self,
        sealed: &SealedLogKey,
        binding: &LogKeyBinding,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, KmsError> {
        // Before any KMS call: a blob of another version opens nothing here.
        crate::seal::check_version(sealed.version, crate::LOG_KEY_VERSION)
            .map_err(KmsError::Seal)?;
        let data_key = self.decrypt_data_key(&sealed.ciphertext_blob).await?;
        sealed.open(&data_key, binding).map_err(KmsError::Seal)
    }

    /// The genesis image's key of a store written before per-image keys
    /// ([`crate::LEGACY_LOG_KEY_VERSION`], bound to the genesis hash only): the caller opens
    /// it only for the log's genesis image.
    pub async fn unseal_legacy(
        &self,
        sealed: &SealedLogKey,
        genesis_hash: &[u8; KEY_LEN],
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, KmsError> {
        crate::seal::check_version(sealed.version, crate::LEGACY_LOG_KEY_VERSION)
            .map_err(KmsError::Seal)?;
        let data_key = self.decrypt_data_key(&sealed.ciphertext_blob).await?;
        sealed
            .open_legacy(&data_key, genesis_hash)
            .map_err(KmsError::Seal)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "test")]

    use super::*;

    #[test]
    fn answers_without_ciphertext_for_recipient_are_refused() {
        let key = RecipientKey::generate().unwrap();
        // A Plaintext means the Recipient was ignored: refused even if a CMS came too.
        let cms = crate::cms::EnvelopeBuilder::new(key.public_key_der())
            .unwrap()
            .build(&[1; 32])
            .unwrap();
        let error = LogKeyRelease::data_key(
            "GenerateDataKey",
            &key,
            Some(Blob::new(vec![1; 32])),
            Some(Blob::new(cms.clone())),
        )
        .unwrap_err();
        assert!(matches!(
            error,
            KmsError::PlaintextReturned {
                operation: "GenerateDataKey"
            }
        ));
        assert!(
            error.to_string().contains("Recipient was ignored"),
            "{error}"
        );
        assert!(matches!(
            LogKeyRelease::data_key("Decrypt", &key, None, None),
            Err(KmsError::NoCiphertextForRecipient {
                operation: "Decrypt"
            })
        ));
        // A CMS whose content is not 32 bytes.
        let short = crate::cms::EnvelopeBuilder::new(key.public_key_der())
            .unwrap()
            .build(&[1; 16])
            .unwrap();
        assert!(matches!(
            LogKeyRelease::data_key("Decrypt", &key, None, Some(Blob::new(short))),
            Err(KmsError::DataKeyLength { len: 16, .. })
        ));
        let opened = LogKeyRelease::data_key("Decrypt", &key, None, Some(Blob::new(cms))).unwrap();
        assert_eq!(*opened, [1; 32]);
    }

    #[test]
    fn an_unusable_extra_ca_is_a_configuration_error() {
        assert!(matches!(
            tls_config(Some(b"not pem")),
            Err(KmsError::ExtraCa(_))
        ));
        assert!(tls_config(None).is_ok());
    }
}
