//! `etl reconcile` on a local lake: the input file against the lake, with
//! core's exactly-once accounting ([`etl_core::accounting`]).
//!
//! Every valid record of the input is a version (id, `updated_at`, text,
//! `dt`); every row of the table is read back from the Parquet files; the
//! dead-letter file (and an interrupted redrive's in-progress files) gives
//! the versions that are out of the lake with a reason. Rejected input lines
//! are counted, not versions: they never reached the queue and are in
//! `_rejects/`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::Array;
use arrow_schema::DataType;
use etl_core::accounting::{Reconciliation, Version};
use etl_core::{decode_message, BackendError, FieldMap, QueryEngine, RecordSource, SourceItem};
use serde::Serialize;

use crate::catalog::LocalCatalog;
use crate::queue::DeadLetter;
use crate::run::LakePaths;
use crate::source::{FileSource, InputFormat};
use crate::DataFusionQuery;

/// What `etl reconcile` found.
#[derive(Debug, Clone, Serialize)]
pub struct LocalReconciliation {
    /// The input file.
    pub input: PathBuf,
    /// The lake.
    pub lake: PathBuf,
    /// Input lines rejected (not versions; see `_rejects/`).
    pub rejected_input: u64,
    /// Dead letters that could not be read (their records cannot be placed).
    pub unreadable_dead_letters: u64,
    /// The accounting.
    #[serde(flatten)]
    pub result: Reconciliation,
}

/// Every row of the lake's table as a version (`text` `None` when the lake
/// was written without it), and whether it holds texts.
pub async fn lake_versions(lake: &Path) -> Result<(Vec<Version>, bool), BackendError> {
    let target = lake.display().to_string();
    let entry = LocalCatalog::load(lake)?.ok_or_else(|| {
        BackendError::permanent(
            "open lake",
            &target,
            "no catalog found (expected _catalog/sentiment.json)",
        )
    })?;
    let q = DataFusionQuery::open(lake).await?;
    let text = if entry.include_text { "text" } else { "NULL" };
    let batches = q
        .query(&format!(
            "SELECT id, CAST(updated_at AS BIGINT) AS updated_at_us, {text} AS text, dt FROM sentiment"
        ))
        .await?;
    let mut out = Vec::new();
    for b in batches {
        let col = |i: usize, t: &DataType| {
            arrow_cast::cast(b.column(i), t)
                .map_err(|e| BackendError::permanent_from("read lake", &target, e))
        };
        let id = col(0, &DataType::Utf8)?;
        let up = col(1, &DataType::Int64)?;
        let tx = col(2, &DataType::Utf8)?;
        let dt = col(3, &DataType::Utf8)?;
        let (id, up, tx, dt) = (
            id.as_string::<i32>(),
            up.as_primitive::<Int64Type>(),
            tx.as_string::<i32>(),
            dt.as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            out.push(Version::row(
                id.value(i),
                up.value(i),
                (!tx.is_null(i)).then(|| tx.value(i)),
                dt.value(i),
            ));
        }
    }
    Ok((out, entry.include_text))
}

/// The versions in the lake's dead-letter places, each with its reason,
/// and how many letters could not be read.
pub fn dead_letter_versions(lake: &Path) -> std::io::Result<(Vec<(Version, String)>, u64)> {
    let mut files = vec![LakePaths::dead_letters(lake)];
    files.extend(crate::redrive::in_progress(lake));
    let mut out = Vec::new();
    let mut unreadable = 0;
    for f in files {
        // Lossy: a damaged line is counted unreadable, not fatal.
        let text = match std::fs::read(&f) {
            Ok(t) => String::from_utf8_lossy(&t).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Some((d, m)) = serde_json::from_str::<DeadLetter>(line)
                .ok()
                .and_then(|d| decode_message(&d.body).ok().map(|m| (d, m)))
            else {
                unreadable += 1;
                continue;
            };
            for r in &m.records {
                let why = d.record_reasons.get(&r.id).unwrap_or(&d.reason);
                out.push((Version::of(r), why.clone()));
            }
        }
    }
    Ok((out, unreadable))
}

/// Reconcile `input` (read with `fields`) against the lake.
pub async fn reconcile(
    input: &Path,
    format: Option<InputFormat>,
    fields: FieldMap,
    lake: &Path,
) -> Result<LocalReconciliation, BackendError> {
    let format = format.unwrap_or_else(|| InputFormat::from_path(input));
    let mut source = FileSource::open_counted(input, format, fields, Arc::new(AtomicU64::new(0)))?;
    let mut source_versions = Vec::new();
    let mut rejected = 0u64;
    while let Some(chunk) = source.next_chunk().await? {
        for item in chunk {
            match item {
                SourceItem::Record(r) => source_versions.push(Version::of(&r)),
                SourceItem::Rejected(_) => rejected += 1,
            }
        }
    }
    let (lake_rows, has_text) = lake_versions(lake).await?;
    let (dead, unreadable) = dead_letter_versions(lake).map_err(|e| {
        BackendError::permanent_from("read dead letters", lake.display().to_string(), e)
    })?;
    Ok(LocalReconciliation {
        input: input.to_owned(),
        lake: lake.to_owned(),
        rejected_input: rejected,
        unreadable_dead_letters: unreadable,
        result: Reconciliation::new(&source_versions, &lake_rows, &dead, has_text),
    })
}
