//! Audit records from arbitrary bytes: decoding never panics, whatever decodes is the
//! canonical encoding of what it decodes to, and the field parser that enclave recovery uses
//! reads every such record exactly as the full decoder does (and never panics either).

use ea_audit::record::{record_hash_from, record_hash_of, Record, RecordFields};

/// Runs one input.
pub fn run(data: &[u8]) {
    let fields = RecordFields::parse(data);
    if let Ok(fields) = &fields {
        // Events decode straight from the located bytes without panicking.
        let _ = ea_ledger::events_of_fields(fields);
    }
    if let Ok(record) = Record::from_bytes(data) {
        let again = record.to_bytes().expect("a decoded record encodes");
        assert_eq!(again, data, "decode then encode changed the bytes");
        assert_eq!(
            record_hash_of(data, &record),
            record.record_hash().expect("a decoded record encodes")
        );
        let fields = fields.expect("the field parser reads every canonical record");
        assert_eq!(fields.seq, record.seq);
        assert_eq!(fields.time, record.time);
        assert_eq!(fields.kind, record.kind);
        assert_eq!(fields.actor, record.actor);
        assert_eq!(fields.request, record.request.as_deref());
        assert_eq!(fields.attestation, record.attestation.as_deref());
        assert_eq!(
            record_hash_from(data, fields.attestation),
            record_hash_of(data, &record)
        );
        assert_eq!(
            ea_ledger::events_of_fields(&fields).ok(),
            ea_ledger::events_of(&record).ok(),
            "events read from the bytes differ from events read from the value"
        );
    }
}
