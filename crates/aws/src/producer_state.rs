//! What the producer keeps in its state table between invocations (the
//! values [`crate::StateStore`] stores): the completed runs' state with the
//! watermark, and an unfinished run's checkpoint. Shared by the producer,
//! which writes them, and `etl status`, which reads them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::dynamodb::ScanCheckpoint;
use crate::state::LedgerRef;

/// What a run sends, persisted with its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum RunSpec {
    /// Everything newer than the stored watermark.
    Incremental,
    /// Everything.
    Full,
    /// Everything updated at or after `since`.
    Since {
        /// The lower bound.
        since: DateTime<Utc>,
    },
}

impl RunSpec {
    /// `incremental`, `full` or `since`.
    pub fn name(&self) -> &'static str {
        match self {
            RunSpec::Incremental => "incremental",
            RunSpec::Full => "full",
            RunSpec::Since { .. } => "since",
        }
    }
}

/// The state of an unfinished run, saved when an invocation stops early.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCheckpoint {
    /// The run (the request id of its first invocation).
    pub run_id: String,
    /// What the run sends.
    pub spec: RunSpec,
    /// The earliest `updated_at` the run looks at (fixed for the whole run;
    /// `None`: everything).
    #[serde(default)]
    pub floor: Option<DateTime<Utc>>,
    /// The ledger the run started from (the completed state's; none for a
    /// `full` run). Checkpoints written before `deltas` existed hold the
    /// whole run's ledger here.
    #[serde(default)]
    pub ledger: Option<LedgerRef>,
    /// The versions each checkpointed invocation added, one generation each:
    /// a checkpoint writes only its invocation's versions, not the whole
    /// ledger again.
    #[serde(default)]
    pub deltas: Vec<LedgerRef>,
    /// Where each scan segment stands.
    pub scan: ScanCheckpoint,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// Invocations so far.
    pub invocations: u32,
    /// What the run's earlier invocations counted.
    #[serde(default)]
    pub totals: RunTotals,
}

/// Counts of a run over all its invocations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTotals {
    /// Source items read.
    pub read: u64,
    /// Source items rejected (invalid).
    pub rejected: u64,
    /// Records sent.
    pub sent_records: u64,
    /// Messages sent.
    pub messages: u64,
}

impl RunTotals {
    /// These counts plus one invocation's.
    pub fn plus(self, read: u64, rejected: u64, sent_records: u64, messages: u64) -> Self {
        Self {
            read: self.read + read,
            rejected: self.rejected + rejected,
            sent_records: self.sent_records + sent_records,
            messages: self.messages + messages,
        }
    }
}

/// What a completed run leaves in the state item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProducerState {
    /// The start of the last completed run. The next incremental run looks
    /// at records updated at or after this minus the lookback. (`at` is the
    /// name earlier releases used; their `ids_at` is ignored.)
    #[serde(alias = "at")]
    pub watermark: Option<DateTime<Utc>>,
    /// The versions sent that a later window can still see.
    #[serde(default)]
    pub ledger: Option<LedgerRef>,
    /// From when the ledger holds every version sent (its guard band below
    /// the next floor starts here). Absent in state written by releases
    /// before it was kept: that run looks at its window only.
    #[serde(default)]
    pub ledger_from: Option<DateTime<Utc>>,
    /// The last completed run, for operators.
    #[serde(default)]
    pub last_run: Option<RunReport>,
    /// The last completed runs, oldest first (at most [`HISTORY_RUNS`]),
    /// for `etl status`.
    #[serde(default)]
    pub history: Vec<RunReport>,
}

/// Completed runs kept in [`ProducerState::history`].
pub const HISTORY_RUNS: usize = 30;

impl ProducerState {
    /// `history` with `run` appended, the oldest dropped past [`HISTORY_RUNS`].
    pub fn history_with(&self, run: &RunReport) -> Vec<RunReport> {
        let mut h = self.history.clone();
        h.push(run.clone());
        let drop = h.len().saturating_sub(HISTORY_RUNS);
        h.drain(..drop);
        h
    }
}

/// One completed run, as kept in the state item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    /// The run id.
    pub run_id: String,
    /// `incremental`, `full` or `since`.
    pub mode: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it completed.
    pub completed_at: DateTime<Utc>,
    /// Invocations it took.
    pub invocations: u32,
    /// Records sent (all its invocations; the last one's in releases
    /// before `read` was recorded).
    pub sent_records: u64,
    /// Records rejected (all its invocations; see `sent_records`).
    pub rejected: u64,
    /// Source items read (all its invocations).
    #[serde(default)]
    pub read: u64,
    /// Messages sent (all its invocations).
    #[serde(default)]
    pub messages: u64,
    /// Versions in the ledger it left.
    pub ledger_versions: u64,
}
