//! The local run's outbox: every message is appended to
//! `<lake>/_state/outbox.jsonl` and synced before it enters the queue, and
//! the file is removed only once the run's state (the versions that landed)
//! is saved.
//!
//! Why: the lake's state advances only when a run completes, so a run killed
//! after some of its messages landed leaves those versions unrecorded. The
//! next run reads a grown input in which the packing of the last buckets
//! differs, so without this file it would send the same versions again in
//! bodies with other content ids: other object keys (a second row in a Hive
//! lake) and other transactions (a second commit in a Delta table). Instead
//! it re-sends what the interrupted run staged, verbatim (same body, same
//! content id, so the same object key or the same `txn`), counts those
//! versions as sent, and packs only the rest.
//!
//! Each line is `{"content_id": …, "body": …}`, the body embedded as the JSON
//! value it is (not re-escaped as a string: no second pass over the bytes,
//! and the file is the size of the bodies). A line is synced before its
//! message is sent, so a torn last line (a crash mid-append) is a message
//! that was never sent and is ignored; any other damage stops the run,
//! naming the line.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use etl_core::{BackendError, Outbox, OutgoingMessage};
use serde::Deserialize;

use crate::state::{state_dir, StateError};

/// The outbox file of a lake.
pub fn outbox_path(lake: &Path) -> PathBuf {
    state_dir(lake).join("outbox.jsonl")
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    content_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    body: &'a serde_json::value::RawValue,
}

/// Appends staged messages to the lake's outbox file.
#[derive(Debug)]
pub struct FileOutbox {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl FileOutbox {
    /// The outbox of `lake` (the file is created on the first stage).
    pub fn new(lake: &Path) -> Self {
        Self {
            path: outbox_path(lake),
            file: Mutex::new(None),
        }
    }

    /// The messages an interrupted run staged, in the order it staged them
    /// (empty when the last run completed). Each body is checked against its
    /// content id.
    pub fn load(lake: &Path) -> Result<Vec<OutgoingMessage>, StateError> {
        let path = outbox_path(lake);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StateError::io(&path, e)),
        };
        let mut reader = std::io::BufReader::new(file);
        let mut out = Vec::new();
        let mut n = 0usize;
        let mut offset = 0u64;
        let mut raw = Vec::new();
        loop {
            raw.clear();
            let read = reader
                .read_until(b'\n', &mut raw)
                .map_err(|e| StateError::io(&path, e))?;
            if read == 0 {
                break;
            }
            n += 1;
            let start = offset;
            offset += read as u64;
            let complete = raw.last() == Some(&b'\n');
            let parsed: Result<Line<'_>, String> = std::str::from_utf8(&raw)
                .map_err(|e| e.to_string())
                .and_then(|l| {
                    serde_json::from_str(l.trim_end_matches('\n')).map_err(|e| e.to_string())
                });
            let at_end = reader.fill_buf().is_ok_and(|b| b.is_empty());
            let parsed = match parsed {
                Ok(l) if complete => l,
                Err(e) if complete && !at_end => return Err(corrupt(&path, n, &e)),
                // Torn by a crash mid-append (only ever the last line): its
                // message was never synced, so never sent. Cut it off, or
                // the next append would join it.
                _ => {
                    tracing::warn!(message = "Cutting a torn last line off the outbox (its message was never sent).", path = %path.display(), line = n);
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(|e| StateError::io(&path, e))?;
                    f.set_len(start)
                        .and_then(|()| f.sync_all())
                        .map_err(|e| StateError::io(&path, e))?;
                    break;
                }
            };
            let (message, _) = OutgoingMessage::from_body(parsed.body.get().to_owned())
                .map_err(|e| corrupt(&path, n, &e.to_string()))?;
            if message.content_id != parsed.content_id {
                return Err(corrupt(
                    &path,
                    n,
                    &format!(
                        "body has content id {}, the line says {}",
                        message.content_id, parsed.content_id
                    ),
                ));
            }
            out.push(message);
        }
        Ok(out)
    }

    /// Remove the outbox once the run's state is saved (the versions it
    /// holds are recorded there now).
    pub fn clear(lake: &Path) -> Result<(), StateError> {
        let path = outbox_path(lake);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StateError::io(&path, e)),
        }
        let dir = state_dir(lake);
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StateError::io(&dir, e))
    }

    fn append(&self, messages: &[OutgoingMessage]) -> std::io::Result<()> {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let dir = self.path.parent().expect("the outbox lives in _state/");
            std::fs::create_dir_all(dir)?;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            // The file's directory entry must survive a crash too.
            std::fs::File::open(dir)?.sync_all()?;
            *guard = Some(f);
        }
        let f = guard.as_mut().expect("opened above");
        let mut out = std::io::BufWriter::with_capacity(1 << 16, &mut *f);
        for m in messages {
            // A body is one JSON object that our encoder wrote: no raw line
            // breaks (they are escaped), so it embeds in one line as it is.
            out.write_all(b"{\"content_id\":")?;
            serde_json::to_writer(&mut out, &m.content_id).map_err(std::io::Error::other)?;
            out.write_all(b",\"body\":")?;
            out.write_all(m.body.as_bytes())?;
            out.write_all(b"}\n")?;
        }
        out.flush()?;
        drop(out);
        f.sync_data()
    }
}

fn corrupt(path: &Path, line: usize, reason: &str) -> StateError {
    StateError::Corrupt {
        path: path.to_owned(),
        reason: format!(
            "line {line}: {reason} (it holds the messages an interrupted run sent; \
             moving it away makes the next run pack those records again, \
             so a version may land twice)"
        ),
    }
}

#[async_trait]
impl Outbox for FileOutbox {
    async fn stage(&self, messages: &[OutgoingMessage]) -> Result<(), BackendError> {
        self.append(messages)
            .map_err(|e| BackendError::io("append", self.path.display().to_string(), e))
    }

    async fn sent(&self, _messages: &[OutgoingMessage]) -> Result<(), BackendError> {
        // The in-process queue dies with the run: everything staged is sent
        // again after a crash, so there is nothing to mark.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use etl_core::{build_message, SourceRecord};

    fn msg(ids: &[&str]) -> OutgoingMessage {
        let t = etl_core::record::truncate_micros(Utc::now()) - chrono::Duration::hours(3);
        build_message(
            ids.iter()
                .map(|id| SourceRecord {
                    id: (*id).into(),
                    text: format!("text of {id} \u{fffe} \"quoted\""),
                    created_at: t,
                    updated_at: t,
                    attributes: Default::default(),
                })
                .collect(),
        )
    }

    #[tokio::test]
    async fn staged_messages_come_back_verbatim_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        assert!(FileOutbox::load(dir.path()).unwrap().is_empty());
        let (a, b) = (msg(&["a/..", "b c"]), msg(&["d"]));
        let ob = FileOutbox::new(dir.path());
        ob.stage(std::slice::from_ref(&a)).await.unwrap();
        ob.stage(std::slice::from_ref(&b)).await.unwrap();
        let back = FileOutbox::load(dir.path()).unwrap();
        assert_eq!(back, vec![a, b]);
        FileOutbox::clear(dir.path()).unwrap();
        assert!(FileOutbox::load(dir.path()).unwrap().is_empty());
        FileOutbox::clear(dir.path()).unwrap();
    }

    #[tokio::test]
    async fn a_torn_last_line_is_ignored_and_damage_elsewhere_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = msg(&["a"]);
        FileOutbox::new(dir.path())
            .stage(std::slice::from_ref(&a))
            .await
            .unwrap();
        let path = outbox_path(dir.path());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"content_id\":\"x\",\"bo").unwrap();
        assert_eq!(FileOutbox::load(dir.path()).unwrap(), vec![a.clone()]);
        assert!(
            std::fs::read(&path).unwrap().ends_with(b"}\n"),
            "the torn line is cut off, so the next append starts a line of its own"
        );
        // Damage followed by another line is not a torn append.
        f.write_all(b"\n{}\n").unwrap();
        let err = FileOutbox::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        // A body that is not the content id's.
        let mut other = msg(&["b"]);
        other.content_id = a.content_id.clone();
        std::fs::remove_file(&path).unwrap();
        FileOutbox::new(dir.path()).stage(&[other]).await.unwrap();
        let err = FileOutbox::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("line 1") && err.contains("content id"),
            "{err}"
        );
    }
}
