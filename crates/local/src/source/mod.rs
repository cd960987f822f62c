//! File sources: JSON lines and CSV, streamed.
//!
//! A reader thread parses the file in chunks and hands them over a bounded
//! channel, so memory stays flat however large the input is and the parsing
//! overlaps with scoring. Every bad line becomes a [`Rejection`] naming its
//! line number and the reason; only an unreadable file is fatal.
//!
//! This module is the public face: [`InputFormat`], [`FileSource`] and the
//! reader thread it starts, plus what the format readers share (the chunk
//! channel and the rejection they build). The readers themselves live in
//! `lines` (bounded line splitting), `jsonl` (JSON lines to records) and
//! `csv` (CSV rows to records), re-exported here under their old paths.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use etl_core::{BackendError, FieldMap, RecordSource, Rejection, SourceItem};
use tokio::sync::mpsc;

mod csv;
mod jsonl;
mod lines;

pub use self::csv::{read_csv, read_csv_limited};
pub use self::jsonl::{parse_json_line, read_json_lines, read_json_lines_limited};
pub use self::lines::{Line, LineReader};

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

/// The longest line a reader holds by default: SQS's message limit. A line
/// longer than that could not travel in one queue message even alone.
pub const DEFAULT_MAX_LINE_BYTES: usize = etl_core::message::SQS_MAX_MESSAGE_BYTES;

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) async fn collect(path: &Path, format: InputFormat) -> Vec<SourceItem> {
        let mut src = FileSource::open(path, format, FieldMap::default()).unwrap();
        let mut out = Vec::new();
        while let Some(c) = src.next_chunk().await.unwrap() {
            out.extend(c);
        }
        out
    }

    pub(super) fn rejected(items: &[SourceItem]) -> Vec<(String, Option<String>, String)> {
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
