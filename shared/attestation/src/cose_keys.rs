//! The key traits of `aws-nitro-enclaves-cose`, implemented on RustCrypto (`p384`, `sha2`)
//! instead of OpenSSL.
//!
//! The COSE crate hashes the `Sig_structure` itself (through [`Sha2`]) and hands our keys the
//! digest, so signing and verifying here are the ECDSA *prehash* operations.

use aws_nitro_enclaves_cose::crypto::{
    Hash, MessageDigest, SignatureAlgorithm, SigningPrivateKey, SigningPublicKey,
};
use aws_nitro_enclaves_cose::error::CoseError;
use p384::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha2::Digest as _;

/// SHA-2 for the COSE crate.
pub(crate) struct Sha2;

impl Hash for Sha2 {
    fn hash(digest: MessageDigest, data: &[u8]) -> Result<Vec<u8>, CoseError> {
        Ok(match digest {
            MessageDigest::Sha256 => sha2::Sha256::digest(data).to_vec(),
            MessageDigest::Sha384 => sha2::Sha384::digest(data).to_vec(),
            MessageDigest::Sha512 => sha2::Sha512::digest(data).to_vec(),
        })
    }
}

/// A P-384 public key that verifies ES384 COSE signatures (`r || s`, 96 bytes).
pub(crate) struct Es384PublicKey<'a>(pub(crate) &'a VerifyingKey);

impl SigningPublicKey for Es384PublicKey<'_> {
    fn get_parameters(&self) -> Result<(SignatureAlgorithm, MessageDigest), CoseError> {
        Ok((SignatureAlgorithm::ES384, MessageDigest::Sha384))
    }

    fn verify(&self, digest: &[u8], signature: &[u8]) -> Result<bool, CoseError> {
        // A malformed signature (wrong length, r or s out of range) is a failed verification,
        // not an error: the caller must not learn more than "no".
        let Ok(signature) = Signature::from_slice(signature) else {
            return Ok(false);
        };
        Ok(self.0.verify_prehash(digest, &signature).is_ok())
    }
}

/// A P-384 private key that produces ES384 COSE signatures.
pub(crate) struct Es384PrivateKey<'a>(pub(crate) &'a SigningKey);

impl SigningPublicKey for Es384PrivateKey<'_> {
    fn get_parameters(&self) -> Result<(SignatureAlgorithm, MessageDigest), CoseError> {
        Ok((SignatureAlgorithm::ES384, MessageDigest::Sha384))
    }

    fn verify(&self, digest: &[u8], signature: &[u8]) -> Result<bool, CoseError> {
        Es384PublicKey(self.0.verifying_key()).verify(digest, signature)
    }
}

impl SigningPrivateKey for Es384PrivateKey<'_> {
    fn sign(&self, digest: &[u8]) -> Result<Vec<u8>, CoseError> {
        let signature: Signature = self
            .0
            .sign_prehash(digest)
            .map_err(|error| CoseError::SignatureError(Box::new(error)))?;
        Ok(signature.to_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_nitro_enclaves_cose::header_map::HeaderMap;
    use aws_nitro_enclaves_cose::CoseSign1;

    fn key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 48]).unwrap()
    }

    #[test]
    fn cose_sign1_round_trip_with_our_keys() {
        let key = key();
        let cose =
            CoseSign1::new::<Sha2>(b"payload", &HeaderMap::new(), &Es384PrivateKey(&key)).unwrap();
        let bytes = cose.as_bytes(false).unwrap();
        // Untagged array of 4, protected header {1: -35}, empty unprotected map.
        assert_eq!(&bytes[..7], &[0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0]);
        let parsed = CoseSign1::from_bytes(&bytes).unwrap();
        assert!(parsed
            .verify_signature::<Sha2>(&Es384PublicKey(key.verifying_key()))
            .unwrap());
        let other = SigningKey::from_slice(&[9u8; 48]).unwrap();
        assert!(!parsed
            .verify_signature::<Sha2>(&Es384PublicKey(other.verifying_key()))
            .unwrap());
    }

    #[test]
    fn malformed_signature_is_a_plain_no() {
        let key = key();
        let public = Es384PublicKey(key.verifying_key());
        assert!(!public.verify(&[0u8; 48], &[1u8; 95]).unwrap());
        assert!(!public.verify(&[0u8; 48], &[0u8; 96]).unwrap());
    }
}
