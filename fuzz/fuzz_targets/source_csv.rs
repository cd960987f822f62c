//! The local CSV source: arbitrary bytes as an input file, read by the real
//! reader loop (header row, BOM, quoting, ragged rows, invalid UTF-8 cells,
//! `FieldMap::parse_object`). Never panics; every accepted record travels
//! through a queue message unchanged.
#![no_main]

use etl_core::FieldMap;
use etl_fuzz::assert_travels;
use etl_fuzz::source::read_all;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fields = FieldMap {
        passthrough: vec!["author".into()],
        ..FieldMap::default()
    };
    let (records, _rejected) = read_all(data, |r, tx| etl_local::source::read_csv(r, &fields, tx));
    assert_travels(&records);
});
