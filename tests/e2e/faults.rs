//! Reliability scenarios: the pipeline under injected faults, each ending
//! with an exact accounting — every source record is exactly once in the
//! lake (read back from Parquet) or in a dead-letter place with a reason,
//! nothing else.
//!
//! AWS scenarios run the real producer and consumer handlers against moto
//! through `etl_testkit::FaultProxy` (throttling, 5xx, connection
//! resets, slow answers, partially failed SQS batches) and, for Comprehend,
//! the loopback `ComprehendStub`. The SQS event source mapping is played by
//! [`drain`]: receive a batch, run the handler, delete what succeeded, make
//! what failed visible again (as its visibility timeout would); moto's
//! redrive policy moves a message to the dead-letter queue after the
//! maximum receive count. Local scenarios run `etl_local` with failing
//! analyzers.
//!
//! Lost answers and hangs (a request applied but never answered, or held
//! until the client's timeout gives up) are in [`lost_answers`].
//!
//! With `RELIABILITY_REPORT=<path>` each scenario appends one JSON line with
//! its figures (faults injected per kind and operation, records accounted);
//! `make reliability` summarises them (tools/reliability_report.py).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeZone, Utc};
use consumer::{BatchHandler, Deps};
use etl_testkit::{
    create_bucket, create_queue_with_dlq, create_table, moto, put_items, sqs_event_json,
    stub_label, unique, ComprehendStub, Fault, FaultProxy, Rule, Trigger,
};
use etl_aws::{
    Clients, ComprehendAnalyzer, GlueCatalog, LanguageMode, S3Sink, SqsQueue, StateStore, Timeouts,
};
use etl_core::message::SQS_MAX_MESSAGE_BYTES;
use etl_core::{
    decode_message, AnalyzeError, BackendError, ConsumeOptions, Consumer, Delivery, Document,
    Engine, FieldMap, OutgoingMessage, Packer, SendReport, SentimentAnalyzer, SentimentScore,
    SourceRecord, VaderAnalyzer, WorkQueue,
};
use producer::{Producer, Request, Status};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::support::accounting::{report, versions, Accounting, FromLake, Version};
use crate::support::{s3_lake, TEXTS};

mod lost_answers;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------------
// Source data
// ---------------------------------------------------------------------------

/// When this test binary started, to the second: fixtures are dated
/// relative to it, as live data is.
fn now() -> DateTime<Utc> {
    static NOW: OnceLock<DateTime<Utc>> = OnceLock::new();
    *NOW.get_or_init(|| {
        let n = Utc::now();
        Utc.timestamp_opt(n.timestamp(), 0).unwrap()
    })
}

/// Record `i`'s time: two minutes before [`now`] and 37 minutes further back
/// per record, so a few hundred records span about a week of partitions and
/// none is in the future.
fn created(i: usize) -> DateTime<Utc> {
    now() - chrono::Duration::minutes(2 + i as i64 * 37)
}

fn record(i: usize, text: String) -> SourceRecord {
    SourceRecord {
        id: format!("item-{i:04}"),
        text,
        created_at: created(i),
        updated_at: created(i),
        attributes: Default::default(),
    }
}

fn plain_records(n: usize) -> Vec<SourceRecord> {
    (0..n)
        .map(|i| record(i, format!("{} (#{i})", TEXTS[i % TEXTS.len()])))
        .collect()
}

fn to_item(r: &SourceRecord) -> std::collections::HashMap<String, AttributeValue> {
    std::collections::HashMap::from([
        ("id".to_string(), AttributeValue::S(r.id.clone())),
        ("text".to_string(), AttributeValue::S(r.text.clone())),
        (
            "created_at".to_string(),
            AttributeValue::S(r.created_at.to_rfc3339()),
        ),
    ])
}

fn ids(records: &[SourceRecord]) -> BTreeSet<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

/// The accounting of a scenario in which nothing may be dead-lettered.
fn exactly_once(records: &[SourceRecord], lake: &[Version]) -> Accounting {
    Accounting::new(&versions(records), lake, &[], &BTreeSet::new())
}

fn pack(records: Vec<SourceRecord>, budget: usize) -> Vec<OutgoingMessage> {
    let mut packer = Packer::new(budget, Some(SQS_MAX_MESSAGE_BYTES));
    let mut out = Vec::new();
    for r in records {
        out.extend(packer.push(r).unwrap());
    }
    while let Some(m) = packer.flush() {
        out.push(m);
    }
    out
}

/// The versions in a dead-lettered message body, each with `reason`.
fn dead_versions(body: &str, reason: &str) -> Vec<(Version, String)> {
    decode_message(body)
        .map(|m| {
            m.records
                .iter()
                .map(|r| (Version::of(r), reason.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn body_ids(body: &str) -> Vec<String> {
    decode_message(body)
        .map(|m| m.records.into_iter().map(|r| r.id).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The AWS side: moto, the proxy in front of it, the handlers
// ---------------------------------------------------------------------------

struct Aws {
    proxy: FaultProxy,
    /// Clients through the proxy: what the pipeline uses.
    via: Clients,
    /// Clients straight to moto: what the test harness uses to set up and check.
    direct: Clients,
    source: String,
    state: String,
    bucket: String,
    database: String,
    queue_url: String,
    dlq_url: String,
}

async fn aws_env(tag: &str, seed: u64, max_receive: u32, stub: Option<&ComprehendStub>) -> Aws {
    aws_env_with(tag, seed, max_receive, stub, &Timeouts::default()).await
}

/// Client timeouts for the lost-answer and hang scenarios: an attempt gives
/// up after 1 s (the read limit is longer, so it is the attempt limit that
/// fires), which keeps a held connection cheap to wait out. Far above what
/// moto needs for one call on loopback.
fn short_timeouts() -> Timeouts {
    Timeouts {
        connect: ms(1_000),
        read: ms(5_000),
        attempt: ms(1_000),
        operation: ms(10_000),
    }
}

/// A hold longer than any client here waits: the client's timeout ends it.
const HOLD: Duration = Duration::from_secs(15);

/// [`aws_env`] whose pipeline clients use `timeouts`.
async fn aws_env_with(
    tag: &str,
    seed: u64,
    max_receive: u32,
    stub: Option<&ComprehendStub>,
    timeouts: &Timeouts,
) -> Aws {
    let m = moto();
    let proxy = match stub {
        Some(s) => FaultProxy::start_with_comprehend(m.addr(), s, seed).await,
        None => FaultProxy::start(m.addr(), seed).await,
    };
    let direct = m.clients().await;
    let via = proxy.clients_with(timeouts).await;
    let (source, state, bucket) = (
        unique(&format!("{tag}-src")),
        unique(&format!("{tag}-state")),
        unique(&format!("{tag}-lake")),
    );
    let database = unique(&format!("{tag}_db")).replace('-', "_");
    create_table(&direct.dynamodb, &source, "id").await;
    create_table(&direct.dynamodb, &state, "pk").await;
    create_bucket(&direct.s3, &bucket).await;
    let (queue_url, dlq_url) =
        create_queue_with_dlq(&direct.sqs, &unique(&format!("{tag}-work")), max_receive).await;
    Aws {
        proxy,
        via,
        direct,
        source,
        state,
        bucket,
        database,
        queue_url,
        dlq_url,
    }
}

impl Aws {
    /// The queue as the test harness (event source mapping) sees it: no faults.
    fn harness_queue(&self) -> SqsQueue {
        SqsQueue::new(self.direct.sqs.clone(), &self.queue_url)
    }

    async fn put_source(&self, records: &[SourceRecord]) {
        put_items(
            &self.direct.dynamodb,
            &self.source,
            records.iter().map(to_item).collect(),
        )
        .await;
    }

    fn producer_config(
        &self,
        segments: u32,
        page_limit: i32,
        max_pages: Option<u64>,
        budget: usize,
    ) -> producer::Config {
        producer::Config {
            source_table: self.source.clone(),
            state_table: self.state.clone(),
            queue_url: self.queue_url.clone(),
            segments,
            page_limit: Some(page_limit),
            max_pages,
            message_budget: budget,
            fields: FieldMap::default(),
            deadline_margin: Duration::from_secs(5),
            lookback: etl_core::incremental::DEFAULT_LOOKBACK,
        }
    }

    fn producer(&self, config: producer::Config, queue: Arc<dyn WorkQueue>) -> Producer {
        Producer::from_parts(
            config,
            self.via.dynamodb.clone(),
            StateStore::new(self.via.dynamodb.clone(), &self.state, &self.source),
            queue,
        )
    }

    /// A consumer "container" using the clients through the proxy.
    fn consumer(
        &self,
        analyzer: Arc<dyn SentimentAnalyzer>,
        comprehend: Option<Arc<ComprehendAnalyzer>>,
    ) -> Arc<BatchHandler> {
        let sink = S3Sink::new(self.via.s3.clone(), &self.bucket, "lake");
        let catalog = GlueCatalog::new(
            self.via.glue.clone(),
            &self.database,
            "sentiment",
            sink.table_location(),
        );
        let deps = Deps {
            analyzer,
            sink: Arc::new(sink),
            catalog: Arc::new(catalog),
            views: None,
            comprehend,
        };
        Arc::new(BatchHandler::from_deps(
            deps,
            "sentiment",
            ConsumeOptions::default(),
            4,
        ))
    }

    /// A consumer wired as the template wires it: refused records to the
    /// dead-letter queue alone, transient ones back on the work queue (both
    /// through the proxy).
    fn routed_consumer(
        &self,
        analyzer: Arc<dyn SentimentAnalyzer>,
        comprehend: Option<Arc<ComprehendAnalyzer>>,
    ) -> Arc<BatchHandler> {
        let plain = Arc::try_unwrap(self.consumer(analyzer, comprehend))
            .unwrap_or_else(|_| unreachable!("a fresh handler has one owner"));
        Arc::new(
            plain
                .with_dead_letters(Arc::new(etl_aws::sqs::SqsDeadLetters::new(
                    self.via.sqs.clone(),
                    &self.dlq_url,
                )))
                .with_requeue(Arc::new(SqsQueue::new(
                    self.via.sqs.clone(),
                    &self.queue_url,
                ))),
        )
    }

    fn vader_consumer(&self) -> Arc<BatchHandler> {
        self.consumer(Arc::new(VaderAnalyzer::new()), None)
    }

    /// Send messages without faults (the harness's producer).
    async fn send_direct(&self, messages: &[OutgoingMessage]) {
        self.harness_queue().send(messages).await.unwrap();
    }

    /// The version of every row in the lake (repeats kept), read back from
    /// its Parquet, and the dts.
    async fn lake(&self) -> (Vec<Version>, BTreeSet<String>) {
        let rows = s3_lake::rows(&self.direct.s3, &self.bucket).await;
        let dts = rows.iter().map(|r| r.dt.clone()).collect();
        (Version::of_s3(&rows), dts)
    }

    async fn lake_rows(&self) -> Vec<s3_lake::S3Row> {
        s3_lake::rows(&self.direct.s3, &self.bucket).await
    }

    /// Every message in the dead-letter queue (deleted as read).
    async fn dead_letters(&self) -> Vec<Delivery> {
        let dlq = SqsQueue::new(self.direct.sqs.clone(), &self.dlq_url);
        let mut out = Vec::new();
        let mut empty = 0;
        for _ in 0..200 {
            let batch = dlq.receive(10, Duration::ZERO).await.unwrap();
            if batch.is_empty() {
                empty += 1;
                if empty == 2 {
                    break;
                }
                continue;
            }
            for d in &batch {
                dlq.ack(d).await.unwrap();
            }
            out.extend(batch);
        }
        out
    }

    async fn glue_partitions(&self) -> BTreeSet<String> {
        let parts = self
            .direct
            .glue
            .get_partitions()
            .database_name(&self.database)
            .table_name("sentiment")
            .send()
            .await
            .unwrap();
        parts
            .partitions()
            .iter()
            .map(|p| p.values().join(","))
            .collect()
    }

    fn faults(&self) -> Value {
        self.proxy.counts().to_json()
    }
}

fn to_event(deliveries: &[Delivery]) -> SqsEvent {
    serde_json::from_value(sqs_event_json(
        deliveries,
        "arn:aws:sqs:us-east-1:123456789012:work",
    ))
    .unwrap()
}

/// What the event source mapping saw.
#[derive(Debug, Default)]
struct Drain {
    batches: u64,
    deliveries: u64,
    redeliveries: u64,
    failed_items: u64,
    invocation_errors: u64,
    /// Per batch, the failed message ids (for "the rest of the batch succeeded").
    failures_per_batch: Vec<(Vec<String>, Vec<String>)>,
}

impl Drain {
    fn json(&self) -> Value {
        json!({
            "batches": self.batches,
            "deliveries": self.deliveries,
            "redeliveries": self.redeliveries,
            "failed_items": self.failed_items,
            "invocation_errors": self.invocation_errors,
        })
    }
}

/// Play the SQS event source mapping until the queue is empty (bounded):
/// up to one batch of 10 per handler ("container"), handled concurrently;
/// successes are deleted, failures made visible again at once.
async fn drain(queue: &SqsQueue, handlers: &[Arc<BatchHandler>], max_rounds: usize) -> Drain {
    let mut d = Drain::default();
    let mut empty = 0;
    for _ in 0..max_rounds {
        let mut batches = Vec::new();
        for _ in handlers {
            let b = queue.receive(10, Duration::ZERO).await.unwrap();
            if !b.is_empty() {
                batches.push(b);
            }
        }
        if batches.is_empty() {
            empty += 1;
            if empty == 2 {
                return d;
            }
            continue;
        }
        empty = 0;
        let mut tasks = Vec::new();
        for (h, b) in handlers.iter().zip(batches) {
            let h = Arc::clone(h);
            tasks.push(tokio::spawn(async move {
                let r = h.handle(to_event(&b)).await;
                (b, r)
            }));
        }
        for t in tasks {
            let (batch, result) = t.await.unwrap();
            d.batches += 1;
            d.deliveries += batch.len() as u64;
            d.redeliveries += batch.iter().filter(|x| x.receive_count > 1).count() as u64;
            let failed: HashSet<String> = match result {
                Ok(o) => o
                    .response
                    .batch_item_failures
                    .iter()
                    .map(|f| f.item_identifier.clone())
                    .collect(),
                Err(_) => {
                    d.invocation_errors += 1;
                    batch.iter().map(|x| x.message_id.clone()).collect()
                }
            };
            d.failures_per_batch.push((
                batch.iter().map(|x| x.message_id.clone()).collect(),
                failed.iter().cloned().collect(),
            ));
            for x in &batch {
                if failed.contains(&x.message_id) {
                    d.failed_items += 1;
                    queue.release(x, "failed").await.unwrap();
                } else {
                    queue.ack(x).await.unwrap();
                }
            }
        }
    }
    panic!("the queue was not drained within {max_rounds} rounds: {d:?}");
}

/// A work queue that records what was sent and can stop ("kill") or pause
/// its caller after a number of send calls.
struct Recorder {
    inner: SqsQueue,
    sent: Mutex<Vec<(String, Vec<String>)>>,
    calls: AtomicUsize,
    kill_after: Option<(usize, Arc<Notify>)>,
    pause_after_first: Option<(Arc<Notify>, Arc<Notify>)>,
}

impl Recorder {
    fn new(inner: SqsQueue) -> Self {
        Self {
            inner,
            sent: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
            kill_after: None,
            pause_after_first: None,
        }
    }

    /// (content id, record ids) of every message sent, in order.
    fn take(&self) -> Vec<(String, Vec<String>)> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

#[async_trait]
impl WorkQueue for Recorder {
    async fn send(&self, messages: &[OutgoingMessage]) -> Result<SendReport, BackendError> {
        let report = self.inner.send(messages).await?;
        self.sent.lock().unwrap().extend(
            messages
                .iter()
                .map(|m| (m.content_id.clone(), body_ids(&m.body))),
        );
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some((k, signal)) = &self.kill_after {
            if n >= *k {
                signal.notify_one();
                // The process dies here: the caller's future is dropped.
                std::future::pending::<()>().await;
            }
        }
        if let Some((paused, resume)) = &self.pause_after_first {
            if n == 1 {
                paused.notify_one();
                resume.notified().await;
            }
        }
        Ok(report)
    }
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BackendError> {
        self.inner.receive(max, wait).await
    }
    async fn ack(&self, d: &Delivery) -> Result<(), BackendError> {
        self.inner.ack(d).await
    }
    async fn release(&self, d: &Delivery, reason: &str) -> Result<(), BackendError> {
        self.inner.release(d, reason).await
    }
}

fn far_deadline() -> SystemTime {
    SystemTime::now() + Duration::from_secs(600)
}

fn flatten(sent: &[(String, Vec<String>)]) -> Vec<String> {
    sent.iter()
        .flat_map(|(_, ids)| ids.iter().cloned())
        .collect()
}

/// Let the run lock expire (what its TTL does after a crash) without waiting.
async fn expire_lock(env: &Aws) {
    env.direct
        .dynamodb
        .put_item()
        .table_name(&env.state)
        .item("pk", AttributeValue::S(format!("{}#lock", env.source)))
        .item("owner", AttributeValue::S("crashed-invocation".into()))
        .item("expires_at", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------
// AWS scenarios
// ---------------------------------------------------------------------------

/// Deadline stops and a killed invocation (future dropped, checkpoint not
/// saved, lock left behind), then runs again: the checkpointed part is never
/// re-sent, nothing is skipped, and what the killed invocation had sent is
/// re-sent as identical messages (same content ids), so the lake holds each
/// record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_producer_interrupted_by_deadline_and_kill_resumes_without_loss_or_duplicates() {
    let started = Instant::now();
    let env = aws_env("flt-kill", 11, 3, None).await;
    let records = plain_records(300);
    env.put_source(&records).await;
    let source = ids(&records);
    let budget = 1_500;

    // A: two invocations stopped by the page budget (MAX_PAGES_PER_INVOCATION).
    let rec = Arc::new(Recorder::new(SqsQueue::new(
        env.via.sqs.clone(),
        &env.queue_url,
    )));
    let p = env.producer(env.producer_config(3, 10, Some(3), budget), rec.clone());
    for id in ["inv-a1", "inv-a2"] {
        let s = p
            .handle(Request::Scheduled, far_deadline(), id)
            .await
            .unwrap();
        assert_eq!(s.status, Status::Partial, "{s:?}");
    }
    // B: an invocation whose deadline (minus the margin) has already come.
    let s = p
        .handle(
            Request::Scheduled,
            SystemTime::now() + Duration::from_secs(1),
            "inv-b",
        )
        .await
        .unwrap();
    assert_eq!(
        (s.status, s.pages, s.stats.sent_records),
        (Status::Partial, 0, 0),
        "{s:?}"
    );
    let sent_a = rec.take();

    // C: killed after its first send call; its first Scan answer is slow, so
    // its pages arrive in another order than in the run that replaces it.
    env.proxy.set_rules(vec![Rule::new(
        "dynamodb",
        "Scan",
        Fault::Slow(ms(250)),
        Trigger::Calls(vec![1]),
    )]);
    let killed = Notify::new();
    let killed = Arc::new(killed);
    let mut rec_c = Recorder::new(SqsQueue::new(env.via.sqs.clone(), &env.queue_url));
    rec_c.kill_after = Some((1, killed.clone()));
    let rec_c = Arc::new(rec_c);
    let pc = env.producer(env.producer_config(3, 10, None, budget), rec_c.clone());
    tokio::select! {
        r = pc.handle(Request::Scheduled, far_deadline(), "inv-c") => panic!("the invocation should have been killed: {r:?}"),
        _ = killed.notified() => {}
    }
    drop(pc);
    let sent_c = rec_c.take();
    env.proxy.clear_rules();

    // The dead invocation still holds the lock: nobody else may send.
    let s = p
        .handle(Request::Scheduled, far_deadline(), "inv-d0")
        .await
        .unwrap();
    assert_eq!(s.status, Status::Locked);
    expire_lock(&env).await;

    // D: runs again to completion; E: nothing new.
    let pd = env.producer(env.producer_config(3, 10, None, budget), rec.clone());
    let s = pd
        .handle(Request::Scheduled, far_deadline(), "inv-d")
        .await
        .unwrap();
    assert_eq!(s.status, Status::Complete, "{s:?}");
    assert!(s.resumed);
    let sent_d = rec.take();
    let s = pd
        .handle(Request::Scheduled, far_deadline(), "inv-e")
        .await
        .unwrap();
    assert_eq!((s.status, s.stats.sent_records), (Status::Complete, 0));

    let (a, c, d) = (flatten(&sent_a), flatten(&sent_c), flatten(&sent_d));
    let a_set: BTreeSet<_> = a.iter().cloned().collect();
    let d_set: BTreeSet<_> = d.iter().cloned().collect();
    assert!(!a.is_empty() && !c.is_empty());
    assert_eq!(a_set.len(), a.len(), "nothing sent twice before the kill");
    assert_eq!(d_set.len(), d.len(), "nothing sent twice by the rerun");
    assert!(
        a_set.is_disjoint(&d_set),
        "checkpointed pages are not sent again"
    );
    assert!(c.iter().all(|id| !a_set.contains(id)));
    let all: BTreeSet<_> = a_set.union(&d_set).cloned().collect();
    assert_eq!(all, source, "nothing skipped");
    let d_content: HashSet<&String> = sent_d.iter().map(|(cid, _)| cid).collect();
    let c_resent_identically = sent_c
        .iter()
        .filter(|(cid, _)| d_content.contains(cid))
        .count();
    assert_eq!(
        c_resent_identically,
        sent_c.len(),
        "the killed invocation's messages are re-sent with the same content ids"
    );

    let consumer = env.vader_consumer();
    let drained = drain(&env.harness_queue(), &[consumer], 200).await;
    let (lake, _) = env.lake().await;
    let acc = exactly_once(&records, &lake);
    report(
        "producer interrupted (deadline, page budget, killed) then rerun",
        "aws",
        &acc,
        env.faults(),
        json!({
            "invocations": 7,
            "records_sent_before_kill_checkpointed": a.len(),
            "records_sent_by_killed_invocation": c.len(),
            "messages_resent_identically": c_resent_identically,
            "records_sent_by_rerun": d.len(),
            "drain": drained.json(),
        }),
        started,
    );
}

/// Two overlapping producer invocations: the second finds the lock and sends
/// nothing; the first completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_overlapping_producer_runs_only_one_sends() {
    let started = Instant::now();
    let env = aws_env("flt-overlap", 12, 3, None).await;
    let records = plain_records(120);
    env.put_source(&records).await;
    // The lock's conditional PutItem is throttled once (and retried by the SDK).
    env.proxy.set_rules(vec![Rule::new(
        "dynamodb",
        "PutItem",
        Fault::Throttle,
        Trigger::Calls(vec![1]),
    )]);
    let (paused, resume) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let mut rec_a = Recorder::new(SqsQueue::new(env.via.sqs.clone(), &env.queue_url));
    rec_a.pause_after_first = Some((paused.clone(), resume.clone()));
    let rec_a = Arc::new(rec_a);
    let rec_b = Arc::new(Recorder::new(SqsQueue::new(
        env.via.sqs.clone(),
        &env.queue_url,
    )));
    let pa = env.producer(env.producer_config(2, 10, None, 1_500), rec_a.clone());
    let pb = env.producer(env.producer_config(2, 10, None, 1_500), rec_b.clone());
    let (a, b) = tokio::join!(
        pa.handle(Request::Scheduled, far_deadline(), "inv-a"),
        async {
            paused.notified().await; // A is mid-run, holding the lock
            let b = pb.handle(Request::Full, far_deadline(), "inv-b").await;
            resume.notify_one();
            b
        }
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.status, Status::Complete);
    assert_eq!(b.status, Status::Locked);
    assert_eq!(b.lock_owner.as_deref(), Some("inv-a"));
    assert!(
        rec_b.take().is_empty(),
        "the locked invocation sent nothing"
    );
    assert_eq!(a.stats.sent_records, 120);
    // Afterwards the lock is free again.
    let again = pb
        .handle(Request::Scheduled, far_deadline(), "inv-c")
        .await
        .unwrap();
    assert_eq!(
        (again.status, again.stats.sent_records),
        (Status::Complete, 0)
    );
    env.proxy.clear_rules();

    let drained = drain(&env.harness_queue(), &[env.vader_consumer()], 100).await;
    let (lake, _) = env.lake().await;
    let acc = exactly_once(&records, &lake);
    report(
        "two producer runs overlapping",
        "aws",
        &acc,
        env.faults(),
        json!({"locked_invocations": 1, "sent_by_winner": a.stats.sent_records, "drain": drained.json()}),
        started,
    );
}

/// The consumer writes its objects and dies before acknowledging: the
/// redelivered messages rewrite their own objects (same keys), and the lake
/// holds each record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_consumer_crash_after_write_before_ack_rewrites_same_keys() {
    let started = Instant::now();
    let env = aws_env("flt-crash", 13, 3, None).await;
    let records = plain_records(90);
    let messages = pack(records.clone(), 1_500);
    env.send_direct(&messages).await;
    let queue = env.harness_queue();
    let consumer = env.vader_consumer();

    let first = queue.receive(10, Duration::ZERO).await.unwrap();
    assert!(!first.is_empty());
    let out = consumer.handle(to_event(&first)).await.unwrap();
    assert!(out.response.batch_item_failures.is_empty());
    let keys_after_crash = s3_lake::keys(&env.direct.s3, &env.bucket).await;
    // Crash: no ack; the visibility timeout runs out and the batch comes back.
    for d in &first {
        queue.release(d, "crashed before ack").await.unwrap();
    }
    let puts_before = env.proxy.counts().get("s3", "PutObject", "forwarded");
    let drained = drain(&queue, &[consumer], 100).await;
    assert!(drained.redeliveries >= first.len() as u64);
    let keys = s3_lake::keys(&env.direct.s3, &env.bucket).await;
    assert!(keys_after_crash.iter().all(|k| keys.contains(k)));
    assert_eq!(
        keys.len(),
        messages.len(),
        "one object per message, no extra keys"
    );
    let expected: BTreeSet<String> = messages.iter().map(|m| m.content_id.clone()).collect();
    let named: BTreeSet<String> = keys
        .iter()
        .map(|k| {
            k.rsplit("part-")
                .next()
                .unwrap()
                .trim_end_matches(".parquet")
                .to_owned()
        })
        .collect();
    assert_eq!(named, expected, "objects are named after the content ids");
    let puts = env.proxy.counts().get("s3", "PutObject", "forwarded");
    assert_eq!(puts_before, first.len() as u64);
    assert_eq!(
        puts,
        messages.len() as u64 + first.len() as u64,
        "the redelivered batch rewrote its objects"
    );

    let (lake, _) = env.lake().await;
    let acc = exactly_once(&records, &lake);
    report(
        "consumer crash after S3 write, before ack",
        "aws",
        &acc,
        env.faults(),
        json!({"messages": messages.len(), "objects_rewritten": first.len(), "drain": drained.json()}),
        started,
    );
}

/// The same message delivered twice, in two batches handled at the same time
/// by two consumer containers (fresh ones: the Glue table and partitions are
/// created by both at once, racing), with slow S3 answers widening the overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_same_message_in_two_concurrent_batches_and_glue_race() {
    let started = Instant::now();
    let env = aws_env("flt-dup", 14, 3, None).await;
    let records = plain_records(60);
    let messages = pack(records.clone(), 1_500);
    env.send_direct(&messages).await;
    let queue = env.harness_queue();
    env.proxy.set_rules(vec![
        Rule::new("s3", "PutObject", Fault::Slow(ms(60)), Trigger::Rate(0.5)),
        Rule::new("glue", "GetTable", Fault::Slow(ms(60)), Trigger::FirstN(2)),
    ]);
    let mut batch = Vec::new();
    for _ in 0..20 {
        batch.extend(queue.receive(10, Duration::ZERO).await.unwrap());
        if batch.len() >= 3 {
            break;
        }
    }
    assert!(batch.len() >= 3);
    let dup = batch[0].clone();
    let e1 = vec![dup.clone(), batch[1].clone()];
    let e2 = vec![dup.clone(), batch[2].clone()];
    let (c1, c2) = (env.vader_consumer(), env.vader_consumer());
    let (o1, o2) = tokio::join!(c1.handle(to_event(&e1)), c2.handle(to_event(&e2)));
    let (o1, o2) = (o1.unwrap(), o2.unwrap());
    assert!(
        o1.response.batch_item_failures.is_empty(),
        "{:?}",
        o1.response
    );
    assert!(
        o2.response.batch_item_failures.is_empty(),
        "{:?}",
        o2.response
    );
    let key_of = |o: &consumer::BatchOutcome| -> Vec<String> {
        o.outcomes
            .iter()
            .flat_map(|m| m.objects.iter().map(|(k, _)| k.clone()))
            .collect()
    };
    let (k1, k2) = (key_of(&o1), key_of(&o2));
    assert!(
        k1.iter().any(|k| k2.contains(k)),
        "both wrote the duplicate's key"
    );
    for d in batch.iter().take(3) {
        queue.ack(d).await.unwrap();
    }
    for d in batch.iter().skip(3) {
        queue
            .release(d, "not handled in this test step")
            .await
            .unwrap();
    }
    let drained = drain(&queue, &[c1, c2], 100).await;
    env.proxy.clear_rules();

    let (lake, dts) = env.lake().await;
    assert_eq!(
        env.glue_partitions().await,
        dts,
        "every dt registered once in Glue"
    );
    let counts = env.proxy.counts();
    let acc = exactly_once(&records, &lake);
    report(
        "same message in two batches concurrently; Glue registration race",
        "aws",
        &acc,
        counts.to_json(),
        json!({
            "glue_create_table_calls": counts.sum("glue", "CreateTable", "calls"),
            "glue_batch_create_partition_calls": counts.sum("glue", "BatchCreatePartition", "calls"),
            "drain": drained.json(),
        }),
        started,
    );
}

/// Comprehend answers some documents in ErrorList (permanently for a few,
/// transiently for others) and throttles for a while: transient trouble is
/// retried in-call or by redelivery; messages holding a refused document end
/// in the DLQ after the maximum receive count; the rest lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_comprehend_error_list_and_throttling() {
    let started = Instant::now();
    let stub = ComprehendStub::start().await;
    let env = aws_env("flt-cmp", 15, 3, Some(&stub)).await;
    let records: Vec<SourceRecord> = (0..100)
        .map(|i| {
            let base = format!("{} (#{i})", TEXTS[i % TEXTS.len()]);
            let text = if i % 33 == 7 {
                format!("{base} {}", ComprehendStub::FAIL_MARKER)
            } else if i % 10 == 3 {
                format!("{base} {}", ComprehendStub::FLAKY_MARKER)
            } else {
                base
            };
            record(i, text)
        })
        .collect();
    let messages = pack(records.clone(), 1_200);
    env.send_direct(&messages).await;
    stub.throttle_next(7);
    stub.set_flaky_failures(2);
    env.proxy.set_rules(vec![
        Rule::new(
            "comprehend",
            "BatchDetectSentiment",
            Fault::Reset,
            Trigger::Calls(vec![12]),
        ),
        Rule::new(
            "comprehend",
            "BatchDetectSentiment",
            Fault::Http500,
            Trigger::Calls(vec![15]),
        ),
        Rule::new(
            "comprehend",
            "BatchDetectSentiment",
            Fault::Throttle,
            Trigger::Calls(vec![18, 19]),
        ),
    ]);
    let analyzer = Arc::new(
        ComprehendAnalyzer::new(env.via.comprehend.clone(), LanguageMode::Fixed("en".into()))
            .with_retry(5, ms(5), ms(50)),
    );
    let consumer = env.routed_consumer(analyzer.clone(), Some(analyzer));
    let drained = drain(&env.harness_queue(), &[consumer], 200).await;

    let mut dead = Vec::new();
    let dlq = env.dead_letters().await;
    for d in &dlq {
        let msg = decode_message(&d.body).expect("dead letters here are decodable");
        let refused: Vec<&str> = msg
            .records
            .iter()
            .filter(|r| r.text.contains(ComprehendStub::FAIL_MARKER))
            .map(|r| r.id.as_str())
            .collect();
        let reason = if refused.is_empty() {
            String::new() // unexplained: fails the accounting
        } else {
            format!(
                "Comprehend ErrorList TEXT_SIZE_LIMIT_EXCEEDED for {}",
                refused.join(", ")
            )
        };
        for r in &msg.records {
            dead.push((Version::of(r), reason.clone()));
        }
    }
    let rows = env.lake_rows().await;
    for r in &rows {
        assert_eq!(r.engine, "comprehend");
        assert_eq!(r.sentiment, stub_label(&r.text).0, "{r:?}");
        assert!(r.compound.is_none());
    }
    let lake = Version::of_s3(&rows);
    let refused_messages = messages
        .iter()
        .filter(|m| m.body.contains("[[comprehend-refuses]]"))
        .count();
    assert_eq!(
        dlq.len(),
        refused_messages,
        "exactly the refused messages are dead-lettered"
    );
    let sc = stub.counts();
    assert!(
        sc.throttled == 7 && sc.transient_errors > 0 && sc.permanent_errors > 0,
        "{sc:?}"
    );
    // Only the refused documents may be dead-lettered; their healthy
    // neighbours must land (issue 11, item 7).
    let refusable: BTreeSet<String> = records
        .iter()
        .filter(|r| r.text.contains(ComprehendStub::FAIL_MARKER))
        .map(|r| r.id.clone())
        .collect();
    let acc = Accounting::new(&versions(&records), &lake, &dead, &refusable);
    let mut faults = env.faults();
    faults["stub"] = json!({
        "calls": sc.calls, "throttled": sc.throttled, "scored": sc.scored,
        "error_list_permanent": sc.permanent_errors, "error_list_transient": sc.transient_errors,
    });
    faults["by_kind"]["comprehend_throttle"] = json!(sc.throttled);
    faults["by_kind"]["comprehend_error_list"] = json!(sc.permanent_errors + sc.transient_errors);
    report(
        "Comprehend ErrorList and throttling for a while",
        "aws",
        &acc,
        faults,
        json!({"messages": messages.len(), "dead_lettered_messages": dlq.len(), "drain": drained.json()}),
        started,
    );
}

/// S3 and Glue fail for a while — throttling, 500, 503, resets, slow answers —
/// under two concurrent consumers: failed messages come back and nothing is
/// lost or doubled; every dt is registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_s3_and_glue_failing_for_a_while() {
    let started = Instant::now();
    let env = aws_env("flt-s3g", 16, 10, None).await;
    let records = plain_records(200);
    let messages = pack(records.clone(), 1_500);
    env.send_direct(&messages).await;
    env.proxy.set_rules(vec![
        Rule::new("s3", "PutObject", Fault::Throttle, Trigger::Rate(0.15)).limit(12),
        Rule::new("s3", "PutObject", Fault::Http500, Trigger::Rate(0.1)).limit(8),
        Rule::new("s3", "PutObject", Fault::Http503, Trigger::Rate(0.1)).limit(8),
        Rule::new("s3", "PutObject", Fault::Reset, Trigger::Rate(0.1)).limit(8),
        Rule::new("s3", "PutObject", Fault::Slow(ms(40)), Trigger::Rate(0.2)).limit(20),
        Rule::new("glue", "GetTable", Fault::Reset, Trigger::Calls(vec![1])),
        Rule::new(
            "glue",
            "CreateTable",
            Fault::Throttle,
            Trigger::Calls(vec![1]),
        ),
        Rule::new(
            "glue",
            "BatchCreatePartition",
            Fault::Http500,
            Trigger::FirstN(3),
        ),
        Rule::new(
            "glue",
            "BatchCreatePartition",
            Fault::Throttle,
            Trigger::Calls(vec![5, 6]),
        ),
        Rule::new(
            "glue",
            "BatchCreatePartition",
            Fault::Http503,
            Trigger::Calls(vec![8]),
        ),
        Rule::new(
            "glue",
            "BatchCreatePartition",
            Fault::Reset,
            Trigger::Calls(vec![10]),
        ),
        Rule::new(
            "glue",
            "BatchCreatePartition",
            Fault::Slow(ms(40)),
            Trigger::Calls(vec![12]),
        ),
    ]);
    let consumers = [env.vader_consumer(), env.vader_consumer()];
    let drained = drain(&env.harness_queue(), &consumers, 300).await;
    env.proxy.clear_rules();

    let dead: Vec<(Version, String)> = env
        .dead_letters()
        .await
        .iter()
        .flat_map(|d| dead_versions(&d.body, "max receives"))
        .collect();
    let (lake, dts) = env.lake().await;
    assert!(
        dead.is_empty(),
        "transient trouble never dead-letters with 10 receives"
    );
    assert_eq!(env.glue_partitions().await, dts);
    let acc = Accounting::new(&versions(&records), &lake, &dead, &BTreeSet::new());
    assert!(env.proxy.counts().injected() > 20);
    report(
        "S3 and Glue failing for a while (throttle/5xx/reset/slow), two consumers",
        "aws",
        &acc,
        env.faults(),
        json!({"messages": messages.len(), "drain": drained.json()}),
        started,
    );
}

/// A poison message among good ones: it fails alone in every batch and moves
/// to the DLQ after the maximum receive count (3); the rest of its batches
/// succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_poison_message_reaches_dlq_after_max_receives() {
    let started = Instant::now();
    let env = aws_env("flt-poison", 17, 3, None).await;
    let records = plain_records(50);
    let mut messages = pack(records.clone(), 1_500);
    // A message whose content id does not match its records: corrupt.
    let mut corrupt = messages[0].clone();
    corrupt.body = corrupt.body.replacen("(#", "(#tampered ", 1);
    corrupt.content_id = "corrupt".into();
    messages.insert(1, corrupt.clone());
    env.send_direct(&messages).await;
    let drained = drain(&env.harness_queue(), &[env.vader_consumer()], 100).await;

    let dlq = env.dead_letters().await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].body, corrupt.body);
    let reason = decode_message(&dlq[0].body).unwrap_err().to_string();
    // Every batch that held the poison failed it and nothing else.
    let mut poison_batches = 0;
    for (ids_in_batch, failed) in &drained.failures_per_batch {
        if failed.is_empty() {
            continue;
        }
        assert_eq!(failed.len(), 1, "only the poison fails");
        assert!(ids_in_batch.contains(&failed[0]));
        poison_batches += 1;
    }
    assert_eq!(poison_batches, 3, "received exactly maxReceiveCount times");
    let (lake, _) = env.lake().await;
    let acc = exactly_once(&records, &lake);
    report(
        "poison message to the DLQ after max receives, rest of batch succeeds",
        "aws",
        &acc,
        env.faults(),
        json!({
            "dead_lettered_messages": dlq.len(),
            "dead_letter_reason": reason,
            "poison_receives": poison_batches,
            "drain": drained.json(),
        }),
        started,
    );
}

/// The DynamoDB scan is throttled, reset and answered with 5xx mid-pagination
/// (sometimes more often in a row than the SDK retries, failing the
/// invocation); invocations are repeated until the run completes. Re-sent
/// messages are identical, so the lake holds each record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_dynamodb_scan_throttled_and_reset_mid_pagination() {
    let started = Instant::now();
    let env = aws_env("flt-scan", 18, 3, None).await;
    let records = plain_records(150);
    env.put_source(&records).await;
    env.proxy.set_rules(vec![
        Rule::new(
            "dynamodb",
            "Scan",
            Fault::Throttle,
            Trigger::Calls(vec![2, 3]),
        ),
        Rule::new("dynamodb", "Scan", Fault::Reset, Trigger::Calls(vec![4, 9])),
        Rule::new("dynamodb", "Scan", Fault::Http500, Trigger::Calls(vec![6])),
        Rule::new("dynamodb", "Scan", Fault::Http503, Trigger::Calls(vec![7])),
        Rule::new(
            "dynamodb",
            "Scan",
            Fault::Slow(ms(50)),
            Trigger::Calls(vec![8, 11]),
        ),
        Rule::new("dynamodb", "Scan", Fault::Throttle, Trigger::Rate(0.1)).limit(5),
        Rule::new("dynamodb", "GetItem", Fault::Reset, Trigger::Calls(vec![2])),
    ]);
    let rec = Arc::new(Recorder::new(
        SqsQueue::new(env.via.sqs.clone(), &env.queue_url).with_retry(5, ms(5), ms(50)),
    ));
    let p = env.producer(env.producer_config(2, 10, None, 1_500), rec.clone());
    let (mut failed_invocations, mut complete) = (0, false);
    for i in 0..10 {
        match p
            .handle(Request::Scheduled, far_deadline(), &format!("inv-{i}"))
            .await
        {
            Ok(s) if s.status == Status::Complete => {
                complete = true;
                break;
            }
            Ok(s) => panic!("unexpected {s:?}"),
            Err(e) => {
                assert_eq!(e.error_type(), "Retryable", "{e}");
                failed_invocations += 1;
            }
        }
    }
    assert!(complete, "the run completed within 10 invocations");
    env.proxy.clear_rules();
    let sent = rec.take();
    let distinct: BTreeMap<&String, &Vec<String>> = sent.iter().map(|(c, i)| (c, i)).collect();
    let distinct_records: usize = distinct.values().map(|v| v.len()).sum();
    assert_eq!(
        distinct_records,
        records.len(),
        "distinct messages carry each record once"
    );

    let drained = drain(&env.harness_queue(), &[env.vader_consumer()], 200).await;
    let (lake, _) = env.lake().await;
    let acc = exactly_once(&records, &lake);
    report(
        "DynamoDB scan throttled / reset / 5xx mid-pagination",
        "aws",
        &acc,
        env.faults(),
        json!({
            "failed_invocations": failed_invocations,
            "messages_sent": sent.len(),
            "distinct_messages": distinct.len(),
            "drain": drained.json(),
        }),
        started,
    );
}

/// SendMessageBatch answers with some entries in `Failed` (and is throttled
/// and reset now and then): exactly the failed entries are resent, so every
/// message is in the queue once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sqs_send_partially_failing() {
    let started = Instant::now();
    let env = aws_env("flt-sqs", 19, 3, None).await;
    let records = plain_records(150);
    env.put_source(&records).await;
    env.proxy.set_rules(vec![
        Rule::new(
            "sqs",
            "SendMessageBatch",
            Fault::Throttle,
            Trigger::Calls(vec![2]),
        ),
        Rule::new(
            "sqs",
            "SendMessageBatch",
            Fault::Reset,
            Trigger::Calls(vec![4]),
        ),
        // At most 8 partial answers: with 10 attempts per batch every entry gets through.
        Rule::new(
            "sqs",
            "SendMessageBatch",
            Fault::PartialBatch(0.3),
            Trigger::Rate(0.5),
        )
        .limit(8),
    ]);
    let queue = SqsQueue::new(env.via.sqs.clone(), &env.queue_url).with_retry(10, ms(5), ms(50));
    let p = env.producer(env.producer_config(1, 25, None, 1_200), Arc::new(queue));
    let s = p
        .handle(Request::Scheduled, far_deadline(), "inv-1")
        .await
        .unwrap();
    assert_eq!((s.status, s.stats.sent_records), (Status::Complete, 150));
    env.proxy.clear_rules();
    let counts = env.proxy.counts();
    assert!(counts.sum("sqs", "SendMessageBatch", "partial_batch") > 0);

    // Every message is in the queue exactly once.
    let queue = env.harness_queue();
    let mut seen = BTreeMap::new();
    let mut pending = Vec::new();
    for _ in 0..100 {
        let b = queue.receive(10, Duration::ZERO).await.unwrap();
        if b.is_empty() {
            break;
        }
        for d in b {
            *seen
                .entry(decode_message(&d.body).unwrap().content_id)
                .or_insert(0) += 1;
            pending.push(d);
        }
    }
    assert_eq!(seen.len() as u64, s.stats.messages);
    assert!(seen.values().all(|n| *n == 1), "no message enqueued twice");
    for d in &pending {
        queue.release(d, "counted").await.unwrap();
    }
    let drained = drain(&queue, &[env.vader_consumer()], 100).await;
    let (lake, _) = env.lake().await;
    let acc = exactly_once(&records, &lake);
    report(
        "SQS SendMessageBatch partially failing",
        "aws",
        &acc,
        counts.to_json(),
        json!({
            "messages": s.stats.messages,
            "send_calls": s.stats.send_calls,
            "entries_failed_and_resent": counts.sum("sqs", "SendMessageBatch", "partial_batch_entries"),
            "drain": drained.json(),
        }),
        started,
    );
}

// ---------------------------------------------------------------------------
// Local scenarios (the ones not already in dead_letters.rs / local.rs)
// ---------------------------------------------------------------------------

/// VADER that throttles for a while (retryable) and refuses marked documents
/// (the ErrorList case).
struct ThrottledAnalyzer {
    vader: VaderAnalyzer,
    throttle_calls: usize,
    calls: AtomicUsize,
    throttled: AtomicUsize,
    refused: AtomicUsize,
}

#[async_trait]
impl SentimentAnalyzer for ThrottledAnalyzer {
    fn engine(&self) -> Engine {
        Engine::Vader
    }
    async fn analyze(
        &self,
        docs: &[Document<'_>],
    ) -> Result<Vec<Result<SentimentScore, AnalyzeError>>, AnalyzeError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.throttle_calls {
            self.throttled.fetch_add(1, Ordering::SeqCst);
            return Err(AnalyzeError::retryable(
                "ThrottlingException",
                "rate exceeded (injected)",
            ));
        }
        Ok(crate::support::score_refusing(
            &self.vader,
            docs,
            ComprehendStub::FAIL_MARKER,
            "TEXT_SIZE_LIMIT_EXCEEDED",
            &self.refused,
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_analyzer_throttled_for_a_while_and_refusing_documents() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let records: Vec<SourceRecord> = (0..300)
        .map(|i| {
            let text = if i % 97 == 5 {
                format!("refuse me {} (#{i})", ComprehendStub::FAIL_MARKER)
            } else {
                format!("{} (#{i})", TEXTS[i % TEXTS.len()])
            };
            record(i, text)
        })
        .collect();
    let mut lines = String::new();
    for r in &records {
        lines.push_str(
            &json!({"id": r.id, "text": r.text, "created_at": r.created_at.to_rfc3339()})
                .to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(&input, lines).unwrap();
    let lake = dir.path().join("lake");
    let mut cfg = etl_local::RunConfig::new(&input, &lake);
    cfg.workers = 2;
    cfg.message_budget = 2_048;
    cfg.max_receive_count = 4;
    let analyzer = Arc::new(ThrottledAnalyzer {
        vader: VaderAnalyzer::new(),
        throttle_calls: 3,
        calls: AtomicUsize::new(0),
        throttled: AtomicUsize::new(0),
        refused: AtomicUsize::new(0),
    });
    let summary = etl_local::run_with(
        cfg,
        analyzer.clone(),
        Arc::new(etl_local::RunCounters::default()),
        Box::new(|_| {}),
    )
    .await
    .unwrap();
    let dls: Vec<etl_local::DeadLetter> =
        std::fs::read_to_string(lake.join("_dead_letter/messages.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let mut dead = Vec::new();
    for dl in &dls {
        assert!(
            dl.reason.contains("TEXT_SIZE_LIMIT_EXCEEDED"),
            "only refused documents dead-letter: {}",
            dl.reason
        );
        dead.extend(dead_versions(&dl.body, &dl.reason));
    }
    let lake_rows = Version::of_local(&crate::lake::read_lake(&lake));
    // Only the refused documents may be dead-lettered (issue 11, item 7).
    let refusable: BTreeSet<String> = records
        .iter()
        .filter(|r| r.text.contains(ComprehendStub::FAIL_MARKER))
        .map(|r| r.id.clone())
        .collect();
    let acc = Accounting::new(&versions(&records), &lake_rows, &dead, &refusable);
    assert_eq!(summary.dead_lettered_records as usize, dead.len());
    report(
        "analyzer throttled for a while and refusing documents",
        "local",
        &acc,
        json!({"by_kind": {
            "analyzer_throttle": analyzer.throttled.load(Ordering::SeqCst),
            "analyzer_refusal": analyzer.refused.load(Ordering::SeqCst),
        }, "injected": analyzer.throttled.load(Ordering::SeqCst) + analyzer.refused.load(Ordering::SeqCst)}),
        json!({"dead_lettered_messages": dls.len(), "messages_ok": summary.messages_ok}),
        started,
    );
}

/// Local lake: the same message consumed twice at once, then once more after
/// a "crash before ack": same files, each record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_duplicate_and_redelivered_messages_rewrite_their_own_files() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let records = plain_records(120);
    let messages = pack(records.clone(), 1_500);
    let sink = etl_local::FsSink::new(&lake);
    let catalog = etl_local::LocalCatalog::new(&lake, true);
    let vader = VaderAnalyzer::new();
    let consumer = Consumer {
        analyzer: &vader,
        sink: &sink,
        catalog: &catalog,
        options: ConsumeOptions::default(),
    };
    etl_core::Catalog::ensure_table(&catalog).await.unwrap();
    let mut consumed = 0;
    for (i, m) in messages.iter().enumerate() {
        let id = format!("m{i}");
        if i % 2 == 0 {
            // Delivered twice, handled concurrently.
            let (a, b) = tokio::join!(
                consumer.consume(&id, &m.body),
                consumer.consume(&id, &m.body)
            );
            assert_eq!(a.unwrap().objects, b.unwrap().objects);
            consumed += 2;
        } else {
            consumer.consume(&id, &m.body).await.unwrap();
            consumed += 1;
        }
    }
    let files = crate::lake::parquet_files(&lake);
    // Crash before ack: everything is redelivered once more.
    for (i, m) in messages.iter().enumerate() {
        consumer.consume(&format!("m{i}"), &m.body).await.unwrap();
        consumed += 1;
    }
    assert_eq!(crate::lake::parquet_files(&lake), files, "same files");
    assert_eq!(files.len(), messages.len());
    let acc = exactly_once(&records, &Version::of_local(&crate::lake::read_lake(&lake)));
    report(
        "same message twice concurrently, redelivery after crash before ack",
        "local",
        &acc,
        json!({"by_kind": {"duplicate_delivery": messages.len().div_ceil(2), "redelivery": messages.len()}, "injected": messages.len().div_ceil(2) + messages.len()}),
        json!({"messages": messages.len(), "consumptions": consumed}),
        started,
    );
}
