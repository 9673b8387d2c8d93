//! The ledger: the policy state plus what deciding in log order needs (replay protection,
//! the genesis settings), turning each authenticated request into an answer and the drafts
//! of its audit records. Pure: time is an argument; no I/O.

use std::borrow::Cow;

use ciborium::Value;
use ea_audit::record::{Record, RecordFields, RecordKind};
use ea_policy::{
    ApprovalId, Command, Event, Operation as PolicyOperation, OperationKind, Outcome, PolicyState,
    PrincipalId, Refusal, Submission, Timestamp,
};
use ea_protocol::signed::{self, SignedRequestError, MAX_CLOCK_SKEW_MS};

use crate::answer::{Answer, ReadResult};
use crate::directory::{key_status, Authenticated, KeyStatus};
use crate::genesis::{Genesis, GenesisError, LedgerSettings};
use crate::images::{
    image_of_document_unverified, start_events, ImageAdmission, ImageView, StartImageError,
};
use crate::operation::{Operation, Query};
use crate::records::{
    events_of, events_of_fields, events_value, map, text, value_of, Draft, EventsError,
    PLATFORM_ACTOR,
};

/// What one request produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// The records to append, in order (none for reads, and for checks when decision
    /// logging is off).
    pub drafts: Vec<Draft>,
    /// The answer.
    pub answer: Answer,
}

/// Why a record could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Record 0 does not hold a valid genesis document.
    #[error("the genesis record is not valid: {0}")]
    Genesis(#[from] GenesisError),
    /// The record's events do not decode.
    #[error(transparent)]
    Events(#[from] EventsError),
    /// An event does not fit the state: the log and the engine disagree.
    #[error("{0}")]
    Apply(#[from] ea_policy::ApplyError),
    /// The image of an `enclave_start` record could not be read.
    #[error(transparent)]
    StartImage(#[from] StartImageError),
    /// An `enclave_start` record of an image the log does not admit at that point.
    #[error("enclave_start: {}", .0.invalid.problem)]
    ImageNotAdmitted(ea_policy::ApplyError),
}

/// Why the ledger refused a request before deciding it (nothing is recorded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The signature was checked against an older snapshot; in log order the key is gone,
    /// revoked, or the nonce was seen.
    #[error(transparent)]
    Request(#[from] SignedRequestError),
    /// The enclave's clock is outside what timestamps can express.
    #[error("the enclave's clock reads {0} ms, which is not a valid time")]
    Clock(u64),
}

/// What the replay cache keeps of a replayed record's request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RequestNonce<'a> {
    principal: Cow<'a, str>,
    nonce: Cow<'a, [u8]>,
    issued_at: u64,
}

impl<'a> RequestNonce<'a> {
    /// The nonce of the request a record written at `time` embeds, if the record is recent
    /// enough for the request to be replayed at `now_ms`; anything older fails the
    /// freshness check anyway.
    fn of(time: u64, request: Option<&'a [u8]>, now_ms: u64) -> Option<Self> {
        if time.saturating_add(2 * MAX_CLOCK_SKEW_MS) < now_ms {
            return None;
        }
        let request = request?;
        // Restarted just after a burst of requests, every record is recent, and decoding
        // each request in full costs about as much as replaying its events: read the
        // three fields in place when the request has the layout this crate writes.
        if let Some(fields) = signed::NonceFields::read(request) {
            return Some(RequestNonce {
                principal: Cow::Borrowed(fields.principal),
                nonce: Cow::Borrowed(fields.nonce),
                issued_at: fields.issued_at,
            });
        }
        let request = signed::decode_signed_request(request).ok()?;
        // The operation is not needed: skipping it saves building its value tree.
        let body = signed::decode_request_body::<serde::de::IgnoredAny>(&request).ok()?;
        Some(RequestNonce {
            principal: Cow::Owned(body.principal),
            nonce: Cow::Owned(body.nonce),
            issued_at: body.issued_at,
        })
    }
}

/// The state, the genesis settings, and the nonces seen within the freshness window.
#[derive(Debug)]
pub struct Ledger {
    state: PolicyState,
    settings: LedgerSettings,
    replay: signed::ReplayCache,
    directory_changed: bool,
    poisoned: Option<String>,
    /// Records in the log so far (the index the next one gets), as far as this ledger has
    /// seen or written them.
    records: u64,
    /// The record that admitted each admitted image.
    image_records: std::collections::BTreeMap<ea_policy::ImagePcrs, u64>,
    /// The `enclave_start` record of the image writing the log (its latest start).
    running_since: Option<u64>,
    /// Set when the admitted images or the running one changed.
    images_changed: bool,
    /// Every admission and retirement, in log order.
    image_history: Vec<ImageAdmission>,
}

fn timestamp(now_ms: u64) -> Result<Timestamp, Rejected> {
    i64::try_from(now_ms)
        .ok()
        .and_then(|ms| Timestamp::from_unix_millis(ms).ok())
        .ok_or(Rejected::Clock(now_ms))
}

impl Ledger {
    /// A new ledger from a genesis document, with the draft of record 0.
    pub fn from_genesis(
        genesis: &Genesis,
        replay_capacity: usize,
    ) -> Result<(Ledger, Draft), GenesisError> {
        let state = genesis.state()?;
        let draft = Draft {
            kind: RecordKind::Genesis,
            actor: PLATFORM_ACTOR.to_owned(),
            request: None,
            decision: Value::Null,
            changes: genesis.to_value()?,
        };
        // Images the genesis document names are admitted by record 0.
        let image_records = state.images().map(|i| (i.pcrs.clone(), 0)).collect();
        let image_history = state
            .images()
            .map(|i| ImageAdmission {
                pcrs: i.pcrs.clone(),
                admitted_by: 0,
                approval_id: None,
                retired_by: None,
            })
            .collect();
        let ledger = Ledger {
            state,
            settings: genesis.settings.clone(),
            replay: signed::ReplayCache::new(replay_capacity),
            directory_changed: true,
            poisoned: None,
            records: 1,
            image_records,
            running_since: None,
            images_changed: true,
            image_history,
        };
        Ok((ledger, draft))
    }

    /// The ledger that record 0 (genesis) starts.
    pub fn from_genesis_record(
        record: &Record,
        replay_capacity: usize,
    ) -> Result<Ledger, ReplayError> {
        let genesis = Genesis::from_value(&record.changes)?;
        Ok(Ledger::from_genesis(&genesis, replay_capacity)?.0)
    }

    /// The policy state.
    pub fn state(&self) -> &PolicyState {
        &self.state
    }

    /// The witness set the log requires, as replayed: the genesis document's
    /// `policy.witnesses`, then the last approved `setWitnesses`. `None` for none.
    pub fn witnesses(&self) -> Option<&ea_policy::WitnessSet> {
        self.state.witnesses()
    }

    /// The genesis settings.
    pub fn settings(&self) -> &LedgerSettings {
        &self.settings
    }

    /// Whether principals or keys changed since the last call (the enclave then publishes a
    /// new directory snapshot for signature checks).
    pub fn take_directory_changed(&mut self) -> bool {
        std::mem::take(&mut self.directory_changed)
    }

    /// Set when an event the engine produced did not apply: the in-memory state may be
    /// half-changed and must be rebuilt from the log before anything else is decided.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    /// Nonces held by the replay cache.
    pub fn replay_cache_len(&self) -> usize {
        self.replay.len()
    }

    /// Replays one record after genesis: applies its events, and remembers the nonce of its
    /// request when it could still be replayed at `now_ms`.
    pub fn replay(&mut self, record: &Record, now_ms: u64) -> Result<(), ReplayError> {
        self.apply_record(record)?;
        self.remember_request(record.time, record.request.as_deref(), now_ms);
        Ok(())
    }

    /// [`Ledger::replay`] for a record located by [`RecordFields::parse`] rather than
    /// decoded: how the enclave replays a long log quickly.
    pub fn replay_fields(
        &mut self,
        fields: &RecordFields<'_>,
        now_ms: u64,
    ) -> Result<(), ReplayError> {
        self.apply_fields(fields)?;
        self.remember_request(fields.time, fields.request, now_ms);
        Ok(())
    }

    /// Applies the events of a record located by [`RecordFields::parse`], nothing else.
    fn apply_fields(&mut self, fields: &RecordFields<'_>) -> Result<(), ReplayError> {
        if fields.kind == RecordKind::EnclaveStart {
            return self.start(fields.seq, fields.time, fields.attestation);
        }
        let events = events_of_fields(fields)?;
        self.apply_at(fields.seq, fields.kind, &events)
    }

    /// Applies one record's events, nothing else: how an auditor follows the state (and the
    /// principals' keys, and the admitted images) through a log. An `enclave_start` record
    /// is refused unless its image is admitted at this point of the log.
    pub fn apply_record(&mut self, record: &Record) -> Result<(), ReplayError> {
        if record.kind == RecordKind::EnclaveStart {
            return self.start(record.seq, record.time, record.attestation.as_deref());
        }
        let events = events_of(record)?;
        self.apply_at(record.seq, record.kind, &events)
    }

    /// Applies the events of record `index`.
    fn apply_at(
        &mut self,
        index: u64,
        kind: RecordKind,
        events: &[Event],
    ) -> Result<(), ReplayError> {
        for event in events {
            self.apply(event)?;
        }
        // Images change only where an approved change is applied: other records (nearly
        // all of a long log) cost no second look at their events.
        if kind == RecordKind::ApprovalApplied {
            self.note_images(index, events);
        }
        self.records = index.saturating_add(1);
        Ok(())
    }

    /// The `enclave_start` record `index`, written at `time`, carrying `document`: its image
    /// must be admitted now (the first start admits its own, unless the genesis named the
    /// images), and becomes the image writing the log.
    fn start(&mut self, index: u64, time: u64, document: Option<&[u8]>) -> Result<(), ReplayError> {
        let image = image_of_document_unverified(document.ok_or(StartImageError::NoDocument)?)?;
        let events = start_events(&self.state, &image, time);
        // Atomic without a copy: the genesis image's admission (the first start only) always
        // applies, and then its start does; otherwise the start is the only event.
        for event in &events {
            self.state
                .apply(event)
                .map_err(ReplayError::ImageNotAdmitted)?;
        }
        self.note_images(index, &events);
        self.running_since = Some(index);
        self.records = index.saturating_add(1);
        Ok(())
    }

    /// Remembers which record admitted the images `events` admit.
    fn note_images(&mut self, index: u64, events: &[Event]) {
        for event in events {
            match event {
                Event::ImageAdmitted(image) => {
                    self.image_records.insert(image.pcrs.clone(), index);
                    self.image_history.push(ImageAdmission {
                        pcrs: image.pcrs.clone(),
                        admitted_by: index,
                        approval_id: image.approval_id.clone(),
                        retired_by: None,
                    });
                    self.images_changed = true;
                }
                Event::ImageRetired { pcrs, .. } => {
                    self.image_records.remove(pcrs);
                    if let Some(admission) = self
                        .image_history
                        .iter_mut()
                        .rev()
                        .find(|a| &a.pcrs == pcrs && a.retired_by.is_none())
                    {
                        admission.retired_by = Some(index);
                    }
                    self.images_changed = true;
                }
                Event::ImageStarted { .. } => self.images_changed = true,
                // The description shows the witness set beside the images.
                Event::WitnessesSet(_) => self.images_changed = true,
                _ => {}
            }
        }
    }

    /// Whether the admitted images, the running one or the witness set changed since the
    /// last call (the enclave then publishes them again in its description).
    pub fn take_images_changed(&mut self) -> bool {
        std::mem::take(&mut self.images_changed)
    }

    /// Checks that an enclave of `image` may start on this log now (the test the next
    /// `enclave_start` record must pass), without changing anything.
    pub fn check_start(&self, image: &ea_policy::ImagePcrs) -> Result<(), ReplayError> {
        if start_events(&self.state, image, 0).len() > 1 {
            // The log's first start admits its own image.
            return Ok(());
        }
        self.state.check_start(image).map_err(|invalid| {
            ReplayError::ImageNotAdmitted(ea_policy::ApplyError {
                event: "imageStarted".to_owned(),
                invalid,
            })
        })
    }

    /// Every admission and retirement of an image, in log order.
    pub fn image_history(&self) -> &[ImageAdmission] {
        &self.image_history
    }

    /// The index the next record gets, as far as this ledger has seen or written records.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The admitted images, with the records that admitted them and the one running.
    pub fn images(&self) -> Vec<ImageView> {
        let running = self.state.running_image();
        self.state
            .images()
            .map(|image| {
                let runs = running.is_some_and(|r| image.pcrs.matches(r));
                ImageView::of(
                    image,
                    self.image_records.get(&image.pcrs).copied(),
                    self.running_since.filter(|_| runs),
                )
            })
            .collect()
    }

    /// Remembers a replayed request's nonce.
    fn remember_nonce(&mut self, nonce: &RequestNonce, now_ms: u64) {
        // Stale nonces are refused by freshness; a full cache only costs protection the
        // freshness window already gives for these.
        let _ =
            self.replay
                .check_and_insert(&nonce.principal, &nonce.nonce, nonce.issued_at, now_ms);
    }

    /// Remembers the nonce of a request written at `time`, when it could still be replayed
    /// at `now_ms`.
    fn remember_request(&mut self, time: u64, request: Option<&[u8]>, now_ms: u64) {
        if let Some(nonce) = RequestNonce::of(time, request, now_ms) {
            self.remember_nonce(&nonce, now_ms);
        }
    }

    fn apply(&mut self, event: &Event) -> Result<(), ea_policy::ApplyError> {
        if matches!(
            event,
            Event::PrincipalPut(_) | Event::PrincipalDeleted { .. }
        ) {
            self.directory_changed = true;
        }
        self.state.apply(event)
    }

    /// Applies events the engine just produced against this state. They fit by
    /// construction; if one does not, the ledger is poisoned (see [`Ledger::poisoned`]).
    fn apply_new<'a>(&mut self, events: impl IntoIterator<Item = &'a Event>) -> bool {
        for event in events {
            if let Err(error) = self.apply(event) {
                self.poisoned = Some(format!(
                    "an event the engine produced did not apply: {error}"
                ));
                return false;
            }
        }
        true
    }

    /// Decides an authenticated request at `now_ms`, applies its effects, and returns its
    /// answer and record drafts. First, in log order: the key must still be the principal's
    /// and unrevoked, and the nonce new within the freshness window.
    pub fn execute(&mut self, request: &Authenticated, now_ms: u64) -> Result<Execution, Rejected> {
        let at = timestamp(now_ms)?;
        let principal = request.principal().as_str();
        match key_status(&self.state, principal, request.key_id()) {
            KeyStatus::Active(key) if &key == request.key() => {}
            KeyStatus::Revoked => {
                return Err(SignedRequestError::RevokedKey {
                    principal: principal.to_owned(),
                    key_id: request.key_id().to_owned(),
                }
                .into())
            }
            _ => {
                return Err(SignedRequestError::UnknownKey {
                    principal: principal.to_owned(),
                    key_id: request.key_id().to_owned(),
                }
                .into())
            }
        }
        self.replay
            .check_and_insert(principal, request.nonce(), request.issued_at(), now_ms)?;
        let actor = request.principal().clone();
        let execution = match request.operation() {
            Operation::Submit {
                command,
                justification,
            } => self.submit(request, &actor, command, justification.as_deref(), at),
            Operation::Check {
                principal,
                operation,
                scope,
                data_action,
            } => self.check(
                request,
                &actor,
                principal.as_ref(),
                operation,
                scope,
                *data_action,
                at,
            ),
            Operation::Flow {
                source,
                destination,
                port,
                protocol,
            } => self.flow(request, &actor, source, destination, *port, *protocol, at),
            Operation::Read(Query::Images) => Execution {
                drafts: Vec::new(),
                answer: Answer::Read {
                    result: Box::new(ReadResult::Images(self.images())),
                },
            },
            Operation::Read(query) => Execution {
                drafts: Vec::new(),
                answer: crate::query::read(&self.state, &actor, query, at),
            },
        };
        self.records = self.records.saturating_add(execution.drafts.len() as u64);
        Ok(execution)
    }

    fn submit(
        &mut self,
        request: &Authenticated,
        actor: &PrincipalId,
        command: &Command,
        justification: Option<&str>,
        at: Timestamp,
    ) -> Execution {
        // The engine draws no random numbers: an approval is named after the request's
        // nonce, unique within the freshness window by the replay check.
        let approval_id = match ApprovalId::new(&hex::encode(request.nonce())) {
            Ok(id) => id,
            Err(e) => return internal(format!("approval id: {e}")),
        };
        let submission = Submission {
            justification,
            approval_id,
            max_pending_per_requester: self.settings.max_pending_approvals_per_requester,
        };
        let requested = |kind, decision, changes| Draft {
            kind,
            actor: actor.to_string(),
            request: Some(request.bytes().to_vec()),
            decision,
            changes,
        };
        match self.state.submit(actor, command, &submission, at) {
            Err(refusal) => {
                let answer = denied(refusal);
                let decision = match &answer {
                    Answer::Denied { code, refusal, .. } => map(vec![
                        ("outcome", text("denied")),
                        ("command", text(command.name())),
                        ("code", text(code)),
                        ("refusal", value_of(refusal)),
                    ]),
                    _ => Value::Null,
                };
                Execution {
                    drafts: vec![requested(
                        RecordKind::Denied,
                        decision,
                        Value::Array(Vec::new()),
                    )],
                    answer,
                }
            }
            Ok(Outcome::Applied { events }) => {
                if !self.apply_new(&events) {
                    return internal_poisoned();
                }
                let decision = map(vec![
                    ("outcome", text("applied")),
                    ("command", text(command.name())),
                ]);
                Execution {
                    drafts: vec![requested(
                        RecordKind::StateChange,
                        decision,
                        events_value(&events),
                    )],
                    answer: Answer::Applied {
                        command: command.name().to_owned(),
                        events,
                    },
                }
            }
            Ok(Outcome::Pending {
                approval_id,
                events,
            }) => {
                if !self.apply_new(&events) {
                    return internal_poisoned();
                }
                let Some(approval) = self.state.approval(&approval_id).cloned() else {
                    return internal_poisoned();
                };
                let decision = map(vec![
                    ("outcome", text("pending")),
                    ("command", text(command.name())),
                    ("approvalId", text(approval_id.as_str())),
                ]);
                Execution {
                    drafts: vec![requested(
                        RecordKind::ApprovalSubmitted,
                        decision,
                        events_value(&events),
                    )],
                    answer: Answer::Pending {
                        approval: Box::new(approval),
                    },
                }
            }
            Ok(Outcome::Voted {
                approval_id,
                events,
                completion,
            }) => {
                if !self.apply_new(&events) {
                    return internal_poisoned();
                }
                let verdict = match command {
                    Command::Reject { .. } => "reject",
                    _ => "approve",
                };
                let mut drafts = vec![requested(
                    RecordKind::ApprovalDecision,
                    map(vec![
                        ("outcome", text("voted")),
                        ("approvalId", text(approval_id.as_str())),
                        ("verdict", text(verdict)),
                    ]),
                    events_value(&events),
                )];
                let mut applied = Vec::new();
                if let Some(completion) = completion {
                    if !self.apply_new(&completion.events) {
                        return internal_poisoned();
                    }
                    // The approval_applied record follows this vote's record.
                    self.note_images(self.records.saturating_add(1), &completion.events);
                    let mut decision = vec![
                        ("outcome", text(completion.status.as_str())),
                        ("approvalId", text(approval_id.as_str())),
                    ];
                    if let Some(reason) = &completion.reason {
                        decision.push(("reason", text(reason)));
                    }
                    // The engine applies an approved change: the approver's request caused
                    // it, the requester asked for it, and the record says both.
                    drafts.push(Draft {
                        kind: RecordKind::ApprovalApplied,
                        actor: PLATFORM_ACTOR.to_owned(),
                        request: None,
                        decision: map(decision),
                        changes: events_value(&completion.events),
                    });
                    applied = completion.events;
                }
                let Some(approval) = self.state.approval(&approval_id).cloned() else {
                    return internal_poisoned();
                };
                Execution {
                    drafts,
                    answer: Answer::Voted {
                        approval: Box::new(approval),
                        events: applied,
                    },
                }
            }
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one argument per field of the check"
    )]
    fn check(
        &mut self,
        request: &Authenticated,
        actor: &PrincipalId,
        subject: Option<&PrincipalId>,
        operation: &str,
        scope: &ea_policy::Scope,
        data_action: bool,
        at: Timestamp,
    ) -> Execution {
        let subject = subject.unwrap_or(actor);
        if subject != actor {
            let read = PolicyOperation::parse("Microsoft.Authorization/roleAssignments/read");
            let may = read.is_ok_and(|read| self.state.check(actor, &read, scope, at).allowed);
            if !may {
                return answer_only(Answer::error(
                    "not_authorized",
                    format!(
                        "{actor} may not ask about {subject}'s permissions at {scope} \
                         (it needs Microsoft.Authorization/roleAssignments/read there)"
                    ),
                ));
            }
        }
        let parsed = if data_action {
            PolicyOperation::new(operation, OperationKind::DataAction)
        } else {
            PolicyOperation::parse(operation)
        };
        let op = match parsed {
            Ok(op) => op,
            Err(e) => return answer_only(Answer::error("invalid_operation", e.to_string())),
        };
        let decision = self.state.check(subject, &op, scope, at);
        let drafts = self.decision_draft(request, actor, || {
            map(vec![
                ("outcome", text("decision")),
                ("principal", text(subject.as_str())),
                ("operation", text(operation)),
                ("scope", text(&scope.to_string())),
                ("decision", value_of(&decision)),
            ])
        });
        Execution {
            drafts,
            answer: Answer::Decision {
                principal: subject.clone(),
                operation: operation.to_owned(),
                scope: scope.clone(),
                decision: Box::new(decision),
            },
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one argument per field of the question"
    )]
    fn flow(
        &mut self,
        request: &Authenticated,
        actor: &PrincipalId,
        source: &ea_policy::Scope,
        destination: &str,
        port: u16,
        protocol: ea_policy::Protocol,
        at: Timestamp,
    ) -> Execution {
        let read = PolicyOperation::parse("Microsoft.Mission/virtualEnclaves/read");
        if !read.is_ok_and(|read| self.state.check(actor, &read, source, at).allowed) {
            return answer_only(Answer::error(
                "not_authorized",
                format!("{actor} may not read {source}, so may not ask about its traffic"),
            ));
        }
        let address: ea_policy::Address = match destination.parse() {
            Ok(address) => address,
            Err(e) => return answer_only(Answer::error("invalid_destination", e)),
        };
        let decision = self.state.flow(source, &address, port, protocol);
        let drafts = self.decision_draft(request, actor, || {
            map(vec![
                ("outcome", text("flow")),
                ("source", text(&source.to_string())),
                ("destination", text(destination)),
                ("port", Value::Integer(port.into())),
                ("protocol", value_of(&protocol)),
                ("decision", value_of(&decision)),
            ])
        });
        Execution {
            drafts,
            answer: Answer::Flow {
                source: source.clone(),
                destination: destination.to_owned(),
                port,
                decision: Box::new(decision),
            },
        }
    }

    fn decision_draft(
        &self,
        request: &Authenticated,
        actor: &PrincipalId,
        decision: impl FnOnce() -> Value,
    ) -> Vec<Draft> {
        if !self.settings.decision_logging {
            return Vec::new();
        }
        vec![Draft {
            kind: RecordKind::Decision,
            actor: actor.to_string(),
            request: Some(request.bytes().to_vec()),
            decision: decision(),
            changes: Value::Array(Vec::new()),
        }]
    }

    /// The automatic transitions due at `now_ms` (approvals expiring, maintenance windows
    /// and activations ending), applied, one record each.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Draft> {
        let Ok(at) = timestamp(now_ms) else {
            return Vec::new();
        };
        let due = self.state.due_events(at);
        let mut drafts = Vec::new();
        for transition in transitions(due) {
            if !self.apply_new(&transition) {
                break;
            }
            let name = transition.first().map_or("transition", Event::name);
            drafts.push(Draft {
                kind: RecordKind::Automatic,
                actor: PLATFORM_ACTOR.to_owned(),
                request: None,
                decision: map(vec![
                    ("outcome", text("automatic")),
                    ("transition", text(name)),
                ]),
                changes: events_value(&transition),
            });
        }
        self.records = self.records.saturating_add(drafts.len() as u64);
        drafts
    }

    /// When the next automatic transition is due, unix ms.
    pub fn next_due(&self) -> Option<u64> {
        self.state
            .next_due()
            .map(|t| u64::try_from(t.unix_millis()).unwrap_or(0))
    }
}

/// Groups due events into transitions: each starts with the event that is due (an
/// approval expiring, a maintenance window or an activation ending); the connection
/// placeholder events that follow belong to it.
fn transitions(due: Vec<Event>) -> Vec<Vec<Event>> {
    let mut groups: Vec<Vec<Event>> = Vec::new();
    for event in due {
        let follows = matches!(
            event,
            Event::ConnectionDeleted { .. } | Event::ConnectionStateChanged { .. }
        );
        match groups.last_mut() {
            Some(group) if follows => group.push(event),
            _ => groups.push(vec![event]),
        }
    }
    groups
}

fn denied(refusal: Refusal) -> Answer {
    Answer::Denied {
        code: refusal.code().to_owned(),
        message: refusal.to_string(),
        refusal: Box::new(refusal),
    }
}

fn answer_only(answer: Answer) -> Execution {
    Execution {
        drafts: Vec::new(),
        answer,
    }
}

fn internal(message: String) -> Execution {
    answer_only(Answer::error("internal", message))
}

fn internal_poisoned() -> Execution {
    internal(
        "the enclave found its state inconsistent and is rebuilding it from the log; retry".into(),
    )
}
