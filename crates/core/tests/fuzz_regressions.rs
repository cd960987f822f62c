//! Inputs found by the fuzz targets in `fuzz/` (see fuzz/README.md), kept as
//! ordinary tests so they run with `cargo test`.

use etl_core::{build_message, decode_message, FieldMap};
use serde_json::json;

/// `message_roundtrip`: a float pass-through attribute changed in transit.
/// serde_json's default float parser is off by one ulp for some values
/// (here a subnormal), so the consumer decoded 8.37674888908815e-309 where
/// the producer had sent 8.376748889088147e-309 (and, with a decoder that
/// re-encodes records to check the content id, the message was rejected as
/// tampered and dead-lettered). Fixed by serde_json's `float_roundtrip`.
#[test]
fn float_attributes_survive_a_message_bit_for_bit() {
    let fields = FieldMap {
        passthrough: vec!["extra".into()],
        ..FieldMap::default()
    };
    for x in [
        8.376748889088147e-309_f64,
        5e-324,
        2.2250738585072014e-308,
        1.7976931348623157e308,
        0.1 + 0.2,
        123456789.12345679,
        -9.87654321e-300,
    ] {
        let row = json!({"id": "647279856443824537", "text": "\u{6}\u{6}\u{6}\u{0}", "created_at": 0, "extra": x});
        let line = serde_json::to_string(&row).unwrap();
        let record = fields.parse(&serde_json::from_str(&line).unwrap()).unwrap();
        assert_eq!(
            record.attributes["extra"].as_f64(),
            Some(x),
            "source parse of {x:e}"
        );
        let out = build_message(vec![record.clone()]);
        let back = decode_message(&out.body).unwrap_or_else(|e| panic!("{x:e}: {e}"));
        assert_eq!(back.content_id, out.content_id);
        assert_eq!(back.records, vec![record], "{x:e} changed in transit");
        assert_eq!(
            back.records[0].attributes["extra"]
                .as_f64()
                .map(f64::to_bits),
            Some(x.to_bits())
        );
    }
}
