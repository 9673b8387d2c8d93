#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test"
)]

use std::sync::OnceLock;

use super::*;

/// Key generation costs a fraction of a second; the tests share two keys.
fn key() -> &'static RecipientKey {
    static KEY: OnceLock<RecipientKey> = OnceLock::new();
    KEY.get_or_init(|| RecipientKey::generate().unwrap())
}

fn other_key() -> &'static RecipientKey {
    static KEY: OnceLock<RecipientKey> = OnceLock::new();
    KEY.get_or_init(|| RecipientKey::generate().unwrap())
}

const ENCODINGS: [Encoding; 4] = [
    Encoding::Der,
    Encoding::Ber { chunk_len: 1 },
    Encoding::Ber { chunk_len: 7 },
    Encoding::Ber { chunk_len: 1000 },
];

fn envelope(plaintext: &[u8], encoding: Encoding) -> Vec<u8> {
    EnvelopeBuilder::new(key().public_key_der())
        .unwrap()
        .encoding(encoding)
        .build(plaintext)
        .unwrap()
}

#[test]
fn opens_what_the_builder_makes_in_der_and_ber() {
    for encoding in ENCODINGS {
        for len in [0, 1, 15, 16, 17, 32, 1024] {
            let plaintext: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let bytes = envelope(&plaintext, encoding);
            let opened = open(&bytes, key(), RecipientCheck::KeyId)
                .unwrap_or_else(|e| panic!("{encoding:?}, {len} bytes: {e}"));
            assert_eq!(opened.as_slice(), plaintext.as_slice(), "{encoding:?}");
        }
    }
}

#[test]
fn ber_output_really_uses_indefinite_lengths_and_chunks() {
    let der = envelope(&[7; 32], Encoding::Der);
    let ber = envelope(&[7; 32], Encoding::Ber { chunk_len: 16 });
    // SEQUENCE with indefinite length, as KMS writes it.
    assert_eq!(&ber[..2], [0x30, 0x80]);
    assert_eq!(&ber[ber.len() - 2..], [0, 0]);
    assert_ne!(der[1], 0x80);
    // The content is a constructed [0] of OCTET STRING chunks.
    assert!(ber.windows(4).any(|w| w == [0xa0, 0x80, 0x04, 0x10]));
}

#[test]
fn key_ids_are_checked_when_asked() {
    let bytes = EnvelopeBuilder::new(key().public_key_der())
        .unwrap()
        .key_id(vec![0xab; 20])
        .build(b"secret")
        .unwrap();
    let envelope = Envelope::parse(&bytes).unwrap();
    assert_eq!(envelope.recipient_key_id(), [0xab; 20]);
    match envelope.open(key(), RecipientCheck::KeyId) {
        Err(CmsError::WrongKeyId { expected, found }) => {
            assert_eq!(expected, hex::encode(key().key_id()));
            assert_eq!(found, "ab".repeat(20));
        }
        other => panic!("{other:?}"),
    }
    // The id is a label; the key is what decides.
    assert_eq!(
        envelope
            .open(key(), RecipientCheck::AnyKeyId)
            .unwrap()
            .as_slice(),
        b"secret"
    );
}

#[test]
fn an_envelope_for_another_key_does_not_open() {
    let bytes = envelope(b"secret", Encoding::Der);
    assert!(matches!(
        open(&bytes, other_key(), RecipientCheck::KeyId),
        Err(CmsError::WrongKeyId { .. })
    ));
    assert!(matches!(
        open(&bytes, other_key(), RecipientCheck::AnyKeyId),
        Err(CmsError::KeyDecryption)
    ));
}

#[test]
fn oversize_input_is_refused_before_decoding() {
    let big = vec![0x30; MAX_CMS_LEN + 1];
    assert!(matches!(
        Envelope::parse(&big),
        Err(CmsError::TooLarge { len, max: MAX_CMS_LEN }) if len == MAX_CMS_LEN + 1
    ));
    assert!(matches!(
        EnvelopeBuilder::new(key().public_key_der())
            .unwrap()
            .build(&vec![0; MAX_CONTENT_LEN]),
        Err(BuildError::PlaintextTooLong { .. })
    ));
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = envelope(b"x", Encoding::Der);
    bytes.push(0);
    assert!(matches!(
        Envelope::parse(&bytes),
        Err(CmsError::TrailingBytes {
            part: "ContentInfo",
            extra: 1
        })
    ));
}

/// Replaces the first occurrence of `from` by `to` (same length).
fn patched(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern present");
    let mut out = bytes.to_vec();
    out[at..at + from.len()].copy_from_slice(to);
    out
}

const OID_ENVELOPED: [u8; 11] = [6, 9, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 7, 3];
const OID_DATA: [u8; 11] = [6, 9, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 7, 1];
const OID_OAEP: [u8; 11] = [6, 9, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 7];
const OID_SHA256: [u8; 11] = [6, 9, 0x60, 0x86, 0x48, 1, 0x65, 3, 4, 2, 1];
const OID_AES256_CBC: [u8; 11] = [6, 9, 0x60, 0x86, 0x48, 1, 0x65, 3, 4, 1, 0x2a];

#[test]
fn each_unexpected_algorithm_or_type_has_its_error() {
    for encoding in [Encoding::Der, Encoding::Ber { chunk_len: 5 }] {
        let good = envelope(b"secret", encoding);
        let check = |bytes: Vec<u8>| Envelope::parse(&bytes).map(|_| ()).unwrap_err();

        // signedData instead of envelopedData.
        let mut signed = OID_ENVELOPED;
        signed[10] = 2;
        assert!(matches!(
            check(patched(&good, &OID_ENVELOPED, &signed)),
            CmsError::ContentType { found } if found == "1.2.840.113549.1.7.2"
        ));
        // EnvelopedData version 0 (the first INTEGER after the [0]).
        let version_at = good
            .windows(3)
            .position(|w| w == [2, 1, 2])
            .expect("version 2");
        let mut v0 = good.clone();
        v0[version_at + 2] = 0;
        assert!(matches!(check(v0), CmsError::Version { found } if found == "0"));
        // rsaEncryption (PKCS#1 v1.5) instead of RSAES-OAEP.
        let mut pkcs1 = OID_OAEP;
        pkcs1[10] = 1;
        assert!(matches!(
            check(patched(&good, &OID_OAEP, &pkcs1)),
            CmsError::KeyEncryptionAlgorithm { found } if found == "1.2.840.113549.1.1.1"
        ));
        // SHA-384 as the OAEP hash (the first SHA-256 is the hash, the second MGF1's).
        let mut sha384 = OID_SHA256;
        sha384[10] = 2;
        assert!(matches!(
            check(patched(&good, &OID_SHA256, &sha384)),
            CmsError::OaepParameters { .. }
        ));
        // id-data replaced by id-signedData as the encrypted content type.
        let mut not_data = OID_DATA;
        not_data[10] = 2;
        assert!(matches!(
            check(patched(&good, &OID_DATA, &not_data)),
            CmsError::EncryptedContentType { .. }
        ));
        // AES-128-CBC instead of AES-256-CBC.
        let mut aes128 = OID_AES256_CBC;
        aes128[10] = 2;
        assert!(matches!(
            check(patched(&good, &OID_AES256_CBC, &aes128)),
            CmsError::ContentEncryptionAlgorithm { found } if found == "2.16.840.1.101.3.4.1.2"
        ));
    }
}

#[test]
fn truncations_never_parse_and_never_panic() {
    for encoding in ENCODINGS {
        let bytes = envelope(&[9; 32], encoding);
        for len in 0..bytes.len() {
            let result = open(&bytes[..len], key(), RecipientCheck::KeyId);
            assert!(result.is_err(), "{encoding:?}: a {len}-byte prefix opened");
        }
    }
}

/// Flips each byte in turn. Every outcome is a typed error, except where CBC is malleable
/// by design (a flipped IV or early content byte changes the plaintext, padding intact);
/// a flip in the block before the padding block always breaks the padding.
#[test]
fn flipped_bytes_give_typed_errors_and_never_panic() {
    let plaintext = [9u8; 32];
    for encoding in [Encoding::Der, Encoding::Ber { chunk_len: 16 }] {
        let bytes = envelope(&plaintext, encoding);
        let parsed = Envelope::parse(&bytes).unwrap();
        let mut opened_altered = 0;
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x41;
            // Errors are the expected outcome; an opening must not give the original back.
            if let Ok(p) = open(&flipped, key(), RecipientCheck::KeyId) {
                assert_ne!(
                    p.as_slice(),
                    plaintext,
                    "{encoding:?}: flip at {at} unnoticed"
                );
                opened_altered += 1;
            }
        }
        // 32 bytes of plaintext + 16 of padding: a flip in the IV or the first content block
        // goes unnoticed by the padding check, and a flip in the last block decrypts it into
        // random bytes that end in valid padding about once in 256 tries. Nowhere else.
        assert!(opened_altered <= 32 + 16, "{encoding:?}: {opened_altered}");

        // The second content block decrypts into the padding block: always a padding error.
        for byte in 0..16 {
            let mut altered = parsed.clone();
            altered.ciphertext[16 + byte] ^= 0x01;
            assert!(matches!(
                altered.open(key(), RecipientCheck::KeyId),
                Err(CmsError::Padding)
            ));
        }
        // The encrypted key: OAEP refuses.
        let mut altered = parsed.clone();
        altered.encrypted_key[100] ^= 0x01;
        assert!(matches!(
            altered.open(key(), RecipientCheck::KeyId),
            Err(CmsError::KeyDecryption)
        ));
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes, and arbitrary splices into a valid BER envelope, never panic.
    #[test]
    fn arbitrary_input_never_panics(
        noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        at in 0usize..600,
    ) {
        let _ = Envelope::parse(&noise);
        let mut bytes = envelope_cached().clone();
        let at = at % bytes.len();
        let end = (at + noise.len()).min(bytes.len());
        bytes.splice(at..end, noise.iter().copied());
        if let Ok(envelope) = Envelope::parse(&bytes) {
            let _ = envelope.open(key(), RecipientCheck::KeyId);
        }
    }
}

fn envelope_cached() -> &'static Vec<u8> {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| envelope(&[5; 32], Encoding::Ber { chunk_len: 8 }))
}
