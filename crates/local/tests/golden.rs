//! The lake `etl run` writes, byte for byte. `golden/input.jsonl` (1,200
//! records over six days: ids with `/`, `..`, spaces and 200 characters,
//! text in several scripts, astral emoji, bidi controls, a tab, some records
//! updated after they were created) was run through the `etl` built from
//! commit c918fd2, before the crates were reorganised, with the wall clock
//! frozen at 2026-12-02T12:00:00Z (libfaketime), 16 KiB messages and two
//! workers. `golden/<codec>.sha256` are the SHA-256 digests of the Parquet
//! files it wrote (`sha256sum` output). The run here pins its clock to the
//! same instant, so `processed_at`, the one column that depends on the time,
//! is the same too.
//!
//! The object key is the message's content id, the SHA-256 of its records'
//! exact encoding: equal names mean the same records were packed into the
//! same messages; equal digests mean the same Parquet bytes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use etl_core::{Codec, FixedClock};
use etl_local::{run, RunConfig, RunCounters};
use sha2::{Digest, Sha256};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// `sha256sum`-style lines for every Parquet file under `lake`, sorted by path.
fn digests(lake: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut dirs = vec![lake.join("sentiment")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("a lake directory") {
            let p = e.expect("a directory entry").path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                files.push(p);
            }
        }
    }
    let mut lines: Vec<String> = files
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).expect("a Parquet file");
            let rel = p.strip_prefix(lake).expect("under the lake");
            format!("{}  {}", hex::encode(Sha256::digest(&bytes)), rel.display())
        })
        .collect();
    lines.sort_by(|a, b| a[66..].cmp(&b[66..]));
    lines
}

async fn run_pinned(codec: Codec) -> Vec<String> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let lake = dir.path().join("lake");
    let mut cfg = RunConfig::new(golden("input.jsonl"), &lake);
    cfg.workers = 2;
    cfg.message_budget = 16 * 1024;
    cfg.codec = codec;
    let frozen = Utc
        .with_ymd_and_hms(2026, 12, 2, 12, 0, 0)
        .single()
        .expect("a valid instant");
    cfg.clock = Box::leak(Box::new(FixedClock(frozen)));
    let summary = run(cfg, Arc::new(RunCounters::default()), Box::new(|_| {}))
        .await
        .expect("the run completes");
    assert_eq!(summary.scored, 1_200);
    assert_eq!(summary.produce.rejected, 0);
    digests(&lake)
}

fn expected(codec: &str) -> Vec<String> {
    let text = std::fs::read_to_string(golden(&format!("{codec}.sha256"))).expect("golden digests");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort_by(|a, b| a[66..].cmp(&b[66..]));
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snappy_lake_is_byte_for_byte_the_one_written_before_the_reorganisation() {
    let got = run_pinned(Codec::Snappy).await;
    assert_eq!(got.len(), 18, "18 messages of 16 KiB, one file each");
    assert_eq!(got, expected("snappy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_lake_is_byte_for_byte_the_one_written_before_the_reorganisation() {
    assert_eq!(run_pinned(Codec::Zstd).await, expected("zstd"));
}
