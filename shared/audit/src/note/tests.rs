use super::*;
use ring::signature::Ed25519KeyPair;

/// The example of Go's golang.org/x/mod/sumdb/note documentation: an interoperability check.
const GO_VERIFIER: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const GO_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

pub(crate) fn key_pair(seed: u8) -> Ed25519KeyPair {
    Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap()
}

pub(crate) fn signer(name: &str, seed: u8) -> NoteSigner {
    NoteSigner::new(name, Box::new(key_pair(seed))).unwrap()
}

#[test]
fn verifies_the_go_example() {
    let verifier: NoteVerifier = GO_VERIFIER.parse().unwrap();
    assert_eq!(verifier.to_string(), GO_VERIFIER);
    assert_eq!(verifier.key_id(), 0x530d903a);
    let opened = open(GO_NOTE, std::slice::from_ref(&verifier)).unwrap();
    assert_eq!(opened.text(), "This is an example message.\n");
    assert_eq!(opened.signed_by(), std::slice::from_ref(&verifier));
    let tampered = GO_NOTE.replace("example message", "example massage");
    assert!(matches!(
        open(&tampered, &[verifier]),
        Err(NoteError::BadSignature { .. })
    ));
}

#[test]
fn sign_then_open() {
    let s = signer("log.example/a", 1);
    let note = s.sign("hello\nworld\n").unwrap();
    assert!(note.starts_with("hello\nworld\n\n\u{2014} log.example/a "));
    let opened = open(&note, &[s.verifier().clone()]).unwrap();
    assert_eq!(opened.text(), "hello\nworld\n");
    // A text may contain blank lines; the last one separates the signatures.
    let note = s.sign("a\n\nb\n").unwrap();
    assert_eq!(
        open(&note, &[s.verifier().clone()]).unwrap().text(),
        "a\n\nb\n"
    );
    for bad in [
        "",
        "\n",
        "no newline",
        "ends blank\n\n",
        "tab\there\n",
        "cr\r\n",
    ] {
        assert!(s.sign(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn unknown_keys_are_ignored_and_known_failures_refuse() {
    let ours = signer("log.example/a", 1);
    let theirs = signer("witness.example/w", 2);
    let impostor = signer("log.example/a", 3);
    let text = "checkpoint\n";
    let mine = ours.sign(text).unwrap();
    let witness_line = theirs.sign(text).unwrap();
    let witness_line = witness_line.split("\n\n").nth(1).unwrap();
    let both = format!("{mine}{witness_line}");
    let known = [ours.verifier().clone()];
    assert_eq!(open(&both, &known).unwrap().signed_by(), &known);
    assert_eq!(
        open(&theirs.sign(text).unwrap(), &known),
        Err(NoteError::NoKnownSignature)
    );
    // Same name, other key: another key id, so unknown, so ignored.
    assert_eq!(
        open(&impostor.sign(text).unwrap(), &known),
        Err(NoteError::NoKnownSignature)
    );
    // A known key whose signature fails refuses the note, even beside a good one.
    let good_sig = mine.split("\n\n").nth(1).unwrap();
    let other_text = ours.sign("other\n").unwrap();
    let bad_sig = other_text.split("\n\n").nth(1).unwrap();
    let mixed = format!("{text}\n{good_sig}{bad_sig}");
    assert!(matches!(
        open(&mixed, &known),
        Err(NoteError::BadSignature { .. })
    ));
}

#[test]
fn parsing_is_strict() {
    let s = signer("log.example/a", 1);
    let note = s.sign("body\n").unwrap();
    let known = [s.verifier().clone()];
    assert!(open(&note, &known).is_ok());
    let sig_line = note.split("\n\n").nth(1).unwrap().to_owned();
    let blob = sig_line.trim_end().rsplit(' ').next().unwrap().to_owned();
    let cases: Vec<(String, &str)> = vec![
        (note.replace("\n\n", "\n"), "no blank line"),
        (note.trim_end().to_owned(), "no final newline"),
        (note.replace('\u{2014}', "-"), "hyphen for em dash"),
        (note.replace("\u{2014} ", "\u{2014}  "), "two spaces"),
        (
            note.replace("log.example/a ", "log.example/a  "),
            "two spaces after name",
        ),
        (note.replace('\n', "\r\n"), "CRLF"),
        (format!("{note}\n"), "trailing blank line"),
        (
            note.replace(&blob, blob.trim_end_matches('=')),
            "unpadded base64",
        ),
        (format!("\n\n{sig_line}"), "empty text"),
        (
            format!("body\n\n{sig_line}\u{2014} x AAAA\n"),
            "signature too short",
        ),
    ];
    for (bad, why) in cases {
        assert!(Note::parse(&bad).is_err(), "accepted: {why}");
    }
    // Non-canonical base64: the last character carries stray low bits.
    let mut chars: Vec<char> = blob.chars().collect();
    let last = chars.iter().rposition(|c| *c != '=').unwrap();
    chars[last] = match chars[last] {
        'A' => 'B',
        'Q' => 'R',
        'g' => 'h',
        'w' => 'x',
        c => c,
    };
    let stray: String = chars.into_iter().collect();
    if stray != blob {
        assert!(
            Note::parse(&note.replace(&blob, &stray)).is_err(),
            "stray bits"
        );
    }
    assert!(matches!(
        Note::from_bytes(&vec![b'a'; MAX_NOTE_LEN + 1]),
        Err(NoteError::TooLarge { .. })
    ));
    assert_eq!(Note::from_bytes(b"\xff\n\n"), Err(NoteError::NotUtf8));
    let many = format!("body\n\n{}", sig_line.repeat(MAX_SIGNATURES + 1));
    assert_eq!(Note::parse(&many), Err(NoteError::TooManySignatures));
    let max = format!("body\n\n{}", sig_line.repeat(MAX_SIGNATURES));
    assert_eq!(
        open(&max, &known).unwrap().signed_by().len(),
        MAX_SIGNATURES
    );
}

#[test]
fn verifier_keys_are_strict() {
    let v = signer("log.example/a", 1).verifier().clone();
    let text = v.to_string();
    assert_eq!(text.parse::<NoteVerifier>().unwrap(), v);
    let (name, rest) = text.split_once('+').unwrap();
    let (id, key) = rest.split_once('+').unwrap();
    let wrong_id = format!("{name}+{:08x}+{key}", v.key_id() ^ 1);
    assert_eq!(
        wrong_id.parse::<NoteVerifier>(),
        Err(NoteError::VerifierKeyIdMismatch)
    );
    let upper = format!("{name}+{}+{key}", id.to_uppercase());
    if upper != text {
        assert!(upper.parse::<NoteVerifier>().is_err());
    }
    assert!(format!("{name}+{id}").parse::<NoteVerifier>().is_err());
    assert!(format!("{text}+x").parse::<NoteVerifier>().is_err());
    assert!(format!("a b+{id}+{key}").parse::<NoteVerifier>().is_err());
    // Key type 0x02 (ECDSA) is not ours.
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap();
    raw[0] = 0x02;
    let ecdsa = format!(
        "{name}+{id}+{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    );
    assert_eq!(
        ecdsa.parse::<NoteVerifier>(),
        Err(NoteError::UnsupportedKeyType)
    );
}

#[test]
fn verifier_keys_whose_base64_holds_a_plus_round_trip() {
    // Standard base64 uses '+': the key part may contain it, the name never does.
    let mut with_plus = 0;
    for seed in 0..64u8 {
        let v = signer("log.example/a", seed).verifier().clone();
        let text = v.to_string();
        with_plus += usize::from(text.matches('+').count() > 2);
        assert_eq!(text.parse::<NoteVerifier>().unwrap(), v, "{text}");
    }
    assert!(
        with_plus > 0,
        "no key of the sample has a '+' in its base64"
    );
}

struct Liar;

impl Ed25519Signer for Liar {
    fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        Ed25519Signer::public_key(&key_pair(1))
    }
    fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        Ed25519Signer::sign(&key_pair(2), message)
    }
}

#[test]
fn signer_must_match_its_public_key() {
    assert_eq!(
        NoteSigner::new("log.example/a", Box::new(Liar)).map(|_| ()),
        Err(NoteError::SignerMismatch)
    );
    assert_eq!(
        NoteSigner::new("bad name", Box::new(key_pair(1))).map(|_| ()),
        Err(NoteError::BadKeyName)
    );
}
