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

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use etl_core::{BackendError, ChangeFilter, SourceRecord, Watermark};

use crate::sink::write_atomic;

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

/// The change filter of local runs.
#[derive(Debug, Default)]
pub struct LakeState {
    /// Mark reached so far (saved at the end of the run).
    pub watermark: Watermark,
    sent: Vec<u64>,
    new: HashSet<u64>,
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
        let sent = match std::fs::read(&fp) {
            Ok(b) => {
                if b.len() < MAGIC.len()
                    || &b[..MAGIC.len()] != MAGIC
                    || !(b.len() - MAGIC.len()).is_multiple_of(8)
                {
                    return Err(BackendError::permanent(
                        "parse",
                        fp.display().to_string(),
                        "not a fingerprint file",
                    ));
                }
                b[MAGIC.len()..]
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("chunks of 8")))
                    .collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(BackendError::permanent("read", fp.display().to_string(), e)),
        };
        Ok(Self {
            watermark,
            sent,
            new: HashSet::new(),
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
    pub fn save(&self, lake: &Path) -> Result<(), BackendError> {
        let mut all = Vec::with_capacity(self.sent.len() + self.new.len());
        all.extend_from_slice(&self.sent);
        all.extend(self.new.iter().copied());
        all.sort_unstable();
        all.dedup();
        let mut bytes = Vec::with_capacity(MAGIC.len() + all.len() * 8);
        bytes.extend_from_slice(MAGIC);
        for f in all {
            bytes.extend_from_slice(&f.to_le_bytes());
        }
        let fp = fingerprints_path(lake);
        write_atomic(&fp, &bytes, 0)
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
        self.sent.binary_search(&f).is_err() && !self.new.contains(&f)
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
    fn corrupt_fingerprint_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("_state")).unwrap();
        std::fs::write(dir.path().join("_state/sent.fp"), b"garbage").unwrap();
        assert!(LakeState::load(dir.path()).is_err());
    }
}
