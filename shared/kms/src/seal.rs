//! The sealed log key: the 32-byte seed of the log's Ed25519 key, encrypted with
//! AES-256-GCM under a KMS data key, stored by the (untrusted) parent.
//!
//! - The data key comes from `GenerateDataKey` (AES_256); its `CiphertextBlob` is stored
//!   beside the sealed seed, so a later start can ask KMS to `Decrypt` it again, which KMS
//!   does only for an enclave whose PCRs the key policy allows.
//! - Associated data: `"enclave-approvals/log-key/v1" || genesis hash (32) || key version
//!   (u32, big-endian)`. A blob sealed for another log, or for another key version, does
//!   not open, so the parent cannot hand one log's key to another log's enclave or roll a
//!   key version back without detection.
//! - The version is pinned: this build seals and opens [`LOG_KEY_VERSION`] only. The version
//!   field of a blob comes from the (untrusted) parent, so were it believed, a genuine blob
//!   sealed at another version (by an older build, under an older key) would open: the
//!   associated data would be rebuilt from the very field the parent chose. A blob of any
//!   other version is refused with [`SealError::UnexpectedVersion`] before anything is
//!   decrypted.
//! - Each data key seals exactly one seed, so a random 96-bit nonce cannot repeat under it.
//!
//! The blob's encoding is deterministic CBOR (RFC 8949 §4.2.1: definite lengths, map keys
//! in bytewise order of their encodings); [`SealedLogKey::from_bytes`] accepts only that
//! encoding and bounds every field.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};
use serde_bytes::{ByteArray, ByteBuf, Bytes};
use zeroize::Zeroizing;

/// Length of the log key seed, of the data key and of the genesis hash.
pub const KEY_LEN: usize = 32;
/// Largest encoded [`SealedLogKey`].
pub const MAX_SEALED_LOG_KEY_LEN: usize = 8 * 1024;
/// Largest `CiphertextBlob` KMS returns (its documented maximum).
pub const MAX_CIPHERTEXT_BLOB_LEN: usize = 6144;
/// Longest KMS key id or ARN (KMS's documented maximum).
pub const MAX_KMS_KEY_ID_LEN: usize = 2048;

/// The log key version this build seals, and the only one it opens.
pub const LOG_KEY_VERSION: u32 = 1;

const AAD_DOMAIN: &[u8] = b"enclave-approvals/log-key/v1";
const TAG_LEN: usize = 16;

/// Why a log key could not be sealed, opened, encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The OS random source failed.
    #[error("the OS random source failed")]
    Random,
    /// AES-GCM refused to seal (cannot happen for 32 bytes; kept rather than a panic).
    #[error("AES-256-GCM sealing failed")]
    Seal,
    /// The tag did not verify.
    #[error(
        "the sealed log key (version {version}) does not open: it was sealed for another log \
         (genesis hash), another key version or another data key, or it was altered"
    )]
    Open {
        /// The version the blob claims.
        version: u32,
    },
    /// The blob is of a version other than the one this build seals and opens: refused
    /// whatever its tag would say, so that the parent cannot hand back a blob of an older
    /// version (an older build's, an older key's) to roll the key back.
    #[error(
        "the sealed log key is version {found}, but this build seals and opens version \
         {expected} only: the parent's store returned a blob of another build or an older \
         key; restore the sealed_key this build wrote (from a backup), or run the build that \
         sealed version {found}"
    )]
    UnexpectedVersion {
        /// The version the blob claims.
        found: u32,
        /// [`LOG_KEY_VERSION`].
        expected: u32,
    },
    /// The encoded blob is larger than [`MAX_SEALED_LOG_KEY_LEN`].
    #[error("a sealed log key of {len} bytes is larger than the {max}-byte limit")]
    TooLarge {
        /// Bytes given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The CBOR encoder failed (it writes to memory, so this is not expected).
    #[error("encoding the sealed log key failed: {0}")]
    Encode(String),
    /// Not CBOR of the sealed-key shape.
    #[error("not a sealed log key: {0}")]
    Decode(String),
    /// CBOR of the right shape, but not its deterministic encoding.
    #[error("the sealed log key is not in its canonical encoding")]
    NotCanonical,
    /// A field has the wrong length.
    #[error("sealed log key field {field} has {len} bytes; expected {expected}")]
    FieldLength {
        /// The field.
        field: &'static str,
        /// Bytes found.
        len: usize,
        /// What is allowed.
        expected: &'static str,
    },
}

/// The sealed seed of the log key and what is needed to open it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedLogKey {
    /// The log key's version (bound into the associated data).
    pub version: u32,
    /// The KMS key the data key belongs to (its ARN, as KMS reported it).
    pub kms_key_id: String,
    /// The data key encrypted by KMS (`GenerateDataKey`'s `CiphertextBlob`).
    pub ciphertext_blob: Vec<u8>,
    /// The AES-GCM nonce.
    pub nonce: [u8; NONCE_LEN],
    /// AES-256-GCM ciphertext and tag of the 32-byte seed.
    pub sealed: Vec<u8>,
}

/// The encoding: fields in the bytewise order of their CBOR-encoded names, so ciborium's
/// struct order is the deterministic order.
#[derive(Serialize)]
struct WireRef<'a> {
    nonce: &'a Bytes,
    sealed: &'a Bytes,
    version: u32,
    kms_key_id: &'a str,
    ciphertext_blob: &'a Bytes,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireOwned {
    nonce: ByteArray<NONCE_LEN>,
    sealed: ByteBuf,
    version: u32,
    kms_key_id: String,
    ciphertext_blob: ByteBuf,
}

fn aad(genesis_hash: &[u8; KEY_LEN], version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + KEY_LEN + 4);
    aad.extend_from_slice(AAD_DOMAIN);
    aad.extend_from_slice(genesis_hash);
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

fn cipher(data_key: &[u8; KEY_LEN]) -> Result<LessSafeKey, SealError> {
    // AES-256 takes any 32 bytes.
    UnboundKey::new(&AES_256_GCM, data_key)
        .map(LessSafeKey::new)
        .map_err(|_| SealError::Seal)
}

/// Refuses any version but [`LOG_KEY_VERSION`].
pub(crate) fn check_version(found: u32) -> Result<(), SealError> {
    if found == LOG_KEY_VERSION {
        Ok(())
    } else {
        Err(SealError::UnexpectedVersion {
            found,
            expected: LOG_KEY_VERSION,
        })
    }
}

/// Seals `seed` under `data_key`, for the log with `genesis_hash` and key `version`, which
/// must be [`LOG_KEY_VERSION`]: a caller that asks for another would get a blob no later
/// start of this build opens, so it is refused now ([`SealError::UnexpectedVersion`]).
pub fn seal_log_key(
    data_key: &[u8; KEY_LEN],
    seed: &[u8; KEY_LEN],
    genesis_hash: &[u8; KEY_LEN],
    version: u32,
    kms_key_id: String,
    ciphertext_blob: Vec<u8>,
) -> Result<SealedLogKey, SealError> {
    check_version(version)?;
    seal_at_version(
        data_key,
        seed,
        genesis_hash,
        version,
        kms_key_id,
        ciphertext_blob,
    )
}

/// [`seal_log_key`] at any version (tests make blobs of other versions with it).
fn seal_at_version(
    data_key: &[u8; KEY_LEN],
    seed: &[u8; KEY_LEN],
    genesis_hash: &[u8; KEY_LEN],
    version: u32,
    kms_key_id: String,
    ciphertext_blob: Vec<u8>,
) -> Result<SealedLogKey, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| SealError::Random)?;
    let mut sealed = seed.to_vec();
    cipher(data_key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(genesis_hash, version)),
            &mut sealed,
        )
        .map_err(|_| SealError::Seal)?;
    Ok(SealedLogKey {
        version,
        kms_key_id,
        ciphertext_blob,
        nonce,
        sealed,
    })
}

impl SealedLogKey {
    /// Opens the seed with the data key KMS released, for the log with `genesis_hash`. Only
    /// a blob of version [`LOG_KEY_VERSION`] opens; the version is checked before anything
    /// is decrypted.
    pub fn open(
        &self,
        data_key: &[u8; KEY_LEN],
        genesis_hash: &[u8; KEY_LEN],
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, SealError> {
        check_version(self.version)?;
        let failed = SealError::Open {
            version: self.version,
        };
        let mut buffer = Zeroizing::new(self.sealed.clone());
        let plaintext = cipher(data_key)?
            .open_in_place(
                Nonce::assume_unique_for_key(self.nonce),
                Aad::from(aad(genesis_hash, self.version)),
                &mut buffer,
            )
            .map_err(|_| failed)?;
        let mut seed = Zeroizing::new([0u8; KEY_LEN]);
        if plaintext.len() != KEY_LEN {
            return Err(SealError::Open {
                version: self.version,
            });
        }
        seed.copy_from_slice(plaintext);
        Ok(seed)
    }

    /// The deterministic CBOR encoding.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SealError> {
        let wire = WireRef {
            nonce: Bytes::new(&self.nonce),
            sealed: Bytes::new(&self.sealed),
            version: self.version,
            kms_key_id: &self.kms_key_id,
            ciphertext_blob: Bytes::new(&self.ciphertext_blob),
        };
        let mut out = Vec::with_capacity(256 + self.ciphertext_blob.len());
        ciborium::into_writer(&wire, &mut out).map_err(|e| SealError::Encode(e.to_string()))?;
        if out.len() > MAX_SEALED_LOG_KEY_LEN {
            return Err(SealError::TooLarge {
                len: out.len(),
                max: MAX_SEALED_LOG_KEY_LEN,
            });
        }
        Ok(out)
    }

    /// Decodes a blob made by [`SealedLogKey::to_bytes`]; refuses any other encoding, and
    /// fields out of bounds, before anything is decrypted.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        if bytes.len() > MAX_SEALED_LOG_KEY_LEN {
            return Err(SealError::TooLarge {
                len: bytes.len(),
                max: MAX_SEALED_LOG_KEY_LEN,
            });
        }
        // The flat struct needs depth 2; a small limit keeps hostile nesting cheap.
        let wire: WireOwned = ciborium::de::from_reader_with_recursion_limit(bytes, 4)
            .map_err(|e| SealError::Decode(e.to_string()))?;
        let field = |field, len, ok: bool, expected| {
            if ok {
                Ok(())
            } else {
                Err(SealError::FieldLength {
                    field,
                    len,
                    expected,
                })
            }
        };
        field(
            "sealed",
            wire.sealed.len(),
            wire.sealed.len() == KEY_LEN + TAG_LEN,
            "48 (32 + tag)",
        )?;
        field(
            "ciphertext_blob",
            wire.ciphertext_blob.len(),
            !wire.ciphertext_blob.is_empty()
                && wire.ciphertext_blob.len() <= MAX_CIPHERTEXT_BLOB_LEN,
            "1 to 6144",
        )?;
        field(
            "kms_key_id",
            wire.kms_key_id.len(),
            !wire.kms_key_id.is_empty() && wire.kms_key_id.len() <= MAX_KMS_KEY_ID_LEN,
            "1 to 2048",
        )?;
        let sealed = SealedLogKey {
            version: wire.version,
            kms_key_id: wire.kms_key_id,
            ciphertext_blob: wire.ciphertext_blob.into_vec(),
            nonce: wire.nonce.into_array(),
            sealed: wire.sealed.into_vec(),
        };
        // Trailing bytes, other integer widths, indefinite lengths, other key orders: all
        // re-encode differently.
        if sealed.to_bytes()? != bytes {
            return Err(SealError::NotCanonical);
        }
        Ok(sealed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::panic,
        clippy::indexing_slicing,
        reason = "test"
    )]

    use super::*;

    const GENESIS: [u8; 32] = [0x6e; 32];

    fn sealed() -> SealedLogKey {
        seal_log_key(
            &[1; 32],
            &[2; 32],
            &GENESIS,
            LOG_KEY_VERSION,
            "arn:aws:kms:eu-west-1:111122223333:key/k".into(),
            vec![9; 200],
        )
        .unwrap()
    }

    #[test]
    fn seal_then_open_gives_the_seed() {
        let sealed = sealed();
        assert_eq!(*sealed.open(&[1; 32], &GENESIS).unwrap(), [2; 32]);
        let again = SealedLogKey::from_bytes(&sealed.to_bytes().unwrap()).unwrap();
        assert_eq!(again, sealed);
        assert_eq!(*again.open(&[1; 32], &GENESIS).unwrap(), [2; 32]);
    }

    #[test]
    fn wrong_genesis_version_or_data_key_is_refused() {
        let sealed = sealed();
        assert!(matches!(
            sealed.open(&[1; 32], &[0x6f; 32]),
            Err(SealError::Open { version: 1 })
        ));
        assert!(matches!(
            sealed.open(&[7; 32], &GENESIS),
            Err(SealError::Open { .. })
        ));
        // The version field relabelled: refused by the pin before any decryption.
        let mut rolled_back = sealed.clone();
        rolled_back.version = 0;
        assert!(matches!(
            rolled_back.open(&[1; 32], &GENESIS),
            Err(SealError::UnexpectedVersion {
                found: 0,
                expected: 1
            })
        ));
        // A blob sealed at version 0 relabelled as version 1 passes the pin, and the
        // associated data (which binds the version it was sealed at) refuses it.
        let mut relabelled = seal_at_version(
            &[1; 32],
            &[2; 32],
            &GENESIS,
            0,
            "arn:aws:kms:eu-west-1:111122223333:key/k".into(),
            vec![9; 200],
        )
        .unwrap();
        relabelled.version = LOG_KEY_VERSION;
        assert!(matches!(
            relabelled.open(&[1; 32], &GENESIS),
            Err(SealError::Open { version: 1 })
        ));
        let mut altered = sealed;
        altered.sealed[0] ^= 1;
        assert!(altered.open(&[1; 32], &GENESIS).is_err());
    }

    #[test]
    fn a_genuine_blob_sealed_at_another_version_does_not_open() {
        // Sealed for this very log, with the right data key: only its version differs
        // from the one this build seals (1), e.g. a blob an older build left behind.
        for version in [0, 2, u32::MAX] {
            let other = seal_at_version(
                &[1; 32],
                &[2; 32],
                &GENESIS,
                version,
                "arn:aws:kms:eu-west-1:111122223333:key/k".into(),
                vec![9; 200],
            )
            .unwrap();
            let stored = SealedLogKey::from_bytes(&other.to_bytes().unwrap()).unwrap();
            let error = stored
                .open(&[1; 32], &GENESIS)
                .expect_err("a blob of another version opened");
            let text = error.to_string();
            assert!(
                text.contains(&format!("version {version}")) && text.contains("version 1"),
                "{text}"
            );
            assert!(
                matches!(
                    error,
                    SealError::UnexpectedVersion { found, expected: 1 } if found == version
                ),
                "{error:?}"
            );
        }
    }

    #[test]
    fn sealing_at_another_version_is_refused() {
        let error = seal_log_key(
            &[1; 32],
            &[2; 32],
            &GENESIS,
            2,
            "arn:aws:kms:eu-west-1:111122223333:key/k".into(),
            vec![9; 200],
        )
        .unwrap_err();
        assert!(matches!(
            error,
            SealError::UnexpectedVersion {
                found: 2,
                expected: 1
            }
        ));
    }

    #[test]
    fn encoding_is_deterministic_cbor_and_pinned() {
        let mut sealed = sealed();
        sealed.nonce = [0xaa; 12];
        let bytes = sealed.to_bytes().unwrap();
        // A map of 5; first key "nonce" (text of 5), then a 12-byte string.
        assert_eq!(&bytes[..7], [0xa5, 0x65, b'n', b'o', b'n', b'c', b'e']);
        assert_eq!(bytes[7], 0x4c);
        // Keys in bytewise order of their encodings.
        let order = [
            "nonce",
            "sealed",
            "version",
            "kms_key_id",
            "ciphertext_blob",
        ];
        let positions: Vec<usize> = order
            .iter()
            .map(|k| {
                bytes
                    .windows(k.len())
                    .position(|w| w == k.as_bytes())
                    .unwrap()
            })
            .collect();
        assert!(positions.windows(2).all(|p| p[0] < p[1]), "{positions:?}");
    }

    #[test]
    fn other_encodings_and_bad_fields_are_refused() {
        let bytes = sealed().to_bytes().unwrap();
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            SealedLogKey::from_bytes(&trailing),
            Err(SealError::NotCanonical)
        ));
        for len in 0..bytes.len() {
            assert!(SealedLogKey::from_bytes(&bytes[..len]).is_err());
        }
        assert!(matches!(
            SealedLogKey::from_bytes(&vec![0; MAX_SEALED_LOG_KEY_LEN + 1]),
            Err(SealError::TooLarge { .. })
        ));
        let mut short = sealed();
        short.sealed.pop();
        assert!(matches!(
            SealedLogKey::from_bytes(&short.to_bytes().unwrap()),
            Err(SealError::FieldLength {
                field: "sealed",
                ..
            })
        ));
        let mut empty_blob = sealed();
        empty_blob.ciphertext_blob.clear();
        assert!(matches!(
            SealedLogKey::from_bytes(&empty_blob.to_bytes().unwrap()),
            Err(SealError::FieldLength {
                field: "ciphertext_blob",
                ..
            })
        ));
    }
}
