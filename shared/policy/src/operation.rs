//! Operations: `{Provider}/{resourceType}[/{childType}...]/{verb}` (SPEC-policy section 3).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest operation accepted, in bytes.
pub const MAX_OPERATION_LEN: usize = 256;

/// Whether an operation is a control-plane action or a data action. Role and deny
/// assignments match each against their own lists: `*` in `Actions` grants no data action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OperationKind {
    /// Matched against `Actions` / `NotActions`.
    Action,
    /// Matched against `DataActions` / `NotDataActions`.
    DataAction,
}

/// The data actions the engine knows. An operation string in this list is a data action
/// when parsed with [`Operation::parse`]; other data actions are made with
/// [`Operation::new`].
pub const KNOWN_DATA_ACTIONS: &[&str] = &[APPROVE, REJECT];

/// Approving a governed operation (section 6).
pub const APPROVE: &str = "Microsoft.Mission/approvals/approve/action";
/// Rejecting a governed operation (section 6).
pub const REJECT: &str = "Microsoft.Mission/approvals/reject/action";

/// A concrete operation being asked for (no wildcards).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Operation {
    lower: Box<str>,
    kind: OperationKind,
}

/// Why a string is not an [`Operation`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not an operation ({{Provider}}/{{resourceType}}/.../{{verb}}): {problem}")]
pub struct OperationError {
    /// The offending text (at most 64 characters of it).
    pub input: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl Operation {
    /// Parses an operation; the data actions in [`KNOWN_DATA_ACTIONS`] are data actions,
    /// everything else an action.
    pub fn parse(text: &str) -> Result<Operation, OperationError> {
        let kind = if KNOWN_DATA_ACTIONS
            .iter()
            .any(|known| known.eq_ignore_ascii_case(text))
        {
            OperationKind::DataAction
        } else {
            OperationKind::Action
        };
        Operation::new(text, kind)
    }

    /// An operation of the given kind.
    pub fn new(text: &str, kind: OperationKind) -> Result<Operation, OperationError> {
        let fail = |problem| OperationError {
            input: text.chars().take(64).collect(),
            problem,
        };
        if text.len() > MAX_OPERATION_LEN {
            return Err(fail("it is longer than 256 bytes"));
        }
        if let Some(c) = text.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(fail(if c == ' ' {
                "it contains a space"
            } else {
                "only printable ASCII is allowed"
            }));
        }
        if text.contains('*') {
            return Err(fail("a requested operation cannot contain '*'"));
        }
        let segments: Vec<&str> = text.split('/').collect();
        if segments.len() < 3 {
            return Err(fail("it needs a provider, a resource type and a verb"));
        }
        if segments.iter().any(|s| s.is_empty()) {
            return Err(fail("it has an empty segment"));
        }
        Ok(Operation {
            lower: text.to_ascii_lowercase().into(),
            kind,
        })
    }

    /// An action the crate itself names (the `ops` table), unchecked.
    pub(crate) fn trusted_action(text: &str) -> Operation {
        Operation::trusted(text, OperationKind::Action)
    }

    /// An operation the crate itself names, of either kind, unchecked.
    pub(crate) fn trusted(text: &str, kind: OperationKind) -> Operation {
        Operation {
            lower: text.to_ascii_lowercase().into(),
            kind,
        }
    }

    /// The operation in lower case (matching ignores case).
    pub fn as_lowercase(&self) -> &str {
        &self.lower
    }

    /// Action or data action.
    pub fn kind(&self) -> OperationKind {
        self.kind
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lower)
    }
}

impl fmt::Debug for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Operation({:?}, {:?})", &*self.lower, self.kind)
    }
}

impl FromStr for Operation {
    type Err = OperationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Operation::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_classifies() {
        let op = Operation::parse("Microsoft.Mission/virtualEnclaves/WRITE").unwrap();
        assert_eq!(op.as_lowercase(), "microsoft.mission/virtualenclaves/write");
        assert_eq!(op.kind(), OperationKind::Action);
        let approve = Operation::parse("microsoft.mission/approvals/APPROVE/action").unwrap();
        assert_eq!(approve.kind(), OperationKind::DataAction);
        let custom = Operation::new("Contoso.Data/blobs/read", OperationKind::DataAction).unwrap();
        assert_eq!(custom.kind(), OperationKind::DataAction);
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "a/b",
            "a//b/read",
            "a/*/read",
            "a/b c/read",
            "/a/b/read",
        ] {
            assert!(Operation::parse(bad).is_err(), "{bad}");
        }
        assert!(Operation::parse(&format!("a/{}/read", "b".repeat(300))).is_err());
    }
}
