//! The fixed-size structures of the EIF format: the file header and the section headers.
//!
//! Everything is big-endian. The layout follows `defs/mod.rs` of
//! aws-nitro-enclaves-image-format (version 4 of the format):
//!
//! ```text
//! header (548 bytes)
//!   magic ".eif" | version u16 | flags u16 | default_mem u64 | default_cpus u64
//!   | reserved u16 | section count u16 | 32 x offset u64 | 32 x size u64 | unused u32 | crc32 u32
//! then, for each section, at its offset:
//!   section type u16 | flags u16 | data size u64 | data
//! ```
//!
//! An offset points at the section's 12-byte header; the size counts the data only.

/// The four bytes every EIF starts with: `.eif`.
pub const MAGIC: [u8; 4] = *b".eif";
/// Length of the file header in bytes.
pub const HEADER_LEN: usize = 548;
/// Length of a section header in bytes.
pub const SECTION_HEADER_LEN: usize = 12;
/// Slots in the header's offset and size tables.
pub const MAX_SECTIONS: usize = 32;
/// The format version this crate writes, and the newest it reads.
pub const CURRENT_VERSION: u16 = 4;
/// The oldest version this crate reads: version 2 introduced the CRC, without which a file
/// cannot be checked.
pub const MIN_VERSION: u16 = 2;
/// Where the CRC sits in the header; the CRC covers every byte of the file but these four.
pub const CRC_OFFSET: usize = HEADER_LEN - 4;
/// Header flag bit set for aarch64 images, clear for x86_64.
pub const FLAG_ARCH_ARM64: u16 = 0x1;

/// What a section holds (the `section type` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SectionKind {
    /// The enclave kernel image (bzImage or Image).
    Kernel,
    /// The kernel command line, without a trailing NUL.
    Cmdline,
    /// A cpio ramdisk: the first is AWS's init and bootstrap, the others the application.
    Ramdisk,
    /// The CBOR list of PCR signatures with the signing certificate (format version 3+).
    Signature,
    /// JSON identity and build metadata (format version 4+).
    Metadata,
}

impl SectionKind {
    /// The on-disk code of this kind.
    pub const fn code(self) -> u16 {
        match self {
            Self::Kernel => 1,
            Self::Cmdline => 2,
            Self::Ramdisk => 3,
            Self::Signature => 4,
            Self::Metadata => 5,
        }
    }

    /// The kind for an on-disk code; `None` for 0 (the format's "invalid") and unknown codes.
    pub const fn from_code(code: u16) -> Option<Self> {
        match code {
            1 => Some(Self::Kernel),
            2 => Some(Self::Cmdline),
            3 => Some(Self::Ramdisk),
            4 => Some(Self::Signature),
            5 => Some(Self::Metadata),
            _ => None,
        }
    }

    /// The name nitro-cli and the format's sources use, e.g. `"Kernel"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Kernel => "Kernel",
            Self::Cmdline => "Cmdline",
            Self::Ramdisk => "Ramdisk",
            Self::Signature => "Signature",
            Self::Metadata => "Metadata",
        }
    }
}

impl std::fmt::Display for SectionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The CPU architecture an image is built for (header flag bit 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// x86_64 (flag clear).
    X86_64,
    /// aarch64 (flag set).
    Aarch64,
}

impl Architecture {
    /// The conventional name, `x86_64` or `aarch64`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Aarch64 => "aarch64",
        }
    }
}

/// The 548-byte file header, field by field. Decoding does not validate anything; the
/// parser in [`crate::Eif::parse`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Should be [`MAGIC`].
    pub magic: [u8; 4],
    /// Format version.
    pub version: u16,
    /// Flags; bit 0 is the architecture.
    pub flags: u16,
    /// Default enclave memory in bytes (nitro-cli writes 1 GiB; `run-enclave` ignores it).
    pub default_mem: u64,
    /// Default vCPU count (nitro-cli writes 2).
    pub default_cpus: u64,
    /// Reserved, written as zero.
    pub reserved: u16,
    /// Number of used slots in the tables below.
    pub section_count: u16,
    /// Offset of each section's header from the start of the file.
    pub section_offsets: [u64; MAX_SECTIONS],
    /// Size of each section's data (without its 12-byte header).
    pub section_sizes: [u64; MAX_SECTIONS],
    /// Unused, written as zero.
    pub unused: u32,
    /// CRC-32/ISO-HDLC of the whole file except these four bytes.
    pub crc32: u32,
}

impl Header {
    /// Reads the header's fields from its 548 bytes.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Self {
        let mut cursor = Cursor(bytes);
        let magic = cursor.array::<4>();
        let version = u16::from_be_bytes(cursor.array());
        let flags = u16::from_be_bytes(cursor.array());
        let default_mem = u64::from_be_bytes(cursor.array());
        let default_cpus = u64::from_be_bytes(cursor.array());
        let reserved = u16::from_be_bytes(cursor.array());
        let section_count = u16::from_be_bytes(cursor.array());
        let section_offsets = [(); MAX_SECTIONS].map(|()| u64::from_be_bytes(cursor.array()));
        let section_sizes = [(); MAX_SECTIONS].map(|()| u64::from_be_bytes(cursor.array()));
        let unused = u32::from_be_bytes(cursor.array());
        let crc32 = u32::from_be_bytes(cursor.array());
        Self {
            magic,
            version,
            flags,
            default_mem,
            default_cpus,
            reserved,
            section_count,
            section_offsets,
            section_sizes,
            unused,
            crc32,
        }
    }

    /// The header's 548 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = Vec::with_capacity(HEADER_LEN);
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.extend_from_slice(&self.default_mem.to_be_bytes());
        out.extend_from_slice(&self.default_cpus.to_be_bytes());
        out.extend_from_slice(&self.reserved.to_be_bytes());
        out.extend_from_slice(&self.section_count.to_be_bytes());
        for offset in &self.section_offsets {
            out.extend_from_slice(&offset.to_be_bytes());
        }
        for size in &self.section_sizes {
            out.extend_from_slice(&size.to_be_bytes());
        }
        out.extend_from_slice(&self.unused.to_be_bytes());
        out.extend_from_slice(&self.crc32.to_be_bytes());
        let mut fixed = [0u8; HEADER_LEN];
        // INVARIANT: the fields above add up to exactly HEADER_LEN bytes (pinned by a test),
        // so the zip below copies every byte.
        for (slot, byte) in fixed.iter_mut().zip(out) {
            *slot = byte;
        }
        fixed
    }

    /// The architecture named by the flags.
    pub const fn architecture(&self) -> Architecture {
        if self.flags & FLAG_ARCH_ARM64 != 0 {
            Architecture::Aarch64
        } else {
            Architecture::X86_64
        }
    }
}

/// A section's 12-byte header as it appears in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionHeader {
    /// The raw type code (see [`SectionKind::from_code`]).
    pub kind_code: u16,
    /// Section flags (nitro-cli writes 0).
    pub flags: u16,
    /// Size of the data that follows.
    pub size: u64,
}

impl SectionHeader {
    /// Reads the fields from 12 bytes.
    pub fn decode(bytes: &[u8; SECTION_HEADER_LEN]) -> Self {
        let mut cursor = Cursor(bytes);
        Self {
            kind_code: u16::from_be_bytes(cursor.array()),
            flags: u16::from_be_bytes(cursor.array()),
            size: u64::from_be_bytes(cursor.array()),
        }
    }

    /// The 12 bytes of this header.
    pub fn encode(&self) -> [u8; SECTION_HEADER_LEN] {
        let mut out = [0u8; SECTION_HEADER_LEN];
        let (kind, rest) = out.split_at_mut(2);
        let (flags, size) = rest.split_at_mut(2);
        kind.copy_from_slice(&self.kind_code.to_be_bytes());
        flags.copy_from_slice(&self.flags.to_be_bytes());
        size.copy_from_slice(&self.size.to_be_bytes());
        out
    }
}

/// Reads fixed-size big-endian fields off the front of a buffer whose length the caller's
/// type already fixes; past the end it yields zeros, which the length invariants rule out.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn array<const N: usize>(&mut self) -> [u8; N] {
        match self.0.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.0 = rest;
                *head
            }
            None => [0; N],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_has_the_documented_length() {
        let mut header = Header {
            magic: MAGIC,
            version: 4,
            flags: FLAG_ARCH_ARM64,
            default_mem: 1 << 30,
            default_cpus: 2,
            reserved: 0,
            section_count: 3,
            section_offsets: [0; MAX_SECTIONS],
            section_sizes: [0; MAX_SECTIONS],
            unused: 0,
            crc32: 0xdead_beef,
        };
        header.section_offsets[2] = 0x0102_0304_0506_0708;
        header.section_sizes[31] = 7;
        let bytes = header.encode();
        assert_eq!(&bytes[..4], b".eif");
        assert_eq!(&bytes[4..6], &[0, 4]);
        assert_eq!(&bytes[CRC_OFFSET..], &[0xde, 0xad, 0xbe, 0xef]);
        // Offsets start after magic, version, flags, mem, cpus, reserved, count.
        assert_eq!(&bytes[28 + 16..28 + 24], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(Header::decode(&bytes), header);
        assert_eq!(header.architecture(), Architecture::Aarch64);
    }

    #[test]
    fn section_header_round_trips() {
        let header = SectionHeader {
            kind_code: SectionKind::Signature.code(),
            flags: 3,
            size: 123,
        };
        let bytes = header.encode();
        assert_eq!(bytes, [0, 4, 0, 3, 0, 0, 0, 0, 0, 0, 0, 123]);
        assert_eq!(SectionHeader::decode(&bytes), header);
    }

    #[test]
    fn section_codes_round_trip_and_zero_is_invalid() {
        for code in 0..=u16::from(u8::MAX) {
            match SectionKind::from_code(code) {
                Some(kind) => assert_eq!(kind.code(), code),
                None => assert!(code == 0 || code > 5, "code {code}"),
            }
        }
    }
}
