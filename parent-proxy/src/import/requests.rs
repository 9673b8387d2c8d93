//! The request checker an import gives the log verifier: every client request a record
//! embeds is checked again with its principal's key as the log itself stood just before
//! that record, by the rules `govctl audit verify` applies (its checker is
//! `cli/src/audit/requests.rs`, inside the govctl binary; both are built on the same shared
//! pieces: `ea_protocol::signed` and the ledger's replay).
//!
//! The keys come from the log, never from the directory's manifest or the operator: the
//! genesis record's directory, then every record that adds or revokes a key, replayed
//! through the engine the enclave runs. A request that changes keys is judged by the keys
//! before the change.
//!
//! Unlike govctl, signatures are checked one at a time, with ring, as the enclave accepts
//! them (govctl batches Ed25519 ones, about three times faster, for auditors of long logs):
//! an import runs rarely, and this keeps the checker small.

use std::cell::RefCell;

use ea_audit::record::{Record, RecordKind};
use ea_audit::verify::RequestChecker;
use ea_ledger::{key_status, KeyStatus, Ledger, ReplayError};
use ea_protocol::signed::{self, SignedRequestError};

/// Why a record's embedded request, or the record itself as a key change, is refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestRefusal {
    /// The request is malformed, stale for its record's time, or its key is unknown,
    /// revoked, of another algorithm, or does not verify the signature.
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
    /// The record's changes do not replay onto the state before it (boxed: it is large, and
    /// every record's check returns this type).
    #[error("the record's changes do not replay: {0}")]
    Replay(Box<ReplayError>),
    /// A record before any genesis.
    #[error("no genesis record before this one")]
    NoGenesis,
}

/// Checks embedded requests against the keys the log states, record by record.
#[derive(Debug, Default)]
pub struct LogRequests {
    // The verifier calls `check` through `&self`, once per record, in log order.
    ledger: RefCell<Option<Ledger>>,
}

impl LogRequests {
    /// A checker that has seen no record yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn check_request(&self, record: &Record, bytes: &[u8]) -> Result<(), RequestRefusal> {
        let request = signed::decode_signed_request(bytes)?;
        let body: signed::RequestBody<serde::de::IgnoredAny> =
            signed::decode_request_body(&request)?;
        // The record's time is the enclave's clock when it accepted the request.
        signed::check_freshness(body.issued_at, record.time)?;
        if body.principal != record.actor {
            return Err(RequestRefusal::NotTheActor {
                actor: record.actor.clone(),
                principal: body.principal,
            });
        }
        let status = match &*self.ledger.borrow() {
            Some(ledger) => key_status(ledger.state(), &body.principal, &request.key_id),
            None => return Err(RequestRefusal::NoGenesis),
        };
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
        if !key.verify(&request.body, &request.sig) {
            return Err(SignedRequestError::BadSignature {
                key_id: request.key_id,
            }
            .into());
        }
        Ok(())
    }
}

impl RequestChecker for LogRequests {
    type Error = RequestRefusal;

    fn check(&self, record: &Record) -> Result<(), RequestRefusal> {
        if let Some(bytes) = &record.request {
            self.check_request(record, bytes)?;
        }
        let mut ledger = self.ledger.borrow_mut();
        match &mut *ledger {
            None if record.kind == RecordKind::Genesis => {
                let genesis = Ledger::from_genesis_record(record, 0)
                    .map_err(|e| RequestRefusal::Replay(Box::new(e)))?;
                *ledger = Some(genesis);
            }
            None => return Err(RequestRefusal::NoGenesis),
            Some(ledger) => ledger
                .apply_record(record)
                .map_err(|e| RequestRefusal::Replay(Box::new(e)))?,
        }
        Ok(())
    }
}
