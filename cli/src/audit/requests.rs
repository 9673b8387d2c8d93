//! The request checker the log verifier is given: every client request a record embeds is
//! re-verified (ea-protocol's `signed` module) with its principal's key as the log itself
//! stood just before that record.
//!
//! The keys come from the log, never from the auditor or the parent: the genesis record's
//! directory, then every record that adds or revokes a key. Reading those is the job of a
//! [`KeyDirectory`]; the checker feeds it each record after checking the record's own
//! request, so a request that changes keys is judged by the keys before the change.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use ea_audit::verify::RequestChecker;
use ea_audit::Record;
use ea_protocol::signed::{self, PublicKey, SignatureCheck, SignedRequestError};

pub use ea_ledger::KeyStatus;

/// Principals' keys as the log states them, record by record.
pub trait KeyDirectory {
    /// Why the directory cannot answer or cannot follow a record.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The key `key_id` of `principal`, after every record observed so far.
    fn key(&self, principal: &str, key_id: &str) -> Result<KeyStatus, Self::Error>;

    /// Follows one record of the log, in order (the genesis directory, key changes).
    fn observe(&mut self, record: &Record) -> Result<(), Self::Error>;
}

/// Why a record's embedded request is refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError<E: std::error::Error + 'static> {
    /// The request is malformed, or its key is unknown, revoked, of another algorithm, or
    /// does not verify the signature.
    #[error(transparent)]
    Request(#[from] SignedRequestError),
    /// The request was made by someone other than the record's actor.
    #[error("the record's actor is {actor:?}, but its request is signed by {principal:?}")]
    NotTheActor {
        /// The record's `actor`.
        actor: String,
        /// The principal of the request.
        principal: String,
    },
    /// The key directory failed.
    #[error(transparent)]
    Directory(E),
}

/// Re-verifies embedded requests against a [`KeyDirectory`] that follows the log.
pub struct SignatureChecker<'f, D> {
    // The verifier calls `check` through `&self`, once per record, in log order.
    directory: RefCell<D>,
    /// Signature checks deferred to [`RequestChecker::flush`], to be verified in batches
    /// (see [`first_bad_signature`]). The key is the one the log gave the principal just
    /// before the record, fixed when the check is queued.
    queued: RefCell<Vec<QueuedSignature>>,
    floor: Option<&'f SignatureFloor>,
}

/// A signature to verify at the next flush.
#[derive(Debug)]
struct QueuedSignature {
    index: u64,
    key_id: String,
    key: PublicKey,
    body: Vec<u8>,
    sig: Vec<u8>,
}

/// The signature floor: how fast this machine verifies the embedded requests' signatures
/// alone, one at a time with ring as the enclave does when it accepts them, measured in the
/// same run. The checker hands over each signature it verified; [`SignatureFloor::measure`]
/// verifies them again, alone, between chunks of records, so that both sides see the same
/// load on a shared machine.
#[derive(Debug, Default)]
pub struct SignatureFloor {
    waiting: RefCell<Vec<QueuedSignature>>,
    signatures: Cell<u64>,
    elapsed: Cell<Duration>,
}

impl SignatureFloor {
    fn keep(&self, signatures: Vec<QueuedSignature>) {
        self.waiting.borrow_mut().extend(signatures);
    }

    /// Verifies the signatures handed over since the last call, timing only the checks.
    pub fn measure(&self) {
        let waiting = std::mem::take(&mut *self.waiting.borrow_mut());
        let started = Instant::now();
        let valid = waiting
            .iter()
            .filter(|s| s.key.verify(&s.body, &s.sig))
            .count();
        self.elapsed.set(self.elapsed.get() + started.elapsed());
        // Each verified once already; counting keeps the checks from being optimized away.
        self.signatures.set(self.signatures.get() + valid as u64);
    }

    /// The signatures verified alone so far, and the time they took.
    pub fn total(&self) -> (u64, Duration) {
        (self.signatures.get(), self.elapsed.get())
    }
}

impl<'f, D: KeyDirectory> SignatureChecker<'f, D> {
    pub fn new(directory: D) -> Self {
        Self {
            directory: RefCell::new(directory),
            queued: RefCell::default(),
            floor: None,
        }
    }

    /// A checker that also hands every signature it verified to `floor`.
    pub fn measuring(directory: D, floor: &'f SignatureFloor) -> Self {
        Self {
            directory: RefCell::new(directory),
            queued: RefCell::default(),
            floor: Some(floor),
        }
    }

    /// The directory, having followed the whole log.
    pub fn into_directory(self) -> D {
        self.directory.into_inner()
    }

    fn check_request(&self, record: &Record, bytes: &[u8]) -> Result<(), RequestError<D::Error>> {
        let request = signed::decode_signed_request(bytes)?;
        // The operation is the policy engine's business (its effects are in the record's
        // events): skipped, not decoded, as it is a fifth of the time beside the signature.
        let body: signed::RequestBody<serde::de::IgnoredAny> =
            signed::decode_request_body(&request)?;
        // The enclave refuses requests more than 5 minutes from its clock: a record whose
        // request was issued further from the record's time was not written that way.
        signed::check_freshness(body.issued_at, record.time)?;
        if body.principal != record.actor {
            return Err(RequestError::NotTheActor {
                actor: record.actor.clone(),
                principal: body.principal,
            });
        }
        let status = self
            .directory
            .borrow()
            .key(&body.principal, &request.key_id)
            .map_err(RequestError::Directory)?;
        let key = match status {
            KeyStatus::Active(key) => key,
            KeyStatus::Revoked => {
                return Err(SignedRequestError::RevokedKey {
                    principal: body.principal,
                    key_id: request.key_id,
                }
                .into())
            }
            KeyStatus::Unknown => {
                return Err(SignedRequestError::UnknownKey {
                    principal: body.principal,
                    key_id: request.key_id,
                }
                .into())
            }
        };
        if key.alg != request.alg {
            return Err(SignedRequestError::AlgorithmMismatch {
                key_id: request.key_id,
                expected: key.alg,
                got: request.alg,
            }
            .into());
        }
        self.queued.borrow_mut().push(QueuedSignature {
            index: record.seq,
            key_id: request.key_id,
            key,
            body: request.body,
            sig: request.sig,
        });
        Ok(())
    }
}

impl<D: KeyDirectory> RequestChecker for SignatureChecker<'_, D> {
    type Error = RequestError<D::Error>;

    fn flush(&self) -> Result<(), (u64, Self::Error)> {
        let queued = std::mem::take(&mut *self.queued.borrow_mut());
        if let Some(bad) = first_bad_signature(&queued) {
            let error = SignedRequestError::BadSignature {
                key_id: bad.key_id.clone(),
            };
            return Err((bad.index, error.into()));
        }
        if let Some(floor) = self.floor {
            floor.keep(queued);
        }
        Ok(())
    }

    fn check(&self, record: &Record) -> Result<(), Self::Error> {
        if let Some(bytes) = &record.request {
            self.check_request(record, bytes)?;
        }
        self.directory
            .borrow_mut()
            .observe(record)
            .map_err(RequestError::Directory)
    }
}

/// The first of `queued` (in log order) whose signature does not verify
/// ([`signed::verify_many`]: Ed25519 in batches; a failing batch checked again one signature
/// at a time with ring, the rule by which the enclave checks who signed, so a refusal is
/// always ring's verdict; a passing batch may also clear a signature the key's own holder
/// crafted with a small-order component, see `verify_many`).
fn first_bad_signature(queued: &[QueuedSignature]) -> Option<&QueuedSignature> {
    let checks: Vec<SignatureCheck<'_>> = queued
        .iter()
        .map(|s| SignatureCheck {
            key: &s.key,
            body: &s.body,
            sig: &s.sig,
        })
        .collect();
    let verdicts = signed::verify_many(&checks);
    queued
        .iter()
        .zip(verdicts)
        .find(|(_, valid)| !valid)
        .map(|(queued, _)| queued)
}

/// The principals' keys as the log states them: the genesis record's directory, then every
/// record's events, replayed through the same ledger the enclave runs.
#[derive(Debug, Default)]
pub struct LedgerKeys {
    ledger: Option<ea_ledger::Ledger>,
}

/// Why the log's records cannot be followed.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// A record's events do not replay (the log and the engine disagree).
    #[error("the record's changes do not replay: {0}")]
    Replay(#[from] ea_ledger::ReplayError),
    /// A request before the genesis record (the log verifier refuses this first).
    #[error("no genesis record before this one")]
    NoGenesis,
}

impl LedgerKeys {
    /// The policy state the log replays to, once it has been followed.
    pub fn into_state(self) -> Option<ea_policy::PolicyState> {
        self.ledger.map(|ledger| ledger.state().clone())
    }

    /// Every admission and retirement of an image the log recorded, in log order.
    pub fn image_history(&self) -> Vec<ea_ledger::ImageAdmission> {
        self.ledger
            .as_ref()
            .map(|ledger| ledger.image_history().to_vec())
            .unwrap_or_default()
    }
}

impl<D> SignatureChecker<'_, D> {
    /// The directory, as it has followed the log so far.
    pub fn directory(&self) -> std::cell::Ref<'_, D> {
        self.directory.borrow()
    }
}

impl KeyDirectory for LedgerKeys {
    type Error = KeysError;

    fn key(&self, principal: &str, key_id: &str) -> Result<KeyStatus, KeysError> {
        let ledger = self.ledger.as_ref().ok_or(KeysError::NoGenesis)?;
        Ok(ea_ledger::key_status(ledger.state(), principal, key_id))
    }

    fn observe(&mut self, record: &Record) -> Result<(), KeysError> {
        match &mut self.ledger {
            None if record.kind == ea_audit::RecordKind::Genesis => {
                // Nonces are the enclave's business; an auditor keeps none.
                self.ledger = Some(ea_ledger::Ledger::from_genesis_record(record, 0)?);
                Ok(())
            }
            None => Err(KeysError::NoGenesis),
            Some(ledger) => Ok(ledger.apply_record(record)?),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;

    use ciborium::Value;
    use ea_audit::RecordKind;
    use ea_protocol::signed::{
        encode_signed_request, PublicKey, RequestSigner, SignatureAlgorithm,
    };

    use super::*;

    /// A directory in a test format: a record whose `changes` is
    /// `{"add": [principal, alg, key]}` or `{"revoke": [principal, key id]}` changes a key.
    #[derive(Default)]
    pub(in crate::audit) struct TestDirectory {
        keys: BTreeMap<(String, String), KeyStatus>,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("bad key change")]
    pub(in crate::audit) struct BadChange;

    fn text(value: Option<&Value>) -> Result<String, BadChange> {
        value
            .and_then(Value::as_text)
            .map(str::to_owned)
            .ok_or(BadChange)
    }

    impl KeyDirectory for TestDirectory {
        type Error = BadChange;

        fn key(&self, principal: &str, key_id: &str) -> Result<KeyStatus, BadChange> {
            Ok(self
                .keys
                .get(&(principal.to_owned(), key_id.to_owned()))
                .cloned()
                .unwrap_or(KeyStatus::Unknown))
        }

        fn observe(&mut self, record: &Record) -> Result<(), BadChange> {
            let Some(entries) = record.changes.as_map() else {
                return Ok(());
            };
            for (verb, args) in entries {
                let args = args.as_array().ok_or(BadChange)?;
                match verb.as_text() {
                    Some("add") => {
                        let principal = text(args.first())?;
                        let alg = text(args.get(1))?.parse().map_err(|_| BadChange)?;
                        let bytes = args.get(2).and_then(Value::as_bytes).ok_or(BadChange)?;
                        let key = PublicKey::new(alg, bytes.clone()).map_err(|_| BadChange)?;
                        self.keys
                            .insert((principal, key.key_id()), KeyStatus::Active(key));
                    }
                    Some("revoke") => {
                        let id = (text(args.first())?, text(args.get(1))?);
                        self.keys.insert(id, KeyStatus::Revoked);
                    }
                    _ => return Err(BadChange),
                }
            }
            Ok(())
        }
    }

    fn record(actor: &str, request: Option<Vec<u8>>, changes: Value) -> Record {
        Record {
            seq: 1,
            time: 1_700_000_000_000,
            kind: RecordKind::StateChange,
            actor: actor.into(),
            request,
            decision: Value::Null,
            changes,
            attestation: None,
        }
    }

    /// The change that gives `principal` the key of `signer`, in the test format.
    pub(in crate::audit) fn add(principal: &str, signer: &RequestSigner) -> Value {
        let key = signer.public_key();
        Value::Map(vec![(
            "add".into(),
            Value::Array(vec![
                principal.into(),
                key.alg.as_str().into(),
                Value::Bytes(key.bytes.clone()),
            ]),
        )])
    }

    /// A request by `principal` signed by `signer`, encoded.
    pub(in crate::audit) fn signed_by(signer: &RequestSigner, principal: &str) -> Vec<u8> {
        let request = signer
            .sign(principal, &Value::Text("op".into()), 1_700_000_000_000)
            .unwrap();
        encode_signed_request(&request)
    }

    #[test]
    fn checks_each_request_with_the_keys_the_log_gave_before_it() {
        let (alice, _) = RequestSigner::generate(SignatureAlgorithm::ES256).unwrap();
        let (bob, _) = RequestSigner::generate(SignatureAlgorithm::Ed25519).unwrap();
        let checker = SignatureChecker::new(TestDirectory::default());

        // Before any key is known, alice's request is refused.
        let early = record("alice", Some(signed_by(&alice, "alice")), Value::Null);
        assert!(matches!(
            checker.check(&early),
            Err(RequestError::Request(SignedRequestError::UnknownKey { .. }))
        ));
        // The genesis-like record gives alice her key: from the next record on it counts.
        checker
            .check(&record("platform", None, add("alice", &alice)))
            .unwrap();
        checker.check(&early).unwrap();

        // A request that adds bob's key is judged by the keys before it...
        let adds_bob = record("alice", Some(signed_by(&alice, "alice")), add("bob", &bob));
        checker.check(&adds_bob).unwrap();
        // ...and bob can sign from then on.
        checker
            .check(&record("bob", Some(signed_by(&bob, "bob")), Value::Null))
            .unwrap();

        // A flipped signature byte, a request under someone else's name, a key of another
        // principal: all refused.
        let mut request = alice
            .sign("alice", &Value::Text("op".into()), 1_700_000_000_000)
            .unwrap();
        request.sig[5] ^= 1;
        let tampered = record("alice", Some(encode_signed_request(&request)), Value::Null);
        // Signatures are checked when the verifier flushes the checker.
        checker.flush().unwrap();
        checker.check(&tampered).unwrap();
        assert!(matches!(
            checker.flush(),
            Err((
                1,
                RequestError::Request(SignedRequestError::BadSignature { .. })
            ))
        ));
        assert!(matches!(
            checker.check(&record(
                "bob",
                Some(signed_by(&alice, "alice")),
                Value::Null
            )),
            Err(RequestError::NotTheActor { .. })
        ));
        assert!(matches!(
            checker.check(&record("bob", Some(signed_by(&alice, "bob")), Value::Null)),
            Err(RequestError::Request(SignedRequestError::UnknownKey { .. }))
        ));

        // After revocation, alice's key no longer signs.
        let revoke = Value::Map(vec![(
            "revoke".into(),
            Value::Array(vec!["alice".into(), alice.public_key().key_id().into()]),
        )]);
        checker.check(&record("platform", None, revoke)).unwrap();
        assert!(matches!(
            checker.check(&early),
            Err(RequestError::Request(SignedRequestError::RevokedKey { .. }))
        ));
    }

    /// Signs `count` requests with `signer`, as records 0.., with the signatures at
    /// `flipped` corrupted.
    fn queue(
        checker: &SignatureChecker<'_, TestDirectory>,
        signer: &RequestSigner,
        count: u64,
        flipped: &[u64],
    ) {
        for seq in 0..count {
            let mut request = signer
                .sign(
                    "alice",
                    &Value::Text(format!("op {seq}")),
                    1_700_000_000_000,
                )
                .unwrap();
            if flipped.contains(&seq) {
                request.sig[7] ^= 1;
            }
            let mut record = record("alice", Some(encode_signed_request(&request)), Value::Null);
            record.seq = seq;
            checker.check(&record).unwrap();
        }
    }

    #[test]
    fn batched_signature_checks_name_the_first_bad_one() {
        for alg in [SignatureAlgorithm::Ed25519, SignatureAlgorithm::ES256] {
            let (alice, _) = RequestSigner::generate(alg).unwrap();
            let checker = SignatureChecker::new(TestDirectory::default());
            checker
                .check(&record("platform", None, add("alice", &alice)))
                .unwrap();
            // Three batches of 64 and a partial one, all good.
            queue(&checker, &alice, 200, &[]);
            checker.flush().unwrap();
            // Bad signatures in the second and third batches: the first is named, by ring's
            // single check.
            queue(&checker, &alice, 200, &[130, 70, 199]);
            let (index, error) = checker.flush().unwrap_err();
            assert_eq!(index, 70, "{alg:?}");
            assert!(matches!(
                error,
                RequestError::Request(SignedRequestError::BadSignature { .. })
            ));
            // The queue is emptied by a flush, failed or not.
            checker.flush().unwrap();
        }
    }

    #[test]
    fn the_floor_verifies_again_what_the_checker_verified() {
        let (alice, _) = RequestSigner::generate(SignatureAlgorithm::Ed25519).unwrap();
        let floor = SignatureFloor::default();
        let checker = SignatureChecker::measuring(TestDirectory::default(), &floor);
        checker
            .check(&record("platform", None, add("alice", &alice)))
            .unwrap();
        queue(&checker, &alice, 100, &[]);
        checker.flush().unwrap();
        floor.measure();
        assert_eq!(floor.total().0, 100);
        // A batch that failed hands nothing over.
        queue(&checker, &alice, 10, &[3]);
        assert!(checker.flush().is_err());
        floor.measure();
        assert_eq!(floor.total().0, 100);
    }

    #[test]
    fn malformed_requests_are_refused() {
        let checker = SignatureChecker::new(TestDirectory::default());
        for bytes in [vec![], vec![0xff], b"not cbor at all".to_vec()] {
            assert!(matches!(
                checker.check(&record("alice", Some(bytes), Value::Null)),
                Err(RequestError::Request(SignedRequestError::Malformed(_)))
            ));
        }
    }
}
