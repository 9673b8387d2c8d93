//! A minimal CBOR reader and writer for the two fixed shapes we handle: COSE_Sign1 and the
//! attestation payload.
//!
//! Why not a generic CBOR library? Attestation documents arrive from untrusted parties. A
//! schema-driven pull reader never recurses on its own (the caller walks the known shape), so
//! nesting depth is bounded by the schema, and every length is checked against the bytes that
//! remain *before* anything is allocated. Indefinite lengths, reserved encodings and floats
//! are refused: the NSM never emits them.

use thiserror::Error;

/// What went wrong while reading CBOR; the caller adds which field it was reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CborError {
    /// The input ended inside an item.
    #[error("input ends in the middle of an item")]
    Truncated,
    /// An item uses an indefinite length, which the NSM never emits.
    #[error("indefinite-length items are not accepted")]
    IndefiniteLength,
    /// Additional-information values 28..=30 are reserved by RFC 8949.
    #[error("reserved additional-information value {0}")]
    Reserved(u8),
    /// A different major type than the schema requires.
    #[error("expected {expected}, found {found}")]
    UnexpectedType {
        /// What the schema requires here.
        expected: &'static str,
        /// What the input holds.
        found: &'static str,
    },
    /// A text string that is not UTF-8.
    #[error("text string is not valid UTF-8")]
    InvalidUtf8,
}

/// One item's initial byte and argument, before its content is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Head {
    Unsigned(u64),
    Negative(u64),
    Bytes(u64),
    Text(u64),
    Array(u64),
    Map(u64),
    Tag(u64),
    /// Simple values and floats; the argument is the additional information or value.
    Simple(u64),
}

impl Head {
    fn type_name(self) -> &'static str {
        match self {
            Head::Unsigned(_) => "unsigned integer",
            Head::Negative(_) => "negative integer",
            Head::Bytes(_) => "byte string",
            Head::Text(_) => "text string",
            Head::Array(_) => "array",
            Head::Map(_) => "map",
            Head::Tag(_) => "tag",
            Head::Simple(SIMPLE_NULL) => "null",
            Head::Simple(_) => "simple value or float",
        }
    }
}

const SIMPLE_NULL: u64 = 22;

/// A cursor over a byte slice; it never reads past the end and never allocates.
pub(crate) struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self { input }
    }

    /// Bytes not yet consumed.
    pub(crate) fn remaining(&self) -> usize {
        self.input.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CborError> {
        if n > self.input.len() {
            return Err(CborError::Truncated);
        }
        let (head, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, CborError> {
        let (&first, rest) = self.input.split_first().ok_or(CborError::Truncated)?;
        self.input = rest;
        Ok(first)
    }

    fn peek_byte(&self) -> Result<u8, CborError> {
        self.input.first().copied().ok_or(CborError::Truncated)
    }

    fn argument(&mut self, info: u8) -> Result<u64, CborError> {
        let width = match info {
            0..=23 => return Ok(u64::from(info)),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            31 => return Err(CborError::IndefiniteLength),
            other => return Err(CborError::Reserved(other)),
        };
        let bytes = self.take(width)?;
        Ok(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// Reads one item's head.
    pub(crate) fn head(&mut self) -> Result<Head, CborError> {
        let initial = self.byte()?;
        let major = initial >> 5;
        let info = initial & 0x1f;
        let arg = self.argument(info)?;
        Ok(match major {
            0 => Head::Unsigned(arg),
            1 => Head::Negative(arg),
            2 => Head::Bytes(arg),
            3 => Head::Text(arg),
            4 => Head::Array(arg),
            5 => Head::Map(arg),
            6 => Head::Tag(arg),
            _ => Head::Simple(arg),
        })
    }

    /// True when the next item is CBOR `null`, which is then consumed.
    pub(crate) fn take_null(&mut self) -> Result<bool, CborError> {
        // 0xf6 is the one-byte encoding of null.
        if self.peek_byte()? == 0xf6 {
            self.input = self.input.get(1..).unwrap_or_default();
            return Ok(true);
        }
        Ok(false)
    }

    /// True when the next item is the given tag, which is then consumed.
    pub(crate) fn take_tag(&mut self, tag: u64) -> Result<bool, CborError> {
        let mut probe = Reader::new(self.input);
        if probe.head()? == Head::Tag(tag) {
            self.input = probe.input;
            return Ok(true);
        }
        Ok(false)
    }

    fn expect(head: Head, expected: &'static str) -> CborError {
        CborError::UnexpectedType {
            expected,
            found: head.type_name(),
        }
    }

    pub(crate) fn unsigned(&mut self) -> Result<u64, CborError> {
        match self.head()? {
            Head::Unsigned(v) => Ok(v),
            other => Err(Self::expect(other, "unsigned integer")),
        }
    }

    /// The length of a byte string, for callers that bound it before taking the content.
    pub(crate) fn bytes_len(&mut self) -> Result<u64, CborError> {
        match self.head()? {
            Head::Bytes(len) => Ok(len),
            other => Err(Self::expect(other, "byte string")),
        }
    }

    pub(crate) fn text_len(&mut self) -> Result<u64, CborError> {
        match self.head()? {
            Head::Text(len) => Ok(len),
            other => Err(Self::expect(other, "text string")),
        }
    }

    pub(crate) fn array_len(&mut self) -> Result<u64, CborError> {
        match self.head()? {
            Head::Array(len) => Ok(len),
            other => Err(Self::expect(other, "array")),
        }
    }

    pub(crate) fn map_len(&mut self) -> Result<u64, CborError> {
        match self.head()? {
            Head::Map(len) => Ok(len),
            other => Err(Self::expect(other, "map")),
        }
    }

    /// The content of a string whose length the caller has already read and bounded.
    pub(crate) fn content(&mut self, len: u64) -> Result<&'a [u8], CborError> {
        let len = usize::try_from(len).map_err(|_| CborError::Truncated)?;
        self.take(len)
    }

    pub(crate) fn text_content(&mut self, len: u64) -> Result<&'a str, CborError> {
        std::str::from_utf8(self.content(len)?).map_err(|_| CborError::InvalidUtf8)
    }
}

/// Appends canonical (shortest-form) CBOR to a buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    out: Vec<u8>,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    fn head(&mut self, major: u8, arg: u64) {
        let major = major << 5;
        match arg {
            0..=23 => self.out.push(major | arg as u8),
            24..=0xff => {
                self.out.push(major | 24);
                self.out.push(arg as u8);
            }
            0x100..=0xffff => {
                self.out.push(major | 25);
                self.out.extend_from_slice(&(arg as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.out.push(major | 26);
                self.out.extend_from_slice(&(arg as u32).to_be_bytes());
            }
            _ => {
                self.out.push(major | 27);
                self.out.extend_from_slice(&arg.to_be_bytes());
            }
        }
    }

    pub(crate) fn unsigned(&mut self, value: u64) {
        self.head(0, value);
    }

    pub(crate) fn bytes(&mut self, value: &[u8]) {
        self.head(2, value.len() as u64);
        self.out.extend_from_slice(value);
    }

    pub(crate) fn text(&mut self, value: &str) {
        self.head(3, value.len() as u64);
        self.out.extend_from_slice(value.as_bytes());
    }

    pub(crate) fn array(&mut self, len: usize) {
        self.head(4, len as u64);
    }

    pub(crate) fn map(&mut self, len: usize) {
        self.head(5, len as u64);
    }

    pub(crate) fn null(&mut self) {
        self.out.push(0xf6);
    }

    pub(crate) fn optional_bytes(&mut self, value: Option<&[u8]>) {
        match value {
            Some(bytes) => self.bytes(bytes),
            None => self.null(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn writer_uses_shortest_heads() {
        let mut w = Writer::new();
        w.unsigned(23);
        w.unsigned(24);
        w.unsigned(0x100);
        w.unsigned(0x1_0000);
        w.unsigned(0x1_0000_0000);
        assert_eq!(
            w.into_bytes(),
            [
                0x17, 0x18, 0x18, 0x19, 0x01, 0x00, 0x1a, 0x00, 0x01, 0x00, 0x00, 0x1b, 0, 0, 0, 1,
                0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn reader_refuses_lengths_beyond_input_before_allocating() {
        // A byte string that claims 2^64 - 1 bytes.
        let input = [0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        let mut r = Reader::new(&input);
        let len = r.bytes_len().unwrap();
        assert_eq!(r.content(len), Err(CborError::Truncated));
    }

    #[test]
    fn reader_refuses_indefinite_and_reserved() {
        assert_eq!(
            Reader::new(&[0x5f]).head(),
            Err(CborError::IndefiniteLength)
        );
        assert_eq!(Reader::new(&[0x1c]).head(), Err(CborError::Reserved(28)));
        assert_eq!(Reader::new(&[]).head(), Err(CborError::Truncated));
    }

    #[test]
    fn reader_names_the_type_it_found() {
        assert_eq!(
            Reader::new(&[0xf6]).map_len(),
            Err(CborError::UnexpectedType {
                expected: "map",
                found: "null"
            })
        );
    }

    proptest! {
        #[test]
        fn unsigned_round_trips(value: u64) {
            let mut w = Writer::new();
            w.unsigned(value);
            let bytes = w.into_bytes();
            let mut r = Reader::new(&bytes);
            prop_assert_eq!(r.unsigned().unwrap(), value);
            prop_assert_eq!(r.remaining(), 0);
        }

        #[test]
        fn bytes_round_trip(value in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut w = Writer::new();
            w.bytes(&value);
            let bytes = w.into_bytes();
            let mut r = Reader::new(&bytes);
            let len = r.bytes_len().unwrap();
            prop_assert_eq!(r.content(len).unwrap(), &value[..]);
            prop_assert_eq!(r.remaining(), 0);
        }

        #[test]
        fn reader_never_panics(input in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&input);
            while r.remaining() > 0 {
                match r.head() {
                    Ok(Head::Bytes(len)) | Ok(Head::Text(len)) => {
                        if r.content(len).is_err() { break; }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
    }
}
