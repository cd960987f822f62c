//! `etl status` on a local lake: what the last runs did and what is waiting.
//!
//! Read-only, and cheap on any lake: it reads `watermark.json` (not the
//! fingerprint files), the run log, the directory listing of the table,
//! and counts the lines of the rejects and dead-letter files. It takes the
//! lake's lock only for an instant, to tell whether a run holds it, and
//! never waits for it.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use etl_core::output::TABLE_NAME;
use serde::Serialize;

use crate::history::{self, RunRecord};
use crate::lock::LakeLock;
use crate::queue::DeadLetter;
use crate::run::LakePaths;
use crate::state::{read_summary, StateSummary};

/// Runs shown by default.
pub const RECENT_RUNS: usize = 10;
/// Examples of rejects and dead letters shown.
const EXAMPLES: usize = 5;

/// One Hive partition of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// `YYYY-MM-DD`.
    pub dt: String,
    /// Parquet files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// One rejected input line, as the rejects file keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct RejectExample {
    /// Where in the input (`line N`).
    pub location: String,
    /// The record id, when it could be read.
    pub id: Option<String>,
    /// The offending field.
    pub field: Option<String>,
    /// Why.
    pub reason: String,
}

/// One dead letter, summarised.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterExample {
    /// Its content id.
    pub content_id: Option<String>,
    /// Records inside.
    pub records: usize,
    /// The last reason.
    pub reason: String,
    /// When it was dead-lettered.
    pub dead_lettered_at: String,
}

/// A file of lines, counted, with the newest few.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally<T> {
    /// The file.
    pub file: Option<PathBuf>,
    /// Lines (entries).
    pub entries: u64,
    /// Records inside them (dead letters; rejects are one record each).
    pub records: u64,
    /// The newest entries (up to five).
    pub newest: Vec<T>,
    /// Lines that could not be read.
    pub unreadable: u64,
}

/// Whether a run holds the lake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LockState {
    /// No run holds it.
    Free,
    /// A run holds it.
    Held {
        /// Who, as its lock file says.
        holder: String,
    },
}

/// Everything `etl status` shows for a local lake.
#[derive(Debug, Clone, Serialize)]
pub struct LakeStatus {
    /// The lake.
    pub lake: PathBuf,
    /// `watermark.json`: the last completed run's state (`None`: no run yet).
    pub state: Option<StateSummary>,
    /// Why the state cannot be read, when it cannot.
    pub state_error: Option<String>,
    /// Whether a run holds the lake now.
    pub lock: LockState,
    /// In-progress files of an interrupted `etl redrive` (finish it with
    /// `etl redrive`): the local counterpart of an unfinished checkpoint.
    pub unfinished_redrive: Vec<PathBuf>,
    /// Messages an interrupted `etl run` staged (`_state/outbox.jsonl`): the
    /// next run re-sends them verbatim before anything else.
    pub staged_messages: usize,
    /// The last runs, oldest first.
    pub runs: Vec<RunRecord>,
    /// Partitions of the table, by `dt`.
    pub partitions: Vec<Partition>,
    /// Rejected input lines.
    pub rejects: Tally<RejectExample>,
    /// Dead-lettered messages.
    pub dead_letters: Tally<DeadLetterExample>,
}

impl LakeStatus {
    /// Parquet files in the table.
    pub fn files(&self) -> u64 {
        self.partitions.iter().map(|p| p.files).sum()
    }

    /// Bytes of the table.
    pub fn bytes(&self) -> u64 {
        self.partitions.iter().map(|p| p.bytes).sum()
    }

    /// Whether something needs an operator: dead letters waiting, an
    /// unfinished redrive, or a state that cannot be read.
    pub fn needs_attention(&self) -> bool {
        self.dead_letters.entries > 0
            || !self.unfinished_redrive.is_empty()
            || self.state_error.is_some()
    }
}

/// Read the status of the lake at `lake`. Fails only when `lake` is not a
/// directory; anything damaged inside is reported in the status.
pub fn status(lake: &Path, runs: usize) -> std::io::Result<LakeStatus> {
    if !lake.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{}: no such lake directory", lake.display()),
        ));
    }
    let (state, state_error) = match read_summary(lake) {
        Ok(s) => (s, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let lock = match LakeLock::holder(lake) {
        Ok(None) => LockState::Free,
        Ok(Some(holder)) => LockState::Held { holder },
        Err(e) => LockState::Held {
            holder: format!("unknown ({e})"),
        },
    };
    let (runs, _) = history::last(lake, runs)?;
    Ok(LakeStatus {
        lake: lake.to_owned(),
        state,
        state_error,
        lock,
        unfinished_redrive: crate::redrive::in_progress(lake),
        staged_messages: crate::outbox::FileOutbox::load(lake).map_or(0, |m| m.len()),
        runs,
        partitions: partitions(lake)?,
        rejects: tally(&LakePaths::rejects(lake), |v: serde_json::Value| {
            Some((
                1,
                RejectExample {
                    location: v.get("location")?.as_str()?.to_owned(),
                    id: v.get("id").and_then(|x| x.as_str()).map(str::to_owned),
                    field: v.get("field").and_then(|x| x.as_str()).map(str::to_owned),
                    reason: v.get("reason")?.as_str()?.to_owned(),
                },
            ))
        })?,
        dead_letters: tally(&LakePaths::dead_letters(lake), |v: serde_json::Value| {
            let d: DeadLetter = serde_json::from_value(v).ok()?;
            Some((
                d.record_ids.len() as u64,
                DeadLetterExample {
                    content_id: d.content_id,
                    records: d.record_ids.len(),
                    reason: d.reason,
                    dead_lettered_at: d.dead_lettered_at,
                },
            ))
        })?,
    })
}

/// The table's partitions: `sentiment/dt=*/` with their Parquet files; for
/// a Delta lake, the files of its latest version (not those a compaction
/// replaced and a vacuum has not deleted yet). Call it outside an async
/// runtime (it starts one for a Delta lake).
pub fn partitions(lake: &Path) -> std::io::Result<Vec<Partition>> {
    let root = lake.join(TABLE_NAME);
    if root.join("_delta_log").is_dir() {
        return delta_partitions(&root);
    }
    let mut out: BTreeMap<String, Partition> = BTreeMap::new();
    let dirs = match std::fs::read_dir(&root) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    for d in dirs {
        let d = d?;
        let name = d.file_name().to_string_lossy().into_owned();
        let Some(dt) = name.strip_prefix("dt=") else {
            continue;
        };
        let p = out.entry(dt.to_owned()).or_insert_with(|| Partition {
            dt: dt.to_owned(),
            files: 0,
            bytes: 0,
        });
        for f in std::fs::read_dir(d.path())? {
            let f = f?;
            if f.path().extension().is_some_and(|e| e == "parquet") {
                p.files += 1;
                p.bytes += f.metadata()?.len();
            }
        }
    }
    Ok(out.into_values().collect())
}

fn delta_partitions(root: &Path) -> std::io::Result<Vec<Partition>> {
    let other = |e: String| std::io::Error::other(e);
    let table = etl_delta::DeltaLake::existing_dir(root).map_err(|e| other(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let files = rt
        .block_on(etl_delta::maintain::files(&table))
        .map_err(|e| other(e.to_string()))?;
    Ok(files
        .partitions
        .into_iter()
        .map(|(dt, (files, bytes))| Partition {
            dt,
            files: files as u64,
            bytes,
        })
        .collect())
}

fn tally<T>(
    path: &Path,
    parse: impl Fn(serde_json::Value) -> Option<(u64, T)>,
) -> std::io::Result<Tally<T>> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Tally {
                file: None,
                entries: 0,
                records: 0,
                newest: Vec::new(),
                unreadable: 0,
            })
        }
        Err(e) => return Err(e),
    };
    let mut t = Tally {
        file: Some(path.to_owned()),
        entries: 0,
        records: 0,
        newest: Vec::new(),
        unreadable: 0,
    };
    let mut newest = std::collections::VecDeque::with_capacity(EXAMPLES + 1);
    for line in std::io::BufReader::new(f).split(b'\n') {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        t.entries += 1;
        match serde_json::from_slice(&line).ok().and_then(&parse) {
            Some((records, example)) => {
                t.records += records;
                newest.push_back(example);
                if newest.len() > EXAMPLES {
                    newest.pop_front();
                }
            }
            None => t.unreadable += 1,
        }
    }
    t.newest = newest.into();
    Ok(t)
}
