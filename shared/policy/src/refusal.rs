//! Why a command, a state file or an event is refused.
//!
//! One [`Problem`] type describes what is wrong with a record; it is reported with the
//! field it concerns, whether the record came in a command ([`Refusal::Invalid`]), a state
//! file ([`crate::ValidationError`]) or an event being replayed ([`ApplyError`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::approval::{ApprovalKey, Governance};
use crate::check::Decision;
use crate::cidr::Cidr;
use crate::ids::{KeyId, PrincipalId};
use crate::maintenance::MaintenanceProblem;
use crate::principal::KeyProblem;
use crate::scope::{Scope, ScopeKind};
use crate::time::Timestamp;

/// What is wrong with a record, a reference or a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Problem {
    /// A scope of the wrong kind for this field.
    #[error("expected a {expected:?} scope, found {found} (a {found_kind:?} scope)")]
    WrongScopeKind {
        /// The kind the field needs.
        expected: ScopeKind,
        /// What was given.
        found: Scope,
        /// Its kind.
        found_kind: ScopeKind,
    },
    /// The id is taken.
    #[error("{what} {id} already exists")]
    AlreadyExists {
        /// What kind of thing.
        what: RecordKind,
        /// Its id.
        id: String,
    },
    /// A reference to something that does not exist.
    #[error("{what} {id} does not exist")]
    NotFound {
        /// What kind of thing.
        what: RecordKind,
        /// Its id.
        id: String,
    },
    /// `platform` (in any case) names the engine and cannot be a principal.
    #[error("principal id {0} is reserved for the engine")]
    ReservedPrincipalId(PrincipalId),
    /// Groups have members, not keys.
    #[error("a group cannot have keys")]
    KeysOnGroup,
    /// Only groups have members.
    #[error("only a group can have members")]
    MembersOnNonGroup,
    /// A group was expected.
    #[error("{0} is not a group")]
    NotAGroup(PrincipalId),
    /// Group members change through the group commands only.
    #[error("members change through addGroupMember and removeGroupMember only")]
    MembersChangeThroughGroupCommands,
    /// A principal's type never changes.
    #[error("a principal's type cannot change")]
    PrincipalTypeChanged,
    /// Two keys with one id.
    #[error("key id {0} appears twice")]
    DuplicateKeyId(KeyId),
    /// Key bytes of the wrong shape, or an Ed25519 key no private key stands behind.
    #[error("principal {principal}, key {key_id}: {problem}")]
    BadKey {
        /// Whose key.
        principal: PrincipalId,
        /// Which key.
        key_id: KeyId,
        /// What is wrong.
        problem: KeyProblem,
    },
    /// A revoked key stays revoked.
    #[error("key {0} was revoked; revocation cannot be undone")]
    KeyUnrevoked(KeyId),
    /// A key id names one key forever.
    #[error("key {0} already exists with other bytes or algorithm; add a key with a new id")]
    KeyChanged(KeyId),
    /// Keys are revoked, never removed, so that their ids are never reused.
    #[error("key {0} cannot be removed; revoke it instead")]
    KeyRemoved(KeyId),
    /// The membership would make a group contain itself.
    #[error("adding {member} to {group} would make a cycle of groups")]
    GroupCycle {
        /// The group.
        group: PrincipalId,
        /// The would-be member.
        member: PrincipalId,
    },
    /// The membership does or does not exist, against what the change assumes.
    #[error("{member} is {}a member of {group}", if *.is_member { "already " } else { "not " })]
    Membership {
        /// The group.
        group: PrincipalId,
        /// The principal.
        member: PrincipalId,
        /// Whether it is a member now.
        is_member: bool,
    },
    /// Free text over its limit.
    #[error("the text is longer than {0} characters")]
    TextTooLong(usize),
    /// Free text that must say something.
    #[error("it must not be empty")]
    Empty,
    /// An address space outside its parent's.
    #[error("{inner} is not inside {parent}'s address space {outer}")]
    OutsideAddressSpace {
        /// The block given.
        inner: Cidr,
        /// The enclosing resource.
        parent: Scope,
        /// Its address space.
        outer: Cidr,
    },
    /// An enclave address space that overlaps a sibling's.
    #[error("{address_space} overlaps {sibling}'s address space {sibling_space}")]
    OverlapsSibling {
        /// The block given.
        address_space: Cidr,
        /// The other enclave.
        sibling: Scope,
        /// Its address space.
        sibling_space: Cidr,
    },
    /// A new address space would leave out something that lies in the old one.
    #[error("{child}'s {child_space} would no longer be inside {address_space}")]
    WouldExclude {
        /// The new block.
        address_space: Cidr,
        /// What would fall outside.
        child: Scope,
        /// Its block.
        child_space: Cidr,
    },
    /// A maintenance configuration breaking section 4.2.
    #[error(transparent)]
    Maintenance(MaintenanceProblem),
    /// `expiresAt` must lie ahead.
    #[error("expiresAt {expires_at} is not after the time of the change {now}")]
    ExpiryNotInFuture {
        /// The expiry given.
        expires_at: Timestamp,
        /// The time of the command.
        now: Timestamp,
    },
    /// A key only communities may set.
    #[error("{0} cannot be set on an enclave (enclave-level keys: connectionCreation, connectionUpdate, enclaveEndpointUpdate, enclaveMaintenanceMode)")]
    NotEnclaveLevel(ApprovalKey),
    /// `approvalLifetimeHours` is set on communities only.
    #[error("approvalLifetimeHours can only be set on a community")]
    LifetimeOnEnclave,
    /// A number outside its range.
    #[error("{value} is outside {min}..={max}")]
    OutOfRange {
        /// Given.
        value: u64,
        /// Lowest allowed.
        min: u64,
        /// Highest allowed.
        max: u64,
    },
    /// An endpoint with no rules.
    #[error("an endpoint needs at least one rule")]
    NoRules,
    /// Two rules with one name.
    #[error("rule name {0:?} appears twice")]
    DuplicateRuleName(String),
    /// A rule with no protocols.
    #[error("a rule needs at least one protocol")]
    NoProtocols,
    /// HTTP and HTTPS belong to community endpoints.
    #[error("HTTP and HTTPS are for community endpoints only")]
    ApplicationProtocolOnEnclaveEndpoint,
    /// A reference across communities.
    #[error("{found} is not in community {community}")]
    OtherCommunity {
        /// The community of the record.
        community: Scope,
        /// The reference.
        found: Scope,
    },
    /// A connection to a deleted endpoint can only be Disconnected (section 7).
    #[error("endpoint {0} does not exist, so the connection must be Disconnected")]
    DanglingConnection(Scope),
    /// A custom role named like a built-in one.
    #[error("{0:?} is the name of a built-in role")]
    BuiltInRole(String),
    /// Permissions that grant or deny nothing.
    #[error("no actions and no data actions")]
    NoPermissions,
    /// Too many patterns in one definition.
    #[error("more than {0} patterns")]
    TooManyPatterns(usize),
    /// A role without assignable scopes.
    #[error("a custom role needs at least one assignable scope")]
    NoAssignableScopes,
    /// The role may not be assigned there.
    #[error("role {role} is not assignable at {scope}")]
    NotAssignableHere {
        /// The role.
        role: String,
        /// The scope.
        scope: Scope,
    },
    /// The change would leave an assignment outside the role's assignable scopes.
    #[error("assignment {assignment} at {scope} would be outside the role's assignable scopes")]
    AssignmentOutsideAssignableScopes {
        /// The assignment.
        assignment: String,
        /// Its scope.
        scope: Scope,
    },
    /// The same principal, role and scope already has an assignment.
    #[error("assignment {0} already gives this role to this principal at this scope")]
    DuplicateAssignment(String),
    /// `notBefore` must come before `notAfter`.
    #[error("the window [{not_before}, {not_after}) is empty")]
    EmptyWindow {
        /// Start.
        not_before: Timestamp,
        /// End.
        not_after: Timestamp,
    },
    /// The activator is not (a member of) the eligible principal.
    #[error("{0} is not eligible for this assignment")]
    NotEligible(PrincipalId),
    /// The eligible assignment's window does not include the time of activation.
    #[error("the eligible assignment cannot be activated at {0}")]
    EligibilityNotActive(Timestamp),
    /// Longer than the eligible assignment's `maxActivationHours`.
    #[error("an activation of this assignment lasts at most {0} hours")]
    ActivationTooLong(u8),
    /// Already activated by this principal.
    #[error("activation {0} of this assignment by this principal is still active")]
    AlreadyActive(String),
    /// Something still refers to what is being deleted.
    #[error("still referred to by {}", .0.join(", "))]
    InUse(Vec<String>),
    /// A format version this engine does not read.
    #[error("version {0} is not supported (expected 1)")]
    UnsupportedVersion(u32),
    /// A closed approval without `closedAt`, or a pending one with it.
    #[error("an approval that is {0} must have closedAt exactly when it is not Pending")]
    ClosedAtMismatch(crate::workflow::ApprovalStatus),
    /// A vote or closing for an approval that is no longer pending.
    #[error("approval {id} is already {status}")]
    ApprovalClosed {
        /// Which.
        id: crate::ids::ApprovalId,
        /// Its state.
        status: crate::workflow::ApprovalStatus,
    },
    /// Approve, reject and delete of approvals go through the workflow, not a plan.
    #[error("{0} is decided by the approvals workflow")]
    WorkflowCommand(String),
    /// PCRs that do not name an image.
    #[error(transparent)]
    Image(crate::image::ImageError),
    /// An enclave started with an image the log does not admit (at that point).
    #[error(
        "the enclave image {image} is not admitted by this log; admitted: {}",
        crate::image::list(admitted)
    )]
    ImageNotAdmitted {
        /// The image of the enclave that started.
        image: Box<crate::image::ImagePcrs>,
        /// The admitted images.
        admitted: Vec<crate::image::ImagePcrs>,
    },
    /// The only admitted image cannot be retired: nothing could continue the log.
    #[error(
        "image {0}... is the only admitted image; admit its successor (govctl image propose) \
         before retiring it"
    )]
    LastImage(String),
    /// The image writing the log cannot be retired.
    #[error(
        "image {0}... is the image writing this log; start an enclave of another admitted \
         image first, then retire this one"
    )]
    ImageRunning(String),
    /// `imageChange` loosened below what an image change needs.
    #[error(
        "imageChange must be Required with minimumApproversRequired of at least {}: an image \
         decides which code holds the log key, so no single principal may choose one",
        crate::image::MIN_IMAGE_CHANGE_APPROVERS
    )]
    ImageChangeTooLoose,
    /// `witnessChange` loosened below what a witness change needs.
    #[error(
        "witnessChange must be Required with minimumApproversRequired of at least {}: the \
         witness set decides who vouches that the log was not rolled back or forked, so no \
         single principal may choose it",
        crate::witness::MIN_WITNESS_CHANGE_APPROVERS
    )]
    WitnessChangeTooLoose,
    /// A witness set breaks a rule.
    #[error("{0}")]
    Witnesses(crate::witness::WitnessSetError),
    /// An approved connection change found its connection no longer waiting for it.
    #[error("connection {id} is no longer waiting for this approval (its state is {})", state.map_or("gone".to_owned(), |s| format!("{s:?}")))]
    ConnectionNoLongerPending {
        /// The connection.
        id: Scope,
        /// Its state now, if it still exists.
        state: Option<crate::network::ConnectionState>,
    },
}

/// The kinds of record in a policy state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RecordKind {
    /// A user, group or service principal.
    Principal,
    /// A key of a principal.
    Key,
    /// A role definition.
    RoleDefinition,
    /// A role assignment.
    RoleAssignment,
    /// An eligible role assignment.
    EligibleRoleAssignment,
    /// An activation.
    RoleActivation,
    /// A deny assignment.
    DenyAssignment,
    /// An approval of a governed operation.
    Approval,
    /// A community.
    Community,
    /// A virtual enclave.
    VirtualEnclave,
    /// A workload.
    Workload,
    /// An enclave or community endpoint.
    Endpoint,
    /// An enclave connection.
    Connection,
    /// Any scope.
    Scope,
    /// An admitted enclave image.
    Image,
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordKind::Principal => "principal",
            RecordKind::Key => "key",
            RecordKind::RoleDefinition => "role definition",
            RecordKind::RoleAssignment => "role assignment",
            RecordKind::EligibleRoleAssignment => "eligible role assignment",
            RecordKind::RoleActivation => "role activation",
            RecordKind::DenyAssignment => "deny assignment",
            RecordKind::Community => "community",
            RecordKind::VirtualEnclave => "virtual enclave",
            RecordKind::Workload => "workload",
            RecordKind::Endpoint => "endpoint",
            RecordKind::Connection => "connection",
            RecordKind::Approval => "approval",
            RecordKind::Scope => "scope",
            RecordKind::Image => "image",
        })
    }
}

/// A [`Problem`] with the field it concerns, relative to the record (`addressSpace`,
/// `members`, `ruleCollection[1].protocols`), or empty for the record as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invalid {
    /// The field.
    pub field: String,
    /// What is wrong.
    pub problem: Problem,
}

impl Invalid {
    /// `problem` about `field`.
    pub fn at(field: impl Into<String>, problem: Problem) -> Invalid {
        Invalid {
            field: field.into(),
            problem,
        }
    }

    /// Puts `prefix` in front of the field path.
    pub fn under(mut self, prefix: &str) -> Invalid {
        self.field = join_path(prefix, &self.field);
        self
    }
}

/// `a` + `.b` (or `a` + `[3]`), leaving out empty parts.
pub(crate) fn join_path(prefix: &str, field: &str) -> String {
    match (prefix.is_empty(), field.is_empty()) {
        (true, _) => field.to_owned(),
        (_, true) => prefix.to_owned(),
        _ if field.starts_with('[') => format!("{prefix}{field}"),
        _ => format!("{prefix}.{field}"),
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "{}: {}", self.field, self.problem)
        }
    }
}

/// Why [`crate::PolicyState::execute`] produced no events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Refusal {
    /// The actor is not in the directory.
    #[error("unknown principal {0}")]
    UnknownActor(PrincipalId),
    /// Groups hold roles but never act.
    #[error("{0} is a group; groups cannot act")]
    GroupCannotAct(PrincipalId),
    /// The actor may not do this (section 5); the decision says why.
    #[error("{actor} may not {operation} at {scope}")]
    NotAuthorized {
        /// Who asked.
        actor: PrincipalId,
        /// The operation checked.
        operation: String,
        /// Where.
        scope: Scope,
        /// The decision and its explanation.
        decision: Box<Decision>,
    },
    /// The command is a governed operation whose settings require approvals (section 6).
    #[error("{} at {} requires approval", .0.key, .0.target)]
    ApprovalRequired(Box<Governance>),
    /// The command's content breaks a rule.
    #[error("invalid command: {0}")]
    Invalid(Invalid),
    /// An approval, vote or withdrawal the workflow does not allow (section 6).
    #[error(transparent)]
    Approval(#[from] crate::workflow::ApprovalRefusal),
}

impl Refusal {
    /// A stable snake_case code for clients.
    pub fn code(&self) -> &'static str {
        use crate::workflow::ApprovalRefusal as A;
        match self {
            Refusal::UnknownActor(_) => "unknown_principal",
            Refusal::GroupCannotAct(_) => "group_cannot_act",
            Refusal::NotAuthorized { .. } => "not_authorized",
            Refusal::ApprovalRequired(_) => "approval_required",
            Refusal::Invalid(invalid) => match invalid.problem {
                Problem::NotFound { .. } => "not_found",
                Problem::AlreadyExists { .. } => "already_exists",
                _ => "invalid_command",
            },
            Refusal::Approval(refusal) => match refusal {
                A::NotFound(_) => "approval_not_found",
                A::NotPending { .. } => "approval_not_pending",
                A::Expired { .. } => "approval_expired",
                A::OwnRequest(_) => "separation_of_duties",
                A::NotAnEligibleApprover { .. } => "not_an_eligible_approver",
                A::AlreadyVoted(_) => "already_voted",
                A::CannotDelete { .. } => "cannot_delete_approval",
                A::PendingForTarget(_) => "approval_pending_for_target",
                A::TooManyPending { .. } => "too_many_pending_approvals",
                A::IdTaken(_) => "approval_id_taken",
                A::OwnerRequired(_) => "owner_required",
            },
        }
    }
}

impl From<Invalid> for Refusal {
    fn from(invalid: Invalid) -> Refusal {
        Refusal::Invalid(invalid)
    }
}

/// Why an event does not fit the state it is applied to: the log and the state disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("event {event} does not apply: {invalid}")]
pub struct ApplyError {
    /// The event's name.
    pub event: String,
    /// What does not fit.
    pub invalid: Invalid,
}
