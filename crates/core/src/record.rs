//! Source records: the one place that turns loosely typed input (a JSON line,
//! a CSV row, a DynamoDB item mapped to JSON) into a validated [`SourceRecord`].
//!
//! Every backend funnels through [`FieldMap::parse`], so "what is a valid
//! record" has a single definition and every rejection names the field.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::RecordError;

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

/// Epoch numbers above this magnitude are milliseconds, below it seconds.
/// 1e11 seconds is the year 5138; 1e11 milliseconds is March 1973.
const MILLIS_THRESHOLD: f64 = 1e11;

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

impl FieldMap {
    /// One JSON document parsed straight into a record, without building a
    /// [`Value`] tree: the id and text are the only allocations, other
    /// attributes are validated and skipped. Returns `None` for anything off
    /// the common shape (non-string id, epoch-number timestamps, pass-through
    /// attributes, a repeated field, a blank or bad value, malformed JSON):
    /// the caller then takes the general path (`serde_json::from_str::<Value>`
    /// and [`FieldMap::parse`]), which names the field. When it returns a
    /// record, it is the record the general path would return.
    pub fn parse_json_direct(&self, text: &str) -> Option<SourceRecord> {
        use serde::de::DeserializeSeed;
        if !self.passthrough.is_empty() {
            return None;
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let (fields, repeated) = direct::Seed(self).deserialize(&mut de).ok()?;
        de.end().ok()?;
        if repeated {
            // A repeated field: the general path keeps the last one.
            return None;
        }
        let id = fields.id?;
        let body = fields.text?;
        if id.trim().is_empty() || body.trim().is_empty() {
            return None;
        }
        let created_at = parse_timestamp_str(&fields.created_at?).ok()?;
        let updated_at = match fields.updated_at {
            None => created_at,
            Some(s) => parse_timestamp_str(&s).ok()?,
        };
        Some(SourceRecord {
            id: id.into_owned(),
            text: body.into_owned(),
            created_at,
            updated_at,
            attributes: Map::new(),
        })
    }
}

/// The visitor behind [`FieldMap::parse_json_direct`].
mod direct {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    use super::FieldMap;

    /// The four fields as found (borrowed from the input unless escaped).
    #[derive(Default)]
    pub(super) struct Fields<'de> {
        pub id: Option<Cow<'de, str>>,
        pub text: Option<Cow<'de, str>>,
        pub created_at: Option<Cow<'de, str>>,
        pub updated_at: Option<Cow<'de, str>>,
    }

    /// Reads one object into [`Fields`]; true when one of them was repeated.
    pub(super) struct Seed<'f>(pub &'f FieldMap);

    impl<'de> DeserializeSeed<'de> for Seed<'_> {
        type Value = (Fields<'de>, bool);
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Seed<'_> {
        type Value = (Fields<'de>, bool);
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = Fields::default();
            let mut repeated = false;
            while let Some(Str(key)) = m.next_key::<Str<'de>>()? {
                let FieldMap {
                    id,
                    text,
                    created_at,
                    updated_at,
                    ..
                } = self.0;
                let slot = if key == id.as_str() {
                    &mut out.id
                } else if key == text.as_str() {
                    &mut out.text
                } else if key == created_at.as_str() {
                    &mut out.created_at
                } else if key == updated_at.as_str() {
                    &mut out.updated_at
                } else {
                    m.next_value::<Checked>()?;
                    continue;
                };
                repeated |= slot.is_some();
                *slot = Some(m.next_value::<Str<'de>>()?.0);
            }
            Ok((out, repeated))
        }
    }

    /// A JSON string, borrowed when it has no escapes. Any other JSON type
    /// is an error (the general path then explains it).
    struct Str<'de>(Cow<'de, str>);

    impl<'de> de::Deserialize<'de> for Str<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Str<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string")
                }
                fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Str<'de>, E> {
                    Ok(Str(Cow::Borrowed(s)))
                }
                fn visit_str<E>(self, s: &str) -> Result<Str<'de>, E> {
                    Ok(Str(Cow::Owned(s.to_owned())))
                }
                fn visit_string<E>(self, s: String) -> Result<Str<'de>, E> {
                    Ok(Str(Cow::Owned(s)))
                }
            }
            d.deserialize_str(V)
        }
    }

    /// Any JSON value, checked as strictly as parsing it into a `Value`
    /// would (numbers are parsed, so one out of `f64` range fails here as it
    /// does there; `IgnoredAny` would only check its syntax), and dropped.
    struct Checked;

    impl<'de> de::Deserialize<'de> for Checked {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Checked)
        }
    }

    impl<'de> Visitor<'de> for Checked {
        type Value = Checked;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_unit<E>(self) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Checked, A::Error> {
            while s.next_element::<Checked>()?.is_some() {}
            Ok(Checked)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Checked, A::Error> {
            while m.next_key::<Checked>()?.is_some() {
                m.next_value::<Checked>()?;
            }
            Ok(Checked)
        }
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

/// Parse a timestamp: an RFC 3339 string with any offset, or epoch seconds or
/// milliseconds as a number (or a string of digits, as DynamoDB `N` values and
/// CSV cells arrive). Returns a reason on failure.
pub fn parse_timestamp(v: &Value) -> Result<DateTime<Utc>, String> {
    match v {
        Value::String(s) => parse_timestamp_str(s),
        Value::Number(n) => match n.as_f64() {
            Some(f) => from_epoch(f),
            None => Err(format!("timestamp {n} is not a finite number")),
        },
        other => Err(format!(
            "expected an RFC 3339 string or epoch number, found {}",
            kind(other)
        )),
    }
}

/// [`parse_timestamp`] of a string value.
pub fn parse_timestamp_str(s: &str) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    if let Some(dt) = parse_rfc3339_z(t) {
        return Ok(dt);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return in_message_range(dt.with_timezone(&Utc), s);
    }
    if let Ok(n) = t.parse::<f64>() {
        if t.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            return from_epoch(n);
        }
    }
    Err(format!(
        "unparseable timestamp {s:?}: expected RFC 3339 (e.g. 2024-05-01T12:00:00Z) or epoch seconds/milliseconds"
    ))
}

/// `YYYY-MM-DDTHH:MM:SS` at the start of `b`, digits only, a valid date and
/// time with no leap second; `None` otherwise. The shared core of the two
/// fixed-layout fast paths below (input timestamps and message timestamps).
fn parse_fixed_seconds(b: &[u8]) -> Option<chrono::NaiveDateTime> {
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?;
    let sec = num(17, 19)?;
    if sec > 59 {
        return None; // a leap second: let chrono decide
    }
    date.and_hms_opt(num(11, 13)?, num(14, 16)?, sec)
}

/// The commonest RFC 3339 shape, `YYYY-MM-DDTHH:MM:SSZ`, without chrono's
/// general parser. Anything else (fractions, offsets, lower case, a leap
/// second, an invalid date) is `None` and goes through chrono. Four-digit
/// years in UTC are always in the message range.
fn parse_rfc3339_z(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() != 20 || b[19] != b'Z' {
        return None;
    }
    parse_fixed_seconds(b).map(|t| Utc.from_utc_datetime(&t))
}

fn from_epoch(n: f64) -> Result<DateTime<Utc>, String> {
    if !n.is_finite() {
        return Err(format!("timestamp {n} is not finite"));
    }
    let micros = if n.abs() >= MILLIS_THRESHOLD {
        n * 1_000.0
    } else {
        n * 1_000_000.0
    };
    let micros = micros.round();
    // Both bounds are exact in f64 (multiples of its 32 µs spacing there).
    if !(MIN_MICROS as f64..=253_402_300_799_000_000.0).contains(&micros) {
        return Err(format!("timestamp {n} is out of range"));
    }
    let t = Utc
        .timestamp_micros(micros as i64)
        .single()
        .ok_or_else(|| format!("timestamp {n} is out of range"))?;
    in_message_range(t, n)
}

/// 0000-01-01T00:00:00Z in microseconds since the epoch.
const MIN_MICROS: i64 = -62_167_219_200_000_000;
/// 9999-12-31T23:59:59.999999Z in microseconds since the epoch.
const MAX_MICROS: i64 = 253_402_300_799_999_999;

/// Accept only instants a queue message can carry: messages hold RFC 3339,
/// which has four-digit years, so a UTC time before year 0 or after 9999
/// (an epoch number far in the past, or `0000-01-01T00:00:00+01:00`) would
/// be accepted here but never decode in the consumer.
fn in_message_range(
    t: DateTime<Utc>,
    shown: impl std::fmt::Display,
) -> Result<DateTime<Utc>, String> {
    if (MIN_MICROS..=MAX_MICROS).contains(&t.timestamp_micros()) {
        Ok(t)
    } else {
        Err(format!(
            "timestamp {shown} is out of range (years 0000 to 9999 in UTC)"
        ))
    }
}

/// Timestamps travel in messages as RFC 3339 with microseconds (the lake's precision).
pub mod ts_micros {
    use super::*;
    use chrono::{Datelike, Timelike};
    use serde::{Deserializer, Serializer};

    /// Serialize as `2024-05-01T12:00:00.000000Z`.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 27];
        match format_fixed(t, &mut buf) {
            Some(text) => s.serialize_str(text),
            None => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true)),
        }
    }

    /// `to_rfc3339_opts(Micros, true)` without allocating, for years
    /// 0000–9999 (chrono writes other years with a sign; those take the
    /// general path). Leap seconds also take it.
    fn format_fixed<'b>(t: &DateTime<Utc>, buf: &'b mut [u8; 27]) -> Option<&'b str> {
        let year = t.year();
        let nanos = t.nanosecond();
        if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
            return None;
        }
        fn put(buf: &mut [u8], at: usize, width: usize, mut v: u32) {
            for i in (0..width).rev() {
                buf[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        }
        buf.copy_from_slice(b"0000-00-00T00:00:00.000000Z");
        put(buf, 0, 4, year as u32);
        put(buf, 5, 2, t.month());
        put(buf, 8, 2, t.day());
        put(buf, 11, 2, t.hour());
        put(buf, 14, 2, t.minute());
        put(buf, 17, 2, t.second());
        put(buf, 20, 6, nanos / 1_000);
        std::str::from_utf8(buf).ok()
    }

    /// Deserialize an RFC 3339 string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        struct Rfc3339;
        impl serde::de::Visitor<'_> for Rfc3339 {
            type Value = DateTime<Utc>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an RFC 3339 timestamp string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
                if let Some(t) = parse_fixed(s) {
                    return Ok(t);
                }
                DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(E::custom)
            }
        }
        d.deserialize_str(Rfc3339)
    }

    /// The exact shape [`serialize`] writes (`YYYY-MM-DDTHH:MM:SS.ffffffZ`),
    /// parsed without chrono's general parser; anything else is `None` and
    /// goes to `parse_from_rfc3339`.
    pub(crate) fn parse_fixed(s: &str) -> Option<DateTime<Utc>> {
        let b = s.as_bytes();
        if b.len() != 27 || b[19] != b'.' || b[26] != b'Z' {
            return None;
        }
        let micros = b[20..26].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })?;
        let t = super::parse_fixed_seconds(b)?;
        Some(Utc.from_utc_datetime(&t.with_nanosecond(micros * 1_000)?))
    }
}

/// Truncate a timestamp to microseconds, the precision stored in the lake.
pub fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_micros(t.timestamp_micros())
        .single()
        .unwrap_or(t)
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

    #[test]
    fn timestamps_round_trip_through_the_fixed_format_like_chrono() {
        for t in [
            "2024-05-01T12:00:00Z",
            "1970-01-01T00:00:00.000001Z",
            "0001-02-03T04:05:06.789012Z",
            "9999-12-31T23:59:59.999999Z",
            "2024-02-29T20:30:00.5+05:00",
        ] {
            let t = DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
            let t = truncate_micros(t);
            let json = serde_json::to_string(&Stamp { t }).unwrap();
            let expected = format!(
                "{{\"t\":\"{}\"}}",
                t.to_rfc3339_opts(SecondsFormat::Micros, true)
            );
            assert_eq!(json, expected);
            let back: Stamp = serde_json::from_str(&json).unwrap();
            assert_eq!(back.t, t);
        }
        // Other years (which `parse_timestamp` never admits into a message)
        // are written as chrono writes them.
        let far = Utc.with_ymd_and_hms(12345, 1, 1, 0, 0, 0).unwrap();
        let json = serde_json::to_string(&Stamp { t: far }).unwrap();
        assert!(json.contains("+12345-01-01T00:00:00.000000Z"), "{json}");
    }

    #[test]
    fn fixed_parser_rejects_what_it_does_not_own() {
        use ts_micros::parse_fixed;
        assert!(parse_fixed("2024-13-01T00:00:00.000000Z").is_none());
        assert!(parse_fixed("2024-02-30T00:00:00.000000Z").is_none());
        assert!(parse_fixed("2024-01-01T24:00:00.000000Z").is_none());
        assert!(parse_fixed("2024-01-01T00:00:60.000000Z").is_none());
        assert!(parse_fixed("2024-01-01T00:00:00.00000aZ").is_none());
        assert!(parse_fixed("2024-01-01T00:00:00.000000+00:00").is_none());
        // Escaped JSON strings still parse (through the general path).
        let back: Stamp =
            serde_json::from_str(r#"{"t":"2024-01-01T00:00:00.000000\u005a"}"#).unwrap();
        assert_eq!(back.t, Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap());
        let err = serde_json::from_str::<Stamp>(r#"{"t":"yesterday"}"#).unwrap_err();
        assert!(err.to_string().contains("input"), "{err}");
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Stamp {
        #[serde(with = "ts_micros")]
        t: DateTime<Utc>,
    }

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
    fn epoch_seconds_and_millis_are_told_apart() {
        let s = fm()
            .parse(&json!({"id":"a","text":"x","created_at":1700000000}))
            .unwrap();
        let ms = fm()
            .parse(&json!({"id":"a","text":"x","created_at":1700000000123_i64}))
            .unwrap();
        assert_eq!(s.created_at.timestamp(), 1_700_000_000);
        assert_eq!(ms.created_at.timestamp_millis(), 1_700_000_000_123);
        let frac = fm()
            .parse(&json!({"id":"a","text":"x","created_at":1700000000.5}))
            .unwrap();
        assert_eq!(frac.created_at.timestamp_millis(), 1_700_000_000_500);
        let digits = fm()
            .parse(&json!({"id":"a","text":"x","created_at":"1700000000"}))
            .unwrap();
        assert_eq!(digits.created_at.timestamp(), 1_700_000_000);
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

    /// Fuzzing regression (fuzz target `message_roundtrip`): epoch
    /// milliseconds before year 0 were accepted, then written into the
    /// message as `-0609-08-26T…`, which RFC 3339 cannot express, so the
    /// consumer could never decode the message. Offsets that push a UTC time
    /// out of years 0000–9999 are the same case.
    #[test]
    fn timestamps_outside_rfc3339_years_are_rejected_at_the_source() {
        for (created_at, field_ok) in [
            (json!(-81_364_903_156_736_i64), false),
            (json!("0000-01-01T00:00:00+01:00"), false),
            (json!("9999-12-31T23:59:59-01:00"), false),
            (json!(-62_167_219_201_i64 * 1000), false),
            (json!("0000-01-01T00:00:00Z"), true),
            (json!("9999-12-31T23:59:59.999999Z"), true),
            (json!(-62_167_219_200_i64 * 1000), true),
            (json!(253_402_300_799_i64 * 1000), true),
        ] {
            let v = json!({"id":"a","text":"x","created_at": created_at});
            match fm().parse(&v) {
                Ok(r) => {
                    assert!(field_ok, "{v} accepted as {r:?}");
                    let m = crate::message::build_message(vec![r]);
                    crate::message::decode_message(&m.body)
                        .unwrap_or_else(|e| panic!("{v}: accepted but undecodable: {e}"));
                }
                Err(e) => {
                    assert!(!field_ok, "{v} rejected: {e:?}");
                    assert_eq!(e.field, "created_at");
                    assert!(e.reason.contains("out of range"), "{}", e.reason);
                }
            }
        }
    }

    /// What `FileSource` would do without the direct path.
    fn general(f: &FieldMap, text: &str) -> Option<SourceRecord> {
        let v: Value = serde_json::from_str(text).ok()?;
        f.parse(&v).ok()
    }

    #[test]
    fn direct_parse_takes_the_common_shapes() {
        let f = fm();
        for line in [
            r#"{"id":"review-2a-00000001","text":"Great food!","created_at":"2026-10-30T08:15:00Z","kind":"review","author":"ann"}"#,
            r#"{"author":{"n":[1,2.5e3,null,true]},"updated_at":"2026-10-31T00:00:00.250+02:00","text":"caf\u00e9 \"ok\"","id":"a\/b","created_at":"2026-10-30T08:15:00Z"}"#,
            " {\"id\":\"x\",\"text\":\" t \",\"created_at\":\"1700000000\"} \n",
        ] {
            let direct = f
                .parse_json_direct(line)
                .unwrap_or_else(|| panic!("no direct parse: {line}"));
            assert_eq!(Some(direct), general(&f, line), "{line}");
        }
        let r = f
            .parse_json_direct(
                r#"{"id":"a\/b","text":"caf\u00e9","created_at":"2026-10-30T08:15:00Z"}"#,
            )
            .unwrap();
        assert_eq!((r.id.as_str(), r.text.as_str()), ("a/b", "café"));
        assert_eq!(
            r.created_at,
            Utc.with_ymd_and_hms(2026, 10, 30, 8, 15, 0).unwrap()
        );
    }

    #[test]
    fn direct_parse_leaves_the_rest_to_the_general_path() {
        let f = fm();
        for line in [
            r#"{"id":7,"text":"x","created_at":"2026-10-30T08:15:00Z"}"#,
            r#"{"id":"a","text":"x","created_at":1700000000}"#,
            r#"{"id":"a","id":"b","text":"x","created_at":"2026-10-30T08:15:00Z"}"#,
            r#"{"id":" ","text":"x","created_at":"2026-10-30T08:15:00Z"}"#,
            r#"{"id":"a","text":"x","created_at":"2026-02-30T08:15:00Z"}"#,
            r#"{"id":"a","text":"x","created_at":"2026-10-30T08:15:00Z","n":1e400}"#,
            r#"{"id":"a","text":"x","created_at":"2026-10-30T08:15:00Z"} x"#,
            r#"{"id":"a","text":null,"created_at":"2026-10-30T08:15:00Z"}"#,
            r#"[1]"#,
        ] {
            assert!(f.parse_json_direct(line).is_none(), "{line}");
        }
        let with_passthrough = FieldMap {
            passthrough: vec!["author".into()],
            ..fm()
        };
        assert!(with_passthrough
            .parse_json_direct(r#"{"id":"a","text":"x","created_at":"2026-10-30T08:15:00Z"}"#)
            .is_none());
    }

    #[test]
    fn fixed_z_timestamps_parse_as_chrono_does() {
        for s in [
            "2026-10-30T08:15:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2024-02-29T23:59:59Z",
        ] {
            let chrono = DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
            assert_eq!(parse_rfc3339_z(s), Some(chrono), "{s}");
        }
        for s in [
            "2023-02-29T00:00:00Z",
            "2026-10-30T08:15:60Z",
            "2026-10-30t08:15:00Z",
            "2026-10-30T08:15:00z",
            "2026-10-30T24:00:00Z",
            "2026-10-30T08:15:00+00:00",
            "+026-10-30T08:15:00Z",
        ] {
            assert_eq!(parse_rfc3339_z(s), None, "{s}");
        }
    }

    const VALUES: &[&str] = &[
        r#""a""#,
        r#""  ""#,
        r#""caf\u00e9 \"q\"""#,
        "7",
        "-1.5e3",
        "1e400",
        "null",
        "true",
        r#"[1,{"k":[]}]"#,
        r#"{"x":null}"#,
        r#""2026-10-30T08:15:00Z""#,
        r#""2026-10-30T08:15:00.5+02:00""#,
        r#""2026-02-30T00:00:00Z""#,
        r#""1700000000""#,
        "1700000000123",
        r#""soon""#,
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        /// Whenever the direct path returns a record, it is the general path's.
        #[test]
        fn direct_parse_agrees_with_the_general_path(
            fields in [r#""a""#, r#""b c""#, r#""2026-10-30T08:15:00Z""#, r#""2026-10-31T00:00:00Z""#]
                .map(|good| proptest::prop_oneof![
                    3 => proptest::strategy::Just(Some(good)),
                    2 => proptest::option::of(proptest::sample::select(VALUES)),
                ]),
            extras in proptest::collection::vec(
                (
                    proptest::sample::select(vec!["kind", "id", "i\\u0064", "text", "updated_at"]),
                    proptest::sample::select(VALUES),
                ),
                0..3,
            ),
            order in proptest::collection::vec(proptest::num::u8::ANY, 7),
            trailer in proptest::sample::select(vec!["", "", " \n", " x", ",", "}"]),
        ) {
            let names = ["id", "text", "created_at", "updated_at"];
            let mut body: Vec<(u8, String)> = names
                .iter()
                .zip(fields)
                .filter_map(|(k, v)| v.map(|v| format!("\"{k}\":{v}")))
                .chain(extras.iter().map(|(k, v)| format!("\"{k}\":{v}")))
                .zip(order)
                .map(|(e, o)| (o, e))
                .collect();
            body.sort();
            let body: Vec<String> = body.into_iter().map(|(_, e)| e).collect();
            let line = format!("{{{}}}{trailer}", body.join(","));
            if let Some(direct) = fm().parse_json_direct(&line) {
                proptest::prop_assert_eq!(Some(direct), general(&fm(), &line), "{}", line);
            }
        }
    }

    #[test]
    fn text_is_kept_verbatim() {
        let r = fm()
            .parse(&json!({"id":"a","text":"  Spaces\tand\nNEWLINES!! 😀 ","created_at":0}))
            .unwrap();
        assert_eq!(r.text, "  Spaces\tand\nNEWLINES!! 😀 ");
    }
}
