//! JSON lines to records: the reader loop behind [`InputFormat::JsonLines`].
//!
//! It takes lines from the bounded [`LineReader`], drops a leading byte-order
//! mark and blank lines, and turns each line into a record or a rejection
//! naming its line number; the fuzz targets in `fuzz/` drive it directly.
//!
//! [`InputFormat::JsonLines`]: super::InputFormat::JsonLines

use std::io::Read;

use etl_core::{FieldMap, SourceItem};
use serde_json::Value;

use super::lines::{Line, LineReader};
use super::{reject, send_chunk, Tx, CHUNK_LINES, DEFAULT_MAX_LINE_BYTES};

/// Parse one JSON line (without its newline) into an item.
pub fn parse_json_line(bytes: &[u8], line: u64, fields: &FieldMap) -> SourceItem {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return reject(
                line,
                None,
                None,
                format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            );
        }
    };
    if let Some(r) = fields.parse_json_direct(text) {
        return SourceItem::Record(r);
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return reject(line, None, None, format!("not valid JSON: {e}")),
    };
    match fields.parse(&value) {
        Ok(r) => SourceItem::Record(r),
        Err(e) => reject(line, e.id, Some(e.field), e.reason),
    }
}

/// The JSON-lines reader loop (public for the fuzz targets in `fuzz/`).
#[doc(hidden)]
pub fn read_json_lines<R: Read>(r: R, fields: &FieldMap, tx: &Tx) -> std::io::Result<()> {
    read_json_lines_limited(r, fields, tx, DEFAULT_MAX_LINE_BYTES).map(|_| ())
}

/// [`read_json_lines`] rejecting lines longer than `max_line` bytes
/// without holding them; returns the line buffer's peak capacity.
#[doc(hidden)]
pub fn read_json_lines_limited<R: Read>(
    r: R,
    fields: &FieldMap,
    tx: &Tx,
    max_line: usize,
) -> std::io::Result<usize> {
    let mut lines = LineReader::new(r, max_line);
    let mut chunk = Vec::with_capacity(CHUNK_LINES);
    while let Some((line_no, line)) = lines.next_line()? {
        let item = match line {
            Line::TooLong { bytes } => reject(
                line_no,
                None,
                None,
                format!(
                    "line is {bytes} bytes, longer than the queue's message limit of \
                     {max_line} bytes; skipped without reading it into memory"
                ),
            ),
            Line::Text(mut line) => {
                if line_no == 1 && line.starts_with(&[0xEF, 0xBB, 0xBF]) {
                    line = &line[3..]; // UTF-8 byte-order mark
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue; // blank lines separate nothing and hold no record
                }
                parse_json_line(line, line_no, fields)
            }
        };
        chunk.push(item);
        if chunk.len() >= CHUNK_LINES && !send_chunk(tx, &mut chunk) {
            return Ok(lines.peak_capacity());
        }
    }
    send_chunk(tx, &mut chunk);
    Ok(lines.peak_capacity())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::tests::{collect, rejected};
    use crate::source::InputFormat;
    use std::fs::File;
    use std::io::Write;

    #[tokio::test]
    async fn json_lines_keep_good_records_and_name_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.jsonl");
        let mut f = File::create(&p).unwrap();
        f.write_all(b"{\"id\":\"1\",\"text\":\"good\",\"created_at\":\"2024-01-01T00:00:00Z\"}\n")
            .unwrap();
        f.write_all(b"not json\n").unwrap();
        f.write_all(b"\n").unwrap();
        f.write_all(b"[1,2]\r\n").unwrap();
        f.write_all(b"{\"id\":\"4\",\"text\":\"caf\xe9\",\"created_at\":1}\n")
            .unwrap();
        f.write_all(b"{\"id\":\"5\",\"text\":\"\",\"created_at\":1}\n")
            .unwrap();
        f.write_all(b"{\"id\":\"6\",\"text\":\"last, no newline\",\"created_at\":1700000000000}")
            .unwrap();
        drop(f);
        let items = collect(&p, InputFormat::JsonLines).await;
        assert_eq!(items.len(), 6, "blank line is not an item");
        let rej = rejected(&items);
        assert_eq!(rej.len(), 4);
        assert_eq!(rej[0].0, "line 2");
        assert!(rej[0].2.contains("not valid JSON"));
        assert_eq!(rej[1].0, "line 4");
        assert_eq!(rej[2].0, "line 5");
        assert!(rej[2].2.contains("invalid UTF-8"));
        assert_eq!(
            (rej[3].0.as_str(), rej[3].1.as_deref()),
            ("line 6", Some("text"))
        );
        let good: Vec<_> = items
            .iter()
            .filter_map(|i| {
                if let SourceItem::Record(r) = i {
                    Some(r.id.as_str())
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(good, vec!["1", "6"]);
    }
}
