//! What the lake remembers between runs, so `etl run` is incremental.
//!
//! * `_state/watermark.json`: the newest `updated_at` sent (the same
//!   [`Watermark`] the AWS producer keeps in DynamoDB), shown to users and
//!   used as a fast path.
//! * `_state/sent.fp`: a sorted set of 64-bit fingerprints of every
//!   (id, updated_at) sent. A watermark alone would skip a record appended to
//!   the input with an old timestamp; the fingerprints catch it, and they also
//!   drop exact duplicate lines within one input. 8 bytes per record sent.
//!
//! Both are written only when a run completes; an interrupted run re-sends
//! the same messages, which overwrite their own files.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use etl_core::{BackendError, ChangeFilter, SourceRecord, Watermark};

use crate::sink::{write_atomic, write_atomic_with};

const MAGIC: &[u8; 8] = b"ETLFP01\n";

fn watermark_path(lake: &Path) -> PathBuf {
    lake.join("_state").join("watermark.json")
}

fn fingerprints_path(lake: &Path) -> PathBuf {
    lake.join("_state").join("sent.fp")
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

/// Read a fingerprint file (magic, then sorted little-endian u64s) without
/// holding its bytes and the list at the same time.
fn read_fingerprints(f: std::fs::File) -> std::io::Result<Vec<u64>> {
    let len = f.metadata()?.len() as usize;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not a fingerprint file");
    if len < MAGIC.len() || !(len - MAGIC.len()).is_multiple_of(8) {
        return Err(bad());
    }
    let mut r = BufReader::with_capacity(1 << 16, f);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(bad());
    }
    let count = (len - MAGIC.len()) / 8;
    let mut out = Vec::with_capacity(count);
    let mut buf = [0u8; 8];
    for _ in 0..count {
        r.read_exact(&mut buf)?;
        out.push(u64::from_le_bytes(buf));
    }
    if !out.is_sorted() {
        return Err(bad());
    }
    Ok(out)
}

/// The change filter of local runs.
#[derive(Debug, Default)]
pub struct LakeState {
    /// Mark reached so far (saved at the end of the run).
    pub watermark: Watermark,
    sent: Vec<u64>,
    new: FpSet,
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
        let wp = watermark_path(lake);
        let watermark = match std::fs::read(&wp) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| BackendError::permanent("parse", wp.display().to_string(), e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Watermark::default(),
            Err(e) => return Err(BackendError::permanent("read", wp.display().to_string(), e)),
        };
        let fp = fingerprints_path(lake);
        let sent = match std::fs::File::open(&fp) {
            Ok(f) => read_fingerprints(f)
                .map_err(|e| BackendError::permanent("read", fp.display().to_string(), e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(BackendError::permanent("read", fp.display().to_string(), e)),
        };
        Ok(Self {
            watermark,
            sent,
            new: FpSet::default(),
        })
    }

    /// Forget everything (a `--full` run sends all records again).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Records sent, over all runs including this one.
    pub fn len(&self) -> usize {
        self.sent.len() + self.new.len()
    }

    /// Whether nothing was ever sent.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Persist watermark and fingerprints.
    pub fn save(self, lake: &Path) -> Result<(), BackendError> {
        // Both lists are sorted: merge them straight into the file.
        let new = self.new.into_sorted();
        let fp = fingerprints_path(lake);
        write_atomic_with(&fp, 0, |w| {
            let mut w = BufWriter::with_capacity(1 << 16, w);
            w.write_all(MAGIC)?;
            let (mut a, mut b) = (self.sent.iter().peekable(), new.iter().peekable());
            let mut last = None;
            loop {
                let next = match (a.peek(), b.peek()) {
                    (Some(&&x), Some(&&y)) if x <= y => a.next(),
                    (Some(_), Some(_)) => b.next(),
                    (Some(_), None) => a.next(),
                    (None, Some(_)) => b.next(),
                    (None, None) => break,
                };
                let f = *next.expect("peeked");
                if last != Some(f) {
                    w.write_all(&f.to_le_bytes())?;
                    last = Some(f);
                }
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

impl ChangeFilter for LakeState {
    fn is_new(&self, r: &SourceRecord) -> bool {
        let f = fingerprint(r);
        !self.new.contains(f) && self.sent.binary_search(&f).is_err()
    }

    fn observe(&mut self, r: &SourceRecord) {
        self.watermark.observe(r);
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
        let s = LakeState::load(dir.path()).unwrap();
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
