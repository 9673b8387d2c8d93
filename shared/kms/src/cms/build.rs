//! Making a `CiphertextForRecipient` as KMS does: the local KMS answers with these, and the
//! parser's tests feed it both encodings.
//!
//! The encoder is a few lines of TLV writing on purpose: rasn writes definite lengths only,
//! and the point of the BER form is to exercise what real KMS output looks like
//! (indefinite lengths everywhere, the encrypted content in OCTET STRING chunks).

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockEncryptMut as _, KeyIvInit as _};
use rand_core::OsRng;
use rasn::types::Oid;
use ring::rand::{SecureRandom as _, SystemRandom};
use rsa::pkcs8::DecodePublicKey as _;
use rsa::traits::PublicKeyParts as _;
use rsa::{Oaep, RsaPublicKey};
use zeroize::Zeroizing;

use super::error::BuildError;
use super::{oid, AES_BLOCK, CONTENT_KEY_LEN, MAX_CONTENT_LEN};
use crate::recipient::{key_id, RECIPIENT_KEY_BITS};

/// How the envelope is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// DER: definite lengths, the encrypted content as one primitive `[0]`.
    Der,
    /// BER as KMS writes it: indefinite lengths on every constructed value, the encrypted
    /// content as a constructed `[0]` of OCTET STRINGs of at most `chunk_len` bytes.
    Ber {
        /// Bytes per encrypted-content chunk (at least 1).
        chunk_len: usize,
    },
}

/// Builds EnvelopedData for one RSA recipient: RSAES-OAEP-SHA-256 key transport of a fresh
/// AES-256 key, AES-256-CBC content with a fresh IV.
#[derive(Debug, Clone)]
pub struct EnvelopeBuilder {
    public: RsaPublicKey,
    key_id: Vec<u8>,
    encoding: Encoding,
}

/// One BER/DER value: primitive bytes or constructed children.
enum Tlv {
    Primitive(u8, Vec<u8>),
    Constructed(u8, Vec<Tlv>),
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const NULL: u8 = 0x05;
const OBJECT_IDENTIFIER: u8 = 0x06;
const CONTEXT_0_PRIMITIVE: u8 = 0x80;
const CONTEXT_0: u8 = 0xa0;
const CONTEXT_1: u8 = 0xa1;

fn push_length(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
}

impl Tlv {
    fn write(&self, encoding: Encoding, out: &mut Vec<u8>) {
        match self {
            Tlv::Primitive(tag, value) => {
                out.push(*tag);
                push_length(value.len(), out);
                out.extend_from_slice(value);
            }
            Tlv::Constructed(tag, children) => match encoding {
                Encoding::Der => {
                    let mut inner = Vec::new();
                    for child in children {
                        child.write(encoding, &mut inner);
                    }
                    out.push(*tag);
                    push_length(inner.len(), out);
                    out.extend_from_slice(&inner);
                }
                Encoding::Ber { .. } => {
                    out.extend_from_slice(&[*tag, 0x80]);
                    for child in children {
                        child.write(encoding, out);
                    }
                    // End-of-contents.
                    out.extend_from_slice(&[0, 0]);
                }
            },
        }
    }
}

/// The content octets of an OBJECT IDENTIFIER (X.690 §8.19).
fn oid_contents(oid: &Oid) -> Vec<u8> {
    let arcs: Vec<u32> = oid.iter().copied().collect();
    let mut out = Vec::new();
    let (first, rest) = match arcs.as_slice() {
        [a, b, rest @ ..] => (u64::from(*a) * 40 + u64::from(*b), rest),
        _ => return out,
    };
    for arc in std::iter::once(first).chain(rest.iter().map(|&a| u64::from(a))) {
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            groups.push(0x80 | (rest & 0x7f) as u8);
            rest >>= 7;
        }
        out.extend(groups.iter().rev());
    }
    out
}

fn object_id(oid: &Oid) -> Tlv {
    Tlv::Primitive(OBJECT_IDENTIFIER, oid_contents(oid))
}

fn sha256_algorithm() -> Tlv {
    Tlv::Constructed(
        SEQUENCE,
        vec![object_id(oid::SHA256), Tlv::Primitive(NULL, Vec::new())],
    )
}

impl EnvelopeBuilder {
    /// A builder for the RSA key in `recipient_spki_der` (DER SubjectPublicKeyInfo, as an
    /// attestation document's `public_key` carries it); the recipient is named by the key's
    /// SHA-1 key id, DER output.
    pub fn new(recipient_spki_der: &[u8]) -> Result<Self, BuildError> {
        let public = RsaPublicKey::from_public_key_der(recipient_spki_der)
            .map_err(|_| BuildError::PublicKey)?;
        let bits = public.size() * 8;
        if bits < RECIPIENT_KEY_BITS {
            return Err(BuildError::KeyTooSmall { bits });
        }
        let key_id = key_id(&public).ok_or(BuildError::PublicKey)?.to_vec();
        Ok(Self {
            public,
            key_id,
            encoding: Encoding::Der,
        })
    }

    /// Names the recipient by another subjectKeyIdentifier.
    pub fn key_id(mut self, key_id: Vec<u8>) -> Self {
        self.key_id = key_id;
        self
    }

    /// The encoding of the output.
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Encrypts `plaintext` to the recipient.
    pub fn build(&self, plaintext: &[u8]) -> Result<Vec<u8>, BuildError> {
        // The padded content must stay within what the parser accepts.
        let max = MAX_CONTENT_LEN - 1;
        if plaintext.len() > max {
            return Err(BuildError::PlaintextTooLong {
                len: plaintext.len(),
                max,
            });
        }
        if self.encoding == (Encoding::Ber { chunk_len: 0 }) {
            return Err(BuildError::ChunkLength);
        }
        let random = SystemRandom::new();
        let mut content_key = Zeroizing::new([0u8; CONTENT_KEY_LEN]);
        let mut iv = [0u8; AES_BLOCK];
        random
            .fill(content_key.as_mut())
            .and_then(|()| random.fill(&mut iv))
            .map_err(|_| BuildError::Crypto("the OS random source failed"))?;
        let encrypted_key = self
            .public
            .encrypt(
                &mut OsRng,
                Oaep::new::<sha2::Sha256>(),
                content_key.as_ref(),
            )
            .map_err(|_| BuildError::Crypto("RSAES-OAEP encryption failed"))?;
        let ciphertext =
            cbc::Encryptor::<aes::Aes256>::new(content_key.as_ref().into(), (&iv).into())
                .encrypt_padded_vec_mut::<Pkcs7>(plaintext);

        let oaep_parameters = Tlv::Constructed(
            SEQUENCE,
            vec![
                Tlv::Constructed(CONTEXT_0, vec![sha256_algorithm()]),
                Tlv::Constructed(
                    CONTEXT_1,
                    vec![Tlv::Constructed(
                        SEQUENCE,
                        vec![object_id(oid::MGF1), sha256_algorithm()],
                    )],
                ),
            ],
        );
        let recipient = Tlv::Constructed(
            SEQUENCE,
            vec![
                Tlv::Primitive(INTEGER, vec![2]),
                Tlv::Primitive(CONTEXT_0_PRIMITIVE, self.key_id.clone()),
                Tlv::Constructed(SEQUENCE, vec![object_id(oid::RSAES_OAEP), oaep_parameters]),
                Tlv::Primitive(OCTET_STRING, encrypted_key),
            ],
        );
        let content = match self.encoding {
            Encoding::Der => Tlv::Primitive(CONTEXT_0_PRIMITIVE, ciphertext),
            Encoding::Ber { chunk_len } => Tlv::Constructed(
                CONTEXT_0,
                ciphertext
                    .chunks(chunk_len)
                    .map(|chunk| Tlv::Primitive(OCTET_STRING, chunk.to_vec()))
                    .collect(),
            ),
        };
        let encrypted_content_info = Tlv::Constructed(
            SEQUENCE,
            vec![
                object_id(oid::DATA),
                Tlv::Constructed(
                    SEQUENCE,
                    vec![
                        object_id(oid::AES256_CBC),
                        Tlv::Primitive(OCTET_STRING, iv.to_vec()),
                    ],
                ),
                content,
            ],
        );
        let enveloped_data = Tlv::Constructed(
            SEQUENCE,
            vec![
                Tlv::Primitive(INTEGER, vec![2]),
                Tlv::Constructed(SET, vec![recipient]),
                encrypted_content_info,
            ],
        );
        let content_info = Tlv::Constructed(
            SEQUENCE,
            vec![
                object_id(oid::ENVELOPED_DATA),
                Tlv::Constructed(CONTEXT_0, vec![enveloped_data]),
            ],
        );
        let mut out = Vec::with_capacity(plaintext.len() + 512);
        content_info.write(self.encoding, &mut out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_identifiers_encode_as_rasn_does() {
        for oid in [
            oid::ENVELOPED_DATA,
            oid::DATA,
            oid::RSAES_OAEP,
            oid::MGF1,
            oid::SHA256,
            oid::AES256_CBC,
        ] {
            let mut ours = Vec::new();
            object_id(oid).write(Encoding::Der, &mut ours);
            let theirs = rasn::der::encode(&rasn::types::ObjectIdentifier::from(oid)).unwrap();
            assert_eq!(ours, theirs, "{}", oid::dotted(oid));
        }
    }

    #[test]
    fn long_lengths_are_minimal() {
        let mut out = Vec::new();
        push_length(0x7f, &mut out);
        push_length(0x80, &mut out);
        push_length(0x1234, &mut out);
        assert_eq!(out, [0x7f, 0x81, 0x80, 0x82, 0x12, 0x34]);
    }
}
