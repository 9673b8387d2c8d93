//! The bounded parser: COSE_Sign1 envelope first, then the payload map.
//!
//! Every length is compared with its limit and with the remaining input before the content is
//! touched, and content is copied only once the whole item has been accepted.

use std::collections::BTreeMap;

use super::{AttestationDocument, Digest, ParseError, REQUIRED_PCRS};
use crate::cbor::Reader;
use crate::limits::{
    ES384_SIGNATURE_LEN, MAX_CABUNDLE_LEN, MAX_CERTIFICATE_LEN, MAX_DOCUMENT_LEN,
    MAX_MODULE_ID_LEN, MAX_NONCE_LEN, MAX_PAYLOAD_LEN, MAX_PUBLIC_KEY_LEN, MAX_USER_DATA_LEN,
    PCR_COUNT, PCR_LEN, QEMU_UNSIGNED_SIGNATURE_LEN,
};

/// The protected header the NSM writes: the map `{1: -35}` (alg: ES384).
pub(crate) const ES384_PROTECTED_HEADER: [u8; 4] = [0xa1, 0x01, 0x38, 0x22];
/// The protected header QEMU's `nitro-enclave` NSM writes: the map `{1: -1}`, an `alg` that
/// names no signature algorithm, because QEMU signs nothing (`hw/virtio/virtio-nsm.c`,
/// `add_protected_header_to_cose`).
pub(crate) const QEMU_UNSIGNED_PROTECTED_HEADER: [u8; 3] = [0xa1, 0x01, 0x20];
/// CBOR tag of COSE_Sign1 (RFC 9052).
const COSE_SIGN1_TAG: u64 = 18;
/// Longest payload key we read; the longest defined one, "certificate", has 11 bytes.
const MAX_KEY_LEN: u64 = 32;
/// Longest `digest` value we read.
const MAX_DIGEST_NAME_LEN: u64 = 16;

/// Which of the two envelopes a document has. The parser reads both so that a QEMU document
/// can be named as what it is (and displayed); only the verifier decides whether to accept
/// it, and it accepts [`Envelope::QemuUnsigned`] only in the insecure QEMU mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Envelope {
    /// `{1: -35}` and a 96-byte ES384 signature: the Nitro NSM and the mock NSM.
    Es384,
    /// `{1: -1}` and a 64-byte placeholder signature: QEMU's `nitro-enclave` NSM, unsigned.
    QemuUnsigned,
}

/// The signed content of a COSE_Sign1 whose envelope passed the checks, borrowed from the
/// input. (An ES384 signature itself is verified by the COSE library, over the same bytes.)
#[derive(Debug, Clone, Copy)]
pub(crate) struct CoseSign1Ref<'a> {
    pub(crate) envelope: Envelope,
    pub(crate) payload: &'a [u8],
    pub(crate) signature: &'a [u8],
}

fn bounded_bytes<'a>(
    reader: &mut Reader<'a>,
    field: &'static str,
    min: usize,
    max: usize,
) -> Result<&'a [u8], ParseError> {
    let len = reader.bytes_len().map_err(ParseError::cbor(field))?;
    check_len(field, len, min, max)?;
    reader.content(len).map_err(ParseError::cbor(field))
}

fn check_len(field: &'static str, len: u64, min: usize, max: usize) -> Result<(), ParseError> {
    let (min, max) = (min as u64, max as u64);
    if len < min || len > max {
        return Err(ParseError::FieldLength {
            field,
            len,
            min,
            max,
        });
    }
    Ok(())
}

/// Splits a COSE_Sign1 (untagged, or with tag 18) into its parts and checks the envelope:
/// protected header exactly `{1: -35}` with a 96-byte signature, or exactly QEMU's `{1: -1}`
/// with a 64-byte one; unprotected header empty; no trailing bytes.
pub(crate) fn parse_cose(document: &[u8]) -> Result<CoseSign1Ref<'_>, ParseError> {
    if document.len() > MAX_DOCUMENT_LEN {
        return Err(ParseError::DocumentTooLarge {
            len: document.len(),
            max: MAX_DOCUMENT_LEN,
        });
    }
    let mut reader = Reader::new(document);
    let field = "COSE_Sign1";
    if !reader
        .take_tag(COSE_SIGN1_TAG)
        .map_err(ParseError::cbor(field))?
    {
        // Any other tag is refused by name rather than as a type mismatch.
        let mut probe = Reader::new(document);
        if let Ok(crate::cbor::Head::Tag(tag)) = probe.head() {
            return Err(ParseError::UnexpectedTag { tag });
        }
    }
    let len = reader.array_len().map_err(ParseError::cbor(field))?;
    if len != 4 {
        return Err(ParseError::CoseArrayLength { len });
    }

    let protected = bounded_bytes(&mut reader, "protected header", 0, 64)?;
    let (envelope, signature_len) = if protected == ES384_PROTECTED_HEADER {
        (Envelope::Es384, ES384_SIGNATURE_LEN)
    } else if protected == QEMU_UNSIGNED_PROTECTED_HEADER {
        (Envelope::QemuUnsigned, QEMU_UNSIGNED_SIGNATURE_LEN)
    } else {
        return Err(ParseError::UnsupportedProtectedHeader);
    };
    let entries = reader
        .map_len()
        .map_err(ParseError::cbor("unprotected header"))?;
    if entries != 0 {
        return Err(ParseError::UnprotectedHeaderNotEmpty { entries });
    }
    let payload = bounded_bytes(&mut reader, "payload", 1, MAX_PAYLOAD_LEN)?;
    let signature = bounded_bytes(&mut reader, "signature", signature_len, signature_len)?;
    if reader.remaining() != 0 {
        return Err(ParseError::TrailingBytes {
            field,
            count: reader.remaining(),
        });
    }
    Ok(CoseSign1Ref {
        envelope,
        payload,
        signature,
    })
}

/// The payload keys, in the order the NSM writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    ModuleId,
    Digest,
    Timestamp,
    Pcrs,
    Certificate,
    Cabundle,
    PublicKey,
    UserData,
    Nonce,
}

impl Field {
    const ALL: [Field; 9] = [
        Field::ModuleId,
        Field::Digest,
        Field::Timestamp,
        Field::Pcrs,
        Field::Certificate,
        Field::Cabundle,
        Field::PublicKey,
        Field::UserData,
        Field::Nonce,
    ];

    fn name(self) -> &'static str {
        match self {
            Field::ModuleId => "module_id",
            Field::Digest => "digest",
            Field::Timestamp => "timestamp",
            Field::Pcrs => "pcrs",
            Field::Certificate => "certificate",
            Field::Cabundle => "cabundle",
            Field::PublicKey => "public_key",
            Field::UserData => "user_data",
            Field::Nonce => "nonce",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// The payload fields as they are read, before the mandatory ones are known to be present.
#[derive(Default)]
struct Fields {
    seen: u16,
    module_id: Option<String>,
    timestamp: Option<u64>,
    pcrs: Option<BTreeMap<u16, Vec<u8>>>,
    certificate: Option<Vec<u8>>,
    cabundle: Option<Vec<Vec<u8>>>,
    public_key: Option<Vec<u8>>,
    user_data: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
}

/// Parses the payload map. Keys may come in any order, each at most once; unknown keys are
/// refused; the optional `public_key`, `user_data` and `nonce` may be null or absent.
pub(crate) fn parse_payload(payload: &[u8]) -> Result<AttestationDocument, ParseError> {
    let mut reader = Reader::new(payload);
    let entries = reader.map_len().map_err(ParseError::cbor("payload"))?;
    check_len("payload map", entries, 6, Field::ALL.len())?;

    let mut fields = Fields::default();
    for _ in 0..entries {
        let key = read_key(&mut reader)?;
        if fields.seen & key.bit() != 0 {
            return Err(ParseError::DuplicateField { field: key.name() });
        }
        fields.seen |= key.bit();
        read_value(&mut reader, key, &mut fields)?;
    }
    if reader.remaining() != 0 {
        return Err(ParseError::TrailingBytes {
            field: "payload map",
            count: reader.remaining(),
        });
    }

    let missing = |key: Field| ParseError::MissingField { field: key.name() };
    if fields.seen & Field::Digest.bit() == 0 {
        return Err(missing(Field::Digest));
    }
    Ok(AttestationDocument {
        module_id: fields.module_id.ok_or_else(|| missing(Field::ModuleId))?,
        digest: Digest::Sha384,
        timestamp: fields.timestamp.ok_or_else(|| missing(Field::Timestamp))?,
        pcrs: fields.pcrs.ok_or_else(|| missing(Field::Pcrs))?,
        certificate: fields
            .certificate
            .ok_or_else(|| missing(Field::Certificate))?,
        cabundle: fields.cabundle.ok_or_else(|| missing(Field::Cabundle))?,
        public_key: fields.public_key,
        user_data: fields.user_data,
        nonce: fields.nonce,
    })
}

fn read_key(reader: &mut Reader<'_>) -> Result<Field, ParseError> {
    let field = "payload key";
    let len = reader.text_len().map_err(ParseError::cbor(field))?;
    if len > MAX_KEY_LEN {
        return Err(ParseError::FieldLength {
            field,
            len,
            min: 1,
            max: MAX_KEY_LEN,
        });
    }
    let name = reader.text_content(len).map_err(ParseError::cbor(field))?;
    Field::ALL
        .into_iter()
        .find(|key| key.name() == name)
        .ok_or_else(|| ParseError::UnknownField {
            key: name.to_owned(),
        })
}

fn read_value(reader: &mut Reader<'_>, key: Field, fields: &mut Fields) -> Result<(), ParseError> {
    let field = key.name();
    match key {
        Field::ModuleId => {
            let len = reader.text_len().map_err(ParseError::cbor(field))?;
            check_len(field, len, 1, MAX_MODULE_ID_LEN)?;
            let text = reader.text_content(len).map_err(ParseError::cbor(field))?;
            fields.module_id = Some(text.to_owned());
        }
        Field::Digest => {
            let len = reader.text_len().map_err(ParseError::cbor(field))?;
            check_len(field, len, 1, MAX_DIGEST_NAME_LEN as usize)?;
            let text = reader.text_content(len).map_err(ParseError::cbor(field))?;
            if text != Digest::Sha384.as_str() {
                return Err(ParseError::UnsupportedDigest {
                    found: text.to_owned(),
                });
            }
        }
        Field::Timestamp => {
            let timestamp = reader.unsigned().map_err(ParseError::cbor(field))?;
            if timestamp == 0 {
                return Err(ParseError::ZeroTimestamp);
            }
            fields.timestamp = Some(timestamp);
        }
        Field::Pcrs => fields.pcrs = Some(read_pcrs(reader)?),
        Field::Certificate => {
            let der = bounded_bytes(reader, field, 1, MAX_CERTIFICATE_LEN)?;
            fields.certificate = Some(der.to_vec());
        }
        Field::Cabundle => fields.cabundle = Some(read_cabundle(reader)?),
        Field::PublicKey => {
            fields.public_key = read_optional(reader, field, 1, MAX_PUBLIC_KEY_LEN)?
        }
        Field::UserData => fields.user_data = read_optional(reader, field, 0, MAX_USER_DATA_LEN)?,
        Field::Nonce => fields.nonce = read_optional(reader, field, 0, MAX_NONCE_LEN)?,
    }
    Ok(())
}

fn read_optional(
    reader: &mut Reader<'_>,
    field: &'static str,
    min: usize,
    max: usize,
) -> Result<Option<Vec<u8>>, ParseError> {
    if reader.take_null().map_err(ParseError::cbor(field))? {
        return Ok(None);
    }
    Ok(Some(bounded_bytes(reader, field, min, max)?.to_vec()))
}

fn read_pcrs(reader: &mut Reader<'_>) -> Result<BTreeMap<u16, Vec<u8>>, ParseError> {
    let field = "pcrs";
    let entries = reader.map_len().map_err(ParseError::cbor(field))?;
    check_len(field, entries, 1, usize::from(PCR_COUNT))?;
    let mut pcrs = BTreeMap::new();
    for _ in 0..entries {
        let raw_index = reader.unsigned().map_err(ParseError::cbor("PCR index"))?;
        let index = u16::try_from(raw_index)
            .ok()
            .filter(|&index| index < PCR_COUNT)
            .ok_or(ParseError::PcrIndex { index: raw_index })?;
        let len = reader.bytes_len().map_err(ParseError::cbor("PCR value"))?;
        if len != PCR_LEN as u64 {
            return Err(ParseError::PcrLength { index, len });
        }
        let value = reader.content(len).map_err(ParseError::cbor("PCR value"))?;
        if pcrs.insert(index, value.to_vec()).is_some() {
            return Err(ParseError::DuplicatePcr { index });
        }
    }
    // Every Nitro document measures the image, the kernel and the application. Were one
    // missing, nothing would be measured there to pin, and "PCR0-2 all zero" (debug mode)
    // would hold of an empty set: refused here, so that no mode (AWS, mock, QEMU) sees one.
    if let Some(&index) = REQUIRED_PCRS.iter().find(|i| !pcrs.contains_key(i)) {
        return Err(ParseError::MissingPcr { index });
    }
    Ok(pcrs)
}

fn read_cabundle(reader: &mut Reader<'_>) -> Result<Vec<Vec<u8>>, ParseError> {
    let field = "cabundle";
    let count = reader.array_len().map_err(ParseError::cbor(field))?;
    check_len(field, count, 1, MAX_CABUNDLE_LEN)?;
    let mut bundle = Vec::new();
    for _ in 0..count {
        bundle.push(bounded_bytes(reader, "cabundle entry", 1, MAX_CERTIFICATE_LEN)?.to_vec());
    }
    Ok(bundle)
}
