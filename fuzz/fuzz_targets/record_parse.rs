//! Source record validation: arbitrary bytes as one JSON value handed to
//! `FieldMap::parse` (what every source funnels through), under the default
//! attribute names and under configured ones with pass-through attributes.
//! An accepted record must satisfy the contract and travel through a queue
//! message unchanged.
#![no_main]

use etl_core::record::parse_timestamp;
use etl_core::FieldMap;
use etl_fuzz::assert_travels;
use libfuzzer_sys::fuzz_target;

fn field_map(selector: u8) -> FieldMap {
    match selector % 3 {
        0 => FieldMap::default(),
        1 => FieldMap {
            passthrough: vec!["author".into(), "lang".into(), "meta".into()],
            ..FieldMap::default()
        },
        _ => FieldMap {
            id: "post_id".into(),
            text: "body".into(),
            created_at: "ts".into(),
            updated_at: "ts".into(),
            passthrough: vec!["id".into(), "text".into()],
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, json)) = data.split_first() else {
        return;
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else {
        return;
    };
    // The timestamp parser on its own, for any value.
    let _ = parse_timestamp(&value);
    let fm = field_map(selector);
    match fm.parse(&value) {
        Ok(r) => assert_travels(&[r]),
        Err(e) => {
            assert!(!e.field.is_empty());
            assert!(!e.reason.is_empty());
        }
    }
});
