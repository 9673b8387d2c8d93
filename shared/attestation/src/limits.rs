//! Size limits of attestation documents, shared by the parser, the verifier and the mock NSM.
//!
//! The values follow the AWS attestation process document (payload at most 16 KiB,
//! certificates at most 1024 bytes, `user_data` and `nonce` at most 512 bytes, `public_key` at
//! most 1024 bytes, 1 to 32 PCRs). Where AWS sets no bound (module id, CA bundle length), ours
//! is far above what the NSM emits and far below what could hurt.

/// Largest accepted COSE_Sign1 document: a full payload plus the COSE envelope.
pub const MAX_DOCUMENT_LEN: usize = MAX_PAYLOAD_LEN + 256;
/// Largest accepted payload (the CBOR map inside COSE_Sign1).
pub const MAX_PAYLOAD_LEN: usize = 16 * 1024;
/// Largest accepted `module_id`, in bytes.
pub const MAX_MODULE_ID_LEN: usize = 256;
/// Largest accepted DER certificate, in the document and in `cabundle`.
pub const MAX_CERTIFICATE_LEN: usize = 1024;
/// Most certificates accepted in `cabundle` (the NSM sends 4: root and 3 intermediates).
pub const MAX_CABUNDLE_LEN: usize = 8;
/// Largest accepted `public_key`.
pub const MAX_PUBLIC_KEY_LEN: usize = 1024;
/// Largest accepted `user_data`.
pub const MAX_USER_DATA_LEN: usize = 512;
/// Largest accepted `nonce`.
pub const MAX_NONCE_LEN: usize = 512;
/// Number of PCRs of the NSM; indexes are `0..PCR_COUNT`.
pub const PCR_COUNT: u16 = 32;
/// Length of a SHA-384 PCR value.
pub const PCR_LEN: usize = 48;
/// Length of an ES384 COSE signature (`r || s`, 48 bytes each).
pub const ES384_SIGNATURE_LEN: usize = 96;
/// Length of the placeholder signature of QEMU's unsigned documents (64 zero bytes: QEMU's
/// `nitro-enclave` NSM signs nothing). Accepted only in the insecure QEMU mode.
pub const QEMU_UNSIGNED_SIGNATURE_LEN: usize = 64;
/// Length of the placeholder `certificate` and single `cabundle` entry of QEMU's unsigned
/// documents (64 zero bytes each).
pub const QEMU_PLACEHOLDER_CERTIFICATE_LEN: usize = 64;
