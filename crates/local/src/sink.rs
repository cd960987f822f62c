//! The local lake: objects written under a directory with the same Hive
//! layout as S3 (`<lake>/sentiment/dt=YYYY-MM-DD/part-<content id>.parquet`).
//!
//! Writes are atomic: the bytes go to a hidden temporary file in the target
//! directory, are synced, then renamed over the final name, so a reader (or a
//! crash) never sees half a Parquet file, and a rewrite replaces the old file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use etl_core::output::TABLE_NAME;
use etl_core::{BackendError, ObjectSink};

/// Writes objects below `<lake>/sentiment/`.
#[derive(Debug)]
pub struct FsSink {
    root: PathBuf,
    seq: AtomicU64,
}

impl FsSink {
    /// A sink for the table directory inside `lake`.
    pub fn new(lake: &Path) -> Self {
        Self {
            root: lake.join(TABLE_NAME),
            seq: AtomicU64::new(0),
        }
    }

    /// The table directory.
    pub fn root(&self) -> &Path {
        &self.root
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

/// Write `bytes` to `path` atomically (temp file in the same directory + rename).
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
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[async_trait]
impl ObjectSink for FsSink {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), BackendError> {
        let path = self.path_of(key)?;
        let unique = self.seq.fetch_add(1, Ordering::Relaxed);
        let shown = path.display().to_string();
        tokio::task::spawn_blocking(move || write_atomic(&path, &body, unique))
            .await
            .map_err(|e| BackendError::permanent("write", &shown, e))?
            .map_err(|e| BackendError::permanent("write", &shown, e))
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
