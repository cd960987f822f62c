//! The consumer's SQS event handling: arbitrary bytes as the Lambda payload,
//! deserialised into an `SqsEvent` as the runtime does, then the real
//! `BatchHandler::handle` (message ids, per-message decode, VADER, Arrow,
//! Parquet, partition registration) with in-memory sink and catalog instead
//! of S3 and Glue — no network.
//!
//! Properties: no panic (the handler turns a panicking message into a failed
//! one, so panics are also caught by the accounting below); a record without
//! a message id fails the invocation; otherwise exactly the messages whose
//! body does not decode are reported as batch item failures — in-memory
//! backends never fail, so anything else failing is a bug.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use bytes::Bytes;
use chrono::NaiveDate;
use consumer::{BatchHandler, Deps};
use etl_core::{decode_message, BackendError, Catalog, ConsumeOptions, ObjectSink, VaderAnalyzer};
use libfuzzer_sys::fuzz_target;

#[derive(Default)]
struct MemSink {
    puts: AtomicU64,
}

#[async_trait]
impl ObjectSink for MemSink {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), BackendError> {
        assert!(key.starts_with("dt=") && key.ends_with(".parquet"), "{key}");
        assert!(body.starts_with(b"PAR1") && body.ends_with(b"PAR1"));
        self.puts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn location(&self, key: &str) -> String {
        format!("mem://{key}")
    }
}

struct MemCatalog;

#[async_trait]
impl Catalog for MemCatalog {
    async fn ensure_table(&self) -> Result<(), BackendError> {
        Ok(())
    }
    async fn add_partitions(&self, dts: &[NaiveDate]) -> Result<(), BackendError> {
        assert!(!dts.is_empty());
        Ok(())
    }
}

struct Harness {
    rt: tokio::runtime::Runtime,
    handler: BatchHandler,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let deps = Deps {
            analyzer: Arc::new(VaderAnalyzer::new()),
            sink: Arc::new(MemSink::default()),
            catalog: Arc::new(MemCatalog),
            views: None,
            comprehend: None,
        };
        Harness {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            handler: BatchHandler::from_deps(deps, "sentiment", ConsumeOptions::default(), 4),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<SqsEvent>(data) else {
        return;
    };
    let h = harness();
    let n = event.records.len();
    let missing_id = event
        .records
        .iter()
        .any(|r| r.message_id.as_deref().is_none_or(str::is_empty));
    let decodable = event
        .records
        .iter()
        .filter(|r| decode_message(r.body.as_deref().unwrap_or_default()).is_ok())
        .count();
    let result = h.rt.block_on(h.handler.handle(event));
    match result {
        Err(e) => {
            assert!(missing_id, "invocation failed without a missing id: {e}");
            assert_eq!(e.error_type(), "NonRetryable");
        }
        Ok(outcome) => {
            assert!(!missing_id, "a record without a message id was accepted");
            assert_eq!(outcome.stats.messages_in as usize, n);
            assert_eq!(
                outcome.response.batch_item_failures.len() as u64,
                outcome.stats.messages_failed
            );
            assert_eq!(
                outcome.outcomes.len(),
                decodable,
                "a decodable message failed with in-memory backends (or the reverse): {:?}",
                outcome.response.batch_item_failures
            );
            assert_eq!(
                outcome.outcomes.len() + outcome.response.batch_item_failures.len(),
                n
            );
            let records: usize = outcome.outcomes.iter().map(|o| o.records).sum();
            assert_eq!(records as u64, outcome.stats.records_out);
        }
    }
});
