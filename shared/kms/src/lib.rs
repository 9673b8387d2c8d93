//! KMS key release for Enclave Approvals: how the enclave gets its log key back after a
//! restart, and only if it is the expected image.
//!
//! The log's Ed25519 key is sealed ([`seal`]) under a data key from AWS KMS. KMS hands that
//! data key only to a request carrying a `Recipient`: a Nitro attestation document whose
//! `public_key` is a fresh RSA-2048 key ([`RecipientKey`]), and only if the key policy's
//! `kms:RecipientAttestation:*` conditions ([`policy`]) match the document's PCRs. It
//! answers with CMS EnvelopedData that only that RSA key opens ([`cms`]). The parent
//! instance relays the (TLS) bytes and supplies AWS credentials, and learns nothing.
//!
//! - [`client`] (feature `client`, on by default): [`client::LogKeyRelease`], the enclave's
//!   `seal`/`unseal` through `aws-sdk-kms` with TLS inside the enclave;
//!   [`credentials`]: the SDK credentials provider that asks the parent.
//! - [`cms`]: the `CiphertextForRecipient` parser (BER) and the builder the local KMS uses.
//! - [`seal`]: [`SealedLogKey`], AES-256-GCM under the data key, bound to the log's genesis
//!   hash, its genesis image, the image whose key it is and the key version
//!   ([`LogKeyBinding`]); [`keyset`]: every image's sealed key, as the parent stores them.
//! - [`policy`]: key policies as KMS evaluates them, and the log key's policy.
//! - [`sigv4`]: SigV4 verification, for the local KMS.
//!
//! Everything but the client is pure: no I/O, and the time is an argument where it matters.
//!
//! ```
//! use ea_kms::cms::{open, EnvelopeBuilder, RecipientCheck};
//! use ea_kms::{seal_log_key, RecipientKey, SealedLogKey};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The enclave: a single-use RSA key for one KMS call.
//! let recipient = RecipientKey::generate()?;
//! // KMS: the data key, encrypted to the attestation document's public key.
//! let data_key = [0x42u8; 32];
//! let answer = EnvelopeBuilder::new(recipient.public_key_der())?.build(&data_key)?;
//! // The enclave: open the answer, seal the log key seed for this log.
//! let released = open(&answer, &recipient, RecipientCheck::KeyId)?;
//! let data_key: [u8; 32] = released.as_slice().try_into()?;
//! let pcrs = [(0u16, &[0xa0u8; 48][..]), (1, &[0xa1; 48][..]), (2, &[0xa2; 48][..])];
//! let image = ea_kms::image_digest(pcrs);
//! let binding = ea_kms::LogKeyBinding { genesis_hash: [1u8; 32], genesis_image: image, image };
//! let sealed = seal_log_key(&data_key, &[7u8; 32], &binding, "arn:aws:kms:...".into(), b"blob".to_vec())?;
//! // The parent stores the bytes; a later start opens them with the data key KMS releases.
//! let stored = SealedLogKey::from_bytes(&sealed.to_bytes()?)?;
//! assert_eq!(*stored.open(&data_key, &binding)?, [7u8; 32]);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

#[cfg(feature = "client")]
pub mod client;
pub mod cms;
#[cfg(feature = "client")]
pub mod credentials;
pub mod keyset;
pub mod policy;
mod recipient;
pub mod seal;
pub mod sigv4;

#[cfg(feature = "client")]
pub use client::{KmsConfig, KmsError, LogKeyRelease};
pub use keyset::{SealedKeySet, StoredLogKeys};
pub use recipient::{key_id, RecipientKey, RecipientKeyError, KEY_ID_LEN, RECIPIENT_KEY_BITS};
pub use seal::{
    image_digest, seal_log_key, LogKeyBinding, SealError, SealedLogKey, LEGACY_LOG_KEY_VERSION,
    LOG_KEY_VERSION,
};

/// Compares two secrets by their SHA-256 digests, so that the time taken says nothing
/// about how many leading bytes agree.
pub(crate) fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    let digest = |x: &[u8]| ring::digest::digest(&ring::digest::SHA256, x);
    digest(a).as_ref() == digest(b).as_ref()
}
