//! Every refusal of a signed request, through the real proxy and enclave, each with its own
//! HTTP status and error code; and what a relay that alters bytes can achieve: nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "end-to-end test: a failed step should fail the test loudly"
)]

use ea_ledger::{Operation, Query};
use ea_protocol::signed::{
    encode_signed_request, RequestSigner, SignatureAlgorithm, SignedRequest, MAX_CLOCK_SKEW_MS,
};
use ea_tests::{now_ms, Deployment};
use serde_json::{json, Value};

fn policy() -> Value {
    json!({
        "communities": [{"id": "/communities/c1", "addressSpace": "10.0.0.0/8"}],
        "roleAssignments": [
            {"id": "ra-admin", "principalId": "admin", "roleDefinitionId": "Owner", "scope": "/"},
            {"id": "ra-alice", "principalId": "alice", "roleDefinitionId": "Community Contributor",
             "scope": "/communities/c1"}
        ]
    })
}

fn create(name: &str) -> Operation {
    Operation::Submit {
        command: Box::new(
            serde_json::from_value(json!({"createVirtualEnclave": {
                "id": format!("/communities/c1/virtualEnclaves/{name}"),
                "addressSpace": "10.1.0.0/16"}}))
            .unwrap(),
        ),
        justification: None,
    }
}

fn read() -> Operation {
    Operation::Read(Query::RoleDefinitions)
}

async fn assert_refused(d: &Deployment, bytes: Vec<u8>, status: u16, code: &str) {
    let (got, body) = d.post_signed(bytes).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
}

fn decode(bytes: &[u8]) -> SignedRequest {
    ea_protocol::signed::decode_signed_request(bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_own_code_and_nothing_is_recorded() {
    let d = Deployment::start(&["admin", "alice"], policy());
    let now = now_ms();

    // The baseline is accepted.
    let (status, body) = d.post_signed(d.sign("alice", &read(), now)).await;
    assert_eq!(status, 200, "{body}");

    // Malformed envelopes.
    assert_refused(&d, vec![0xff, 0x00], 400, "malformed_request").await;
    assert_refused(&d, Vec::new(), 400, "malformed_request").await;

    // Stale and from the future (more than 5 minutes off the enclave's clock).
    let stale = d.sign("alice", &read(), now - MAX_CLOCK_SKEW_MS - 60_000);
    assert_refused(&d, stale, 401, "stale_request").await;
    let future = d.sign("alice", &read(), now + MAX_CLOCK_SKEW_MS + 60_000);
    assert_refused(&d, future, 401, "future_request").await;

    // A replay of an accepted request.
    let once = d.sign("alice", &create("e1"), now);
    let (status, body) = d.post_signed(once.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_refused(&d, once, 409, "replayed_request").await;

    // An unknown key, a key of the wrong principal, the reserved principal.
    let (stranger, _) = RequestSigner::generate(SignatureAlgorithm::Ed25519).unwrap();
    let unknown = encode_signed_request(&stranger.sign("alice", &read(), now).unwrap());
    assert_refused(&d, unknown, 401, "unknown_key").await;
    let impostor = encode_signed_request(&d.signer("admin").sign("alice", &read(), now).unwrap());
    assert_refused(&d, impostor, 401, "bad_signature").await;
    let platform = encode_signed_request(&stranger.sign("platform", &read(), now).unwrap());
    assert_refused(&d, platform, 401, "reserved_principal").await;

    // The envelope claims another algorithm than the key's.
    let mut mismatched = decode(&d.sign("alice", &read(), now));
    mismatched.alg = SignatureAlgorithm::ES256;
    assert_refused(
        &d,
        encode_signed_request(&mismatched),
        401,
        "algorithm_mismatch",
    )
    .await;

    // A revoked key.
    d.govctl("admin", &["principal", "revoke-key", "alice", "k1"])
        .expect(0);
    assert_refused(&d, d.sign("alice", &read(), now_ms()), 401, "revoked_key").await;

    // Of all this, only the enclave creation and the revocation were recorded.
    let audit = d.stack.dir.path().join("audit");
    let output = std::process::Command::new(ea_tests::binaries().path("govctl"))
        .args(["audit", "fetch", "--endpoint", &d.stack.url, "--out"])
        .arg(&audit)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let verified = std::process::Command::new(ea_tests::binaries().path("govctl"))
        .args(["audit", "verify"])
        .arg(&audit)
        .arg("--root")
        .arg(d.stack.mock_root())
        .arg("--pcrs")
        .arg(d.measurements())
        .arg("--json")
        .output()
        .unwrap();
    let summary: Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(summary["verified"], true, "{summary}");
    assert_eq!(
        summary["records"], 4,
        "genesis, start, creation, revocation: {summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_flips_any_byte_gets_a_refusal_never_a_different_request() {
    let d = Deployment::start(&["admin", "alice"], policy());
    let original = d.sign("alice", &create("e2"), now_ms());
    let decoded = decode(&original);
    // Flip one bit in each byte of the signed body in turn (the part a relay would want to
    // change: principal, nonce, time, operation) and in the signature.
    let body_len = decoded.body.len();
    let sig_len = decoded.sig.len();
    let mut refused = 0;
    for i in (0..body_len).step_by(7).chain(body_len..body_len + sig_len) {
        let mut altered = decoded.clone();
        if i < body_len {
            altered.body[i] ^= 0x01;
        } else {
            altered.sig[i - body_len] ^= 0x80;
        }
        let (status, body) = d.post_signed(encode_signed_request(&altered)).await;
        assert!(
            matches!(status, 400 | 401),
            "byte {i}: a flipped byte must be refused, got {status} {body}"
        );
        refused += 1;
    }
    assert!(refused > 60);
    // Nothing was created; the untouched request still goes through once.
    let (status, body) = d.post_signed(original).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["outcome"], "applied");
}
