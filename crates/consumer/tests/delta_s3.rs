//! The consumer with `TABLE_FORMAT=delta` against moto's S3: the real
//! handler wiring (`BatchHandler::new` from the environment's settings), two
//! containers handling the same SQS batches at once, then a redelivery. The
//! Delta log's commits race on S3's conditional PUT (`If-None-Match`); the
//! table, copied out of the bucket, is read by a log replay that shares no
//! code with the writer and by the Python `deltalake` package.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use consumer::{BatchHandler, Config};
use etl_core::{Delivery, SourceRecord};
use etl_testkit::accounting::{assert_ok, exactly_once, FromLake, Version};
use etl_testkit::delta_log::{
    live_files_per_version, python_reader_agrees, read_delta, transactions_per_version,
};
use etl_testkit::fixtures::hostile_records_with_edits;
use etl_testkit::records::pack;
use etl_testkit::s3_lake::mirror;
use etl_testkit::{create_bucket, moto, sqs_event_json, unique};

fn records(n: usize) -> Vec<SourceRecord> {
    hostile_records_with_edits(
        n,
        4,
        " — edited, and worse now",
        chrono::Duration::seconds(7),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_containers_and_a_redelivery_commit_every_message_once_on_s3() {
    let clients = moto().clients().await;
    let bucket = unique("delta");
    create_bucket(&clients.s3, &bucket).await;
    let env: HashMap<String, String> = [
        ("OUTPUT_BUCKET", bucket.as_str()),
        ("OUTPUT_PREFIX", "etl"),
        ("GLUE_DATABASE", "unused_db"),
        ("GLUE_TABLE", "sentiment"),
        ("SENTIMENT_ENGINE", "vader"),
        ("TABLE_FORMAT", "delta"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = Config::from_lookup(&env).unwrap();
    let a = BatchHandler::new(&config, &clients).await.unwrap();
    let b = BatchHandler::new(&config, &clients).await.unwrap();

    let recs = records(160);
    let msgs = pack(recs.clone(), 4 * 1024);
    assert!(msgs.len() >= 10, "{} messages", msgs.len());
    let events: Vec<SqsEvent> = msgs
        .chunks(5)
        .enumerate()
        .map(|(i, chunk)| {
            let deliveries: Vec<Delivery> = chunk
                .iter()
                .enumerate()
                .map(|(j, m)| Delivery {
                    message_id: format!("m-{i}-{j}"),
                    receipt: format!("r-{i}-{j}"),
                    body: Arc::from(m.body.as_str()),
                    receive_count: 1,
                })
                .collect();
            serde_json::from_value(sqs_event_json(
                &deliveries,
                "arn:aws:sqs:us-east-1:123456789012:work",
            ))
            .unwrap()
        })
        .collect();
    async fn handle_all(h: &BatchHandler, events: &[SqsEvent]) {
        for e in events {
            let out = h.handle(e.clone()).await.unwrap();
            assert!(
                out.response.batch_item_failures.is_empty(),
                "{:?}",
                out.response
            );
        }
    }
    tokio::join!(handle_all(&a, &events), handle_all(&b, &events));
    let again = a.handle(events[0].clone()).await.unwrap();
    assert!(again.response.batch_item_failures.is_empty());

    let dir = tempfile::tempdir().unwrap();
    mirror(&clients.s3, &bucket, "etl/sentiment/", dir.path()).await;
    let table = dir.path();
    // Every message's transaction exactly once in a gapless log (no version
    // lost to an overwrite); a handler's concurrent messages may share a
    // version (group commit), so there are at most as many commits.
    let txns = transactions_per_version(table);
    assert!(txns.len() <= msgs.len() + 1, "{} versions", txns.len());
    let mut got_txns: Vec<&String> = txns.iter().flatten().collect();
    got_txns.sort();
    let mut want_txns: Vec<String> = msgs
        .iter()
        .map(|m| format!("etl-msg-{}", m.content_id))
        .collect();
    want_txns.sort();
    assert_eq!(got_txns, want_txns.iter().collect::<Vec<_>>());
    assert_eq!(live_files_per_version(table).len(), txns.len());
    let got = Version::of_local(&read_delta(table, None));
    assert_ok(&exactly_once(&recs, &got));
    python_reader_agrees(table, &recs);

    // What the race relied on: moto refuses to overwrite a log entry that
    // exists when asked with If-None-Match, as S3 does.
    let refused = clients
        .s3
        .put_object()
        .bucket(&bucket)
        .key("etl/sentiment/_delta_log/00000000000000000000.json")
        .if_none_match("*")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"{}"))
        .send()
        .await;
    let err = refused.expect_err("an existing log entry is not overwritten");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(412));
}
