//! SHA-256 hashes and the two RFC 6962 hashing rules (leaf and interior node).

use std::fmt;
use std::str::FromStr;

use ring::digest::{Context, SHA256};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Length of every hash in the log, in bytes.
pub const HASH_LEN: usize = 32;

/// A SHA-256 hash: record hashes, leaf hashes, tree nodes and roots.
///
/// Shown and parsed as 64 lower-case hex digits; serialized (CBOR, JSON through serde) as a
/// 32-byte string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; HASH_LEN]);

impl Hash {
    /// The bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// The hash of a byte slice that must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, HashLengthError> {
        <[u8; HASH_LEN]>::try_from(bytes)
            .map(Hash)
            .map_err(|_| HashLengthError { len: bytes.len() })
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        self.hex_digits().to_owned()
    }

    /// Lower-case hex, on the stack: every answer's receipt carries a score of hashes, and
    /// `hex::encode` builds its string one `char` at a time.
    fn hex_digits(&self) -> HexDigits {
        let mut digits = [0u8; HASH_LEN * 2];
        // Cannot fail: the buffer is exactly twice the input's length.
        let _ = hex::encode_to_slice(self.0, &mut digits);
        HexDigits(digits)
    }
}

/// A hash's 64 hex digits.
struct HexDigits([u8; HASH_LEN * 2]);

impl std::ops::Deref for HexDigits {
    type Target = str;

    fn deref(&self) -> &str {
        // Hex digits are ASCII; the fallback is never taken.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// A byte string that should have been a 32-byte hash was not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a hash is {HASH_LEN} bytes, got {len}")]
pub struct HashLengthError {
    /// The length that was found.
    pub len: usize,
}

/// Text that should have been 64 hex digits was not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a hash is {} hex digits", HASH_LEN * 2)]
pub struct HashHexError;

impl FromStr for Hash {
    type Err = HashHexError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; HASH_LEN];
        hex::decode_to_slice(text, &mut out).map_err(|_| HashHexError)?;
        Ok(Hash(out))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex_digits())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", &*self.hex_digits())
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<[u8; HASH_LEN]> for Hash {
    fn from(bytes: [u8; HASH_LEN]) -> Self {
        Hash(bytes)
    }
}

/// A byte string in CBOR; 64 lower-case hex digits in JSON and other text formats.
impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.hex_digits())
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Hash;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a {HASH_LEN}-byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Hash, E> {
                Hash::from_slice(bytes).map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Hash, E> {
                text.parse().map_err(E::custom)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(Visitor)
        } else {
            deserializer.deserialize_bytes(Visitor)
        }
    }
}

/// SHA-256 of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> Hash {
    let mut context = Context::new(&SHA256);
    for part in parts {
        context.update(part);
    }
    let digest = context.finish();
    // INVARIANT: SHA-256 digests are 32 bytes; the fallback is unreachable.
    Hash::from_slice(digest.as_ref()).unwrap_or_default()
}

/// RFC 6962 leaf hash: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    sha256(&[&[0x00], data])
}

/// RFC 6962 interior node hash: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], &left.0, &right.0])
}

/// The root of the empty tree: `SHA-256()` of nothing.
pub fn empty_root() -> Hash {
    sha256(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_text_form_is_the_64_lower_case_hex_digits(bytes in any::<[u8; HASH_LEN]>()) {
            let hash = Hash(bytes);
            let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            prop_assert_eq!(hash.to_hex(), digits.clone());
            prop_assert_eq!(hash.to_string(), digits.clone());
            prop_assert_eq!(format!("{hash:?}"), format!("Hash({digits})"));
            prop_assert_eq!(serde_json::to_string(&hash).unwrap(), format!("\"{digits}\""));
            prop_assert_eq!(digits.parse::<Hash>().unwrap(), hash);
        }
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn leaf_and_node_hashes_are_domain_separated() {
        // RFC 6962 test data: the leaf hash of the empty leaf.
        assert_eq!(
            leaf_hash(b"").to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        let a = leaf_hash(b"a");
        assert_ne!(node_hash(&a, &a), sha256(&[&a.0, &a.0]));
    }

    #[test]
    fn hex_round_trip_and_bad_input() {
        let h = leaf_hash(b"x");
        assert_eq!(h.to_string().parse::<Hash>().unwrap(), h);
        assert!("00".parse::<Hash>().is_err());
        assert!("zz".repeat(32).parse::<Hash>().is_err());
        assert_eq!(Hash::from_slice(&[0; 31]), Err(HashLengthError { len: 31 }));
    }

    #[test]
    fn serde_as_bytes() {
        let h = leaf_hash(b"x");
        let mut out = Vec::new();
        ciborium::into_writer(&h, &mut out).unwrap();
        assert_eq!(out.len(), 2 + HASH_LEN);
        assert_eq!(ciborium::from_reader::<Hash, _>(out.as_slice()).unwrap(), h);
        let mut short = Vec::new();
        ciborium::into_writer(&serde_bytes_like(&[1, 2, 3]), &mut short).unwrap();
        assert!(ciborium::from_reader::<Hash, _>(short.as_slice()).is_err());
    }

    fn serde_bytes_like(bytes: &[u8]) -> ciborium::Value {
        ciborium::Value::Bytes(bytes.to_vec())
    }
}
