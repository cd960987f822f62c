//! What the lake remembers between runs, so `etl run` is incremental.
//!
//! * `_state/watermark.json`: the newest `updated_at` sent (the same
//!   [`Watermark`] the AWS producer keeps in DynamoDB), shown to users.
//! * `_state/sent.fp`: a sorted set of 64-bit fingerprints of every
//!   (id, updated_at) sent. A watermark alone would skip a record appended to
//!   the input with an old timestamp; the fingerprints catch it, and they also
//!   drop exact duplicate lines within one input. 8 bytes per record sent.
//!
//! Memory stays bounded however many records a lake holds or a run sends:
//! earlier runs' fingerprints are held in memory only up to [`SPILL_AT`] of
//! them (7 MiB); beyond that they stay on disk and are probed a 4 KiB block
//! at a time (only each block's first fingerprint is held, 1/512 of the
//! file). This run's go into an in-memory table of at most [`SPILL_AT`]
//! entries (8 MiB), merged into one sorted spill file whenever it fills.
//!
//! Both files are written only when a run completes; an interrupted run
//! re-sends the same messages, which overwrite their own files.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use etl_core::{BackendError, ChangeFilter, SourceRecord, Watermark};

use crate::sink::{write_atomic, write_atomic_with};

const MAGIC: &[u8; 8] = b"ETLFP01\n";

/// Fingerprints of this run held in memory before they are spilled to disk:
/// 7/8 of a 2^20-slot table, so the table never passes 8 MiB.
pub const SPILL_AT: usize = (1 << 20) / 8 * 7;

/// Fingerprints per block read from disk (4 KiB).
const BLOCK: usize = 512;

fn state_dir(lake: &Path) -> PathBuf {
    lake.join("_state")
}

fn watermark_path(lake: &Path) -> PathBuf {
    state_dir(lake).join("watermark.json")
}

fn fingerprints_path(lake: &Path) -> PathBuf {
    state_dir(lake).join("sent.fp")
}

/// FNV-1a 64 over id and update time: stable across builds and platforms.
pub fn fingerprint(r: &SourceRecord) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    r.id.bytes().for_each(&mut eat);
    eat(0);
    r.updated_at
        .timestamp_micros()
        .to_le_bytes()
        .into_iter()
        .for_each(eat);
    h
}

fn not_a_fingerprint_file() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, "not a fingerprint file")
}

#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, offset)
}

#[cfg(windows)]
fn read_at(f: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(f, buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// Sorted fingerprints in a file, probed in place: one positional read of
/// one block per look-up, with the first fingerprint of each block in memory.
#[derive(Debug, Default)]
struct SortedFile {
    file: Option<File>,
    /// Byte offset of the first fingerprint.
    start: u64,
    len: usize,
    /// First fingerprint of each block.
    index: Vec<u64>,
    /// All of them, when there are few enough: no disk read per look-up.
    resident: Option<Vec<u64>>,
}

impl SortedFile {
    /// Index `len` fingerprints stored from `start`, checking they are
    /// sorted; hold them all when there are at most `resident_max`.
    fn open(file: File, start: u64, len: usize, resident_max: usize) -> std::io::Result<Self> {
        let mut index = Vec::with_capacity(len.div_ceil(BLOCK));
        let mut resident = (len <= resident_max).then(|| Vec::with_capacity(len));
        {
            let mut r = BufReader::with_capacity(1 << 16, &file);
            r.seek(SeekFrom::Start(start))?;
            let mut last = None;
            let mut buf = [0u8; 8];
            for i in 0..len {
                r.read_exact(&mut buf)?;
                let f = u64::from_le_bytes(buf);
                if last.is_some_and(|l| l > f) {
                    return Err(not_a_fingerprint_file());
                }
                if i % BLOCK == 0 {
                    index.push(f);
                }
                if let Some(r) = resident.as_mut() {
                    r.push(f);
                }
                last = Some(f);
            }
        }
        Ok(Self {
            file: Some(file),
            start,
            len,
            index,
            resident,
        })
    }

    fn contains(&self, f: u64) -> std::io::Result<bool> {
        if let Some(r) = &self.resident {
            return Ok(r.binary_search(&f).is_ok());
        }
        let Some(file) = &self.file else {
            return Ok(false);
        };
        let block = match self.index.partition_point(|&x| x <= f) {
            0 => return Ok(false),
            b => b - 1,
        };
        if self.index[block] == f {
            return Ok(true);
        }
        let first = block * BLOCK;
        let n = BLOCK.min(self.len - first);
        let mut buf = [0u8; BLOCK * 8];
        let buf = &mut buf[..n * 8];
        read_at(file, buf, self.start + first as u64 * 8)?;
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let x = u64::from_le_bytes(buf[mid * 8..mid * 8 + 8].try_into().expect("8 bytes"));
            match x.cmp(&f) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(true),
            }
        }
        Ok(false)
    }

    /// All fingerprints, in order, streamed from disk.
    fn stream(&self) -> std::io::Result<Box<dyn Iterator<Item = std::io::Result<u64>> + '_>> {
        let Some(file) = &self.file else {
            return Ok(Box::new(std::iter::empty()));
        };
        let mut r = BufReader::with_capacity(1 << 16, file);
        r.seek(SeekFrom::Start(self.start))?;
        let mut left = self.len;
        Ok(Box::new(std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let mut buf = [0u8; 8];
            Some(r.read_exact(&mut buf).map(|()| u64::from_le_bytes(buf)))
        })))
    }
}

/// Merge two ascending streams into one, without repeats.
fn merge_sorted<'a>(
    a: impl Iterator<Item = std::io::Result<u64>> + 'a,
    b: impl Iterator<Item = std::io::Result<u64>> + 'a,
) -> impl Iterator<Item = std::io::Result<u64>> + 'a {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    let mut last = None;
    std::iter::from_fn(move || loop {
        let next = match (a.peek(), b.peek()) {
            (Some(Err(_)), _) => a.next(),
            (_, Some(Err(_))) => b.next(),
            (Some(Ok(x)), Some(Ok(y))) if x <= y => a.next(),
            (Some(_), Some(_)) | (None, Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, None) => return None,
        }?;
        match next {
            Ok(f) if last == Some(f) => continue,
            Ok(f) => {
                last = Some(f);
                return Some(Ok(f));
            }
            Err(e) => return Some(Err(e)),
        }
    })
}

/// The change filter of local runs.
#[derive(Debug)]
pub struct LakeState {
    /// Mark reached so far (saved at the end of the run).
    pub watermark: Watermark,
    /// Where spill files go (`<lake>/_state`).
    dir: PathBuf,
    /// Earlier runs' fingerprints (`sent.fp`).
    sent: SortedFile,
    /// This run's fingerprints that no longer fit in memory.
    spilled: SortedFile,
    /// This run's newest fingerprints.
    new: FpSet,
    spill_at: usize,
    /// The first disk failure: look-ups that failed answered "new" (a
    /// record is sent again rather than dropped), and saving refuses.
    failed: Mutex<Option<std::io::Error>>,
}

/// An exact set of fingerprints at 8 bytes a slot: open addressing with
/// linear probing, at most 7/8 full, 0 marking an empty slot (a fingerprint
/// of 0 is kept in a flag). Saving sorts the table in place, so writing the
/// state needs no second copy of it.
#[derive(Debug, Default)]
struct FpSet {
    slots: Vec<u64>,
    len: usize,
    has_zero: bool,
}

impl FpSet {
    fn slot(&self, f: u64) -> usize {
        // Fibonacci hashing: FNV's low bits are weak, its product's high ones are not.
        let bits = self.slots.len().trailing_zeros();
        (f.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
    }

    fn contains(&self, f: u64) -> bool {
        if f == 0 {
            return self.has_zero;
        }
        if self.slots.is_empty() {
            return false;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.slot(f);
        loop {
            match self.slots[i] {
                0 => return false,
                x if x == f => return true,
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Insert; true when it was not there yet.
    fn insert(&mut self, f: u64) -> bool {
        if f == 0 {
            let fresh = !self.has_zero;
            self.has_zero = true;
            return fresh;
        }
        if (self.len + 1) * 8 > self.slots.len() * 7 {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = self.slot(f);
        loop {
            match self.slots[i] {
                0 => {
                    self.slots[i] = f;
                    self.len += 1;
                    return true;
                }
                x if x == f => return false,
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(1024);
        let old = std::mem::replace(&mut self.slots, vec![0; size]);
        self.len = 0;
        for f in old.into_iter().filter(|&f| f != 0) {
            self.insert(f);
        }
    }

    fn len(&self) -> usize {
        self.len + usize::from(self.has_zero)
    }

    /// The members in ascending order, consuming the set (sorted in place).
    fn into_sorted(self) -> Vec<u64> {
        let mut v = self.slots;
        v.retain(|&f| f != 0);
        v.sort_unstable();
        if self.has_zero {
            v.insert(0, 0);
        }
        v
    }
}

impl LakeState {
    /// Load the lake's state (empty for a new lake).
    pub fn load(lake: &Path) -> Result<Self, BackendError> {
        Self::load_with_spill(lake, SPILL_AT)
    }

    /// [`LakeState::load`] with this run's in-memory table capped at
    /// `spill_at` fingerprints (tests use small caps).
    #[doc(hidden)]
    pub fn load_with_spill(lake: &Path, spill_at: usize) -> Result<Self, BackendError> {
        let wp = watermark_path(lake);
        let watermark = match std::fs::read(&wp) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| BackendError::permanent("parse", wp.display().to_string(), e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Watermark::default(),
            Err(e) => return Err(BackendError::permanent("read", wp.display().to_string(), e)),
        };
        let fp = fingerprints_path(lake);
        let sent = match File::open(&fp) {
            Ok(f) => open_fingerprints(f, spill_at)
                .map_err(|e| BackendError::permanent("read", fp.display().to_string(), e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SortedFile::default(),
            Err(e) => return Err(BackendError::permanent("read", fp.display().to_string(), e)),
        };
        Ok(Self {
            watermark,
            dir: state_dir(lake),
            sent,
            spilled: SortedFile::default(),
            new: FpSet::default(),
            spill_at: spill_at.max(1),
            failed: Mutex::new(None),
        })
    }

    /// Forget everything (a `--full` run sends all records again).
    pub fn reset(&mut self) {
        self.watermark = Watermark::default();
        self.sent = SortedFile::default();
        self.spilled = SortedFile::default();
        self.new = FpSet::default();
    }

    /// Records remembered, over all runs including this one (exact when
    /// `observe` is only called for records `is_new` accepted, as producers do).
    pub fn len(&self) -> usize {
        self.sent.len + self.spilled.len + self.new.len()
    }

    /// Whether nothing was ever sent.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn fail(&self, e: std::io::Error) {
        self.failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert(e);
    }

    /// Merge the in-memory table into the spill file.
    fn spill(&mut self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!(
            ".spill-{}-{}.tmp",
            std::process::id(),
            self.spilled.len
        ));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        // Unix keeps an unlinked file while it is open: no file is left
        // behind, whatever ends the process. (Elsewhere the file stays in
        // `_state` until removed by hand.)
        #[cfg(unix)]
        std::fs::remove_file(&path)?;
        let new = std::mem::take(&mut self.new).into_sorted();
        let mut len = 0;
        let mut index = Vec::new();
        let written = (|| {
            let mut w = BufWriter::with_capacity(1 << 16, &file);
            for f in merge_sorted(self.spilled.stream()?, new.iter().map(|&f| Ok(f))) {
                let f = f?;
                if len % BLOCK == 0 {
                    index.push(f);
                }
                w.write_all(&f.to_le_bytes())?;
                len += 1;
            }
            w.flush()
        })();
        if let Err(e) = written {
            // Nothing is lost: the table comes back as it was.
            for f in new {
                self.new.insert(f);
            }
            return Err(e);
        }
        self.spilled = SortedFile {
            file: Some(file),
            start: 0,
            len,
            index,
            resident: None,
        };
        Ok(())
    }

    /// Persist watermark and fingerprints.
    pub fn save(self, lake: &Path) -> Result<(), BackendError> {
        let fp = fingerprints_path(lake);
        let failed = self
            .failed
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(e) = failed {
            return Err(BackendError::permanent("read", fp.display().to_string(), e));
        }
        // Three sorted sources, merged straight into the file.
        let new = self.new.into_sorted();
        write_atomic_with(&fp, 0, |w| {
            let mut w = BufWriter::with_capacity(1 << 16, w);
            w.write_all(MAGIC)?;
            let all = merge_sorted(
                merge_sorted(self.sent.stream()?, self.spilled.stream()?),
                new.iter().map(|&f| Ok(f)),
            );
            for f in all {
                w.write_all(&f?.to_le_bytes())?;
            }
            w.flush()
        })
        .map_err(|e| BackendError::permanent("write", fp.display().to_string(), e))?;
        let wp = watermark_path(lake);
        let json = serde_json::to_vec_pretty(&self.watermark)
            .map_err(|e| BackendError::permanent("encode", wp.display().to_string(), e))?;
        write_atomic(&wp, &json, 0)
            .map_err(|e| BackendError::permanent("write", wp.display().to_string(), e))
    }
}

/// Check a fingerprint file's header and order, and index it.
fn open_fingerprints(f: File, resident_max: usize) -> std::io::Result<SortedFile> {
    let len = f.metadata()?.len() as usize;
    if len < MAGIC.len() || !(len - MAGIC.len()).is_multiple_of(8) {
        return Err(not_a_fingerprint_file());
    }
    let mut magic = [0u8; 8];
    read_at(&f, &mut magic, 0)?;
    if &magic != MAGIC {
        return Err(not_a_fingerprint_file());
    }
    SortedFile::open(f, MAGIC.len() as u64, (len - MAGIC.len()) / 8, resident_max)
}

impl ChangeFilter for LakeState {
    fn is_new(&mut self, r: &SourceRecord) -> bool {
        let f = fingerprint(r);
        if self.new.contains(f) {
            return false;
        }
        for file in [&self.spilled, &self.sent] {
            match file.contains(f) {
                Ok(true) => return false,
                Ok(false) => {}
                Err(e) => {
                    self.fail(e);
                    return true;
                }
            }
        }
        true
    }

    fn observe(&mut self, r: &SourceRecord) {
        self.watermark.observe(r);
        if self.new.len() >= self.spill_at {
            if let Err(e) = self.spill() {
                // Keep them in memory: correct, only larger.
                self.fail(e);
                self.spill_at = usize::MAX;
            }
        }
        self.new.insert(fingerprint(r));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn rec(id: &str, secs: i64) -> SourceRecord {
        let t = Utc.timestamp_opt(secs, 0).unwrap();
        SourceRecord {
            id: id.into(),
            text: "x".into(),
            created_at: t,
            updated_at: t,
            attributes: Default::default(),
        }
    }

    #[test]
    fn remembers_sent_records_across_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LakeState::load(dir.path()).unwrap();
        assert!(s.is_empty());
        s.observe(&rec("a", 100));
        assert!(!s.is_new(&rec("a", 100)), "duplicate within a run");
        s.observe(&rec("b", 50));
        s.save(dir.path()).unwrap();
        let mut s = LakeState::load(dir.path()).unwrap();
        assert!(
            s.sent.resident.is_some(),
            "a small lake's state is held in memory"
        );
        assert_eq!(s.len(), 2);
        assert!(!s.is_new(&rec("a", 100)));
        assert!(!s.is_new(&rec("b", 50)));
        assert!(s.is_new(&rec("a", 101)), "updated record");
        assert!(
            s.is_new(&rec("c", 10)),
            "new record older than the watermark"
        );
        assert_eq!(s.watermark.at.unwrap().timestamp(), 100);
    }

    #[test]
    fn fingerprint_set_is_exact_through_growth_and_saves_sorted_and_deduplicated() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LakeState::load(dir.path()).unwrap();
        // Enough records to grow the table several times, each seen twice.
        let n = 5_000i64;
        for i in 0..n {
            let r = rec(&format!("r{i}"), i);
            assert!(s.is_new(&r), "{i}");
            s.observe(&r);
            assert!(!s.is_new(&r), "{i}");
        }
        assert_eq!(s.len(), n as usize);
        s.save(dir.path()).unwrap();
        let bytes = std::fs::read(dir.path().join("_state/sent.fp")).unwrap();
        assert_eq!(bytes.len(), 8 + 8 * n as usize);
        let mut s = LakeState::load(dir.path()).unwrap();
        for i in 0..n {
            assert!(!s.is_new(&rec(&format!("r{i}"), i)));
        }
        // A second run adds some and repeats some; the file stays a set.
        for i in (n - 10)..(n + 10) {
            let r = rec(&format!("r{i}"), i);
            if s.is_new(&r) {
                s.observe(&r);
            }
        }
        s.save(dir.path()).unwrap();
        let s = LakeState::load(dir.path()).unwrap();
        assert_eq!(s.len(), n as usize + 10);
    }

    /// A run larger than the in-memory cap: exact through many spills,
    /// across a save, and into the next run; memory stays at the cap.
    #[test]
    fn spilled_runs_stay_exact_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let cap = 300;
        let mut s = LakeState::load_with_spill(dir.path(), cap).unwrap();
        let n = 4_000i64; // ~13 spills, several 512-fingerprint blocks
        for i in 0..n {
            let r = rec(&format!("r{i}"), i % 97);
            assert!(s.is_new(&r), "{i}");
            s.observe(&r);
            assert!(!s.is_new(&r), "{i} right after");
            // Earlier records, now on disk, are still known.
            let back = (i * 7919) % (i + 1);
            assert!(
                !s.is_new(&rec(&format!("r{back}"), back % 97)),
                "{back} at {i}"
            );
            assert!(s.new.len() <= cap, "in-memory table past its cap");
        }
        assert!(s.spilled.len > 3 * BLOCK, "spilled {}", s.spilled.len);
        assert!(s.spilled.file.is_some());
        assert_eq!(s.len(), n as usize);
        assert!(s.is_new(&rec("r5", 6)), "same id, other update time");
        s.save(dir.path()).unwrap();
        // No spill file is left in the state directory.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("_state"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");

        let mut s = LakeState::load_with_spill(dir.path(), cap).unwrap();
        assert!(s.sent.resident.is_none(), "probed on disk past the cap");
        assert_eq!(s.len(), n as usize);
        for i in 0..n {
            assert!(
                !s.is_new(&rec(&format!("r{i}"), i % 97)),
                "{i} after reload"
            );
        }
        // The next run spills too, and its new records join the old ones.
        for i in n..n + 1_000 {
            let r = rec(&format!("r{i}"), 1);
            assert!(s.is_new(&r));
            s.observe(&r);
        }
        s.save(dir.path()).unwrap();
        let bytes = std::fs::read(dir.path().join("_state/sent.fp")).unwrap();
        let fps: Vec<u64> = bytes[8..]
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(fps.len(), n as usize + 1_000);
        assert!(fps.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        let mut expected: Vec<u64> = (0..n + 1_000)
            .map(|i| fingerprint(&rec(&format!("r{i}"), if i < n { i % 97 } else { 1 })))
            .collect();
        expected.sort_unstable();
        assert_eq!(fps, expected);
    }

    #[test]
    fn merge_is_ordered_and_drops_repeats() {
        let ok = |v: Vec<u64>| v.into_iter().map(Ok);
        let merged: Vec<u64> = merge_sorted(ok(vec![1, 3, 3, 8]), ok(vec![0, 3, 9]))
            .map(Result::unwrap)
            .collect();
        assert_eq!(merged, vec![0, 1, 3, 8, 9]);
    }

    #[test]
    fn zero_fingerprint_is_a_member_like_any_other() {
        let mut set = FpSet::default();
        assert!(!set.contains(0));
        assert!(set.insert(0));
        assert!(!set.insert(0));
        assert!(set.insert(7));
        assert!(set.contains(0) && set.contains(7) && !set.contains(8));
        assert_eq!(set.into_sorted(), vec![0, 7]);
    }

    #[test]
    fn unsorted_fingerprint_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("_state")).unwrap();
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&9u64.to_le_bytes());
        b.extend_from_slice(&3u64.to_le_bytes());
        std::fs::write(dir.path().join("_state/sent.fp"), b).unwrap();
        assert!(LakeState::load(dir.path()).is_err());
    }

    #[test]
    fn corrupt_fingerprint_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("_state")).unwrap();
        std::fs::write(dir.path().join("_state/sent.fp"), b"garbage").unwrap();
        assert!(LakeState::load(dir.path()).is_err());
    }
}
