//! Parser tests: images from the writer, then every refusal the parser promises.

use proptest::prelude::*;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};

use super::*;
use crate::cose::CoseAlgorithm;
use crate::measure::{extend_from_zero, Pcr};
use crate::metadata::BuildInfo;
use crate::writer::{EifBuilder, PcrSigner};

fn metadata() -> Metadata {
    Metadata {
        image_name: "enclave-app".into(),
        image_version: "1.0".into(),
        build: BuildInfo {
            build_time: "1970-01-01T00:00:00+00:00".into(),
            build_tool: "nitro-cli".into(),
            build_tool_version: "1.4.2".into(),
            operating_system: "Linux".into(),
            kernel_version: "6.12".into(),
        },
        docker_info: serde_json::json!({"RepoTags": ["enclave-app:latest"]}),
        custom: serde_json::json!({"team": "platform"}),
    }
}

fn sample() -> Vec<u8> {
    EifBuilder::new(b"KERNEL".repeat(100), b"console=ttyS0 reboot=k".to_vec())
        .metadata(metadata())
        .ramdisk(b"INIT".repeat(50))
        .ramdisk(b"APP-1".repeat(30))
        .ramdisk(b"APP-2".repeat(20))
        .build()
        .unwrap()
}

type SignFn = Box<dyn Fn(&[u8]) -> Vec<u8>>;

/// A self-signed P-384 certificate (PEM and DER) and a function signing with its key.
fn p384_identity() -> (String, SignFn, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["eif-signer.example".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let rng = SystemRandom::new();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &key.serialize_der(), &rng)
            .unwrap();
    let sign = move |message: &[u8]| {
        pair.sign(&SystemRandom::new(), message)
            .unwrap()
            .as_ref()
            .to_vec()
    };
    (cert.pem(), Box::new(sign), cert.der().to_vec())
}

fn p384_signer() -> (PcrSigner, Vec<u8>) {
    let (pem, sign, der) = p384_identity();
    (PcrSigner::new(pem, CoseAlgorithm::Es384, sign), der)
}

/// Rewrites the CRC so a structural edit is seen by the structure checks, not the CRC.
fn fix_crc(bytes: &mut [u8]) {
    let crc = eif_crc(bytes);
    bytes[CRC_OFFSET..HEADER_LEN].copy_from_slice(&crc.to_be_bytes());
}

/// Byte position of table slot `index`'s offset (sizes follow 32 slots later).
fn offset_slot(index: usize) -> usize {
    28 + 8 * index
}

fn size_slot(index: usize) -> usize {
    28 + 8 * MAX_SECTIONS + 8 * index
}

fn write_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_be_bytes());
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap())
}

#[test]
fn parses_what_the_writer_writes_in_nitro_cli_order() {
    let bytes = sample();
    let eif = Eif::parse(&bytes).unwrap();
    assert_eq!(eif.version(), 4);
    assert_eq!(eif.architecture(), Architecture::X86_64);
    let kinds: Vec<SectionKind> = eif.sections().iter().map(|s| s.kind).collect();
    use SectionKind::*;
    assert_eq!(
        kinds,
        [Kernel, Cmdline, Metadata, Ramdisk, Ramdisk, Ramdisk]
    );
    let first = eif.sections()[0];
    assert_eq!(first.offset, HEADER_LEN as u64);
    assert_eq!(first.data, b"KERNEL".repeat(100));
    // Each section starts right after the previous one.
    for pair in eif.sections().windows(2) {
        let end = pair[0].offset + SECTION_HEADER_LEN as u64 + pair[0].data.len() as u64;
        assert_eq!(pair[1].offset, end);
    }
    assert_eq!(eif.metadata(), Some(&metadata()));
    assert!(eif.signature().is_none());
    assert!(eif.check_signature().is_none());
    assert_eq!(eif.header().default_mem, 1 << 30);
    assert_eq!(eif.header().default_cpus, 2);
}

#[test]
fn pcrs_are_single_extends_of_the_concatenated_section_data() {
    let bytes = sample();
    let m = Eif::parse(&bytes).unwrap().measurements();
    let kernel = b"KERNEL".repeat(100);
    let cmdline = b"console=ttyS0 reboot=k".to_vec();
    let init = b"INIT".repeat(50);
    let (app1, app2) = (b"APP-1".repeat(30), b"APP-2".repeat(20));
    let all = [&kernel[..], &cmdline, &init, &app1, &app2].concat();
    assert_eq!(m.pcr(0), Some(extend_from_zero(&[&all])));
    assert_eq!(
        m.pcr(1),
        Some(extend_from_zero(
            &[&[&kernel[..], &cmdline, &init].concat()]
        ))
    );
    assert_eq!(
        m.pcr(2),
        Some(extend_from_zero(&[&[&app1[..], &app2].concat()]))
    );
    assert_eq!(m.pcr(8), None);
}

#[test]
fn metadata_does_not_change_the_pcrs() {
    let with = Eif::parse(&sample()).unwrap().measurements();
    let mut other = metadata();
    other.build.build_time = "2030-01-01T00:00:00+00:00".into();
    let bytes = EifBuilder::new(b"KERNEL".repeat(100), b"console=ttyS0 reboot=k".to_vec())
        .metadata(other)
        .ramdisk(b"INIT".repeat(50))
        .ramdisk(b"APP-1".repeat(30))
        .ramdisk(b"APP-2".repeat(20))
        .build()
        .unwrap();
    assert_ne!(bytes, sample());
    assert_eq!(Eif::parse(&bytes).unwrap().measurements(), with);
}

#[test]
fn signed_images_have_pcr8_of_the_certificate_der_and_a_valid_signature() {
    let (signer, cert_der) = p384_signer();
    let bytes = EifBuilder::new(b"k".to_vec(), b"c".to_vec())
        .ramdisk(b"init".to_vec())
        .ramdisk(b"app".to_vec())
        .signer(signer)
        .build()
        .unwrap();
    let eif = Eif::parse(&bytes).unwrap();
    assert_eq!(eif.sections().last().unwrap().kind, SectionKind::Signature);
    let m = eif.measurements();
    assert_eq!(m.pcr(8), Some(extend_from_zero(&[&cert_der])));
    // Signing adds PCR8 but leaves the other PCRs alone.
    let unsigned = EifBuilder::new(b"k".to_vec(), b"c".to_vec())
        .ramdisk(b"init".to_vec())
        .ramdisk(b"app".to_vec())
        .build()
        .unwrap();
    let unsigned = Eif::parse(&unsigned).unwrap().measurements();
    for index in [0, 1, 2] {
        assert_eq!(m.pcr(index), unsigned.pcr(index));
    }
    assert_eq!(eif.check_signature(), Some(Ok(())));
    let signature = eif.signature().unwrap();
    assert_eq!(
        check_pcr0_signature(signature, &[7; 48]),
        Err(SignatureCheckError::PayloadMismatch)
    );
}

#[test]
fn a_signature_by_another_key_is_reported_not_fatal() {
    let (honest_pem, _, _) = p384_identity();
    let (_, other_sign, _) = p384_identity();
    // The certificate of one signer, the signing function of another.
    let forged = PcrSigner::new(honest_pem, CoseAlgorithm::Es384, other_sign);
    let bytes = EifBuilder::new(b"k".to_vec(), b"c".to_vec())
        .ramdisk(b"init".to_vec())
        .signer(forged)
        .build()
        .unwrap();
    let eif = Eif::parse(&bytes).unwrap();
    assert_eq!(
        eif.check_signature(),
        Some(Err(SignatureCheckError::BadSignature))
    );
    assert!(eif.measurements().pcr(8).is_some());
}

#[test]
fn a_signature_claiming_es256_with_a_p384_key_is_a_key_mismatch() {
    let (pem, sign, _) = p384_identity();
    let mislabeled = PcrSigner::new(pem, CoseAlgorithm::Es256, sign);
    let bytes = EifBuilder::new(b"k".to_vec(), b"c".to_vec())
        .ramdisk(b"init".to_vec())
        .signer(mislabeled)
        .build()
        .unwrap();
    let eif = Eif::parse(&bytes).unwrap();
    assert!(matches!(
        eif.check_signature(),
        Some(Err(SignatureCheckError::KeyMismatch { .. }))
    ));
}

#[test]
fn refuses_a_truncated_header() {
    let bytes = sample();
    for len in [0, 1, 4, 100, HEADER_LEN - 1] {
        assert!(
            matches!(Eif::parse(&bytes[..len]), Err(EifError::TruncatedHeader { len: l }) if l == len),
            "{len}"
        );
    }
}

#[test]
fn refuses_a_file_cut_anywhere_after_the_header() {
    let bytes = sample();
    for len in (HEADER_LEN..bytes.len()).step_by(37) {
        let result = Eif::parse(&bytes[..len]);
        assert!(
            matches!(result, Err(EifError::SectionOutOfBounds { file_len, .. }) if file_len == len),
            "{len}: {result:?}"
        );
    }
}

#[test]
fn refuses_wrong_magic_and_unknown_versions() {
    let mut bytes = sample();
    bytes[0] = b'x';
    assert!(matches!(Eif::parse(&bytes), Err(EifError::BadMagic { found }) if &found == b"xeif"));
    for version in [0u16, 1, 5, 0xffff] {
        let mut bytes = sample();
        bytes[4..6].copy_from_slice(&version.to_be_bytes());
        fix_crc(&mut bytes);
        assert!(
            matches!(Eif::parse(&bytes), Err(EifError::UnsupportedVersion { version: v }) if v == version)
        );
    }
}

#[test]
fn refuses_more_sections_than_table_slots() {
    let mut bytes = sample();
    bytes[26..28].copy_from_slice(&33u16.to_be_bytes());
    fix_crc(&mut bytes);
    assert!(matches!(
        Eif::parse(&bytes),
        Err(EifError::TooManySections { count: 33 })
    ));
}

#[test]
fn refuses_a_section_size_past_the_end() {
    let mut bytes = sample();
    let last = 5;
    let size = read_u64(&bytes, size_slot(last));
    write_u64(&mut bytes, size_slot(last), size + 1);
    fix_crc(&mut bytes);
    assert!(matches!(
        Eif::parse(&bytes),
        Err(EifError::SectionOutOfBounds { index: 5, .. })
    ));
    // A size so large that offset + size overflows.
    write_u64(&mut bytes, size_slot(0), u64::MAX - 4);
    fix_crc(&mut bytes);
    assert!(matches!(
        Eif::parse(&bytes),
        Err(EifError::SectionOutOfBounds { index: 0, .. })
    ));
}

#[test]
fn refuses_overlapping_and_gapped_sections() {
    let bytes = sample();
    let offset = read_u64(&bytes, offset_slot(1));
    let mut overlapping = bytes.clone();
    write_u64(&mut overlapping, offset_slot(1), offset - 1);
    fix_crc(&mut overlapping);
    assert!(matches!(
        Eif::parse(&overlapping),
        Err(EifError::SectionOverlap { index: 1, .. })
    ));
    let mut gapped = bytes.clone();
    write_u64(&mut gapped, offset_slot(1), offset + 1);
    fix_crc(&mut gapped);
    assert!(matches!(
        Eif::parse(&gapped),
        Err(EifError::SectionGap { index: 1, .. })
    ));
    // Swapping two table entries puts the sections out of file order: an overlap.
    let mut swapped = bytes.clone();
    let (o2, o3) = (
        read_u64(&bytes, offset_slot(2)),
        read_u64(&bytes, offset_slot(3)),
    );
    let (s2, s3) = (
        read_u64(&bytes, size_slot(2)),
        read_u64(&bytes, size_slot(3)),
    );
    write_u64(&mut swapped, offset_slot(2), o3);
    write_u64(&mut swapped, offset_slot(3), o2);
    write_u64(&mut swapped, size_slot(2), s3);
    write_u64(&mut swapped, size_slot(3), s2);
    fix_crc(&mut swapped);
    assert!(matches!(
        Eif::parse(&swapped),
        Err(EifError::SectionGap { index: 2, .. })
    ));
}

#[test]
fn refuses_trailing_bytes_and_table_header_disagreement() {
    let mut trailing = sample();
    trailing.extend_from_slice(&[0; 12]);
    fix_crc(&mut trailing);
    assert!(matches!(
        Eif::parse(&trailing),
        Err(EifError::TrailingBytes { .. })
    ));

    let mut mismatch = sample();
    let size = read_u64(&mismatch, size_slot(5));
    write_u64(&mut mismatch, size_slot(5), size - 1);
    fix_crc(&mut mismatch);
    assert!(matches!(
        Eif::parse(&mismatch),
        Err(EifError::SectionSizeMismatch { index: 5, .. })
    ));
}

#[test]
fn refuses_unknown_section_types() {
    for code in [0u16, 6, 0xffff] {
        let mut bytes = sample();
        bytes[HEADER_LEN..HEADER_LEN + 2].copy_from_slice(&code.to_be_bytes());
        fix_crc(&mut bytes);
        assert!(matches!(
            Eif::parse(&bytes),
            Err(EifError::UnknownSectionType { index: 0, code: c }) if c == code
        ));
    }
}

#[test]
fn refuses_images_without_kernel_cmdline_or_ramdisk() {
    let bytes = EifBuilder::new(b"k".to_vec(), b"c".to_vec())
        .build()
        .unwrap();
    assert!(matches!(
        Eif::parse(&bytes),
        Err(EifError::MissingSection {
            kind: SectionKind::Ramdisk
        })
    ));
    // Turn the cmdline into a second kernel.
    let mut bytes = sample();
    let cmdline_at = read_u64(&bytes, offset_slot(1)) as usize;
    bytes[cmdline_at..cmdline_at + 2].copy_from_slice(&1u16.to_be_bytes());
    fix_crc(&mut bytes);
    assert!(matches!(
        Eif::parse(&bytes),
        Err(EifError::MissingSection {
            kind: SectionKind::Cmdline
        })
    ));
    // Turn a ramdisk into a second metadata section.
    let mut bytes = sample();
    let ramdisk_at = read_u64(&bytes, offset_slot(4)) as usize;
    bytes[ramdisk_at..ramdisk_at + 2].copy_from_slice(&5u16.to_be_bytes());
    fix_crc(&mut bytes);
    assert!(matches!(
        Eif::parse(&bytes),
        Err(EifError::DuplicateSection {
            kind: SectionKind::Metadata,
            count: 2
        })
    ));
}

#[test]
fn refuses_any_flipped_bit_through_the_crc() {
    let bytes = sample();
    // Every byte except the CRC field itself: header fields, section headers, data.
    for position in (0..bytes.len())
        .filter(|p| !(CRC_OFFSET..HEADER_LEN).contains(p))
        .step_by(7)
    {
        let mut corrupted = bytes.clone();
        corrupted[position] ^= 0x10;
        assert!(
            Eif::parse(&corrupted).is_err(),
            "flip at {position} accepted"
        );
    }
    // Data bytes change nothing structural, so the CRC is what catches them.
    let mut corrupted = bytes.clone();
    let last = corrupted.len() - 1;
    corrupted[last] ^= 1;
    let stored = u32::from_be_bytes(bytes[CRC_OFFSET..HEADER_LEN].try_into().unwrap());
    assert!(matches!(
        Eif::parse(&corrupted),
        Err(EifError::CrcMismatch { stored: s, computed }) if s == stored && computed != stored
    ));
}

#[test]
fn refuses_malformed_metadata_and_signature_sections() {
    let bytes = EifBuilder::new(b"k".to_vec(), b"c".to_vec())
        .raw_metadata(b"{not json".to_vec())
        .ramdisk(b"init".to_vec())
        .build()
        .unwrap();
    assert!(matches!(Eif::parse(&bytes), Err(EifError::Metadata(_))));

    // A signature section that is CBOR but holds no certificate: turn the metadata section
    // (a JSON object) into a "signature" section.
    let mut bytes = sample();
    let metadata_at = read_u64(&bytes, offset_slot(2)) as usize;
    bytes[metadata_at..metadata_at + 2].copy_from_slice(&4u16.to_be_bytes());
    fix_crc(&mut bytes);
    assert!(matches!(Eif::parse(&bytes), Err(EifError::Signature(_))));
}

#[test]
fn crc_matches_an_independent_crc32_of_the_file_without_the_crc_field() {
    // CRC-32/ISO-HDLC check value from the catalogue of CRC algorithms: "123456789" -> cbf43926.
    let mut reference = crc32fast::Hasher::new();
    reference.update(b"123456789");
    assert_eq!(reference.finalize(), 0xcbf4_3926);
    let bytes = sample();
    let mut without_field = bytes[..CRC_OFFSET].to_vec();
    without_field.extend_from_slice(&bytes[HEADER_LEN..]);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&without_field);
    assert_eq!(
        hasher.finalize(),
        u32::from_be_bytes(bytes[CRC_OFFSET..HEADER_LEN].try_into().unwrap())
    );
}

/// The reference model: what the parser must report for writer-built images.
fn model_pcrs(kernel: &[u8], cmdline: &[u8], ramdisks: &[Vec<u8>]) -> [Pcr; 3] {
    let mut all = [kernel, cmdline].concat();
    let mut boot = all.clone();
    let mut app = Vec::new();
    for (i, r) in ramdisks.iter().enumerate() {
        all.extend_from_slice(r);
        if i == 0 {
            boot.extend_from_slice(r);
        } else {
            app.extend_from_slice(r);
        }
    }
    [
        extend_from_zero(&[&all]),
        extend_from_zero(&[&boot]),
        extend_from_zero(&[&app]),
    ]
}

proptest! {
    #[test]
    fn parser_agrees_with_the_model_on_writer_images(
        kernel in proptest::collection::vec(any::<u8>(), 0..300),
        cmdline in proptest::collection::vec(any::<u8>(), 0..40),
        ramdisks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..6),
        flags in any::<u16>(),
    ) {
        let mut builder = EifBuilder::new(kernel.clone(), cmdline.clone()).flags(flags);
        for r in &ramdisks {
            builder = builder.ramdisk(r.clone());
        }
        let bytes = builder.build().unwrap();
        let eif = Eif::parse(&bytes).unwrap();
        let m = eif.measurements();
        let [p0, p1, p2] = model_pcrs(&kernel, &cmdline, &ramdisks);
        prop_assert_eq!(m.pcr(0), Some(p0));
        prop_assert_eq!(m.pcr(1), Some(p1));
        prop_assert_eq!(m.pcr(2), Some(p2));
        prop_assert_eq!(eif.sections().len(), 2 + ramdisks.len());
        prop_assert_eq!(eif.header().flags, flags);
    }

    #[test]
    fn mutated_images_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        recompute_crc in any::<bool>(),
    ) {
        let mut bytes = sample();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if recompute_crc {
            fix_crc(&mut bytes);
        }
        if let Ok(eif) = Eif::parse(&bytes) {
            let _ = eif.measurements();
            let _ = crate::describe::Description::of(&eif);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Eif::parse(&bytes);
    }
}
