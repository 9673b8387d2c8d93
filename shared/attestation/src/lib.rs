//! Nitro Enclaves attestation for Enclave Approvals: access to the Nitro Secure Module (the
//! `/dev/nsm` device, or a mock one off hardware) and attestation documents — produce, parse,
//! verify.
//!
//! - [`Nsm`] is the NSM's request set; [`DeviceNsm`] talks to `/dev/nsm` inside an enclave,
//!   [`MockNsm`] stands in everywhere else and signs with its own P-384 chain.
//! - [`verify`] checks a document end to end (SPEC-trust §3): bounded parsing (which
//!   requires PCR0, 1 and 2 in every document, [`REQUIRED_PCRS`]), the certificate
//!   chain up to a pinned [`TrustRoot`], validity, constraints, the COSE ES384 signature, debug
//!   mode, then the caller's PCRs, `public_key`, `user_data`, `nonce` and maximum age. It is a
//!   pure function: the time is an argument. Only it makes a [`Verified`] document.
//! - [`parse_unverified`] reads a document without checking anything, for display.
//! - [`TrustRoot::insecure_qemu_unsigned`] is the one insecure mode: it accepts the unsigned
//!   documents of QEMU's `nitro-enclave` machine (and only those), for booting the real image
//!   under QEMU. Every other root refuses them with [`VerifyError::UnsignedQemuDocument`].
//!
//! ```
//! use ea_attestation::{verify, Measurements, MockNsm, MockNsmConfig, Nsm, VerifyOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A mock enclave whose PCR0/1/2 measure a (pretend) binary.
//! let nsm = MockNsm::new(MockNsmConfig::new(Measurements::of_executable(b"enclave image")))?;
//! let document = nsm.attestation(Some(b"record hash"), Some(b"nonce"), None)?;
//!
//! // Verifiers accept it only when given the mock root explicitly.
//! let options = VerifyOptions::new(nsm.trust_root()?)
//!     .pcrs(nsm.pcrs())
//!     .user_data(b"record hash".to_vec())
//!     .nonce(b"nonce".to_vec());
//! let verified = verify(&document, &options)?;
//! assert_eq!(verified.module_id, nsm.module_id());
//!
//! // The AWS root refuses it.
//! let aws = VerifyOptions::new(ea_attestation::TrustRoot::aws_nitro_root_g1()?);
//! assert!(matches!(
//!     verify(&document, &aws),
//!     Err(ea_attestation::VerifyError::UntrustedRoot { .. })
//! ));
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod cbor;
mod cose_keys;
mod document;
pub mod limits;
mod nsm;
mod root;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod timestamp;
mod verify;
mod x509;

pub use cbor::CborError;
pub use document::{
    parse_unverified, AttestationDocument, Digest, ParseError, DEBUG_MODE_PCRS, REQUIRED_PCRS,
};
pub use nsm::mock::{MockCaSource, BOOT_LOCKED_PCRS, LEAF_LIFETIME, MAX_EXTEND_DATA_LEN};
pub use nsm::{
    locked_pcrs, Clock, DeviceErrorCode, DeviceNsm, Measurements, MeasurementsError, MockCa,
    MockCaError, MockNsm, MockNsmConfig, Nsm, NsmDescription, NsmError, PcrState, SystemClock,
    RANDOM_LEN,
};
pub use root::{RootKind, TrustRoot, TrustRootError, AWS_NITRO_ROOT_G1_SHA256};
pub use timestamp::UnixMillis;
pub use verify::{
    verify, CertPosition, Check, Hex, MaxAge, MaybeHex, ValidationTime, VerificationReport,
    Verified, VerifyError, VerifyOptions, MAX_CLOCK_SKEW,
};
pub use x509::CertificateError;
