//! Helpers shared by the integration tests: the real AWS documents of `testdata/`.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers; each test file uses a subset"
)]

use base64::Engine as _;

pub const PRODUCTION: &str = "aws-nitro-attestation-2022-10-13.cbor";
pub const DEBUG_2022: &str = "aws-nitro-attestation-debug-2022-10-12.cbor";
pub const DEBUG_2023: &str = "aws-nitro-attestation-debug-2023-09-18.b64";
pub const ALL: [&str; 3] = [PRODUCTION, DEBUG_2022, DEBUG_2023];

/// The raw COSE_Sign1 bytes of a test document (base64 files decoded).
pub fn document(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).expect("test document");
    if name.ends_with(".b64") {
        let text = String::from_utf8(bytes).unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .unwrap()
    } else {
        bytes
    }
}

/// PCRs of the production document, from testdata/README.md.
pub fn production_pcrs() -> Vec<(u16, Vec<u8>)> {
    [
        (0, "f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b"),
        (1, "bcdf05fefccaa8e55bf2c8d6dee9e79bbff31e34bf28a99aa19e6b29c37ee80b214a414b7607236edf26fcb78654e63f"),
        (2, "d8f114da658de5481f8d9ec73907feb553560787522f705c92d7d96beed8e15e2aa611984e098c576832c292e8dc469a"),
        (3, "4a9329d69c836267b18abbf9f4a38889124490453419e426818626348d21f989dc930b1562682a9082887454e53425aa"),
        (4, "1f442c86d494a88185642086d904ed89f62fb66ee9997d7b1a4f040faab3bba4244c768a584e5778195b3afc715637c6"),
        (8, "8790eb3cce6c83d07e84b126dc61ca923333d6f66615c4a79157de48c5ab2418bdc60746ea7b7afbff03a1c6210201cb"),
    ]
    .into_iter()
    .map(|(i, h)| (i, hex::decode(h).unwrap()))
    .collect()
}
