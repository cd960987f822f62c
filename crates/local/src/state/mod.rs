//! What the lake remembers between runs, so `etl run` is incremental.
//!
//! This is core's incremental policy ([`etl_core::incremental`]) with an
//! unbounded lookback: a version is identified by its
//! [`fingerprint`](etl_core::incremental::fingerprint) (128 bits of SHA-256
//! over id, `updated_at`, `created_at` and text), and the lake keeps the
//! fingerprint of *every* version that landed, never pruned. So a record
//! appended to the input with an old timestamp is still picked up (the AWS
//! path catches it only inside `LOOKBACK_SECONDS`), a second version that
//! shares id and `updated_at` but carries other text is scored rather than
//! dropped, and exact duplicate lines within one input are sent once.
//!
//! Files in `<lake>/_state/`:
//! * `sent.fp`: every version that landed in the lake (a checked, sorted
//!   fingerprint file, see [`crate::fpset`]). 16 bytes per version.
//! * `retry.fp`: versions the last run sent that did not land (their
//!   message was dead-lettered): not in `sent.fp`, so the next run sends
//!   them again and counts them as retried.
//! * `watermark.json`: what the last run saw (newest `updated_at`, when it
//!   started, counts). Shown to users; decisions are made on fingerprints.
//!
//! A version is marked sent only when its message landed: consumers commit
//! each successful message's fingerprints to the [`Landed`] log, and saving
//! merges only those into `sent.fp`. Everything is written only when a run
//! completes; an interrupted run re-sends the same messages, which overwrite
//! their own files.
//!
//! Memory stays bounded however many versions a lake holds or a run sends:
//! earlier runs' fingerprints are held in memory only up to [`SPILL_AT`] of
//! them (7 MiB), beyond that probed on disk; this run's sent and landed sets
//! are each an in-memory table of at most [`SPILL_AT`] entries (8 MiB) merged
//! into a sorted spill file whenever it fills.
//!
//! A damaged or old-format state file stops the run before anything is
//! written, naming the file and how to recover ([`StateError`]).
//!
//! This module is the policy: [`LakeState`], the change filter that decides
//! what a run sends and tracks what it sent. What it keeps on disk has files
//! of its own: `summary` is `watermark.json`, `landed` the log consumers
//! commit landed versions to, `save` the step that merges them into the
//! fingerprint files at the end of a run, and `error` the one error all of
//! them report ([`StateError`]). The fingerprint sets themselves are
//! [`crate::fpset`].

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use etl_core::incremental::fingerprint;
use etl_core::{ChangeFilter, SourceRecord};

use crate::fpset::{SortedFile, SpillSet};

mod error;
mod landed;
mod save;
mod summary;

pub use crate::fpset::Fp;
pub use error::StateError;
pub use landed::Landed;
pub use save::SaveReport;
pub use summary::{read_summary, StateSummary};

use summary::parse_summary;

/// Fingerprints of one set held in memory before they are spilled to disk:
/// 7/8 of a 2^19-slot table of 16-byte slots, so a table never passes 8 MiB.
pub const SPILL_AT: usize = (1 << 19) / 8 * 7;

/// The state directory of a lake.
pub fn state_dir(lake: &Path) -> PathBuf {
    lake.join("_state")
}

fn watermark_path(lake: &Path) -> PathBuf {
    state_dir(lake).join("watermark.json")
}

/// Versions that landed in the lake.
pub fn sent_path(lake: &Path) -> PathBuf {
    state_dir(lake).join("sent.fp")
}

/// Versions the last run sent that did not land.
pub fn retry_path(lake: &Path) -> PathBuf {
    state_dir(lake).join("retry.fp")
}

/// The change filter of local runs, and the state it saves.
#[derive(Debug)]
pub struct LakeState {
    dir: PathBuf,
    previous: StateSummary,
    started_at: DateTime<Utc>,
    /// Versions that landed in earlier runs (`sent.fp`).
    sent: SortedFile,
    /// Versions the previous run sent that did not land (`retry.fp`).
    retry: SortedFile,
    /// Versions this run sent (observed), landed or not.
    pending: SpillSet,
    landed: Arc<Landed>,
    retried: u64,
    /// The first disk failure: look-ups that failed answered "new" (a
    /// record is sent again rather than dropped), and saving refuses.
    failed: Option<std::io::Error>,
}

impl LakeState {
    /// Load the lake's state (empty for a new lake). A damaged or
    /// old-format file is an error that names it and how to recover.
    pub fn load(lake: &Path) -> Result<Self, StateError> {
        Self::load_with_spill(lake, SPILL_AT)
    }

    /// [`LakeState::load`] with every in-memory set capped at `spill_at`
    /// fingerprints (tests use small caps).
    #[doc(hidden)]
    pub fn load_with_spill(lake: &Path, spill_at: usize) -> Result<Self, StateError> {
        let wp = watermark_path(lake);
        let previous = match std::fs::read(&wp) {
            Ok(b) => parse_summary(&wp, &b)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateSummary::default(),
            Err(e) => return Err(StateError::io(&wp, e)),
        };
        let open = |p: PathBuf| match File::open(&p) {
            Ok(f) => {
                SortedFile::open_checked(f, spill_at).map_err(|e| StateError::from_invalid(&p, e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SortedFile::default()),
            Err(e) => Err(StateError::io(&p, e)),
        };
        let sent = open(sent_path(lake))?;
        let retry = open(retry_path(lake))?;
        let mut s = Self::fresh_with_spill(lake, spill_at);
        s.previous = previous;
        s.sent = sent;
        s.retry = retry;
        Ok(s)
    }

    /// A state that remembers nothing, reading no file: a `--full` run
    /// sends every record and rebuilds the state from what lands (also the
    /// way to recover from a damaged state file).
    pub fn fresh(lake: &Path) -> Self {
        Self::fresh_with_spill(lake, SPILL_AT)
    }

    fn fresh_with_spill(lake: &Path, spill_at: usize) -> Self {
        let dir = state_dir(lake);
        Self {
            previous: StateSummary::default(),
            started_at: etl_core::record::truncate_micros(Utc::now()),
            sent: SortedFile::default(),
            retry: SortedFile::default(),
            pending: SpillSet::new(dir.clone(), "sent", spill_at),
            landed: Arc::new(Landed::new(dir.clone(), spill_at)),
            dir,
            retried: 0,
            failed: None,
        }
    }

    /// What the last completed run left in `watermark.json`.
    pub fn previous(&self) -> &StateSummary {
        &self.previous
    }

    /// Where consumers commit the versions that landed.
    pub fn landed(&self) -> Arc<Landed> {
        self.landed.clone()
    }

    /// Versions sent by this run that an earlier run sent without them
    /// landing (dead-lettered): retried now.
    pub fn retried(&self) -> u64 {
        self.retried
    }

    /// Versions that landed in earlier runs.
    pub fn earlier_versions(&self) -> usize {
        self.sent.len
    }

    /// Versions this run has sent so far.
    pub fn sent_this_run(&self) -> usize {
        self.pending.len()
    }

    /// Bytes of this run's in-memory tables (sent and landed).
    #[doc(hidden)]
    pub fn table_bytes(&self) -> usize {
        self.pending.table_bytes()
            + self
                .landed
                .inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .set
                .table_bytes()
    }

    /// Whether this run has already sent this exact version (a duplicate
    /// line): the one check a `since` backfill keeps.
    pub fn sent_this_run_contains(&mut self, r: &SourceRecord) -> bool {
        match self.pending.contains(&fingerprint(r)) {
            Ok(seen) => seen,
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    /// Whether this version landed in the lake before (`sent.fp`).
    pub fn landed_before(&mut self, r: &SourceRecord) -> bool {
        match self.sent.contains(&fingerprint(r)) {
            Ok(seen) => seen,
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    fn fail(&mut self, e: std::io::Error) {
        self.failed.get_or_insert(e);
    }
}

impl ChangeFilter for LakeState {
    fn is_new(&mut self, r: &SourceRecord) -> bool {
        let f = fingerprint(r);
        match self.pending.contains(&f) {
            Ok(true) => return false,
            Ok(false) => {}
            Err(e) => {
                self.fail(e);
                return true;
            }
        }
        match self.sent.contains(&f) {
            Ok(seen) => !seen,
            Err(e) => {
                self.fail(e);
                true
            }
        }
    }

    fn observe(&mut self, r: &SourceRecord) {
        let f = fingerprint(r);
        if self.retry.len > 0 {
            match self.retry.contains(&f) {
                Ok(true) => self.retried += 1,
                Ok(false) => {}
                Err(e) => self.fail(e),
            }
        }
        if let Err(e) = self.pending.insert(f) {
            self.fail(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        etl_core::record::truncate_micros(Utc::now())
    }

    fn rec(id: &str, text: &str, at: DateTime<Utc>) -> SourceRecord {
        SourceRecord {
            id: id.into(),
            text: text.into(),
            created_at: at,
            updated_at: at,
            attributes: Default::default(),
        }
    }

    /// One run: every record offered; those `lands` accepts are committed.
    fn run(
        lake: &Path,
        cap: usize,
        records: &[SourceRecord],
        lands: impl Fn(&SourceRecord) -> bool,
    ) -> (Vec<String>, u64, SaveReport) {
        let mut s = LakeState::load_with_spill(lake, cap).unwrap();
        let landed = s.landed();
        let mut sent = Vec::new();
        for r in records {
            if s.is_new(r) {
                s.observe(r);
                sent.push(r.id.clone());
                if lands(r) {
                    landed.commit([r]);
                }
            }
        }
        drop(landed);
        let retried = s.retried();
        (sent, retried, s.save().unwrap())
    }

    #[test]
    fn conflicting_text_is_a_new_version_and_duplicates_are_sent_once() {
        let dir = tempfile::tempdir().unwrap();
        let t = now() - chrono::Duration::minutes(5);
        let a = rec("a", "first text", t);
        let (sent, _, rep) = run(dir.path(), 100, &[a.clone(), a.clone()], |_| true);
        assert_eq!(sent, vec!["a"], "exact duplicate line sent once");
        assert_eq!(rep.versions, 1);
        let a2 = rec("a", "other text, same id and updated_at", t);
        let old = rec(
            "old",
            "appended with a timestamp from last year",
            t - chrono::Duration::days(365),
        );
        let (sent, _, rep) = run(dir.path(), 100, &[a.clone(), a2, old], |_| true);
        assert_eq!(
            sent,
            vec!["a", "old"],
            "conflicting version and late record sent"
        );
        assert_eq!(rep.versions, 3);
        let s = LakeState::load(dir.path()).unwrap();
        assert_eq!(s.previous().versions, 3);
        assert_eq!(s.previous().newest_updated_at, Some(t));
    }

    #[test]
    fn versions_that_did_not_land_are_retried_and_counted_once_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let t = now();
        let recs: Vec<_> = (0..50).map(|i| rec(&format!("r{i}"), "x", t)).collect();
        let poisoned = |r: &SourceRecord| r.id.ends_with('7');
        let (sent, retried, rep) = run(dir.path(), 16, &recs, |r| !poisoned(r));
        assert_eq!((sent.len(), retried), (50, 0));
        assert_eq!(
            rep,
            SaveReport {
                versions: 45,
                pending_retry: 5
            }
        );
        // Still failing: sent again, retried, kept for retry.
        let (sent, retried, rep) = run(dir.path(), 16, &recs, |r| !poisoned(r));
        assert_eq!(sent, vec!["r7", "r17", "r27", "r37", "r47"]);
        assert_eq!(retried, 5);
        assert_eq!(
            rep,
            SaveReport {
                versions: 45,
                pending_retry: 5
            }
        );
        // Fixed: they land; nothing is left to retry.
        let (sent, retried, rep) = run(dir.path(), 16, &recs, |_| true);
        assert_eq!((sent.len(), retried), (5, 5));
        assert_eq!(
            rep,
            SaveReport {
                versions: 50,
                pending_retry: 0
            }
        );
        let (sent, retried, _) = run(dir.path(), 16, &recs, |_| true);
        assert_eq!((sent.len(), retried), (0, 0));
    }

    /// Runs larger than the in-memory caps: exact through spills of both
    /// sets, across saves, probed on disk in the next run.
    #[test]
    fn spilled_runs_stay_exact_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let t = now();
        let cap = 300;
        let n = 4_000;
        let recs: Vec<_> = (0..n)
            .map(|i| {
                rec(
                    &format!("r{i}"),
                    &format!("text {}", i % 7),
                    t - chrono::Duration::seconds(i % 97),
                )
            })
            .collect();
        let (sent, _, rep) = run(dir.path(), cap, &recs, |r| r.id != "r1234");
        assert_eq!(sent.len(), n as usize);
        assert_eq!(
            rep,
            SaveReport {
                versions: n as u64 - 1,
                pending_retry: 1
            }
        );
        let names: Vec<_> = std::fs::read_dir(dir.path().join("_state"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 3, "no spill file left: {names:?}");
        let mut s = LakeState::load_with_spill(dir.path(), cap).unwrap();
        assert!(s.sent.resident.is_none(), "probed on disk past the cap");
        for r in &recs {
            assert_eq!(s.is_new(r), r.id == "r1234", "{}", r.id);
        }
        // A run that sends and lands all of them keeps each table at its cap.
        let mut s = LakeState::fresh_with_spill(dir.path(), cap);
        let landed = s.landed();
        for r in &recs {
            assert!(s.is_new(r));
            s.observe(r);
            landed.commit([r]);
            assert!(!s.is_new(r), "{} right after", r.id);
            assert!(s.pending.in_memory() <= cap);
        }
        assert!(s.table_bytes() <= 2 * 1024 * 16, "{}", s.table_bytes());
        drop(landed);
        assert_eq!(
            s.save().unwrap(),
            SaveReport {
                versions: n as u64,
                pending_retry: 0
            }
        );
    }

    #[test]
    fn damaged_and_old_state_files_are_named_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let t = now();
        run(
            dir.path(),
            100,
            &[rec("a", "x", t), rec("b", "y", t)],
            |_| true,
        );
        let sp = sent_path(dir.path());
        let good = std::fs::read(&sp).unwrap();
        let err = |lake: &Path| LakeState::load(lake).unwrap_err().to_string();

        std::fs::write(&sp, &good[..good.len() - 7]).unwrap();
        let e = err(dir.path());
        assert!(
            e.contains(&sp.display().to_string()) && e.contains("corrupt") && e.contains("--full"),
            "{e}"
        );

        std::fs::write(&sp, b"ETLFP01\n\x01\x00\x00\x00\x00\x00\x00\x00").unwrap();
        let e = err(dir.path());
        assert!(e.contains("older etl") && e.contains("--full"), "{e}");
        std::fs::write(&sp, &good).unwrap();

        let wp = watermark_path(dir.path());
        let summary = std::fs::read(&wp).unwrap();
        std::fs::write(&wp, &summary[..summary.len() / 2]).unwrap();
        let e = err(dir.path());
        assert!(
            e.contains("watermark.json") && e.contains("not JSON"),
            "{e}"
        );
        std::fs::write(&wp, br#"{"at":"2024-01-01T00:00:00Z","ids_at":["a"]}"#).unwrap();
        assert!(err(dir.path()).contains("older etl"));
        std::fs::write(&wp, &summary).unwrap();
        assert!(LakeState::load(dir.path()).is_ok());
    }
}
