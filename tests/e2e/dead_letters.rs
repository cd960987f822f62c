//! Poison records: a record the analyzer refuses is dead-lettered alone, at
//! once, with its reason, while its neighbours land; a message that keeps
//! failing (here: a panic) is redelivered up to the maximum receive count,
//! then dead-lettered whole with its reason and record ids; the rest of the
//! run is unaffected, and every record is accounted for.

use std::collections::HashSet;
use std::sync::Arc;

use etl_local::{run_with, DeadLetter, RunConfig, RunCounters};
use etl_testkit::{Script, ScriptedAnalyzer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_after_max_receives_and_everything_is_accounted_for() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let mut lines = String::new();
    let n = 400;
    for i in 0..n {
        // Two days; the poison and the panic land on different days, so in different messages.
        let (text, day) = match i {
            13 => ("this one is POISON", 1),
            250 => ("this one will PANIC", 2),
            _ => ("a perfectly nice sentence", 1 + i % 2),
        };
        lines.push_str(&json!({"id": format!("r{i}"), "text": text, "created_at": format!("2024-01-0{day}T12:00:00Z")}).to_string());
        lines.push('\n');
    }
    std::fs::write(&input, lines).unwrap();
    let lake = dir.path().join("lake");
    let mut cfg = RunConfig::new(&input, &lake);
    cfg.workers = 2;
    cfg.message_budget = 4 * 1024;
    cfg.max_receive_count = 3;
    // VADER, except that "POISON" fails permanently and "PANIC" panics.
    let analyzer = Arc::new(
        ScriptedAnalyzer::vader()
            .with(Script::PanicOn("PANIC".into()))
            .refusing("POISON", "InvalidRequest")
            .refusal_message("refused {id}"),
    );
    let summary = run_with(
        cfg,
        analyzer.clone(),
        Arc::new(RunCounters::default()),
        Box::new(|_| {}),
    )
    .await
    .unwrap();

    assert_eq!(summary.dead_lettered_messages, 2);
    let dls: Vec<DeadLetter> = std::fs::read_to_string(lake.join("_dead_letter/messages.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dls.len(), 2);
    // The refused record: alone, on its first receive, never retried.
    let poison = dls
        .iter()
        .find(|d| d.record_ids.contains(&"r13".to_string()))
        .unwrap();
    assert_eq!(
        poison.record_ids,
        ["r13"],
        "its neighbours are not dead-lettered"
    );
    assert_eq!(
        poison.receive_count, 1,
        "a permanent refusal is not retried"
    );
    assert_eq!(
        poison.record_reasons.get("r13").map(String::as_str),
        Some("InvalidRequest: refused r13")
    );
    assert!(
        poison.reason.contains("r13 (InvalidRequest"),
        "{}",
        poison.reason
    );
    // Its body is a message of only that record, ready to be replayed.
    let replay = etl_core::decode_message(&poison.body).unwrap();
    assert_eq!(replay.records.len(), 1);
    assert_eq!(replay.records[0].text, "this one is POISON");
    assert_eq!(
        poison.content_id.as_deref(),
        Some(replay.content_id.as_str())
    );
    assert_ne!(poison.source_content_id, poison.content_id);
    // The panicking message: whole, after exactly max receives.
    let panicked = dls
        .iter()
        .find(|d| d.record_ids.contains(&"r250".to_string()))
        .unwrap();
    assert!(panicked.reason.contains("panicked"), "{}", panicked.reason);
    assert_eq!(
        panicked.receive_count, 3,
        "dead-lettered after exactly max receives"
    );
    assert_eq!(panicked.reasons.len(), 3);
    assert!(panicked.record_ids.len() > 1, "the whole message");
    assert_eq!(
        analyzer.counts().refused,
        1,
        "the refused document was analysed once"
    );
    assert_eq!(
        analyzer.counts().panics,
        u64::from(panicked.receive_count),
        "the panic fired on every receive"
    );

    // Exact accounting: every source record is in the lake once or in a dead letter.
    let rows = etl_testkit::lake::read_lake(&lake);
    let in_lake: Vec<_> = rows.iter().map(|r| r.id.clone()).collect();
    let lake_set: HashSet<_> = in_lake.iter().cloned().collect();
    assert_eq!(lake_set.len(), in_lake.len(), "no duplicates");
    let dead: HashSet<String> = dls
        .iter()
        .flat_map(|d| d.record_ids.iter().cloned())
        .collect();
    assert!(lake_set.is_disjoint(&dead));
    assert_eq!(lake_set.len() + dead.len(), n);
    assert!(
        lake_set.contains("r12") && lake_set.contains("r14"),
        "neighbours land"
    );
    assert_eq!(summary.scored as usize, lake_set.len());
    assert_eq!(summary.dead_lettered_records as usize, dead.len());
}
