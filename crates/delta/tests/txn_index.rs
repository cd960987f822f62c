//! The transaction index a process builds from the table's last checkpoint
//! and the commits after it: a message committed before the checkpoint, by
//! another process, is recognised by a process that opens the table later.
#![allow(clippy::unwrap_used)]

use chrono::{TimeZone, Utc};
use etl_core::output::{encode_parquet, object_key, to_record_batch};
use etl_core::{Codec, Engine, Label, ScoredRecord, SentimentScore, SourceRecord, WrittenFile};
use etl_delta::{CommitOutcome, DeltaLake, CHECKPOINT_INTERVAL};

fn file(i: usize) -> (String, WrittenFile) {
    let t = Utc
        .with_ymd_and_hms(2026, 11, 1 + (i % 20) as u32, 12, 0, 0)
        .unwrap();
    let row = ScoredRecord {
        record: SourceRecord {
            id: format!("id-{i}"),
            text: format!("text {i}"),
            created_at: t,
            updated_at: t,
            attributes: Default::default(),
        },
        score: SentimentScore {
            label: Label::Positive,
            positive: 0.5,
            negative: 0.1,
            neutral: 0.4,
            mixed: 0.0,
            compound: Some(0.3),
            language: "en".into(),
            engine: Engine::Vader,
        },
        processed_at: t,
    };
    let batch = to_record_batch(&[row], true).unwrap();
    let content_id = format!("{i:064x}");
    let dt = t.date_naive();
    let body = encode_parquet(&batch, Codec::Snappy).unwrap();
    (
        content_id.clone(),
        WrittenFile {
            key: object_key(dt, &content_id),
            dt,
            body,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_committed_before_the_checkpoint_is_known_to_a_later_process() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("sentiment");
    let first = DeltaLake::at_dir(&table, true).unwrap();
    let n = CHECKPOINT_INTERVAL as usize + 5;
    for i in 0..n {
        let (id, f) = file(i);
        std::fs::create_dir_all(table.join(f.key.rsplit_once('/').unwrap().0)).unwrap();
        std::fs::write(table.join(&f.key), &f.body).unwrap();
        let out = first
            .commit_message(&id, std::slice::from_ref(&f))
            .await
            .unwrap();
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
    let (id, f) = file(3);
    assert_eq!(
        later
            .commit_message(&id, std::slice::from_ref(&f))
            .await
            .unwrap(),
        CommitOutcome::AlreadyCommitted
    );
    let (id, f) = file(n + 1);
    std::fs::create_dir_all(table.join(f.key.rsplit_once('/').unwrap().0)).unwrap();
    std::fs::write(table.join(&f.key), &f.body).unwrap();
    assert!(matches!(
        later
            .commit_message(&id, std::slice::from_ref(&f))
            .await
            .unwrap(),
        CommitOutcome::Committed { .. }
    ));
    // From its own index (the checkpoint's txn column and the commits after
    // it), not delta-rs's replay.
    assert_eq!(later.indexed_transactions().await, Some(n + 1));
    // The first process sees the later one's commit too.
    assert_eq!(
        first
            .commit_message(&id, std::slice::from_ref(&f))
            .await
            .unwrap(),
        CommitOutcome::AlreadyCommitted
    );
}
