//! The producer under faults: interrupted by its deadline, its page budget
//! and a kill, overlapping with another run, its DynamoDB scan throttled,
//! reset and failing mid-pagination, its SendMessageBatch partially failing.
//! Each run is then consumed and the lake accounted for exactly.

use super::*;

/// Deadline stops and a killed invocation (future dropped, checkpoint not
/// saved, lock left behind), then runs again: the checkpointed part is never
/// re-sent, nothing is skipped, and what the killed invocation had sent is
/// re-sent as identical messages (same content ids), so the lake holds each
/// record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_producer_interrupted_by_deadline_and_kill_resumes_without_loss_or_duplicates() {
    let started = Instant::now();
    let env = aws_env("flt-kill", 11, 3, None).await;
    let records = plain_records(300);
    env.put_source(&records).await;
    let source = ids(&records);
    let budget = 1_500;

    // A: two invocations stopped by the page budget (MAX_PAGES_PER_INVOCATION).
    let rec = Arc::new(Recorder::new(SqsQueue::new(
        env.via.sqs.clone(),
        &env.queue_url,
    )));
    let p = env.producer(env.producer_config(3, 10, Some(3), budget), rec.clone());
    for id in ["inv-a1", "inv-a2"] {
        let s = p
            .handle(Request::Scheduled, far_deadline(), id)
            .await
            .unwrap();
        assert_eq!(s.status, Status::Partial, "{s:?}");
    }
    // B: an invocation whose deadline (minus the margin) has already come.
    let s = p
        .handle(
            Request::Scheduled,
            SystemTime::now() + Duration::from_secs(1),
            "inv-b",
        )
        .await
        .unwrap();
    assert_eq!(
        (s.status, s.pages, s.stats.sent_records),
        (Status::Partial, 0, 0),
        "{s:?}"
    );
    let sent_a = rec.take();

    // C: killed after its first send call; its first Scan answer is slow, so
    // its pages arrive in another order than in the run that replaces it.
    env.proxy.set_rules(vec![Rule::new(
        "dynamodb",
        "Scan",
        Fault::Slow(ms(250)),
        Trigger::Calls(vec![1]),
    )]);
    let killed = Notify::new();
    let killed = Arc::new(killed);
    let mut rec_c = Recorder::new(SqsQueue::new(env.via.sqs.clone(), &env.queue_url));
    rec_c.kill_after = Some((1, killed.clone()));
    let rec_c = Arc::new(rec_c);
    let pc = env.producer(env.producer_config(3, 10, None, budget), rec_c.clone());
    tokio::select! {
        r = pc.handle(Request::Scheduled, far_deadline(), "inv-c") => panic!("the invocation should have been killed: {r:?}"),
        _ = killed.notified() => {}
    }
    drop(pc);
    let sent_c = rec_c.take();
    env.proxy.clear_rules();

    // The dead invocation still holds the lock: nobody else may send.
    let s = p
        .handle(Request::Scheduled, far_deadline(), "inv-d0")
        .await
        .unwrap();
    assert_eq!(s.status, Status::Locked);
    expire_lock(&env).await;

    // D: runs again to completion; E: nothing new.
    let pd = env.producer(env.producer_config(3, 10, None, budget), rec.clone());
    let s = pd
        .handle(Request::Scheduled, far_deadline(), "inv-d")
        .await
        .unwrap();
    assert_eq!(s.status, Status::Complete, "{s:?}");
    assert!(s.resumed);
    let sent_d = rec.take();
    let s = pd
        .handle(Request::Scheduled, far_deadline(), "inv-e")
        .await
        .unwrap();
    assert_eq!((s.status, s.stats.sent_records), (Status::Complete, 0));

    let (a, c, d) = (flatten(&sent_a), flatten(&sent_c), flatten(&sent_d));
    let a_set: BTreeSet<_> = a.iter().cloned().collect();
    let d_set: BTreeSet<_> = d.iter().cloned().collect();
    assert!(!a.is_empty() && !c.is_empty());
    assert_eq!(a_set.len(), a.len(), "nothing sent twice before the kill");
    assert_eq!(d_set.len(), d.len(), "nothing sent twice by the rerun");
    assert!(
        a_set.is_disjoint(&d_set),
        "checkpointed pages are not sent again"
    );
    assert!(c.iter().all(|id| !a_set.contains(id)));
    let all: BTreeSet<_> = a_set.union(&d_set).cloned().collect();
    assert_eq!(all, source, "nothing skipped");
    let d_content: HashSet<&String> = sent_d.iter().map(|(cid, _)| cid).collect();
    let c_resent_identically = sent_c
        .iter()
        .filter(|(cid, _)| d_content.contains(cid))
        .count();
    assert_eq!(
        c_resent_identically,
        sent_c.len(),
        "the killed invocation's messages are re-sent with the same content ids"
    );

    let consumer = env.vader_consumer();
    let drained = drain(&env.harness_queue(), &[consumer], 200).await;
    let (lake, _) = env.lake().await;
    let acc = exactly_once(&records, &lake);
    report(
        "producer interrupted (deadline, page budget, killed) then rerun",
        "aws",
        &acc,
        env.faults(),
        json!({
            "invocations": 7,
            "records_sent_before_kill_checkpointed": a.len(),
            "records_sent_by_killed_invocation": c.len(),
            "messages_resent_identically": c_resent_identically,
            "records_sent_by_rerun": d.len(),
            "drain": drained.json(),
        }),
        started,
    );
}

/// Two overlapping producer invocations: the second finds the lock and sends
/// nothing; the first completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_overlapping_producer_runs_only_one_sends() {
    let started = Instant::now();
    let env = aws_env("flt-overlap", 12, 3, None).await;
    let records = plain_records(120);
    env.put_source(&records).await;
    // The lock's conditional PutItem is throttled once (and retried by the SDK).
    env.proxy.set_rules(vec![Rule::new(
        "dynamodb",
        "PutItem",
        Fault::Throttle,
        Trigger::Calls(vec![1]),
    )]);
    let (paused, resume) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let mut rec_a = Recorder::new(SqsQueue::new(env.via.sqs.clone(), &env.queue_url));
    rec_a.pause_after_first = Some((paused.clone(), resume.clone()));
    let rec_a = Arc::new(rec_a);
    let rec_b = Arc::new(Recorder::new(SqsQueue::new(
        env.via.sqs.clone(),
        &env.queue_url,
    )));
    let pa = env.producer(env.producer_config(2, 10, None, 1_500), rec_a.clone());
    let pb = env.producer(env.producer_config(2, 10, None, 1_500), rec_b.clone());
    let (a, b) = tokio::join!(
        pa.handle(Request::Scheduled, far_deadline(), "inv-a"),
        async {
            paused.notified().await; // A is mid-run, holding the lock
            let b = pb.handle(Request::Full, far_deadline(), "inv-b").await;
            resume.notify_one();
            b
        }
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.status, Status::Complete);
    assert_eq!(b.status, Status::Locked);
    assert_eq!(b.lock_owner.as_deref(), Some("inv-a"));
    assert!(
        rec_b.take().is_empty(),
        "the locked invocation sent nothing"
    );
    assert_eq!(a.stats.sent_records, 120);
    // Afterwards the lock is free again.
    let again = pb
        .handle(Request::Scheduled, far_deadline(), "inv-c")
        .await
        .unwrap();
    assert_eq!(
        (again.status, again.stats.sent_records),
        (Status::Complete, 0)
    );
    env.proxy.clear_rules();

    let drained = drain(&env.harness_queue(), &[env.vader_consumer()], 100).await;
    let (lake, _) = env.lake().await;
    let acc = exactly_once(&records, &lake);
    report(
        "two producer runs overlapping",
        "aws",
        &acc,
        env.faults(),
        json!({"locked_invocations": 1, "sent_by_winner": a.stats.sent_records, "drain": drained.json()}),
        started,
    );
}

/// The DynamoDB scan is throttled, reset and answered with 5xx mid-pagination
/// (sometimes more often in a row than the SDK retries, failing the
/// invocation); invocations are repeated until the run completes. Re-sent
/// messages are identical, so the lake holds each record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_dynamodb_scan_throttled_and_reset_mid_pagination() {
    let started = Instant::now();
    let env = aws_env("flt-scan", 18, 3, None).await;
    let records = plain_records(150);
    env.put_source(&records).await;
    env.proxy.set_rules(vec![
        Rule::new(
            "dynamodb",
            "Scan",
            Fault::Throttle,
            Trigger::Calls(vec![2, 3]),
        ),
        Rule::new("dynamodb", "Scan", Fault::Reset, Trigger::Calls(vec![4, 9])),
        Rule::new("dynamodb", "Scan", Fault::Http500, Trigger::Calls(vec![6])),
        Rule::new("dynamodb", "Scan", Fault::Http503, Trigger::Calls(vec![7])),
        Rule::new(
            "dynamodb",
            "Scan",
            Fault::Slow(ms(50)),
            Trigger::Calls(vec![8, 11]),
        ),
        Rule::new("dynamodb", "Scan", Fault::Throttle, Trigger::Rate(0.1)).limit(5),
        Rule::new("dynamodb", "GetItem", Fault::Reset, Trigger::Calls(vec![2])),
    ]);
    let rec = Arc::new(Recorder::new(
        SqsQueue::new(env.via.sqs.clone(), &env.queue_url).with_retry(5, ms(5), ms(50)),
    ));
    let p = env.producer(env.producer_config(2, 10, None, 1_500), rec.clone());
    let (mut failed_invocations, mut complete) = (0, false);
    for i in 0..10 {
        match p
            .handle(Request::Scheduled, far_deadline(), &format!("inv-{i}"))
            .await
        {
            Ok(s) if s.status == Status::Complete => {
                complete = true;
                break;
            }
            Ok(s) => panic!("unexpected {s:?}"),
            Err(e) => {
                assert_eq!(e.error_type(), "Retryable", "{e}");
                failed_invocations += 1;
            }
        }
    }
    assert!(complete, "the run completed within 10 invocations");
    env.proxy.clear_rules();
    let sent = rec.take();
    let distinct: BTreeMap<&String, &Vec<String>> = sent.iter().map(|(c, i)| (c, i)).collect();
    let distinct_records: usize = distinct.values().map(|v| v.len()).sum();
    assert_eq!(
        distinct_records,
        records.len(),
        "distinct messages carry each record once"
    );

    let drained = drain(&env.harness_queue(), &[env.vader_consumer()], 200).await;
    let (lake, _) = env.lake().await;
    let acc = exactly_once(&records, &lake);
    report(
        "DynamoDB scan throttled / reset / 5xx mid-pagination",
        "aws",
        &acc,
        env.faults(),
        json!({
            "failed_invocations": failed_invocations,
            "messages_sent": sent.len(),
            "distinct_messages": distinct.len(),
            "drain": drained.json(),
        }),
        started,
    );
}

/// SendMessageBatch answers with some entries in `Failed` (and is throttled
/// and reset now and then): exactly the failed entries are resent, so every
/// message is in the queue once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sqs_send_partially_failing() {
    let started = Instant::now();
    let env = aws_env("flt-sqs", 19, 3, None).await;
    let records = plain_records(150);
    env.put_source(&records).await;
    env.proxy.set_rules(vec![
        Rule::new(
            "sqs",
            "SendMessageBatch",
            Fault::Throttle,
            Trigger::Calls(vec![2]),
        ),
        Rule::new(
            "sqs",
            "SendMessageBatch",
            Fault::Reset,
            Trigger::Calls(vec![4]),
        ),
        // At most 8 partial answers: with 10 attempts per batch every entry gets through.
        Rule::new(
            "sqs",
            "SendMessageBatch",
            Fault::PartialBatch(0.3),
            Trigger::Rate(0.5),
        )
        .limit(8),
    ]);
    let queue = SqsQueue::new(env.via.sqs.clone(), &env.queue_url).with_retry(10, ms(5), ms(50));
    let p = env.producer(env.producer_config(1, 25, None, 1_200), Arc::new(queue));
    let s = p
        .handle(Request::Scheduled, far_deadline(), "inv-1")
        .await
        .unwrap();
    assert_eq!((s.status, s.stats.sent_records), (Status::Complete, 150));
    env.proxy.clear_rules();
    let counts = env.proxy.counts();
    assert!(counts.sum("sqs", "SendMessageBatch", "partial_batch") > 0);

    // Every message is in the queue exactly once.
    let queue = env.harness_queue();
    let mut seen = BTreeMap::new();
    let mut pending = Vec::new();
    for _ in 0..100 {
        let b = queue.receive(10, Duration::ZERO).await.unwrap();
        if b.is_empty() {
            break;
        }
        for d in b {
            *seen
                .entry(decode_message(&d.body).unwrap().content_id)
                .or_insert(0) += 1;
            pending.push(d);
        }
    }
    assert_eq!(seen.len() as u64, s.stats.messages);
    assert!(seen.values().all(|n| *n == 1), "no message enqueued twice");
    for d in &pending {
        queue.release(d, "counted").await.unwrap();
    }
    let drained = drain(&queue, &[env.vader_consumer()], 100).await;
    let (lake, _) = env.lake().await;
    let acc = exactly_once(&records, &lake);
    report(
        "SQS SendMessageBatch partially failing",
        "aws",
        &acc,
        counts.to_json(),
        json!({
            "messages": s.stats.messages,
            "send_calls": s.stats.send_calls,
            "entries_failed_and_resent": counts.sum("sqs", "SendMessageBatch", "partial_batch_entries"),
            "drain": drained.json(),
        }),
        started,
    );
}

/// The source changes between a failed producer invocation and Lambda's
/// retry (the normal case on a live table): the first send batch is
/// answered, every later one fails as `fault` says (refused before the
/// queue applied it, or applied with its answer lost), so the invocation
/// fails with messages staged, some accepted by the queue and some not;
/// then new items and edits of staged items are written; then the retry
/// runs. The retry re-sends exactly the staged messages the queue had not
/// confirmed, verbatim, never packs a staged version again, and sends the
/// new items and edits: every version lands once.
async fn source_changes_between_a_failed_invocation_and_its_retry(tag: &str, fault: Fault) {
    let started = Instant::now();
    let env = aws_env(tag, 29, 3, None).await;
    let records = plain_records(400);
    env.put_source(&records).await;
    let fault_name = fault.name();
    env.proxy.set_rules(vec![Rule::new(
        "sqs",
        "SendMessageBatch",
        fault,
        // The first call passes; the rule counts the calls after it.
        Trigger::Calls((2..=10_000).collect()),
    )]);
    let queue = SqsQueue::new(env.via.sqs.clone(), &env.queue_url).with_retry(2, ms(1), ms(5));
    let p = env.producer(env.producer_config(3, 25, None, 1_500), Arc::new(queue));
    let failed = p
        .handle(Request::Scheduled, far_deadline(), "inv-1")
        .await
        .expect_err("every send after the first fails, so the invocation fails");
    assert_eq!(failed.retry, etl_core::Retry::Retryable, "{failed:?}");
    env.proxy.clear_rules();
    let counts = env.proxy.counts();
    assert!(
        counts.get("sqs", "SendMessageBatch", fault_name) >= 2,
        "the fault fired: {counts:?}"
    );
    let outbox = etl_aws::DynamoOutbox::new(
        env.direct.dynamodb.clone(),
        &env.state,
        &env.source,
        "check",
    );
    let staged = outbox.load().await.unwrap();
    let accepted = staged.iter().filter(|s| s.sent).count();
    let unconfirmed = staged.len() - accepted;
    assert_eq!(
        accepted, 10,
        "the first batch of ten was answered and marked sent"
    );
    assert!(
        unconfirmed >= 1,
        "the failing batch is staged, not confirmed"
    );
    let staged_records: Vec<SourceRecord> = staged
        .iter()
        .flat_map(|s| decode_message(&s.message.body).unwrap().records)
        .collect();

    // Between the failure and the retry: new items, and edits of items both
    // inside staged messages and outside them.
    let mut later: Vec<SourceRecord> = (400..520)
        .map(|i| record(i, format!("written after the failure (#{i})")))
        .collect();
    let staged_ids: BTreeSet<&str> = staged_records.iter().map(|r| r.id.as_str()).collect();
    let edited_now = etl_core::record::truncate_micros(chrono::Utc::now());
    let mut edited_staged = 0;
    for r in records.iter().step_by(13) {
        edited_staged += usize::from(staged_ids.contains(r.id.as_str()));
        later.push(SourceRecord {
            text: format!("{} — edited after the failure", r.text),
            updated_at: edited_now,
            ..r.clone()
        });
    }
    assert!(edited_staged > 0, "some edits hit staged versions");
    env.put_source(&later).await;

    let s = p
        .handle(Request::Scheduled, far_deadline(), "inv-2")
        .await
        .unwrap();
    assert_eq!(s.status, Status::Complete, "{s:?}");
    assert_eq!(s.staged_messages as usize, staged.len(), "{s:?}");
    assert_eq!(
        s.resent_messages as usize, unconfirmed,
        "exactly the unconfirmed messages went again: {s:?}"
    );
    assert!(
        outbox.load().await.unwrap().is_empty(),
        "the outbox is emptied once the ledger is saved"
    );
    let s = p
        .handle(Request::Scheduled, far_deadline(), "inv-3")
        .await
        .unwrap();
    assert_eq!(
        (s.status, s.stats.sent_records),
        (Status::Complete, 0),
        "{s:?}"
    );

    // What must land once each: every staged version (sent before its
    // edit), and every version the source holds now.
    let mut current: BTreeMap<String, SourceRecord> =
        records.iter().map(|r| (r.id.clone(), r.clone())).collect();
    for r in &later {
        current.insert(r.id.clone(), r.clone());
    }
    let expected = distinct_versions(staged_records.iter().chain(current.values()));
    let drained = drain(&env.harness_queue(), &[env.vader_consumer()], 300).await;
    let (lake, _) = env.lake().await;
    let acc = exactly_once(&expected, &lake);
    assert_ok(&acc);
    report(
        &format!(
            "source changes between a failed producer invocation and its retry ({fault_name})"
        ),
        "aws",
        &acc,
        counts.to_json(),
        json!({
            "staged": staged.len(),
            "staged_unconfirmed": unconfirmed,
            "resent": s.resent_messages,
            "written_between": later.len(),
            "edits_of_staged_versions": edited_staged,
            "drain": drained.json(),
        }),
        started,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_source_changes_between_a_failed_invocation_and_its_retry_sends_refused() {
    source_changes_between_a_failed_invocation_and_its_retry("flt-retry-500", Fault::Http500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_source_changes_between_a_failed_invocation_and_its_retry_answers_lost() {
    source_changes_between_a_failed_invocation_and_its_retry("flt-retry-lost", Fault::LoseAnswer)
        .await;
}
