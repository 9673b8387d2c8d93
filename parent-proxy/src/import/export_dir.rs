//! Reading the directory `govctl audit fetch` writes (docs/audit-log.md, section 8):
//!
//! - `records.cbor-seq`: every record in index order, each a 4-byte big-endian length and
//!   that many bytes of the record's canonical CBOR;
//! - `checkpoints.txt`: every checkpoint note in increasing size order, each followed by a
//!   line holding only `---`;
//! - `manifest.json`: where and when it was fetched. Not trusted and not needed: the import
//!   rests on the records and checkpoints alone, as `govctl audit verify` does.
//!
//! govctl's reader lives in its binary; this one reads the same documented format, with
//! the same bounds (a record at most [`MAX_RECORD_LEN`], a note at most [`MAX_NOTE_LEN`]),
//! and names the same damage.

use std::io::{self, BufRead, Read};

use ea_audit::note::MAX_NOTE_LEN;
use ea_audit::record::MAX_RECORD_LEN;

/// The records' file name.
pub const RECORDS: &str = "records.cbor-seq";
/// The checkpoints' file name.
pub const CHECKPOINTS: &str = "checkpoints.txt";
/// The line after each note in the checkpoints file.
const SEPARATOR: &str = "---";

/// Why the records file cannot be read further.
#[derive(Debug, thiserror::Error)]
pub enum RecordFileError {
    /// The file ends inside record `index`.
    #[error("{RECORDS} ends in the middle of record {index}")]
    Truncated {
        /// The record cut short.
        index: u64,
    },
    /// Record `index` announces more bytes than a record may have.
    #[error("{RECORDS}: record {index} announces {len} bytes, more than a record may have")]
    TooLarge {
        /// The record.
        index: u64,
        /// The length announced.
        len: u32,
    },
    /// The file could not be read.
    #[error("reading {RECORDS}: {0}")]
    Io(#[from] io::Error),
}

impl RecordFileError {
    /// The record the error is about, when it is about one.
    pub fn index(&self) -> Option<u64> {
        match self {
            RecordFileError::Truncated { index } | RecordFileError::TooLarge { index, .. } => {
                Some(*index)
            }
            RecordFileError::Io(_) => None,
        }
    }
}

/// Reads `records.cbor-seq` one record at a time.
pub struct RecordReader<R> {
    reader: R,
    index: u64,
}

impl<R: Read> RecordReader<R> {
    /// A reader of `reader`, from record 0.
    pub fn new(reader: R) -> Self {
        Self { reader, index: 0 }
    }

    /// The next record, or `None` at the end of the file.
    pub fn next_record(&mut self) -> Result<Option<Vec<u8>>, RecordFileError> {
        let index = self.index;
        let mut prefix = [0u8; 4];
        match read_full(&mut self.reader, &mut prefix)? {
            0 => return Ok(None),
            4 => {}
            _ => return Err(RecordFileError::Truncated { index }),
        }
        let len = u32::from_be_bytes(prefix);
        // Checked before anything is allocated.
        if len as usize > MAX_RECORD_LEN {
            return Err(RecordFileError::TooLarge { index, len });
        }
        let mut bytes = vec![0u8; len as usize];
        if read_full(&mut self.reader, &mut bytes)? != bytes.len() {
            return Err(RecordFileError::Truncated { index });
        }
        self.index += 1;
        Ok(Some(bytes))
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Why the checkpoints file cannot be read further. Notes are numbered from 0.
#[derive(Debug, thiserror::Error)]
pub enum NoteFileError {
    /// The file ends without the separator after note `number`.
    #[error("{CHECKPOINTS} ends inside checkpoint {number} (no {SEPARATOR:?} line after it)")]
    Unterminated {
        /// The note cut short.
        number: usize,
    },
    /// Note `number` is longer than a note may be.
    #[error("{CHECKPOINTS}: checkpoint {number} is longer than a signed note may be")]
    TooLarge {
        /// The note.
        number: usize,
    },
    /// The file could not be read, or is not UTF-8.
    #[error("reading {CHECKPOINTS}: {0}")]
    Io(#[from] io::Error),
}

/// Reads `checkpoints.txt` one note at a time.
pub struct NoteReader<R> {
    reader: R,
    number: usize,
}

impl<R: BufRead> NoteReader<R> {
    /// A reader of `reader`, from the first note.
    pub fn new(reader: R) -> Self {
        Self { reader, number: 0 }
    }

    /// The next note (with its final newline), or `None` at the end of the file.
    pub fn next_note(&mut self) -> Result<Option<String>, NoteFileError> {
        let number = self.number;
        let mut note = String::new();
        loop {
            let mut line = String::new();
            // Bounded: a line longer than a note is refused before it is read whole.
            let limit = (MAX_NOTE_LEN + SEPARATOR.len() + 2) as u64;
            let read = (&mut self.reader).take(limit).read_line(&mut line)?;
            if read == 0 {
                return if note.is_empty() {
                    Ok(None)
                } else {
                    Err(NoteFileError::Unterminated { number })
                };
            }
            if line.strip_suffix('\n') == Some(SEPARATOR) {
                self.number += 1;
                return Ok(Some(note));
            }
            note.push_str(&line);
            if note.len() > MAX_NOTE_LEN {
                return Err(NoteFileError::TooLarge { number });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_file(records: &[&[u8]]) -> Vec<u8> {
        let mut file = Vec::new();
        for record in records {
            file.extend_from_slice(&u32::try_from(record.len()).unwrap().to_be_bytes());
            file.extend_from_slice(record);
        }
        file
    }

    #[test]
    fn records_are_read_in_order_and_damage_is_named() {
        let file = record_file(&[b"one", b"", b"three"]);
        let mut reader = RecordReader::new(file.as_slice());
        assert_eq!(reader.next_record().unwrap().unwrap(), b"one");
        assert_eq!(reader.next_record().unwrap().unwrap(), b"");
        assert_eq!(reader.next_record().unwrap().unwrap(), b"three");
        assert!(reader.next_record().unwrap().is_none());

        let mut reader = RecordReader::new(&file[..file.len() - 1]);
        reader.next_record().unwrap();
        reader.next_record().unwrap();
        assert_eq!(reader.next_record().unwrap_err().index(), Some(2));
        let mut reader = RecordReader::new(&file[..2]);
        assert_eq!(reader.next_record().unwrap_err().index(), Some(0));

        let huge = (MAX_RECORD_LEN as u32 + 1).to_be_bytes();
        assert!(matches!(
            RecordReader::new(&huge[..]).next_record(),
            Err(RecordFileError::TooLarge { index: 0, .. })
        ));
    }

    #[test]
    fn notes_split_at_separator_lines_and_damage_is_named() {
        let file = "origin\n1\nroot\n\n— sig\n---\norigin\n2\nroot\n\n— sig\n---\n";
        let mut reader = NoteReader::new(file.as_bytes());
        assert_eq!(
            reader.next_note().unwrap().unwrap(),
            "origin\n1\nroot\n\n— sig\n"
        );
        assert_eq!(
            reader.next_note().unwrap().unwrap(),
            "origin\n2\nroot\n\n— sig\n"
        );
        assert!(reader.next_note().unwrap().is_none());

        let mut reader = NoteReader::new(&file.as_bytes()[..file.len() - 4]);
        reader.next_note().unwrap();
        assert!(matches!(
            reader.next_note(),
            Err(NoteFileError::Unterminated { number: 1 })
        ));
        let long = "x".repeat(MAX_NOTE_LEN * 3);
        assert!(matches!(
            NoteReader::new(long.as_bytes()).next_note(),
            Err(NoteFileError::TooLarge { number: 0 })
        ));
    }
}
