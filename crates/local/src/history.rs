//! The lake's run log, `_state/runs.jsonl`: one line per completed `etl run`
//! or `etl redrive`, appended after its state is saved, so `etl status` can
//! say what happened last night. Informational only: nothing decides on it,
//! and a line that cannot be read is skipped (and counted), never fatal.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::state::state_dir;

/// One completed run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// `incremental`, `full`, `since` or `redrive`.
    pub mode: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it completed.
    pub completed_at: DateTime<Utc>,
    /// Input records read (dead letters read, for a redrive).
    pub read: u64,
    /// Input lines rejected.
    pub rejected: u64,
    /// Records sent to the queue.
    pub sent: u64,
    /// Records scored into the lake.
    pub scored: u64,
    /// Records dead-lettered (failed).
    pub failed: u64,
    /// Parquet files written.
    pub files: u64,
    /// Parquet bytes written.
    pub bytes: u64,
}

/// `<lake>/_state/runs.jsonl`.
pub fn runs_path(lake: &Path) -> PathBuf {
    state_dir(lake).join("runs.jsonl")
}

/// Append one run to the log (creating it).
pub fn append(lake: &Path, run: &RunRecord) -> std::io::Result<()> {
    let path = runs_path(lake);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let mut line = Vec::new();
    // A line torn by a crash must not swallow this record.
    if f.metadata()?.len() > 0 {
        let mut last = [0u8];
        let mut r = std::fs::File::open(&path)?;
        r.seek(std::io::SeekFrom::End(-1))?;
        r.read_exact(&mut last)?;
        if last[0] != b'\n' {
            line.push(b'\n');
        }
    }
    line.extend(serde_json::to_vec(run).expect("run record serialises"));
    line.push(b'\n');
    f.write_all(&line)
}

/// The last `n` runs, oldest first, and how many lines could not be read.
pub fn last(lake: &Path, n: usize) -> std::io::Result<(Vec<RunRecord>, usize)> {
    // Lossy: damaged bytes spoil their line, not the log.
    let text = match std::fs::read(runs_path(lake)) {
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut runs = Vec::new();
    let mut unreadable = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<RunRecord>(line) {
            Ok(r) => runs.push(r),
            Err(_) => unreadable += 1,
        }
    }
    let skip = runs.len().saturating_sub(n);
    Ok((runs.split_off(skip), unreadable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_and_reads_the_newest_skipping_damaged_lines() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(last(dir.path(), 5).unwrap(), (vec![], 0));
        // Bytes as a crash or a disk error leaves them.
        let raw = |bytes: &[u8]| {
            std::fs::OpenOptions::new()
                .append(true)
                .open(runs_path(dir.path()))
                .unwrap()
                .write_all(bytes)
                .unwrap()
        };
        let t = Utc::now();
        for i in 0..4 {
            append(
                dir.path(),
                &RunRecord {
                    mode: "incremental".into(),
                    started_at: t,
                    completed_at: t,
                    read: i,
                    ..Default::default()
                },
            )
            .unwrap();
        }
        raw(b"{\"torn\n");
        let (runs, bad) = last(dir.path(), 2).unwrap();
        assert_eq!(runs.iter().map(|r| r.read).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(bad, 1);
        // A torn last line with invalid UTF-8 and no newline: the next
        // record is still a line of its own.
        append(
            dir.path(),
            &RunRecord {
                read: 9,
                ..Default::default()
            },
        )
        .unwrap();
        raw(b"{\"torn \xff\xfe");
        append(
            dir.path(),
            &RunRecord {
                read: 10,
                ..Default::default()
            },
        )
        .unwrap();
        let (runs, bad) = last(dir.path(), 3).unwrap();
        assert_eq!(runs.iter().map(|r| r.read).collect::<Vec<_>>(), [3, 9, 10]);
        assert_eq!(bad, 2);
    }
}
