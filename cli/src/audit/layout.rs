//! The directory an exported log lives in:
//!
//! - `records.cbor-seq`: every record in index order, each as a 4-byte big-endian length
//!   followed by that many bytes of the record's canonical CBOR;
//! - `checkpoints.txt`: every checkpoint note (signed-note text, ending in a newline) in
//!   increasing size order, each followed by a line holding only `---`. A note never holds
//!   such a line (the writer refuses one that does), so the layout is unambiguous;
//! - `manifest.json`: what was fetched, from where and when, and the byte lengths of the two
//!   files, so that an interrupted fetch can be resumed exactly. It is written last, and is
//!   not needed to verify;
//! - `witnessed.json` (when the parent serves one): the latest checkpoint witnesses
//!   cosigned, `{"size", "checkpoint", "fetched_at"}`, its note carrying the log's signature
//!   and the cosignature lines; `govctl audit verify --witness` checks it.

use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::path::Path;

use anyhow::{bail, Context as _};
use ea_audit::note::MAX_NOTE_LEN;
use ea_audit::record::MAX_RECORD_LEN;
use serde::{Deserialize, Serialize};

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// The records' file name.
pub const RECORDS: &str = "records.cbor-seq";
/// The checkpoints' file name.
pub const CHECKPOINTS: &str = "checkpoints.txt";
/// The line after each note in the checkpoints file.
pub const SEPARATOR: &str = "---";
/// The layout version, in every manifest.
pub const FORMAT: &str = "enclave-approvals-log-export/1";

/// The witnessed checkpoint's file name.
pub const WITNESSED: &str = "witnessed.json";

/// Largest manifest read.
const MAX_MANIFEST_LEN: u64 = 64 * 1024;

/// Largest `witnessed.json` read: a note is at most 128 KiB, and JSON escapes little of it.
const MAX_WITNESSED_LEN: u64 = 512 * 1024;

/// `witnessed.json`: the checkpoint witnesses cosigned, as `GET /v1/log/witnessed` served it.
/// Nothing in it is trusted: `audit verify --witness` checks the note's signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Witnessed {
    /// The size the parent says the checkpoint has (the note's own is what counts).
    pub size: u64,
    /// The checkpoint note with the log's signature and the cosignature lines.
    pub checkpoint: String,
    /// When it was fetched, RFC 3339.
    pub fetched_at: String,
}

/// Reads `witnessed.json` of `dir`, if there is one.
pub fn read_witnessed(dir: &Path) -> anyhow::Result<Option<Witnessed>> {
    let path = dir.join(WITNESSED);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("opening {}", path.display())),
    };
    let mut text = String::new();
    file.take(MAX_WITNESSED_LEN + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    if text.len() as u64 > MAX_WITNESSED_LEN {
        bail!(
            "{} is larger than 512 KiB: not a witnessed checkpoint",
            path.display()
        );
    }
    let witnessed =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(Some(witnessed))
}

/// Writes `witnessed.json` of `dir` (a temporary file, then renamed over the old one).
pub fn write_witnessed(dir: &Path, witnessed: &Witnessed) -> anyhow::Result<()> {
    write_json(dir, WITNESSED, witnessed)
}

/// Writes `value` as `dir/name`: to a temporary file first, flushed, then renamed over the
/// old one, so a reader sees the old file or the new one, never half of one.
fn write_json(dir: &Path, name: &str, value: &impl Serialize) -> anyhow::Result<()> {
    let path = dir.join(name);
    let temporary = dir.join(format!("{name}.tmp"));
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    let mut file =
        File::create(&temporary).with_context(|| format!("creating {}", temporary.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, &path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The log's origin (first line of its checkpoints).
    pub origin: String,
    /// Records in `records.cbor-seq`.
    pub size: u64,
    /// Byte length of `records.cbor-seq`.
    pub records_bytes: u64,
    /// Notes in `checkpoints.txt`.
    pub checkpoints: u64,
    /// Byte length of `checkpoints.txt`.
    pub checkpoints_bytes: u64,
    /// The size of the last checkpoint in `checkpoints.txt`.
    pub last_checkpoint_size: u64,
    /// When the fetch finished, RFC 3339.
    pub fetched_at: String,
    /// The endpoint it came from.
    pub endpoint: String,
}

/// Reads the manifest of `dir`, if there is one.
pub fn read_manifest(dir: &Path) -> anyhow::Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("opening {}", path.display())),
    };
    let mut text = String::new();
    file.take(MAX_MANIFEST_LEN + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    if text.len() as u64 > MAX_MANIFEST_LEN {
        bail!("{} is larger than 64 KiB: not a manifest", path.display());
    }
    let manifest: Manifest =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if manifest.format != FORMAT {
        bail!(
            "{} is of format {:?}; this govctl reads {FORMAT:?}",
            path.display(),
            manifest.format
        );
    }
    Ok(Some(manifest))
}

/// Writes the manifest of `dir`: to a temporary file first, then renamed over the old one,
/// so a reader sees the old manifest or the new one, never half of one.
pub fn write_manifest(dir: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    write_json(dir, MANIFEST, manifest)
}

/// Writes one record: its length, then its bytes.
pub fn write_record(out: &mut impl Write, bytes: &[u8]) -> anyhow::Result<()> {
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|&len| len as usize <= MAX_RECORD_LEN)
        .with_context(|| format!("a record of {} bytes is too large", bytes.len()))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(bytes)?;
    Ok(())
}

/// Writes one note and its separator line.
pub fn write_note(out: &mut impl Write, note: &str) -> anyhow::Result<()> {
    if !note.ends_with('\n') {
        bail!("a checkpoint note must end with a newline");
    }
    if note.lines().any(|line| line == SEPARATOR) {
        bail!("a checkpoint note holds a line {SEPARATOR:?}; it cannot be stored unambiguously");
    }
    out.write_all(note.as_bytes())?;
    out.write_all(SEPARATOR.as_bytes())?;
    out.write_all(b"\n")?;
    Ok(())
}

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
    while filled < buf.len() {
        let Some(rest) = buf.get_mut(filled..) else {
            break;
        };
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

    #[test]
    fn records_round_trip_and_damage_is_named() {
        let mut file = Vec::new();
        for record in [&b"one"[..], b"", b"three"] {
            write_record(&mut file, record).unwrap();
        }
        let mut reader = RecordReader::new(file.as_slice());
        assert_eq!(reader.next_record().unwrap().unwrap(), b"one");
        assert_eq!(reader.next_record().unwrap().unwrap(), b"");
        assert_eq!(reader.next_record().unwrap().unwrap(), b"three");
        assert!(reader.next_record().unwrap().is_none());

        let cut = &file[..file.len() - 1];
        let mut reader = RecordReader::new(cut);
        reader.next_record().unwrap();
        reader.next_record().unwrap();
        assert!(matches!(
            reader.next_record(),
            Err(RecordFileError::Truncated { index: 2 })
        ));
        let mut reader = RecordReader::new(&file[..2]);
        assert_eq!(reader.next_record().unwrap_err().index(), Some(0));

        let huge = (MAX_RECORD_LEN as u32 + 1).to_be_bytes();
        assert!(matches!(
            RecordReader::new(&huge[..]).next_record(),
            Err(RecordFileError::TooLarge { index: 0, .. })
        ));
    }

    #[test]
    fn notes_round_trip_and_a_separator_inside_a_note_is_refused() {
        let notes = ["origin\n1\nroot\n\n— sig\n", "origin\n2\nroot\n\n— sig\n"];
        let mut file = Vec::new();
        for note in notes {
            write_note(&mut file, note).unwrap();
        }
        let mut reader = NoteReader::new(file.as_slice());
        assert_eq!(reader.next_note().unwrap().unwrap(), notes[0]);
        assert_eq!(reader.next_note().unwrap().unwrap(), notes[1]);
        assert!(reader.next_note().unwrap().is_none());

        let mut reader = NoteReader::new(&file[..file.len() - 4]);
        reader.next_note().unwrap();
        assert!(matches!(
            reader.next_note(),
            Err(NoteFileError::Unterminated { number: 1 })
        ));

        assert!(write_note(&mut Vec::new(), "a\n---\nb\n").is_err());
        assert!(write_note(&mut Vec::new(), "no newline").is_err());
    }

    #[test]
    fn an_overlong_note_is_refused_without_reading_it_whole() {
        let long = "x".repeat(MAX_NOTE_LEN * 3);
        let mut reader = NoteReader::new(long.as_bytes());
        assert!(matches!(
            reader.next_note(),
            Err(NoteFileError::TooLarge { number: 0 })
        ));
    }
}
