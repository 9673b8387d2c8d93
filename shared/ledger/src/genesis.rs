//! The genesis document: the first directory, resources, roles and settings, given to the
//! enclave once, when its log is empty. Record 0 of the log holds it; the record's hash is
//! the log's identity and goes into every `enclave_start` attestation document.
//!
//! It arrives through the untrusted parent, so it is believed for what it is — the content
//! that its hash names — and nothing more: operators and auditors pin the genesis hash (or
//! read the genesis record and check its content) before trusting a log.

use ciborium::Value;
use ea_policy::{PolicyDocument, PolicyState, PrincipalType, Timestamp, ValidationErrors};
use serde::{Deserialize, Serialize};

/// The genesis format version.
pub const GENESIS_VERSION: u32 = 1;

/// Largest genesis document accepted, in bytes of JSON.
pub const MAX_GENESIS_LEN: usize = 512 * 1024;

/// Default of [`LedgerSettings::max_pending_approvals_per_requester`].
pub const DEFAULT_MAX_PENDING_APPROVALS: u32 = 100;

fn yes() -> bool {
    true
}

fn default_max_pending() -> u32 {
    DEFAULT_MAX_PENDING_APPROVALS
}

/// Settings of the ledger itself. They live in the genesis document rather than in flags of
/// the enclave, because the parent sets the flags and must not be able to change what gets
/// recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LedgerSettings {
    /// Record authorization checks and flow decisions (SPEC-policy section 8). State
    /// changes, refusals and approvals are always recorded.
    #[serde(default = "yes")]
    pub decision_logging: bool,
    /// Pending approvals one requester may have at once.
    #[serde(default = "default_max_pending")]
    pub max_pending_approvals_per_requester: u32,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        Self {
            decision_logging: true,
            max_pending_approvals_per_requester: DEFAULT_MAX_PENDING_APPROVALS,
        }
    }
}

/// The genesis document (JSON, `docs/api.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Genesis {
    /// Always [`GENESIS_VERSION`].
    pub version: u32,
    /// A name for the deployment, for people (e.g. `contoso-prod`).
    pub name: String,
    /// When it was written; two deployments with the same policy still get distinct logs.
    pub created_at: Timestamp,
    /// Ledger settings.
    #[serde(default)]
    pub settings: LedgerSettings,
    /// The initial policy state: principals with their keys and groups, communities,
    /// role assignments, approval settings.
    pub policy: PolicyDocument,
}

/// Why a genesis document is refused.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// Larger than [`MAX_GENESIS_LEN`].
    #[error("the genesis document is {len} bytes; at most {MAX_GENESIS_LEN} are accepted")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// Not the JSON of a genesis document.
    #[error("the genesis document is not valid: {0}")]
    Malformed(String),
    /// A version this build does not read.
    #[error("genesis version {0} is not supported (expected {GENESIS_VERSION})")]
    UnsupportedVersion(u32),
    /// The name is empty or too long.
    #[error("the genesis name must be 1 to 128 printable characters")]
    BadName,
    /// The policy breaks a rule.
    #[error("the genesis policy is not valid:\n{0}")]
    Policy(ValidationErrors),
    /// Approvals cannot be part of a genesis: they are opened by requests.
    #[error("a genesis policy cannot contain approvals")]
    Approvals,
    /// Nobody could ever sign a request.
    #[error("no user or service principal in the genesis has an unrevoked key: nobody could act")]
    NoKeys,
    /// The document could not be encoded for the log.
    #[error("the genesis document could not be encoded: {0}")]
    Encode(String),
}

impl Genesis {
    /// Parses and checks a genesis document from JSON.
    pub fn from_json(text: &str) -> Result<Genesis, GenesisError> {
        if text.len() > MAX_GENESIS_LEN {
            return Err(GenesisError::TooLarge { len: text.len() });
        }
        let genesis: Genesis =
            serde_json::from_str(text).map_err(|e| GenesisError::Malformed(e.to_string()))?;
        genesis.state()?;
        Ok(genesis)
    }

    /// Checks the document and builds the initial state from it.
    pub fn state(&self) -> Result<PolicyState, GenesisError> {
        if self.version != GENESIS_VERSION {
            return Err(GenesisError::UnsupportedVersion(self.version));
        }
        let name_ok = (1..=128).contains(&self.name.chars().count())
            && self.name.chars().all(|c| !c.is_control());
        if !name_ok {
            return Err(GenesisError::BadName);
        }
        if !self.policy.approvals.is_empty() {
            return Err(GenesisError::Approvals);
        }
        let someone_can_sign = self
            .policy
            .principals
            .iter()
            .any(|p| p.kind != PrincipalType::Group && p.keys.iter().any(|k| !k.revoked));
        if !someone_can_sign {
            return Err(GenesisError::NoKeys);
        }
        PolicyState::from_document(&self.policy).map_err(GenesisError::Policy)
    }

    /// The document as the CBOR value the genesis record carries in `changes`.
    pub fn to_value(&self) -> Result<Value, GenesisError> {
        Value::serialized(self).map_err(|e| GenesisError::Encode(e.to_string()))
    }

    /// The document back from a genesis record's `changes`.
    pub fn from_value(value: &Value) -> Result<Genesis, GenesisError> {
        value
            .deserialized()
            .map_err(|e| GenesisError::Malformed(e.to_string()))
    }
}
