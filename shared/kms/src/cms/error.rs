use thiserror::Error;

/// Why a `CiphertextForRecipient` was refused. The variants follow the order of the checks;
/// none of them carries key material or plaintext.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CmsError {
    // Malformed input.
    /// Larger than any `CiphertextForRecipient` KMS sends; refused before decoding.
    #[error("CMS input of {len} bytes is larger than the {max}-byte limit")]
    TooLarge {
        /// Bytes given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not well-formed BER for the structure expected at `part`.
    #[error("malformed CMS {part}: {reason}")]
    Malformed {
        /// The structure being decoded (`ContentInfo`, `EnvelopedData`, ...).
        part: &'static str,
        /// What the decoder reported.
        reason: String,
    },
    /// Bytes after the end of a structure.
    #[error("{extra} unexpected bytes after the CMS {part}")]
    TrailingBytes {
        /// The structure that ended early.
        part: &'static str,
        /// How many bytes follow it.
        extra: usize,
    },

    // Well-formed, but not what KMS sends (SPEC-trust §5).
    /// The ContentInfo holds something other than EnvelopedData.
    #[error("CMS content type {found} is not envelopedData (1.2.840.113549.1.7.3)")]
    ContentType {
        /// The OID found.
        found: String,
    },
    /// An EnvelopedData version other than 2.
    #[error("EnvelopedData version {found} is not 2")]
    Version {
        /// The version found.
        found: String,
    },
    /// An optional EnvelopedData field KMS never sends (`originatorInfo`, `unprotectedAttrs`).
    #[error("EnvelopedData carries {field}, which KMS never sends")]
    UnexpectedField {
        /// The field.
        field: &'static str,
    },
    /// Not exactly one recipient.
    #[error("EnvelopedData has {found} recipients; exactly one is expected")]
    RecipientCount {
        /// Recipients found.
        found: usize,
    },
    /// A recipient info other than KeyTransRecipientInfo.
    #[error("the recipient is a {found}, not a KeyTransRecipientInfo")]
    RecipientKind {
        /// The kind found.
        found: &'static str,
    },
    /// A KeyTransRecipientInfo version other than 2 (2 goes with subjectKeyIdentifier).
    #[error("KeyTransRecipientInfo version {found} is not 2")]
    RecipientVersion {
        /// The version found.
        found: String,
    },
    /// The recipient is named by issuer and serial number instead of subjectKeyIdentifier.
    #[error("the recipient is identified by issuerAndSerialNumber, not subjectKeyIdentifier")]
    RecipientIdentifier,
    /// The subjectKeyIdentifier names another key.
    #[error("the envelope is for key id {found}, not for this call's key {expected}")]
    WrongKeyId {
        /// This call's key id, hex.
        expected: String,
        /// The key id in the envelope, hex.
        found: String,
    },
    /// Key transport other than RSAES-OAEP.
    #[error("key encryption algorithm {found} is not RSAES-OAEP (1.2.840.113549.1.1.7)")]
    KeyEncryptionAlgorithm {
        /// The OID found.
        found: String,
    },
    /// RSAES-OAEP parameters other than SHA-256, MGF1-SHA-256 and an empty label.
    #[error("RSAES-OAEP parameters are not SHA-256 with MGF1-SHA-256: {reason}")]
    OaepParameters {
        /// What differs.
        reason: &'static str,
    },
    /// The encrypted content is not `id-data`.
    #[error("encrypted content type {found} is not id-data (1.2.840.113549.1.7.1)")]
    EncryptedContentType {
        /// The OID found.
        found: String,
    },
    /// Content encryption other than AES-256-CBC.
    #[error("content encryption algorithm {found} is not AES-256-CBC (2.16.840.1.101.3.4.1.42)")]
    ContentEncryptionAlgorithm {
        /// The OID found.
        found: String,
    },
    /// The AES-CBC parameters are not a 16-byte IV.
    #[error("the AES-256-CBC parameters are not a 16-byte IV")]
    Iv,
    /// No encrypted content (detached content is not used by KMS).
    #[error("the envelope has no encrypted content")]
    ContentMissing,
    /// Encrypted content that is empty, not whole AES blocks, or too long.
    #[error("encrypted content of {len} bytes is not 1 to {max} whole 16-byte blocks")]
    ContentLength {
        /// Bytes found.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An encrypted key of the wrong length for this call's RSA key.
    #[error("the encrypted key is {len} bytes; this call's RSA key needs {expected}")]
    EncryptedKeyLength {
        /// Bytes found.
        len: usize,
        /// Bytes expected (the modulus length).
        expected: usize,
    },

    // Cryptographic failures: the envelope was not made for this key, or was altered.
    /// RSAES-OAEP decryption of the content key failed.
    #[error(
        "the content key does not decrypt with this call's RSA key (not for this key, or altered)"
    )]
    KeyDecryption,
    /// The decrypted content key is not 32 bytes.
    #[error("the decrypted content key is {len} bytes, not 32")]
    ContentKeyLength {
        /// Bytes found.
        len: usize,
    },
    /// The content did not decrypt to valid PKCS#7 padding (altered ciphertext or IV).
    #[error("the content does not decrypt to valid PKCS#7 padding (altered in transit?)")]
    Padding,
}

/// Why an envelope could not be built (local KMS side).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The recipient's public key is not DER SubjectPublicKeyInfo of an RSA key.
    #[error("the recipient public key is not an RSA SubjectPublicKeyInfo")]
    PublicKey,
    /// The RSA key is shorter than 2048 bits.
    #[error("the recipient RSA key has {bits} bits; at least 2048 are required")]
    KeyTooSmall {
        /// Its size.
        bits: usize,
    },
    /// Plaintext longer than the parser accepts.
    #[error("plaintext of {len} bytes is longer than the {max}-byte limit")]
    PlaintextTooLong {
        /// Bytes given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A BER chunk length of zero.
    #[error("a BER chunk length must be at least 1")]
    ChunkLength,
    /// The OS random source or RSA encryption failed.
    #[error("encryption failed: {0}")]
    Crypto(&'static str),
}
