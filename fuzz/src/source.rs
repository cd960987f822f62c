//! Driving the local file source's reader loops on an in-memory input.

use etl_core::{SourceItem, SourceRecord};
use etl_local::source::Tx;

/// Run a reader loop (`read_json_lines` or `read_csv`) over `data` and
/// collect what it hands over. The channel is sized so the loop never blocks.
pub fn read_all(
    data: &[u8],
    reader: impl FnOnce(std::io::Cursor<&[u8]>, &Tx) -> std::io::Result<()>,
) -> (Vec<SourceRecord>, usize) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(data.len() / 1024 + 4);
    // An `Err` here is the reader giving up on the file (e.g. an unreadable
    // CSV header): fatal for the run, reported to the user, not a bug.
    let _ = reader(std::io::Cursor::new(data), &tx);
    drop(tx);
    let mut records = Vec::new();
    let mut rejected = 0;
    while let Ok(chunk) = rx.try_recv() {
        for item in chunk.expect("only I/O errors are sent as errors") {
            match item {
                SourceItem::Record(r) => records.push(r),
                SourceItem::Rejected(rej) => {
                    assert!(rej.location.starts_with("line "), "{rej}");
                    assert!(!rej.reason.is_empty());
                    rejected += 1;
                }
            }
        }
    }
    (records, rejected)
}
