//! Table maintenance: compaction, vacuum, and the table as DataFusion reads it.
//!
//! Compaction rewrites each partition's small files into files of a target
//! size in **one** commit that removes the old files and adds the new ones
//! (`dataChange = false`): every version a reader can see holds each row
//! exactly once. Consumers committing at the same time are blind appends and
//! do not conflict with it in either order. Two compactions of the same files
//! would not conflict either (and would duplicate rows), so a compaction takes
//! a lock object in the table's own store first (module `lock`: conditional
//! writes only, like the log itself), with an expiry so a crashed compaction
//! cannot block the next.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use deltalake_core::datafusion::catalog::TableProvider;
use deltalake_core::operations::optimize::OptimizeType;
use deltalake_core::operations::vacuum::VacuumMode;
use deltalake_core::{DeltaTable, FilterOp, FilterValue};
use etl_core::output::PARTITION_COLUMN;
use etl_core::BackendError;
use serde::Serialize;
use tracing::{info, warn};

use crate::{delta_error, lost_race, DeltaLake};

mod lock;

/// Default size compaction aims for (128 MiB).
pub const DEFAULT_TARGET_SIZE: u64 = 128 * 1024 * 1024;

/// How long a compaction's lock holds before another may break it.
pub const LOCK_TTL: Duration = Duration::from_secs(3600);

/// Live files of the table, per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableFiles {
    /// Table version these were read at.
    pub version: Option<u64>,
    /// Files in the table.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Per `dt`: (files, bytes).
    pub partitions: BTreeMap<String, (usize, u64)>,
}

/// The table's live files at its latest version.
pub async fn files(lake: &DeltaLake) -> Result<TableFiles, BackendError> {
    let table = lake.latest().await?;
    files_of(&table, lake.url().as_str())
}

/// The table's live data files at its latest version: each path relative to
/// the table root, as the log names it, with its logged size. What a reader
/// of the table reads, and nothing else (not the files a compaction
/// replaced, not an attempt that lost its commit, not the checkpoints).
pub async fn live_files(
    lake: &DeltaLake,
) -> Result<(Option<u64>, Vec<(String, u64)>), BackendError> {
    let table = lake.latest().await?;
    let target = lake.url().to_string();
    let snapshot = table
        .snapshot()
        .map_err(|e| delta_error("list files", &target, e))?;
    let files = snapshot
        .log_data()
        .iter()
        .map(|f| (f.path().to_string(), u64::try_from(f.size()).unwrap_or(0)))
        .collect();
    Ok((table.version(), files))
}

fn files_of(table: &DeltaTable, target: &str) -> Result<TableFiles, BackendError> {
    let snapshot = table
        .snapshot()
        .map_err(|e| delta_error("list files", target, e))?;
    let mut out = TableFiles {
        version: table.version(),
        ..TableFiles::default()
    };
    for f in snapshot.log_data().iter() {
        let size = u64::try_from(f.size()).unwrap_or(0);
        let dt = f
            .partition_values_map()
            .get(PARTITION_COLUMN)
            .cloned()
            .flatten()
            .unwrap_or_default();
        let e = out.partitions.entry(dt).or_default();
        e.0 += 1;
        e.1 += size;
        out.files += 1;
        out.bytes += size;
    }
    Ok(out)
}

/// What one compaction did.
#[derive(Debug, Clone, Serialize)]
pub struct CompactReport {
    /// Files before and after (after: at the compaction's own version; a
    /// consumer may have committed more since).
    pub before: TableFiles,
    /// Files right after the compaction's commit.
    pub after: TableFiles,
    /// Files the commit removed.
    pub files_removed: u64,
    /// Files it added.
    pub files_added: u64,
    /// Partitions rewritten.
    pub partitions_compacted: u64,
    /// The version of the compaction's commit (none when nothing was small).
    pub version: Option<u64>,
}

/// Compact the table's partitions (all, or `only` these `dt` values) into
/// files of about `target_size` bytes, in one commit.
pub async fn compact(
    lake: &DeltaLake,
    target_size: u64,
    only: &[String],
    owner: &str,
) -> Result<CompactReport, BackendError> {
    let target = lake.url().to_string();
    let size = NonZeroU64::new(target_size.max(1)).expect("at least 1");
    let lock = lock::LockObject::of(lake)
        .await?
        .take(owner, Utc::now())
        .await?;
    let result = async {
        let mut last = None;
        for round in 0..5 {
            let table = lake.latest().await?;
            let before = files_of(&table, &target)?;
            let filters: Vec<_> = only
                .iter()
                .map(|dt| (PARTITION_COLUMN, FilterOp::Eq, FilterValue::Scalar(dt.as_str())))
                .collect();
            let run = table
                .optimize()
                .with_type(OptimizeType::Compact)
                .with_filters(&filters)
                .with_target_size(size)
                // The consumer's settings (row-group statistics, no page
                // indexes), not the library's defaults, which write them.
                .with_writer_properties(etl_core::output::writer_properties(
                    etl_core::Codec::Snappy,
                ))
                .with_max_concurrent_tasks(
                    std::thread::available_parallelism().map_or(2, |n| n.get()),
                )
                .await;
            match run {
                Ok((after_table, m)) => {
                    let after = files_of(&after_table, &target)?;
                    let version = (m.num_files_removed > 0).then_some(after.version).flatten();
                    info!(message = "compacted", table = %target, removed = m.num_files_removed, added = m.num_files_added, partitions = m.partitions_optimized, version);
                    return Ok(CompactReport {
                        before,
                        after,
                        files_removed: m.num_files_removed,
                        files_added: m.num_files_added,
                        partitions_compacted: m.partitions_optimized,
                        version,
                    });
                }
                Err(e) if lost_race(&e) => {
                    warn!(message = "compaction lost a commit race; planning again", round, error = %e);
                    last = Some(e);
                }
                Err(e) => return Err(delta_error("compact", &target, e)),
            }
        }
        Err(match last {
            Some(e) => delta_error("compact", &target, e),
            None => BackendError::retryable("compact", &target, "no attempt made"),
        })
    }
    .await;
    lock.release().await;
    result
}

/// What a vacuum did.
#[derive(Debug, Clone, Serialize)]
pub struct VacuumReport {
    /// Files deleted (or that would be, in a dry run), relative to the table.
    pub files_deleted: Vec<String>,
    /// Whether nothing was deleted on purpose.
    pub dry_run: bool,
    /// Expired log files removed.
    pub logs_removed: usize,
}

/// Delete data files no version within `retention` refers to: those that
/// compaction replaced, and objects written but never committed (a consumer
/// that crashed between the write and the commit, a message that was
/// dead-lettered after its write). Also drops expired log files.
pub async fn vacuum(
    lake: &DeltaLake,
    retention: chrono::Duration,
    dry_run: bool,
) -> Result<VacuumReport, BackendError> {
    let target = lake.url().to_string();
    let table = lake.latest().await?;
    let (table, m) = table
        .vacuum()
        .with_retention_period(retention)
        // The table's own minimum (7 days) protects readers still on old
        // versions and writers whose objects are not committed yet; a shorter
        // retention is the caller's explicit choice.
        .with_enforce_retention_duration(false)
        .with_mode(VacuumMode::Full)
        .with_dry_run(dry_run)
        .await
        .map_err(|e| delta_error("vacuum", &target, e))?;
    let logs_removed = if dry_run {
        0
    } else {
        deltalake_core::checkpoints::cleanup_metadata(&table, None)
            .await
            .map_err(|e| delta_error("clean up the log", &target, e))?
    };
    Ok(VacuumReport {
        files_deleted: m.files_deleted,
        dry_run: m.dry_run,
        logs_removed,
    })
}

/// The table at its latest version as a DataFusion table.
pub async fn provider(lake: &DeltaLake) -> Result<Arc<dyn TableProvider>, BackendError> {
    let table = lake.latest().await?;
    table
        .table_provider()
        .await
        .map_err(|e| BackendError::permanent_from("read table", lake.url().to_string(), e))
}
