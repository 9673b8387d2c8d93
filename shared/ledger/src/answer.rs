//! What the ledger answers a request with (the `result` of an API reply, in JSON).

use ea_policy::{
    Approval, Community, Connection, Decision, DenyAssignment, EligibleRoleAssignment, Endpoint,
    Event, FlowDecision, Principal, PrincipalId, Refusal, RoleActivation, RoleAssignment,
    RoleDefinition, Scope, VirtualEnclave, Workload,
};
use serde::{Deserialize, Serialize};

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "outcome",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Answer {
    /// The change was applied.
    Applied {
        /// The command's name.
        command: String,
        /// What changed.
        events: Vec<Event>,
    },
    /// The change is governed and now waits for approvals.
    Pending {
        /// The new approval.
        approval: Box<Approval>,
    },
    /// A vote was counted (a rejection closes the approval; a completing approval applies
    /// the change or fails it, as `approval.approvalStatus` says).
    Voted {
        /// The approval as it stands after the vote.
        approval: Box<Approval>,
        /// What the completion changed, when the vote completed it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        events: Vec<Event>,
    },
    /// The request was refused (and recorded).
    Denied {
        /// A stable code.
        code: String,
        /// What happened, for people.
        message: String,
        /// The refusal, with the decision that explains it.
        refusal: Box<Refusal>,
    },
    /// The answer to a check.
    Decision {
        /// Whose permission.
        principal: PrincipalId,
        /// The operation.
        operation: String,
        /// Where.
        scope: Scope,
        /// Allow or deny, and why.
        decision: Box<Decision>,
    },
    /// The answer to a flow question.
    Flow {
        /// The source enclave.
        source: Scope,
        /// The destination.
        destination: String,
        /// The port.
        port: u16,
        /// Allow or deny, and why.
        decision: Box<FlowDecision>,
    },
    /// The answer to a read.
    Read {
        /// What was read.
        result: Box<ReadResult>,
    },
    /// A read or check that could not be answered.
    Error {
        /// A stable code.
        code: String,
        /// What happened, for people.
        message: String,
    },
}

impl Answer {
    /// The HTTP status the answer goes out with.
    pub fn status(&self) -> u16 {
        match self {
            Answer::Applied { .. }
            | Answer::Voted { .. }
            | Answer::Decision { .. }
            | Answer::Flow { .. }
            | Answer::Read { .. } => 200,
            Answer::Pending { .. } => 202,
            Answer::Denied { code, .. } | Answer::Error { code, .. } => status_of(code),
        }
    }

    /// An error answer.
    pub fn error(code: &str, message: impl Into<String>) -> Answer {
        Answer::Error {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// The HTTP status for an error code.
pub fn status_of(code: &str) -> u16 {
    match code {
        "not_authorized"
        | "separation_of_duties"
        | "not_an_eligible_approver"
        | "cannot_delete_approval"
        | "unknown_principal"
        | "group_cannot_act"
        | "owner_required" => 403,
        "not_found" | "approval_not_found" => 404,
        "already_exists"
        | "already_voted"
        | "approval_not_pending"
        | "approval_expired"
        | "approval_pending_for_target"
        | "approval_id_taken" => 409,
        "too_many_pending_approvals" => 429,
        _ => 400,
    }
}

/// What a read returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ReadResult {
    /// One resource.
    Resource(Box<Resource>),
    /// Resources, by id.
    Resources(Vec<Resource>),
    /// Approvals, by id.
    Approvals(Vec<Approval>),
    /// One approval.
    Approval(Box<Approval>),
    /// Assignments, by id.
    RoleAssignments {
        /// Role assignments.
        role_assignments: Vec<RoleAssignment>,
        /// Eligible assignments.
        eligible_role_assignments: Vec<EligibleRoleAssignment>,
        /// Activations.
        role_activations: Vec<RoleActivation>,
    },
    /// Custom deny assignments, by id.
    DenyAssignments(Vec<DenyAssignment>),
    /// Principals, by id.
    Principals(Vec<Principal>),
    /// Role definitions: built-in, then custom.
    RoleDefinitions(Vec<RoleDefinition>),
    /// The whole state.
    State(Box<ea_policy::PolicyDocument>),
    /// The admitted enclave images.
    Images(Vec<crate::images::ImageView>),
    /// The witness set the log requires (`null` for none).
    Witnesses(Option<ea_policy::WitnessSet>),
}

/// A resource of any kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "resource", rename_all = "camelCase")]
pub enum Resource {
    /// A community.
    Community(Community),
    /// An enclave.
    VirtualEnclave(VirtualEnclave),
    /// A workload.
    Workload(Workload),
    /// An enclave or community endpoint.
    Endpoint(Endpoint),
    /// A connection.
    Connection(Connection),
}

impl Resource {
    /// Its id.
    pub fn id(&self) -> &Scope {
        match self {
            Resource::Community(c) => &c.id,
            Resource::VirtualEnclave(e) => &e.id,
            Resource::Workload(w) => &w.id,
            Resource::Endpoint(e) => &e.id,
            Resource::Connection(c) => &c.id,
        }
    }
}
