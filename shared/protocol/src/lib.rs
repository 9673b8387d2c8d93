//! The wire between the parent instance and its enclave: frames, versioned messages,
//! addresses and transports.
//!
//! A frame is a 4-byte big-endian length and that many bytes of CBOR; the length is checked
//! against a limit before anything is allocated. Inside, every message carries the protocol
//! version and a request id, so one connection carries many requests at once.
//!
//! ```
//! use ea_protocol::{decode_message, encode_message, EnclaveRequest};
//!
//! let bytes = encode_message(7, &EnclaveRequest::Health).unwrap();
//! let decoded = decode_message::<EnclaveRequest>(&bytes).unwrap();
//! assert_eq!((decoded.id, decoded.body), (7, EnclaveRequest::Health));
//! ```
#![warn(missing_docs)]

mod address;
pub mod enclave;
pub mod frame;
pub mod key_tables;
mod message;
pub mod rpc;
pub mod signed;
pub mod store;
mod transport;

pub use address::{Address, AddressError};
pub use enclave::{
    DescribedImage, DescribedWitnesses, Description, EnclaveRequest, EnclaveResponse, HealthReport,
    NsmMode,
};
pub use frame::{FrameError, DEFAULT_MAX_FRAME_LEN};
pub use message::{
    decode_message, encode_message, DecodeError, EncodeError, Envelope, ErrorCode, ErrorReply,
    WireMessage, WireReply, PROTOCOL_VERSION, UNKNOWN_REQUEST_ID,
};
pub use store::{Secret, StoreRequest, StoreResponse, WitnessReply};
pub use transport::{Listener, Stream};
