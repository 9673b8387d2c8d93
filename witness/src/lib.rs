//! A C2SP tlog-witness for the Enclave Approvals audit log.
//!
//! A witness follows one or more logs. For each, it remembers the latest checkpoint it
//! cosigned, and cosigns a new checkpoint only if the log's key signed it and a consistency
//! proof shows that it extends the remembered one. A log that showed two histories to two
//! parties could then not get both cosigned by the same witness; clients that require
//! cosignatures from several witnesses are protected from a split view as long as one of them
//! is honest.
//!
//! - [`request`]: the `add-checkpoint` body (`old <size>`, proof lines, the checkpoint note);
//! - [`protocol`]: the checks and the answer, without I/O ([`protocol::Witness`]);
//! - [`store`]: the state, one SQLite row per log, updated in one transaction;
//! - [`Service`]: the three together, what an HTTP request runs;
//! - [`http`]: the server (`POST /add-checkpoint`);
//! - [`keyfile`] and [`config`]: the witness key file and the configuration.
//!
//! Cosignatures are [`ea_audit::cosignature`]'s (tlog-cosignature v1, Ed25519). The format and
//! how to run a witness are in `docs/audit-log.md`, section "Witnesses".
//!
//! ```
//! use ea_audit::checkpoint::Checkpoint;
//! use ea_audit::cosignature::{verify_cosignatures, CosignatureSigner};
//! use ea_audit::note::NoteSigner;
//! use ea_audit::tree::MerkleTree;
//! use ea_audit::hash::leaf_hash;
//! use ring::signature::Ed25519KeyPair;
//! use witness::{request, Service, store::Store};
//! use witness::protocol::Witness;
//!
//! // A log of three records and its key.
//! let tree = MerkleTree::from_leaves([b"a", b"b", b"c"].map(|r| leaf_hash(r)));
//! let key = Ed25519KeyPair::from_seed_unchecked(&[1; 32]).expect("a 32-byte seed");
//! let log = NoteSigner::new("example.com/log", Box::new(key))?;
//! let note = Checkpoint { origin: "example.com/log".into(), size: 3, root: tree.root() }
//!     .sign(&log)?;
//!
//! // A witness that follows it.
//! let dir = tempfile::tempdir()?;
//! let cosigner = CosignatureSigner::from_seed("witness.example/w1", &[2; 32])?;
//! let service = Service::new(
//!     Witness::new(cosigner, [log.verifier().clone()])?,
//!     Store::open(dir.path().join("witness.db"))?,
//! );
//!
//! // First contact: from size 0, with an empty proof.
//! let line = service.add_checkpoint(request::encode(0, &[], &note).as_bytes(), 1_700_000_000)?;
//! let pinned = service.witness().cosigner().verifier().clone();
//! let verified = verify_cosignatures(&format!("{note}{line}"), &[pinned], 1)?;
//! assert_eq!(verified[0].timestamp(), 1_700_000_000);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod config;
pub mod http;
pub mod keyfile;
pub mod protocol;
pub mod request;
pub mod store;

use ea_audit::cosignature::CosignatureError;

use crate::protocol::{Refusal, Witness};
use crate::store::{Store, StoreError};

/// Why an `add-checkpoint` request got no cosignature.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The request was refused (4xx).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The state could not be read or written (500); nothing was cosigned.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cosignature could not be made (500); the new state is stored, so the client gets
    /// a 409 with the new size if it retries, and can then resubmit at that size.
    #[error("cosigning failed: {0}")]
    Cosign(#[from] CosignatureError),
}

/// A witness and its state: what one `add-checkpoint` request runs.
#[derive(Debug)]
pub struct Service {
    witness: Witness,
    store: Store,
}

impl Service {
    /// A service for `witness` with its state in `store`.
    pub fn new(witness: Witness, store: Store) -> Self {
        Self { witness, store }
    }

    /// The witness.
    pub fn witness(&self) -> &Witness {
        &self.witness
    }

    /// The state.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Handles one `add-checkpoint` body at time `now` (POSIX seconds): checks it, stores
    /// the new state (committed before this returns), and returns the cosignature line.
    ///
    /// Blocks on SQLite (and its fsync): call it off the async runtime's threads.
    pub fn add_checkpoint(&self, body: &[u8], now: u64) -> Result<String, AddError> {
        let submission = self.witness.check(body)?;
        let origin = &submission.checkpoint().origin;
        let state = self.store.advance(origin, submission.note(), |stored| {
            submission.advance(stored, now).map_err(AddError::Refused)
        })?;
        Ok(self.witness.cosign(&submission, &state)?)
    }
}
