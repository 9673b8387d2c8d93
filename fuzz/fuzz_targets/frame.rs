//! Frames and enclave messages from arbitrary bytes: splitting and decoding never panic.
#![no_main]

use ea_protocol::frame::FrameDecoder;
use ea_protocol::{decode_message, EnclaveRequest, EnclaveResponse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut decoder = FrameDecoder::new(64 * 1024);
    decoder.extend(data);
    while let Ok(Some(frame)) = decoder.next_frame() {
        let _ = decode_message::<EnclaveRequest>(&frame);
        let _ = decode_message::<EnclaveResponse>(&frame);
    }
    let _ = decoder.finish();
    let _ = decode_message::<EnclaveRequest>(data);
});
