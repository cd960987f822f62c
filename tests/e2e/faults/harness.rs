//! The AWS side of the reliability scenarios: moto, the [`FaultProxy`] in
//! front of it, the real producer and consumer handlers wired to it
//! ([`Aws`]), the SQS event source mapping the test plays ([`drain`]), and a
//! work queue that records what the producer sent and can kill or pause it
//! ([`Recorder`]). Source records and accounting are `etl_testkit`'s
//! (`records`, `accounting`); this stays here because it drives the
//! `producer` and `consumer` crates, which the testkit must not depend on.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use consumer::{BatchHandler, Deps};
use etl_aws::{Clients, GlueCatalog, S3Sink, SqsQueue, StateStore, Timeouts};
use etl_core::{
    decode_message, BackendError, ConsumeOptions, Delivery, FieldMap, OutgoingMessage, SendReport,
    SentimentAnalyzer, SourceRecord, VaderAnalyzer, WorkQueue,
};
use etl_testkit::accounting::{FromLake, Version};
use etl_testkit::{
    create_bucket, create_queue_with_dlq, create_table, moto, put_items, s3_lake, sqs_event_json,
    unique, ComprehendStub, FaultProxy,
};
use producer::Producer;
use serde_json::{json, Value};
use tokio::sync::Notify;

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn to_item(r: &SourceRecord) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("id".to_string(), AttributeValue::S(r.id.clone())),
        ("text".to_string(), AttributeValue::S(r.text.clone())),
        (
            "created_at".to_string(),
            AttributeValue::S(r.created_at.to_rfc3339()),
        ),
        (
            "updated_at".to_string(),
            AttributeValue::S(r.updated_at.to_rfc3339()),
        ),
    ])
}

fn body_ids(body: &str) -> Vec<String> {
    decode_message(body)
        .map(|m| m.records.into_iter().map(|r| r.id).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The AWS side: moto, the proxy in front of it, the handlers
// ---------------------------------------------------------------------------

pub(super) struct Aws {
    pub(super) proxy: FaultProxy,
    /// Clients through the proxy: what the pipeline uses.
    pub(super) via: Clients,
    /// Clients straight to moto: what the test harness uses to set up and check.
    pub(super) direct: Clients,
    pub(super) source: String,
    pub(super) state: String,
    pub(super) bucket: String,
    database: String,
    pub(super) queue_url: String,
    dlq_url: String,
}

pub(super) async fn aws_env(
    tag: &str,
    seed: u64,
    max_receive: u32,
    stub: Option<&ComprehendStub>,
) -> Aws {
    aws_env_with(tag, seed, max_receive, stub, &Timeouts::default()).await
}

/// Client timeouts for the lost-answer and hang scenarios: an attempt gives
/// up after 1 s (the read limit is longer, so it is the attempt limit that
/// fires), which keeps a held connection cheap to wait out. Far above what
/// moto needs for one call on loopback.
pub(super) fn short_timeouts() -> Timeouts {
    Timeouts {
        connect: ms(1_000),
        read: ms(5_000),
        attempt: ms(1_000),
        operation: ms(10_000),
    }
}

/// A hold longer than any client here waits: the client's timeout ends it.
pub(super) const HOLD: Duration = Duration::from_secs(15);

/// [`aws_env`] whose pipeline clients use `timeouts`.
pub(super) async fn aws_env_with(
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
    pub(super) fn harness_queue(&self) -> SqsQueue {
        SqsQueue::new(self.direct.sqs.clone(), &self.queue_url)
    }

    pub(super) async fn put_source(&self, records: &[SourceRecord]) {
        put_items(
            &self.direct.dynamodb,
            &self.source,
            records.iter().map(to_item).collect(),
        )
        .await;
    }

    pub(super) fn producer_config(
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
            // Small, so the ledger spills to sorted files as it would after a bulk import.
            ledger_spill_dir: std::env::temp_dir(),
            ledger_memory_versions: 500,
        }
    }

    pub(super) fn producer(&self, config: producer::Config, queue: Arc<dyn WorkQueue>) -> Producer {
        Producer::from_parts(
            config,
            self.via.dynamodb.clone(),
            StateStore::new(self.via.dynamodb.clone(), &self.state, &self.source),
            queue,
        )
    }

    /// A consumer "container" using the clients through the proxy.
    fn consumer(&self, analyzer: Arc<dyn SentimentAnalyzer>) -> Arc<BatchHandler> {
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
        };
        Arc::new(BatchHandler::from_deps(
            deps,
            "sentiment",
            ConsumeOptions::default(),
            4,
        ))
    }

    /// A consumer wired as the template wires it: refused records to the
    /// dead-letter queue alone (through the proxy); a message with records
    /// failing transiently fails whole and is redelivered.
    pub(super) fn routed_consumer(
        &self,
        analyzer: Arc<dyn SentimentAnalyzer>,
    ) -> Arc<BatchHandler> {
        let plain = Arc::try_unwrap(self.consumer(analyzer))
            .unwrap_or_else(|_| unreachable!("a fresh handler has one owner"));
        Arc::new(
            plain.with_dead_letters(Arc::new(etl_aws::sqs::SqsDeadLetters::new(
                self.via.sqs.clone(),
                &self.dlq_url,
            ))),
        )
    }

    pub(super) fn vader_consumer(&self) -> Arc<BatchHandler> {
        self.consumer(Arc::new(VaderAnalyzer::new()))
    }

    /// Send messages without faults (the harness's producer).
    pub(super) async fn send_direct(&self, messages: &[OutgoingMessage]) {
        self.harness_queue().send(messages).await.unwrap();
    }

    /// The version of every row in the lake (repeats kept), read back from
    /// its Parquet, and the dts.
    pub(super) async fn lake(&self) -> (Vec<Version>, BTreeSet<String>) {
        let rows = s3_lake::rows(&self.direct.s3, &self.bucket).await;
        let dts = rows.iter().map(|r| r.dt.clone()).collect();
        (Version::of_s3(&rows), dts)
    }

    pub(super) async fn lake_rows(&self) -> Vec<s3_lake::S3Row> {
        s3_lake::rows(&self.direct.s3, &self.bucket).await
    }

    /// Every message in the dead-letter queue (deleted as read).
    pub(super) async fn dead_letters(&self) -> Vec<Delivery> {
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

    pub(super) async fn glue_partitions(&self) -> BTreeSet<String> {
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

    pub(super) fn faults(&self) -> Value {
        self.proxy.counts().to_json()
    }
}

pub(super) fn to_event(deliveries: &[Delivery]) -> SqsEvent {
    serde_json::from_value(sqs_event_json(
        deliveries,
        "arn:aws:sqs:us-east-1:123456789012:work",
    ))
    .unwrap()
}

// ---------------------------------------------------------------------------
// The event source mapping
// ---------------------------------------------------------------------------

/// What the event source mapping saw.
#[derive(Debug, Default)]
pub(super) struct Drain {
    batches: u64,
    deliveries: u64,
    pub(super) redeliveries: u64,
    failed_items: u64,
    invocation_errors: u64,
    /// Per batch, the failed message ids (for "the rest of the batch succeeded").
    pub(super) failures_per_batch: Vec<(Vec<String>, Vec<String>)>,
}

impl Drain {
    pub(super) fn json(&self) -> Value {
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
pub(super) async fn drain(
    queue: &SqsQueue,
    handlers: &[Arc<BatchHandler>],
    max_rounds: usize,
) -> Drain {
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

// ---------------------------------------------------------------------------
// The producer's side: what it sent, killed or paused mid-run
// ---------------------------------------------------------------------------

/// A work queue that records what was sent and can stop ("kill") or pause
/// its caller after a number of send calls.
pub(super) struct Recorder {
    inner: SqsQueue,
    sent: Mutex<Vec<(String, Vec<String>)>>,
    calls: AtomicUsize,
    pub(super) kill_after: Option<(usize, Arc<Notify>)>,
    pub(super) pause_after_first: Option<(Arc<Notify>, Arc<Notify>)>,
}

impl Recorder {
    pub(super) fn new(inner: SqsQueue) -> Self {
        Self {
            inner,
            sent: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
            kill_after: None,
            pause_after_first: None,
        }
    }

    /// (content id, record ids) of every message sent, in order.
    pub(super) fn take(&self) -> Vec<(String, Vec<String>)> {
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

pub(super) fn far_deadline() -> SystemTime {
    SystemTime::now() + Duration::from_secs(600)
}

pub(super) fn flatten(sent: &[(String, Vec<String>)]) -> Vec<String> {
    sent.iter()
        .flat_map(|(_, ids)| ids.iter().cloned())
        .collect()
}

/// Let the run lock expire (what its TTL does after a crash) without waiting.
pub(super) async fn expire_lock(env: &Aws) {
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
