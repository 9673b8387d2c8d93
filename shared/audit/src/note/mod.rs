//! C2SP signed notes: strict parsing, Ed25519 verification against known keys, signing.
//!
//! A note is a text ending in a newline, a blank line, and signature lines
//! `— <key name> <base64(4-byte key id || signature)>\n` (an em dash, U+2014). Parsing is
//! bounded ([`MAX_NOTE_LEN`], [`MAX_SIGNATURES`]) and exact: one spelling per note, canonical
//! base64 only. Verification ignores signatures from unknown keys, refuses the note when a
//! known key's signature fails, and refuses it when no known key signed.

mod key;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

pub(crate) use key::check_name;
pub use key::{
    key_id, Ed25519Signer, NoteSigner, NoteVerifier, ED25519_TYPE, PUBLIC_KEY_LEN, SIGNATURE_LEN,
};

/// The largest note accepted, in bytes (room for 16 post-quantum signatures, as the spec
/// asks verifiers to accept).
pub const MAX_NOTE_LEN: usize = 128 * 1024;
/// The most signature lines accepted on one note.
pub const MAX_SIGNATURES: usize = 32;

/// What starts a signature line: an em dash and a space.
pub(crate) const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why a note, a key or a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Longer than [`MAX_NOTE_LEN`].
    #[error("a note is at most {MAX_NOTE_LEN} bytes, got {len}")]
    TooLarge {
        /// The length given.
        len: usize,
    },
    /// Not UTF-8.
    #[error("a note is UTF-8 text")]
    NotUtf8,
    /// A control character other than newline.
    #[error("a note may not contain control characters other than newline")]
    ControlCharacter,
    /// The text is empty, does not end in a newline, or ends in a blank line.
    #[error("the note text must be non-empty, end in a newline and not end in a blank line")]
    BadText,
    /// No blank line separates text and signatures.
    #[error("no blank line separates the note text from its signatures")]
    NoSignatureBlock,
    /// A signature line that is not `— <name> <base64>`.
    #[error("signature line {line} is malformed")]
    MalformedSignatureLine {
        /// Which signature line, from 1.
        line: usize,
    },
    /// More than [`MAX_SIGNATURES`] signature lines.
    #[error("a note carries at most {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    /// A key name that is empty or contains spaces, `+` or control characters.
    #[error("key names are non-empty, without spaces, `+` or control characters")]
    BadKeyName,
    /// Not a verifier key `<name>+<8 hex digits>+<base64 key>`.
    #[error("not a verifier key of the form <name>+<8 hex digits>+<base64 key>")]
    BadVerifierKey,
    /// A verifier key for another algorithm than Ed25519.
    #[error("only Ed25519 (type 0x01) verifier keys are supported")]
    UnsupportedKeyType,
    /// A verifier key whose id does not match its name and key.
    #[error("the verifier key's id does not match its name and key")]
    VerifierKeyIdMismatch,
    /// A signature by a known key does not verify.
    #[error("the signature by {name} (key id {key_id:08x}) does not verify")]
    BadSignature {
        /// The key name.
        name: String,
        /// The key id.
        key_id: u32,
    },
    /// No signature by a known key.
    #[error("the note is not signed by any known key")]
    NoKnownSignature,
    /// A signer whose public key does not verify its own signatures.
    #[error("the signing key's signatures do not verify under its public key")]
    SignerMismatch,
}

/// One signature line of a note, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key id.
    pub key_id: u32,
    /// The signature bytes (after the key id).
    pub signature: Vec<u8>,
}

/// A parsed note whose signatures have not been checked: read its text only after
/// [`Note::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

/// A note with at least one valid signature from a known key, and none failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedNote {
    text: String,
    signed_by: Vec<NoteVerifier>,
}

impl VerifiedNote {
    /// The signed text, final newline included.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The known keys whose signatures verified.
    pub fn signed_by(&self) -> &[NoteVerifier] {
        &self.signed_by
    }
}

impl Note {
    /// Parses a note from bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, NoteError> {
        if bytes.len() > MAX_NOTE_LEN {
            return Err(NoteError::TooLarge { len: bytes.len() });
        }
        Self::parse(std::str::from_utf8(bytes).map_err(|_| NoteError::NotUtf8)?)
    }

    /// Parses a note, strictly.
    pub fn parse(note: &str) -> Result<Self, NoteError> {
        if note.len() > MAX_NOTE_LEN {
            return Err(NoteError::TooLarge { len: note.len() });
        }
        if note.chars().any(|c| c.is_control() && c != '\n') {
            return Err(NoteError::ControlCharacter);
        }
        // The text ends at the last blank line; the signature lines never are blank.
        let split = note.rfind("\n\n").ok_or(NoteError::NoSignatureBlock)?;
        let (text, block) = (
            note.get(..=split).unwrap_or_default(),
            note.get(split + 2..).unwrap_or_default(),
        );
        check_text(text)?;
        let Some(block) = block.strip_suffix('\n') else {
            return Err(NoteError::MalformedSignatureLine { line: 1 });
        };
        let mut signatures = Vec::new();
        for (i, line) in block.split('\n').enumerate() {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            signatures.push(parse_signature_line(line, i + 1)?);
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The text, final newline included. Not to be trusted before [`Note::verify`].
    pub fn unverified_text(&self) -> &str {
        &self.text
    }

    /// The signature lines.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// The signatures made by keys in `known` (same name and key id), paired with their key.
    /// A known key's signature of the wrong length is a bad signature.
    pub fn known_signatures<'k>(
        &self,
        known: &'k [NoteVerifier],
    ) -> Result<Vec<(&'k NoteVerifier, &[u8])>, NoteError> {
        let mut out = Vec::new();
        for sig in &self.signatures {
            let matching = known
                .iter()
                .filter(|k| k.key_id() == sig.key_id && k.name() == sig.name);
            for verifier in matching {
                if sig.signature.len() != SIGNATURE_LEN {
                    return Err(NoteError::BadSignature {
                        name: sig.name.clone(),
                        key_id: sig.key_id,
                    });
                }
                out.push((verifier, sig.signature.as_slice()));
            }
        }
        Ok(out)
    }

    /// Verifies the note against the known keys.
    pub fn verify(&self, known: &[NoteVerifier]) -> Result<VerifiedNote, NoteError> {
        let candidates = self.known_signatures(known)?;
        if candidates.is_empty() {
            return Err(NoteError::NoKnownSignature);
        }
        let mut signed_by = Vec::with_capacity(candidates.len());
        for (verifier, signature) in candidates {
            if !verifier.verifies(self.text.as_bytes(), signature) {
                return Err(NoteError::BadSignature {
                    name: verifier.name().to_owned(),
                    key_id: verifier.key_id(),
                });
            }
            signed_by.push(verifier.clone());
        }
        Ok(VerifiedNote {
            text: self.text.clone(),
            signed_by,
        })
    }
}

/// Parses and verifies a note in one step.
pub fn open(note: &str, known: &[NoteVerifier]) -> Result<VerifiedNote, NoteError> {
    Note::parse(note)?.verify(known)
}

/// A note text: non-empty, ends in a newline, its last line not blank, no control
/// characters but newlines.
pub(crate) fn check_text(text: &str) -> Result<(), NoteError> {
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::ControlCharacter);
    }
    if !text.ends_with('\n') || text.ends_with("\n\n") || text == "\n" {
        return Err(NoteError::BadText);
    }
    Ok(())
}

/// One signature line (without its newline), numbered `number` in error reports.
pub(crate) fn parse_signature_line(line: &str, number: usize) -> Result<NoteSignature, NoteError> {
    let malformed = NoteError::MalformedSignatureLine { line: number };
    let rest = line
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or(malformed.clone())?;
    let (name, blob) = rest.split_once(' ').ok_or(malformed.clone())?;
    key::check_name(name).map_err(|_| malformed.clone())?;
    // Strict: canonical padding and no stray bits, so each signature has one spelling.
    let blob = STANDARD.decode(blob).map_err(|_| malformed.clone())?;
    let (id, signature) = blob.split_first_chunk::<4>().ok_or(malformed.clone())?;
    if signature.is_empty() {
        return Err(malformed);
    }
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id: u32::from_be_bytes(*id),
        signature: signature.to_vec(),
    })
}

#[cfg(test)]
pub(crate) mod tests;
