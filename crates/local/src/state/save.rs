//! Saving the state at the end of a run (or a redrive): the landed log
//! merged into `sent.fp`, what did not land into `retry.fp`, then
//! `watermark.json`.
//!
//! The merge is a stream over sorted fingerprint files and is the only step
//! that writes the state; it lives apart from the policy, which only reads
//! it, so what a run decides and what it records can each be read whole.

use std::path::Path;
use std::sync::Arc;

use super::landed::{Landed, LandedInner};
use super::summary::STATE_FORMAT;
use super::{LakeState, StateError, StateSummary};
use crate::fpset::{difference_sorted, merge_sorted, stream_parts, write_file};
use crate::sink::write_atomic;

/// What saving the state recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveReport {
    /// Versions the lake holds (all runs).
    pub versions: u64,
    /// Versions this run sent that did not land; the next run retries them.
    pub pending_retry: u64,
}

impl LakeState {
    /// Persist: `sent.fp` gains the versions that landed, `retry.fp` holds
    /// those sent but not landed, then `watermark.json`. Call only after
    /// every consumer has finished and the lake's files are synced.
    pub fn save(self) -> Result<SaveReport, StateError> {
        let sp = self.dir.join("sent.fp");
        let rp = self.dir.join("retry.fp");
        let on = |p: &Path| {
            let p = p.to_owned();
            move |e| StateError::io(&p, e)
        };
        let landed = take_landed(self.failed, self.landed, &sp)?;
        let (landed_table, landed_spill) = landed.set.into_parts();
        let all_sent = merge_sorted(
            self.sent.stream().map_err(on(&sp))?,
            stream_parts(&landed_table, &landed_spill).map_err(on(&sp))?,
        );
        let versions = write_file(&sp, all_sent).map_err(on(&sp))?;
        let (pending_table, pending_spill) = self.pending.into_parts();
        let not_landed = difference_sorted(
            stream_parts(&pending_table, &pending_spill).map_err(on(&rp))?,
            stream_parts(&landed_table, &landed_spill).map_err(on(&rp))?,
        );
        let pending_retry = write_file(&rp, not_landed).map_err(on(&rp))?;
        let summary = StateSummary {
            format: STATE_FORMAT,
            newest_updated_at: self.previous.newest_updated_at.max(landed.newest),
            last_run_started_at: Some(self.started_at),
            versions,
            pending_retry,
        };
        let wp = self.dir.join("watermark.json");
        let json = serde_json::to_vec_pretty(&summary).expect("summary serialises");
        write_atomic(&wp, &json, 0).map_err(|e| StateError::io(&wp, e))?;
        Ok(SaveReport {
            versions,
            pending_retry,
        })
    }

    /// Persist after a redrive: `sent.fp` gains the versions that landed,
    /// `retry.fp` loses them (what failed again stays to be retried by the
    /// next run), `watermark.json` keeps the last run's start and newest
    /// `updated_at` and gets the new counts. Call only after the redrive's
    /// files are synced.
    pub fn save_redrive(self) -> Result<SaveReport, StateError> {
        let sp = self.dir.join("sent.fp");
        let rp = self.dir.join("retry.fp");
        let on = |p: &Path| {
            let p = p.to_owned();
            move |e| StateError::io(&p, e)
        };
        let landed = take_landed(self.failed, self.landed, &sp)?;
        let (landed_table, landed_spill) = landed.set.into_parts();
        std::fs::create_dir_all(&self.dir).map_err(on(&sp))?;
        let all_sent = merge_sorted(
            self.sent.stream().map_err(on(&sp))?,
            stream_parts(&landed_table, &landed_spill).map_err(on(&sp))?,
        );
        let versions = write_file(&sp, all_sent).map_err(on(&sp))?;
        let still = difference_sorted(
            self.retry.stream().map_err(on(&rp))?,
            stream_parts(&landed_table, &landed_spill).map_err(on(&rp))?,
        );
        let pending_retry = write_file(&rp, still).map_err(on(&rp))?;
        let summary = StateSummary {
            format: STATE_FORMAT,
            newest_updated_at: self.previous.newest_updated_at.max(landed.newest),
            last_run_started_at: self.previous.last_run_started_at,
            versions,
            pending_retry,
        };
        let wp = self.dir.join("watermark.json");
        let json = serde_json::to_vec_pretty(&summary).expect("summary serialises");
        write_atomic(&wp, &json, 0).map_err(|e| StateError::io(&wp, e))?;
        Ok(SaveReport {
            versions,
            pending_retry,
        })
    }
}

/// The landed log, once every consumer has let go of it, or the first write
/// error this run met (`failed`, then the log's own).
fn take_landed(
    failed: Option<std::io::Error>,
    landed: Arc<Landed>,
    sp: &Path,
) -> Result<LandedInner, StateError> {
    if let Some(e) = failed {
        return Err(StateError::io(sp, e));
    }
    let landed = Arc::try_unwrap(landed)
        .map(|l| l.inner.into_inner().unwrap_or_else(|p| p.into_inner()))
        .map_err(|_| {
            StateError::io(
                sp,
                std::io::Error::other("a consumer still holds the landed log"),
            )
        })?;
    match landed.failed {
        Some(e) => Err(StateError::io(sp, e)),
        None => Ok(landed),
    }
}
