//! The operator's `etl` (cloud build) against a deployed pipeline on moto:
//! a CloudFormation stack whose outputs name the tables, queues and bucket,
//! several producer and consumer runs through the real handlers, messages
//! dead-lettered as SQS's redrive policy would, then `etl status`,
//! `etl reconcile`, `etl redrive`, `etl backfill`, `etl query --athena` and
//! `etl report`, run as the binary an operator runs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use etl_aws::{Clients, SqsQueue, StateStore};
use etl_core::{FieldMap, WorkQueue};
use etl_testkit::{
    create_bucket, create_queue_with_dlq, create_table, moto, put_items, sqs_event_json, unique,
};
use producer::{Producer, Request, Status};
use serde_json::{json, Value};

use crate::support::vader_consumer;

/// The `etl` binary of this build: `cargo test --workspace --features
/// etl-cli/cloud` (what `make test` runs) builds it next to this test binary.
fn etl_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir.join(format!("etl{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} not built: run `cargo test --workspace --features etl-cli/cloud` (make test)",
        bin.display()
    );
    bin
}

fn etl(region: &str, args: &[&str]) -> Output {
    std::process::Command::new(etl_bin())
        .args(args)
        .env("AWS_ENDPOINT_URL", moto().endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", region)
        .env_remove("AWS_PROFILE")
        .env_remove("ETL_STACK")
        .env_remove("ETL_LAKE")
        .output()
        .expect("etl runs")
}

/// `etl reconcile --stack --json`, which must exit 0: its report.
fn reconciled(region: &str, stack: &str) -> Value {
    let out = etl(region, &["reconcile", "--stack", stack, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    json_of(&out)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {}\nstderr {}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

struct Deployed {
    clients: Clients,
    stack: String,
    source: String,
    bucket: String,
    work: String,
    dlq: String,
    producer: Producer,
    consumer: consumer::BatchHandler,
}

async fn approx(c: &Clients, url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName;
    let a = c
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .map(|k| a[k].parse::<u64>().unwrap())
    .sum()
}

impl Deployed {
    async fn new() -> Self {
        Self::with_format("hive").await
    }

    /// A stack deployed with `TableFormat=format`: for `delta`, the outputs
    /// and the consumer as the template wires them (the table at
    /// `lake/delta/sentiment/`).
    async fn with_format(format: &str) -> Self {
        let clients = moto().clients().await;
        let (source, state, bucket, stack) = (
            unique("op-src"),
            unique("op-state"),
            unique("op-lake"),
            unique("op-stack"),
        );
        let database = unique("op_db").replace('-', "_");
        create_table(&clients.dynamodb, &source, "id").await;
        create_table(&clients.dynamodb, &state, "pk").await;
        create_bucket(&clients.s3, &bucket).await;
        let (work, dlq) = create_queue_with_dlq(&clients.sqs, &unique("op-work"), 3).await;
        // What `sam deploy` leaves: a stack whose outputs name the resources.
        let output_prefix = if format == "delta" {
            "lake/delta"
        } else {
            "lake"
        };
        let outputs = json!({
            "SourceTableName": source, "StateTableName": state, "WorkQueueUrl": work,
            "WorkDeadLetterQueueUrl": dlq,
            "LakeLocation": format!("s3://{bucket}/{output_prefix}/sentiment/"),
            "GlueDatabaseName": database, "AthenaWorkGroupName": "primary",
            "ProducerFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:op-producer",
            "LakeTableFormat": format,
        });
        let template = json!({
            "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": outputs.as_object().unwrap().iter()
                .map(|(k, v)| (k.clone(), json!({"Value": v})))
                .collect::<serde_json::Map<_, _>>(),
        });
        aws_sdk_cloudformation::Client::new(&clients.config)
            .create_stack()
            .stack_name(&stack)
            .template_body(template.to_string())
            .send()
            .await
            .expect("CreateStack");
        let config = producer::Config {
            source_table: source.clone(),
            state_table: state.clone(),
            queue_url: work.clone(),
            segments: 2,
            page_limit: Some(50),
            max_pages: None,
            message_budget: 2 * 1024,
            fields: FieldMap::default(),
            deadline_margin: Duration::from_secs(5),
            lookback: Duration::from_secs(3600),
            // Small, so the ledger spills to sorted files as it would after a bulk import.
            ledger_spill_dir: std::env::temp_dir(),
            ledger_memory_versions: 500,
        };
        let producer = Producer::from_parts(
            config,
            clients.dynamodb.clone(),
            StateStore::new(clients.dynamodb.clone(), &state, &source),
            Arc::new(SqsQueue::new(clients.sqs.clone(), &work)),
        );
        let consumer = if format == "delta" {
            let env: HashMap<String, String> = [
                ("OUTPUT_BUCKET", bucket.as_str()),
                ("OUTPUT_PREFIX", output_prefix),
                ("GLUE_DATABASE", database.as_str()),
                ("GLUE_TABLE", "sentiment"),
                ("SENTIMENT_ENGINE", "vader"),
                ("TABLE_FORMAT", "delta"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            let config = consumer::Config::from_lookup(&env).unwrap();
            consumer::BatchHandler::new(&config, &clients)
                .await
                .unwrap()
        } else {
            vader_consumer(&clients, &bucket, &database)
        };
        Self {
            clients,
            stack,
            source,
            bucket,
            work,
            dlq,
            producer,
            consumer,
        }
    }

    async fn write(&self, from: usize, to: usize, tag: &str) {
        let now = Utc::now();
        let items = (from..to)
            .map(|i| {
                let id = match i {
                    0 => "a/b".to_owned(),
                    1 => "..".to_owned(),
                    2 => "with space".to_owned(),
                    3 => "z".repeat(200),
                    i => format!("p{i:04}"),
                };
                // Within the producer's lookback of the last watermark, as new writes are.
                let at = now - chrono::Duration::minutes(i as i64 % 30);
                HashMap::from([
                    ("id".to_string(), AttributeValue::S(id)),
                    (
                        "text".to_string(),
                        AttributeValue::S(format!("{tag} good great 😀 𝔘 #{i}")),
                    ),
                    (
                        "created_at".to_string(),
                        AttributeValue::S(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                    ),
                ])
            })
            .collect();
        put_items(&self.clients.dynamodb, &self.source, items).await;
    }

    async fn produce(&self, name: &str) -> u64 {
        let s = self
            .producer
            .handle(
                Request::Scheduled,
                SystemTime::now() + Duration::from_secs(600),
                name,
            )
            .await
            .unwrap();
        assert_eq!(s.status, Status::Complete, "{s:?}");
        s.stats.messages
    }

    /// Consume the work queue; the first `poison` messages are instead moved
    /// to the dead-letter queue, as SQS does after maxReceiveCount.
    async fn consume(&self, mut poison: usize) -> usize {
        let queue = SqsQueue::new(self.clients.sqs.clone(), &self.work);
        let mut consumed = 0;
        let mut empty = 0;
        for _ in 0..500 {
            let batch = queue.receive(10, Duration::ZERO).await.unwrap();
            if batch.is_empty() {
                empty += 1;
                if empty == 2 {
                    break;
                }
                continue;
            }
            empty = 0;
            let (dead, live): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .enumerate()
                .partition(|(i, _)| *i < poison);
            poison -= dead.len();
            for (_, d) in dead {
                self.clients
                    .sqs
                    .send_message()
                    .queue_url(&self.dlq)
                    .message_body(&*d.body)
                    .send()
                    .await
                    .unwrap();
                queue.ack(&d).await.unwrap();
            }
            let live: Vec<_> = live.into_iter().map(|(_, d)| d).collect();
            if live.is_empty() {
                continue;
            }
            let event: SqsEvent = serde_json::from_value(sqs_event_json(
                &live,
                "arn:aws:sqs:us-east-1:123456789012:w",
            ))
            .unwrap();
            let out = self.consumer.handle(event).await.unwrap();
            assert!(out.response.batch_item_failures.is_empty());
            for d in &live {
                queue.ack(d).await.unwrap();
            }
            consumed += live.len();
        }
        consumed
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reconcile_redrive_and_backfill_on_a_deployed_stack() {
    let d = Deployed::new().await;
    let r = "us-east-1";
    // Night 1: 120 records; two messages dead-lettered.
    d.write(0, 120, "night one").await;
    let sent1 = d.produce("night-1").await;
    assert!(sent1 > 4, "{sent1} messages");
    d.consume(2).await;
    // Night 2: 40 new records and 10 updated ones.
    d.write(110, 160, "night two").await;
    d.produce("night-2").await;
    d.consume(0).await;
    let dead_before = approx(&d.clients, &d.dlq).await;
    assert_eq!(dead_before, 2, "the fault fired");

    let out = etl(r, &["status", "--stack", &d.stack, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let st = json_of(&out);
    assert!(st["watermark"].is_string());
    assert!(st["checkpoint"].is_null() && st["lock"].is_null());
    let runs = st["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0]["read"], 120);
    assert_eq!(runs[0]["sent_records"], 120);
    assert_eq!(runs[1]["sent_records"], 50);
    assert_eq!(st["dead_letters"]["visible"], 2);
    assert_eq!(st["queue"]["visible"], 0);
    let listed = etl_testkit::s3_lake::keys(&d.clients.s3, &d.bucket).await;
    let files: u64 = st["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["files"].as_u64().unwrap())
        .sum();
    assert_eq!(
        files as usize,
        listed.iter().filter(|k| k.ends_with(".parquet")).count()
    );
    let out = etl(r, &["status", "--stack", &d.stack]);
    assert!(
        text(&out.stdout).contains("dead letters        2 waiting"),
        "{}",
        text(&out.stdout)
    );

    // Reconcile: the dead-lettered records are accounted for, and stay there.
    let rec = reconciled(r, &d.stack);
    assert_eq!(rec["source_versions"], 160);
    assert_eq!(rec["missing"].as_array().unwrap().len(), 0);
    assert_eq!(rec["duplicated"].as_array().unwrap().len(), 0);
    let dead = rec["dead_lettered"].as_array().unwrap().len();
    assert!(dead > 0);
    assert_eq!(rec["in_lake"].as_u64().unwrap() as usize + dead, 160);
    assert_eq!(
        approx(&d.clients, &d.dlq).await,
        2,
        "reconcile leaves the dead letters"
    );

    // Redrive (moto has no StartMessageMoveTask: the fallback), then consume.
    let out = etl(
        r,
        &["redrive", "--stack", &d.stack, "--wait", "0", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rd = json_of(&out);
    assert_eq!(rd["moved"], 2);
    assert_eq!(rd["method"], "receive");
    assert!(rd["fallback_reason"].is_string());
    assert_eq!(approx(&d.clients, &d.dlq).await, 0);
    assert_eq!(d.consume(0).await, 2, "both came back");
    let out = etl(r, &["reconcile", "--stack", &d.stack, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let rec = json_of(&out);
    assert_eq!(rec["in_lake"], 160);
    assert_eq!(
        rec["superseded"], 10,
        "night one's versions of the updated records"
    );

    // A second copy of an object: every row in it counted twice, exit 4.
    let key = listed.iter().find(|k| k.ends_with(".parquet")).unwrap();
    d.clients
        .s3
        .copy_object()
        .bucket(&d.bucket)
        .copy_source(format!("{}/{key}", d.bucket))
        .key(key.replace("part-", "part-copy-"))
        .send()
        .await
        .unwrap();
    let out = etl(r, &["reconcile", "--stack", &d.stack, "--json"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(!json_of(&out)["duplicated"].as_array().unwrap().is_empty());

    // Backfill: the producer invoked asynchronously with what it accepts,
    // from a day and a half ago (whole seconds, as an operator types it).
    let since = chrono::DateTime::from_timestamp(Utc::now().timestamp() - 36 * 3600, 0).unwrap();
    let since_s = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(
        moto().post(
            "/moto-api/config",
            &json!({"lambda": {"use_docker": false}})
        ),
        201
    );
    let out = etl(
        r,
        &[
            "backfill", "--stack", &d.stack, "--since", &since_s, "--json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let b = json_of(&out);
    assert_eq!(b["status_code"], 202);
    assert_eq!(b["event"], json!({ "since": since_s }));
    assert_eq!(
        Request::from_event(&b["event"]).unwrap(),
        Request::Since(since)
    );
    let out = etl(r, &["backfill", "--stack", &d.stack, "--full", "--json"]);
    assert_eq!(json_of(&out)["event"], json!({"mode": "full"}));
    assert_eq!(
        Request::from_event(&json_of(&out)["event"]).unwrap(),
        Request::Full
    );

    // An unknown stack is an error naming it.
    let out = etl(r, &["status", "--stack", "no-such-stack"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no-such-stack"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_query_and_report_page_results_and_show_the_cost() {
    // Its own region: moto's canned Athena results are a per-region queue.
    let region = "eu-west-3";
    let c = Clients::from_conf(&moto().sdk_config_in(region).await);
    let wg = unique("op-wg");
    c.athena.create_work_group().name(&wg).send().await.unwrap();
    let cell = |v: &str| json!({"VarCharValue": v});
    let rows = |data: &[[&str; 4]]| {
        std::iter::once(["dt", "sentiment", "records", "avg_compound"])
            .chain(data.iter().copied())
            .map(|r| json!({"Data": r.iter().map(|v| cell(v)).collect::<Vec<_>>()}))
            .collect::<Vec<_>>()
    };
    let columns = json!([
        {"Name": "dt", "Type": "varchar"}, {"Name": "sentiment", "Type": "varchar"},
        {"Name": "records", "Type": "bigint"}, {"Name": "avg_compound", "Type": "double"}
    ]);
    let daily = [
        ["2026-11-01", "NEGATIVE", "40", "-0.5"],
        ["2026-11-01", "POSITIVE", "60", "0.6"],
        ["2026-11-03", "NEUTRAL", "25", "0.0"],
    ];
    for _ in 0..2 {
        assert_eq!(
            moto().post(
                "/moto-api/static/athena/query-results",
                &json!({"region": region, "results": [{"rows": rows(&daily), "column_info": columns}]}),
            ),
            201
        );
    }
    let out = etl(
        region,
        &[
            "query",
            "--athena",
            "--workgroup",
            &wg,
            "--database",
            "db",
            "--format",
            "csv",
            "SELECT dt, sentiment, records, avg_compound FROM daily_sentiment",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "dt,sentiment,records,avg_compound\n2026-11-01,NEGATIVE,40,-0.5\n2026-11-01,POSITIVE,60,0.6\n2026-11-03,NEUTRAL,25,0.0\n"
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("scanned 0 B") && err.contains("$0.000050"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("r.html");
    let out = etl(
        region,
        &[
            "report",
            "--workgroup",
            &wg,
            "--database",
            "db",
            "-o",
            html.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    let svg = &page[page.find("<svg").unwrap()..page.rfind("</svg>").unwrap() + 6];
    let doc = roxmltree::Document::parse(svg).unwrap();
    let bars: Vec<(String, String, String)> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("bar"))
        .map(|n| {
            (
                n.attribute("data-dt").unwrap().to_owned(),
                n.attribute("data-sentiment").unwrap().to_owned(),
                n.attribute("data-records").unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        bars,
        [
            ("2026-11-01".into(), "NEGATIVE".into(), "40".into()),
            ("2026-11-01".into(), "POSITIVE".into(), "60".into()),
            ("2026-11-03".into(), "NEUTRAL".into(), "25".into()),
        ]
    );
    let days = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("day"))
        .count();
    assert_eq!(days, 3, "the day without data is an empty slot");
}

/// `etl status` and `etl reconcile` on a stack deployed with
/// `TableFormat=delta` read the table's live files from its log: an object
/// no commit names (an attempt that lost its race, a crash before the
/// commit) and the files a compaction replaced hold rows no reader sees, so
/// they are neither counted nor read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_reconcile_read_a_delta_stacks_live_files_from_its_log() {
    let d = Deployed::with_format("delta").await;
    let r = "us-east-1";
    d.write(0, 120, "night one").await;
    d.produce("night-1").await;
    d.consume(0).await;
    d.write(100, 140, "night two").await;
    d.produce("night-2").await;
    d.consume(0).await;
    let table = "lake/delta/sentiment/";
    let keys = etl_testkit::s3_lake::keys(&d.clients.s3, &d.bucket).await;
    let data: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with(table) && k.ends_with(".parquet") && !k.contains("_delta_log"))
        .collect();
    assert!(data.len() > 2, "{keys:?}");
    assert!(
        keys.iter().all(|k| k.starts_with(table)),
        "a Delta stack writes only under its own location: {keys:?}"
    );
    // An attempt that lost its commit: a copy of a committed object under a
    // key the log does not name. Read as a table file, its rows would be
    // counted twice.
    let stray = data[0].replace(".parquet", "-lost-attempt.parquet");
    d.clients
        .s3
        .copy_object()
        .bucket(&d.bucket)
        .copy_source(format!("{}/{}", d.bucket, data[0]))
        .key(&stray)
        .send()
        .await
        .unwrap();

    let out = etl(r, &["status", "--stack", &d.stack, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let files: u64 = json_of(&out)["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["files"].as_u64().unwrap())
        .sum();
    assert_eq!(
        files as usize,
        data.len(),
        "the stray object is not a table file"
    );

    let rec = reconciled(r, &d.stack);
    assert_eq!(rec["source_versions"], 140, "{rec}");
    assert_eq!(rec["in_lake"], 140, "{rec}");
    assert_eq!(rec["objects"].as_u64().unwrap() as usize, data.len());
    assert_eq!(rec["duplicated"].as_array().unwrap().len(), 0, "{rec}");

    // Compaction replaces the small files: the replaced ones stay in the
    // bucket (until vacuum) and are no longer read.
    let out = etl(r, &["compact", "--stack", &d.stack, "--json"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let rec = reconciled(r, &d.stack);
    assert_eq!(rec["in_lake"], 140, "{rec}");
    assert!(
        (rec["objects"].as_u64().unwrap() as usize) < data.len(),
        "compacted: {rec}"
    );
}
