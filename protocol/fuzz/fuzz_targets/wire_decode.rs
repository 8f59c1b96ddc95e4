//! `wire::decode` on arbitrary bytes: never panics, and whatever decodes re-encodes to bytes
//! that decode to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealdesk_protocol::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = wire::decode(data) {
        let again = wire::encode(&frame).expect("a decoded frame re-encodes within MAX_FRAME");
        assert_eq!(
            wire::decode(&again).expect("re-encoded frame decodes"),
            frame
        );
    }
});
