//! `watermark.json`: what the last completed run saw, shown to users.
//!
//! Decisions are made on fingerprints, never on this file, so it is read
//! without loading them ([`read_summary`], for `etl status`) and has its own
//! format version; an old build's file is told apart from a damaged one.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{watermark_path, StateError};

/// Version of `watermark.json` this build writes.
pub(super) const STATE_FORMAT: u32 = 2;

/// `watermark.json`: what the last completed run saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSummary {
    /// Format version (2: SHA-256 version fingerprints).
    pub format: u32,
    /// Newest `updated_at` of a version that landed, over all runs.
    pub newest_updated_at: Option<DateTime<Utc>>,
    /// When the last completed run started.
    pub last_run_started_at: Option<DateTime<Utc>>,
    /// Versions in `sent.fp`.
    pub versions: u64,
    /// Versions in `retry.fp` (sent by the last run, not landed).
    pub pending_retry: u64,
}

/// What `watermark.json` says, without loading the fingerprint files
/// (`None` for a lake no run has completed on).
pub fn read_summary(lake: &Path) -> Result<Option<StateSummary>, StateError> {
    let wp = watermark_path(lake);
    match std::fs::read(&wp) {
        Ok(b) => parse_summary(&wp, &b).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StateError::io(&wp, e)),
    }
}

pub(super) fn parse_summary(path: &Path, bytes: &[u8]) -> Result<StateSummary, StateError> {
    let corrupt = |reason: String| StateError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    match v.get("format") {
        None if v.get("at").is_some() || v.get("ids_at").is_some() => Err(StateError::OldFormat {
            path: path.to_owned(),
            dir: path.parent().map(Path::to_owned).unwrap_or_default(),
        }),
        Some(f) if f.as_u64() == Some(u64::from(STATE_FORMAT)) => {
            serde_json::from_value(v).map_err(|e| corrupt(e.to_string()))
        }
        Some(f) => Err(corrupt(format!(
            "format {f}, this build reads format {STATE_FORMAT}"
        ))),
        None => Err(corrupt("no `format` field".into())),
    }
}
