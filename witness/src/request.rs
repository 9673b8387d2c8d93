//! The body of an `add-checkpoint` request, parsed strictly:
//!
//! ```text
//! old <size>\n
//! <base64 hash>\n          (zero to 63 consistency proof lines)
//! \n
//! <checkpoint signed note>
//! ```

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ea_audit::hash::Hash;

/// The largest request body accepted, in bytes: a checkpoint with a few signatures and 63
/// proof lines take under 4 KiB.
pub const MAX_BODY_LEN: usize = 64 * 1024;
/// The most consistency proof lines a client may send (the spec's limit).
pub const MAX_PROOF_LEN: usize = 63;

/// An `add-checkpoint` request: the size the client believes the witness has, a consistency
/// proof from that size to the checkpoint's, and the checkpoint note (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The old size.
    pub old: u64,
    /// The consistency proof, in RFC 9162 order.
    pub proof: Vec<Hash>,
    /// The checkpoint signed note, as sent.
    pub note: String,
}

/// Why a request body is malformed (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Longer than [`MAX_BODY_LEN`].
    #[error("the request body is at most {MAX_BODY_LEN} bytes, got {len}")]
    TooLarge {
        /// The length given.
        len: usize,
    },
    /// Not UTF-8.
    #[error("the request body is not UTF-8 text")]
    NotUtf8,
    /// The first line is not `old <decimal>` without leading zeros.
    #[error("the first line must be `old <size>`, the size in decimal without leading zeros")]
    BadOldLine,
    /// A proof line is not the canonical base64 of a 32-byte hash.
    #[error("consistency proof line {line} is not the base64 of a 32-byte hash")]
    BadProofLine {
        /// Which proof line, from 1.
        line: usize,
    },
    /// More than [`MAX_PROOF_LEN`] proof lines.
    #[error("a consistency proof has at most {MAX_PROOF_LEN} lines")]
    TooManyProofLines,
    /// No empty line before the checkpoint.
    #[error("no empty line separates the proof from the checkpoint")]
    NoCheckpoint,
}

/// Parses a request body.
pub fn parse(body: &[u8]) -> Result<AddCheckpoint, RequestError> {
    if body.len() > MAX_BODY_LEN {
        return Err(RequestError::TooLarge { len: body.len() });
    }
    let body = std::str::from_utf8(body).map_err(|_| RequestError::NotUtf8)?;
    let (first, mut rest) = body.split_once('\n').ok_or(RequestError::BadOldLine)?;
    let old = first
        .strip_prefix("old ")
        .and_then(parse_decimal)
        .ok_or(RequestError::BadOldLine)?;
    let mut proof = Vec::new();
    loop {
        let (line, after) = rest.split_once('\n').ok_or(RequestError::NoCheckpoint)?;
        rest = after;
        if line.is_empty() {
            break;
        }
        if proof.len() == MAX_PROOF_LEN {
            return Err(RequestError::TooManyProofLines);
        }
        let number = proof.len() + 1;
        let hash = STANDARD
            .decode(line)
            .ok()
            .and_then(|bytes| Hash::from_slice(&bytes).ok())
            .ok_or(RequestError::BadProofLine { line: number })?;
        proof.push(hash);
    }
    Ok(AddCheckpoint {
        old,
        proof,
        note: rest.to_owned(),
    })
}

/// A decimal number without sign or leading zeros (`0` itself excepted) that fits in 64 bits.
fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical {
        text.parse().ok()
    } else {
        None
    }
}

/// The body of a request, as a client writes it (for tests and tools).
pub fn encode(old: u64, proof: &[Hash], note: &str) -> String {
    let mut body = format!("old {old}\n");
    for hash in proof {
        body.push_str(&STANDARD.encode(hash.0));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use ea_audit::hash::leaf_hash;

    const NOTE: &str = "origin\n1\nroot\n\n\u{2014} origin AAAA\n";

    #[test]
    fn round_trip() {
        let proof = vec![leaf_hash(b"a"), leaf_hash(b"b")];
        let body = encode(20852014, &proof, NOTE);
        assert_eq!(
            parse(body.as_bytes()),
            Ok(AddCheckpoint {
                old: 20852014,
                proof,
                note: NOTE.to_owned()
            })
        );
        let empty = encode(0, &[], NOTE);
        assert_eq!(empty, format!("old 0\n\n{NOTE}"));
        assert_eq!(parse(empty.as_bytes()).unwrap().proof, vec![]);
    }

    #[test]
    fn the_spec_example_parses() {
        let body = "old 20852014\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\njrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
        let parsed = parse(body.as_bytes()).unwrap();
        assert_eq!(parsed.old, 20852014);
        assert_eq!(parsed.proof.len(), 4);
        assert!(parsed
            .note
            .starts_with("example.com/behind-the-sofa\n20852163\n"));
    }

    #[test]
    fn malformed_bodies() {
        let hash = STANDARD.encode([7u8; 32]);
        let cases: Vec<(String, RequestError)> = vec![
            (format!("old 01\n\n{NOTE}"), RequestError::BadOldLine),
            (format!("old -1\n\n{NOTE}"), RequestError::BadOldLine),
            (format!("old +1\n\n{NOTE}"), RequestError::BadOldLine),
            (format!("old  1\n\n{NOTE}"), RequestError::BadOldLine),
            (format!("old\n\n{NOTE}"), RequestError::BadOldLine),
            (format!("Old 1\n\n{NOTE}"), RequestError::BadOldLine),
            (
                format!("old 18446744073709551616\n\n{NOTE}"),
                RequestError::BadOldLine,
            ),
            ("old 1".to_owned(), RequestError::BadOldLine),
            (
                format!("old 1\n{hash}\n{}\n\n{NOTE}", hash.trim_end_matches('=')),
                RequestError::BadProofLine { line: 2 },
            ),
            (
                format!("old 1\n{}\n\n{NOTE}", STANDARD.encode([7u8; 31])),
                RequestError::BadProofLine { line: 1 },
            ),
            (format!("old 1\n{hash}\n"), RequestError::NoCheckpoint),
            (format!("old 1\n{hash}"), RequestError::NoCheckpoint),
        ];
        for (body, error) in cases {
            assert_eq!(parse(body.as_bytes()), Err(error), "{body:?}");
        }
        assert_eq!(parse(&[0xff, b'\n']), Err(RequestError::NotUtf8));
        let long = vec![b'a'; MAX_BODY_LEN + 1];
        assert_eq!(
            parse(&long),
            Err(RequestError::TooLarge {
                len: MAX_BODY_LEN + 1
            })
        );
    }

    #[test]
    fn at_most_63_proof_lines() {
        let proof = vec![leaf_hash(b"x"); MAX_PROOF_LEN];
        assert_eq!(
            parse(encode(1, &proof, NOTE).as_bytes())
                .unwrap()
                .proof
                .len(),
            63
        );
        let proof = vec![leaf_hash(b"x"); MAX_PROOF_LEN + 1];
        assert_eq!(
            parse(encode(1, &proof, NOTE).as_bytes()),
            Err(RequestError::TooManyProofLines)
        );
    }
}
