//! Property tests for message packing: every record comes back exactly once,
//! the byte budget holds, and packing the same records again gives the same
//! messages and content ids.
// Test helpers unwrap too: a failed setup is the test failing
// (`allow-unwrap-in-tests` only covers the `#[test]` functions themselves).
#![allow(clippy::unwrap_used)]

use chrono::{TimeZone, Utc};
use etl_core::message::{decode_message, Packer, SQS_MAX_MESSAGE_BYTES};
use etl_core::{OutgoingMessage, SourceRecord};
use proptest::prelude::*;

fn record() -> impl Strategy<Value = SourceRecord> {
    (
        "[a-z0-9]{1,12}",
        // Any Unicode, including quotes, escapes and emoji.
        prop::string::string_regex("(.|\n){1,300}").unwrap(),
        0i64..(40 * 86_400),
        0i64..86_400,
    )
        .prop_filter("text must not be blank", |(_, t, _, _)| {
            !t.trim().is_empty()
        })
        .prop_map(|(id, text, c, u)| {
            let created = Utc.timestamp_opt(1_700_000_000 + c, 0).unwrap();
            SourceRecord {
                id,
                text,
                created_at: created,
                updated_at: created + chrono::Duration::seconds(u),
                attributes: Default::default(),
            }
        })
}

fn pack(records: &[SourceRecord], budget: usize, open: usize) -> Vec<OutgoingMessage> {
    let mut p = Packer::new(budget, Some(SQS_MAX_MESSAGE_BYTES)).with_max_open(open);
    let mut out = Vec::new();
    for r in records {
        out.extend(p.push(r.clone()).unwrap());
    }
    while let Some(m) = p.flush() {
        out.push(m);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_record_comes_back_once_within_budget(
        records in prop::collection::vec(record(), 1..120),
        budget in 1_024usize..8_000,
        open in 1usize..6,
    ) {
        let msgs = pack(&records, budget, open);
        let mut back = Vec::new();
        for m in &msgs {
            let d = decode_message(&m.body).unwrap();
            prop_assert_eq!(&d.content_id, &m.content_id);
            prop_assert_eq!(d.records.len(), m.record_count);
            // A message over budget can only be a single record too big to share.
            prop_assert!(m.body.len() <= budget || m.record_count == 1, "{} bytes, {} records", m.body.len(), m.record_count);
            let days: std::collections::BTreeSet<_> = d.records.iter().map(|r| r.created_at.date_naive()).collect();
            prop_assert_eq!(days.len(), 1);
            back.extend(d.records);
        }
        let key = |r: &SourceRecord| (r.id.clone(), r.updated_at, r.text.clone());
        let mut want: Vec<_> = records.iter().map(key).collect();
        let mut got: Vec<_> = back.iter().map(key).collect();
        want.sort();
        got.sort();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn packing_again_gives_the_same_content_ids(
        records in prop::collection::vec(record(), 1..80),
        budget in 1_024usize..6_000,
    ) {
        let a = pack(&records, budget, 4);
        let b = pack(&records, budget, 4);
        prop_assert_eq!(
            a.iter().map(|m| (&m.content_id, &m.body)).collect::<Vec<_>>(),
            b.iter().map(|m| (&m.content_id, &m.body)).collect::<Vec<_>>()
        );
        // Distinct record sets never share an id.
        let ids: std::collections::HashSet<_> = a.iter().map(|m| &m.content_id).collect();
        let bodies: std::collections::HashSet<_> = a.iter().map(|m| &m.body).collect();
        prop_assert_eq!(ids.len(), bodies.len());
    }
}
