//! The witness set as governed state: which C2SP tlog-witness witnesses must cosign the
//! log's checkpoints, and how many of them ([`WitnessSet`]).
//!
//! A genesis document may name the set (`policy.witnesses`); afterwards only an approved
//! `setWitnesses` command replaces it, the governed operation `witnessChange` (SPEC-policy
//! section 6, docs/policy-state.md). Like `imageChange` its approvers must hold the built-in
//! Owner role at `/`, at least two of them, none the requester: the witness set decides who
//! may vouch that the log was not rolled back or forked.
//!
//! ```
//! use ea_audit::cosignature::CosignatureSigner;
//! use ea_policy::WitnessSet;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let w1 = CosignatureSigner::from_seed("witness.example/w1", &[7; 32])?;
//! let json = serde_json::json!({"threshold": 1, "keys": [w1.verifier().to_string()]});
//! let set: WitnessSet = serde_json::from_value(json)?;
//! assert_eq!(set.threshold(), 1);
//! assert_eq!(set.keys()[0].name(), "witness.example/w1");
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use ea_audit::cosignature::CosignatureVerifier;
use serde::{Deserialize, Serialize};

use crate::approval::{ApprovalPolicy, ApprovalSetting};

/// The most witnesses a set may name.
pub const MAX_WITNESSES: usize = 32;

/// The fewest approvers a witness change may require, as for an image change.
pub const MIN_WITNESS_CHANGE_APPROVERS: u32 = 2;

/// Why a witness set is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WitnessSetError {
    /// A key is not a witness verifier key.
    #[error("witness key {key:?} is not a witness verifier key (<name>+<key id>+<base64(04 || Ed25519 key)>): {reason}")]
    BadKey {
        /// The key as given.
        key: String,
        /// Why it does not parse.
        reason: String,
    },
    /// Two keys name the same witness: cosignatures are counted by witness name.
    #[error("witness {0} is named twice: each witness counts once, by its name")]
    DuplicateName(String),
    /// No key at all.
    #[error("a witness set names at least one witness (omit it for none)")]
    Empty,
    /// Too many keys.
    #[error("a witness set names at most {MAX_WITNESSES} witnesses, not {0}")]
    TooMany(usize),
    /// The threshold is 0 or more than the keys.
    #[error(
        "the witness threshold must be from 1 to the number of witnesses ({keys}), not {threshold}"
    )]
    Threshold {
        /// The threshold given.
        threshold: u32,
        /// How many keys the set names.
        keys: usize,
    },
}

/// One witness's verifier key, held parsed; written as its vkey text.
#[derive(Clone, PartialEq, Eq)]
pub struct WitnessKey(CosignatureVerifier);

impl WitnessKey {
    /// The verifier that checks this witness's cosignatures.
    pub fn verifier(&self) -> &CosignatureVerifier {
        &self.0
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        self.0.name()
    }
}

impl fmt::Debug for WitnessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for WitnessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for WitnessKey {
    type Err = WitnessSetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        CosignatureVerifier::from_str(text)
            .map(WitnessKey)
            .map_err(|e| WitnessSetError::BadKey {
                key: text.to_owned(),
                reason: e.to_string(),
            })
    }
}

/// The witness set: the witnesses whose cosignatures count, and how many are needed.
///
/// Only [`WitnessSet::new`] (and deserializing, which calls it) builds one, so every value
/// holds 1 to [`MAX_WITNESSES`] keys of distinct names and a threshold from 1 to their number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawWitnessSet", into = "RawWitnessSet")]
pub struct WitnessSet {
    threshold: u32,
    keys: Vec<WitnessKey>,
}

/// The JSON form before its checks.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWitnessSet {
    threshold: u32,
    keys: Vec<String>,
}

impl TryFrom<RawWitnessSet> for WitnessSet {
    type Error = WitnessSetError;

    fn try_from(raw: RawWitnessSet) -> Result<Self, Self::Error> {
        let keys = raw
            .keys
            .iter()
            .map(|k| k.parse())
            .collect::<Result<Vec<WitnessKey>, _>>()?;
        WitnessSet::new(raw.threshold, keys)
    }
}

impl From<WitnessSet> for RawWitnessSet {
    fn from(set: WitnessSet) -> Self {
        RawWitnessSet {
            threshold: set.threshold,
            keys: set.keys.iter().map(ToString::to_string).collect(),
        }
    }
}

impl WitnessSet {
    /// A set of `keys` needing `threshold` of them: refused unless the names are distinct,
    /// there are 1 to [`MAX_WITNESSES`] keys and `1 <= threshold <= keys`. The keys are
    /// kept in the order given.
    pub fn new(threshold: u32, keys: Vec<WitnessKey>) -> Result<WitnessSet, WitnessSetError> {
        if keys.is_empty() {
            return Err(WitnessSetError::Empty);
        }
        if keys.len() > MAX_WITNESSES {
            return Err(WitnessSetError::TooMany(keys.len()));
        }
        let mut names = BTreeSet::new();
        for key in &keys {
            if !names.insert(key.name()) {
                return Err(WitnessSetError::DuplicateName(key.name().to_owned()));
            }
        }
        if threshold == 0 || threshold as usize > keys.len() {
            return Err(WitnessSetError::Threshold {
                threshold,
                keys: keys.len(),
            });
        }
        Ok(WitnessSet { threshold, keys })
    }

    /// How many distinct witnesses must cosign.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// The witnesses' keys.
    pub fn keys(&self) -> &[WitnessKey] {
        &self.keys
    }

    /// The verifiers, for `ea_audit::cosignature::verify_cosignatures`.
    pub fn verifiers(&self) -> Vec<CosignatureVerifier> {
        self.keys.iter().map(|k| k.0.clone()).collect()
    }
}

/// The witness change setting by default: Required, two approvers.
pub fn default_witness_change() -> ApprovalSetting {
    ApprovalSetting {
        approval_policy: ApprovalPolicy::Required,
        minimum_approvers_required: MIN_WITNESS_CHANGE_APPROVERS,
        mandatory_approvers: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, seed: u8) -> String {
        ea_audit::cosignature::CosignatureSigner::from_seed(name, &[seed; 32])
            .unwrap_or_else(|e| panic!("{e}"))
            .verifier()
            .to_string()
    }

    fn parse(json: serde_json::Value) -> Result<WitnessSet, String> {
        serde_json::from_value(json).map_err(|e| e.to_string())
    }

    #[test]
    fn a_valid_set_round_trips() {
        let json = serde_json::json!({"threshold": 2, "keys": [key("w1", 1), key("w2", 2)]});
        let set = parse(json.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(set.threshold(), 2);
        assert_eq!(set.keys().len(), 2);
        assert_eq!(serde_json::to_value(&set).unwrap_or_default(), json);
    }

    #[test]
    fn invalid_sets_are_refused_saying_why() {
        let cases = [
            (
                serde_json::json!({"threshold": 1, "keys": []}),
                "at least one witness",
            ),
            (
                serde_json::json!({"threshold": 0, "keys": [key("w1", 1)]}),
                "from 1 to the number of witnesses (1), not 0",
            ),
            (
                serde_json::json!({"threshold": 3, "keys": [key("w1", 1), key("w2", 2)]}),
                "not 3",
            ),
            (
                serde_json::json!({"threshold": 1, "keys": [key("w1", 1), key("w1", 2)]}),
                "witness w1 is named twice",
            ),
            (
                serde_json::json!({"threshold": 1, "keys": ["w1+00000000+AAAA"]}),
                "is not a witness verifier key",
            ),
            (
                serde_json::json!({"threshold": 1, "keys": [key("w1", 1)], "k": 1}),
                "unknown field",
            ),
        ];
        for (json, expected) in cases {
            let error = parse(json.clone()).err().unwrap_or_default();
            assert!(error.contains(expected), "{json}: {error}");
        }
    }
}
