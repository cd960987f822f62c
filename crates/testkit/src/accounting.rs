//! The exact accounting every reliability scenario ends with (core's
//! [`etl_core::accounting`], the same one `etl reconcile` uses), and the
//! JSON line it appends to `$RELIABILITY_REPORT`.
//!
//! What is compared is the multiset of record *versions* — (id, updated_at,
//! SHA-256 of the text, dt) — read back from the real Parquet in the lake,
//! against the source's: a record in the lake twice, in the wrong partition,
//! with another text or another `updated_at` is caught, which an id set
//! would miss. A version in a dead-letter place needs a reason, and must be
//! one the scenario expects to be refused: a healthy record dead-lettered
//! with its message is a failure too.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

pub use etl_core::accounting::{versions, Accounting, Version};
use etl_core::{decode_message, SourceRecord};
use serde_json::{json, Value};

use crate::lake::Row;
use crate::s3_lake::S3Row;

/// Lake rows as versions.
pub trait FromLake {
    /// Every row of an S3 lake.
    fn of_s3(rows: &[S3Row]) -> Vec<Version>;
    /// Every row of a local lake.
    fn of_local(rows: &[Row]) -> Vec<Version>;
}

impl FromLake for Version {
    fn of_s3(rows: &[S3Row]) -> Vec<Version> {
        rows.iter()
            .map(|r| Version::row(&r.id, r.updated_at_us, Some(&r.text), &r.dt))
            .collect()
    }

    fn of_local(rows: &[Row]) -> Vec<Version> {
        rows.iter()
            .map(|r| Version::row(&r.id, r.updated_at_us, r.text.as_deref(), &r.dt))
            .collect()
    }
}

/// Each (id, `updated_at`, text) version among `records` once: what must
/// land when several sources of versions overlap (what a failed run sent,
/// and what the source holds now).
pub fn distinct_versions<'a>(
    records: impl IntoIterator<Item = &'a SourceRecord>,
) -> Vec<SourceRecord> {
    let mut seen = std::collections::BTreeMap::new();
    for r in records {
        seen.entry((
            r.id.clone(),
            r.updated_at.timestamp_micros(),
            r.text.clone(),
        ))
        .or_insert_with(|| r.clone());
    }
    seen.into_values().collect()
}

/// The accounting of a scenario in which nothing may be dead-lettered.
pub fn exactly_once(records: &[SourceRecord], lake: &[Version]) -> Accounting {
    Accounting::new(&versions(records), lake, &[], &BTreeSet::new())
}

/// The versions in a dead-lettered message body, each with `reason`
/// (none when the body does not decode).
pub fn dead_versions(body: &str, reason: &str) -> Vec<(Version, String)> {
    decode_message(body)
        .map(|m| {
            m.records
                .iter()
                .map(|r| (Version::of(r), reason.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Assert the accounting, showing the first offenders.
pub fn assert_ok(acc: &Accounting) {
    let first = |v: &[Version]| v.iter().take(10).cloned().collect::<Vec<_>>();
    assert!(
        acc.ok(),
        "accounting failed: {:?}",
        Accounting {
            missing: first(&acc.missing),
            unexpected: first(&acc.unexpected),
            healthy_dead_lettered: first(&acc.healthy_dead_lettered),
            ..acc.clone()
        }
    );
}

/// Append the scenario's figures to `$RELIABILITY_REPORT` (one JSON line),
/// then assert the accounting.
pub fn report(
    scenario: &str,
    backend: &str,
    acc: &Accounting,
    faults: Value,
    extra: Value,
    started: Instant,
) {
    static LOCK: Mutex<()> = Mutex::new(());
    if let Some(path) = std::env::var_os("RELIABILITY_REPORT") {
        let line = json!({
            "scenario": scenario,
            "backend": backend,
            "ok": acc.ok(),
            "records": acc.json(),
            "faults": faults,
            "extra": extra,
            "elapsed_ms": started.elapsed().as_millis() as u64,
        });
        let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open RELIABILITY_REPORT");
        writeln!(f, "{line}").expect("write RELIABILITY_REPORT");
    }
    assert_ok(acc);
}
