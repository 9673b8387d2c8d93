//! A record's fields located in its bytes, without decoding `decision` and `changes`.
//!
//! Enclave recovery reads every record of a log that can hold millions. It does not need the
//! canonical-form checks of [`Record::from_bytes`](super::Record::from_bytes): the tree and
//! the attested checkpoints prove that the enclave wrote each byte, and it wrote only
//! canonical records. What it needs is the header (`seq`, `time`, `kind`), where the embedded
//! request and attestation document are, and the bytes of `changes` to decode its events
//! straight into their types. Building the whole CBOR value tree for that cost about as much
//! as everything else recovery does.
//!
//! The parser walks the one field order a record has and refuses anything else (another
//! order, indefinite lengths, trailing bytes) with a [`RecordError`]; a caller that wants to
//! know exactly what is wrong runs [`Record::from_bytes`](super::Record::from_bytes).

use super::{RecordError, RecordKind, MAX_RECORD_LEN, MAX_VALUE_DEPTH};

/// The fields of a record, borrowed from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordFields<'a> {
    /// Position in the log.
    pub seq: u64,
    /// When the enclave wrote it, unix milliseconds.
    pub time: u64,
    /// What it is about.
    pub kind: RecordKind,
    /// The principal who caused it.
    pub actor: &'a str,
    /// The embedded signed request, if any.
    pub request: Option<&'a [u8]>,
    /// The CBOR encoding of `decision`.
    pub decision: &'a [u8],
    /// The CBOR encoding of `changes`.
    pub changes: &'a [u8],
    /// The attestation document, if any.
    pub attestation: Option<&'a [u8]>,
}

const MAJOR_UNSIGNED: u8 = 0;
const MAJOR_NEGATIVE: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;
const MAJOR_SIMPLE: u8 = 7;
const CBOR_NULL: u8 = 0xf6;
/// The keys of a record, in their one order.
const KEYS: [&str; 8] = [
    "seq",
    "time",
    "kind",
    "actor",
    "request",
    "decision",
    "changes",
    "attestation",
];

/// The first three fields of a record: all that placing it in the log needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Position in the log.
    pub seq: u64,
    /// When the enclave wrote it, unix milliseconds.
    pub time: u64,
    /// What it is about.
    pub kind: RecordKind,
}

impl RecordHeader {
    /// Reads the header at the start of `bytes`, looking no further: the rest of the record
    /// may be anything, so only a caller that authenticates the bytes otherwise (by the
    /// tree) may rely on it alone.
    pub fn parse(bytes: &[u8]) -> Result<Self, RecordError> {
        Cursor { bytes, at: 0 }.header()
    }
}

impl<'a> RecordFields<'a> {
    /// Locates the fields of `bytes`, which must be one record map in the canonical field
    /// order with definite lengths and nothing after it.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, RecordError> {
        let mut cursor = Cursor { bytes, at: 0 };
        let RecordHeader { seq, time, kind } = cursor.header()?;
        cursor.key(3)?;
        let actor = cursor.text()?;
        cursor.key(4)?;
        let request = cursor.bytes_or_null()?;
        cursor.key(5)?;
        let decision = cursor.item()?;
        cursor.key(6)?;
        let changes = cursor.item()?;
        cursor.key(7)?;
        let attestation = cursor.bytes_or_null()?;
        let extra = bytes.len() - cursor.at;
        if extra != 0 {
            return Err(RecordError::TrailingBytes { extra });
        }
        Ok(Self {
            seq,
            time,
            kind,
            actor,
            request,
            decision,
            changes,
            attestation,
        })
    }
}

fn not_a_record(reason: &str) -> RecordError {
    RecordError::NotARecord {
        reason: reason.to_owned(),
    }
}

/// A position in the bytes of one record.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// The map's head and the first three fields.
    fn header(&mut self) -> Result<RecordHeader, RecordError> {
        if self.bytes.len() > MAX_RECORD_LEN {
            return Err(RecordError::TooLarge {
                len: self.bytes.len(),
            });
        }
        let (major, entries) = self.head()?;
        if major != MAJOR_MAP || entries != KEYS.len() as u64 {
            return Err(not_a_record("not a map of the eight record fields"));
        }
        self.key(0)?;
        let seq = self.unsigned()?;
        self.key(1)?;
        let time = self.unsigned()?;
        self.key(2)?;
        let kind = self.text()?.parse::<RecordKind>()?;
        Ok(RecordHeader { seq, time, kind })
    }

    /// The key of field `index`, which must come next.
    fn key(&mut self, index: usize) -> Result<(), RecordError> {
        if Some(&self.text()?) == KEYS.get(index) {
            Ok(())
        } else {
            Err(not_a_record("a field is missing or out of order"))
        }
    }

    /// The next `len` bytes.
    fn take(&mut self, len: u64) -> Result<&'a [u8], RecordError> {
        let len = usize::try_from(len).map_err(|_| RecordError::Truncated)?;
        let end = self.at.checked_add(len).ok_or(RecordError::Truncated)?;
        let taken = self.bytes.get(self.at..end).ok_or(RecordError::Truncated)?;
        self.at = end;
        Ok(taken)
    }

    /// The next `N` bytes.
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let taken = self.take(N as u64)?;
        <[u8; N]>::try_from(taken).map_err(|_| RecordError::Truncated)
    }

    /// The next item's major type and argument. Indefinite lengths and reserved additional
    /// information are refused: canonical records have neither.
    fn head(&mut self) -> Result<(u8, u64), RecordError> {
        let offset = self.at;
        let [initial] = self.array()?;
        let major = initial >> 5;
        let argument = match initial & 0x1f {
            small @ 0..=23 => u64::from(small),
            24 => u64::from(u8::from_be_bytes(self.array()?)),
            25 => u64::from(u16::from_be_bytes(self.array()?)),
            26 => u64::from(u32::from_be_bytes(self.array()?)),
            27 => u64::from_be_bytes(self.array()?),
            _ => return Err(RecordError::Syntax { offset }),
        };
        Ok((major, argument))
    }

    fn unsigned(&mut self) -> Result<u64, RecordError> {
        match self.head()? {
            (MAJOR_UNSIGNED, value) => Ok(value),
            _ => Err(not_a_record("an integer field is not an unsigned integer")),
        }
    }

    fn text(&mut self) -> Result<&'a str, RecordError> {
        let offset = self.at;
        match self.head()? {
            (MAJOR_TEXT, len) => {
                std::str::from_utf8(self.take(len)?).map_err(|_| RecordError::Syntax { offset })
            }
            _ => Err(not_a_record("a text field is not text")),
        }
    }

    fn bytes_or_null(&mut self) -> Result<Option<&'a [u8]>, RecordError> {
        if self.bytes.get(self.at) == Some(&CBOR_NULL) {
            self.at += 1;
            return Ok(None);
        }
        match self.head()? {
            (MAJOR_BYTES, len) => self.take(len).map(Some),
            _ => Err(not_a_record(
                "a byte-string field is neither bytes nor null",
            )),
        }
    }

    /// The bytes of the next complete item.
    fn item(&mut self) -> Result<&'a [u8], RecordError> {
        let start = self.at;
        self.skip(0)?;
        self.bytes.get(start..self.at).ok_or(RecordError::Truncated)
    }

    fn skip(&mut self, depth: usize) -> Result<(), RecordError> {
        if depth > MAX_VALUE_DEPTH {
            return Err(RecordError::TooDeep);
        }
        let offset = self.at;
        let (major, argument) = self.head()?;
        match major {
            MAJOR_UNSIGNED | MAJOR_NEGATIVE => {}
            MAJOR_BYTES | MAJOR_TEXT => {
                self.take(argument)?;
            }
            MAJOR_ARRAY | MAJOR_MAP => {
                let per_entry = if major == MAJOR_MAP { 2 } else { 1 };
                // Every item takes at least one byte: a count beyond what is left is a lie,
                // refused before looping on it.
                let items = argument
                    .checked_mul(per_entry)
                    .filter(|&n| n <= (self.bytes.len() - self.at) as u64)
                    .ok_or(RecordError::Truncated)?;
                for _ in 0..items {
                    self.skip(depth + 1)?;
                }
            }
            MAJOR_TAG => self.skip(depth + 1)?,
            MAJOR_SIMPLE => {
                // Simple values and floats carry their payload in the argument already; only
                // the one-byte simple values 24..=31 are malformed.
                if self.bytes.get(offset) == Some(&0xf8) && argument < 32 {
                    return Err(RecordError::Syntax { offset });
                }
            }
            _ => return Err(RecordError::Syntax { offset }),
        }
        Ok(())
    }
}
