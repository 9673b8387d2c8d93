//! How nitro-cli turns an image into PCR values.
//!
//! Read from aws-nitro-enclaves-image-format (`utils/mod.rs`: `EifBuilder::measure`,
//! `get_pcrs`; `utils/eif_reader.rs`; `defs/eif_hasher.rs`). Its hashers are created with
//! `new_without_cache`, so each is a plain SHA-384 over everything written to it, and each
//! PCR is one TPM-style extend of that digest from 48 zero bytes:
//!
//! ```text
//! PCR = SHA-384( 0^48 || SHA-384(data) )
//! PCR0 data = kernel || cmdline || ramdisk 1 || ... || ramdisk n   (section data, file order)
//! PCR1 data = kernel || cmdline || ramdisk 1
//! PCR2 data = ramdisk 2 || ... || ramdisk n                        (SHA-384 of "" if none)
//! PCR8 data = DER of the signing certificate                      (only when signed)
//! ```
//!
//! Only section data is measured: not section headers, not the metadata or signature
//! sections, not the file header. So the metadata (build time, tool versions) never changes
//! the PCRs, and two builds from the same kernel, cmdline and ramdisks give the same values.

use ring::digest::{Context, SHA384};

use crate::format::SectionKind;
use crate::measurements::Measurements;

/// A SHA-384 PCR value.
pub type Pcr = [u8; 48];

/// Bytes in a PCR value.
pub const PCR_LEN: usize = 48;

/// Extends a PCR that starts at 48 zero bytes with the SHA-384 of `data`, as the NSM does
/// for each measured item: `SHA-384(0^48 || SHA-384(data))`.
pub fn extend_from_zero(data: &[&[u8]]) -> Pcr {
    let mut inner = Context::new(&SHA384);
    for part in data {
        inner.update(part);
    }
    let mut outer = Context::new(&SHA384);
    outer.update(&[0u8; PCR_LEN]);
    outer.update(inner.finish().as_ref());
    to_pcr(outer.finish().as_ref())
}

fn to_pcr(digest: &[u8]) -> Pcr {
    let mut pcr = [0u8; PCR_LEN];
    // INVARIANT: SHA-384 digests are 48 bytes, so every byte is copied.
    for (slot, byte) in pcr.iter_mut().zip(digest) {
        *slot = *byte;
    }
    pcr
}

/// Computes PCR0, PCR1, PCR2 and (when a certificate is given) PCR8 from the sections in file
/// order. Sections other than kernel, cmdline and ramdisks are skipped, as nitro-cli does.
pub fn measure<'a>(
    sections: impl IntoIterator<Item = (SectionKind, &'a [u8])>,
    signing_certificate_der: Option<&[u8]>,
) -> Measurements {
    let mut image = Context::new(&SHA384);
    let mut bootstrap = Context::new(&SHA384);
    let mut application = Context::new(&SHA384);
    let mut ramdisks_seen = 0usize;
    for (kind, data) in sections {
        match kind {
            SectionKind::Kernel | SectionKind::Cmdline => {
                image.update(data);
                bootstrap.update(data);
            }
            SectionKind::Ramdisk => {
                image.update(data);
                // The first ramdisk is AWS's init, part of the bootstrap; the rest are the
                // application's container layers.
                if ramdisks_seen == 0 {
                    bootstrap.update(data);
                } else {
                    application.update(data);
                }
                ramdisks_seen = ramdisks_seen.saturating_add(1);
            }
            SectionKind::Signature | SectionKind::Metadata => {}
        }
    }
    let mut measurements = Measurements::new();
    for (index, context) in [(0, image), (1, bootstrap), (2, application)] {
        measurements.insert(index, extend_digest(context));
    }
    if let Some(der) = signing_certificate_der {
        measurements.insert(8, extend_from_zero(&[der]));
    }
    measurements
}

fn extend_digest(context: Context) -> Pcr {
    let mut outer = Context::new(&SHA384);
    outer.update(&[0u8; PCR_LEN]);
    outer.update(context.finish().as_ref());
    to_pcr(outer.finish().as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Golden values from Python's hashlib: sha384(b"\0" * 48 + sha384(data).digest()).
    const EXTEND_EMPTY: &str = "21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c\
                                10edb30948c90ba67310f7b964fc500a";
    const EXTEND_KERNEL_CMDLINE: &str = "2b43554010a96bd670e51dba7274d8047bfac05cf7d321ca411fa6ed\
                                         14dea238b763e65c5db087777fc1514866c4bf7e";

    #[test]
    fn extend_matches_an_independent_sha384() {
        assert_eq!(hex::encode(extend_from_zero(&[])), EXTEND_EMPTY);
        assert_eq!(
            hex::encode(extend_from_zero(&[b"kernel", b"cmdline"])),
            EXTEND_KERNEL_CMDLINE
        );
    }

    #[test]
    fn pcrs_follow_section_roles_in_file_order() {
        let sections: [(SectionKind, &[u8]); 6] = [
            (SectionKind::Kernel, b"kernel"),
            (SectionKind::Cmdline, b"cmdline"),
            (SectionKind::Metadata, b"{ignored}"),
            (SectionKind::Ramdisk, b"init"),
            (SectionKind::Ramdisk, b"app1"),
            (SectionKind::Ramdisk, b"app2"),
        ];
        let m = measure(sections, Some(b"cert"));
        let pcr = |n| m.pcr(n).unwrap();
        assert_eq!(pcr(0), extend_from_zero(&[b"kernelcmdlineinitapp1app2"]));
        assert_eq!(pcr(1), extend_from_zero(&[b"kernelcmdlineinit"]));
        assert_eq!(pcr(2), extend_from_zero(&[b"app1app2"]));
        assert_eq!(pcr(8), extend_from_zero(&[b"cert"]));
        assert_eq!(m.indices().collect::<Vec<_>>(), [0, 1, 2, 8]);
    }

    #[test]
    fn unsigned_images_have_no_pcr8_and_one_ramdisk_leaves_pcr2_empty() {
        let sections: [(SectionKind, &[u8]); 3] = [
            (SectionKind::Kernel, b"k"),
            (SectionKind::Cmdline, b"c"),
            (SectionKind::Ramdisk, b"init"),
        ];
        let m = measure(sections, None);
        assert_eq!(m.pcr(8), None);
        assert_eq!(hex::encode(m.pcr(2).unwrap()), EXTEND_EMPTY);
    }
}
