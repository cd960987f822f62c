//! The `etl` binary as a user runs it: exit codes, messages, output formats.

use std::path::Path;
use std::process::{Command, Output};

fn etl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .output()
        .expect("etl runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn gen(dir: &Path, n: u32) -> String {
    let input = dir.join("posts.jsonl");
    let out = etl(&[
        "gen",
        "--count",
        &n.to_string(),
        "--days",
        "5",
        "--seed",
        "3",
        "-o",
        input.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    input.to_str().unwrap().to_owned()
}

#[test]
fn run_prints_summary_and_daily_table_then_query_reads_the_lake() {
    let dir = tempfile::tempdir().unwrap();
    let input = gen(dir.path(), 500);
    let lake = dir.path().join("lake");
    let out = etl(&[
        "run",
        "--input",
        &input,
        "--lake",
        lake.to_str().unwrap(),
        "--workers",
        "2",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("records scored"), "{stdout}");
    assert!(
        stdout.contains("daily_sentiment") && stdout.contains("| dt "),
        "{stdout}"
    );

    let out = etl(&[
        "query",
        "--lake",
        lake.to_str().unwrap(),
        "--format",
        "csv",
        "SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids FROM sentiment",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "n,ids\n500,500\n");

    let out = etl(&[
        "query",
        "--lake",
        lake.to_str().unwrap(),
        "--format",
        "json",
        "SELECT SUM(records) AS n FROM daily_sentiment",
    ]);
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["n"], 500);

    let out = etl(&[
        "run",
        "--input",
        &input,
        "--lake",
        lake.to_str().unwrap(),
        "--json",
    ]);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary["produce"]["sent_records"], 0,
        "second run sends nothing"
    );
    assert_eq!(summary["produce"]["unchanged"], 500);
}

#[test]
fn unreadable_input_and_unwritable_lake_exit_1_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let out = etl(&[
        "run",
        "--input",
        "/nonexistent/in.jsonl",
        "--lake",
        lake.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot read input") && err.contains("/nonexistent/in.jsonl"),
        "{err}"
    );

    let input = gen(dir.path(), 50);
    let blocker = dir.path().join("file-not-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let out = etl(&[
        "run",
        "--input",
        &input,
        "--lake",
        blocker.join("lake").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot write lake"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_sql_bad_flags_and_missing_lake_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = etl(&["query", "--lake", dir.path().to_str().unwrap(), "SELECT 1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no catalog found"),
        "{}",
        text(&out.stderr)
    );

    let input = gen(dir.path(), 20);
    let lake = dir.path().join("lake");
    assert!(etl(&[
        "run",
        "--input",
        &input,
        "--lake",
        lake.to_str().unwrap(),
        "--no-table"
    ])
    .status
    .success());
    let out = etl(&["query", "--lake", lake.to_str().unwrap(), "SELEC nonsense"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("error:"));

    let out = etl(&[
        "run",
        "--input",
        &input,
        "--lake",
        lake.to_str().unwrap(),
        "--compression",
        "lz77",
    ]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    let out = etl(&[
        "run",
        "--input",
        &input,
        "--lake",
        lake.to_str().unwrap(),
        "--engine",
        "comprehend",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("needs AWS"));
}

#[test]
fn rejected_lines_are_printed_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"id\":\"a\",\"text\":\"good\",\"created_at\":1}\n{oops\n{\"id\":\"b\",\"text\":\"x\"}\n",
    )
    .unwrap();
    let out = etl(&[
        "run",
        "--input",
        input.to_str().unwrap(),
        "--lake",
        dir.path().join("lake").to_str().unwrap(),
        "--no-table",
    ]);
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("rejected line 2: not valid JSON"), "{err}");
    assert!(
        err.contains("rejected line 3 (id b): field `created_at`: missing"),
        "{err}"
    );
}
