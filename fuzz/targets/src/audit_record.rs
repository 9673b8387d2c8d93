//! Audit records from arbitrary bytes: decoding never panics, and whatever decodes is the
//! canonical encoding of what it decodes to.

use ea_audit::record::{record_hash_of, Record};

/// Runs one input.
pub fn run(data: &[u8]) {
    if let Ok(record) = Record::from_bytes(data) {
        let again = record.to_bytes().expect("a decoded record encodes");
        assert_eq!(again, data, "decode then encode changed the bytes");
        assert_eq!(
            record_hash_of(data, &record),
            record.record_hash().expect("a decoded record encodes")
        );
    }
}
