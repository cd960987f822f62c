//! The timestamp codec of records: what an input may say for a time, and the
//! exact text a queue message carries for one.
//!
//! Inputs arrive as RFC 3339 strings with any offset or as epoch seconds or
//! milliseconds ([`parse_timestamp`]); messages carry RFC 3339 in UTC with
//! microseconds ([`ts_micros`]), the lake's precision. Both directions have a
//! fixed-layout fast path in front of chrono's general code, and both must
//! agree with chrono byte for byte: the text written here is hashed into
//! content ids and decoded into Parquet. Kept apart from validation so the
//! codec and its tests read as one unit.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::Value;

use super::kind;

/// Epoch numbers above this magnitude are milliseconds, below it seconds.
/// 1e11 seconds is the year 5138; 1e11 milliseconds is March 1973.
const MILLIS_THRESHOLD: f64 = 1e11;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::FieldMap;
    use serde::{Deserialize, Serialize};
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
}
