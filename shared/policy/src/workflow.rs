//! The approvals workflow (SPEC-policy section 6): submission of a command, approval
//! records, votes, and the one step in which an approved change is applied.
//!
//! Approvals are state like any other record: [`Event::ApprovalRequested`] opens one,
//! [`Event::ApprovalVoted`] adds a counted vote, [`Event::ApprovalClosed`] ends it. So a
//! replay of the log rebuilds pending approvals exactly, and everything here is a pure
//! function of the state, the request and the time.
//!
//! Why connections get placeholders: section 6 lists the connection states PendingApproval
//! and PendingUpdate. A governed connection creation therefore puts the connection in
//! `PendingApproval` at once (it carries no traffic: only Active connections do, section 7),
//! and a governed update turns it `PendingUpdate`; the closing of the approval turns it
//! Active, or removes it (rejected, expired, deleted: "a rejected request creates nothing"),
//! or marks it Failed.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::approval::{ApprovalKey, Governance, DEFAULT_APPROVAL_LIFETIME_HOURS};
use crate::command::{ops, Command};
use crate::event::Event;
use crate::ids::{ApprovalId, PrincipalId};
use crate::network::ConnectionState;
use crate::operation::{Operation, OperationKind, APPROVE, REJECT};
use crate::refusal::{Invalid, Problem, Refusal};
use crate::rules::{Mode, MAX_TEXT};
use crate::scope::Scope;
use crate::state::PolicyState;
use crate::time::Timestamp;

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ApprovalStatus {
    /// Waiting for votes.
    Pending,
    /// Enough valid approvals: the change was applied in the same step.
    Approved,
    /// A valid rejection: nothing was created or changed.
    Rejected,
    /// Its lifetime ended while pending.
    Expired,
    /// The requester or an owner withdrew it while pending.
    Deleted,
    /// Approved, but the change could no longer be applied.
    Failed,
}

impl ApprovalStatus {
    /// The name used in the API and in filters.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "Pending",
            ApprovalStatus::Approved => "Approved",
            ApprovalStatus::Rejected => "Rejected",
            ApprovalStatus::Expired => "Expired",
            ApprovalStatus::Deleted => "Deleted",
            ApprovalStatus::Failed => "Failed",
        }
    }
}

impl fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ApprovalStatus {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        [
            ApprovalStatus::Pending,
            ApprovalStatus::Approved,
            ApprovalStatus::Rejected,
            ApprovalStatus::Expired,
            ApprovalStatus::Deleted,
            ApprovalStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(text))
        .ok_or_else(|| {
            format!("{text:?} is not an approval state (Pending, Approved, Rejected, Expired, Deleted, Failed)")
        })
    }
}

/// Approve or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// Counts towards the minimum and the mandatory approvers.
    Approve,
    /// Ends the approval as Rejected.
    Reject,
}

impl Verdict {
    /// The data action a voter needs at the approval's target (section 6, step 4).
    pub fn data_action(self) -> &'static str {
        match self {
            Verdict::Approve => APPROVE,
            Verdict::Reject => REJECT,
        }
    }
}

/// One counted vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalVote {
    /// Who voted.
    pub principal_id: PrincipalId,
    /// How.
    pub verdict: Verdict,
    /// Why, optionally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// When.
    pub at: Timestamp,
}

/// A governed operation waiting for (or past) its approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Approval {
    /// Its id.
    pub id: ApprovalId,
    /// The change asked for.
    pub resource_action: Command,
    /// Who asked.
    pub requester: PrincipalId,
    /// Why.
    pub justification: String,
    /// When it was submitted.
    pub created_at: Timestamp,
    /// When it expires if still pending.
    pub expires_at: Timestamp,
    /// The settings in force at submission, copied: later changes to `approvalSettings`
    /// do not affect it.
    pub settings: Governance,
    /// Where it stands.
    pub approval_status: ApprovalStatus,
    /// Counted votes, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub votes: Vec<ApprovalVote>,
    /// For an update of a connection: its state before it became PendingUpdate, restored
    /// if the update does not go through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_state_before: Option<ConnectionState>,
    /// When it left Pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Timestamp>,
    /// Why it failed (Failed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
}

impl Approval {
    /// The resource the change targets (where votes are authorized).
    pub fn target(&self) -> &Scope {
        &self.settings.target
    }

    /// Distinct principals whose approving vote counted.
    pub fn approvers(&self) -> BTreeSet<&PrincipalId> {
        self.votes
            .iter()
            .filter(|v| v.verdict == Verdict::Approve)
            .map(|v| &v.principal_id)
            .collect()
    }
}

/// Why an approval request, vote or deletion was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ApprovalRefusal {
    /// No approval has this id.
    #[error("approval {0} does not exist")]
    NotFound(ApprovalId),
    /// The approval is no longer pending.
    #[error("approval {id} is {status}, not Pending")]
    NotPending {
        /// Which.
        id: ApprovalId,
        /// Its state.
        status: ApprovalStatus,
    },
    /// The approval's lifetime is over.
    #[error("approval {id} expired at {expires_at}")]
    Expired {
        /// Which.
        id: ApprovalId,
        /// When.
        expires_at: Timestamp,
    },
    /// Separation of duties: nobody decides on their own request.
    #[error("{0} requested this change and cannot approve or reject it")]
    OwnRequest(PrincipalId),
    /// Mandatory or endpoint approvers are named and the voter is none of them.
    #[error("{voter} is not among the approvers this approval names ({})", join(.eligible))]
    NotAnEligibleApprover {
        /// Who tried.
        voter: PrincipalId,
        /// Who may (principals or groups).
        eligible: BTreeSet<PrincipalId>,
    },
    /// The principal already voted on this approval.
    #[error("{0} has already voted on this approval; each principal counts once")]
    AlreadyVoted(PrincipalId),
    /// Only the requester or an owner of the target may withdraw a pending approval.
    #[error("only the requester or an owner of {target} may delete this approval")]
    CannotDelete {
        /// The approval's target.
        target: Scope,
    },
    /// Another approval for the same resource is still pending.
    #[error("approval {0} for the same resource is still pending")]
    PendingForTarget(ApprovalId),
    /// The requester has too many pending approvals.
    #[error("{requester} already has {limit} pending approvals; wait for them or delete some")]
    TooManyPending {
        /// Who.
        requester: PrincipalId,
        /// The limit.
        limit: u32,
    },
    /// The approval id is taken.
    #[error("approval id {0} is already used")]
    IdTaken(ApprovalId),
    /// Image changes are decided by principals holding Owner at `/` only.
    #[error(
        "{0} does not hold the Owner role at /: image changes (imageChange) are approved and \
         rejected by owners of / only"
    )]
    OwnerRequired(PrincipalId),
}

fn join(ids: &BTreeSet<PrincipalId>) -> String {
    ids.iter()
        .map(PrincipalId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the caller supplies with a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission<'a> {
    /// Why (copied into an approval; at most 1024 characters).
    pub justification: Option<&'a str>,
    /// The id an approval would get (the engine draws no random numbers: the caller
    /// derives it, e.g. from the request's nonce).
    pub approval_id: ApprovalId,
    /// Pending approvals a requester may have at once.
    pub max_pending_per_requester: u32,
}

/// How an approval ended when a vote completed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    /// Approved or Failed.
    pub status: ApprovalStatus,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The closing event, then the change's events (Approved) or the placeholder's (Failed).
    pub events: Vec<Event>,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Outcome {
    /// Applied at once.
    Applied {
        /// What changed.
        events: Vec<Event>,
    },
    /// A governed change now waits for approvals.
    Pending {
        /// The new approval.
        approval_id: ApprovalId,
        /// The approval and any placeholder.
        events: Vec<Event>,
    },
    /// A vote was counted; a rejection closes the approval in the same events.
    Voted {
        /// The approval.
        approval_id: ApprovalId,
        /// The vote (and, for a rejection, the closing).
        events: Vec<Event>,
        /// Set when this vote completed the approval.
        completion: Option<Completion>,
    },
}

impl Outcome {
    /// Every event, in the order to apply them.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        let (first, completion) = match self {
            Outcome::Applied { events } | Outcome::Pending { events, .. } => (events, None),
            Outcome::Voted {
                events, completion, ..
            } => (events, completion.as_ref()),
        };
        first
            .iter()
            .chain(completion.into_iter().flat_map(|c| c.events.iter()))
    }
}

impl PolicyState {
    /// An approval.
    pub fn approval(&self, id: &ApprovalId) -> Option<&Approval> {
        self.approvals.get(id)
    }

    /// Every approval, by id.
    pub fn approvals(&self) -> impl Iterator<Item = &Approval> {
        self.approvals.values()
    }

    /// Runs a command for `actor` at `at` the way a request does (section 6): votes and
    /// deletions of approvals are decided here; any other command is authorized (section 5)
    /// and validated, then applied at once, or — when it is a governed operation whose
    /// settings require approvals — turned into a pending approval. Nothing changes until
    /// the caller applies the outcome's events.
    pub fn submit(
        &self,
        actor: &PrincipalId,
        command: &Command,
        submission: &Submission<'_>,
        at: Timestamp,
    ) -> Result<Outcome, Refusal> {
        self.check_actor(actor)?;
        match command {
            Command::Approve { id, comment } => {
                self.vote(actor, id, Verdict::Approve, comment.as_deref(), at)
            }
            Command::Reject { id, comment } => {
                self.vote(actor, id, Verdict::Reject, comment.as_deref(), at)
            }
            Command::DeleteApproval { id } => self.withdraw(actor, id, at),
            _ => {
                let events = self.authorize_and_plan(actor, command, at)?;
                match self.governance(command) {
                    Some(governance) if governance.required && !actor.is_platform() => {
                        self.open(actor, command, governance, submission, at)
                    }
                    _ => Ok(Outcome::Applied { events }),
                }
            }
        }
    }

    /// Opens an approval for a governed command that has passed its RBAC check and
    /// validation.
    fn open(
        &self,
        actor: &PrincipalId,
        command: &Command,
        settings: Governance,
        submission: &Submission<'_>,
        at: Timestamp,
    ) -> Result<Outcome, Refusal> {
        let id = &submission.approval_id;
        if self.approvals.contains_key(id) {
            return Err(ApprovalRefusal::IdTaken(id.clone()).into());
        }
        if let Some(busy) = self.approvals.values().find(|a| {
            a.approval_status == ApprovalStatus::Pending && a.target() == &settings.target
        }) {
            return Err(ApprovalRefusal::PendingForTarget(busy.id.clone()).into());
        }
        let pending = self
            .approvals
            .values()
            .filter(|a| a.approval_status == ApprovalStatus::Pending && &a.requester == actor)
            .count();
        if pending >= submission.max_pending_per_requester as usize {
            return Err(ApprovalRefusal::TooManyPending {
                requester: actor.clone(),
                limit: submission.max_pending_per_requester,
            }
            .into());
        }
        let justification = submission.justification.unwrap_or_default();
        if justification.chars().count() > MAX_TEXT {
            return Err(Invalid::at("justification", Problem::TextTooLong(MAX_TEXT)).into());
        }
        let lifetime_hours = settings
            .target
            .community()
            .and_then(|c| self.communities.get(&c))
            .and_then(|c| c.approval_settings.approval_lifetime_hours)
            .unwrap_or(DEFAULT_APPROVAL_LIFETIME_HOURS);
        let expires_at = at
            .checked_add_millis(i64::from(lifetime_hours) * 3_600_000)
            .unwrap_or(at);
        let mut events = Vec::new();
        let mut connection_state_before = None;
        match command {
            Command::CreateConnection(spec) => {
                let mut placeholder = crate::execute::connection_of(spec);
                placeholder.state = ConnectionState::PendingApproval;
                events.push(Event::ConnectionPut(placeholder));
            }
            Command::UpdateConnection(spec) => {
                connection_state_before = self.connections.get(&spec.id).map(|c| c.state);
                events.push(Event::ConnectionStateChanged {
                    id: spec.id.clone(),
                    state: ConnectionState::PendingUpdate,
                });
            }
            _ => {}
        }
        let approval = Approval {
            id: id.clone(),
            resource_action: command.clone(),
            requester: actor.clone(),
            justification: justification.to_owned(),
            created_at: at,
            expires_at,
            settings,
            approval_status: ApprovalStatus::Pending,
            votes: Vec::new(),
            connection_state_before,
            closed_at: None,
            status_reason: None,
        };
        events.insert(0, Event::ApprovalRequested(Box::new(approval)));
        Ok(Outcome::Pending {
            approval_id: id.clone(),
            events,
        })
    }

    /// The approval `id`, still pending and not expired at `at`.
    fn pending(&self, id: &ApprovalId, at: Timestamp) -> Result<&Approval, Refusal> {
        let approval = self
            .approvals
            .get(id)
            .ok_or_else(|| ApprovalRefusal::NotFound(id.clone()))?;
        if approval.approval_status != ApprovalStatus::Pending {
            return Err(ApprovalRefusal::NotPending {
                id: id.clone(),
                status: approval.approval_status,
            }
            .into());
        }
        if approval.expires_at <= at {
            return Err(ApprovalRefusal::Expired {
                id: id.clone(),
                expires_at: approval.expires_at,
            }
            .into());
        }
        Ok(approval)
    }

    /// Section 6 steps 4-6: a vote that counts, and what it completes.
    pub(crate) fn vote(
        &self,
        actor: &PrincipalId,
        id: &ApprovalId,
        verdict: Verdict,
        comment: Option<&str>,
        at: Timestamp,
    ) -> Result<Outcome, Refusal> {
        let approval = self.pending(id, at)?;
        if actor == &approval.requester {
            return Err(ApprovalRefusal::OwnRequest(actor.clone()).into());
        }
        if matches!(
            approval.settings.key,
            ApprovalKey::ImageChange | ApprovalKey::WitnessChange
        ) {
            // An image decides which code holds the log key, the witness set who vouches
            // for the log's history: only owners of everything decide on one, in place of
            // the approve and reject data actions.
            if !self.holds_owner_at_root(actor, at) {
                return Err(ApprovalRefusal::OwnerRequired(actor.clone()).into());
            }
        } else {
            let action = Operation::trusted(verdict.data_action(), OperationKind::DataAction);
            let decision = self.check(actor, &action, approval.target(), at);
            if !decision.allowed {
                return Err(Refusal::NotAuthorized {
                    actor: actor.clone(),
                    operation: verdict.data_action().to_owned(),
                    scope: approval.target().clone(),
                    decision: Box::new(decision),
                });
            }
        }
        if let Some(eligible) = eligible_voters(&approval.settings) {
            let closure = self.index.closure(actor);
            if !closure.iter().any(|p| eligible.contains(p)) {
                return Err(ApprovalRefusal::NotAnEligibleApprover {
                    voter: actor.clone(),
                    eligible,
                }
                .into());
            }
        }
        if approval.votes.iter().any(|v| &v.principal_id == actor) {
            return Err(ApprovalRefusal::AlreadyVoted(actor.clone()).into());
        }
        if comment.is_some_and(|c| c.chars().count() > MAX_TEXT) {
            return Err(Invalid::at("comment", Problem::TextTooLong(MAX_TEXT)).into());
        }
        let vote = ApprovalVote {
            principal_id: actor.clone(),
            verdict,
            comment: comment.map(str::to_owned),
            at,
        };
        let mut events = vec![Event::ApprovalVoted {
            id: id.clone(),
            vote: vote.clone(),
        }];
        let completion = match verdict {
            Verdict::Reject => {
                events.extend(self.close(approval, ApprovalStatus::Rejected, None, at));
                None
            }
            Verdict::Approve => {
                let mut voted = approval.clone();
                voted.votes.push(vote);
                self.is_complete(&voted).then(|| self.complete(&voted, at))
            }
        };
        Ok(Outcome::Voted {
            approval_id: id.clone(),
            events,
            completion,
        })
    }

    /// Whether the approvals gathered satisfy the copied settings (section 6, step 6; 6.1).
    fn is_complete(&self, approval: &Approval) -> bool {
        let settings = &approval.settings;
        let approvers = approval.approvers();
        if (approvers.len() as u64) < u64::from(settings.minimum_approvers_required) {
            return false;
        }
        let closures: Vec<Vec<PrincipalId>> =
            approvers.iter().map(|p| self.index.closure(p)).collect();
        // A group is satisfied by any one member (directly or through nested groups).
        let satisfied = |named: &PrincipalId| closures.iter().any(|c| c.contains(named));
        let mandatory = settings.mandatory_approvers.iter().all(satisfied);
        let endpoint = settings.endpoint_approvers.is_empty()
            || settings.endpoint_approvers.iter().any(satisfied);
        mandatory && endpoint && !approvers.is_empty()
    }

    /// Applies an approved change in the same step, or fails it with the reason.
    fn complete(&self, approval: &Approval, at: Timestamp) -> Completion {
        match self.plan_approved(approval, at) {
            Ok(change) => {
                let mut events = self.close(approval, ApprovalStatus::Approved, None, at);
                events.extend(change);
                Completion {
                    status: ApprovalStatus::Approved,
                    reason: None,
                    events,
                }
            }
            Err(refusal) => {
                let reason = refusal.to_string();
                Completion {
                    status: ApprovalStatus::Failed,
                    events: self.close(approval, ApprovalStatus::Failed, Some(reason.clone()), at),
                    reason: Some(reason),
                }
            }
        }
    }

    /// The events of an approved change, validated against the state as it is now. The
    /// requester's RBAC was checked at submission; what can change since is whether the
    /// change still fits (its target deleted, its address space taken).
    fn plan_approved(&self, approval: &Approval, at: Timestamp) -> Result<Vec<Event>, Refusal> {
        match &approval.resource_action {
            Command::CreateConnection(spec) | Command::UpdateConnection(spec) => {
                let expected = match &approval.resource_action {
                    Command::CreateConnection(_) => ConnectionState::PendingApproval,
                    _ => ConnectionState::PendingUpdate,
                };
                let current = self.connections.get(&spec.id).map(|c| c.state);
                if current != Some(expected) {
                    return Err(Refusal::Invalid(Invalid::at(
                        "id",
                        Problem::ConnectionNoLongerPending {
                            id: spec.id.clone(),
                            state: current,
                        },
                    )));
                }
                let connection = crate::execute::connection_of(spec);
                self.check_connection(&connection, Mode::Update)?;
                Ok(vec![Event::ConnectionPut(connection)])
            }
            command => {
                let mut events = self.plan(&approval.requester, command, at)?;
                // An image change names the approval that made it, for `govctl image list`.
                for event in &mut events {
                    match event {
                        Event::ImageAdmitted(image) => {
                            image.approval_id = Some(approval.id.clone());
                        }
                        Event::ImageRetired { approval_id, .. } => {
                            *approval_id = Some(approval.id.clone());
                        }
                        _ => {}
                    }
                }
                Ok(events)
            }
        }
    }

    /// The events that end `approval` as `status`, releasing any connection placeholder.
    fn close(
        &self,
        approval: &Approval,
        status: ApprovalStatus,
        reason: Option<String>,
        at: Timestamp,
    ) -> Vec<Event> {
        let mut events = vec![Event::ApprovalClosed {
            id: approval.id.clone(),
            status,
            at,
            reason,
        }];
        if status == ApprovalStatus::Approved {
            return events;
        }
        // A placeholder is released only if it still waits: a cascade may have changed it.
        let waiting = |id: &Scope, state: ConnectionState| {
            self.connections.get(id).is_some_and(|c| c.state == state)
        };
        match &approval.resource_action {
            Command::CreateConnection(spec)
                if waiting(&spec.id, ConnectionState::PendingApproval) =>
            {
                events.push(match status {
                    // Kept, so that the failure is visible where the connection was asked
                    // for; its owner deletes it.
                    ApprovalStatus::Failed => Event::ConnectionStateChanged {
                        id: spec.id.clone(),
                        state: ConnectionState::Failed,
                    },
                    _ => Event::ConnectionDeleted {
                        id: spec.id.clone(),
                    },
                });
            }
            Command::UpdateConnection(spec)
                if waiting(&spec.id, ConnectionState::PendingUpdate) =>
            {
                events.push(Event::ConnectionStateChanged {
                    id: spec.id.clone(),
                    state: approval
                        .connection_state_before
                        .unwrap_or(ConnectionState::Active),
                });
            }
            _ => {}
        }
        events
    }

    /// Section 6, step 7: only the requester or an owner of the target withdraws a pending
    /// approval. "Owner" is whoever may assign roles there, as only owner roles may.
    pub(crate) fn withdraw(
        &self,
        actor: &PrincipalId,
        id: &ApprovalId,
        at: Timestamp,
    ) -> Result<Outcome, Refusal> {
        let approval = self.pending(id, at)?;
        if actor != &approval.requester {
            let owner = Operation::trusted(ops::ROLE_ASSIGNMENT_WRITE, OperationKind::Action);
            if !self.check(actor, &owner, approval.target(), at).allowed {
                return Err(ApprovalRefusal::CannotDelete {
                    target: approval.target().clone(),
                }
                .into());
            }
        }
        Ok(Outcome::Applied {
            events: self.close(approval, ApprovalStatus::Deleted, None, at),
        })
    }

    /// Pending approvals whose lifetime is over at `at`, with the events that expire them.
    pub(crate) fn expiring_approvals(&self, at: Timestamp) -> Vec<Event> {
        self.approvals
            .values()
            .filter(|a| a.approval_status == ApprovalStatus::Pending && a.expires_at <= at)
            .flat_map(|a| self.close(a, ApprovalStatus::Expired, None, a.expires_at))
            .collect()
    }

    /// The earliest instant at which [`PolicyState::due_events`] will have something to do:
    /// an approval's expiry, a maintenance window's end, an activation's end.
    pub fn next_due(&self) -> Option<Timestamp> {
        let approvals = self
            .approvals
            .values()
            .filter(|a| a.approval_status == ApprovalStatus::Pending)
            .map(|a| a.expires_at);
        let maintenance = self
            .communities
            .values()
            .filter_map(|c| c.maintenance_mode_configuration.expires_at)
            .chain(
                self.enclaves
                    .values()
                    .filter_map(|e| e.maintenance_mode_configuration.expires_at),
            );
        let activations = self.activations.values().map(|a| a.end);
        approvals.chain(maintenance).chain(activations).min()
    }
}

/// Who may vote, when the settings restrict it: the mandatory approvers and the endpoint's
/// approvers (both needed), or only the endpoint's when the settings ask for nobody else.
/// `None`: anyone holding the data action.
fn eligible_voters(settings: &Governance) -> Option<BTreeSet<PrincipalId>> {
    if !settings.mandatory_approvers.is_empty() || settings.minimum_approvers_required == 0 {
        let mut eligible = settings.mandatory_approvers.clone();
        eligible.extend(settings.endpoint_approvers.iter().cloned());
        (!eligible.is_empty()).then_some(eligible)
    } else {
        None
    }
}

impl PolicyState {
    /// The rules an approval record of a state file must satisfy: its votes come from
    /// known principals, a closed one says when, an open one does not.
    pub(crate) fn check_approval_record(&self, approval: &Approval) -> Result<(), Invalid> {
        let closed = approval.approval_status != ApprovalStatus::Pending;
        if closed != approval.closed_at.is_some() {
            return Err(Invalid::at(
                "closedAt",
                Problem::ClosedAtMismatch(approval.approval_status),
            ));
        }
        if approval.justification.chars().count() > MAX_TEXT {
            return Err(Invalid::at("justification", Problem::TextTooLong(MAX_TEXT)));
        }
        let voters: Vec<PrincipalId> = approval
            .votes
            .iter()
            .map(|v| v.principal_id.clone())
            .collect();
        self.known_principals("votes", &voters)
    }
}
