//! The decision engine of Enclave Approvals: a pure, deterministic state machine over
//! communities, enclaves, workloads, principals, roles, deny assignments and maintenance
//! mode (`SPEC-policy.md` sections 1-5 and 7).
//!
//! - [`PolicyState`] holds everything decisions depend on. It changes only by
//!   [`PolicyState::apply`] of [`Event`]s, which [`PolicyState::execute`] produces from a
//!   [`Command`] after checking that the actor may and that the result is valid; replaying the
//!   events rebuilds an equal state.
//! - [`PolicyState::check`] answers "may this principal do this operation at this scope at
//!   this time?" and [`PolicyState::flow`] "may this enclave send this traffic?", each with
//!   its explanation.
//! - [`PolicyDocument`] is the JSON form of a whole state (`docs/policy-state.md`).
//!
//! No I/O, no clock, no randomness: time is an argument, so the same state, request and time
//! give the same decision on any machine.
//!
//! ```
//! use ea_policy::{Operation, PolicyState, PrincipalId, Reason, Scope, Timestamp};
//!
//! let state = PolicyState::from_json(r#"{
//!   "principals": [{"id": "alice", "type": "User"}],
//!   "communities": [{"id": "/communities/c1", "addressSpace": "10.0.0.0/8"}],
//!   "virtualEnclaves": [{"id": "/communities/c1/virtualEnclaves/e1", "addressSpace": "10.1.0.0/16"}],
//!   "roleAssignments": [{"id": "ra-1", "principalId": "alice",
//!                        "roleDefinitionId": "Enclave Owner",
//!                        "scope": "/communities/c1/virtualEnclaves/e1"}]
//! }"#).unwrap();
//!
//! let alice = PrincipalId::new("alice").unwrap();
//! let now = Timestamp::parse_rfc3339("2025-06-01T12:00:00Z").unwrap();
//! let write = Operation::parse("Microsoft.Mission/virtualEnclaves/workloads/write").unwrap();
//!
//! // Allowed through her Enclave Owner assignment...
//! let workload = Scope::parse("/communities/c1/virtualEnclaves/e1/workloads/w1").unwrap();
//! let decision = state.check(&alice, &write, &workload, now);
//! assert!(decision.allowed);
//! assert!(matches!(decision.reason, Reason::RoleAssignment(ref g) if g.role.as_str() == "Enclave Owner"));
//!
//! // ...but not in the enclave's managed resource group, where the platform's deny
//! // assignments let everyone but `platform` only read and tag.
//! let vnet = Scope::parse("/communities/c1/virtualEnclaves/e1/managed/providers/Microsoft.Network/virtualNetworks/v").unwrap();
//! let write_vnet = Operation::parse("Microsoft.Network/virtualNetworks/write").unwrap();
//! let decision = state.check(&alice, &write_vnet, &vnet, now);
//! assert!(!decision.allowed);
//! assert!(matches!(decision.reason, Reason::DenyAssignments(_)));
//! ```
#![warn(missing_docs)]

mod apply;
mod approval;
mod assignment;
mod cascade;
mod check;
mod cidr;
mod command;
mod deny;
mod document;
mod event;
mod execute;
mod flow;
#[cfg(feature = "bench-support")]
pub mod generate;
mod governance;
mod ids;
mod image;
mod index;
mod maintenance;
mod network;
mod operation;
mod principal;
mod references;
mod refusal;
mod resources;
mod roles;
mod rules;
mod scope;
mod state;
mod time;
mod wildcard;
mod witness;
mod workflow;

pub use approval::{
    ApprovalKey, ApprovalPolicy, ApprovalSetting, ApprovalSettings, Governance,
    DEFAULT_APPROVAL_LIFETIME_HOURS, MAX_MINIMUM_APPROVERS,
};
pub use assignment::{
    within, EligibleRoleAssignment, RoleActivation, RoleAssignment, DEFAULT_MAX_ACTIVATION_HOURS,
    MAX_ACTIVATION_HOURS,
};
pub use check::{Decision, DenyMatch, GrantMatch, GrantSource, Reason};
pub use cidr::{Cidr, CidrError, CidrProblem};
pub use command::{ops, Command, ConnectionSpec};
pub use deny::{DenyAssignment, DenyKind, DenyPrincipals, EffectiveDeny};
pub use document::{LoadError, PolicyDocument, ValidationError, ValidationErrors, FORMAT_VERSION};
pub use event::Event;
pub use flow::{FlowDecision, FlowMatch, FlowMiss, FlowReason, Missing};
pub use ids::{
    ApprovalId, AssignmentId, IdError, IdProblem, KeyId, PrincipalId, RoleId, MAX_ID_LEN,
};
pub use image::{
    default_image_change, AdmittedImage, ImageError, ImagePcrs, Pcr, RootApprovalSettings,
    MIN_IMAGE_CHANGE_APPROVERS, PCR_LEN,
};
pub use maintenance::{
    MaintenanceJustification, MaintenanceMode, MaintenanceModeConfiguration, MaintenanceProblem,
};
pub use network::{
    Address, Connection, ConnectionState, Destination, Endpoint, EndpointRule, PortRange, Ports,
    Protocol,
};
pub use operation::{
    Operation, OperationError, OperationKind, APPROVE, KNOWN_DATA_ACTIONS, REJECT,
};
pub use principal::{KeyAlgorithm, KeyBytes, KeyProblem, Principal, PrincipalType, PublicKey};
pub use refusal::{ApplyError, Invalid, Problem, RecordKind, Refusal};
pub use resources::{Community, VirtualEnclave, Workload};
pub use roles::{built_in_roles, builtin, is_built_in, Permissions, RoleDefinition};
pub use scope::{Scope, ScopeError, ScopeKind, ScopeProblem, MAX_SCOPE_DEPTH, MAX_SCOPE_LEN};
pub use state::PolicyState;
pub use time::{Timestamp, TimestampError};
pub use wildcard::{Pattern, PatternError, MAX_PATTERN_LEN};
pub use witness::{
    default_witness_change, WitnessKey, WitnessSet, WitnessSetError, MAX_WITNESSES,
    MIN_WITNESS_CHANGE_APPROVERS,
};
pub use workflow::{
    Approval, ApprovalRefusal, ApprovalStatus, ApprovalVote, Completion, Outcome, Submission,
    Verdict,
};
