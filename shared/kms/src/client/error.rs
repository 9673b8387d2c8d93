//! Why key release failed, in words an operator can act on. No variant carries key
//! material or credentials: KMS's own messages and our checks' results only.

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::cms::CmsError;
use crate::recipient::RecipientKeyError;
use crate::seal::SealError;

/// Why [`super::LogKeyRelease`] could not be built or could not release the log key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    // Configuration.
    /// The extra CA PEM is unreadable.
    #[error("the extra CA certificate for KMS is unusable: {0}")]
    ExtraCa(String),
    /// The host is not a valid TLS server name.
    #[error("{0:?} is not a valid host name for KMS's TLS certificate")]
    Host(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(rustls::Error),

    // The enclave's own steps.
    /// No RSA key for the Recipient.
    #[error(transparent)]
    RecipientKey(RecipientKeyError),
    /// The NSM gave no attestation document.
    #[error("the NSM could not attest the recipient key: {0}")]
    Attestation(ea_attestation::NsmError),
    /// A task of ours stopped (it panicked or the runtime is shutting down).
    #[error("internal error: {0}")]
    Internal(&'static str),

    // KMS said no.
    /// KMS answered with an error.
    #[error("KMS refused {operation} on {key_id} with {code}: {hint}{message}")]
    Refused {
        /// The operation.
        operation: &'static str,
        /// The configured key.
        key_id: String,
        /// KMS's error code (`AccessDeniedException`, ...).
        code: String,
        /// What it usually means, for this enclave.
        hint: String,
        /// KMS's own message, in parentheses, if it gave one.
        message: String,
    },
    /// No answer from KMS: credentials, connection, TLS or timeout.
    #[error("the {operation} call to KMS failed before KMS answered: {detail}")]
    Unreachable {
        /// The operation.
        operation: &'static str,
        /// The whole error chain (no secrets: the SDK's and our connector's messages).
        detail: String,
    },

    // KMS (or something posing as it) answered strangely.
    /// The answer carries `Plaintext`: the Recipient was ignored.
    #[error(
        "KMS answered {operation} with the key in Plaintext instead of CiphertextForRecipient: \
         the Recipient was ignored (is the endpoint really AWS KMS?); refused"
    )]
    PlaintextReturned {
        /// The operation.
        operation: &'static str,
    },
    /// The answer has neither `Plaintext` nor `CiphertextForRecipient`.
    #[error("KMS answered {operation} without CiphertextForRecipient")]
    NoCiphertextForRecipient {
        /// The operation.
        operation: &'static str,
    },
    /// A field the answer must have is missing.
    #[error("KMS answered {operation} without {field}")]
    MissingField {
        /// The operation.
        operation: &'static str,
        /// The field.
        field: &'static str,
    },
    /// The CiphertextForRecipient did not open.
    #[error("the CiphertextForRecipient of {operation} does not open: {source}")]
    Cms {
        /// The operation.
        operation: &'static str,
        /// Why.
        source: CmsError,
    },
    /// The released data key is not 32 bytes.
    #[error("the data key released by {operation} is {len} bytes, not 32")]
    DataKeyLength {
        /// The operation.
        operation: &'static str,
        /// Its length.
        len: usize,
    },
    /// `Decrypt` of a fresh data key gave another key than `GenerateDataKey`.
    #[error("KMS's Decrypt of the new data key gave a different key than GenerateDataKey; nothing was sealed")]
    RoundTrip,

    // The sealed blob.
    /// Sealing or opening the log key seed failed.
    #[error(transparent)]
    Seal(SealError),
}

/// What a KMS error code usually means for an enclave asking for its log key.
fn hint(code: &str, pcr0: Option<&str>) -> String {
    let image = pcr0.map_or_else(
        || "this enclave's image".to_owned(),
        |pcr0| format!("this enclave (PCR0 {pcr0})"),
    );
    match code {
        "AccessDeniedException" => format!(
            "the key policy does not allow {image} with these credentials; compare the \
             policy's kms:RecipientAttestation conditions with the image's PCRs \
             (govctl eif pcrs) and its principal with the instance role "
        ),
        "NotFoundException" => "the key does not exist in this account and region ".to_owned(),
        "DisabledException" | "KMSInvalidStateException" => {
            "the key is disabled or pending deletion ".to_owned()
        }
        "InvalidCiphertextException" | "IncorrectKeyException" => {
            "the stored data key was not made by this key (another key, or altered) ".to_owned()
        }
        "UnrecognizedClientException" | "InvalidSignatureException" | "ExpiredTokenException" => {
            "the credentials from the parent are unknown, wrong or expired ".to_owned()
        }
        "ValidationException" => {
            "KMS did not accept the request or its attestation document ".to_owned()
        }
        "ThrottlingException" => "KMS throttled the request; retry later ".to_owned(),
        _ => String::new(),
    }
}

pub(super) fn from_sdk<E, R>(
    operation: &'static str,
    key_id: &str,
    pcr0: Option<&str>,
    error: SdkError<E, R>,
) -> KmsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &error {
        SdkError::ServiceError(service) => {
            let code = service
                .err()
                .code()
                .unwrap_or("an unnamed error")
                .to_owned();
            KmsError::Refused {
                operation,
                key_id: key_id.to_owned(),
                hint: hint(&code, pcr0),
                message: service
                    .err()
                    .message()
                    .map(|m| format!("({m})"))
                    .unwrap_or_default(),
                code,
            }
        }
        _ => KmsError::Unreachable {
            operation,
            detail: DisplayErrorContext(&error).to_string(),
        },
    }
}
