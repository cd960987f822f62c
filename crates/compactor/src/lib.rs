//! The nightly compaction of a Delta lake (`TableFormat=delta` stacks): each
//! partition's small files rewritten into files of `TARGET_FILE_BYTES` in
//! one commit (readers never see a row twice or miss one; consumers keep
//! committing meanwhile), then a vacuum of files no version of the last
//! `VACUUM_RETENTION_HOURS` refers to. The function runs with a reserved
//! concurrency of one, and the compaction takes the table's lock object
//! besides, so an `etl compact --stack` at the same time waits its turn.

use std::collections::HashMap;

use etl_aws::lambda::{parsed, required, ConfigError, Lookup};
use etl_core::BackendError;
use etl_delta::maintain::{self, CompactReport};
use etl_delta::DeltaLake;
use serde::Serialize;
use tracing::info;

/// What the compactor reads from its environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `TABLE_LOCATION`: the Delta table, `s3://bucket/prefix/sentiment/`.
    pub table_location: String,
    /// `TARGET_FILE_BYTES` (default 128 MiB): size compacted files aim for.
    pub target_file_bytes: u64,
    /// `VACUUM_RETENTION_HOURS` (default 168): files a version of this many
    /// hours back still refers to are kept; `0` turns the vacuum off.
    pub vacuum_retention_hours: u64,
}

impl Config {
    /// Read the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::from_lookup(&env)
    }

    /// Read the configuration from `env`.
    pub fn from_lookup(env: &dyn Lookup) -> Result<Self, ConfigError> {
        let location = required(env, "TABLE_LOCATION")?;
        if !location.starts_with("s3://") && !location.starts_with("file://") {
            return Err(ConfigError::Invalid {
                var: "TABLE_LOCATION",
                value: location,
                reason: "must be an s3:// (or file://) URL of the Delta table".into(),
            });
        }
        Ok(Self {
            table_location: location,
            target_file_bytes: parsed(env, "TARGET_FILE_BYTES", maintain::DEFAULT_TARGET_SIZE)?
                .max(1024 * 1024),
            vacuum_retention_hours: parsed(env, "VACUUM_RETENTION_HOURS", 168u64)?,
        })
    }
}

/// What one night's maintenance did.
#[derive(Debug, Serialize)]
pub struct NightlyReport {
    /// The compaction, or none when the table has no commit yet.
    pub compaction: Option<CompactReport>,
    /// Files the vacuum deleted.
    pub vacuumed_files: usize,
    /// Expired log files removed.
    pub logs_removed: usize,
}

/// Compact, then vacuum, the table.
pub async fn nightly(
    lake: &DeltaLake,
    config: &Config,
    owner: &str,
) -> Result<NightlyReport, BackendError> {
    if !lake.exists().await? {
        info!(message = "no Delta table yet: nothing to compact", table = %lake.url());
        return Ok(NightlyReport {
            compaction: None,
            vacuumed_files: 0,
            logs_removed: 0,
        });
    }
    let compaction = maintain::compact(lake, config.target_file_bytes, &[], owner).await?;
    let (vacuumed_files, logs_removed) = if config.vacuum_retention_hours == 0 {
        (0, 0)
    } else {
        let hours = i64::try_from(config.vacuum_retention_hours).unwrap_or(24 * 365);
        let v = maintain::vacuum(lake, chrono::Duration::hours(hours), false).await?;
        (v.files_deleted.len(), v.logs_removed)
    };
    info!(
        message = "nightly maintenance done",
        table = %lake.url(),
        files_before = compaction.before.files,
        files_after = compaction.after.files,
        partitions = compaction.after.partitions.len(),
        vacuumed_files,
        logs_removed
    );
    Ok(NightlyReport {
        compaction: Some(compaction),
        vacuumed_files,
        logs_removed,
    })
}
