//! A file's Delta statistics (`add.stats`), read from its own Parquet footer.
//!
//! Readers prune with them: Athena/Trino and delta-rs's DataFusion provider
//! skip a file whose `[min, max]` cannot match a predicate. The format is the
//! protocol's JSON: `numRecords`, and per column `minValues`, `maxValues` and
//! `nullCount`. Timestamps are written at millisecond precision as the
//! protocol's readers expect; the minimum is rounded down and the maximum up,
//! so the bounds stay true bounds of the microsecond values.

use arrow_schema::{DataType, TimeUnit};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use parquet::arrow::parquet_to_arrow_schema;
use parquet::file::metadata::ParquetMetaDataReader;
use parquet::file::statistics::Statistics;
use serde_json::{Map, Value};

/// Longest string kept as a bound: longer ones are left out (no bound is
/// better than a wrong one, and Spark's writers cap them alike).
const MAX_STRING_STAT: usize = 32;

/// The `add.stats` JSON of a Parquet object, or why its footer is unreadable.
pub fn stats_json(body: &Bytes) -> Result<String, String> {
    let md = ParquetMetaDataReader::new()
        .parse_and_finish(body)
        .map_err(|e| format!("parquet footer: {e}"))?;
    let fmd = md.file_metadata();
    let schema = parquet_to_arrow_schema(fmd.schema_descr(), fmd.key_value_metadata())
        .map_err(|e| format!("parquet schema: {e}"))?;
    let mut min = Map::new();
    let mut max = Map::new();
    let mut nulls = Map::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let mut lo: Option<Value> = None;
        let mut hi: Option<Value> = None;
        let mut null_count = Some(0u64);
        let mut bounded = true;
        for rg in md.row_groups() {
            let Some(stats) = rg.column(i).statistics() else {
                bounded = false;
                null_count = None;
                continue;
            };
            null_count = null_count.zip(stats.null_count_opt()).map(|(a, b)| a + b);
            match bounds(field.data_type(), stats) {
                Some((l, h)) => {
                    lo = Some(match lo {
                        Some(v) => pick(v, l, std::cmp::Ordering::Less),
                        None => l,
                    });
                    hi = Some(match hi {
                        Some(v) => pick(v, h, std::cmp::Ordering::Greater),
                        None => h,
                    });
                }
                // A row group of only nulls has no bounds and narrows nothing.
                None if stats.null_count_opt() == Some(rg.num_rows() as u64) => {}
                None => bounded = false,
            }
        }
        let name = field.name().clone();
        if let (true, Some(l), Some(h)) = (bounded, lo, hi) {
            min.insert(name.clone(), to_json(field.data_type(), l, false));
            max.insert(name.clone(), to_json(field.data_type(), h, true));
        }
        if let Some(n) = null_count {
            nulls.insert(name, Value::from(n));
        }
    }
    let mut out = Map::new();
    out.insert("numRecords".into(), Value::from(fmd.num_rows()));
    out.insert("minValues".into(), Value::Object(min));
    out.insert("maxValues".into(), Value::Object(max));
    out.insert("nullCount".into(), Value::Object(nulls));
    Ok(Value::Object(out).to_string())
}

/// The exact bounds of one row group's column, as comparable JSON-ready
/// values: timestamps as microseconds, doubles, short strings.
fn bounds(data_type: &DataType, stats: &Statistics) -> Option<(Value, Value)> {
    match (data_type, stats) {
        (DataType::Timestamp(TimeUnit::Microsecond, _), Statistics::Int64(s)) => {
            Some((Value::from(*s.min_opt()?), Value::from(*s.max_opt()?)))
        }
        (DataType::Float64, Statistics::Double(s)) => {
            let (l, h) = (*s.min_opt()?, *s.max_opt()?);
            (l.is_finite() && h.is_finite()).then(|| (Value::from(l), Value::from(h)))
        }
        (DataType::Utf8, Statistics::ByteArray(s)) => {
            if !(s.min_is_exact() && s.max_is_exact()) {
                return None;
            }
            let l = std::str::from_utf8(s.min_opt()?.data()).ok()?;
            let h = std::str::from_utf8(s.max_opt()?.data()).ok()?;
            (l.chars().count() <= MAX_STRING_STAT && h.chars().count() <= MAX_STRING_STAT)
                .then(|| (Value::from(l), Value::from(h)))
        }
        _ => None,
    }
}

/// The lower (`Less`) or higher (`Greater`) of two bounds of one column.
fn pick(a: Value, b: Value, want: std::cmp::Ordering) -> Value {
    let ord = match (&a, &b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x
                .as_f64()
                .zip(y.as_f64())
                .and_then(|(x, y)| x.partial_cmp(&y))
                .unwrap_or(std::cmp::Ordering::Equal),
        },
        // Parquet orders strings by their UTF-8 bytes, as Delta does.
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => std::cmp::Ordering::Equal,
    };
    if ord == want {
        a
    } else {
        b
    }
}

fn to_json(data_type: &DataType, v: Value, is_max: bool) -> Value {
    match (data_type, v.as_i64()) {
        (DataType::Timestamp(..), Some(micros)) => {
            // Milliseconds, rounded outwards so the bound still holds.
            let ms = if is_max {
                micros.div_euclid(1000) + i64::from(micros.rem_euclid(1000) != 0)
            } else {
                micros.div_euclid(1000)
            };
            DateTime::<Utc>::from_timestamp_millis(ms)
                .map(|t| Value::from(t.to_rfc3339_opts(SecondsFormat::Millis, true)))
                .unwrap_or(Value::Null)
        }
        _ => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
    use arrow_schema::{Field, Schema};

    fn parquet(batch: &RecordBatch) -> Bytes {
        let mut buf = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), None).unwrap();
        w.write(batch).unwrap();
        w.close().unwrap();
        Bytes::from(buf)
    }

    #[test]
    fn bounds_are_true_bounds_at_millisecond_precision() {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("created_at", ts, false),
            Field::new("score", DataType::Float64, true),
            Field::new("text", DataType::Utf8, false),
        ]));
        // 2026-01-02T03:04:05.000123Z and .999001Z: min rounds down, max up.
        let t0 = 1_767_323_045_000_123i64;
        let t1 = 1_767_323_045_999_001i64;
        let long = "x".repeat(40);
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["b/..", "a b", "é"])),
                Arc::new(TimestampMicrosecondArray::from(vec![t1, t0, t0]).with_timezone("UTC")),
                Arc::new(Float64Array::from(vec![Some(0.5), None, Some(-0.25)])),
                Arc::new(StringArray::from(vec![long.as_str(), "a", "b"])),
            ],
        )
        .unwrap();
        let v: Value = serde_json::from_str(&stats_json(&parquet(&batch)).unwrap()).unwrap();
        assert_eq!(v["numRecords"], 3);
        assert_eq!(v["minValues"]["created_at"], "2026-01-02T03:04:05.000Z");
        assert_eq!(v["maxValues"]["created_at"], "2026-01-02T03:04:06.000Z");
        assert_eq!(v["minValues"]["score"], -0.25);
        assert_eq!(v["maxValues"]["score"], 0.5);
        assert_eq!(v["nullCount"]["score"], 1);
        assert_eq!(v["minValues"]["id"], "a b");
        assert_eq!(v["maxValues"]["id"], "é");
        // A 40-character maximum is no bound at all, not a truncated one.
        assert!(v["maxValues"].get("text").is_none(), "{v}");
        assert_eq!(v["nullCount"]["text"], 0);
    }

    #[test]
    fn an_unreadable_object_is_an_error_not_empty_stats() {
        assert!(stats_json(&Bytes::from_static(b"not parquet")).is_err());
    }
}
