//! Several nights in a row on the AWS path (moto): the real producer and
//! consumer handlers with live data — timestamps relative to now, a bulk load
//! sharing one `updated_at`, updates, late writes inside the lookback, a
//! writer whose clock is ahead, a conflicting version with the same key,
//! texts with characters SQS refuses raw and ids with `/`, `..`, spaces and
//! 200 characters. After every night the lake (real Parquet read back from
//! S3) holds every version written so far exactly once: the multiset of
//! (id, updated_at, text hash, dt) equals the source's.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use consumer::BatchHandler;
use etl_aws::{Clients, SqsQueue, StateStore};
use etl_core::{FieldMap, SourceRecord, WorkQueue};
use etl_testkit::accounting::{assert_ok, versions, Accounting, FromLake, Version};
use etl_testkit::records::TEXTS;
use etl_testkit::{
    create_bucket, create_queue, create_table, moto, put_items, s3_lake, sqs_event_json, unique,
};
use producer::{Producer, Request, Status, Summary};

use crate::support::vader_consumer;

struct Nights {
    clients: Clients,
    source: String,
    bucket: String,
    queue: SqsQueue,
    producer: Producer,
    consumer: BatchHandler,
    /// Every version written to the source, in order.
    written: Vec<SourceRecord>,
}

/// Millisecond precision: what an RFC 3339 string with `.mmm` carries.
fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap()
}

fn ago(secs: i64) -> DateTime<Utc> {
    ms(Utc::now() - chrono::Duration::seconds(secs))
}

fn rec(
    id: impl Into<String>,
    text: impl Into<String>,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
) -> SourceRecord {
    SourceRecord {
        id: id.into(),
        text: text.into(),
        created_at: created,
        updated_at: updated,
        attributes: Default::default(),
    }
}

impl Nights {
    async fn new() -> Self {
        let clients = moto().clients().await;
        let (source, state_table, bucket) = (
            unique("nights-src"),
            unique("nights-state"),
            unique("nights-lake"),
        );
        let database = unique("nights_db").replace('-', "_");
        create_table(&clients.dynamodb, &source, "id").await;
        create_table(&clients.dynamodb, &state_table, "pk").await;
        create_bucket(&clients.s3, &bucket).await;
        let queue_url = create_queue(&clients.sqs, &unique("nights-work")).await;
        let queue = SqsQueue::new(clients.sqs.clone(), &queue_url);
        let config = producer::Config {
            source_table: source.clone(),
            state_table: state_table.clone(),
            queue_url: queue_url.clone(),
            segments: 3,
            page_limit: Some(500),
            max_pages: None,
            message_budget: 64 * 1024,
            fields: FieldMap::default(),
            deadline_margin: Duration::from_secs(5),
            lookback: Duration::from_secs(3600),
        };
        let producer = Producer::from_parts(
            config,
            clients.dynamodb.clone(),
            StateStore::new(clients.dynamodb.clone(), &state_table, &source),
            Arc::new(queue.clone()),
        );
        let consumer = vader_consumer(&clients, &bucket, &database);
        Self {
            clients,
            source,
            bucket,
            queue,
            producer,
            consumer,
            written: Vec::new(),
        }
    }

    /// Write versions to the source table (created_at as epoch ms numbers,
    /// updated_at as RFC 3339 strings: both forms the contract allows).
    async fn write(&mut self, records: Vec<SourceRecord>) {
        let items = records
            .iter()
            .map(|r| {
                HashMap::from([
                    ("id".to_string(), AttributeValue::S(r.id.clone())),
                    ("text".to_string(), AttributeValue::S(r.text.clone())),
                    (
                        "created_at".to_string(),
                        AttributeValue::N(r.created_at.timestamp_millis().to_string()),
                    ),
                    (
                        "updated_at".to_string(),
                        AttributeValue::S(
                            r.updated_at
                                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        ),
                    ),
                ])
            })
            .collect();
        put_items(&self.clients.dynamodb, &self.source, items).await;
        self.written.extend(records);
    }

    /// One night: the scheduled producer run, then the queue drained through
    /// the consumer as the event source mapping would deliver it.
    async fn night(&self, name: &str) -> Summary {
        let deadline = SystemTime::now() + Duration::from_secs(600);
        let summary = self
            .producer
            .handle(Request::Scheduled, deadline, name)
            .await
            .unwrap();
        assert_eq!(summary.status, Status::Complete, "{name}: {summary:?}");
        let mut empty = 0;
        let mut delivered = 0u64;
        for _ in 0..1_000 {
            let batch = self.queue.receive(10, Duration::ZERO).await.unwrap();
            if batch.is_empty() {
                empty += 1;
                if empty == 2 {
                    break;
                }
                continue;
            }
            let event: SqsEvent = serde_json::from_value(sqs_event_json(
                &batch,
                "arn:aws:sqs:us-east-1:123456789012:work",
            ))
            .unwrap();
            let out = self.consumer.handle(event).await.unwrap();
            assert!(
                out.response.batch_item_failures.is_empty(),
                "{name}: {:?}",
                out.response
            );
            for d in &batch {
                self.queue.ack(d).await.unwrap();
            }
            delivered += batch.len() as u64;
        }
        assert_eq!(
            delivered, summary.stats.messages,
            "{name}: every message consumed"
        );
        summary
    }

    /// The lake holds every version written so far exactly once.
    async fn assert_exactly_once(&self, name: &str) {
        let rows = s3_lake::rows(&self.clients.s3, &self.bucket).await;
        let lake: Vec<Version> = Version::of_s3(&rows);
        let acc = Accounting::new(&versions(&self.written), &lake, &[], &BTreeSet::new());
        assert!(acc.ok(), "{name}: {:?}", acc.json());
        assert_ok(&acc);
        // The text itself, not only its hash, survives (SQS-refused characters included).
        for r in &rows {
            assert!(
                self.written
                    .iter()
                    .any(|w| w.id == r.id && w.text == r.text),
                "{name}: {r:?}"
            );
        }
    }
}

#[tokio::test]
async fn several_nights_of_live_data_land_every_version_exactly_once() {
    let mut p = Nights::new().await;

    // Night 1: three days of ordinary posts, odd ids, hostile texts, a bulk
    // load of 3,000 items sharing one updated_at, and two from a clock ahead.
    let mut first = Vec::new();
    for i in 0..300 {
        let created = ago(60 + i * 811);
        let updated = if i % 4 == 0 {
            created + chrono::Duration::minutes(30)
        } else {
            created
        };
        first.push(rec(
            format!("post-{i:04}"),
            format!("{} #{i}", TEXTS[i as usize % TEXTS.len()]),
            created,
            updated.min(ago(30)),
        ));
    }
    let odd_ids = [
        "a/b/c".to_string(),
        "../../etc/passwd".to_string(),
        "with spaces and\ttab".to_string(),
        "x".repeat(200),
        "ünïcødé/😀/\u{FFFD}".to_string(),
    ];
    for (i, id) in odd_ids.iter().enumerate() {
        first.push(rec(
            id.clone(),
            format!("odd id {i} is fine"),
            ago(3_000),
            ago(3_000),
        ));
    }
    let hostile = [
        "non-characters \u{FFFE} and \u{FFFF} inside",
        "astral 😀𝄞 \u{10FFFF} \u{1FFFE} and controls \u{1}\u{8}\u{1B}\u{7F}",
        "bidi \u{202E}reversed\u{202C} zwj 👩\u{200D}💻 bom \u{FEFF}",
        "\u{FFFF}",
    ];
    for (i, t) in hostile.iter().enumerate() {
        first.push(rec(format!("hostile-{i}"), *t, ago(5_000), ago(5_000)));
    }
    let bulk_at = ago(600);
    for i in 0..3_000 {
        first.push(rec(
            format!("bulk/{i:05}"),
            format!("imported review {i}: good value"),
            bulk_at - chrono::Duration::days(2),
            bulk_at,
        ));
    }
    let tomorrow = ago(-86_400);
    first.push(rec(
        "ahead-1",
        "from a clock a day ahead",
        ago(100),
        tomorrow,
    ));
    first.push(rec("ahead-2", "also ahead", ago(100), tomorrow));
    let n1 = first.len() as u64;
    p.write(first).await;
    let s = p.night("night-1").await;
    assert_eq!(
        (s.stats.sent_records, s.stats.rejected, s.clock_skewed),
        (n1, 0, 2)
    );
    p.assert_exactly_once("night-1").await;

    // Night 2: updates, late writes inside the lookback, more of the bulk
    // load with the same updated_at that became visible late.
    let mut second = Vec::new();
    for i in (0..300).step_by(6) {
        second.push(rec(
            format!("post-{i:04}"),
            format!("edited: {} #{i}", TEXTS[(i + 1) % TEXTS.len()]),
            ago(60 + i as i64 * 811),
            ago(5),
        ));
    }
    for i in 0..20 {
        second.push(rec(
            format!("late-{i:02}"),
            format!("written late {i}"),
            ago(7_200),
            ago(2_400),
        ));
    }
    for i in 3_000..3_100 {
        second.push(rec(
            format!("bulk/{i:05}"),
            format!("imported review {i}: late part"),
            bulk_at - chrono::Duration::days(2),
            bulk_at,
        ));
    }
    let n2 = second.len() as u64;
    p.write(second).await;
    let s = p.night("night-2").await;
    assert_eq!((s.stats.sent_records, s.clock_skewed), (n2, 0), "{s:?}");
    p.assert_exactly_once("night-2").await;

    // Night 3: nothing new — nothing sent (the bulk load and the clock-ahead
    // records are still inside the window, and in the ledger).
    let s = p.night("night-3").await;
    assert_eq!((s.stats.sent_records, s.clock_skewed), (0, 0), "{s:?}");
    assert!(s.already_sent >= 3_100 + 2, "{s:?}");
    p.assert_exactly_once("night-3").await;

    // Night 4: a second version with the same key (id, updated_at) and other
    // text is a different version: it lands next to the first.
    let late0 = p
        .written
        .iter()
        .find(|r| r.id == "late-00")
        .unwrap()
        .clone();
    p.write(vec![rec(
        "late-00",
        "rewritten in place, same updated_at",
        late0.created_at,
        late0.updated_at,
    )])
    .await;
    let s = p.night("night-4").await;
    assert_eq!(s.stats.sent_records, 1, "{s:?}");
    p.assert_exactly_once("night-4").await;
}
