//! Round trip: records a source accepts, packed into messages, decode back to
//! the same records under the same content ids.
//!
//! Records are built as JSON objects from structured fuzz input and validated
//! by `FieldMap::parse`, so only records the pipeline really accepts take part
//! (any id, text, RFC 3339 or epoch timestamp, nested pass-through attributes
//! with floats, big integers and unicode). They then go through both
//! `build_message` and a `Packer` with a fuzzed budget, record cap and open
//! bucket cap.
#![no_main]

use arbitrary::Arbitrary;
use etl_core::message::SQS_MAX_MESSAGE_BYTES;
use etl_core::{decode_message, FieldMap, MessageError, Packer, SourceRecord};
use etl_fuzz::{assert_travels, at_lake_precision, canonical};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Number, Value};

#[derive(Arbitrary, Debug)]
enum Id {
    Str(String),
    Int(i64),
    Big(u64),
}

#[derive(Arbitrary, Debug)]
enum Time {
    /// Free text (mostly rejected).
    Text(String),
    /// RFC 3339 built from parts, with an offset and fraction.
    Parts {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        nanos: u32,
        digits: u8,
        offset_minutes: i16,
    },
    Seconds(i64),
    Millis(i64),
    Float(f64),
    DigitString(i64),
}

impl Time {
    fn to_json(&self) -> Value {
        match self {
            Time::Text(s) => Value::String(s.clone()),
            Time::Parts {
                year,
                month,
                day,
                hour,
                minute,
                second,
                nanos,
                digits,
                offset_minutes,
            } => {
                let digits = usize::from(*digits % 10);
                let frac = if digits == 0 {
                    String::new()
                } else {
                    let n = format!("{:09}", nanos % 1_000_000_000);
                    format!(".{}", &n[..digits.min(9)])
                };
                let off = i32::from(*offset_minutes % (24 * 60));
                let zone = if off == 0 {
                    "Z".to_string()
                } else {
                    let a = off.abs();
                    format!(
                        "{}{:02}:{:02}",
                        if off < 0 { '-' } else { '+' },
                        a / 60,
                        a % 60
                    )
                };
                Value::String(format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}{zone}",
                    year % 10_000,
                    month % 13,
                    day % 32,
                    hour % 24,
                    minute % 60,
                    second % 61,
                ))
            }
            Time::Seconds(s) => Value::from(*s),
            Time::Millis(ms) => Value::from(*ms),
            Time::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Time::DigitString(n) => Value::String(n.to_string()),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Attr {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    List(Vec<Attr>),
    Map(Vec<(String, Attr)>),
}

impl Attr {
    fn to_json(&self, depth: usize) -> Value {
        if depth > 16 {
            return Value::Null;
        }
        match self {
            Attr::Null => Value::Null,
            Attr::Bool(b) => Value::Bool(*b),
            Attr::Int(i) => Value::from(*i),
            Attr::UInt(u) => Value::from(*u),
            Attr::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Attr::Str(s) => Value::String(s.clone()),
            Attr::List(l) => Value::Array(l.iter().map(|a| a.to_json(depth + 1)).collect()),
            Attr::Map(m) => Value::Object(
                m.iter()
                    .map(|(k, a)| (k.clone(), a.to_json(depth + 1)))
                    .collect(),
            ),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Rec {
    id: Id,
    text: String,
    created_at: Time,
    updated_at: Option<Time>,
    author: Option<Attr>,
    extra: Option<Attr>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    budget: u16,
    hard_limit: bool,
    max_records: Option<u8>,
    max_open: Option<u8>,
    records: Vec<Rec>,
}

fn fields() -> FieldMap {
    FieldMap {
        passthrough: vec!["author".into(), "extra".into()],
        ..FieldMap::default()
    }
}

fn accepted(recs: &[Rec]) -> Vec<SourceRecord> {
    let fm = fields();
    recs.iter()
        .filter_map(|r| {
            let mut obj = Map::new();
            obj.insert(
                "id".into(),
                match &r.id {
                    Id::Str(s) => Value::String(s.clone()),
                    Id::Int(i) => Value::from(*i),
                    Id::Big(u) => Value::from(*u),
                },
            );
            obj.insert("text".into(), Value::String(r.text.clone()));
            obj.insert("created_at".into(), r.created_at.to_json());
            if let Some(u) = &r.updated_at {
                obj.insert("updated_at".into(), u.to_json());
            }
            if let Some(a) = &r.author {
                obj.insert("author".into(), a.to_json(0));
            }
            if let Some(a) = &r.extra {
                obj.insert("extra".into(), a.to_json(0));
            }
            fm.parse(&Value::Object(obj)).ok()
        })
        .collect()
}

fuzz_target!(|input: Input| {
    let records = accepted(&input.records);
    if records.is_empty() {
        return;
    }
    // One message holding everything.
    assert_travels(&records);

    // The producer's packer.
    let budget = usize::from(input.budget).max(1);
    let hard = input.hard_limit.then_some(SQS_MAX_MESSAGE_BYTES);
    let mut p = Packer::new(budget, hard);
    if let Some(n) = input.max_records {
        p = p.with_max_records(usize::from(n));
    }
    if let Some(n) = input.max_open {
        p = p.with_max_open(usize::from(n));
    }
    let mut sent = Vec::new();
    let mut messages = Vec::new();
    for r in &records {
        match p.push(r.clone()) {
            Ok(closed) => {
                sent.push(at_lake_precision(r));
                messages.extend(closed);
            }
            Err(MessageError::RecordTooLarge { bytes, limit, .. }) => {
                assert!(hard.is_some() && bytes > limit);
            }
            Err(e) => panic!("unexpected packer error {e}"),
        }
    }
    while let Some(m) = p.flush() {
        messages.push(m);
    }
    assert_eq!(p.pending_records(), 0);
    let mut got = Vec::new();
    for m in &messages {
        assert!(m.record_count > 0);
        if m.record_count > 1 {
            assert!(
                m.body.len() <= p.budget(),
                "{} bytes over a budget of {}",
                m.body.len(),
                p.budget()
            );
        }
        let d = decode_message(&m.body)
            .unwrap_or_else(|e| panic!("packed message does not decode: {e}\n{}", m.body));
        assert_eq!(d.content_id, m.content_id);
        assert_eq!(d.records.len(), m.record_count);
        let dts: std::collections::BTreeSet<_> = d
            .records
            .iter()
            .map(|r| r.created_at.date_naive())
            .collect();
        assert_eq!(dts.len(), 1, "a message spans partitions");
        assert_eq!(
            d.records
                .iter()
                .map(|r| r.updated_at.timestamp_micros())
                .max(),
            Some(m.max_updated_at.timestamp_micros())
        );
        got.extend(d.records);
    }
    assert_eq!(
        canonical(&got),
        canonical(&sent),
        "packing lost or changed records"
    );
});
