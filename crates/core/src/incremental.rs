//! What an incremental run sends, decided the same way on AWS and locally.
//!
//! A run looks at every record updated at or after its *floor*, the previous
//! run's watermark minus a lookback (`LOOKBACK_SECONDS`, default one hour), and
//! sends those whose *version* is not in the *ledger* of versions sent before.
//! A version is identified by a [`Fingerprint`]: 128 bits of SHA-256 over the
//! id, `updated_at`, `created_at` and the text, so a second version that shares
//! the key but carries other text is a different version (scored, never
//! dropped), and no collision can be crafted in practice.
//!
//! Why this shape, and not a timestamp alone:
//! * The watermark is the *run's start*, not the newest `updated_at` seen, and
//!   it is never capped or cleared: a record updated in the minute before a run
//!   is in the ledger, so the next run skips it instead of sending it again
//!   with a new packing (and a second row).
//! * Records that become visible late with an `updated_at` up to the lookback
//!   behind the watermark (a writer whose clock is behind, an import keeping its
//!   original times, a slow transaction) are still inside the next run's window.
//! * A record dated in the future stays in the window until the clock catches
//!   up, but its version is in the ledger, so it is sent once and counted as
//!   clock-skewed once.
//! * The ledger holds only versions updated at or after the next floor, so its
//!   size follows the records of one lookback window (plus future-dated ones),
//!   whatever number of ids share one timestamp. Where it is stored, its size is
//!   not capped (chunked items on AWS, a file locally).
//!
//! A `full` or `since` backfill re-scores on purpose: it sends every record in
//! its window whatever the ledger says, and records what it sent.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::pipeline::ChangeFilter;
use crate::record::SourceRecord;

/// Default lookback behind the watermark (`LOOKBACK_SECONDS`).
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(3600);

/// 128 bits identifying one version of one record.
pub type Fingerprint = [u8; 16];

/// The fingerprint of a record's version: id, `updated_at`, `created_at` (it
/// decides the partition) and text, each length-prefixed so no two different
/// versions encode to the same bytes.
pub fn fingerprint(r: &SourceRecord) -> Fingerprint {
    let mut h = Sha256::new();
    h.update(b"etl-version-v1\n");
    h.update((r.id.len() as u64).to_le_bytes());
    h.update(r.id.as_bytes());
    h.update(r.updated_at.timestamp_micros().to_le_bytes());
    h.update(r.created_at.timestamp_micros().to_le_bytes());
    h.update((r.text.len() as u64).to_le_bytes());
    h.update(r.text.as_bytes());
    let d = h.finalize();
    let mut fp = [0u8; 16];
    fp.copy_from_slice(&d[..16]);
    fp
}

/// The earliest `updated_at` an incremental run looks at: `watermark −
/// lookback`; `None` (look at everything) before the first run.
pub fn scan_floor(watermark: Option<DateTime<Utc>>, lookback: Duration) -> Option<DateTime<Utc>> {
    watermark.map(|w| w - chrono::Duration::from_std(lookback).unwrap_or(chrono::Duration::MAX))
}

/// The watermark a completed run leaves: its start, never moving backwards.
pub fn next_watermark(
    previous: Option<DateTime<Utc>>,
    run_started_at: DateTime<Utc>,
) -> DateTime<Utc> {
    previous.map_or(run_started_at, |p| p.max(run_started_at))
}

/// Where a run keeps the versions sent: in memory ([`Ledger`]), or, where a
/// ledger can outgrow memory (the producer Lambda after a bulk import), a
/// backend's store that spills to disk. Fallible because such a store reads
/// and writes files; the in-memory ledger never fails.
pub trait VersionLedger: Send {
    /// Whether this version was sent.
    fn contains(&self, fp: &Fingerprint) -> std::io::Result<bool>;
    /// Record a version as sent (a version already held is left as it is).
    fn insert(&mut self, fp: Fingerprint, updated_at: DateTime<Utc>) -> std::io::Result<()>;
    /// Versions held.
    fn len(&self) -> u64;
    /// Whether it holds none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Forget versions updated before `floor` (no later run looks at them).
    /// Returns how many were removed.
    fn prune(&mut self, floor: DateTime<Utc>) -> std::io::Result<u64>;
}

/// The versions sent, each with its `updated_at` (to prune by), in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    entries: HashMap<Fingerprint, i64>,
}

const LEDGER_MAGIC: &[u8; 8] = b"ETLLG01\n";
/// Bytes of one encoded ledger entry: the fingerprint, then `updated_at` in
/// microseconds (i64 LE).
pub const LEDGER_ENTRY_BYTES: usize = 24;
const ENTRY: usize = LEDGER_ENTRY_BYTES;

/// A ledger's bytes could not be read back.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LedgerError {
    /// Wrong header.
    #[error("not a ledger (bad header)")]
    BadHeader,
    /// Length does not match the declared count.
    #[error("truncated or padded: {len} bytes for {count} entries")]
    Length {
        /// Bytes present.
        len: u64,
        /// Entries declared.
        count: u64,
    },
    /// Entries out of order or repeated.
    #[error("entries not strictly sorted at entry {0}")]
    Unsorted(u64),
    /// The bytes could not be read (or written).
    #[error("{0}")]
    Io(String),
}

impl From<std::io::Error> for LedgerError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}

/// Write a ledger in its canonical form: a header, the count, then `count`
/// entries strictly ascending by fingerprint (16 bytes fingerprint, 8 bytes
/// `updated_at` µs LE). Streams: memory does not grow with the ledger. Fails
/// (after writing a prefix) when the entries are out of order or their
/// number is not `count`, so a bad encoder can never store a ledger that
/// [`LedgerEntries`] would refuse.
pub fn write_ledger<W: Write>(
    mut w: W,
    count: u64,
    entries: impl Iterator<Item = std::io::Result<(Fingerprint, i64)>>,
) -> std::io::Result<()> {
    w.write_all(LEDGER_MAGIC)?;
    w.write_all(&count.to_le_bytes())?;
    let mut last: Option<Fingerprint> = None;
    let mut n = 0u64;
    for e in entries {
        let (fp, at) = e?;
        if last.is_some_and(|l| l >= fp) {
            return Err(std::io::Error::other(format!(
                "ledger entry {n} is not above the one before it"
            )));
        }
        last = Some(fp);
        w.write_all(&fp)?;
        w.write_all(&at.to_le_bytes())?;
        n += 1;
    }
    if n != count {
        return Err(std::io::Error::other(format!(
            "ledger declared {count} entries but {n} were written"
        )));
    }
    w.flush()
}

/// The entries of an encoded ledger, read as a stream and checked as they
/// come: header, strict order, and exactly the declared count followed by
/// the end of the bytes. Memory does not grow with the ledger.
pub struct LedgerEntries<R: Read> {
    r: R,
    count: u64,
    read: u64,
    last: Option<Fingerprint>,
    failed: bool,
}

impl<R: Read> LedgerEntries<R> {
    /// Check the header; the entries follow.
    pub fn new(mut r: R) -> Result<Self, LedgerError> {
        let mut head = [0u8; 16];
        let got = read_full(&mut r, &mut head)?;
        if got < 16 || &head[..8] != LEDGER_MAGIC {
            return Err(LedgerError::BadHeader);
        }
        let count = u64::from_le_bytes(head[8..].try_into().expect("8 bytes"));
        Ok(Self {
            r,
            count,
            read: 0,
            last: None,
            failed: false,
        })
    }

    /// Entries declared by the header.
    pub fn declared(&self) -> u64 {
        self.count
    }

    fn next_entry(&mut self) -> Result<Option<(Fingerprint, i64)>, LedgerError> {
        let mut e = [0u8; ENTRY];
        if self.read == self.count {
            // Exactly the declared count, then nothing.
            let extra = std::io::copy(&mut (&mut self.r).take(u64::MAX), &mut std::io::sink())?;
            if extra > 0 {
                return Err(self.length_error(16 + self.count * ENTRY as u64 + extra));
            }
            return Ok(None);
        }
        let got = read_full(&mut self.r, &mut e)?;
        if got < ENTRY {
            return Err(self.length_error(16 + self.read * ENTRY as u64 + got as u64));
        }
        let fp: Fingerprint = e[..16].try_into().expect("16 bytes");
        if self.last.is_some_and(|l| l >= fp) {
            return Err(LedgerError::Unsorted(self.read));
        }
        self.last = Some(fp);
        self.read += 1;
        Ok(Some((
            fp,
            i64::from_le_bytes(e[16..].try_into().expect("8 bytes")),
        )))
    }

    fn length_error(&self, len: u64) -> LedgerError {
        LedgerError::Length {
            len,
            count: self.count,
        }
    }
}

impl<R: Read> Iterator for LedgerEntries<R> {
    type Item = Result<(Fingerprint, i64), LedgerError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.next_entry().transpose();
        self.failed = matches!(next, Some(Err(_)));
        next
    }
}

/// Read until `buf` is full or the input ends; how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Versions held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether this version was sent.
    pub fn contains(&self, fp: &Fingerprint) -> bool {
        self.entries.contains_key(fp)
    }

    /// Record a version as sent.
    pub fn insert(&mut self, fp: Fingerprint, updated_at: DateTime<Utc>) {
        self.entries.insert(fp, updated_at.timestamp_micros());
    }

    /// Add every version of `other`.
    pub fn merge(&mut self, other: Ledger) {
        self.entries.extend(other.entries);
    }

    /// Forget versions updated before `floor` (no later run looks at them).
    /// Returns how many were removed.
    pub fn prune(&mut self, floor: DateTime<Utc>) -> usize {
        let before = self.entries.len();
        let f = floor.timestamp_micros();
        self.entries.retain(|_, at| *at >= f);
        before - self.entries.len()
    }

    /// The entries in ascending fingerprint order.
    pub fn sorted(&self) -> Vec<(Fingerprint, i64)> {
        let mut sorted: Vec<(Fingerprint, i64)> =
            self.entries.iter().map(|(f, a)| (*f, *a)).collect();
        sorted.sort_unstable_by_key(|a| a.0);
        sorted
    }

    /// Canonical bytes ([`write_ledger`]): the same ledger always encodes
    /// to the same bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.entries.len() * ENTRY);
        write_ledger(
            &mut out,
            self.entries.len() as u64,
            self.sorted().into_iter().map(Ok),
        )
        .expect("a Vec takes every write and a map's keys are distinct");
        out
    }

    /// Read [`Ledger::encode`]'s bytes, refusing anything else.
    pub fn decode(bytes: &[u8]) -> Result<Self, LedgerError> {
        let entries = LedgerEntries::new(bytes)?;
        let mut out =
            HashMap::with_capacity((entries.declared() as usize).min(bytes.len() / ENTRY));
        for e in entries {
            let (fp, at) = e?;
            out.insert(fp, at);
        }
        Ok(Self { entries: out })
    }
}

impl VersionLedger for Ledger {
    fn contains(&self, fp: &Fingerprint) -> std::io::Result<bool> {
        Ok(Ledger::contains(self, fp))
    }

    fn insert(&mut self, fp: Fingerprint, updated_at: DateTime<Utc>) -> std::io::Result<()> {
        Ledger::insert(self, fp, updated_at);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    fn prune(&mut self, floor: DateTime<Utc>) -> std::io::Result<u64> {
        Ok(Ledger::prune(self, floor) as u64)
    }
}

/// Enough of a record to tell `observe`'s argument is `is_new`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RecordMark {
    addr: usize,
    updated_us: i64,
    created_us: i64,
    id_len: usize,
    text_len: usize,
}

impl RecordMark {
    fn of(r: &SourceRecord) -> Self {
        Self {
            addr: r as *const SourceRecord as usize,
            updated_us: r.updated_at.timestamp_micros(),
            created_us: r.created_at.timestamp_micros(),
            id_len: r.id.len(),
            text_len: r.text.len(),
        }
    }
}

/// How one run decides: the [`ChangeFilter`] both paths hand to `produce_with`.
#[derive(Debug)]
pub struct LedgerFilter<L: VersionLedger = Ledger> {
    ledger: L,
    floor: Option<DateTime<Utc>>,
    rescore: bool,
    keep_from: Option<DateTime<Utc>>,
    clock: &'static dyn crate::clock::Clock,
    /// The fingerprint `is_new` computed for the record it found new, which
    /// producers observe next: each text is hashed once. `observe` uses it only
    /// for the same record (address, times and lengths), else hashes again.
    last: Option<(RecordMark, Fingerprint)>,
    /// Records in `[guard_from, floor)` whose version is not in the ledger
    /// are late writes the window would miss: counted and sent.
    guard_from: Option<DateTime<Utc>>,
    /// Versions in messages staged by an earlier attempt (re-sent verbatim,
    /// never packed again, whatever `rescore` says).
    staged: std::collections::HashSet<Fingerprint>,
    /// The versions this filter added to the ledger (what a checkpoint
    /// writes: only this invocation's, not the whole ledger again).
    added: L,
    /// The first failure of the ledger's store. From then on nothing is
    /// new (nothing more is sent) and the caller fails the run.
    error: Option<std::io::Error>,
    before_floor: u64,
    behind_floor: u64,
    already_sent: u64,
    staged_skipped: u64,
    clock_skewed: u64,
}

/// What a run's filter saw, besides what it sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterCounts {
    /// Records updated before the floor (outside the window).
    pub before_floor: u64,
    /// Records updated up to one lookback before the floor whose version was
    /// never sent: written late, behind the window (a writer's clock behind,
    /// an import keeping old times). Sent, counted and alarmed: a sign the
    /// lookback is too short for the writers, since older ones than these
    /// are outside every window.
    pub behind_floor: u64,
    /// Records whose version was in the ledger.
    pub already_sent: u64,
    /// Records whose version is in a message an earlier attempt staged (sent
    /// again verbatim, not packed again).
    pub staged: u64,
    /// Records sent with an `updated_at` after the clock's now (a writer
    /// whose clock is ahead). Sent once, counted once.
    pub clock_skewed: u64,
}

impl LedgerFilter<Ledger> {
    /// A run over records updated at or after `floor` (`None`: all), skipping
    /// versions in `ledger` unless `rescore` (a backfill). Versions sent are
    /// added to the ledger when updated at or after `keep_from` (older ones
    /// fall out of every later window and need not be kept).
    pub fn new(
        ledger: Ledger,
        floor: Option<DateTime<Utc>>,
        rescore: bool,
        keep_from: Option<DateTime<Utc>>,
    ) -> Self {
        Self::over(ledger, Ledger::new(), floor, rescore, keep_from)
    }
}

impl<L: VersionLedger> LedgerFilter<L> {
    /// [`LedgerFilter::new`] over any store: `ledger` holds what was sent
    /// before, `added` (empty) receives what this filter adds.
    pub fn over(
        ledger: L,
        added: L,
        floor: Option<DateTime<Utc>>,
        rescore: bool,
        keep_from: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            ledger,
            floor,
            rescore,
            keep_from,
            clock: &crate::clock::SYSTEM_CLOCK,
            last: None,
            guard_from: None,
            staged: Default::default(),
            added,
            error: None,
            before_floor: 0,
            behind_floor: 0,
            already_sent: 0,
            staged_skipped: 0,
            clock_skewed: 0,
        }
    }

    /// Also look one band below the floor, from `guard_from`, where the
    /// ledger still holds every version sent: a record there whose version
    /// is not in it was written behind the window, and is sent and counted
    /// ([`FilterCounts::behind_floor`]) instead of being silently missed.
    pub fn with_guard(mut self, guard_from: Option<DateTime<Utc>>) -> Self {
        self.guard_from = guard_from.filter(|g| self.floor.is_some_and(|f| *g < f));
        self
    }

    /// The earliest `updated_at` this filter wants to see: the guard band's
    /// start, else the floor.
    pub fn reads_from(&self) -> Option<DateTime<Utc>> {
        self.guard_from.or(self.floor)
    }

    /// A version inside a message an earlier attempt staged: it is re-sent
    /// in that body, so it is never packed again (even by a backfill), and
    /// it is recorded as sent.
    pub fn mark_staged(&mut self, r: &SourceRecord) {
        let fp = fingerprint(r);
        self.staged.insert(fp);
        self.keep(fp, r.updated_at);
    }

    fn keep(&mut self, fp: Fingerprint, updated_at: DateTime<Utc>) {
        if self.keep_from.is_none_or(|k| updated_at >= k) {
            let kept = self
                .ledger
                .insert(fp, updated_at)
                .and_then(|()| self.added.insert(fp, updated_at));
            self.fail(kept);
        }
    }

    fn fail(&mut self, r: std::io::Result<()>) {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }

    /// The ledger store's first failure, if any: the run must fail, since
    /// what was decided after it is not recorded.
    pub fn take_error(&mut self) -> Option<std::io::Error> {
        self.error.take()
    }

    /// The versions this filter added to the ledger.
    pub fn added(&self) -> &L {
        &self.added
    }

    /// Read "now" (for the clock-skew count) from `clock`.
    pub fn with_clock(mut self, clock: &'static dyn crate::clock::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// What the filter saw.
    pub fn counts(&self) -> FilterCounts {
        FilterCounts {
            before_floor: self.before_floor,
            behind_floor: self.behind_floor,
            already_sent: self.already_sent,
            staged: self.staged_skipped,
            clock_skewed: self.clock_skewed,
        }
    }

    /// The ledger with this run's versions added.
    pub fn ledger(&self) -> &L {
        &self.ledger
    }

    /// Take the ledger out.
    pub fn into_ledger(self) -> L {
        self.ledger
    }

    /// Take out the ledger and the versions this filter added to it.
    pub fn into_parts(self) -> (L, L) {
        (self.ledger, self.added)
    }
}

impl<L: VersionLedger> ChangeFilter for LedgerFilter<L> {
    fn is_new(&mut self, r: &SourceRecord) -> bool {
        if self.error.is_some() {
            return false;
        }
        let behind = self.floor.is_some_and(|f| r.updated_at < f);
        if behind && self.guard_from.is_none_or(|g| r.updated_at < g) {
            self.before_floor += 1;
            return false;
        }
        let fp = fingerprint(r);
        if self.staged.contains(&fp) {
            self.staged_skipped += 1;
            return false;
        }
        if !self.rescore || behind {
            match self.ledger.contains(&fp) {
                Ok(true) => {
                    self.already_sent += 1;
                    return false;
                }
                Ok(false) => {}
                Err(e) => {
                    self.fail(Err(e));
                    return false;
                }
            }
        }
        if behind {
            self.behind_floor += 1;
        }
        self.last = Some((RecordMark::of(r), fp));
        true
    }

    fn observe(&mut self, r: &SourceRecord) {
        if self.error.is_some() {
            return;
        }
        if r.updated_at > self.clock.now() {
            self.clock_skewed += 1;
        }
        let fp = match self.last.take() {
            Some((mark, fp)) if mark == RecordMark::of(r) => fp,
            _ => fingerprint(r),
        };
        self.keep(fp, r.updated_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, text: &str, at: DateTime<Utc>) -> SourceRecord {
        SourceRecord {
            id: id.into(),
            text: text.into(),
            created_at: at,
            updated_at: at,
            attributes: Default::default(),
        }
    }

    fn ago(secs: i64) -> DateTime<Utc> {
        crate::record::truncate_micros(Utc::now()) - chrono::Duration::seconds(secs)
    }

    #[test]
    fn fingerprint_separates_text_time_and_id_boundaries() {
        let t = ago(10);
        let a = fingerprint(&rec("a", "hello", t));
        assert_ne!(a, fingerprint(&rec("a", "hello!", t)), "text");
        assert_ne!(
            a,
            fingerprint(&rec("a", "hello", t + chrono::Duration::microseconds(1)))
        );
        // Length prefixes: "ab"+"c" and "a"+"bc" differ.
        assert_ne!(
            fingerprint(&rec("ab", "c", t)),
            fingerprint(&rec("a", "bc", t))
        );
        assert_eq!(a, fingerprint(&rec("a", "hello", t)));
    }

    #[test]
    fn floor_and_watermark_follow_run_start() {
        let start = ago(0);
        assert_eq!(scan_floor(None, DEFAULT_LOOKBACK), None);
        assert_eq!(
            scan_floor(Some(start), Duration::from_secs(3600)),
            Some(start - chrono::Duration::seconds(3600))
        );
        assert_eq!(next_watermark(None, start), start);
        // A run that started before the stored mark (clock moved back) never
        // moves it backwards.
        let later = start + chrono::Duration::seconds(5);
        assert_eq!(next_watermark(Some(later), start), later);
    }

    #[test]
    fn filter_skips_sent_versions_sends_conflicting_text_and_counts_skew() {
        let t = ago(100);
        let mut ledger = Ledger::new();
        ledger.insert(fingerprint(&rec("a", "v1", t)), t);
        let mut f = LedgerFilter::new(ledger, Some(ago(3600)), false, Some(ago(3600)));
        assert!(!f.is_new(&rec("a", "v1", t)), "same version");
        assert!(f.is_new(&rec("a", "v1 edited", t)), "same key, other text");
        assert!(!f.is_new(&rec("old", "x", ago(7200))), "before the floor");
        let future = ago(-600);
        let r = rec("f", "from the future", future);
        assert!(f.is_new(&r));
        f.observe(&r);
        assert!(!f.is_new(&r), "future-dated record sent once");
        assert_eq!(
            f.counts(),
            FilterCounts {
                before_floor: 1,
                already_sent: 2,
                clock_skewed: 1,
                ..FilterCounts::default()
            }
        );
    }

    #[test]
    fn a_late_write_in_the_guard_band_is_sent_and_counted_and_older_ones_only_counted() {
        // One reading of the clock for the whole test.
        let now = ago(0);
        let ago = |secs: i64| now - chrono::Duration::seconds(secs);
        let floor = ago(3600);
        let sent_long_ago = rec("old", "sent by an earlier run", ago(5000));
        let mut ledger = Ledger::new();
        ledger.insert(fingerprint(&sent_long_ago), sent_long_ago.updated_at);
        let mut f = LedgerFilter::new(ledger, Some(floor), false, Some(ago(7200)))
            .with_guard(Some(ago(7200)));
        assert_eq!(f.reads_from(), Some(ago(7200)));
        assert!(!f.is_new(&sent_long_ago), "in the band and in the ledger");
        let late = rec("late", "written now, dated 90 minutes ago", ago(5400));
        assert!(f.is_new(&late), "in the band, never sent: sent now");
        f.observe(&late);
        assert!(!f.is_new(&late), "and only once");
        assert!(!f.is_new(&rec("older", "x", ago(9000))), "beyond the band");
        assert_eq!(
            f.counts(),
            FilterCounts {
                before_floor: 1,
                behind_floor: 1,
                already_sent: 2,
                ..FilterCounts::default()
            }
        );
        // No guard band where the ledger cannot tell (above the floor only).
        let f =
            LedgerFilter::new(Ledger::new(), Some(floor), false, None).with_guard(Some(ago(60)));
        assert_eq!(f.reads_from(), Some(floor));
    }

    #[test]
    fn staged_versions_are_never_packed_again_even_by_a_backfill() {
        let r = rec(
            "a/../b c",
            "in a message an earlier attempt staged",
            ago(30),
        );
        let edited = rec("a/../b c", "edited after the failure", ago(5));
        for rescore in [false, true] {
            let mut f = LedgerFilter::new(Ledger::new(), None, rescore, Some(ago(3600)));
            f.mark_staged(&r);
            assert!(!f.is_new(&r), "rescore={rescore}");
            assert!(f.is_new(&edited), "a new version is new");
            assert_eq!(f.counts().staged, 1);
            assert!(f.ledger().contains(&fingerprint(&r)), "recorded as sent");
        }
    }

    #[test]
    fn rescore_sends_versions_in_the_ledger_and_keep_from_bounds_it() {
        let t = ago(100);
        let mut ledger = Ledger::new();
        ledger.insert(fingerprint(&rec("a", "v1", t)), t);
        let mut f = LedgerFilter::new(ledger, None, true, Some(ago(50)));
        assert!(f.is_new(&rec("a", "v1", t)));
        f.observe(&rec("b", "old", ago(500)));
        let c = rec("c", "recent", ago(10));
        f.observe(&c);
        assert_eq!(f.ledger().len(), 2, "b is older than keep_from");
        assert_eq!(f.added().len(), 1, "only c was added by this filter");
        assert!(f.added().contains(&fingerprint(&c)));
        let mut merged = Ledger::new();
        merged.insert(fingerprint(&rec("a", "v1", t)), t);
        merged.merge(f.added().clone());
        assert_eq!(
            &merged,
            f.ledger(),
            "a checkpoint's base and delta make the run's ledger"
        );
    }

    /// A store that fails from its `fail_at`-th insert on.
    #[derive(Debug, Default)]
    struct Failing {
        inner: Ledger,
        inserts: u32,
        fail_at: u32,
    }

    impl VersionLedger for Failing {
        fn contains(&self, fp: &Fingerprint) -> std::io::Result<bool> {
            Ok(self.inner.contains(fp))
        }
        fn insert(&mut self, fp: Fingerprint, at: DateTime<Utc>) -> std::io::Result<()> {
            self.inserts += 1;
            if self.inserts >= self.fail_at {
                return Err(std::io::Error::other("disk full"));
            }
            self.inner.insert(fp, at);
            Ok(())
        }
        fn len(&self) -> u64 {
            self.inner.len() as u64
        }
        fn prune(&mut self, _: DateTime<Utc>) -> std::io::Result<u64> {
            Ok(0)
        }
    }

    #[test]
    fn a_failing_store_stops_the_filter_and_reports_the_failure_once() {
        let store = || Failing {
            fail_at: 2,
            ..Failing::default()
        };
        let mut f = LedgerFilter::over(store(), store(), None, false, None);
        let a = rec("a", "first", ago(30));
        assert!(f.is_new(&a));
        f.observe(&a);
        let b = rec("b", "second", ago(20));
        assert!(f.is_new(&b));
        f.observe(&b); // the ledger's second insert fails here
        assert!(
            !f.is_new(&rec("c", "third", ago(10))),
            "nothing is new after a failure: it could not be recorded"
        );
        let err = f.take_error().expect("the failure is kept");
        assert_eq!(err.to_string(), "disk full");
        assert!(f.take_error().is_none());
        assert_eq!(f.ledger().len(), 1);
    }

    #[test]
    fn ledger_prunes_and_round_trips_canonically() {
        let mut l = Ledger::new();
        for i in 0..100 {
            let r = rec(&format!("id{i}"), "t", ago(i * 60));
            l.insert(fingerprint(&r), r.updated_at);
        }
        assert_eq!(l.prune(ago(30 * 60) - chrono::Duration::seconds(1)), 69);
        assert_eq!(l.len(), 31);
        let bytes = l.encode();
        assert_eq!(bytes.len(), 16 + 31 * 24);
        assert_eq!(LedgerEntries::new(&bytes[..]).unwrap().declared(), 31);
        let back = Ledger::decode(&bytes).unwrap();
        assert_eq!(back, l);
        assert_eq!(back.encode(), bytes);
        assert_eq!(
            Ledger::decode(&bytes[..bytes.len() - 1]).unwrap_err(),
            LedgerError::Length {
                len: bytes.len() as u64 - 1,
                count: 31
            }
        );
        let mut padded = bytes.clone();
        padded.push(0);
        assert_eq!(
            Ledger::decode(&padded).unwrap_err(),
            LedgerError::Length {
                len: bytes.len() as u64 + 1,
                count: 31
            }
        );
        assert_eq!(
            Ledger::decode(b"garbage!garbage!").unwrap_err(),
            LedgerError::BadHeader
        );
        let mut swapped = bytes.clone();
        let (a, b) = swapped[16..16 + 48].split_at_mut(24);
        a.swap_with_slice(b);
        assert_eq!(
            Ledger::decode(&swapped).unwrap_err(),
            LedgerError::Unsorted(1)
        );
    }
}
