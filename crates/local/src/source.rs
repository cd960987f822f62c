//! File sources: JSON lines and CSV, streamed.
//!
//! A reader thread parses the file in chunks and hands them over a bounded
//! channel, so memory stays flat however large the input is and the parsing
//! overlaps with scoring. Every bad line becomes a [`Rejection`] naming its
//! line number and the reason; only an unreadable file is fatal.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use etl_core::{BackendError, FieldMap, RecordSource, Rejection, SourceItem};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// Lines per chunk handed to the pipeline.
const CHUNK_LINES: usize = 1024;
/// Chunks buffered between the reader thread and the pipeline.
const CHANNEL_CHUNKS: usize = 8;

/// Input file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// One JSON object per line.
    JsonLines,
    /// CSV with a header row.
    Csv,
}

impl InputFormat {
    /// Guess from the file extension: `.csv` is CSV, anything else JSON lines.
    pub fn from_path(path: &Path) -> Self {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
        {
            Some(e) if e == "csv" => InputFormat::Csv,
            _ => InputFormat::JsonLines,
        }
    }
}

impl std::str::FromStr for InputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "json" | "ndjson" | "jsonlines" => Ok(InputFormat::JsonLines),
            "csv" => Ok(InputFormat::Csv),
            o => Err(format!("unknown input format {o:?}: expected jsonl or csv")),
        }
    }
}

/// A streaming file source.
pub struct FileSource {
    rx: mpsc::Receiver<Result<Vec<SourceItem>, BackendError>>,
    bytes_read: Arc<AtomicU64>,
    total_bytes: u64,
}

impl FileSource {
    /// Open `path` and start the reader thread. Fails if the file cannot be opened.
    pub fn open(path: &Path, format: InputFormat, fields: FieldMap) -> Result<Self, BackendError> {
        Self::open_counted(path, format, fields, Arc::new(AtomicU64::new(0)))
    }

    /// Like [`FileSource::open`], adding the bytes consumed to `bytes_read`.
    pub fn open_counted(
        path: &Path,
        format: InputFormat,
        fields: FieldMap,
        bytes_read: Arc<AtomicU64>,
    ) -> Result<Self, BackendError> {
        Self::open_limited(path, format, fields, bytes_read, DEFAULT_MAX_LINE_BYTES)
    }

    /// Like [`FileSource::open_counted`], rejecting JSON lines longer than
    /// `max_line` bytes (with their line number) without holding them.
    pub fn open_limited(
        path: &Path,
        format: InputFormat,
        fields: FieldMap,
        bytes_read: Arc<AtomicU64>,
        max_line: usize,
    ) -> Result<Self, BackendError> {
        let file = File::open(path)
            .map_err(|e| BackendError::permanent_from("open", path.display().to_string(), e))?;
        let meta = file
            .metadata()
            .map_err(|e| BackendError::permanent_from("stat", path.display().to_string(), e))?;
        if meta.is_dir() {
            return Err(BackendError::permanent(
                "open",
                path.display().to_string(),
                "is a directory, expected a file",
            ));
        }
        let total_bytes = meta.len();
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let counter = CountingReader {
            inner: file,
            count: bytes_read.clone(),
        };
        let path: PathBuf = path.to_owned();
        std::thread::Builder::new()
            .name("etl-source".into())
            .spawn(move || {
                let result = match format {
                    InputFormat::JsonLines => {
                        read_json_lines_limited(counter, &fields, &tx, max_line).map(|_| ())
                    }
                    InputFormat::Csv => {
                        read_csv_limited(counter, &fields, &tx, max_line).map(|_| ())
                    }
                };
                if let Err(e) = result {
                    let _ = tx.blocking_send(Err(BackendError::permanent(
                        "read",
                        path.display().to_string(),
                        e,
                    )));
                }
            })
            .map_err(|e| BackendError::permanent("spawn reader", "etl-source", e))?;
        Ok(Self {
            rx,
            bytes_read,
            total_bytes,
        })
    }

    /// Shared counter of input bytes consumed so far (for progress bars).
    pub fn bytes_read(&self) -> Arc<AtomicU64> {
        self.bytes_read.clone()
    }

    /// Size of the input file.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }
}

#[async_trait]
impl RecordSource for FileSource {
    async fn next_chunk(&mut self) -> Result<Option<Vec<SourceItem>>, BackendError> {
        match self.rx.recv().await {
            None => Ok(None),
            Some(Ok(chunk)) => Ok(Some(chunk)),
            Some(Err(e)) => Err(e),
        }
    }
}

struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The channel a reader thread hands chunks over.
#[doc(hidden)]
pub type Tx = mpsc::Sender<Result<Vec<SourceItem>, BackendError>>;

/// Returns Err only for I/O failures; a closed channel (consumer gone) ends quietly.
fn send_chunk(tx: &Tx, chunk: &mut Vec<SourceItem>) -> bool {
    if chunk.is_empty() {
        return true;
    }
    tx.blocking_send(Ok(std::mem::replace(
        chunk,
        Vec::with_capacity(CHUNK_LINES),
    )))
    .is_ok()
}

fn reject(line: u64, id: Option<String>, field: Option<String>, reason: String) -> SourceItem {
    SourceItem::Rejected(Rejection {
        location: format!("line {line}"),
        id,
        field,
        reason,
    })
}

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

/// The longest line a reader holds by default: SQS's message limit. A line
/// longer than that could not travel in one queue message even alone.
pub const DEFAULT_MAX_LINE_BYTES: usize = etl_core::message::SQS_MAX_MESSAGE_BYTES;

/// Bytes read at a time while skipping a line that is too long.
const SKIP_CHUNK: u64 = 64 * 1024;

/// One line from a [`LineReader`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// The line's bytes, without its line ending.
    Text(&'a [u8]),
    /// A line longer than the limit, streamed past: only its length is known.
    TooLong {
        /// Its length in bytes, without the newline.
        bytes: u64,
    },
}

/// Splits a byte stream into lines holding at most `limit` bytes of one
/// line in memory: a longer line is read past in small chunks and reported
/// as [`Line::TooLong`], so memory does not grow with line length.
pub struct LineReader<R> {
    inner: BufReader<R>,
    buf: Vec<u8>,
    limit: usize,
    line_no: u64,
    peak_capacity: usize,
}

impl<R: Read> LineReader<R> {
    /// Lines of at most `limit` bytes from `r`.
    pub fn new(r: R, limit: usize) -> Self {
        Self {
            inner: BufReader::with_capacity(1 << 20, r),
            buf: Vec::with_capacity(4096.min(limit + 1)),
            limit,
            line_no: 0,
            peak_capacity: 0,
        }
    }

    /// The largest capacity the line buffer reached: at most about twice
    /// the limit, whatever the input (the read buffer adds a fixed 1 MiB).
    pub fn peak_capacity(&self) -> usize {
        self.peak_capacity
    }

    /// The next line and its 1-based number, or `None` at the end.
    pub fn next_line(&mut self) -> std::io::Result<Option<(u64, Line<'_>)>> {
        self.buf.clear();
        let n = (&mut self.inner)
            .take(self.limit as u64 + 1)
            .read_until(b'\n', &mut self.buf)?;
        self.peak_capacity = self.peak_capacity.max(self.buf.capacity());
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        let ended = self.buf.last() == Some(&b'\n');
        if !ended && self.buf.len() > self.limit {
            let mut bytes = self.buf.len() as u64;
            loop {
                self.buf.clear();
                let n = (&mut self.inner)
                    .take(SKIP_CHUNK.min(self.limit as u64 + 1))
                    .read_until(b'\n', &mut self.buf)?;
                self.peak_capacity = self.peak_capacity.max(self.buf.capacity());
                if n == 0 {
                    break;
                }
                if self.buf.last() == Some(&b'\n') {
                    bytes += n as u64 - 1;
                    break;
                }
                bytes += n as u64;
            }
            self.buf.clear();
            return Ok(Some((self.line_no, Line::TooLong { bytes })));
        }
        let mut end = self.buf.len();
        while end > 0 && (self.buf[end - 1] == b'\n' || self.buf[end - 1] == b'\r') {
            end -= 1;
        }
        Ok(Some((self.line_no, Line::Text(&self.buf[..end]))))
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
    use std::io::Write;

    async fn collect(path: &Path, format: InputFormat) -> Vec<SourceItem> {
        let mut src = FileSource::open(path, format, FieldMap::default()).unwrap();
        let mut out = Vec::new();
        while let Some(c) = src.next_chunk().await.unwrap() {
            out.extend(c);
        }
        out
    }

    fn rejected(items: &[SourceItem]) -> Vec<(String, Option<String>, String)> {
        items
            .iter()
            .filter_map(|i| match i {
                SourceItem::Rejected(r) => {
                    Some((r.location.clone(), r.field.clone(), r.reason.clone()))
                }
                _ => None,
            })
            .collect()
    }

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

    #[test]
    fn line_reader_streams_past_long_lines_with_bounded_memory() {
        // Generated, not stored: 20 MB of one line between two short ones,
        // then a long last line without a newline.
        let limit = 1024;
        let big = 20 * 1024 * 1024;
        let input = std::io::Cursor::new(b"first\r\n".to_vec())
            .chain(std::io::repeat(b'x').take(big))
            .chain(std::io::Cursor::new(
                format!("\n{}\n\nlast", "y".repeat(limit)).into_bytes(),
            ))
            .chain(std::io::repeat(b'z').take(limit as u64 + 1));
        let mut r = LineReader::new(input, limit);
        let mut got = Vec::new();
        while let Some((n, line)) = r.next_line().unwrap() {
            got.push(match line {
                Line::Text(t) => (
                    n,
                    format!(
                        "{} bytes: {}",
                        t.len(),
                        String::from_utf8_lossy(&t[..t.len().min(5)])
                    ),
                ),
                Line::TooLong { bytes } => (n, format!("too long: {bytes}")),
            });
        }
        assert_eq!(
            got,
            vec![
                (1, "5 bytes: first".to_owned()),
                (2, format!("too long: {big}")),
                (3, format!("{limit} bytes: yyyyy")),
                (4, "0 bytes: ".to_owned()),
                (5, format!("too long: {}", 4 + limit + 1)),
            ]
        );
        assert!(
            r.peak_capacity() <= 2 * (limit + 1),
            "{}",
            r.peak_capacity()
        );
    }

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

    #[tokio::test]
    async fn missing_file_is_fatal() {
        let err = FileSource::open(
            Path::new("/nonexistent/x.jsonl"),
            InputFormat::JsonLines,
            FieldMap::default(),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("/nonexistent/x.jsonl"));
    }
}
