//! The local lake: objects written under a directory with the same Hive
//! layout as S3 (`<lake>/sentiment/dt=YYYY-MM-DD/part-<content id>.parquet`).
//!
//! Writes are atomic: the bytes go to a hidden temporary file in the target
//! directory and are renamed over the final name, so a reader, or a crashed
//! or killed process, never leaves half a Parquet file, and a rewrite
//! replaces the old file.
//!
//! Durability is a separate step. Each object is synced to disk by a
//! background thread, off the consumers' path, and [`FsSink::flush`] waits
//! until every object written so far and its directory are on disk. `etl run`
//! flushes before it saves the lake's state, so a run is only recorded as
//! done once all its files are durable. The exposure: after an operating
//! system crash or power loss during a run, files of that unfinished run may
//! be empty. Its state was never saved, so the next `etl run` sends the same
//! messages again and rewrites those files under the same names.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use etl_core::output::TABLE_NAME;
use etl_core::{BackendError, ObjectSink};

/// Writes objects below `<lake>/sentiment/`.
#[derive(Debug)]
pub struct FsSink {
    root: PathBuf,
    seq: AtomicU64,
    syncer: Mutex<mpsc::Sender<SyncJob>>,
    /// Sync each object (and its directories) before `put` returns.
    durable: bool,
}

#[derive(Debug)]
enum SyncJob {
    /// Sync this file's data; remember its directory.
    File(PathBuf),
    /// Sync the directories seen since the last barrier, then answer with
    /// the first failure since the last barrier.
    Barrier(mpsc::SyncSender<Result<(), String>>),
}

/// The syncing thread: ends when the sink (the only sender) is dropped.
fn sync_loop(jobs: mpsc::Receiver<SyncJob>) {
    let mut dirs = BTreeSet::new();
    let mut failed: Option<String> = None;
    for job in jobs {
        match job {
            SyncJob::File(path) => {
                if let Err(e) = std::fs::File::open(&path).and_then(|f| f.sync_all()) {
                    failed.get_or_insert_with(|| format!("sync {}: {e}", path.display()));
                }
                let mut dir = path.parent();
                // The partition directory and the table directory above it
                // (either may be new in this run).
                for _ in 0..2 {
                    if let Some(d) = dir {
                        dirs.insert(d.to_owned());
                        dir = d.parent();
                    }
                }
            }
            SyncJob::Barrier(reply) => {
                for d in std::mem::take(&mut dirs) {
                    if let Err(e) = std::fs::File::open(&d).and_then(|f| f.sync_all()) {
                        failed.get_or_insert_with(|| format!("sync {}: {e}", d.display()));
                    }
                }
                let _ = reply.send(failed.take().map_or(Ok(()), Err));
            }
        }
    }
}

impl FsSink {
    /// A sink for the table directory inside `lake`.
    pub fn new(lake: &Path) -> Self {
        let (tx, rx) = mpsc::channel();
        // If the thread cannot start, `flush` reports it (its channel is closed).
        let _ = std::thread::Builder::new()
            .name("etl-fsync".into())
            .spawn(move || sync_loop(rx));
        Self {
            root: lake.join(TABLE_NAME),
            seq: AtomicU64::new(0),
            syncer: Mutex::new(tx),
            durable: false,
        }
    }

    /// Make every object durable before `put` returns (file, its partition
    /// directory and the table directory synced): for a table format whose
    /// commit references the object, so that no commit can survive a crash
    /// that loses the file it names. Without it, objects are durable after
    /// [`FsSink::flush`].
    pub fn durable(mut self) -> Self {
        self.durable = true;
        self
    }

    /// The table directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Wait until every object written so far, and the directories naming
    /// them, are on disk. Fails with the first object that could not be synced.
    pub async fn flush(&self) -> Result<(), BackendError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let root = self.root.display().to_string();
        let sent = self
            .syncer
            .lock()
            .expect("sync queue lock")
            .send(SyncJob::Barrier(reply));
        let closed = || BackendError::permanent("sync", &root, "the syncing thread is not running");
        if sent.is_err() {
            return Err(closed());
        }
        tokio::task::spawn_blocking(move || answer.recv())
            .await
            .map_err(|e| BackendError::permanent_from("sync", &root, e))?
            .map_err(|_| closed())?
            .map_err(|e| BackendError::permanent("sync", &root, e))
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, BackendError> {
        let rel = Path::new(key);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(BackendError::permanent(
                "put",
                key,
                "object key must be a relative path without `..`",
            ));
        }
        Ok(self.root.join(rel))
    }
}

/// Write `bytes` to `path` atomically and durably (temp file in the same
/// directory, synced, renamed).
pub fn write_atomic(path: &Path, bytes: &[u8], unique: u64) -> std::io::Result<()> {
    write_atomic_with(path, unique, |f| f.write_all(bytes))
}

/// Write `path` atomically with whatever `fill` writes: a temp file in the
/// same directory, synced, then renamed over the final name.
pub fn write_atomic_with(
    path: &Path,
    unique: u64,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    replace_with(path, unique, true, fill)
}

/// Temp file, optionally synced, renamed over `path`.
fn replace_with(
    path: &Path,
    unique: u64,
    sync: bool,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("path has no parent"))?;
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("object");
    let tmp = dir.join(format!(".{name}.{}.{unique}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        fill(&mut f)?;
        if sync {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[async_trait]
impl ObjectSink for FsSink {
    /// Atomic and visible at once; durable after [`FsSink::flush`].
    async fn put(&self, key: &str, body: Bytes) -> Result<(), BackendError> {
        let path = self.path_of(key)?;
        let unique = self.seq.fetch_add(1, Ordering::Relaxed);
        let shown = path.display().to_string();
        let written = path.clone();
        let durable = self.durable;
        tokio::task::spawn_blocking(move || {
            replace_with(&path, unique, durable, |f| f.write_all(&body))?;
            if durable {
                let mut dir = path.parent();
                for _ in 0..2 {
                    if let Some(d) = dir {
                        std::fs::File::open(d)?.sync_all()?;
                        dir = d.parent();
                    }
                }
            }
            Ok::<(), std::io::Error>(())
        })
        .await
        .map_err(|e| BackendError::permanent_from("write", &shown, e))?
        .map_err(|e| BackendError::permanent_from("write", &shown, e))?;
        if durable {
            return Ok(());
        }
        self.syncer
            .lock()
            .expect("sync queue lock")
            .send(SyncJob::File(written))
            .map_err(|_| {
                BackendError::permanent("sync", &shown, "the syncing thread is not running")
            })
    }

    fn location(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FsSink::new(dir.path());
        sink.put("dt=2024-01-01/part-a.parquet", Bytes::from_static(b"one"))
            .await
            .unwrap();
        sink.put("dt=2024-01-01/part-a.parquet", Bytes::from_static(b"two"))
            .await
            .unwrap();
        let part = dir.path().join("sentiment/dt=2024-01-01");
        let names: Vec<_> = std::fs::read_dir(&part)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("part-a.parquet")]);
        assert_eq!(std::fs::read(part.join("part-a.parquet")).unwrap(), b"two");
    }

    #[tokio::test]
    async fn flush_reports_objects_that_cannot_be_synced() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FsSink::new(dir.path());
        sink.put("dt=2024-01-01/part-a.parquet", Bytes::from_static(b"one"))
            .await
            .unwrap();
        sink.flush().await.unwrap();
        // Gone before the syncing thread reaches it: the next flush says so, once.
        let part = dir.path().join("sentiment/dt=2024-01-01");
        sink.put("dt=2024-01-01/part-b.parquet", Bytes::from_static(b"two"))
            .await
            .unwrap();
        std::fs::remove_dir_all(&part).unwrap();
        let err = sink.flush().await.unwrap_err();
        assert!(err.to_string().contains("sync"), "{err}");
        sink.flush().await.unwrap();
    }

    #[tokio::test]
    async fn rejects_escaping_keys_and_reports_unwritable_lake() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FsSink::new(dir.path());
        assert!(sink.put("../evil", Bytes::new()).await.is_err());
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        let blocked = FsSink::new(&dir.path().join("file"));
        let err = blocked
            .put("dt=2024-01-01/p.parquet", Bytes::new())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("write"), "{err}");
    }
}
