//! A set of PCR values and its JSON form, the one nitro-cli prints as `"Measurements"`:
//!
//! ```json
//! { "HashAlgorithm": "Sha384 { ... }", "PCR0": "<96 hex>", "PCR1": "...", "PCR2": "..." }
//! ```
//!
//! Keys come out in the order nitro-cli's `BTreeMap<String, String>` gives them (so `PCR10`
//! sorts before `PCR2`), hex in lower case. On input `HashAlgorithm` is optional (the mock
//! NSM's measurement file may omit it) but must name SHA-384 when present, hex may be in
//! either case, and unknown keys, duplicate keys, PCR indices above 31 and values that are
//! not 48 bytes are refused.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::measure::{Pcr, PCR_LEN};

/// The `HashAlgorithm` string nitro-cli prints (the `Debug` form of its SHA-384 hasher).
pub const HASH_ALGORITHM: &str = "Sha384 { ... }";

/// The highest PCR index the NSM has.
pub const MAX_PCR_INDEX: usize = 31;

/// PCR values by index, as nitro-cli prints them and as `pcrs.json` stores them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Measurements {
    pcrs: BTreeMap<usize, Pcr>,
}

/// Why a measurements document or a PCR value was refused.
#[derive(Debug, thiserror::Error)]
pub enum MeasurementsError {
    /// The JSON is malformed or does not have the measurements shape; the message names the
    /// offending key or value.
    #[error("invalid measurements JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A PCR index the NSM does not have.
    #[error("PCR index {index} is out of range (0 to {MAX_PCR_INDEX})")]
    IndexOutOfRange {
        /// The index given.
        index: usize,
    },
}

/// How one PCR of an expected set compares with an actual set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcrStatus {
    /// Both have it, with the same value.
    Match,
    /// Both have it, with different values.
    Mismatch,
    /// Expected, but the actual set lacks it.
    Missing,
    /// Only the actual set has it: nothing was expected, so nothing is checked.
    Unchecked,
}

/// One line of [`Measurements::compare`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrComparison {
    /// The PCR index.
    pub index: usize,
    /// The expected value, if any.
    pub expected: Option<Pcr>,
    /// The actual value, if any.
    pub actual: Option<Pcr>,
    /// The verdict.
    pub status: PcrStatus,
}

impl Measurements {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of PCR `index`, if the set has it.
    pub fn pcr(&self, index: usize) -> Option<Pcr> {
        self.pcrs.get(&index).copied()
    }

    /// Sets PCR `index`, returning the previous value.
    pub fn set_pcr(&mut self, index: usize, value: Pcr) -> Result<Option<Pcr>, MeasurementsError> {
        if index > MAX_PCR_INDEX {
            return Err(MeasurementsError::IndexOutOfRange { index });
        }
        Ok(self.pcrs.insert(index, value))
    }

    /// Sets a PCR whose index is a constant known to be in range.
    pub(crate) fn insert(&mut self, index: usize, value: Pcr) {
        debug_assert!(index <= MAX_PCR_INDEX);
        self.pcrs.insert(index, value);
    }

    /// The indices present, ascending.
    pub fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.pcrs.keys().copied()
    }

    /// `(index, value)` pairs, ascending by index.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Pcr)> + '_ {
        self.pcrs.iter().map(|(index, value)| (*index, value))
    }

    /// How many PCRs the set has.
    pub fn len(&self) -> usize {
        self.pcrs.len()
    }

    /// Whether the set has no PCRs.
    pub fn is_empty(&self) -> bool {
        self.pcrs.is_empty()
    }

    /// Reads a measurements document: either the bare object (`pcrs.json`, the mock NSM's
    /// file) or nitro-cli's `build-enclave`/`describe-eif` output, which wraps it in
    /// `"Measurements"`.
    pub fn from_json(json: &[u8]) -> Result<Self, MeasurementsError> {
        /// nitro-cli's outputs: the measurements plus other keys, which are ignored.
        #[derive(Deserialize)]
        struct Wrapped {
            #[serde(rename = "Measurements")]
            measurements: Measurements,
        }
        // Decide the shape first, then decode from the bytes again: a `serde_json::Value`
        // would silently keep only the last of two duplicate keys.
        let value: serde_json::Value = serde_json::from_slice(json)?;
        if value.get("Measurements").is_some() {
            let wrapped: Wrapped = serde_json::from_slice(json)?;
            return Ok(wrapped.measurements);
        }
        Ok(serde_json::from_slice(json)?)
    }

    /// The document as pretty-printed JSON with a final newline, as `pcrs.json` is written.
    pub fn to_json_pretty(&self) -> String {
        let mut out = String::new();
        for (position, (key, value)) in self.string_entries().iter().enumerate() {
            out.push_str(if position == 0 { "{\n" } else { ",\n" });
            // Keys and values are ASCII letters, digits and punctuation without quotes or
            // backslashes, so they need no escaping.
            out.push_str(&format!("  \"{key}\": \"{value}\""));
        }
        out.push_str("\n}\n");
        out
    }

    /// Compares this (expected) set with `actual`, PCR by PCR over both sets' indices.
    pub fn compare(&self, actual: &Self) -> Vec<PcrComparison> {
        let mut indices: Vec<usize> = self.indices().chain(actual.indices()).collect();
        indices.sort_unstable();
        indices.dedup();
        indices
            .into_iter()
            .map(|index| {
                let expected = self.pcr(index);
                let got = actual.pcr(index);
                let status = match (expected, got) {
                    (Some(e), Some(a)) if e == a => PcrStatus::Match,
                    (Some(_), Some(_)) => PcrStatus::Mismatch,
                    (Some(_), None) => PcrStatus::Missing,
                    (None, _) => PcrStatus::Unchecked,
                };
                PcrComparison {
                    index,
                    expected,
                    actual: got,
                    status,
                }
            })
            .collect()
    }

    /// Whether every expected PCR is present in `actual` with the same value.
    pub fn satisfied_by(&self, actual: &Self) -> bool {
        self.compare(actual)
            .iter()
            .all(|line| matches!(line.status, PcrStatus::Match | PcrStatus::Unchecked))
    }

    /// Entries in nitro-cli's key order: a `BTreeMap<String, String>`.
    fn string_entries(&self) -> BTreeMap<String, String> {
        let mut entries: BTreeMap<String, String> = self
            .pcrs
            .iter()
            .map(|(index, value)| (format!("PCR{index}"), hex::encode(value)))
            .collect();
        entries.insert("HashAlgorithm".to_owned(), HASH_ALGORITHM.to_owned());
        entries
    }
}

impl Serialize for Measurements {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entries = self.string_entries();
        let mut map = serializer.serialize_map(Some(entries.len()))?;
        for (key, value) in &entries {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Measurements {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MeasurementsVisitor)
    }
}

struct MeasurementsVisitor;

impl<'de> Visitor<'de> for MeasurementsVisitor {
    type Value = Measurements;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of \"PCR<n>\" to 96 hex digits, with an optional \"HashAlgorithm\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Measurements, A::Error> {
        let mut measurements = Measurements::new();
        let mut seen_algorithm = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "HashAlgorithm" {
                if seen_algorithm {
                    return Err(de::Error::duplicate_field("HashAlgorithm"));
                }
                seen_algorithm = true;
                let value: String = map.next_value()?;
                if !names_sha384(&value) {
                    return Err(de::Error::custom(format!(
                        "HashAlgorithm {value:?} is not SHA-384"
                    )));
                }
                continue;
            }
            let index = pcr_index(&key).ok_or_else(|| {
                de::Error::custom(format!(
                    "unexpected key {key:?}: expected \"HashAlgorithm\" or \"PCR0\" to \"PCR31\""
                ))
            })?;
            let value: String = map.next_value()?;
            let pcr = parse_pcr(&value)
                .ok_or_else(|| de::Error::custom(format!("{key} is not 96 hex digits")))?;
            if measurements.pcrs.insert(index, pcr).is_some() {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
        }
        if measurements.is_empty() {
            return Err(de::Error::custom("no PCR values"));
        }
        Ok(measurements)
    }
}

/// `"Sha384 { ... }"` (nitro-cli), `"Sha384"`, `"SHA384"`, `"sha384"`.
fn names_sha384(value: &str) -> bool {
    let name = value.split([' ', '{']).next().unwrap_or_default();
    name.eq_ignore_ascii_case("sha384")
}

/// `"PCR<n>"` with n in 0..=31 written without leading zeros.
fn pcr_index(key: &str) -> Option<usize> {
    let digits = key.strip_prefix("PCR")?;
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    let index: usize = digits.parse().ok()?;
    (index <= MAX_PCR_INDEX).then_some(index)
}

/// Parses 96 hex digits (either case) into a PCR value.
pub fn parse_pcr(text: &str) -> Option<Pcr> {
    let mut pcr = [0u8; PCR_LEN];
    hex::decode_to_slice(text, &mut pcr).ok()?;
    Some(pcr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Measurements {
        let mut m = Measurements::new();
        for (index, byte) in [(0, 0xaa), (1, 0x01), (2, 0x02), (8, 0x08), (10, 0x10)] {
            m.set_pcr(index, [byte; 48]).unwrap();
        }
        m
    }

    #[test]
    fn serializes_in_nitro_cli_key_order_with_the_hash_algorithm() {
        let json = serde_json::to_string(&sample()).unwrap();
        let keys: Vec<&str> = json.split('"').skip(1).step_by(4).collect();
        assert_eq!(
            keys,
            ["HashAlgorithm", "PCR0", "PCR1", "PCR10", "PCR2", "PCR8"]
        );
        assert!(json.contains("\"HashAlgorithm\":\"Sha384 { ... }\""));
        assert!(json.contains(&format!("\"PCR0\":\"{}\"", "aa".repeat(48))));
    }

    #[test]
    fn pretty_json_equals_serde_json_pretty() {
        let ours = sample().to_json_pretty();
        let theirs = serde_json::to_string_pretty(&sample()).unwrap() + "\n";
        assert_eq!(ours, theirs);
    }

    #[test]
    fn reads_bare_wrapped_and_algorithm_free_documents() {
        let pcr0 = "AB".repeat(48);
        let bare = format!(r#"{{"HashAlgorithm":"Sha384 {{ ... }}","PCR0":"{pcr0}"}}"#);
        let wrapped = format!(r#"{{"Measurements":{bare}}}"#);
        let mock = format!(r#"{{"PCR0":"{pcr0}"}}"#);
        for doc in [bare, wrapped, mock] {
            let m = Measurements::from_json(doc.as_bytes()).unwrap();
            assert_eq!(m.pcr(0), Some([0xab; 48]), "{doc}");
            assert_eq!(m.len(), 1);
        }
    }

    #[test]
    fn refuses_malformed_documents() {
        let good = "00".repeat(48);
        let cases = [
            format!(r#"{{"PCR0":"{good}","PCR0":"{good}"}}"#),
            format!(r#"{{"PCR32":"{good}"}}"#),
            format!(r#"{{"PCR01":"{good}"}}"#),
            format!(r#"{{"PCR":"{good}"}}"#),
            format!(r#"{{"PCR0":"{}"}}"#, "00".repeat(32)),
            format!(r#"{{"PCR0":"{}zz"}}"#, "00".repeat(47)),
            format!(r#"{{"HashAlgorithm":"Sha256 {{ ... }}","PCR0":"{good}"}}"#),
            format!(r#"{{"PCR0":"{good}","ImageName":"x"}}"#),
            r#"{"HashAlgorithm":"Sha384 { ... }"}"#.to_owned(),
            format!(r#"{{"Measurements":{{"PCR1":"{good}","PCR1":"{good}"}}}}"#),
            "[]".to_owned(),
        ];
        for doc in cases {
            assert!(Measurements::from_json(doc.as_bytes()).is_err(), "{doc}");
        }
    }

    #[test]
    fn set_pcr_refuses_indices_the_nsm_lacks() {
        let mut m = Measurements::new();
        assert!(m.set_pcr(31, [1; 48]).unwrap().is_none());
        assert!(matches!(
            m.set_pcr(32, [1; 48]),
            Err(MeasurementsError::IndexOutOfRange { index: 32 })
        ));
    }

    #[test]
    fn compare_reports_each_pcr() {
        let expected = sample();
        let mut actual = sample();
        actual.set_pcr(1, [0xff; 48]).unwrap();
        actual.pcrs.remove(&8);
        actual.set_pcr(4, [4; 48]).unwrap();
        let statuses: Vec<(usize, PcrStatus)> = expected
            .compare(&actual)
            .iter()
            .map(|line| (line.index, line.status))
            .collect();
        assert_eq!(
            statuses,
            [
                (0, PcrStatus::Match),
                (1, PcrStatus::Mismatch),
                (2, PcrStatus::Match),
                (4, PcrStatus::Unchecked),
                (8, PcrStatus::Missing),
                (10, PcrStatus::Match),
            ]
        );
        assert!(!expected.satisfied_by(&actual));
        assert!(expected.satisfied_by(&sample()));
    }

    proptest! {
        #[test]
        fn json_round_trips(entries in proptest::collection::btree_map(0usize..=31, any::<[u8; 48]>(), 1..8)) {
            let mut m = Measurements::new();
            for (index, value) in &entries {
                m.set_pcr(*index, *value).unwrap();
            }
            let back = Measurements::from_json(m.to_json_pretty().as_bytes()).unwrap();
            prop_assert_eq!(back, m);
        }
    }
}
