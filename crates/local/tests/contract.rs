//! The conformance suite (`etl_testkit::contract`) against the local
//! backends: one test per behaviour per backend, each in its own temporary
//! directory, so a failure names both and tests run in parallel.
// Test helpers unwrap too: a failed setup is the test failing
// (`allow-unwrap-in-tests` only covers the `#[test]` functions themselves).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::NaiveDate;
use etl_core::output::{encode_parquet, group_by_partition, object_key, to_record_batch};
use etl_core::{Catalog, Codec, Engine, FieldMap, ObjectSink, ScoredRecord, VaderAnalyzer};
use etl_local::{
    DataFusionQuery, FileSource, FsSink, InProcessQueue, InputFormat, LocalCatalog, QueueConfig,
};
use etl_testkit::contract::catalog::CatalogProbe;
use etl_testkit::contract::query::SelectCase;
use etl_testkit::contract::queue::{Batching, Visibility, MESSAGES};
use etl_testkit::contract::sink::SinkProbe;
use etl_testkit::contract::{analyzer, catalog, query, queue, sink, source};
use etl_testkit::fixtures::{hostile_records, FixtureRecord, InvalidRecord, CSV_HEADER};
use tempfile::TempDir;

fn tempdir() -> TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

// --- WorkQueue: InProcessQueue -------------------------------------------

/// Room for every message of a behaviour in flight at once, and more
/// receives than any behaviour makes before dead-lettering.
fn new_queue(dir: &Path) -> InProcessQueue {
    InProcessQueue::new(QueueConfig {
        max_receive_count: 5,
        capacity: 2 * MESSAGES,
        dead_letter_path: dir.join("dead-letters.jsonl"),
    })
}

#[tokio::test]
async fn queue_refused_send_is_permanent() {
    let dir = tempdir();
    let q = new_queue(dir.path());
    q.close().await;
    queue::refused_send_is_permanent(&q).await;
}

#[tokio::test]
async fn queue_empty_queue_receives_nothing() {
    let dir = tempdir();
    queue::empty_queue_receives_nothing(&new_queue(dir.path())).await;
}

#[tokio::test]
async fn queue_empty_send_sends_nothing() {
    let dir = tempdir();
    queue::empty_send_sends_nothing(&new_queue(dir.path())).await;
}

#[tokio::test]
async fn queue_send_reports_messages_and_calls() {
    let dir = tempdir();
    queue::send_reports_messages_and_calls(&new_queue(dir.path()), Batching::OneCall).await;
}

#[tokio::test]
async fn queue_bodies_round_trip() {
    let dir = tempdir();
    queue::bodies_round_trip(&new_queue(dir.path())).await;
}

#[tokio::test]
async fn queue_acked_messages_are_not_redelivered() {
    let dir = tempdir();
    let q = new_queue(dir.path());
    queue::acked_messages_are_not_redelivered(&q, Visibility::UntilSettled).await;
}

#[tokio::test]
async fn queue_released_message_is_redelivered() {
    let dir = tempdir();
    queue::released_message_is_redelivered(&new_queue(dir.path())).await;
}

#[tokio::test]
async fn queue_all_in_sequence_then_drains() {
    let dir = tempdir();
    let q = new_queue(dir.path());
    queue::all(&q, Batching::OneCall, Visibility::UntilSettled).await;
    // Nothing was left in flight: a closed queue is drained at once.
    q.close().await;
    assert!(q.is_drained().await);
    assert_eq!(q.dead_letter_counts().await, (0, 0));
}

// --- ObjectSink: FsSink --------------------------------------------------

/// Reads the table directory directly.
struct TableDir {
    root: PathBuf,
}

/// Every file below `dir`, relative to `root`, `/`-separated.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).expect("below the root");
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

#[async_trait]
impl SinkProbe for TableDir {
    async fn get(&self, key: &str) -> Option<Bytes> {
        std::fs::read(self.root.join(key)).ok().map(Bytes::from)
    }

    async fn keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out);
        out
    }
}

fn new_sink() -> (TempDir, FsSink, TableDir) {
    let dir = tempdir();
    let sink = FsSink::new(dir.path());
    let probe = TableDir {
        root: sink.root().to_owned(),
    };
    (dir, sink, probe)
}

#[tokio::test]
async fn sink_refused_put_is_permanent() {
    // The lake root is a file: no partition directory can be made under it.
    let dir = tempdir();
    let not_a_dir = dir.path().join("lake");
    std::fs::write(&not_a_dir, b"not a directory").unwrap();
    sink::refused_put_is_permanent(&FsSink::new(&not_a_dir)).await;
}

#[tokio::test]
async fn sink_put_then_get_returns_the_bytes() {
    let (_dir, s, probe) = new_sink();
    sink::put_then_get_returns_the_bytes(&s, &probe).await;
}

#[tokio::test]
async fn sink_put_replaces_the_object() {
    let (_dir, s, probe) = new_sink();
    sink::put_replaces_the_object(&s, &probe).await;
}

#[tokio::test]
async fn sink_keys_keep_the_hive_layout() {
    let (_dir, s, probe) = new_sink();
    sink::keys_keep_the_hive_layout(&s, &probe).await;
}

#[tokio::test]
async fn sink_empty_object_is_stored() {
    let (_dir, s, probe) = new_sink();
    sink::empty_object_is_stored(&s, &probe).await;
}

#[tokio::test]
async fn sink_location_names_the_key() {
    let (_dir, s, _probe) = new_sink();
    sink::location_names_the_key(&s).await;
}

#[tokio::test]
async fn sink_all_in_sequence_then_flushes() {
    let (_dir, s, probe) = new_sink();
    sink::all(&s, &probe).await;
    s.flush().await.expect("every object synced");
}

// --- Catalog: LocalCatalog -----------------------------------------------

/// Reads the catalog file as JSON, so a partition written twice would show
/// (loading it would fold duplicates into a set).
struct CatalogFile {
    lake: PathBuf,
}

impl CatalogFile {
    fn json(&self) -> Option<serde_json::Value> {
        let path = self.lake.join("_catalog").join("sentiment.json");
        let bytes = std::fs::read(path).ok()?;
        Some(serde_json::from_slice(&bytes).expect("the catalog file is JSON"))
    }
}

#[async_trait]
impl CatalogProbe for CatalogFile {
    async fn table_exists(&self) -> bool {
        self.json().is_some()
    }

    async fn partitions(&self) -> Vec<NaiveDate> {
        let Some(json) = self.json() else {
            return Vec::new();
        };
        json["partitions"]
            .as_array()
            .expect("a partitions array")
            .iter()
            .map(|d| {
                d.as_str()
                    .expect("a date string")
                    .parse::<NaiveDate>()
                    .expect("YYYY-MM-DD")
            })
            .collect()
    }
}

fn new_catalog() -> (TempDir, LocalCatalog, CatalogFile) {
    let dir = tempdir();
    let catalog = LocalCatalog::new(dir.path(), true);
    let probe = CatalogFile {
        lake: dir.path().to_owned(),
    };
    (dir, catalog, probe)
}

#[tokio::test]
async fn catalog_ensure_table_is_idempotent() {
    let (_dir, c, probe) = new_catalog();
    catalog::ensure_table_is_idempotent(&c, &probe).await;
}

#[tokio::test]
async fn catalog_empty_partition_list_is_fine() {
    let (_dir, c, probe) = new_catalog();
    catalog::empty_partition_list_is_fine(&c, &probe).await;
}

#[tokio::test]
async fn catalog_partitions_are_registered_once() {
    let (_dir, c, probe) = new_catalog();
    catalog::partitions_are_registered_once(&c, &probe).await;
}

#[tokio::test]
async fn catalog_fresh_instance_adds_known_partitions() {
    let (dir, c, probe) = new_catalog();
    let fresh = LocalCatalog::new(dir.path(), true);
    catalog::fresh_instance_adds_known_partitions(&c, &fresh, &probe).await;
}

#[tokio::test]
async fn catalog_all_in_sequence() {
    let (dir, c, probe) = new_catalog();
    let fresh = LocalCatalog::new(dir.path(), true);
    catalog::all(&c, &fresh, &probe).await;
}

// --- QueryEngine: DataFusionQuery ----------------------------------------

/// A lake holding the fixtures as the consumer writes them: one Parquet
/// object per `dt`, every partition in the catalog. Odd fixtures are
/// scored as Comprehend scores (no compound), so a NULL comes back too.
async fn lake_with(fixtures: &[FixtureRecord]) -> (TempDir, Vec<ScoredRecord>) {
    let dir = tempdir();
    let catalog = LocalCatalog::new(dir.path(), true);
    catalog.ensure_table().await.expect("ensure_table");
    let sink = FsSink::new(dir.path());
    let vader = VaderAnalyzer::new();
    let processed_at = chrono::Utc::now();
    let rows: Vec<ScoredRecord> = fixtures
        .iter()
        .map(|f| {
            let mut score = vader.score(&f.text);
            if f.index % 2 == 1 {
                score.engine = Engine::Comprehend;
                score.compound = None;
            }
            ScoredRecord {
                record: f.to_record(),
                score,
                processed_at,
            }
        })
        .collect();
    for (n, (dt, part)) in group_by_partition(rows.clone()).into_iter().enumerate() {
        let batch = to_record_batch(&part, true).expect("a record batch");
        let body = encode_parquet(&batch, Codec::Snappy).expect("Parquet");
        let key = object_key(dt, &format!("{n:064x}"));
        sink.put(&key, body).await.expect("put");
        catalog.add_partitions(&[dt]).await.expect("add_partitions");
    }
    (dir, rows)
}

/// What `SELECT … ORDER BY id` must return for `rows`.
fn select_case(rows: &[ScoredRecord]) -> SelectCase {
    let mut sorted: Vec<&ScoredRecord> = rows.iter().collect();
    sorted.sort_by(|a, b| a.record.id.cmp(&b.record.id));
    SelectCase {
        sql: "SELECT id, text, sentiment, NULLIF(engine, 'comprehend') AS vader_engine, dt \
              FROM sentiment ORDER BY id"
            .into(),
        columns: ["id", "text", "sentiment", "vader_engine", "dt"]
            .map(String::from)
            .to_vec(),
        rows: sorted
            .iter()
            .map(|r| {
                vec![
                    Some(r.record.id.clone()),
                    Some(r.record.text.clone()),
                    Some(r.score.label.as_str().to_owned()),
                    (r.score.engine == Engine::Vader).then(|| "vader".to_owned()),
                    Some(r.dt().format("%Y-%m-%d").to_string()),
                ]
            })
            .collect(),
    }
}

#[tokio::test]
async fn query_select_returns_exactly() {
    let (dir, rows) = lake_with(&hostile_records(40)).await;
    let engine = DataFusionQuery::open(dir.path())
        .await
        .expect("open the lake");
    query::select_returns_exactly(&engine, &select_case(&rows)).await;
}

#[tokio::test]
async fn query_empty_result_has_no_rows() {
    let (dir, _rows) = lake_with(&hostile_records(5)).await;
    let engine = DataFusionQuery::open(dir.path())
        .await
        .expect("open the lake");
    query::empty_result_has_no_rows(&engine, "SELECT id FROM sentiment WHERE id = 'no such id'")
        .await;
}

#[tokio::test]
async fn query_bad_sql_is_permanent() {
    let (dir, _rows) = lake_with(&hostile_records(1)).await;
    let engine = DataFusionQuery::open(dir.path())
        .await
        .expect("open the lake");
    query::refused_statement_is_permanent(&engine, "SELEC id FROM sentiment").await;
}

#[tokio::test]
async fn query_missing_table_is_permanent() {
    let (dir, _rows) = lake_with(&hostile_records(1)).await;
    let engine = DataFusionQuery::open(dir.path())
        .await
        .expect("open the lake");
    query::refused_statement_is_permanent(&engine, "SELECT id FROM no_such_table").await;
}

// --- SentimentAnalyzer: VaderAnalyzer (refuses nothing, never transient) --

#[tokio::test]
async fn vader_empty_batch_scores_nothing() {
    analyzer::empty_batch_scores_nothing(&VaderAnalyzer::new()).await;
}

#[tokio::test]
async fn vader_every_document_gets_a_score() {
    analyzer::every_document_gets_a_score(&VaderAnalyzer::new()).await;
}

#[tokio::test]
async fn vader_results_keep_input_order() {
    analyzer::results_keep_input_order(&VaderAnalyzer::new()).await;
}

#[tokio::test]
async fn vader_all_in_sequence() {
    analyzer::all(&VaderAnalyzer::new(), None, None).await;
}

// --- RecordSource: FileSource (JSON lines and CSV) ------------------------

/// Write `content` to a new file in `dir` and open it.
fn open_file(dir: &Path, name: &str, content: &str, format: InputFormat) -> FileSource {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write the input");
    FileSource::open(&path, format, FieldMap::default()).expect("open the input")
}

/// More than one chunk (1,024 lines each).
const MANY: usize = 2_500;

#[tokio::test]
async fn jsonl_every_record_arrives_once() {
    let dir = tempdir();
    let fixtures = hostile_records(MANY);
    let lines: String = fixtures.iter().map(FixtureRecord::to_json_line).collect();
    let mut src = open_file(dir.path(), "in.jsonl", &lines, InputFormat::JsonLines);
    source::every_record_arrives_once(&mut src, &fixtures).await;
}

#[tokio::test]
async fn jsonl_invalid_item_is_rejected_alone() {
    let dir = tempdir();
    let fixtures = hostile_records(10);
    let bad = InvalidRecord::bad_created_at("bad item/../1");
    let mut lines: String = fixtures[..3]
        .iter()
        .map(FixtureRecord::to_json_line)
        .collect();
    lines.push_str(&bad.to_json_line());
    lines.extend(fixtures[3..].iter().map(FixtureRecord::to_json_line));
    let mut src = open_file(dir.path(), "in.jsonl", &lines, InputFormat::JsonLines);
    source::invalid_item_is_rejected_alone(&mut src, &fixtures, &bad, "line 4").await;
}

#[tokio::test]
async fn jsonl_empty_source_ends() {
    let dir = tempdir();
    let mut src = open_file(dir.path(), "in.jsonl", "", InputFormat::JsonLines);
    source::empty_source_ends(&mut src).await;
}

#[tokio::test]
async fn csv_every_record_arrives_once() {
    let dir = tempdir();
    let fixtures = hostile_records(MANY);
    let mut rows = CSV_HEADER.to_owned();
    rows.extend(fixtures.iter().map(FixtureRecord::to_csv_row));
    let mut src = open_file(dir.path(), "in.csv", &rows, InputFormat::Csv);
    source::every_record_arrives_once(&mut src, &fixtures).await;
}

#[tokio::test]
async fn csv_invalid_item_is_rejected_alone() {
    let dir = tempdir();
    let fixtures = hostile_records(10);
    let bad = InvalidRecord::bad_created_at("bad item/../1");
    let mut rows = CSV_HEADER.to_owned();
    rows.extend(fixtures[..3].iter().map(FixtureRecord::to_csv_row));
    // A row starts on the line after every newline before it, quoted ones
    // included (the fixtures' texts hold some).
    let location = format!("line {}", rows.matches('\n').count() + 1);
    rows.push_str(&bad.to_csv_row());
    rows.extend(fixtures[3..].iter().map(FixtureRecord::to_csv_row));
    let mut src = open_file(dir.path(), "in.csv", &rows, InputFormat::Csv);
    source::invalid_item_is_rejected_alone(&mut src, &fixtures, &bad, &location).await;
}

#[tokio::test]
async fn csv_header_only_source_ends() {
    let dir = tempdir();
    let mut src = open_file(dir.path(), "in.csv", CSV_HEADER, InputFormat::Csv);
    source::empty_source_ends(&mut src).await;
}
