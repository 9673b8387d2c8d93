//! Principals' keys, and the check that turns request bytes into an [`Authenticated`]
//! request: envelope, body, freshness, key, signature, operation — in that order, before
//! anything a client sent is believed.
//!
//! The enclave checks signatures on many connections at once against a [`Directory`]
//! snapshot; the ledger then re-checks, in log order, that the key is still the principal's
//! and unrevoked, and that the nonce is new ([`crate::Ledger::execute`]).

use std::collections::HashMap;

use ea_policy::{KeyAlgorithm, PolicyState, PrincipalId, PrincipalType};
use ea_protocol::key_tables::KeyTables;
use ea_protocol::signed::{self, PublicKey, SignatureAlgorithm, SignedRequestError, NONCE_LEN};

use crate::operation::Operation;

/// DER prefix of a P-256 SubjectPublicKeyInfo with an uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// DER prefix of an Ed25519 SubjectPublicKeyInfo.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A directory key as the signature check needs it: the raw form ring verifies.
pub fn verification_key(key: &ea_policy::PublicKey) -> Result<PublicKey, SignedRequestError> {
    let bytes = key.public_key.0.as_slice();
    match key.algorithm {
        KeyAlgorithm::ES256 => {
            let point = bytes.strip_prefix(&P256_SPKI_PREFIX[..]).unwrap_or(bytes);
            // Compressed points are expanded once here: ring verifies uncompressed ones.
            let uncompressed = match point.len() {
                33 => {
                    use p256::elliptic_curve::sec1::ToEncodedPoint;
                    let public = p256::PublicKey::from_sec1_bytes(point).map_err(|_| {
                        SignedRequestError::InvalidPublicKey {
                            alg: SignatureAlgorithm::ES256,
                            reason: "not a point on P-256",
                        }
                    })?;
                    public.to_encoded_point(false).as_bytes().to_vec()
                }
                _ => point.to_vec(),
            };
            PublicKey::new(SignatureAlgorithm::ES256, uncompressed)
        }
        KeyAlgorithm::Ed25519 => {
            let raw = bytes
                .strip_prefix(&ED25519_SPKI_PREFIX[..])
                .unwrap_or(bytes);
            PublicKey::new(SignatureAlgorithm::Ed25519, raw.to_vec())
        }
    }
}

/// What the directory says of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStatus {
    /// In force.
    Active(PublicKey),
    /// Revoked: it signs nothing any more.
    Revoked,
    /// No such key (or no such principal, or a group).
    Unknown,
}

/// The key `key_id` of `principal` in `state`.
pub fn key_status(state: &PolicyState, principal: &str, key_id: &str) -> KeyStatus {
    let Ok(id) = PrincipalId::new(principal) else {
        return KeyStatus::Unknown;
    };
    let Some(p) = state.principal(&id) else {
        return KeyStatus::Unknown;
    };
    if p.kind == PrincipalType::Group {
        return KeyStatus::Unknown;
    }
    match p.keys.iter().find(|k| k.key_id.as_str() == key_id) {
        None => KeyStatus::Unknown,
        Some(k) if k.revoked => KeyStatus::Revoked,
        Some(k) => match verification_key(k) {
            Ok(key) => KeyStatus::Active(key),
            // A key the state accepted but no verifier can use signs nothing.
            Err(_) => KeyStatus::Unknown,
        },
    }
}

/// A snapshot of every principal's keys, for checking signatures outside the ledger.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    keys: HashMap<(String, String), KeyStatus>,
}

impl Directory {
    /// The keys of `state`.
    pub fn of(state: &PolicyState) -> Directory {
        let mut keys = HashMap::new();
        for p in state.principals() {
            for k in &p.keys {
                let status = key_status(state, p.id.as_str(), k.key_id.as_str());
                keys.insert((p.id.to_string(), k.key_id.to_string()), status);
            }
        }
        Directory { keys }
    }

    /// What the snapshot says of a key.
    pub fn key(&self, principal: &str, key_id: &str) -> KeyStatus {
        self.keys
            .get(&(principal.to_owned(), key_id.to_owned()))
            .cloned()
            .unwrap_or(KeyStatus::Unknown)
    }

    /// Checks a signed request, in order: size and envelope, body (version, nonce), that
    /// the principal is not `platform`, freshness against `now_ms`, the key (known,
    /// unrevoked, of the envelope's algorithm), the signature over the exact body bytes
    /// (ES256 low-S only: [`signed::check_request_signature`]),
    /// and finally that the operation is one this build knows. The replay check needs the
    /// ledger's order and happens in [`crate::Ledger::execute`].
    pub fn authenticate(
        &self,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<Authenticated, SignedRequestError> {
        self.authenticate_with(bytes, now_ms, None)
    }

    /// [`Directory::authenticate`], checking Ed25519 signatures through `tables` when
    /// given (same verdicts, faster for keys that sign often).
    pub fn authenticate_with(
        &self,
        bytes: &[u8],
        now_ms: u64,
        tables: Option<&KeyTables>,
    ) -> Result<Authenticated, SignedRequestError> {
        let request = signed::decode_signed_request(bytes)?;
        let body: signed::RequestBody<ciborium::Value> = signed::decode_request_body(&request)?;
        let principal = PrincipalId::new(&body.principal)
            .map_err(|e| SignedRequestError::Malformed(format!("principal: {e}")))?;
        if principal.is_platform() {
            return Err(SignedRequestError::ReservedPrincipal(body.principal));
        }
        signed::check_freshness(body.issued_at, now_ms)?;
        let key = match self.key(&body.principal, &request.key_id) {
            KeyStatus::Active(key) => key,
            KeyStatus::Revoked => {
                return Err(SignedRequestError::RevokedKey {
                    principal: body.principal,
                    key_id: request.key_id,
                })
            }
            KeyStatus::Unknown => {
                return Err(SignedRequestError::UnknownKey {
                    principal: body.principal,
                    key_id: request.key_id,
                })
            }
        };
        if key.alg != request.alg {
            return Err(SignedRequestError::AlgorithmMismatch {
                key_id: request.key_id,
                expected: key.alg,
                got: request.alg,
            });
        }
        signed::check_request_signature(&key, &request, tables)?;
        let operation: Operation = body
            .operation
            .deserialized()
            .map_err(|e| SignedRequestError::Malformed(format!("operation: {e}")))?;
        let nonce: [u8; NONCE_LEN] = body
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| SignedRequestError::BadNonce(body.nonce.len()))?;
        Ok(Authenticated {
            bytes: bytes.to_vec(),
            principal,
            key_id: request.key_id,
            key,
            nonce,
            issued_at: body.issued_at,
            operation,
        })
    }
}

/// A request whose signature verified. Only [`Directory::authenticate`] makes one.
#[derive(Debug, Clone)]
pub struct Authenticated {
    bytes: Vec<u8>,
    principal: PrincipalId,
    key_id: String,
    key: PublicKey,
    nonce: [u8; NONCE_LEN],
    issued_at: u64,
    operation: Operation,
}

impl Authenticated {
    /// The signed request, verbatim as the client sent it (it goes into the audit record).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// Who signed.
    pub fn principal(&self) -> &PrincipalId {
        &self.principal
    }
    /// With which key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
    /// The key that verified the signature.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }
    /// The request's nonce.
    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }
    /// When the client made it, unix ms.
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }
    /// What it asks for.
    pub fn operation(&self) -> &Operation {
        &self.operation
    }
}
