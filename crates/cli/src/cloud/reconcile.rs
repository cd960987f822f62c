//! `etl reconcile --stack`: the DynamoDB source table against the Parquet
//! in S3 and the dead-letter queue, with core's exactly-once accounting.
//!
//! The source is read with the producer's own scan (parallel segments), the
//! lake by reading every object of the table (a Hive table: every `.parquet`
//! under its prefix; a Delta table: the live files of its log) for its
//! `id`, `updated_at`, `text` columns (`dt` from the key), and the dead-letter
//! queue by receiving every message once and handing it straight back
//! (ChangeMessageVisibility to 0), so it stays where it was.

use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::Array;
use aws_sdk_cloudformation::error::DisplayErrorContext;
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, MessageSystemAttributeName};
use etl_aws::dynamodb::{DynamoSource, ScanConfig};
use etl_aws::Clients;
use etl_core::accounting::{Reconciliation, Version};
use etl_core::{decode_message, FieldMap, RecordSource, SourceItem};
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use super::status::MAX_LIST_PAGES;
use super::{clients, resolve};
use crate::ops::{emit, reconciliation_text};
use crate::Target;

/// Objects read at once.
const CONCURRENT_GETS: usize = 8;

/// What `etl reconcile --stack` found.
#[derive(Debug, Clone, Serialize)]
pub struct CloudReconciliation {
    /// Source items rejected by the scan (invalid: never sent).
    pub rejected_source_items: u64,
    /// Parquet objects read.
    pub objects: usize,
    /// Dead-letter messages read.
    pub dead_letter_messages: usize,
    /// Dead-letter messages whose body is not a message.
    pub unreadable_dead_letters: usize,
    /// The accounting.
    #[serde(flatten)]
    pub result: Reconciliation,
}

/// Every `.parquet` object under `prefix`, with its size.
pub(super) async fn list_parquet(
    c: &Clients,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut token = None;
    for _ in 0..MAX_LIST_PAGES {
        let page =
            c.s3.list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    anyhow!(
                        "ListObjectsV2 s3://{bucket}/{prefix}: {}",
                        DisplayErrorContext(&e)
                    )
                })?;
        for o in page.contents() {
            if let Some(k) = o.key().filter(|k| k.ends_with(".parquet")) {
                out.push((k.to_owned(), o.size().unwrap_or(0).max(0) as u64));
            }
        }
        match page.next_continuation_token {
            Some(t) if page.is_truncated == Some(true) => token = Some(t),
            _ => return Ok(out),
        }
    }
    Err(anyhow!(
        "s3://{bucket}/{prefix}: more than {MAX_LIST_PAGES} listing pages"
    ))
}

/// A string column's values, whichever Arrow string type the file's writer
/// chose: the consumer writes `Utf8`; delta-rs's compaction writes
/// `Utf8View` (the same Parquet strings, typed otherwise in the schema it
/// embeds).
fn strings(a: &dyn Array) -> Option<Vec<Option<&str>>> {
    fn collect<'a>(a: &dyn Array, f: impl Fn(usize) -> &'a str) -> Vec<Option<&'a str>> {
        (0..a.len())
            .map(|i| (!a.is_null(i)).then(|| f(i)))
            .collect()
    }
    if let Some(s) = a.as_string_opt::<i32>() {
        return Some(collect(a, |i| s.value(i)));
    }
    if let Some(s) = a.as_string_opt::<i64>() {
        return Some(collect(a, |i| s.value(i)));
    }
    a.as_string_view_opt().map(|s| collect(a, |i| s.value(i)))
}

/// The versions in one Parquet object, and whether it has a `text` column.
fn object_versions(key: &str, bytes: bytes::Bytes, dt: &str) -> Result<(Vec<Version>, bool)> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .with_context(|| format!("{key}: not Parquet"))?
        .build()
        .with_context(|| format!("{key}: unreadable Parquet"))?;
    let mut out = Vec::new();
    let mut has_text = true;
    for b in reader {
        let b = b.with_context(|| format!("{key}: unreadable row group"))?;
        let col = |n: &str| {
            b.column_by_name(n)
                .ok_or_else(|| anyhow!("{key}: no column {n}"))
        };
        let id =
            strings(col("id")?.as_ref()).ok_or_else(|| anyhow!("{key}: id is not a string"))?;
        let up = col("updated_at")?
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| anyhow!("{key}: updated_at is not a µs timestamp"))?;
        let text = b.column_by_name("text").and_then(|c| strings(c.as_ref()));
        has_text = text.is_some();
        for i in 0..b.num_rows() {
            out.push(Version::row(
                id[i].unwrap_or_default(),
                up.value(i),
                text.as_ref().and_then(|t| t[i]),
                dt,
            ));
        }
    }
    Ok((out, has_text))
}

/// Receive every dead-letter message once, then make each visible again.
async fn peek_dead_letters(
    c: &Clients,
    dlq: &str,
    budget: u64,
) -> Result<(Vec<(Version, String)>, usize, usize)> {
    let mut dead = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut unreadable = 0;
    let mut handles = Vec::new();
    let mut empty = 0;
    while (seen.len() as u64) < budget && empty < 2 {
        let out = c
            .sqs
            .receive_message()
            .queue_url(dlq)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(300)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| anyhow!("ReceiveMessage {dlq}: {}", DisplayErrorContext(&e)))?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            empty += 1;
            continue;
        }
        empty = 0;
        for m in messages {
            handles.push(m.receipt_handle.clone().unwrap_or_default());
            if !seen.insert(m.message_id.clone().unwrap_or_default()) {
                continue;
            }
            let attr = |k: &str| {
                m.message_attributes
                    .as_ref()
                    .and_then(|a| a.get(k))
                    .and_then(|v| v.string_value.clone())
            };
            let reasons: serde_json::Map<String, serde_json::Value> =
                attr(etl_aws::sqs::ATTR_REASONS)
                    .and_then(|j| serde_json::from_str(&j).ok())
                    .unwrap_or_default();
            let summary = attr(etl_aws::sqs::ATTR_REASON).unwrap_or_else(|| {
                format!(
                    "message {} failed its maximum receives (the consumer's logs say why)",
                    m.message_id.as_deref().unwrap_or("?")
                )
            });
            match decode_message(m.body.as_deref().unwrap_or_default()) {
                Ok(msg) => {
                    for r in &msg.records {
                        let why = reasons
                            .get(&r.id)
                            .and_then(|v| v.as_str())
                            .map_or_else(|| summary.clone(), str::to_owned);
                        dead.push((Version::of(r), why));
                    }
                }
                Err(_) => unreadable += 1,
            }
        }
    }
    // Hand them back, ten at a time.
    for chunk in handles.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, h)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(format!("h{i}"))
                    .receipt_handle(h)
                    .visibility_timeout(0)
                    .build()
                    .map_err(|e| anyhow!("ChangeMessageVisibilityBatch entry: {e}"))
            })
            .collect::<Result<Vec<_>>>()?;
        c.sqs
            .change_message_visibility_batch()
            .queue_url(dlq)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "ChangeMessageVisibilityBatch {dlq}: {}",
                    DisplayErrorContext(&e)
                )
            })?;
    }
    Ok((dead, seen.len(), unreadable))
}

/// `etl reconcile --stack`.
pub async fn reconcile(t: &Target, fields: FieldMap, show: usize, json: bool) -> Result<ExitCode> {
    let c = clients().await?;
    let s = resolve(t, &c).await?;
    let table = s.need(
        &s.source_table,
        "source table",
        "source-table",
        "SourceTableName",
    )?;
    let bucket = s
        .need(&s.bucket, "lake bucket", "lake-location", "LakeLocation")?
        .to_owned();
    let prefix = s.table_prefix.clone().unwrap_or_default();

    let bar = crate::ops::spinner("scanning the source table");
    let mut scan = ScanConfig::new(table);
    scan.fields = fields;
    let mut source =
        DynamoSource::open(c.dynamodb.clone(), scan).context("opening the source scan")?;
    let mut source_versions = Vec::new();
    let mut rejected = 0u64;
    while let Some(chunk) = source
        .next_chunk()
        .await
        .context("scanning the source table")?
    {
        for item in chunk {
            match item {
                SourceItem::Record(r) => source_versions.push(Version::of(&r)),
                SourceItem::Rejected(_) => rejected += 1,
            }
        }
        bar.set_message(format!(
            "scanning the source table: {} items",
            source_versions.len()
        ));
    }
    drop(source);
    bar.finish_and_clear();

    let keys = super::lake_objects(&s, &c).await?;
    let bar = crate::ops::counter_bar(keys.len() as u64, "reading the lake's objects");
    let s3 = c.s3.clone();
    let per_object: Vec<(Vec<Version>, bool)> =
        futures::stream::iter(keys.iter().map(|(key, _)| {
            let (s3, bucket, key, prefix, bar) = (
                s3.clone(),
                bucket.clone(),
                key.clone(),
                prefix.clone(),
                bar.clone(),
            );
            async move {
                let obj = s3
                    .get_object()
                    .bucket(&bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow!("GetObject s3://{bucket}/{key}: {}", DisplayErrorContext(&e))
                    })?;
                let bytes = obj
                    .body
                    .collect()
                    .await
                    .map_err(|e| anyhow!("GetObject s3://{bucket}/{key}: {e}"))?
                    .into_bytes();
                let dt = key
                    .strip_prefix(prefix.as_str())
                    .and_then(|k| k.split('/').next())
                    .and_then(|d| d.strip_prefix("dt="))
                    .unwrap_or_default()
                    .to_owned();
                let r = object_versions(&key, bytes, &dt);
                bar.inc(1);
                r
            }
        }))
        .buffer_unordered(CONCURRENT_GETS)
        .try_collect()
        .await?;
    bar.finish_and_clear();
    let has_text = per_object.iter().all(|(_, t)| *t);
    let lake: Vec<Version> = per_object.into_iter().flat_map(|(v, _)| v).collect();

    let (dead, dl_messages, unreadable) = match &s.dlq_url {
        Some(dlq) => {
            let depth = super::status::queue_depth(&c, dlq).await?;
            peek_dead_letters(&c, dlq, depth.visible + depth.in_flight + 100).await?
        }
        None => (Vec::new(), 0, 0),
    };
    let r = CloudReconciliation {
        rejected_source_items: rejected,
        objects: keys.len(),
        dead_letter_messages: dl_messages,
        unreadable_dead_letters: unreadable,
        result: Reconciliation::new(&source_versions, &lake, &dead, has_text),
    };
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&r)?))?;
    } else {
        let mut o = reconciliation_text(&r.result, show);
        o.push_str(&format!(
            "read {} objects and {} dead-letter messages; {} source items rejected as invalid\n",
            r.objects, r.dead_letter_messages, r.rejected_source_items
        ));
        emit(&o)?;
    }
    Ok(if r.result.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    })
}
