//! Signed requests from arbitrary bytes: authenticating never panics, and an envelope is
//! accepted only when the directory's key signed exactly its body.
//!
//! Random bytes never carry a valid signature, which would keep the fuzzer at the signature
//! check. So when the first input byte is odd, the rest is taken as a request body and signed
//! with the directory's key; the body, freshness and operation checks behind the signature
//! are then reachable.

use std::sync::OnceLock;

use ea_ledger::{Directory, Operation};
use ea_policy::PolicyState;
use ea_protocol::signed::{
    decode_request_body, decode_signed_request, encode_signed_request, RequestSigner,
    SignatureAlgorithm,
};

/// The verifier's clock for every input, so that runs are repeatable; seeds are issued then.
pub const NOW_MS: u64 = 1_790_000_000_000;

/// The one principal of the directory.
pub const PRINCIPAL: &str = "alice";

struct Fixture {
    directory: Directory,
    signer: RequestSigner,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        let (signer, _) =
            RequestSigner::generate(SignatureAlgorithm::Ed25519).expect("an Ed25519 key");
        let state = serde_json::json!({
            "principals": [{
                "id": PRINCIPAL,
                "type": "User",
                "keys": [{
                    "keyId": signer.key_id(),
                    "algorithm": "Ed25519",
                    "publicKey": base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        &signer.public_key().bytes,
                    ),
                }],
            }],
        });
        let state = PolicyState::from_json(&state.to_string()).expect("the fixture state loads");
        Fixture {
            directory: Directory::of(&state),
            signer,
        }
    })
}

/// Signs `body` (the CBOR of a request body) with the directory's key, as a client would.
pub fn sign(body: &[u8]) -> Vec<u8> {
    let request = fixture()
        .signer
        .sign_body_bytes(body.to_vec())
        .expect("Ed25519 signing does not fail");
    encode_signed_request(&request)
}

/// Runs one input.
pub fn run(data: &[u8]) {
    accepted(data);
}

/// Runs one input; whether the directory accepted it (the seeds' check that the deep paths
/// are reachable at all).
pub fn accepted(data: &[u8]) -> bool {
    let Some((mode, rest)) = data.split_first() else {
        return false;
    };
    let fixture = fixture();
    let envelope = if mode & 1 == 1 {
        sign(rest)
    } else {
        rest.to_vec()
    };
    let authenticated = fixture.directory.authenticate(&envelope, NOW_MS);
    if let Ok(authenticated) = &authenticated {
        let request = decode_signed_request(&envelope).expect("an accepted envelope decodes");
        assert_eq!(
            request.key_id,
            fixture.signer.key_id(),
            "accepted under another key"
        );
        assert!(
            fixture
                .signer
                .public_key()
                .verify(&request.body, &request.sig),
            "accepted a signature that does not verify"
        );
        assert_eq!(authenticated.principal().as_str(), PRINCIPAL);
        assert_eq!(authenticated.bytes(), envelope.as_slice());
    }
    // The proxy decodes envelopes too, before the enclave sees them, to route reads.
    if let Ok(request) = decode_signed_request(data) {
        let _ = decode_request_body::<Operation>(&request);
        let _ = decode_request_body::<ciborium::Value>(&request);
    }
    authenticated.is_ok()
}
