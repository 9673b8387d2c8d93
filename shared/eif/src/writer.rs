//! Writing EIFs, for tests and fuzz seeds (feature `writer`).
//!
//! The layout is nitro-cli's (`EifBuilder::write_to` in aws-nitro-enclaves-image-format):
//! header, kernel, cmdline, metadata, ramdisks, signature, each section right after the
//! previous one, offsets and sizes in the header's table in that order, version 4, and the
//! CRC over everything but the CRC field. A signed image carries the same CBOR signature
//! section nitro-cli writes: the PEM certificate and a COSE_Sign1 over
//! `PcrInfo { register_index: 0, register_value: PCR0 }`.

use crate::cose::{self, CoseAlgorithm};
use crate::format::{
    Header, SectionHeader, SectionKind, CRC_OFFSET, CURRENT_VERSION, HEADER_LEN, MAGIC,
    MAX_SECTIONS, SECTION_HEADER_LEN,
};
use crate::measure::measure;
use crate::metadata::Metadata;
use crate::signature::{certificate_from_pem, SignatureSectionError};

/// Default enclave memory nitro-cli writes into the header: 1 GiB.
pub const DEFAULT_MEMORY: u64 = 1 << 30;
/// Default vCPU count nitro-cli writes into the header.
pub const DEFAULT_CPUS: u64 = 2;

/// Why an image could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// More sections than the header's table holds.
    #[error("{count} sections do not fit the header's {MAX_SECTIONS} slots")]
    TooManySections {
        /// Sections requested.
        count: usize,
    },
    /// The signer's certificate is not a PEM X.509 certificate.
    #[error("signing certificate: {0}")]
    Certificate(#[from] SignatureSectionError),
    /// The metadata could not be serialized.
    #[error("metadata: {0}")]
    Metadata(#[from] serde_json::Error),
}

/// Turns COSE `Sig_structure` bytes into a raw `r || s` signature.
type SignFn = Box<dyn Fn(&[u8]) -> Vec<u8>>;

/// Signs the PCR0 payload of an image being written.
pub struct PcrSigner {
    certificate_pem: Vec<u8>,
    algorithm: CoseAlgorithm,
    sign: SignFn,
}

impl PcrSigner {
    /// A signer with its PEM certificate; `sign` takes the COSE `Sig_structure` bytes and
    /// returns the raw `r || s` signature for `algorithm`.
    pub fn new(
        certificate_pem: impl Into<Vec<u8>>,
        algorithm: CoseAlgorithm,
        sign: impl Fn(&[u8]) -> Vec<u8> + 'static,
    ) -> Self {
        Self {
            certificate_pem: certificate_pem.into(),
            algorithm,
            sign: Box::new(sign),
        }
    }
}

impl std::fmt::Debug for PcrSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcrSigner")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Assembles an image from its parts.
#[derive(Debug)]
pub struct EifBuilder {
    kernel: Vec<u8>,
    cmdline: Vec<u8>,
    ramdisks: Vec<Vec<u8>>,
    metadata: Option<MetadataSource>,
    flags: u16,
    default_memory: u64,
    default_cpus: u64,
    signer: Option<PcrSigner>,
}

#[derive(Debug)]
enum MetadataSource {
    Document(Box<Metadata>),
    Raw(Vec<u8>),
}

impl EifBuilder {
    /// An image with this kernel and command line (no trailing NUL), no ramdisk yet.
    pub fn new(kernel: impl Into<Vec<u8>>, cmdline: impl Into<Vec<u8>>) -> Self {
        Self {
            kernel: kernel.into(),
            cmdline: cmdline.into(),
            ramdisks: Vec::new(),
            metadata: None,
            flags: 0,
            default_memory: DEFAULT_MEMORY,
            default_cpus: DEFAULT_CPUS,
            signer: None,
        }
    }

    /// Appends a ramdisk; the first is the bootstrap (PCR1), the rest the application (PCR2).
    pub fn ramdisk(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.ramdisks.push(data.into());
        self
    }

    /// Adds a metadata section holding this document.
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = Some(MetadataSource::Document(Box::new(metadata)));
        self
    }

    /// Adds a metadata section with exactly these bytes (for tests of malformed metadata).
    pub fn raw_metadata(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.metadata = Some(MetadataSource::Raw(bytes.into()));
        self
    }

    /// Sets the header flags (bit 0: aarch64).
    pub fn flags(mut self, flags: u16) -> Self {
        self.flags = flags;
        self
    }

    /// Sets the header's default memory (bytes) and vCPU count.
    pub fn default_resources(mut self, memory: u64, cpus: u64) -> Self {
        self.default_memory = memory;
        self.default_cpus = cpus;
        self
    }

    /// Signs the image: adds a signature section and so PCR8.
    pub fn signer(mut self, signer: PcrSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Writes the image.
    pub fn build(&self) -> Result<Vec<u8>, WriterError> {
        let metadata = match &self.metadata {
            Some(MetadataSource::Document(doc)) => Some(serde_json::to_vec(doc)?),
            Some(MetadataSource::Raw(bytes)) => Some(bytes.clone()),
            None => None,
        };
        let mut sections: Vec<(SectionKind, &[u8])> = vec![
            (SectionKind::Kernel, &self.kernel),
            (SectionKind::Cmdline, &self.cmdline),
        ];
        if let Some(bytes) = &metadata {
            sections.push((SectionKind::Metadata, bytes));
        }
        sections.extend(
            self.ramdisks
                .iter()
                .map(|r| (SectionKind::Ramdisk, r.as_slice())),
        );
        let signature = self
            .signer
            .as_ref()
            .map(|signer| signature_section(signer, &sections))
            .transpose()?;
        if let Some(bytes) = &signature {
            sections.push((SectionKind::Signature, bytes));
        }
        if sections.len() > MAX_SECTIONS {
            return Err(WriterError::TooManySections {
                count: sections.len(),
            });
        }
        Ok(self.assemble(&sections))
    }

    /// Lays the sections out after the header and fills in the table and the CRC.
    fn assemble(&self, sections: &[(SectionKind, &[u8])]) -> Vec<u8> {
        let mut header = Header {
            magic: MAGIC,
            version: CURRENT_VERSION,
            flags: self.flags,
            default_mem: self.default_memory,
            default_cpus: self.default_cpus,
            reserved: 0,
            section_count: u16::try_from(sections.len()).unwrap_or(u16::MAX),
            section_offsets: [0; MAX_SECTIONS],
            section_sizes: [0; MAX_SECTIONS],
            unused: 0,
            crc32: 0,
        };
        let mut body = Vec::new();
        let slots = header
            .section_offsets
            .iter_mut()
            .zip(header.section_sizes.iter_mut());
        for ((kind, data), (offset, size)) in sections.iter().zip(slots) {
            *offset = as_u64(HEADER_LEN + body.len());
            *size = as_u64(data.len());
            let section_header = SectionHeader {
                kind_code: kind.code(),
                flags: 0,
                size: *size,
            };
            body.reserve(SECTION_HEADER_LEN + data.len());
            body.extend_from_slice(&section_header.encode());
            body.extend_from_slice(data);
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(header.encode().get(..CRC_OFFSET).unwrap_or_default());
        crc.update(&body);
        header.crc32 = crc.finalize();
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(&body);
        out
    }
}

/// The CBOR signature section for these (unsigned) sections.
fn signature_section(
    signer: &PcrSigner,
    sections: &[(SectionKind, &[u8])],
) -> Result<Vec<u8>, WriterError> {
    let (_, certificate_der) = certificate_from_pem(&signer.certificate_pem)?;
    let measurements = measure(sections.iter().copied(), Some(&certificate_der));
    let pcr0 = measurements.pcr(0).unwrap_or([0; 48]);
    let payload = cose::pcr_info(0, &pcr0);

    let mut protected = Vec::new();
    cose::head(&mut protected, cose::MAP, 1);
    cose::head(&mut protected, cose::UNSIGNED, 1);
    cose::negative(&mut protected, algorithm_magnitude(signer.algorithm));
    let to_be_signed = cose::sig_structure(&protected, &payload);
    let signature = (signer.sign)(&to_be_signed);

    let mut cose_sign1 = Vec::new();
    cose::head(&mut cose_sign1, cose::ARRAY, 4);
    cose::bytes(&mut cose_sign1, &protected);
    cose::head(&mut cose_sign1, cose::MAP, 0);
    cose::bytes(&mut cose_sign1, &payload);
    cose::bytes(&mut cose_sign1, &signature);

    let mut section = Vec::new();
    cose::head(&mut section, cose::ARRAY, 1);
    cose::head(&mut section, cose::MAP, 2);
    cose::text(&mut section, "signing_certificate");
    cose::int_array(&mut section, &signer.certificate_pem);
    cose::text(&mut section, "signature");
    cose::int_array(&mut section, &cose_sign1);
    Ok(section)
}

/// A negative COSE algorithm id `-n` is CBOR major type 1 with argument `n - 1`.
fn algorithm_magnitude(algorithm: CoseAlgorithm) -> u64 {
    algorithm.id().unsigned_abs().saturating_sub(1)
}

fn as_u64(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}
