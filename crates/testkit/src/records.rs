//! Numbered source records for the end-to-end and reliability scenarios:
//! dated relative to when the test binary started (as live data is), with
//! texts cycling through [`TEXTS`], and packed into messages as the producer
//! packs them.
//!
//! Records as production sends them (hostile ids, every kind of Unicode) are
//! in [`crate::fixtures`].

use std::collections::BTreeSet;
use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};
use etl_core::message::SQS_MAX_MESSAGE_BYTES;
use etl_core::{OutgoingMessage, Packer, SourceRecord};

/// Texts the end-to-end tests cycle through: positive, negative, neutral,
/// "but", and a negated emoticon.
pub const TEXTS: [&str; 5] = [
    "I love this, it is wonderful!",
    "This is terrible and I hate it.",
    "The package arrived on Tuesday.",
    "Great service but awful food.",
    "Not bad at all :)",
];

/// When this test binary first asked, to the second: records are dated
/// relative to it, as live data is, and the same record has the same
/// timestamps for the whole run.
pub fn now() -> DateTime<Utc> {
    static NOW: OnceLock<DateTime<Utc>> = OnceLock::new();
    *NOW.get_or_init(|| {
        let n = Utc::now();
        Utc.timestamp_opt(n.timestamp(), 0).unwrap()
    })
}

/// Record `i`'s time: two minutes before [`now`] and 37 minutes further back
/// per record, so a few hundred records span about a week of partitions and
/// none is in the future.
pub fn created(i: usize) -> DateTime<Utc> {
    now() - chrono::Duration::minutes(2 + i as i64 * 37)
}

/// Record `i`: id `item-{i:04}` (ids sort as the records are numbered),
/// created and updated at [`created`]`(i)`, no attributes.
pub fn record(i: usize, text: String) -> SourceRecord {
    SourceRecord {
        id: format!("item-{i:04}"),
        text,
        created_at: created(i),
        updated_at: created(i),
        attributes: Default::default(),
    }
}

/// Records `0..n`, record `i`'s text being `"{TEXTS[i % 5]} (#{i})"`.
pub fn plain_records(n: usize) -> Vec<SourceRecord> {
    (0..n)
        .map(|i| record(i, format!("{} (#{i})", TEXTS[i % TEXTS.len()])))
        .collect()
}

/// The ids of `records`.
pub fn ids(records: &[SourceRecord]) -> BTreeSet<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

/// `records` packed into messages as the producer packs them: `budget`
/// bytes per message, never more than SQS takes.
pub fn pack(records: Vec<SourceRecord>, budget: usize) -> Vec<OutgoingMessage> {
    let mut packer = Packer::new(budget, Some(SQS_MAX_MESSAGE_BYTES));
    let mut out = Vec::new();
    for r in records {
        out.extend(packer.push(r).unwrap());
    }
    while let Some(m) = packer.flush() {
        out.push(m);
    }
    out
}
