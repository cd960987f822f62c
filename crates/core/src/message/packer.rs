//! The producer's side of the message contract: records grouped into
//! messages under a byte budget, one partition per message.
//!
//! Packing is a job of its own (buckets per `dt` partition, a budget and a
//! hard limit, a cap on open buckets), kept apart from the envelope so the
//! envelope stays the single definition of the bytes: a [`Packer`] encodes
//! each record once with the envelope's encoder and seals a bucket with the
//! envelope's assembler, so every message it emits is exactly what
//! [`build_message`](super::build_message) makes of the same records.

use super::{
    assemble, encode_record, envelope_event_overhead, envelope_overhead, event_len, OutgoingMessage,
};
use crate::error::MessageError;
use crate::record::SourceRecord;

/// Open partition buckets a [`Packer`] keeps by default before it closes the
/// fullest one early. Bounds memory at `DEFAULT_OPEN_BUCKETS × budget`.
pub const DEFAULT_OPEN_BUCKETS: usize = 32;

/// One open message: its records already encoded, back to back in one
/// buffer, with a small index entry each. Sealing sorts the index, not the
/// records, so packing makes no per-record allocation and moves no record.
#[derive(Debug)]
struct Bucket {
    dt: chrono::NaiveDate,
    /// The records' JSON, concatenated.
    encoded: Vec<u8>,
    /// The records' ids (raw, not JSON-escaped), concatenated: the sort key.
    ids: String,
    entries: Vec<Entry>,
    /// Body size if sealed now.
    bytes: usize,
    /// The same body's size inside the consumer's event, where it is a JSON
    /// string (see [`event_len`]): what the budget bounds.
    event_bytes: usize,
    max_updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Range of the record's JSON in `encoded`.
    start: usize,
    end: usize,
    /// Range of its id in `ids`.
    id_start: usize,
    id_end: usize,
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl Bucket {
    fn new(dt: chrono::NaiveDate) -> Self {
        Self {
            dt,
            encoded: Vec::new(),
            ids: String::new(),
            entries: Vec::new(),
            bytes: envelope_overhead(),
            event_bytes: envelope_event_overhead(),
            max_updated_at: chrono::DateTime::<chrono::Utc>::default(),
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn add(&mut self, record: &SourceRecord, encoded: &[u8], encoded_event: usize) {
        if self.entries.is_empty() {
            self.max_updated_at = record.updated_at;
        } else {
            self.bytes += 1;
            self.event_bytes += 1;
            self.max_updated_at = self.max_updated_at.max(record.updated_at);
        }
        self.bytes += encoded.len();
        self.event_bytes += encoded_event;
        let start = self.encoded.len();
        self.encoded.extend_from_slice(encoded);
        let id_start = self.ids.len();
        self.ids.push_str(&record.id);
        self.entries.push(Entry {
            start,
            end: self.encoded.len(),
            id_start,
            id_end: self.ids.len(),
            updated_at: record.updated_at,
        });
    }

    /// The message, records in canonical order: exactly what
    /// [`build_message`](super::build_message) makes of the same records.
    fn seal(mut self) -> OutgoingMessage {
        let ids = self.ids.as_str();
        self.entries.sort_by(|a, b| {
            ids[a.id_start..a.id_end]
                .cmp(&ids[b.id_start..b.id_end])
                .then(a.updated_at.cmp(&b.updated_at))
        });
        // Every record is JSON that `serde_json` wrote from `&str` fields.
        let encoded = std::str::from_utf8(&self.encoded).expect("records encode as UTF-8");
        let parts: Vec<&str> = self
            .entries
            .iter()
            .map(|e| &encoded[e.start..e.end])
            .collect();
        assemble(&parts, parts.len(), self.max_updated_at)
    }
}

/// Packs records into messages up to a byte budget.
///
/// The budget bounds a message's size *as the consumer receives it*: inside
/// the Lambda event its body is a JSON string, where every `"` and `\` takes
/// two bytes (see [`event_len`]). So `BatchSize × budget` (plus the event's
/// per-message fields) is a true bound on a consumer invocation's payload,
/// whatever the texts hold, and the body itself (never larger) stays within
/// SQS's limit too.
///
/// Records are grouped by their `dt` partition (UTC date of `created_at`), so
/// a message normally becomes exactly one Parquet object: one S3 PUT per
/// message instead of one per message and day, and no small-files problem.
/// A bucket is closed when the next record would push it past the budget;
/// when more than `max_open` buckets are open the fullest is closed early.
/// A record larger than the budget on its own travels alone; one larger than
/// `hard_limit` is refused with [`MessageError::RecordTooLarge`] so the caller
/// can count it as rejected. Output depends only on the input order, so the
/// same input always yields the same messages and content ids.
#[derive(Debug)]
pub struct Packer {
    budget: usize,
    hard_limit: Option<usize>,
    max_records: usize,
    max_open: usize,
    buckets: Vec<Bucket>,
    /// The record being pushed, encoded (reused between pushes).
    scratch: Vec<u8>,
}

impl Packer {
    /// A packer with a byte budget per message (its size in the consumer's
    /// event) and an optional hard limit on the body (SQS: 1 MiB).
    pub fn new(budget: usize, hard_limit: Option<usize>) -> Self {
        let budget = hard_limit.map_or(budget, |h| budget.min(h));
        Self {
            budget,
            hard_limit,
            max_records: usize::MAX,
            max_open: DEFAULT_OPEN_BUCKETS,
            buckets: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Also cap the number of records per message.
    pub fn with_max_records(mut self, n: usize) -> Self {
        self.max_records = n.max(1);
        self
    }

    /// Cap the number of partition buckets open at once (at least 1).
    pub fn with_max_open(mut self, n: usize) -> Self {
        self.max_open = n.max(1);
        self
    }

    /// The effective byte budget.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Records held and not yet emitted.
    pub fn pending_records(&self) -> usize {
        self.buckets.iter().map(Bucket::len).sum()
    }

    /// Add a record; returns a message when one was closed to make room
    /// (at most one per call).
    pub fn push(&mut self, record: SourceRecord) -> Result<Option<OutgoingMessage>, MessageError> {
        self.scratch.clear();
        encode_record(&mut self.scratch, &record);
        let enc_len = self.scratch.len();
        let enc_event = event_len(&self.scratch);
        let alone = envelope_overhead() + enc_len;
        if let Some(limit) = self.hard_limit {
            if alone > limit {
                return Err(MessageError::RecordTooLarge {
                    id: record.id,
                    bytes: alone,
                    limit,
                });
            }
        }
        let dt = record.created_at.date_naive();
        let mut closed = None;
        let idx = match self.buckets.iter().position(|b| b.dt == dt) {
            Some(i) => {
                let b = &mut self.buckets[i];
                if b.event_bytes + 1 + enc_event > self.budget || b.len() >= self.max_records {
                    closed = Some(std::mem::replace(b, Bucket::new(dt)).seal());
                }
                i
            }
            None => {
                if self.buckets.len() >= self.max_open {
                    let fullest = (0..self.buckets.len())
                        .max_by_key(|&i| (self.buckets[i].bytes, std::cmp::Reverse(i)))
                        .expect("at least one bucket");
                    closed = Some(self.buckets.remove(fullest).seal());
                }
                self.buckets.push(Bucket::new(dt));
                self.buckets.len() - 1
            }
        };
        self.buckets[idx].add(&record, &self.scratch, enc_event);
        Ok(closed)
    }

    /// Close one open message, if any (call until `None` at the end of input).
    pub fn flush(&mut self) -> Option<OutgoingMessage> {
        loop {
            let b = self.buckets.pop()?;
            if b.len() > 0 {
                return Some(b.seal());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{build_message, decode_message, SQS_MAX_MESSAGE_BYTES};
    use chrono::{TimeZone, Utc};

    fn rec(id: &str, text: &str) -> SourceRecord {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        SourceRecord {
            id: id.into(),
            text: text.into(),
            created_at: t,
            updated_at: t,
            attributes: Default::default(),
        }
    }

    fn pack_all(p: &mut Packer, recs: Vec<SourceRecord>) -> Vec<OutgoingMessage> {
        let mut out = Vec::new();
        for r in recs {
            out.extend(p.push(r).unwrap());
        }
        while let Some(m) = p.flush() {
            out.push(m);
        }
        out
    }

    proptest::proptest! {
        /// Every message the packer seals is, byte for byte, what
        /// `build_message` makes of the same records: same canonical order
        /// (ties on id broken by the full update time, then input order),
        /// same content id, same newest update time.
        #[test]
        fn packed_messages_are_build_message_of_their_records(
            recs in proptest::collection::vec(
                (
                    proptest::sample::select(vec!["a", "b", "é\"x", "a\\", "b\u{1}", "z"]),
                    0u32..3,
                    0i64..3,
                    0u32..3,
                    proptest::sample::select(vec!["ok", "great \"day\"\n", "bad 😀"]),
                ),
                1..60,
            ),
            budget in 300usize..2_000,
            max_open in 1usize..4,
        ) {
            let base = Utc.with_ymd_and_hms(2024, 5, 1, 23, 59, 59).unwrap();
            let records: Vec<SourceRecord> = recs
                .iter()
                .map(|(id, day, micros, nanos, text)| {
                    let created = base + chrono::Duration::days(i64::from(*day));
                    SourceRecord {
                        id: (*id).into(),
                        text: (*text).into(),
                        created_at: created,
                        // Sub-microsecond differences: equal in the encoding, not in order.
                        updated_at: created
                            + chrono::Duration::microseconds(*micros)
                            + chrono::Duration::nanoseconds(i64::from(*nanos) * 300),
                        attributes: Default::default(),
                    }
                })
                .collect();
            let mut p = Packer::new(budget, None).with_max_open(max_open);
            let mut sent = 0;
            let mut msgs = Vec::new();
            // Which records went into which message: replay the packer's own
            // bookkeeping by decoding ids is not enough (ids repeat), so track
            // the pending records per day alongside.
            let mut pending: Vec<(chrono::NaiveDate, Vec<SourceRecord>)> = Vec::new();
            for r in records {
                let dt = r.created_at.date_naive();
                let closed = p.push(r.clone()).unwrap();
                if let Some(m) = closed {
                    // The closed bucket is the one whose records decode to the message.
                    let i = pending
                        .iter()
                        .position(|(_, rs)| build_message(rs.clone()) == m)
                        .expect("a sealed message is build_message of one open bucket");
                    sent += pending.remove(i).1.len();
                    msgs.push(m);
                }
                match pending.iter_mut().find(|(d, _)| *d == dt) {
                    Some((_, rs)) => rs.push(r),
                    None => pending.push((dt, vec![r])),
                }
            }
            while let Some(m) = p.flush() {
                let i = pending
                    .iter()
                    .position(|(_, rs)| build_message(rs.clone()) == m)
                    .expect("a flushed message is build_message of one open bucket");
                sent += pending.remove(i).1.len();
                msgs.push(m);
            }
            proptest::prop_assert!(pending.is_empty());
            proptest::prop_assert_eq!(sent, recs.len());
            for m in &msgs {
                let d = decode_message(&m.body).unwrap();
                proptest::prop_assert_eq!(&d.content_id, &m.content_id);
            }
        }
    }

    #[test]
    fn the_budget_bounds_a_message_as_the_consumers_event_carries_it() {
        // Texts of quotes and backslashes double in size once the body is
        // itself a JSON string (the Lambda event's `body` field).
        let recs: Vec<_> = (0..200)
            .map(|i| rec(&format!("q{i:03}"), &"\"\\".repeat(40 + i % 9)))
            .collect();
        let budget = 8192;
        let mut p = Packer::new(budget, Some(SQS_MAX_MESSAGE_BYTES));
        let msgs = pack_all(&mut p, recs);
        let mut fullest = 0;
        for m in &msgs {
            // serde_json writes the event's string field: an independent measure.
            let in_event = serde_json::to_string(&m.body).unwrap().len() - 2;
            assert!(
                in_event <= budget,
                "{in_event} bytes in the event > {budget}"
            );
            assert!(
                m.body.len() < in_event * 2 / 3,
                "quote-heavy bodies grow in the event"
            );
            fullest = fullest.max(in_event);
        }
        // Not one record a message: the budget is used, not undershot.
        assert!(
            fullest > budget - 700,
            "fullest message {fullest} of {budget}"
        );
        assert_eq!(msgs.iter().map(|m| m.record_count).sum::<usize>(), 200);
    }

    #[test]
    fn packs_many_records_within_budget_and_round_trips() {
        let recs: Vec<_> = (0..500)
            .map(|i| rec(&format!("r{i:04}"), &"nice day ".repeat(i % 7 + 1)))
            .collect();
        let mut p = Packer::new(4096, Some(SQS_MAX_MESSAGE_BYTES));
        let msgs = pack_all(&mut p, recs.clone());
        assert!(
            msgs.len() > 1 && msgs.len() < 100,
            "{} messages",
            msgs.len()
        );
        let mut back = Vec::new();
        for m in &msgs {
            assert!(m.body.len() <= 4096, "{} > budget", m.body.len());
            let d = decode_message(&m.body).unwrap();
            assert_eq!(d.content_id, m.content_id);
            assert_eq!(d.records.len(), m.record_count);
            back.extend(d.records);
        }
        assert_eq!(back.len(), recs.len());
        let mut ids: Vec<_> = back.iter().map(|r| r.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 500);
    }

    #[test]
    fn oversized_record_travels_alone_or_is_refused_past_hard_limit() {
        let mut p = Packer::new(1000, Some(5000));
        assert!(p.push(rec("small", "ok")).unwrap().is_none());
        let closed = p.push(rec("big", &"x".repeat(2000))).unwrap().unwrap();
        assert_eq!(closed.record_count, 1);
        let big = p.flush().unwrap();
        assert_eq!(big.record_count, 1);
        assert!(p.flush().is_none());
        assert!(big.body.contains("\"big\""));
        let err = p.push(rec("huge", &"y".repeat(6000))).unwrap_err();
        assert!(matches!(err, MessageError::RecordTooLarge { ref id, .. } if id == "huge"));
    }

    fn rec_on(id: &str, day: u32) -> SourceRecord {
        let t = Utc.with_ymd_and_hms(2024, 5, day, 12, 0, 0).unwrap();
        SourceRecord {
            created_at: t,
            updated_at: t,
            ..rec(id, "text")
        }
    }

    #[test]
    fn messages_hold_one_partition_each_and_open_buckets_are_bounded() {
        let recs: Vec<_> = (0..300)
            .map(|i| rec_on(&format!("r{i}"), 1 + (i % 10) as u32))
            .collect();
        let mut p = Packer::new(2048, None).with_max_open(4);
        let mut out = Vec::new();
        for r in recs {
            out.extend(p.push(r).unwrap());
            assert!(p.buckets.len() <= 4);
        }
        while let Some(m) = p.flush() {
            out.push(m);
        }
        let mut total = 0;
        for m in &out {
            let d = decode_message(&m.body).unwrap();
            let days: std::collections::BTreeSet<_> = d
                .records
                .iter()
                .map(|r| r.created_at.date_naive())
                .collect();
            assert_eq!(days.len(), 1, "one partition per message");
            total += d.records.len();
        }
        assert_eq!(total, 300);
    }

    #[test]
    fn max_records_caps_message_size() {
        let mut p = Packer::new(1 << 20, None).with_max_records(3);
        let msgs = pack_all(&mut p, (0..10).map(|i| rec(&i.to_string(), "t")).collect());
        assert_eq!(
            msgs.iter().map(|m| m.record_count).collect::<Vec<_>>(),
            vec![3, 3, 3, 1]
        );
    }
}
