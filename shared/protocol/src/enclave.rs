//! Messages between the parent-instance proxy and the enclave application.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::message::{ErrorReply, WireMessage, WireReply};

/// The default vsock port the enclave listens on.
pub const DEFAULT_ENCLAVE_PORT: u32 = 5000;

/// What the parent asks the enclave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnclaveRequest {
    /// Is the enclave serving?
    Health,
    /// Version, protocol version, uptime and NSM mode.
    Describe,
    /// A fresh attestation document carrying the caller's nonce.
    Attestation {
        /// At most 512 bytes, echoed in the document's `nonce`.
        nonce: Option<ByteBuf>,
    },
    /// The genesis document (JSON), accepted once, while the log is empty.
    Genesis {
        /// The document's bytes, as the operator wrote them.
        document: ByteBuf,
    },
    /// A client's signed request, verbatim: the enclave verifies it before anything else.
    Signed {
        /// The CBOR `SignedRequest` envelope.
        request: ByteBuf,
    },
}

impl WireMessage for EnclaveRequest {
    const KINDS: &'static [&'static str] =
        &["Health", "Describe", "Attestation", "Genesis", "Signed"];
}

/// What the enclave answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnclaveResponse {
    /// Answer to [`EnclaveRequest::Health`].
    Health(HealthReport),
    /// Answer to [`EnclaveRequest::Describe`].
    Describe(Description),
    /// Answer to [`EnclaveRequest::Attestation`]: the COSE_Sign1 document.
    Attestation {
        /// The document, as the NSM produced it.
        document: ByteBuf,
    },
    /// Answer to [`EnclaveRequest::Genesis`] and [`EnclaveRequest::Signed`]: an HTTP status
    /// and a JSON body that the proxy relays unchanged. Receipts inside let the client check
    /// it; the proxy cannot forge them.
    Api {
        /// The HTTP status.
        status: u16,
        /// The JSON body.
        body: ByteBuf,
        /// The log key's signature over the answer (the `enclave-answer-signature` header
        /// value, ea_audit::answer), on every answer to a signed request while the enclave
        /// serves; the proxy passes it on as that header.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// The request failed.
    Error(ErrorReply),
}

impl WireMessage for EnclaveResponse {
    const KINDS: &'static [&'static str] = &["Health", "Describe", "Attestation", "Api", "Error"];
}

impl WireReply for EnclaveResponse {
    fn from_error(error: ErrorReply) -> Self {
        EnclaveResponse::Error(error)
    }
}

/// The enclave's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// `"ok"` when serving; otherwise the phase (`starting`, `awaiting_genesis`,
    /// `recovering`, `failed`).
    pub status: String,
    /// Why it is not serving, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl HealthReport {
    /// Serving.
    pub fn ok() -> Self {
        Self {
            status: "ok".into(),
            detail: None,
        }
    }
}

/// Which NSM implementation the enclave runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NsmMode {
    /// The real `/dev/nsm` device of a Nitro Enclave.
    Device,
    /// The mock NSM: documents verify only against the mock root.
    Mock,
    /// The `/dev/nsm` device of QEMU's `nitro-enclave` machine, whose attestation documents
    /// are unsigned and accepted only in the insecure QEMU mode
    /// (`enclave-app --nsm device --insecure-qemu-attestation`). Nothing it says is proven.
    /// A distinct name, so that no client mistakes it for [`NsmMode::Device`].
    #[serde(rename = "device-insecure-qemu")]
    DeviceInsecureQemu,
}

impl NsmMode {
    /// The name on the wire and in `enclave_start` records: `device`, `mock`,
    /// `device-insecure-qemu`.
    pub fn name(self) -> &'static str {
        match self {
            NsmMode::Device => "device",
            NsmMode::Mock => "mock",
            NsmMode::DeviceInsecureQemu => "device-insecure-qemu",
        }
    }
}

/// What the enclave says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    /// The enclave application's version.
    pub version: String,
    /// The protocol version it speaks.
    pub protocol_version: u16,
    /// Milliseconds since it started.
    pub uptime_ms: u64,
    /// Which NSM it uses.
    pub nsm: NsmMode,
    /// Its phase: `starting`, `awaiting_genesis`, `recovering`, `awaiting_witnesses`,
    /// `serving` or `failed`.
    #[serde(default)]
    pub phase: String,
    /// Why it failed to start, when it did; why it does not serve yet, while it awaits
    /// witnesses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The log's identity (hex), once there is a log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genesis_hash: Option<String>,
    /// Records in the log, as the enclave holds it.
    #[serde(default)]
    pub log_size: u64,
    /// The index of this start's `enclave_start` record, which attests the log key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_key_index: Option<u64>,
    /// The log key's signed-note verifier key (`<origin>+<key id>+<base64>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_key: Option<String>,
    /// This enclave's own image: its PCR0, 1, 2 (and 8 when set), `PCRn` → lower-case hex.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub image: std::collections::BTreeMap<String, String>,
    /// The images the log admits, as the enclave replayed it (informational: the parent
    /// relays this; `govctl image list` and a verified log say the same with proof).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<DescribedImage>,
    /// The witness set the log requires, as the enclave replayed it (informational, like
    /// `images`); absent when the log names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witnesses: Option<DescribedWitnesses>,
}

/// The witness set in [`Description::witnesses`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescribedWitnesses {
    /// How many distinct witnesses must cosign.
    pub threshold: u32,
    /// Their verifier keys (`<name>+<key id>+<base64(04 || key)>`).
    pub keys: Vec<String>,
}

/// An admitted image in [`Description::images`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescribedImage {
    /// `PCRn` → lower-case hex.
    pub pcrs: std::collections::BTreeMap<String, String>,
    /// The record that admitted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
    /// The approval that admitted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// The `enclave_start` since which it writes the log, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_since: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{decode_message, encode_message};

    fn kind_of<T: Serialize>(message: &T) -> String {
        let mut out = Vec::new();
        ciborium::into_writer(message, &mut out).unwrap();
        match ciborium::from_reader::<ciborium::Value, _>(out.as_slice()).unwrap() {
            ciborium::Value::Text(kind) => kind,
            ciborium::Value::Map(entries) => entries[0].0.as_text().unwrap().to_owned(),
            other => panic!("unexpected encoding {other:?}"),
        }
    }

    #[test]
    fn nsm_modes_have_their_wire_names() {
        for mode in [NsmMode::Device, NsmMode::Mock, NsmMode::DeviceInsecureQemu] {
            let mut cbor = Vec::new();
            ciborium::into_writer(&mode, &mut cbor).unwrap();
            assert_eq!(
                ciborium::from_reader::<ciborium::Value, _>(cbor.as_slice()).unwrap(),
                ciborium::Value::Text(mode.name().into())
            );
            assert_eq!(
                ciborium::from_reader::<NsmMode, _>(cbor.as_slice()).unwrap(),
                mode
            );
        }
        assert_eq!(NsmMode::DeviceInsecureQemu.name(), "device-insecure-qemu");
    }

    #[test]
    fn kinds_lists_every_variant() {
        for request in [
            EnclaveRequest::Health,
            EnclaveRequest::Describe,
            EnclaveRequest::Attestation {
                nonce: Some(ByteBuf::from(vec![1, 2])),
            },
            EnclaveRequest::Genesis {
                document: ByteBuf::from(b"{}".to_vec()),
            },
            EnclaveRequest::Signed {
                request: ByteBuf::from(vec![0xa0]),
            },
        ] {
            assert!(EnclaveRequest::KINDS.contains(&kind_of(&request).as_str()));
            let bytes = encode_message(1, &request).unwrap();
            assert_eq!(
                decode_message::<EnclaveRequest>(&bytes).unwrap().body,
                request
            );
        }
        for response in [
            EnclaveResponse::Health(HealthReport::ok()),
            EnclaveResponse::Describe(Description {
                version: "0".into(),
                protocol_version: 1,
                uptime_ms: 0,
                nsm: NsmMode::Mock,
                phase: "serving".into(),
                error: None,
                genesis_hash: None,
                log_size: 0,
                log_key_index: None,
                log_key: None,
                image: Default::default(),
                images: vec![DescribedImage {
                    pcrs: [("PCR0".to_owned(), "ab".repeat(48))].into(),
                    record: Some(1),
                    approval_id: None,
                    running_since: Some(1),
                }],
                witnesses: Some(DescribedWitnesses {
                    threshold: 1,
                    keys: vec!["w1+01020304+BAAA".into()],
                }),
            }),
            EnclaveResponse::Attestation {
                document: ByteBuf::from(vec![0x84]),
            },
            EnclaveResponse::Api {
                status: 200,
                body: ByteBuf::from(b"{}".to_vec()),
                signature: None,
            },
            EnclaveResponse::Error(ErrorReply::new(crate::ErrorCode::Internal, "x")),
        ] {
            assert!(EnclaveResponse::KINDS.contains(&kind_of(&response).as_str()));
        }
    }
}
