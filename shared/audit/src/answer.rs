//! Signed answers: the enclave's signature over every answer it gives to a signed request,
//! so that a client can tell the enclave's answers (reads, refusals and errors included) from
//! anything the parent makes up.
//!
//! The log key signs, with Ed25519, the bytes of [`AnswerStatement::message`]:
//!
//! ```text
//! "enclave-approvals/answer/v1\n"
//! u16 BE  length of the origin, then the origin (the log's, as in its checkpoints)
//! [32]    request hash: SHA-256 of the signed request's body bytes (what the principal signed)
//! u16 BE  HTTP status
//! [32]    SHA-256 of the answer's bytes (the HTTP body, exactly as sent)
//! u64 BE  tree size the answer was decided at (durable)
//! [32]    tree root at that size
//! u64 BE  the enclave's time, unix milliseconds
//! ```
//!
//! The domain line keeps an answer signature from ever being taken for a checkpoint (a note
//! signature signs text that starts with the origin) and the other way round. Hashing the
//! request's body rather than its envelope keeps the binding when a parent re-encodes the
//! envelope or flips an ES256 signature's `s`: the body is what the principal asked.
//!
//! It travels in the HTTP header [`ANSWER_HEADER`] as
//! `v1 size=<N> root=<base64> time=<ms> key=<index> sig=<base64>`, where `key` is the index
//! of the `enclave_start` record that attests the signing key (how a client finds a key it
//! has not seen yet).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::hash::{sha256, Hash};
use crate::note::{NoteVerifier, SIGNATURE_LEN};

/// The HTTP header that carries an answer's signature.
pub const ANSWER_HEADER: &str = "enclave-answer-signature";

/// The first bytes of every signed answer statement.
pub const ANSWER_DOMAIN: &[u8] = b"enclave-approvals/answer/v1\n";

/// Longest header value accepted (a valid one is about 200 bytes).
const MAX_HEADER_LEN: usize = 1024;

/// Why an answer signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// The header is not `v1 size=.. root=.. time=.. key=.. sig=..`.
    #[error("the answer signature header is malformed: {0}")]
    Malformed(String),
    /// The signature does not verify under the key: the answer, the request it claims to
    /// answer, or its tree head was altered, or another key signed it.
    #[error(
        "the answer's signature does not verify: the answer was altered on the way, or is not \
         the enclave's answer to this request"
    )]
    BadSignature,
}

/// What an answer signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerStatement<'a> {
    /// The log's origin.
    pub origin: &'a str,
    /// SHA-256 of the signed request's body bytes ([`request_hash`]).
    pub request_hash: Hash,
    /// The HTTP status.
    pub status: u16,
    /// The answer's bytes.
    pub body: &'a [u8],
    /// Tree size the answer was decided at.
    pub size: u64,
    /// Tree root at that size.
    pub root: Hash,
    /// The enclave's time, unix ms.
    pub time_ms: u64,
}

/// The hash a signed answer names its request by: SHA-256 of the request's body bytes (or,
/// for bytes that are not a signed request envelope at all, of those bytes).
pub fn request_hash(body: &[u8]) -> Hash {
    sha256(&[body])
}

impl AnswerStatement<'_> {
    /// The bytes the log key signs.
    pub fn message(&self) -> Vec<u8> {
        message(
            self.origin,
            self.request_hash,
            self.status,
            sha256(&[self.body]),
            self.size,
            self.root,
            self.time_ms,
        )
    }
}

/// The statement's bytes, from the answer's hash.
fn message(
    origin: &str,
    request_hash: Hash,
    status: u16,
    body_hash: Hash,
    size: u64,
    root: Hash,
    time_ms: u64,
) -> Vec<u8> {
    {
        let origin = origin.as_bytes();
        // Origins are key names, a few dozen bytes; longer ones are cut at the length the
        // prefix can say, which no valid origin reaches.
        let origin_len = u16::try_from(origin.len()).unwrap_or(u16::MAX);
        let origin = origin.get(..usize::from(origin_len)).unwrap_or(origin);
        let mut message = Vec::with_capacity(ANSWER_DOMAIN.len() + origin.len() + 150);
        message.extend_from_slice(ANSWER_DOMAIN);
        message.extend_from_slice(&origin_len.to_be_bytes());
        message.extend_from_slice(origin);
        message.extend_from_slice(request_hash.as_bytes());
        message.extend_from_slice(&status.to_be_bytes());
        message.extend_from_slice(body_hash.as_bytes());
        message.extend_from_slice(&size.to_be_bytes());
        message.extend_from_slice(root.as_bytes());
        message.extend_from_slice(&time_ms.to_be_bytes());
        message
    }
}

/// An answer's signature as the header carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerSignature {
    /// Tree size the answer was decided at.
    pub size: u64,
    /// Tree root at that size.
    pub root: Hash,
    /// The enclave's time, unix ms.
    pub time_ms: u64,
    /// Index of the `enclave_start` record that attests the signing key.
    pub key_index: u64,
    /// The Ed25519 signature over the statement.
    pub signature: [u8; SIGNATURE_LEN],
}

impl AnswerSignature {
    /// The header value.
    pub fn to_header(&self) -> String {
        format!(
            "v1 size={} root={} time={} key={} sig={}",
            self.size,
            STANDARD.encode(self.root.as_bytes()),
            self.time_ms,
            self.key_index,
            STANDARD.encode(self.signature)
        )
    }

    /// Parses a header value; every field exactly once, in any order.
    pub fn from_header(value: &str) -> Result<Self, AnswerError> {
        let malformed = |why: &str| AnswerError::Malformed(why.to_owned());
        if value.len() > MAX_HEADER_LEN {
            return Err(malformed("longer than any valid signature"));
        }
        let mut parts = value.split(' ');
        if parts.next() != Some("v1") {
            return Err(malformed("it does not start with the version v1"));
        }
        let (mut size, mut root, mut time, mut key, mut sig) = (None, None, None, None, None);
        for part in parts {
            let (name, field) = part
                .split_once('=')
                .ok_or_else(|| malformed("a field is not name=value"))?;
            let slot = match name {
                "size" => &mut size,
                "root" => &mut root,
                "time" => &mut time,
                "key" => &mut key,
                "sig" => &mut sig,
                other => return Err(AnswerError::Malformed(format!("unknown field {other:?}"))),
            };
            if slot.replace(field).is_some() {
                return Err(AnswerError::Malformed(format!("{name} appears twice")));
            }
        }
        let number = |field: Option<&str>, name: &str| -> Result<u64, AnswerError> {
            let field =
                field.ok_or_else(|| AnswerError::Malformed(format!("{name} is missing")))?;
            if field.is_empty() || (field.len() > 1 && field.starts_with('0')) {
                return Err(AnswerError::Malformed(format!(
                    "{name} is not a canonical number"
                )));
            }
            field
                .parse()
                .map_err(|_| AnswerError::Malformed(format!("{name} is not a number")))
        };
        let bytes = |field: Option<&str>, name: &str| -> Result<Vec<u8>, AnswerError> {
            let field =
                field.ok_or_else(|| AnswerError::Malformed(format!("{name} is missing")))?;
            STANDARD
                .decode(field)
                .map_err(|_| AnswerError::Malformed(format!("{name} is not base64")))
        };
        let root: [u8; 32] = bytes(root, "root")?
            .try_into()
            .map_err(|_| malformed("root is not 32 bytes"))?;
        let signature: [u8; SIGNATURE_LEN] = bytes(sig, "sig")?
            .try_into()
            .map_err(|_| malformed("sig is not 64 bytes"))?;
        Ok(Self {
            size: number(size, "size")?,
            root: Hash(root),
            time_ms: number(time, "time")?,
            key_index: number(key, "key")?,
            signature,
        })
    }

    /// Checks the signature over the answer `status`/`body` to the request of
    /// `request_hash` in the log `origin`, under `key`.
    pub fn verify(
        &self,
        key: &NoteVerifier,
        origin: &str,
        request_hash: Hash,
        status: u16,
        body: &[u8],
    ) -> Result<(), AnswerError> {
        let statement = AnswerStatement {
            origin,
            request_hash,
            status,
            body,
            size: self.size,
            root: self.root,
            time_ms: self.time_ms,
        };
        if key.verifies(&statement.message(), &self.signature) {
            Ok(())
        } else {
            Err(AnswerError::BadSignature)
        }
    }

    /// [`AnswerSignature::verify`] from the SHA-256 of the answer's bytes rather than the
    /// bytes: for evidence kept without the answer (a trust file's remembered checkpoint).
    pub fn verify_hashed(
        &self,
        key: &NoteVerifier,
        origin: &str,
        request_hash: Hash,
        status: u16,
        body_hash: Hash,
    ) -> Result<(), AnswerError> {
        let message = message(
            origin,
            request_hash,
            status,
            body_hash,
            self.size,
            self.root,
            self.time_ms,
        );
        if key.verifies(&message, &self.signature) {
            Ok(())
        } else {
            Err(AnswerError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use ring::signature::{Ed25519KeyPair, KeyPair as _};

    use super::*;

    fn key() -> (Ed25519KeyPair, NoteVerifier) {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
        let public: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
        let verifier = NoteVerifier::new("enclave-approvals/0011223344556677", public).unwrap();
        (pair, verifier)
    }

    fn signed(pair: &Ed25519KeyPair, statement: &AnswerStatement<'_>) -> AnswerSignature {
        let signature: [u8; 64] = pair.sign(&statement.message()).as_ref().try_into().unwrap();
        AnswerSignature {
            size: statement.size,
            root: statement.root,
            time_ms: statement.time_ms,
            key_index: 1,
            signature,
        }
    }

    fn statement(body: &[u8]) -> AnswerStatement<'_> {
        AnswerStatement {
            origin: "enclave-approvals/0011223344556677",
            request_hash: request_hash(b"request body"),
            status: 200,
            body,
            size: 42,
            root: Hash([9; 32]),
            time_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn a_signature_round_trips_through_its_header_and_verifies() {
        let (pair, verifier) = key();
        let statement = statement(b"{\"ok\":true}");
        let signature = signed(&pair, &statement);
        let parsed = AnswerSignature::from_header(&signature.to_header()).unwrap();
        assert_eq!(parsed, signature);
        parsed
            .verify(
                &verifier,
                statement.origin,
                statement.request_hash,
                200,
                statement.body,
            )
            .unwrap();
    }

    #[test]
    fn any_change_to_what_is_signed_is_refused() {
        let (pair, verifier) = key();
        let statement = statement(b"{\"ok\":true}");
        let signature = signed(&pair, &statement);
        let origin = statement.origin;
        let hash = statement.request_hash;
        let refused = |s: &AnswerSignature, origin: &str, hash: Hash, status: u16, body: &[u8]| {
            assert_eq!(
                s.verify(&verifier, origin, hash, status, body),
                Err(AnswerError::BadSignature)
            );
        };
        refused(&signature, origin, hash, 200, b"{\"ok\":false}");
        refused(&signature, origin, hash, 201, b"{\"ok\":true}");
        refused(
            &signature,
            origin,
            request_hash(b"other"),
            200,
            b"{\"ok\":true}",
        );
        refused(
            &signature,
            "enclave-approvals/ffffffffffffffff",
            hash,
            200,
            b"{\"ok\":true}",
        );
        for change in 0..3 {
            let mut altered = signature.clone();
            match change {
                0 => altered.size += 1,
                1 => altered.root = Hash([8; 32]),
                _ => altered.time_ms += 1,
            }
            refused(&altered, origin, hash, 200, b"{\"ok\":true}");
        }
    }

    #[test]
    fn a_checkpoint_signature_is_not_an_answer_signature() {
        // The domain line differs from any note text (which starts with the origin).
        let message = statement(b"").message();
        assert!(message.starts_with(ANSWER_DOMAIN));
        assert!(!message.starts_with(b"enclave-approvals/0"));
    }

    #[test]
    fn malformed_headers_are_refused_by_what_is_wrong() {
        let (pair, _) = key();
        let good = signed(&pair, &statement(b"x")).to_header();
        for (header, why) in [
            ("", "version"),
            ("v2 size=1", "version"),
            (&good.replace("size=42", "size=042"), "canonical"),
            (&good.replace("size=42 ", ""), "size is missing"),
            (&format!("{good} size=1"), "twice"),
            (&format!("{good} extra=1"), "unknown field"),
            (&good.replace(" time=", " time"), "name=value"),
            (&format!("{good}{}", "A".repeat(2000)), "longer"),
        ] {
            let error = AnswerSignature::from_header(header)
                .unwrap_err()
                .to_string();
            assert!(error.contains(why), "{header:?}: {error}");
        }
    }
}
