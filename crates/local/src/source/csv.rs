//! CSV rows to records: the reader loop behind [`InputFormat::Csv`].
//!
//! CSV cannot be split on newlines (a quoted field may hold them), so it has
//! its own bounded reader: csv-core's state machine fed from a fixed buffer,
//! a record longer than the limit read past with its fields discarded. The
//! header names the columns; each row becomes a record or a rejection naming
//! the line it starts on.
//!
//! [`InputFormat::Csv`]: super::InputFormat::Csv

use std::io::{BufRead, BufReader, Read};

use etl_core::{FieldMap, SourceItem};
use serde_json::{Map, Value};

use super::{reject, send_chunk, Tx, CHUNK_LINES, DEFAULT_MAX_LINE_BYTES};

/// The CSV reader loop (public for the fuzz targets in `fuzz/`).
#[doc(hidden)]
pub fn read_csv<R: Read>(r: R, fields: &FieldMap, tx: &Tx) -> std::io::Result<()> {
    read_csv_limited(r, fields, tx, DEFAULT_MAX_LINE_BYTES).map(|_| ())
}

/// One CSV record read by [`CsvRecords`].
enum CsvItem {
    Record(csv::ByteRecord),
    TooLong { bytes: u64 },
}

/// CSV records (quotes, embedded newlines) holding at most `limit` bytes of
/// one record: a longer record is read past by csv-core's state machine,
/// its fields discarded as they come, so memory does not grow with it.
struct CsvRecords<R> {
    input: BufReader<R>,
    core: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    limit: usize,
    peak: usize,
}

impl<R: Read> CsvRecords<R> {
    fn new(r: R, limit: usize) -> Self {
        Self {
            input: BufReader::with_capacity(1 << 20, r),
            core: csv_core::Reader::new(),
            out: vec![0; 4096.min(limit.max(1))],
            ends: vec![0; 64],
            limit: limit.max(1),
            peak: 0,
        }
    }

    /// The next record with the line it starts on, or `None` at the end.
    fn next(&mut self) -> std::io::Result<Option<(u64, CsvItem)>> {
        let line = self.core.line();
        let (mut nout, mut nend, mut raw) = (0usize, 0usize, 0u64);
        let mut too_long = false;
        loop {
            let input = self.input.fill_buf()?;
            let (res, nin, o, e) = if too_long {
                // Discard: the same scratch again and again.
                self.core.read_record(input, &mut self.out, &mut self.ends)
            } else {
                self.core
                    .read_record(input, &mut self.out[nout..], &mut self.ends[nend..])
            };
            self.input.consume(nin);
            raw += nin as u64;
            if !too_long {
                nout += o;
                nend += e;
            }
            use csv_core::ReadRecordResult as R;
            match res {
                R::InputEmpty => {}
                R::OutputFull | R::OutputEndsFull if too_long => {}
                R::OutputFull if self.out.len() < self.limit => {
                    let n = (self.out.len() * 2).min(self.limit);
                    self.out.resize(n, 0);
                }
                R::OutputEndsFull if self.ends.len() * 8 < self.limit => {
                    let n = self.ends.len() * 2;
                    self.ends.resize(n, 0);
                }
                R::OutputFull | R::OutputEndsFull => too_long = true,
                R::Record if too_long => {
                    self.peak = self
                        .peak
                        .max(self.out.capacity() + self.ends.capacity() * 8);
                    return Ok(Some((line, CsvItem::TooLong { bytes: raw })));
                }
                R::Record => {
                    self.peak = self
                        .peak
                        .max(self.out.capacity() + self.ends.capacity() * 8);
                    let mut rec = csv::ByteRecord::with_capacity(nout, nend);
                    let mut start = 0;
                    for &end in &self.ends[..nend] {
                        rec.push_field(&self.out[start..end]);
                        start = end;
                    }
                    return Ok(Some((line, CsvItem::Record(rec))));
                }
                R::End => return Ok(None),
            }
        }
    }
}

/// [`read_csv`] rejecting records longer than `max_record` bytes without
/// holding them; returns the record buffers' peak capacity in bytes.
#[doc(hidden)]
pub fn read_csv_limited<R: Read>(
    r: R,
    fields: &FieldMap,
    tx: &Tx,
    max_record: usize,
) -> std::io::Result<usize> {
    let mut records = CsvRecords::new(r, max_record);
    let headers: Vec<String> = match records.next()? {
        None => return Ok(records.peak),
        Some((_, CsvItem::TooLong { bytes })) => {
            return Err(std::io::Error::other(format!(
                "CSV header is {bytes} bytes, longer than the limit of {max_record} bytes"
            )))
        }
        Some((_, CsvItem::Record(h))) => h
            .iter()
            .map(|b| {
                String::from_utf8_lossy(b)
                    .trim_start_matches('\u{feff}')
                    .to_string()
            })
            .collect(),
    };
    let mut chunk = Vec::with_capacity(CHUNK_LINES);
    while let Some((line, item)) = records.next()? {
        chunk.push(match item {
            CsvItem::Record(rec) => csv_row(&headers, &rec, line, fields),
            CsvItem::TooLong { bytes } => reject(
                line,
                None,
                None,
                format!(
                    "record is {bytes} bytes, longer than the queue's message limit of \
                     {max_record} bytes; skipped without reading it into memory"
                ),
            ),
        });
        if chunk.len() >= CHUNK_LINES && !send_chunk(tx, &mut chunk) {
            return Ok(records.peak);
        }
    }
    send_chunk(tx, &mut chunk);
    Ok(records.peak)
}

fn csv_row(headers: &[String], rec: &csv::ByteRecord, line: u64, fields: &FieldMap) -> SourceItem {
    if rec.len() != headers.len() {
        return reject(
            line,
            None,
            None,
            format!("expected {} columns, found {}", headers.len(), rec.len()),
        );
    }
    let mut obj = Map::with_capacity(headers.len());
    for (name, cell) in headers.iter().zip(rec.iter()) {
        match std::str::from_utf8(cell) {
            // An empty cell is an absent value.
            Ok("") => {}
            Ok(s) => {
                obj.insert(name.clone(), Value::String(s.to_owned()));
            }
            Err(e) => {
                return reject(
                    line,
                    None,
                    Some(name.clone()),
                    format!("invalid UTF-8 at byte {}", e.valid_up_to()),
                )
            }
        }
    }
    match fields.parse_object(&obj) {
        Ok(r) => SourceItem::Record(r),
        Err(e) => reject(line, e.id, Some(e.field), e.reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::tests::{collect, rejected};
    use crate::source::{InputFormat, CHANNEL_CHUNKS};
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn csv_rows_parse_with_quotes_and_report_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.csv");
        std::fs::write(
            &p,
            "id,text,created_at,updated_at\n\
             a,\"Great, really \"\"great\"\"\",2024-01-01T00:00:00Z,\n\
             b,\"multi\nline\",1700000000,1700000500\n\
             c,,2024-01-01T00:00:00Z,\n\
             d,short row\n",
        )
        .unwrap();
        let items = collect(&p, InputFormat::Csv).await;
        assert_eq!(items.len(), 4);
        match &items[0] {
            SourceItem::Record(r) => assert_eq!(r.text, "Great, really \"great\""),
            o => panic!("{o:?}"),
        }
        match &items[1] {
            SourceItem::Record(r) => {
                assert_eq!(r.text, "multi\nline");
                assert_eq!(r.updated_at.timestamp(), 1_700_000_500);
            }
            o => panic!("{o:?}"),
        }
        let rej = rejected(&items);
        assert_eq!(rej.len(), 2);
        assert_eq!(
            rej[0].0, "line 5",
            "line numbers count the embedded newline"
        );
        assert_eq!(rej[0].1.as_deref(), Some("text"));
        assert!(rej[1].2.contains("columns"));
    }

    #[test]
    fn csv_records_longer_than_the_limit_are_rejected_by_line_with_bounded_buffers() {
        let limit = 4096;
        let big = 8 * 1024 * 1024;
        // A quoted field of 8 MiB with embedded newlines and escaped quotes,
        // and a row of 100k empty fields (bytes of ends, not of text).
        let input = std::io::Cursor::new(b"id,text,created_at\na,fine,1\nb,\"".to_vec())
            .chain(std::io::repeat(b'x').take(big / 2))
            .chain(std::io::Cursor::new(b"\n\"\"more\n".to_vec()))
            .chain(std::io::repeat(b'y').take(big / 2))
            .chain(std::io::Cursor::new(
                format!("\",1\nc,{}\nd,\"after, quoted\",1\n", ",".repeat(100_000)).into_bytes(),
            ));
        let (tx, mut rx) = mpsc::channel(CHANNEL_CHUNKS);
        let peak = read_csv_limited(input, &FieldMap::default(), &tx, limit).unwrap();
        drop(tx);
        let mut items = Vec::new();
        while let Ok(c) = rx.try_recv() {
            items.extend(c.unwrap());
        }
        let got: Vec<String> = items
            .iter()
            .map(|i| match i {
                SourceItem::Record(r) => format!("{}: {}", r.id, r.text),
                SourceItem::Rejected(r) => format!(
                    "{}: {}",
                    r.location,
                    &r.reason[..r.reason.find(',').unwrap_or(r.reason.len())]
                ),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                "a: fine".to_owned(),
                format!("line 3: record is {} bytes", 3 + big / 2 + 8 + big / 2 + 4),
                // b spans lines 3 to 5.
                format!("line 6: record is {} bytes", 2 + 100_000 + 1),
                "d: after, quoted".to_owned(),
            ]
        );
        assert!(peak <= 2 * limit + 4096, "{peak}");
    }
}
