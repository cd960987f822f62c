//! The services the consumer depends on failing for a while: Comprehend
//! answering in ErrorList and throttling (through the `ComprehendStub`), S3
//! and Glue throttled, failing, resetting and slow under two consumers.

use super::*;

/// Comprehend answers some documents in ErrorList (permanently for a few,
/// transiently for others) and throttles for a while: transient trouble is
/// retried in-call or by redelivery; messages holding a refused document end
/// in the DLQ after the maximum receive count; the rest lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_comprehend_error_list_and_throttling() {
    let started = Instant::now();
    let stub = ComprehendStub::start().await;
    let env = aws_env("flt-cmp", 15, 3, Some(&stub)).await;
    let records: Vec<SourceRecord> = (0..100)
        .map(|i| {
            let base = format!("{} (#{i})", TEXTS[i % TEXTS.len()]);
            let text = if i % 33 == 7 {
                format!("{base} {}", ComprehendStub::FAIL_MARKER)
            } else if i % 10 == 3 {
                format!("{base} {}", ComprehendStub::FLAKY_MARKER)
            } else {
                base
            };
            record(i, text)
        })
        .collect();
    let messages = pack(records.clone(), 1_200);
    env.send_direct(&messages).await;
    stub.throttle_next(7);
    stub.set_flaky_failures(2);
    env.proxy.set_rules(vec![
        Rule::new(
            "comprehend",
            "BatchDetectSentiment",
            Fault::Reset,
            Trigger::Calls(vec![12]),
        ),
        Rule::new(
            "comprehend",
            "BatchDetectSentiment",
            Fault::Http500,
            Trigger::Calls(vec![15]),
        ),
        Rule::new(
            "comprehend",
            "BatchDetectSentiment",
            Fault::Throttle,
            Trigger::Calls(vec![18, 19]),
        ),
    ]);
    let analyzer = Arc::new(
        ComprehendAnalyzer::new(env.via.comprehend.clone(), LanguageMode::Fixed("en".into()))
            .with_retry(5, ms(5), ms(50)),
    );
    let consumer = env.routed_consumer(analyzer.clone());
    let drained = drain(&env.harness_queue(), &[consumer], 200).await;

    let mut dead = Vec::new();
    let dlq = env.dead_letters().await;
    for d in &dlq {
        let msg = decode_message(&d.body).expect("dead letters here are decodable");
        let refused: Vec<&str> = msg
            .records
            .iter()
            .filter(|r| r.text.contains(ComprehendStub::FAIL_MARKER))
            .map(|r| r.id.as_str())
            .collect();
        let reason = if refused.is_empty() {
            String::new() // unexplained: fails the accounting
        } else {
            format!(
                "Comprehend ErrorList TEXT_SIZE_LIMIT_EXCEEDED for {}",
                refused.join(", ")
            )
        };
        for r in &msg.records {
            dead.push((Version::of(r), reason.clone()));
        }
    }
    let rows = env.lake_rows().await;
    for r in &rows {
        assert_eq!(r.engine, "comprehend");
        assert_eq!(r.sentiment, stub_label(&r.text).0, "{r:?}");
        assert!(r.compound.is_none());
    }
    let lake = Version::of_s3(&rows);
    let refused_messages = messages
        .iter()
        .filter(|m| m.body.contains("[[comprehend-refuses]]"))
        .count();
    assert_eq!(
        dlq.len(),
        refused_messages,
        "exactly the refused messages are dead-lettered"
    );
    let sc = stub.counts();
    assert!(
        sc.throttled == 7 && sc.transient_errors > 0 && sc.permanent_errors > 0,
        "{sc:?}"
    );
    // Only the refused documents may be dead-lettered; their healthy
    // neighbours must land (issue 11, item 7).
    let refusable: BTreeSet<String> = records
        .iter()
        .filter(|r| r.text.contains(ComprehendStub::FAIL_MARKER))
        .map(|r| r.id.clone())
        .collect();
    let acc = Accounting::new(&versions(&records), &lake, &dead, &refusable);
    let mut faults = env.faults();
    faults["stub"] = json!({
        "calls": sc.calls, "throttled": sc.throttled, "scored": sc.scored,
        "error_list_permanent": sc.permanent_errors, "error_list_transient": sc.transient_errors,
    });
    faults["by_kind"]["comprehend_throttle"] = json!(sc.throttled);
    faults["by_kind"]["comprehend_error_list"] = json!(sc.permanent_errors + sc.transient_errors);
    report(
        "Comprehend ErrorList and throttling for a while",
        "aws",
        &acc,
        faults,
        json!({"messages": messages.len(), "dead_lettered_messages": dlq.len(), "drain": drained.json()}),
        started,
    );
}

/// S3 and Glue fail for a while — throttling, 500, 503, resets, slow answers —
/// under two concurrent consumers: failed messages come back and nothing is
/// lost or doubled; every dt is registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_s3_and_glue_failing_for_a_while() {
    let started = Instant::now();
    let env = aws_env("flt-s3g", 16, 10, None).await;
    let records = plain_records(200);
    let messages = pack(records.clone(), 1_500);
    env.send_direct(&messages).await;
    env.proxy.set_rules(vec![
        Rule::new("s3", "PutObject", Fault::Throttle, Trigger::Rate(0.15)).limit(12),
        Rule::new("s3", "PutObject", Fault::Http500, Trigger::Rate(0.1)).limit(8),
        Rule::new("s3", "PutObject", Fault::Http503, Trigger::Rate(0.1)).limit(8),
        Rule::new("s3", "PutObject", Fault::Reset, Trigger::Rate(0.1)).limit(8),
        Rule::new("s3", "PutObject", Fault::Slow(ms(40)), Trigger::Rate(0.2)).limit(20),
        Rule::new("glue", "GetTable", Fault::Reset, Trigger::Calls(vec![1])),
        Rule::new(
            "glue",
            "CreateTable",
            Fault::Throttle,
            Trigger::Calls(vec![1]),
        ),
        Rule::new(
            "glue",
            "BatchCreatePartition",
            Fault::Http500,
            Trigger::FirstN(3),
        ),
        Rule::new(
            "glue",
            "BatchCreatePartition",
            Fault::Throttle,
            Trigger::Calls(vec![5, 6]),
        ),
        Rule::new(
            "glue",
            "BatchCreatePartition",
            Fault::Http503,
            Trigger::Calls(vec![8]),
        ),
        Rule::new(
            "glue",
            "BatchCreatePartition",
            Fault::Reset,
            Trigger::Calls(vec![10]),
        ),
        Rule::new(
            "glue",
            "BatchCreatePartition",
            Fault::Slow(ms(40)),
            Trigger::Calls(vec![12]),
        ),
    ]);
    let consumers = [env.vader_consumer(), env.vader_consumer()];
    let drained = drain(&env.harness_queue(), &consumers, 300).await;
    env.proxy.clear_rules();

    let dead: Vec<(Version, String)> = env
        .dead_letters()
        .await
        .iter()
        .flat_map(|d| dead_versions(&d.body, "max receives"))
        .collect();
    let (lake, dts) = env.lake().await;
    assert!(
        dead.is_empty(),
        "transient trouble never dead-letters with 10 receives"
    );
    assert_eq!(env.glue_partitions().await, dts);
    let acc = Accounting::new(&versions(&records), &lake, &dead, &BTreeSet::new());
    assert!(env.proxy.counts().injected() > 20);
    report(
        "S3 and Glue failing for a while (throttle/5xx/reset/slow), two consumers",
        "aws",
        &acc,
        env.faults(),
        json!({"messages": messages.len(), "drain": drained.json()}),
        started,
    );
}
