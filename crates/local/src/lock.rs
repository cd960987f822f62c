//! One run at a time on a lake: an exclusive OS file lock on `<lake>/.lock`.
//!
//! Two runs on one lake would each load the same state, send overlapping
//! records in different packings (different content ids, so different
//! files: duplicate rows), and the last to save would erase the other's
//! state. The lock is held from before the state is read until after it is
//! saved. It is an OS lock (`flock` on Unix, `LockFileEx` on Windows), so a
//! crashed or killed run releases it with its process: nothing to clean up.
//! The file's contents (pid, host, start time of the holder) are only
//! informational, for the message a second run prints; the file is never
//! deleted (deleting a lock file while another process waits on it would let
//! two runs in).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Who holds a lake's lock, as written into the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// When the run took the lock (RFC 3339).
    pub started_at: String,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on {} since {}",
            self.pid, self.host, self.started_at
        )
    }
}

/// The lock could not be taken.
#[derive(Debug, Error)]
pub enum LockError {
    /// Another run holds it.
    #[error(
        "another `etl run` is using this lake: lock file {path} is held by {holder}; \
         wait for it to finish, or pass --wait-lock to wait for it"
    )]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as far as its file says.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock the lake: {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// The lock file of a lake.
pub fn lock_path(lake: &Path) -> PathBuf {
    lake.join(".lock")
}

/// An exclusive lock on a lake, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct LakeLock {
    _file: File,
    path: PathBuf,
}

impl LakeLock {
    /// Take the lock, or fail with [`LockError::Busy`] naming the holder.
    pub fn try_acquire(lake: &Path) -> Result<Self, LockError> {
        Self::acquire(lake, None)
    }

    /// Take the lock. When another run holds it: wait if `on_wait` is
    /// given (called once with the holder, before waiting), else fail.
    pub fn acquire(lake: &Path, on_wait: Option<&dyn Fn(&str)>) -> Result<Self, LockError> {
        let path = lock_path(lake);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = read_holder(&mut file);
                match on_wait {
                    None => return Err(LockError::Busy { path, holder }),
                    Some(notify) => {
                        notify(&holder);
                        file.lock().map_err(io)?;
                    }
                }
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let me = LockHolder {
            pid: std::process::id(),
            host: host_name(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        let text = serde_json::to_string(&me).expect("holder serialises") + "\n";
        // Informational only: a failure to describe the holder is not fatal.
        let _ = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
            .and_then(|()| file.write_all(text.as_bytes()));
        tracing::info!(message = "Lake locked.", lock = %path.display(), pid = me.pid);
        Ok(Self { _file: file, path })
    }

    /// Who holds the lock (`None`: nobody), without taking it for more than
    /// an instant and without writing to the lock file: `etl status` looks,
    /// a run starting at the same moment still gets the lock.
    pub fn holder(lake: &Path) -> Result<Option<String>, LockError> {
        let path = lock_path(lake);
        let mut file = match File::options().read(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LockError::Io { path, source }),
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(None),
            Err(std::fs::TryLockError::WouldBlock) => Ok(Some(read_holder(&mut file))),
            Err(std::fs::TryLockError::Error(source)) => Err(LockError::Io { path, source }),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.take(4096).read_to_string(&mut text));
    match serde_json::from_str::<LockHolder>(text.trim()) {
        Ok(h) => h.to_string(),
        // The holder has not written its details yet (or wrote something else).
        Err(_) => "another process (its details are not written yet)".into(),
    }
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .or_else(|_| std::fs::read_to_string("/etc/hostname"))
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "unknown host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_a_lake_fails_naming_the_file_and_holder_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = LakeLock::try_acquire(dir.path()).unwrap();
        let err = LakeLock::try_acquire(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&lock_path(dir.path()).display().to_string()),
            "{err}"
        );
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("--wait-lock"), "{err}");
        drop(first);
        let again = LakeLock::try_acquire(dir.path()).unwrap();
        assert_eq!(again.path(), lock_path(dir.path()));
    }

    #[test]
    fn waiting_lock_is_granted_when_the_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = LakeLock::try_acquire(dir.path()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let lake = dir.path().to_owned();
        let waiter = std::thread::spawn(move || {
            let notify = move |h: &str| tx.send(h.to_owned()).unwrap();
            LakeLock::acquire(&lake, Some(&notify)).map(|_| ())
        });
        // The waiter reports whom it waits for before it blocks.
        let holder = rx.recv().unwrap();
        assert!(
            holder.contains(&format!("pid {}", std::process::id())),
            "{holder}"
        );
        drop(first);
        waiter.join().unwrap().unwrap();
    }
}
