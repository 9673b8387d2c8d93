//! Parsing a whole image: header, section layout, CRC, metadata and signature.
//!
//! The checks are stricter than nitro-cli's reader, which walks sections back to back from
//! the end of the header and trusts whatever it finds. Here the header's table must describe
//! exactly that walk: sections in table order, each starting where the previous one ended,
//! the first right after the header and the last ending at the end of the file. Then the
//! table and the walk cannot disagree, and the CRC (computed by nitro-cli over the header
//! minus its CRC field followed by every section header and section in that walk) is simply
//! the CRC of every byte of the file except the four CRC bytes.
//!
//! Nothing is allocated from a size read out of the file: sections are borrowed slices of
//! the input, checked against its length with overflow-checked arithmetic first.

use crate::cose::{check_pcr0_signature, SignatureCheckError};
use crate::error::EifError;
use crate::format::{
    Architecture, Header, SectionHeader, SectionKind, CRC_OFFSET, CURRENT_VERSION, HEADER_LEN,
    MAGIC, MAX_SECTIONS, MIN_VERSION, SECTION_HEADER_LEN,
};
use crate::measure::measure;
use crate::measurements::Measurements;
use crate::metadata::Metadata;
use crate::signature::PcrSignature;

/// One section of a parsed image, borrowing its data from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section<'a> {
    /// What it holds.
    pub kind: SectionKind,
    /// The flags of its section header.
    pub flags: u16,
    /// Offset of its section header in the file.
    pub offset: u64,
    /// Its data.
    pub data: &'a [u8],
}

/// A parsed, CRC-checked EIF.
#[derive(Debug, Clone)]
pub struct Eif<'a> {
    header: Header,
    sections: Vec<Section<'a>>,
    metadata: Option<Metadata>,
    signature: Option<PcrSignature>,
}

impl<'a> Eif<'a> {
    /// Parses and checks an image held in memory.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, EifError> {
        let (header_bytes, _) = bytes
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(EifError::TruncatedHeader { len: bytes.len() })?;
        let header = Header::decode(header_bytes);
        if header.magic != MAGIC {
            return Err(EifError::BadMagic {
                found: header.magic,
            });
        }
        if !(MIN_VERSION..=CURRENT_VERSION).contains(&header.version) {
            return Err(EifError::UnsupportedVersion {
                version: header.version,
            });
        }
        let count = usize::from(header.section_count);
        if count > MAX_SECTIONS {
            return Err(EifError::TooManySections {
                count: header.section_count,
            });
        }
        let sections = walk_sections(&header, bytes, count)?;
        check_section_counts(&sections)?;
        let computed = eif_crc(bytes);
        if computed != header.crc32 {
            return Err(EifError::CrcMismatch {
                stored: header.crc32,
                computed,
            });
        }
        let metadata = sections
            .iter()
            .find(|section| section.kind == SectionKind::Metadata)
            .map(|section| Metadata::parse(section.data))
            .transpose()
            .map_err(EifError::Metadata)?;
        let signature = sections
            .iter()
            .find(|section| section.kind == SectionKind::Signature)
            .map(|section| PcrSignature::parse(section.data))
            .transpose()?;
        Ok(Self {
            header,
            sections,
            metadata,
            signature,
        })
    }

    /// The file header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The format version.
    pub fn version(&self) -> u16 {
        self.header.version
    }

    /// The architecture the image is built for.
    pub fn architecture(&self) -> Architecture {
        self.header.architecture()
    }

    /// The sections in file order.
    pub fn sections(&self) -> &[Section<'a>] {
        &self.sections
    }

    /// The metadata section, if the image has one.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    /// The signature section, if the image is signed.
    pub fn signature(&self) -> Option<&PcrSignature> {
        self.signature.as_ref()
    }

    /// PCR0, PCR1, PCR2, and PCR8 when signed, computed as nitro-cli does (see
    /// [`crate::measure`]).
    pub fn measurements(&self) -> Measurements {
        measure(
            self.sections
                .iter()
                .map(|section| (section.kind, section.data)),
            self.signature.as_ref().map(PcrSignature::certificate_der),
        )
    }

    /// For a signed image, whether its signature is valid and signs its PCR0; `None` when
    /// unsigned.
    pub fn check_signature(&self) -> Option<Result<(), SignatureCheckError>> {
        let signature = self.signature.as_ref()?;
        let measurements = self.measurements();
        // PCR0 is always computed, so the fallback is never taken.
        let pcr0 = measurements.pcr(0).unwrap_or([0; 48]);
        Some(check_pcr0_signature(signature, &pcr0))
    }
}

/// Follows the header's table, checking that the sections tile the file after the header.
fn walk_sections<'a>(
    header: &Header,
    bytes: &'a [u8],
    count: usize,
) -> Result<Vec<Section<'a>>, EifError> {
    let file_len = bytes.len();
    let mut sections = Vec::with_capacity(count);
    let mut previous_end = HEADER_LEN;
    let table = header
        .section_offsets
        .iter()
        .zip(&header.section_sizes)
        .take(count)
        .enumerate();
    for (index, (&offset, &size)) in table {
        let out_of_bounds = || EifError::SectionOutOfBounds {
            index,
            offset,
            size,
            file_len,
        };
        let previous = u64::try_from(previous_end).unwrap_or(u64::MAX);
        if offset < previous {
            return Err(EifError::SectionOverlap {
                index,
                offset,
                previous_end: previous,
            });
        }
        if offset > previous {
            return Err(EifError::SectionGap {
                index,
                offset,
                previous_end: previous,
            });
        }
        // From here on the section starts at `previous_end`, a position inside the input.
        let data_start = previous_end
            .checked_add(SECTION_HEADER_LEN)
            .ok_or_else(out_of_bounds)?;
        let data_end = usize::try_from(size)
            .ok()
            .and_then(|size| data_start.checked_add(size))
            .ok_or_else(out_of_bounds)?;
        let section_header = bytes
            .get(previous_end..data_start)
            .and_then(|raw| <&[u8; SECTION_HEADER_LEN]>::try_from(raw).ok())
            .map(SectionHeader::decode)
            .ok_or_else(out_of_bounds)?;
        let data = bytes.get(data_start..data_end).ok_or_else(out_of_bounds)?;
        if section_header.size != size {
            return Err(EifError::SectionSizeMismatch {
                index,
                in_table: size,
                in_section: section_header.size,
            });
        }
        let kind = SectionKind::from_code(section_header.kind_code).ok_or(
            EifError::UnknownSectionType {
                index,
                code: section_header.kind_code,
            },
        )?;
        sections.push(Section {
            kind,
            flags: section_header.flags,
            offset,
            data,
        });
        previous_end = data_end;
    }
    if previous_end != file_len {
        return Err(EifError::TrailingBytes {
            end: previous_end,
            file_len,
        });
    }
    Ok(sections)
}

/// A bootable image has one kernel, one cmdline and at least one ramdisk (AWS's init); a
/// signature or metadata section may appear once.
fn check_section_counts(sections: &[Section<'_>]) -> Result<(), EifError> {
    let count = |kind| sections.iter().filter(|s| s.kind == kind).count();
    for kind in [
        SectionKind::Kernel,
        SectionKind::Cmdline,
        SectionKind::Ramdisk,
    ] {
        if count(kind) == 0 {
            return Err(EifError::MissingSection { kind });
        }
    }
    for kind in [
        SectionKind::Kernel,
        SectionKind::Cmdline,
        SectionKind::Signature,
        SectionKind::Metadata,
    ] {
        let found = count(kind);
        if found > 1 {
            return Err(EifError::DuplicateSection { kind, count: found });
        }
    }
    Ok(())
}

/// The EIF CRC of a complete file: CRC-32/ISO-HDLC over every byte except the header's CRC
/// field. For a file shorter than the header, the CRC of what there is.
pub fn eif_crc(bytes: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    match (bytes.get(..CRC_OFFSET), bytes.get(HEADER_LEN..)) {
        (Some(before), Some(after)) => {
            hasher.update(before);
            hasher.update(after);
        }
        _ => hasher.update(bytes),
    }
    hasher.finalize()
}

#[cfg(test)]
mod tests;
