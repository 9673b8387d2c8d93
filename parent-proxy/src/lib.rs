//! The parent-instance proxy: an HTTPS API for clients, relayed into the enclave.
//!
//! The proxy is untrusted by design: it can drop or delay what it relays, never forge it. It
//! keeps a small pool of multiplexed connections to the enclave, reconnects when the enclave
//! restarts, and bounds everything a client can make it hold: body size, requests in flight,
//! time per request.
//!
//! It also keeps the enclave's audit log on the parent's disk ([`store`]): the enclave appends
//! through the store service, and anyone can download the log through the export routes
//! ([`log_routes`]) and verify it offline.
//!
//! For the enclave's key release through KMS it relays the enclave's TLS connections to
//! one KMS endpoint ([`kms_relay`]) and hands the enclave the instance role's AWS
//! credentials ([`credentials`], answered by the store service).
//!
//! Two commands run beside it on the instance and work on the store's file directly: a
//! consistent copy taken while it serves ([`store::backup()`]), and a new store rebuilt from
//! a verified `govctl audit fetch` directory ([`import`]).
//!
//! It submits the log's checkpoints to C2SP tlog-witnesses in the background and keeps their
//! cosignatures in the store, served at `GET /v1/log/witnessed` ([`witnesses`]); appends never
//! wait for a witness.
//!
//! For an enclave booted under QEMU rather than by nitro-cli, it can also answer the boot
//! heartbeat that nitro-cli answers on EC2 ([`heartbeat`]).

pub mod api;
pub mod credentials;
pub mod error;
pub mod heartbeat;
pub mod import;
pub mod kms_relay;
pub mod listen;
pub mod log_routes;
pub mod pool;
pub mod requests;
pub mod server;
pub mod store;
pub mod tls;
pub mod witnesses;

pub use error::ApiError;
pub use pool::{EnclavePool, PoolConfig};
pub use server::{serve, HttpLimits, Transport};
