//! The queue message contract: versioned JSON carrying many records, packed up
//! to a byte budget, identified by a content id.
//!
//! The content id is a SHA-256 over the canonical encoding of the records
//! (sorted by id and update time), so packing the same records again — a
//! producer re-run after a crash, a redelivery — yields the same id, and the
//! consumer's object key (derived from it) overwrites instead of duplicating.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::MessageError;
use crate::record::SourceRecord;

/// The envelope version this build writes and reads.
pub const MESSAGE_VERSION: u64 = 1;

/// SQS's hard limit on a message body (256 KiB).
pub const SQS_MAX_MESSAGE_BYTES: usize = 262_144;

/// Default packing budget: 128 KiB per message keeps a batch of 10 messages at
/// ~1.3 MB, far below the 6 MB Lambda payload limit, and half of SQS's limit.
pub const DEFAULT_MESSAGE_BUDGET: usize = 128 * 1024;

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueMessage {
    /// Envelope version.
    pub v: u64,
    /// Hex SHA-256 of the canonical records.
    pub content_id: String,
    /// The records, sorted by (id, updated_at).
    pub records: Vec<SourceRecord>,
}

/// A message ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    /// Content id (also used as the SQS batch entry id prefix and dedup key).
    pub content_id: String,
    /// The JSON body.
    pub body: String,
    /// Number of records inside.
    pub record_count: usize,
    /// The newest `updated_at` among the records (for watermarks and checkpoints).
    pub max_updated_at: chrono::DateTime<chrono::Utc>,
}

fn record_json(r: &SourceRecord) -> String {
    let mut buf = Vec::with_capacity(128 + r.text.len());
    encode_record(&mut buf, r);
    // JSON that serde_json wrote from `&str` fields, escaped with ASCII only.
    String::from_utf8(buf).expect("records encode as UTF-8")
}

/// One record's JSON as it goes into a message body: serde_json's output with
/// every character SQS refuses written as a `\uXXXX` escape.
///
/// SQS accepts only `#x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF`.
/// serde_json already escapes the controls below U+0020, and a Rust string
/// holds no surrogates, so what is left are the non-characters U+FFFE and
/// U+FFFF. They can only occur inside JSON strings, where the escape decodes to
/// the same character: the text reaches Parquet unchanged, and the content id
/// is computed over these escaped bytes, the very bytes the body carries.
fn encode_record(buf: &mut Vec<u8>, r: &SourceRecord) {
    let start = buf.len();
    // Serialising our own struct cannot fail (string keys, finite data).
    serde_json::to_writer(&mut *buf, r).expect("SourceRecord serialises");
    escape_sqs_refused(buf, start);
}

/// Rewrite U+FFFE / U+FFFF (UTF-8 `EF BF BE` / `EF BF BF`) from `start` on as
/// `\ufffe` / `\uffff`. Bodies without them (nearly all) are only scanned.
fn escape_sqs_refused(buf: &mut Vec<u8>, start: usize) {
    let is_refused = |w: &[u8]| w[0] == 0xEF && w[1] == 0xBF && (w[2] == 0xBE || w[2] == 0xBF);
    let Some(first) = buf[start..].windows(3).position(is_refused) else {
        return;
    };
    let tail = buf.split_off(start + first);
    let mut i = 0;
    while i < tail.len() {
        if i + 3 <= tail.len() && is_refused(&tail[i..i + 3]) {
            buf.extend_from_slice(if tail[i + 2] == 0xBE {
                b"\\ufffe"
            } else {
                b"\\uffff"
            });
            i += 3;
        } else {
            buf.push(tail[i]);
            i += 1;
        }
    }
}

/// Whether every character of `body` is one SQS accepts in a message body.
pub fn is_sqs_safe(body: &str) -> bool {
    body.chars().all(|c| {
        matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
    })
}

/// Compute the content id of a set of records already in canonical order.
fn content_id_of<S: AsRef<str>>(encoded_records: &[S]) -> String {
    let mut h = Sha256::new();
    h.update(b"etl-message-v1\n");
    for r in encoded_records {
        let r = r.as_ref();
        h.update((r.len() as u64).to_le_bytes());
        h.update(r.as_bytes());
    }
    hex::encode(h.finalize())
}

fn canonical_order(records: &mut [SourceRecord]) {
    records.sort_by(|a, b| a.id.cmp(&b.id).then(a.updated_at.cmp(&b.updated_at)));
}

/// Build one message from records (in any order).
pub fn build_message(mut records: Vec<SourceRecord>) -> OutgoingMessage {
    canonical_order(&mut records);
    let encoded: Vec<String> = records.iter().map(record_json).collect();
    let max_updated_at = records
        .iter()
        .map(|r| r.updated_at)
        .max()
        .unwrap_or_default();
    assemble(&encoded, records.len(), max_updated_at)
}

fn assemble<S: AsRef<str>>(
    encoded: &[S],
    record_count: usize,
    max_updated_at: chrono::DateTime<chrono::Utc>,
) -> OutgoingMessage {
    let content_id = content_id_of(encoded);
    let mut body = String::with_capacity(
        envelope_overhead() + encoded.iter().map(|e| e.as_ref().len() + 1).sum::<usize>(),
    );
    body.push_str("{\"v\":");
    body.push_str(&MESSAGE_VERSION.to_string());
    body.push_str(",\"content_id\":\"");
    body.push_str(&content_id);
    body.push_str("\",\"records\":[");
    for (i, e) in encoded.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(e.as_ref());
    }
    body.push_str("]}");
    OutgoingMessage {
        content_id,
        body,
        record_count,
        max_updated_at,
    }
}

/// Bytes of the envelope around the records.
fn envelope_overhead() -> usize {
    // {"v":1,"content_id":"<64 hex>","records":[]}
    "{\"v\":1,\"content_id\":\"\",\"records\":[]}".len() + 64
}

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
            max_updated_at: chrono::DateTime::<chrono::Utc>::default(),
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn add(&mut self, record: &SourceRecord, encoded: &[u8]) {
        if self.entries.is_empty() {
            self.max_updated_at = record.updated_at;
        } else {
            self.bytes += 1;
            self.max_updated_at = self.max_updated_at.max(record.updated_at);
        }
        self.bytes += encoded.len();
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
    /// [`build_message`] makes of the same records.
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
    /// A packer with a byte budget per message and an optional hard limit (SQS: 256 KiB).
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
                if b.bytes + 1 + enc_len > self.budget || b.len() >= self.max_records {
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
        self.buckets[idx].add(&record, &self.scratch);
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

/// Decode and verify a message body.
///
/// Messages our producer wrote take a fast path: one typed parse, then the
/// content id is checked over the records' bytes exactly as they appear in
/// the body (the producer hashed those very bytes), with no re-encoding.
/// Anything else — a malformed body, a bad record, records out of order, a
/// body re-formatted by someone else — goes through the full path below,
/// which names the failing record and field and re-derives the canonical id.
pub fn decode_message(body: &str) -> Result<QueueMessage, MessageError> {
    decode_fast(body).map_or_else(|| decode_full(body), Ok)
}

#[derive(Deserialize)]
struct Envelope {
    v: u64,
    content_id: String,
    records: Vec<SourceRecord>,
}

fn decode_fast(body: &str) -> Option<QueueMessage> {
    let env: Envelope = serde_json::from_str(body).ok()?;
    if env.v != MESSAGE_VERSION
        || env.records.is_empty()
        || env.records.iter().any(|r| r.text.trim().is_empty())
        || !env.records.is_sorted_by(|a, b| {
            a.id.cmp(&b.id)
                .then(a.updated_at.cmp(&b.updated_at))
                .is_le()
        })
    {
        return None;
    }
    let raw = raw_records(body)?;
    if raw.len() != env.records.len() || content_id_of(&raw) != env.content_id {
        return None;
    }
    Some(QueueMessage {
        v: env.v,
        content_id: env.content_id,
        records: env.records,
    })
}

/// The source text of each element of the top-level `records` array, in a
/// body serde has already accepted as JSON. `None` when the array is not
/// found under that exact (unescaped) key.
fn raw_records(body: &str) -> Option<Vec<&str>> {
    let b = body.as_bytes();
    let ws = |mut i: usize| {
        while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
            i += 1;
        }
        i
    };
    let mut i = ws(0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = ws(i);
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = json_value_end(b, i)?;
        let key = &body[i + 1..key_end - 1];
        i = ws(key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(i + 1);
        if key == "records" {
            if b.get(i) != Some(&b'[') {
                return None;
            }
            let mut out = Vec::new();
            i = ws(i + 1);
            if b.get(i) == Some(&b']') {
                return Some(out);
            }
            loop {
                let end = json_value_end(b, i)?;
                out.push(&body[i..end]);
                i = ws(end);
                match b.get(i) {
                    Some(b',') => i = ws(i + 1),
                    Some(b']') => return Some(out),
                    _ => return None,
                }
            }
        }
        i = ws(json_value_end(b, i)?);
        match b.get(i) {
            Some(b',') => i += 1,
            _ => return None,
        }
    }
}

/// End (exclusive) of the JSON value starting at `start` in valid JSON.
fn json_value_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    let mut depth = 0usize;
    let mut in_string = false;
    loop {
        let c = *b.get(i)?;
        i += 1;
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => {
                    in_string = false;
                    if depth == 0 {
                        return Some(i);
                    }
                }
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => return Some(i - 1), // ends a scalar
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            b',' | b' ' | b'\t' | b'\n' | b'\r' if depth == 0 => return Some(i - 1),
            _ => {}
        }
        if depth == 0 && i >= b.len() {
            return Some(i);
        }
    }
}

fn decode_full(body: &str) -> Result<QueueMessage, MessageError> {
    let raw: serde_json::Value =
        serde_json::from_str(body).map_err(|e| MessageError::Malformed(e.to_string()))?;
    let serde_json::Value::Object(mut obj) = raw else {
        return Err(MessageError::Malformed("body is not a JSON object".into()));
    };
    let v = obj
        .get("v")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| MessageError::Malformed("field `v` missing or not an integer".into()))?;
    if v != MESSAGE_VERSION {
        return Err(MessageError::UnsupportedVersion(v));
    }
    let claimed = match obj.remove("content_id") {
        Some(serde_json::Value::String(s)) => s,
        _ => {
            return Err(MessageError::Malformed(
                "field `content_id` missing or not a string".into(),
            ))
        }
    };
    let list = match obj.remove("records") {
        Some(serde_json::Value::Array(list)) => list,
        _ => {
            return Err(MessageError::Malformed(
                "field `records` missing or not an array".into(),
            ))
        }
    };
    if list.is_empty() {
        return Err(MessageError::Malformed("field `records` is empty".into()));
    }
    let mut records = Vec::with_capacity(list.len());
    for (index, r) in list.into_iter().enumerate() {
        let id = r.get("id").and_then(|v| v.as_str()).map(str::to_owned);
        // Owned value: deserialising moves the strings instead of copying them.
        let rec: SourceRecord = serde_json::from_value(r).map_err(|e| MessageError::Record {
            index,
            source: crate::error::RecordError::new(id.as_deref(), "<record>", e.to_string()),
        })?;
        if rec.text.trim().is_empty() {
            return Err(MessageError::Record {
                index,
                source: crate::error::RecordError::new(Some(&rec.id), "text", "empty text"),
            });
        }
        records.push(rec);
    }
    // Producers send records in canonical order already; sorting in place is
    // then a linear check, and no second copy of the records is made.
    canonical_order(&mut records);
    let encoded: Vec<String> = records.iter().map(record_json).collect();
    let actual = content_id_of(&encoded);
    if actual != claimed {
        return Err(MessageError::ContentIdMismatch { claimed, actual });
    }
    Ok(QueueMessage {
        v,
        content_id: claimed,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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

    /// Texts SQS would refuse raw (U+FFFE, U+FFFF), with astral planes,
    /// controls and the edges of the allowed ranges around them.
    const HOSTILE: &[&str] = &[
        "before \u{FFFE} after",
        "\u{FFFF}",
        "\u{FFFE}\u{FFFF}\u{FFFE}",
        "controls \u{0}\u{1}\u{8}\u{B}\u{C}\u{1F}\u{7F}\u{9F} tab\tnl\ncr\r",
        "edges \u{D7FF}\u{E000}\u{FFFD}\u{10000}\u{10FFFF} astral 😀𝄞 \u{1FFFE}\u{10FFFE}",
        "bom \u{FEFF} rtl \u{202E} zwj 👩\u{200D}💻",
    ];

    #[test]
    fn bodies_hold_only_characters_sqs_accepts_and_texts_round_trip() {
        let recs: Vec<SourceRecord> = HOSTILE
            .iter()
            .enumerate()
            .map(|(i, t)| rec(&format!("odd/../id {i}\u{FFFF}"), t))
            .collect();
        let raw = serde_json::to_string(&recs[0]).unwrap();
        assert!(!is_sqs_safe(&raw), "serde_json alone leaves U+FFFE raw");
        let built = build_message(recs.clone());
        assert!(is_sqs_safe(&built.body), "{}", built.body);
        assert!(built.body.contains("\\ufffe") && built.body.contains("\\uffff"));
        let mut p = Packer::new(DEFAULT_MESSAGE_BUDGET, Some(SQS_MAX_MESSAGE_BYTES));
        let packed = pack_all(&mut p, recs.clone());
        assert_eq!(
            packed,
            vec![built.clone()],
            "packer and build_message agree"
        );
        let back = decode_message(&built.body).unwrap();
        assert_eq!(back.content_id, built.content_id);
        let mut want = recs;
        canonical_order(&mut want);
        assert_eq!(back.records, want, "texts and ids come back unchanged");
        // The slow path (a body re-formatted by someone else) derives the same id.
        let pretty = serde_json::to_string_pretty(
            &serde_json::from_str::<serde_json::Value>(&built.body).unwrap(),
        )
        .unwrap();
        assert_eq!(
            decode_message(&pretty).unwrap().content_id,
            built.content_id
        );
    }

    #[test]
    fn content_id_ignores_record_order_but_not_content() {
        let a = build_message(vec![rec("1", "good"), rec("2", "bad")]);
        let b = build_message(vec![rec("2", "bad"), rec("1", "good")]);
        let c = build_message(vec![rec("1", "good"), rec("2", "bad!")]);
        assert_eq!(a.content_id, b.content_id);
        assert_eq!(a.body, b.body);
        assert_ne!(a.content_id, c.content_id);
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

    #[test]
    fn decoding_rejects_tampering_versions_and_garbage() {
        let m = build_message(vec![rec("1", "good")]);
        let tampered = m.body.replace("good", "evil");
        assert!(matches!(
            decode_message(&tampered),
            Err(MessageError::ContentIdMismatch { .. })
        ));
        let v2 = m.body.replacen("\"v\":1", "\"v\":2", 1);
        assert_eq!(
            decode_message(&v2),
            Err(MessageError::UnsupportedVersion(2))
        );
        assert!(matches!(
            decode_message("not json"),
            Err(MessageError::Malformed(_))
        ));
        assert!(matches!(
            decode_message("[]"),
            Err(MessageError::Malformed(_))
        ));
        let empty = r#"{"v":1,"content_id":"x","records":[]}"#;
        assert!(matches!(
            decode_message(empty),
            Err(MessageError::Malformed(_))
        ));
        let bad_rec = r#"{"v":1,"content_id":"x","records":[{"id":"q","text":"hi"}]}"#;
        assert!(matches!(
            decode_message(bad_rec),
            Err(MessageError::Record { index: 0, .. })
        ));
    }

    #[test]
    fn fast_and_full_decoding_accept_and_reject_the_same_bodies() {
        let recs = vec![
            rec("b", "second \"quoted\" {not: json} ] , text"),
            rec("a", "first, with [brackets] and \\ backslash"),
            rec("c", "ünïcödé 😀 text"),
        ];
        let m = build_message(recs);
        let fast = decode_fast(&m.body).expect("our own body takes the fast path");
        assert_eq!(Ok(fast.clone()), decode_full(&m.body));
        assert_eq!(fast.content_id, m.content_id);

        // Re-formatted by a JSON tool: not the bytes the producer hashed, so
        // the fast path declines and the full path re-derives the same id.
        let value: serde_json::Value = serde_json::from_str(&m.body).unwrap();
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        assert!(decode_fast(&pretty).is_none());
        assert_eq!(decode_message(&pretty), Ok(fast.clone()));

        // Keys in another order, records out of canonical order.
        let mut reordered = value.clone();
        reordered["records"].as_array_mut().unwrap().reverse();
        let body = format!(
            r#"{{"records":{},"content_id":"{}","v":1}}"#,
            reordered["records"], m.content_id
        );
        assert!(decode_fast(&body).is_none());
        assert_eq!(decode_message(&body), Ok(fast.clone()));

        // One changed byte inside a record fails both ways.
        let tampered = m.body.replacen("second", "Second", 1);
        assert!(decode_fast(&tampered).is_none());
        assert!(matches!(
            decode_message(&tampered),
            Err(MessageError::ContentIdMismatch { .. })
        ));
    }

    #[test]
    fn raw_record_slices_follow_json_structure() {
        let body = r#" { "v" : 1 , "x" : {"records":[1]}, "records" : [ {"a":"]"} , [1,{"b":[]}] , "s\"]" , 12.5e3 , true ] , "z":null }"#;
        assert_eq!(
            raw_records(body).unwrap(),
            vec![
                r#"{"a":"]"}"#,
                r#"[1,{"b":[]}]"#,
                r#""s\"]""#,
                "12.5e3",
                "true"
            ]
        );
        assert_eq!(raw_records(r#"{"v":1}"#), None);
        assert_eq!(raw_records(r#"{"records":[]}"#), Some(vec![]));
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
