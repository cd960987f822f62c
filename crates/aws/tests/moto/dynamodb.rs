use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeZone, Utc};
use etl_aws::{DynamoSource, ScanConfig};
use etl_core::{FieldMap, RecordSource, Rejection, SourceItem, SourceRecord};
use etl_testkit::{create_table, moto, put_items, unique};

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn item(pairs: Vec<(&str, AttributeValue)>) -> HashMap<String, AttributeValue> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

async fn drain(src: &mut DynamoSource) -> (Vec<SourceRecord>, Vec<Rejection>, usize) {
    let mut recs = Vec::new();
    let mut rej = Vec::new();
    for chunks in 0..10_000 {
        let Some(chunk) = src.next_chunk().await.unwrap() else {
            return (recs, rej, chunks);
        };
        for it in chunk {
            match it {
                SourceItem::Record(r) => recs.push(r),
                SourceItem::Rejected(r) => rej.push(r),
            }
        }
    }
    panic!("source did not end");
}

async fn table_with(
    items: Vec<HashMap<String, AttributeValue>>,
) -> (aws_sdk_dynamodb::Client, String) {
    let c = moto().clients().await.dynamodb;
    let table = unique("src");
    create_table(&c, &table, "id").await;
    put_items(&c, &table, items).await;
    (c, table)
}

#[tokio::test]
async fn parallel_segments_paginate_and_map_every_type() {
    let base = 1_714_564_800; // 2024-05-01T12:00:00Z
    let items = (0..120)
        .map(|i| {
            let created = if i % 2 == 0 {
                n(base + i)
            } else {
                s(&Utc.timestamp_opt(base + i, 0).unwrap().to_rfc3339())
            };
            item(vec![
                ("id", s(&format!("r{i:03}"))),
                ("text", s(&format!("text {i}"))),
                ("created_at", created),
                ("updated_at", n((base + i) * 1000)),
                (
                    "author",
                    AttributeValue::M([("name".into(), s("ann")), ("age".into(), n(41))].into()),
                ),
                ("tags", AttributeValue::Ss(vec!["x".into()])),
                ("scores", AttributeValue::Ns(vec!["1.5".into()])),
                ("flag", AttributeValue::Bool(true)),
                ("gone", AttributeValue::Null(true)),
                ("list", AttributeValue::L(vec![n(1), s("two")])),
                ("unprojected", s("not read")),
            ])
        })
        .collect();
    let (client, table) = table_with(items).await;
    let mut cfg = ScanConfig::new(&table);
    cfg.segments = 3;
    cfg.page_limit = Some(7);
    cfg.fields = FieldMap {
        passthrough: ["author", "tags", "scores", "flag", "gone", "list"]
            .map(String::from)
            .to_vec(),
        ..FieldMap::default()
    };
    let mut src = DynamoSource::open(client, cfg).unwrap();
    let (recs, rej, chunks) = drain(&mut src).await;
    assert!(rej.is_empty(), "{rej:?}");
    assert_eq!(recs.len(), 120);
    let ids: HashSet<_> = recs.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 120, "every item exactly once");
    assert!(chunks >= 120 / 7, "small pages: {chunks} chunks");
    assert!(src.checkpoint().is_done());
    assert_eq!(src.checkpoint().segments.len(), 3);
    let r7 = recs.iter().find(|r| r.id == "r007").unwrap();
    assert_eq!(r7.created_at.timestamp(), base + 7, "S timestamp");
    assert_eq!(
        r7.updated_at.timestamp_millis(),
        (base + 7) * 1000,
        "N millis timestamp"
    );
    let r8 = recs.iter().find(|r| r.id == "r008").unwrap();
    assert_eq!(r8.created_at.timestamp(), base + 8, "N seconds timestamp");
    let a = &r8.attributes;
    assert_eq!(a["author"], serde_json::json!({"name":"ann","age":41}));
    assert_eq!(a["tags"], serde_json::json!(["x"]));
    assert_eq!(a["scores"], serde_json::json!([1.5]));
    assert_eq!(a["flag"], serde_json::json!(true));
    assert_eq!(a["gone"], serde_json::Value::Null);
    assert_eq!(a["list"], serde_json::json!([1, "two"]));
    assert!(!a.contains_key("unprojected"));
}

#[tokio::test]
async fn bad_items_are_rejected_naming_item_and_field() {
    let items = vec![
        item(vec![
            ("id", s("ok")),
            ("text", s("fine")),
            ("created_at", n(1_700_000_000)),
        ]),
        item(vec![("id", s("no-text")), ("created_at", n(1_700_000_000))]),
        item(vec![
            ("id", s("num-text")),
            ("text", n(5)),
            ("created_at", n(1_700_000_000)),
        ]),
        item(vec![
            ("id", s("bad-time")),
            ("text", s("x")),
            ("created_at", s("yesterday")),
        ]),
        item(vec![
            ("id", s("bad-update")),
            ("text", s("x")),
            ("created_at", n(1)),
            ("updated_at", AttributeValue::Bool(true)),
        ]),
    ];
    let (client, table) = table_with(items).await;
    let mut cfg = ScanConfig::new(&table);
    cfg.segments = 1;
    let (recs, rej, _) = drain(&mut DynamoSource::open(client, cfg).unwrap()).await;
    assert_eq!(
        recs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["ok"]
    );
    let by_id: BTreeMap<_, _> = rej.iter().map(|r| (r.id.clone().unwrap(), r)).collect();
    assert_eq!(by_id["no-text"].field.as_deref(), Some("text"));
    assert_eq!(by_id["num-text"].field.as_deref(), Some("text"));
    assert_eq!(by_id["bad-time"].field.as_deref(), Some("created_at"));
    assert_eq!(by_id["bad-update"].field.as_deref(), Some("updated_at"));
    assert_eq!(
        by_id["bad-time"].location,
        "item bad-time in segment 0 page 1"
    );
    assert!(
        by_id["bad-time"].to_string().contains("unparseable"),
        "{}",
        by_id["bad-time"]
    );
}

#[tokio::test]
async fn incremental_filter_drops_only_certainly_old_items_of_any_type() {
    let since: DateTime<Utc> = "2024-05-10T00:00:00Z".parse().unwrap();
    let t = |h: i64| since + chrono::Duration::hours(h);
    let rfc = |h: i64| s(&t(h).to_rfc3339());
    let secs = |h: i64| n(t(h).timestamp());
    let millis = |h: i64| n(t(h).timestamp_millis());
    let old_created = ("created_at", secs(-100));
    let items = vec![
        item(vec![
            ("id", s("old-s")),
            ("text", s("x")),
            old_created.clone(),
            ("updated_at", rfc(-72)),
        ]),
        item(vec![
            ("id", s("new-s")),
            ("text", s("x")),
            old_created.clone(),
            ("updated_at", rfc(1)),
        ]),
        item(vec![
            ("id", s("old-n")),
            ("text", s("x")),
            old_created.clone(),
            ("updated_at", secs(-1)),
        ]),
        item(vec![
            ("id", s("new-n")),
            ("text", s("x")),
            old_created.clone(),
            ("updated_at", secs(1)),
        ]),
        item(vec![
            ("id", s("tie-n")),
            ("text", s("x")),
            old_created.clone(),
            ("updated_at", secs(0)),
        ]),
        item(vec![
            ("id", s("old-ms")),
            ("text", s("x")),
            old_created.clone(),
            ("updated_at", millis(-1)),
        ]),
        item(vec![
            ("id", s("new-ms")),
            ("text", s("x")),
            old_created.clone(),
            ("updated_at", millis(2)),
        ]),
        // Offset form near the boundary: lexicographically "older", actually newer.
        item(vec![
            ("id", s("offset")),
            ("text", s("x")),
            old_created.clone(),
            ("updated_at", s("2024-05-09T20:30:00-05:00")),
        ]),
        // Offset form just before the boundary: kept by the server (margin), dropped by the client.
        item(vec![
            ("id", s("offset-old")),
            ("text", s("x")),
            old_created.clone(),
            ("updated_at", s("2024-05-09T18:30:00-05:00")),
        ]),
        item(vec![
            ("id", s("digits")),
            ("text", s("x")),
            old_created.clone(),
            ("updated_at", s(&t(3).timestamp().to_string())),
        ]),
        item(vec![
            ("id", s("created-new")),
            ("text", s("x")),
            ("created_at", rfc(5)),
        ]),
        item(vec![
            ("id", s("created-old")),
            ("text", s("x")),
            ("created_at", rfc(-80)),
        ]),
        item(vec![
            ("id", s("null-upd")),
            ("text", s("x")),
            ("created_at", millis(4)),
            ("updated_at", AttributeValue::Null(true)),
        ]),
        item(vec![
            ("id", s("junk-upd")),
            ("text", s("x")),
            old_created.clone(),
            ("updated_at", s("soon")),
        ]),
    ];
    let (client, table) = table_with(items).await;
    // What the client-side filter keeps: updated at or after the floor.
    let is_new = |r: &&SourceRecord| r.updated_at >= since;

    let mut full = ScanConfig::new(&table);
    full.segments = 2;
    let (all, all_rej, _) =
        drain(&mut DynamoSource::open(client.clone(), full.clone()).unwrap()).await;
    let mut inc = full;
    inc.since = Some(since);
    let (filtered, inc_rej, _) = drain(&mut DynamoSource::open(client, inc).unwrap()).await;

    let expect: BTreeMap<_, _> = all
        .iter()
        .filter(is_new)
        .map(|r| (r.id.clone(), r.updated_at))
        .collect();
    let got: BTreeMap<_, _> = filtered
        .iter()
        .filter(is_new)
        .map(|r| (r.id.clone(), r.updated_at))
        .collect();
    assert_eq!(got, expect, "the filter never drops a new item");
    let expect_ids: Vec<&str> = expect.keys().map(String::as_str).collect();
    assert_eq!(
        expect_ids,
        [
            "created-new",
            "digits",
            "new-ms",
            "new-n",
            "new-s",
            "null-upd",
            "offset",
            "tie-n"
        ]
    );
    let returned: HashSet<&str> = filtered.iter().map(|r| r.id.as_str()).collect();
    for dropped in ["old-s", "old-n", "old-ms", "created-old"] {
        assert!(
            !returned.contains(dropped),
            "{dropped} should be filtered server-side"
        );
    }
    assert!(
        returned.contains("offset-old"),
        "within the string margin: re-checked client-side"
    );
    assert_eq!(all_rej.len(), 1);
    assert_eq!(
        inc_rej.len(),
        1,
        "unparseable timestamps are never filtered away silently"
    );
    assert_eq!(inc_rej[0].id.as_deref(), Some("junk-upd"));
}

#[tokio::test]
async fn resuming_from_a_checkpoint_reads_the_rest_exactly_once() {
    let items = (0..50)
        .map(|i| {
            item(vec![
                ("id", s(&format!("k{i:02}"))),
                ("text", s("t")),
                ("created_at", n(1_700_000_000 + i)),
            ])
        })
        .collect();
    let (client, table) = table_with(items).await;
    let mut cfg = ScanConfig::new(&table);
    cfg.segments = 2;
    cfg.page_limit = Some(5);
    let mut first = DynamoSource::open(client.clone(), cfg.clone()).unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        for it in first.next_chunk().await.unwrap().unwrap() {
            let SourceItem::Record(r) = it else { panic!() };
            seen.push(r.id);
        }
    }
    let cp = first.checkpoint();
    drop(first);
    assert!(!cp.is_done());
    // Through JSON, as the producer stores it.
    let cp = serde_json::from_str(&serde_json::to_string(&cp).unwrap()).unwrap();
    cfg.resume = Some(cp);
    cfg.segments = 7; // ignored: the checkpoint's segment count wins
    let mut second = DynamoSource::open(client, cfg).unwrap();
    let (rest, _, _) = drain(&mut second).await;
    seen.extend(rest.into_iter().map(|r| r.id));
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), 50, "nothing read twice");
    assert_eq!(unique.len(), 50, "nothing skipped");
    assert!(second.checkpoint().is_done());
}

#[tokio::test]
async fn scanning_a_missing_table_is_a_permanent_error_naming_it() {
    let client = moto().clients().await.dynamodb;
    let mut cfg = ScanConfig::new("no-such-table");
    cfg.segments = 1;
    let err = DynamoSource::open(client, cfg)
        .unwrap()
        .next_chunk()
        .await
        .unwrap_err();
    assert_eq!(err.retry, etl_core::Retry::Permanent);
    assert!(err.target.contains("no-such-table"), "{err}");
}
