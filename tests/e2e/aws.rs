//! The AWS pipeline end to end on moto: DynamoDB → producer handler → SQS →
//! consumer handler (VADER) → Parquet in S3 + Glue partitions, with
//! at-least-once redelivery and a poison message.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{TimeZone, Utc};
use etl_aws::{SqsQueue, StateStore};
use etl_core::{Delivery, FieldMap, WorkQueue};
use etl_testkit::records::TEXTS;
use etl_testkit::{
    create_bucket, create_queue, create_table, moto, put_items, s3_lake, sqs_event_json, unique,
};
use producer::{Producer, Request, Status};

use crate::support::vader_consumer;

const N: usize = 300;

/// Items with every timestamp form the source contract allows, over five days.
fn source_items() -> Vec<HashMap<String, AttributeValue>> {
    let day0 = Utc.with_ymd_and_hms(2024, 5, 1, 6, 0, 0).unwrap();
    (0..N)
        .map(|i| {
            let created = day0 + chrono::Duration::minutes(i as i64 * 24);
            let created_av = match i % 3 {
                0 => AttributeValue::N(created.timestamp().to_string()),
                1 => AttributeValue::N(created.timestamp_millis().to_string()),
                _ => AttributeValue::S(
                    created
                        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
                        .to_rfc3339(),
                ),
            };
            let mut item = HashMap::from([
                ("id".to_string(), AttributeValue::S(format!("item-{i:04}"))),
                (
                    "text".to_string(),
                    AttributeValue::S(format!("{} (#{i})", TEXTS[i % TEXTS.len()])),
                ),
                ("created_at".to_string(), created_av),
            ]);
            if i % 4 == 0 {
                let updated = created + chrono::Duration::hours(1);
                item.insert("updated_at".into(), AttributeValue::S(updated.to_rfc3339()));
            }
            item
        })
        .collect()
}

async fn receive_batch(queue: &SqsQueue) -> Vec<Delivery> {
    queue.receive(10, Duration::ZERO).await.unwrap()
}

fn to_event(deliveries: &[Delivery]) -> SqsEvent {
    serde_json::from_value(sqs_event_json(
        deliveries,
        "arn:aws:sqs:us-east-1:123456789012:work",
    ))
    .unwrap()
}

#[tokio::test]
async fn dynamodb_items_reach_s3_exactly_once_through_both_handlers() {
    let clients = moto().clients().await;
    let (source, state_table, bucket) =
        (unique("e2e-src"), unique("e2e-state"), unique("e2e-lake"));
    let database = unique("e2e_db").replace('-', "_");
    create_table(&clients.dynamodb, &source, "id").await;
    create_table(&clients.dynamodb, &state_table, "pk").await;
    create_bucket(&clients.s3, &bucket).await;
    let queue_url = create_queue(&clients.sqs, &unique("e2e-work")).await;
    put_items(&clients.dynamodb, &source, source_items()).await;
    let queue = SqsQueue::new(clients.sqs.clone(), &queue_url);

    // Producer: the nightly schedule's event.
    let config = producer::Config {
        source_table: source.clone(),
        state_table: state_table.clone(),
        queue_url: queue_url.clone(),
        segments: 3,
        page_limit: Some(40),
        max_pages: None,
        message_budget: 4_096,
        fields: FieldMap::default(),
        deadline_margin: Duration::from_secs(5),
        lookback: etl_core::incremental::DEFAULT_LOOKBACK,
        // Small, so the ledger spills to sorted files as it would after a bulk import.
        ledger_spill_dir: std::env::temp_dir(),
        ledger_memory_versions: 500,
    };
    let producer = Producer::from_parts(
        config,
        clients.dynamodb.clone(),
        StateStore::new(clients.dynamodb.clone(), &state_table, &source),
        Arc::new(queue.clone()),
    );
    let scheduled: serde_json::Value =
        serde_json::from_str(include_str!("../../events/scheduled-event.json")).unwrap();
    let deadline = SystemTime::now() + Duration::from_secs(600);
    let summary = producer
        .handle(Request::from_event(&scheduled).unwrap(), deadline, "e2e-1")
        .await
        .unwrap();
    assert_eq!(
        (
            summary.status,
            summary.stats.sent_records,
            summary.stats.rejected
        ),
        (Status::Complete, N as u64, 0)
    );
    assert!(
        summary.stats.messages > 10,
        "several batches of messages: {summary:?}"
    );

    // Consumer: SQS batches as the event source mapping would deliver them.
    let consumer = vader_consumer(&clients, &bucket, &database);
    let mut first_batch = None;
    let mut empty = 0;
    let mut delivered = 0;
    for _ in 0..500 {
        let batch = receive_batch(&queue).await;
        if batch.is_empty() {
            empty += 1;
            if empty == 2 {
                break;
            }
            continue;
        }
        let out = consumer.handle(to_event(&batch)).await.unwrap();
        assert!(
            out.response.batch_item_failures.is_empty(),
            "{:?}",
            out.response
        );
        delivered += batch.len();
        for d in &batch {
            queue.ack(d).await.unwrap();
        }
        first_batch.get_or_insert(batch);
    }
    assert_eq!(delivered as u64, summary.stats.messages);

    let rows = s3_lake::rows(&clients.s3, &bucket).await;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        *counts.entry(r.id.as_str()).or_default() += 1;
    }
    assert_eq!(counts.len(), N, "every item arrived");
    assert!(counts.values().all(|c| *c == 1), "and exactly once");
    for r in &rows {
        let i: usize = r.id["item-".len()..].parse().unwrap();
        assert_eq!(r.text, format!("{} (#{i})", TEXTS[i % TEXTS.len()]));
        assert_eq!(r.engine, "vader");
        assert!(r.compound.is_some());
        let created = Utc.with_ymd_and_hms(2024, 5, 1, 6, 0, 0).unwrap()
            + chrono::Duration::minutes(i as i64 * 24);
        assert_eq!(r.dt, created.format("%Y-%m-%d").to_string(), "{r:?}");
        assert!(r
            .key
            .starts_with(&format!("lake/sentiment/dt={}/part-", r.dt)));
    }
    let labels: BTreeSet<&str> = rows.iter().map(|r| r.sentiment.as_str()).collect();
    assert!(
        labels.contains("POSITIVE") && labels.contains("NEGATIVE") && labels.contains("NEUTRAL"),
        "{labels:?}"
    );

    let dts: BTreeSet<String> = rows.iter().map(|r| r.dt.clone()).collect();
    let parts = clients
        .glue
        .get_partitions()
        .database_name(&database)
        .table_name("sentiment")
        .send()
        .await
        .unwrap();
    let registered: BTreeSet<String> = parts
        .partitions()
        .iter()
        .map(|p| p.values().join(","))
        .collect();
    assert_eq!(registered, dts, "every dt written is registered in Glue");

    // At-least-once: a batch delivered again changes nothing.
    let keys_before = s3_lake::keys(&clients.s3, &bucket).await;
    let again = consumer
        .handle(to_event(&first_batch.unwrap()))
        .await
        .unwrap();
    assert!(again.response.batch_item_failures.is_empty());
    assert_eq!(s3_lake::keys(&clients.s3, &bucket).await, keys_before);
    let after = s3_lake::rows(&clients.s3, &bucket).await;
    assert_eq!(after.len(), N, "still exactly once after redelivery");

    // Nothing new in the source: the next scheduled run sends nothing.
    let next = producer
        .handle(Request::Scheduled, deadline, "e2e-2")
        .await
        .unwrap();
    assert_eq!(next.stats.sent_records, 0);

    // A poison message next to a valid one: reported alone.
    clients
        .sqs
        .send_message()
        .queue_url(&queue_url)
        .message_body("{\"v\":1,\"content_id\":\"x\"")
        .send()
        .await
        .unwrap();
    let t = Utc.with_ymd_and_hms(2024, 5, 9, 12, 0, 0).unwrap();
    let valid = etl_core::build_message(vec![etl_core::SourceRecord {
        id: "late-1".into(),
        text: "Lovely!".into(),
        created_at: t,
        updated_at: t,
        attributes: Default::default(),
    }]);
    queue.send(&[valid]).await.unwrap();
    let mut batch = Vec::new();
    for _ in 0..20 {
        batch.extend(receive_batch(&queue).await);
        if batch.len() >= 2 {
            break;
        }
    }
    assert_eq!(batch.len(), 2);
    let poison_id = batch
        .iter()
        .find(|d| d.body.ends_with("\"x\""))
        .unwrap()
        .message_id
        .clone();
    let out = consumer.handle(to_event(&batch)).await.unwrap();
    let failed: Vec<_> = out
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, [poison_id]);
    assert_eq!(out.stats.records_out, 1);
    assert_eq!(s3_lake::rows(&clients.s3, &bucket).await.len(), N + 1);
}
