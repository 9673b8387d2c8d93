//! Frames and the messages on both of the enclave's connections (client requests through
//! the proxy, and the parent's store) from arbitrary bytes: splitting and decoding never
//! panic.

use ea_protocol::frame::FrameDecoder;
use ea_protocol::{decode_message, EnclaveRequest, EnclaveResponse, StoreRequest, StoreResponse};

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut decoder = FrameDecoder::new(64 * 1024);
    decoder.extend(data);
    while let Ok(Some(frame)) = decoder.next_frame() {
        let _ = decode_message::<EnclaveRequest>(&frame);
        let _ = decode_message::<EnclaveResponse>(&frame);
        let _ = decode_message::<StoreRequest>(&frame);
        let _ = decode_message::<StoreResponse>(&frame);
    }
    let _ = decoder.finish();
    let _ = decode_message::<EnclaveRequest>(data);
    let _ = decode_message::<StoreResponse>(data);
}
