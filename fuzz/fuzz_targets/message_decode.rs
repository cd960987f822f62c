//! Queue message decoding: arbitrary bytes as an SQS body.
//!
//! `decode_message` must never panic, and whatever it accepts must be
//! internally consistent: re-encoding the decoded records yields the same
//! content id, and that encoding decodes again to the same records.
#![no_main]

use etl_core::{build_message, decode_message};
use etl_fuzz::canonical;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // SQS bodies are strings; Lambda hands the consumer a `String`.
    let body = String::from_utf8_lossy(data);
    let Ok(msg) = decode_message(&body) else {
        return;
    };
    assert_eq!(msg.v, etl_core::message::MESSAGE_VERSION);
    assert!(!msg.records.is_empty());
    for r in &msg.records {
        assert!(!r.text.trim().is_empty());
    }
    let again = build_message(msg.records.clone());
    assert_eq!(again.content_id, msg.content_id, "content id is not stable");
    assert_eq!(again.record_count, msg.records.len());
    let back = decode_message(&again.body).unwrap_or_else(|e| {
        panic!(
            "re-encoded message does not decode: {e}\nbody: {}",
            again.body
        )
    });
    assert_eq!(back.content_id, msg.content_id);
    assert_eq!(canonical(&back.records), canonical(&msg.records));
});
