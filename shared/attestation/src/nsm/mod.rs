//! The Nitro Secure Module behind one trait, with two implementations: the `/dev/nsm` device
//! ([`DeviceNsm`]) inside a real enclave, and the [`MockNsm`] everywhere else.

mod clock;
mod device;
mod error;
pub mod mock;

use std::collections::{BTreeMap, BTreeSet};

pub use clock::{Clock, SystemClock};
pub use device::DeviceNsm;
pub use error::{DeviceErrorCode, NsmError};
pub use mock::{Measurements, MeasurementsError, MockCa, MockCaError, MockNsm, MockNsmConfig};

use crate::document::Digest;

/// Bytes of entropy one `GetRandom` returns (the NSM's buffer size).
pub const RANDOM_LEN: usize = 256;

/// One PCR: its value and whether it is locked (read-only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrState {
    /// True once the PCR can no longer be extended.
    pub locked: bool,
    /// The current value.
    pub value: Vec<u8>,
}

/// What `DescribeNSM` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsmDescription {
    /// Major version of the module.
    pub version_major: u16,
    /// Minor version.
    pub version_minor: u16,
    /// Patch version.
    pub version_patch: u16,
    /// The module id that attestation documents carry.
    pub module_id: String,
    /// Number of PCRs (32).
    pub max_pcrs: u16,
    /// The locked PCRs.
    pub locked_pcrs: BTreeSet<u16>,
    /// The PCR digest.
    pub digest: Digest,
}

/// The NSM requests of `aws-nitro-enclaves-nsm-api`, one method each.
pub trait Nsm: Send + Sync {
    /// `DescribePCR`: a PCR's value and lock state.
    fn describe_pcr(&self, index: u16) -> Result<PcrState, NsmError>;

    /// `ExtendPCR`: `PCR[index] = SHA-384(PCR[index] || data)`; returns the new value.
    /// Refused for locked PCRs.
    fn extend_pcr(&self, index: u16, data: &[u8]) -> Result<Vec<u8>, NsmError>;

    /// `LockPCR`: makes one PCR read-only.
    fn lock_pcr(&self, index: u16) -> Result<(), NsmError>;

    /// `LockPCRs`: makes PCRs `0..range` read-only.
    fn lock_pcrs(&self, range: u16) -> Result<(), NsmError>;

    /// `DescribeNSM`.
    fn describe(&self) -> Result<NsmDescription, NsmError>;

    /// `Attestation`: a signed attestation document (COSE_Sign1 bytes) carrying the locked
    /// PCRs and the optional fields.
    fn attestation(
        &self,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        public_key: Option<&[u8]>,
    ) -> Result<Vec<u8>, NsmError>;

    /// `GetRandom`: [`RANDOM_LEN`] bytes of entropy.
    fn get_random(&self) -> Result<Vec<u8>, NsmError>;
}

/// The locked PCRs of an NSM, as an attestation document would carry them.
pub fn locked_pcrs(nsm: &dyn Nsm) -> Result<BTreeMap<u16, Vec<u8>>, NsmError> {
    let description = nsm.describe()?;
    description
        .locked_pcrs
        .iter()
        .map(|&index| Ok((index, nsm.describe_pcr(index)?.value)))
        .collect()
}
