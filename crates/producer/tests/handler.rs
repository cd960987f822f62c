//! The producer handler against moto, driven by the same `events/*.json`
//! fixtures `sam local invoke` and `cargo lambda invoke` use.
// Test helpers unwrap too: a failed setup is the test failing
// (`allow-unwrap-in-tests` only covers the `#[test]` functions themselves).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use etl_aws::{LockOutcome, SqsQueue, StateStore};
use etl_core::{
    decode_message, BackendError, Delivery, FieldMap, OutgoingMessage, SendReport, WorkQueue,
};
use etl_testkit::{create_queue, create_table, moto, put_items, unique};
use producer::{Config, Producer, ProducerState, Request, Status};
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
        lookback: Duration::from_secs(3600),
        // Far below the ledgers these tests build, so every run here keeps
        // its ledger in sorted files on disk and merges them.
        ledger_spill_dir: std::env::temp_dir(),
        ledger_memory_versions: 64,
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
        self.put_named(ids.map(|i| format!("p{i:04}")), updated, text)
            .await
    }

    async fn put_named(&self, ids: impl Iterator<Item = String>, updated: i64, text: &str) {
        let items = ids
            .enumerate()
            .map(|(i, id)| {
                HashMap::from([
                    ("id".to_string(), AttributeValue::S(id)),
                    ("text".to_string(), AttributeValue::S(format!("{text} {i}"))),
                    (
                        "created_at".to_string(),
                        AttributeValue::N((updated - 86_400).to_string()),
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
        for (id, _) in self.drain_records().await {
            *seen.entry(id).or_insert(0) += 1;
        }
        seen
    }

    /// Every (id, text) sent since the last drain.
    async fn drain_records(&self) -> Vec<(String, String)> {
        let mut seen = Vec::new();
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
                    seen.push((r.id, r.text));
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

/// Two hours ago: records of an earlier day, outside a one-hour lookback
/// once a run has completed.
fn t0() -> i64 {
    Utc::now().timestamp() - 7_200
}

fn now() -> i64 {
    Utc::now().timestamp()
}

async fn state(e: &Env) -> Option<ProducerState> {
    e.state.load_watermark().await.unwrap().map(|v| v.value)
}

#[tokio::test]
async fn scheduled_event_sends_every_item_once_then_only_changes() {
    let e = env(3, Some(25), None).await;
    e.put(0..150, t0(), "great").await;
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

    e.put(10..15, now(), "edited").await;
    e.put(150..153, now(), "new").await;
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
    let st = state(&e).await.unwrap();
    assert!(
        (now() - st.watermark.unwrap().timestamp()).abs() < 60,
        "watermark is the run's start"
    );
    assert_eq!(
        st.last_run.unwrap().ledger_versions,
        8,
        "only versions inside the next window are kept"
    );
}

#[tokio::test]
async fn backfill_input_resends_everything() {
    let e = env(2, None, None).await;
    e.put(0..40, t0(), "fine").await;
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
        &serde_json::json!({"mode":"incremental","since": (Utc::now() - chrono::Duration::days(2)).to_rfc3339()}),
    )
    .unwrap();
    let s = p.handle(since, later(), "r3").await.unwrap();
    assert_eq!((s.mode.as_str(), s.stats.sent_records), ("since", 40));
    e.drain().await;
}

#[tokio::test]
async fn a_split_run_resumes_from_its_checkpoint_without_loss_or_duplicates() {
    let e = env(3, Some(7), Some(2)).await;
    e.put(0..90, t0(), "ok").await;
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
        assert!(state(&e).await.is_none(), "watermark moves only at the end");
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
    // What operators see: the whole run's counts, over all its invocations.
    let st = state(&e).await.unwrap();
    let run = st.last_run.clone().unwrap();
    assert_eq!(
        (run.read, run.sent_records, run.invocations as usize),
        (90, 90, statuses.len())
    );
    assert_eq!(st.history, [run], "history holds the completed run");
}

#[tokio::test]
async fn a_deadline_inside_the_margin_stops_before_reading_and_the_next_invocation_finishes() {
    let e = env(2, Some(10), None).await;
    e.put(0..30, t0(), "hi").await;
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
    e.put(0..5, t0(), "x").await;
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

/// A scheduled run that finds the lock held (a resume tick's run, a slow
/// backfill) is not skipped for the night: it asks for its run, and the next
/// resume invocation with nothing to resume starts it, once.
#[tokio::test]
async fn a_scheduled_run_that_finds_the_lock_held_runs_at_the_next_resume_tick() {
    let e = env(1, None, None).await;
    e.put(0..7, now() - 60, "written tonight").await;
    assert!(matches!(
        e.state
            .acquire_lock("resume-tick", Duration::from_secs(300))
            .await
            .unwrap(),
        LockOutcome::Acquired { .. }
    ));
    let p = e.producer();
    let s = p
        .handle(request(SCHEDULED), later(), "nightly")
        .await
        .unwrap();
    assert_eq!((s.status, s.run_requested), (Status::Locked, true), "{s:?}");
    assert_eq!(
        e.state.requested_run().await.unwrap().as_deref(),
        Some("nightly")
    );
    // A backfill request that finds the lock held does not ask for a run.
    let backfill = Request::from_event(&serde_json::json!({"mode":"full"})).unwrap();
    let s = p.handle(backfill, later(), "full").await.unwrap();
    assert_eq!((s.status, s.run_requested), (Status::Locked, false));
    e.state.release_lock("resume-tick").await.unwrap();

    let resume = || Request::from_event(&serde_json::json!({"mode":"resume"})).unwrap();
    let s = p.handle(resume(), later(), "tick-1").await.unwrap();
    assert_eq!(
        (s.status, s.mode.as_str(), s.stats.sent_records),
        (Status::Complete, "incremental", 7),
        "{s:?}"
    );
    assert_eq!(e.state.requested_run().await.unwrap(), None, "answered");
    assert_eq!(e.drain().await.len(), 7);
    let s = p.handle(resume(), later(), "tick-2").await.unwrap();
    assert_eq!(s.status, Status::Idle, "asked once, run once");
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
    e.put(0..10, t0(), "good").await;
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
    e.put(0..3, t0(), "x").await;
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
    assert!(state(&e).await.is_none());
    let s = e
        .producer()
        .handle(request(SCHEDULED), later(), "g")
        .await
        .unwrap();
    // The lock was released; the message the failed invocation staged is
    // sent as it was, and its records are not packed again.
    assert_eq!(
        (
            s.status,
            s.staged_messages,
            s.resent_messages,
            s.stats.sent_records
        ),
        (Status::Complete, 1, 1, 0),
        "{s:?}"
    );
    assert_eq!(e.drain().await.len(), 3);
}

/// Records updated in the minute before a run (and in the same second as it
/// starts) are sent by that run and by no later one.
#[tokio::test]
async fn records_updated_just_before_a_run_are_not_sent_again_by_the_next() {
    let e = env(2, None, None).await;
    e.put(0..20, now() - 30, "fresh").await;
    e.put(20..25, now(), "this second").await;
    let p = e.producer();
    let first = p.handle(request(SCHEDULED), later(), "n1").await.unwrap();
    assert_eq!(first.stats.sent_records, 25);
    assert_eq!(e.drain().await.len(), 25);
    for night in 2..5 {
        let s = p
            .handle(request(SCHEDULED), later(), &format!("n{night}"))
            .await
            .unwrap();
        assert_eq!(
            (s.status, s.stats.sent_records, s.already_sent),
            (Status::Complete, 0, 25),
            "night {night}"
        );
    }
    assert!(e.drain().await.is_empty());
}

/// A record that becomes visible after a run with an `updated_at` behind that
/// run (a writer whose clock is behind, an import keeping original times) is
/// picked up by the next run when it is inside the lookback, exactly once.
#[tokio::test]
async fn late_writes_inside_the_lookback_are_picked_up_once() {
    let e = env(2, None, None).await;
    e.put(0..10, now() - 120, "on time").await;
    let p = e.producer();
    assert_eq!(
        p.handle(request(SCHEDULED), later(), "a")
            .await
            .unwrap()
            .stats
            .sent_records,
        10
    );
    e.drain().await;
    // Older than everything the first run saw, younger than the lookback.
    e.put(100..104, now() - 1_800, "late").await;
    // Older than the lookback: outside every window.
    e.put(200..201, now() - 3 * 3_600, "too late").await;
    let s = p.handle(request(SCHEDULED), later(), "b").await.unwrap();
    assert_eq!(s.stats.sent_records, 4);
    let ids: Vec<String> = e.drain().await.into_keys().collect();
    assert_eq!(ids, ["p0100", "p0101", "p0102", "p0103"]);
    let s = p.handle(request(SCHEDULED), later(), "c").await.unwrap();
    assert_eq!(s.stats.sent_records, 0);
}

/// A writer whose clock is ahead: its records are sent once, counted as
/// clock-skewed once, and not re-sent (re-scored, re-billed) every night.
#[tokio::test]
async fn future_dated_records_are_sent_once_and_counted_as_clock_skewed() {
    let e = env(1, None, None).await;
    e.put(0..3, now() + 86_400, "tomorrow").await;
    e.put(3..5, now() - 60, "today").await;
    let p = e.producer();
    let s = p.handle(request(SCHEDULED), later(), "x1").await.unwrap();
    assert_eq!((s.stats.sent_records, s.clock_skewed), (5, 3));
    assert_eq!(e.drain().await.len(), 5);
    for i in 2..4 {
        let s = p
            .handle(request(SCHEDULED), later(), &format!("x{i}"))
            .await
            .unwrap();
        assert_eq!((s.stats.sent_records, s.clock_skewed), (0, 0), "night {i}");
    }
    assert!(e.drain().await.is_empty());
}

/// A second version with the same key (id, updated_at) but other text is a
/// different version: sent, not dropped as "already sent".
#[tokio::test]
async fn a_conflicting_version_with_the_same_key_is_sent() {
    let e = env(1, None, None).await;
    let at = now() - 300;
    e.put(0..2, at, "first").await;
    let p = e.producer();
    p.handle(request(SCHEDULED), later(), "v1").await.unwrap();
    e.drain().await;
    e.put(0..1, at, "rewritten").await;
    let s = p.handle(request(SCHEDULED), later(), "v2").await.unwrap();
    assert_eq!(s.stats.sent_records, 1);
    assert_eq!(
        e.drain_records().await,
        [("p0000".to_string(), "rewritten 0".to_string())]
    );
}

/// Tens of thousands of items sharing one `updated_at` (a bulk load) with
/// long ids: today's ids-at-the-watermark list would pass DynamoDB's 400 KB
/// item limit; the ledger is chunked, so every night completes, sends nothing
/// twice and sends later updates of some of them.
#[tokio::test]
async fn a_bulk_load_sharing_one_timestamp_completes_every_night() {
    // Pages of 1,000: moto builds a 1 MB page of this table in seconds per
    // segment, and four segments at once on two cores reach the client's
    // 30 s operation timeout (seen here); DynamoDB serves either in milliseconds.
    let mut e = env(4, Some(1000), None).await;
    e.config.message_budget = 200 * 1024;
    let at = now() - 600;
    let n = 16_000;
    let id = |i: usize| format!("bulk/{i:06}/{}", "x".repeat(40));
    e.put_named((0..n).map(id), at, "bulk").await;
    let p = e.producer();
    let s = p
        .handle(request(SCHEDULED), later(), "bulk-1")
        .await
        .unwrap();
    assert_eq!(
        (s.status, s.stats.sent_records),
        (Status::Complete, n as u64)
    );
    assert_eq!(s.ledger_versions, n as u64);
    let sent = e.drain().await;
    assert_eq!(sent.len(), n);
    assert!(sent.values().all(|c| *c == 1));
    let st = state(&e).await.unwrap();
    let ledger = st.ledger.unwrap();
    assert!(ledger.chunks >= 2, "{ledger:?}");
    let s = p
        .handle(request(SCHEDULED), later(), "bulk-2")
        .await
        .unwrap();
    assert_eq!((s.status, s.stats.sent_records), (Status::Complete, 0));
    e.put_named((0..7).map(id), now(), "updated").await;
    let s = p
        .handle(request(SCHEDULED), later(), "bulk-3")
        .await
        .unwrap();
    assert_eq!((s.status, s.stats.sent_records), (Status::Complete, 7));
    let texts: Vec<String> = e
        .drain_records()
        .await
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(texts.len(), 7);
    assert!(texts.iter().all(|t| t.starts_with("updated")), "{texts:?}");
}

/// Texts with characters SQS refuses raw reach the queue (moto) and come
/// back unchanged; the run completes.
#[tokio::test]
async fn texts_with_characters_sqs_refuses_are_sent_and_round_trip() {
    let e = env(1, None, None).await;
    let texts = [
        "non-characters \u{FFFE}\u{FFFF}",
        "astral 😀 \u{10FFFF} controls \u{1}\u{1F}",
        "plain",
    ];
    let items = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            HashMap::from([
                (
                    "id".to_string(),
                    AttributeValue::S(format!("odd/../id {i}")),
                ),
                ("text".to_string(), AttributeValue::S((*t).to_string())),
                (
                    "created_at".to_string(),
                    AttributeValue::N((now() - 60).to_string()),
                ),
            ])
        })
        .collect();
    put_items(&e.dynamodb, &e.config.source_table, items).await;
    let s = e
        .producer()
        .handle(request(SCHEDULED), later(), "u")
        .await
        .unwrap();
    assert_eq!((s.status, s.stats.sent_records), (Status::Complete, 3));
    let mut got = e.drain_records().await;
    got.sort();
    let want: Vec<(String, String)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("odd/../id {i}"), (*t).to_string()))
        .collect();
    assert_eq!(got, want);
}

/// A run split over invocations keeps the versions of every invocation in
/// the ledger: the next night sends none of them again.
#[tokio::test]
async fn a_split_run_leaves_every_invocations_versions_in_the_ledger() {
    let e = env(2, Some(5), Some(1)).await;
    e.put(0..30, now() - 90, "split").await;
    let p = e.producer();
    for i in 0..40 {
        let s = p
            .handle(request(SCHEDULED), later(), &format!("s{i}"))
            .await
            .unwrap();
        if s.status == Status::Complete {
            break;
        }
        // Each checkpoint writes only its invocation's versions (16 bytes of
        // header, 24 a version), never the whole ledger again.
        let cp: producer::RunCheckpoint = e.state.load_checkpoint().await.unwrap().unwrap().value;
        assert_eq!(cp.deltas.len(), i + 1, "{cp:?}");
        assert_eq!(
            cp.deltas.last().unwrap().bytes,
            16 + 24 * s.stats.sent_records,
            "{s:?}"
        );
    }
    assert_eq!(e.drain().await.len(), 30);
    let st = state(&e).await.unwrap();
    assert_eq!(st.last_run.as_ref().unwrap().ledger_versions, 30);
    assert!(st.last_run.unwrap().invocations > 2);
    // The next night is split too (one page per invocation): none sends.
    let mut sent = 0;
    for i in 0..40 {
        let s = p
            .handle(request(SCHEDULED), later(), &format!("t{i}"))
            .await
            .unwrap();
        sent += s.stats.sent_records;
        if s.status == Status::Complete {
            break;
        }
    }
    assert_eq!(sent, 0);
    assert!(e.drain().await.is_empty());
}

/// The state says run `c1` completed but its checkpoint is still there (the
/// clear after the state save failed): the next invocation drops it instead
/// of resuming a finished run with an older ledger and re-sending.
#[tokio::test]
async fn a_checkpoint_left_by_a_completed_run_is_dropped_not_resumed() {
    let e = env(1, None, None).await;
    e.put(0..10, now() - 120, "done").await;
    let p = e.producer();
    assert_eq!(
        p.handle(request(SCHEDULED), later(), "c1")
            .await
            .unwrap()
            .stats
            .sent_records,
        10
    );
    e.drain().await;
    let stale = producer::RunCheckpoint {
        run_id: "c1".into(),
        spec: producer::RunSpec::Incremental,
        floor: None,
        ledger: None,
        deltas: Vec::new(),
        scan: etl_aws::ScanCheckpoint::start(1),
        started_at: Utc::now() - chrono::Duration::minutes(5),
        invocations: 1,
        totals: Default::default(),
    };
    e.state.save_checkpoint(&stale, None).await.unwrap();
    let s = p.handle(request(SCHEDULED), later(), "c2").await.unwrap();
    assert_eq!(
        (s.status, s.resumed, s.stats.sent_records),
        (Status::Complete, false, 0)
    );
    assert!(e.drain().await.is_empty());
    assert!(e.state.load_checkpoint::<Value>().await.unwrap().is_none());
}

/// A ledger generation nothing points at (an invocation saved it, then
/// failed before the conditional write that would have made it live) is
/// deleted by the next completed run; the live one stays.
#[tokio::test]
async fn a_ledger_generation_left_by_a_failed_invocation_is_deleted_by_the_next_completed_run() {
    let e = env(1, None, None).await;
    e.put(0..5, now() - 60, "x").await;
    let orphan = e
        .state
        .save_ledger("failed-run-1", &[7u8; 900_000][..])
        .await
        .unwrap();
    assert_eq!(orphan.chunks, 3);
    assert!(e.state.load_ledger(&orphan).await.is_ok());
    let s = e
        .producer()
        .handle(request(SCHEDULED), later(), "n1")
        .await
        .unwrap();
    assert_eq!(s.status, Status::Complete);
    let err = e.state.load_ledger(&orphan).await.unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    let live = state(&e).await.unwrap().ledger.unwrap();
    assert!(
        e.state.load_ledger(&live).await.is_ok(),
        "the live generation stays"
    );
}

/// A damaged ledger stops incremental runs with an error that names it and
/// the way out; a `full` run does not read it, so it recovers, rebuilding the
/// ledger from what it sends; the next incremental run then sends nothing.
#[tokio::test]
async fn a_full_run_recovers_from_a_damaged_ledger() {
    let e = env(1, None, None).await;
    e.put(0..8, now() - 60, "x").await;
    let p = e.producer();
    p.handle(request(SCHEDULED), later(), "n1").await.unwrap();
    assert_eq!(e.drain().await.len(), 8);
    let live = state(&e).await.unwrap().ledger.unwrap();
    e.state.delete_ledger(&live).await.unwrap();
    let err = p
        .handle(request(SCHEDULED), later(), "n2")
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "NonRetryable");
    assert!(err.message.contains("missing"), "{err}");
    let s = p.handle(request(BACKFILL), later(), "full").await.unwrap();
    assert_eq!(
        (s.status, s.stats.sent_records),
        (Status::Complete, 8),
        "{s:?}"
    );
    assert_eq!(e.drain().await.len(), 8, "re-scored on purpose");
    let s = p.handle(request(SCHEDULED), later(), "n3").await.unwrap();
    assert_eq!(
        (s.status, s.stats.sent_records),
        (Status::Complete, 0),
        "{s:?}"
    );
}

/// A `since` backfill from an instant later than the incremental floor does
/// not read what was updated between the two, so it leaves the watermark
/// where it was: a record updated in that gap (written after the last run,
/// dated before the backfill's instant) is still sent by the next
/// incremental run, once; what the backfill sent is not sent again.
#[tokio::test]
async fn a_since_later_than_the_floor_leaves_the_watermark_and_loses_nothing() {
    let e = env(1, None, None).await;
    e.put(0..4, now() - 10_000, "old").await;
    let p = e.producer();
    p.handle(request(SCHEDULED), later(), "n1").await.unwrap();
    assert_eq!(e.drain().await.len(), 4);
    let watermark = state(&e).await.unwrap().watermark;
    // Written late, dated 30 min ago: inside the next incremental window.
    e.put_named(["gap".to_string()].into_iter(), now() - 1_800, "gap")
        .await;
    e.put_named(["recent".to_string()].into_iter(), now() - 60, "recent")
        .await;
    let since = (Utc::now() - chrono::Duration::minutes(10)).to_rfc3339();
    let req = Request::from_event(&serde_json::json!({ "since": since })).unwrap();
    let s = p.handle(req, later(), "since").await.unwrap();
    assert_eq!(
        (s.status, s.stats.sent_records),
        (Status::Complete, 1),
        "{s:?}"
    );
    assert_eq!(e.drain().await.keys().collect::<Vec<_>>(), ["recent"]);
    assert_eq!(
        state(&e).await.unwrap().watermark,
        watermark,
        "the watermark stays"
    );
    let s = p.handle(request(SCHEDULED), later(), "n2").await.unwrap();
    assert_eq!(s.stats.sent_records, 1, "{s:?}");
    assert_eq!(e.drain().await.keys().collect::<Vec<_>>(), ["gap"]);
}

/// A backfill that replaces an unfinished run's checkpoint keeps the
/// versions that run already sent: the backfill (here, a `since` before any
/// completed run, which does not set the watermark) completes, and the next
/// incremental run sends what the replaced run had not sent, and nothing
/// twice.
#[tokio::test]
async fn a_backfill_replacing_an_unfinished_run_keeps_what_it_sent() {
    let e = env(1, Some(2), Some(1)).await;
    e.put(0..6, now() - 60, "x").await;
    let p = e.producer();
    let s = p.handle(request(SCHEDULED), later(), "a1").await.unwrap();
    assert_eq!(
        (s.status, s.stats.sent_records),
        (Status::Partial, 2),
        "{s:?}"
    );
    let since = (Utc::now() - chrono::Duration::seconds(10)).to_rfc3339();
    let mut first = true;
    for i in 0..10 {
        let req = Request::from_event(&serde_json::json!({ "since": since })).unwrap();
        let s = p.handle(req, later(), &format!("b{i}")).await.unwrap();
        if first {
            assert_eq!(
                s.ledger_versions, 2,
                "the replaced run's versions carried over: {s:?}"
            );
            first = false;
        }
        assert_eq!(s.stats.sent_records, 0, "{s:?}");
        if s.status == Status::Complete {
            break;
        }
    }
    assert!(
        state(&e).await.unwrap().watermark.is_none(),
        "no watermark before an incremental run completes"
    );
    let mut sent = e.drain().await;
    for i in 0..10 {
        let s = p
            .handle(request(SCHEDULED), later(), &format!("c{i}"))
            .await
            .unwrap();
        for (id, n) in e.drain().await {
            *sent.entry(id).or_insert(0) += n;
        }
        if s.status == Status::Complete {
            break;
        }
    }
    assert_eq!(sent.len(), 6, "{sent:?}");
    assert!(
        sent.values().all(|n| *n == 1),
        "nothing sent twice: {sent:?}"
    );
}

/// The ledger's spill files cannot be written (`/tmp` full, a wrong
/// `LEDGER_SPILL_DIR`): the invocation fails naming the directory, sends
/// nothing it could not record, and its retry with room sends every
/// version exactly once.
#[tokio::test]
async fn a_ledger_that_cannot_spill_fails_the_run_and_the_retry_sends_each_version_once() {
    let mut e = env(2, Some(40), None).await;
    // Inside the window, so every version sent is kept in the ledger.
    e.put(0..400, now() - 60, "bulk import").await;
    let good = e.config.ledger_spill_dir.clone();
    e.config.ledger_spill_dir = "/nonexistent/etl-ledger-spill".into();
    let err = e
        .producer()
        .handle(request(SCHEDULED), later(), "no-room")
        .await
        .unwrap_err();
    assert!(
        err.message.contains("/nonexistent/etl-ledger-spill")
            && err.message.contains("LEDGER_SPILL_DIR"),
        "{err}"
    );
    assert!(state(&e).await.is_none(), "the run did not complete");
    let mut sent = e.drain().await;
    assert!(
        sent.len() < 400,
        "the filter stopped at the failure: {} sent",
        sent.len()
    );
    e.config.ledger_spill_dir = good;
    let s = e
        .producer()
        .handle(request(SCHEDULED), later(), "retry")
        .await
        .unwrap();
    assert_eq!(s.status, Status::Complete, "{s:?}");
    assert_eq!(s.ledger_versions, 400, "{s:?}");
    for (id, n) in e.drain().await {
        *sent.entry(id).or_insert(0) += n;
    }
    assert_eq!(sent.len(), 400);
    assert!(sent.values().all(|n| *n == 1), "{sent:?}");
}
