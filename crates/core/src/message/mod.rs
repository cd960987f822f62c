//! The queue message contract: versioned JSON carrying many records, packed up
//! to a byte budget, identified by a content id.
//!
//! The content id is a SHA-256 over the canonical encoding of the records
//! (sorted by id and update time), so packing the same records again — a
//! producer re-run after a crash, a redelivery — yields the same id, and the
//! consumer's object key (derived from it) overwrites instead of duplicating.
//!
//! This module is the envelope: the v1 body format, how one record is
//! encoded into it and how the content id is computed over those bytes
//! ([`build_message`]). The two sides that work on it have a file each:
//! `packer` groups a stream of records into messages under a byte budget
//! ([`Packer`]), and `decode` turns a body back into records and verifies its
//! id ([`decode_message`]). Both reuse the encoding here, so a packed message,
//! a built one and a re-derived id always agree byte for byte.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::record::SourceRecord;

mod decode;
mod packer;

pub use decode::decode_message;
pub use packer::{Packer, DEFAULT_OPEN_BUCKETS};

/// The envelope version this build writes and reads.
pub const MESSAGE_VERSION: u64 = 1;

/// SQS's hard limit on a message body, and on a SendMessageBatch payload
/// (1 MiB; it was 256 KiB until 2025).
pub const SQS_MAX_MESSAGE_BYTES: usize = 1_048_576;

/// Default packing budget: 1,000,000 bytes of a message *as the consumer's
/// event carries it* (JSON-escaped, see [`event_len`]), just under SQS's
/// 1 MiB, so that one Parquet object holds ~6,000 records of typical texts
/// and a consumer batch of 5 messages stays under Lambda's 6 MB payload
/// (`5 × (1,000,000 + per-message event fields)` < 6,291,456) whatever the
/// texts hold.
pub const DEFAULT_MESSAGE_BUDGET: usize = 1_000_000;

/// Lambda's limit on an invocation's payload (6 MB), the consumer's SQS
/// event included.
pub const LAMBDA_MAX_PAYLOAD_BYTES: usize = 6_291_456;

/// The size of `json` when it is itself written as a JSON string, as SQS
/// bodies are inside a Lambda event: `"` and `\` take two bytes, a raw
/// control (serde_json never leaves one) six. Non-ASCII text is counted as
/// its UTF-8 bytes, as the event carries it.
pub fn event_len(json: &[u8]) -> usize {
    json.len()
        + json
            .iter()
            .map(|&b| match b {
                b'"' | b'\\' => 1,
                0..=0x1f => 5,
                _ => 0,
            })
            .sum::<usize>()
}

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

impl OutgoingMessage {
    /// A message to send again exactly as it was sent before (an outbox's
    /// staged body): the body is decoded, which checks its records against
    /// its content id, and kept byte for byte. Also returns the decoded
    /// message, whose records the caller marks as sent.
    pub fn from_body(body: String) -> Result<(Self, QueueMessage), crate::error::MessageError> {
        let decoded = decode_message(&body)?;
        let message = Self {
            content_id: decoded.content_id.clone(),
            record_count: decoded.records.len(),
            max_updated_at: decoded
                .records
                .iter()
                .map(|r| r.updated_at)
                .max()
                .unwrap_or_default(),
            body,
        };
        Ok((message, decoded))
    }
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
///
/// `buf[start..]` must be JSON as serde_json writes it: that has already
/// escaped the controls, and the two characters can only sit inside its
/// strings, where the escape means the same character. Public so that other
/// JSON bound for SQS (the dead-letter queue's attributes) is escaped the same
/// way as bodies.
pub fn escape_sqs_refused(buf: &mut Vec<u8>, start: usize) {
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
fn content_id_of<I>(encoded_records: I) -> String
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
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

/// The envelope around the records, without its 64 hex digits of content id.
const ENVELOPE: &str = "{\"v\":1,\"content_id\":\"\",\"records\":[]}";

/// Bytes of the envelope around the records.
fn envelope_overhead() -> usize {
    ENVELOPE.len() + 64
}

/// Bytes of the envelope in the consumer's event (see [`event_len`]).
fn envelope_event_overhead() -> usize {
    event_len(ENVELOPE.as_bytes()) + 64
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
}
