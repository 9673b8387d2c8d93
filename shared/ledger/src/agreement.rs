//! Whether an answer says what its records say.
//!
//! A receipt proves that a record is in the log, and the record proves what the enclave
//! decided. The answer's JSON, though, travels through the parent as it is: a parent could
//! keep a genuine record and receipt and rewrite the answer around them, say a refusal into
//! `applied`, or a check's deny into an allow. So a client that verified the receipts also
//! checks that the answer is the one the records state, field by field as the ledger wrote
//! them (`Ledger::execute`), before it believes it.

use ciborium::Value;
use ea_audit::record::{Record, RecordKind};

use crate::answer::Answer;
use crate::records::{events_value, map, text, value_of};

/// An answer that the records do not bear out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the answer does not match {}: {what}", match index { Some(i) => format!("record {i}"), None => "its records".to_owned() })]
pub struct AnswerMismatch {
    /// The record that says otherwise, if the reply has records.
    pub index: Option<u64>,
    /// What differs.
    pub what: String,
}

/// Checks that `answer` is what `records` (the reply's records, in order, already verified
/// against the log) say was decided. An answer that writes no record (reads, errors, checks
/// with decision logging off) has nothing to be checked against and passes when no record
/// came with it.
pub fn check_answer_against_records(
    answer: &Answer,
    records: &[Record],
) -> Result<(), AnswerMismatch> {
    let Some(first) = records.first() else {
        return match answer {
            Answer::Applied { .. }
            | Answer::Pending { .. }
            | Answer::Voted { .. }
            | Answer::Denied { .. } => Err(AnswerMismatch {
                index: None,
                what: "the answer says it was recorded, but no record came with it".into(),
            }),
            _ => Ok(()),
        };
    };
    let mismatch = |record: &Record, what: String| AnswerMismatch {
        index: Some(record.seq),
        what,
    };
    let expect_kind = |record: &Record, kind: RecordKind| {
        if record.kind == kind {
            Ok(())
        } else {
            Err(mismatch(
                record,
                format!(
                    "the answer implies a record of kind `{kind}`, the log has `{}`",
                    record.kind
                ),
            ))
        }
    };
    let expect_field = |record: &Record, field: &str, expected: &Value| {
        if lookup(&record.decision, field).is_some_and(|found| same(found, expected)) {
            Ok(())
        } else {
            Err(mismatch(
                record,
                format!("its decision's `{field}` is not the answer's"),
            ))
        }
    };
    let expect_changes = |record: &Record, expected: &Value| {
        if same(&record.changes, expected) {
            Ok(())
        } else {
            Err(mismatch(
                record,
                "its changes are not the answer's events".into(),
            ))
        }
    };
    let expect_count = |count: usize| {
        if records.len() == count {
            Ok(())
        } else {
            Err(mismatch(
                first,
                format!(
                    "the answer comes with {} records where it implies {count}",
                    records.len()
                ),
            ))
        }
    };
    match answer {
        Answer::Applied { command, events } => {
            expect_count(1)?;
            expect_kind(first, RecordKind::StateChange)?;
            expect_field(first, "outcome", &text("applied"))?;
            expect_field(first, "command", &text(command))?;
            expect_changes(first, &events_value(events))
        }
        Answer::Denied { code, refusal, .. } => {
            expect_count(1)?;
            expect_kind(first, RecordKind::Denied)?;
            expect_field(first, "outcome", &text("denied"))?;
            expect_field(first, "code", &text(code))?;
            expect_field(first, "refusal", &value_of(refusal))
        }
        Answer::Pending { approval } => {
            expect_count(1)?;
            expect_kind(first, RecordKind::ApprovalSubmitted)?;
            expect_field(first, "outcome", &text("pending"))?;
            expect_field(first, "approvalId", &text(approval.id.as_str()))
        }
        Answer::Voted { approval, events } => {
            expect_kind(first, RecordKind::ApprovalDecision)?;
            expect_field(first, "outcome", &text("voted"))?;
            expect_field(first, "approvalId", &text(approval.id.as_str()))?;
            match records.get(1) {
                // The vote completed the approval: the second record says how, and what
                // it changed.
                Some(completion) => {
                    expect_count(2)?;
                    expect_kind(completion, RecordKind::ApprovalApplied)?;
                    expect_field(completion, "approvalId", &text(approval.id.as_str()))?;
                    expect_field(
                        completion,
                        "outcome",
                        &text(approval.approval_status.as_str()),
                    )?;
                    expect_changes(completion, &events_value(events))
                }
                None if events.is_empty() => Ok(()),
                None => Err(mismatch(
                    first,
                    "the answer reports changes that no record carries".into(),
                )),
            }
        }
        Answer::Decision {
            principal,
            operation,
            scope,
            decision,
        } => {
            expect_count(1)?;
            expect_kind(first, RecordKind::Decision)?;
            let expected = map(vec![
                ("outcome", text("decision")),
                ("principal", text(principal.as_str())),
                ("operation", text(operation)),
                ("scope", text(&scope.to_string())),
                ("decision", value_of(decision)),
            ]);
            if same(&first.decision, &expected) {
                Ok(())
            } else {
                Err(mismatch(first, "its decision is not the answer's".into()))
            }
        }
        Answer::Flow { decision, .. } => {
            expect_count(1)?;
            expect_kind(first, RecordKind::Decision)?;
            expect_field(first, "outcome", &text("flow"))?;
            expect_field(first, "decision", &value_of(decision))
        }
        Answer::Read { .. } | Answer::Error { .. } => Err(mismatch(
            first,
            "an answer of this kind writes no record, yet one came with it".into(),
        )),
    }
}

/// The value under the text key `key` of a CBOR map.
fn lookup<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| matches!(k, Value::Text(t) if t == key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// Equality of CBOR values with maps compared as sets of entries: a record's maps are in
/// canonical key order, values built from an answer are in field order.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter().all(|(key, value)| {
                    y.iter()
                        .find(|(other, _)| same(key, other))
                        .is_some_and(|(_, other)| same(value, other))
                })
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Tag(t, x), Value::Tag(u, y)) => t == u && same(x, y),
        _ => a == b,
    }
}
