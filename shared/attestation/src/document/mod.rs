//! The attestation document: its fields, its bounded parser and its canonical encoding.

mod encode;
mod error;
mod parse;

use std::collections::BTreeMap;

pub(crate) use encode::encode_payload;
pub use error::ParseError;
pub(crate) use parse::{parse_cose, parse_payload, Envelope};

/// The PCRs that are all zero in a debug-mode enclave (PCR8 too, when the image is unsigned).
pub const DEBUG_MODE_PCRS: [u16; 3] = [0, 1, 2];

/// The PCRs every document must carry ([`ParseError::MissingPcr`] otherwise): the image,
/// the kernel and bootstrap, the application. The same as [`DEBUG_MODE_PCRS`], so that
/// debug mode is never decided over absent values.
pub const REQUIRED_PCRS: [u16; 3] = DEBUG_MODE_PCRS;

/// The digest the NSM uses for PCRs; SHA-384 is the only one Nitro Enclaves use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Digest {
    /// SHA-384: every PCR is 48 bytes.
    Sha384,
}

impl Digest {
    /// The name as written in the document (`"SHA384"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Digest::Sha384 => "SHA384",
        }
    }
}

/// The payload of a Nitro attestation document.
///
/// A value of this type says nothing about who produced it: [`crate::parse_unverified`]
/// returns one without any check; [`crate::verify`] returns one wrapped in
/// [`crate::Verified`] after every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationDocument {
    /// The issuing NSM module, e.g. `i-020b6af9246d90e92-enc0183d09086c24190`.
    pub module_id: String,
    /// The digest of the PCRs.
    pub digest: Digest,
    /// When the document was created, in milliseconds since the Unix epoch (UTC).
    pub timestamp: u64,
    /// The locked PCRs at that moment, by index.
    pub pcrs: BTreeMap<u16, Vec<u8>>,
    /// The DER certificate whose key signed the document.
    pub certificate: Vec<u8>,
    /// The issuing CA bundle, `[root, intermediate, ...]`, DER.
    pub cabundle: Vec<Vec<u8>>,
    /// The optional public key the enclave asked to include.
    pub public_key: Option<Vec<u8>>,
    /// The optional user data the enclave asked to include.
    pub user_data: Option<Vec<u8>>,
    /// The optional nonce the enclave asked to include.
    pub nonce: Option<Vec<u8>>,
}

impl AttestationDocument {
    /// True when PCR0, PCR1 and PCR2 are all zero: an enclave started in debug mode, whose
    /// memory and console the parent instance can read. A parsed document always carries
    /// all three ([`REQUIRED_PCRS`]); in one built by hand a missing PCR counts as zero, so
    /// a document that measures nothing is never mistaken for a production one.
    pub fn is_debug_mode(&self) -> bool {
        DEBUG_MODE_PCRS.iter().all(|index| {
            self.pcrs
                .get(index)
                .is_none_or(|value| value.iter().all(|&b| b == 0))
        })
    }
}

/// Parses an attestation document **without verifying anything**: not the signature, not the
/// certificates, not the PCRs. Use it only to display or route a document; decisions need
/// [`crate::verify`].
///
/// Parsing is bounded (see [`crate::limits`]) and accepts an untagged COSE_Sign1 or one with
/// tag 18, signed (ES384) or QEMU's unsigned shape alike: the parser only reads.
pub fn parse_unverified(document: &[u8]) -> Result<AttestationDocument, ParseError> {
    let cose = parse_cose(document)?;
    parse_payload(cose.payload)
}

#[cfg(test)]
mod tests;
