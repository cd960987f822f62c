//! The transaction index a process builds from the table's last checkpoint
//! and the commits after it: a message committed before the checkpoint, by
//! another process, is recognised by a process that opens the table later.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use etl_core::WrittenFile;
use etl_delta::{CommitOutcome, DeltaLake, CHECKPOINT_INTERVAL};

mod common;
use common::one_record_message;

/// Message `i` (one record, days before the test started), its object
/// written: the same bytes each time it is asked for.
fn file(table: &Path, i: usize) -> (String, WrittenFile) {
    static START: std::sync::OnceLock<DateTime<Utc>> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap());
    let t = start - TimeDelta::days((i % 20) as i64);
    let content_id = format!("{i:064x}");
    let file = one_record_message(
        table,
        &content_id,
        &format!("id-{i}"),
        &format!("text {i}"),
        t,
    );
    (content_id, file)
}

/// Commit message `m` through `lake`.
async fn commit(lake: &DeltaLake, (id, f): &(String, WrittenFile)) -> CommitOutcome {
    lake.commit_message(id, std::slice::from_ref(f))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_committed_before_the_checkpoint_is_known_to_a_later_process() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("sentiment");
    let first = DeltaLake::at_dir(&table, true).unwrap();
    let n = CHECKPOINT_INTERVAL as usize + 5;
    for i in 0..n {
        let out = commit(&first, &file(&table, i)).await;
        assert!(matches!(out, CommitOutcome::Committed { .. }), "{out:?}");
    }
    let last: serde_json::Value =
        serde_json::from_slice(&std::fs::read(table.join("_delta_log/_last_checkpoint")).unwrap())
            .unwrap();
    let cp = last["version"].as_u64().unwrap();
    assert_eq!(cp, u64::from(CHECKPOINT_INTERVAL) - 1, "{last}");

    // A new process (its own DeltaLake): message 3 was committed at version
    // 4, well before the checkpoint, and is recognised; a new one is not.
    let later = DeltaLake::at_dir(&table, true).unwrap();
    assert_eq!(
        commit(&later, &file(&table, 3)).await,
        CommitOutcome::AlreadyCommitted
    );
    let new = file(&table, n + 1);
    assert!(matches!(
        commit(&later, &new).await,
        CommitOutcome::Committed { .. }
    ));
    // From its own index (the checkpoint's txn column and the commits after
    // it), not delta-rs's replay.
    assert_eq!(later.indexed_transactions().await, Some(n + 1));
    // The first process sees the later one's commit too.
    assert_eq!(commit(&first, &new).await, CommitOutcome::AlreadyCommitted);
}
