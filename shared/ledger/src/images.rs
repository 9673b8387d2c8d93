//! Which enclave images may continue the log, followed record by record.
//!
//! The policy state holds the admitted images ([`ea_policy::AdmittedImage`]), changed by
//! approved `admitImage` and `retireImage` commands like any governed operation. What only
//! the ledger sees is the log itself: each `enclave_start` record says which image started
//! (the PCRs of its attestation document), and the ledger turns it into
//! [`Event::ImageStarted`], which the state refuses unless that image is admitted at that
//! point of the log. The first start admits its own image (the genesis image) unless the
//! genesis document named the images the log starts with.
//!
//! The ledger reads the PCRs from the document without verifying it: the log verifier
//! (`ea_audit::LogVerifier`, given by both the enclave's recovery and `govctl audit verify`)
//! verifies that very document before the record is replayed, and refuses the log if it does
//! not verify. Only `enclave_start` records are looked at, so replay does no more work per
//! record than before.

use ea_policy::{AdmittedImage, ApprovalId, Event, ImagePcrs, Timestamp};
use serde::{Deserialize, Serialize};

/// Why the image of an `enclave_start` record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartImageError {
    /// The record carries no attestation document.
    #[error("the enclave_start record carries no attestation document")]
    NoDocument,
    /// The document does not parse.
    #[error("the enclave_start record's attestation document does not parse: {0}")]
    Document(String),
    /// Its PCRs do not name an image.
    #[error("the enclave_start record's attestation document names no image: {0}")]
    Pcrs(ea_policy::ImageError),
}

/// The image an attestation document shows (PCR0–2, and PCR8 when set), read **without
/// verifying the document**: the log verifier verifies it (see the module documentation).
pub fn image_of_document_unverified(document: &[u8]) -> Result<ImagePcrs, StartImageError> {
    let parsed = ea_attestation::parse_unverified(document)
        .map_err(|e| StartImageError::Document(e.to_string()))?;
    ImagePcrs::from_pcrs(parsed.pcrs.iter().map(|(i, v)| (*i, v.as_slice())))
        .map_err(StartImageError::Pcrs)
}

/// An admitted image as reads and `govctl image list` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageView {
    /// The image.
    pub pcrs: ImagePcrs,
    /// When it was admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admitted_at: Option<Timestamp>,
    /// The approval that admitted it (none for the genesis image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<ApprovalId>,
    /// The record that admitted it: the `approval_applied` record of its approval, the
    /// first `enclave_start` for a genesis image the first start admitted, or 0 (the
    /// genesis record) for an image the genesis document names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
    /// Whether this image is the one writing the log, and since which `enclave_start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_since: Option<u64>,
}

impl ImageView {
    pub(crate) fn of(image: &AdmittedImage, record: Option<u64>, running: Option<u64>) -> Self {
        ImageView {
            pcrs: image.pcrs.clone(),
            admitted_at: image.admitted_at,
            approval_id: image.approval_id.clone(),
            record,
            running_since: running,
        }
    }
}

/// One admission of an image, and its retirement if any, as the log recorded them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageAdmission {
    /// The image.
    pub pcrs: ImagePcrs,
    /// The record that admitted it (0: the genesis document named it).
    pub admitted_by: u64,
    /// The approval that admitted it (none for the genesis image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<ApprovalId>,
    /// The record that retired it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_by: Option<u64>,
}

/// The events an `enclave_start` of `image` at `time` makes: the genesis image's admission
/// at the log's first start (when the genesis named no image), then the start itself.
pub(crate) fn start_events(
    state: &ea_policy::PolicyState,
    image: &ImagePcrs,
    time: u64,
) -> Vec<Event> {
    let mut events = Vec::new();
    let first = state.running_image().is_none() && state.images().next().is_none();
    if first {
        events.push(Event::ImageAdmitted(AdmittedImage {
            pcrs: image.clone(),
            admitted_at: i64::try_from(time)
                .ok()
                .and_then(|ms| Timestamp::from_unix_millis(ms).ok()),
            approval_id: None,
        }));
    }
    events.push(Event::ImageStarted {
        pcrs: image.clone(),
    });
    events
}
