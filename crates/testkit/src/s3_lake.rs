//! Reading the S3 lake back the way Athena would: every Parquet object under
//! `prefix/sentiment/`, with `dt` from the Hive key.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMicrosecondType};
use arrow_array::Array;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The columns the end-to-end checks look at.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Row {
    /// The record id.
    pub id: String,
    /// The text.
    pub text: String,
    /// `updated_at`, µs since the epoch.
    pub updated_at_us: i64,
    /// The sentiment label.
    pub sentiment: String,
    /// `score_compound` (`None` for engines without one).
    pub compound: Option<f64>,
    /// The engine that scored the record.
    pub engine: String,
    /// The Hive partition the object is under.
    pub dt: String,
    /// The object's key.
    pub key: String,
}

/// Every object key in the bucket, sorted (bounded paging).
pub async fn keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut token = None;
    for _ in 0..1_000 {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        out.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        token = page.next_continuation_token;
        if token.is_none() {
            break;
        }
    }
    out.sort();
    out
}

/// One object's bytes.
async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bytes::Bytes {
    s3.get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetObject {key}: {e}"))
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
}

/// Copy every object under `prefix` into `dir` (same relative paths), so a
/// table on S3 can be read with the local readers.
pub async fn mirror(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str, dir: &std::path::Path) {
    for key in keys(s3, bucket).await {
        let Some(rel) = key.strip_prefix(prefix) else {
            continue;
        };
        let body = get(s3, bucket, &key).await;
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
}

/// Every row of every Parquet object in the bucket.
pub async fn rows(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<S3Row> {
    let mut rows = Vec::new();
    for key in keys(s3, bucket).await {
        let dt = key
            .split('/')
            .find_map(|p| p.strip_prefix("dt="))
            .unwrap_or_else(|| panic!("{key} is not under a dt= partition"))
            .to_owned();
        let body = get(s3, bucket, &key).await;
        for batch in ParquetRecordBatchReaderBuilder::try_new(body)
            .unwrap()
            .build()
            .unwrap()
        {
            let b = batch.unwrap();
            let s = |name: &str| b.column_by_name(name).unwrap().as_string::<i32>().clone();
            let (id, text, sentiment, engine) = (s("id"), s("text"), s("sentiment"), s("engine"));
            let compound = b
                .column_by_name("score_compound")
                .unwrap()
                .as_primitive::<Float64Type>()
                .clone();
            let updated = b
                .column_by_name("updated_at")
                .unwrap()
                .as_primitive::<TimestampMicrosecondType>()
                .clone();
            for i in 0..b.num_rows() {
                rows.push(S3Row {
                    id: id.value(i).to_owned(),
                    text: text.value(i).to_owned(),
                    updated_at_us: updated.value(i),
                    sentiment: sentiment.value(i).to_owned(),
                    compound: (!compound.is_null(i)).then(|| compound.value(i)),
                    engine: engine.value(i).to_owned(),
                    dt: dt.clone(),
                    key: key.clone(),
                });
            }
        }
    }
    rows
}
