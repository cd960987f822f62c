//! The compaction lock: one object at the table root that at most one
//! compaction holds at a time.
//!
//! deltalake-core does not make two compactions of the same files conflict,
//! so this lock is what keeps them apart, and every change to it is
//! conditional. A compaction creates it only if absent (`PutMode::Create`),
//! replaces an expired, released or unreadable one only if it is still the
//! version it read (`PutMode::Update` with that e_tag), and gives up its own
//! only if it is still its own. Of two compactions that read the same
//! expired lock, one replaces it and the other finds the winner's lock on
//! its next read. object_store has no conditional delete, so a release
//! leaves the object marked `released`, which the next taker treats as free.
//!
//! A local table's store (`LocalFileSystem`) has no `PutMode::Update`. There
//! a conditional change holds an OS lock on a guard file next to the lock
//! object, compares the object's bytes with what was read and then
//! overwrites (an atomic rename) or deletes it; creation stays a hard link,
//! atomic on its own. Since that compare-and-delete is atomic, a local
//! release removes the object.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use etl_core::{BackendError, Retry};
use object_store::path::Path;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, PutResult, UpdateVersion,
};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::LOCK_TTL;
use crate::DeltaLake;

/// The lock object, at the table root (names starting with `_` are not table
/// data to readers or to vacuum).
const LOCK_PATH: &str = "_etl_compaction.lock";

/// A local table's guard file, next to the lock object (see the module doc).
const GUARD_FILE: &str = "_etl_compaction.lock.guard";

/// Rounds of create, read and replace before giving up; a round ends only
/// because the lock changed between its read and its replacement.
const TAKE_ROUNDS: usize = 3;

/// What the lock object holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LockBody {
    owner: String,
    taken_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    /// Set by the holder when it is done (absent from bodies written before
    /// releases were conditional).
    #[serde(default)]
    released: bool,
}

impl LockBody {
    fn new(owner: &str, now: DateTime<Utc>) -> Self {
        Self {
            owner: owner.to_owned(),
            taken_at: now,
            expires_at: now + chrono::Duration::from_std(LOCK_TTL).unwrap_or_default(),
            released: false,
        }
    }

    /// Whether this body keeps another compaction out at `now`.
    fn holds(&self, now: DateTime<Utc>) -> bool {
        !self.released && self.expires_at > now
    }

    fn encode(&self) -> Bytes {
        // Strings and timestamps: serializing cannot fail.
        Bytes::from(serde_json::to_vec(self).expect("a lock body serializes"))
    }
}

/// One version of the lock object: what a conditional change must find.
#[derive(Debug, Clone)]
struct Stamp {
    /// Its e_tag and version, for stores with `PutMode::Update`.
    version: UpdateVersion,
    /// Its bytes, for a local table (a local e_tag is inode, mtime and size,
    /// which a later write can repeat).
    bytes: Bytes,
}

/// The lock object as one read found it.
#[derive(Debug)]
struct Seen {
    /// Its body; `None` when it does not parse.
    body: Option<LockBody>,
    stamp: Stamp,
}

/// Where a table's compaction lock lives.
#[derive(Debug, Clone)]
pub(super) struct LockObject {
    store: Arc<dyn ObjectStore>,
    path: Path,
    /// The lock object's URL, for errors and logs.
    target: String,
    /// A local table's guard file; `None` where the store has
    /// `PutMode::Update`.
    guard: Option<PathBuf>,
}

impl LockObject {
    /// The compaction lock of `lake`'s table.
    pub(super) async fn of(lake: &DeltaLake) -> Result<Self, BackendError> {
        let store = lake.latest().await?.object_store();
        let target = format!("{}{LOCK_PATH}", lake.url());
        let guard = if lake.url().scheme() == "file" {
            let dir = lake.url().to_file_path().map_err(|()| {
                BackendError::permanent("take compaction lock", &target, "not a local path")
            })?;
            Some(dir.join(GUARD_FILE))
        } else {
            None
        };
        Ok(Self::new(store, target, guard))
    }

    fn new(store: Arc<dyn ObjectStore>, target: String, guard: Option<PathBuf>) -> Self {
        Self {
            store,
            path: Path::from(LOCK_PATH),
            target,
            guard,
        }
    }

    /// Take the lock for `owner` at `now`: create it, or replace one that is
    /// expired, released or unreadable. A lock another compaction holds is
    /// a retryable error naming it.
    pub(super) async fn take(&self, owner: &str, now: DateTime<Utc>) -> Result<Lock, BackendError> {
        for round in 0..TAKE_ROUNDS {
            if let Some(lock) = self.create(owner, now).await? {
                return Ok(lock);
            }
            // Gone since (a local release deletes it): create it again.
            let Some(seen) = self.read().await? else {
                continue;
            };
            if let Some(lock) = self.take_over(&seen, owner, now).await? {
                return Ok(lock);
            }
            debug!(message = "the compaction lock changed while it was being taken; reading it again", lock = %self.target, round);
        }
        Err(BackendError::retryable(
            "take compaction lock",
            &self.target,
            format!("the lock changed hands {TAKE_ROUNDS} times while it was being taken"),
        ))
    }

    /// Create the lock for `owner`; `None` when there is a lock object
    /// already.
    async fn create(&self, owner: &str, now: DateTime<Utc>) -> Result<Option<Lock>, BackendError> {
        let body = LockBody::new(owner, now);
        let bytes = body.encode();
        let put = self
            .store
            .put_opts(
                &self.path,
                PutPayload::from(bytes.clone()),
                PutOptions::from(PutMode::Create),
            )
            .await;
        match put {
            Ok(put) => Ok(Some(self.held(body, put, bytes))),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(None),
            Err(e) => Err(self.error("take compaction lock", e)),
        }
    }

    /// The lock object as it is now; `None` when there is none.
    async fn read(&self) -> Result<Option<Seen>, BackendError> {
        let got = match self.store.get(&self.path).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.error("read compaction lock", e)),
        };
        let version = UpdateVersion {
            e_tag: got.meta.e_tag.clone(),
            version: got.meta.version.clone(),
        };
        let bytes = got
            .bytes()
            .await
            .map_err(|e| self.error("read compaction lock", e))?;
        Ok(Some(Seen {
            body: serde_json::from_slice(&bytes).ok(),
            stamp: Stamp { version, bytes },
        }))
    }

    /// Replace the lock as `seen` with one for `owner`, unless it holds (a
    /// retryable error naming its holder); `None` when the object is no
    /// longer what was seen (another taker replaced it, or its holder
    /// released it).
    async fn take_over(
        &self,
        seen: &Seen,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Lock>, BackendError> {
        match &seen.body {
            Some(held) if held.holds(now) => {
                return Err(BackendError::retryable(
                    "take compaction lock",
                    &self.target,
                    format!(
                        "another compaction ({}) holds the table since {}; its lock expires at {}",
                        held.owner, held.taken_at, held.expires_at
                    ),
                ))
            }
            Some(held) if held.released => {}
            Some(held) => {
                warn!(message = "breaking an expired compaction lock", lock = %self.target, holder = %held.owner, expired_at = %held.expires_at);
            }
            None => warn!(message = "breaking an unreadable compaction lock", lock = %self.target),
        }
        let body = LockBody::new(owner, now);
        let bytes = body.encode();
        match self.replace(bytes.clone(), &seen.stamp).await {
            Ok(put) => Ok(Some(self.held(body, put, bytes))),
            Err(object_store::Error::Precondition { .. }) => Ok(None),
            Err(e) => Err(self.error("take compaction lock", e)),
        }
    }

    /// Overwrite the lock object with `bytes` only if it is still
    /// `expected`; [`object_store::Error::Precondition`] otherwise.
    async fn replace(&self, bytes: Bytes, expected: &Stamp) -> object_store::Result<PutResult> {
        let payload = PutPayload::from(bytes);
        let Some(guard) = &self.guard else {
            let mode = PutMode::Update(expected.version.clone());
            return self
                .store
                .put_opts(&self.path, payload, PutOptions::from(mode))
                .await;
        };
        let _locked = lock_file(guard).await?;
        self.check_local(expected).await?;
        self.store
            .put_opts(&self.path, payload, PutOptions::from(PutMode::Overwrite))
            .await
    }

    /// A local table's lock: delete the object only if it is still
    /// `expected`; [`object_store::Error::Precondition`] otherwise.
    async fn delete_local(
        &self,
        guard: &std::path::Path,
        expected: &Stamp,
    ) -> object_store::Result<()> {
        let _locked = lock_file(guard).await?;
        self.check_local(expected).await?;
        self.store.delete(&self.path).await
    }

    /// Under the guard's lock: whether a local lock object still holds the
    /// bytes of `expected`.
    async fn check_local(&self, expected: &Stamp) -> object_store::Result<()> {
        let current = match self.store.get(&self.path).await {
            Ok(got) => Some(got.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        if current.as_ref() == Some(&expected.bytes) {
            return Ok(());
        }
        Err(object_store::Error::Precondition {
            path: self.path.to_string(),
            source: "the lock object changed since it was read".into(),
        })
    }

    /// The lock this process just wrote.
    fn held(&self, body: LockBody, put: PutResult, bytes: Bytes) -> Lock {
        Lock {
            object: self.clone(),
            body,
            stamp: Stamp {
                version: UpdateVersion::from(put),
                bytes,
            },
        }
    }

    fn error(&self, operation: &str, e: object_store::Error) -> BackendError {
        let retry = if matches!(e, object_store::Error::NotImplemented { .. }) {
            Retry::Permanent
        } else {
            Retry::Retryable
        };
        BackendError::caused_by(retry, operation, &self.target, e)
    }
}

/// The OS lock of a local guard file, held until the file is dropped.
async fn lock_file(path: &std::path::Path) -> object_store::Result<std::fs::File> {
    let path = path.to_owned();
    let shown = path.display().to_string();
    let locked = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await;
    let e = match locked {
        Ok(Ok(file)) => return Ok(file),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    Err(object_store::Error::Generic {
        store: "LocalFileSystem",
        source: format!("could not lock {shown}: {e}").into(),
    })
}

/// The compaction lock, held by this process.
#[derive(Debug)]
#[must_use = "a lock that is not released holds until it expires"]
pub(super) struct Lock {
    object: LockObject,
    body: LockBody,
    /// The object as this process wrote it: the lock is still ours only
    /// while the object is this.
    stamp: Stamp,
}

impl Lock {
    /// Give the lock up if it is still ours: a local table's lock object is
    /// deleted, another store's marked released (there is no conditional
    /// delete, and a plain one could remove a successor's lock). A lock that
    /// expired and was taken over is left to its new holder.
    pub(super) async fn release(self) {
        let object = &self.object;
        let result = match &object.guard {
            Some(guard) => object.delete_local(guard, &self.stamp).await,
            None => {
                let released = LockBody {
                    released: true,
                    // Free to readers that predate `released`, too.
                    expires_at: Utc::now(),
                    ..self.body.clone()
                };
                object
                    .replace(released.encode(), &self.stamp)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => debug!(message = "released the compaction lock", lock = %object.target),
            Err(object_store::Error::Precondition { .. }) => {
                warn!(message = "this compaction outlived its lock, which another one took over; leaving that one's lock", lock = %object.target, owner = %self.body.owner, expired_at = %self.body.expires_at);
            }
            Err(e) => {
                warn!(message = "could not release the compaction lock; it expires on its own", lock = %object.target, error = %e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use chrono::TimeDelta;
    use object_store::local::LocalFileSystem;
    use object_store::memory::InMemory;

    use super::*;

    /// The lock in memory (a store with `PutMode::Update`).
    fn in_memory() -> LockObject {
        LockObject::new(
            Arc::new(InMemory::new()),
            format!("memory:///{LOCK_PATH}"),
            None,
        )
    }

    /// The lock of a table in local directory `dir` (the guard file).
    fn local(dir: &std::path::Path) -> LockObject {
        LockObject::new(
            Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap()),
            dir.join(LOCK_PATH).display().to_string(),
            Some(dir.join(GUARD_FILE)),
        )
    }

    /// Run `scenario` on the lock in memory (a store with `PutMode::Update`)
    /// and on the lock of a local directory (the guard file).
    async fn on_each_store<F: Future<Output = ()>>(scenario: impl Fn(LockObject) -> F) {
        scenario(in_memory()).await;
        let dir = tempfile::tempdir().unwrap();
        scenario(local(dir.path())).await;
    }

    fn ttl() -> TimeDelta {
        TimeDelta::from_std(LOCK_TTL).unwrap()
    }

    /// What the lock object says now; `None` when there is none.
    async fn body(lock: &LockObject) -> Option<LockBody> {
        let seen = lock.read().await.unwrap()?;
        Some(seen.body.expect("a lock body"))
    }

    /// Both read the same expired lock, then both try to replace it.
    async fn two_takers_of_an_expired_lock(lock: LockObject) {
        let now = Utc::now();
        // A crashed compaction's lock, written before `released` existed.
        let crashed = serde_json::json!({
            "owner": "crashed",
            "taken_at": now - ttl() - TimeDelta::hours(1),
            "expires_at": now - TimeDelta::hours(1),
        });
        lock.store
            .put(
                &lock.path,
                PutPayload::from(serde_json::to_vec(&crashed).unwrap()),
            )
            .await
            .unwrap();
        let seen_by_a = lock.read().await.unwrap().unwrap();
        let seen_by_b = lock.read().await.unwrap().unwrap();

        let a = lock.take_over(&seen_by_a, "a", now).await.unwrap();
        assert!(a.is_some(), "the first takes the expired lock over");
        let b = lock.take_over(&seen_by_b, "b", now).await.unwrap();
        assert!(b.is_none(), "the second finds it changed since its read");
        // The second's next round reads the winner's lock and stops there.
        let seen_again = lock.read().await.unwrap().unwrap();
        let err = lock.take_over(&seen_again, "b", now).await.unwrap_err();
        assert_eq!(err.retry, Retry::Retryable);
        assert!(err.to_string().contains("another compaction (a)"), "{err}");
        let err = lock.take("b", now).await.unwrap_err();
        assert_eq!(err.retry, Retry::Retryable);
        assert!(err.to_string().contains("another compaction (a)"), "{err}");
        assert_eq!(body(&lock).await.unwrap().owner, "a");
        a.unwrap().release().await;
    }

    #[tokio::test]
    async fn of_two_takers_of_an_expired_lock_exactly_one_wins() {
        on_each_store(two_takers_of_an_expired_lock).await;
    }

    /// `a` holds; `b` comes after it expired and takes it over; then `a`
    /// finishes and releases.
    async fn a_release_after_a_takeover(lock: LockObject) {
        let then = Utc::now();
        let a = lock.take("a", then).await.unwrap();
        let later = then + ttl() + TimeDelta::seconds(1);
        let b = lock.take("b", later).await.unwrap();
        a.release().await;
        let held = body(&lock).await.expect("b's lock is still there");
        assert_eq!(held.owner, "b");
        assert!(held.holds(later), "{held:?}");
        let err = lock.take("c", later).await.unwrap_err();
        assert!(err.to_string().contains("another compaction (b)"), "{err}");
        b.release().await;
    }

    #[tokio::test]
    async fn a_release_after_the_lock_was_taken_over_leaves_the_new_holders_lock() {
        on_each_store(a_release_after_a_takeover).await;
    }

    /// `a` takes and releases; `b` takes at once, long before `a`'s lock
    /// would have expired.
    async fn a_take_after_a_release(lock: LockObject) {
        let now = Utc::now();
        let a = lock.take("a", now).await.unwrap();
        a.release().await;
        match body(&lock).await {
            // A local release deletes the lock object.
            None => assert!(lock.guard.is_some(), "only a local release deletes"),
            Some(released) => assert!(
                lock.guard.is_none() && released.released && !released.holds(now),
                "{released:?}"
            ),
        }
        let b = lock.take("b", now).await.unwrap();
        let held = body(&lock).await.unwrap();
        assert_eq!(held.owner, "b");
        assert!(held.holds(now), "{held:?}");
        b.release().await;
        lock.take("c", now).await.unwrap().release().await;
    }

    #[tokio::test]
    async fn a_take_after_a_release_succeeds() {
        on_each_store(a_take_after_a_release).await;
    }

    /// A lock within its time keeps others out and is left as it is.
    async fn a_held_lock(lock: LockObject) {
        let now = Utc::now();
        let a = lock.take("a", now).await.unwrap();
        let err = lock
            .take("b", now + ttl() - TimeDelta::seconds(1))
            .await
            .unwrap_err();
        assert_eq!(err.retry, Retry::Retryable);
        assert!(err.to_string().contains("another compaction (a)"), "{err}");
        assert_eq!(body(&lock).await.unwrap().owner, "a");
        a.release().await;
    }

    #[tokio::test]
    async fn a_held_lock_refuses_another_taker_and_stays() {
        on_each_store(a_held_lock).await;
    }
}
