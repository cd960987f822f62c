//! The whole local pipeline (`etl_local::run`) end to end: input file →
//! queue → VADER → Parquet lake → catalog, read back with the `parquet` crate.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use etl_core::output::output_schema;
use etl_core::QueryEngine;
use etl_local::{run, DataFusionQuery, RunConfig, RunCounters, RunSummary};
use etl_testkit::lake::{read_batches, read_lake, Row};
use serde_json::{json, Value};

mod incremental;

fn golden() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/core/tests/golden/vader_golden.jsonl"
    );
    std::fs::read_to_string(path)
        .expect("golden corpus")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn run_lake(
    input: &Path,
    lake: &Path,
    tweak: impl FnOnce(&mut RunConfig),
) -> (RunSummary, Vec<String>) {
    let mut cfg = RunConfig::new(input, lake);
    cfg.workers = 3;
    cfg.message_budget = 16 * 1024; // many messages even for small inputs
    tweak(&mut cfg);
    let rejects = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = rejects.clone();
    let summary = run(
        cfg,
        Arc::new(RunCounters::default()),
        Box::new(move |r| sink.lock().unwrap().push(r.to_string())),
    )
    .await
    .expect("run succeeds");
    let rejects = rejects.lock().unwrap().clone();
    (summary, rejects)
}

fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    let mut f = std::fs::File::create(path).unwrap();
    for l in lines {
        f.write_all(l).unwrap();
        f.write_all(b"\n").unwrap();
    }
}

fn by_id(rows: &[Row]) -> HashMap<String, Vec<&Row>> {
    let mut m: HashMap<String, Vec<&Row>> = HashMap::new();
    for r in rows {
        m.entry(r.id.clone()).or_default().push(r);
    }
    m
}

fn ts(i: usize) -> DateTime<Utc> {
    // Spread over 9 days, crossing midnight in several offsets.
    Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap()
        + chrono::Duration::minutes((i as i64 * 377) % (9 * 24 * 60))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_corpus_scores_equal_python_vader_and_each_record_lands_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("golden.jsonl");
    let corpus = golden();
    assert!(corpus.len() >= 1000);
    let mut expected = HashMap::new();
    let mut blank = 0;
    let mut lines = Vec::new();
    for (i, g) in corpus.iter().enumerate() {
        let id = format!("g{i:05}");
        let text = g["text"].as_str().unwrap();
        // Alternate timestamp forms: RFC 3339 with offsets, epoch s, epoch ms.
        let t = ts(i);
        let created: Value = match i % 3 {
            0 => json!(t
                .with_timezone(&chrono::FixedOffset::west_opt(5 * 3600).unwrap())
                .to_rfc3339()),
            1 => json!(t.timestamp()),
            _ => json!(t.timestamp_millis()),
        };
        lines.push(
            serde_json::to_vec(&json!({"id": id, "text": text, "created_at": created})).unwrap(),
        );
        if text.trim().is_empty() {
            blank += 1;
        } else {
            expected.insert(id, (g.clone(), t));
        }
    }
    write_lines(&input, &lines);
    let lake = dir.path().join("lake");
    let (summary, rejects) = run_lake(&input, &lake, |_| {}).await;
    assert_eq!(summary.produce.rejected as usize, blank, "{rejects:?}");
    assert_eq!(summary.scored as usize, expected.len());

    let rows = read_lake(&lake);
    assert_eq!(rows.len(), expected.len());
    let ids = by_id(&rows);
    assert_eq!(ids.len(), expected.len(), "every record exactly once");
    let mut diverged = Vec::new();
    for r in &rows {
        let (g, t) = &expected[&r.id];
        assert_eq!(r.text.as_deref(), g["text"].as_str(), "text kept verbatim");
        assert_eq!(r.created_at_us, t.timestamp_micros());
        assert_eq!(r.dt, t.format("%Y-%m-%d").to_string(), "dt is the UTC date");
        assert_eq!(
            (r.engine.as_str(), r.language.as_str(), r.mixed),
            ("vader", "en", 0.0)
        );
        let want = (
            g["pos"].as_f64().unwrap(),
            g["neg"].as_f64().unwrap(),
            g["neu"].as_f64().unwrap(),
            g["compound"].as_f64().unwrap(),
        );
        if (r.pos, r.neg, r.neu, r.compound.unwrap()) != want {
            diverged.push((r.id.clone(), want, (r.pos, r.neg, r.neu, r.compound)));
        }
        let c = want.3;
        let label = if want.0 > 0.3 && want.1 > 0.3 {
            "MIXED"
        } else if c >= 0.05 {
            "POSITIVE"
        } else if c <= -0.05 {
            "NEGATIVE"
        } else {
            "NEUTRAL"
        };
        assert_eq!(r.sentiment, label, "{}", r.id);
    }
    assert!(
        diverged.is_empty(),
        "{} rows differ from Python: {:?}",
        diverged.len(),
        &diverged[..diverged.len().min(5)]
    );
    // The schema Athena and pyarrow will see.
    let b = read_batches(&rows[0].file);
    assert_eq!(b[0].schema(), output_schema(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_are_reported_with_line_numbers_and_good_ones_land_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mixed.jsonl");
    let long_text = "This is wonderful, but the ending was terrible! ".repeat(5_000); // ~240 KB
    let lines: Vec<Vec<u8>> = vec![
        br#"{"id":"ok-1","text":"I love it","created_at":"2024-06-01T10:00:00Z"}"#.to_vec(),
        b"this is not json".to_vec(),
        br#"["an","array"]"#.to_vec(),
        br#"{"text":"no id","created_at":1}"#.to_vec(),
        br#"{"id":"no-text","created_at":1}"#.to_vec(),
        br#"{"id":"num-text","text":42,"created_at":1}"#.to_vec(),
        br#"{"id":"bad-ts","text":"hello","created_at":"31/12/2024"}"#.to_vec(),
        b"{\"id\":\"bad-utf8\",\"text\":\"caf\xc3\x28\",\"created_at\":1}".to_vec(),
        br#"{"id":"empty","text":"","created_at":1}"#.to_vec(),
        serde_json::to_vec(&json!({"id":"long","text":long_text,"created_at":1717236000})).unwrap(),
        br#"{"id":"ok-2","text":"Terrible.","created_at":1717236000123,"updated_at":"2024-06-02T00:00:00+02:00"}"#.to_vec(),
        br#"{"id":"ok-3","text":"meh","created_at":"2024-06-01T23:59:59-01:00"}"#.to_vec(),
    ];
    write_lines(&input, &lines);
    let lake = dir.path().join("lake");
    let (summary, rejects) = run_lake(&input, &lake, |_| {}).await;
    let expect_rejected = [
        ("line 2", "not valid JSON"),
        ("line 3", "expected a JSON object"),
        ("line 4", "`id`"),
        ("line 5", "`text`"),
        ("line 6", "`text`"),
        ("line 7", "`created_at`"),
        ("line 8", "invalid UTF-8"),
        ("line 9", "empty text"),
    ];
    assert_eq!(rejects.len(), expect_rejected.len(), "{rejects:#?}");
    for ((loc, what), got) in expect_rejected.iter().zip(&rejects) {
        assert!(
            got.starts_with(loc) && got.contains(what),
            "{got} should be {loc}: {what}"
        );
    }
    assert_eq!(summary.produce.rejected, 8);
    assert_eq!(summary.scored, 4);
    // The rejects file keeps every one with its line number.
    let kept = std::fs::read_to_string(lake.join("_rejects/rejects.jsonl")).unwrap();
    let kept: Vec<Value> = kept
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(kept.len(), 8);
    assert_eq!(kept[6]["location"], "line 8");

    let rows = read_lake(&lake);
    let ids = by_id(&rows);
    let mut names: Vec<_> = ids.keys().cloned().collect();
    names.sort();
    assert_eq!(names, vec!["long", "ok-1", "ok-2", "ok-3"]);
    assert!(ids.values().all(|v| v.len() == 1));
    assert_eq!(
        ids["long"][0].text.as_ref().unwrap().len(),
        long_text.len(),
        "long text scored whole"
    );
    assert_eq!(
        ids["ok-3"][0].dt, "2024-06-02",
        "23:59 at -01:00 is the next UTC day"
    );
    assert_eq!(
        ids["ok-2"][0].updated_at_us,
        Utc.with_ymd_and_hms(2024, 6, 1, 22, 0, 0)
            .unwrap()
            .timestamp_micros()
    );
}

fn posts(n: usize, start: usize) -> Vec<Vec<u8>> {
    (start..start + n)
        .map(|i| {
            let text = ["great stuff!", "awful, never again", "it is a chair", "not bad at all :)"][i % 4];
            serde_json::to_vec(&json!({"id": format!("p{i}"), "text": format!("{text} #{i}"), "created_at": ts(i).to_rfc3339()})).unwrap()
        })
        .collect()
}

fn file_set(lake: &Path) -> BTreeMap<PathBuf, u64> {
    etl_testkit::lake::parquet_files(lake)
        .into_iter()
        .map(|f| {
            let len = std::fs::metadata(&f).unwrap().len();
            (f, len)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_adds_nothing_and_appended_records_alone_are_scored() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("posts.jsonl");
    let lake = dir.path().join("lake");
    let mut lines = posts(2_000, 0);
    write_lines(&input, &lines);
    let (first, _) = run_lake(&input, &lake, |_| {}).await;
    assert_eq!(first.scored, 2_000);
    let files = file_set(&lake);

    let (second, _) = run_lake(&input, &lake, |_| {}).await;
    assert_eq!(
        (
            second.produce.sent_records,
            second.produce.unchanged,
            second.scored
        ),
        (0, 2_000, 0)
    );
    assert_eq!(
        file_set(&lake).keys().collect::<Vec<_>>(),
        files.keys().collect::<Vec<_>>()
    );

    // Append: a new record with an OLD timestamp, an update of p7 (same
    // creation time), and an exact duplicate line.
    lines.push(
        br#"{"id":"late","text":"arrived late but lovely","created_at":"2025-03-02T00:00:00Z"}"#
            .to_vec(),
    );
    lines.push(
        serde_json::to_vec(&json!({"id": "p7", "text": "changed my mind: horrible", "created_at": ts(7).to_rfc3339(), "updated_at": "2025-04-01T00:00:00Z"}))
            .unwrap(),
    );
    lines.push(lines[3].clone());
    write_lines(&input, &lines);
    let (third, _) = run_lake(&input, &lake, |_| {}).await;
    assert_eq!(
        third.produce.sent_records, 2,
        "only the new and the updated record"
    );
    assert_eq!(third.scored, 2);

    let rows = read_lake(&lake);
    assert_eq!(rows.len(), 2_002);
    let ids = by_id(&rows);
    assert_eq!(ids.len(), 2_001);
    assert_eq!(ids["p7"].len(), 2, "both versions are kept in the table");

    let q = DataFusionQuery::open(&lake).await.unwrap();
    let latest = q
        .query("SELECT sentiment, CAST(updated_at AS VARCHAR) AS u FROM sentiment_latest WHERE id = 'p7'")
        .await
        .unwrap();
    let text = etl_local::format::render(&latest, etl_local::format::OutputFormat::Csv).unwrap();
    assert_eq!(text, "sentiment,u\nNEGATIVE,2025-04-01T00:00:00Z\n");
    let n = q
        .query("SELECT COUNT(*) AS n FROM sentiment_latest")
        .await
        .unwrap();
    assert_eq!(
        etl_local::format::render(&n, etl_local::format::OutputFormat::Csv).unwrap(),
        "n\n2001\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_interrupted_before_saving_state_rewrites_its_own_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("posts.jsonl");
    let lake = dir.path().join("lake");
    write_lines(&input, &posts(1_500, 0));
    run_lake(&input, &lake, |_| {}).await;
    let before = file_set(&lake);
    // A crash after the files were written but before the state was saved.
    std::fs::remove_dir_all(lake.join("_state")).unwrap();
    let (again, _) = run_lake(&input, &lake, |_| {}).await;
    assert_eq!(again.scored, 1_500, "everything is sent again");
    assert_eq!(
        file_set(&lake).keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "same keys, overwritten"
    );
    let rows = read_lake(&lake);
    assert_eq!(rows.len(), 1_500);
    assert_eq!(by_id(&rows).len(), 1_500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_view_agrees_with_the_files_and_zstd_csv_input_work() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("posts.csv");
    let mut csv = String::from("id,text,created_at\n");
    for i in 0..600 {
        let text = ["Love it, really!", "\"Worst\" purchase ever", "ok"][i % 3];
        csv.push_str(&format!(
            "c{i},\"{}\",{}\n",
            text.replace('"', "\"\""),
            ts(i).timestamp()
        ));
    }
    std::fs::write(&input, csv).unwrap();
    let lake = dir.path().join("lake");
    let (s, rejects) = run_lake(&input, &lake, |c| c.codec = etl_core::Codec::Zstd).await;
    assert!(rejects.is_empty(), "{rejects:?}");
    assert_eq!(s.scored, 600);
    let rows = read_lake(&lake);
    let file = &rows[0].file;
    let meta = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(file).unwrap())
        .unwrap();
    use parquet::file::reader::FileReader;
    assert!(matches!(
        meta.metadata().row_group(0).column(0).compression(),
        parquet::basic::Compression::ZSTD(_)
    ));

    let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
    for r in &rows {
        *counts
            .entry((r.dt.clone(), r.sentiment.clone()))
            .or_default() += 1;
    }
    let expected: String = counts
        .iter()
        .map(|((dt, s), n)| format!("{dt},{s},{n}\n"))
        .collect();
    let q = DataFusionQuery::open(&lake).await.unwrap();
    let b = q
        .query("SELECT dt, sentiment, records FROM daily_sentiment ORDER BY dt, sentiment")
        .await
        .unwrap();
    let got = etl_local::format::render(&b, etl_local::format::OutputFormat::Csv).unwrap();
    assert_eq!(got, format!("dt,sentiment,records\n{expected}"));
}
