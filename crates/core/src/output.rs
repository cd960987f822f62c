//! The output table: Arrow schema, RecordBatch building, Parquet encoding to
//! bytes, and the Hive layout (`dt=YYYY-MM-DD`) with deterministic object keys.

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::EncodeError;
use crate::record::SourceRecord;
use crate::sentiment::SentimentScore;

/// Name of the output table.
pub const TABLE_NAME: &str = "sentiment";

/// Name of the partition column.
pub const PARTITION_COLUMN: &str = "dt";

/// One scored record: a row of the output table.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredRecord {
    /// The source record.
    pub record: SourceRecord,
    /// Its scores.
    pub score: SentimentScore,
    /// When it was scored.
    pub processed_at: DateTime<Utc>,
}

impl ScoredRecord {
    /// The `dt` partition value: the UTC date of `created_at`.
    pub fn dt(&self) -> NaiveDate {
        self.record.created_at.date_naive()
    }
}

/// How the lake's files become a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableFormat {
    /// Hive-style partition directories: an object is part of the table once
    /// written, partitions are registered in the catalog.
    #[default]
    Hive,
    /// A Delta Lake table: objects are part of the table once committed to
    /// its log, each message once (by content id), atomically.
    Delta,
}

impl TableFormat {
    /// The name used in configuration (`hive`, `delta`).
    pub fn as_str(self) -> &'static str {
        match self {
            TableFormat::Hive => "hive",
            TableFormat::Delta => "delta",
        }
    }
}

impl std::fmt::Display for TableFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TableFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "hive" => Ok(TableFormat::Hive),
            "delta" => Ok(TableFormat::Delta),
            other => Err(format!(
                "unknown table format {other:?} (expected hive or delta)"
            )),
        }
    }
}

/// Column names and types, in order, with their Athena/Hive type. The single
/// source for the Arrow schema, the Glue table and the local catalog.
pub const COLUMNS: &[(&str, &str)] = &[
    ("id", "string"),
    ("text", "string"),
    ("created_at", "timestamp"),
    ("updated_at", "timestamp"),
    ("language", "string"),
    ("sentiment", "string"),
    ("score_positive", "double"),
    ("score_negative", "double"),
    ("score_neutral", "double"),
    ("score_mixed", "double"),
    ("score_compound", "double"),
    ("engine", "string"),
    ("processed_at", "timestamp"),
];

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The Arrow schema of the Parquet files (without the `dt` partition column,
/// which lives in the path). `text` is omitted when `include_text` is false.
pub fn output_schema(include_text: bool) -> SchemaRef {
    let mut fields = vec![Field::new("id", DataType::Utf8, false)];
    if include_text {
        fields.push(Field::new("text", DataType::Utf8, false));
    }
    fields.extend([
        Field::new("created_at", ts(), false),
        Field::new("updated_at", ts(), false),
        Field::new("language", DataType::Utf8, false),
        Field::new("sentiment", DataType::Utf8, false),
        Field::new("score_positive", DataType::Float64, false),
        Field::new("score_negative", DataType::Float64, false),
        Field::new("score_neutral", DataType::Float64, false),
        Field::new("score_mixed", DataType::Float64, false),
        Field::new("score_compound", DataType::Float64, true),
        Field::new("engine", DataType::Utf8, false),
        Field::new("processed_at", ts(), false),
    ]);
    Arc::new(Schema::new(fields))
}

/// Build the Arrow batch for rows (all of one partition, typically).
pub fn to_record_batch(
    rows: &[ScoredRecord],
    include_text: bool,
) -> Result<RecordBatch, EncodeError> {
    let n = rows.len();
    let text_bytes: usize = if include_text {
        rows.iter().map(|r| r.record.text.len()).sum()
    } else {
        0
    };
    let mut id = StringBuilder::with_capacity(n, rows.iter().map(|r| r.record.id.len()).sum());
    let mut text = StringBuilder::with_capacity(n, text_bytes);
    let mut created = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut updated = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut language = StringBuilder::with_capacity(n, n * 2);
    let mut label = StringBuilder::with_capacity(n, n * 8);
    let mut pos = Float64Builder::with_capacity(n);
    let mut neg = Float64Builder::with_capacity(n);
    let mut neu = Float64Builder::with_capacity(n);
    let mut mixed = Float64Builder::with_capacity(n);
    let mut compound = Float64Builder::with_capacity(n);
    let mut engine = StringBuilder::with_capacity(n, n * 10);
    let mut processed = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    for r in rows {
        id.append_value(&r.record.id);
        if include_text {
            text.append_value(&r.record.text);
        }
        created.append_value(r.record.created_at.timestamp_micros());
        updated.append_value(r.record.updated_at.timestamp_micros());
        language.append_value(&r.score.language);
        label.append_value(r.score.label.as_str());
        pos.append_value(r.score.positive);
        neg.append_value(r.score.negative);
        neu.append_value(r.score.neutral);
        mixed.append_value(r.score.mixed);
        compound.append_option(r.score.compound);
        engine.append_value(r.score.engine.as_str());
        processed.append_value(r.processed_at.timestamp_micros());
    }
    let mut cols: Vec<ArrayRef> = vec![Arc::new(id.finish())];
    if include_text {
        cols.push(Arc::new(text.finish()));
    }
    cols.extend::<[ArrayRef; 11]>([
        Arc::new(created.finish()),
        Arc::new(updated.finish()),
        Arc::new(language.finish()),
        Arc::new(label.finish()),
        Arc::new(pos.finish()),
        Arc::new(neg.finish()),
        Arc::new(neu.finish()),
        Arc::new(mixed.finish()),
        Arc::new(compound.finish()),
        Arc::new(engine.finish()),
        Arc::new(processed.finish()),
    ]);
    RecordBatch::try_new(output_schema(include_text), cols).map_err(|e| EncodeError(e.to_string()))
}

/// Parquet compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    /// Snappy: fast, Athena's default.
    #[default]
    Snappy,
    /// ZSTD level 3: smaller files, a little more CPU.
    Zstd,
    /// No compression.
    None,
}

impl std::str::FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "snappy" => Ok(Codec::Snappy),
            "zstd" => Ok(Codec::Zstd),
            "none" | "uncompressed" => Ok(Codec::None),
            o => Err(format!(
                "unknown compression {o:?}: expected snappy, zstd or none"
            )),
        }
    }
}

/// Rows per Parquet row group. Messages hold at most a few thousand records,
/// so a file is usually one row group; large backfill files get several.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Writer properties: chosen codec, dictionary encoding for the low-cardinality
/// string columns (language, sentiment, engine) and none for id/text, where a
/// dictionary only costs memory; row-group statistics for pruning, and no
/// page indexes. A file holds one message's rows (one row group, a handful of
/// pages), so column and offset indexes prune nothing more, and Java readers
/// have misread parquet-rs page indexes (apache/arrow-rs#10316: zero rows).
pub fn writer_properties(codec: Codec) -> WriterProperties {
    let compression = match codec {
        Codec::Snappy => Compression::SNAPPY,
        Codec::Zstd => Compression::ZSTD(ZstdLevel::try_new(3).expect("3 is a valid zstd level")),
        Codec::None => Compression::UNCOMPRESSED,
    };
    WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_enabled(true)
        .set_column_dictionary_enabled("id".into(), false)
        .set_column_dictionary_enabled("text".into(), false)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_offset_index_disabled(true)
        .set_created_by(concat!("sentiment-etl ", env!("CARGO_PKG_VERSION")).into())
        .build()
}

/// Encode a batch as a complete Parquet file in memory.
pub fn encode_parquet(batch: &RecordBatch, codec: Codec) -> Result<Bytes, EncodeError> {
    let mut buf = Vec::with_capacity(batch.get_array_memory_size() / 2 + 1024);
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(writer_properties(codec)))
        .map_err(|e| EncodeError(e.to_string()))?;
    w.write(batch).map_err(|e| EncodeError(e.to_string()))?;
    w.close().map_err(|e| EncodeError(e.to_string()))?;
    Ok(Bytes::from(buf))
}

/// The partition directory for a date, relative to the table root: `dt=2024-05-01`.
pub fn partition_path(dt: NaiveDate) -> String {
    format!("{PARTITION_COLUMN}={}", dt.format("%Y-%m-%d"))
}

/// The object key of one message's rows for one date, relative to the table
/// root. Deterministic in the content id, so a redelivered or re-sent message
/// replaces its own file.
pub fn object_key(dt: NaiveDate, content_id: &str) -> String {
    format!("{}/part-{}.parquet", partition_path(dt), content_id)
}

/// Join a user prefix, the table name and a relative key: `prefix/sentiment/dt=…/part-….parquet`.
pub fn full_key(prefix: &str, relative: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        format!("{TABLE_NAME}/{relative}")
    } else {
        format!("{p}/{TABLE_NAME}/{relative}")
    }
}

/// Group rows by partition date, keeping row order within a partition.
pub fn group_by_partition(rows: Vec<ScoredRecord>) -> Vec<(NaiveDate, Vec<ScoredRecord>)> {
    // The packer fills each message from one partition: keep the rows where they are.
    if let Some(first) = rows.first().map(ScoredRecord::dt) {
        if rows.iter().all(|r| r.dt() == first) {
            return vec![(first, rows)];
        }
    }
    let mut map: std::collections::BTreeMap<NaiveDate, Vec<ScoredRecord>> = Default::default();
    for r in rows {
        map.entry(r.dt()).or_default().push(r);
    }
    map.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sentiment::{Engine, Label};
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, TimestampMicrosecondType};
    use arrow_array::Array;
    use chrono::TimeZone;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn row(id: &str, created: DateTime<Utc>, compound: Option<f64>) -> ScoredRecord {
        ScoredRecord {
            record: SourceRecord {
                id: id.into(),
                text: format!("text of {id}"),
                created_at: created,
                updated_at: created,
                attributes: Default::default(),
            },
            score: SentimentScore {
                label: Label::Positive,
                positive: 0.5,
                negative: 0.1,
                neutral: 0.4,
                mixed: 0.0,
                compound,
                language: "en".into(),
                engine: Engine::Vader,
            },
            processed_at: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        }
    }

    #[test]
    fn parquet_round_trips_with_contract_schema() {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 23, 59, 59).unwrap()
            + chrono::Duration::microseconds(123_456);
        let rows = vec![row("a", t, Some(0.61)), row("b", t, None)];
        for codec in [Codec::Snappy, Codec::Zstd] {
            let bytes = encode_parquet(&to_record_batch(&rows, true).unwrap(), codec).unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).unwrap();
            let meta = reader.metadata().clone();
            for (i, c) in meta.row_group(0).columns().iter().enumerate() {
                assert_eq!(
                    (c.column_index_offset(), c.offset_index_offset()),
                    (None, None),
                    "column {i} ({}) has a page index",
                    c.column_path()
                );
            }
            // Row-group statistics stay, for pruning files.
            let id_stats = meta
                .row_group(0)
                .column(0)
                .statistics()
                .expect("id has statistics");
            assert_eq!(
                (id_stats.min_bytes_opt(), id_stats.max_bytes_opt()),
                (Some(&b"a"[..]), Some(&b"b"[..]))
            );
            let col_codec = meta.row_group(0).column(0).compression();
            // The file records the codec, not the level.
            match codec {
                Codec::Snappy => assert_eq!(col_codec, Compression::SNAPPY),
                _ => assert!(matches!(col_codec, Compression::ZSTD(_)), "{col_codec:?}"),
            }
            let batches: Vec<_> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
            let b = &batches[0];
            assert_eq!(b.schema(), output_schema(true));
            assert_eq!(b.num_rows(), 2);
            let created = b
                .column_by_name("created_at")
                .unwrap()
                .as_primitive::<TimestampMicrosecondType>();
            assert_eq!(created.value(0), t.timestamp_micros());
            let comp = b
                .column_by_name("score_compound")
                .unwrap()
                .as_primitive::<Float64Type>();
            assert_eq!(comp.value(0), 0.61);
            assert!(comp.is_null(1));
        }
    }

    #[test]
    fn text_column_can_be_switched_off() {
        let t = Utc::now();
        let b = to_record_batch(&[row("a", t, None)], false).unwrap();
        assert!(b.column_by_name("text").is_none());
        assert_eq!(b.num_columns(), COLUMNS.len() - 1);
    }

    #[test]
    fn schema_matches_catalog_columns() {
        let s = output_schema(true);
        let names: Vec<_> = s.fields().iter().map(|f| f.name().as_str()).collect();
        let expect: Vec<_> = COLUMNS.iter().map(|c| c.0).collect();
        assert_eq!(names, expect);
    }

    #[test]
    fn partition_is_utc_date_and_keys_are_deterministic() {
        // 23:30 at -05:00 is the next day in UTC.
        let t = chrono::DateTime::parse_from_rfc3339("2024-02-29T23:30:00-05:00")
            .unwrap()
            .with_timezone(&Utc);
        let r = row("a", t, None);
        assert_eq!(r.dt().to_string(), "2024-03-01");
        assert_eq!(object_key(r.dt(), "abc"), "dt=2024-03-01/part-abc.parquet");
        assert_eq!(
            full_key("/lake/", "dt=2024-03-01/part-abc.parquet"),
            "lake/sentiment/dt=2024-03-01/part-abc.parquet"
        );
        assert_eq!(full_key("", "x"), "sentiment/x");
    }

    #[test]
    fn groups_rows_by_date() {
        let d1 = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let d2 = Utc.with_ymd_and_hms(2024, 1, 2, 0, 0, 0).unwrap();
        let g = group_by_partition(vec![
            row("a", d2, None),
            row("b", d1, None),
            row("c", d2, None),
        ]);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].1.len(), 1);
        assert_eq!(
            g[1].1
                .iter()
                .map(|r| r.record.id.as_str())
                .collect::<Vec<_>>(),
            vec!["a", "c"]
        );
        // One partition (what the packer sends): one group, order kept.
        let g = group_by_partition(vec![row("b", d1, None), row("a", d1, None)]);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].0, d1.date_naive());
        assert_eq!(g[0].1[0].record.id, "b");
        assert!(group_by_partition(Vec::new()).is_empty());
    }
}
