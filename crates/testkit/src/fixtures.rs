//! Records as production sends them: ids that are paths, dots, spaces or
//! 200 characters long; texts with astral-plane emoji, combining marks,
//! right-to-left runs, controls and the two non-characters SQS refuses;
//! timestamps relative to now (so the data is always "recent" for
//! incremental runs), several sharing one instant, spelled every way the
//! sources accept them (epoch seconds, RFC 3339 in UTC and with an offset).
//!
//! Every timestamp is a whole microsecond, the precision of queue messages
//! and of the lake, so a record read back compares equal to the fixture.
//! Each fixture has a JSON-lines, CSV and DynamoDB form, so one set of data
//! is loaded into every source backend.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, FixedOffset, SecondsFormat, TimeDelta, Utc};
use etl_core::SourceRecord;
use serde_json::{Map, Value};

/// The header line of [`FixtureRecord::to_csv_row`] rows.
pub const CSV_HEADER: &str = "id,text,created_at,updated_at\n";

/// One fixture record. Build them with [`hostile_records`].
#[derive(Debug, Clone, PartialEq)]
pub struct FixtureRecord {
    /// Position in the fixture set; picks the id, the text and how the
    /// timestamps are spelled.
    pub index: usize,
    /// The record id.
    pub id: String,
    /// The text.
    pub text: String,
    /// Creation time (whole seconds: it is also spelled as epoch seconds).
    pub created_at: DateTime<Utc>,
    /// Update time (whole microseconds).
    pub updated_at: DateTime<Utc>,
}

/// Ids that break naive code: path separators, `..`, spaces at both ends,
/// quotes and backslashes, non-ASCII, and one exactly 200 characters long.
fn hostile_id(i: usize) -> String {
    match i % 7 {
        0 => format!("plain-{i}"),
        1 => format!("slash/{i}/x"),
        2 => format!("../dots-{i}/.."),
        3 => format!("  spaced id {i} "),
        4 => {
            let head = format!("long-{i}-");
            let pad = 200 - head.chars().count();
            head + &"x".repeat(pad)
        }
        5 => format!("ünï-{i}-日本"),
        _ => format!("quote\"and\\backslash-{i}"),
    }
}

/// Texts that break naive code. Each gets ` #i` appended so all differ.
const TEXTS: [&str; 7] = [
    // Astral plane, a skin-tone modifier.
    "I love this 😀, wonderful 👍🏽",
    // Combining marks, precomposed and not.
    "Cafe\u{301} vs café, e\u{301}\u{302}\u{323} stacked",
    // Right-to-left runs, an embedding and a line separator (not a newline).
    "مرحبا بالعالم \u{202B}embedded\u{202C} שלום\u{2028}after",
    // C0 controls, an escape sequence, a tab and a newline.
    "ctrl\u{1}\u{7}\u{1b}[0m tab\tnewline\nend",
    // A BOM, a zero-width joiner sequence, the non-characters SQS refuses.
    "terrible, I hate it 😡 \u{FEFF}bom \u{FFFE}\u{FFFF} 🏳️‍🌈",
    // Mathematical letters and a Gothic letter (all astral).
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈 text",
    "The meeting is at noon.",
];

/// `n` fixture records with distinct ids and texts. Creation dates spread
/// over four days before now and up to `n` minutes earlier (four `dt`
/// partitions, five when that crosses midnight); every third record
/// shares one update instant.
pub fn hostile_records(n: usize) -> Vec<FixtureRecord> {
    let now_us = Utc::now().timestamp_micros();
    let now = DateTime::from_timestamp_micros(now_us).expect("now is in range");
    let now_secs = DateTime::from_timestamp(now_us.div_euclid(1_000_000), 0).expect("in range");
    let shared = now - TimeDelta::microseconds(123_457);
    (0..n)
        .map(|i| {
            let k = i as i64;
            let created_at = now_secs - TimeDelta::days(k % 4) - TimeDelta::seconds(k * 61);
            let updated_at = if i % 3 == 0 {
                shared
            } else {
                now - TimeDelta::microseconds(k * 1_000_003)
            };
            FixtureRecord {
                index: i,
                id: hostile_id(i),
                text: format!("{} #{i}", TEXTS[i % TEXTS.len()]),
                created_at,
                updated_at,
            }
        })
        .collect()
}

/// `n` hostile records and a later version of every `every`-th of them
/// (its text with `edit` appended, updated `after` later): a table must
/// hold both versions of those ids.
pub fn hostile_records_with_edits(
    n: usize,
    every: usize,
    edit: &str,
    after: TimeDelta,
) -> Vec<SourceRecord> {
    let mut out: Vec<SourceRecord> = hostile_records(n).iter().map(|f| f.to_record()).collect();
    let edits: Vec<SourceRecord> = out
        .iter()
        .step_by(every.max(1))
        .map(|r| SourceRecord {
            text: format!("{}{edit}", r.text),
            updated_at: r.updated_at + after,
            ..r.clone()
        })
        .collect();
    out.extend(edits);
    out
}

/// RFC 3339 with microseconds, in UTC (`Z`) or at +05:30.
fn rfc3339(t: DateTime<Utc>, offset: bool) -> String {
    if offset {
        let ist = FixedOffset::east_opt(5 * 3600 + 1800).expect("valid offset");
        t.with_timezone(&ist)
            .to_rfc3339_opts(SecondsFormat::Micros, false)
    } else {
        t.to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

impl FixtureRecord {
    /// The record a source must produce for this fixture.
    pub fn to_record(&self) -> SourceRecord {
        SourceRecord {
            id: self.id.clone(),
            text: self.text.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            attributes: Map::new(),
        }
    }

    /// The timestamps as the source spells them: `created_at` as epoch
    /// seconds for even indices (a number), RFC 3339 otherwise;
    /// `updated_at` always RFC 3339, at an offset for every fourth.
    fn fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert("text".into(), Value::String(self.text.clone()));
        let created = if self.index.is_multiple_of(2) {
            Value::from(self.created_at.timestamp())
        } else {
            Value::String(rfc3339(self.created_at, false))
        };
        m.insert("created_at".into(), created);
        m.insert(
            "updated_at".into(),
            Value::String(rfc3339(self.updated_at, self.index % 4 == 1)),
        );
        m
    }

    /// The fixture as one JSON object.
    pub fn to_json(&self) -> Value {
        Value::Object(self.fields())
    }

    /// The fixture as a JSON line, newline included.
    pub fn to_json_line(&self) -> String {
        format!("{}\n", self.to_json())
    }

    /// The fixture as a CSV row under [`CSV_HEADER`], newline included.
    pub fn to_csv_row(&self) -> String {
        csv_row(&self.fields())
    }

    /// The fixture as a DynamoDB item (`S` for strings, `N` for numbers).
    pub fn to_dynamo_item(&self) -> HashMap<String, AttributeValue> {
        dynamo_item(&self.fields())
    }
}

/// An item every source must reject alone, naming its id and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRecord {
    /// The (readable) id.
    pub id: String,
    /// The field that is wrong, as the rejection must name it.
    pub field: String,
}

impl InvalidRecord {
    /// An item whose `created_at` is `"yesterday"`.
    pub fn bad_created_at(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            field: "created_at".into(),
        }
    }

    fn fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert("text".into(), Value::String("a fine text".into()));
        m.insert(self.field.clone(), Value::String("yesterday".into()));
        m
    }

    /// The item as a JSON line, newline included.
    pub fn to_json_line(&self) -> String {
        format!("{}\n", Value::Object(self.fields()))
    }

    /// The item as a CSV row under [`CSV_HEADER`] (no `updated_at`).
    pub fn to_csv_row(&self) -> String {
        csv_row(&self.fields())
    }

    /// The item as a DynamoDB item.
    pub fn to_dynamo_item(&self) -> HashMap<String, AttributeValue> {
        dynamo_item(&self.fields())
    }
}

/// Every cell quoted, so commas, quotes and newlines in a value stay in it.
fn csv_row(m: &Map<String, Value>) -> String {
    let cells: Vec<String> = ["id", "text", "created_at", "updated_at"]
        .iter()
        .map(|name| match m.get(*name) {
            Some(Value::String(s)) => format!("\"{}\"", s.replace('"', "\"\"")),
            Some(other) => other.to_string(),
            None => String::new(),
        })
        .collect();
    format!("{}\n", cells.join(","))
}

fn dynamo_item(m: &Map<String, Value>) -> HashMap<String, AttributeValue> {
    m.iter()
        .map(|(k, v)| {
            let av = match v {
                Value::String(s) => AttributeValue::S(s.clone()),
                other => AttributeValue::N(other.to_string()),
            };
            (k.clone(), av)
        })
        .collect()
}
