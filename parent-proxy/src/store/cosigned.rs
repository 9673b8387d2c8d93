//! Witness cosignatures kept beside the checkpoints they cosign, and the cosigned note they
//! make together.
//!
//! The parent cannot check a cosignature (which witnesses count is each client's choice, by
//! the witness keys it pins), so the store keeps any well-formed signature line a witness
//! answered with, one per witness key (name and key id) and checkpoint size. What it serves
//! is the checkpoint note as the enclave signed it, with those lines appended as more
//! signature lines: a C2SP signed note that verifiers of the log key read as before (they
//! ignore lines of keys they do not know), and that clients pinning witness keys check with
//! `ea_audit::cosignature::verify_cosignatures`.

use ea_audit::note::{Note, MAX_NOTE_LEN, MAX_SIGNATURES};

use super::StoreError;

/// One witness's cosignature line, parsed just enough to know whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CosignatureLine {
    /// The key name on the line (the witness's name).
    pub(crate) name: String,
    /// The key id on the line.
    pub(crate) key_id: u32,
    /// The line, `— <name> <base64>`, without its newline.
    pub(crate) line: String,
}

/// Parses one signature line (with or without its final newline): exactly one well-formed
/// C2SP signature line. Its signature is not checked: the store has no witness keys.
pub(crate) fn parse_line(line: &str) -> Result<CosignatureLine, StoreError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    // A note around the line is the one public parser of signature lines; a line holding a
    // newline would make two signatures and is refused below.
    let note = Note::parse(&format!("-\n\n{line}\n"))
        .map_err(|source| StoreError::BadCosignature { source })?;
    match note.signatures() {
        [signature] => Ok(CosignatureLine {
            name: signature.name.clone(),
            key_id: signature.key_id,
            line: line.to_owned(),
        }),
        _ => Err(StoreError::BadCosignature {
            source: ea_audit::note::NoteError::MalformedSignatureLine { line: 1 },
        }),
    }
}

/// Parses every line of `lines`, refusing the whole set if one is malformed.
pub(crate) fn parse_lines(lines: &[String]) -> Result<Vec<CosignatureLine>, StoreError> {
    lines.iter().map(|line| parse_line(line)).collect()
}

/// The checkpoint `note` with the cosignature `lines` appended as signature lines, in the
/// order given. A line whose key (name and key id) already signed the note is left out, and
/// lines stop before the note would exceed what a signed note may hold
/// ([`MAX_SIGNATURES`] lines, [`MAX_NOTE_LEN`] bytes), so the result always parses.
pub(crate) fn append_to_note<'a>(note: &str, lines: impl IntoIterator<Item = &'a str>) -> String {
    let Ok(parsed) = Note::parse(note) else {
        // INVARIANT: stored checkpoints parsed when they were appended; a damaged one is
        // served as it is, without cosignatures, and its readers refuse it.
        return note.to_owned();
    };
    let mut signers: Vec<(String, u32)> = parsed
        .signatures()
        .iter()
        .map(|s| (s.name.clone(), s.key_id))
        .collect();
    let mut out = note.to_owned();
    for line in lines {
        let Ok(cosignature) = parse_line(line) else {
            continue;
        };
        let key = (cosignature.name, cosignature.key_id);
        if signers.contains(&key) {
            continue;
        }
        if signers.len() >= MAX_SIGNATURES || out.len() + line.len() + 1 > MAX_NOTE_LEN {
            break;
        }
        out.push_str(&cosignature.line);
        out.push('\n');
        signers.push(key);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ea_audit::cosignature::{verify_cosignatures, CosignatureSigner};
    use ea_audit::note::NoteSigner;

    const TEXT: &str = "example.com/log\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    fn note() -> String {
        let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
        NoteSigner::new("example.com/log", Box::new(key))
            .unwrap()
            .sign(TEXT)
            .unwrap()
    }

    fn witness(seed: u8) -> CosignatureSigner {
        CosignatureSigner::from_seed(&format!("witness.example/w{seed}"), &[seed; 32]).unwrap()
    }

    #[test]
    fn lines_are_parsed_by_key_and_anything_else_is_refused() {
        let line = witness(1).sign(1_700_000_000, TEXT).unwrap();
        let parsed = parse_line(&line).unwrap();
        assert_eq!(parsed.name, "witness.example/w1");
        assert_eq!(parsed.key_id, witness(1).verifier().key_id());
        assert_eq!(parsed.line, line.trim_end());
        assert_eq!(parse_line(line.trim_end()).unwrap(), parsed);
        for bad in [
            String::new(),
            "not a signature line".to_owned(),
            format!("{line}{line}"),
            line.replace('=', ""),
            format!("{}\u{7}", line.trim_end()),
        ] {
            assert!(
                matches!(parse_line(&bad), Err(StoreError::BadCosignature { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_cosigned_note_verifies_and_skips_what_is_already_there() {
        let (one, two) = (witness(1), witness(2));
        let lines = [
            one.sign(1_700_000_000, TEXT).unwrap(),
            two.sign(1_700_000_001, TEXT).unwrap(),
        ];
        let note = note();
        let cosigned = append_to_note(&note, lines.iter().map(String::as_str));
        assert!(cosigned.starts_with(&note));
        let verified = verify_cosignatures(
            &cosigned,
            &[one.verifier().clone(), two.verifier().clone()],
            2,
        )
        .unwrap();
        assert_eq!(verified.len(), 2);
        // Appending again changes nothing: the keys already signed.
        assert_eq!(
            append_to_note(&cosigned, lines.iter().map(String::as_str)),
            cosigned
        );
        // The log's own signature line is never added twice either.
        let log_line = note.lines().last().unwrap();
        assert_eq!(append_to_note(&note, [log_line]), note);
    }

    #[test]
    fn a_cosigned_note_never_exceeds_the_signature_limit() {
        let note = note();
        let lines: Vec<String> = (1..=40)
            .map(|seed| witness(seed).sign(1_700_000_000, TEXT).unwrap())
            .collect();
        let cosigned = append_to_note(&note, lines.iter().map(String::as_str));
        let parsed = Note::parse(&cosigned).unwrap();
        assert_eq!(parsed.signatures().len(), MAX_SIGNATURES);
    }
}
