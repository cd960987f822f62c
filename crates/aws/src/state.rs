//! The producer's durable state in a small DynamoDB table (`STATE_TABLE`,
//! partition key `pk` string): the incremental watermark, the checkpoint of an
//! unfinished run, and the run lock.
//!
//! Every write is conditional. Watermark and checkpoint items carry a
//! `version` number and are replaced only when the version read is still the
//! current one (optimistic concurrency), so a stale run can never move the
//! watermark backwards or clobber a newer checkpoint. The lock is acquired
//! with "absent, expired, or already mine", which is what keeps two
//! overlapping runs from both sending. Its `expires_at` (epoch seconds) can
//! double as the table's TTL attribute: expired locks then disappear by
//! themselves, and items without it (watermark, checkpoint) are never expired.
//! Items are namespaced by a scope (the source table name) so one state table
//! can serve several pipelines.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::Utc;
use etl_core::BackendError;
use futures::{FutureExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::backend_error;

/// A value with the version it was stored at.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// The item's `version`; pass it back to the next conditional write.
    pub version: u64,
}

/// The result of trying to take the run lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    /// The lock is ours until `expires_at` (epoch seconds).
    Acquired {
        /// Expiry, epoch seconds.
        expires_at: i64,
    },
    /// Another run holds it.
    Held {
        /// The holder.
        owner: String,
        /// Its expiry, epoch seconds.
        expires_at: i64,
    },
}

/// Watermark, checkpoint and lock of one pipeline. See the module docs.
#[derive(Debug, Clone)]
pub struct StateStore {
    client: Client,
    table: String,
    scope: String,
}

const WATERMARK: &str = "watermark";
const CHECKPOINT: &str = "checkpoint";
const LOCK: &str = "lock";
const REQUESTED: &str = "requested";

impl StateStore {
    /// State of the pipeline `scope` (usually the source table name) in `table`.
    pub fn new(client: Client, table: impl Into<String>, scope: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            scope: scope.into(),
        }
    }

    fn pk(&self, kind: &str) -> String {
        format!("{}#{kind}", self.scope)
    }

    fn target(&self, kind: &str) -> String {
        format!("table {} item {}", self.table, self.pk(kind))
    }

    /// The state of the last completed run (watermark, ledger), if any.
    pub async fn load_watermark<T: DeserializeOwned>(
        &self,
    ) -> Result<Option<Versioned<T>>, BackendError> {
        self.load_json(WATERMARK).await
    }

    /// Store the completed run's state if the stored version is still
    /// `expected` (`None`: only if none exists). Returns the new version.
    pub async fn save_watermark<T: Serialize>(
        &self,
        state: &T,
        expected: Option<u64>,
    ) -> Result<u64, BackendError> {
        self.save_json(WATERMARK, state, expected).await
    }

    /// The checkpoint of an unfinished run, if any.
    pub async fn load_checkpoint<T: DeserializeOwned>(
        &self,
    ) -> Result<Option<Versioned<T>>, BackendError> {
        self.load_json(CHECKPOINT).await
    }

    /// Store a checkpoint if the stored version is still `expected`.
    pub async fn save_checkpoint<T: Serialize>(
        &self,
        cp: &T,
        expected: Option<u64>,
    ) -> Result<u64, BackendError> {
        self.save_json(CHECKPOINT, cp, expected).await
    }

    /// Delete the checkpoint if it is still at version `expected`.
    pub async fn clear_checkpoint(&self, expected: u64) -> Result<(), BackendError> {
        let target = self.target(CHECKPOINT);
        match self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.pk(CHECKPOINT)))
            .condition_expression("#ver = :v")
            .expression_attribute_names("#ver", "version")
            .expression_attribute_values(":v", AttributeValue::N(expected.to_string()))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                // Only the lock holder deletes the checkpoint: when it is gone,
                // this was our own delete, applied by an attempt whose answer
                // was lost.
                match self.get_item(CHECKPOINT).await? {
                    None => Ok(()),
                    Some(item) => Err(BackendError::permanent(
                        "DeleteItem",
                        target,
                        format!(
                            "checkpoint changed concurrently (expected version {expected}, found {})",
                            version_of(&item)
                        ),
                    )),
                }
            }
            Err(e) => Err(backend_error("DeleteItem", target, &e)),
        }
    }

    async fn load_json<T: DeserializeOwned>(
        &self,
        kind: &str,
    ) -> Result<Option<Versioned<T>>, BackendError> {
        let target = self.target(kind);
        let Some(item) = self.get_item(kind).await? else {
            return Ok(None);
        };
        let json = match item.get("value") {
            Some(AttributeValue::S(s)) => s,
            _ => {
                return Err(BackendError::permanent(
                    "GetItem",
                    target,
                    "attribute `value` missing or not a string",
                ))
            }
        };
        let value = serde_json::from_str(json).map_err(|e| {
            BackendError::permanent(
                "GetItem",
                &target,
                format!("attribute `value` is not valid JSON state: {e}"),
            )
        })?;
        Ok(Some(Versioned {
            value,
            version: version_of(&item),
        }))
    }

    async fn save_json<T: Serialize>(
        &self,
        kind: &str,
        value: &T,
        expected: Option<u64>,
    ) -> Result<u64, BackendError> {
        let target = self.target(kind);
        let json = serde_json::to_string(value).map_err(|e| {
            BackendError::permanent("PutItem", &target, format!("cannot serialize state: {e}"))
        })?;
        let next = expected.map_or(1, |v| v + 1);
        // A token unique to this write: when the answer to an applied write is
        // lost and the SDK retries it, the retry fails its condition; reading
        // the item back and finding our own token tells that apart from a
        // write by another run.
        let token = write_token();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(self.pk(kind)))
            .item("value", AttributeValue::S(json))
            .item("version", AttributeValue::N(next.to_string()))
            .item("write_token", AttributeValue::S(token.clone()))
            .item("updated_at", AttributeValue::S(Utc::now().to_rfc3339()));
        put = match expected {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(v) => put
                .condition_expression("#ver = :v")
                .expression_attribute_names("#ver", "version")
                .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
        };
        match put.send().await {
            Ok(_) => Ok(next),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                let current = self.get_item(kind).await?;
                if current.as_ref().and_then(|i| string_attr(i, "write_token")) == Some(&token) {
                    tracing::info!(message = "State write applied by an earlier attempt whose answer was lost.", target = %target, version = next);
                    return Ok(next);
                }
                Err(BackendError::permanent(
                    "PutItem",
                    target,
                    format!(
                        "{kind} was changed by another run (expected {}, found {})",
                        expected.map_or("no item".to_owned(), |v| format!("version {v}")),
                        current.map_or("no item".to_owned(), |i| format!(
                            "version {}",
                            version_of(&i)
                        ))
                    ),
                ))
            }
            Err(e) => Err(backend_error("PutItem", target, &e)),
        }
    }

    async fn get_item(
        &self,
        kind: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, BackendError> {
        self.get_pk(self.pk(kind)).await
    }

    /// A consistent read of one item of the state table.
    async fn get_pk(
        &self,
        pk: String,
    ) -> Result<Option<HashMap<String, AttributeValue>>, BackendError> {
        let target = format!("table {} item {pk}", self.table);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend_error("GetItem", target, &e))?;
        Ok(out.item)
    }

    /// Store a ledger (core's `write_ledger` encoding) as a new generation:
    /// chunks of at most [`LEDGER_CHUNK_BYTES`] in items
    /// `<scope>#ledger#<generation>#<n>`, so its size is not capped by
    /// DynamoDB's 400 KB item limit. The bytes are read a chunk at a time
    /// (at most four chunks in memory), so a ledger of any size is written
    /// incrementally. Nothing points at it until the caller saves the
    /// returned reference in the state or a checkpoint, so a half-written
    /// generation is never read. Writes are idempotent puts. The generation
    /// is named `<prefix>-<unique token>`: a retried invocation never
    /// overwrites a generation something points at.
    pub async fn save_ledger<B: LedgerBytes + ?Sized>(
        &self,
        prefix: &str,
        bytes: &B,
    ) -> Result<LedgerRef, BackendError> {
        let generation = format!("{prefix}-{}", &write_token()[..12]);
        let generation = generation.as_str();
        let len = bytes.len();
        let chunks = len.div_ceil(LEDGER_CHUNK_BYTES as u64).max(1);
        let mut hash = Sha256::new();
        let puts = futures::stream::iter(0..chunks).map(|n| {
            let key = self.ledger_pk(generation, n as u32);
            let target = format!("table {} item {key}", self.table);
            let offset = n * LEDGER_CHUNK_BYTES as u64;
            let mut chunk = vec![0u8; (len - offset).min(LEDGER_CHUNK_BYTES as u64) as usize];
            // Read in order, as the stream is polled: the hash sees the bytes
            // in order whatever order the puts finish in.
            let read = bytes.read_exact_at(&mut chunk, offset);
            hash.update(&chunk);
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", AttributeValue::S(key))
                .item("data", AttributeValue::B(Blob::new(chunk)));
            async move {
                read.map_err(|e| {
                    BackendError::permanent(
                        "PutItem",
                        &target,
                        format!("cannot read the encoded ledger: {e}"),
                    )
                })?;
                put.send()
                    .await
                    .map_err(|e| backend_error("PutItem", target, &e))
            }
        });
        // A few at a time: each chunk is up to ~350 KB of write capacity.
        let mut puts = puts.buffer_unordered(4);
        while let Some(r) = puts.next().await {
            r?;
        }
        drop(puts);
        Ok(LedgerRef {
            generation: generation.to_owned(),
            chunks: chunks as u32,
            bytes: len,
            sha256: hex::encode(hash.finalize()),
        })
    }

    /// Read a ledger generation back, checking every chunk is there and the
    /// bytes hash to what the reference says.
    pub async fn load_ledger(&self, reference: &LedgerRef) -> Result<Vec<u8>, BackendError> {
        let mut bytes = Vec::new();
        self.load_ledger_into(reference, &mut bytes).await?;
        Ok(bytes)
    }

    /// [`StateStore::load_ledger`] into a writer, a chunk at a time: memory
    /// does not grow with the ledger. The writer has every byte when this
    /// returns `Ok`, and should be discarded on an error.
    pub async fn load_ledger_into(
        &self,
        reference: &LedgerRef,
        w: &mut impl std::io::Write,
    ) -> Result<(), BackendError> {
        let keys = (0..reference.chunks).map(|n| self.ledger_pk(&reference.generation, n));
        let what = format!("ledger generation {}", reference.generation);
        let target = self.target(&format!("ledger#{}", reference.generation));
        let mut hash = Sha256::new();
        let mut len = 0u64;
        read_chunks_with(&self.client, &self.table, keys, "data", &what, |chunk| {
            hash.update(chunk);
            len += chunk.len() as u64;
            w.write_all(chunk).map_err(|e| {
                BackendError::permanent(
                    "GetItem",
                    &target,
                    format!("cannot write the ledger to local disk: {e}"),
                )
            })
        })
        .await?;
        w.flush().map_err(|e| {
            BackendError::permanent(
                "GetItem",
                &target,
                format!("cannot write the ledger to local disk: {e}"),
            )
        })?;
        let sha256 = hex::encode(hash.finalize());
        if len != reference.bytes || sha256 != reference.sha256 {
            return Err(BackendError::permanent(
                "GetItem",
                target,
                format!(
                    "ledger generation {} is corrupt: {len} bytes with SHA-256 {sha256}, expected {} bytes with {}",
                    reference.generation, reference.bytes, reference.sha256
                ),
            ));
        }
        Ok(())
    }

    /// Delete a ledger generation nothing points at any more.
    pub async fn delete_ledger(&self, reference: &LedgerRef) -> Result<(), BackendError> {
        for n in 0..reference.chunks {
            let key = self.ledger_pk(&reference.generation, n);
            let target = format!("table {} item {key}", self.table);
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key))
                .send()
                .await
                .map_err(|e| backend_error("DeleteItem", target, &e))?;
        }
        Ok(())
    }

    /// Delete every ledger chunk of a generation not in `live`: generations
    /// orphaned by an invocation that saved one and failed before the
    /// conditional write that would have pointed at it. Only the run lock's
    /// holder writes generations, so one nothing points at is garbage. A
    /// consistent scan of the state table; returns the items deleted.
    pub async fn delete_orphan_ledgers(&self, live: &[&str]) -> Result<usize, BackendError> {
        let prefix = format!("{}#ledger#", self.scope);
        let table = format!("table {}", self.table);
        let mut orphans = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        for page in 0..10_000 {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .filter_expression("begins_with(pk, :p)")
                .expression_attribute_values(":p", AttributeValue::S(prefix.clone()))
                .projection_expression("pk")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend_error("Scan", &table, &e))?;
            for item in out.items.unwrap_or_default() {
                let Some(AttributeValue::S(pk)) = item.get("pk") else {
                    continue;
                };
                let generation = pk
                    .strip_prefix(&prefix)
                    .and_then(|rest| rest.rsplit_once('#'))
                    .map(|(g, _)| g);
                if generation.is_some_and(|g| !live.contains(&g)) {
                    orphans.push(pk.clone());
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && page + 1 < 10_000 => start = Some(k),
                _ => break,
            }
        }
        let deletes = orphans.iter().map(|key| {
            let target = format!("table {} item {key}", self.table);
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.clone()))
                .send()
                .map(move |r| r.map_err(|e| backend_error("DeleteItem", target, &e)))
        });
        let results: Vec<Result<_, BackendError>> = futures::stream::iter(deletes)
            .buffer_unordered(4)
            .collect()
            .await;
        let mut deleted = 0;
        for r in results {
            r?;
            deleted += 1;
        }
        Ok(deleted)
    }

    fn ledger_pk(&self, generation: &str, n: u32) -> String {
        format!("{}#ledger#{generation}#{n:06}", self.scope)
    }

    /// Ask for an incremental run that could not start now (a scheduled
    /// invocation found the lock held, e.g. by a resume tick's run): the
    /// next `resume` invocation with nothing to resume starts it instead of
    /// idling, so a night is not skipped. Idempotent.
    pub async fn request_run(&self, by: &str) -> Result<(), BackendError> {
        let target = self.target(REQUESTED);
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(self.pk(REQUESTED)))
            .item("by", AttributeValue::S(by.to_owned()))
            .item("requested_at", AttributeValue::S(Utc::now().to_rfc3339()))
            .item(
                "requested_at_ms",
                AttributeValue::N(Utc::now().timestamp_millis().to_string()),
            )
            .send()
            .await
            .map_err(|e| backend_error("PutItem", target, &e))?;
        Ok(())
    }

    /// The invocation that asked for a run ([`StateStore::request_run`]),
    /// if one is waiting.
    pub async fn requested_run(&self) -> Result<Option<String>, BackendError> {
        Ok(self
            .get_item(REQUESTED)
            .await?
            .map(|i| string_attr(&i, "by").cloned().unwrap_or_default()))
    }

    /// A run that started at `started` has saved its progress: forget a
    /// request made before then (one made later stays, for the next tick).
    pub async fn clear_run_request(
        &self,
        started: chrono::DateTime<Utc>,
    ) -> Result<(), BackendError> {
        let target = self.target(REQUESTED);
        match self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.pk(REQUESTED)))
            .condition_expression("attribute_not_exists(pk) OR #at <= :t")
            .expression_attribute_names("#at", "requested_at_ms")
            .expression_attribute_values(
                ":t",
                AttributeValue::N(started.timestamp_millis().to_string()),
            )
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(backend_error("DeleteItem", target, &e)),
        }
    }

    /// Take the run lock for `owner` for `ttl`: succeeds when no lock exists,
    /// the existing one has expired, or `owner` already holds it (re-entry by
    /// a resumed run extends it).
    pub async fn acquire_lock(
        &self,
        owner: &str,
        ttl: Duration,
    ) -> Result<LockOutcome, BackendError> {
        let target = self.target(LOCK);
        let now = Utc::now().timestamp();
        let expires_at = now + ttl.as_secs() as i64;
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(self.pk(LOCK)))
            .item("owner", AttributeValue::S(owner.to_owned()))
            .item("expires_at", AttributeValue::N(expires_at.to_string()))
            .item("acquired_at", AttributeValue::S(Utc::now().to_rfc3339()))
            .condition_expression("attribute_not_exists(pk) OR #exp < :now OR #owner = :me")
            .expression_attribute_names("#exp", "expires_at")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":me", AttributeValue::S(owner.to_owned()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(LockOutcome::Acquired { expires_at }),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                let item = self.get_item(LOCK).await?.unwrap_or_default();
                let owner = match item.get("owner") {
                    Some(AttributeValue::S(s)) => s.clone(),
                    _ => "<unknown>".to_owned(),
                };
                let expires_at = match item.get("expires_at") {
                    Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
                    _ => 0,
                };
                Ok(LockOutcome::Held { owner, expires_at })
            }
            Err(e) => Err(backend_error("PutItem", target, &e)),
        }
    }

    /// Who holds the run lock now (`None`: nobody, or only an expired
    /// holder), for operators. Reads; never takes it.
    pub async fn lock_holder(&self) -> Result<Option<LockOutcome>, BackendError> {
        let Some(item) = self.get_item(LOCK).await? else {
            return Ok(None);
        };
        let owner = match item.get("owner") {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => "<unknown>".to_owned(),
        };
        let expires_at = match item.get("expires_at") {
            Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
            _ => 0,
        };
        Ok((expires_at >= Utc::now().timestamp())
            .then_some(LockOutcome::Held { owner, expires_at }))
    }

    /// Release the lock if `owner` holds it. Returns whether it was released
    /// (false: it had expired and someone else took it, or it was gone).
    pub async fn release_lock(&self, owner: &str) -> Result<bool, BackendError> {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.pk(LOCK)))
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", AttributeValue::S(owner.to_owned()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(backend_error("DeleteItem", self.target(LOCK), &e)),
        }
    }
}

/// Where a stored ledger generation is: saved inside the state item or a
/// checkpoint, which is what makes a generation live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRef {
    /// Generation name (unique per save).
    pub generation: String,
    /// Number of chunk items.
    pub chunks: u32,
    /// Total bytes.
    pub bytes: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
}

/// Bytes per ledger chunk item: under DynamoDB's 400 KB item limit with room
/// for the key and attribute names.
pub const LEDGER_CHUNK_BYTES: usize = 350 * 1024;

fn write_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    hex::encode(&Sha256::digest(format!("{}:{nanos}:{n}", std::process::id()))[..16])
}

fn string_attr<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a String> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s),
        _ => None,
    }
}

fn version_of(item: &HashMap<String, AttributeValue>) -> u64 {
    match item.get("version") {
        Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
        _ => 0,
    }
}

/// The `attr` binary attributes of the items `keys`, concatenated in order,
/// each a consistent read: a value stored in chunks (a ledger generation, a
/// staged message body). A missing chunk is a permanent error naming `what`.
pub(crate) async fn read_chunks(
    client: &Client,
    table: &str,
    keys: impl ExactSizeIterator<Item = String>,
    attr: &str,
    what: &str,
) -> Result<Vec<u8>, BackendError> {
    let mut bytes = Vec::new();
    read_chunks_with(client, table, keys, attr, what, |chunk| {
        bytes.extend_from_slice(chunk);
        Ok(())
    })
    .await?;
    Ok(bytes)
}

/// [`read_chunks`], handing each chunk to `each` in order instead of
/// collecting them.
pub(crate) async fn read_chunks_with(
    client: &Client,
    table: &str,
    keys: impl ExactSizeIterator<Item = String>,
    attr: &str,
    what: &str,
    mut each: impl FnMut(&[u8]) -> Result<(), BackendError>,
) -> Result<(), BackendError> {
    let chunks = keys.len();
    for (n, key) in keys.enumerate() {
        let target = format!("table {table} item {key}");
        let item = client
            .get_item()
            .table_name(table)
            .key("pk", AttributeValue::S(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend_error("GetItem", &target, &e))?
            .item;
        match item.as_ref().and_then(|i| i.get(attr)) {
            Some(AttributeValue::B(b)) => each(b.as_ref())?,
            _ => {
                return Err(BackendError::permanent(
                    "GetItem",
                    target,
                    format!("{what} chunk {n} of {chunks} is missing"),
                ))
            }
        }
    }
    Ok(())
}

/// Bytes to store as a ledger generation, read a chunk at a time.
pub trait LedgerBytes: Sync {
    /// Their length.
    fn len(&self) -> u64;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fill `buf` from `offset`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
}

impl LedgerBytes for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        let src = self
            .get(start..start + buf.len())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl LedgerBytes for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
}

/// Hex SHA-256 of some bytes, as [`LedgerRef::sha256`] holds it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
