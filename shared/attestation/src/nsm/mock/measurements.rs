//! The boot measurements of the mock NSM: from a `nitro-cli describe-eif` style JSON file, or
//! from the running executable.
//!
//! ## From the executable
//!
//! A mock enclave has no image, kernel or ramdisk to measure; its code is the binary itself.
//! So with `h = SHA-384(contents of /proc/self/exe)`, PCR0, PCR1 and PCR2 are all
//! `SHA-384(48 zero bytes || h)`: one extend of an empty register with the binary's hash, as
//! Nitro measures each part of an image. Anyone can recompute it from the binary file with
//! [`Measurements::of_executable`] (or `sha384sum` and one more SHA-384).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest as _, Sha384};
use thiserror::Error;

use super::pcrs::BOOT_LOCKED_PCRS;
use crate::limits::PCR_LEN;

/// Largest measurements file read: `describe-eif` output is a few KiB.
const MAX_FILE_LEN: u64 = 64 * 1024;

/// Why measurements could not be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MeasurementsError {
    /// The file or the executable could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is larger than 64 KiB.
    #[error("{path} is larger than 64 KiB; it is not a measurements file")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Not JSON.
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but not an object.
    #[error("not a JSON object of measurements")]
    NotAnObject,
    /// A key other than `HashAlgorithm` or `PCR<n>`.
    #[error("unknown key {0:?}; expected HashAlgorithm and PCR0..PCR15")]
    UnknownKey(String),
    /// `HashAlgorithm` names something other than SHA-384.
    #[error("HashAlgorithm {0:?} is not SHA-384")]
    UnsupportedHash(String),
    /// A PCR of a boot measurement outside 0..16 (those are the ones locked at boot).
    #[error("PCR{0} is not a boot measurement (0..16)")]
    PcrIndex(u16),
    /// A PCR value that is not 96 hex digits.
    #[error("PCR{index} is not 48 bytes of hex")]
    PcrValue {
        /// The PCR.
        index: u16,
    },
    /// PCR0, PCR1 or PCR2 is missing.
    #[error("PCR{0} is missing; PCR0, PCR1 and PCR2 are required")]
    Missing(u16),
}

/// PCR values set at boot (indexes `0..16`), PCR0, PCR1 and PCR2 always among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measurements {
    pcrs: BTreeMap<u16, [u8; PCR_LEN]>,
}

impl Measurements {
    /// Parses `{"HashAlgorithm": "Sha384 { ... }", "PCR0": hex, "PCR1": hex, "PCR2": hex, ...}`,
    /// the `Measurements` object of `nitro-cli describe-eif` / `build-enclave`; the whole
    /// output of those commands (an object with a `Measurements` key) is accepted too.
    pub fn from_json(text: &str) -> Result<Self, MeasurementsError> {
        let value: Value = serde_json::from_str(text)?;
        let object = match value.get("Measurements") {
            Some(inner) => inner,
            None => &value,
        }
        .as_object()
        .ok_or(MeasurementsError::NotAnObject)?;

        let mut pcrs = BTreeMap::new();
        for (key, value) in object {
            if key == "HashAlgorithm" {
                let name = value.as_str().unwrap_or_default();
                if !name.to_ascii_lowercase().starts_with("sha384") {
                    return Err(MeasurementsError::UnsupportedHash(name.to_owned()));
                }
                continue;
            }
            let index: u16 = key
                .strip_prefix("PCR")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| MeasurementsError::UnknownKey(key.clone()))?;
            if index >= BOOT_LOCKED_PCRS {
                return Err(MeasurementsError::PcrIndex(index));
            }
            let bytes = value
                .as_str()
                .and_then(|hex_text| hex::decode(hex_text).ok())
                .and_then(|bytes| <[u8; PCR_LEN]>::try_from(bytes).ok())
                .ok_or(MeasurementsError::PcrValue { index })?;
            pcrs.insert(index, bytes);
        }
        Self::new(pcrs)
    }

    /// Reads a measurements file (see [`Measurements::from_json`]).
    pub fn from_file(path: &Path) -> Result<Self, MeasurementsError> {
        let io_error = |source| MeasurementsError::Io {
            path: path.to_owned(),
            source,
        };
        let len = std::fs::metadata(path).map_err(io_error)?.len();
        if len > MAX_FILE_LEN {
            return Err(MeasurementsError::TooLarge {
                path: path.to_owned(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io_error)?;
        Self::from_json(&text)
    }

    /// PCR0, PCR1 and PCR2 from an executable's bytes (see the module documentation).
    pub fn of_executable(bytes: &[u8]) -> Self {
        Self::of_executable_hash(Sha384::digest(bytes).into())
    }

    /// PCR0, PCR1 and PCR2 from the running executable, `/proc/self/exe`.
    pub fn of_running_executable() -> Result<Self, MeasurementsError> {
        let path = Path::new("/proc/self/exe");
        let io_error = |source| MeasurementsError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io_error)?;
        let mut hasher = Sha384::new();
        io::copy(&mut file, &mut hasher).map_err(io_error)?;
        Ok(Self::of_executable_hash(hasher.finalize().into()))
    }

    fn of_executable_hash(hash: [u8; PCR_LEN]) -> Self {
        let mut extend = Sha384::new();
        extend.update([0u8; PCR_LEN]);
        extend.update(hash);
        let pcr: [u8; PCR_LEN] = extend.finalize().into();
        Self {
            pcrs: (0..3).map(|i| (i, pcr)).collect(),
        }
    }

    /// Explicit values, e.g. those of a known image.
    pub fn new(pcrs: BTreeMap<u16, [u8; PCR_LEN]>) -> Result<Self, MeasurementsError> {
        if let Some(&index) = pcrs.keys().find(|&&i| i >= BOOT_LOCKED_PCRS) {
            return Err(MeasurementsError::PcrIndex(index));
        }
        if let Some(index) = (0..3).find(|i| !pcrs.contains_key(i)) {
            return Err(MeasurementsError::Missing(index));
        }
        Ok(Self { pcrs })
    }

    /// The measured PCRs.
    pub fn pcrs(&self) -> &BTreeMap<u16, [u8; PCR_LEN]> {
        &self.pcrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PCR0: &str = "f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b";

    fn json(extra: &str) -> String {
        format!(
            r#"{{"HashAlgorithm": "Sha384 {{ ... }}", "PCR0": "{PCR0}", "PCR1": "{}", "PCR2": "{}"{extra}}}"#,
            "11".repeat(48),
            "22".repeat(48)
        )
    }

    #[test]
    fn parses_describe_eif_measurements() {
        let m = Measurements::from_json(&json("")).unwrap();
        assert_eq!(m.pcrs().len(), 3);
        assert_eq!(hex::encode(m.pcrs()[&0]), PCR0);
        assert_eq!(m.pcrs()[&2], [0x22; 48]);
        let wrapped = format!(r#"{{"Measurements": {}}}"#, json(r#", "PCR8": "00""#));
        assert!(matches!(
            Measurements::from_json(&wrapped),
            Err(MeasurementsError::PcrValue { index: 8 })
        ));
        let wrapped = format!(
            r#"{{"EifVersion": 4, "Measurements": {}}}"#,
            json(&format!(r#", "PCR8": "{}""#, "88".repeat(48)))
        );
        assert_eq!(Measurements::from_json(&wrapped).unwrap().pcrs().len(), 4);
    }

    #[test]
    fn hash_algorithm_is_optional_but_must_be_sha384() {
        let no_alg = format!(r#"{{"PCR0": "{PCR0}", "PCR1": "{PCR0}", "PCR2": "{PCR0}"}}"#);
        assert!(Measurements::from_json(&no_alg).is_ok());
        let sha256 = json("").replace("Sha384 { ... }", "Sha256");
        assert!(matches!(
            Measurements::from_json(&sha256),
            Err(MeasurementsError::UnsupportedHash(_))
        ));
    }

    #[test]
    fn refuses_missing_unknown_and_non_boot_pcrs() {
        let missing = format!(r#"{{"PCR0": "{PCR0}", "PCR1": "{PCR0}"}}"#);
        assert!(matches!(
            Measurements::from_json(&missing),
            Err(MeasurementsError::Missing(2))
        ));
        assert!(matches!(
            Measurements::from_json(&json(r#", "Color": "blue""#)),
            Err(MeasurementsError::UnknownKey(_))
        ));
        let pcr16 = json(&format!(r#", "PCR16": "{PCR0}""#));
        assert!(matches!(
            Measurements::from_json(&pcr16),
            Err(MeasurementsError::PcrIndex(16))
        ));
        assert!(matches!(
            Measurements::from_json("[1, 2]"),
            Err(MeasurementsError::NotAnObject)
        ));
    }

    #[test]
    fn executable_measurement_is_one_extend_of_its_hash() {
        let m = Measurements::of_executable(b"binary");
        let h = Sha384::digest(b"binary");
        let mut e = Sha384::new();
        e.update([0u8; 48]);
        e.update(h);
        let expected: [u8; 48] = e.finalize().into();
        assert_eq!(m.pcrs().keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(m.pcrs().values().all(|v| *v == expected));
    }

    #[test]
    fn running_executable_matches_its_file() {
        let exe = std::fs::read("/proc/self/exe").unwrap();
        assert_eq!(
            Measurements::of_running_executable().unwrap(),
            Measurements::of_executable(&exe)
        );
    }

    #[test]
    fn file_errors_name_the_path() {
        let error = Measurements::from_file(Path::new("/nonexistent/m.json")).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/m.json"));
    }
}
