//! `etl run --table-format delta`, `etl compact` and `etl vacuum` as a user
//! runs them: two runs (the second with updates) while a compaction runs
//! in another process, a compaction once nobody writes, a vacuum; every
//! version of the table read by a log replay and by Python `deltalake`.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};

use etl_core::SourceRecord;
use etl_testkit::accounting::{assert_ok, exactly_once, FromLake, Version};
use etl_testkit::delta_log::{live_files_per_version, python_reader_agrees, read_delta};
use etl_testkit::fixtures::{hostile_records, FixtureRecord};
use etl_testkit::lake::parquet_files;

mod common;
use common::{etl, text};

fn write_input(path: &Path, recs: &[FixtureRecord]) {
    let lines: String = recs.iter().map(|r| r.to_json_line()).collect();
    std::fs::write(path, lines).unwrap();
}

/// The partitions the records fall in (days of `created_at`): four or
/// five, as the fixture's spread crosses midnight or not.
fn days(recs: &[SourceRecord]) -> usize {
    let days: std::collections::BTreeSet<_> =
        recs.iter().map(|r| r.created_at.date_naive()).collect();
    days.len()
}

fn assert_every_version_once(table: &Path) {
    for v in 0..live_files_per_version(table).len() {
        let rows = Version::of_local(&read_delta(table, Some(v)));
        let distinct: std::collections::BTreeSet<_> = rows.iter().collect();
        assert_eq!(
            distinct.len(),
            rows.len(),
            "table version {v} holds a row twice"
        );
    }
}

#[test]
fn runs_and_a_concurrent_compaction_then_vacuum_keep_every_version_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    let table = lake.join("sentiment");
    let first = hostile_records(300);
    let in1 = dir.path().join("night1.jsonl");
    write_input(&in1, &first);
    let run = |input: &Path| {
        vec![
            "run".to_owned(),
            "--input".into(),
            input.to_str().unwrap().into(),
            "--lake".into(),
            l.into(),
            "--table-format".into(),
            "delta".into(),
            "--message-bytes".into(),
            "4096".into(),
            "--workers".into(),
            "2".into(),
            "--no-table".into(),
            "--json".into(),
        ]
    };
    let out = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(run(&in1))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Night two: a third of the records edited, and new ones.
    let mut second: Vec<FixtureRecord> = first
        .iter()
        .step_by(3)
        .map(|r| FixtureRecord {
            text: format!("{} (edited)", r.text),
            updated_at: r.updated_at + chrono::Duration::seconds(90),
            ..r.clone()
        })
        .collect();
    second.extend(hostile_records(400).into_iter().skip(300).map(|mut r| {
        r.id = format!("night2-{}", r.id);
        r
    }));
    let in2 = dir.path().join("night2.jsonl");
    write_input(&in2, &second);
    let writer = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(run(&in2))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let compact = etl(&["compact", "--lake", l]);
    let written = writer.wait_with_output().unwrap();
    assert!(written.status.success(), "{}", text(&written.stderr));
    // The compaction either found the first night's files or waited its
    // turn behind nobody: it must not fail because a run commits.
    assert!(compact.status.success(), "{}", text(&compact.stderr));
    assert!(
        text(&compact.stdout).contains("before:"),
        "{}",
        text(&compact.stdout)
    );

    let mut expect: Vec<SourceRecord> = first.iter().map(|r| r.to_record()).collect();
    expect.extend(second.iter().map(|r| r.to_record()));
    assert_every_version_once(&table);
    assert_ok(&exactly_once(
        &expect,
        &Version::of_local(&read_delta(&table, None)),
    ));

    // Once nobody writes: one file per partition.
    let again = etl(&["compact", "--lake", l, "--json"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    let parts = report["after"]["partitions"].as_object().unwrap();
    assert_eq!(parts.len(), days(&expect), "{report}");
    for (dt, v) in parts {
        assert_eq!(v[0], 1, "partition {dt}: {v}");
    }
    assert_every_version_once(&table);

    // `etl reconcile` reads the table (live files only, not the replaced
    // ones still on disk): every version of both nights exactly once.
    let both = dir.path().join("both.jsonl");
    let mut all = first.clone();
    all.extend(second.iter().cloned());
    write_input(&both, &all);
    let rec = etl(&[
        "reconcile",
        "--lake",
        l,
        "--input",
        both.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        rec.status.code(),
        Some(0),
        "{}{}",
        text(&rec.stdout),
        text(&rec.stderr)
    );
    assert!(
        parquet_files(&lake).len() > days(&expect),
        "replaced files are still on disk before the vacuum"
    );

    // An independent reader, at every version (before the vacuum takes
    // the files old versions refer to).
    python_reader_agrees(&table, &expect);

    // The replaced files go with a vacuum; the table reads the same.
    let files_before = parquet_files(&lake).len();
    let vac = etl(&["vacuum", "--lake", l, "--retention-hours", "0", "--json"]);
    assert!(vac.status.success(), "{}", text(&vac.stderr));
    let v: serde_json::Value = serde_json::from_slice(&vac.stdout).unwrap();
    let deleted = v["files_deleted"].as_array().unwrap().len();
    assert!(deleted > 0, "{v}");
    assert_eq!(parquet_files(&lake).len(), files_before - deleted);
    assert_eq!(
        parquet_files(&lake).len(),
        days(&expect),
        "only the live files are left: one per partition"
    );
    assert_ok(&exactly_once(
        &expect,
        &Version::of_local(&read_delta(&table, None)),
    ));

    // `etl query` reads the table through delta-rs: the views count ids once.
    let q = etl(&[
        "query",
        "--lake",
        l,
        "--format",
        "csv",
        "SELECT sum(records) AS n FROM daily_sentiment",
    ]);
    assert!(q.status.success(), "{}", text(&q.stderr));
    assert_eq!(
        text(&q.stdout).lines().nth(1),
        Some("400"),
        "{}",
        text(&q.stdout)
    );
}

#[test]
fn compacting_a_hive_lake_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    write_input(&input, &hostile_records(20));
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    let out = etl(&[
        "run",
        "--input",
        input.to_str().unwrap(),
        "--lake",
        l,
        "--no-table",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let c = etl(&["compact", "--lake", l]);
    assert_eq!(c.status.code(), Some(1));
    let err = text(&c.stderr);
    assert!(
        err.contains("cannot be compacted safely") && err.contains("--table-format delta"),
        "{err}"
    );
    // And a Hive lake stays Hive: asking for Delta on it is refused.
    let d = etl(&[
        "run",
        "--input",
        input.to_str().unwrap(),
        "--lake",
        l,
        "--table-format",
        "delta",
    ]);
    assert_eq!(d.status.code(), Some(1));
    assert!(
        text(&d.stderr).contains("the lake is a hive table"),
        "{}",
        text(&d.stderr)
    );
}
