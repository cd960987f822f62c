//! `RecordSource` conformance: every record exactly once and unchanged, a
//! bad item rejected alone (an item, not an error), and an end that stays
//! the end.
//!
//! A source is read once, so there is no `all`: the caller loads the data
//! (fixture records from [`crate::fixtures::hostile_records`], written as
//! JSON lines, CSV rows or DynamoDB items) into a new file or table and
//! opens one source per behaviour.

use std::collections::BTreeMap;

use etl_core::{RecordSource, Rejection, SourceItem, SourceRecord};

use crate::fixtures::{FixtureRecord, InvalidRecord};

/// Chunks read at most before the contract decides the source never ends.
const MAX_CHUNKS: usize = 100_000;

/// Read a source to its end (bounded): its records, its rejections and the
/// number of chunks. Panics on an `Err`.
pub async fn drain(source: &mut dyn RecordSource) -> (Vec<SourceRecord>, Vec<Rejection>, usize) {
    let mut records = Vec::new();
    let mut rejected = Vec::new();
    for chunks in 0..MAX_CHUNKS {
        let Some(chunk) = source.next_chunk().await.expect("next_chunk") else {
            return (records, rejected, chunks);
        };
        for item in chunk {
            match item {
                SourceItem::Record(r) => records.push(r),
                SourceItem::Rejected(r) => rejected.push(r),
            }
        }
    }
    panic!("the source did not end within {MAX_CHUNKS} chunks");
}

/// Assert that `records` are exactly `expected`, each once, with the same
/// id, text and timestamps (to the microsecond) and no attributes.
fn assert_same_records(records: &[SourceRecord], expected: &[FixtureRecord]) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for r in records {
        *seen.entry(r.id.as_str()).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "records read more than once: {twice:?}");
    let by_id: BTreeMap<&str, &SourceRecord> = records.iter().map(|r| (r.id.as_str(), r)).collect();
    for f in expected {
        let Some(got) = by_id.get(f.id.as_str()) else {
            panic!("record {:?} (fixture {}) never arrived", f.id, f.index);
        };
        let want = f.to_record();
        assert_eq!(got.text, want.text, "text of {:?}", f.id);
        assert_eq!(got.created_at, want.created_at, "created_at of {:?}", f.id);
        assert_eq!(got.updated_at, want.updated_at, "updated_at of {:?}", f.id);
        assert!(got.attributes.is_empty(), "attributes of {:?}", f.id);
    }
    assert_eq!(
        records.len(),
        expected.len(),
        "records that are not fixtures"
    );
}

/// Assert that the end is sticky: `next_chunk` after the end is `Ok(None)`
/// again, twice.
async fn assert_ended(source: &mut dyn RecordSource) {
    for _ in 0..2 {
        let next = source.next_chunk().await.expect("next_chunk after the end");
        assert!(next.is_none(), "a chunk after the end: {next:?}");
    }
}

/// Reading every chunk yields each of `expected` exactly once, unchanged
/// (hostile ids and texts, timestamps in every spelling, several sharing
/// one instant), with no rejections; then the end stays the end.
pub async fn every_record_arrives_once(source: &mut dyn RecordSource, expected: &[FixtureRecord]) {
    let (records, rejected, _) = drain(source).await;
    assert!(rejected.is_empty(), "fixtures rejected: {rejected:?}");
    assert_same_records(&records, expected);
    assert_ended(source).await;
}

/// An invalid item becomes a `SourceItem::Rejected` (not an `Err`) naming
/// its id, its field and its `location` (exactly: `line 4`, `item x in
/// segment 0 page 1`, …); the records around it still arrive.
pub async fn invalid_item_is_rejected_alone(
    source: &mut dyn RecordSource,
    expected: &[FixtureRecord],
    invalid: &InvalidRecord,
    location: &str,
) {
    let (records, rejected, _) = drain(source).await;
    assert_eq!(rejected.len(), 1, "one rejection: {rejected:?}");
    let r = &rejected[0];
    assert_eq!(r.location, location, "{r}");
    assert_eq!(r.id.as_deref(), Some(invalid.id.as_str()), "{r}");
    assert_eq!(r.field.as_deref(), Some(invalid.field.as_str()), "{r}");
    assert!(!r.reason.is_empty(), "{r:?}");
    assert_same_records(&records, expected);
    assert_ended(source).await;
}

/// An empty input ends without records or rejections (an empty chunk or
/// two on the way are fine), and stays ended.
pub async fn empty_source_ends(source: &mut dyn RecordSource) {
    let (records, rejected, _) = drain(source).await;
    assert!(records.is_empty(), "{records:?}");
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_ended(source).await;
}
