//! A Delta table read back without delta-rs: the `_delta_log` JSON commits
//! replayed by hand (`add` puts a file in, `remove` takes it out), then the
//! live files read with the plain Parquet reader. This is what tests check
//! the `etl-delta` writer against, so it shares none of its code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::lake::{read_files, Row};

/// The live files of each version: `versions[v]` maps a file's path
/// (relative to the table) to its `dt` partition value.
pub fn live_files_per_version(table: &Path) -> Vec<BTreeMap<String, String>> {
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
    let mut live = BTreeMap::new();
    let mut out = Vec::new();
    for (_, p) in commits {
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            if line.trim().is_empty() {
                continue;
            }
            let action: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: {e}: {line}", p.display()));
            if let Some(add) = action.get("add") {
                let path = decode(add["path"].as_str().expect("add.path"));
                let dt = add["partitionValues"]["dt"]
                    .as_str()
                    .expect("add.partitionValues.dt")
                    .to_owned();
                live.insert(path, dt);
            } else if let Some(rm) = action.get("remove") {
                let path = decode(rm["path"].as_str().expect("remove.path"));
                assert!(live.remove(&path).is_some(), "{}: removes {path}, which is not live", p.display());
            }
        }
        out.push(live.clone());
    }
    out
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
