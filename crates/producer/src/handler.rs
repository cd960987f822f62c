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
//!
//! What a run sends is core's incremental policy (`etl_core::incremental`):
//! records updated at or after the watermark minus `LOOKBACK_SECONDS`, whose
//! version is not in the ledger of versions already sent. The ledger lives in
//! chunked items of the state table (its size is not capped by DynamoDB's item
//! limit) and is made live by the reference saved in the state item (completed
//! runs) or the checkpoint (unfinished runs), both conditional writes. While
//! a run works, it is held in bounded memory (`etl_aws::ledger`): sorted runs
//! on local disk, streamed in from and out to those chunks.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use etl_aws::emf::{cold_start, Metrics};
use etl_aws::lambda::InvocationError;
use etl_aws::ledger::SpillLedger;
use etl_aws::sqs::MAX_BATCH_ENTRIES;
use etl_aws::{
    Clients, DynamoOutbox, DynamoSource, LedgerRef, LockOutcome, ScanConfig, SqsQueue,
    StagedMessage, StateStore, Versioned,
};
use etl_core::incremental::FilterCounts;
use etl_core::message::SQS_MAX_MESSAGE_BYTES;
use etl_core::pipeline::ProduceError;
use etl_core::{complete_run, Clock, Outbox, RunKind, RunWindow, SYSTEM_CLOCK};
use etl_core::{
    produce_with, BackendError, LedgerFilter, Packer, ProduceStats, RecordSource, SourceItem,
    VersionLedger, WorkQueue,
};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::request::{effective_deadline, Request, RunSpec};
pub use etl_aws::producer_state::{ProducerState, RunCheckpoint, RunReport, RunTotals};

/// Extra lock lifetime past the invocation deadline, so a lock outlives a
/// slow final write but not a crashed invocation by much.
const LOCK_GRACE: Duration = Duration::from_secs(60);

/// Rejections logged one by one per invocation; the rest are only counted.
const LOGGED_REJECTIONS: u64 = 100;

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
    /// Records sent dated after the producer's clock (sent once).
    pub clock_skewed: u64,
    /// Records in the window whose version was already sent.
    pub already_sent: u64,
    /// Versions in the ledger this invocation saved.
    pub ledger_versions: u64,
    /// Records updated up to one lookback behind the window whose version
    /// was never sent (written late): sent now, and alarmed on.
    pub behind_floor: u64,
    /// Messages an earlier, failed invocation staged and the queue had not
    /// accepted: sent again now, verbatim.
    pub resent_messages: u64,
    /// Messages an earlier invocation staged (sent or not); their versions
    /// were not packed again.
    pub staged_messages: u64,
    /// The lock holder, when `status` is `locked`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_owner: Option<String>,
    /// A scheduled or incremental invocation that found the lock held asked
    /// for its run: the next resume invocation starts it.
    pub run_requested: bool,
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
            clock_skewed: 0,
            already_sent: 0,
            ledger_versions: 0,
            behind_floor: 0,
            resent_messages: 0,
            staged_messages: 0,
            lock_owner: None,
            run_requested: false,
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
            .count("RecordsClockSkewed", self.clock_skewed)
            .count("RecordsBehindFloor", self.behind_floor)
            .count("MessagesResent", self.resent_messages)
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
    clock: &'static dyn Clock,
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
            clock: &SYSTEM_CLOCK,
        }
    }

    /// Read "now" from `clock`: a run's start (its watermark) and the
    /// clock-skew count (tests pin it).
    pub fn with_clock(mut self, clock: &'static dyn Clock) -> Self {
        self.clock = clock;
        self
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
                Err(e.into())
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
                let mut s = Summary::empty(Status::Locked, request_id, request.mode_name());
                if matches!(request, Request::Scheduled | Request::Incremental) {
                    // Not skipped for the night: the next resume tick with
                    // nothing to resume starts it.
                    self.state.request_run(request_id).await?;
                    s.run_requested = true;
                    warn!(message = "Another invocation holds the run lock; this run is requested, and the next resume invocation starts it.", owner = %owner, expires_at);
                } else {
                    warn!(message = "Another invocation holds the run lock; skipping.", owner = %owner, expires_at);
                }
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
        // A scheduled run that found the lock held asked for this one.
        let asked_by = match (&request, &existing) {
            (Request::Resume, None) => self.state.requested_run().await?,
            _ => None,
        };
        let requested = match &request {
            Request::Scheduled | Request::Incremental => Some(RunSpec::Incremental),
            Request::Full => Some(RunSpec::Full),
            Request::Since(t) => Some(RunSpec::Since { since: *t }),
            Request::Resume => asked_by.as_ref().map(|_| RunSpec::Incremental),
        };
        if let Some(by) = &asked_by {
            info!(message = "Starting the incremental run a scheduled invocation asked for while the lock was held.", requested_by = %by);
        }
        let follows_checkpoint = matches!(
            request,
            Request::Scheduled | Request::Incremental | Request::Resume
        );
        let checkpoint_version = existing.as_ref().map(|c| c.version);
        // The versions a replaced run sent (its base and deltas) go on with
        // the new run's ledger: a backfill that does not move the watermark
        // must not forget them, or the next incremental run sends them again.
        let mut inherited = Vec::new();
        let resume = match existing {
            Some(cp) if follows_checkpoint || requested.as_ref() == Some(&cp.value.spec) => {
                Some(cp.value)
            }
            Some(cp) => {
                warn!(message = "Starting a new run; the unfinished run's checkpoint will be replaced (the versions it sent stay in the ledger).", unfinished_run = %cp.value.run_id, requested = ?requested);
                inherited.extend(cp.value.ledger);
                inherited.extend(cp.value.deltas);
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
        let answers_requests = resume.is_none() && spec == RunSpec::Incremental;
        let starting = chrono::Utc::now();
        let summary = self
            .run(spec, resume, inherited, checkpoint_version, run_id, stop_at)
            .await?;
        if answers_requests {
            // A new incremental run reads everything up to its start, and it
            // has saved its checkpoint or state: requests made before it
            // started are answered. One made during it stays for the next
            // tick; one whose run failed before saving anything stays too.
            if let Err(e) = self.state.clear_run_request(starting).await {
                warn!(message = "Could not clear the run request; the next resume tick runs an incremental run that finds little to send.", error = %e);
            }
        }
        Ok(summary)
    }

    async fn run(
        &self,
        spec: RunSpec,
        resume: Option<RunCheckpoint>,
        inherited: Vec<LedgerRef>,
        checkpoint_version: Option<u64>,
        run_id: String,
        stop_at: tokio::time::Instant,
    ) -> Result<Summary, InvocationError> {
        let stored: Option<Versioned<ProducerState>> = self.state.load_watermark().await?;
        let state = stored.as_ref().map(|s| s.value.clone()).unwrap_or_default();
        // A checkpoint of a run the state already records as completed: the
        // run saved its state, then clearing the checkpoint failed. Resuming
        // it would save a ledger without the run's last invocation; drop it.
        let (spec, resume, checkpoint_version) = match resume {
            Some(c)
                if state
                    .last_run
                    .as_ref()
                    .is_some_and(|l| l.run_id == c.run_id) =>
            {
                warn!(message = "Dropping the checkpoint of a run that already completed.", run_id = %c.run_id);
                if let Some(v) = checkpoint_version {
                    self.state.clear_checkpoint(v).await?;
                }
                (RunSpec::Incremental, None, None)
            }
            other => (spec, other, checkpoint_version),
        };
        let lookback = self.config.lookback;
        let resumed = resume.is_some();
        let started_at = resume.as_ref().map_or_else(
            || etl_core::record::truncate_micros(self.clock.now()),
            |c| c.started_at,
        );
        let invocations = resume.as_ref().map_or(0, |c| c.invocations) + 1;
        let kind = match &spec {
            RunSpec::Incremental => RunKind::Incremental,
            RunSpec::Full => RunKind::Full,
            RunSpec::Since { since } => RunKind::Since(*since),
        };
        let planned = RunWindow::plan(
            kind,
            state.watermark,
            state.ledger_from,
            lookback,
            started_at,
        );
        let window = match &resume {
            Some(c) => planned.resume(c.floor),
            None => planned,
        };
        let floor = window.floor;
        let totals_before = resume.as_ref().map(|c| c.totals).unwrap_or_default();
        let (scan_from, run_ledger, run_deltas) = match resume {
            Some(c) => (Some(c.scan), c.ledger, c.deltas),
            None => (None, None, inherited),
        };
        // A full run re-sends everything and rebuilds the ledger from what it
        // sends: it never reads the stored one, so it also recovers from a
        // damaged or missing ledger.
        let base_ledger = match (&run_ledger, kind) {
            (Some(r), _) => Some(r),
            (None, RunKind::Full) => {
                if let Some(r) = &state.ledger {
                    info!(message = "A full run does not read the stored ledger; it rebuilds it from what it sends.", generation = %r.generation);
                }
                None
            }
            (None, _) => state.ledger.as_ref(),
        };
        // Whether the stored generation was read back whole in this
        // invocation: only then may an unchanged ledger keep pointing at it.
        let stored_ledger_read = base_ledger.is_some() && base_ledger == state.ledger.as_ref();
        let mut ledger = SpillLedger::new(
            &self.config.ledger_spill_dir,
            self.config.ledger_memory_versions,
        );
        for r in base_ledger.into_iter().chain(&run_deltas) {
            self.load_ledger(r, &mut ledger).await?;
        }
        ledger
            .finish_loading()
            .map_err(|e| spill_error(&self.config, e))?;
        info!(message = "Producer run starting.", run_id = %run_id, mode = spec.name(), resumed, invocation = invocations, floor = ?floor, guard_from = ?window.guard_from, ledger_versions = ledger.len());

        // What an earlier invocation staged: its versions are not packed
        // again, and what the queue had not accepted is re-sent verbatim.
        let outbox = DynamoOutbox::new(
            self.dynamodb.clone(),
            &self.config.state_table,
            &self.config.source_table,
            &run_id,
        );
        let staged = outbox.load().await?;
        let added = ledger.empty_like();
        let mut filter = LedgerFilter::over(ledger, added, floor, window.rescore, window.keep_from)
            .with_guard(window.guard_from)
            .with_clock(self.clock);
        let resent = self.resend_staged(&outbox, &staged, &mut filter).await?;

        let scan = ScanConfig {
            table: self.config.source_table.clone(),
            segments: self.config.segments,
            page_limit: self.config.page_limit,
            fields: self.config.fields.clone(),
            since: window.reads_from(),
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
        let stats = produce_with(&mut bounded, &*self.queue, &outbox, &mut packer, &mut filter, MAX_BATCH_ENTRIES, |rej| {
            logged += 1;
            if logged <= LOGGED_REJECTIONS {
                warn!(message = "Rejected source item.", table = %self.config.source_table, location = %rej.location, id = ?rej.id, field = ?rej.field, reason = %rej.reason);
            }
        })
        .await
        .map_err(|e: ProduceError| InvocationError { retry: e.backend().retry, message: e.to_string() })?;
        if let Some(e) = filter.take_error() {
            return Err(spill_error(&self.config, e));
        }
        let stopped = bounded.stopped;
        let pages = source.pages();
        let position = source.checkpoint();
        drop(source);
        let counts: FilterCounts = filter.counts();
        if counts.clock_skewed > 0 {
            warn!(message = "Records dated after the producer's clock were sent (once); their writers' clocks are ahead.", run_id = %run_id, clock_skewed = counts.clock_skewed);
        }
        if counts.behind_floor > 0 {
            warn!(message = "Records written behind the window were found below the floor and sent; writers older than the guard band would be missed. Raise LOOKBACK_SECONDS.", run_id = %run_id, behind_floor = counts.behind_floor, floor = ?floor, guard_from = ?window.guard_from);
        }
        let mut summary = Summary {
            status: Status::Complete,
            run_id: run_id.clone(),
            mode: spec.name().to_owned(),
            resumed,
            stats,
            pages,
            clock_skewed: counts.clock_skewed,
            already_sent: counts.already_sent,
            ledger_versions: 0,
            behind_floor: counts.behind_floor,
            resent_messages: resent,
            staged_messages: staged.len() as u64,
            lock_owner: None,
            run_requested: false,
        };
        let (mut ledger, added) = filter.into_parts();
        let totals = totals_before.plus(
            summary.stats.read,
            summary.stats.rejected,
            summary.stats.sent_records,
            summary.stats.messages,
        );

        if stopped && !position.is_done() {
            // Only this invocation's versions: the base and the earlier
            // deltas are saved already.
            let encoded = added
                .encode_to_file()
                .map_err(|e| spill_error(&self.config, e))?;
            let delta = self
                .state
                .save_ledger(&format!("{run_id}-{invocations}"), &encoded)
                .await?;
            summary.ledger_versions = ledger.len();
            let mut deltas = run_deltas.clone();
            deltas.push(delta);
            let cp = RunCheckpoint {
                run_id,
                spec,
                floor,
                ledger: base_ledger.cloned(),
                deltas,
                scan: position,
                started_at,
                invocations,
                totals,
            };
            self.state.save_checkpoint(&cp, checkpoint_version).await?;
            // What this invocation staged is in the checkpoint's ledger now.
            // What it loaded stays staged until the run completes: the next
            // invocation may scan those records again (pages come in another
            // order), and only the staged set keeps a backfill, or a version
            // older than the ledger keeps, from packing them again.
            outbox.clear(&[]).await;
            summary.status = Status::Partial;
            info!(message = "Stopped at a page boundary; checkpoint saved.", run_id = %cp.run_id, pages, ledger_versions = ledger.len(), versions_written = added.len());
            return Ok(summary);
        }

        // Only a checkpoint writes this invocation's versions alone.
        drop(added);
        let done = complete_run(
            state.watermark,
            state.ledger_from,
            &window,
            started_at,
            lookback,
            &mut ledger,
        )
        .map_err(|e| spill_error(&self.config, e))?;
        let pruned = done.pruned;
        let encoded = ledger
            .encode_to_file()
            .map_err(|e| spill_error(&self.config, e))?;
        let unchanged = stored_ledger_read
            && state
                .ledger
                .as_ref()
                .is_some_and(|r| r.bytes == encoded.bytes && r.sha256 == encoded.sha256);
        let saved = if unchanged {
            state.ledger.clone().expect("checked above")
        } else {
            self.state
                .save_ledger(&format!("{}-{invocations}", summary.run_id), &encoded)
                .await?
        };
        drop(encoded);
        summary.ledger_versions = ledger.len();
        let report = RunReport {
            run_id: summary.run_id.clone(),
            mode: summary.mode.clone(),
            started_at,
            completed_at: self.clock.now(),
            invocations,
            sent_records: totals.sent_records,
            rejected: totals.rejected,
            read: totals.read,
            messages: totals.messages,
            ledger_versions: summary.ledger_versions,
        };
        let next = ProducerState {
            watermark: done.watermark,
            ledger: Some(saved.clone()),
            ledger_from: done.ledger_from,
            history: state.history_with(&report),
            last_run: Some(report),
        };
        self.state
            .save_watermark(&next, stored.as_ref().map(|s| s.version))
            .await?;
        // Every staged version is in the saved ledger now.
        outbox.clear(&staged).await;
        if window.advances {
            info!(message = "Run complete; watermark advanced.", watermark = ?done.watermark, ledger_versions = ledger.len(), pruned, clock_skewed = counts.clock_skewed, behind_floor = counts.behind_floor);
        } else {
            info!(message = "Backfill complete; the watermark stays, since the run did not read what was updated below its instant.", watermark = ?done.watermark, ledger_versions = ledger.len(), pruned);
        }
        if let Some(v) = checkpoint_version {
            self.state.clear_checkpoint(v).await?;
        }
        self.discard_ledgers(
            state
                .ledger
                .iter()
                .chain(run_ledger.iter())
                .chain(run_deltas.iter()),
            &saved,
        )
        .await;
        match self.state.delete_orphan_ledgers(&[&saved.generation]).await {
            Ok(0) => {}
            Ok(n) => info!(
                message = "Deleted ledger items no state points at (left by failed invocations).",
                items = n
            ),
            Err(e) => {
                warn!(message = "Could not look for orphaned ledger generations; the next completed run tries again.", error = %e)
            }
        }
        Ok(summary)
    }

    /// Send again, verbatim, what an earlier invocation staged and the queue
    /// had not accepted; mark every staged version as sent in `filter`.
    /// Returns how many messages were sent.
    async fn resend_staged(
        &self,
        outbox: &DynamoOutbox,
        staged: &[StagedMessage],
        filter: &mut LedgerFilter<SpillLedger>,
    ) -> Result<u64, InvocationError> {
        for s in staged {
            let decoded = etl_core::decode_message(&s.message.body).map_err(|e| {
                InvocationError::permanent(format!(
                    "staged message {} does not decode: {e}",
                    s.message.content_id
                ))
            })?;
            for r in &decoded.records {
                filter.mark_staged(r);
            }
        }
        let unsent: Vec<etl_core::OutgoingMessage> = staged
            .iter()
            .filter(|s| !s.sent)
            .map(|s| s.message.clone())
            .collect();
        if !staged.is_empty() {
            info!(message = "Found messages an earlier invocation staged; re-sending those the queue had not accepted, verbatim.", staged = staged.len(), unsent = unsent.len());
        }
        for batch in unsent.chunks(MAX_BATCH_ENTRIES) {
            self.queue.send(batch).await.map_err(|e| InvocationError {
                retry: e.retry,
                message: format!("re-sending staged messages: {e}"),
            })?;
            if let Err(e) = outbox.sent(batch).await {
                warn!(message = "Could not mark re-sent messages as sent; the next attempt sends the same bodies again.", error = %e);
            }
        }
        Ok(unsent.len() as u64)
    }

    /// Stream a stored generation into `ledger`: its chunks to a scratch
    /// file (checked against the reference's length and SHA-256), then its
    /// entries into a sorted run (checked as they are read).
    async fn load_ledger(
        &self,
        reference: &LedgerRef,
        ledger: &mut SpillLedger,
    ) -> Result<(), InvocationError> {
        let mut raw = ledger
            .scratch_file()
            .map_err(|e| spill_error(&self.config, e))?;
        {
            let mut w = std::io::BufWriter::with_capacity(1 << 16, &raw);
            self.state.load_ledger_into(reference, &mut w).await?;
        }
        std::io::Seek::rewind(&mut raw).map_err(|e| spill_error(&self.config, e))?;
        ledger
            .load(std::io::BufReader::with_capacity(1 << 16, raw))
            .map_err(|e| match e {
                // Local disk, not the stored generation.
                etl_core::LedgerError::Io(io) => spill_error(&self.config, std::io::Error::other(io)),
                e => InvocationError::permanent(format!(
                    "ledger generation {} in {} is unreadable: {e}; a `{{\"mode\":\"full\"}}` run rebuilds it (and re-scores everything)",
                    reference.generation, self.config.state_table
                )),
            })?;
        Ok(())
    }

    /// Delete ledger generations nothing points at any more (`keep` are
    /// live). Best effort: a leftover generation is only wasted space.
    async fn discard_ledgers<'a>(
        &self,
        garbage: impl Iterator<Item = &'a LedgerRef>,
        keep: &LedgerRef,
    ) {
        let mut done: Vec<&str> = Vec::new();
        for r in garbage {
            let live = keep.generation == r.generation;
            if live || done.contains(&r.generation.as_str()) {
                continue;
            }
            done.push(&r.generation);
            if let Err(e) = self.state.delete_ledger(r).await {
                warn!(message = "Could not delete an old ledger generation; it is unused.", generation = %r.generation, error = %e);
            }
        }
    }
}

/// A failure of the ledger's local spill files: the run stops before
/// anything that depends on what it could not record.
fn spill_error(config: &Config, e: std::io::Error) -> InvocationError {
    InvocationError::permanent(format!(
        "the ledger's spill files in {} failed: {e}; give the function more ephemeral storage (EphemeralStorage) or set LEDGER_SPILL_DIR",
        config.ledger_spill_dir.display()
    ))
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
