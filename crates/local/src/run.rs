//! `etl run`: the whole pipeline on one machine.
//!
//! One producer task streams the input through the watermark filter and the
//! packer into the in-process queue; `workers` consumer tasks receive batches
//! and run the core consume step, acknowledging each message on its own or
//! releasing it for redelivery (dead-lettered after `max_receive_count`).
//! The lake's state (the versions that landed) advances only when the run
//! completes and its files are synced to disk, so an interrupted run is
//! simply run again: it re-sends the same messages, whose content ids map to
//! the same files, which are overwritten rather than duplicated. A version
//! is recorded as sent only when its message landed; those of dead-lettered
//! messages are sent again by the next run. The whole run holds the lake's
//! lock ([`crate::lock`]), so two runs never interleave on one lake.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etl_core::message::DEFAULT_MESSAGE_BUDGET;
use etl_core::pipeline::ProduceError;
use etl_core::{
    produce_with, Catalog, Codec, ConsumeError, ConsumeOptions, Consumer, FieldMap, Packer,
    ProduceStats, Rejection, Routes, SentimentAnalyzer, VaderAnalyzer, WorkQueue,
};
use futures::FutureExt as _;
use serde::Serialize;
use thiserror::Error;
use tracing::{info, warn};

use crate::catalog::LocalCatalog;
use crate::dead_letter::DeadLetterFile;
use crate::lock::{LakeLock, LockError};
use crate::queue::{InProcessQueue, QueueConfig};
use crate::sink::FsSink;
use crate::source::{FileSource, InputFormat};
use crate::state::{LakeState, Landed, StateError};

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
            fields: FieldMap::default(),
            max_receive_count: 3,
            full: false,
            wait_lock: false,
            on_lock_wait: |_| {},
            max_line_bytes: None,
            since: None,
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
    Consumer(String),
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

/// Appends rejections to the rejects file and reports each one.
struct RejectLog {
    path: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    run_id: String,
    count: u64,
    error: Option<std::io::Error>,
    on_reject: Box<dyn FnMut(&Rejection) + Send>,
}

impl RejectLog {
    fn record(&mut self, r: &Rejection) {
        use std::io::Write;
        self.count += 1;
        (self.on_reject)(r);
        if self.error.is_some() {
            return;
        }
        if self.file.is_none() {
            let open = self
                .path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&self.path)
                });
            match open {
                Ok(f) => self.file = Some(std::io::BufWriter::new(f)),
                Err(e) => {
                    self.error = Some(e);
                    return;
                }
            }
        }
        let line = serde_json::json!({
            "run_id": self.run_id, "location": r.location, "id": r.id, "field": r.field, "reason": r.reason,
        });
        if let Some(f) = self.file.as_mut() {
            if let Err(e) = writeln!(f, "{line}") {
                self.error = Some(e);
            }
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if let Some(f) = self.file.as_mut() {
            f.flush()?;
        }
        Ok(())
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

/// Run the pipeline with any analyzer (tests inject failing ones).
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
    std::fs::create_dir_all(&lake).map_err(|e| {
        lake_err(etl_core::BackendError::permanent(
            "create",
            lake.display().to_string(),
            e,
        ))
    })?;
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
    let started_at = chrono::Utc::now();
    // A damaged state stops the run here, before anything is written.
    let mut state = if cfg.full {
        LakeState::fresh(&lake)
    } else {
        LakeState::load(&lake)?
    };
    let landed = state.landed();

    let format = cfg
        .format
        .unwrap_or_else(|| InputFormat::from_path(&cfg.input));
    let max_line = cfg
        .max_line_bytes
        .unwrap_or(etl_core::message::SQS_MAX_MESSAGE_BYTES.max(cfg.message_budget));
    let mut source = FileSource::open_limited(
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

    let catalog = Arc::new(LocalCatalog::new(&lake, cfg.include_text));
    catalog.ensure_table().await.map_err(lake_err)?;

    let queue = Arc::new(InProcessQueue::new(QueueConfig {
        max_receive_count: cfg.max_receive_count.max(1),
        capacity: cfg.workers.max(1) * cfg.batch_size.max(1) * 4,
        dead_letter_path: LakePaths::dead_letters(&lake),
    }));
    let sink = Arc::new(FsSink::new(&lake));
    // Refused records go there alone; transient failures fail the message
    // and it is released for redelivery (no requeue: VADER is not billed).
    let refused = Arc::new(DeadLetterFile::new(LakePaths::dead_letters(&lake)));
    let options = ConsumeOptions {
        codec: cfg.codec,
        include_text: cfg.include_text,
    };
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
            options,
        },
        cfg.workers.max(1),
        cfg.batch_size.max(1),
    );

    let mut rejects = RejectLog {
        path: LakePaths::rejects(&lake),
        file: None,
        run_id: chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string(),
        count: 0,
        error: None,
        on_reject,
    };
    let mut packer = Packer::new(cfg.message_budget, None);
    let produced = match cfg.since {
        Some(since) => {
            let mut filter = SinceFilter {
                state: &mut state,
                since,
            };
            produce_with(
                &mut source,
                queue.as_ref(),
                &mut packer,
                &mut filter,
                10,
                |r| rejects.record(r),
            )
            .await
        }
        None => {
            produce_with(
                &mut source,
                queue.as_ref(),
                &mut packer,
                &mut state,
                10,
                |r| rejects.record(r),
            )
            .await
        }
    };
    queue.close().await;
    // Let consumers finish what was sent even when the producer failed.
    let messages_ok = join_consumers(workers).await?;
    let stats = produced?;
    rejects.finish().map_err(|e| {
        lake_err(etl_core::BackendError::permanent(
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

    let summary = RunSummary {
        scored: counters.scored.load(Ordering::Relaxed),
        messages_ok,
        dead_lettered_messages: dl_msgs,
        dead_lettered_records: dl_records,
        retried_records,
        pending_retry: saved.pending_retry,
        versions_in_lake: saved.versions,
        files_written: files.load(Ordering::Relaxed),
        bytes_written: counters.bytes_written.load(Ordering::Relaxed),
        elapsed_secs: started.elapsed().as_secs_f64(),
        rejects_file: (stats.rejected > 0).then(|| LakePaths::rejects(&lake)),
        dead_letter_file: (dl_msgs > 0).then(|| LakePaths::dead_letters(&lake)),
        produce: stats,
    };
    let mode = match (cfg.full, cfg.since) {
        (true, _) => "full",
        (false, Some(_)) => "since",
        (false, None) => "incremental",
    };
    let record = crate::history::RunRecord {
        mode: mode.into(),
        started_at,
        completed_at: chrono::Utc::now(),
        read: summary.produce.read,
        rejected: summary.produce.rejected,
        sent: summary.produce.sent_records,
        scored: summary.scored,
        failed: summary.dead_lettered_records,
        files: summary.files_written,
        bytes: summary.bytes_written,
    };
    if let Err(e) = crate::history::append(&lake, &record) {
        warn!(message = "Could not append to the run log.", path = %crate::history::runs_path(&lake).display(), error = %e);
    }
    info!(
        message = "Run complete.",
        read = summary.produce.read,
        scored = summary.scored,
        rejected = summary.produce.rejected,
        dead_lettered = summary.dead_lettered_records
    );
    Ok(summary)
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
}

/// Start `workers` consumer tasks on the queue: each message is consumed on
/// its own (a panic is that message's failure), acknowledged when it landed
/// and released for redelivery when it failed; a lake that cannot be written
/// stops them all. Each task returns the messages it completed.
pub(crate) fn spawn_consumers(
    pipes: Pipes,
    workers: usize,
    batch_size: usize,
) -> Vec<tokio::task::JoinHandle<Result<u64, String>>> {
    let pipes = Arc::new(pipes);
    (0..workers.max(1))
        .map(|worker| {
            let p = pipes.clone();
            tokio::spawn(async move { consume_loop(&p, worker, batch_size.max(1)).await })
        })
        .collect()
}

async fn consume_loop(p: &Pipes, worker: usize, batch_size: usize) -> Result<u64, String> {
    let consumer = Consumer {
        analyzer: p.analyzer.as_ref(),
        sink: p.sink.as_ref(),
        catalog: p.catalog.as_ref(),
        options: p.options,
    };
    let queue = &p.queue;
    let mut ok = 0u64;
    loop {
        let batch = queue
            .receive(batch_size, Duration::from_secs(3600))
            .await
            .map_err(|e| e.to_string())?;
        if batch.is_empty() {
            if queue.is_drained().await {
                return Ok(ok);
            }
            continue;
        }
        for d in batch {
            let routes = Routes {
                dead_letters: Some(p.refused.as_ref()),
                requeue: None,
                receive_count: d.receive_count,
                memo: None,
            };
            let outcome = std::panic::AssertUnwindSafe(consumer.consume_routed(
                &d.message_id,
                &d.body,
                routes,
            ))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(ConsumeError::Panicked {
                    message_id: d.message_id.clone(),
                    detail: panic_text(&panic),
                })
            });
            match outcome {
                Ok(o) => {
                    p.counters
                        .scored
                        .fetch_add(o.records as u64, Ordering::Relaxed);
                    p.counters.bytes_written.fetch_add(
                        o.objects.iter().map(|x| x.1 as u64).sum(),
                        Ordering::Relaxed,
                    );
                    p.files.fetch_add(o.objects.len() as u64, Ordering::Relaxed);
                    // Only what landed is recorded as sent: records refused
                    // (in `_dead_letter/`) are retried by the next run.
                    if o.refused.is_empty() && o.deferred.is_empty() {
                        p.landed.commit_message(&d.body);
                    } else if let Ok(m) = etl_core::decode_message(&d.body) {
                        let failed: std::collections::HashSet<&str> = o
                            .refused
                            .iter()
                            .map(|(id, _)| id.as_str())
                            .chain(o.deferred.iter().map(String::as_str))
                            .collect();
                        p.landed
                            .commit(m.records.iter().filter(|r| !failed.contains(r.id.as_str())));
                    }
                    queue.ack(&d).await.map_err(|e| e.to_string())?;
                    p.counters.messages_done.fetch_add(1, Ordering::Relaxed);
                    ok += 1;
                }
                Err(e @ ConsumeError::Storage { .. }) => {
                    // The lake itself cannot be written: every message would fail
                    // the same way, so stop the run instead of dead-lettering all.
                    queue
                        .release(&d, &e.to_string())
                        .await
                        .map_err(|e| e.to_string())?;
                    queue.abort().await;
                    return Err(e.to_string());
                }
                Err(e) => {
                    warn!(message = "Message failed.", worker, message_id = %d.message_id, receive_count = d.receive_count, error = %e);
                    queue
                        .release(&d, &e.to_string())
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
        }
    }
}

/// Wait for every consumer task; the messages they completed, or the first
/// failure that stopped one.
pub(crate) async fn join_consumers(
    workers: Vec<tokio::task::JoinHandle<Result<u64, String>>>,
) -> Result<u64, RunError> {
    let mut messages_ok = 0;
    let mut consumer_error = None;
    for w in workers {
        match w.await {
            Ok(Ok(n)) => messages_ok += n,
            Ok(Err(e)) => consumer_error = Some(e),
            Err(e) => consumer_error = Some(e.to_string()),
        }
    }
    match consumer_error {
        Some(e) => Err(RunError::Consumer(e)),
        None => Ok(messages_ok),
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}
