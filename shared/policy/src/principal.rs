//! Principals (SPEC-policy section 2): users, service principals with their public keys,
//! and groups with their direct members.

use std::collections::BTreeSet;
use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use curve25519_dalek::edwards::CompressedEdwardsY;
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
    /// 32 bytes that do not decode to a point of the curve: no private key belongs to them.
    #[error(
        "the Ed25519 key is not a point on the curve (its 32 bytes do not decompress); \
         register the public key the principal's private key gives"
    )]
    Ed25519NotAPoint,
    /// A point of small order (the identity or another of the eight torsion points): its
    /// signatures can be forged without any private key.
    #[error(
        "the Ed25519 key is a point of small order (the identity or another torsion point): \
         anyone could forge its signatures; register the principal's real public key"
    )]
    Ed25519SmallOrder,
    /// A point written other than as its canonical encoding (`y` at or above `p`, or the
    /// sign bit set on `x = 0`), which no key generator writes.
    #[error(
        "the Ed25519 key is not in its canonical encoding (y must be below 2^255 - 19, and \
         x = 0 must have the sign bit clear); register the key as its generator wrote it"
    )]
    Ed25519NonCanonical,
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
    /// Checks the encoding's shape and, for Ed25519, that the key is a point a private key
    /// can stand behind: on the curve, not of small order, canonically encoded.
    ///
    /// Why here and not only in the verifier: the verifier (ring, whose verdict the enclave
    /// follows) accepts any signature that holds under the cofactorless equation, and for a
    /// key of small order such signatures can be made without any private key
    /// (`ea_protocol::key_tables` tests make them). So such a key must never be registered.
    /// A non-canonical encoding names the same point as another 32 bytes: no generator writes
    /// one, ring and dalek disagree on them, and the key id would not name one encoding. Only
    /// `y` values below 19 have one (`y + p` fits in 255 bits); of those, the points of small
    /// order are reported as such.
    ///
    /// Pure arithmetic on the given bytes: no I/O, no randomness.
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
                let raw = <[u8; 32]>::try_from(raw).map_err(|_| KeyProblem::NotEd25519)?;
                check_ed25519_point(raw)
            }
        }
    }
}

/// The Ed25519 rules of [`PublicKey::check_encoding`] on the raw 32 bytes.
fn check_ed25519_point(raw: [u8; 32]) -> Result<(), KeyProblem> {
    let compressed = CompressedEdwardsY(raw);
    // curve25519-dalek reduces y modulo p and accepts a sign bit on x = 0, so the
    // canonical check below is what refuses those encodings.
    let point = compressed
        .decompress()
        .ok_or(KeyProblem::Ed25519NotAPoint)?;
    if point.is_small_order() {
        return Err(KeyProblem::Ed25519SmallOrder);
    }
    if point.compress() != compressed {
        return Err(KeyProblem::Ed25519NonCanonical);
    }
    Ok(())
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
        // RFC 8032 section 7.1, test 1: the shape checks need a real key since the point
        // checks came.
        let ed = hex32("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        assert!(key(KeyAlgorithm::Ed25519, ed.clone())
            .check_encoding()
            .is_ok());
        let mut ed_spki = ED25519_SPKI_PREFIX.to_vec();
        ed_spki.extend(&ed);
        assert!(key(KeyAlgorithm::Ed25519, ed_spki).check_encoding().is_ok());
        assert_eq!(
            key(KeyAlgorithm::Ed25519, point).check_encoding(),
            Err(KeyProblem::NotEd25519)
        );
    }

    fn hex32(text: &str) -> Vec<u8> {
        assert_eq!(text.len(), 64, "{text}");
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    /// The eight points of small order, as their canonical encodings are listed in the
    /// literature ("Taming the many EdDSAs", libsodium's blocklist): the identity, the point
    /// of order 2, the two of order 4 and the four of order 8.
    const SMALL_ORDER: [&str; 8] = [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    ];

    #[test]
    fn ed25519_keys_of_small_order_are_refused_raw_and_in_spki() {
        for encoding in SMALL_ORDER {
            let raw = hex32(encoding);
            assert_eq!(
                key(KeyAlgorithm::Ed25519, raw.clone()).check_encoding(),
                Err(KeyProblem::Ed25519SmallOrder),
                "{encoding}"
            );
            let spki = [ED25519_SPKI_PREFIX.as_slice(), &raw].concat();
            assert_eq!(
                key(KeyAlgorithm::Ed25519, spki).check_encoding(),
                Err(KeyProblem::Ed25519SmallOrder),
                "{encoding} in SubjectPublicKeyInfo"
            );
        }
    }

    #[test]
    fn ed25519_bytes_that_are_no_point_are_refused() {
        // y = 2: x^2 = (y^2 - 1) / (d y^2 + 1) has no square root.
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert_eq!(
            key(KeyAlgorithm::Ed25519, not_a_point.to_vec()).check_encoding(),
            Err(KeyProblem::Ed25519NotAPoint)
        );
    }

    #[test]
    fn the_small_order_list_is_dalek_s_eight_torsion_points() {
        // Cross-checks the literature's encodings with the library's own list, so that the
        // test above covers every point of small order.
        let mut ours: Vec<Vec<u8>> = SMALL_ORDER.iter().map(|e| hex32(e)).collect();
        let mut dalek: Vec<Vec<u8>> = curve25519_dalek::constants::EIGHT_TORSION
            .iter()
            .map(|p| p.compress().to_bytes().to_vec())
            .collect();
        ours.sort();
        dalek.sort();
        assert_eq!(ours, dalek);
    }

    #[test]
    fn non_canonical_ed25519_encodings_are_refused() {
        // p = 2^255 - 19; y + p for y < 19 still fits in 255 bits, and decoders that reduce
        // modulo p read it as y. Each with either sign bit: the identity as y = p + 1, the
        // points of order 4 as y = p, and any others of these y that lie on the curve.
        let p = hex32("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
        let mut non_canonical = 0;
        for y in 0u8..19 {
            for sign in [0u8, 0x80] {
                let mut bytes = p.clone();
                bytes[0] += y;
                bytes[31] |= sign;
                let verdict = key(KeyAlgorithm::Ed25519, bytes.clone()).check_encoding();
                assert!(
                    matches!(
                        verdict,
                        Err(KeyProblem::Ed25519NonCanonical
                            | KeyProblem::Ed25519SmallOrder
                            | KeyProblem::Ed25519NotAPoint)
                    ),
                    "y = p + {y}, sign {sign:#x}: {verdict:?}"
                );
                // y = 0 and y = 1 are of small order; no other of these y may be.
                if y <= 1 {
                    assert_eq!(verdict, Err(KeyProblem::Ed25519SmallOrder), "y = p + {y}");
                }
                if verdict == Err(KeyProblem::Ed25519NonCanonical) {
                    non_canonical += 1;
                }
            }
        }
        // Some of these y lie on the curve at full order, so the canonical check itself is
        // exercised, not only the two before it.
        assert!(non_canonical > 0);
        // The identity with its sign bit set ("negative zero"): of small order.
        let mut negative_zero = [0u8; 32];
        negative_zero[0] = 1;
        negative_zero[31] = 0x80;
        assert_eq!(
            key(KeyAlgorithm::Ed25519, negative_zero.to_vec()).check_encoding(),
            Err(KeyProblem::Ed25519SmallOrder)
        );
    }

    #[test]
    fn a_real_ed25519_key_is_accepted() {
        // RFC 8032 section 7.1, test 1.
        let public = hex32("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        assert_eq!(
            key(KeyAlgorithm::Ed25519, public.clone()).check_encoding(),
            Ok(())
        );
        let spki = [ED25519_SPKI_PREFIX.as_slice(), &public].concat();
        assert_eq!(key(KeyAlgorithm::Ed25519, spki).check_encoding(), Ok(()));
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
