//! Writes the seeds of the targets whose inputs we make ourselves (frames, signed
//! requests, sealed keys) into `fuzz/corpus/`. The other targets' seeds are real documents (AWS
//! attestation documents, OpenSSL and KMS-shaped CMS, built EIFs) and are committed as such.
//!
//! `cargo run -p ea-fuzz-targets --example write_seeds`

use std::path::Path;

use ea_ledger::Operation;
use ea_policy::Scope;
use ea_protocol::frame::encode_frame;
use ea_protocol::signed::{
    encode_signed_request, RequestBody, RequestSigner, SignatureAlgorithm, REQUEST_BODY_VERSION,
};
use ea_protocol::{encode_message, EnclaveRequest};
use serde_bytes::ByteBuf;

fn main() -> anyhow::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");

    let check = Operation::Check {
        principal: None,
        operation: "Microsoft.Network/virtualNetworks/write".to_owned(),
        scope: Scope::root(),
        data_action: false,
    };
    let body = RequestBody {
        v: REQUEST_BODY_VERSION,
        principal: ea_fuzz_targets::signed_request::PRINCIPAL.to_owned(),
        nonce: vec![7; 16],
        issued_at: ea_fuzz_targets::signed_request::NOW_MS,
        operation: check,
    };
    let mut body_bytes = Vec::new();
    ciborium::into_writer(&body, &mut body_bytes)?;

    // Odd first byte: the target signs the rest with the directory's key.
    let dir = corpus.join("signed_request");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("check-to-sign"),
        [&[1u8][..], &body_bytes].concat(),
    )?;
    // Even first byte: an envelope as sent, here signed by a key the directory lacks.
    let (stranger, _) = RequestSigner::generate(SignatureAlgorithm::ES256)?;
    let envelope = encode_signed_request(&stranger.sign_body_bytes(body_bytes)?);
    std::fs::write(dir.join("unknown-key"), [&[0u8][..], &envelope].concat())?;

    let dir = corpus.join("frame");
    std::fs::create_dir_all(&dir)?;
    let messages = [
        ("health", EnclaveRequest::Health),
        ("describe", EnclaveRequest::Describe),
        (
            "attestation",
            EnclaveRequest::Attestation {
                nonce: Some(ByteBuf::from(vec![0xab; 32])),
            },
        ),
        (
            "signed",
            EnclaveRequest::Signed {
                request: ByteBuf::from(envelope),
            },
        ),
    ];
    let mut all = Vec::new();
    for (id, (name, message)) in messages.into_iter().enumerate() {
        let frame = encode_frame(&encode_message(id as u64 + 1, &message)?, 1 << 20)?;
        std::fs::write(dir.join(name), &frame)?;
        all.extend_from_slice(&frame);
    }
    // Several frames back to back, as one connection carries them.
    std::fs::write(dir.join("pipelined"), all)?;
    let dir = corpus.join("sealed_key");
    std::fs::create_dir_all(&dir)?;
    let legacy = ea_kms::seal::seal_legacy_log_key_for_tests(
        &[1; 32],
        &[2; 32],
        &[3; 32],
        "arn:aws:kms:eu-west-1:111122223333:key/seed".to_owned(),
        vec![4; 184],
    )?;
    std::fs::write(dir.join("version-1"), legacy.to_bytes()?)?;
    let binding = ea_kms::LogKeyBinding {
        genesis_hash: [3; 32],
        genesis_image: [5; 32],
        image: [6; 32],
    };
    let sealed = ea_kms::seal_log_key(
        &[1; 32],
        &[2; 32],
        &binding,
        "arn:aws:kms:eu-west-1:111122223333:key/seed".to_owned(),
        vec![4; 184],
    )?;
    std::fs::write(dir.join("version-2"), sealed.to_bytes()?)?;
    let mut set = ea_kms::SealedKeySet::new();
    set.insert([5; 32], legacy);
    set.insert([6; 32], sealed);
    std::fs::write(dir.join("key-set"), set.to_bytes()?)?;

    println!("seeds written to {}", corpus.display());
    Ok(())
}
