//! The watermark policy of a producer run, as pure functions: which
//! `updated_at` window a run reads, whether it re-sends what the ledger
//! already holds, which versions it keeps in the ledger, and where the
//! watermark goes when it completes. The producer Lambda calls these with
//! its stored state and its clock's reading; nothing here reads a clock or
//! a store, so every case is a unit test.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::incremental::{next_watermark, scan_floor, Ledger};

/// What kind of run was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// Everything updated since the stored watermark (minus the lookback).
    Incremental,
    /// Everything, re-sent whatever the ledger holds.
    Full,
    /// Everything updated at or after the instant, re-sent.
    Since(DateTime<Utc>),
}

/// The window of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunWindow {
    /// The earliest `updated_at` read (`None`: everything).
    pub floor: Option<DateTime<Utc>>,
    /// Send versions the ledger already holds (a backfill re-scores on purpose).
    pub rescore: bool,
    /// Versions sent are kept in the ledger when updated at or after this
    /// (older ones fall out of every later window).
    pub keep_from: Option<DateTime<Utc>>,
}

impl RunWindow {
    /// A new run of `kind` starting at `started_at`, with the stored
    /// `watermark` and `lookback`.
    pub fn plan(
        kind: RunKind,
        watermark: Option<DateTime<Utc>>,
        lookback: Duration,
        started_at: DateTime<Utc>,
    ) -> Self {
        let floor = match kind {
            RunKind::Incremental => scan_floor(watermark, lookback),
            RunKind::Full => None,
            RunKind::Since(since) => Some(since),
        };
        Self::resume(kind, floor, lookback, started_at)
    }

    /// A run resumed from a checkpoint: the floor it started with is kept
    /// (the watermark may have been read before it), the rest follows.
    pub fn resume(
        kind: RunKind,
        floor: Option<DateTime<Utc>>,
        lookback: Duration,
        started_at: DateTime<Utc>,
    ) -> Self {
        Self {
            floor,
            rescore: kind != RunKind::Incremental,
            keep_from: scan_floor(Some(started_at), lookback),
        }
    }
}

/// Completing a run that started at `started_at`: the next watermark (never
/// backwards from `previous`), and the ledger pruned to the versions a later
/// window can still see. Returns the watermark and how many versions were
/// pruned.
pub fn complete_run(
    previous: Option<DateTime<Utc>>,
    started_at: DateTime<Utc>,
    lookback: Duration,
    ledger: &mut Ledger,
) -> (DateTime<Utc>, usize) {
    let watermark = next_watermark(previous, started_at);
    let pruned = scan_floor(Some(watermark), lookback).map_or(0, |f| ledger.prune(f));
    (watermark, pruned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incremental::fingerprint;
    use crate::record::SourceRecord;

    const HOUR: Duration = Duration::from_secs(3600);

    /// Hours before one reading of the clock, taken once per test.
    fn clock() -> impl Fn(i64) -> DateTime<Utc> {
        let now = crate::record::truncate_micros(Utc::now());
        move |hours_ago| now - chrono::Duration::hours(hours_ago)
    }

    #[test]
    fn an_incremental_run_reads_from_the_watermark_minus_the_lookback_and_skips_the_ledger() {
        let at = clock();
        let w = RunWindow::plan(RunKind::Incremental, Some(at(24)), HOUR, at(0));
        assert_eq!(w.floor, Some(at(25)));
        assert!(!w.rescore);
        assert_eq!(w.keep_from, Some(at(1)));
        let first = RunWindow::plan(RunKind::Incremental, None, HOUR, at(0));
        assert_eq!(first.floor, None, "the first run reads everything");
    }

    #[test]
    fn backfills_ignore_the_watermark_and_rescore() {
        let at = clock();
        let full = RunWindow::plan(RunKind::Full, Some(at(2)), HOUR, at(0));
        assert_eq!((full.floor, full.rescore), (None, true));
        let since = RunWindow::plan(RunKind::Since(at(48)), Some(at(2)), HOUR, at(0));
        assert_eq!((since.floor, since.rescore), (Some(at(48)), true));
    }

    #[test]
    fn a_resumed_run_keeps_the_floor_it_started_with() {
        let at = clock();
        let w = RunWindow::resume(RunKind::Incremental, Some(at(30)), HOUR, at(3));
        assert_eq!(w.floor, Some(at(30)));
        assert_eq!(w.keep_from, Some(at(4)));
    }

    #[test]
    fn completing_moves_the_watermark_forward_only_and_prunes_what_no_window_sees() {
        let at = clock();
        let rec = |id: &str, updated: DateTime<Utc>| SourceRecord {
            id: id.into(),
            text: "t".into(),
            created_at: updated,
            updated_at: updated,
            attributes: Default::default(),
        };
        let mut ledger = Ledger::new();
        ledger.insert(fingerprint(&rec("old", at(5))), at(5));
        ledger.insert(fingerprint(&rec("new", at(0))), at(0));
        let (w, pruned) = complete_run(Some(at(6)), at(0), HOUR, &mut ledger);
        assert_eq!(w, at(0));
        assert_eq!((pruned, ledger.len()), (1, 1));
        // A run that started before the stored mark (the clock moved back).
        let (w, _) = complete_run(Some(at(0)), at(2), HOUR, &mut ledger);
        assert_eq!(w, at(0));
    }
}
