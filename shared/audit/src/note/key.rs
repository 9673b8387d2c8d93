//! Ed25519 note keys: key ids, the verifier key text format, and signing through a trait.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::signature::{UnparsedPublicKey, ED25519};

use super::NoteError;
use crate::hash::sha256;

/// The signed-note signature type byte of Ed25519.
pub const ED25519_TYPE: u8 = 0x01;
/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// The key id of an Ed25519 note key: the first 4 bytes (big-endian) of
/// `SHA-256(name || 0x0A || 0x01 || public key)`.
pub fn key_id(name: &str, public_key: &[u8; PUBLIC_KEY_LEN]) -> u32 {
    let digest = sha256(&[name.as_bytes(), b"\n", &[ED25519_TYPE], public_key]);
    let [a, b, c, d, ..] = digest.0;
    u32::from_be_bytes([a, b, c, d])
}

/// Key names are non-empty and contain neither Unicode spaces nor `+` (signed-note spec);
/// we also refuse control characters, which a note may not contain anyway.
pub(crate) fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
    {
        return Err(NoteError::BadKeyName);
    }
    Ok(())
}

/// A public key that verifies note signatures: a name and an Ed25519 key.
///
/// Its text form is the signed-note verifier key, `<name>+<hex key id>+<base64(0x01 ||
/// key)>`, which auditors can pin.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    public_key: [u8; PUBLIC_KEY_LEN],
}

impl NoteVerifier {
    /// A verifier for `public_key` under `name`.
    pub fn new(name: &str, public_key: [u8; PUBLIC_KEY_LEN]) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, &public_key),
            public_key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.public_key
    }

    /// Checks an Ed25519 signature over `message`.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(message, signature)
            .is_ok()
    }
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = Vec::with_capacity(1 + PUBLIC_KEY_LEN);
        key.push(ED25519_TYPE);
        key.extend_from_slice(&self.public_key);
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            STANDARD.encode(key)
        )
    }
}

impl fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteVerifier({self})")
    }
}

impl FromStr for NoteVerifier {
    type Err = NoteError;

    /// Parses a verifier key, refusing anything but its one canonical spelling and a key id
    /// that does not match the name and key.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // Names cannot contain '+', but standard base64 can: the key is all after the second.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::BadVerifierKey);
        };
        check_name(name)?;
        if id.len() != 8 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(NoteError::BadVerifierKey);
        }
        let id = u32::from_str_radix(id, 16).map_err(|_| NoteError::BadVerifierKey)?;
        let key = STANDARD
            .decode(key)
            .map_err(|_| NoteError::BadVerifierKey)?;
        let Some((&ED25519_TYPE, key)) = key.split_first() else {
            return Err(NoteError::UnsupportedKeyType);
        };
        let public_key =
            <[u8; PUBLIC_KEY_LEN]>::try_from(key).map_err(|_| NoteError::BadVerifierKey)?;
        let verifier = NoteVerifier::new(name, public_key)?;
        if verifier.key_id != id {
            return Err(NoteError::VerifierKeyIdMismatch);
        }
        Ok(verifier)
    }
}

/// An Ed25519 private key that signs notes, wherever it is kept.
///
/// The enclave implements it with ring's `Ed25519KeyPair` (done here); tests and tools may
/// use anything else. Signing is infallible: a key that can fail to sign (an HSM, a remote
/// service) does not belong behind this trait.
pub trait Ed25519Signer: Send + Sync {
    /// The public key.
    fn public_key(&self) -> [u8; PUBLIC_KEY_LEN];
    /// An Ed25519 signature of `message`.
    fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN];
}

impl Ed25519Signer for ring::signature::Ed25519KeyPair {
    fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        copy_array(ring::signature::KeyPair::public_key(self).as_ref())
    }

    fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        copy_array(ring::signature::Ed25519KeyPair::sign(self, message).as_ref())
    }
}

impl<T: Ed25519Signer + ?Sized> Ed25519Signer for std::sync::Arc<T> {
    fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        (**self).public_key()
    }

    fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        (**self).sign(message)
    }
}

/// Copies a slice ring guarantees to have length `N`. Were it ever shorter, the result
/// would be a key or signature that fails verification, which [`NoteSigner::new`] detects.
fn copy_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.iter_mut().zip(bytes).for_each(|(o, b)| *o = *b);
    out
}

/// A named key that signs notes.
pub struct NoteSigner {
    verifier: NoteVerifier,
    key: Box<dyn Ed25519Signer>,
}

impl NoteSigner {
    /// A signer named `name`. Signs one test message and checks it, so a signer whose public
    /// key does not match its signatures is refused here rather than discovered by an
    /// auditor.
    pub fn new(name: &str, key: Box<dyn Ed25519Signer>) -> Result<Self, NoteError> {
        let verifier = NoteVerifier::new(name, key.public_key())?;
        let probe = b"enclave-approvals/note-signer-self-test\n";
        if !verifier.verifies(probe, &key.sign(probe)) {
            return Err(NoteError::SignerMismatch);
        }
        Ok(Self { verifier, key })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        self.verifier.name()
    }

    /// The verifier key matching this signer.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// Signs `text` and returns the whole note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        super::check_text(text)?;
        let signature = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(4 + SIGNATURE_LEN);
        blob.extend_from_slice(&self.verifier.key_id.to_be_bytes());
        blob.extend_from_slice(&signature);
        let note = format!(
            "{text}\n{}{} {}\n",
            super::SIGNATURE_PREFIX,
            self.verifier.name,
            STANDARD.encode(blob)
        );
        if note.len() > super::MAX_NOTE_LEN {
            return Err(NoteError::TooLarge { len: note.len() });
        }
        Ok(note)
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private key.
        write!(f, "NoteSigner({})", self.verifier)
    }
}
