//! How ledger outcomes become audit records, and how records give their events back.
//!
//! `changes` holds the events that a replay applies (an array), except in the genesis record
//! (the genesis document) and `enclave_start` records (a map describing the start).
//! `decision` says what was decided and why, for auditors; replay never reads it.

use ciborium::Value;
use ea_audit::record::{Record, RecordFields, RecordKind};
use ea_policy::Event;

/// The actor of records nobody asked for: genesis, enclave starts, automatic transitions
/// and the application of an approved change.
pub const PLATFORM_ACTOR: &str = "platform";

/// A record before the log gives it its index; its time is the batch's.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// What it is about.
    pub kind: RecordKind,
    /// Who caused it.
    pub actor: String,
    /// The verbatim signed request, if a request caused it.
    pub request: Option<Vec<u8>>,
    /// What was decided and why.
    pub decision: Value,
    /// What changed.
    pub changes: Value,
}

impl Draft {
    /// The record, at `time`, with its index still 0 (the log sets it) and no attestation
    /// (the enclave adds one where the kind requires it).
    pub fn into_record(self, time: u64) -> Record {
        Record {
            seq: 0,
            time,
            kind: self.kind,
            actor: self.actor,
            request: self.request,
            decision: self.decision,
            changes: self.changes,
            attestation: None,
        }
    }
}

/// Why a record's events could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the changes of this {kind} record are not a list of events: {reason}")]
pub struct EventsError {
    /// The record's kind.
    pub kind: RecordKind,
    /// What did not decode.
    pub reason: String,
}

/// Whether records of this kind carry events that change the state.
pub fn carries_events(kind: RecordKind) -> bool {
    matches!(
        kind,
        RecordKind::StateChange
            | RecordKind::ApprovalSubmitted
            | RecordKind::ApprovalDecision
            | RecordKind::ApprovalApplied
            | RecordKind::Automatic
    )
}

/// The events a record carries (none for kinds that change nothing).
pub fn events_of(record: &Record) -> Result<Vec<Event>, EventsError> {
    if !carries_events(record.kind) {
        return Ok(Vec::new());
    }
    record.changes.deserialized().map_err(|e| EventsError {
        kind: record.kind,
        reason: e.to_string(),
    })
}

/// The events of a record located by [`RecordFields::parse`], decoded from the bytes of its
/// `changes` straight into their types: what [`events_of`] gives, without the intermediate
/// CBOR value tree.
pub fn events_of_fields(fields: &RecordFields<'_>) -> Result<Vec<Event>, EventsError> {
    if !carries_events(fields.kind) {
        return Ok(Vec::new());
    }
    let mut changes = fields.changes;
    ciborium::from_reader(&mut changes).map_err(|e| EventsError {
        kind: fields.kind,
        reason: e.to_string(),
    })
}

/// Events as the CBOR value of `changes`.
pub(crate) fn events_value(events: &[Event]) -> Value {
    // INVARIANT: events are plain serde data (strings, integers, maps, arrays); the value
    // serializer cannot refuse them. An empty array stands in if it ever did.
    Value::serialized(events).unwrap_or(Value::Array(Vec::new()))
}

/// Any serializable value as CBOR, or null if it cannot be encoded.
pub(crate) fn value_of<T: serde::Serialize>(value: &T) -> Value {
    Value::serialized(value).unwrap_or(Value::Null)
}

/// A CBOR map with text keys.
pub(crate) fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::Text(k.to_owned()), v))
            .collect(),
    )
}

/// A text value.
pub(crate) fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}
