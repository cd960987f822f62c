//! The producer handler against moto, driven by the same `events/*.json`
//! fixtures `sam local invoke` and `cargo lambda invoke` use.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use etl_aws::testing::{create_queue, create_table, moto, put_items, unique};
use etl_aws::{LockOutcome, SqsQueue, StateStore};
use etl_core::{
    decode_message, BackendError, Delivery, FieldMap, OutgoingMessage, SendReport, WorkQueue,
};
use producer::{Config, Producer, Request, Status};
use serde_json::Value;

const SCHEDULED: &str = include_str!("../../../events/scheduled-event.json");
const BACKFILL: &str = include_str!("../../../events/scheduler-backfill.json");

fn request(json: &str) -> Request {
    Request::from_event(&serde_json::from_str::<Value>(json).unwrap()).unwrap()
}

struct Env {
    dynamodb: aws_sdk_dynamodb::Client,
    queue: SqsQueue,
    state: StateStore,
    config: Config,
}

async fn env(segments: u32, page_limit: Option<i32>, max_pages: Option<u64>) -> Env {
    let clients = moto().clients().await;
    let source = unique("posts");
    let state_table = unique("state");
    create_table(&clients.dynamodb, &source, "id").await;
    create_table(&clients.dynamodb, &state_table, "pk").await;
    let queue_url = create_queue(&clients.sqs, &unique("work")).await;
    let config = Config {
        source_table: source.clone(),
        state_table: state_table.clone(),
        queue_url: queue_url.clone(),
        segments,
        page_limit,
        max_pages,
        message_budget: 2_048,
        fields: FieldMap::default(),
        deadline_margin: Duration::from_secs(5),
    };
    Env {
        state: StateStore::new(clients.dynamodb.clone(), state_table, source),
        queue: SqsQueue::new(clients.sqs.clone(), queue_url),
        dynamodb: clients.dynamodb,
        config,
    }
}

impl Env {
    fn producer(&self) -> Producer {
        Producer::from_parts(
            self.config.clone(),
            self.dynamodb.clone(),
            self.state.clone(),
            Arc::new(self.queue.clone()),
        )
    }

    async fn put(&self, ids: std::ops::Range<usize>, updated: i64, text: &str) {
        let items = ids
            .map(|i| {
                HashMap::from([
                    ("id".to_string(), AttributeValue::S(format!("p{i:04}"))),
                    ("text".to_string(), AttributeValue::S(format!("{text} {i}"))),
                    (
                        "created_at".to_string(),
                        AttributeValue::S("2024-05-01T08:00:00Z".into()),
                    ),
                    (
                        "updated_at".to_string(),
                        AttributeValue::N(updated.to_string()),
                    ),
                ])
            })
            .collect();
        put_items(&self.dynamodb, &self.config.source_table, items).await;
    }

    /// Every record id sent since the last drain, with how many times it was sent.
    async fn drain(&self) -> BTreeMap<String, usize> {
        let mut seen = BTreeMap::new();
        let mut empty = 0;
        for _ in 0..200 {
            let got = self.queue.receive(10, Duration::ZERO).await.unwrap();
            if got.is_empty() {
                empty += 1;
                if empty == 2 {
                    break;
                }
                continue;
            }
            for d in got {
                for r in decode_message(&d.body).unwrap().records {
                    *seen.entry(r.id).or_insert(0) += 1;
                }
                self.queue.ack(&d).await.unwrap();
            }
        }
        seen
    }
}

fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(600)
}

const T0: i64 = 1_714_600_000;

#[tokio::test]
async fn scheduled_event_sends_every_item_once_then_only_changes() {
    let e = env(3, Some(25), None).await;
    e.put(0..150, T0, "great").await;
    let p = e.producer();
    let s = p
        .handle(request(SCHEDULED), later(), "req-1")
        .await
        .unwrap();
    assert_eq!(s.status, Status::Complete);
    assert_eq!(
        (s.stats.read, s.stats.sent_records, s.stats.rejected),
        (150, 150, 0)
    );
    assert!(s.stats.messages > 1 && s.stats.send_calls >= s.stats.messages.div_ceil(10));
    let sent = e.drain().await;
    assert_eq!(sent.len(), 150);
    assert!(sent.values().all(|n| *n == 1));
    let json = serde_json::to_value(&s).unwrap();
    for key in [
        "status",
        "read",
        "rejected",
        "unchanged",
        "sent_records",
        "messages",
        "send_calls",
    ] {
        assert!(json.get(key).is_some(), "summary has {key}: {json}");
    }
    assert_eq!(json["status"], "complete");

    let again = p
        .handle(request(SCHEDULED), later(), "req-2")
        .await
        .unwrap();
    assert_eq!(again.stats.sent_records, 0, "nothing new");
    assert!(e.drain().await.is_empty());

    e.put(10..15, T0 + 60, "edited").await;
    e.put(150..153, T0 + 60, "new").await;
    let third = p
        .handle(request(SCHEDULED), later(), "req-3")
        .await
        .unwrap();
    assert_eq!(third.stats.sent_records, 8);
    let sent = e.drain().await;
    let ids: Vec<_> = sent.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        ["p0010", "p0011", "p0012", "p0013", "p0014", "p0150", "p0151", "p0152"]
    );
    let wm = e.state.load_watermark().await.unwrap().unwrap().value;
    assert_eq!(wm.at.unwrap().timestamp(), T0 + 60);
    assert_eq!(wm.ids_at.len(), 8);
}

#[tokio::test]
async fn backfill_input_resends_everything() {
    let e = env(2, None, None).await;
    e.put(0..40, T0, "fine").await;
    let p = e.producer();
    p.handle(request(SCHEDULED), later(), "r1").await.unwrap();
    assert_eq!(e.drain().await.len(), 40);
    let s = p.handle(request(BACKFILL), later(), "r2").await.unwrap();
    assert_eq!(
        (s.status, s.mode.as_str(), s.stats.sent_records),
        (Status::Complete, "full", 40)
    );
    assert_eq!(e.drain().await.len(), 40);
    let since = Request::from_event(
        &serde_json::json!({"mode":"incremental","since":"2024-05-01T00:00:00Z"}),
    )
    .unwrap();
    let s = p.handle(since, later(), "r3").await.unwrap();
    assert_eq!((s.mode.as_str(), s.stats.sent_records), ("since", 40));
    e.drain().await;
}

#[tokio::test]
async fn a_split_run_resumes_from_its_checkpoint_without_loss_or_duplicates() {
    let e = env(3, Some(7), Some(2)).await;
    e.put(0..90, T0, "ok").await;
    let p = e.producer();
    let mut statuses = Vec::new();
    let mut run_ids = Vec::new();
    for i in 0..60 {
        let s = p
            .handle(request(SCHEDULED), later(), &format!("inv-{i}"))
            .await
            .unwrap();
        statuses.push(s.status);
        run_ids.push(s.run_id.clone());
        if s.status == Status::Complete {
            break;
        }
        assert_eq!(s.status, Status::Partial);
        assert!(s.pages <= 2);
        assert!(
            e.state.load_watermark().await.unwrap().is_none(),
            "watermark moves only at the end"
        );
    }
    assert_eq!(*statuses.last().unwrap(), Status::Complete);
    assert!(statuses.len() > 3, "{statuses:?}");
    assert!(
        run_ids.iter().all(|r| *r == "inv-0"),
        "one run across invocations"
    );
    let sent = e.drain().await;
    assert_eq!(sent.len(), 90, "nothing skipped");
    assert!(
        sent.values().all(|n| *n == 1),
        "nothing sent twice: {sent:?}"
    );
    assert!(
        e.state.load_checkpoint::<Value>().await.unwrap().is_none(),
        "checkpoint cleared"
    );
    assert!(e.state.load_watermark().await.unwrap().is_some());
}

#[tokio::test]
async fn a_deadline_inside_the_margin_stops_before_reading_and_the_next_invocation_finishes() {
    let e = env(2, Some(10), None).await;
    e.put(0..30, T0, "hi").await;
    let p = e.producer();
    let soon = SystemTime::now() + Duration::from_secs(1); // margin is 5 s
    let s = p.handle(request(SCHEDULED), soon, "a").await.unwrap();
    assert_eq!(
        (s.status, s.stats.read, s.stats.sent_records),
        (Status::Partial, 0, 0)
    );
    let resume = Request::from_event(&serde_json::json!({"mode":"resume"})).unwrap();
    let s = p.handle(resume, later(), "b").await.unwrap();
    assert_eq!(
        (s.status, s.resumed, s.stats.sent_records),
        (Status::Complete, true, 30)
    );
    assert_eq!(e.drain().await.len(), 30);
}

#[tokio::test]
async fn a_held_lock_makes_an_overlapping_invocation_skip() {
    let e = env(1, None, None).await;
    e.put(0..5, T0, "x").await;
    assert!(matches!(
        e.state
            .acquire_lock("someone-else", Duration::from_secs(300))
            .await
            .unwrap(),
        LockOutcome::Acquired { .. }
    ));
    let s = e
        .producer()
        .handle(request(SCHEDULED), later(), "mine")
        .await
        .unwrap();
    assert_eq!(s.status, Status::Locked);
    assert_eq!(s.lock_owner.as_deref(), Some("someone-else"));
    assert_eq!(s.stats.sent_records, 0);
    assert!(e.drain().await.is_empty());
}

#[tokio::test]
async fn resume_without_a_checkpoint_is_idle() {
    let e = env(1, None, None).await;
    let resume = Request::from_event(&serde_json::json!({"mode":"resume"})).unwrap();
    let s = e.producer().handle(resume, later(), "x").await.unwrap();
    assert_eq!(s.status, Status::Idle);
}

#[tokio::test]
async fn rejected_items_are_counted_and_the_run_goes_on() {
    let e = env(2, None, None).await;
    e.put(0..10, T0, "good").await;
    let bad = vec![
        HashMap::from([
            ("id".to_string(), AttributeValue::S("nt".into())),
            ("created_at".to_string(), AttributeValue::N("1".into())),
        ]),
        HashMap::from([
            ("id".to_string(), AttributeValue::S("bt".into())),
            ("text".to_string(), AttributeValue::S("t".into())),
            (
                "created_at".to_string(),
                AttributeValue::S("whenever".into()),
            ),
        ]),
    ];
    put_items(&e.dynamodb, &e.config.source_table, bad).await;
    let s = e
        .producer()
        .handle(request(SCHEDULED), later(), "x")
        .await
        .unwrap();
    assert_eq!(
        (s.stats.read, s.stats.rejected, s.stats.sent_records),
        (12, 2, 10)
    );
}

/// A queue whose sends always fail transiently.
struct Throttled;

#[async_trait]
impl WorkQueue for Throttled {
    async fn send(&self, _: &[OutgoingMessage]) -> Result<SendReport, BackendError> {
        Err(BackendError::retryable(
            "SendMessageBatch",
            "queue",
            "Throttling",
        ))
    }
    async fn receive(&self, _: usize, _: Duration) -> Result<Vec<Delivery>, BackendError> {
        Ok(vec![])
    }
    async fn ack(&self, _: &Delivery) -> Result<(), BackendError> {
        Ok(())
    }
    async fn release(&self, _: &Delivery, _: &str) -> Result<(), BackendError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_failing_queue_fails_the_invocation_as_retryable_and_releases_the_lock() {
    let e = env(1, None, None).await;
    e.put(0..3, T0, "x").await;
    let failing = Producer::from_parts(
        e.config.clone(),
        e.dynamodb.clone(),
        e.state.clone(),
        Arc::new(Throttled),
    );
    let err = failing
        .handle(request(SCHEDULED), later(), "f")
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Retryable");
    assert!(err.message.contains("SendMessageBatch"), "{err}");
    assert!(e.state.load_watermark().await.unwrap().is_none());
    let s = e
        .producer()
        .handle(request(SCHEDULED), later(), "g")
        .await
        .unwrap();
    assert_eq!(
        (s.status, s.stats.sent_records),
        (Status::Complete, 3),
        "lock was released"
    );
}
