//! `etl redrive` on a local lake: dead-lettered work goes back through the
//! pipeline, once its cause is fixed.
//!
//! Under the lake's lock, `_dead_letter/messages.jsonl` is first renamed to
//! `_dead_letter/redrive-<time>.jsonl` (one rename, so no letter is in two
//! places or none), then every letter in the in-progress files is sent to an
//! in-process queue and consumed as in `etl run`. What fails again is
//! dead-lettered afresh into a new `messages.jsonl`, with its new reasons;
//! lines that cannot be read are copied back there unchanged. Only when the
//! redriven files are synced and the state records what landed are the
//! in-progress files removed.
//!
//! Interrupted at any point, nothing is lost: the in-progress files are
//! still there, the next `etl redrive` picks them up, and what had landed is
//! written again under the same content ids (the same files, overwritten).
//! Until then `etl run` refuses to start, because it would send records the
//! redrive landed without recording them.
//!
//! A version that landed since it was dead-lettered (a later `etl run`
//! retries dead-lettered versions by itself) is not redriven: it is counted
//! as already in the lake. When some of a letter's records are, the rest are
//! packed into a message of their own (its content id is a function of the
//! records, so a repeated redrive writes the same file again).

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use etl_core::incremental::fingerprint;
use etl_core::{
    build_message, decode_message, Catalog, Codec, ConsumeOptions, OutgoingMessage,
    SentimentAnalyzer, VaderAnalyzer, WorkQueue,
};
use serde::Serialize;

use crate::catalog::LocalCatalog;
use crate::dead_letter::DeadLetterFile;
use crate::lock::LakeLock;
use crate::queue::{DeadLetter, InProcessQueue, QueueConfig};
use crate::run::sink_for;
use crate::run::{LakePaths, RunCounters, RunError};
use crate::state::LakeState;
use crate::workers::{join_consumers, spawn_consumers, Pipes};

/// Settings of a local redrive.
#[derive(Debug, Clone)]
pub struct RedriveConfig {
    /// Lake directory.
    pub lake: PathBuf,
    /// Consumer tasks.
    pub workers: usize,
    /// Messages per receive.
    pub batch_size: usize,
    /// Receives before a message that fails again is dead-lettered again.
    pub max_receive_count: u32,
    /// Parquet codec.
    pub codec: Codec,
    /// Wait for a run holding the lake's lock instead of failing.
    pub wait_lock: bool,
}

impl RedriveConfig {
    /// Defaults for `lake`.
    pub fn new(lake: impl Into<PathBuf>) -> Self {
        Self {
            lake: lake.into(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            batch_size: 10,
            max_receive_count: 3,
            codec: Codec::Snappy,
            wait_lock: false,
        }
    }
}

/// A letter that failed again.
#[derive(Debug, Clone, Serialize)]
pub struct FailedAgain {
    /// Its content id.
    pub content_id: Option<String>,
    /// Records inside.
    pub records: usize,
    /// Why it failed this time.
    pub reason: String,
}

/// What a redrive did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RedriveSummary {
    /// Dead letters read (from the in-progress files).
    pub letters: u64,
    /// Records inside them.
    pub records: u64,
    /// Lines that could not be read as dead letters, or whose body is not a
    /// message: copied back to the dead-letter file unchanged.
    pub unreadable: u64,
    /// Records not redriven because that version is in the lake already.
    pub already_in_lake: u64,
    /// Records not redriven because another letter of this redrive holds
    /// the same version.
    pub repeated: u64,
    /// Messages sent back through the pipeline.
    pub messages_sent: u64,
    /// Records sent back.
    pub records_sent: u64,
    /// Records that came back: scored and in the lake.
    pub landed: u64,
    /// Records that failed again (dead-lettered again, with new reasons).
    pub failed_again: u64,
    /// The letters that failed again (the first 100).
    pub failures: Vec<FailedAgain>,
    /// Parquet files written.
    pub files_written: u64,
    /// Wall time in seconds.
    pub elapsed_secs: f64,
}

/// In-progress files an interrupted redrive left (sorted).
pub fn in_progress(lake: &Path) -> Vec<PathBuf> {
    let dir = LakePaths::dead_letters(lake)
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("redrive-") && n.ends_with(".jsonl"))
        })
        .collect();
    out.sort();
    out
}

fn io_err(op: &str, path: &Path, e: std::io::Error) -> RunError {
    RunError::Lake {
        path: path.to_owned(),
        source: etl_core::BackendError::io(op, path.display().to_string(), e),
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Redrive the lake's dead letters with VADER.
pub async fn redrive(cfg: RedriveConfig) -> Result<RedriveSummary, RunError> {
    redrive_with(cfg, Arc::new(VaderAnalyzer::new())).await
}

/// Redrive with any analyzer (tests inject failing ones).
pub async fn redrive_with(
    cfg: RedriveConfig,
    analyzer: Arc<dyn SentimentAnalyzer>,
) -> Result<RedriveSummary, RunError> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let lake = cfg.lake.clone();
    let quiet = |_: &str| {};
    let _lock = LakeLock::acquire(&lake, cfg.wait_lock.then_some(&quiet as &dyn Fn(&str)))?;
    let catalog_entry = LocalCatalog::load(&lake)
        .map_err(|source| RunError::Lake {
            path: lake.clone(),
            source,
        })?
        .ok_or_else(|| RunError::Lake {
            path: lake.clone(),
            source: etl_core::BackendError::permanent(
                "open lake",
                lake.display().to_string(),
                "no catalog found (expected _catalog/sentiment.json); not a lake written by `etl run`",
            ),
        })?;
    let catalog = Arc::new(
        LocalCatalog::with_format(&lake, catalog_entry.include_text, catalog_entry.format)
            .map_err(|source| RunError::Lake {
                path: lake.clone(),
                source,
            })?,
    );
    catalog.ensure_table().await.map_err(|e| RunError::Lake {
        path: lake.clone(),
        source: e,
    })?;
    let mut state = LakeState::load(&lake)?;
    let dl_path = LakePaths::dead_letters(&lake);
    let dl_dir = dl_path.parent().map(Path::to_owned).unwrap_or_default();

    // Take the current dead letters into an in-progress file: one rename.
    if dl_path.exists() {
        let taken = dl_dir.join(format!(
            "redrive-{}.jsonl",
            started_at.format("%Y%m%dT%H%M%S%.6fZ")
        ));
        std::fs::rename(&dl_path, &taken).map_err(|e| io_err("rename", &dl_path, e))?;
        sync_dir(&dl_dir);
    }
    let files = in_progress(&lake);

    let mut summary = RedriveSummary::default();
    let mut unreadable: Vec<Vec<u8>> = Vec::new();
    let mut messages: Vec<OutgoingMessage> = Vec::new();
    let mut seen = HashSet::new();
    // An interrupted redrive may already have put its unreadable lines back
    // (they are then in two files): the same bytes are kept once.
    let mut seen_unreadable = HashSet::new();
    let contents = files
        .iter()
        .map(|f| std::fs::read(f).map_err(|e| io_err("read", f, e)))
        .collect::<Result<Vec<_>, _>>()?;
    for bytes in &contents {
        // Bytes, not text: a damaged line goes back exactly as it was.
        for line in bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.trim_ascii().is_empty())
        {
            let Ok(letter) = serde_json::from_slice::<DeadLetter>(line) else {
                if seen_unreadable.insert(line) {
                    summary.unreadable += 1;
                    unreadable.push(line.to_vec());
                }
                continue;
            };
            let Ok(message) = decode_message(&letter.body) else {
                if seen_unreadable.insert(line) {
                    summary.unreadable += 1;
                    unreadable.push(line.to_vec());
                }
                continue;
            };
            summary.letters += 1;
            summary.records += message.records.len() as u64;
            let total = message.records.len();
            let mut keep = Vec::with_capacity(total);
            for r in message.records {
                if state.landed_before(&r) {
                    summary.already_in_lake += 1;
                } else if !seen.insert(fingerprint(&r)) {
                    summary.repeated += 1;
                } else {
                    keep.push(r);
                }
            }
            if keep.is_empty() {
                continue;
            }
            summary.records_sent += keep.len() as u64;
            if keep.len() == total {
                // The same body, so the same content id and files as before.
                messages.push(OutgoingMessage {
                    content_id: message.content_id,
                    record_count: total,
                    max_updated_at: keep.iter().map(|r| r.updated_at).max().unwrap_or_default(),
                    body: letter.body,
                });
            } else {
                messages.push(build_message(keep));
            }
        }
    }
    // Unreadable lines go back where they were, before anything else.
    if !unreadable.is_empty() {
        if let Some(dir) = dl_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&dl_path)
            .map_err(|e| io_err("open", &dl_path, e))?;
        for line in &unreadable {
            f.write_all(line)
                .and_then(|()| f.write_all(b"\n"))
                .map_err(|e| io_err("write", &dl_path, e))?;
        }
        f.sync_all().map_err(|e| io_err("sync", &dl_path, e))?;
    }
    let kept_bytes = std::fs::metadata(&dl_path).map_or(0, |m| m.len());

    let queue = Arc::new(InProcessQueue::new(QueueConfig {
        max_receive_count: cfg.max_receive_count.max(1),
        capacity: cfg.workers.max(1) * cfg.batch_size.max(1) * 4,
        dead_letter_path: dl_path.clone(),
    }));
    let sink = Arc::new(sink_for(&lake, catalog_entry.format));
    let refused = Arc::new(DeadLetterFile::new(dl_path.clone()));
    let counters = Arc::new(RunCounters::default());
    let files_written = Arc::new(AtomicU64::new(0));
    let landed = state.landed();
    let workers = spawn_consumers(
        Pipes {
            queue: queue.clone(),
            sink: sink.clone(),
            catalog: catalog.clone(),
            analyzer,
            refused: refused.clone(),
            landed: landed.clone(),
            counters: counters.clone(),
            files: files_written.clone(),
            options: ConsumeOptions {
                codec: cfg.codec,
                include_text: catalog_entry.include_text,
            },
            clock: &etl_core::SYSTEM_CLOCK,
        },
        cfg.workers,
        cfg.batch_size,
    );
    let sent = async {
        for chunk in messages.chunks(10) {
            queue.send(chunk).await?;
        }
        Ok::<(), etl_core::BackendError>(())
    }
    .await;
    queue.close().await;
    join_consumers(workers).await?;
    sent.map_err(|source| RunError::Lake {
        path: lake.clone(),
        source,
    })?;
    summary.messages_sent = messages.len() as u64;
    let (_, dl_records) = queue.dead_letter_counts().await;
    let (_, refused_records) = refused.counts();
    summary.failed_again = dl_records + refused_records;
    summary.landed = counters.scored.load(Ordering::Relaxed);
    summary.files_written = files_written.load(Ordering::Relaxed);
    summary.failures = failures_after(&dl_path, kept_bytes, 100);

    sink.flush().await.map_err(|source| RunError::Lake {
        path: lake.clone(),
        source,
    })?;
    drop(landed);
    state.save_redrive()?;
    // Recorded: the in-progress files can go.
    for f in &files {
        std::fs::remove_file(f).map_err(|e| io_err("remove", f, e))?;
    }
    sync_dir(&dl_dir);
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    let record = crate::history::RunRecord {
        mode: "redrive".into(),
        started_at,
        completed_at: chrono::Utc::now(),
        read: summary.records,
        rejected: 0,
        sent: summary.records_sent,
        scored: counters.scored.load(Ordering::Relaxed),
        failed: summary.failed_again,
        files: summary.files_written,
        bytes: counters.bytes_written.load(Ordering::Relaxed),
    };
    if let Err(e) = crate::history::append(&lake, &record) {
        tracing::warn!(message = "Could not append to the run log.", error = %e);
    }
    Ok(summary)
}

/// The letters appended to `path` after its first `offset` bytes.
fn failures_after(path: &Path, offset: u64, max: usize) -> Vec<FailedAgain> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let tail = bytes.get(offset as usize..).unwrap_or_default();
    String::from_utf8_lossy(tail)
        .lines()
        .filter_map(|l| serde_json::from_str::<DeadLetter>(l).ok())
        .take(max)
        .map(|d| FailedAgain {
            content_id: d.content_id,
            records: d.record_ids.len(),
            reason: d.reason,
        })
        .collect()
}
