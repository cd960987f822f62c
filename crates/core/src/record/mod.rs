//! Source records: the one place that turns loosely typed input (a JSON line,
//! a CSV row, a DynamoDB item mapped to JSON) into a validated [`SourceRecord`].
//!
//! Every backend funnels through [`FieldMap::parse`], so "what is a valid
//! record" has a single definition and every rejection names the field.
//! That definition (the general path) lives here; the two pieces it leans on
//! have a file each: `fast` holds [`FieldMap::parse_json_direct`], a serde
//! shortcut for the commonest JSON-line shape that must agree with the
//! general path, and `timestamp` holds the codec of times (what inputs may say,
//! and the exact text messages carry), whose output feeds content ids and
//! Parquet bytes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::RecordError;

mod fast;
mod timestamp;

pub use timestamp::{parse_timestamp, parse_timestamp_str, truncate_micros, ts_micros};

/// A validated input record, normalised to UTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// Unique id from the source.
    pub id: String,
    /// The text to score (never empty).
    pub text: String,
    /// Creation time; its UTC date is the `dt` partition.
    #[serde(with = "ts_micros")]
    pub created_at: DateTime<Utc>,
    /// Last update time (`created_at` when the source has none). Drives incremental runs.
    #[serde(with = "ts_micros")]
    pub updated_at: DateTime<Utc>,
    /// Configured pass-through attributes, verbatim.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
}

/// Attribute names in the source, and which extra attributes to keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldMap {
    /// Name of the id attribute.
    pub id: String,
    /// Name of the text attribute.
    pub text: String,
    /// Name of the creation-time attribute.
    pub created_at: String,
    /// Name of the update-time attribute.
    pub updated_at: String,
    /// Extra attributes copied into the record unchanged (absent ones are skipped).
    pub passthrough: Vec<String>,
}

impl Default for FieldMap {
    fn default() -> Self {
        Self {
            id: "id".into(),
            text: "text".into(),
            created_at: "created_at".into(),
            updated_at: "updated_at".into(),
            passthrough: Vec::new(),
        }
    }
}

impl FieldMap {
    /// Validate one JSON object into a record.
    pub fn parse(&self, value: &Value) -> Result<SourceRecord, RecordError> {
        let Value::Object(obj) = value else {
            return Err(RecordError::new(
                None,
                "<record>",
                format!("expected a JSON object, found {}", kind(value)),
            ));
        };
        self.parse_object(obj)
    }

    /// Validate one JSON object (already known to be a map) into a record.
    pub fn parse_object(&self, obj: &Map<String, Value>) -> Result<SourceRecord, RecordError> {
        let id = match obj.get(&self.id) {
            None | Some(Value::Null) => {
                return Err(RecordError::new(None, &self.id, "missing (required)"))
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                return Err(RecordError::new(None, &self.id, "empty string"))
            }
            Some(Value::String(s)) => s.clone(),
            // Numeric ids are common in exports; keep their exact text.
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => {
                return Err(RecordError::new(
                    None,
                    &self.id,
                    format!("expected a string, found {}", kind(other)),
                ))
            }
        };
        let rid = Some(id.as_str());
        let text = match obj.get(&self.text) {
            None | Some(Value::Null) => {
                return Err(RecordError::new(rid, &self.text, "missing (required)"))
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                return Err(RecordError::new(rid, &self.text, "empty text"))
            }
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(RecordError::new(
                    rid,
                    &self.text,
                    format!("expected a string, found {}", kind(other)),
                ))
            }
        };
        let created_at = match obj.get(&self.created_at) {
            None | Some(Value::Null) => {
                return Err(RecordError::new(
                    rid,
                    &self.created_at,
                    "missing (required)",
                ))
            }
            Some(v) => {
                parse_timestamp(v).map_err(|r| RecordError::new(rid, &self.created_at, r))?
            }
        };
        let updated_at = match obj.get(&self.updated_at) {
            None | Some(Value::Null) => created_at,
            Some(v) => {
                parse_timestamp(v).map_err(|r| RecordError::new(rid, &self.updated_at, r))?
            }
        };
        let mut attributes = Map::new();
        for name in &self.passthrough {
            if let Some(v) = obj.get(name) {
                attributes.insert(name.clone(), v.clone());
            }
        }
        Ok(SourceRecord {
            id,
            text,
            created_at,
            updated_at,
            attributes,
        })
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fm() -> FieldMap {
        FieldMap::default()
    }

    #[test]
    fn parses_rfc3339_with_offset_into_utc() {
        let r = fm()
            .parse(&json!({"id":"a","text":"hi","created_at":"2024-03-01T01:30:00+05:00"}))
            .unwrap();
        assert_eq!(r.created_at.to_rfc3339(), "2024-02-29T20:30:00+00:00");
        assert_eq!(
            r.updated_at, r.created_at,
            "updated_at falls back to created_at"
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (json!([1, 2]), "<record>", "expected a JSON object"),
            (json!({"text":"x","created_at":1}), "id", "missing"),
            (json!({"id":"","text":"x","created_at":1}), "id", "empty"),
            (
                json!({"id":{},"text":"x","created_at":1}),
                "id",
                "expected a string",
            ),
            (json!({"id":"a","created_at":1}), "text", "missing"),
            (
                json!({"id":"a","text":"  ","created_at":1}),
                "text",
                "empty text",
            ),
            (
                json!({"id":"a","text":7,"created_at":1}),
                "text",
                "found a number",
            ),
            (json!({"id":"a","text":"x"}), "created_at", "missing"),
            (
                json!({"id":"a","text":"x","created_at":"yesterday"}),
                "created_at",
                "unparseable",
            ),
            (
                json!({"id":"a","text":"x","created_at":true}),
                "created_at",
                "found a boolean",
            ),
            (
                json!({"id":"a","text":"x","created_at":1,"updated_at":"2024-13-01T00:00:00Z"}),
                "updated_at",
                "unparseable",
            ),
        ];
        for (v, field, reason) in cases {
            let e = fm().parse(&v).unwrap_err();
            assert_eq!(e.field, field, "{v}");
            assert!(e.reason.contains(reason), "{v}: {}", e.reason);
        }
    }

    #[test]
    fn configured_names_and_passthrough() {
        let f = FieldMap {
            id: "post_id".into(),
            text: "body".into(),
            created_at: "ts".into(),
            updated_at: "edited".into(),
            passthrough: vec!["author".into(), "missing".into()],
        };
        let r = f
            .parse(&json!({"post_id": 42, "body":"great","ts":"2024-01-01T00:00:00Z","edited":"2024-01-02T00:00:00Z","author":"ann","other":1}))
            .unwrap();
        assert_eq!(r.id, "42");
        assert_eq!(r.updated_at.to_rfc3339(), "2024-01-02T00:00:00+00:00");
        assert_eq!(r.attributes.len(), 1);
        assert_eq!(r.attributes["author"], "ann");
    }

    #[test]
    fn text_is_kept_verbatim() {
        let r = fm()
            .parse(&json!({"id":"a","text":"  Spaces\tand\nNEWLINES!! 😀 ","created_at":0}))
            .unwrap();
        assert_eq!(r.text, "  Spaces\tand\nNEWLINES!! 😀 ");
    }
}
