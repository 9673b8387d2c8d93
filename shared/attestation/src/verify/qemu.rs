//! The insecure QEMU mode's one check: the document is exactly what QEMU's `nitro-enclave`
//! NSM writes (`hw/virtio/virtio-nsm.c` in QEMU 10: `add_protected_header_to_cose`,
//! `add_ca_bundle_to_payload`, `add_payload_to_cose`, `add_signature_to_cose`).
//!
//! The envelope (`{1: -1}`, a 64-byte signature) was checked by the parser. What is left are
//! the placeholders: a zero signature, a zero `certificate`, a `cabundle` of one zero entry.
//! Requiring them exactly keeps the mode from accepting anything else unsigned, e.g. a real
//! document whose signature was stripped: its certificates would not be zero.

use super::error::VerifyError;
use crate::document::AttestationDocument;
use crate::limits::{QEMU_PLACEHOLDER_CERTIFICATE_LEN, QEMU_UNSIGNED_SIGNATURE_LEN};

fn is_zero(bytes: &[u8], len: usize) -> bool {
    bytes.len() == len && bytes.iter().all(|&b| b == 0)
}

/// Refuses any document whose placeholders are not QEMU's.
pub(crate) fn check_shape(doc: &AttestationDocument, signature: &[u8]) -> Result<(), VerifyError> {
    if !is_zero(signature, QEMU_UNSIGNED_SIGNATURE_LEN) {
        return Err(VerifyError::NotQemuShape {
            field: "signature",
            expected: "64 zero bytes",
        });
    }
    if !is_zero(&doc.certificate, QEMU_PLACEHOLDER_CERTIFICATE_LEN) {
        return Err(VerifyError::NotQemuShape {
            field: "certificate",
            expected: "64 zero bytes",
        });
    }
    let [entry] = doc.cabundle.as_slice() else {
        return Err(VerifyError::NotQemuShape {
            field: "cabundle",
            expected: "an array of one entry of 64 zero bytes",
        });
    };
    if !is_zero(entry, QEMU_PLACEHOLDER_CERTIFICATE_LEN) {
        return Err(VerifyError::NotQemuShape {
            field: "cabundle",
            expected: "an array of one entry of 64 zero bytes",
        });
    }
    Ok(())
}
