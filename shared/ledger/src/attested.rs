//! The attestation checker the log verifier is given, shared by enclave recovery and
//! `govctl audit verify`: `ea_attestation::verify` against the pinned trust root, each
//! document at its own time. It returns the document's PCRs: which image made each document
//! is the log's to say (the genesis image, then the images approved changes admit), not a
//! single set pinned here; the caller pins the genesis image on the log verifier
//! (`LogVerifier::pin_genesis_image`) and the ledger checks each start against the images
//! admitted at that point. PCRs pinned in the options (e.g. PCR3, the instance role) still
//! apply to every document.
//!
//! Documents in a log are old by the time anyone reads it again (their leaf certificates
//! live about three hours), so certificates are checked at the document's own timestamp;
//! what makes an old document trustworthy is the chain to the pinned root and the PCRs.

use ea_attestation::{verify, ValidationTime, VerifyError, VerifyOptions};
use ea_audit::verify::{AttestationChecker, AttestedDocument, AttestedKey};

/// Checks documents with `ea_attestation::verify`; the expected `user_data` is set per
/// document by the log verifier.
#[derive(Debug, Clone)]
pub struct DocumentChecker {
    options: VerifyOptions,
}

impl DocumentChecker {
    /// A checker with these options (root, pinned PCRs, debug policy). Validation time and
    /// user data are set per document.
    pub fn new(options: VerifyOptions) -> Self {
        Self { options }
    }
}

impl AttestationChecker for DocumentChecker {
    type Error = VerifyError;

    fn check(
        &self,
        document: &[u8],
        expected_user_data: &[u8],
    ) -> Result<AttestedKey, VerifyError> {
        self.check_document(document, expected_user_data)
            .map(|document| AttestedKey {
                public_key: document.public_key,
            })
    }

    fn check_document(
        &self,
        document: &[u8],
        expected_user_data: &[u8],
    ) -> Result<AttestedDocument, VerifyError> {
        let options = self
            .options
            .clone()
            .at(ValidationTime::DocumentTime)
            .user_data(expected_user_data.to_vec());
        let document = verify(document, &options)?.into_inner();
        Ok(AttestedDocument {
            public_key: document.public_key,
            pcrs: document.pcrs,
        })
    }
}
