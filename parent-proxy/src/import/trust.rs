//! What an import pins for the log's attestation documents, from the same options as
//! `govctl audit verify`, split the same way: the trust root (`--root PEM`, the AWS Nitro
//! Enclaves Root-G1 by default, or none in the insecure QEMU mode), and the expected PCRs
//! (`--pcrs FILE`, `--pcr N=HEX`), of which the image's (PCR0, 1, 2, 8) pin the log's
//! genesis image (later images are the log's to admit, which the ledger checks as the
//! records replay) and the others every document; debug-mode documents refused unless
//! allowed.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use ea_attestation::limits::{PCR_COUNT, PCR_LEN};
use ea_attestation::{TrustRoot, TrustRootError, VerifyOptions};
use ea_audit::verify::IMAGE_PCRS;

/// Largest PEM or measurements file read.
const MAX_FILE_LEN: u64 = 64 * 1024;

/// The trust root of the log's attestation documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootChoice {
    /// The AWS Nitro Enclaves Root-G1 (real Nitro hardware).
    Aws,
    /// A root certificate in PEM (a mock NSM's, off hardware).
    Pem(PathBuf),
    /// INSECURE: QEMU's unsigned documents, which prove nothing about hardware.
    InsecureQemu,
}

/// Why the pinned root or PCRs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is larger than any root or measurements file.
    #[error("{} is larger than 64 KiB: not a root certificate or measurements file", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The root is not an acceptable certificate.
    #[error("root {}: {source}", path.display())]
    Root {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: TrustRootError,
    },
    /// The built-in AWS root could not be loaded.
    #[error("the AWS Nitro Enclaves root: {0}")]
    AwsRoot(#[source] TrustRootError),
    /// The measurements file is not one.
    #[error("reading PCRs from {}: {source}", path.display())]
    Measurements {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: ea_eif::MeasurementsError,
    },
    /// A `--pcr` pin is malformed.
    #[error("--pcr {pin:?}: {problem}")]
    Pin {
        /// The pin as given.
        pin: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// No PCR was pinned.
    #[error(
        "give the expected PCRs with --pcrs FILE or --pcr N=HEX: without them any enclave \
         image could have signed the log"
    )]
    NoPcrs,
}

fn read_small(path: &Path) -> Result<Vec<u8>, TrustError> {
    let read = |source| TrustError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(TrustError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

/// `N=HEX` (`PCRN=HEX` too): a PCR index below 32 and 48 bytes of hex.
fn parse_pin(pin: &str) -> Result<(u16, Vec<u8>), TrustError> {
    let bad = |problem| TrustError::Pin {
        pin: pin.to_owned(),
        problem,
    };
    let (index, value) = pin.split_once('=').ok_or_else(|| bad("expected N=HEX"))?;
    let index: u16 = index
        .trim()
        .trim_start_matches("PCR")
        .parse()
        .map_err(|_| bad("not a PCR index"))?;
    if index >= PCR_COUNT {
        return Err(bad("a PCR index is below 32"));
    }
    let value = hex::decode(value.trim()).map_err(|_| bad("not hex"))?;
    if value.len() != PCR_LEN {
        return Err(bad("a PCR is 48 bytes (96 hex digits)"));
    }
    Ok((index, value))
}

/// What the log's documents are checked against.
#[derive(Debug, Clone)]
pub struct Pins {
    /// Root, debug policy, and the pinned PCRs that are not the image's (PCR3, the instance
    /// role; PCR4, the instance): every document must show those.
    pub options: VerifyOptions,
    /// The pinned image PCRs (0, 1, 2, 8): the log's genesis image, which its first
    /// `enclave_start` must show.
    pub genesis_image: BTreeMap<u16, Vec<u8>>,
}

/// The pins for the log's documents: `root`, the PCRs of `pcrs_file` then `pins` (later
/// pins win; at least one required), debug documents refused unless `allow_debug`.
pub fn verify_options(
    root: &RootChoice,
    pins: &[String],
    pcrs_file: Option<&Path>,
    allow_debug: bool,
) -> Result<Pins, TrustError> {
    let mut pinned = BTreeMap::new();
    if let Some(path) = pcrs_file {
        let measurements =
            ea_eif::Measurements::from_json(&read_small(path)?).map_err(|source| {
                TrustError::Measurements {
                    path: path.to_owned(),
                    source,
                }
            })?;
        for (index, value) in measurements.iter() {
            let index = u16::try_from(index).map_err(|_| TrustError::Pin {
                pin: format!("{} from {}", index, path.display()),
                problem: "a PCR index is below 32",
            })?;
            pinned.insert(index, value.to_vec());
        }
    }
    for pin in pins {
        let (index, value) = parse_pin(pin)?;
        pinned.insert(index, value);
    }
    if pinned.is_empty() {
        return Err(TrustError::NoPcrs);
    }
    let root = match root {
        RootChoice::Aws => TrustRoot::aws_nitro_root_g1().map_err(TrustError::AwsRoot)?,
        RootChoice::Pem(path) => {
            TrustRoot::from_pem(&read_small(path)?).map_err(|source| TrustError::Root {
                path: path.clone(),
                source,
            })?
        }
        RootChoice::InsecureQemu => TrustRoot::insecure_qemu_unsigned(),
    };
    let (genesis_image, others): (BTreeMap<_, _>, BTreeMap<_, _>) = pinned
        .into_iter()
        .partition(|(index, _)| IMAGE_PCRS.contains(index));
    Ok(Pins {
        options: VerifyOptions::new(root)
            .dangerous_allow_debug(allow_debug)
            .pcrs(others),
        genesis_image,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_checked_and_one_is_required() {
        let value = "ab".repeat(48);
        assert_eq!(
            parse_pin(&format!("0={value}")).unwrap(),
            (0, vec![0xab; 48])
        );
        assert_eq!(parse_pin(&format!("PCR8={value}")).unwrap().0, 8);
        for bad in [
            format!("32={value}"),
            "0=abab".to_owned(),
            format!("0:{value}"),
            "0=zz".to_owned(),
        ] {
            assert!(parse_pin(&bad).is_err(), "{bad}");
        }
        let error = verify_options(&RootChoice::Aws, &[], None, false).unwrap_err();
        assert!(error.to_string().contains("--pcrs"), "{error}");
    }

    #[test]
    fn image_pcrs_pin_the_genesis_image_and_the_others_every_document() {
        let pins: Vec<String> = [0, 1, 2, 3]
            .iter()
            .map(|i| format!("{i}={}", "ab".repeat(48)))
            .collect();
        let split = verify_options(&RootChoice::Aws, &pins, None, false).unwrap();
        assert_eq!(
            split.genesis_image.keys().copied().collect::<Vec<_>>(),
            [0, 1, 2]
        );
    }
}
