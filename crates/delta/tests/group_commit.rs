//! Group commits: messages committed concurrently through one handle share
//! one table version carrying each message's transaction, and are still
//! committed exactly once under redelivery and racing processes.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use chrono::{DurationRound, TimeDelta, Utc};
use etl_core::WrittenFile;
use etl_delta::{CommitOutcome, DeltaLake};

mod common;
use common::one_record_message;

/// Message `i`: one record (days before now, so partitions vary), its
/// object written to the table directory.
fn message(table: &Path, i: usize) -> (String, WrittenFile) {
    let t =
        Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap() - TimeDelta::days((i % 3) as i64);
    let content_id = format!("{:064x}", 0xabc000 + i);
    let file = one_record_message(
        table,
        &content_id,
        &format!("post/{i}/../ é 😀"),
        &format!("text {i} \u{fffe}"),
        t,
    );
    (content_id, file)
}

/// A message's transaction id, as the table contract spells it.
fn txn(content_id: &str) -> String {
    format!("etl-msg-{content_id}")
}

/// Each commit file's transaction ids and added paths, by version.
fn log(table: &Path) -> BTreeMap<u64, (Vec<String>, Vec<String>)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(table.join("_delta_log")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let Some(v) = name
            .strip_suffix(".json")
            .and_then(|v| v.parse::<u64>().ok())
        else {
            continue;
        };
        let (mut txns, mut adds) = (Vec::new(), Vec::new());
        let text = std::fs::read_to_string(table.join("_delta_log").join(&name)).unwrap();
        for line in text.lines() {
            let action: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(id) = action["txn"]["appId"].as_str() {
                txns.push(id.to_owned());
            }
            if let Some(path) = action["add"]["path"].as_str() {
                adds.push(path.to_owned());
            }
        }
        out.insert(v, (txns, adds));
    }
    out
}

/// Wait (bounded, without sleeping) until `n` messages queue behind a hold.
async fn until_queued(lake: &DeltaLake, n: usize) {
    for _ in 0..10_000_000 {
        if lake.queued_messages() >= n {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("only {} of {n} messages queued", lake.queued_messages());
}

/// Commit `msgs` through `lake` concurrently while its commits are held,
/// then release them; the callers' outcomes in order.
async fn commit_held(lake: &Arc<DeltaLake>, msgs: &[(String, WrittenFile)]) -> Vec<CommitOutcome> {
    let hold = lake.hold_commits().await;
    let tasks: Vec<_> = msgs
        .iter()
        .cloned()
        .map(|(id, f)| {
            let lake = lake.clone();
            tokio::spawn(async move { lake.commit_message(&id, &[f]).await })
        })
        .collect();
    until_queued(lake, msgs.len()).await;
    drop(hold);
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap().unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_queued_behind_a_commit_share_one_version_and_are_known_after() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("sentiment");
    let lake = Arc::new(DeltaLake::at_dir(&table, true).unwrap());
    let msgs: Vec<_> = (0..6).map(|i| message(&table, i)).collect();
    assert_eq!(
        lake.commit_message(&msgs[0].0, std::slice::from_ref(&msgs[0].1))
            .await
            .unwrap(),
        CommitOutcome::Committed { version: 1 }
    );

    // Five callers queue while the table is held: one commit holds them all.
    let outcomes = commit_held(&lake, &msgs[1..]).await;
    assert_eq!(outcomes, vec![CommitOutcome::Committed { version: 2 }; 5]);
    let versions = log(&table);
    assert_eq!(versions.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
    let (txns, adds) = &versions[&2];
    let want_txns: BTreeSet<String> = msgs[1..].iter().map(|(id, _)| txn(id)).collect();
    assert_eq!(txns.iter().cloned().collect::<BTreeSet<_>>(), want_txns);
    assert_eq!(txns.len(), 5, "one txn per message: {txns:?}");
    let want_adds: BTreeSet<String> = msgs[1..].iter().map(|(_, f)| f.key.clone()).collect();
    assert_eq!(adds.iter().cloned().collect::<BTreeSet<_>>(), want_adds);
    assert_eq!(adds.len(), 5);

    // Redeliveries of two of them and a new message, to another process,
    // queued together: only the new one is committed.
    let later = Arc::new(DeltaLake::at_dir(&table, true).unwrap());
    let new = message(&table, 6);
    let again = [msgs[2].clone(), new.clone(), msgs[4].clone()];
    assert_eq!(
        commit_held(&later, &again).await,
        vec![
            CommitOutcome::AlreadyCommitted,
            CommitOutcome::Committed { version: 3 },
            CommitOutcome::AlreadyCommitted
        ]
    );
    let versions = log(&table);
    assert_eq!(versions.len(), 4);
    assert_eq!(versions[&3], (vec![txn(&new.0)], vec![new.1.key.clone()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_committing_overlapping_groups_commit_each_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("sentiment");
    let a = Arc::new(DeltaLake::at_dir(&table, true).unwrap());
    a.ensure().await.unwrap();
    let b = Arc::new(DeltaLake::at_dir(&table, true).unwrap());
    b.ensure().await.unwrap();
    let msgs: Vec<_> = (0..5).map(|i| message(&table, i)).collect();

    // Both processes got message 2 (a visibility timeout ran out); each
    // queues its group behind its own hold, and both are let go at once.
    let (ra, rb) = tokio::join!(commit_held(&a, &msgs[..3]), commit_held(&b, &msgs[2..]));
    for o in ra[..2].iter().chain(&rb[1..]) {
        assert!(
            matches!(o, CommitOutcome::Committed { .. }),
            "{ra:?} {rb:?}"
        );
    }
    let mut shared = [ra[2], rb[0]];
    shared.sort_by_key(|o| matches!(o, CommitOutcome::AlreadyCommitted));
    assert!(
        matches!(
            shared,
            [
                CommitOutcome::Committed { .. },
                CommitOutcome::AlreadyCommitted
            ]
        ),
        "message 2: {shared:?}"
    );

    // Two commits after the table's creation; every message's file and
    // transaction exactly once across them.
    let versions = log(&table);
    assert_eq!(versions.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
    let mut txns: Vec<String> = versions.values().flat_map(|(t, _)| t.clone()).collect();
    let mut adds: Vec<String> = versions.values().flat_map(|(_, a)| a.clone()).collect();
    txns.sort();
    adds.sort();
    let mut want_txns: Vec<String> = msgs.iter().map(|(id, _)| txn(id)).collect();
    let mut want_adds: Vec<String> = msgs.iter().map(|(_, f)| f.key.clone()).collect();
    want_txns.sort();
    want_adds.sort();
    assert_eq!(txns, want_txns);
    assert_eq!(adds, want_adds);
}
