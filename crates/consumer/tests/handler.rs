//! The consumer handler against moto (S3, Glue), fed the same
//! `events/sqs-batch*.json` fixtures as `sam local invoke` and `cargo lambda invoke`.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use chrono::NaiveDate;
use consumer::{BatchHandler, Deps};
use etl_aws::testing::{create_bucket, moto, unique};
use etl_aws::{AthenaQuery, GlueCatalog, S3Sink};
use etl_core::{
    AnalyzeError, BackendError, Catalog, ConsumeOptions, Document, Engine, Retry,
    SentimentAnalyzer, SentimentScore, VaderAnalyzer,
};
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
            comprehend: None,
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

/// VADER, except that it panics on one text.
struct Explosive(VaderAnalyzer);

#[async_trait]
impl SentimentAnalyzer for Explosive {
    fn engine(&self) -> Engine {
        Engine::Vader
    }
    async fn analyze(
        &self,
        docs: &[Document<'_>],
    ) -> Result<Vec<Result<SentimentScore, AnalyzeError>>, AnalyzeError> {
        assert!(
            !docs.iter().any(|d| d.text.contains("Support was fast")),
            "simulated bug"
        );
        self.0.analyze(docs).await
    }
}

#[tokio::test]
async fn a_panic_while_processing_one_message_fails_only_that_message() {
    let lake = lake(Arc::new(Explosive(VaderAnalyzer::new()))).await;
    let out = lake.handler().handle(event(BATCH)).await.unwrap();
    // "Support was fast" is in the second message of the fixture.
    assert_eq!(failed_ids(&out), ["7b2a4f3c-5d6e-4f70-8a91-b2c3d4e5f601"]);
    assert_eq!(lake.ids().await, ["post-0001", "post-0002", "post-0006"]);
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
