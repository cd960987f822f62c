//! DynamoDB attribute values to JSON and back.
//!
//! Items become plain JSON objects so core's [`etl_core::FieldMap`] can
//! validate them exactly like a JSON-lines row. Keys (LastEvaluatedKey) are
//! kept in DynamoDB's typed JSON (`{"id":{"S":"x"}}`) instead, because a
//! checkpoint must give back the exact key, type included.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::Blob;
use serde_json::{Map, Number, Value};

/// A DynamoDB number as JSON: an integer when it fits 64 bits, a float when it
/// has a fraction or exponent, and the exact digits as a string otherwise (a
/// 38-digit id would lose digits as a float; core accepts string ids and
/// digit-string timestamps).
pub fn number(n: &str) -> Value {
    let t = n.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Value::Number(i.into());
    }
    if let Ok(u) = t.parse::<u64>() {
        return Value::Number(u.into());
    }
    let is_integer = t
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'-' || b == b'+');
    if !is_integer {
        if let Some(num) = t.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(num);
        }
    }
    Value::String(t.to_owned())
}

/// One attribute value as plain JSON: S → string, N → number, BOOL, NULL,
/// M → object, L → array, SS/NS → arrays, B/BS → base64 strings.
pub fn to_json(av: &AttributeValue) -> Value {
    match av {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => number(n),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::M(m) => Value::Object(item_to_json(m)),
        AttributeValue::L(l) => Value::Array(l.iter().map(to_json).collect()),
        AttributeValue::Ss(ss) => Value::Array(ss.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(ns) => Value::Array(ns.iter().map(|n| number(n)).collect()),
        AttributeValue::B(b) => Value::String(aws_smithy_types::base64::encode(b.as_ref())),
        AttributeValue::Bs(bs) => Value::Array(
            bs.iter()
                .map(|b| Value::String(aws_smithy_types::base64::encode(b.as_ref())))
                .collect(),
        ),
        // A type added to DynamoDB after this SDK was built.
        _ => Value::Null,
    }
}

/// A whole item as a JSON object.
pub fn item_to_json(item: &HashMap<String, AttributeValue>) -> Map<String, Value> {
    item.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()
}

/// A key (S, N or B attributes) as typed DynamoDB JSON.
pub fn key_to_json(key: &HashMap<String, AttributeValue>) -> Value {
    let mut out = Map::new();
    for (name, av) in key {
        let typed = match av {
            AttributeValue::S(s) => ("S", Value::String(s.clone())),
            AttributeValue::N(n) => ("N", Value::String(n.clone())),
            AttributeValue::B(b) => (
                "B",
                Value::String(aws_smithy_types::base64::encode(b.as_ref())),
            ),
            // Key attributes can only be S, N or B.
            _ => continue,
        };
        let mut m = Map::new();
        m.insert(typed.0.to_owned(), typed.1);
        out.insert(name.clone(), Value::Object(m));
    }
    Value::Object(out)
}

/// Parse a key written by [`key_to_json`].
pub fn key_from_json(v: &Value) -> Result<HashMap<String, AttributeValue>, String> {
    let obj = v.as_object().ok_or("key is not a JSON object")?;
    let mut out = HashMap::with_capacity(obj.len());
    for (name, typed) in obj {
        let (ty, val) = typed
            .as_object()
            .and_then(|m| m.iter().next())
            .ok_or_else(|| format!("key attribute `{name}` is not typed JSON"))?;
        let s = val
            .as_str()
            .ok_or_else(|| format!("key attribute `{name}` value is not a string"))?;
        let av = match ty.as_str() {
            "S" => AttributeValue::S(s.to_owned()),
            "N" => AttributeValue::N(s.to_owned()),
            "B" => AttributeValue::B(Blob::new(
                aws_smithy_types::base64::decode(s)
                    .map_err(|e| format!("key attribute `{name}`: {e}"))?,
            )),
            other => {
                return Err(format!(
                    "key attribute `{name}` has unsupported type {other}"
                ))
            }
        };
        out.insert(name.clone(), av);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_every_attribute_type() {
        let item: HashMap<String, AttributeValue> = [
            ("s", AttributeValue::S("x".into())),
            ("i", AttributeValue::N("1700000000".into())),
            ("f", AttributeValue::N("1.5".into())),
            (
                "big",
                AttributeValue::N("123456789012345678901234567890".into()),
            ),
            ("b", AttributeValue::Bool(true)),
            ("n", AttributeValue::Null(true)),
            (
                "m",
                AttributeValue::M([("k".to_string(), AttributeValue::S("v".into()))].into()),
            ),
            (
                "l",
                AttributeValue::L(vec![
                    AttributeValue::N("2".into()),
                    AttributeValue::S("y".into()),
                ]),
            ),
            ("ss", AttributeValue::Ss(vec!["a".into(), "b".into()])),
            ("ns", AttributeValue::Ns(vec!["3".into()])),
            ("bin", AttributeValue::B(Blob::new(b"hi".to_vec()))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let j = Value::Object(item_to_json(&item));
        assert_eq!(
            j,
            json!({"s":"x","i":1700000000,"f":1.5,"big":"123456789012345678901234567890","b":true,"n":null,
                   "m":{"k":"v"},"l":[2,"y"],"ss":["a","b"],"ns":[3],"bin":"aGk="})
        );
    }

    #[test]
    fn keys_round_trip_with_their_types() {
        let key: HashMap<String, AttributeValue> = [
            ("id".to_string(), AttributeValue::S("a".into())),
            ("n".to_string(), AttributeValue::N("7".into())),
            ("b".to_string(), AttributeValue::B(Blob::new(vec![0, 255]))),
        ]
        .into();
        let j = key_to_json(&key);
        assert_eq!(j["id"], json!({"S":"a"}));
        assert_eq!(key_from_json(&j).unwrap(), key);
        assert!(key_from_json(&json!({"id":{"X":"a"}})).is_err());
    }
}
