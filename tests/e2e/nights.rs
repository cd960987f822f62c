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
use etl_core::{Clock, FieldMap, SourceRecord, WorkQueue};
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

/// A clock the test moves: each night reads the time it was set to.
#[derive(Debug)]
struct SteppedClock(std::sync::Mutex<DateTime<Utc>>);

impl SteppedClock {
    fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap() = t;
    }
}

impl etl_core::Clock for SteppedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

impl Nights {
    async fn new() -> Self {
        Self::with_clock(None).await
    }

    async fn with_clock(clock: Option<&'static SteppedClock>) -> Self {
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
            // Small, so the ledger spills to sorted files as it would after a bulk import.
            ledger_spill_dir: std::env::temp_dir(),
            ledger_memory_versions: 500,
        };
        let mut producer = Producer::from_parts(
            config,
            clients.dynamodb.clone(),
            StateStore::new(clients.dynamodb.clone(), &state_table, &source),
            Arc::new(queue.clone()),
        );
        if let Some(clock) = clock {
            producer = producer.with_clock(clock);
        }
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
        let items = records.iter().map(item).collect();
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

/// Nights a day apart on a stepped clock (the producer reads the time from
/// it; the source's timestamps are set relative to it), then a missed night,
/// then the clock stepped back. Late writes behind the window are found in
/// the guard band below it and sent (and counted), those further back are
/// outside every window (a loss by design, the reason for the alarm); the
/// ledger is pruned to two lookbacks; nothing lands twice.
#[tokio::test]
async fn nights_a_day_apart_on_a_stepped_clock_with_a_missed_night_and_the_clock_stepped_back() {
    let clock: &'static SteppedClock = Box::leak(Box::new(SteppedClock(std::sync::Mutex::new(
        ms(Utc::now() - chrono::Duration::days(5)),
    ))));
    let mut p = Nights::with_clock(Some(clock)).await;
    let hour = chrono::Duration::hours(1);
    let day = chrono::Duration::days(1);
    let night1 = clock.now();

    // Night 1: a day of posts before it.
    let first: Vec<SourceRecord> = (0..200)
        .map(|i| {
            let at = night1 - chrono::Duration::minutes(3 + i * 7);
            rec(
                format!("d1/{i:03}"),
                format!("{} #{i}", TEXTS[i as usize % 5]),
                at,
                at,
            )
        })
        .collect();
    p.write(first).await;
    let s = p.night("night-1").await;
    assert_eq!((s.stats.sent_records, s.behind_floor), (200, 0), "{s:?}");
    p.assert_exactly_once("night-1").await;

    // Night 2, a day later: the day's posts, edits, a write inside the
    // lookback, one behind the window but inside the guard band below it,
    // and one further back than that.
    let night2 = night1 + day;
    clock.set(night2);
    let mut second: Vec<SourceRecord> = (0..150)
        .map(|i| {
            let at = night2 - chrono::Duration::minutes(2 + i * 9);
            rec(
                format!("d2/{i:03}"),
                format!("day two {} #{i}", TEXTS[i as usize % 5]),
                at,
                at,
            )
        })
        .collect();
    for i in (0..200).step_by(20) {
        let created = night1 - chrono::Duration::minutes(3 + i * 7);
        second.push(rec(
            format!("d1/{i:03}"),
            format!("edited on day two #{i}"),
            created,
            night2 - hour * 3,
        ));
    }
    second.push(rec(
        "late/inside",
        "dated 30 min before night 1",
        night1 - hour / 2,
        night1 - hour / 2,
    ));
    second.push(rec(
        "late/band",
        "dated 90 min before night 1",
        night1 - hour * 3 / 2,
        night1 - hour * 3 / 2,
    ));
    let beyond = rec(
        "late/beyond",
        "dated 3 h before night 1",
        night1 - hour * 3,
        night1 - hour * 3,
    );
    let n2 = second.len() as u64;
    p.write(second).await;
    // Written to the source, but outside every window: not in the accounting.
    put_items(&p.clients.dynamodb, &p.source, vec![item(&beyond)]).await;
    let s = p.night("night-2").await;
    assert_eq!(
        s.stats.sent_records, n2,
        "the late write in the band is sent: {s:?}"
    );
    assert_eq!(s.behind_floor, 1, "and counted as behind the floor: {s:?}");
    p.assert_exactly_once("night-2").await;

    // Night 3 is missed; night 4 sees two days of posts.
    let night4 = night2 + day * 2;
    clock.set(night4);
    let fourth: Vec<SourceRecord> = (0..120)
        .map(|i| {
            let at = night4 - chrono::Duration::minutes(5 + i * 23);
            rec(
                format!("d4/{i:03}"),
                format!("two days {} #{i}", TEXTS[i as usize % 5]),
                at,
                at,
            )
        })
        .collect();
    p.write(fourth).await;
    let s = p.night("night-4").await;
    assert_eq!((s.stats.sent_records, s.behind_floor), (120, 0), "{s:?}");
    assert!(
        s.ledger_versions < 120,
        "the ledger keeps two lookbacks of versions, not the days before: {s:?}"
    );
    p.assert_exactly_once("night-4").await;

    // The clock is stepped back two hours: nothing is sent again, and the
    // watermark does not move backwards (the next run still skips it all).
    clock.set(night4 - hour * 2);
    let s = p.night("night-4-clock-back").await;
    assert_eq!((s.stats.sent_records, s.behind_floor), (0, 0), "{s:?}");
    clock.set(night4 + hour * 2);
    let fresh = rec(
        "after",
        "written after the clock came back",
        night4 + hour,
        night4 + hour,
    );
    p.write(vec![fresh]).await;
    let s = p.night("night-5").await;
    assert_eq!(s.stats.sent_records, 1, "{s:?}");
    p.assert_exactly_once("night-5").await;

    let rows = s3_lake::rows(&p.clients.s3, &p.bucket).await;
    assert!(
        rows.iter().all(|r| r.id != "late/beyond"),
        "a write older than the guard band is outside every window"
    );
}

/// A source item as `Nights::write` stores it.
fn item(r: &SourceRecord) -> HashMap<String, AttributeValue> {
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
}
