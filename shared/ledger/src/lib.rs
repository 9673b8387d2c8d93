//! The governed ledger of Enclave Approvals: what a signed request may ask for, how the
//! enclave decides it in log order, which audit records that writes, and how the records
//! rebuild the state.
//!
//! It joins the policy engine (`ea-policy`), the record format (`ea-audit`) and signed
//! requests (`ea-protocol`) into the one deterministic application that both sides run:
//! the enclave executes requests with it, and auditors (`govctl audit verify`) and the
//! enclave's own recovery replay the log with it. Like the engine it does no I/O and reads
//! no clock: time is an argument.
//!
//! - [`Genesis`]: the first state, given once; record 0 holds it and its hash names the log.
//! - [`Directory::authenticate`]: bytes to an [`Authenticated`] request (envelope, body,
//!   freshness, key, signature, operation), on any thread, against a key snapshot.
//! - [`Ledger::execute`]: in log order, the key and nonce re-checked, the [`Operation`]
//!   decided; returns the [`Answer`] and the [`Draft`]s of its audit records.
//! - [`Ledger::tick`]: automatic transitions; [`Ledger::replay`]: a record back into state.
//!
//! ```
//! use ea_ledger::{Answer, Directory, Genesis, Ledger, Operation};
//! use ea_policy::{Command, Scope};
//! use ea_protocol::signed::{encode_signed_request, RequestSigner, SignatureAlgorithm};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (alice, _pkcs8) = RequestSigner::generate(SignatureAlgorithm::Ed25519)?;
//! let alice = alice.with_key_id("laptop");
//! let key = base64::Engine::encode(
//!     &base64::engine::general_purpose::STANDARD, &alice.public_key().bytes);
//! let genesis = Genesis::from_json(&format!(r#"{{
//!   "version": 1, "name": "example", "createdAt": "2026-01-01T00:00:00Z",
//!   "policy": {{
//!     "principals": [{{"id": "alice", "type": "User",
//!       "keys": [{{"keyId": "laptop", "algorithm": "Ed25519", "publicKey": "{key}"}}]}}],
//!     "communities": [{{"id": "/communities/c1", "addressSpace": "10.0.0.0/8"}}],
//!     "roleAssignments": [{{"id": "ra-1", "principalId": "alice",
//!       "roleDefinitionId": "Community Owner", "scope": "/communities/c1"}}]
//!   }}
//! }}"#))?;
//! let (mut ledger, genesis_record) = Ledger::from_genesis(&genesis, 1024)?;
//!
//! // alice signs a request; the enclave authenticates it, then decides it in log order.
//! let now = 1_767_225_600_000; // 2026-01-01T00:00:00Z
//! let create = Operation::Submit {
//!     command: Box::new(Command::CreateVirtualEnclave {
//!         id: Scope::parse("/communities/c1/virtualEnclaves/e1")?,
//!         address_space: "10.1.0.0/16".parse()?,
//!     }),
//!     justification: None,
//! };
//! let bytes = encode_signed_request(&alice.sign("alice", &create, now)?);
//! let request = Directory::of(ledger.state()).authenticate(&bytes, now)?;
//! let execution = ledger.execute(&request, now)?;
//! assert!(matches!(execution.answer, Answer::Applied { .. }));
//! assert_eq!(execution.drafts.len(), 1, "one state_change record");
//!
//! // The same bytes again are a replay.
//! assert!(ledger.execute(&request, now).is_err());
//! # let _ = genesis_record;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod agreement;
mod answer;
mod attested;
mod directory;
mod genesis;
mod images;
mod ledger;
mod operation;
mod query;
mod records;
mod reply;

pub use agreement::{check_answer_against_records, AnswerMismatch};
pub use answer::{status_of, Answer, ReadResult, Resource};
pub use attested::DocumentChecker;
pub use directory::{key_status, verification_key, Authenticated, Directory, KeyStatus};
pub use genesis::{
    Genesis, GenesisError, LedgerSettings, DEFAULT_MAX_PENDING_APPROVALS, GENESIS_VERSION,
    MAX_GENESIS_LEN,
};
pub use images::{image_of_document_unverified, ImageAdmission, ImageView, StartImageError};
pub use ledger::{Execution, Ledger, Rejected, ReplayError};
pub use operation::{Operation, Query};
pub use records::{
    carries_events, events_of, events_of_fields, Draft, EventsError, PLATFORM_ACTOR,
};
pub use reply::{base64_bytes, request_error_status, ErrorDetail, ErrorReply, RecordProof, Reply};
