//! Nitro Enclave image files (EIF): parse them within bounds, check their CRC, and compute
//! the PCRs an enclave started from them will report.
//!
//! The PCRs are what everything else trusts: the KMS key policy releases the log key only to
//! an enclave whose attestation shows them, and an auditor checks the audit log against them.
//! So they must be computed from the image file exactly as `nitro-cli build-enclave` and
//! `describe-eif` compute them, without depending on nitro-cli (or OpenSSL) to do it:
//!
//! ```text
//! PCR = SHA-384( 0^48 || SHA-384(data) )            one extend from 48 zero bytes
//! PCR0 data = kernel || cmdline || every ramdisk     (section data, in file order)
//! PCR1 data = kernel || cmdline || first ramdisk     (AWS's bootstrap)
//! PCR2 data = every ramdisk after the first          (the application)
//! PCR8 data = DER of the signing certificate         (signed images only)
//! ```
//!
//! Section headers, the metadata section (build time, tool versions) and the signature
//! section are not measured. See [`measure`] for where this comes from and [`format`](mod@format) for the
//! file layout.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ea_eif::{extend_from_zero, writer::EifBuilder, Eif, Measurements};
//!
//! // A synthetic image (the writer exists for tests): kernel, cmdline, init, application.
//! let bytes = EifBuilder::new(b"kernel".to_vec(), b"console=ttyS0".to_vec())
//!     .ramdisk(b"init".to_vec())
//!     .ramdisk(b"app".to_vec())
//!     .build()?;
//!
//! let eif = Eif::parse(&bytes)?; // bounds, layout and CRC checked
//! let pcrs = eif.measurements();
//! assert_eq!(pcrs.pcr(2), Some(extend_from_zero(&[b"app"])));
//! assert_eq!(pcrs.pcr(8), None); // unsigned
//!
//! // The `pcrs.json` form, which `Measurements::from_json` reads back.
//! let json = pcrs.to_json_pretty();
//! assert!(json.contains("\"HashAlgorithm\": \"Sha384 { ... }\""));
//! assert_eq!(Measurements::from_json(json.as_bytes())?, pcrs);
//!
//! // A corrupted byte is refused, with the reason.
//! let mut corrupted = bytes.clone();
//! *corrupted.last_mut().unwrap() ^= 1;
//! assert!(matches!(Eif::parse(&corrupted), Err(ea_eif::EifError::CrcMismatch { .. })));
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod cose;
pub mod describe;
mod error;
pub mod format;
mod image;
pub mod measure;
mod measurements;
mod metadata;
#[cfg(feature = "writer")]
pub mod ramdisk;
mod signature;
#[cfg(feature = "writer")]
pub mod writer;

pub use cose::{CoseAlgorithm, SignatureCheckError};
pub use describe::Description;
pub use error::EifError;
pub use format::{Architecture, SectionKind};
pub use image::{eif_crc, Eif, Section};
pub use measure::{extend_from_zero, Pcr, PCR_LEN};
pub use measurements::{
    parse_pcr, Measurements, MeasurementsError, PcrComparison, PcrStatus, HASH_ALGORITHM,
    MAX_PCR_INDEX,
};
pub use metadata::{BuildInfo, Metadata};
pub use signature::{PcrSignature, SignatureSectionError};
