//! The enclave application: serves the parent's requests over vsock (or a unix socket off
//! hardware), one connection carrying many concurrent requests; verifies each client's
//! signature, decides in log order with the ledger, and answers once the records are durable
//! in the parent's store, with receipts.
//!
//! Everything the parent sends is untrusted: frames are size-checked before allocation and
//! decoded into typed messages; a bad frame gets a typed error reply, never a panic; what
//! the parent's store returns is verified against attested checkpoints before it is used.

pub mod app;
pub mod audit_log;
pub mod handler;
pub mod log_key;
pub mod log_keys;
pub mod recovery;
pub mod sequencer;
pub mod server;
pub mod service;
pub mod store_client;

pub use handler::EnclaveHandler;
pub use server::{serve, ServerConfig};
pub use service::{LogKeySource, Service, ServiceConfig};
