//! The nightly maintenance on a real table: a lake of many small files
//! (one per message) becomes one file per partition in one commit, the
//! replaced files are vacuumed, and the table holds every version once.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

use compactor::{nightly, Config};
use etl_core::output::TableFormat;
use etl_core::{Catalog, ConsumeOptions, Consumer, SourceRecord, VaderAnalyzer, SYSTEM_CLOCK};
use etl_delta::DeltaLake;
use etl_local::{FsSink, LocalCatalog};
use etl_testkit::accounting::{assert_ok, exactly_once, FromLake, Version};
use etl_testkit::delta_log::{live_files_per_version, read_delta};
use etl_testkit::fixtures::hostile_records;
use etl_testkit::records::pack;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn configuration_is_read_and_checked() {
    let c = Config::from_lookup(&env(&[("TABLE_LOCATION", "s3://lake/etl/sentiment/")])).unwrap();
    assert_eq!(c.target_file_bytes, 128 * 1024 * 1024);
    assert_eq!(c.vacuum_retention_hours, 168);
    let bad = Config::from_lookup(&env(&[("TABLE_LOCATION", "lake/etl")])).unwrap_err();
    assert!(bad.to_string().contains("TABLE_LOCATION"), "{bad}");
    let bad = Config::from_lookup(&env(&[
        ("TABLE_LOCATION", "s3://lake/t/"),
        ("TARGET_FILE_BYTES", "lots"),
    ]))
    .unwrap_err();
    assert!(bad.to_string().contains("TARGET_FILE_BYTES"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_become_one_per_partition_and_the_old_ones_are_vacuumed() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let table = lake.join("sentiment");
    let url = url::Url::from_directory_path(std::path::absolute(&table).unwrap()).unwrap();
    let cfg = Config::from_lookup(&env(&[
        ("TABLE_LOCATION", url.as_str()),
        ("VACUUM_RETENTION_HOURS", "168"),
    ]))
    .unwrap();
    // Before any commit there is nothing to do, and nothing is created.
    let existing = DeltaLake::existing(url.clone(), HashMap::new());
    let empty = nightly(&existing, &cfg, "test").await.unwrap();
    assert!(empty.compaction.is_none());
    assert!(!table.join("_delta_log").exists());

    let recs: Vec<SourceRecord> = hostile_records(200).iter().map(|f| f.to_record()).collect();
    let catalog = Arc::new(LocalCatalog::with_format(&lake, true, TableFormat::Delta).unwrap());
    catalog.ensure_table().await.unwrap();
    let sink = FsSink::new(&lake);
    let analyzer = VaderAnalyzer::new();
    let consumer = Consumer {
        analyzer: &analyzer,
        sink: &sink,
        catalog: catalog.as_ref(),
        options: ConsumeOptions::default(),
        clock: &SYSTEM_CLOCK,
    };
    let msgs = pack(recs.clone(), 2048);
    for m in &msgs {
        consumer.consume(&m.content_id, &m.body).await.unwrap();
    }
    let report = nightly(&existing, &cfg, "test").await.unwrap();
    let c = report.compaction.unwrap();
    assert_eq!(c.before.files, msgs.len());
    assert_eq!(c.after.files, c.after.partitions.len());
    // One partition per day the records were created on (the fixture's
    // spread crosses midnight at some times of day).
    let days: std::collections::BTreeSet<_> =
        recs.iter().map(|r| r.created_at.date_naive()).collect();
    assert_eq!(c.after.partitions.len(), days.len());
    // A week's retention: the files just replaced are kept for old readers.
    assert_eq!(report.vacuumed_files, 0);
    assert_eq!(live_files_per_version(&table).len(), msgs.len() + 2);
    assert_ok(&exactly_once(
        &recs,
        &Version::of_local(&read_delta(&table, None)),
    ));
}
