use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::EdwardsPoint;
use ed25519_dalek::Signer as _;
use proptest::prelude::*;

use super::*;

/// The group order, little-endian.
const ORDER: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn message(body: &[u8]) -> Vec<u8> {
    [REQUEST_SIGNING_DOMAIN, body].concat()
}

fn ed25519(bytes: [u8; 32]) -> PublicKey {
    PublicKey {
        alg: SignatureAlgorithm::Ed25519,
        bytes: bytes.to_vec(),
    }
}

/// Tables for every key from its first signature.
fn eager() -> KeyTables {
    KeyTables::new(16, 1)
}

fn signed(seed: [u8; 32], body: &[u8]) -> (PublicKey, [u8; 64]) {
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let sig = key.sign(&message(body)).to_bytes();
    (ed25519(key.verifying_key().to_bytes()), sig)
}

/// `a + b` on 256-bit little-endian numbers (no carry out for the values used here).
fn add(a: [u8; 32], b: [u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    out
}

/// `k` of the verification equation for `key_bytes`, `r` and `body`.
fn challenge(r: &[u8; 32], key_bytes: &[u8], body: &[u8]) -> Scalar {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA512);
    digest.update(r);
    digest.update(key_bytes);
    digest.update(&message(body));
    Scalar::from_bytes_mod_order_wide(&digest.finish().as_ref().try_into().unwrap())
}

fn agree(tables: &KeyTables, key: &PublicKey, body: &[u8], sig: &[u8]) -> bool {
    let ring = key.verify(body, sig);
    assert_eq!(
        tables.verify(key, body, sig),
        ring,
        "key {:02x?} sig {:02x?}",
        key.bytes,
        sig
    );
    ring
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_verdict_is_rings_on_valid_and_mutated_signatures(
        seed in any::<[u8; 32]>(),
        body in proptest::collection::vec(any::<u8>(), 0..600),
        bit in 0usize..512,
        other_body in proptest::collection::vec(any::<u8>(), 0..64),
        garbage in any::<[u8; 64]>(),
    ) {
        let tables = eager();
        let (key, sig) = signed(seed, &body);
        prop_assert!(agree(&tables, &key, &body, &sig));
        prop_assert_eq!(tables.len(), 1);
        let mut flipped = sig;
        flipped[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(!agree(&tables, &key, &body, &flipped));
        if other_body != body {
            prop_assert!(!agree(&tables, &key, &other_body, &sig));
        }
        agree(&tables, &key, &body, &garbage);
        prop_assert!(!agree(&tables, &key, &body, &sig[..63]));
        prop_assert!(!agree(&tables, &key, &body, &[sig.as_slice(), &[0]].concat()));
        // Another key's signature.
        let (other, _) = signed(garbage[..32].try_into().unwrap(), &body);
        if other != key {
            prop_assert!(!agree(&tables, &other, &body, &sig));
        }
    }

    #[test]
    fn a_non_canonical_s_is_refused_as_ring_refuses_it(
        seed in any::<[u8; 32]>(),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let tables = eager();
        let (key, sig) = signed(seed, &body);
        let s: [u8; 32] = sig[32..].try_into().unwrap();
        // S + L satisfies the same equation; only the canonical check refuses it.
        let mut malleated = sig;
        malleated[32..].copy_from_slice(&add(s, ORDER));
        prop_assert!(!agree(&tables, &key, &body, &malleated));
    }
}

/// Keys of small order, their non-canonical encodings, and bytes that are not a point:
/// signatures that hold under the cofactorless equation for such keys are accepted by
/// ring, and must be accepted here too, and the others refused by both.
#[test]
fn hostile_keys_get_rings_verdict() {
    let tables = eager();
    let body = b"a body".to_vec();
    let mut keys: Vec<[u8; 32]> = EIGHT_TORSION
        .iter()
        .map(|p| p.compress().to_bytes())
        .collect();
    // The identity with its sign bit set, and y = p + 1 (non-canonical identity).
    let mut negative_zero = [0u8; 32];
    negative_zero[0] = 1;
    negative_zero[31] = 0x80;
    keys.push(negative_zero);
    let mut p_plus_one = [0xffu8; 32];
    p_plus_one[0] = 0xee;
    p_plus_one[31] = 0x7f;
    keys.push(p_plus_one);
    // y = 2 is not on the curve.
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;
    keys.push(not_a_point);

    let mut accepted = 0;
    for (i, key_bytes) in keys.iter().enumerate() {
        let key = ed25519(*key_bytes);
        let a = CompressedEdwardsY(*key_bytes).decompress();
        for attempt in 0u64..64 {
            let s = Scalar::from(attempt * 7919 + i as u64 + 1);
            // Guess which torsion point [k]A is, so that some forgeries hold.
            let guess = EIGHT_TORSION[(attempt % 8) as usize];
            let r_point: EdwardsPoint = ED25519_BASEPOINT_POINT * s + guess;
            let r = r_point.compress().to_bytes();
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&r);
            sig[32..].copy_from_slice(s.as_bytes());
            if agree(&tables, &key, &body, &sig) {
                accepted += 1;
                let a = a.expect("ring accepted, so the key is a point");
                assert_eq!(-(a * challenge(&r, key_bytes, &body)), guess);
            }
        }
    }
    assert!(
        accepted > 0,
        "no forgery held: the test would not tell verdicts apart"
    );
}

#[test]
fn es256_keys_are_verified_by_ring_and_get_no_table() {
    let tables = eager();
    let (signer, _) = crate::signed::RequestSigner::generate(SignatureAlgorithm::ES256).unwrap();
    let request = signer.sign_body_bytes(b"body".to_vec()).unwrap();
    assert!(agree(&tables, signer.public_key(), b"body", &request.sig));
    assert!(!agree(&tables, signer.public_key(), b"other", &request.sig));
    assert!(tables.is_empty());
}

#[test]
fn a_key_gets_its_table_on_the_promoting_signature() {
    let tables = KeyTables::new(4, 3);
    let (key, sig) = signed([1; 32], b"body");
    assert!(tables.verify(&key, b"body", &sig));
    assert!(tables.verify(&key, b"body", &sig));
    assert!(tables.is_empty());
    assert!(tables.verify(&key, b"body", &sig));
    assert_eq!(tables.len(), 1);
    assert!(!tables.verify(&key, b"bodY", &sig));
}

#[test]
fn the_least_recently_used_table_makes_way() {
    let tables = KeyTables::new(2, 1);
    let signed: Vec<_> = (1u8..=3).map(|i| signed([i; 32], b"body")).collect();
    for (key, sig) in &signed {
        assert!(tables.verify(key, b"body", sig));
        assert!(tables.len() <= 2);
    }
    // Keys 2 and 3 hold tables; using key 2, then key 1, evicts key 3.
    assert!(tables.verify(&signed[1].0, b"body", &signed[1].1));
    assert!(tables.verify(&signed[0].0, b"body", &signed[0].1));
    let held: Vec<[u8; 32]> = tables.lock().tables.keys().copied().collect();
    assert_eq!(held.len(), 2);
    assert!(!held.contains(&<[u8; 32]>::try_from(signed[2].0.bytes.as_slice()).unwrap()));
}

#[test]
fn no_capacity_means_ring_alone() {
    let tables = KeyTables::new(0, 1);
    let (key, sig) = signed([9; 32], b"body");
    assert!(tables.verify(&key, b"body", &sig));
    assert!(tables.is_empty());
}
