//! What a record is about, and what each kind obliges the verifier to check.

use std::fmt;
use std::str::FromStr;

/// The kind of an audit record, written as a snake_case string.
///
/// To add a kind: add a variant, one row in [`RecordKind::ALL`] and one arm in
/// [`RecordKind::as_str`] and [`RecordKind::attestation`]. Decoders refuse kinds they do not
/// know, because an old verifier cannot tell what a new kind obliges it to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKind {
    /// Record 0 and only record 0: the genesis document, in `changes`.
    Genesis,
    /// An enclave (re)started. Its attestation document binds the log key (`public_key`) to
    /// this log (`user_data` = genesis hash).
    EnclaveStart,
    /// An accepted request was applied.
    StateChange,
    /// A refused attempt to change state.
    Denied,
    /// A governed operation was submitted and waits for approvals.
    ApprovalSubmitted,
    /// An approver approved or rejected. Carries an attestation of its own record hash.
    ApprovalDecision,
    /// An approved operation was applied. Carries an attestation of its own record hash.
    ApprovalApplied,
    /// A transition nobody asked for: an approval expired, a maintenance window or an
    /// activation ended.
    Automatic,
    /// A logged authorization check or flow decision.
    Decision,
}

/// Which attestation document a kind of record must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationRule {
    /// None is required (one may still be present; it is not checked).
    None,
    /// One whose `user_data` is the genesis hash and whose `public_key` is the log key.
    LogKey,
    /// One whose `user_data` is the record's own record hash.
    RecordHash,
}

impl RecordKind {
    /// Every kind, in the order they are documented.
    pub const ALL: &'static [RecordKind] = &[
        RecordKind::Genesis,
        RecordKind::EnclaveStart,
        RecordKind::StateChange,
        RecordKind::Denied,
        RecordKind::ApprovalSubmitted,
        RecordKind::ApprovalDecision,
        RecordKind::ApprovalApplied,
        RecordKind::Automatic,
        RecordKind::Decision,
    ];

    /// The name written in the record.
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordKind::Genesis => "genesis",
            RecordKind::EnclaveStart => "enclave_start",
            RecordKind::StateChange => "state_change",
            RecordKind::Denied => "denied",
            RecordKind::ApprovalSubmitted => "approval_submitted",
            RecordKind::ApprovalDecision => "approval_decision",
            RecordKind::ApprovalApplied => "approval_applied",
            RecordKind::Automatic => "automatic",
            RecordKind::Decision => "decision",
        }
    }

    /// The attestation a record of this kind must carry.
    pub const fn attestation(self) -> AttestationRule {
        match self {
            RecordKind::EnclaveStart => AttestationRule::LogKey,
            // Approvals, rejections and their application are the decisions an auditor most
            // needs to tie to the enclave image, record by record.
            RecordKind::ApprovalDecision | RecordKind::ApprovalApplied => {
                AttestationRule::RecordHash
            }
            RecordKind::Genesis
            | RecordKind::StateChange
            | RecordKind::Denied
            | RecordKind::ApprovalSubmitted
            | RecordKind::Automatic
            | RecordKind::Decision => AttestationRule::None,
        }
    }
}

/// A kind name this build does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown record kind {0:?}")]
pub struct UnknownKind(pub String);

impl FromStr for RecordKind {
    type Err = UnknownKind;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        RecordKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| UnknownKind(name.to_owned()))
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut names: Vec<_> = RecordKind::ALL.iter().map(|k| k.as_str()).collect();
        for kind in RecordKind::ALL {
            assert_eq!(kind.as_str().parse::<RecordKind>().unwrap(), *kind);
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RecordKind::ALL.len());
        assert!("Genesis".parse::<RecordKind>().is_err());
    }

    #[test]
    fn attestation_rules() {
        assert_eq!(
            RecordKind::EnclaveStart.attestation(),
            AttestationRule::LogKey
        );
        assert_eq!(
            RecordKind::ApprovalDecision.attestation(),
            AttestationRule::RecordHash
        );
        assert_eq!(
            RecordKind::ApprovalApplied.attestation(),
            AttestationRule::RecordHash
        );
        assert_eq!(RecordKind::Denied.attestation(), AttestationRule::None);
    }
}
