//! KMS key policies: the JSON model, its evaluation as AWS evaluates it, and the policy that
//! releases the log key only to an attested enclave.
//!
//! The model covers what key policies for Nitro Enclaves use: `Version`, `Id`, `Statement[]`
//! with `Sid`, `Effect` (`Allow`/`Deny`), `Principal` (`"*"` or `{"AWS": arn | [arns]}`),
//! `Action` (string or list, `*`/`?` wildcards), `Resource`, and `Condition` with the
//! operators `StringEquals`, `StringNotEquals`, `StringEqualsIgnoreCase`,
//! `StringNotEqualsIgnoreCase`, `Null` and `Bool`. Anything else (`NotAction`,
//! `NotPrincipal`, `ForAnyValue:` operators, `...IfExists`) is refused when the policy is
//! read, never silently mis-evaluated.
//!
//! ```
//! use ea_kms::policy::{attestation_context, enclave_key_policy, Decision, KeyPolicy, RequestContext};
//! use std::collections::BTreeMap;
//!
//! let pcrs: BTreeMap<u16, Vec<u8>> = (0..3).map(|i| (i, vec![i as u8; 48])).collect();
//! let policy = enclave_key_policy(
//!     "arn:aws:iam::111122223333:role/KeyAdmin",
//!     "arn:aws:iam::111122223333:role/EnclaveInstance",
//!     &pcrs,
//! );
//! let policy = KeyPolicy::from_json(&policy.to_json_pretty()).unwrap();
//!
//! let request = RequestContext::new(
//!     "arn:aws:sts::111122223333:assumed-role/EnclaveInstance/i-0123456789abcdef0",
//!     "kms:Decrypt",
//!     "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
//! );
//! // With an attestation document of the expected image: allowed.
//! let attested = request.clone().with_values(attestation_context(&pcrs));
//! assert!(matches!(policy.evaluate(&attested), Decision::Allow { .. }));
//! // Without one: the explicit Deny decides.
//! assert!(matches!(policy.evaluate(&request), Decision::Deny { .. }));
//! ```

mod enclave;
mod eval;
mod parse;

use std::collections::BTreeMap;
use std::fmt;

pub use enclave::{
    attestation_context, enclave_key_policy, log_key_policy, pcr_condition_key, ADMIN_ACTIONS,
    ENCLAVE_ACTIONS, IMAGE_SHA384_KEY, IMMUTABLE_ADMIN_ACTIONS, RECIPIENT_ATTESTATION_PREFIX,
};
pub use eval::{Decision, FailedCondition, NearMiss, RequestContext, StatementRef};
pub use parse::PolicyError;

/// The only policy language version KMS accepts besides the legacy `2008-10-17`.
pub const POLICY_VERSION: &str = "2012-10-17";
/// Largest key policy KMS accepts (32 KiB).
pub const MAX_POLICY_LEN: usize = 32 * 1024;

/// A key policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPolicy {
    /// `Version`.
    pub version: String,
    /// `Id`, if any.
    pub id: Option<String>,
    /// `Statement`, in document order.
    pub statements: Vec<Statement>,
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// `Sid`, if any.
    pub sid: Option<String>,
    /// `Effect`.
    pub effect: Effect,
    /// `Principal`.
    pub principal: Principal,
    /// `Action` patterns (at least one).
    pub actions: Vec<String>,
    /// `Resource` patterns (at least one; `*` is the key itself in a key policy).
    pub resources: Vec<String>,
    /// `Condition`: every entry must hold.
    pub conditions: Vec<Condition>,
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants, unless a Deny also applies.
    Allow,
    /// Refuses, whatever else allows.
    Deny,
}

/// Who a statement is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// `"*"` (or `{"AWS": "*"}`): everyone.
    Any,
    /// `{"AWS": ...}`: these ARNs or account ids.
    Aws(Vec<String>),
}

/// One `operator: {key: values}` entry of a `Condition` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The operator.
    pub operator: Operator,
    /// The condition key as written (keys compare case-insensitively).
    pub key: String,
    /// The values; the entry holds when any of them matches.
    pub values: Vec<String>,
}

/// The condition operators the model evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operator {
    /// Exact, case-sensitive match.
    StringEquals,
    /// No value matches (true when the key is absent).
    StringNotEquals,
    /// Match ignoring case (how PCR conditions are written).
    StringEqualsIgnoreCase,
    /// No value matches ignoring case (true when the key is absent).
    StringNotEqualsIgnoreCase,
    /// `"true"`: the key is absent; `"false"`: it is present.
    Null,
    /// A boolean key equals `"true"` or `"false"`.
    Bool,
}

impl Operator {
    /// The operator's name in policy JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::StringEquals => "StringEquals",
            Operator::StringNotEquals => "StringNotEquals",
            Operator::StringEqualsIgnoreCase => "StringEqualsIgnoreCase",
            Operator::StringNotEqualsIgnoreCase => "StringNotEqualsIgnoreCase",
            Operator::Null => "Null",
            Operator::Bool => "Bool",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [
            Operator::StringEquals,
            Operator::StringNotEquals,
            Operator::StringEqualsIgnoreCase,
            Operator::StringNotEqualsIgnoreCase,
            Operator::Null,
            Operator::Bool,
        ]
        .into_iter()
        .find(|op| op.as_str() == name)
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A JSON string or list of strings, written back in the shape it had.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum OneOrMany<'a> {
    One(&'a str),
    Many(&'a [String]),
}

fn one_or_many(values: &[String]) -> OneOrMany<'_> {
    match values {
        [one] => OneOrMany::One(one),
        many => OneOrMany::Many(many),
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyOut<'a> {
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    statement: Vec<StatementOut<'a>>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct StatementOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    effect: &'static str,
    principal: serde_json::Value,
    action: OneOrMany<'a>,
    resource: OneOrMany<'a>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    condition: BTreeMap<&'static str, BTreeMap<&'a str, OneOrMany<'a>>>,
}

impl KeyPolicy {
    /// Reads a policy document; refuses what the model cannot evaluate (see the module
    /// documentation) with the path of the offending element.
    pub fn from_json(text: &str) -> Result<Self, PolicyError> {
        parse::parse(text)
    }

    /// The policy as indented JSON, elements in the usual order (`Version`, `Id`,
    /// `Statement`; `Sid`, `Effect`, `Principal`, `Action`, `Resource`, `Condition`).
    pub fn to_json_pretty(&self) -> String {
        let out = PolicyOut {
            version: &self.version,
            id: self.id.as_deref(),
            statement: self
                .statements
                .iter()
                .map(|s| {
                    let mut condition: BTreeMap<&'static str, BTreeMap<&str, OneOrMany<'_>>> =
                        BTreeMap::new();
                    for c in &s.conditions {
                        condition
                            .entry(c.operator.as_str())
                            .or_default()
                            .insert(&c.key, one_or_many(&c.values));
                    }
                    StatementOut {
                        sid: s.sid.as_deref(),
                        effect: match s.effect {
                            Effect::Allow => "Allow",
                            Effect::Deny => "Deny",
                        },
                        principal: match &s.principal {
                            Principal::Any => serde_json::Value::from("*"),
                            Principal::Aws(arns) => serde_json::json!({
                                "AWS": match arns.as_slice() {
                                    [one] => serde_json::Value::from(one.as_str()),
                                    many => serde_json::Value::from(many.to_vec()),
                                }
                            }),
                        },
                        action: one_or_many(&s.actions),
                        resource: one_or_many(&s.resources),
                        condition,
                    }
                })
                .collect(),
        };
        // Serialising strings, maps and lists to a String cannot fail.
        serde_json::to_string_pretty(&out).unwrap_or_default()
    }

    /// Decides `request` (see [`Decision`]).
    pub fn evaluate(&self, request: &RequestContext) -> Decision {
        eval::evaluate(self, request)
    }
}
