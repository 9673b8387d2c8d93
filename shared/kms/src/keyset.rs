//! The sealed log keys of one log, one per image, as the parent stores them.
//!
//! The parent's store keeps one opaque blob for the log (`PutSealedKey`/`GetSealedKey`).
//! Since every image has its own log key, that blob is a [`SealedKeySet`]: each image's
//! [`SealedLogKey`], named by the image's digest ([`crate::seal::image_digest`]). The set
//! itself is not authenticated (the parent may drop, swap or replay entries); each entry
//! is: it opens only for the log, genesis image and image its associated data names, so a
//! swapped entry does not open, and an enclave whose image already started on the log does
//! not take a missing entry for a first start (it refuses to start; see `enclave-app`).
//!
//! A store written before per-image keys holds one bare [`SealedLogKey`] of
//! [`crate::LEGACY_LOG_KEY_VERSION`]: [`StoredLogKeys::Legacy`], the genesis image's key.
//! The first enclave of another image to start keeps it in the set it writes, under the
//! genesis image's digest.
//!
//! Encoding: deterministic CBOR, a map `{"v": 1, "keys": [[digest (32 bytes), sealed log
//! key (its bytes)], ...]}` with entries in increasing digest order, no digest twice, at
//! most [`MAX_IMAGES`] entries and [`MAX_KEY_SET_LEN`] bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_bytes::{ByteArray, ByteBuf};

use crate::seal::{SealError, SealedLogKey, KEY_LEN};

/// Most images a set holds.
pub const MAX_IMAGES: usize = 64;
/// Largest encoded set.
pub const MAX_KEY_SET_LEN: usize = 512 * 1024;
/// The set format version.
const SET_VERSION: u32 = 1;

/// Each image's sealed log key, by image digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealedKeySet {
    keys: BTreeMap<[u8; KEY_LEN], SealedLogKey>,
}

/// What the parent's store holds for a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredLogKeys {
    /// One blob written before per-image keys: the genesis image's key.
    Legacy(SealedLogKey),
    /// One key per image.
    Set(SealedKeySet),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    // "v" sorts before "keys" (shorter encodings first): ciborium writes fields in order.
    v: u32,
    keys: Vec<(ByteArray<KEY_LEN>, ByteBuf)>,
}

impl SealedKeySet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key of the image with this digest.
    pub fn get(&self, image: &[u8; KEY_LEN]) -> Option<&SealedLogKey> {
        self.keys.get(image)
    }

    /// Adds (or replaces) the key of the image with this digest.
    pub fn insert(&mut self, image: [u8; KEY_LEN], key: SealedLogKey) {
        self.keys.insert(image, key);
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The image digests, in order.
    pub fn images(&self) -> impl Iterator<Item = &[u8; KEY_LEN]> {
        self.keys.keys()
    }

    /// The deterministic encoding.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SealError> {
        if self.keys.len() > MAX_IMAGES {
            return Err(SealError::Decode(format!(
                "a key set holds at most {MAX_IMAGES} images"
            )));
        }
        let keys = self
            .keys
            .iter()
            .map(|(image, key)| Ok((ByteArray::new(*image), ByteBuf::from(key.to_bytes()?))))
            .collect::<Result<Vec<_>, SealError>>()?;
        let mut out = Vec::new();
        ciborium::into_writer(
            &Wire {
                v: SET_VERSION,
                keys,
            },
            &mut out,
        )
        .map_err(|e| SealError::Encode(e.to_string()))?;
        if out.len() > MAX_KEY_SET_LEN {
            return Err(SealError::TooLarge {
                len: out.len(),
                max: MAX_KEY_SET_LEN,
            });
        }
        Ok(out)
    }

    /// Decodes a set; refuses any other encoding, an unknown version, entries out of order
    /// or repeated, and each entry as [`SealedLogKey::from_bytes`] does.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        if bytes.len() > MAX_KEY_SET_LEN {
            return Err(SealError::TooLarge {
                len: bytes.len(),
                max: MAX_KEY_SET_LEN,
            });
        }
        let wire: Wire = ciborium::de::from_reader_with_recursion_limit(bytes, 6)
            .map_err(|e| SealError::Decode(e.to_string()))?;
        if wire.v != SET_VERSION {
            return Err(SealError::Decode(format!(
                "key set version {} (this build reads {SET_VERSION})",
                wire.v
            )));
        }
        if wire.keys.len() > MAX_IMAGES {
            return Err(SealError::Decode(format!(
                "a key set holds at most {MAX_IMAGES} images"
            )));
        }
        let mut set = SealedKeySet::new();
        for (image, key) in wire.keys {
            set.insert(image.into_array(), SealedLogKey::from_bytes(&key)?);
        }
        // Out of order, repeated, or any other encoding: re-encodes differently.
        if set.to_bytes()? != bytes {
            return Err(SealError::NotCanonical);
        }
        Ok(set)
    }
}

impl StoredLogKeys {
    /// Reads what the store returned: a bare sealed key (an older store) or a set.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        if let Ok(legacy) = SealedLogKey::from_bytes(bytes) {
            return Ok(StoredLogKeys::Legacy(legacy));
        }
        SealedKeySet::from_bytes(bytes).map(StoredLogKeys::Set)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test")]

    use super::*;
    use crate::seal::{seal_legacy_log_key_for_tests, seal_log_key, LogKeyBinding};

    fn key(image: u8) -> SealedLogKey {
        let binding = LogKeyBinding {
            genesis_hash: [1; 32],
            genesis_image: [2; 32],
            image: [image; 32],
        };
        seal_log_key(&[3; 32], &[4; 32], &binding, "arn:k".into(), vec![5; 100]).unwrap()
    }

    #[test]
    fn a_set_round_trips_and_an_older_store_reads_as_legacy() {
        let mut set = SealedKeySet::new();
        set.insert([0xbb; 32], key(0xbb));
        set.insert([0xaa; 32], key(0xaa));
        let bytes = set.to_bytes().unwrap();
        assert_eq!(
            StoredLogKeys::from_bytes(&bytes).unwrap(),
            StoredLogKeys::Set(set.clone())
        );
        assert_eq!(set.images().next(), Some(&[0xaa; 32]));
        let legacy =
            seal_legacy_log_key_for_tests(&[3; 32], &[4; 32], &[1; 32], "arn:k".into(), vec![5; 9])
                .unwrap();
        assert_eq!(
            StoredLogKeys::from_bytes(&legacy.to_bytes().unwrap()).unwrap(),
            StoredLogKeys::Legacy(legacy)
        );
    }

    #[test]
    fn other_encodings_are_refused() {
        let mut set = SealedKeySet::new();
        set.insert([0xaa; 32], key(0xaa));
        set.insert([0xbb; 32], key(0xbb));
        let bytes = set.to_bytes().unwrap();
        for len in 0..bytes.len() {
            assert!(StoredLogKeys::from_bytes(&bytes[..len]).is_err());
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(SealedKeySet::from_bytes(&trailing).is_err());
        // Entries out of order.
        let wire = Wire {
            v: 1,
            keys: vec![
                (
                    ByteArray::new([0xbb; 32]),
                    ByteBuf::from(key(0xbb).to_bytes().unwrap()),
                ),
                (
                    ByteArray::new([0xaa; 32]),
                    ByteBuf::from(key(0xaa).to_bytes().unwrap()),
                ),
            ],
        };
        let mut swapped = Vec::new();
        ciborium::into_writer(&wire, &mut swapped).unwrap();
        assert!(matches!(
            SealedKeySet::from_bytes(&swapped),
            Err(SealError::NotCanonical)
        ));
    }
}
