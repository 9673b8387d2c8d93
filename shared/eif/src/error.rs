//! Why an EIF was refused.

use crate::format::{SectionKind, CURRENT_VERSION, HEADER_LEN, MAX_SECTIONS, MIN_VERSION};
use crate::signature::SignatureSectionError;

/// Why a file is not an EIF this crate accepts. Every variant is a property of the file (the
/// input is malformed or corrupted); none is a bug of the caller.
#[derive(Debug, thiserror::Error)]
pub enum EifError {
    /// Fewer bytes than the fixed header.
    #[error("truncated EIF: the file has {len} bytes, the header alone needs {HEADER_LEN}")]
    TruncatedHeader {
        /// Length of the input.
        len: usize,
    },
    /// The first four bytes are not `.eif`.
    #[error("not an EIF: the file starts with {found:02x?}, an EIF starts with \".eif\"")]
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// A format version this crate does not know.
    #[error(
        "EIF version {version} is not supported (this reader knows versions {MIN_VERSION} to \
         {CURRENT_VERSION})"
    )]
    UnsupportedVersion {
        /// The version in the header.
        version: u16,
    },
    /// The header declares more sections than its tables have slots.
    #[error("the header declares {count} sections; the format has room for {MAX_SECTIONS}")]
    TooManySections {
        /// The declared count.
        count: u16,
    },
    /// A section (its 12-byte header plus its data) does not fit in the file.
    #[error(
        "section {index} (header at offset {offset}, {size} data bytes) runs past the end of \
         the {file_len}-byte file: the file is truncated or the section size is wrong"
    )]
    SectionOutOfBounds {
        /// Slot in the header's tables.
        index: usize,
        /// Offset of the section header.
        offset: u64,
        /// Declared data size.
        size: u64,
        /// Length of the file.
        file_len: usize,
    },
    /// A section starts before the previous one ends.
    #[error(
        "section {index} starts at offset {offset}, inside the previous section (which ends at \
         {previous_end})"
    )]
    SectionOverlap {
        /// Slot in the header's tables.
        index: usize,
        /// Where it starts.
        offset: u64,
        /// Where the previous section (or the header) ends.
        previous_end: u64,
    },
    /// Bytes between two sections that no section accounts for (nitro-cli reads sections back
    /// to back, so it would read those bytes as a section header).
    #[error(
        "section {index} starts at offset {offset}, leaving {} unaccounted bytes after the \
         previous section (which ends at {previous_end})", offset - previous_end
    )]
    SectionGap {
        /// Slot in the header's tables.
        index: usize,
        /// Where it starts.
        offset: u64,
        /// Where the previous section (or the header) ends.
        previous_end: u64,
    },
    /// Bytes after the last section.
    #[error("{} bytes follow the last section (which ends at {end})", file_len - end)]
    TrailingBytes {
        /// Where the last section ends.
        end: usize,
        /// Length of the file.
        file_len: usize,
    },
    /// The size in the header's table disagrees with the size in the section's own header.
    #[error(
        "section {index}: the header's table says {in_table} bytes, the section header says \
         {in_section}"
    )]
    SectionSizeMismatch {
        /// Slot in the header's tables.
        index: usize,
        /// Size in the file header's table.
        in_table: u64,
        /// Size in the section header.
        in_section: u64,
    },
    /// A section type code that is not kernel, cmdline, ramdisk, signature or metadata.
    #[error("section {index} has type code {code}, which is not a known EIF section type")]
    UnknownSectionType {
        /// Slot in the header's tables.
        index: usize,
        /// The code found.
        code: u16,
    },
    /// A required section is absent.
    #[error("the EIF has no {kind} section")]
    MissingSection {
        /// Which one.
        kind: SectionKind,
    },
    /// A section that may appear once appears more often.
    #[error("the EIF has {count} {kind} sections; at most one is allowed")]
    DuplicateSection {
        /// Which one.
        kind: SectionKind,
        /// How many were found.
        count: usize,
    },
    /// The CRC stored in the header does not match the file's contents.
    #[error(
        "CRC mismatch: the header says {stored:#010x}, the contents give {computed:#010x}; the \
         file is corrupted"
    )]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC of the contents.
        computed: u32,
    },
    /// The metadata section is not the JSON identity document nitro-cli writes.
    #[error("the metadata section is not valid EIF metadata JSON: {0}")]
    Metadata(#[source] serde_json::Error),
    /// The signature section cannot be read.
    #[error("the signature section is unreadable: {0}")]
    Signature(#[from] SignatureSectionError),
}
