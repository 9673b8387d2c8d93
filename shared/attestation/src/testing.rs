//! Test helpers (feature `testing`): documents encoded exactly as QEMU's `nitro-enclave` NSM
//! encodes them, to test the insecure QEMU mode without QEMU.
//!
//! The encoder is written apart from the crate's own CBOR writer, byte by byte after QEMU 10's
//! `hw/virtio/virtio-nsm.c` and libcbor's serializer, so that it is a second reading of the
//! format rather than the parser's mirror. Where libcbor differs from shortest-form CBOR it is
//! followed: the `timestamp`, built with `cbor_build_uint64`, is always written with an
//! 8-byte argument.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::nsm::{locked_pcrs, Clock as _, Nsm, NsmDescription, NsmError, PcrState, SystemClock};

/// What QEMU's NSM puts in an attestation document; the rest (module id aside) is fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuDocument {
    /// The module id (QEMU's default is `i-234-enc5678`; the machine passes its own id).
    pub module_id: String,
    /// `time(NULL) * 1000`: host time, whole seconds, in milliseconds.
    pub timestamp_ms: u64,
    /// Every locked PCR (0..=15 at least once the machine has booted), 48 bytes each.
    pub pcrs: BTreeMap<u16, Vec<u8>>,
    /// `public_key`, or CBOR null.
    pub public_key: Option<Vec<u8>>,
    /// `user_data`, or CBOR null.
    pub user_data: Option<Vec<u8>>,
    /// `nonce`, or CBOR null.
    pub nonce: Option<Vec<u8>>,
}

impl QemuDocument {
    /// A document with QEMU's default module id, these PCRs and time, no optional fields.
    pub fn new(pcrs: BTreeMap<u16, Vec<u8>>, timestamp_ms: u64) -> Self {
        Self {
            module_id: "i-234-enc5678".to_owned(),
            // QEMU reads whole seconds.
            timestamp_ms: timestamp_ms - timestamp_ms % 1000,
            pcrs,
            public_key: None,
            user_data: None,
            nonce: None,
        }
    }

    /// Sets `public_key` (null otherwise).
    pub fn public_key(mut self, public_key: &[u8]) -> Self {
        self.public_key = Some(public_key.to_vec());
        self
    }

    /// Sets `user_data` (null otherwise).
    pub fn user_data(mut self, user_data: &[u8]) -> Self {
        self.user_data = Some(user_data.to_vec());
        self
    }

    /// Sets `nonce` (null otherwise).
    pub fn nonce(mut self, nonce: &[u8]) -> Self {
        self.nonce = Some(nonce.to_vec());
        self
    }

    /// The COSE_Sign1 bytes, as QEMU writes them: an untagged array of the protected header
    /// `{1: -1}`, an empty map, the payload, and 64 zero bytes of "signature".
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        head(&mut out, 4, 4);
        bytes(&mut out, &[0xa1, 0x01, 0x20]);
        head(&mut out, 5, 0);
        bytes(&mut out, &self.payload());
        bytes(&mut out, &[0; 64]);
        out
    }

    /// The payload map, keys in QEMU's order.
    pub fn payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        head(&mut out, 5, 9);
        text(&mut out, "module_id");
        text(&mut out, &self.module_id);
        text(&mut out, "digest");
        text(&mut out, "SHA384");
        text(&mut out, "timestamp");
        // libcbor's cbor_encode_uint64: always the 8-byte form.
        out.push(0x1b);
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        text(&mut out, "pcrs");
        head(&mut out, 5, self.pcrs.len() as u64);
        for (index, value) in &self.pcrs {
            head(&mut out, 0, u64::from(*index));
            bytes(&mut out, value);
        }
        text(&mut out, "certificate");
        bytes(&mut out, &[0; 64]);
        text(&mut out, "cabundle");
        head(&mut out, 4, 1);
        bytes(&mut out, &[0; 64]);
        for (key, value) in [
            ("public_key", &self.public_key),
            ("user_data", &self.user_data),
            ("nonce", &self.nonce),
        ] {
            text(&mut out, key);
            match value {
                Some(value) => bytes(&mut out, value),
                None => out.push(0xf6),
            }
        }
        out
    }
}

/// An NSM that answers as QEMU's `nitro-enclave` device does: another NSM's PCRs (a mock's,
/// usually) and every other request passed through, but attestation documents unsigned, in
/// QEMU's shape, timed by the system clock in whole seconds.
pub struct QemuNsm {
    inner: Arc<dyn Nsm>,
}

impl QemuNsm {
    /// Wraps `inner`, whose locked PCRs the documents carry.
    pub fn new(inner: Arc<dyn Nsm>) -> Self {
        Self { inner }
    }
}

impl Nsm for QemuNsm {
    fn describe_pcr(&self, index: u16) -> Result<PcrState, NsmError> {
        self.inner.describe_pcr(index)
    }

    fn extend_pcr(&self, index: u16, data: &[u8]) -> Result<Vec<u8>, NsmError> {
        self.inner.extend_pcr(index, data)
    }

    fn lock_pcr(&self, index: u16) -> Result<(), NsmError> {
        self.inner.lock_pcr(index)
    }

    fn lock_pcrs(&self, range: u16) -> Result<(), NsmError> {
        self.inner.lock_pcrs(range)
    }

    fn describe(&self) -> Result<NsmDescription, NsmError> {
        self.inner.describe()
    }

    fn attestation(
        &self,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        public_key: Option<&[u8]>,
    ) -> Result<Vec<u8>, NsmError> {
        let mut document =
            QemuDocument::new(locked_pcrs(self.inner.as_ref())?, SystemClock.now_unix_ms());
        document.user_data = user_data.map(<[u8]>::to_vec);
        document.nonce = nonce.map(<[u8]>::to_vec);
        document.public_key = public_key.map(<[u8]>::to_vec);
        Ok(document.encode())
    }

    fn get_random(&self) -> Result<Vec<u8>, NsmError> {
        self.inner.get_random()
    }
}

/// A shortest-form head, as libcbor writes lengths and small integers.
fn head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let major = major << 5;
    if arg < 24 {
        out.push(major | arg as u8);
    } else if let Ok(arg) = u8::try_from(arg) {
        out.extend_from_slice(&[major | 24, arg]);
    } else if let Ok(arg) = u16::try_from(arg) {
        out.push(major | 25);
        out.extend_from_slice(&arg.to_be_bytes());
    } else if let Ok(arg) = u32::try_from(arg) {
        out.push(major | 26);
        out.extend_from_slice(&arg.to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

fn bytes(out: &mut Vec<u8>, value: &[u8]) {
    head(out, 2, value.len() as u64);
    out.extend_from_slice(value);
}

fn text(out: &mut Vec<u8>, value: &str) {
    head(out, 3, value.len() as u64);
    out.extend_from_slice(value.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_and_the_first_payload_bytes_are_qemus() {
        let doc = QemuDocument::new(BTreeMap::from([(0, vec![1; 48])]), 1_700_000_000_123);
        assert_eq!(doc.timestamp_ms, 1_700_000_000_000);
        let bytes = doc.encode();
        // array(4), bstr(3) {1: -1}, map(0), bstr(len) payload...
        assert_eq!(bytes[..6], [0x84, 0x43, 0xa1, 0x01, 0x20, 0xa0]);
        // ... and 64 zero bytes at the end, behind their head 0x58 0x40.
        assert_eq!(bytes[bytes.len() - 66..bytes.len() - 64], [0x58, 0x40]);
        assert!(bytes[bytes.len() - 64..].iter().all(|&b| b == 0));
        let payload = doc.payload();
        // map(9), "module_id"
        assert_eq!(payload[..2], [0xa9, 0x69]);
        let timestamp = [0x1b, 0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00];
        assert!(payload.windows(9).any(|w| w == timestamp));
    }
}
