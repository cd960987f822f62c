//! The consumer under faults: a crash between writing its objects and
//! acknowledging its messages, the same message in two batches handled at
//! once (racing on the Glue table), a poison message that fails alone until
//! SQS dead-letters it.

use super::*;

/// The consumer writes its objects and dies before acknowledging: the
/// redelivered messages rewrite their own objects (same keys), and the lake
/// holds each record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_consumer_crash_after_write_before_ack_rewrites_same_keys() {
    let started = Instant::now();
    let env = aws_env("flt-crash", 13, 3, None).await;
    let records = plain_records(90);
    let messages = pack(records.clone(), 1_500);
    env.send_direct(&messages).await;
    let queue = env.harness_queue();
    let consumer = env.vader_consumer();

    let first = queue.receive(10, Duration::ZERO).await.unwrap();
    assert!(!first.is_empty());
    let out = consumer.handle(to_event(&first)).await.unwrap();
    assert!(out.response.batch_item_failures.is_empty());
    let keys_after_crash = s3_lake::keys(&env.direct.s3, &env.bucket).await;
    // Crash: no ack; the visibility timeout runs out and the batch comes back.
    for d in &first {
        queue.release(d, "crashed before ack").await.unwrap();
    }
    let puts_before = env.proxy.counts().get("s3", "PutObject", "forwarded");
    let drained = drain(&queue, &[consumer], 100).await;
    assert!(drained.redeliveries >= first.len() as u64);
    let keys = s3_lake::keys(&env.direct.s3, &env.bucket).await;
    assert!(keys_after_crash.iter().all(|k| keys.contains(k)));
    assert_eq!(
        keys.len(),
        messages.len(),
        "one object per message, no extra keys"
    );
    let expected: BTreeSet<String> = messages.iter().map(|m| m.content_id.clone()).collect();
    let named: BTreeSet<String> = keys
        .iter()
        .map(|k| {
            k.rsplit("part-")
                .next()
                .unwrap()
                .trim_end_matches(".parquet")
                .to_owned()
        })
        .collect();
    assert_eq!(named, expected, "objects are named after the content ids");
    let puts = env.proxy.counts().get("s3", "PutObject", "forwarded");
    assert_eq!(puts_before, first.len() as u64);
    assert_eq!(
        puts,
        messages.len() as u64 + first.len() as u64,
        "the redelivered batch rewrote its objects"
    );

    let (lake, _) = env.lake().await;
    let acc = exactly_once(&records, &lake);
    report(
        "consumer crash after S3 write, before ack",
        "aws",
        &acc,
        env.faults(),
        json!({"messages": messages.len(), "objects_rewritten": first.len(), "drain": drained.json()}),
        started,
    );
}

/// The same message delivered twice, in two batches handled at the same time
/// by two consumer containers (fresh ones: the Glue table and partitions are
/// created by both at once, racing), with slow S3 answers widening the overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_same_message_in_two_concurrent_batches_and_glue_race() {
    let started = Instant::now();
    let env = aws_env("flt-dup", 14, 3, None).await;
    let records = plain_records(60);
    let messages = pack(records.clone(), 1_500);
    env.send_direct(&messages).await;
    let queue = env.harness_queue();
    env.proxy.set_rules(vec![
        Rule::new("s3", "PutObject", Fault::Slow(ms(60)), Trigger::Rate(0.5)),
        Rule::new("glue", "GetTable", Fault::Slow(ms(60)), Trigger::FirstN(2)),
    ]);
    let mut batch = Vec::new();
    for _ in 0..20 {
        batch.extend(queue.receive(10, Duration::ZERO).await.unwrap());
        if batch.len() >= 3 {
            break;
        }
    }
    assert!(batch.len() >= 3);
    let dup = batch[0].clone();
    let e1 = vec![dup.clone(), batch[1].clone()];
    let e2 = vec![dup.clone(), batch[2].clone()];
    let (c1, c2) = (env.vader_consumer(), env.vader_consumer());
    let (o1, o2) = tokio::join!(c1.handle(to_event(&e1)), c2.handle(to_event(&e2)));
    let (o1, o2) = (o1.unwrap(), o2.unwrap());
    assert!(
        o1.response.batch_item_failures.is_empty(),
        "{:?}",
        o1.response
    );
    assert!(
        o2.response.batch_item_failures.is_empty(),
        "{:?}",
        o2.response
    );
    let key_of = |o: &consumer::BatchOutcome| -> Vec<String> {
        o.outcomes
            .iter()
            .flat_map(|m| m.objects.iter().map(|(k, _)| k.clone()))
            .collect()
    };
    let (k1, k2) = (key_of(&o1), key_of(&o2));
    assert!(
        k1.iter().any(|k| k2.contains(k)),
        "both wrote the duplicate's key"
    );
    for d in batch.iter().take(3) {
        queue.ack(d).await.unwrap();
    }
    for d in batch.iter().skip(3) {
        queue
            .release(d, "not handled in this test step")
            .await
            .unwrap();
    }
    let drained = drain(&queue, &[c1, c2], 100).await;
    env.proxy.clear_rules();

    let (lake, dts) = env.lake().await;
    assert_eq!(
        env.glue_partitions().await,
        dts,
        "every dt registered once in Glue"
    );
    let counts = env.proxy.counts();
    let acc = exactly_once(&records, &lake);
    report(
        "same message in two batches concurrently; Glue registration race",
        "aws",
        &acc,
        counts.to_json(),
        json!({
            "glue_create_table_calls": counts.sum("glue", "CreateTable", "calls"),
            "glue_batch_create_partition_calls": counts.sum("glue", "BatchCreatePartition", "calls"),
            "drain": drained.json(),
        }),
        started,
    );
}

/// A poison message among good ones: it fails alone in every batch and moves
/// to the DLQ after the maximum receive count (3); the rest of its batches
/// succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_poison_message_reaches_dlq_after_max_receives() {
    let started = Instant::now();
    let env = aws_env("flt-poison", 17, 3, None).await;
    let records = plain_records(50);
    let mut messages = pack(records.clone(), 1_500);
    // A message whose content id does not match its records: corrupt.
    let mut corrupt = messages[0].clone();
    corrupt.body = corrupt.body.replacen("(#", "(#tampered ", 1);
    corrupt.content_id = "corrupt".into();
    messages.insert(1, corrupt.clone());
    env.send_direct(&messages).await;
    let drained = drain(&env.harness_queue(), &[env.vader_consumer()], 100).await;

    let dlq = env.dead_letters().await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(&*dlq[0].body, corrupt.body.as_str());
    let reason = decode_message(&dlq[0].body).unwrap_err().to_string();
    // Every batch that held the poison failed it and nothing else.
    let mut poison_batches = 0;
    for (ids_in_batch, failed) in &drained.failures_per_batch {
        if failed.is_empty() {
            continue;
        }
        assert_eq!(failed.len(), 1, "only the poison fails");
        assert!(ids_in_batch.contains(&failed[0]));
        poison_batches += 1;
    }
    assert_eq!(poison_batches, 3, "received exactly maxReceiveCount times");
    let (lake, _) = env.lake().await;
    let acc = exactly_once(&records, &lake);
    report(
        "poison message to the DLQ after max receives, rest of batch succeeds",
        "aws",
        &acc,
        env.faults(),
        json!({
            "dead_lettered_messages": dlq.len(),
            "dead_letter_reason": reason,
            "poison_receives": poison_batches,
            "drain": drained.json(),
        }),
        started,
    );
}
