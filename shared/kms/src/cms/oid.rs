//! The object identifiers of KMS's `CiphertextForRecipient`, as rasn values (for comparing
//! what the parser read) and as dotted text (for error messages).

use rasn::types::Oid;

/// `id-envelopedData`, RFC 5652 §6.1.
pub const ENVELOPED_DATA: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 7, 3]);
/// `id-data`, RFC 5652 §4.
pub const DATA: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 7, 1]);
/// `id-RSAES-OAEP`, RFC 8017 appendix A.2.1.
pub const RSAES_OAEP: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 1, 7]);
/// `id-mgf1`, RFC 8017 appendix B.2.1.
pub const MGF1: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 1, 8]);
/// `id-pSpecified`, RFC 8017 appendix A.2.1.
pub const P_SPECIFIED: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 1, 9]);
/// `id-sha256`, RFC 5754.
pub const SHA256: &Oid = Oid::const_new(&[2, 16, 840, 1, 101, 3, 4, 2, 1]);
/// `id-aes256-CBC`, RFC 3565.
pub const AES256_CBC: &Oid = Oid::const_new(&[2, 16, 840, 1, 101, 3, 4, 1, 42]);

/// Dotted text of an OID, e.g. `1.2.840.113549.1.7.3`.
pub fn dotted(oid: &Oid) -> String {
    oid.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}
