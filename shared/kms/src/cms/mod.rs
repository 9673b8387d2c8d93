//! KMS's `CiphertextForRecipient`: CMS (RFC 5652) EnvelopedData for one recipient, opened
//! with the call's single-use RSA key; and the builder the local KMS makes them with.
//!
//! The shape (SPEC-trust §5): ContentInfo / EnvelopedData version 2, exactly one
//! KeyTransRecipientInfo (version 2, rid = subjectKeyIdentifier), RSAES-OAEP with SHA-256 and
//! MGF1-SHA-256 transporting a 32-byte AES key, AES-256-CBC content with the IV in the
//! algorithm parameters, PKCS#7 padding. KMS encodes it in BER: indefinite lengths, and the
//! encrypted content as a constructed `[0]` of OCTET STRING chunks, both occur. rasn decodes
//! BER (with a nesting limit); everything else is refused with its own [`CmsError`].
//!
//! ```
//! use ea_kms::cms::{open, Encoding, EnvelopeBuilder, RecipientCheck};
//! use ea_kms::RecipientKey;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = RecipientKey::generate()?;
//! // What KMS does with the attestation document's public key...
//! let envelope = EnvelopeBuilder::new(key.public_key_der())?
//!     .encoding(Encoding::Ber { chunk_len: 16 })
//!     .build(b"a 32-byte data key, for example")?;
//! // ... and what the enclave does with the answer.
//! let plaintext = open(&envelope, &key, RecipientCheck::KeyId)?;
//! assert_eq!(&plaintext[..], b"a 32-byte data key, for example");
//! # Ok(())
//! # }
//! ```

mod asn;
mod build;
mod error;
mod oid;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut as _, KeyIvInit as _};
use rasn::types::{Any, OctetString};
use rasn::Decode;
use rasn_cms::{ContentInfo, EnvelopedData, RecipientIdentifier, RecipientInfo};
use zeroize::Zeroizing;

use asn::{AlgorithmId, RsaesOaepParams};
pub use build::{Encoding, EnvelopeBuilder};
pub use error::{BuildError, CmsError};

use crate::recipient::RecipientKey;

/// Largest `CiphertextForRecipient` accepted. KMS's largest plaintexts (4 KiB from Decrypt,
/// a few KiB of private key from GenerateDataKeyPair) make envelopes of a few KiB.
pub const MAX_CMS_LEN: usize = 64 * 1024;
/// Largest encrypted content accepted (whole AES blocks).
pub const MAX_CONTENT_LEN: usize = 16 * 1024;
/// Longest subjectKeyIdentifier accepted (SHA-1 ids are 20 bytes; SHA-256 ones 32).
pub const MAX_KEY_ID_LEN: usize = 64;

const AES_BLOCK: usize = 16;
const CONTENT_KEY_LEN: usize = 32;

/// Which subjectKeyIdentifier [`Envelope::open`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientCheck {
    /// Only the key's own id, [`RecipientKey::key_id`] (SHA-1 of its `RSAPublicKey`): what
    /// this crate's builder, the local KMS and OpenSSL write.
    KeyId,
    /// Any subjectKeyIdentifier. AWS does not document how KMS derives the id it writes, and
    /// its own enclave SDK does not compare it. Nothing is lost: only the holder of the
    /// single-use private key can undo the RSAES-OAEP, so an envelope for another key fails
    /// with [`CmsError::KeyDecryption`] whatever its id says.
    AnyKeyId,
}

/// A `CiphertextForRecipient` that has the expected shape, not yet decrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    key_id: Vec<u8>,
    encrypted_key: Vec<u8>,
    iv: [u8; AES_BLOCK],
    ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("key_id", &hex::encode(&self.key_id))
            .field("encrypted_key_len", &self.encrypted_key.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// Parses and opens a `CiphertextForRecipient` in one step: [`Envelope::parse`], then
/// [`Envelope::open`].
pub fn open(
    ciphertext_for_recipient: &[u8],
    key: &RecipientKey,
    check: RecipientCheck,
) -> Result<Zeroizing<Vec<u8>>, CmsError> {
    Envelope::parse(ciphertext_for_recipient)?.open(key, check)
}

fn decode<T: Decode>(part: &'static str, bytes: &[u8]) -> Result<T, CmsError> {
    let (value, rest) =
        rasn::ber::decode_with_remainder::<T>(bytes).map_err(|error| CmsError::Malformed {
            part,
            reason: error.to_string(),
        })?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(CmsError::TrailingBytes {
            part,
            extra: rest.len(),
        })
    }
}

fn version_is_2(version: &rasn::types::Integer) -> bool {
    i64::try_from(version).is_ok_and(|v| v == 2)
}

/// SHA-256's AlgorithmIdentifier, whose parameters may be absent or NULL (RFC 5754 §2).
fn is_sha256(id: &AlgorithmId) -> bool {
    *id.algorithm == *oid::SHA256
        && id
            .parameters
            .as_ref()
            .is_none_or(|p| p.as_bytes() == [0x05, 0x00])
}

fn check_oaep_parameters(parameters: Option<&Any>) -> Result<(), CmsError> {
    let bad = |reason| CmsError::OaepParameters { reason };
    let parameters = parameters.ok_or(bad("absent (SHA-1 defaults)"))?;
    let params: RsaesOaepParams = decode("RSAES-OAEP-params", parameters.as_bytes())?;
    let hash = params
        .hash_algorithm
        .ok_or(bad("no hash algorithm (SHA-1 default)"))?;
    if !is_sha256(&hash) {
        return Err(bad("the hash is not SHA-256"));
    }
    let mgf = params
        .mask_gen_algorithm
        .ok_or(bad("no mask generation function (MGF1-SHA-1 default)"))?;
    if *mgf.algorithm != *oid::MGF1 {
        return Err(bad("the mask generation function is not MGF1"));
    }
    let mgf_hash: AlgorithmId = decode(
        "MGF1 parameters",
        mgf.parameters
            .as_ref()
            .ok_or(bad("MGF1 without a hash"))?
            .as_bytes(),
    )?;
    if !is_sha256(&mgf_hash) {
        return Err(bad("the MGF1 hash is not SHA-256"));
    }
    if let Some(source) = params.p_source_algorithm {
        // Only the default: pSpecified with an empty label.
        let empty_label = source
            .parameters
            .as_ref()
            .is_some_and(|p| p.as_bytes() == [0x04, 0x00]);
        if *source.algorithm != *oid::P_SPECIFIED || !empty_label {
            return Err(bad("a label other than the empty one"));
        }
    }
    Ok(())
}

fn recipient_kind(info: &RecipientInfo) -> &'static str {
    match info {
        RecipientInfo::KeyTransRecipientInfo(_) => "KeyTransRecipientInfo",
        RecipientInfo::KeyAgreeRecipientInfo(_) => "KeyAgreeRecipientInfo",
        RecipientInfo::KekRecipientInfo(_) => "KEKRecipientInfo",
        RecipientInfo::PasswordRecipientInfo(_) => "PasswordRecipientInfo",
        RecipientInfo::OtherRecipientInfo(_) => "OtherRecipientInfo",
    }
}

impl Envelope {
    /// Checks that `bytes` is a `CiphertextForRecipient` of the expected shape (module
    /// documentation); decrypts nothing. Bounded: the length is checked before decoding.
    pub fn parse(bytes: &[u8]) -> Result<Self, CmsError> {
        if bytes.len() > MAX_CMS_LEN {
            return Err(CmsError::TooLarge {
                len: bytes.len(),
                max: MAX_CMS_LEN,
            });
        }
        let info: ContentInfo = decode("ContentInfo", bytes)?;
        if *info.content_type != *oid::ENVELOPED_DATA {
            return Err(CmsError::ContentType {
                found: oid::dotted(&info.content_type),
            });
        }
        let enveloped: EnvelopedData = decode("EnvelopedData", info.content.as_bytes())?;
        if !version_is_2(&enveloped.version) {
            return Err(CmsError::Version {
                found: enveloped.version.to_string(),
            });
        }
        if enveloped.originator_info.is_some() {
            return Err(CmsError::UnexpectedField {
                field: "originatorInfo",
            });
        }
        if enveloped.unprotected_attrs.is_some() {
            return Err(CmsError::UnexpectedField {
                field: "unprotectedAttrs",
            });
        }
        let mut recipients = enveloped.recipient_infos.into_vec();
        if recipients.len() != 1 {
            return Err(CmsError::RecipientCount {
                found: recipients.len(),
            });
        }
        let ktri = match recipients.pop() {
            Some(RecipientInfo::KeyTransRecipientInfo(ktri)) => ktri,
            Some(other) => {
                return Err(CmsError::RecipientKind {
                    found: recipient_kind(&other),
                })
            }
            None => return Err(CmsError::RecipientCount { found: 0 }),
        };
        if !version_is_2(&ktri.version) {
            return Err(CmsError::RecipientVersion {
                found: ktri.version.to_string(),
            });
        }
        let key_id = match ktri.rid {
            RecipientIdentifier::SubjectKeyIdentifier(id) => id,
            RecipientIdentifier::IssuerAndSerialNumber(_) => {
                return Err(CmsError::RecipientIdentifier)
            }
        };
        if key_id.is_empty() || key_id.len() > MAX_KEY_ID_LEN {
            return Err(CmsError::Malformed {
                part: "KeyTransRecipientInfo",
                reason: format!(
                    "a subjectKeyIdentifier of {} bytes (1 to {MAX_KEY_ID_LEN} expected)",
                    key_id.len()
                ),
            });
        }
        if *ktri.key_encryption_algorithm.algorithm != *oid::RSAES_OAEP {
            return Err(CmsError::KeyEncryptionAlgorithm {
                found: oid::dotted(&ktri.key_encryption_algorithm.algorithm),
            });
        }
        check_oaep_parameters(ktri.key_encryption_algorithm.parameters.as_ref())?;

        let content = enveloped.encrypted_content_info;
        if *content.content_type != *oid::DATA {
            return Err(CmsError::EncryptedContentType {
                found: oid::dotted(&content.content_type),
            });
        }
        let algorithm = &content.content_encryption_algorithm;
        if *algorithm.algorithm != *oid::AES256_CBC {
            return Err(CmsError::ContentEncryptionAlgorithm {
                found: oid::dotted(&algorithm.algorithm),
            });
        }
        let iv_bytes = algorithm.parameters.as_ref().ok_or(CmsError::Iv)?;
        let iv: OctetString = decode("AES-256-CBC IV", iv_bytes.as_bytes())?;
        let iv: [u8; AES_BLOCK] = iv.as_ref().try_into().map_err(|_| CmsError::Iv)?;
        let ciphertext = content.encrypted_content.ok_or(CmsError::ContentMissing)?;
        if ciphertext.is_empty()
            || ciphertext.len() % AES_BLOCK != 0
            || ciphertext.len() > MAX_CONTENT_LEN
        {
            return Err(CmsError::ContentLength {
                len: ciphertext.len(),
                max: MAX_CONTENT_LEN,
            });
        }
        Ok(Self {
            key_id: key_id.to_vec(),
            encrypted_key: ktri.encrypted_key.to_vec(),
            iv,
            ciphertext: ciphertext.to_vec(),
        })
    }

    /// The subjectKeyIdentifier the envelope names its recipient by.
    pub fn recipient_key_id(&self) -> &[u8] {
        &self.key_id
    }

    /// Decrypts the content key with `key` (RSAES-OAEP-SHA-256), then the content
    /// (AES-256-CBC), and removes the PKCS#7 padding.
    pub fn open(
        &self,
        key: &RecipientKey,
        check: RecipientCheck,
    ) -> Result<Zeroizing<Vec<u8>>, CmsError> {
        if check == RecipientCheck::KeyId && self.key_id != key.key_id() {
            return Err(CmsError::WrongKeyId {
                expected: hex::encode(key.key_id()),
                found: hex::encode(&self.key_id),
            });
        }
        if self.encrypted_key.len() != key.modulus_len() {
            return Err(CmsError::EncryptedKeyLength {
                len: self.encrypted_key.len(),
                expected: key.modulus_len(),
            });
        }
        let content_key = key
            .decrypt_oaep_sha256(&self.encrypted_key)
            .ok_or(CmsError::KeyDecryption)?;
        let content_key: &[u8; CONTENT_KEY_LEN] =
            content_key
                .as_slice()
                .try_into()
                .map_err(|_| CmsError::ContentKeyLength {
                    len: content_key.len(),
                })?;
        let mut buffer = Zeroizing::new(self.ciphertext.clone());
        let plaintext_len =
            cbc::Decryptor::<aes::Aes256>::new(content_key.into(), (&self.iv).into())
                .decrypt_padded_mut::<Pkcs7>(&mut buffer)
                .map_err(|_| CmsError::Padding)?
                .len();
        buffer.truncate(plaintext_len);
        Ok(buffer)
    }
}

#[cfg(test)]
mod tests;
