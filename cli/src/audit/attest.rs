//! What the auditor pins for the log's attestation documents: the trust root and the
//! expected PCRs, from `--root`, `--pcr` and `--pcrs`. The checker itself is
//! `ea_ledger::DocumentChecker`, shared with the enclave's recovery.

use std::io::Read as _;
use std::path::Path;

use anyhow::{bail, ensure, Context as _};
use ea_attestation::limits::{PCR_COUNT, PCR_LEN};
use ea_attestation::{TrustRoot, VerifyOptions};

/// Largest PEM or measurements file read.
const MAX_FILE_LEN: u64 = 64 * 1024;

pub use ea_ledger::DocumentChecker;

fn read_small(path: &Path) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        bytes.len() as u64 <= MAX_FILE_LEN,
        "{} is larger than 64 KiB",
        path.display()
    );
    Ok(bytes)
}

/// `N=HEX` (`PCRN=HEX` too): a PCR index below 32 and 48 bytes of hex.
pub fn parse_pcr(pin: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let (index, value) = pin
        .split_once('=')
        .with_context(|| format!("--pcr {pin:?}: expected N=HEX"))?;
    let index: u16 = index
        .trim()
        .trim_start_matches("PCR")
        .parse()
        .with_context(|| format!("--pcr {pin:?}: {index:?} is not a PCR index"))?;
    if index >= PCR_COUNT {
        bail!("--pcr {pin:?}: a PCR index is below {PCR_COUNT}");
    }
    let value = hex::decode(value.trim()).with_context(|| format!("--pcr {pin:?}: not hex"))?;
    if value.len() != PCR_LEN {
        bail!(
            "--pcr {pin:?}: a PCR is {PCR_LEN} bytes ({} hex digits), not {}",
            PCR_LEN * 2,
            value.len()
        );
    }
    Ok((index, value))
}

/// What an auditor pins, split the way a log with image changes needs it.
#[derive(Debug, Clone)]
pub struct Pins {
    /// Root, debug policy, and the pinned PCRs that are not the image's (PCR3, the instance
    /// role; PCR4, the instance): every document must show those.
    pub options: VerifyOptions,
    /// The pinned image PCRs (0, 1, 2, 8): the log's genesis image, which its first
    /// `enclave_start` must show. Later images are the log's to admit, by approved image
    /// changes, which the ledger checks as the records are replayed.
    pub genesis_image: std::collections::BTreeMap<u16, Vec<u8>>,
}

/// The verify options: the trust root (AWS Root-G1 unless `root` is given, none in the
/// insecure QEMU mode), the pinned PCRs from `pins` and `pcrs_file`, debug documents refused
/// unless allowed. At least one PCR must be pinned: without one, any enclave image could have
/// written the log.
pub fn options(
    root: Option<&Path>,
    insecure_qemu: bool,
    pins: &[String],
    pcrs_file: Option<&Path>,
    allow_debug: bool,
) -> anyhow::Result<Pins> {
    let root = match root {
        _ if insecure_qemu => crate::attestation::insecure_qemu_root(),
        Some(path) => TrustRoot::from_pem(&read_small(path)?)
            .with_context(|| format!("root {}", path.display()))?,
        None => TrustRoot::aws_nitro_root_g1()?,
    };
    let (genesis_image, others): (std::collections::BTreeMap<_, _>, Vec<_>) = {
        let (image, others): (Vec<_>, Vec<_>) = pinned_pcrs(pins, pcrs_file)?
            .into_iter()
            .partition(|(index, _)| ea_audit::verify::IMAGE_PCRS.contains(index));
        (image.into_iter().collect(), others)
    };
    Ok(Pins {
        options: VerifyOptions::new(root)
            .dangerous_allow_debug(allow_debug)
            .pcrs(others),
        genesis_image,
    })
}

/// The PCRs pinned by `--pcrs FILE` and `--pcr N=HEX` (later pins win). At least one is
/// required: without one, any enclave image could have signed the log.
pub fn pinned_pcrs(
    pins: &[String],
    pcrs_file: Option<&Path>,
) -> anyhow::Result<std::collections::BTreeMap<u16, Vec<u8>>> {
    let mut pinned = std::collections::BTreeMap::new();
    if let Some(path) = pcrs_file {
        let measurements = ea_eif::Measurements::from_json(&read_small(path)?)
            .with_context(|| format!("reading PCRs from {}", path.display()))?;
        for (index, value) in measurements.iter() {
            pinned.insert(u16::try_from(index)?, value.to_vec());
        }
    }
    for pin in pins {
        let (index, value) = parse_pcr(pin)?;
        pinned.insert(index, value);
    }
    if pinned.is_empty() {
        bail!(
            "give the expected PCRs with --pcr N=HEX or --pcrs FILE: without them any enclave \
             image could have signed the log"
        );
    }
    Ok(pinned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_pins_are_checked() {
        let value = "ab".repeat(48);
        assert_eq!(
            parse_pcr(&format!("0={value}")).unwrap(),
            (0, vec![0xab; 48])
        );
        assert_eq!(parse_pcr(&format!("PCR8={value}")).unwrap().0, 8);
        assert!(parse_pcr(&format!("32={value}")).is_err());
        assert!(parse_pcr("0=abab").is_err(), "too short");
        assert!(parse_pcr(&format!("0:{value}")).is_err());
        assert!(parse_pcr("0=zz").is_err());
    }

    #[test]
    fn at_least_one_pcr_is_required() {
        let error = options(None, false, &[], None, false).unwrap_err();
        assert!(error.to_string().contains("--pcr"), "{error}");
    }
}
