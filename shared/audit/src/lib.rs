//! The audit log of Enclave Approvals: records, the RFC 6962 Merkle tree, proofs, signed
//! checkpoints, receipts, and the core that verifies a whole log.
//!
//! Every decision the enclave makes is a [`record::Record`] in one canonical CBOR encoding.
//! The records are the leaves of an append-only Merkle tree ([`tree::MerkleTree`]); the
//! enclave signs its tree heads as C2SP checkpoints ([`checkpoint`]) with a log key that an
//! `enclave_start` record's attestation document binds to the enclave image; independent
//! witnesses add C2SP cosignatures to checkpoints they found consistent ([`cosignature`]).
//! A client keeps a [`receipt::Receipt`] for its record; an auditor (or the enclave, when it
//! starts again) runs [`verify::LogVerifier`] over the whole log.
//!
//! This crate does no I/O and reads no clock or randomness: keys, attestation checks and
//! request checks are passed in. The formats are documented for auditors in
//! `docs/audit-log.md`.
//!
//! ```
//! use ea_audit::checkpoint::{log_origin, Checkpoint};
//! use ea_audit::hash::leaf_hash;
//! use ea_audit::note::NoteSigner;
//! use ea_audit::receipt::{verify_receipt, Receipt};
//! use ea_audit::record::{Record, RecordKind};
//! use ea_audit::tree::MerkleTree;
//! use ciborium::Value;
//! use ring::signature::Ed25519KeyPair;
//!
//! // Record 0: genesis. Its record hash names the log.
//! let genesis = Record {
//!     seq: 0,
//!     time: 1_700_000_000_000,
//!     kind: RecordKind::Genesis,
//!     actor: "enclave".into(),
//!     request: None,
//!     decision: Value::Null,
//!     changes: Value::Text("the genesis document".into()),
//!     attestation: None,
//! };
//! let bytes = genesis.to_bytes()?;
//! assert_eq!(Record::from_bytes(&bytes)?, genesis);
//! let origin = log_origin(&genesis.record_hash()?);
//!
//! // The tree over the records, and a checkpoint signed by the log key.
//! let mut tree = MerkleTree::new();
//! tree.push(leaf_hash(&bytes));
//! let key = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("a 32-byte seed");
//! let signer = NoteSigner::new(&origin, Box::new(key))?;
//! let checkpoint = Checkpoint { origin, size: tree.size(), root: tree.root() }.sign(&signer)?;
//!
//! // The receipt a client would get, checked against the pinned log key.
//! let receipt = Receipt {
//!     index: 0,
//!     leaf_hash: leaf_hash(&bytes),
//!     inclusion_proof: tree.inclusion_proof(0, tree.size())?.path,
//!     checkpoint,
//! };
//! let pinned = signer.verifier().to_string().parse()?;
//! let verified = verify_receipt(&bytes, &receipt, &[pinned])?;
//! assert_eq!(verified.checkpoint().size, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod answer;
pub mod checkpoint;
pub mod cosignature;
pub mod hash;
pub mod note;
pub mod proof;
pub mod receipt;
pub mod record;
pub mod tree;
pub mod verify;

pub use checkpoint::{log_origin, Checkpoint};
pub use hash::Hash;
pub use receipt::{verify_receipt, Receipt, VerifiedReceipt};
pub use record::{Record, RecordKind};
pub use tree::MerkleTree;
pub use verify::{verify_log, LogError, LogErrorKind, LogSummary, LogVerifier};
