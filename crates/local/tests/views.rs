//! The views count records, not rows: an id whose raw table holds several
//! versions (every update is a new row) is counted once in
//! `daily_sentiment`, as its newest version. Real runs into a real Parquet
//! lake, read back with DataFusion.
// Test helpers unwrap too: a failed setup is the test failing
// (`allow-unwrap-in-tests` only covers the `#[test]` functions themselves).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use etl_core::QueryEngine;
use etl_local::format::{render, OutputFormat};
use etl_local::{run, DataFusionQuery, RunConfig, RunCounters};

const DAY: &str = "2026-11-30";

fn line(id: &str, text: &str, updated_at: &str) -> String {
    format!(
        "{{\"id\":\"{id}\",\"text\":\"{text}\",\"created_at\":\"{DAY}T08:00:00Z\",\"updated_at\":\"{updated_at}\"}}\n"
    )
}

/// One incremental `etl run` of `lines` into `lake`; returns the records scored.
async fn run_once(dir: &Path, lake: &Path, lines: &[String], include_text: bool) -> u64 {
    let input = dir.join("input.jsonl");
    std::fs::write(&input, lines.concat()).unwrap();
    let mut cfg = RunConfig::new(&input, lake);
    cfg.workers = 1;
    cfg.include_text = include_text;
    let summary = run(cfg, Arc::new(RunCounters::default()), Box::new(|_| {}))
        .await
        .unwrap();
    assert_eq!(summary.dead_lettered_records, 0);
    summary.scored
}

async fn csv(lake: &Path, sql: &str) -> String {
    let q = DataFusionQuery::open(lake).await.unwrap();
    render(&q.query(sql).await.unwrap(), OutputFormat::Csv).unwrap()
}

/// Three runs: `a` is written, then updated twice (its label changes on the
/// last update); `b` is written once and never changes.
async fn lake_with_an_id_updated_twice(
    include_text: bool,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let b = line("b", "The meeting is at noon.", &format!("{DAY}T08:00:00Z"));
    let versions = [
        line(
            "a",
            "I love this, it is wonderful!",
            &format!("{DAY}T08:00:00Z"),
        ),
        line(
            "a",
            "I love this, it is great!",
            &format!("{DAY}T09:00:00Z"),
        ),
        line(
            "a",
            "This is terrible, I hate it.",
            &format!("{DAY}T10:00:00Z"),
        ),
    ];
    let mut scored = Vec::new();
    for v in &versions {
        scored.push(run_once(dir.path(), &lake, &[v.clone(), b.clone()], include_text).await);
    }
    assert_eq!(scored, [2, 1, 1], "each run sends only what changed");
    (dir, lake)
}

#[tokio::test]
async fn daily_sentiment_counts_an_id_updated_twice_once_as_its_newest_version() {
    let (_dir, lake) = lake_with_an_id_updated_twice(true).await;

    // The raw table holds every version: three rows for `a`.
    assert_eq!(
        csv(
            &lake,
            "SELECT id, count(*) AS n FROM sentiment GROUP BY id ORDER BY id"
        )
        .await,
        "id,n\na,3\nb,1\n"
    );
    // sentiment_latest: one row per id, the newest version.
    assert_eq!(
        csv(&lake, "SELECT id, text, sentiment FROM sentiment_latest ORDER BY id").await,
        "id,text,sentiment\na,\"This is terrible, I hate it.\",NEGATIVE\nb,The meeting is at noon.,NEUTRAL\n"
    );
    // daily_sentiment: two records that day, `a` once, under its newest label.
    assert_eq!(
        csv(
            &lake,
            "SELECT dt, sentiment, records FROM daily_sentiment ORDER BY dt, sentiment"
        )
        .await,
        format!("dt,sentiment,records\n{DAY},NEGATIVE,1\n{DAY},NEUTRAL,1\n")
    );
}

#[tokio::test]
async fn the_views_work_on_a_lake_written_without_text() {
    let (_dir, lake) = lake_with_an_id_updated_twice(false).await;
    assert_eq!(
        csv(&lake, "SELECT sum(records) AS n FROM daily_sentiment").await,
        "n\n2\n"
    );
    assert_eq!(
        csv(
            &lake,
            "SELECT id, sentiment FROM sentiment_latest ORDER BY id"
        )
        .await,
        "id,sentiment\na,NEGATIVE\nb,NEUTRAL\n"
    );
}

/// The logical plan's table-scan line of `sql`'s EXPLAIN.
async fn scan_line(lake: &Path, sql: &str) -> String {
    let plan = csv(lake, &format!("EXPLAIN {sql}")).await;
    plan.lines()
        .find(|l| l.contains("TableScan: sentiment"))
        .unwrap_or_else(|| panic!("no table scan in {plan}"))
        .to_owned()
}

/// A `dt` filter on `sentiment_latest` reaches the table scan (only that
/// day's files are read), because `dt` partitions the view's window; over
/// a window partitioned by `id` alone the same filter stays above it and
/// every version of every day is read first.
#[tokio::test]
async fn a_dt_filter_on_the_latest_view_is_pushed_to_the_scan() {
    let (_dir, lake) = lake_with_an_id_updated_twice(true).await;
    let filter = format!("dt = '{DAY}'");
    let view = scan_line(
        &lake,
        &format!("SELECT id FROM sentiment_latest WHERE {filter}"),
    )
    .await;
    assert!(view.contains("dt = Utf8"), "{view}");
    let by_id_only = scan_line(
        &lake,
        &format!(
            "SELECT id FROM (SELECT *, row_number() OVER (PARTITION BY id ORDER BY updated_at DESC) AS rn FROM sentiment) r WHERE rn = 1 AND {filter}"
        ),
    )
    .await;
    assert!(!by_id_only.contains("dt = Utf8"), "{by_id_only}");
    // And the view still answers one row per id that day.
    assert_eq!(
        csv(
            &lake,
            &format!("SELECT id FROM sentiment_latest WHERE {filter} ORDER BY id")
        )
        .await,
        "id\na\nb\n"
    );
}

/// The one case where the `dt` partition shows: a version whose
/// `created_at` was edited to another day is the newest of that day, and
/// the older version stays the newest of its own day (documented in
/// `etl_core::views`).
#[tokio::test]
async fn an_id_whose_created_at_moved_to_another_day_has_a_newest_version_on_each() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    // Days relative to now: yesterday's post, edited an hour ago with its
    // creation moved to the day before.
    let now = chrono::Utc::now();
    let day = |d: i64| {
        (now - chrono::Duration::days(d))
            .format("%Y-%m-%d")
            .to_string()
    };
    let at = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let rec = |text: &str, created: String, updated: String| {
        format!("{{\"id\":\"m/../ x\",\"text\":\"{text}\",\"created_at\":\"{created}\",\"updated_at\":\"{updated}\"}}\n")
    };
    let yesterday = at(now - chrono::Duration::days(1));
    let first = rec(
        "I love this, it is wonderful!",
        yesterday.clone(),
        yesterday,
    );
    let moved = rec(
        "This is terrible, I hate it.",
        at(now - chrono::Duration::days(2)),
        at(now - chrono::Duration::hours(1)),
    );
    assert_eq!(run_once(dir.path(), &lake, &[first], true).await, 1);
    assert_eq!(run_once(dir.path(), &lake, &[moved], true).await, 1);
    assert_eq!(
        csv(
            &lake,
            "SELECT dt, sentiment FROM sentiment_latest ORDER BY dt"
        )
        .await,
        format!("dt,sentiment\n{},NEGATIVE\n{},POSITIVE\n", day(2), day(1))
    );
}
