//! The nightly compaction of a Delta lake (`TableFormat=delta` stacks): each
//! partition's small files rewritten into files of `TARGET_FILE_BYTES` in
//! one commit (readers never see a row twice or miss one; consumers keep
//! committing meanwhile), then a vacuum of files no version of the last
//! `VACUUM_RETENTION_HOURS` refers to. The compaction takes the table's lock
//! object (written conditionally), so a second compaction, or an `etl
//! compact --stack` at the same time, waits its turn.
//!
//! Like the other two functions, an invocation ([`invoke`]) prints its
//! metrics in CloudWatch's Embedded Metric Format (namespace `SentimentEtl`,
//! `Function` = `compactor`) and fails with `errorType` `Retryable` or
//! `NonRetryable`, from the failing call's retry class.

use std::collections::HashMap;

use etl_aws::emf::Metrics;
use etl_aws::lambda::{parsed, required, ConfigError, InvocationError, Lookup};
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

impl NightlyReport {
    /// The invocation's metrics (`cold`: 1 on a container's first).
    pub fn metrics(&self, cold: u64) -> Metrics {
        let (removed, added, partitions) = self.compaction.as_ref().map_or((0, 0, 0), |c| {
            (c.files_removed, c.files_added, c.partitions_compacted)
        });
        Metrics::new("compactor")
            .count("FilesCompacted", removed)
            .count("FilesWritten", added)
            .count("PartitionsCompacted", partitions)
            .count("FilesVacuumed", self.vacuumed_files as u64)
            .count("LogsRemoved", self.logs_removed as u64)
            .count("CompactionsFailed", 0)
            .count("ColdStart", cold)
    }
}

/// The metrics of a failed invocation.
pub fn failure_metrics(cold: u64) -> Metrics {
    Metrics::new("compactor")
        .count("CompactionsFailed", 1)
        .count("ColdStart", cold)
}

/// One scheduled invocation: [`nightly`], its report as the result, its
/// metrics printed; a failure logged and returned with its retry class.
pub async fn invoke(
    lake: &DeltaLake,
    config: &Config,
    request_id: &str,
) -> Result<serde_json::Value, InvocationError> {
    let cold = etl_aws::emf::cold_start();
    let owner = format!("compactor request {request_id}");
    match nightly(lake, config, &owner).await {
        Ok(report) => {
            report.metrics(cold).emit();
            Ok(serde_json::to_value(&report).unwrap_or_default())
        }
        Err(e) => {
            let e = InvocationError::from(e);
            tracing::error!(message = "Nightly maintenance failed.", table = %lake.url(), error_type = e.error_type(), error = %e);
            failure_metrics(cold).emit();
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> etl_aws::emf::EmfContext {
        etl_aws::emf::EmfContext {
            stack: Some("s".into()),
            level: "INFO",
        }
    }

    #[tokio::test]
    async fn a_failure_carries_its_retry_class_and_a_failure_metric() {
        // A table whose first commit is not a Delta commit.
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("sentiment");
        std::fs::create_dir_all(table.join("_delta_log")).unwrap();
        std::fs::write(
            table.join("_delta_log/00000000000000000000.json"),
            b"this is not an action\n",
        )
        .unwrap();
        let url = url::Url::from_directory_path(&table).unwrap();
        let lake = DeltaLake::existing(url.clone(), HashMap::new());
        let config = Config {
            table_location: url.to_string(),
            target_file_bytes: maintain::DEFAULT_TARGET_SIZE,
            vacuum_retention_hours: 168,
        };
        match invoke(&lake, &config, "req-1").await {
            Ok(v) => panic!("a table that cannot be read compacted: {v}"),
            Err(e) => {
                // Opening the table failed: etl-delta classes that as
                // retryable (a log being written reads the same way), and
                // Lambda's errorType says so.
                assert_eq!(e.error_type(), "Retryable", "{e}");
                assert!(e.message.contains("open table"), "{e}");
                let d = lambda_runtime::Diagnostic::from(e);
                assert_eq!(d.error_type, "Retryable");
            }
        }
        let doc = failure_metrics(0).document(&context(), 0);
        assert_eq!(doc["Function"], "compactor");
        assert_eq!(doc["CompactionsFailed"], 1.0);
    }

    #[test]
    fn a_nights_metrics_count_what_it_did() {
        let report = NightlyReport {
            compaction: None,
            vacuumed_files: 3,
            logs_removed: 2,
        };
        let doc = report.metrics(1).document(&context(), 0);
        assert_eq!(
            (
                doc["FilesVacuumed"].as_f64(),
                doc["LogsRemoved"].as_f64(),
                doc["ColdStart"].as_f64()
            ),
            (Some(3.0), Some(2.0), Some(1.0))
        );
        assert_eq!(doc["CompactionsFailed"], 0.0);
    }
}
