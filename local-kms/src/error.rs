//! KMS's error answers: `{"__type": "<Code>", "message": "..."}` with an HTTP status, the
//! shape `aws-sdk-kms` reads into typed errors.

use std::fmt;

/// The error codes this KMS answers with (KMS's own names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// The key policy does not allow the request.
    AccessDenied,
    /// A missing or out-of-range parameter, or an unusable attestation document.
    Validation,
    /// The body is not JSON of the operation's shape.
    Serialization,
    /// No such key.
    NotFound,
    /// The ciphertext blob is not one of ours, or was altered.
    InvalidCiphertext,
    /// `KeyId` names another key than the ciphertext's.
    IncorrectKey,
    /// The key is disabled.
    Disabled,
    /// A policy document the model refuses.
    MalformedPolicyDocument,
    /// An operation or option this local KMS does not have.
    UnsupportedOperation,
    /// An unknown `X-Amz-Target`.
    UnknownOperation,
    /// From SigV4: no `Authorization`.
    MissingAuthenticationToken,
    /// From SigV4: a malformed `Authorization`.
    IncompleteSignature,
    /// From SigV4: a wrong signature, scope or time.
    InvalidSignature,
    /// From SigV4: an unknown access key id or session token.
    UnrecognizedClient,
    /// Our fault.
    Internal,
}

impl ErrorType {
    /// The `__type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::AccessDenied => "AccessDeniedException",
            ErrorType::Validation => "ValidationException",
            ErrorType::Serialization => "SerializationException",
            ErrorType::NotFound => "NotFoundException",
            ErrorType::InvalidCiphertext => "InvalidCiphertextException",
            ErrorType::IncorrectKey => "IncorrectKeyException",
            ErrorType::Disabled => "DisabledException",
            ErrorType::MalformedPolicyDocument => "MalformedPolicyDocumentException",
            ErrorType::UnsupportedOperation => "UnsupportedOperationException",
            ErrorType::UnknownOperation => "UnknownOperationException",
            ErrorType::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            ErrorType::IncompleteSignature => "IncompleteSignatureException",
            ErrorType::InvalidSignature => "InvalidSignatureException",
            ErrorType::UnrecognizedClient => "UnrecognizedClientException",
            ErrorType::Internal => "KMSInternalException",
        }
    }

    /// The HTTP status KMS answers it with: 500 for its own faults, 400 for everything else.
    pub fn status(self) -> u16 {
        match self {
            ErrorType::Internal => 500,
            _ => 400,
        }
    }

    fn from_sigv4(code: &str) -> Self {
        match code {
            "MissingAuthenticationTokenException" => ErrorType::MissingAuthenticationToken,
            "IncompleteSignatureException" => ErrorType::IncompleteSignature,
            "UnrecognizedClientException" => ErrorType::UnrecognizedClient,
            _ => ErrorType::InvalidSignature,
        }
    }
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsFault {
    /// Its code.
    pub error_type: ErrorType,
    /// Its message.
    pub message: String,
}

impl KmsFault {
    /// An error of `error_type` saying `message`.
    pub fn new(error_type: ErrorType, message: impl Into<String>) -> Self {
        Self {
            error_type,
            message: message.into(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::json!({ "__type": self.error_type.as_str(), "message": self.message })
            .to_string()
    }
}

impl fmt::Display for KmsFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type.as_str(), self.message)
    }
}

impl From<ea_kms::sigv4::SigV4Error> for KmsFault {
    fn from(error: ea_kms::sigv4::SigV4Error) -> Self {
        Self::new(
            ErrorType::from_sigv4(error.kms_error_type()),
            error.to_string(),
        )
    }
}
