//! One producer invocation: decide what run this is, take the lock, scan,
//! pack and send with core's `produce`, then either finish (advance the
//! watermark) or stop at a page boundary before the deadline and checkpoint.
//!
//! How a run survives the 15-minute Lambda limit: scanning stops at a page
//! boundary when the deadline (minus `DEADLINE_MARGIN_MS`) or
//! `MAX_PAGES_PER_INVOCATION` comes; core's `produce` then flushes and sends
//! everything already packed, and only after that is the per-segment
//! position of the pages handed out saved. So a page is either fully sent and
//! behind the checkpoint, or not sent and ahead of it: nothing is skipped or
//! sent twice across the split. The invocation returns `{"status":"partial"}`
//! and releases the lock; the next invocation — the next schedule tick, or an
//! explicit `{"mode":"resume"}` (cheap when there is nothing to resume, so a
//! frequent second schedule can drive long backfills) — continues the
//! checkpointed run before starting anything new. The lock is held per
//! invocation (owner = request id), which is what stops two overlapping
//! invocations from both sending, including two that would resume the same
//! checkpoint. The watermark only moves when a run completes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use etl_aws::emf::{cold_start, Metrics};
use etl_aws::lambda::InvocationError;
use etl_aws::sqs::MAX_BATCH_ENTRIES;
use etl_aws::{
    Clients, DynamoSource, LockOutcome, ScanCheckpoint, ScanConfig, SqsQueue, StateStore, Versioned,
};
use etl_core::message::SQS_MAX_MESSAGE_BYTES;
use etl_core::pipeline::ProduceError;
use etl_core::{
    produce, BackendError, Packer, ProduceStats, RecordSource, SourceItem, Watermark, WorkQueue,
};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::request::{effective_deadline, Request, RunSpec};

/// Extra lock lifetime past the invocation deadline, so a lock outlives a
/// slow final write but not a crashed invocation by much.
const LOCK_GRACE: Duration = Duration::from_secs(60);

/// Source timestamps come from other machines' clocks: the watermark never
/// moves past the run's start minus this, so records updated while the scan
/// ran are picked up next time instead of being skipped.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Rejections logged one by one per invocation; the rest are only counted.
const LOGGED_REJECTIONS: u64 = 100;

/// The state of an unfinished run, saved when an invocation stops early.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCheckpoint {
    /// The run (the request id of its first invocation).
    pub run_id: String,
    /// What the run sends.
    pub spec: RunSpec,
    /// The watermark records are compared with (fixed for the whole run).
    pub base: Watermark,
    /// The watermark of what the run has sent so far.
    pub observed: Watermark,
    /// Where each scan segment stands.
    pub scan: ScanCheckpoint,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// Invocations so far.
    pub invocations: u32,
}

/// How an invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The run finished; the watermark advanced.
    Complete,
    /// Stopped at a page boundary; a checkpoint was saved.
    Partial,
    /// Another invocation holds the lock; nothing was done.
    Locked,
    /// `resume` with nothing to resume.
    Idle,
}

/// The invocation's result, returned and logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// How it ended.
    pub status: Status,
    /// The run this invocation worked on.
    pub run_id: String,
    /// `incremental`, `full` or `since`.
    pub mode: String,
    /// Whether it continued a checkpointed run.
    pub resumed: bool,
    /// Counts: read, rejected, unchanged, sent_records, messages, send_calls.
    #[serde(flatten)]
    pub stats: ProduceStats,
    /// Scan pages read.
    pub pages: u64,
    /// The lock holder, when `status` is `locked`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_owner: Option<String>,
}

impl Summary {
    fn empty(status: Status, run_id: &str, mode: &str) -> Self {
        Self {
            status,
            run_id: run_id.to_owned(),
            mode: mode.to_owned(),
            resumed: false,
            stats: ProduceStats::default(),
            pages: 0,
            lock_owner: None,
        }
    }

    /// The invocation's EMF metrics.
    pub fn metrics(&self, cold: u64) -> Metrics {
        Metrics::new("producer")
            .count("RecordsRead", self.stats.read)
            .count("RecordsRejected", self.stats.rejected)
            .count("RecordsSent", self.stats.sent_records)
            .count("MessagesSent", self.stats.messages)
            .count("SendCalls", self.stats.send_calls)
            // The failure path reports `Complete` with an empty mode: not a completed run.
            .count(
                "RunsCompleted",
                u64::from(self.status == Status::Complete && !self.mode.is_empty()),
            )
            .count("RunsPartial", u64::from(self.status == Status::Partial))
            .count("ColdStart", cold)
    }
}

/// The producer with its dependencies.
pub struct Producer {
    config: Config,
    dynamodb: aws_sdk_dynamodb::Client,
    state: StateStore,
    queue: Arc<dyn WorkQueue>,
}

impl Producer {
    /// Wire the producer to AWS.
    pub fn new(config: Config, clients: &Clients) -> Self {
        let state = StateStore::new(
            clients.dynamodb.clone(),
            &config.state_table,
            &config.source_table,
        );
        let queue = Arc::new(SqsQueue::new(clients.sqs.clone(), &config.queue_url));
        Self::from_parts(config, clients.dynamodb.clone(), state, queue)
    }

    /// Assemble from parts (tests inject their own queue).
    pub fn from_parts(
        config: Config,
        dynamodb: aws_sdk_dynamodb::Client,
        state: StateStore,
        queue: Arc<dyn WorkQueue>,
    ) -> Self {
        Self {
            config,
            dynamodb,
            state,
            queue,
        }
    }

    /// The Lambda entry point: parse, run, log the summary, emit metrics, and
    /// map a failure to `errorType` `Retryable` / `NonRetryable`.
    pub async fn invoke(&self, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
        let (payload, ctx) = event.into_parts();
        let cold = cold_start();
        let result = match Request::from_event(&payload) {
            Ok(request) => {
                self.handle(request, effective_deadline(ctx.deadline), &ctx.request_id)
                    .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(summary) => {
                let json = serde_json::to_value(&summary).unwrap_or_default();
                info!(message = "Producer invocation finished.", summary = %json);
                summary.metrics(cold).emit();
                Ok(json)
            }
            Err(e) => {
                error!(message = "Producer invocation failed.", error_type = e.error_type(), error = %e);
                Summary::empty(Status::Complete, &ctx.request_id, "")
                    .metrics(cold)
                    .emit();
                Err(Diagnostic {
                    error_type: e.error_type().to_owned(),
                    error_message: e.message,
                })
            }
        }
    }

    /// Run one invocation. `deadline` is the invocation's deadline; scanning
    /// stops `DEADLINE_MARGIN_MS` before it. `request_id` names the lock owner
    /// (and the run, when a new one starts).
    pub async fn handle(
        &self,
        request: Request,
        deadline: SystemTime,
        request_id: &str,
    ) -> Result<Summary, InvocationError> {
        let remaining = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let stop_at =
            tokio::time::Instant::now() + remaining.saturating_sub(self.config.deadline_margin);
        info!(message = "Producer invocation starting.", request = ?request, remaining_ms = remaining.as_millis() as u64);

        // Lock first: the checkpoint and watermark must be read by the holder,
        // or a waiting invocation could resume from a checkpoint already used.
        match self
            .state
            .acquire_lock(request_id, remaining + LOCK_GRACE)
            .await?
        {
            LockOutcome::Acquired { .. } => {}
            LockOutcome::Held { owner, expires_at } => {
                warn!(message = "Another invocation holds the run lock; skipping.", owner = %owner, expires_at);
                let mut s = Summary::empty(Status::Locked, request_id, request.mode_name());
                s.lock_owner = Some(owner);
                return Ok(s);
            }
        }
        let result = self.locked(request, request_id, stop_at).await;
        if let Err(e) = self.state.release_lock(request_id).await {
            warn!(message = "Could not release the run lock; it will expire.", error = %e);
        }
        result
    }

    /// Decide between resuming and starting a run, with the lock held.
    async fn locked(
        &self,
        request: Request,
        request_id: &str,
        stop_at: tokio::time::Instant,
    ) -> Result<Summary, InvocationError> {
        let existing: Option<Versioned<RunCheckpoint>> = self.state.load_checkpoint().await?;
        let requested = match &request {
            Request::Scheduled | Request::Incremental => Some(RunSpec::Incremental),
            Request::Full => Some(RunSpec::Full),
            Request::Since(t) => Some(RunSpec::Since { since: *t }),
            Request::Resume => None,
        };
        let follows_checkpoint = matches!(
            request,
            Request::Scheduled | Request::Incremental | Request::Resume
        );
        let checkpoint_version = existing.as_ref().map(|c| c.version);
        let resume = match existing {
            Some(cp) if follows_checkpoint || requested.as_ref() == Some(&cp.value.spec) => {
                Some(cp.value)
            }
            Some(cp) => {
                warn!(message = "Starting a new run; the unfinished run's checkpoint will be replaced.", unfinished_run = %cp.value.run_id, requested = ?requested);
                None
            }
            None => None,
        };
        let Some(spec) = resume.as_ref().map(|c| c.spec.clone()).or(requested) else {
            info!(message = "Nothing to resume.");
            return Ok(Summary::empty(Status::Idle, request_id, "resume"));
        };
        let run_id = resume
            .as_ref()
            .map_or_else(|| request_id.to_owned(), |c| c.run_id.clone());
        self.run(spec, resume, checkpoint_version, run_id, stop_at)
            .await
    }

    async fn run(
        &self,
        spec: RunSpec,
        resume: Option<RunCheckpoint>,
        checkpoint_version: Option<u64>,
        run_id: String,
        stop_at: tokio::time::Instant,
    ) -> Result<Summary, InvocationError> {
        let stored = self.state.load_watermark().await?;
        let resumed = resume.is_some();
        let started_at = resume.as_ref().map_or_else(Utc::now, |c| c.started_at);
        let invocations = resume.as_ref().map_or(0, |c| c.invocations) + 1;
        let base = match (&resume, &spec) {
            (Some(c), _) => c.base.clone(),
            (None, RunSpec::Incremental) => {
                stored.as_ref().map(|s| s.value.clone()).unwrap_or_default()
            }
            (None, RunSpec::Full) => Watermark::default(),
            (None, RunSpec::Since { since }) => Watermark {
                at: Some(*since),
                ids_at: Default::default(),
            },
        };
        let (prior, scan_from) = match resume {
            Some(c) => (c.observed, Some(c.scan)),
            None => (Watermark::default(), None),
        };
        info!(message = "Producer run starting.", run_id = %run_id, mode = spec.name(), resumed, invocation = invocations, since = ?base.at);

        let scan = ScanConfig {
            table: self.config.source_table.clone(),
            segments: self.config.segments,
            page_limit: self.config.page_limit,
            fields: self.config.fields.clone(),
            since: base.at,
            resume: scan_from,
        };
        let mut source = DynamoSource::open(self.dynamodb.clone(), scan)?;
        let mut bounded = Bounded {
            inner: &mut source,
            stop_at,
            max_pages: self.config.max_pages,
            pages: 0,
            stopped: false,
        };
        let mut packer = Packer::new(self.config.message_budget, Some(SQS_MAX_MESSAGE_BYTES));
        let mut logged = 0u64;
        let (stats, next) = produce(&mut bounded, &*self.queue, &mut packer, &base, MAX_BATCH_ENTRIES, |rej| {
            logged += 1;
            if logged <= LOGGED_REJECTIONS {
                warn!(message = "Rejected source item.", table = %self.config.source_table, location = %rej.location, id = ?rej.id, field = ?rej.field, reason = %rej.reason);
            }
        })
        .await
        .map_err(|e| match e {
            ProduceError::Source(ref b) | ProduceError::Queue(ref b) => InvocationError { retry: b.retry, message: e.to_string() },
        })?;
        let stopped = bounded.stopped;
        let pages = source.pages();
        let position = source.checkpoint();
        drop(source);

        // `next` starts from `base`; unchanged means nothing was observed.
        let observed = merge(
            prior,
            if next == base {
                Watermark::default()
            } else {
                next
            },
        );
        let mut summary = Summary {
            status: Status::Complete,
            run_id: run_id.clone(),
            mode: spec.name().to_owned(),
            resumed,
            stats,
            pages,
            lock_owner: None,
        };
        if stopped && !position.is_done() {
            let cp = RunCheckpoint {
                run_id,
                spec,
                base,
                observed,
                scan: position,
                started_at,
                invocations,
            };
            self.state.save_checkpoint(&cp, checkpoint_version).await?;
            summary.status = Status::Partial;
            info!(message = "Stopped at a page boundary; checkpoint saved.", run_id = %cp.run_id, pages);
            return Ok(summary);
        }
        let limit = started_at - chrono::Duration::from_std(CLOCK_SKEW).unwrap_or_default();
        let current = stored.as_ref().map(|s| s.value.clone()).unwrap_or_default();
        let advanced = merge(current.clone(), cap(observed, limit));
        if advanced != current {
            self.state
                .save_watermark(&advanced, stored.map(|s| s.version))
                .await?;
            info!(message = "Watermark advanced.", at = ?advanced.at, ids_at = advanced.ids_at.len());
        }
        if let Some(v) = checkpoint_version {
            self.state.clear_checkpoint(v).await?;
        }
        Ok(summary)
    }
}

/// The newer of two watermarks (ids united when they tie).
fn merge(a: Watermark, b: Watermark) -> Watermark {
    match (a.at, b.at) {
        (None, _) => b,
        (_, None) => a,
        (Some(x), Some(y)) if x > y => a,
        (Some(x), Some(y)) if y > x => b,
        _ => {
            let mut a = a;
            a.ids_at.extend(b.ids_at);
            a
        }
    }
}

/// Keep a watermark at or below `limit`.
fn cap(w: Watermark, limit: DateTime<Utc>) -> Watermark {
    match w.at {
        Some(at) if at > limit => Watermark {
            at: Some(limit),
            ids_at: Default::default(),
        },
        _ => w,
    }
}

/// The source as `produce` sees it: ends early, at a page boundary, when the
/// deadline or the page budget comes.
struct Bounded<'a> {
    inner: &'a mut DynamoSource,
    stop_at: tokio::time::Instant,
    max_pages: Option<u64>,
    pages: u64,
    stopped: bool,
}

#[async_trait]
impl RecordSource for Bounded<'_> {
    async fn next_chunk(&mut self) -> Result<Option<Vec<SourceItem>>, BackendError> {
        if self.max_pages.is_some_and(|m| self.pages >= m)
            || tokio::time::Instant::now() >= self.stop_at
        {
            self.stopped = true;
            return Ok(None);
        }
        // Receiving a page is cancel-safe: a page not handed out stays ahead of the checkpoint.
        match tokio::time::timeout_at(self.stop_at, self.inner.next_chunk()).await {
            Err(_) => {
                self.stopped = true;
                Ok(None)
            }
            Ok(Ok(Some(chunk))) => {
                self.pages += 1;
                Ok(Some(chunk))
            }
            Ok(other) => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).unwrap()
    }

    #[test]
    fn watermarks_merge_and_cap() {
        let w = |s, ids: &[&str]| Watermark {
            at: Some(t(s)),
            ids_at: ids.iter().map(|i| i.to_string()).collect(),
        };
        assert_eq!(merge(w(5, &["a"]), w(7, &["b"])), w(7, &["b"]));
        assert_eq!(merge(w(7, &["a"]), w(7, &["b"])), w(7, &["a", "b"]));
        assert_eq!(merge(Watermark::default(), w(1, &[])), w(1, &[]));
        assert_eq!(cap(w(10, &["a"]), t(8)), w(8, &[]));
        assert_eq!(cap(w(5, &["a"]), t(8)), w(5, &["a"]));
    }
}
