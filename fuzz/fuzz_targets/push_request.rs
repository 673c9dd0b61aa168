//! Loki push bodies (snappy-compressed `logproto.PushRequest`, as the fake
//! Loki reads them): any body is refused with a message or decoded into
//! streams that encode and decode back to the same streams; the decoded
//! size is bounded before anything is decompressed.
//!
//! Input: a push request body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tekton_results_logs::backend::loki::push::{decode_request, encode_request};

fuzz_target!(|data: &[u8]| {
    let streams = match decode_request(data) {
        Ok(streams) => streams,
        Err(message) => {
            assert!(!message.is_empty());
            return;
        }
    };
    let body = encode_request(&streams).expect("decoded streams encode");
    assert_eq!(decode_request(&body), Ok(streams));
});
