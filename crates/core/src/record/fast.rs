//! The fast path of record parsing: one JSON line of the common shape read
//! straight into a [`SourceRecord`] with serde, without a `Value` tree.
//!
//! Almost every line a JSON-lines source holds has string id and text, RFC
//! 3339 timestamps and no pass-through attributes, and building a `Value`
//! for it is most of the cost of reading it. [`FieldMap::parse_json_direct`]
//! takes exactly that shape and declines everything else, so the general
//! path in the parent module stays the one definition of a valid record and
//! the only one that explains a rejection. It lives apart from that path
//! because its contract is agreement with it, which its tests check.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Map;

use super::{parse_timestamp_str, FieldMap, SourceRecord};

impl FieldMap {
    /// One JSON document parsed straight into a record, without building a
    /// [`Value`](serde_json::Value) tree: the id and text are the only
    /// allocations, other attributes are validated and skipped. Returns
    /// `None` for anything off the common shape (non-string id, epoch-number
    /// timestamps, pass-through attributes, a repeated field, a blank or bad
    /// value, malformed JSON): the caller then takes the general path
    /// (`serde_json::from_str::<Value>` and [`FieldMap::parse`]), which names
    /// the field. When it returns a record, it is the record the general path
    /// would return.
    pub fn parse_json_direct(&self, text: &str) -> Option<SourceRecord> {
        if !self.passthrough.is_empty() {
            return None;
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let (fields, repeated) = Seed(self).deserialize(&mut de).ok()?;
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

// The visitor behind `FieldMap::parse_json_direct`.

/// The four fields as found (borrowed from the input unless escaped).
#[derive(Default)]
struct Fields<'de> {
    id: Option<Cow<'de, str>>,
    text: Option<Cow<'de, str>>,
    created_at: Option<Cow<'de, str>>,
    updated_at: Option<Cow<'de, str>>,
}

/// Reads one object into [`Fields`]; true when one of them was repeated.
struct Seed<'f>(&'f FieldMap);

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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use serde_json::Value;

    fn fm() -> FieldMap {
        FieldMap::default()
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
}
