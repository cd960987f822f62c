//! The local JSON-lines source: arbitrary bytes as an input file, read by the
//! real reader loop (line splitting, CR/LF, BOM, blank lines, UTF-8 checks,
//! `parse_json_line`, `FieldMap::parse`). Never panics; every accepted record
//! travels through a queue message unchanged.
#![no_main]

use etl_core::FieldMap;
use etl_fuzz::assert_travels;
use etl_fuzz::source::read_all;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fields = FieldMap {
        passthrough: vec!["author".into(), "lang".into()],
        ..FieldMap::default()
    };
    let (records, rejected) = read_all(data, |r, tx| {
        etl_local::source::read_json_lines(r, &fields, tx)
    });
    // Every non-blank line is either a record or a rejection.
    let lines = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(|b| b.is_ascii_whitespace()))
        .count();
    // A BOM-only first line is blank after the BOM is stripped.
    assert!(records.len() + rejected <= lines);
    assert_travels(&records);
});
