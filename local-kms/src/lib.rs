//! A local stand-in for AWS KMS, for running and testing the enclave's key release without
//! AWS: the same JSON 1.1 protocol `aws-sdk-kms` speaks, SigV4 checked against configured
//! credentials, key policies evaluated as KMS evaluates them, and `Recipient` requests
//! answered with CMS `CiphertextForRecipient` only after their attestation document passed
//! the project's own verifier ([`ea_attestation::verify`]) against a configured root (the
//! mock NSM's, locally).
//!
//! Operations: CreateKey, GenerateDataKey, Decrypt, Encrypt, GenerateRandom, GetKeyPolicy,
//! PutKeyPolicy. Keys (symmetric, AES-256-GCM underneath) and their policies live in a state
//! file, so restarts keep them. Errors are KMS's: `{"__type": "AccessDeniedException",
//! "message": ...}` with HTTP 400, and so on.
//!
//! The binary (`local-kms --help`) makes (or reloads) a CA and a server certificate at start,
//! writes the CA's PEM where `--ca-out` says, and prints `listening on https://<address>`
//! when ready. See docs/kms.md.
//!
//! ```
//! use ea_kms::sigv4::Caller;
//! use local_kms::ops::{default_policy, LocalKms, Settings};
//! use local_kms::state::KeyStore;
//!
//! # fn main() -> anyhow::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let kms = LocalKms::new(
//!     Settings { region: "eu-west-1".into(), account: "111122223333".into(), attestation_root: None },
//!     KeyStore::open(&dir.path().join("state.json"))?,
//! );
//! kms.ensure_key("1234abcd-12ab-34cd-56ef-1234567890ab", default_policy("111122223333"), 0)?;
//! let caller = Caller {
//!     access_key_id: "AKIA".into(),
//!     principal_arn: "arn:aws:iam::111122223333:user/alice".into(),
//! };
//! let answer = kms.handle(
//!     "GenerateDataKey",
//!     br#"{"KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab", "KeySpec": "AES_256"}"#,
//!     &caller,
//!     1_700_000_000_000,
//! );
//! // No Recipient: the plaintext comes back (the default policy allows the account).
//! assert!(answer.unwrap()["Plaintext"].is_string());
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod ops;
pub mod server;
pub mod state;
pub mod tls;
