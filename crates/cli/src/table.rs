//! `etl compact` and `etl vacuum`: maintenance of a Delta lake, local or on
//! a stack's bucket (the same code; only the table's URL differs).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};
use etl_core::output::{TableFormat, TABLE_NAME};
use etl_delta::maintain::{self, CompactReport, TableFiles, VacuumReport};
use etl_delta::DeltaLake;
use etl_local::LocalCatalog;

use crate::ops::{emit, human_bytes};

/// Why a Hive lake cannot be compacted, said where the user asks for it.
pub const HIVE_CANNOT_COMPACT: &str = "a Hive-layout lake cannot be compacted safely: \
readers list the partition directory, so between writing a partition's big file and deleting its \
small ones they see every row twice, and in the other order not at all (and a consumer writing \
the same partition meanwhile can lose its file to the delete). Write new lakes with \
`--table-format delta`, whose compaction is one atomic commit";

/// The local lake's Delta table, or the reason it has none.
pub fn local_table(lake: &Path) -> Result<DeltaLake> {
    let Some(entry) = LocalCatalog::load(lake)? else {
        bail!(
            "{} is not a lake written by `etl run` (no _catalog/sentiment.json)",
            lake.display()
        );
    };
    if entry.format != TableFormat::Delta {
        bail!("{}: {HIVE_CANNOT_COMPACT}", lake.display());
    }
    Ok(DeltaLake::existing_dir(&lake.join(TABLE_NAME))?)
}

/// Who is compacting, for the lock object.
pub fn owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown-host".into());
    format!("etl compact pid {} on {host}", std::process::id())
}

/// Compact and print what changed.
pub async fn compact(
    lake: &DeltaLake,
    target_size: u64,
    partitions: &[String],
    json: bool,
) -> Result<ExitCode> {
    let report = maintain::compact(lake, target_size, partitions, &owner()).await?;
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        emit(&compact_text(&report, target_size))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn compact_text(r: &CompactReport, target_size: u64) -> String {
    let mut out = String::new();
    let line = |t: &TableFiles| {
        format!(
            "{} files, {} in {} partitions ({:.1} files per partition)",
            t.files,
            human_bytes(t.bytes),
            t.partitions.len(),
            t.files as f64 / t.partitions.len().max(1) as f64
        )
    };
    out.push_str(&format!("before:  {}\n", line(&r.before)));
    out.push_str(&format!("after:   {}\n", line(&r.after)));
    match r.version {
        Some(v) => out.push_str(&format!(
            "one commit (version {v}): {} files removed, {} added, {} partitions rewritten toward {} files\n",
            r.files_removed,
            r.files_added,
            r.partitions_compacted,
            human_bytes(target_size)
        )),
        None => out.push_str("nothing to compact: no partition has more than one small file\n"),
    }
    out.push_str(
        "the replaced files stay readable by older versions until `etl vacuum` removes them\n",
    );
    out
}

/// Vacuum and print what was (or would be) deleted.
pub async fn vacuum(
    lake: &DeltaLake,
    retention: chrono::Duration,
    dry_run: bool,
    json: bool,
) -> Result<ExitCode> {
    let r = maintain::vacuum(lake, retention, dry_run).await?;
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&r)?))?;
    } else {
        emit(&vacuum_text(&r, retention))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn vacuum_text(r: &VacuumReport, retention: chrono::Duration) -> String {
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    let mut out = format!(
        "{verb} {} files no version of the last {} hours refers to",
        r.files_deleted.len(),
        retention.num_hours()
    );
    if !r.dry_run {
        out.push_str(&format!(", and {} expired log files", r.logs_removed));
    }
    out.push('\n');
    for f in r.files_deleted.iter().take(20) {
        out.push_str(&format!("  {f}\n"));
    }
    if r.files_deleted.len() > 20 {
        out.push_str(&format!("  … and {} more\n", r.files_deleted.len() - 20));
    }
    out
}
