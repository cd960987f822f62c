//! Reading a local lake back the way a user's tools would: every Parquet
//! file under `sentiment/`, with `dt` from the Hive path.

use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// One row of the output table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The record id.
    pub id: String,
    /// The text (`None` for a lake written without its `text` column).
    pub text: Option<String>,
    /// `created_at`, µs since the epoch.
    pub created_at_us: i64,
    /// `updated_at`, µs since the epoch.
    pub updated_at_us: i64,
    /// The language column.
    pub language: String,
    /// The sentiment label.
    pub sentiment: String,
    /// `score_positive`.
    pub pos: f64,
    /// `score_negative`.
    pub neg: f64,
    /// `score_neutral`.
    pub neu: f64,
    /// `score_mixed`.
    pub mixed: f64,
    /// `score_compound` (`None` for engines without one).
    pub compound: Option<f64>,
    /// The engine that scored the record.
    pub engine: String,
    /// The Hive partition the file is under.
    pub dt: String,
    /// The Parquet file the row was read from.
    pub file: PathBuf,
}

/// Every Parquet file of the lake (`sentiment/dt=*/*.parquet`), sorted;
/// none when the lake has no table yet. Only partition directories are
/// read: a Delta lake's `_delta_log` (checkpoints are Parquet too) and
/// lock object are not data.
pub fn parquet_files(lake: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let root = lake.join("sentiment");
    let Ok(dirs) = std::fs::read_dir(&root) else {
        return out;
    };
    for d in dirs {
        let d = d.unwrap().path();
        if !d.is_dir() || !d.file_name().unwrap().to_string_lossy().starts_with("dt=") {
            continue;
        }
        for f in std::fs::read_dir(&d).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "parquet") {
                out.push(f);
            }
        }
    }
    out.sort();
    out
}

/// Every record batch of one Parquet file.
pub fn read_batches(file: &Path) -> Vec<RecordBatch> {
    let f = std::fs::File::open(file).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// Every row of every Parquet file of the lake.
pub fn read_lake(lake: &Path) -> Vec<Row> {
    let files: Vec<(PathBuf, String)> = parquet_files(lake)
        .into_iter()
        .map(|file| {
            let dir = file
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap();
            let dt = dir
                .strip_prefix("dt=")
                .expect("hive partition dir")
                .to_owned();
            (file, dt)
        })
        .collect();
    read_files(&files)
}

/// Every row of these Parquet files, each with its partition value. String
/// columns are read whatever their Arrow layout (a file rewritten by
/// another writer may use views).
pub fn read_files(files: &[(PathBuf, String)]) -> Vec<Row> {
    let mut rows = Vec::new();
    for (file, dt) in files {
        let (file, dt) = (file.clone(), dt.clone());
        for b in read_batches(&file) {
            let utf8 = |c: &arrow_array::ArrayRef| {
                arrow_cast::cast(c, &arrow_schema::DataType::Utf8)
                    .unwrap()
                    .as_string::<i32>()
                    .clone()
            };
            let s = |n: &str| utf8(b.column_by_name(n).unwrap());
            let f = |n: &str| {
                b.column_by_name(n)
                    .unwrap()
                    .as_primitive::<Float64Type>()
                    .clone()
            };
            let t = |n: &str| {
                b.column_by_name(n)
                    .unwrap()
                    .as_primitive::<TimestampMicrosecondType>()
                    .clone()
            };
            let (id, lang, sent, eng) = (s("id"), s("language"), s("sentiment"), s("engine"));
            let text = b.column_by_name("text").map(utf8);
            let (pos, neg, neu, mixed, comp) = (
                f("score_positive"),
                f("score_negative"),
                f("score_neutral"),
                f("score_mixed"),
                f("score_compound"),
            );
            let (c, u) = (t("created_at"), t("updated_at"));
            for i in 0..b.num_rows() {
                rows.push(Row {
                    id: id.value(i).to_owned(),
                    text: text.as_ref().map(|x| x.value(i).to_owned()),
                    created_at_us: c.value(i),
                    updated_at_us: u.value(i),
                    language: lang.value(i).to_owned(),
                    sentiment: sent.value(i).to_owned(),
                    pos: pos.value(i),
                    neg: neg.value(i),
                    neu: neu.value(i),
                    mixed: mixed.value(i),
                    compound: (!comp.is_null(i)).then(|| comp.value(i)),
                    engine: eng.value(i).to_owned(),
                    dt: dt.clone(),
                    file: file.clone(),
                });
            }
        }
    }
    rows
}

/// A Java reader (Spark's parquet-mr, `tools/java_read.py`, in the tool
/// venv on the machine's Java) counts the rows of every data file under
/// `root` (not `_delta_log/`): each must equal the row count its writer put
/// in the file's footer, and there must be files. Returns the total.
pub fn assert_java_reads_what_was_written(root: &std::path::Path) -> u64 {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/java_read.py");
    let out = std::process::Command::new(crate::delta_log::python())
        .arg(&script)
        .arg(root)
        .output()
        .expect("the Java reader runs (make venv installs pyspark; `make java` a JRE)");
    assert!(
        out.status.success(),
        "the Java reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts: std::collections::BTreeMap<String, u64> =
        serde_json::from_slice(&out.stdout).expect("the Java reader prints JSON");
    let written: std::collections::BTreeMap<String, u64> = parquet_files(root)
        .into_iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == "_delta_log"))
        .map(|p| {
            let file = std::fs::File::open(&p).expect("a data file");
            let meta = parquet::file::reader::SerializedFileReader::new(file)
                .map(|r| {
                    parquet::file::reader::FileReader::metadata(&r)
                        .file_metadata()
                        .num_rows() as u64
                })
                .expect("a Parquet footer");
            let rel = p.strip_prefix(root).expect("under the root");
            (rel.display().to_string(), meta)
        })
        .collect();
    assert!(!written.is_empty(), "no data file under {}", root.display());
    assert_eq!(
        counts, written,
        "rows the Java reader read, per file, against the footers"
    );
    written.values().sum()
}
