//! The consumer side of `etl run` and `etl redrive`: `workers` tasks, each
//! receiving a batch from the in-process queue (the event source mapping's
//! role) and putting it through core's `consume_batch`, one message at a
//! time per task on a Hive lake (a batch's messages at once on a Delta
//! lake, so that they share commits). What
//! landed is acknowledged and committed to the lake's state; what failed
//! is released for redelivery (dead-lettered after `max_receive_count`). A
//! lake that cannot be written stops every task, instead of dead-lettering
//! every message for a fault that is not theirs.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etl_core::{
    consume_batch, BackendError, BatchMessage, Clock, ConsumeError, ConsumeOptions, Consumer,
    Delivery, MessageResult, Routes, SentimentAnalyzer, WorkQueue,
};
use thiserror::Error;
use tracing::warn;

use crate::catalog::LocalCatalog;
use crate::dead_letter::DeadLetterFile;
use crate::queue::InProcessQueue;
use crate::run::RunCounters;
use crate::sink::FsSink;
use crate::state::Landed;

/// What the consumer tasks of a local run share.
pub(crate) struct Pipes {
    pub(crate) queue: Arc<InProcessQueue>,
    pub(crate) sink: Arc<FsSink>,
    pub(crate) catalog: Arc<LocalCatalog>,
    pub(crate) analyzer: Arc<dyn SentimentAnalyzer>,
    /// Where refused records go alone.
    pub(crate) refused: Arc<DeadLetterFile>,
    /// Where the versions that landed are committed.
    pub(crate) landed: Arc<Landed>,
    pub(crate) counters: Arc<RunCounters>,
    pub(crate) files: Arc<AtomicU64>,
    pub(crate) options: ConsumeOptions,
    /// Stamps `processed_at`.
    pub(crate) clock: &'static dyn Clock,
}

/// Why the consumer tasks stopped a run.
#[derive(Debug, Error)]
pub enum ConsumerStop {
    /// The lake cannot be written: every message would fail the same way.
    #[error("the lake cannot be written: {0}")]
    Lake(#[source] ConsumeError),
    /// The in-process queue refused an operation.
    #[error("the work queue failed: {0}")]
    Queue(#[source] BackendError),
    /// A consumer task died (a bug outside any one message).
    #[error("a consumer task died: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// Start `workers` consumer tasks on the queue. Each returns the messages
/// it completed.
pub(crate) fn spawn_consumers(
    pipes: Pipes,
    workers: usize,
    batch_size: usize,
) -> Vec<tokio::task::JoinHandle<Result<u64, ConsumerStop>>> {
    let pipes = Arc::new(pipes);
    (0..workers.max(1))
        .map(|worker| {
            let p = pipes.clone();
            tokio::spawn(async move { consume_loop(&p, worker, batch_size.max(1)).await })
        })
        .collect()
}

async fn consume_loop(p: &Pipes, worker: usize, batch_size: usize) -> Result<u64, ConsumerStop> {
    let consumer = Consumer {
        analyzer: p.analyzer.as_ref(),
        sink: p.sink.as_ref(),
        catalog: p.catalog.as_ref(),
        options: p.options,
        clock: p.clock,
    };
    // Refused records go to the dead-letter file alone; transient failures
    // fail the message, which is released for redelivery.
    let routes = Routes {
        dead_letters: Some(p.refused.as_ref()),
        receive_count: 1,
        memo: None,
    };
    // A Delta lake's commit waits on its log: a batch's messages overlap
    // (as the Lambda's MESSAGE_CONCURRENCY does), so those that finish
    // during one commit share the next (a group commit). A Hive lake has
    // nothing to wait on: one message at a time.
    let concurrency = if p.catalog.delta().is_some() {
        batch_size
    } else {
        1
    };
    let queue = &p.queue;
    let mut ok = 0u64;
    loop {
        let batch = queue
            .receive(batch_size, Duration::from_secs(3600))
            .await
            .map_err(ConsumerStop::Queue)?;
        if batch.is_empty() {
            if queue.is_drained().await {
                return Ok(ok);
            }
            continue;
        }
        let messages: Vec<BatchMessage<'_>> = batch
            .iter()
            .map(|d| BatchMessage {
                message_id: &d.message_id,
                body: &d.body,
                receive_count: d.receive_count,
            })
            .collect();
        let results = consume_batch(&consumer, routes, &messages, concurrency, &|| true).await;
        let mut stop = None;
        for (d, result) in batch.iter().zip(results) {
            match result {
                MessageResult::Done(o) => {
                    p.counters
                        .scored
                        .fetch_add(o.records as u64, Ordering::Relaxed);
                    p.counters.bytes_written.fetch_add(
                        o.objects.iter().map(|x| x.1 as u64).sum(),
                        Ordering::Relaxed,
                    );
                    p.files.fetch_add(o.objects.len() as u64, Ordering::Relaxed);
                    commit_landed(p, d, &o);
                    queue.ack(d).await.map_err(ConsumerStop::Queue)?;
                    p.counters.messages_done.fetch_add(1, Ordering::Relaxed);
                    ok += 1;
                }
                MessageResult::Failed(e @ ConsumeError::Storage { .. }) => {
                    queue
                        .release(d, &e.to_string())
                        .await
                        .map_err(ConsumerStop::Queue)?;
                    stop.get_or_insert(e);
                }
                MessageResult::Failed(e) => {
                    warn!(message = "Message failed.", worker, message_id = %d.message_id, receive_count = d.receive_count, error = %e);
                    queue
                        .release(d, &e.to_string())
                        .await
                        .map_err(ConsumerStop::Queue)?;
                }
                MessageResult::NotStarted => {
                    queue
                        .release(d, "not started")
                        .await
                        .map_err(ConsumerStop::Queue)?;
                }
            }
        }
        if let Some(e) = stop {
            queue.abort().await;
            return Err(ConsumerStop::Lake(e));
        }
    }
}

/// Only what landed is recorded as sent: records refused (in
/// `_dead_letter/`) are retried by the next run. A message the table already
/// held was committed by an earlier, interrupted run: what that run refused
/// is read back from the dead-letter file, so it is retried too instead of
/// being recorded as landed.
fn commit_landed(p: &Pipes, d: &Delivery, o: &etl_core::MessageOutcome) {
    let refused: HashSet<String> = if o.already_committed {
        p.refused.refused_from(&o.content_id).unwrap_or_else(|e| {
            // Recording them as landed leaves them in `_dead_letter/` for
            // `etl redrive`; leaving them out would send them again in a
            // message of another content id, and land the rest twice.
            warn!(message = "Could not read the dead-letter file; records an interrupted run refused stay there for `etl redrive` instead of being retried by the next run.", content_id = %o.content_id, error = %e);
            HashSet::new()
        })
    } else {
        o.refused.iter().map(|(id, _)| id.clone()).collect()
    };
    if refused.is_empty() {
        p.landed.commit_message(&d.body);
    } else if let Ok(m) = etl_core::decode_message(&d.body) {
        p.landed
            .commit(m.records.iter().filter(|r| !refused.contains(&r.id)));
    }
}

/// Wait for every consumer task; the messages they completed, or the first
/// failure that stopped one.
pub(crate) async fn join_consumers(
    workers: Vec<tokio::task::JoinHandle<Result<u64, ConsumerStop>>>,
) -> Result<u64, ConsumerStop> {
    let mut messages_ok = 0;
    let mut stopped = None;
    for w in workers {
        match w.await {
            Ok(Ok(n)) => messages_ok += n,
            Ok(Err(e)) => stopped = Some(e),
            Err(e) => stopped = Some(ConsumerStop::Task(e)),
        }
    }
    match stopped {
        Some(e) => Err(e),
        None => Ok(messages_ok),
    }
}
