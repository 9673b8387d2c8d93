//! Principals (SPEC-policy section 2): users, service principals with their public keys,
//! and groups with their direct members.

use std::collections::BTreeSet;
use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{KeyId, PrincipalId};

/// What kind of principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PrincipalType {
    /// A person; signs requests with its keys.
    User,
    /// A set of principals; has members, no keys, never acts by itself.
    Group,
    /// A machine identity; signs requests with its keys.
    ServicePrincipal,
}

/// A signature algorithm of a principal's key (SPEC-trust section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// Ed25519.
    Ed25519,
}

/// Raw bytes: base64 in JSON, a byte string in CBOR.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyBytes(pub Vec<u8>);

impl fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyBytes({})", STANDARD.encode(&self.0))
    }
}

impl Serialize for KeyBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&STANDARD.encode(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

struct KeyBytesVisitor;

impl Visitor<'_> for KeyBytesVisitor {
    type Value = KeyBytes;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base64 string or a byte string")
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<KeyBytes, E> {
        STANDARD
            .decode(text)
            .map(KeyBytes)
            .map_err(|_| E::custom("the key is not valid base64 (standard alphabet, padded)"))
    }
    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<KeyBytes, E> {
        Ok(KeyBytes(bytes.to_vec()))
    }
}

impl<'de> Deserialize<'de> for KeyBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(KeyBytesVisitor)
        } else {
            deserializer.deserialize_bytes(KeyBytesVisitor)
        }
    }
}

/// A public key that signs a principal's requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublicKey {
    /// Names the key in signed requests.
    pub key_id: KeyId,
    /// Its algorithm.
    pub algorithm: KeyAlgorithm,
    /// ES256: SEC1 point (65 or 33 bytes) or SubjectPublicKeyInfo DER; Ed25519: 32 raw
    /// bytes or SubjectPublicKeyInfo DER.
    pub public_key: KeyBytes,
    /// A revoked key signs nothing; revocation cannot be undone.
    #[serde(default)]
    pub revoked: bool,
}

/// What is wrong with a public key's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyProblem {
    /// Not one of the accepted ES256 encodings.
    #[error(
        "an ES256 key must be a SEC1 point (65 or 33 bytes) or P-256 SubjectPublicKeyInfo DER"
    )]
    NotP256,
    /// Not one of the accepted Ed25519 encodings.
    #[error("an Ed25519 key must be 32 raw bytes or Ed25519 SubjectPublicKeyInfo DER")]
    NotEd25519,
}

/// DER prefix of a P-256 SubjectPublicKeyInfo with an uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// DER prefix of an Ed25519 SubjectPublicKeyInfo.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

impl PublicKey {
    /// Checks the encoding's shape (the curve arithmetic is the signature verifier's job).
    pub fn check_encoding(&self) -> Result<(), KeyProblem> {
        let bytes = self.public_key.0.as_slice();
        match self.algorithm {
            KeyAlgorithm::ES256 => {
                let point = bytes.strip_prefix(&P256_SPKI_PREFIX[..]).unwrap_or(bytes);
                match (point.len(), point.first()) {
                    (65, Some(0x04)) | (33, Some(0x02 | 0x03)) => Ok(()),
                    _ => Err(KeyProblem::NotP256),
                }
            }
            KeyAlgorithm::Ed25519 => {
                let raw = bytes
                    .strip_prefix(&ED25519_SPKI_PREFIX[..])
                    .unwrap_or(bytes);
                if raw.len() == 32 {
                    Ok(())
                } else {
                    Err(KeyProblem::NotEd25519)
                }
            }
        }
    }
}

/// A user, group or service principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Principal {
    /// Its id.
    pub id: PrincipalId,
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: PrincipalType,
    /// A name for people to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Keys that sign its requests (users and service principals only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<PublicKey>,
    /// Direct members (groups only); membership is transitive through nested groups.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub members: BTreeSet<PrincipalId>,
}

impl Principal {
    /// A principal of `kind` with no name, keys or members.
    pub fn new(id: PrincipalId, kind: PrincipalType) -> Principal {
        Principal {
            id,
            kind,
            display_name: None,
            keys: Vec::new(),
            members: BTreeSet::new(),
        }
    }

    /// The key named `key_id`, revoked or not.
    pub fn key(&self, key_id: &KeyId) -> Option<&PublicKey> {
        self.keys.iter().find(|k| &k.key_id == key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(algorithm: KeyAlgorithm, bytes: Vec<u8>) -> PublicKey {
        PublicKey {
            key_id: KeyId::new("k1").unwrap(),
            algorithm,
            public_key: KeyBytes(bytes),
            revoked: false,
        }
    }

    #[test]
    fn key_encodings() {
        let mut point = vec![4u8];
        point.extend([7u8; 64]);
        assert!(key(KeyAlgorithm::ES256, point.clone())
            .check_encoding()
            .is_ok());
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend(&point);
        assert!(key(KeyAlgorithm::ES256, spki).check_encoding().is_ok());
        let mut compressed = vec![2u8];
        compressed.extend([7u8; 32]);
        assert!(key(KeyAlgorithm::ES256, compressed)
            .check_encoding()
            .is_ok());
        assert_eq!(
            key(KeyAlgorithm::ES256, vec![4u8; 64]).check_encoding(),
            Err(KeyProblem::NotP256)
        );
        assert!(key(KeyAlgorithm::Ed25519, vec![1; 32])
            .check_encoding()
            .is_ok());
        let mut ed_spki = ED25519_SPKI_PREFIX.to_vec();
        ed_spki.extend([1u8; 32]);
        assert!(key(KeyAlgorithm::Ed25519, ed_spki).check_encoding().is_ok());
        assert_eq!(
            key(KeyAlgorithm::Ed25519, point).check_encoding(),
            Err(KeyProblem::NotEd25519)
        );
    }

    #[test]
    fn key_bytes_are_base64_in_json_and_bytes_in_cbor() {
        let k = key(KeyAlgorithm::Ed25519, vec![0xab; 32]);
        let json = serde_json::to_value(&k).unwrap();
        assert_eq!(json["publicKey"], STANDARD.encode([0xab; 32]));
        assert_eq!(json["algorithm"], "Ed25519");
        assert_eq!(serde_json::from_value::<PublicKey>(json).unwrap(), k);
        let mut cbor = Vec::new();
        ciborium::into_writer(&k, &mut cbor).unwrap();
        assert_eq!(
            ciborium::from_reader::<PublicKey, _>(cbor.as_slice()).unwrap(),
            k
        );
        assert!(serde_json::from_str::<PublicKey>(
            r#"{"keyId":"k","algorithm":"Ed25519","publicKey":"not base64!"}"#
        )
        .is_err());
    }
}
