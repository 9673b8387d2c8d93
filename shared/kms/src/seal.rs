//! The sealed log key: the 32-byte seed of a log's Ed25519 key, encrypted with AES-256-GCM
//! under a KMS data key, stored by the (untrusted) parent. Each enclave image has its own log
//! key and its own sealed blob ([`crate::keyset`] keeps them side by side in the store).
//!
//! - The data key comes from `GenerateDataKey` (AES_256); its `CiphertextBlob` is stored
//!   beside the sealed seed, so a later start can ask KMS to `Decrypt` it again, which KMS
//!   does only for an enclave whose PCRs the key policy allows.
//! - Associated data ([`LogKeyBinding`]): `"enclave-approvals/log-key/v2" || genesis hash
//!   (32) || genesis image digest (32) || image digest (32) || key version (u32,
//!   big-endian)`, where an image digest is [`image_digest`] of the PCRs that name an image
//!   (0, 1, 2, 8). A blob sealed for another log, for a log that started under another image,
//!   for another image or another key version does not open, so the parent cannot hand one
//!   log's or one image's key to another log's or image's enclave, or roll a version back.
//! - The version is pinned: this build seals [`LOG_KEY_VERSION`] only, and opens it with
//!   [`SealedLogKey::open`]. The one exception is [`SealedLogKey::open_legacy`]: a blob of
//!   [`LEGACY_LOG_KEY_VERSION`] (before per-image keys: bound to the genesis hash only),
//!   which the enclave opens only for the log's genesis image, whose key it is. The version
//!   field of a blob comes from the (untrusted) parent, so were it believed, a genuine blob
//!   sealed at another version would open: the associated data would be rebuilt from the
//!   very field the parent chose. A blob of any other version is refused with
//!   [`SealError::UnexpectedVersion`] before anything is decrypted.
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

/// The log key version this build seals, and the only one [`SealedLogKey::open`] opens:
/// one key per image, bound to the image ([`LogKeyBinding`]).
pub const LOG_KEY_VERSION: u32 = 2;

/// The version sealed before per-image keys (bound to the genesis hash only): opened by
/// [`SealedLogKey::open_legacy`], for the log's genesis image, never sealed.
pub const LEGACY_LOG_KEY_VERSION: u32 = 1;

const AAD_DOMAIN: &[u8] = b"enclave-approvals/log-key/v2";
const AAD_DOMAIN_LEGACY: &[u8] = b"enclave-approvals/log-key/v1";
const IMAGE_DOMAIN: &[u8] = b"enclave-approvals/image/v1";

/// The PCRs that name an enclave image, in the order [`image_digest`] takes them.
pub const IMAGE_PCRS: [u16; 4] = [0, 1, 2, 8];

/// The digest of an image: SHA-256 of `"enclave-approvals/image/v1"` followed, for each of
/// PCR0, 1, 2 and 8 that is present (in that order), by its index (u16, big-endian), its
/// length (one byte) and its value. Other PCRs are ignored. The same image gives the same
/// digest however its PCRs were read (a document, the NSM), since each is its raw value.
pub fn image_digest<'a>(pcrs: impl IntoIterator<Item = (u16, &'a [u8])>) -> [u8; KEY_LEN] {
    let mut found: Vec<(u16, &[u8])> = pcrs
        .into_iter()
        .filter(|(index, _)| IMAGE_PCRS.contains(index))
        .collect();
    found.sort_by_key(|(index, _)| *index);
    found.dedup_by_key(|(index, _)| *index);
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(IMAGE_DOMAIN);
    for (index, value) in found {
        context.update(&index.to_be_bytes());
        // INVARIANT: PCRs are at most 64 bytes; a longer value is cut to 255 in its length
        // byte only, and still hashed whole.
        context.update(&[u8::try_from(value.len()).unwrap_or(u8::MAX)]);
        context.update(value);
    }
    let mut digest = [0u8; KEY_LEN];
    digest.copy_from_slice(context.finish().as_ref());
    digest
}

/// What a sealed log key belongs to: its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogKeyBinding {
    /// The log's genesis hash.
    pub genesis_hash: [u8; KEY_LEN],
    /// [`image_digest`] of the log's genesis image: that of its first `enclave_start`. A
    /// log that starts the same genesis record under another image (a fork a parent made)
    /// opens no key sealed for this one.
    pub genesis_image: [u8; KEY_LEN],
    /// [`image_digest`] of the image whose key this is.
    pub image: [u8; KEY_LEN],
}
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
         (genesis hash), a log started under another image, another image, another key \
         version or another data key, or it was altered"
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
        /// The version expected ([`LOG_KEY_VERSION`], or [`LEGACY_LOG_KEY_VERSION`] for
        /// the genesis image's key of an older store).
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

/// The associated data of a blob: the binding for [`LOG_KEY_VERSION`], the genesis hash
/// alone for [`LEGACY_LOG_KEY_VERSION`].
#[derive(Debug, Clone, Copy)]
enum Bound<'a> {
    Image(&'a LogKeyBinding),
    Legacy(&'a [u8; KEY_LEN]),
}

fn aad(bound: Bound<'_>, version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + 3 * KEY_LEN + 4);
    match bound {
        Bound::Image(binding) => {
            aad.extend_from_slice(AAD_DOMAIN);
            aad.extend_from_slice(&binding.genesis_hash);
            aad.extend_from_slice(&binding.genesis_image);
            aad.extend_from_slice(&binding.image);
        }
        Bound::Legacy(genesis_hash) => {
            aad.extend_from_slice(AAD_DOMAIN_LEGACY);
            aad.extend_from_slice(genesis_hash);
        }
    }
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

fn cipher(data_key: &[u8; KEY_LEN]) -> Result<LessSafeKey, SealError> {
    // AES-256 takes any 32 bytes.
    UnboundKey::new(&AES_256_GCM, data_key)
        .map(LessSafeKey::new)
        .map_err(|_| SealError::Seal)
}

/// Refuses any version but `expected`.
pub(crate) fn check_version(found: u32, expected: u32) -> Result<(), SealError> {
    if found == expected {
        Ok(())
    } else {
        Err(SealError::UnexpectedVersion { found, expected })
    }
}

/// Seals `seed` under `data_key`, bound to `binding`, at [`LOG_KEY_VERSION`].
pub fn seal_log_key(
    data_key: &[u8; KEY_LEN],
    seed: &[u8; KEY_LEN],
    binding: &LogKeyBinding,
    kms_key_id: String,
    ciphertext_blob: Vec<u8>,
) -> Result<SealedLogKey, SealError> {
    seal_at(
        data_key,
        seed,
        Bound::Image(binding),
        LOG_KEY_VERSION,
        kms_key_id,
        ciphertext_blob,
    )
}

/// Seals `seed` as a build before per-image keys did ([`LEGACY_LOG_KEY_VERSION`], bound to
/// the genesis hash only). This build never seals such a blob for itself: it is here for
/// tests and tools that recreate a store written before the change.
pub fn seal_legacy_log_key_for_tests(
    data_key: &[u8; KEY_LEN],
    seed: &[u8; KEY_LEN],
    genesis_hash: &[u8; KEY_LEN],
    kms_key_id: String,
    ciphertext_blob: Vec<u8>,
) -> Result<SealedLogKey, SealError> {
    seal_at(
        data_key,
        seed,
        Bound::Legacy(genesis_hash),
        LEGACY_LOG_KEY_VERSION,
        kms_key_id,
        ciphertext_blob,
    )
}

fn seal_at(
    data_key: &[u8; KEY_LEN],
    seed: &[u8; KEY_LEN],
    bound: Bound<'_>,
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
            Aad::from(aad(bound, version)),
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
    /// Opens the seed with the data key KMS released, for `binding` (this log, its genesis
    /// image, this image). Only a blob of version [`LOG_KEY_VERSION`] opens; the version is
    /// checked before anything is decrypted.
    pub fn open(
        &self,
        data_key: &[u8; KEY_LEN],
        binding: &LogKeyBinding,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, SealError> {
        check_version(self.version, LOG_KEY_VERSION)?;
        self.open_bound(data_key, Bound::Image(binding))
    }

    /// Opens a blob sealed before per-image keys ([`LEGACY_LOG_KEY_VERSION`], bound to the
    /// genesis hash only). It holds the genesis image's key: open it only for that image.
    pub fn open_legacy(
        &self,
        data_key: &[u8; KEY_LEN],
        genesis_hash: &[u8; KEY_LEN],
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, SealError> {
        check_version(self.version, LEGACY_LOG_KEY_VERSION)?;
        self.open_bound(data_key, Bound::Legacy(genesis_hash))
    }

    fn open_bound(
        &self,
        data_key: &[u8; KEY_LEN],
        bound: Bound<'_>,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, SealError> {
        let failed = SealError::Open {
            version: self.version,
        };
        let mut buffer = Zeroizing::new(self.sealed.clone());
        let plaintext = cipher(data_key)?
            .open_in_place(
                Nonce::assume_unique_for_key(self.nonce),
                Aad::from(aad(bound, self.version)),
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
    const KMS_KEY: &str = "arn:aws:kms:eu-west-1:111122223333:key/k";

    fn binding() -> LogKeyBinding {
        LogKeyBinding {
            genesis_hash: GENESIS,
            genesis_image: [0xa0; 32],
            image: [0xb0; 32],
        }
    }

    fn sealed() -> SealedLogKey {
        seal_log_key(&[1; 32], &[2; 32], &binding(), KMS_KEY.into(), vec![9; 200]).unwrap()
    }

    #[test]
    fn seal_then_open_gives_the_seed() {
        let sealed = sealed();
        assert_eq!(sealed.version, LOG_KEY_VERSION);
        assert_eq!(*sealed.open(&[1; 32], &binding()).unwrap(), [2; 32]);
        let again = SealedLogKey::from_bytes(&sealed.to_bytes().unwrap()).unwrap();
        assert_eq!(again, sealed);
        assert_eq!(*again.open(&[1; 32], &binding()).unwrap(), [2; 32]);
    }

    #[test]
    fn another_log_genesis_image_image_or_data_key_is_refused() {
        let sealed = sealed();
        let other = |change: fn(&mut LogKeyBinding)| {
            let mut b = binding();
            change(&mut b);
            b
        };
        for wrong in [
            other(|b| b.genesis_hash = [0x6f; 32]),
            other(|b| b.genesis_image = [0xa1; 32]),
            other(|b| b.image = [0xb1; 32]),
        ] {
            assert!(matches!(
                sealed.open(&[1; 32], &wrong),
                Err(SealError::Open { version: 2 })
            ));
        }
        assert!(matches!(
            sealed.open(&[7; 32], &binding()),
            Err(SealError::Open { .. })
        ));
        let mut altered = sealed;
        altered.sealed[0] ^= 1;
        assert!(altered.open(&[1; 32], &binding()).is_err());
    }

    #[test]
    fn a_legacy_blob_opens_only_as_legacy_and_a_new_one_only_as_new() {
        let legacy = seal_legacy_log_key_for_tests(
            &[1; 32],
            &[2; 32],
            &GENESIS,
            KMS_KEY.into(),
            vec![9; 200],
        )
        .unwrap();
        assert_eq!(legacy.version, LEGACY_LOG_KEY_VERSION);
        assert_eq!(*legacy.open_legacy(&[1; 32], &GENESIS).unwrap(), [2; 32]);
        assert!(matches!(
            legacy.open(&[1; 32], &binding()),
            Err(SealError::UnexpectedVersion {
                found: 1,
                expected: 2
            })
        ));
        assert!(matches!(
            sealed().open_legacy(&[1; 32], &GENESIS),
            Err(SealError::UnexpectedVersion {
                found: 2,
                expected: 1
            })
        ));
        // Relabelled either way, the associated data refuses it.
        let mut relabelled = legacy.clone();
        relabelled.version = LOG_KEY_VERSION;
        assert!(matches!(
            relabelled.open(&[1; 32], &binding()),
            Err(SealError::Open { version: 2 })
        ));
        let mut relabelled = sealed();
        relabelled.version = LEGACY_LOG_KEY_VERSION;
        assert!(matches!(
            relabelled.open_legacy(&[1; 32], &GENESIS),
            Err(SealError::Open { version: 1 })
        ));
    }

    #[test]
    fn a_genuine_blob_sealed_at_another_version_does_not_open() {
        for version in [0, 3, u32::MAX] {
            let other = seal_at(
                &[1; 32],
                &[2; 32],
                Bound::Image(&binding()),
                version,
                KMS_KEY.into(),
                vec![9; 200],
            )
            .unwrap();
            let stored = SealedLogKey::from_bytes(&other.to_bytes().unwrap()).unwrap();
            let error = stored
                .open(&[1; 32], &binding())
                .expect_err("a blob of another version opened");
            let text = error.to_string();
            assert!(
                text.contains(&format!("version {version}")) && text.contains("version 2"),
                "{text}"
            );
            assert!(
                matches!(
                    error,
                    SealError::UnexpectedVersion { found, expected: 2 } if found == version
                ),
                "{error:?}"
            );
        }
    }

    #[test]
    fn image_digests_take_pcr0_1_2_8_in_order_and_nothing_else() {
        let a = [1u8; 48];
        let b = [2u8; 48];
        let image = image_digest([(0, &a[..]), (1, &a[..]), (2, &b[..])]);
        assert_eq!(
            image,
            image_digest([(2, &b[..]), (3, &b[..]), (1, &a[..]), (0, &a[..])])
        );
        assert_ne!(image, image_digest([(0, &a[..]), (1, &b[..]), (2, &a[..])]));
        assert_ne!(
            image,
            image_digest([(0, &a[..]), (1, &a[..]), (2, &b[..]), (8, &a[..])])
        );
        // Pinned: the digest is part of every sealed blob's associated data.
        assert_eq!(
            hex::encode(image_digest([
                (0, &[0u8; 48][..]),
                (1, &[0u8; 48][..]),
                (2, &[0u8; 48][..])
            ])),
            GOLDEN_ZERO_IMAGE
        );
    }

    // SHA-256 of the domain and three (index, 48, 48 zero bytes) entries, computed apart.
    const GOLDEN_ZERO_IMAGE: &str =
        "0b55c20f4d4b4f1d4b0223c23616da7f9dc82f83f76336d0d049e2e33800e37e";

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
