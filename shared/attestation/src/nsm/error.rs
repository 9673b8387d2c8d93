use std::io;
use std::path::PathBuf;

use thiserror::Error;

use super::mock::{MeasurementsError, MockCaError};

/// The error codes the NSM device answers with (`aws_nitro_enclaves_nsm_api::api::ErrorCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceErrorCode {
    /// An argument is invalid.
    InvalidArgument,
    /// A PCR index is out of range.
    InvalidIndex,
    /// The device's response did not decode.
    InvalidResponse,
    /// A PCR is locked.
    ReadOnlyIndex,
    /// The operation is not allowed.
    InvalidOperation,
    /// The response buffer is too small.
    BufferTooSmall,
    /// The request is too large.
    InputTooLarge,
    /// The device failed internally.
    InternalError,
}

impl std::fmt::Display for DeviceErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Why an NSM request failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NsmError {
    /// The NSM device cannot be opened (not inside a Nitro Enclave, or no permission).
    #[error("cannot open the NSM device {path}: {source}; /dev/nsm exists only inside a Nitro Enclave (use the mock NSM elsewhere)")]
    DeviceUnavailable {
        /// The device path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A PCR index outside `0..32`.
    #[error("PCR index {index} is outside 0..32")]
    InvalidIndex {
        /// The index asked for.
        index: u16,
    },
    /// The PCR is locked: it cannot be extended or locked again.
    #[error("PCR{index} is locked (read-only)")]
    ReadOnlyIndex {
        /// The index.
        index: u16,
    },
    /// `LockPCRs` with a range beyond the 32 PCRs.
    #[error("lock range {range} exceeds the 32 PCRs")]
    InvalidLockRange {
        /// The range asked for.
        range: u16,
    },
    /// An input larger than the NSM accepts.
    #[error("{field} is {len} bytes, more than the {max} accepted")]
    InputTooLarge {
        /// Which input.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An input the NSM refuses for another reason.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What is wrong.
        reason: &'static str,
    },
    /// The device answered a request with an error code.
    #[error("NSM device refused {request}: {code}")]
    Device {
        /// The request.
        request: &'static str,
        /// The device's code.
        code: DeviceErrorCode,
    },
    /// The device answered with a response of another request's type.
    #[error("NSM device answered {request} with an unexpected response")]
    UnexpectedResponse {
        /// The request.
        request: &'static str,
    },
    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed")]
    RandomUnavailable,
    /// The mock NSM's certificate authority failed.
    #[error("mock NSM CA: {0}")]
    MockCa(#[from] MockCaError),
    /// The mock NSM's measurements could not be read.
    #[error("mock NSM measurements: {0}")]
    Measurements(#[from] MeasurementsError),
    /// Signing the attestation document failed.
    #[error("signing the attestation document failed: {0}")]
    Signing(#[source] aws_nitro_enclaves_cose::error::CoseError),
    /// The mock CA's root is not an acceptable trust root.
    #[error("mock NSM root: {0}")]
    MockRoot(#[source] crate::TrustRootError),
    /// The mock NSM's first document did not verify against its own root (a broken CA).
    #[error("mock NSM self-check failed: {0}")]
    SelfCheck(#[source] Box<crate::VerifyError>),
}
