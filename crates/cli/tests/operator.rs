//! The operator's commands on a local lake, as an operator runs them: a lake
//! with rejects and dead letters (an analyzer outage and refused documents,
//! injected through the library the way a failing engine would fail), then
//! `etl status`, `etl reconcile`, `etl redrive`, `etl run` again, an
//! interrupted redrive, a damaged lake, and `etl report` whose SVG is parsed
//! and checked against the lake's data.
// Test helpers unwrap too: a failed setup is the test failing
// (`allow-unwrap-in-tests` only covers the `#[test]` functions themselves).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use chrono::{Duration, Utc};
use etl_local::{RunConfig, RunCounters};
use etl_testkit::{Script, ScriptedAnalyzer};
use serde_json::Value;

mod common;
use common::{etl, text};

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)))
}

/// An engine with an outage for some records and refusals for others:
/// a batch holding an `outage-` id fails whole (`ServiceUnavailable`,
/// retryable: its message is redelivered, then dead-lettered), a document
/// containing `REFUSE` is refused alone (`TEXT_REFUSED`, permanent). The
/// analyzer counts both, so the test knows they fired.
fn faulty() -> ScriptedAnalyzer {
    ScriptedAnalyzer::vader()
        .with(Script::OutageForIds("outage-".into()))
        .refusing("REFUSE", "TEXT_REFUSED")
        .refusal_message("document {id} refused")
}

/// Source lines with production's shapes: ids with `/`, `..`, spaces and
/// 200 characters, texts in every script and plane, timestamps relative to
/// now (a bulk load sharing one), and a few invalid lines.
fn input(dir: &Path) -> (PathBuf, BTreeSet<String>, usize) {
    let now = Utc::now();
    let bulk = (now - Duration::hours(30)).to_rfc3339();
    let texts = [
        "I love this, it is great!",
        "This is terrible and I hate it.",
        "The package arrived on Tuesday.",
        "Très bien, merci 😀 — naïve café",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 astral 🦀 and a control\u{7} char",
        "中文评论：非常好",
        "Not bad at all, actually good",
    ];
    let mut lines = Vec::new();
    let mut ids = BTreeSet::new();
    for i in 0..240 {
        let id = match i {
            0 => "a/b/c".to_owned(),
            1 => "..".to_owned(),
            2 => " spaced id ".to_owned(),
            3 => "x".repeat(200),
            i if i % 40 == 7 => format!("outage-{i}"),
            i => format!("post-{i:04}"),
        };
        let text = if i % 50 == 11 {
            format!("REFUSE this one {i}")
        } else {
            format!("{} #{i}", texts[i % texts.len()])
        };
        let created = if i < 100 {
            bulk.clone()
        } else {
            (now - Duration::hours(i as i64 % 96) - Duration::minutes(i as i64)).to_rfc3339()
        };
        lines.push(serde_json::json!({"id": id, "text": text, "created_at": created}).to_string());
        ids.insert(id);
    }
    lines.push("{not json".into());
    lines.push(r#"{"id":"no-text","created_at":"2026-01-01T00:00:00Z"}"#.into());
    lines.push(r#"{"id":"bad-time","text":"hi","created_at":"yesterday"}"#.into());
    let path = dir.join("posts.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    (path, ids, 3)
}

/// Parquet files on disk and their bytes, per `dt`, walked here.
fn files_on_disk(lake: &Path) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for d in std::fs::read_dir(lake.join("sentiment")).unwrap() {
        let d = d.unwrap();
        let dt = d
            .file_name()
            .to_string_lossy()
            .trim_start_matches("dt=")
            .to_owned();
        for f in std::fs::read_dir(d.path()).unwrap() {
            let f = f.unwrap();
            if f.path().extension().is_some_and(|e| e == "parquet") {
                let e = out.entry(dt.clone()).or_insert((0, 0));
                e.0 += 1;
                e.1 += f.metadata().unwrap().len();
            }
        }
    }
    out
}

fn query(lake: &str, sql: &str) -> Vec<Value> {
    let out = etl(&["query", "--lake", lake, "--format", "json", sql]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn faulty_run(input: &Path, lake: &Path) -> (etl_local::RunSummary, Arc<ScriptedAnalyzer>) {
    let faulty = Arc::new(faulty());
    let mut cfg = RunConfig::new(input, lake);
    cfg.workers = 2;
    cfg.message_budget = 4 * 1024;
    cfg.max_receive_count = 2;
    let summary = etl_local::run_with(
        cfg,
        faulty.clone(),
        Arc::new(RunCounters::default()),
        Box::new(|_| {}),
    )
    .await
    .unwrap();
    (summary, faulty)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reconcile_redrive_and_rerun_account_for_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let (input, ids, bad_lines) = input(dir.path());
    let lake = dir.path().join("lake");
    let lake_s = lake.to_str().unwrap();
    let input_s = input.to_str().unwrap();

    let (summary, faulty) = faulty_run(&input, &lake).await;
    assert!(faulty.counts().outages > 0, "the outage fired");
    assert!(faulty.counts().refused > 0, "refusals fired");
    assert!(summary.dead_lettered_records > 6, "{summary:?}");
    assert_eq!(summary.produce.rejected, bad_lines as u64);

    // status: what an operator sees the morning after.
    let out = etl(&["status", "--lake", lake_s, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let st = json(&out);
    assert_eq!(st["lock"]["state"], "free");
    assert_eq!(st["rejects"]["entries"], bad_lines);
    assert_eq!(st["dead_letters"]["records"], summary.dead_lettered_records);
    assert_eq!(
        st["dead_letters"]["entries"],
        summary.dead_lettered_messages
    );
    let runs = st["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["mode"], "incremental");
    assert_eq!(runs[0]["read"], (ids.len() + bad_lines) as u64);
    assert_eq!(runs[0]["rejected"], bad_lines);
    assert_eq!(runs[0]["failed"], summary.dead_lettered_records);
    assert_eq!(runs[0]["scored"], summary.scored);
    let disk = files_on_disk(&lake);
    let shown: BTreeMap<String, (u64, u64)> = st["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["dt"].as_str().unwrap().to_owned(),
                (p["files"].as_u64().unwrap(), p["bytes"].as_u64().unwrap()),
            )
        })
        .collect();
    assert_eq!(shown, disk, "partitions as the directory holds them");
    let out = etl(&["status", "--lake", lake_s]);
    let t = text(&out.stdout);
    // The newest letters (which ones depends on the workers' order) with
    // when each was dead-lettered, as the JSON lists them.
    let newest = st["dead_letters"]["newest"].as_array().unwrap();
    assert!(!newest.is_empty());
    assert!(t.contains("dead letters"), "{t}");
    for letter in newest {
        let id = letter["dead_lettered_at"].as_str().unwrap();
        assert!(t.contains(id), "{id} shown: {t}");
    }
    assert!(
        t.contains("TEXT_REFUSED") || t.contains("ServiceUnavailable"),
        "a reason is shown: {t}"
    );
    assert!(
        t.contains("line 241") || t.contains("line 242"),
        "rejects by line: {t}"
    );

    // reconcile: every version placed (in the lake or dead-lettered with a reason).
    let out = etl(&["reconcile", "--lake", lake_s, "--input", input_s, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let r = json(&out);
    assert_eq!(r["source_versions"], ids.len());
    assert_eq!(r["rejected_input"], bad_lines);
    assert_eq!(r["missing"].as_array().unwrap().len(), 0);
    assert_eq!(r["duplicated"].as_array().unwrap().len(), 0);
    let dead = r["dead_lettered"].as_array().unwrap();
    assert!(dead.len() as u64 <= summary.dead_lettered_records && !dead.is_empty());
    assert!(dead
        .iter()
        .all(|d| !d["reasons"][0].as_str().unwrap().is_empty()));
    assert_eq!(
        r["in_lake"].as_u64().unwrap() + dead.len() as u64,
        ids.len() as u64
    );

    // redrive, the engine fixed: everything comes back, nothing twice.
    let out = etl(&["redrive", "--lake", lake_s, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rd = json(&out);
    // A record both refused and in a message that later failed whole is in
    // two letters: sent once.
    assert_eq!(
        rd["records_sent"].as_u64().unwrap() + rd["repeated"].as_u64().unwrap(),
        summary.dead_lettered_records
    );
    assert_eq!(rd["landed"], rd["records_sent"]);
    assert_eq!(rd["failed_again"], 0);
    let counts = query(
        lake_s,
        "SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids FROM sentiment",
    );
    assert_eq!(counts[0]["n"], ids.len());
    assert_eq!(counts[0]["ids"], ids.len());
    let landed: BTreeSet<String> = query(lake_s, "SELECT id FROM sentiment")
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(landed, ids, "every id, byte for byte");

    let out = etl(&["reconcile", "--lake", lake_s, "--input", input_s]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("OK: every source version"));

    // The next run sends nothing: the redriven versions are recorded.
    let out = etl(&["run", "--input", input_s, "--lake", lake_s, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let again = json(&out);
    assert_eq!(again["produce"]["sent_records"], 0);
    assert_eq!(again["retried_records"], 0);
    let st = json(&etl(&["status", "--lake", lake_s, "--json"]));
    let modes: Vec<&str> = st["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["incremental", "redrive", "incremental"]);
    assert_eq!(st["dead_letters"]["entries"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_redrive_blocks_runs_until_finished_and_a_damaged_lake_fails_reconcile() {
    let dir = tempfile::tempdir().unwrap();
    let (input, ids, _) = input(dir.path());
    let lake = dir.path().join("lake");
    let lake_s = lake.to_str().unwrap();
    let input_s = input.to_str().unwrap();
    let (summary, _) = faulty_run(&input, &lake).await;
    assert!(summary.dead_lettered_records > 0);

    // A redrive that died right after taking the dead letters.
    let dl = lake.join("_dead_letter");
    std::fs::rename(
        dl.join("messages.jsonl"),
        dl.join("redrive-20260101T000000.000000Z.jsonl"),
    )
    .unwrap();
    // A damaged letter (torn, invalid UTF-8) that the interrupted redrive
    // had already put back: it is in both files now.
    let damaged = b"{\"id\":\"torn \xff\n";
    std::fs::OpenOptions::new()
        .append(true)
        .open(dl.join("redrive-20260101T000000.000000Z.jsonl"))
        .unwrap()
        .write_all(damaged)
        .unwrap();
    std::fs::write(dl.join("messages.jsonl"), damaged).unwrap();
    let st = json(&etl(&["status", "--lake", lake_s, "--json"]));
    assert_eq!(st["unfinished_redrive"].as_array().unwrap().len(), 1);
    let out = etl(&["run", "--input", input_s, "--lake", lake_s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("interrupted `etl redrive`"),
        "{}",
        text(&out.stderr)
    );
    // Reconcile still finds the letters in the in-progress file.
    let out = etl(&["reconcile", "--lake", lake_s, "--input", input_s, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let placed = json(&out)["dead_lettered"].as_array().unwrap().len() as u64;
    assert!(placed > 0);
    let out = etl(&["redrive", "--lake", lake_s, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a letter stays unreadable: {}",
        text(&out.stderr)
    );
    let rd = json(&out);
    assert_eq!(
        rd["landed"], placed,
        "every dead-lettered version came back"
    );
    assert_eq!(rd["unreadable"], 1);
    assert_eq!(
        std::fs::read(dl.join("messages.jsonl")).unwrap(),
        damaged,
        "the damaged letter is kept, once"
    );
    assert!(etl_local::redrive::in_progress(&lake).is_empty());
    assert!(etl(&["run", "--input", input_s, "--lake", lake_s])
        .status
        .success());

    // A file copied under another name: every row in it is there twice.
    let (dt, _) = files_on_disk(&lake).into_iter().next().unwrap();
    let part = lake.join("sentiment").join(format!("dt={dt}"));
    let first = std::fs::read_dir(&part)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    let rows_in_first = {
        let f = std::fs::File::open(&first).unwrap();
        parquet::file::reader::SerializedFileReader::new(f)
            .map(|r| {
                use parquet::file::reader::FileReader;
                r.metadata().file_metadata().num_rows() as usize
            })
            .unwrap()
    };
    std::fs::copy(&first, part.join("part-copy.parquet")).unwrap();
    let out = etl(&["reconcile", "--lake", lake_s, "--input", input_s, "--json"]);
    assert_eq!(out.status.code(), Some(4), "duplicates exit 4");
    let r = json(&out);
    assert_eq!(r["duplicated"].as_array().unwrap().len(), rows_in_first);
    assert!(r["duplicated"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["rows"] == 2));
    // Both gone: every row of that file is missing.
    std::fs::remove_file(part.join("part-copy.parquet")).unwrap();
    std::fs::remove_file(&first).unwrap();
    let out = etl(&["reconcile", "--lake", lake_s, "--input", input_s]);
    assert_eq!(out.status.code(), Some(4));
    let t = text(&out.stdout);
    assert!(
        t.contains(&format!("missing             {rows_in_first:>10}")),
        "{t}"
    );
    assert!(t.contains("NOT OK"), "{t}");
    assert!(ids.len() > rows_in_first);
}

/// Numbers as the SVG prints them.
fn num(n: roxmltree::Node, a: &str) -> f64 {
    n.attribute(a)
        .unwrap_or_else(|| panic!("{a} missing on {n:?}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_draws_what_the_lake_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _, _) = input(dir.path());
    let lake = dir.path().join("lake");
    let lake_s = lake.to_str().unwrap();
    let out = etl(&[
        "run",
        "--input",
        input.to_str().unwrap(),
        "--lake",
        lake_s,
        "--report",
        dir.path().join("r.html").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("report: {}", dir.path().join("r.html").display())),
        "run prints the report's path: {}",
        text(&out.stdout)
    );
    let out = etl(&["report", "--lake", lake_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(lake.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<script"), "no JavaScript");
    let external = html
        .replace("http://www.w3.org/2000/svg", "")
        .contains("://");
    assert!(!external, "nothing fetched from the network");

    let start = html.find("<svg").unwrap();
    let end = html.rfind("</svg>").unwrap() + "</svg>".len();
    let svg = &html[start..end];
    let doc = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
    let class = |c: &str| {
        doc.descendants()
            .filter(|n| n.attribute("class") == Some(c))
            .collect::<Vec<_>>()
    };
    let plot = class("plot-area")[0];
    let (plot_y, plot_h) = (num(plot, "y"), num(plot, "height"));
    let top = class("ytick")
        .iter()
        .map(|t| num(*t, "data-value"))
        .fold(0.0, f64::max);
    assert!(top > 0.0);

    // What the lake says, by another query than the report's.
    let expected: BTreeMap<(String, String), f64> = query(
        lake_s,
        "SELECT dt, sentiment, COUNT(*) AS n FROM sentiment_latest GROUP BY dt, sentiment",
    )
    .iter()
    .map(|v| {
        (
            (
                v["dt"].as_str().unwrap().to_owned(),
                v["sentiment"].as_str().unwrap().to_owned(),
            ),
            v["n"].as_f64().unwrap(),
        )
    })
    .collect();
    let mut drawn = BTreeMap::new();
    for bar in class("bar") {
        let records = num(bar, "height") * top / plot_h;
        drawn.insert(
            (
                bar.attribute("data-dt").unwrap().to_owned(),
                bar.attribute("data-sentiment").unwrap().to_owned(),
            ),
            records,
        );
        assert!(num(bar, "y") + num(bar, "height") <= plot_y + plot_h + 0.01);
    }
    assert_eq!(
        drawn.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "one bar segment per day and label"
    );
    for (k, n) in &expected {
        assert!(
            (drawn[k] - n).abs() < 0.5,
            "{k:?}: drawn {} vs {n}",
            drawn[k]
        );
    }

    // The compound line: each day's mean over its records.
    let area = class("compound-area")[0];
    let (ay, ah) = (num(area, "y"), num(area, "height"));
    let means: BTreeMap<String, f64> = query(
        lake_s,
        "SELECT dt, AVG(score_compound) AS c FROM sentiment_latest GROUP BY dt",
    )
    .iter()
    .map(|v| {
        (
            v["dt"].as_str().unwrap().to_owned(),
            v["c"].as_f64().unwrap(),
        )
    })
    .collect();
    let points = class("compound");
    assert_eq!(points.len(), means.len());
    for p in points {
        let value = 1.0 - 2.0 * (num(p, "cy") - ay) / ah;
        let want = means[p.attribute("data-dt").unwrap()];
        assert!((value - want).abs() < 0.02, "{p:?}: {value} vs {want}");
    }
}
