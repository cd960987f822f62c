//! The consumer's side of the message contract: a body back into its
//! records, with the content id verified.
//!
//! Decoding has two paths that must agree, which is why it has a file of its
//! own. Bodies our producer wrote (nearly all) take the fast one: serde reads
//! the envelope and hands over each record's exact text ([`RawValue`]), the
//! content id is checked over those very bytes (what the producer hashed) and
//! each record is parsed from its own text, with no re-encoding. Anything
//! else goes through the full path, which names the failing record and field
//! and re-derives the canonical id; every error a caller sees comes from it.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{canonical_order, content_id_of, record_json, QueueMessage, MESSAGE_VERSION};
use crate::error::MessageError;
use crate::record::SourceRecord;

/// Decode and verify a message body.
///
/// Messages our producer wrote take a fast path: one typed parse of the
/// envelope that keeps each record's text as it appears in the body, the
/// content id checked over those bytes (the producer hashed those very
/// bytes), then each record parsed from its text, with no re-encoding.
/// Anything else — a malformed body, a bad record, records out of order, a
/// body re-formatted by someone else — goes through the full path below,
/// which names the failing record and field and re-derives the canonical id.
pub fn decode_message(body: &str) -> Result<QueueMessage, MessageError> {
    decode_fast(body).map_or_else(|| decode_full(body), Ok)
}

/// The envelope as the fast path reads it: each record is the exact text it
/// has in the body (borrowed, escapes and all), parsed on its own afterwards.
#[derive(Deserialize)]
struct Envelope<'a> {
    v: u64,
    content_id: String,
    #[serde(borrow)]
    records: Vec<&'a RawValue>,
}

/// Containers a parse of the whole body has open around a record's attribute
/// values: the envelope, the `records` array, the record and its
/// `attributes` map.
const ATTRIBUTE_DEPTH: usize = 4;

/// The most containers serde_json opens at once: it refuses the 128th.
const SERDE_JSON_MAX_DEPTH: usize = 127;

fn decode_fast(body: &str) -> Option<QueueMessage> {
    // serde also reads a struct from a JSON array of its fields; a body that
    // is not an object is the full path's to refuse.
    if !starts_as_object(body) {
        return None;
    }
    let env: Envelope<'_> = serde_json::from_str(body).ok()?;
    if env.v != MESSAGE_VERSION || env.records.is_empty() {
        return None;
    }
    let mut records = Vec::with_capacity(env.records.len());
    for raw in &env.records {
        // The same `Deserialize` that read records inside the envelope before.
        let r: SourceRecord = serde_json::from_str(raw.get()).ok()?;
        if r.text.trim().is_empty() || nests_too_deep(&r) {
            return None;
        }
        records.push(r);
    }
    if !records.is_sorted_by(|a, b| {
        a.id.cmp(&b.id)
            .then(a.updated_at.cmp(&b.updated_at))
            .is_le()
    }) {
        return None;
    }
    if content_id_of(env.records.iter().map(|r| r.get())) != env.content_id {
        return None;
    }
    Some(QueueMessage {
        v: env.v,
        content_id: env.content_id,
        records,
    })
}

/// Whether the first byte of `body` past JSON whitespace opens an object.
fn starts_as_object(body: &str) -> bool {
    body.trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
}

/// Whether a parse of the whole body would hit serde_json's nesting limit
/// inside this record's attributes. A record parsed from its own text starts
/// two levels shallower than it sits in the body, so without this check a
/// record nested within two levels of the limit would decode here while the
/// full path (and every earlier decoder) refuses its message as malformed.
fn nests_too_deep(r: &SourceRecord) -> bool {
    r.attributes
        .values()
        .any(|v| ATTRIBUTE_DEPTH + depth(v) > SERDE_JSON_MAX_DEPTH)
}

/// Containers nested in `v` (0 for a scalar, 1 for `[]` or `[1]`).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
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
    use crate::message::build_message;
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

    /// The exact text of each record, as serde hands it over: the cases the
    /// hand-written scanner it replaced was tested with (each envelope now
    /// also carries the `v` and `content_id` it needs to be one).
    #[test]
    fn raw_record_slices_follow_json_structure() {
        fn raw_records(body: &str) -> Option<Vec<&str>> {
            let env: Envelope<'_> = serde_json::from_str(body).ok()?;
            Some(env.records.into_iter().map(RawValue::get).collect())
        }
        let body = r#" { "v" : 1 , "content_id" : "x" , "x" : {"records":[1]}, "records" : [ {"a":"]"} , [1,{"b":[]}] , "s\"]" , 12.5e3 , true ] , "z":null }"#;
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
        assert_eq!(raw_records(r#"{"v":1,"content_id":"x"}"#), None);
        assert_eq!(
            raw_records(r#"{"v":1,"content_id":"x","records":[]}"#),
            Some(vec![])
        );
    }

    /// The full path's checks, in its order: the version is judged before
    /// the rest of the envelope, so a body from a newer producer is reported
    /// as such whatever else it holds.
    #[test]
    fn each_kind_of_bad_envelope_keeps_its_error() {
        let malformed = |m: &str| -> Result<QueueMessage, MessageError> {
            Err(MessageError::Malformed(m.into()))
        };
        assert_eq!(
            decode_message(r#"{"v":2}"#),
            Err(MessageError::UnsupportedVersion(2))
        );
        assert_eq!(
            decode_message(r#"{"records":7,"v":3,"content_id":null}"#),
            Err(MessageError::UnsupportedVersion(3))
        );
        assert_eq!(
            decode_message(r#"{"content_id":"x","records":[]}"#),
            malformed("field `v` missing or not an integer")
        );
        assert_eq!(
            decode_message(r#"{"v":1,"records":[]}"#),
            malformed("field `content_id` missing or not a string")
        );
        assert_eq!(
            decode_message(r#"{"v":1,"content_id":"x","records":{}}"#),
            malformed("field `records` missing or not an array")
        );
        assert_eq!(
            decode_message(r#"{"v":1,"content_id":"x","records":[]}"#),
            malformed("field `records` is empty")
        );
        assert_eq!(
            decode_message(r#"[1,"x",[]]"#),
            malformed("body is not a JSON object")
        );
    }

    #[test]
    fn only_an_object_takes_the_fast_path_however_the_key_is_spelt() {
        let m = build_message(vec![rec("1", "good")]);
        // The envelope's fields as a JSON array, records byte for byte: serde
        // would read it as the struct, but a body is an object.
        let records = m
            .body
            .split_once("\"records\":")
            .and_then(|(_, rest)| rest.strip_suffix('}'))
            .unwrap();
        let array = format!("[1,\"{}\",{records}]", m.content_id);
        assert!(decode_fast(&array).is_none());
        assert_eq!(
            decode_message(&array),
            Err(MessageError::Malformed("body is not a JSON object".into()))
        );
        // An escaped key is the same key.
        let escaped = m.body.replacen("\"records\"", "\"r\\u0065cords\"", 1);
        assert_ne!(escaped, m.body);
        assert_eq!(decode_message(&escaped), decode_message(&m.body));
        assert_eq!(decode_fast(&escaped), decode_fast(&m.body));
    }

    /// A message whose attributes nest up to serde_json's limit in the body
    /// as a whole is malformed, as it always was, though each record alone
    /// would parse.
    #[test]
    fn records_nested_past_the_limit_in_the_body_stay_malformed() {
        let nested = |levels: usize| {
            let mut v = serde_json::json!(1);
            for _ in 0..levels {
                v = serde_json::json!([v]);
            }
            v
        };
        for (levels, decodes) in [(123, true), (124, false), (125, false), (126, false)] {
            let mut r = rec("a", "deep");
            r.attributes.insert("deep".into(), nested(levels));
            let m = build_message(vec![r.clone()]);
            match decode_message(&m.body) {
                Ok(d) => {
                    assert!(decodes, "{levels} levels decoded");
                    assert_eq!(d.records, vec![r]);
                    assert_eq!(decode_fast(&m.body), Some(d));
                }
                Err(MessageError::Malformed(e)) => {
                    assert!(!decodes, "{levels} levels: {e}");
                    assert!(e.contains("recursion limit"), "{e}");
                }
                Err(e) => panic!("{levels} levels: {e}"),
            }
        }
    }
}
