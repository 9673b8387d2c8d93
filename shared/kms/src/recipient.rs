//! The single-use RSA key of one KMS call.
//!
//! SPEC-trust §5: every `Decrypt`/`GenerateDataKey` carries an attestation document whose
//! `public_key` is a fresh RSA-2048 key, and the key is dropped once the answer is opened.
//! A key that decrypts one ciphertext only gives the parent, which relays (and could
//! replay or tamper with) the ciphertexts, no decryption or padding oracle to query: the
//! known timing leaks of RSA decryption (RUSTSEC-2023-0071 for the `rsa` crate) need many
//! decryptions under one key.

use rand_core::OsRng;
use rsa::pkcs1::EncodeRsaPublicKey as _;
use rsa::pkcs8::EncodePublicKey as _;
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use zeroize::Zeroizing;

/// Bits of a recipient key: what KMS accepts and what the NSM's 1 KiB `public_key` holds.
pub const RECIPIENT_KEY_BITS: usize = 2048;

/// Length of a key identifier: SHA-1, as RFC 5280 §4.2.1.2 method (1) computes them.
pub const KEY_ID_LEN: usize = 20;

/// Why a recipient key could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecipientKeyError {
    /// RSA key generation failed (the OS random source, most likely).
    #[error("generating an RSA-{RECIPIENT_KEY_BITS} key failed: {0}")]
    Generate(rsa::Error),
    /// The public key could not be encoded as SubjectPublicKeyInfo.
    #[error("encoding the RSA public key failed")]
    Encode,
}

/// A fresh RSA-2048 key pair for one KMS call. The private key never leaves this value and
/// is zeroed when it is dropped (`rsa` zeroes its private keys on drop).
pub struct RecipientKey {
    private: RsaPrivateKey,
    spki_der: Vec<u8>,
    key_id: [u8; KEY_ID_LEN],
}

impl std::fmt::Debug for RecipientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key never appears in logs.
        f.debug_struct("RecipientKey")
            .field("key_id", &hex::encode(self.key_id))
            .finish_non_exhaustive()
    }
}

impl RecipientKey {
    /// Generates a new RSA-2048 key pair from the OS random source.
    pub fn generate() -> Result<Self, RecipientKeyError> {
        let private = RsaPrivateKey::new(&mut OsRng, RECIPIENT_KEY_BITS)
            .map_err(RecipientKeyError::Generate)?;
        Self::from_private(private)
    }

    fn from_private(private: RsaPrivateKey) -> Result<Self, RecipientKeyError> {
        let public = RsaPublicKey::from(&private);
        let spki_der = public
            .to_public_key_der()
            .map_err(|_| RecipientKeyError::Encode)?
            .into_vec();
        let key_id = key_id(&public).ok_or(RecipientKeyError::Encode)?;
        Ok(Self {
            private,
            spki_der,
            key_id,
        })
    }

    /// The public key as DER SubjectPublicKeyInfo: the attestation document's `public_key`.
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The key identifier a CMS recipient info names this key by (see [`key_id`]).
    pub fn key_id(&self) -> &[u8; KEY_ID_LEN] {
        &self.key_id
    }

    /// RSAES-OAEP (SHA-256, MGF1-SHA-256, empty label) decryption. Fails without saying why,
    /// so that no caller can turn the reason into an oracle.
    pub(crate) fn decrypt_oaep_sha256(&self, ciphertext: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.private
            .decrypt(Oaep::new::<sha2::Sha256>(), ciphertext)
            .ok()
            .map(Zeroizing::new)
    }

    /// The modulus length in bytes (the length of every OAEP ciphertext for this key).
    pub(crate) fn modulus_len(&self) -> usize {
        rsa::traits::PublicKeyParts::size(&self.private)
    }
}

/// The key identifier of an RSA public key: SHA-1 of the DER `RSAPublicKey` (the contents of
/// the SubjectPublicKeyInfo's BIT STRING), RFC 5280 §4.2.1.2 method (1), as OpenSSL and most
/// CMS producers compute a subjectKeyIdentifier for a key without a certificate.
pub fn key_id(public: &RsaPublicKey) -> Option<[u8; KEY_ID_LEN]> {
    let pkcs1 = public.to_pkcs1_der().ok()?;
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, pkcs1.as_bytes());
    digest.as_ref().try_into().ok()
}
