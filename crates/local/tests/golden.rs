//! The lake `etl run` writes, byte for byte. `golden/input.jsonl` (1,200
//! records over six days: ids with `/`, `..`, spaces and 200 characters,
//! text in several scripts, astral emoji, bidi controls, a tab, some records
//! updated after they were created) is run with the clock pinned at
//! 2026-12-02T12:00:00Z, 16 KiB messages and two workers.
//! `golden/<codec>.sha256` are the SHA-256 digests of the Parquet files
//! (`sha256sum` output).
//!
//! History: the digests were first taken from the `etl` of commit c918fd2,
//! before the crates were reorganised (issue 14), under libfaketime, and the
//! reorganised code matched them. Issue 15 changed what the message budget
//! measures (a body's size inside the consumer's event, where quotes and
//! backslashes count twice), so messages close earlier and the same records
//! pack into different messages: the digests were taken again then
//! (`GOLDEN_WRITE=1 cargo test --test golden` rewrites them; a change to them
//! is a change to every lake and must be deliberate).
//!
//! The object key is the message's content id, the SHA-256 of its records'
//! exact encoding: equal names mean the same records were packed into the
//! same messages; equal digests mean the same Parquet bytes.
//!
//! The digests only say the bytes did not change; what the bytes hold is
//! checked by a reader that shares no code with the writer:
//! `tools/check_lake.py` reads every file with pyarrow and scores every text
//! with the reference vaderSentiment 3.3.2 (each input version once, in its
//! partition, with vaderSentiment's exact scores and the contract's label).

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
    pinned_lake(codec, &lake).await;
    independent_check(&lake);
    digests(&lake)
}

/// `tools/check_lake.py` on the lake, with the tool venv's Python.
fn independent_check(lake: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/check_lake.py");
    let out = std::process::Command::new(etl_testkit::delta_log::python())
        .arg(&script)
        .arg(golden("input.jsonl"))
        .arg(lake)
        .args(["--processed-at", "2026-12-02T12:00:00Z"])
        .output()
        .expect("the checker runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "independent check failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("a JSON summary");
    assert_eq!(
        etl_testkit::lake::assert_java_reads_what_was_written(lake),
        1_200,
        "a Java reader (parquet-mr) reads every row"
    );
    assert_eq!(
        (summary["rows"].as_u64(), summary["input_versions"].as_u64()),
        (Some(1_200), Some(1_200)),
        "{summary}"
    );
}

async fn pinned_lake(codec: Codec, lake: &Path) {
    let mut cfg = RunConfig::new(golden("input.jsonl"), lake);
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
}

fn expected(codec: &str, got: &[String]) -> Vec<String> {
    let path = golden(&format!("{codec}.sha256"));
    if std::env::var_os("GOLDEN_WRITE").is_some() {
        std::fs::write(&path, got.join("\n") + "\n").expect("golden digests written");
    }
    let text = std::fs::read_to_string(&path).expect("golden digests");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort_by(|a, b| a[66..].cmp(&b[66..]));
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snappy_lake_is_byte_for_byte_the_golden_one() {
    let got = run_pinned(Codec::Snappy).await;
    assert_eq!(
        got.len(),
        18,
        "18 messages of 16 KiB (as the event carries them), one file each"
    );
    assert_eq!(got, expected("snappy", &got));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_lake_is_byte_for_byte_the_golden_one() {
    let got = run_pinned(Codec::Zstd).await;
    assert_eq!(got, expected("zstd", &got));
}
