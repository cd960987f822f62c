//! The landed log: the versions of this run that reached the lake.
//!
//! Consumers commit to it concurrently, one successful message at a time,
//! and only what it holds is merged into `sent.fp` when the run is saved, so
//! a version is marked sent only once its message landed. It is shared
//! state with its own locking, apart from the single-threaded policy.

use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use etl_core::incremental::fingerprint;
use etl_core::SourceRecord;

use crate::fpset::SpillSet;

/// The versions of this run that landed in the lake, committed by the
/// consumers one successful message at a time. Shared behind an `Arc`.
#[derive(Debug)]
pub struct Landed {
    pub(super) inner: Mutex<LandedInner>,
}

#[derive(Debug)]
pub(super) struct LandedInner {
    pub(super) set: SpillSet,
    pub(super) newest: Option<DateTime<Utc>>,
    pub(super) failed: Option<std::io::Error>,
}

impl Landed {
    pub(super) fn new(dir: PathBuf, cap: usize) -> Self {
        Self {
            inner: Mutex::new(LandedInner {
                set: SpillSet::new(dir, "landed", cap),
                newest: None,
                failed: None,
            }),
        }
    }

    /// Mark these records as in the lake.
    pub fn commit<'a>(&self, records: impl IntoIterator<Item = &'a SourceRecord>) {
        let mut g = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for r in records {
            g.newest = g.newest.max(Some(r.updated_at));
            if let Err(e) = g.set.insert(fingerprint(r)) {
                g.failed.get_or_insert(e);
            }
        }
    }

    /// Mark the records of a message body that was consumed successfully.
    /// (The consumer decoded the same body, so this cannot fail on a
    /// message that landed; a body that does not decode marks nothing.)
    pub fn commit_message(&self, body: &str) {
        if let Ok(m) = etl_core::decode_message(body) {
            self.commit(&m.records);
        }
    }

    /// Versions committed so far.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .set
            .len()
    }

    /// Whether none was committed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
