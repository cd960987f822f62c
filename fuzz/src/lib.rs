//! Shared checks for the fuzz targets.
//!
//! The central property: every record a source accepts (a JSON line, a CSV
//! row, a DynamoDB item) must travel through a queue message and come back
//! out of `decode_message` unchanged (timestamps at the lake's microsecond
//! precision), under the same content id. A record that a source accepts but
//! the consumer cannot decode would be dead-lettered forever.

use etl_core::record::truncate_micros;
use etl_core::{build_message, decode_message, SourceRecord};

/// A record as it must come out of a message: timestamps at microseconds.
pub fn at_lake_precision(r: &SourceRecord) -> SourceRecord {
    SourceRecord {
        created_at: truncate_micros(r.created_at),
        updated_at: truncate_micros(r.updated_at),
        ..r.clone()
    }
}

/// The invariants of a record a source accepted.
pub fn check_accepted(r: &SourceRecord) {
    assert!(!r.id.trim().is_empty(), "accepted an empty id: {r:?}");
    assert!(!r.text.trim().is_empty(), "accepted an empty text: {r:?}");
}

/// Records the sources accepted must round-trip through one message.
pub fn assert_travels(records: &[SourceRecord]) {
    if records.is_empty() {
        return;
    }
    for r in records {
        check_accepted(r);
    }
    let out = build_message(records.to_vec());
    assert_eq!(out.record_count, records.len());
    let back = match decode_message(&out.body) {
        Ok(m) => m,
        Err(e) => panic!(
            "accepted records do not decode: {e}\nrecords: {records:?}\nbody: {}",
            out.body
        ),
    };
    assert_eq!(back.content_id, out.content_id);
    let mut want: Vec<SourceRecord> = records.iter().map(at_lake_precision).collect();
    want.sort_by(|a, b| a.id.cmp(&b.id).then(a.updated_at.cmp(&b.updated_at)));
    let mut got = back.records;
    got.sort_by(|a, b| a.id.cmp(&b.id).then(a.updated_at.cmp(&b.updated_at)));
    assert_eq!(
        canonical(&got),
        canonical(&want),
        "records changed in transit"
    );
}

/// Records as sorted strings: a multiset comparison that is exact about
/// attribute values (1 vs 1.0, every float bit) and compares timestamps as
/// the lake stores them, microseconds since the epoch. (A leap second,
/// `…:59:60.5Z`, travels as such; as an instant it equals `…:00:00.5Z` of
/// the next minute, and the lake cannot tell them apart either.)
pub fn canonical(records: &[SourceRecord]) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .map(|r| {
            format!(
                "{:?}|{:?}|{}|{}|{}",
                r.id,
                r.text,
                r.created_at.timestamp_micros(),
                r.updated_at.timestamp_micros(),
                serde_json::to_string(&r.attributes).expect("serialises")
            )
        })
        .collect();
    v.sort();
    v
}

#[cfg(feature = "local")]
pub mod source;
