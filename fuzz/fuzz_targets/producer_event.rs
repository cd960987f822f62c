//! The producer's request handling: arbitrary bytes as the Lambda payload
//! (EventBridge rule envelope, EventBridge Scheduler input, `{"mode":…}`,
//! `{"since":…}`), read by `Request::from_event` as `Producer::invoke` does,
//! and the same bytes as the run checkpoint the producer stores in its state
//! table (`RunCheckpoint`, read back when a run resumes). No network.
//!
//! Properties: no panic; a rejected event is `NonRetryable` (retrying the
//! same payload cannot help); a checkpoint that parses survives being saved
//! and loaded again; the deadline conversion never panics.
#![no_main]

use etl_aws::lambda::InvocationError;
use libfuzzer_sys::fuzz_target;
use producer::handler::RunCheckpoint;
use producer::request::{effective_deadline, Request};

fuzz_target!(|data: &[u8]| {
    if data.len() >= 8 {
        let ms = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
        let _ = effective_deadline(ms);
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        match Request::from_event(&value) {
            Ok(r) => {
                assert!(["incremental", "full", "since", "resume"].contains(&r.mode_name()));
            }
            Err(InvocationError { retry, message }) => {
                assert_eq!(retry, etl_core::Retry::Permanent, "{message}");
                assert!(!message.is_empty());
            }
        }
    }
    if let Ok(cp) = serde_json::from_slice::<RunCheckpoint>(data) {
        let saved = serde_json::to_string(&cp).expect("a checkpoint serialises");
        let loaded: RunCheckpoint = serde_json::from_str(&saved)
            .unwrap_or_else(|e| panic!("a saved checkpoint does not load: {e}\n{saved}"));
        assert_eq!(loaded, cp);
    }
});
