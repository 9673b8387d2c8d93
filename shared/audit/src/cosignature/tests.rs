use super::*;
use crate::note::tests::signer;
use crate::note::{key_id, NoteSigner};
use ed25519_dalek::{Signature, SigningKey, Verifier as _};

const CHECKPOINT: &str =
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

/// The example of the C2SP tlog-cosignature spec: a checkpoint with a log signature and one
/// cosignature, by a witness whose key the spec does not give.
const SPEC_NOTE: &str = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n";

/// The signed message of the spec's example, as the spec prints it.
const SPEC_MESSAGE: &str = "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

fn witness(name: &str, seed: u8) -> CosignatureSigner {
    CosignatureSigner::from_seed(name, &[seed; 32]).unwrap()
}

fn log_note(text: &str) -> String {
    signer("example.com/behind-the-sofa", 1).sign(text).unwrap()
}

#[test]
fn the_spec_example_parses_and_its_message_is_ours() {
    assert_eq!(
        cosigned_message(1679315147, CHECKPOINT),
        SPEC_MESSAGE.as_bytes()
    );
    let note = Note::parse(SPEC_NOTE).unwrap();
    assert_eq!(note.unverified_text(), CHECKPOINT);
    let cosig = &note.signatures()[1];
    assert_eq!(cosig.name, "witness.example.com/w1");
    assert_eq!(cosig.key_id, 0x8d66cf3f);
    assert_eq!(cosig.signature.len(), TIMESTAMPED_SIGNATURE_LEN);
    let timestamp = u64::from_be_bytes(cosig.signature[..8].try_into().unwrap());
    assert_eq!(timestamp, 1679315147);
    // A witness of that name with another key: another key id, so the line is not its own
    // and is ignored when counting.
    let other = witness("witness.example.com/w1", 5);
    assert!(matches!(
        other.verifier().verify(CHECKPOINT, cosig),
        Err(CosignatureError::NotThisKey { .. })
    ));
    assert_eq!(
        verify_cosignatures(SPEC_NOTE, &[other.verifier().clone()], 0).unwrap(),
        vec![]
    );
}

#[test]
fn key_ids_follow_the_spec_and_differ_from_note_key_ids() {
    let w = witness("witness.example/w1", 2);
    let key = *w.verifier().public_key();
    let digest = crate::hash::sha256(&[b"witness.example/w1\n\x04", &key]);
    assert_eq!(
        w.verifier().key_id().to_be_bytes(),
        digest.0[..4],
        "SHA-256(name || 0x0A || 0x04 || key)[:4]"
    );
    assert_ne!(w.verifier().key_id(), key_id("witness.example/w1", &key));
}

/// Golden: the line for a fixed seed, name, time and checkpoint (Ed25519 is deterministic),
/// and the same signature from an independent implementation (ed25519-dalek).
#[test]
fn golden_cosignature_line() {
    let seed = [0x42; 32];
    let line = cosign(&seed, "witness.example/w1", 1_700_000_000, CHECKPOINT).unwrap();
    let dalek = SigningKey::from_bytes(&seed);
    let expected_sig = ed25519_dalek::Signer::sign(
        &dalek,
        format!("cosignature/v1\ntime 1700000000\n{CHECKPOINT}").as_bytes(),
    );
    let id = cosignature_key_id("witness.example/w1", &dalek.verifying_key().to_bytes());
    let mut blob = id.to_be_bytes().to_vec();
    blob.extend_from_slice(&1_700_000_000u64.to_be_bytes());
    blob.extend_from_slice(&expected_sig.to_bytes());
    assert_eq!(
        line,
        format!("\u{2014} witness.example/w1 {}\n", STANDARD.encode(&blob))
    );
    assert_eq!(
        line,
        "\u{2014} witness.example/w1 8e2MRwAAAABlU/EAuxp9VxfIo4Lc2165QJfKQuz8sp9l3qv4UP4pRxeG8aR1L5loMn2jAacrN67yTttqAUXn5cFEyCBHN6CspCccBQ==\n"
    );
}

#[test]
fn sign_then_verify_one_line() {
    let w = witness("witness.example/w1", 2);
    let line = w.sign(1_679_315_147, CHECKPOINT).unwrap();
    let verifier = w.verifier();
    assert_eq!(verifier.verify_line(CHECKPOINT, &line), Ok(1_679_315_147));
    assert_eq!(
        verifier.verify_line(CHECKPOINT, line.trim_end()),
        Ok(1_679_315_147)
    );
    // Another text, or the time changed on the line: refused.
    let other_text = CHECKPOINT.replace("20852163", "20852164");
    assert!(matches!(
        verifier.verify_line(&other_text, &line),
        Err(CosignatureError::BadSignature { .. })
    ));
    let parsed = parse_signature_line(line.trim_end(), 1).unwrap();
    let mut later = parsed.clone();
    later.signature[7] ^= 1;
    assert!(matches!(
        verifier.verify(CHECKPOINT, &later),
        Err(CosignatureError::BadSignature { .. })
    ));
    let mut short = parsed;
    short.signature.pop();
    assert!(matches!(
        verifier.verify(CHECKPOINT, &short),
        Err(CosignatureError::BadSignature { .. })
    ));
    // Someone else's line.
    let other = witness("witness.example/w2", 3);
    assert!(matches!(
        verifier.verify_line(CHECKPOINT, &other.sign(1, CHECKPOINT).unwrap()),
        Err(CosignatureError::NotThisKey { .. })
    ));
    assert!(matches!(
        verifier.verify_line(CHECKPOINT, "not a line"),
        Err(CosignatureError::Note(
            NoteError::MalformedSignatureLine { .. }
        ))
    ));
}

#[test]
fn timestamps_above_2_pow_63_are_refused() {
    let w = witness("witness.example/w1", 2);
    assert_eq!(
        w.sign(MAX_TIMESTAMP + 1, CHECKPOINT),
        Err(CosignatureError::TimestampOutOfRange {
            timestamp: MAX_TIMESTAMP + 1
        })
    );
    assert!(w.sign(MAX_TIMESTAMP, CHECKPOINT).is_ok());
    // A line with a correct signature over a time of 2^63 is still refused.
    let seed = [2u8; 32];
    let dalek = SigningKey::from_bytes(&seed);
    let time = 1u64 << 63;
    let sig = ed25519_dalek::Signer::sign(&dalek, &cosigned_message(time, CHECKPOINT));
    let mut blob = w.verifier().key_id().to_be_bytes().to_vec();
    blob.extend_from_slice(&time.to_be_bytes());
    blob.extend_from_slice(&sig.to_bytes());
    let line = format!("\u{2014} witness.example/w1 {}", STANDARD.encode(blob));
    assert_eq!(
        w.verifier().verify_line(CHECKPOINT, &line),
        Err(CosignatureError::TimestampOutOfRange { timestamp: time })
    );
}

#[test]
fn sign_refuses_bad_texts_and_names() {
    let w = witness("witness.example/w1", 2);
    for bad in ["", "no newline", "ends blank\n\n", "tab\there\n"] {
        assert!(
            matches!(w.sign(1, bad), Err(CosignatureError::Note(_))),
            "{bad:?}"
        );
    }
    for name in ["", "with space", "plus+sign"] {
        assert!(matches!(
            CosignatureSigner::from_seed(name, &[2; 32]),
            Err(CosignatureError::Note(NoteError::BadKeyName))
        ));
    }
}

#[test]
fn verifier_keys_round_trip_and_are_strict() {
    let w = witness("witness.example/w1", 2);
    let text = w.verifier().to_string();
    assert!(text.starts_with(&format!(
        "witness.example/w1+{:08x}+B",
        w.verifier().key_id()
    )));
    let parsed: CosignatureVerifier = text.parse().unwrap();
    assert_eq!(&parsed, w.verifier());
    assert_eq!(
        format!("{parsed:?}"),
        format!("CosignatureVerifier({text})")
    );

    let key = *w.verifier().public_key();
    let vkey = |ty: u8, name: &str, id: u32| {
        let mut k = vec![ty];
        k.extend_from_slice(&key);
        format!("{name}+{id:08x}+{}", STANDARD.encode(k))
    };
    // A plain note key (0x01) and an ML-DSA-44 cosignature key (0x06) are other types.
    let note_vkey = vkey(
        0x01,
        "witness.example/w1",
        key_id("witness.example/w1", &key),
    );
    assert_eq!(
        note_vkey.parse::<CosignatureVerifier>(),
        Err(CosignatureError::UnsupportedKeyType { found: 0x01 })
    );
    assert_eq!(
        vkey(0x06, "witness.example/w1", 0).parse::<CosignatureVerifier>(),
        Err(CosignatureError::UnsupportedKeyType { found: 0x06 })
    );
    // The id must match the name and the key.
    assert_eq!(
        vkey(0x04, "witness.example/w2", w.verifier().key_id()).parse::<CosignatureVerifier>(),
        Err(CosignatureError::VerifierKeyIdMismatch)
    );
    let id = format!("{:08x}", w.verifier().key_id());
    for bad in [
        text.replacen(&id, &id.to_uppercase(), 1),
        text.replacen(&id, &id[1..], 1),
        text.replacen('+', "-", 1),
        text.trim_end_matches('=').to_owned(),
        format!("{text}AA"),
        "witness.example/w1".to_owned(),
    ] {
        if bad == text {
            continue;
        }
        assert!(bad.parse::<CosignatureVerifier>().is_err(), "{bad:?}");
    }
    assert_eq!(
        "with space+00000000+BA==".parse::<CosignatureVerifier>(),
        Err(CosignatureError::Note(NoteError::BadKeyName))
    );
}

#[test]
fn weak_keys_are_refused() {
    use curve25519_dalek::edwards::CompressedEdwardsY;
    // The identity (y = 1), of small order.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(check_public_key(&identity), Err(WeakKey::SmallOrder));
    // y = 0: a point of order 4.
    assert_eq!(check_public_key(&[0; 32]), Err(WeakKey::SmallOrder));
    // y = 2 is no point of the curve.
    let mut two = [0u8; 32];
    two[0] = 2;
    assert_eq!(check_public_key(&two), Err(WeakKey::NotAPoint));
    // y = 3 written as y + p = 2^255 - 16: a point not of small order, spelled
    // non-canonically.
    let mut non_canonical = [0xff; 32];
    non_canonical[0] = 0xf0;
    non_canonical[31] = 0x7f;
    let point = CompressedEdwardsY(non_canonical).decompress().unwrap();
    assert!(!point.is_small_order());
    assert_ne!(point.compress().to_bytes(), non_canonical);
    assert_eq!(check_public_key(&non_canonical), Err(WeakKey::NonCanonical));
    // And in every constructor.
    assert_eq!(
        CosignatureVerifier::new("w", identity),
        Err(CosignatureError::WeakKey(WeakKey::SmallOrder))
    );
    let mut k = vec![COSIGNATURE_TYPE];
    k.extend_from_slice(&identity);
    let vkey = format!(
        "w+{:08x}+{}",
        cosignature_key_id("w", &identity),
        STANDARD.encode(k)
    );
    assert_eq!(
        vkey.parse::<CosignatureVerifier>(),
        Err(CosignatureError::WeakKey(WeakKey::SmallOrder))
    );
    // A real key passes.
    assert_eq!(
        check_public_key(witness("w", 9).verifier().public_key()),
        Ok(())
    );
}

struct Mismatched;

impl Ed25519Signer for Mismatched {
    fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        *witness("w", 1).verifier().public_key()
    }
    fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        SigningKey::from_bytes(&[2; 32]).sign_bytes(message)
    }
}

trait SignBytes {
    fn sign_bytes(&self, message: &[u8]) -> [u8; SIGNATURE_LEN];
}

impl SignBytes for SigningKey {
    fn sign_bytes(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        ed25519_dalek::Signer::sign(self, message).to_bytes()
    }
}

#[test]
fn a_signer_whose_key_does_not_match_is_refused() {
    assert_eq!(
        CosignatureSigner::new("w", Box::new(Mismatched)).map(|_| ()),
        Err(CosignatureError::SignerMismatch)
    );
    let debug = format!("{:?}", witness("w", 1));
    assert!(debug.starts_with("CosignatureSigner(w+"), "{debug}");
}

#[test]
fn quorum_counts_distinct_known_witnesses_and_ignores_the_rest() {
    let w1 = witness("witness.example/w1", 11);
    let w2 = witness("witness.example/w2", 12);
    let w3 = witness("witness.example/w3", 13);
    let stranger = witness("witness.example/stranger", 14);
    let known = [
        w1.verifier().clone(),
        w2.verifier().clone(),
        w3.verifier().clone(),
    ];
    let mut note = log_note(CHECKPOINT);
    note.push_str(&w1.sign(100, CHECKPOINT).unwrap());
    note.push_str(&stranger.sign(100, CHECKPOINT).unwrap());
    note.push_str(&w2.sign(200, CHECKPOINT).unwrap());
    // w1 again, later: counted once, with the later time.
    note.push_str(&w1.sign(300, CHECKPOINT).unwrap());

    let verified = verify_cosignatures(&note, &known, 2).unwrap();
    let got: Vec<(&str, u64)> = verified
        .iter()
        .map(|v| (v.witness().name(), v.timestamp()))
        .collect();
    assert_eq!(
        got,
        [("witness.example/w1", 300), ("witness.example/w2", 200)]
    );
    assert_eq!(verified[0].witness(), w1.verifier());

    assert_eq!(
        verify_cosignatures(&note, &known, 3),
        Err(CosignatureError::BelowThreshold {
            threshold: 3,
            verified: 2,
            failed: vec![]
        })
    );
    assert_eq!(
        verify_cosignatures(&note, &known, 4),
        Err(CosignatureError::ThresholdUnreachable {
            threshold: 4,
            witnesses: 3
        })
    );
    // Two keys under one name are one witness.
    let w1_again = witness("witness.example/w1", 15);
    assert_eq!(
        verify_cosignatures(
            &note,
            &[w1.verifier().clone(), w1_again.verifier().clone()],
            2
        ),
        Err(CosignatureError::ThresholdUnreachable {
            threshold: 2,
            witnesses: 1
        })
    );
}

#[test]
fn a_known_witness_line_that_fails_does_not_count_and_is_named() {
    let w1 = witness("witness.example/w1", 11);
    let w2 = witness("witness.example/w2", 12);
    let known = [w1.verifier().clone(), w2.verifier().clone()];
    let other_text = CHECKPOINT.replace("20852163", "1");
    let mut note = log_note(CHECKPOINT);
    note.push_str(&w1.sign(100, CHECKPOINT).unwrap());
    // w2 signed another checkpoint: its line does not verify on this one.
    note.push_str(&w2.sign(100, &other_text).unwrap());
    assert_eq!(verify_cosignatures(&note, &known, 1).unwrap().len(), 1);
    assert_eq!(
        verify_cosignatures(&note, &known, 2),
        Err(CosignatureError::BelowThreshold {
            threshold: 2,
            verified: 1,
            failed: vec!["witness.example/w2".to_owned()]
        })
    );
}

#[test]
fn ml_dsa_44_lines_are_ignored_not_refused() {
    let w1 = witness("witness.example/w1", 11);
    // An ML-DSA-44 cosignature line by a witness of the same name: its key id is computed
    // over type 0x06 and a 1312-byte key, its signature is 8 + 2420 bytes.
    let ml_dsa_key = vec![0x5a; 1312];
    let digest = crate::hash::sha256(&[b"witness.example/w1\n\x06", &ml_dsa_key]);
    let mut blob = digest.0[..4].to_vec();
    blob.extend_from_slice(&100u64.to_be_bytes());
    blob.extend_from_slice(&[0xa5; 2420]);
    let ml_dsa_line = format!("\u{2014} witness.example/w1 {}\n", STANDARD.encode(blob));

    let mut note = log_note(CHECKPOINT);
    note.push_str(&ml_dsa_line);
    assert_eq!(
        verify_cosignatures(&note, &[w1.verifier().clone()], 1),
        Err(CosignatureError::BelowThreshold {
            threshold: 1,
            verified: 0,
            failed: vec![]
        })
    );
    note.push_str(&w1.sign(100, CHECKPOINT).unwrap());
    assert_eq!(
        verify_cosignatures(&note, &[w1.verifier().clone()], 1)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_log_signature_is_never_a_cosignature_even_with_the_same_key_and_name() {
    // The log's key reused as a witness key under the log's own name: the type byte in the
    // key id keeps the log's line from counting as a cosignature.
    let seed = [1u8; 32];
    let log = NoteSigner::new(
        "example.com/behind-the-sofa",
        Box::new(ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap()),
    )
    .unwrap();
    let as_witness = CosignatureSigner::from_seed("example.com/behind-the-sofa", &seed).unwrap();
    let note = log.sign(CHECKPOINT).unwrap();
    assert_eq!(
        verify_cosignatures(&note, &[as_witness.verifier().clone()], 1),
        Err(CosignatureError::BelowThreshold {
            threshold: 1,
            verified: 0,
            failed: vec![]
        })
    );
}

#[test]
fn malformed_notes_are_refused() {
    let w1 = witness("witness.example/w1", 11);
    let known = [w1.verifier().clone()];
    assert!(matches!(
        verify_cosignatures("no signatures\n", &known, 0),
        Err(CosignatureError::Note(NoteError::NoSignatureBlock))
    ));
    let bad_line = format!("{CHECKPOINT}\n\u{2014} w1 !!!\n");
    assert!(matches!(
        verify_cosignatures(&bad_line, &known, 0),
        Err(CosignatureError::Note(NoteError::MalformedSignatureLine {
            line: 1
        }))
    ));
}

#[test]
fn dalek_verifies_our_cosignatures() {
    let w = witness("witness.example/w1", 21);
    let line = w.sign(42, CHECKPOINT).unwrap();
    let parsed = parse_signature_line(line.trim_end(), 1).unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(w.verifier().public_key()).unwrap();
    let signature = Signature::from_slice(&parsed.signature[8..]).unwrap();
    key.verify(&cosigned_message(42, CHECKPOINT), &signature)
        .unwrap();
}
