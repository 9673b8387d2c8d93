//! The log key: the Ed25519 key that signs checkpoints. It never leaves the enclave in
//! plaintext; its seed is wiped from memory when dropped.

use ea_audit::note::{NoteError, NoteSigner, PUBLIC_KEY_LEN};
use ring::rand::SecureRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use zeroize::Zeroizing;

/// Bytes of an Ed25519 seed.
pub const SEED_LEN: usize = 32;

/// Why the log key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LogKeyError {
    /// The system's randomness failed.
    #[error("no randomness for the log key")]
    Randomness,
    /// The seed is not an Ed25519 seed (cannot happen for 32 bytes; kept for honesty).
    #[error("the log key seed was refused")]
    Seed,
}

/// The log key.
pub struct LogKey {
    seed: Zeroizing<[u8; SEED_LEN]>,
    public: [u8; PUBLIC_KEY_LEN],
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the seed.
        f.debug_struct("LogKey")
            .field("public", &hex::encode(self.public))
            .finish_non_exhaustive()
    }
}

impl LogKey {
    /// A new key from the system's randomness (inside an enclave, fed by the NSM).
    pub fn generate() -> Result<LogKey, LogKeyError> {
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        ring::rand::SystemRandom::new()
            .fill(seed.as_mut())
            .map_err(|_| LogKeyError::Randomness)?;
        LogKey::from_seed(seed)
    }

    /// The key of a seed (an unsealed one).
    pub fn from_seed(seed: Zeroizing<[u8; SEED_LEN]>) -> Result<LogKey, LogKeyError> {
        let pair =
            Ed25519KeyPair::from_seed_unchecked(seed.as_ref()).map_err(|_| LogKeyError::Seed)?;
        let mut public = [0u8; PUBLIC_KEY_LEN];
        public.copy_from_slice(pair.public_key().as_ref());
        Ok(LogKey { seed, public })
    }

    /// The seed, for sealing.
    pub fn seed(&self) -> &[u8; SEED_LEN] {
        &self.seed
    }

    /// The public key, for the attestation document's `public_key`.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.public
    }

    /// The key pair that signs answers (ea_audit::answer), made once per run.
    pub fn answer_signer(&self) -> Result<Ed25519KeyPair, LogKeyError> {
        Ed25519KeyPair::from_seed_unchecked(self.seed.as_ref()).map_err(|_| LogKeyError::Seed)
    }

    /// A checkpoint signer under the log's origin.
    pub fn signer(&self, origin: &str) -> Result<NoteSigner, NoteError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(self.seed.as_ref())
            .map_err(|_| NoteError::SignerMismatch)?;
        NoteSigner::new(origin, Box::new(pair))
    }
}
