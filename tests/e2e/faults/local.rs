//! Local scenarios (the ones not already in dead_letters.rs / local.rs):
//! `etl_local` with an analyzer that throttles and refuses
//! (`ScriptedAnalyzer`), and the same message consumed twice at once and
//! again after a crash before its ack.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_analyzer_throttled_for_a_while_and_refusing_documents() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let records: Vec<SourceRecord> = (0..300)
        .map(|i| {
            let text = if i % 97 == 5 {
                format!("refuse me {} (#{i})", ComprehendStub::FAIL_MARKER)
            } else {
                format!("{} (#{i})", TEXTS[i % TEXTS.len()])
            };
            record(i, text)
        })
        .collect();
    let mut lines = String::new();
    for r in &records {
        lines.push_str(
            &json!({"id": r.id, "text": r.text, "created_at": r.created_at.to_rfc3339()})
                .to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(&input, lines).unwrap();
    let lake = dir.path().join("lake");
    let mut cfg = etl_local::RunConfig::new(&input, &lake);
    cfg.workers = 2;
    cfg.message_budget = 2_048;
    cfg.max_receive_count = 4;
    // VADER that throttles for a while (retryable) and refuses marked
    // documents (the ErrorList case).
    let analyzer = Arc::new(
        ScriptedAnalyzer::vader()
            .with(Script::ThrottleFirst(3))
            .refusing(ComprehendStub::FAIL_MARKER, "TEXT_SIZE_LIMIT_EXCEEDED"),
    );
    let summary = etl_local::run_with(
        cfg,
        analyzer.clone(),
        Arc::new(etl_local::RunCounters::default()),
        Box::new(|_| {}),
    )
    .await
    .unwrap();
    let dls: Vec<etl_local::DeadLetter> =
        std::fs::read_to_string(lake.join("_dead_letter/messages.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let mut dead = Vec::new();
    for dl in &dls {
        assert!(
            dl.reason.contains("TEXT_SIZE_LIMIT_EXCEEDED"),
            "only refused documents dead-letter: {}",
            dl.reason
        );
        dead.extend(dead_versions(&dl.body, &dl.reason));
    }
    let lake_rows = Version::of_local(&etl_testkit::lake::read_lake(&lake));
    // Only the refused documents may be dead-lettered (issue 11, item 7).
    let refusable: BTreeSet<String> = records
        .iter()
        .filter(|r| r.text.contains(ComprehendStub::FAIL_MARKER))
        .map(|r| r.id.clone())
        .collect();
    let acc = Accounting::new(&versions(&records), &lake_rows, &dead, &refusable);
    assert_eq!(summary.dead_lettered_records as usize, dead.len());
    let script = analyzer.counts();
    assert_eq!(script.throttled, 3, "the throttling fired: {script:?}");
    assert!(script.refused > 0, "the refusals fired: {script:?}");
    report(
        "analyzer throttled for a while and refusing documents",
        "local",
        &acc,
        json!({"by_kind": {
            "analyzer_throttle": script.throttled,
            "analyzer_refusal": script.refused,
        }, "injected": script.throttled + script.refused}),
        json!({"dead_lettered_messages": dls.len(), "messages_ok": summary.messages_ok}),
        started,
    );
}

/// Local lake: the same message consumed twice at once, then once more after
/// a "crash before ack": same files, each record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_duplicate_and_redelivered_messages_rewrite_their_own_files() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let records = plain_records(120);
    let messages = pack(records.clone(), 1_500);
    let sink = etl_local::FsSink::new(&lake);
    let catalog = etl_local::LocalCatalog::new(&lake, true);
    let vader = VaderAnalyzer::new();
    let consumer = Consumer {
        analyzer: &vader,
        sink: &sink,
        catalog: &catalog,
        options: ConsumeOptions::default(),
        clock: &etl_core::SYSTEM_CLOCK,
    };
    etl_core::Catalog::ensure_table(&catalog).await.unwrap();
    let mut consumed = 0;
    for (i, m) in messages.iter().enumerate() {
        let id = format!("m{i}");
        if i % 2 == 0 {
            // Delivered twice, handled concurrently.
            let (a, b) = tokio::join!(
                consumer.consume(&id, &m.body),
                consumer.consume(&id, &m.body)
            );
            assert_eq!(a.unwrap().objects, b.unwrap().objects);
            consumed += 2;
        } else {
            consumer.consume(&id, &m.body).await.unwrap();
            consumed += 1;
        }
    }
    let files = etl_testkit::lake::parquet_files(&lake);
    // Crash before ack: everything is redelivered once more.
    for (i, m) in messages.iter().enumerate() {
        consumer.consume(&format!("m{i}"), &m.body).await.unwrap();
        consumed += 1;
    }
    assert_eq!(etl_testkit::lake::parquet_files(&lake), files, "same files");
    assert_eq!(files.len(), messages.len());
    let acc = exactly_once(
        &records,
        &Version::of_local(&etl_testkit::lake::read_lake(&lake)),
    );
    report(
        "same message twice concurrently, redelivery after crash before ack",
        "local",
        &acc,
        json!({"by_kind": {"duplicate_delivery": messages.len().div_ceil(2), "redelivery": messages.len()}, "injected": messages.len().div_ceil(2) + messages.len()}),
        json!({"messages": messages.len(), "consumptions": consumed}),
        started,
    );
}
