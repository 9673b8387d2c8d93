//! EIF parsing from arbitrary bytes: parsing, measuring and describing never panic, and the
//! measurements of an accepted image survive their JSON round trip.
//!
//! Random bytes almost never carry the right CRC, which would keep the fuzzer at the CRC
//! check. So when the first input byte is odd, the rest is taken as an image whose CRC is
//! fixed up before parsing; the structure, metadata and signature parsers behind the CRC
//! check are then reachable.

use ea_eif::{Description, Eif, Measurements};

/// Byte range of the CRC field in the 548-byte header.
const CRC_FIELD: std::ops::Range<usize> = 544..548;

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let mut image = rest.to_vec();
    if mode & 1 == 1 && image.len() >= CRC_FIELD.end {
        let crc = ea_eif::eif_crc(&image);
        image[CRC_FIELD].copy_from_slice(&crc.to_be_bytes());
    }
    if let Ok(eif) = Eif::parse(&image) {
        let measurements = eif.measurements();
        let _ = serde_json::to_string(&Description::of(&eif));
        let json = measurements.to_json_pretty();
        assert_eq!(
            Measurements::from_json(json.as_bytes()).ok(),
            Some(measurements)
        );
    }
    let _ = Measurements::from_json(rest);
}
