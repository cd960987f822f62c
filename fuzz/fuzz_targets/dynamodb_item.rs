//! DynamoDB items: an `AttributeValue` map built from structured fuzz input
//! (every attribute type, nested maps and lists up to DynamoDB's 32 levels,
//! numbers as DynamoDB's decimal strings) through the producer's item→record
//! conversion (`item_to_json` + `FieldMap::parse_object`, as `convert` does
//! for every Scan page), and the checkpoint key encoding. Never panics;
//! an accepted record travels through a queue message unchanged; keys
//! round-trip with their types.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::Blob;
use etl_aws::dynamodb::{convert, key_from_json, key_to_json};
use etl_core::{FieldMap, SourceItem};
use etl_fuzz::assert_travels;
use libfuzzer_sys::fuzz_target;

/// DynamoDB's nesting limit for documents.
const MAX_DEPTH: usize = 32;

#[derive(Arbitrary, Debug)]
enum Name {
    Id,
    Text,
    CreatedAt,
    UpdatedAt,
    Author,
    Other(String),
}

impl Name {
    fn as_string(&self) -> String {
        match self {
            Name::Id => "id".into(),
            Name::Text => "text".into(),
            Name::CreatedAt => "created_at".into(),
            Name::UpdatedAt => "updated_at".into(),
            Name::Author => "author".into(),
            Name::Other(s) => s.clone(),
        }
    }
}

/// A DynamoDB number (a decimal string on the wire).
#[derive(Arbitrary, Debug)]
enum Num {
    Int(i64),
    UInt(u64),
    Float(f64),
    /// An epoch timestamp in seconds or milliseconds, maybe with a fraction.
    Epoch {
        secs: u32,
        millis: bool,
        frac: Option<u16>,
    },
    /// Up to 38 digits, DynamoDB's precision.
    Digits {
        negative: bool,
        digits: Vec<u8>,
        point: Option<u8>,
        exp: Option<i8>,
    },
    Raw(String),
}

impl Num {
    fn to_string(&self) -> String {
        match self {
            Num::Int(i) => i.to_string(),
            Num::UInt(u) => u.to_string(),
            Num::Float(f) => f.to_string(),
            Num::Epoch { secs, millis, frac } => {
                let base = if *millis {
                    (u64::from(*secs) * 1000).to_string()
                } else {
                    secs.to_string()
                };
                match frac {
                    Some(f) => format!("{base}.{f}"),
                    None => base,
                }
            }
            Num::Digits {
                negative,
                digits,
                point,
                exp,
            } => {
                let mut s: String = digits
                    .iter()
                    .take(38)
                    .map(|d| char::from(b'0' + d % 10))
                    .collect();
                if s.is_empty() {
                    s.push('0');
                }
                if let Some(p) = point {
                    let at = usize::from(*p) % (s.len() + 1);
                    s.insert(at, '.');
                }
                if let Some(e) = exp {
                    s.push_str(&format!("E{e}"));
                }
                if *negative {
                    s.insert(0, '-');
                }
                s
            }
            Num::Raw(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Attr {
    S(String),
    N(Num),
    B(Vec<u8>),
    Bool(bool),
    Null,
    M(Vec<(Name, Attr)>),
    L(Vec<Attr>),
    Ss(Vec<String>),
    Ns(Vec<Num>),
    Bs(Vec<Vec<u8>>),
}

impl Attr {
    fn build(&self, depth: usize) -> AttributeValue {
        match self {
            Attr::S(s) => AttributeValue::S(s.clone()),
            Attr::N(n) => AttributeValue::N(n.to_string()),
            Attr::B(b) => AttributeValue::B(Blob::new(b.clone())),
            Attr::Bool(b) => AttributeValue::Bool(*b),
            Attr::Null => AttributeValue::Null(true),
            Attr::M(_) | Attr::L(_) if depth >= MAX_DEPTH => AttributeValue::Null(true),
            Attr::M(m) => AttributeValue::M(
                m.iter()
                    .map(|(k, v)| (k.as_string(), v.build(depth + 1)))
                    .collect(),
            ),
            Attr::L(l) => AttributeValue::L(l.iter().map(|v| v.build(depth + 1)).collect()),
            Attr::Ss(ss) => AttributeValue::Ss(ss.clone()),
            Attr::Ns(ns) => AttributeValue::Ns(ns.iter().map(Num::to_string).collect()),
            Attr::Bs(bs) => AttributeValue::Bs(bs.iter().cloned().map(Blob::new).collect()),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    passthrough: bool,
    index: u16,
    segment: u8,
    page: u32,
    item: Vec<(Name, Attr)>,
}

fuzz_target!(|input: Input| {
    let item: HashMap<String, AttributeValue> = input
        .item
        .iter()
        .map(|(k, v)| (k.as_string(), v.build(1)))
        .collect();
    let fields = FieldMap {
        passthrough: if input.passthrough {
            vec!["author".into(), "tags".into()]
        } else {
            Vec::new()
        },
        ..FieldMap::default()
    };
    match convert(
        &fields,
        &item,
        usize::from(input.index),
        usize::from(input.segment),
        u64::from(input.page),
    ) {
        SourceItem::Record(r) => assert_travels(&[r]),
        SourceItem::Rejected(rej) => {
            assert!(rej.location.starts_with("item "), "{rej}");
            assert!(rej.field.is_some());
        }
    }

    // Checkpoint keys: the S, N and B attributes of the item, as a key.
    let key: HashMap<String, AttributeValue> = item
        .iter()
        .filter(|(_, v)| {
            matches!(
                v,
                AttributeValue::S(_) | AttributeValue::N(_) | AttributeValue::B(_)
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let json = key_to_json(&key);
    let text = serde_json::to_string(&json).expect("serialises");
    let reread: serde_json::Value = serde_json::from_str(&text).expect("parses");
    assert_eq!(key_from_json(&reread).expect("own keys parse"), key);
    // Any plain JSON (here: the item as JSON) is an error or a key, never a panic.
    let _ = key_from_json(&serde_json::Value::Object(etl_aws::dynamodb::item_to_json(
        &item,
    )));
});
