//! A Delta table read back without delta-rs: the `_delta_log` JSON commits
//! replayed by hand (`add` puts a file in, `remove` takes it out), then the
//! live files read with the plain Parquet reader. This is what tests check
//! the `etl-delta` writer against, so it shares none of its code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use etl_core::SourceRecord;

use crate::accounting::{assert_ok, exactly_once, Version};
use crate::lake::{read_files, Row};

/// The commit files of the log, in version order (asserting no gap).
fn commits(table: &Path) -> Vec<PathBuf> {
    let log = table.join("_delta_log");
    let mut commits: Vec<(u64, PathBuf)> = std::fs::read_dir(&log)
        .unwrap_or_else(|e| panic!("{}: {e}", log.display()))
        .filter_map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name()?.to_str()?.to_owned();
            let v = name.strip_suffix(".json")?.parse::<u64>().ok()?;
            Some((v, p))
        })
        .collect();
    commits.sort();
    for (i, (v, _)) in commits.iter().enumerate() {
        assert_eq!(*v, i as u64, "the log has a gap before version {v}");
    }
    commits.into_iter().map(|(_, p)| p).collect()
}

/// The actions of one commit file.
fn actions(commit: &Path) -> Vec<Value> {
    std::fs::read_to_string(commit)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: {e}: {line}", commit.display()))
        })
        .collect()
}

/// The live files of each version: `versions[v]` maps a file's path
/// (relative to the table) to its `dt` partition value.
pub fn live_files_per_version(table: &Path) -> Vec<BTreeMap<String, String>> {
    let mut live = BTreeMap::new();
    let mut out = Vec::new();
    for p in commits(table) {
        for action in actions(&p) {
            if let Some(add) = action.get("add") {
                let path = decode(add["path"].as_str().expect("add.path"));
                let dt = add["partitionValues"]["dt"]
                    .as_str()
                    .expect("add.partitionValues.dt")
                    .to_owned();
                live.insert(path, dt);
            } else if let Some(rm) = action.get("remove") {
                let path = decode(rm["path"].as_str().expect("remove.path"));
                assert!(
                    live.remove(&path).is_some(),
                    "{}: removes {path}, which is not live",
                    p.display()
                );
            }
        }
        out.push(live.clone());
    }
    out
}

/// Every file a live `add` references, at every version, exists with
/// exactly the size the `add` logged: readers trust the logged size (and the
/// statistics with it), so an object rewritten after its commit is caught
/// here. Returns the live files of the latest version with their sizes.
pub fn assert_live_sizes_match(table: &Path) -> BTreeMap<String, u64> {
    let mut live: BTreeMap<String, u64> = BTreeMap::new();
    for p in commits(table) {
        for action in actions(&p) {
            if let Some(add) = action.get("add") {
                let path = decode(add["path"].as_str().expect("add.path"));
                let size = add["size"].as_u64().expect("add.size");
                live.insert(path, size);
            } else if let Some(rm) = action.get("remove") {
                live.remove(&decode(rm["path"].as_str().expect("remove.path")));
            }
        }
        for (path, size) in &live {
            let on_disk = std::fs::metadata(table.join(path))
                .unwrap_or_else(|e| panic!("{}: live file {path}: {e}", p.display()))
                .len();
            assert_eq!(
                on_disk,
                *size,
                "{}: live file {path} is {on_disk} bytes, its add says {size}",
                p.display()
            );
        }
    }
    live
}

/// The application transaction ids (`txn.appId`) each version carries.
pub fn transactions_per_version(table: &Path) -> Vec<Vec<String>> {
    commits(table)
        .iter()
        .map(|p| {
            actions(p)
                .iter()
                .filter_map(|a| a["txn"]["appId"].as_str().map(str::to_owned))
                .collect()
        })
        .collect()
}

/// Every row of the table at `version` (the latest when `None`).
pub fn read_delta(table: &Path, version: Option<usize>) -> Vec<Row> {
    let versions = live_files_per_version(table);
    let at = version.unwrap_or(versions.len() - 1);
    let files: Vec<(PathBuf, String)> = versions[at]
        .iter()
        .map(|(path, dt)| (table.join(path), dt.clone()))
        .collect();
    read_files(&files)
}

/// `%XX` escapes of a log path decoded (the protocol percent-encodes paths).
fn decode(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(x) = u8::from_str_radix(&path[i + 1..i + 3], 16) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).expect("a UTF-8 path")
}

/// The Python `deltalake` package (delta-rs's Python binding, from PyPI)
/// reads every version: no row twice at any version, and the latest holds
/// exactly the source's versions. pyarrow also opens every data file under
/// the table (live or not, compacted ones included): none may carry a page
/// index (column or offset index), which Java readers have misread.
pub fn python_reader_agrees(table: &Path, recs: &[SourceRecord]) {
    let python = python();
    let script = r#"
import json, os, sys
from deltalake import DeltaTable
path = sys.argv[1]
latest = DeltaTable(path)
out = {"versions": [], "rows": []}
for v in range(latest.version() + 1):
    t = DeltaTable(path, version=v).to_pyarrow_table(columns=["id", "updated_at", "dt"])
    keys = list(zip(t["id"].to_pylist(), t["updated_at"].cast("int64").to_pylist(), t["dt"].to_pylist()))
    out["versions"].append({"version": v, "rows": len(keys), "distinct": len(set(keys))})
import pathlib
import pyarrow.parquet as pq
out["data_files"], out["page_indexes"] = 0, []
for f in sorted(pathlib.Path(path).rglob("*.parquet")):
    if "_delta_log" in f.parts:
        continue
    out["data_files"] += 1
    m = pq.ParquetFile(f).metadata
    for g in range(m.num_row_groups):
        for c in range(m.num_columns):
            col = m.row_group(g).column(c)
            if col.has_column_index or col.has_offset_index:
                out["page_indexes"].append(f"{f.name} row group {g} column {col.path_in_schema}")
t = latest.to_pyarrow_table(columns=["id", "updated_at", "text", "dt"])
out["rows"] = list(zip(t["id"].to_pylist(), t["updated_at"].cast("int64").to_pylist(), t["text"].to_pylist(), t["dt"].to_pylist()))
print(json.dumps(out))
sys.stdout.flush()
# deltalake's runtime threads can abort the interpreter's own exit
# ("terminate called without an active exception"): leave at once.
os._exit(0)
"#;
    let o = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(table)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["data_files"].as_u64().unwrap() > 0,
        "no data file under {}",
        table.display()
    );
    assert_eq!(
        v["page_indexes"],
        serde_json::json!([]),
        "data files with a page index"
    );
    let versions = v["versions"].as_array().unwrap();
    assert_eq!(versions.len(), live_files_per_version(table).len());
    for ver in versions {
        assert_eq!(
            ver["rows"], ver["distinct"],
            "python reads a row twice at {ver}"
        );
    }
    let rows: Vec<Version> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            Version::row(
                r[0].as_str().unwrap(),
                r[1].as_i64().unwrap(),
                r[2].as_str(),
                r[3].as_str().unwrap(),
            )
        })
        .collect();
    assert_ok(&exactly_once(recs, &rows));
}

/// The Python of the tool environment (`make venv`: pyarrow, deltalake,
/// vaderSentiment), beside `$MOTO_SERVER`: the independent readers.
pub fn python() -> PathBuf {
    let moto = std::env::var_os("MOTO_SERVER")
        .expect("MOTO_SERVER names the tool venv's moto_server (make test sets it)");
    let p = Path::new(&moto).with_file_name("python");
    assert!(p.exists(), "{} missing: run `make venv`", p.display());
    p
}
