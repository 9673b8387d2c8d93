//! Signed client requests (SPEC-trust section 2): the envelope, signing, verification,
//! freshness and replay protection.
//!
//! ```text
//! SignedRequest = {body: bstr (CBOR of RequestBody), key_id, alg: "ES256"|"Ed25519", sig: bstr}
//! RequestBody   = {v: 1, principal, nonce (16 random bytes), issued_at (unix ms), operation}
//! signature over "enclave-approvals/request/v1\n" || body
//! ```
//!
//! The body travels as the exact bytes that were signed, so the enclave and any later auditor
//! check the signature over those bytes, never over a re-encoding.
//!
//! ES256 signatures are low-S: `s` is at most `n / 2` (`n` the order of P-256). ECDSA
//! accepts `(r, s)` and `(r, n - s)` alike, so without the rule anyone relaying a request
//! could make a second valid envelope of it. [`RequestSigner`] writes the low form and
//! [`check_request_signature`], the enclave's rule, refuses the high one
//! ([`SignedRequestError::HighS`], `high_s_signature`). Ed25519 signatures have one valid
//! form already (ring requires `S` below the group order and `R` canonical).

use std::collections::{HashSet, VecDeque};

use ring::rand::SecureRandom;
use ring::signature::{self, KeyPair};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What a signature covers before the body bytes.
pub const REQUEST_SIGNING_DOMAIN: &[u8] = b"enclave-approvals/request/v1\n";

/// The version of [`RequestBody`] this build writes and accepts.
pub const REQUEST_BODY_VERSION: u8 = 1;

/// How far `issued_at` may be from the enclave's clock, either way.
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// Largest encoded signed request accepted, in bytes.
pub const MAX_SIGNED_REQUEST_LEN: usize = 256 * 1024;

/// Bytes of a request nonce.
pub const NONCE_LEN: usize = 16;

/// A signature algorithm for client requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SignatureAlgorithm {
    /// ECDSA P-256 with SHA-256; signature is the 64-byte `r || s`; public key the 65-byte
    /// uncompressed SEC1 point.
    ES256,
    /// Ed25519; 64-byte signature; 32-byte public key.
    Ed25519,
}

impl SignatureAlgorithm {
    /// The name used on the wire and in files.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureAlgorithm::ES256 => "ES256",
            SignatureAlgorithm::Ed25519 => "Ed25519",
        }
    }

    fn public_key_len(self) -> usize {
        match self {
            SignatureAlgorithm::ES256 => 65,
            SignatureAlgorithm::Ed25519 => 32,
        }
    }
}

impl std::fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SignatureAlgorithm {
    type Err = SignedRequestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ES256" => Ok(SignatureAlgorithm::ES256),
            "Ed25519" => Ok(SignatureAlgorithm::Ed25519),
            other => Err(SignedRequestError::UnknownAlgorithm(other.to_owned())),
        }
    }
}

/// The envelope a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRequest {
    /// The CBOR encoding of a [`RequestBody`], exactly as signed.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// Which of the principal's keys signed.
    pub key_id: String,
    /// The signature algorithm.
    pub alg: SignatureAlgorithm,
    /// The signature over [`REQUEST_SIGNING_DOMAIN`] followed by `body`.
    #[serde(with = "serde_bytes")]
    pub sig: Vec<u8>,
}

/// What a principal asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestBody<Op> {
    /// Always [`REQUEST_BODY_VERSION`].
    pub v: u8,
    /// The principal making the request.
    pub principal: String,
    /// 16 random bytes; a nonce is accepted once within the freshness window.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// When the client made the request, unix milliseconds.
    pub issued_at: u64,
    /// The operation.
    pub operation: Op,
}

/// Why a signed request is refused. Each has its own code for clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedRequestError {
    /// Too many bytes.
    #[error("signed request of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size received.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The envelope or body is not the CBOR it should be.
    #[error("malformed signed request: {0}")]
    Malformed(String),
    /// A body version this build does not accept.
    #[error("request body version {0} is not supported (expected {REQUEST_BODY_VERSION})")]
    UnsupportedVersion(u8),
    /// The nonce is not 16 bytes.
    #[error("the nonce must be {NONCE_LEN} bytes, not {0}")]
    BadNonce(usize),
    /// An algorithm name this build does not know.
    #[error("unknown signature algorithm {0:?} (use ES256 or Ed25519)")]
    UnknownAlgorithm(String),
    /// No key with this id belongs to the principal.
    #[error("key {key_id:?} is not a key of principal {principal:?}")]
    UnknownKey {
        /// The principal named in the body.
        principal: String,
        /// The key id of the envelope.
        key_id: String,
    },
    /// The key was revoked.
    #[error("key {key_id:?} of principal {principal:?} is revoked")]
    RevokedKey {
        /// The principal.
        principal: String,
        /// The key id.
        key_id: String,
    },
    /// The envelope's algorithm is not the key's.
    #[error("key {key_id:?} is an {expected} key, but the request says {got}")]
    AlgorithmMismatch {
        /// The key id.
        key_id: String,
        /// The key's algorithm.
        expected: SignatureAlgorithm,
        /// The envelope's algorithm.
        got: SignatureAlgorithm,
    },
    /// The signature does not verify.
    #[error("the signature does not verify with key {key_id:?}")]
    BadSignature {
        /// The key id.
        key_id: String,
    },
    /// An ES256 signature whose `s` is above `n / 2`: `(r, n - s)` is the same signature,
    /// and only that low form is accepted, so that a request has one valid envelope.
    #[error(
        "the ES256 signature by key {key_id:?} is high-S (s > n/2); only low-S signatures are \
         accepted: sign again with a current client, or replace s by n - s"
    )]
    HighS {
        /// The key id.
        key_id: String,
    },
    /// `issued_at` is too far in the past.
    #[error("the request was issued {age_ms} ms ago; at most {MAX_CLOCK_SKEW_MS} ms is accepted")]
    Stale {
        /// How old it is.
        age_ms: u64,
    },
    /// `issued_at` is too far in the future.
    #[error("the request is dated {ahead_ms} ms in the future; at most {MAX_CLOCK_SKEW_MS} ms is accepted")]
    FromTheFuture {
        /// How far ahead it is.
        ahead_ms: u64,
    },
    /// The nonce was seen within the freshness window.
    #[error("this request (nonce) was already received; send a new request")]
    Replayed,
    /// The replay cache is full: refusing is safer than forgetting a nonce.
    #[error("too many requests within the freshness window ({capacity}); retry later")]
    ReplayCacheFull {
        /// The cache's capacity.
        capacity: usize,
    },
    /// A principal that requests may never claim.
    #[error("principal {0:?} cannot be claimed by a request")]
    ReservedPrincipal(String),
    /// The public key bytes are not a valid key of the algorithm.
    #[error("invalid {alg} public key: {reason}")]
    InvalidPublicKey {
        /// The algorithm.
        alg: SignatureAlgorithm,
        /// What is wrong.
        reason: &'static str,
    },
    /// The private key could not be used.
    #[error("invalid {alg} private key (expected PKCS#8)")]
    InvalidPrivateKey {
        /// The algorithm.
        alg: SignatureAlgorithm,
    },
    /// Signing failed.
    #[error("signing failed")]
    SigningFailed,
}

impl SignedRequestError {
    /// The error code clients see.
    pub fn code(&self) -> &'static str {
        match self {
            SignedRequestError::TooLarge { .. } => "request_too_large",
            SignedRequestError::Malformed(_) => "malformed_request",
            SignedRequestError::UnsupportedVersion(_) => "unsupported_request_version",
            SignedRequestError::BadNonce(_) => "bad_nonce",
            SignedRequestError::UnknownAlgorithm(_) => "unknown_algorithm",
            SignedRequestError::UnknownKey { .. } => "unknown_key",
            SignedRequestError::RevokedKey { .. } => "revoked_key",
            SignedRequestError::AlgorithmMismatch { .. } => "algorithm_mismatch",
            SignedRequestError::BadSignature { .. } => "bad_signature",
            SignedRequestError::HighS { .. } => "high_s_signature",
            SignedRequestError::Stale { .. } => "stale_request",
            SignedRequestError::FromTheFuture { .. } => "future_request",
            SignedRequestError::Replayed => "replayed_request",
            SignedRequestError::ReplayCacheFull { .. } => "replay_cache_full",
            SignedRequestError::ReservedPrincipal(_) => "reserved_principal",
            SignedRequestError::InvalidPublicKey { .. } => "invalid_public_key",
            SignedRequestError::InvalidPrivateKey { .. } => "invalid_private_key",
            SignedRequestError::SigningFailed => "signing_failed",
        }
    }
}

/// A principal's public key, as the directory holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublicKey {
    /// The algorithm.
    pub alg: SignatureAlgorithm,
    /// The key bytes (see [`SignatureAlgorithm`] for the format).
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

impl PublicKey {
    /// Checks the key's length and, for ES256, that it is an uncompressed point.
    pub fn new(alg: SignatureAlgorithm, bytes: Vec<u8>) -> Result<Self, SignedRequestError> {
        if bytes.len() != alg.public_key_len() {
            return Err(SignedRequestError::InvalidPublicKey {
                alg,
                reason: "wrong length",
            });
        }
        if alg == SignatureAlgorithm::ES256 && bytes.first() != Some(&0x04) {
            return Err(SignedRequestError::InvalidPublicKey {
                alg,
                reason: "not an uncompressed SEC1 point",
            });
        }
        Ok(Self { alg, bytes })
    }

    /// The key id: the first 16 bytes of SHA-256(algorithm name || 0x0A || key), in hex.
    /// Derived, so a key id can never point at a different key.
    pub fn key_id(&self) -> String {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(self.alg.as_str().as_bytes());
        context.update(b"\n");
        context.update(&self.bytes);
        let digest = context.finish();
        let prefix = digest.as_ref().get(..16).unwrap_or_default();
        prefix.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Verifies `sig` over the domain string and `body` with ring (for Ed25519 the
    /// cofactorless equation): whether the key's holder signed `body`. ring accepts both
    /// halves of an ES256 signature; new requests must also be low-S, which
    /// [`check_request_signature`] adds. Auditors re-checking old records use this alone:
    /// an older enclave accepted either half.
    pub fn verify(&self, body: &[u8], sig: &[u8]) -> bool {
        let algorithm: &dyn signature::VerificationAlgorithm = match self.alg {
            SignatureAlgorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            SignatureAlgorithm::Ed25519 => &signature::ED25519,
        };
        signature::UnparsedPublicKey::new(algorithm, &self.bytes)
            .verify(&signed_message(body), sig)
            .is_ok()
    }
}

/// Whether `sig` is an ES256 signature (`r || s`, both in range) whose `s` is above `n / 2`.
/// Bytes that are no ES256 signature at all are not high-S; they fail verification.
pub fn is_high_s(sig: &[u8]) -> bool {
    p256::ecdsa::Signature::from_slice(sig).is_ok_and(|sig| sig.normalize_s().is_some())
}

/// `sig` in low-S form (`s` replaced by `n - s` when it is high); other bytes as they are.
fn low_s(sig: &[u8]) -> Vec<u8> {
    p256::ecdsa::Signature::from_slice(sig)
        .ok()
        .and_then(|sig| sig.normalize_s())
        .map_or_else(|| sig.to_vec(), |low| low.to_bytes().to_vec())
}

/// The enclave's rule for a request's signature by `key`: an ES256 signature must be low-S
/// ([`SignedRequestError::HighS`]), and the signature must verify over the domain string and
/// the body ([`SignedRequestError::BadSignature`]), through `tables` when given (the same
/// verdicts as [`PublicKey::verify`], faster for Ed25519 keys that sign often).
pub fn check_request_signature(
    key: &PublicKey,
    request: &SignedRequest,
    tables: Option<&crate::key_tables::KeyTables>,
) -> Result<(), SignedRequestError> {
    if key.alg == SignatureAlgorithm::ES256 && is_high_s(&request.sig) {
        return Err(SignedRequestError::HighS {
            key_id: request.key_id.clone(),
        });
    }
    let verified = match tables {
        Some(tables) => tables.verify(key, &request.body, &request.sig),
        None => key.verify(&request.body, &request.sig),
    };
    if verified {
        Ok(())
    } else {
        Err(SignedRequestError::BadSignature {
            key_id: request.key_id.clone(),
        })
    }
}

/// What a signature is over: the domain string, then the body.
fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(REQUEST_SIGNING_DOMAIN.len() + body.len());
    message.extend_from_slice(REQUEST_SIGNING_DOMAIN);
    message.extend_from_slice(body);
    message
}

/// One signature to check with [`verify_many`].
#[derive(Debug, Clone, Copy)]
pub struct SignatureCheck<'a> {
    /// The key.
    pub key: &'a PublicKey,
    /// The signed body (without the domain string).
    pub body: &'a [u8],
    /// The signature.
    pub sig: &'a [u8],
}

/// Ed25519 signatures verified together.
const ED25519_BATCH: usize = 64;

/// Verifies many request signatures at once, for an auditor re-checking a log; the
/// verdicts come in the order of `checks`.
///
/// Ed25519 signatures are verified with ed25519-dalek's batch verification, in batches of
/// up to 64: about a third of the cost each of checking them one at a time. That batch
/// equation is *not* cofactored: with `P_i = [S_i]B - R_i - [k_i]A_i` it checks
/// `sum z_i P_i = 0` for 128-bit coefficients `z_i` derived from a transcript of the batch
/// (`S_i` must be canonical; `k_i` is hashed over `R_i`'s and the key's bytes as given, as
/// ring does; `R_i` is decoded even when not canonically encoded). So:
/// - every signature [`PublicKey::verify`] (ring, cofactorless, `R` compared as canonical
///   bytes) accepts passes any batch;
/// - a passing batch shows, except with a chance of about 2^-128, only that each `P_i` is
///   of small order, i.e. that each signature satisfies the cofactored equation
///   `[8][S]B = [8]R + [8][k]A`; not ring's equation, nor dalek's own single verification.
///   A signature whose `R` or key carries a small-order component, or whose `R` is not
///   canonically encoded, can pass one batch and fail another or alone, depending on its
///   coefficient. Only the key's holder can make one for a key not itself of small order
///   (and such keys are refused at registration, `ea_policy::PublicKey::check_encoding`).
///
/// A batch that fails, and a lone signature, are checked one signature at a time with
/// [`PublicKey::verify`] (ring, the enclave's rule): every refusal is ring's verdict, and
/// every acceptance is ring's too except, within a passing batch, for such a crafted
/// signature. ES256 signatures are checked one at a time, with ring (either half of `s`: this
/// checks who signed; the enclave's low-S rule for new requests is
/// [`check_request_signature`]).
pub fn verify_many(checks: &[SignatureCheck<'_>]) -> Vec<bool> {
    let mut verdicts = vec![false; checks.len()];
    // Ed25519 checks with their decoded key; a key decoded once per call (it costs a
    // sixth of a verification), and a key that is not a curve point fails its checks.
    let mut ed25519: Vec<(usize, Option<ed25519_dalek::VerifyingKey>)> = Vec::new();
    let mut decoded: Vec<(&[u8], Option<ed25519_dalek::VerifyingKey>)> = Vec::new();
    for (i, check) in checks.iter().enumerate() {
        match check.key.alg {
            SignatureAlgorithm::Ed25519 => {
                let bytes = check.key.bytes.as_slice();
                let key = match decoded.iter().find(|(known, _)| *known == bytes) {
                    Some((_, key)) => *key,
                    None => {
                        let key = <[u8; 32]>::try_from(bytes)
                            .ok()
                            .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok());
                        decoded.push((bytes, key));
                        key
                    }
                };
                ed25519.push((i, key));
            }
            SignatureAlgorithm::ES256 => {
                if let Some(verdict) = verdicts.get_mut(i) {
                    *verdict = check.key.verify(check.body, check.sig);
                }
            }
        }
    }
    let check_of =
        |&(i, key): &(usize, Option<ed25519_dalek::VerifyingKey>)| Some((checks.get(i)?, key?));
    for batch in ed25519.chunks(ED25519_BATCH) {
        let all_good = batch.len() > 1 && ed25519_batch(batch.iter().map(check_of));
        for entry in batch {
            let single = || {
                checks
                    .get(entry.0)
                    .is_some_and(|c| c.key.verify(c.body, c.sig))
            };
            let good = all_good || single();
            if let Some(verdict) = verdicts.get_mut(entry.0) {
                *verdict = good;
            }
        }
    }
    verdicts
}

/// Whether ed25519-dalek's (cofactorless, randomly weighted) batch equation holds for all
/// the checks, see [`verify_many`] for what that implies (`None`: a check whose key is not a
/// curve point, which fails the batch).
fn ed25519_batch<'a>(
    checks: impl IntoIterator<Item = Option<(&'a SignatureCheck<'a>, ed25519_dalek::VerifyingKey)>>,
) -> bool {
    let mut messages = Vec::new();
    let mut signatures = Vec::new();
    let mut keys = Vec::new();
    for check in checks {
        let Some((check, key)) = check else {
            return false;
        };
        let Ok(signature) = ed25519_dalek::Signature::from_slice(check.sig) else {
            return false;
        };
        messages.push(signed_message(check.body));
        signatures.push(signature);
        keys.push(key);
    }
    let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    !messages.is_empty() && ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

/// The principal, nonce and issue time of an encoded signed request, read in place.
///
/// For replaying a log quickly: [`NonceFields::read`] reads only the fields in the layout
/// [`encode_signed_request`] writes (the envelope's `body` first; in the body `v`,
/// `principal`, `nonce`, `issued_at` first, in that order) and checks nothing else, so it
/// suits requests already accepted once. Anything else gives `None`: decode it in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceFields<'a> {
    /// The principal making the request.
    pub principal: &'a str,
    /// Its nonce.
    pub nonce: &'a [u8],
    /// When the client made it, unix milliseconds.
    pub issued_at: u64,
}

impl<'a> NonceFields<'a> {
    /// Reads the fields; `None` when the request is not in the expected layout.
    pub fn read(request: &'a [u8]) -> Option<Self> {
        let mut envelope = CborCursor(request);
        (envelope.head()? == (MAJOR_MAP, 4)).then_some(())?;
        (envelope.text()? == "body").then_some(())?;
        let mut body = CborCursor(envelope.bytes()?);
        (body.head()? == (MAJOR_MAP, 5)).then_some(())?;
        (body.text()? == "v").then_some(())?;
        (body.head()? == (MAJOR_UNSIGNED, u64::from(REQUEST_BODY_VERSION))).then_some(())?;
        (body.text()? == "principal").then_some(())?;
        let principal = body.text()?;
        (body.text()? == "nonce").then_some(())?;
        let nonce = body.bytes()?;
        (nonce.len() == NONCE_LEN).then_some(())?;
        (body.text()? == "issued_at").then_some(())?;
        let (MAJOR_UNSIGNED, issued_at) = body.head()? else {
            return None;
        };
        Some(NonceFields {
            principal,
            nonce,
            issued_at,
        })
    }
}

const MAJOR_UNSIGNED: u8 = 0;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_MAP: u8 = 5;

/// The unread rest of some CBOR, read item head by item head (definite lengths only).
struct CborCursor<'a>(&'a [u8]);

impl<'a> CborCursor<'a> {
    fn take(&mut self, len: u64) -> Option<&'a [u8]> {
        let len = usize::try_from(len).ok()?;
        let (taken, rest) = (self.0.get(..len)?, self.0.get(len..)?);
        self.0 = rest;
        Some(taken)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        <[u8; N]>::try_from(self.take(N as u64)?).ok()
    }

    /// The next item's major type and argument.
    fn head(&mut self) -> Option<(u8, u64)> {
        let [initial] = self.array()?;
        let argument = match initial & 0x1f {
            small @ 0..=23 => u64::from(small),
            24 => u64::from(u8::from_be_bytes(self.array()?)),
            25 => u64::from(u16::from_be_bytes(self.array()?)),
            26 => u64::from(u32::from_be_bytes(self.array()?)),
            27 => u64::from_be_bytes(self.array()?),
            _ => return None,
        };
        Some((initial >> 5, argument))
    }

    fn text(&mut self) -> Option<&'a str> {
        let (MAJOR_TEXT, len) = self.head()? else {
            return None;
        };
        std::str::from_utf8(self.take(len)?).ok()
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let (MAJOR_BYTES, len) = self.head()? else {
            return None;
        };
        self.take(len)
    }
}

/// Decodes an envelope, bounded in size, refusing trailing bytes.
pub fn decode_signed_request(bytes: &[u8]) -> Result<SignedRequest, SignedRequestError> {
    if bytes.len() > MAX_SIGNED_REQUEST_LEN {
        return Err(SignedRequestError::TooLarge {
            size: bytes.len(),
            limit: MAX_SIGNED_REQUEST_LEN,
        });
    }
    decode_exact(bytes)
}

/// Whether `recorded` (a signed request as a record of the log carries it) is the request
/// `sent` (the envelope a client sent): the same body bytes, which hold the client's nonce,
/// and the same signature (ES256 compared in low-S form).
///
/// The envelope itself is not compared byte for byte: the parent relays it and may
/// re-encode its CBOR (another key order, longer length heads) or name the key by another
/// id, and the enclave still accepts it, since the signature covers the body only. A client
/// that took such a record for someone else's would report failure for a change that was
/// applied, and a retry with a fresh nonce would apply it twice. An older enclave accepted
/// `(r, n - s)` as well, hence the low-S comparison.
pub fn same_signed_request(recorded: &[u8], sent: &[u8]) -> bool {
    let (Ok(recorded), Ok(sent)) = (decode_signed_request(recorded), decode_signed_request(sent))
    else {
        return false;
    };
    let signature = |request: &SignedRequest| match sent.alg {
        SignatureAlgorithm::ES256 => low_s(&request.sig),
        SignatureAlgorithm::Ed25519 => request.sig.clone(),
    };
    recorded.body == sent.body && signature(&recorded) == signature(&sent)
}

/// Encodes an envelope.
pub fn encode_signed_request(request: &SignedRequest) -> Vec<u8> {
    encode(request)
}

/// Decodes the body of an envelope (after its signature was verified, or to find the principal
/// whose key verifies it), checking version and nonce length.
pub fn decode_request_body<Op: DeserializeOwned>(
    request: &SignedRequest,
) -> Result<RequestBody<Op>, SignedRequestError> {
    let body: RequestBody<Op> = decode_exact(&request.body)?;
    if body.v != REQUEST_BODY_VERSION {
        return Err(SignedRequestError::UnsupportedVersion(body.v));
    }
    if body.nonce.len() != NONCE_LEN {
        return Err(SignedRequestError::BadNonce(body.nonce.len()));
    }
    Ok(body)
}

fn decode_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SignedRequestError> {
    let mut rest = bytes;
    let value = ciborium::from_reader(&mut rest)
        .map_err(|e| SignedRequestError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(SignedRequestError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(value)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Serializing our own plain structs into a Vec cannot fail.
    let _ = ciborium::into_writer(value, &mut out);
    out
}

/// Checks `issued_at` against the verifier's clock.
pub fn check_freshness(issued_at: u64, now_ms: u64) -> Result<(), SignedRequestError> {
    // Saturating: issued_at is untrusted and may be anything up to u64::MAX.
    if issued_at.saturating_add(MAX_CLOCK_SKEW_MS) < now_ms {
        return Err(SignedRequestError::Stale {
            age_ms: now_ms - issued_at,
        });
    }
    if issued_at > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
        return Err(SignedRequestError::FromTheFuture {
            ahead_ms: issued_at - now_ms,
        });
    }
    Ok(())
}

/// Remembers the nonces of accepted requests for as long as they could be replayed.
///
/// A request can be accepted until `issued_at + MAX_CLOCK_SKEW_MS`, so its nonce is kept
/// until then (rounded up to the second); after that the freshness check refuses it anyway.
/// When the cache is full it refuses new requests instead of forgetting live nonces.
///
/// Each entry is a 16-byte digest of the principal and nonce, filed under the second it
/// expires: about 40 to 60 bytes an entry, so that a cache covering the freshness window at
/// thousands of requests a second fits in the enclave's memory. Two requests whose digests
/// collide (a chance of 2^-128 per pair) would make the second look replayed: refused, never
/// accepted twice.
#[derive(Debug)]
pub struct ReplayCache {
    capacity: usize,
    seen: HashSet<NonceDigest>,
    /// Digests by the second they expire, in increasing order (at most one bucket a second
    /// of the window, whatever the clients send).
    by_expiry: VecDeque<(u64, Vec<NonceDigest>)>,
}

type NonceDigest = [u8; 16];

fn nonce_digest(principal: &str, nonce: &[u8; NONCE_LEN]) -> NonceDigest {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    // Length-prefixed, so that no two (principal, nonce) pairs hash the same input.
    context.update(&(principal.len() as u64).to_be_bytes());
    context.update(principal.as_bytes());
    context.update(nonce);
    let mut digest = [0u8; 16];
    // SHA-256 gives 32 bytes; the first 16 are plenty against accidental collisions, and
    // a deliberate one would need the principal's own key to sign both requests.
    for (out, byte) in digest.iter_mut().zip(context.finish().as_ref()) {
        *out = *byte;
    }
    digest
}

impl ReplayCache {
    /// A cache holding at most `capacity` nonces.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: HashSet::new(),
            by_expiry: VecDeque::new(),
        }
    }

    /// Nonces currently held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when no nonce is held.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Checks freshness, then records the nonce of `principal`; refuses a nonce seen before.
    pub fn check_and_insert(
        &mut self,
        principal: &str,
        nonce: &[u8],
        issued_at: u64,
        now_ms: u64,
    ) -> Result<(), SignedRequestError> {
        check_freshness(issued_at, now_ms)?;
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| SignedRequestError::BadNonce(nonce.len()))?;
        self.expire(now_ms);
        let digest = nonce_digest(principal, &nonce);
        if self.seen.contains(&digest) {
            return Err(SignedRequestError::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(SignedRequestError::ReplayCacheFull {
                capacity: self.capacity,
            });
        }
        let expires_second = issued_at.saturating_add(MAX_CLOCK_SKEW_MS).div_ceil(1000);
        // Nearly always the last bucket or a new one after it: clients' clocks agree to
        // within seconds.
        let at = self
            .by_expiry
            .iter()
            .rposition(|(second, _)| *second <= expires_second);
        match at {
            Some(at)
                if self
                    .by_expiry
                    .get(at)
                    .is_some_and(|(s, _)| *s == expires_second) =>
            {
                if let Some((_, digests)) = self.by_expiry.get_mut(at) {
                    digests.push(digest);
                }
            }
            Some(at) => self
                .by_expiry
                .insert(at + 1, (expires_second, vec![digest])),
            None => self.by_expiry.push_front((expires_second, vec![digest])),
        }
        self.seen.insert(digest);
        Ok(())
    }

    /// Forgets nonces whose requests can no longer pass the freshness check.
    pub fn expire(&mut self, now_ms: u64) {
        while let Some((second, _)) = self.by_expiry.front() {
            if second.saturating_mul(1000) >= now_ms {
                break;
            }
            if let Some((_, digests)) = self.by_expiry.pop_front() {
                for digest in digests {
                    self.seen.remove(&digest);
                }
            }
        }
    }
}

/// A private key that signs requests (clients and tests; the enclave never holds one).
pub struct RequestSigner {
    key: SignerKey,
    public: PublicKey,
    key_id: String,
}

enum SignerKey {
    Es256(signature::EcdsaKeyPair),
    // dalek rather than ring: Ed25519 signatures are deterministic (RFC 8032), so both give
    // the same bytes, and dalek's precomputed base-point tables sign in about two thirds of
    // ring's time (BENCHMARKS.md). Clients sign every request, the load generator included.
    Ed25519(ed25519_dalek::SigningKey),
}

impl std::fmt::Debug for RequestSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("RequestSigner")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl RequestSigner {
    /// Generates a new key; returns the signer and its PKCS#8 (DER) encoding to store.
    pub fn generate(alg: SignatureAlgorithm) -> Result<(Self, Vec<u8>), SignedRequestError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = match alg {
            SignatureAlgorithm::ES256 => signature::EcdsaKeyPair::generate_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &rng,
            ),
            SignatureAlgorithm::Ed25519 => signature::Ed25519KeyPair::generate_pkcs8(&rng),
        }
        .map_err(|_| SignedRequestError::SigningFailed)?;
        let der = pkcs8.as_ref().to_vec();
        Ok((Self::from_pkcs8(alg, &der)?, der))
    }

    /// Loads a PKCS#8 (DER) private key.
    pub fn from_pkcs8(alg: SignatureAlgorithm, der: &[u8]) -> Result<Self, SignedRequestError> {
        let invalid = || SignedRequestError::InvalidPrivateKey { alg };
        let key = match alg {
            SignatureAlgorithm::ES256 => SignerKey::Es256(
                signature::EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                    &ring::rand::SystemRandom::new(),
                )
                .map_err(|_| invalid())?,
            ),
            // PKCS#8 v1 or v2; a v2 document's public key must match its private key.
            SignatureAlgorithm::Ed25519 => SignerKey::Ed25519(
                <ed25519_dalek::SigningKey as ed25519_dalek::pkcs8::DecodePrivateKey>::from_pkcs8_der(der)
                    .map_err(|_| invalid())?,
            ),
        };
        let public_bytes = match &key {
            SignerKey::Es256(k) => k.public_key().as_ref().to_vec(),
            SignerKey::Ed25519(k) => k.verifying_key().to_bytes().to_vec(),
        };
        let public = PublicKey::new(alg, public_bytes)?;
        Ok(Self {
            key_id: public.key_id(),
            public,
            key,
        })
    }

    /// Names the key as the principal's directory entry does (`keyId`); by default the
    /// derived [`PublicKey::key_id`].
    pub fn with_key_id(mut self, key_id: impl Into<String>) -> Self {
        self.key_id = key_id.into();
        self
    }

    /// The key id the envelopes carry.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `operation` for `principal`, with a fresh nonce, dated `issued_at`.
    pub fn sign<Op: Serialize>(
        &self,
        principal: &str,
        operation: &Op,
        issued_at: u64,
    ) -> Result<SignedRequest, SignedRequestError> {
        let mut nonce = vec![0u8; NONCE_LEN];
        ring::rand::SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SignedRequestError::SigningFailed)?;
        let body = RequestBody {
            v: REQUEST_BODY_VERSION,
            principal: principal.to_owned(),
            nonce,
            issued_at,
            operation,
        };
        self.sign_body_bytes(encode(&body))
    }

    /// Signs `operation` with a nonce the caller chose (tests; callers that must know the
    /// nonce first). A nonce must never be reused within the freshness window.
    pub fn sign_with_nonce<Op: Serialize>(
        &self,
        principal: &str,
        operation: &Op,
        issued_at: u64,
        nonce: [u8; NONCE_LEN],
    ) -> Result<SignedRequest, SignedRequestError> {
        let body = RequestBody {
            v: REQUEST_BODY_VERSION,
            principal: principal.to_owned(),
            nonce: nonce.to_vec(),
            issued_at,
            operation,
        };
        self.sign_body_bytes(encode(&body))
    }

    /// Signs already-encoded body bytes (for tests that need unusual bodies).
    pub fn sign_body_bytes(&self, body: Vec<u8>) -> Result<SignedRequest, SignedRequestError> {
        let mut message = Vec::with_capacity(REQUEST_SIGNING_DOMAIN.len() + body.len());
        message.extend_from_slice(REQUEST_SIGNING_DOMAIN);
        message.extend_from_slice(&body);
        let sig = match &self.key {
            // ring picks either half at random; the enclave accepts the low one only.
            SignerKey::Es256(k) => low_s(
                k.sign(&ring::rand::SystemRandom::new(), &message)
                    .map_err(|_| SignedRequestError::SigningFailed)?
                    .as_ref(),
            ),
            SignerKey::Ed25519(k) => ed25519_dalek::Signer::sign(k, &message).to_bytes().to_vec(),
        };
        Ok(SignedRequest {
            body,
            key_id: self.key_id.clone(),
            alg: self.public.alg,
            sig,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Op {
        Read { scope: String },
    }

    fn op() -> Op {
        Op::Read {
            scope: "/communities/c1".into(),
        }
    }

    #[test]
    fn nonce_fields_read_in_place_what_the_full_decoder_reads() {
        for alg in [SignatureAlgorithm::Ed25519, SignatureAlgorithm::ES256] {
            let (signer, _) = RequestSigner::generate(alg).unwrap();
            let request = signer.sign("alice", &op(), NOW).unwrap();
            let bytes = encode_signed_request(&request);
            let body: RequestBody<serde::de::IgnoredAny> = decode_request_body(&request).unwrap();
            let fields = NonceFields::read(&bytes).unwrap();
            assert_eq!(fields.principal, body.principal);
            assert_eq!(fields.nonce, body.nonce.as_slice());
            assert_eq!(fields.issued_at, body.issued_at);
            // Cut anywhere: no panic, and never a wrong answer.
            for len in 0..bytes.len() {
                if let Some(cut) = NonceFields::read(&bytes[..len]) {
                    assert_eq!(cut, fields);
                }
            }
        }
        // Another layout: not read in place.
        assert_eq!(NonceFields::read(&[0xa0]), None);
        assert_eq!(NonceFields::read(b"not cbor"), None);
    }

    #[test]
    fn many_signatures_get_their_own_verdicts_in_order() {
        let (ed, _) = RequestSigner::generate(SignatureAlgorithm::Ed25519).unwrap();
        let (other, _) = RequestSigner::generate(SignatureAlgorithm::Ed25519).unwrap();
        let (es, _) = RequestSigner::generate(SignatureAlgorithm::ES256).unwrap();
        let mut requests = Vec::new();
        let mut expected = Vec::new();
        // Two batches and a part of Ed25519 by two keys, with ES256 in between; some bad.
        for i in 0..150usize {
            let signer = match i % 7 {
                0 => &es,
                3 => &other,
                _ => &ed,
            };
            let mut request = signer.sign("alice", &op(), NOW).unwrap();
            let bad = matches!(i, 5 | 70 | 77 | 149);
            if bad {
                request.sig[9] ^= 1;
            }
            requests.push((signer.public_key(), request));
            expected.push(!bad);
        }
        let checks: Vec<SignatureCheck<'_>> = requests
            .iter()
            .map(|(key, request)| SignatureCheck {
                key,
                body: &request.body,
                sig: &request.sig,
            })
            .collect();
        assert_eq!(verify_many(&checks), expected);
        // Each alone, the same verdict.
        for (check, expected) in checks.iter().zip(&expected) {
            assert_eq!(check.key.verify(check.body, check.sig), *expected);
        }
        // A key that is not a curve point fails its checks, not its neighbours'.
        let mut broken = ed.public_key().clone();
        broken.bytes = vec![0xff; 32];
        let mut with_broken = checks.clone();
        with_broken[1].key = &broken;
        let mut expected_broken = expected.clone();
        expected_broken[1] = false;
        assert_eq!(verify_many(&with_broken), expected_broken);
        assert!(verify_many(&[]).is_empty());
    }

    #[test]
    fn both_algorithms_sign_and_verify_and_refuse_a_flipped_byte() {
        for alg in [SignatureAlgorithm::ES256, SignatureAlgorithm::Ed25519] {
            let (signer, pkcs8) = RequestSigner::generate(alg).unwrap();
            let reloaded = RequestSigner::from_pkcs8(alg, &pkcs8).unwrap();
            assert_eq!(reloaded.public_key(), signer.public_key());
            let request = signer.sign("alice", &op(), NOW).unwrap();
            let wire = encode_signed_request(&request);
            let decoded = decode_signed_request(&wire).unwrap();
            assert_eq!(decoded, request);
            assert_eq!(decoded.key_id, signer.public_key().key_id());
            assert!(signer.public_key().verify(&decoded.body, &decoded.sig));
            let body: RequestBody<Op> = decode_request_body(&decoded).unwrap();
            assert_eq!(
                (body.principal.as_str(), body.issued_at, body.operation),
                ("alice", NOW, op())
            );

            for i in 0..decoded.body.len() {
                let mut tampered = decoded.body.clone();
                tampered[i] ^= 0x01;
                assert!(
                    !signer.public_key().verify(&tampered, &decoded.sig),
                    "{alg} body byte {i}"
                );
            }
            for i in 0..decoded.sig.len() {
                let mut tampered = decoded.sig.clone();
                tampered[i] ^= 0x80;
                assert!(
                    !signer.public_key().verify(&decoded.body, &tampered),
                    "{alg} sig byte {i}"
                );
            }
        }
    }

    /// The order of P-256, big-endian.
    const P256_ORDER: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];

    /// `n - s`, big-endian, for `0 < s < n`.
    fn order_minus(s: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 32];
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let mut d = i16::from(P256_ORDER[i]) - i16::from(s[i]) - borrow;
            borrow = i16::from(d < 0);
            if d < 0 {
                d += 256;
            }
            out[i] = d as u8;
        }
        out
    }

    /// `s > n / 2`, i.e. `s > n - s` (n is odd, so they are never equal).
    fn is_high(s: &[u8]) -> bool {
        s > order_minus(s).as_slice()
    }

    /// The ES256 request with `s` replaced by `n - s`: the same signature to ECDSA.
    fn twin(request: &SignedRequest) -> SignedRequest {
        let (r, s) = request.sig.split_at(32);
        let mut twin = request.clone();
        twin.sig = [r, order_minus(s).as_slice()].concat();
        twin
    }

    #[test]
    fn es256_signatures_are_made_low_s() {
        let (signer, _) = RequestSigner::generate(SignatureAlgorithm::ES256).unwrap();
        // ring's signer picks either half at random: 64 in a row low is chance 2^-64.
        for i in 0..64u8 {
            let request = signer.sign_body_bytes(vec![i]).unwrap();
            assert!(!is_high(&request.sig[32..]), "signature {i} is high-S");
            assert!(signer.public_key().verify(&request.body, &request.sig));
        }
    }

    #[test]
    fn the_enclave_refuses_a_high_s_twin_with_its_own_code() {
        let (signer, _) = RequestSigner::generate(SignatureAlgorithm::ES256).unwrap();
        let request = signer.sign("alice", &op(), NOW).unwrap();
        let high = twin(&request);
        // ring alone would accept it: the rule is ours.
        assert!(is_high_s(&high.sig) && !is_high_s(&request.sig));
        assert!(signer.public_key().verify(&high.body, &high.sig));
        let tables = crate::key_tables::KeyTables::new(4, 1);
        for tables in [None, Some(&tables)] {
            assert_eq!(
                check_request_signature(signer.public_key(), &request, tables),
                Ok(())
            );
            let error = check_request_signature(signer.public_key(), &high, tables).unwrap_err();
            assert_eq!(error.code(), "high_s_signature", "{error}");
            let mut flipped = request.clone();
            flipped.sig[40] ^= 1;
            let error = check_request_signature(signer.public_key(), &flipped, tables).unwrap_err();
            assert_eq!(error.code(), "bad_signature");
        }
        // Not an ES256 signature at all (s = 0, or s >= n): no verdict on its half, and
        // verification refuses it.
        for s in [vec![0u8; 32], P256_ORDER.to_vec(), vec![0xff; 32]] {
            let mut odd = request.clone();
            odd.sig = [&request.sig[..32], s.as_slice()].concat();
            assert!(!is_high_s(&odd.sig));
            let error = check_request_signature(signer.public_key(), &odd, None).unwrap_err();
            assert_eq!(error.code(), "bad_signature");
        }
    }

    #[test]
    fn a_re_encoded_envelope_is_still_the_request_sent() {
        for alg in [SignatureAlgorithm::ES256, SignatureAlgorithm::Ed25519] {
            let (signer, _) = RequestSigner::generate(alg).unwrap();
            let request = signer.sign("alice", &op(), NOW).unwrap();
            let sent = encode_signed_request(&request);
            // What a parent may do and the enclave still accept: the envelope's entries
            // in another order, and a length written in more bytes than it needs.
            let mut value: ciborium::Value = ciborium::from_reader(sent.as_slice()).unwrap();
            if let ciborium::Value::Map(entries) = &mut value {
                entries.reverse();
            }
            let mut reordered = Vec::new();
            ciborium::into_writer(&value, &mut reordered).unwrap();
            let key_id_head = [&b"\x66key_id\x78"[..], &[32u8]].concat();
            let at = reordered
                .windows(key_id_head.len())
                .position(|w| w == key_id_head.as_slice())
                .unwrap();
            let mut recorded = reordered[..at + 7].to_vec();
            recorded.extend([0x79, 0x00, 0x20]);
            recorded.extend(&reordered[at + 9..]);
            assert_ne!(recorded, sent);
            assert_eq!(decode_signed_request(&recorded).unwrap(), request);
            assert!(same_signed_request(&recorded, &sent), "{alg}");
        }
    }

    #[test]
    fn a_high_s_twin_in_the_record_is_still_the_request_sent() {
        // An older enclave accepted either half; a parent that swapped them did not make
        // the request another one.
        let (signer, _) = RequestSigner::generate(SignatureAlgorithm::ES256).unwrap();
        let request = signer.sign("alice", &op(), NOW).unwrap();
        let recorded = twin(&request);
        assert!(signer.public_key().verify(&recorded.body, &recorded.sig));
        assert!(same_signed_request(
            &encode_signed_request(&recorded),
            &encode_signed_request(&request)
        ));
    }

    #[test]
    fn another_body_or_signature_is_not_the_request_sent() {
        let (signer, _) = RequestSigner::generate(SignatureAlgorithm::Ed25519).unwrap();
        let request = signer.sign("alice", &op(), NOW).unwrap();
        let sent = encode_signed_request(&request);
        let again = signer.sign("alice", &op(), NOW).unwrap();
        assert!(!same_signed_request(&encode_signed_request(&again), &sent));
        let mut flipped = request.clone();
        flipped.sig[0] ^= 1;
        assert!(!same_signed_request(
            &encode_signed_request(&flipped),
            &sent
        ));
        let mut other_key = request.clone();
        other_key.key_id = "k2".into();
        assert!(same_signed_request(
            &encode_signed_request(&other_key),
            &sent
        ));
        assert!(!same_signed_request(b"\xff", &sent));
        assert!(!same_signed_request(&sent, b"\xff"));
    }

    #[test]
    fn a_signature_by_another_key_does_not_verify() {
        let (alice, _) = RequestSigner::generate(SignatureAlgorithm::Ed25519).unwrap();
        let (mallory, _) = RequestSigner::generate(SignatureAlgorithm::Ed25519).unwrap();
        let request = mallory.sign("alice", &op(), NOW).unwrap();
        assert!(!alice.public_key().verify(&request.body, &request.sig));
    }

    #[test]
    fn the_domain_string_is_part_of_the_signed_message() {
        let (signer, pkcs8) = RequestSigner::generate(SignatureAlgorithm::Ed25519).unwrap();
        let pair = signature::Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap();
        let body = b"body".to_vec();
        let bare = pair.sign(&body);
        assert!(!signer.public_key().verify(&body, bare.as_ref()));
        let request = signer.sign_body_bytes(body.clone()).unwrap();
        assert!(signer.public_key().verify(&body, &request.sig));
    }

    #[test]
    fn ed25519_signatures_are_the_bytes_ring_would_produce() {
        let (signer, pkcs8) = RequestSigner::generate(SignatureAlgorithm::Ed25519).unwrap();
        let ring_pair = signature::Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap();
        for body in [Vec::new(), b"body".to_vec(), vec![0xA5; 4096]] {
            let mut message = REQUEST_SIGNING_DOMAIN.to_vec();
            message.extend_from_slice(&body);
            let request = signer.sign_body_bytes(body).unwrap();
            assert_eq!(request.sig, ring_pair.sign(&message).as_ref());
        }
        assert_eq!(signer.public_key().bytes, ring_pair.public_key().as_ref());
    }

    #[test]
    fn a_pkcs8_document_whose_public_key_is_another_keys_is_refused() {
        let (_, mut pkcs8) = RequestSigner::generate(SignatureAlgorithm::Ed25519).unwrap();
        let (other, _) = RequestSigner::generate(SignatureAlgorithm::Ed25519).unwrap();
        // ring writes PKCS#8 v2: the public key is the document's last 32 bytes.
        let at = pkcs8.len() - 32;
        pkcs8[at..].copy_from_slice(&other.public_key().bytes);
        assert!(matches!(
            RequestSigner::from_pkcs8(SignatureAlgorithm::Ed25519, &pkcs8),
            Err(SignedRequestError::InvalidPrivateKey { .. })
        ));
    }

    #[test]
    fn key_ids_are_derived_and_distinct() {
        let (a, _) = RequestSigner::generate(SignatureAlgorithm::ES256).unwrap();
        let (b, _) = RequestSigner::generate(SignatureAlgorithm::ES256).unwrap();
        assert_eq!(a.public_key().key_id().len(), 32);
        assert_ne!(a.public_key().key_id(), b.public_key().key_id());
    }

    #[test]
    fn malformed_envelopes_and_bodies_are_refused() {
        assert!(matches!(
            decode_signed_request(&[0xff]),
            Err(SignedRequestError::Malformed(_))
        ));
        let (signer, _) = RequestSigner::generate(SignatureAlgorithm::Ed25519).unwrap();
        let mut wire = encode_signed_request(&signer.sign("a", &op(), NOW).unwrap());
        wire.push(0);
        assert!(matches!(
            decode_signed_request(&wire),
            Err(SignedRequestError::Malformed(_))
        ));
        let big = vec![0u8; MAX_SIGNED_REQUEST_LEN + 1];
        assert!(matches!(
            decode_signed_request(&big),
            Err(SignedRequestError::TooLarge { .. })
        ));

        let short_nonce = RequestBody {
            v: 1,
            principal: "a".into(),
            nonce: vec![1; 8],
            issued_at: NOW,
            operation: op(),
        };
        let request = signer.sign_body_bytes(encode(&short_nonce)).unwrap();
        assert_eq!(
            decode_request_body::<Op>(&request),
            Err(SignedRequestError::BadNonce(8))
        );
        let v2 = RequestBody {
            v: 2,
            principal: "a".into(),
            nonce: vec![1; 16],
            issued_at: NOW,
            operation: op(),
        };
        let request = signer.sign_body_bytes(encode(&v2)).unwrap();
        assert_eq!(
            decode_request_body::<Op>(&request),
            Err(SignedRequestError::UnsupportedVersion(2))
        );
        assert!(matches!(
            "RS256".parse::<SignatureAlgorithm>(),
            Err(SignedRequestError::UnknownAlgorithm(_))
        ));
    }

    #[test]
    fn freshness_window_is_five_minutes_each_way() {
        assert!(check_freshness(NOW, NOW).is_ok());
        assert!(check_freshness(NOW - MAX_CLOCK_SKEW_MS, NOW).is_ok());
        assert!(check_freshness(NOW + MAX_CLOCK_SKEW_MS, NOW).is_ok());
        assert_eq!(
            check_freshness(NOW - MAX_CLOCK_SKEW_MS - 1, NOW),
            Err(SignedRequestError::Stale {
                age_ms: MAX_CLOCK_SKEW_MS + 1
            })
        );
        assert_eq!(
            check_freshness(NOW + MAX_CLOCK_SKEW_MS + 1, NOW),
            Err(SignedRequestError::FromTheFuture {
                ahead_ms: MAX_CLOCK_SKEW_MS + 1
            })
        );
    }

    #[test]
    fn replay_cache_refuses_repeats_forgets_expired_and_refuses_when_full() {
        let mut cache = ReplayCache::new(2);
        cache.check_and_insert("a", &[1; 16], NOW, NOW).unwrap();
        assert_eq!(
            cache.check_and_insert("a", &[1; 16], NOW, NOW + 1),
            Err(SignedRequestError::Replayed)
        );
        // The same nonce from another principal is another request.
        cache.check_and_insert("b", &[1; 16], NOW, NOW).unwrap();
        assert_eq!(
            cache.check_and_insert("c", &[2; 16], NOW, NOW),
            Err(SignedRequestError::ReplayCacheFull { capacity: 2 })
        );
        // Once the window has passed, the entries go and the replay is refused as stale.
        let later = NOW + MAX_CLOCK_SKEW_MS + 1;
        assert!(matches!(
            cache.check_and_insert("a", &[1; 16], NOW, later),
            Err(SignedRequestError::Stale { .. })
        ));
        cache.check_and_insert("c", &[2; 16], later, later).unwrap();
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn nonces_issued_out_of_order_expire_in_order() {
        let mut cache = ReplayCache::new(10);
        // Clients' clocks disagree: issued 3 s ahead, now, 1 s ahead, 2 s behind.
        for (nonce, issued_at) in [
            (1u8, NOW + 3000),
            (2, NOW),
            (3, NOW + 1000),
            (4, NOW - 2000),
        ] {
            cache
                .check_and_insert("a", &[nonce; 16], issued_at, NOW)
                .unwrap();
        }
        let expiry = |issued_at: u64| issued_at + MAX_CLOCK_SKEW_MS;
        // Each is held until its own expiry, and forgotten after it.
        for (gone, issued_at) in [(1, NOW - 2000), (2, NOW), (3, NOW + 1000), (4, NOW + 3000)] {
            cache.expire(expiry(issued_at));
            assert_eq!(cache.len(), 4 - gone + 1, "at the expiry of {issued_at}");
            cache.expire(expiry(issued_at) + 1);
            assert_eq!(cache.len(), 4 - gone, "after the expiry of {issued_at}");
        }
    }

    #[test]
    fn a_nonce_dated_in_the_future_is_kept_until_it_expires() {
        let mut cache = ReplayCache::new(10);
        let ahead = NOW + MAX_CLOCK_SKEW_MS;
        cache.check_and_insert("a", &[3; 16], ahead, NOW).unwrap();
        // Still inside its own window much later: must still be refused.
        let later = NOW + 2 * MAX_CLOCK_SKEW_MS;
        assert_eq!(
            cache.check_and_insert("a", &[3; 16], ahead, later),
            Err(SignedRequestError::Replayed)
        );
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        assert!(matches!(
            check_freshness(u64::MAX, NOW),
            Err(SignedRequestError::FromTheFuture { .. })
        ));
        assert!(matches!(
            check_freshness(0, NOW),
            Err(SignedRequestError::Stale { .. })
        ));
        assert!(check_freshness(u64::MAX, u64::MAX).is_ok());
    }

    #[test]
    fn public_keys_are_validated() {
        assert!(PublicKey::new(SignatureAlgorithm::Ed25519, vec![0; 31]).is_err());
        assert!(PublicKey::new(SignatureAlgorithm::ES256, vec![0x02; 65]).is_err());
        assert!(PublicKey::new(SignatureAlgorithm::ES256, [&[4u8][..], &[1; 64]].concat()).is_ok());
    }
}
