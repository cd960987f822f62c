//! The watermark policy of a producer run, as pure functions: which
//! `updated_at` window a run reads, whether it re-sends what the ledger
//! already holds, which versions it keeps in the ledger, and where the
//! watermark goes when it completes. The producer Lambda calls these with
//! its stored state and its clock's reading; nothing here reads a clock or
//! a store, so every case is a unit test.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::incremental::{next_watermark, scan_floor, VersionLedger};

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
    /// The earliest `updated_at` of the window proper (`None`: everything).
    pub floor: Option<DateTime<Utc>>,
    /// Where the run also looks below the floor for late writes the ledger
    /// shows were never sent (an incremental run, where the ledger covers
    /// that band): see `LedgerFilter::with_guard`.
    pub guard_from: Option<DateTime<Utc>>,
    /// Send versions the ledger already holds (a backfill re-scores on purpose).
    pub rescore: bool,
    /// Versions sent are kept in the ledger when updated at or after this
    /// (older ones fall out of every later window and guard band).
    pub keep_from: Option<DateTime<Utc>>,
    /// Whether completing the run moves the watermark to its start. A
    /// `since` backfill that starts above the incremental floor did not read
    /// what was updated between that floor and its instant: moving the
    /// watermark would put those records behind every later window.
    pub advances: bool,
}

impl RunWindow {
    /// A new run of `kind` starting at `started_at`, with the stored
    /// `watermark`, the instant from which the stored ledger holds every
    /// version sent (`ledger_from`, `None` for state written before it was
    /// kept) and `lookback`.
    pub fn plan(
        kind: RunKind,
        watermark: Option<DateTime<Utc>>,
        ledger_from: Option<DateTime<Utc>>,
        lookback: Duration,
        started_at: DateTime<Utc>,
    ) -> Self {
        let incremental_floor = scan_floor(watermark, lookback);
        // The ledger keeps two lookbacks: the window and the guard band below it.
        let keep = scan_floor(scan_floor(Some(started_at), lookback), lookback);
        match kind {
            RunKind::Incremental => Self {
                floor: incremental_floor,
                guard_from: match (incremental_floor, ledger_from) {
                    (Some(f), Some(lf)) => {
                        let band = scan_floor(Some(f), lookback).unwrap_or(f);
                        Some(lf.max(band)).filter(|g| *g < f)
                    }
                    _ => None,
                },
                rescore: false,
                keep_from: keep,
                advances: true,
            },
            RunKind::Full => Self {
                floor: None,
                guard_from: None,
                rescore: true,
                keep_from: keep,
                advances: true,
            },
            RunKind::Since(since) => {
                let advances = incremental_floor.is_some_and(|f| since <= f);
                Self {
                    floor: Some(since),
                    guard_from: None,
                    rescore: true,
                    // Not advancing: the next incremental run reads from the
                    // old floor (and its guard band), so what this run sends
                    // there must stay in the ledger.
                    keep_from: if advances {
                        keep
                    } else {
                        ledger_from
                            .or(incremental_floor)
                            .and_then(|l| keep.map(|k| k.min(l)))
                    },
                    advances,
                }
            }
        }
    }

    /// A run resumed from a checkpoint: the floor it started with is kept
    /// (the watermark may have been read before it), the rest is planned as
    /// for a new run.
    pub fn resume(self, floor: Option<DateTime<Utc>>) -> Self {
        Self {
            floor,
            guard_from: self.guard_from.filter(|g| floor.is_some_and(|f| *g < f)),
            ..self
        }
    }

    /// The earliest `updated_at` the run reads: the guard band's start, else
    /// the floor.
    pub fn reads_from(&self) -> Option<DateTime<Utc>> {
        self.guard_from.or(self.floor)
    }
}

/// What completing a run leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completed {
    /// The next watermark (never backwards; unchanged by a run that does not
    /// advance it).
    pub watermark: Option<DateTime<Utc>>,
    /// From when the pruned ledger holds every version sent.
    pub ledger_from: Option<DateTime<Utc>>,
    /// Versions pruned.
    pub pruned: u64,
}

/// Completing a run of `window` that started at `started_at`: the next
/// watermark, and the ledger pruned to the versions a later window or guard
/// band can still see. `previous_ledger_from` is the stored one.
/// Fails only when the ledger's store does.
pub fn complete_run(
    previous: Option<DateTime<Utc>>,
    previous_ledger_from: Option<DateTime<Utc>>,
    window: &RunWindow,
    started_at: DateTime<Utc>,
    lookback: Duration,
    ledger: &mut impl VersionLedger,
) -> std::io::Result<Completed> {
    if !window.advances {
        let pruned = previous_ledger_from.map_or(Ok(0), |f| ledger.prune(f))?;
        return Ok(Completed {
            watermark: previous,
            ledger_from: previous_ledger_from,
            pruned,
        });
    }
    let watermark = next_watermark(previous, started_at);
    let prune_at = scan_floor(scan_floor(Some(watermark), lookback), lookback);
    let pruned = prune_at.map_or(Ok(0), |f| ledger.prune(f))?;
    // Complete from where this run read (it loaded a ledger complete from
    // there, or read everything) and from where it kept what it sent.
    let read_from = if window.floor.is_none() {
        window.keep_from
    } else {
        window.reads_from()
    };
    let ledger_from = match (read_from, prune_at) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    Ok(Completed {
        watermark: Some(watermark),
        ledger_from,
        pruned,
    })
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
        let w = RunWindow::plan(
            RunKind::Incremental,
            Some(at(24)),
            Some(at(26)),
            HOUR,
            at(0),
        );
        assert_eq!(w.floor, Some(at(25)));
        assert_eq!(w.guard_from, Some(at(26)), "one lookback below the floor");
        assert_eq!(w.reads_from(), Some(at(26)));
        assert!(!w.rescore && w.advances);
        assert_eq!(w.keep_from, Some(at(2)), "window and guard band");
        let first = RunWindow::plan(RunKind::Incremental, None, None, HOUR, at(0));
        assert_eq!(
            (first.floor, first.guard_from),
            (None, None),
            "the first run reads everything"
        );
        // State written before the ledger's extent was kept: no guard band.
        let old = RunWindow::plan(RunKind::Incremental, Some(at(24)), None, HOUR, at(0));
        assert_eq!(old.guard_from, None);
        // The ledger covers only part of the band: the band starts there.
        let part = RunWindow::plan(
            RunKind::Incremental,
            Some(at(24)),
            Some(at(25) - chrono::Duration::minutes(20)),
            HOUR,
            at(0),
        );
        assert_eq!(
            part.guard_from,
            Some(at(25) - chrono::Duration::minutes(20))
        );
    }

    #[test]
    fn backfills_rescore_and_a_late_since_does_not_move_the_watermark() {
        let at = clock();
        let full = RunWindow::plan(RunKind::Full, Some(at(2)), Some(at(4)), HOUR, at(0));
        assert_eq!(
            (full.floor, full.rescore, full.advances),
            (None, true, true)
        );
        let early = RunWindow::plan(
            RunKind::Since(at(48)),
            Some(at(2)),
            Some(at(4)),
            HOUR,
            at(0),
        );
        assert_eq!(
            (early.floor, early.rescore, early.advances),
            (Some(at(48)), true, true)
        );
        // Since an instant above the incremental floor (watermark 24 h ago,
        // floor 25 h ago): what was updated 25 h to 10 h ago is not read, so
        // the watermark must not move past it.
        let late = RunWindow::plan(
            RunKind::Since(at(10)),
            Some(at(24)),
            Some(at(26)),
            HOUR,
            at(0),
        );
        assert!(!late.advances);
        assert_eq!(
            late.keep_from,
            Some(at(26)),
            "what it sends stays in the ledger"
        );
        let mut ledger = crate::Ledger::new();
        let done =
            complete_run(Some(at(24)), Some(at(26)), &late, at(0), HOUR, &mut ledger).unwrap();
        assert_eq!(
            (done.watermark, done.ledger_from),
            (Some(at(24)), Some(at(26)))
        );
        // Before any incremental run, a since run sets no watermark.
        let first = RunWindow::plan(RunKind::Since(at(10)), None, None, HOUR, at(0));
        assert!(!first.advances);
        assert_eq!(first.keep_from, None, "everything it sends is kept");
    }

    #[test]
    fn a_resumed_run_keeps_the_floor_it_started_with() {
        let at = clock();
        let w = RunWindow::plan(
            RunKind::Incremental,
            Some(at(20)),
            Some(at(40)),
            HOUR,
            at(3),
        )
        .resume(Some(at(30)));
        assert_eq!(w.floor, Some(at(30)));
        assert_eq!(w.keep_from, Some(at(5)));
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
        let mut ledger = crate::Ledger::new();
        ledger.insert(fingerprint(&rec("old", at(5))), at(5));
        ledger.insert(
            fingerprint(&rec("band", at(1) - chrono::Duration::minutes(30))),
            at(1),
        );
        ledger.insert(fingerprint(&rec("new", at(0))), at(0));
        let w = RunWindow::plan(RunKind::Incremental, Some(at(6)), Some(at(8)), HOUR, at(0));
        let done = complete_run(Some(at(6)), Some(at(8)), &w, at(0), HOUR, &mut ledger).unwrap();
        assert_eq!(done.watermark, Some(at(0)));
        assert_eq!((done.pruned, ledger.len()), (1, 2), "two lookbacks kept");
        assert_eq!(done.ledger_from, Some(at(2)));
        // A run that started before the stored mark (the clock moved back).
        let done =
            complete_run(Some(at(0)), done.ledger_from, &w, at(2), HOUR, &mut ledger).unwrap();
        assert_eq!(done.watermark, Some(at(0)));
    }
}
