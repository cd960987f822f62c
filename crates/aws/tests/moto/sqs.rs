use std::collections::HashSet;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use etl_aws::SqsQueue;
use etl_core::{build_message, OutgoingMessage, SourceRecord, WorkQueue};
use etl_testkit::{create_queue, moto, unique};

fn message(i: usize, text_len: usize) -> OutgoingMessage {
    let t = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
    build_message(vec![SourceRecord {
        id: format!("m{i}"),
        text: "y".repeat(text_len),
        created_at: t,
        updated_at: t,
        attributes: Default::default(),
    }])
}

async fn queue() -> SqsQueue {
    let c = moto().clients().await.sqs;
    let url = create_queue(&c, &unique("q")).await;
    SqsQueue::new(c, url)
}

async fn receive_all(q: &SqsQueue, expect: usize) -> Vec<etl_core::Delivery> {
    let mut got = Vec::new();
    for _ in 0..50 {
        if got.len() >= expect {
            break;
        }
        got.extend(q.receive(10, Duration::from_secs(1)).await.unwrap());
    }
    got
}

#[tokio::test]
async fn more_than_ten_messages_take_several_batch_calls() {
    let q = queue().await;
    let msgs: Vec<_> = (0..23).map(|i| message(i, 20)).collect();
    let report = q.send(&msgs).await.unwrap();
    assert_eq!((report.messages, report.calls), (23, 3));
    let got = receive_all(&q, 23).await;
    let bodies: HashSet<_> = got.iter().map(|d| d.body.to_string()).collect();
    let sent: HashSet<_> = msgs.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies, sent);
    for d in &got {
        assert_eq!(d.receive_count, 1);
        q.ack(d).await.unwrap();
    }
    assert!(
        q.receive(10, Duration::ZERO).await.unwrap().is_empty(),
        "acked messages are gone"
    );
}

#[tokio::test]
async fn batches_are_split_by_size_as_well_as_count() {
    let q = queue().await;
    // ~400 KiB each: at most two per 1 MiB batch (moto enforces SQS's
    // current limits: a three-entry batch would be refused as too long).
    let msgs: Vec<_> = (0..5).map(|i| message(i, 400 * 1024)).collect();
    let report = q.send(&msgs).await.unwrap();
    assert_eq!((report.messages, report.calls), (5, 3));
    assert_eq!(receive_all(&q, 5).await.len(), 5);
}

#[tokio::test]
async fn a_message_at_the_default_budget_goes_through_byte_for_byte() {
    let q = queue().await;
    let full = message(7, etl_core::message::DEFAULT_MESSAGE_BUDGET - 200);
    assert!(full.body.len() > 999_000 && full.body.len() <= 1_048_576);
    let report = q.send(std::slice::from_ref(&full)).await.unwrap();
    assert_eq!((report.messages, report.calls), (1, 1));
    let got = receive_all(&q, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(&*got[0].body, full.body.as_str());
}

#[tokio::test]
async fn released_messages_come_back_with_a_higher_receive_count() {
    let q = queue().await;
    q.send(&[message(1, 5)]).await.unwrap();
    let first = receive_all(&q, 1).await;
    assert_eq!(first.len(), 1);
    q.release(&first[0], "test").await.unwrap();
    let again = receive_all(&q, 1).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message_id, first[0].message_id);
    assert_eq!(again[0].receive_count, 2);
}

#[tokio::test]
async fn sending_to_a_missing_queue_names_it() {
    let c = moto().clients().await.sqs;
    let url = format!("{}/123456789012/nope", moto().endpoint());
    let err = SqsQueue::new(c, &url)
        .send(&[message(1, 5)])
        .await
        .unwrap_err();
    assert!(err.target.contains("nope"), "{err}");
}
