//! Checkpoints: the log's signed tree heads, as C2SP tlog-checkpoint notes.
//!
//! The text is `<origin>\n<tree size>\n<base64 root>\n` with no extension lines. The origin
//! of a log is `enclave-approvals/` followed by the first 16 hex digits of its genesis hash
//! ([`log_origin`]), and the log key signs under the origin as its key name, as the
//! tlog-checkpoint spec recommends. Checking that the name equals the origin ties a key's
//! signature to one log, even when (through KMS) two logs share a key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::hash::Hash;
use crate::note::{Note, NoteError, NoteSigner, NoteVerifier};

/// What every origin of this project starts with.
pub const ORIGIN_PREFIX: &str = "enclave-approvals/";

/// The origin (and log key name) of the log whose genesis hash is `genesis`.
pub fn log_origin(genesis: &Hash) -> String {
    let hex = genesis.to_hex();
    format!("{ORIGIN_PREFIX}{}", hex.get(..16).unwrap_or(&hex))
}

/// A tree head: which log, how many records, and the root over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin.
    pub origin: String,
    /// The number of records covered.
    pub size: u64,
    /// The tree root over the first `size` records.
    pub root: Hash,
}

/// Why a checkpoint is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The signed note itself is refused.
    #[error("checkpoint note: {0}")]
    Note(#[from] NoteError),
    /// The text is not exactly three lines.
    #[error("a checkpoint text is exactly three lines: origin, size, root")]
    WrongLineCount,
    /// The origin is empty or contains spaces, `+` or control characters.
    #[error("the origin must be a valid key name")]
    BadOrigin,
    /// The size is not a decimal number without leading zeros that fits in 64 bits.
    #[error("the tree size is not a canonical decimal number")]
    BadSize,
    /// The root is not the canonical base64 of 32 bytes.
    #[error("the root is not the base64 of a 32-byte hash")]
    BadRoot,
    /// The checkpoint belongs to another log.
    #[error("the checkpoint is for {found:?}, expected {expected:?}")]
    WrongOrigin {
        /// The origin in the checkpoint.
        found: String,
        /// The origin expected.
        expected: String,
    },
    /// Asked to sign under a key name other than the origin.
    #[error("the signing key is named {key:?} but the origin is {origin:?}")]
    KeyNameIsNotOrigin {
        /// The key name.
        key: String,
        /// The origin.
        origin: String,
    },
}

impl Checkpoint {
    /// The note text: `<origin>\n<size>\n<base64 root>\n`.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root.0)
        )
    }

    /// Parses a checkpoint text, refusing every other spelling of the same values.
    pub fn from_text(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::WrongLineCount)?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root), None) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err(CheckpointError::WrongLineCount);
        };
        if crate::note::NoteVerifier::new(origin, [0; 32]).is_err() {
            return Err(CheckpointError::BadOrigin);
        }
        let canonical_digits = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        if !canonical_digits {
            return Err(CheckpointError::BadSize);
        }
        let size = size.parse::<u64>().map_err(|_| CheckpointError::BadSize)?;
        let root = STANDARD
            .decode(root)
            .ok()
            .and_then(|bytes| Hash::from_slice(&bytes).ok())
            .ok_or(CheckpointError::BadRoot)?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// Signs the checkpoint; the signer's name must be the origin.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, CheckpointError> {
        if signer.name() != self.origin {
            return Err(CheckpointError::KeyNameIsNotOrigin {
                key: signer.name().to_owned(),
                origin: self.origin.clone(),
            });
        }
        Ok(signer.sign(&self.to_text())?)
    }
}

/// A checkpoint whose note verified under a known key named as its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    checkpoint: Checkpoint,
    signed_by: Vec<NoteVerifier>,
}

impl VerifiedCheckpoint {
    /// The checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The keys whose signatures verified.
    pub fn signed_by(&self) -> &[NoteVerifier] {
        &self.signed_by
    }
}

/// Parses a checkpoint note without checking signatures, for callers that check them
/// themselves (the log verifier batches them).
pub fn parse_unverified(note: &str) -> Result<(Note, Checkpoint), CheckpointError> {
    let note = Note::parse(note)?;
    let checkpoint = Checkpoint::from_text(note.unverified_text())?;
    Ok((note, checkpoint))
}

/// Parses and verifies a checkpoint note: only keys in `known` whose name is the
/// checkpoint's origin count, and when `expected_origin` is given the origin must be it.
pub fn open_checkpoint(
    note: &str,
    known: &[NoteVerifier],
    expected_origin: Option<&str>,
) -> Result<VerifiedCheckpoint, CheckpointError> {
    let (note, checkpoint) = parse_unverified(note)?;
    if let Some(expected) = expected_origin {
        if checkpoint.origin != expected {
            return Err(CheckpointError::WrongOrigin {
                found: checkpoint.origin,
                expected: expected.to_owned(),
            });
        }
    }
    let named: Vec<NoteVerifier> = known
        .iter()
        .filter(|k| k.name() == checkpoint.origin)
        .cloned()
        .collect();
    let verified = note.verify(&named)?;
    Ok(VerifiedCheckpoint {
        checkpoint,
        signed_by: verified.signed_by().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::note::tests::signer;

    fn sample() -> Checkpoint {
        Checkpoint {
            origin: log_origin(&leaf_hash(b"genesis")),
            size: 1234,
            root: leaf_hash(b"root"),
        }
    }

    #[test]
    fn origin_format() {
        let origin = log_origin(&leaf_hash(b"genesis"));
        assert_eq!(origin.len(), ORIGIN_PREFIX.len() + 16);
        assert!(origin.starts_with("enclave-approvals/"));
        assert!(leaf_hash(b"genesis").to_hex().starts_with(&origin[18..]));
    }

    #[test]
    fn text_round_trip_and_strictness() {
        let c = sample();
        let text = c.to_text();
        assert_eq!(Checkpoint::from_text(&text).unwrap(), c);
        let root = STANDARD.encode(c.root.0);
        let bad = [
            text.replace("1234", "01234"),
            text.replace("1234", "+1234"),
            text.replace("1234", ""),
            text.replace("1234", "18446744073709551616"),
            text.replace(&root, root.trim_end_matches('=')),
            text.replace(&root, &STANDARD.encode([0u8; 31])),
            format!("{text}extension\n"),
            text.trim_end().to_owned(),
            text.replacen("enclave-approvals/", "enclave approvals/", 1),
        ];
        for b in bad {
            assert!(Checkpoint::from_text(&b).is_err(), "{b:?}");
        }
        let zero = Checkpoint { size: 0, ..c };
        assert_eq!(Checkpoint::from_text(&zero.to_text()).unwrap(), zero);
    }

    #[test]
    fn sign_and_open() {
        let c = sample();
        let s = signer(&c.origin, 9);
        let note = c.sign(&s).unwrap();
        let known = [s.verifier().clone()];
        let opened = open_checkpoint(&note, &known, Some(&c.origin)).unwrap();
        assert_eq!(opened.checkpoint(), &c);
        assert_eq!(opened.signed_by(), &known);
        assert!(matches!(
            open_checkpoint(&note, &known, Some("enclave-approvals/0000000000000000")),
            Err(CheckpointError::WrongOrigin { .. })
        ));
        let other = signer("enclave-approvals/ffffffffffffffff", 9);
        assert!(matches!(
            c.sign(&other),
            Err(CheckpointError::KeyNameIsNotOrigin { .. })
        ));
        // The same key under another name does not count for this origin.
        assert_eq!(
            open_checkpoint(&note, &[other.verifier().clone()], None),
            Err(CheckpointError::Note(NoteError::NoKnownSignature))
        );
    }
}
