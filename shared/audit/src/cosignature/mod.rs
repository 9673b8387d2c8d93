//! Witness cosignatures on checkpoints: C2SP tlog-cosignature v1, the Ed25519 type (0x04).
//!
//! A witness that has checked a checkpoint's consistency with everything it saw before adds a
//! signature line of its own to the checkpoint note:
//!
//! ```text
//! — <witness name> base64(key id (4 bytes) || timestamp (8 bytes, big-endian) || Ed25519 signature (64 bytes))
//! ```
//!
//! - the key id is the first 4 bytes of `SHA-256(name || 0x0A || 0x04 || public key)`
//!   ([`cosignature_key_id`]): the type byte 0x04 keeps it apart from the same key's id as a
//!   plain note key (0x01), so a cosignature can never be taken for a log signature;
//! - the signed message is `cosignature/v1\ntime <timestamp>\n` followed by the checkpoint's
//!   note text, final newline included ([`cosigned_message`]);
//! - the timestamp is POSIX seconds, at most `2^63 - 1`.
//!
//! The message does not include the witness name, so one witness key must never serve two
//! names. Witness keys are pinned in the note verifier key form with type 0x04,
//! `<name>+<hex key id>+<base64(0x04 || public key)>` ([`CosignatureVerifier`]); keys that are
//! no curve point, of small order, or not canonically encoded are refused
//! ([`check_public_key`]). The other type of the spec, ML-DSA-44 (0x06), is not verified here:
//! its lines have another key id, so they are unknown lines and ignored.
//!
//! Like the rest of the crate this does no I/O and reads no clock: the timestamp to sign is an
//! argument.
//!
//! ```
//! use ea_audit::cosignature::{verify_cosignatures, CosignatureSigner};
//! use ea_audit::note::NoteSigner;
//! use ring::signature::Ed25519KeyPair;
//!
//! // A checkpoint signed by its log.
//! let checkpoint = "example.com/log\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
//! let log_key = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("a 32-byte seed");
//! let note = NoteSigner::new("example.com/log", Box::new(log_key))?.sign(checkpoint)?;
//!
//! // A witness cosigns it; a client that pins the witness key counts its cosignature.
//! let witness = CosignatureSigner::from_seed("witness.example/w1", &[3; 32])?;
//! let line = witness.sign(1_700_000_000, checkpoint)?;
//! let pinned = witness.verifier().to_string().parse()?;
//! let verified = verify_cosignatures(&format!("{note}{line}"), &[pinned], 1)?;
//! assert_eq!(verified[0].timestamp(), 1_700_000_000);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::signature::{Ed25519KeyPair, UnparsedPublicKey, ED25519};

use crate::hash::sha256;

mod fresh;
use crate::note::{
    check_name, check_text, parse_signature_line, Ed25519Signer, Note, NoteError, NoteSignature,
    PUBLIC_KEY_LEN, SIGNATURE_LEN, SIGNATURE_PREFIX,
};
pub use fresh::{
    count_fresh_cosignatures, FreshTally, Freshness, NotCounted, WitnessAnswer,
    MAX_COSIGNATURE_AGE_SECS, MAX_COSIGNATURE_AHEAD_SECS,
};

/// The signed-note signature type of Ed25519 cosignatures (cosignature/v1).
pub const COSIGNATURE_TYPE: u8 = 0x04;
/// The signature type of ML-DSA-44 cosignatures, which this module does not verify.
pub const ML_DSA_44_COSIGNATURE_TYPE: u8 = 0x06;
/// Length of a signature after the key id: the 8-byte timestamp and the Ed25519 signature.
pub const TIMESTAMPED_SIGNATURE_LEN: usize = 8 + SIGNATURE_LEN;
/// The largest timestamp the spec allows, `2^63 - 1`.
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// Why an Ed25519 public key is refused as a witness key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WeakKey {
    /// The 32 bytes do not decompress to a point of the curve: no private key belongs to them.
    #[error("the Ed25519 key is not a point on the curve")]
    NotAPoint,
    /// A point of small order: signatures that verify under it can be made without a
    /// private key.
    #[error("the Ed25519 key is a point of small order, whose signatures anyone can forge")]
    SmallOrder,
    /// Not the point's canonical encoding, which no key generator writes.
    #[error("the Ed25519 key is not canonically encoded")]
    NonCanonical,
}

/// Why a witness key, a cosignature or a set of cosignatures is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    /// The note, a signature line, a key name or the text is malformed.
    #[error("{0}")]
    Note(#[from] NoteError),
    /// Not a verifier key `<name>+<8 lower-case hex digits>+<base64 key>`.
    #[error("not a witness key of the form <name>+<8 hex digits>+<base64(0x04 || key)>")]
    BadVerifierKey,
    /// A verifier key of another type than Ed25519 cosignatures (for example 0x01, a log key,
    /// or 0x06, ML-DSA-44 cosignatures).
    #[error("witness keys are Ed25519 cosignature keys (type 0x04), got type {found:#04x}")]
    UnsupportedKeyType {
        /// The type byte found.
        found: u8,
    },
    /// A verifier key whose id does not match its name and key.
    #[error("the witness key's id does not match its name and key")]
    VerifierKeyIdMismatch,
    /// An Ed25519 public key that cannot be trusted.
    #[error("{0}")]
    WeakKey(#[from] WeakKey),
    /// A signer whose public key does not verify its own signatures.
    #[error("the signing key's signatures do not verify under its public key")]
    SignerMismatch,
    /// A timestamp above `2^63 - 1`.
    #[error("a cosignature timestamp is at most 2^63 - 1, got {timestamp}")]
    TimestampOutOfRange {
        /// The timestamp.
        timestamp: u64,
    },
    /// The line is another key's (name or key id differ).
    #[error("the signature line is by {name} (key id {key_id:08x}), not by this witness key")]
    NotThisKey {
        /// The key name on the line.
        name: String,
        /// The key id on the line.
        key_id: u32,
    },
    /// The line is this witness key's, but its signature does not verify (or is not 72 bytes).
    #[error("the cosignature by {name} (key id {key_id:08x}) does not verify")]
    BadSignature {
        /// The witness name.
        name: String,
        /// The key id.
        key_id: u32,
    },
    /// Asked for more witnesses than are known.
    #[error("a threshold of {threshold} cannot be met by {witnesses} distinct witnesses")]
    ThresholdUnreachable {
        /// The threshold asked for.
        threshold: usize,
        /// The number of distinct witness names given.
        witnesses: usize,
    },
    /// Fewer known witnesses cosigned than the threshold asks.
    #[error(
        "{verified} of the {threshold} witness cosignatures required verify{}",
        failed_note(failed)
    )]
    BelowThreshold {
        /// The threshold.
        threshold: usize,
        /// How many distinct witnesses' cosignatures verified.
        verified: usize,
        /// The known witnesses whose lines were present but did not verify, sorted.
        failed: Vec<String>,
    },
}

fn failed_note(failed: &[String]) -> String {
    if failed.is_empty() {
        String::new()
    } else {
        format!(" (lines that did not verify: {})", failed.join(", "))
    }
}

/// The key id of an Ed25519 cosignature key: the first 4 bytes (big-endian) of
/// `SHA-256(name || 0x0A || 0x04 || public key)`.
pub fn cosignature_key_id(name: &str, public_key: &[u8; PUBLIC_KEY_LEN]) -> u32 {
    let digest = sha256(&[name.as_bytes(), b"\n", &[COSIGNATURE_TYPE], public_key]);
    let [a, b, c, d, ..] = digest.0;
    u32::from_be_bytes([a, b, c, d])
}

/// The message a cosignature signs: `cosignature/v1\ntime <timestamp>\n` and the note text
/// (final newline included, no signature lines).
pub fn cosigned_message(timestamp: u64, text: &str) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{text}").into_bytes()
}

/// Refuses Ed25519 public keys that do not decompress, are of small order, or are not
/// canonically encoded. For a key of small order, signatures that ring (and most verifiers)
/// accept can be made without any private key; the other two have no private key at all or
/// name one point with two spellings (and two key ids).
pub fn check_public_key(public_key: &[u8; PUBLIC_KEY_LEN]) -> Result<(), WeakKey> {
    let key =
        ed25519_dalek::VerifyingKey::from_bytes(public_key).map_err(|_| WeakKey::NotAPoint)?;
    if key.is_weak() {
        return Err(WeakKey::SmallOrder);
    }
    // curve25519-dalek reduces y modulo p and accepts a sign bit on x = 0; compressing the
    // point again gives its one canonical encoding.
    if key.to_edwards().compress().to_bytes() != *public_key {
        return Err(WeakKey::NonCanonical);
    }
    Ok(())
}

/// A witness's public key: what a client pins to check that witness's cosignatures.
///
/// Its text form is the vkey `<name>+<hex key id>+<base64(0x04 || key)>`; parsing refuses any
/// other spelling, a key id that does not match, and weak keys.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CosignatureVerifier {
    name: String,
    key_id: u32,
    public_key: [u8; PUBLIC_KEY_LEN],
}

impl CosignatureVerifier {
    /// The verifier for witness `name` with `public_key`.
    pub fn new(name: &str, public_key: [u8; PUBLIC_KEY_LEN]) -> Result<Self, CosignatureError> {
        check_name(name)?;
        check_public_key(&public_key)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: cosignature_key_id(name, &public_key),
            public_key,
        })
    }

    /// The witness name.
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

    /// Whether a signature line names this key (same name and key id).
    pub fn matches(&self, signature: &NoteSignature) -> bool {
        signature.name == self.name && signature.key_id == self.key_id
    }

    /// Verifies one parsed signature line over the note text `text`; returns its timestamp.
    pub fn verify(&self, text: &str, signature: &NoteSignature) -> Result<u64, CosignatureError> {
        if !self.matches(signature) {
            return Err(CosignatureError::NotThisKey {
                name: signature.name.clone(),
                key_id: signature.key_id,
            });
        }
        let bad = || CosignatureError::BadSignature {
            name: self.name.clone(),
            key_id: self.key_id,
        };
        let blob = <&[u8; TIMESTAMPED_SIGNATURE_LEN]>::try_from(signature.signature.as_slice())
            .map_err(|_| bad())?;
        let (timestamp, ed25519) = blob.split_first_chunk::<8>().ok_or_else(bad)?;
        let timestamp = u64::from_be_bytes(*timestamp);
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::TimestampOutOfRange { timestamp });
        }
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(&cosigned_message(timestamp, text), ed25519)
            .map_err(|_| bad())?;
        Ok(timestamp)
    }

    /// Verifies one signature line (`— <name> <base64>`, with or without its final newline)
    /// over the note text `text`; returns its timestamp.
    pub fn verify_line(&self, text: &str, line: &str) -> Result<u64, CosignatureError> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        self.verify(text, &parse_signature_line(line, 1)?)
    }
}

impl fmt::Display for CosignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = Vec::with_capacity(1 + PUBLIC_KEY_LEN);
        key.push(COSIGNATURE_TYPE);
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

impl fmt::Debug for CosignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CosignatureVerifier({self})")
    }
}

impl FromStr for CosignatureVerifier {
    type Err = CosignatureError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // Names cannot contain '+', standard base64 can: the key is all after the second.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CosignatureError::BadVerifierKey);
        };
        check_name(name)?;
        if id.len() != 8 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(CosignatureError::BadVerifierKey);
        }
        let id = u32::from_str_radix(id, 16).map_err(|_| CosignatureError::BadVerifierKey)?;
        let key = STANDARD
            .decode(key)
            .map_err(|_| CosignatureError::BadVerifierKey)?;
        let Some((&found, key)) = key.split_first() else {
            return Err(CosignatureError::BadVerifierKey);
        };
        if found != COSIGNATURE_TYPE {
            return Err(CosignatureError::UnsupportedKeyType { found });
        }
        let public_key =
            <[u8; PUBLIC_KEY_LEN]>::try_from(key).map_err(|_| CosignatureError::BadVerifierKey)?;
        if cosignature_key_id(name, &public_key) != id {
            return Err(CosignatureError::VerifierKeyIdMismatch);
        }
        Self::new(name, public_key)
    }
}

/// A witness's private key, which cosigns checkpoints.
pub struct CosignatureSigner {
    verifier: CosignatureVerifier,
    key: Box<dyn Ed25519Signer>,
}

impl CosignatureSigner {
    /// A signer for witness `name`. Refuses a weak public key, and signs and checks one test
    /// message, so a key whose public half does not match is refused here.
    pub fn new(name: &str, key: Box<dyn Ed25519Signer>) -> Result<Self, CosignatureError> {
        let verifier = CosignatureVerifier::new(name, key.public_key())?;
        let probe = b"enclave-approvals/cosignature-signer-self-test\n";
        let signature = key.sign(probe);
        if UnparsedPublicKey::new(&ED25519, &verifier.public_key)
            .verify(probe, &signature)
            .is_err()
        {
            return Err(CosignatureError::SignerMismatch);
        }
        Ok(Self { verifier, key })
    }

    /// A signer for witness `name` from a 32-byte Ed25519 seed (RFC 8032's private key).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, CosignatureError> {
        let key = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| CosignatureError::SignerMismatch)?;
        Self::new(name, Box::new(key))
    }

    /// The witness name.
    pub fn name(&self) -> &str {
        self.verifier.name()
    }

    /// The verifier key matching this signer.
    pub fn verifier(&self) -> &CosignatureVerifier {
        &self.verifier
    }

    /// Cosigns the note text `text` (a checkpoint's three lines and any extension lines, final
    /// newline included) at `timestamp`; returns the signature line, newline included, ready
    /// to be appended to the note.
    pub fn sign(&self, timestamp: u64, text: &str) -> Result<String, CosignatureError> {
        check_text(text)?;
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::TimestampOutOfRange { timestamp });
        }
        let signature = self.key.sign(&cosigned_message(timestamp, text));
        let mut blob = Vec::with_capacity(4 + TIMESTAMPED_SIGNATURE_LEN);
        blob.extend_from_slice(&self.verifier.key_id.to_be_bytes());
        blob.extend_from_slice(&timestamp.to_be_bytes());
        blob.extend_from_slice(&signature);
        Ok(format!(
            "{SIGNATURE_PREFIX}{} {}\n",
            self.verifier.name,
            STANDARD.encode(blob)
        ))
    }
}

impl fmt::Debug for CosignatureSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private key.
        write!(f, "CosignatureSigner({})", self.verifier)
    }
}

/// Cosigns `text` at `timestamp` as witness `name` with the Ed25519 key of `seed`: the
/// signature line, newline included. See [`CosignatureSigner::sign`].
pub fn cosign(
    seed: &[u8; 32],
    name: &str,
    timestamp: u64,
    text: &str,
) -> Result<String, CosignatureError> {
    CosignatureSigner::from_seed(name, seed)?.sign(timestamp, text)
}

/// A witness's cosignature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCosignature {
    witness: CosignatureVerifier,
    timestamp: u64,
}

impl VerifiedCosignature {
    /// The witness key that made it.
    pub fn witness(&self) -> &CosignatureVerifier {
        &self.witness
    }

    /// When the witness made it (POSIX seconds, as the witness states).
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }
}

/// Checks the witness cosignatures on a signed note (a checkpoint with its log signature
/// lines and any cosignature lines) and returns those of distinct witnesses that verify,
/// sorted by witness name, if there are at least `threshold` of them.
///
/// - Lines that name no key in `witnesses` (same name and key id) are ignored: log
///   signatures, unknown witnesses, other cosignature types such as ML-DSA-44 (type 0x06,
///   whose key ids differ).
/// - A line that names a known witness but does not verify does not count; it does not
///   refuse the note either (whoever relays the note could append one), but it is named in
///   [`CosignatureError::BelowThreshold`].
/// - Witnesses are counted by name: keys with the same name count as one witness, and a
///   witness's several cosignatures once (the latest timestamp is returned).
/// - The log's own signature is not checked here: open the checkpoint with the log key first
///   ([`crate::checkpoint::open_checkpoint`]).
pub fn verify_cosignatures(
    note: &str,
    witnesses: &[CosignatureVerifier],
    threshold: usize,
) -> Result<Vec<VerifiedCosignature>, CosignatureError> {
    let names: BTreeSet<&str> = witnesses.iter().map(|w| w.name()).collect();
    if threshold > names.len() {
        return Err(CosignatureError::ThresholdUnreachable {
            threshold,
            witnesses: names.len(),
        });
    }
    let note = Note::parse(note)?;
    let text = note.unverified_text();
    let mut verified: BTreeMap<&str, VerifiedCosignature> = BTreeMap::new();
    let mut failed: BTreeSet<&str> = BTreeSet::new();
    for signature in note.signatures() {
        for witness in witnesses.iter().filter(|w| w.matches(signature)) {
            match witness.verify(text, signature) {
                Ok(timestamp) => {
                    let entry =
                        verified
                            .entry(witness.name())
                            .or_insert_with(|| VerifiedCosignature {
                                witness: witness.clone(),
                                timestamp,
                            });
                    if timestamp > entry.timestamp {
                        *entry = VerifiedCosignature {
                            witness: witness.clone(),
                            timestamp,
                        };
                    }
                }
                Err(_) => {
                    failed.insert(witness.name());
                }
            }
        }
    }
    if verified.len() < threshold {
        return Err(CosignatureError::BelowThreshold {
            threshold,
            verified: verified.len(),
            failed: failed
                .into_iter()
                .filter(|name| !verified.contains_key(name))
                .map(str::to_owned)
                .collect(),
        });
    }
    Ok(verified.into_values().collect())
}

#[cfg(test)]
mod tests;
