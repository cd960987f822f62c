//! The consumer handler against moto (S3, Glue), fed the same
//! `events/sqs-batch*.json` fixtures as `sam local invoke` and `cargo lambda invoke`.
// Test helpers unwrap too: a failed setup is the test failing
// (`allow-unwrap-in-tests` only covers the `#[test]` functions themselves).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use chrono::NaiveDate;
use consumer::{BatchHandler, Deps};
use etl_aws::sqs::SqsDeadLetters;
use etl_aws::{AthenaQuery, ComprehendAnalyzer, GlueCatalog, LanguageMode, S3Sink};
use etl_core::{
    AnalyzeError, BackendError, Catalog, ConsumeOptions, Document, Engine, Retry,
    SentimentAnalyzer, SentimentScore, VaderAnalyzer,
};
use etl_testkit::{create_bucket, moto, unique, ComprehendStub, Script, ScriptedAnalyzer};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const BATCH: &str = include_str!("../../../events/sqs-batch.json");
const POISON: &str = include_str!("../../../events/sqs-batch-poison.json");

fn event(json: &str) -> SqsEvent {
    serde_json::from_str(json).unwrap()
}

struct Lake {
    s3: aws_sdk_s3::Client,
    glue: aws_sdk_glue::Client,
    bucket: String,
    database: String,
    deps: Deps,
}

async fn lake(analyzer: Arc<dyn SentimentAnalyzer>) -> Lake {
    let clients = moto().clients().await;
    let bucket = unique("lake");
    create_bucket(&clients.s3, &bucket).await;
    let database = unique("db").replace('-', "_");
    let sink = S3Sink::new(clients.s3.clone(), &bucket, "etl");
    let catalog = GlueCatalog::new(
        clients.glue.clone(),
        &database,
        "sentiment",
        sink.table_location(),
    );
    Lake {
        s3: clients.s3,
        glue: clients.glue,
        bucket,
        database,
        deps: Deps {
            analyzer,
            sink: Arc::new(sink),
            catalog: Arc::new(catalog),
            views: None,
        },
    }
}

impl Lake {
    fn handler(&self) -> BatchHandler {
        BatchHandler::from_deps(self.deps.clone(), "sentiment", ConsumeOptions::default(), 2)
    }

    async fn keys(&self) -> Vec<String> {
        let out = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .send()
            .await
            .unwrap();
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    }

    /// Every id in every Parquet object, with repetitions.
    async fn ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for key in self.keys().await {
            let body = self
                .s3
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap();
            for batch in ParquetRecordBatchReaderBuilder::try_new(body.into_bytes())
                .unwrap()
                .build()
                .unwrap()
            {
                let batch = batch.unwrap();
                let col = batch.column_by_name("id").unwrap().as_string::<i32>();
                ids.extend(col.iter().map(|v| v.unwrap().to_owned()));
            }
        }
        ids.sort();
        ids
    }

    async fn partitions(&self) -> Vec<String> {
        let out = self
            .glue
            .get_partitions()
            .database_name(&self.database)
            .table_name("sentiment")
            .send()
            .await
            .unwrap();
        let mut v: Vec<String> = out
            .partitions()
            .iter()
            .map(|p| p.values().join(","))
            .collect();
        v.sort();
        v
    }
}

fn failed_ids(outcome: &consumer::BatchOutcome) -> Vec<&str> {
    outcome
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

#[tokio::test]
async fn sqs_batch_fixture_lands_in_s3_and_glue_and_redelivery_overwrites() {
    let lake = lake(Arc::new(VaderAnalyzer::new())).await;
    let h = lake.handler();
    let out = h.handle(event(BATCH)).await.unwrap();
    assert!(failed_ids(&out).is_empty(), "{:?}", out.response);
    assert_eq!(
        (
            out.stats.messages_in,
            out.stats.records_out,
            out.stats.objects
        ),
        (3, 6, 4)
    );
    assert!(out.stats.bytes_written > 0);
    let keys = lake.keys().await;
    assert_eq!(keys.len(), 4);
    assert!(keys.contains(
        &"etl/sentiment/dt=2024-05-01/part-08bd1ec1c0c978d818eb96b95263bc699e4797d6fae53c84d58d555e1a156a9e.parquet".to_string()
    ));
    assert!(
        keys.iter()
            .all(|k| k.starts_with("etl/sentiment/dt=2024-05-0")),
        "{keys:?}"
    );
    let expect: Vec<String> = (1..=6).map(|i| format!("post-000{i}")).collect();
    assert_eq!(lake.ids().await, expect);
    assert_eq!(lake.partitions().await, ["2024-05-01", "2024-05-02"]);

    // At-least-once delivery: the same batch again rewrites the same objects.
    let again = h.handle(event(BATCH)).await.unwrap();
    assert!(failed_ids(&again).is_empty());
    assert_eq!(lake.keys().await, keys);
    assert_eq!(lake.ids().await, expect, "still exactly once");
}

#[tokio::test]
async fn poison_fixture_reports_exactly_the_malformed_message() {
    let lake = lake(Arc::new(VaderAnalyzer::new())).await;
    let out = lake.handler().handle(event(POISON)).await.unwrap();
    assert_eq!(failed_ids(&out), ["22222222-aaaa-4bbb-8ccc-000000000002"]);
    assert_eq!(
        (
            out.stats.messages_in,
            out.stats.messages_failed,
            out.stats.records_out
        ),
        (3, 1, 2)
    );
    assert_eq!(lake.ids().await, ["post-0101", "post-0102"]);
    let json = serde_json::to_value(&out.response).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"batchItemFailures":[{"itemIdentifier":"22222222-aaaa-4bbb-8ccc-000000000002"}]})
    );
}

#[tokio::test]
async fn a_panic_while_processing_one_message_fails_only_that_message() {
    // VADER, except that it panics on one text (a bug).
    let analyzer =
        Arc::new(ScriptedAnalyzer::vader().with(Script::PanicOn("Support was fast".into())));
    let lake = lake(analyzer.clone()).await;
    let out = lake.handler().handle(event(BATCH)).await.unwrap();
    // "Support was fast" is in the second message of the fixture.
    assert_eq!(failed_ids(&out), ["7b2a4f3c-5d6e-4f70-8a91-b2c3d4e5f601"]);
    assert_eq!(lake.ids().await, ["post-0001", "post-0002", "post-0006"]);
    assert_eq!(analyzer.counts().panics, 1, "the bug fired");
}

#[tokio::test]
async fn a_record_without_message_id_fails_the_whole_invocation() {
    let lake = lake(Arc::new(VaderAnalyzer::new())).await;
    let mut ev = event(BATCH);
    ev.records[1].message_id = None;
    let err = lake.handler().handle(ev).await.unwrap_err();
    assert_eq!(err.error_type(), "NonRetryable");
    assert!(err.message.contains("record 1"), "{err}");
    assert!(lake.keys().await.is_empty(), "nothing processed");
}

/// A catalog whose table can never be created.
struct NoCatalog;

#[async_trait]
impl Catalog for NoCatalog {
    async fn ensure_table(&self) -> Result<(), BackendError> {
        Err(BackendError::retryable(
            "CreateTable",
            "Glue table db.sentiment",
            "ThrottlingException",
        ))
    }
    async fn add_partitions(&self, _: &[NaiveDate]) -> Result<(), BackendError> {
        unreachable!("no partitions without a table")
    }
}

#[tokio::test]
async fn a_table_that_cannot_be_created_fails_the_invocation_with_its_retry_class() {
    let mut lake = lake(Arc::new(VaderAnalyzer::new())).await;
    lake.deps.catalog = Arc::new(NoCatalog);
    let err = lake.handler().handle(event(BATCH)).await.unwrap_err();
    assert_eq!(
        (err.retry, err.error_type()),
        (Retry::Retryable, "Retryable")
    );
    assert!(err.message.contains("db.sentiment"), "{err}");
}

#[tokio::test]
async fn failing_athena_views_do_not_fail_messages() {
    let mut lake = lake(Arc::new(VaderAnalyzer::new())).await;
    let athena = aws_sdk_athena::Client::new(&moto().sdk_config().await);
    lake.deps.views = Some(Arc::new(AthenaQuery::new(
        athena,
        "missing-workgroup",
        &lake.database,
    )));
    let h = lake.handler();
    let out = h.handle(event(POISON)).await.unwrap();
    assert_eq!(failed_ids(&out).len(), 1);
    assert_eq!(out.stats.records_out, 2);
    let ids: BTreeSet<_> = lake.ids().await.into_iter().collect();
    assert_eq!(ids.len(), 2);
}

// ---------------------------------------------------------------------------
// Refused records, transient failures, the deadline
// ---------------------------------------------------------------------------

/// VADER, except that texts containing one of `refuse` are refused
/// permanently (as Comprehend refuses a language it does not take); the
/// analyzer counts how many times each text was analysed.
fn refusing(refuse: &[&str]) -> ScriptedAnalyzer {
    refuse
        .iter()
        .fold(ScriptedAnalyzer::vader(), |a, marker| {
            a.refusing(marker, "UnsupportedLanguage")
        })
        .refusal_message("detected language \"sv\" for {id}")
}

/// Every message on a queue (deleted as read), with its message attributes.
async fn drain_queue(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut out = Vec::new();
    for _ in 0..20 {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if got.is_empty() {
            return out;
        }
        for m in &got {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        out.extend(got);
    }
    panic!("queue {url} did not drain");
}

fn attr<'a>(m: &'a aws_sdk_sqs::types::Message, name: &str) -> &'a str {
    m.message_attributes()
        .and_then(|a| a.get(name))
        .and_then(|v| v.string_value())
        .unwrap_or_else(|| panic!("attribute {name} missing: {m:?}"))
}

fn body_ids(body: &str) -> Vec<String> {
    etl_core::decode_message(body)
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.id)
        .collect()
}

#[tokio::test]
async fn refused_records_go_to_the_dlq_alone_with_their_reasons_and_their_message_succeeds() {
    // post-0004 and post-0005 are refused; post-0003 shares their message.
    let analyzer = Arc::new(refusing(&["Support was fast", "Worst experience"]));
    let lake = lake(analyzer.clone()).await;
    let sqs = aws_sdk_sqs::Client::new(&moto().sdk_config().await);
    let dlq = etl_testkit::create_queue(&sqs, &unique("refused-dlq")).await;
    let h = lake
        .handler()
        .with_dead_letters(Arc::new(SqsDeadLetters::new(sqs.clone(), &dlq)));
    let out = h.handle(event(BATCH)).await.unwrap();

    assert!(failed_ids(&out).is_empty(), "{:?}", out.response);
    assert_eq!(
        lake.ids().await,
        ["post-0001", "post-0002", "post-0003", "post-0006"]
    );
    assert_eq!((out.stats.records_out, out.stats.records_refused), (4, 2));
    let letters = drain_queue(&sqs, &dlq).await;
    assert_eq!(letters.len(), 1, "one dead letter for the one message");
    let dl = &letters[0];
    assert_eq!(body_ids(dl.body().unwrap()), ["post-0004", "post-0005"]);
    assert_eq!(
        attr(dl, "etl-source-message-id"),
        "7b2a4f3c-5d6e-4f70-8a91-b2c3d4e5f601"
    );
    assert_eq!(
        attr(dl, "etl-reason"),
        "2 records refused: post-0004 (UnsupportedLanguage: detected language \"sv\" for post-0004); \
         post-0005 (UnsupportedLanguage: detected language \"sv\" for post-0005)"
    );
    let reasons: serde_json::Value = serde_json::from_str(attr(dl, "etl-reasons")).unwrap();
    assert_eq!(
        reasons,
        serde_json::json!({
            "post-0004": "UnsupportedLanguage: detected language \"sv\" for post-0004",
            "post-0005": "UnsupportedLanguage: detected language \"sv\" for post-0005",
        })
    );
    assert_eq!(attr(dl, "etl-refused-records"), "2");
    let source_cid = etl_core::decode_message(&event(BATCH).records[1].clone().body.unwrap())
        .unwrap()
        .content_id;
    assert_eq!(attr(dl, "etl-source-content-id"), source_cid);
    assert_eq!(
        analyzer.counts().documents,
        6,
        "every document analysed exactly once"
    );
    assert_eq!(analyzer.seen_again(), 0);
    assert_eq!(analyzer.counts().refused, 2, "both refusals fired");

    // Redriven as it is, the dead letter is a valid message: consumed again
    // (here still refused), it produces a dead letter of the same records.
    let redrive = h
        .handle(
            serde_json::from_value(etl_testkit::sqs_event_json(
                &[etl_core::Delivery {
                    message_id: "redriven-1".into(),
                    receipt: "r".into(),
                    body: dl.body().unwrap().into(),
                    receive_count: 1,
                }],
                "arn:aws:sqs:us-east-1:123456789012:work",
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    assert!(failed_ids(&redrive).is_empty());
    let again = drain_queue(&sqs, &dlq).await;
    assert_eq!(
        body_ids(again[0].body().unwrap()),
        ["post-0004", "post-0005"]
    );
}

#[tokio::test]
async fn when_the_dlq_cannot_be_reached_the_message_fails_whole() {
    let analyzer = Arc::new(refusing(&["Support was fast"]));
    let lake = lake(analyzer.clone()).await;
    let sqs = aws_sdk_sqs::Client::new(&moto().sdk_config().await);
    let missing = format!(
        "{}/123456789012/{}",
        moto().endpoint(),
        unique("no-such-dlq")
    );
    let h = lake
        .handler()
        .with_dead_letters(Arc::new(SqsDeadLetters::new(sqs, missing)));
    let out = h.handle(event(BATCH)).await.unwrap();
    assert_eq!(failed_ids(&out), ["7b2a4f3c-5d6e-4f70-8a91-b2c3d4e5f601"]);
    assert_eq!(out.stats.records_refused, 0);
    assert!(analyzer.counts().refused > 0, "the refusal fired");
}

#[tokio::test]
async fn comprehend_transient_failures_fail_the_message_whole_and_its_redelivery_bills_only_them() {
    let stub = ComprehendStub::start().await;
    let conf = moto().sdk_config().await;
    let client = aws_sdk_comprehend::Client::from_conf(
        aws_sdk_comprehend::config::Builder::from(&conf)
            .endpoint_url(stub.endpoint())
            .retry_config(aws_smithy_types::retry::RetryConfig::disabled())
            .build(),
    );
    let analyzer = Arc::new(
        ComprehendAnalyzer::new(client, LanguageMode::Fixed("en".into()))
            .with_retry(2, Duration::from_millis(1), Duration::from_millis(2))
            .with_rate_limiter(Arc::new(etl_aws::RateLimiter::per_second(1_000.0))),
    );
    // The handler reads the billing units from the analyzer itself.
    let lake = lake(analyzer).await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let dlq = etl_testkit::create_queue(&sqs, &unique("work-dlq")).await;
    let h = lake
        .handler()
        .with_dead_letters(Arc::new(SqsDeadLetters::new(sqs.clone(), &dlq)));

    // One message of 60 records (three Comprehend calls): 4 fail transiently
    // more often than the analyzer retries, 2 are refused.
    let t = chrono::Utc::now();
    let records: Vec<etl_core::SourceRecord> = (0..60)
        .map(|i| etl_core::SourceRecord {
            id: format!("doc-{i:02}"),
            text: match i {
                7 | 31 => format!("refused {i} {}", ComprehendStub::FAIL_MARKER),
                3 | 26 | 50 | 59 => format!("flaky {i} {}", ComprehendStub::FLAKY_MARKER),
                _ => format!("I love this, number {i}"),
            },
            created_at: t,
            updated_at: t,
            attributes: Default::default(),
        })
        .collect();
    stub.set_flaky_failures(2);
    let msg = etl_core::build_message(records);
    let delivery = |id: &str, body: &str| -> aws_lambda_events::sqs::SqsEvent {
        serde_json::from_value(etl_testkit::sqs_event_json(
            &[etl_core::Delivery {
                message_id: id.into(),
                receipt: "r".into(),
                body: body.into(),
                receive_count: 1,
            }],
            "arn:aws:sqs:us-east-1:123456789012:work",
        ))
        .unwrap()
    };
    let out = h.handle(delivery("m-1", &msg.body)).await.unwrap();
    assert_eq!(
        failed_ids(&out),
        ["m-1"],
        "records still failing after the retries fail their message whole"
    );
    assert_eq!((out.stats.records_out, out.stats.records_refused), (0, 0));
    assert_eq!(
        stub.counts().scored,
        54,
        "billed for the 54 scored documents"
    );
    assert!(lake.ids().await.is_empty(), "nothing of it lands yet");
    assert!(
        drain_queue(&sqs, &dlq).await.is_empty(),
        "nothing dead-lettered before the message can land"
    );

    // The same message redelivered to this container once Comprehend recovered.
    let out2 = h.handle(delivery("m-1", &msg.body)).await.unwrap();
    assert!(failed_ids(&out2).is_empty(), "{:?}", out2.response);
    assert_eq!(
        (out2.stats.records_out, out2.stats.records_refused),
        (58, 2)
    );
    assert_eq!(
        stub.counts().scored,
        58,
        "each document billed once: only the 4 that failed were sent again"
    );
    let dead = drain_queue(&sqs, &dlq).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(body_ids(dead[0].body().unwrap()), ["doc-07", "doc-31"]);
    assert!(attr(&dead[0], "etl-reason").contains("TEXT_SIZE_LIMIT_EXCEEDED"));
    let mut want: Vec<String> = (0..60)
        .filter(|i| *i != 7 && *i != 31)
        .map(|i| format!("doc-{i:02}"))
        .collect();
    want.sort();
    assert_eq!(
        lake.ids().await,
        want,
        "each scored record once in the lake, in its message's one object"
    );
}

/// An in-memory lake for the deadline test (no network, so the clock can be paused).
#[derive(Default)]
struct MemoryLake(std::sync::Mutex<Vec<String>>);

#[async_trait]
impl etl_core::ObjectSink for MemoryLake {
    async fn put(&self, key: &str, _: bytes::Bytes) -> Result<(), BackendError> {
        self.0.lock().unwrap().push(key.to_owned());
        Ok(())
    }
    fn location(&self, key: &str) -> String {
        key.to_owned()
    }
}

#[async_trait]
impl Catalog for MemoryLake {
    async fn ensure_table(&self) -> Result<(), BackendError> {
        Ok(())
    }
    async fn add_partitions(&self, _: &[NaiveDate]) -> Result<(), BackendError> {
        Ok(())
    }
}

/// VADER that, on its first call, waits until `until` (the point where the
/// margin begins), and counts calls.
struct Slow {
    until: tokio::time::Instant,
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl SentimentAnalyzer for Slow {
    fn engine(&self) -> Engine {
        Engine::Vader
    }
    async fn analyze(
        &self,
        docs: &[Document<'_>],
    ) -> Result<Vec<Result<SentimentScore, AnalyzeError>>, AnalyzeError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Not a timing guess: afterwards the margin has begun, whatever the machine's speed.
        tokio::time::sleep_until(self.until).await;
        VaderAnalyzer::new().analyze(docs).await
    }
}

fn memory_handler(analyzer: Arc<Slow>, lake: Arc<MemoryLake>, margin: Duration) -> BatchHandler {
    let deps = Deps {
        analyzer,
        sink: lake.clone(),
        catalog: lake,
        views: None,
    };
    BatchHandler::from_deps(deps, "sentiment", ConsumeOptions::default(), 1)
        .with_deadline_margin(margin)
}

#[tokio::test]
async fn no_message_is_started_inside_the_deadline_margin() {
    let now = tokio::time::Instant::now();
    let analyzer = Arc::new(Slow {
        until: now,
        calls: Default::default(),
    });
    let lake = Arc::new(MemoryLake::default());
    let h = memory_handler(analyzer.clone(), lake.clone(), Duration::from_secs(10));
    // 5 s left, 10 s margin: nothing may start.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let out = h.handle_until(event(BATCH), Some(deadline)).await.unwrap();
    assert_eq!(
        failed_ids(&out),
        [
            "2e1424d4-f796-459a-8184-9c92662be6da",
            "7b2a4f3c-5d6e-4f70-8a91-b2c3d4e5f601",
            "c0ffee00-1234-4abc-9def-0123456789ab"
        ]
    );
    assert_eq!(
        (out.stats.messages_untaken, out.stats.messages_failed),
        (3, 3)
    );
    assert_eq!(analyzer.calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(lake.0.lock().unwrap().is_empty(), "nothing processed");
}

#[tokio::test]
async fn messages_whose_turn_comes_inside_the_margin_are_reported_untaken() {
    // One message at a time. The first starts at once and, while it is
    // being scored, the margin begins: the other two are not started.
    let margin = Duration::from_secs(60);
    let deadline = tokio::time::Instant::now() + margin + Duration::from_millis(300);
    let analyzer = Arc::new(Slow {
        until: deadline - margin,
        calls: Default::default(),
    });
    let lake = Arc::new(MemoryLake::default());
    let h = memory_handler(analyzer.clone(), lake.clone(), margin);
    let out = h.handle_until(event(BATCH), Some(deadline)).await.unwrap();
    assert_eq!(
        failed_ids(&out),
        [
            "7b2a4f3c-5d6e-4f70-8a91-b2c3d4e5f601",
            "c0ffee00-1234-4abc-9def-0123456789ab"
        ]
    );
    assert_eq!(out.stats.messages_untaken, 2);
    assert_eq!(out.stats.records_out, 2, "the first message landed");
    assert_eq!(lake.0.lock().unwrap().len(), 1);
    assert_eq!(analyzer.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn lambda_deadlines_become_instants_and_emulator_values_durations() {
    let now = tokio::time::Instant::now;
    let left = |d: tokio::time::Instant| d.saturating_duration_since(now()).as_secs();
    let in_a_minute = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 60_000;
    assert!((58..=60).contains(&left(consumer::handler::deadline_instant(in_a_minute))));
    assert!((598..=600).contains(&left(consumer::handler::deadline_instant(600_000))));
    assert!((898..=900).contains(&left(consumer::handler::deadline_instant(0))));
    assert_eq!(
        left(consumer::handler::deadline_instant(1_000_000_000_000)),
        0,
        "2001: past"
    );
}
