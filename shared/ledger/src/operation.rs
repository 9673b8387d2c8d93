//! What a signed request asks for: the `operation` field of its body (SPEC-trust section 2).

use ea_policy::{ApprovalId, ApprovalStatus, Command, PrincipalId, Protocol, Scope};
use serde::{Deserialize, Serialize};

/// The operation of a signed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Operation {
    /// A change: applied at once, turned into a pending approval, or refused — recorded in
    /// every case. Approving, rejecting and withdrawing approvals are commands too.
    Submit {
        /// The change.
        command: Box<Command>,
        /// Why (copied into an approval when the change is governed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        justification: Option<String>,
    },
    /// May `principal` (the requester when absent) do `operation` at `scope` now? Answered
    /// with the explanation and recorded, unless the genesis turned decision logging off.
    Check {
        /// Whose permission; asking about someone else needs
        /// `Microsoft.Authorization/roleAssignments/read` at the scope.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        principal: Option<PrincipalId>,
        /// The operation, e.g. `Microsoft.Network/virtualNetworks/write`.
        operation: String,
        /// Where.
        scope: Scope,
        /// Match it as a data action (approve/reject are data actions by default).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        data_action: bool,
    },
    /// May this enclave send this traffic now (SPEC-policy section 7)? Needs read access to
    /// the source enclave; recorded like a check.
    Flow {
        /// The source enclave.
        source: Scope,
        /// An IP address or host name.
        destination: String,
        /// The destination port.
        port: u16,
        /// The protocol.
        protocol: Protocol,
    },
    /// A read of the current (durable) state, filtered to what the requester may read. Not
    /// recorded.
    Read(Query),
}

/// What a read asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Query {
    /// One community, enclave, workload, endpoint or connection.
    Resource {
        /// Its id.
        scope: Scope,
    },
    /// The resources at or below `scope` that the requester may read.
    Resources {
        /// Where to look (`/` for everything).
        scope: Scope,
    },
    /// Approvals whose target the requester may read, optionally filtered.
    Approvals {
        /// Only those in this state.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<ApprovalStatus>,
        /// Only those whose target is at or below this scope.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<Scope>,
        /// Only those of this requester.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        requester: Option<PrincipalId>,
    },
    /// One approval.
    Approval {
        /// Its id.
        id: ApprovalId,
    },
    /// Role assignments (and eligible ones and activations) the requester may read.
    RoleAssignments {
        /// Only those at or below this scope.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<Scope>,
        /// Only those of this principal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        principal: Option<PrincipalId>,
    },
    /// Deny assignments the requester may read (custom ones; the platform's are derived).
    DenyAssignments {
        /// Only those at or below this scope.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<Scope>,
    },
    /// Principals: one (a principal may always read itself) or all (needs
    /// `Microsoft.Authorization/principals/read` at `/`).
    Principals {
        /// Only this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<PrincipalId>,
    },
    /// Built-in and custom role definitions (readable by anyone who can sign).
    RoleDefinitions,
    /// The whole policy state as a policy document (`docs/policy-state.md`), approvals
    /// included; needs `Microsoft.Mission/state/read` at `/` (Owner or Reader there).
    State,
    /// The enclave images the log admits, with the records that admitted them and the one
    /// writing the log (readable by anyone who can sign: PCRs are public).
    Images,
    /// The witness set the log requires, if any (readable by anyone who can sign: witness
    /// keys are public).
    Witnesses,
}
