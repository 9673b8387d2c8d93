use super::AttestationDocument;
use crate::cbor::Writer;

/// Encodes a payload exactly as the NSM does: a definite map of all nine keys in the NSM's
/// order, shortest-form heads, absent optional fields as CBOR null. Re-encoding a parsed AWS
/// payload gives back its bytes (see the golden test).
pub(crate) fn encode_payload(doc: &AttestationDocument) -> Vec<u8> {
    let mut w = Writer::new();
    w.map(9);
    w.text("module_id");
    w.text(&doc.module_id);
    w.text("digest");
    w.text(doc.digest.as_str());
    w.text("timestamp");
    w.unsigned(doc.timestamp);
    w.text("pcrs");
    w.map(doc.pcrs.len());
    for (index, value) in &doc.pcrs {
        w.unsigned(u64::from(*index));
        w.bytes(value);
    }
    w.text("certificate");
    w.bytes(&doc.certificate);
    w.text("cabundle");
    w.array(doc.cabundle.len());
    for cert in &doc.cabundle {
        w.bytes(cert);
    }
    w.text("public_key");
    w.optional_bytes(doc.public_key.as_deref());
    w.text("user_data");
    w.optional_bytes(doc.user_data.as_deref());
    w.text("nonce");
    w.optional_bytes(doc.nonce.as_deref());
    w.into_bytes()
}
