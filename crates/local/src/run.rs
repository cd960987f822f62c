//! `etl run`: the whole pipeline on one machine.
//!
//! One producer task streams the input through the watermark filter and the
//! packer into the in-process queue; `workers` consumer tasks receive batches
//! and run the core consume step, acknowledging each message on its own or
//! releasing it for redelivery (dead-lettered after `max_receive_count`).
//! The lake's state (the versions that landed) advances only when the run
//! completes and its files are synced to disk. Every message is staged in
//! the lake's outbox ([`crate::outbox`]) before it is queued, so an
//! interrupted run is simply run again, on the same input or a grown one: it
//! first re-sends the staged messages verbatim (same content ids, so the
//! same files, overwritten rather than duplicated, or the same Delta
//! transactions, found committed) and packs only what they do not hold. A version
//! is recorded as sent only when its message landed; those of dead-lettered
//! messages are sent again by the next run. The whole run holds the lake's
//! lock ([`crate::lock`]), so two runs never interleave on one lake.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use etl_core::message::DEFAULT_MESSAGE_BUDGET;
use etl_core::pipeline::ProduceError;
use etl_core::{
    produce_with, BackendError, Catalog, Clock, Codec, ConsumeOptions, FieldMap, OutgoingMessage,
    Packer, ProduceStats, Rejection, SentimentAnalyzer, VaderAnalyzer, WorkQueue, SYSTEM_CLOCK,
};
use serde::Serialize;
use thiserror::Error;
use tracing::{info, warn};

use crate::catalog::LocalCatalog;
use crate::dead_letter::DeadLetterFile;
use crate::lock::{LakeLock, LockError};
use crate::outbox::FileOutbox;
use crate::queue::{InProcessQueue, QueueConfig};
use crate::rejects::RejectLog;
use crate::sink::FsSink;
use crate::source::{FileSource, InputFormat};
use crate::state::{LakeState, StateError};
use crate::workers::{join_consumers, spawn_consumers, ConsumerStop, Pipes};

/// Settings of a local run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Input file.
    pub input: PathBuf,
    /// Input format (guessed from the extension when `None`).
    pub format: Option<InputFormat>,
    /// Lake directory.
    pub lake: PathBuf,
    /// Consumer tasks.
    pub workers: usize,
    /// Messages per receive (the SQS event source mapping's batch size).
    pub batch_size: usize,
    /// Byte budget per message.
    pub message_budget: usize,
    /// Parquet codec.
    pub codec: Codec,
    /// Keep the `text` column.
    pub include_text: bool,
    /// Table format of a new lake (`None`: the lake's own, Hive for a new
    /// one). An existing lake keeps its format; asking for another is refused.
    pub table_format: Option<etl_core::output::TableFormat>,
    /// Source attribute names.
    pub fields: FieldMap,
    /// Receives before a failing message is dead-lettered.
    pub max_receive_count: u32,
    /// Ignore what was sent before, send everything, and rebuild the state
    /// from what lands (does not read the state files).
    pub full: bool,
    /// Wait for another run holding the lake's lock instead of failing.
    pub wait_lock: bool,
    /// Told whom the run waits for, when it must wait for the lock.
    pub on_lock_wait: fn(&str),
    /// Longest input line accepted (bytes); longer ones are rejected with
    /// their line number without being held in memory. `None`: the queue's
    /// message limit (SQS's 256 KiB, or the message budget if larger).
    pub max_line_bytes: Option<usize>,
    /// A `since` backfill: send every record updated at or after this time
    /// again, whatever earlier runs sent (older records are not sent).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Stamps `processed_at` in the lake (pin it to reproduce a lake byte for byte).
    pub clock: &'static dyn Clock,
}

impl RunConfig {
    /// Defaults for `input` → `lake`.
    pub fn new(input: impl Into<PathBuf>, lake: impl Into<PathBuf>) -> Self {
        Self {
            input: input.into(),
            format: None,
            lake: lake.into(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            batch_size: 10,
            message_budget: DEFAULT_MESSAGE_BUDGET,
            codec: Codec::Snappy,
            include_text: true,
            table_format: None,
            fields: FieldMap::default(),
            max_receive_count: 3,
            full: false,
            wait_lock: false,
            on_lock_wait: |_| {},
            max_line_bytes: None,
            since: None,
            clock: &SYSTEM_CLOCK,
        }
    }
}

/// Live counters, readable while the run goes on (progress bars).
#[derive(Debug, Default)]
pub struct RunCounters {
    /// Input bytes consumed.
    pub bytes_read: Arc<AtomicU64>,
    /// Input size.
    pub total_bytes: AtomicU64,
    /// Records scored and written.
    pub scored: AtomicU64,
    /// Messages completed.
    pub messages_done: AtomicU64,
    /// Parquet bytes written.
    pub bytes_written: AtomicU64,
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Producer counts (read, rejected, unchanged, sent).
    pub produce: ProduceStats,
    /// Records scored and written to the lake.
    pub scored: u64,
    /// Messages processed successfully.
    pub messages_ok: u64,
    /// Entries in the dead-letter file from this run: whole messages that
    /// kept failing, and messages of the records the analyzer refused.
    pub dead_lettered_messages: u64,
    /// Records inside those entries.
    pub dead_lettered_records: u64,
    /// Records sent again because an earlier run sent them and their message
    /// was dead-lettered (they were not recorded as sent).
    pub retried_records: u64,
    /// Records this run sent that did not land (dead-lettered): not
    /// recorded as sent, so the next run retries them.
    pub pending_retry: u64,
    /// Messages an interrupted run had staged, sent again verbatim first.
    pub resent_messages: u64,
    /// Versions the lake's state records as landed, over all runs.
    pub versions_in_lake: u64,
    /// Parquet objects written (a redelivered message rewrites its own objects).
    pub files_written: u64,
    /// Parquet bytes written.
    pub bytes_written: u64,
    /// Wall time in seconds.
    pub elapsed_secs: f64,
    /// Where rejected lines were recorded (when there were any).
    pub rejects_file: Option<PathBuf>,
    /// Where dead letters were recorded (when there were any).
    pub dead_letter_file: Option<PathBuf>,
}

impl RunSummary {
    /// Records scored per second of wall time.
    pub fn records_per_sec(&self) -> f64 {
        if self.elapsed_secs > 0.0 {
            self.scored as f64 / self.elapsed_secs
        } else {
            0.0
        }
    }
}

/// A run that could not complete.
#[derive(Debug, Error)]
pub enum RunError {
    /// The input could not be read.
    #[error("cannot read input {path}: {source}")]
    Input {
        /// Input path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: etl_core::BackendError,
    },
    /// The lake could not be written.
    #[error("cannot write lake {path}: {source}")]
    Lake {
        /// Lake path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: etl_core::BackendError,
    },
    /// Another run holds the lake, or its lock file cannot be used.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// The lake's state files cannot be used (damaged, old format).
    #[error(transparent)]
    State(#[from] StateError),
    /// The producer failed.
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// An `etl redrive` was interrupted; it must finish first.
    #[error("an interrupted `etl redrive` left {}; run `etl redrive --lake {}` to finish it before running again", .files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "), .lake.display())]
    RedriveUnfinished {
        /// The lake.
        lake: PathBuf,
        /// Its in-progress dead-letter files.
        files: Vec<PathBuf>,
    },
    /// A consumer stopped the run (the lake cannot be written, or a task died).
    #[error("consumer stopped the run: {0}")]
    Consumer(#[source] Box<ConsumerStop>),
}

impl From<ConsumerStop> for RunError {
    fn from(e: ConsumerStop) -> Self {
        RunError::Consumer(Box::new(e))
    }
}

/// Paths of the lake's bookkeeping files.
pub struct LakePaths;

impl LakePaths {
    /// Rejected input lines (JSON lines, appended per run).
    pub fn rejects(lake: &Path) -> PathBuf {
        lake.join("_rejects").join("rejects.jsonl")
    }
    /// Dead-lettered messages (JSON lines).
    pub fn dead_letters(lake: &Path) -> PathBuf {
        lake.join("_dead_letter").join("messages.jsonl")
    }
}

/// Run the pipeline with VADER. `on_reject` is called for every rejected input item.
pub async fn run(
    cfg: RunConfig,
    counters: Arc<RunCounters>,
    on_reject: Box<dyn FnMut(&Rejection) + Send>,
) -> Result<RunSummary, RunError> {
    run_with(cfg, Arc::new(VaderAnalyzer::new()), counters, on_reject).await
}

/// Run the pipeline with any analyzer (tests inject failing ones): take the
/// lake, start the consumers, produce, then record what landed.
pub async fn run_with(
    cfg: RunConfig,
    analyzer: Arc<dyn SentimentAnalyzer>,
    counters: Arc<RunCounters>,
    on_reject: Box<dyn FnMut(&Rejection) + Send>,
) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let lake = cfg.lake.clone();
    let lake_err = |source| RunError::Lake {
        path: lake.clone(),
        source,
    };
    std::fs::create_dir_all(&lake)
        .map_err(|e| lake_err(BackendError::io("create", lake.display().to_string(), e)))?;
    // Held until the state is saved: before anything is read or written.
    let notify = |holder: &str| (cfg.on_lock_wait)(holder);
    let _lock = LakeLock::acquire(&lake, cfg.wait_lock.then_some(&notify as &dyn Fn(&str)))?;
    // Records a redrive landed but did not record yet would be sent twice.
    let unfinished = crate::redrive::in_progress(&lake);
    if !unfinished.is_empty() {
        return Err(RunError::RedriveUnfinished {
            lake: lake.clone(),
            files: unfinished,
        });
    }
    let started_at = cfg.clock.now();
    // A damaged state stops the run here, before anything is written.
    let mut state = if cfg.full {
        LakeState::fresh(&lake)
    } else {
        LakeState::load(&lake)?
    };
    let landed = state.landed();
    // What an interrupted run staged: sent again as it was, and its versions
    // count as sent (they are not packed again into other bodies).
    let staged = FileOutbox::load(&lake)?;
    for m in &staged {
        let decoded = etl_core::decode_message(&m.body).map_err(|e| StateError::Corrupt {
            path: crate::outbox::outbox_path(&lake),
            reason: format!("message {}: {e}", m.content_id),
        })?;
        for r in &decoded.records {
            etl_core::ChangeFilter::observe(&mut state, r);
        }
    }
    if !staged.is_empty() {
        info!(message = "Re-sending the messages an interrupted run staged, verbatim.", messages = staged.len(), path = %crate::outbox::outbox_path(&lake).display());
    }
    let mut source = open_input(&cfg, &counters)?;

    let format = match cfg.table_format {
        Some(f) => f,
        None => LocalCatalog::load(&lake)
            .map_err(lake_err)?
            .map(|e| e.format)
            .unwrap_or_default(),
    };
    let catalog =
        Arc::new(LocalCatalog::with_format(&lake, cfg.include_text, format).map_err(lake_err)?);
    catalog.ensure_table().await.map_err(lake_err)?;
    let queue = Arc::new(InProcessQueue::new(QueueConfig {
        max_receive_count: cfg.max_receive_count.max(1),
        capacity: cfg.workers.max(1) * cfg.batch_size.max(1) * 4,
        dead_letter_path: LakePaths::dead_letters(&lake),
    }));
    let sink = Arc::new(sink_for(&lake, format));
    let refused = Arc::new(DeadLetterFile::new(LakePaths::dead_letters(&lake)));
    let files = Arc::new(AtomicU64::new(0));
    let workers = spawn_consumers(
        Pipes {
            queue: queue.clone(),
            sink: sink.clone(),
            catalog: catalog.clone(),
            analyzer,
            refused: refused.clone(),
            landed: landed.clone(),
            counters: counters.clone(),
            files: files.clone(),
            options: ConsumeOptions {
                codec: cfg.codec,
                include_text: cfg.include_text,
            },
            clock: cfg.clock,
        },
        cfg.workers.max(1),
        cfg.batch_size.max(1),
    );

    let run_id = started_at.format("%Y%m%dT%H%M%S%.3fZ").to_string();
    let mut rejects = RejectLog::new(LakePaths::rejects(&lake), run_id, on_reject);
    let outbox = FileOutbox::new(&lake);
    let produced = match resend(&queue, &staged).await {
        Ok(()) => produce(&cfg, &mut source, &queue, &outbox, &mut state, &mut rejects).await,
        Err(e) => Err(ProduceError::Queue(e)),
    };
    queue.close().await;
    // Let consumers finish what was sent even when the producer failed.
    let messages_ok = join_consumers(workers).await?;
    let stats = produced?;
    rejects.finish().map_err(|e| {
        lake_err(BackendError::io(
            "write",
            rejects.path.display().to_string(),
            e,
        ))
    })?;
    let (dl_msgs, dl_records) = queue.dead_letter_counts().await;
    let (refused_msgs, refused_records) = refused.counts();
    let (dl_msgs, dl_records) = (dl_msgs + refused_msgs, dl_records + refused_records);
    // Every file of this run on disk before the run is recorded as done.
    sink.flush().await.map_err(lake_err)?;
    let retried_records = state.retried();
    drop(landed);
    let saved = state.save()?;
    // Every staged version is recorded now (landed, or to be retried).
    FileOutbox::clear(&lake)?;

    let summary = RunSummary {
        scored: counters.scored.load(Ordering::Relaxed),
        messages_ok,
        dead_lettered_messages: dl_msgs,
        dead_lettered_records: dl_records,
        retried_records,
        pending_retry: saved.pending_retry,
        resent_messages: staged.len() as u64,
        versions_in_lake: saved.versions,
        files_written: files.load(Ordering::Relaxed),
        bytes_written: counters.bytes_written.load(Ordering::Relaxed),
        elapsed_secs: started.elapsed().as_secs_f64(),
        rejects_file: (stats.rejected > 0).then(|| LakePaths::rejects(&lake)),
        dead_letter_file: (dl_msgs > 0).then(|| LakePaths::dead_letters(&lake)),
        produce: stats,
    };
    record_history(&cfg, &summary, started_at);
    info!(
        message = "Run complete.",
        read = summary.produce.read,
        scored = summary.scored,
        rejected = summary.produce.rejected,
        dead_lettered = summary.dead_lettered_records
    );
    Ok(summary)
}

/// The lake's object sink: a Delta lake's objects are synced before their
/// commit can name them; a Hive lake's at the end of the run (its state
/// advances only after that, and a crash re-sends the same messages).
pub(crate) fn sink_for(lake: &Path, format: etl_core::output::TableFormat) -> FsSink {
    match format {
        etl_core::output::TableFormat::Delta => FsSink::new(lake).durable(),
        etl_core::output::TableFormat::Hive => FsSink::new(lake),
    }
}

/// The input file, with lines longer than a message can carry rejected.
fn open_input(cfg: &RunConfig, counters: &RunCounters) -> Result<FileSource, RunError> {
    let format = cfg
        .format
        .unwrap_or_else(|| InputFormat::from_path(&cfg.input));
    let max_line = cfg
        .max_line_bytes
        .unwrap_or(etl_core::message::SQS_MAX_MESSAGE_BYTES.max(cfg.message_budget));
    let source = FileSource::open_limited(
        &cfg.input,
        format,
        cfg.fields.clone(),
        counters.bytes_read.clone(),
        max_line,
    )
    .map_err(|source| RunError::Input {
        path: cfg.input.clone(),
        source,
    })?;
    counters
        .total_bytes
        .store(source.total_bytes(), Ordering::Relaxed);
    Ok(source)
}

/// Stream the input through the run's change filter (the lake's state, or
/// a `since` window) and the packer into the queue.
async fn produce(
    cfg: &RunConfig,
    source: &mut FileSource,
    queue: &InProcessQueue,
    outbox: &FileOutbox,
    state: &mut LakeState,
    rejects: &mut RejectLog,
) -> Result<ProduceStats, ProduceError> {
    let mut packer = Packer::new(cfg.message_budget, None);
    let on_reject = |r: &Rejection| rejects.record(r);
    match cfg.since {
        Some(since) => {
            let mut filter = SinceFilter { state, since };
            produce_with(
                source,
                queue,
                outbox,
                &mut packer,
                &mut filter,
                10,
                on_reject,
            )
            .await
        }
        None => produce_with(source, queue, outbox, &mut packer, state, 10, on_reject).await,
    }
}

/// Send an interrupted run's staged messages again, as they were.
async fn resend(queue: &InProcessQueue, staged: &[OutgoingMessage]) -> Result<(), BackendError> {
    for chunk in staged.chunks(10) {
        queue.send(chunk).await?;
    }
    Ok(())
}

/// Append the run to `_state/runs.jsonl` (`etl status` reads it). A failure
/// is logged, not fatal: the lake and its state are already saved.
fn record_history(
    cfg: &RunConfig,
    summary: &RunSummary,
    started_at: chrono::DateTime<chrono::Utc>,
) {
    let mode = match (cfg.full, cfg.since) {
        (true, _) => "full",
        (false, Some(_)) => "since",
        (false, None) => "incremental",
    };
    let record = crate::history::RunRecord {
        mode: mode.into(),
        started_at,
        completed_at: cfg.clock.now(),
        read: summary.produce.read,
        rejected: summary.produce.rejected,
        sent: summary.produce.sent_records,
        scored: summary.scored,
        failed: summary.dead_lettered_records,
        files: summary.files_written,
        bytes: summary.bytes_written,
    };
    if let Err(e) = crate::history::append(&cfg.lake, &record) {
        warn!(message = "Could not append to the run log.", path = %crate::history::runs_path(&cfg.lake).display(), error = %e);
    }
}

/// The change filter of a `since` backfill: every version updated at or
/// after `since` is sent (once per run), whatever earlier runs sent.
struct SinceFilter<'a> {
    state: &'a mut LakeState,
    since: chrono::DateTime<chrono::Utc>,
}

impl etl_core::ChangeFilter for SinceFilter<'_> {
    fn is_new(&mut self, r: &etl_core::SourceRecord) -> bool {
        r.updated_at >= self.since && !self.state.sent_this_run_contains(r)
    }

    fn observe(&mut self, r: &etl_core::SourceRecord) {
        self.state.observe(r);
    }
}
