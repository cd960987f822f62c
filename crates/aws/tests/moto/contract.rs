//! The conformance suite (`etl_testkit::contract`) against the AWS
//! backends on moto, and Comprehend against the loopback stub: one test per
//! behaviour per backend, each with its own queue, bucket, database, table
//! or (for Athena's canned results) region.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use bytes::Bytes;
use chrono::NaiveDate;
use etl_aws::{
    AthenaQuery, ComprehendAnalyzer, DynamoSource, GlueCatalog, LanguageMode, S3Sink, ScanConfig,
    SqsQueue,
};
use etl_testkit::contract::catalog::CatalogProbe;
use etl_testkit::contract::query::{Rows, SelectCase};
use etl_testkit::contract::queue::{Batching, Visibility};
use etl_testkit::contract::sink::SinkProbe;
use etl_testkit::contract::{analyzer, catalog, query, queue, sink, source};
use etl_testkit::fixtures::{hostile_records, FixtureRecord, InvalidRecord};
use etl_testkit::{
    create_bucket, create_queue, create_table, moto, put_items, stub_label, unique, ComprehendStub,
};
use serde_json::{json, Value};

// --- WorkQueue: SqsQueue -------------------------------------------------

/// A queue with SQS's default 30 s visibility timeout: nothing received
/// comes back by itself while a behaviour runs.
async fn new_queue() -> SqsQueue {
    let c = moto().clients().await.sqs;
    let url = create_queue(&c, &unique("contract-q")).await;
    SqsQueue::new(c, url)
}

#[tokio::test]
async fn sqs_refused_send_is_permanent() {
    let c = moto().clients().await.sqs;
    let url = format!(
        "{}/123456789012/{}",
        moto().endpoint(),
        unique("no-such-queue")
    );
    queue::refused_send_is_permanent(&SqsQueue::new(c, url)).await;
}

#[tokio::test]
async fn sqs_empty_queue_receives_nothing() {
    queue::empty_queue_receives_nothing(&new_queue().await).await;
}

#[tokio::test]
async fn sqs_empty_send_sends_nothing() {
    queue::empty_send_sends_nothing(&new_queue().await).await;
}

#[tokio::test]
async fn sqs_send_reports_messages_and_calls() {
    let q = new_queue().await;
    queue::send_reports_messages_and_calls(&q, Batching::AtMost(etl_aws::sqs::MAX_BATCH_ENTRIES))
        .await;
}

#[tokio::test]
async fn sqs_bodies_round_trip() {
    queue::bodies_round_trip(&new_queue().await).await;
}

#[tokio::test]
async fn sqs_acked_messages_are_not_redelivered() {
    // A 1 s visibility timeout, so the delivery left unsettled comes back
    // within the contract's bounded receives (1 s long polls, not sleeps).
    let c = moto().clients().await.sqs;
    let url = c
        .create_queue()
        .queue_name(unique("contract-vis"))
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .send()
        .await
        .expect("CreateQueue")
        .queue_url
        .expect("queue url");
    let q = SqsQueue::new(c, url);
    queue::acked_messages_are_not_redelivered(&q, Visibility::Timeout(Duration::from_secs(3)))
        .await;
}

#[tokio::test]
async fn sqs_released_message_is_redelivered() {
    queue::released_message_is_redelivered(&new_queue().await).await;
}

// --- ObjectSink: S3Sink --------------------------------------------------

/// GetObject and ListObjectsV2 under the sink's table prefix.
struct Bucket {
    sink: S3Sink,
    client: aws_sdk_s3::Client,
}

#[async_trait]
impl SinkProbe for Bucket {
    async fn get(&self, key: &str) -> Option<Bytes> {
        self.sink.get(key).await.ok()
    }

    async fn keys(&self) -> Vec<String> {
        let prefix = self.sink.key("");
        let mut keys = Vec::new();
        let mut token = None;
        for _ in 0..100 {
            let out = self
                .client
                .list_objects_v2()
                .bucket(self.sink.bucket())
                .prefix(prefix.as_str())
                .set_continuation_token(token)
                .send()
                .await
                .expect("ListObjectsV2");
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .map(|k| k.strip_prefix(prefix.as_str()).unwrap_or(k).to_owned()),
            );
            token = out.next_continuation_token;
            if token.is_none() {
                break;
            }
        }
        keys
    }
}

/// A new bucket, and a prefix with stray slashes as operators write them.
async fn new_sink() -> (S3Sink, Bucket) {
    let client = moto().clients().await.s3;
    let bucket = unique("contract-lake");
    create_bucket(&client, &bucket).await;
    let s = S3Sink::new(client.clone(), bucket, "/contract/etl/");
    let probe = Bucket {
        sink: s.clone(),
        client,
    };
    (s, probe)
}

#[tokio::test]
async fn s3_refused_put_is_permanent() {
    let client = moto().clients().await.s3;
    let missing = S3Sink::new(client, unique("no-such-bucket"), "lake");
    sink::refused_put_is_permanent(&missing).await;
}

#[tokio::test]
async fn s3_put_then_get_returns_the_bytes() {
    let (s, probe) = new_sink().await;
    sink::put_then_get_returns_the_bytes(&s, &probe).await;
}

#[tokio::test]
async fn s3_put_replaces_the_object() {
    let (s, probe) = new_sink().await;
    sink::put_replaces_the_object(&s, &probe).await;
}

#[tokio::test]
async fn s3_keys_keep_the_hive_layout() {
    let (s, probe) = new_sink().await;
    sink::keys_keep_the_hive_layout(&s, &probe).await;
}

#[tokio::test]
async fn s3_empty_object_is_stored() {
    let (s, probe) = new_sink().await;
    sink::empty_object_is_stored(&s, &probe).await;
}

#[tokio::test]
async fn s3_location_names_the_key() {
    let (s, _probe) = new_sink().await;
    sink::location_names_the_key(&s).await;
}

// --- Catalog: GlueCatalog ------------------------------------------------

/// GetTable and GetPartitions of `database.sentiment`.
struct GlueTable {
    client: aws_sdk_glue::Client,
    database: String,
}

#[async_trait]
impl CatalogProbe for GlueTable {
    async fn table_exists(&self) -> bool {
        self.client
            .get_table()
            .database_name(&self.database)
            .name("sentiment")
            .send()
            .await
            .is_ok()
    }

    async fn partitions(&self) -> Vec<NaiveDate> {
        let mut dates = Vec::new();
        let mut token = None;
        for _ in 0..100 {
            let out = self
                .client
                .get_partitions()
                .database_name(&self.database)
                .table_name("sentiment")
                .set_next_token(token)
                .send()
                .await
                .expect("GetPartitions");
            for p in out.partitions() {
                let value = p.values().first().expect("a dt value");
                dates.push(value.parse::<NaiveDate>().expect("YYYY-MM-DD"));
            }
            token = out.next_token;
            if token.is_none() {
                break;
            }
        }
        dates
    }
}

const TABLE_LOCATION: &str = "s3://contract-lake/etl/sentiment/";

async fn new_catalog() -> (aws_sdk_glue::Client, String, GlueTable) {
    let client = moto().clients().await.glue;
    let database = unique("contract-db").replace('-', "_");
    let probe = GlueTable {
        client: client.clone(),
        database: database.clone(),
    };
    (client, database, probe)
}

fn glue(client: &aws_sdk_glue::Client, database: &str) -> GlueCatalog {
    GlueCatalog::new(client.clone(), database, "sentiment", TABLE_LOCATION)
}

#[tokio::test]
async fn glue_ensure_table_is_idempotent() {
    let (client, db, probe) = new_catalog().await;
    catalog::ensure_table_is_idempotent(&glue(&client, &db), &probe).await;
}

#[tokio::test]
async fn glue_empty_partition_list_is_fine() {
    let (client, db, probe) = new_catalog().await;
    catalog::empty_partition_list_is_fine(&glue(&client, &db), &probe).await;
}

#[tokio::test]
async fn glue_partitions_are_registered_once() {
    let (client, db, probe) = new_catalog().await;
    catalog::partitions_are_registered_once(&glue(&client, &db), &probe).await;
}

#[tokio::test]
async fn glue_fresh_instance_adds_known_partitions() {
    let (client, db, probe) = new_catalog().await;
    let (first, fresh) = (glue(&client, &db), glue(&client, &db));
    catalog::fresh_instance_adds_known_partitions(&first, &fresh, &probe).await;
}

// --- QueryEngine: AthenaQuery on moto's canned results -------------------

/// One canned result: a header row of the column names (Athena's first row
/// of a SELECT), then the rows, every column `varchar`.
fn canned(columns: &[String], rows: &[Vec<Option<String>>]) -> Value {
    let cells = |values: Vec<Option<&str>>| {
        let data: Vec<Value> = values
            .into_iter()
            .map(|v| v.map_or_else(|| json!({}), |s| json!({ "VarCharValue": s })))
            .collect();
        json!({ "Data": data })
    };
    let mut all = vec![cells(columns.iter().map(|c| Some(c.as_str())).collect())];
    all.extend(
        rows.iter()
            .map(|r| cells(r.iter().map(Option::as_deref).collect())),
    );
    let info: Vec<Value> = columns
        .iter()
        .map(|c| {
            json!({"CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": c,
                   "Label": c, "Type": "varchar", "Precision": 0, "Scale": 0,
                   "Nullable": "UNKNOWN", "CaseSensitive": true})
        })
        .collect();
    json!({ "rows": all, "column_info": info })
}

/// Queue canned results for the next queries in `region`. moto hands them
/// out in order, one per new query execution, to whichever query of the
/// region asks first, so each test owns its region (eu-west-1 belongs to
/// `athena.rs`).
fn register(region: &str, results: Vec<Value>) {
    let status = moto().post(
        "/moto-api/static/athena/query-results",
        &json!({ "region": region, "results": results }),
    );
    assert_eq!(status, 201, "moto took the canned results");
}

async fn athena(region: &str, workgroup: &str) -> AthenaQuery {
    let client = aws_sdk_athena::Client::new(&moto().sdk_config_in(region).await);
    AthenaQuery::new(client, workgroup, "default").with_polling(
        Duration::from_millis(10),
        Duration::from_millis(50),
        Duration::from_secs(30),
    )
}

/// The fixtures as the SELECT's rows, the stub's label as `sentiment`, and
/// a NULL label on every fifth.
fn athena_case() -> SelectCase {
    let rows: Rows = hostile_records(12)
        .into_iter()
        .map(|f| {
            let label = (f.index % 5 != 4).then(|| stub_label(&f.text).0.to_owned());
            vec![Some(f.id), Some(f.text), label]
        })
        .collect();
    SelectCase {
        sql: "SELECT id, text, sentiment FROM sentiment ORDER BY id".into(),
        columns: ["id", "text", "sentiment"].map(String::from).to_vec(),
        rows,
    }
}

#[tokio::test]
async fn athena_select_returns_exactly() {
    let region = "eu-west-2";
    let case = athena_case();
    register(region, vec![canned(&case.columns, &case.rows)]);
    query::select_returns_exactly(&athena(region, "primary").await, &case).await;
}

#[tokio::test]
async fn athena_empty_result_has_no_rows() {
    let region = "eu-west-3";
    register(region, vec![canned(&["id".to_owned()], &[])]);
    let engine = athena(region, "primary").await;
    query::empty_result_has_no_rows(&engine, "SELECT id FROM sentiment WHERE id = 'none'").await;
}

#[tokio::test]
async fn athena_refused_statement_is_permanent() {
    // moto runs no SQL and fails no statement: a missing workgroup is the
    // refusal it can make (see the contract's docs).
    let engine = athena("us-east-1", &unique("no-such-wg")).await;
    query::refused_statement_is_permanent(&engine, "SELECT 1").await;
}

// --- SentimentAnalyzer: ComprehendAnalyzer on the stub -------------------

/// An analyzer against `stub`, with SDK retries off (as `Clients` builds
/// it) and millisecond backoff so retried documents cost no time.
async fn comprehend(stub: &ComprehendStub, language: LanguageMode) -> ComprehendAnalyzer {
    let conf = moto().sdk_config().await;
    let client = aws_sdk_comprehend::Client::from_conf(
        aws_sdk_comprehend::config::Builder::from(&conf)
            .endpoint_url(stub.endpoint())
            .retry_config(aws_smithy_types::retry::RetryConfig::disabled())
            .build(),
    );
    ComprehendAnalyzer::new(client, language).with_retry(
        3,
        Duration::from_millis(1),
        Duration::from_millis(2),
    )
}

fn english() -> LanguageMode {
    LanguageMode::Fixed("en".into())
}

#[tokio::test]
async fn comprehend_empty_batch_scores_nothing() {
    let stub = ComprehendStub::start().await;
    analyzer::empty_batch_scores_nothing(&comprehend(&stub, english()).await).await;
    assert_eq!(stub.counts().calls, 0, "an empty batch makes no call");
}

#[tokio::test]
async fn comprehend_every_document_gets_a_score() {
    let stub = ComprehendStub::start().await;
    analyzer::every_document_gets_a_score(&comprehend(&stub, english()).await).await;
}

#[tokio::test]
async fn comprehend_results_keep_input_order() {
    let stub = ComprehendStub::start().await;
    analyzer::results_keep_input_order(&comprehend(&stub, english()).await).await;
}

#[tokio::test]
async fn comprehend_results_keep_input_order_with_language_detection() {
    let stub = ComprehendStub::start().await;
    let a = comprehend(&stub, LanguageMode::Auto).await;
    analyzer::results_keep_input_order(&a).await;
}

#[tokio::test]
async fn comprehend_refused_document_fails_alone() {
    let stub = ComprehendStub::start().await;
    let a = comprehend(&stub, english()).await;
    analyzer::refused_document_fails_alone(&a, Some(ComprehendStub::FAIL_MARKER)).await;
    assert_eq!(stub.counts().permanent_errors, 2);
}

#[tokio::test]
async fn comprehend_transient_failure_is_never_permanent() {
    let stub = ComprehendStub::start().await;
    let a = comprehend(&stub, english()).await;
    analyzer::transient_failure_is_never_permanent(&a, Some(ComprehendStub::FLAKY_MARKER)).await;
    assert_eq!(stub.counts().transient_errors, 1, "the stub failed it once");
}

// --- RecordSource: DynamoSource ------------------------------------------

async fn table_with(
    items: Vec<HashMap<String, AttributeValue>>,
) -> (aws_sdk_dynamodb::Client, String) {
    let client = moto().clients().await.dynamodb;
    let table = unique("contract-src");
    create_table(&client, &table, "id").await;
    put_items(&client, &table, items).await;
    (client, table)
}

/// A parallel scan in small pages: many chunks, several segments.
fn scan(table: &str, segments: u32, page_limit: Option<i32>) -> ScanConfig {
    let mut cfg = ScanConfig::new(table);
    cfg.segments = segments;
    cfg.page_limit = page_limit;
    cfg
}

#[tokio::test]
async fn dynamodb_every_record_arrives_once() {
    let fixtures = hostile_records(60);
    let items = fixtures.iter().map(FixtureRecord::to_dynamo_item).collect();
    let (client, table) = table_with(items).await;
    let mut src = DynamoSource::open(client, scan(&table, 3, Some(7))).expect("open");
    source::every_record_arrives_once(&mut src, &fixtures).await;
}

#[tokio::test]
async fn dynamodb_invalid_item_is_rejected_alone() {
    let fixtures = hostile_records(10);
    let bad = InvalidRecord::bad_created_at("bad item/../1");
    let mut items: Vec<_> = fixtures.iter().map(FixtureRecord::to_dynamo_item).collect();
    items.push(bad.to_dynamo_item());
    let (client, table) = table_with(items).await;
    // One segment, one page: the location is known.
    let mut src = DynamoSource::open(client, scan(&table, 1, None)).expect("open");
    let location = format!("item {} in segment 0 page 1", bad.id);
    source::invalid_item_is_rejected_alone(&mut src, &fixtures, &bad, &location).await;
}

#[tokio::test]
async fn dynamodb_empty_source_ends() {
    let (client, table) = table_with(Vec::new()).await;
    let mut src = DynamoSource::open(client, scan(&table, 2, None)).expect("open");
    source::empty_source_ends(&mut src).await;
}
