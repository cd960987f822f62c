//! The producer's outbox in the state table: every packed message is stored
//! before `SendMessageBatch`, marked sent after, and deleted only once the
//! versions it holds are in a saved ledger (a checkpoint or a completed run).
//!
//! Why: what goes into a message depends on the order a parallel scan hands
//! records out and on what else is in the table, and both change between a
//! failed invocation and Lambda's retry (one write moves every later bucket
//! boundary). Without this, the retry would pack versions that were already
//! sent into bodies with new content ids: a second row in the raw table and
//! a second Comprehend bill. With it, the retry first re-sends what is
//! staged and not marked sent, verbatim (same body, so the consumer's object
//! key or Delta `txn` catches the repeat), and treats every staged version
//! as already sent.
//!
//! Items (all under the pipeline's scope, the source table name):
//! * `<scope>#outbox#<content id>`: the head, written last, so a head means
//!   the body is whole: chunk count, size, SHA-256, records, `sent`.
//! * `<scope>#outboxbody#<content id>#<n>`: the body, zstd-compressed (a
//!   write costs a unit per KB, and message bodies are JSON text), in chunks
//!   of at most [`LEDGER_CHUNK_BYTES`] (DynamoDB items are capped at 400 KB;
//!   SQS bodies at 1 MiB). The head's size and SHA-256 are the body's own.
//!
//! Every item carries `expires_at` ([`OUTBOX_TTL`] ahead, the state table's
//! TTL attribute), so chunks orphaned by a crash before their head was
//! written disappear by themselves. A staged message is normally deleted by
//! the next invocation, minutes or a day later.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::Utc;
use etl_core::{BackendError, Outbox, OutgoingMessage, Retry, RetryPolicy};
use futures::{FutureExt, StreamExt};

use crate::error::backend_error;
use crate::state::{read_chunks, sha256_hex, LEDGER_CHUNK_BYTES};

/// How long staged items live if nothing deletes them (the state table's
/// TTL): far longer than any gap between two scheduled invocations.
pub const OUTBOX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// zstd level of staged bodies: fast, and most of the gain on JSON text.
const ZSTD_LEVEL: i32 = 3;

/// Pages of the state table an outbox scan reads at most (1 MB each).
const MAX_SCAN_PAGES: usize = 10_000;

/// Items written or deleted at once.
const PARALLEL_WRITES: usize = 8;

/// Every outbox write is idempotent (a put of the same item, an update to the
/// same value, a delete), so a transient failure, a lost answer included, is
/// retried here on top of the SDK's own attempts.
const WRITE_RETRY: RetryPolicy =
    RetryPolicy::new(5, Duration::from_millis(20), Duration::from_millis(500));

/// Run an idempotent write until it succeeds, fails permanently, or
/// [`WRITE_RETRY`] runs out.
async fn idempotent<T, F, Fut>(mut write: F) -> Result<T, BackendError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, BackendError>>,
{
    let mut attempt = 0;
    loop {
        match write().await {
            Err(e) if e.retry == Retry::Retryable && !WRITE_RETRY.is_last(attempt) => {
                tokio::time::sleep(WRITE_RETRY.delay(attempt, u64::from(attempt) + 7)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// A message found in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedMessage {
    /// The message, body exactly as staged.
    pub message: OutgoingMessage,
    /// Whether the queue accepted it (a retry need not send it again).
    pub sent: bool,
    /// Body chunk items.
    chunks: u32,
}

/// The outbox of one pipeline in the state table. See the module docs.
#[derive(Debug)]
pub struct DynamoOutbox {
    client: Client,
    table: String,
    scope: String,
    run_id: String,
    /// `(content id, chunks)` of what this handle staged.
    staged: Mutex<Vec<(String, u32)>>,
}

impl DynamoOutbox {
    /// The outbox of the pipeline `scope` in `table`; messages staged through
    /// it are labelled with `run_id` (for operators).
    pub fn new(
        client: Client,
        table: impl Into<String>,
        scope: impl Into<String>,
        run_id: impl Into<String>,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            scope: scope.into(),
            run_id: run_id.into(),
            staged: Mutex::new(Vec::new()),
        }
    }

    fn head_pk(&self, content_id: &str) -> String {
        format!("{}#outbox#{content_id}", self.scope)
    }

    fn chunk_pk(&self, content_id: &str, n: u32) -> String {
        format!("{}#outboxbody#{content_id}#{n:04}", self.scope)
    }

    fn target(&self, pk: &str) -> String {
        format!("table {} item {pk}", self.table)
    }

    fn expires_at() -> AttributeValue {
        AttributeValue::N((Utc::now().timestamp() + OUTBOX_TTL.as_secs() as i64).to_string())
    }

    /// Every message staged and not yet deleted, with its body checked
    /// against its size, hash and content id. A consistent scan of the state
    /// table (it holds only this pipeline's small items and ledger chunks).
    pub async fn load(&self) -> Result<Vec<StagedMessage>, BackendError> {
        let prefix = format!("{}#outbox#", self.scope);
        let mut heads = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        for page in 0.. {
            if page == MAX_SCAN_PAGES {
                return Err(BackendError::permanent(
                    "Scan",
                    format!("table {}", self.table),
                    format!("more than {MAX_SCAN_PAGES} pages while looking for staged messages"),
                ));
            }
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .filter_expression("begins_with(pk, :p)")
                .expression_attribute_values(":p", AttributeValue::S(prefix.clone()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend_error("Scan", format!("table {}", self.table), &e))?;
            heads.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        let mut staged = Vec::with_capacity(heads.len());
        for head in heads {
            staged.push(self.read_staged(&head).await?);
        }
        staged.sort_by(|a, b| a.message.content_id.cmp(&b.message.content_id));
        Ok(staged)
    }

    async fn read_staged(
        &self,
        head: &HashMap<String, AttributeValue>,
    ) -> Result<StagedMessage, BackendError> {
        let pk = match head.get("pk") {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => String::from("<no pk>"),
        };
        let target = self.target(&pk);
        let field = |name: &str| -> Result<&AttributeValue, BackendError> {
            head.get(name).ok_or_else(|| {
                BackendError::permanent("Scan", &target, format!("staged message lacks `{name}`"))
            })
        };
        let number = |name: &str| -> Result<u64, BackendError> {
            match field(name)? {
                AttributeValue::N(n) => n.parse().map_err(|_| {
                    BackendError::permanent("Scan", &target, format!("`{name}` is not a number"))
                }),
                _ => Err(BackendError::permanent(
                    "Scan",
                    &target,
                    format!("`{name}` is not a number"),
                )),
            }
        };
        let content_id = match field("content_id")? {
            AttributeValue::S(s) => s.clone(),
            _ => {
                return Err(BackendError::permanent(
                    "Scan",
                    &target,
                    "`content_id` is not a string",
                ))
            }
        };
        let sha256 = match field("sha256")? {
            AttributeValue::S(s) => s.clone(),
            _ => {
                return Err(BackendError::permanent(
                    "Scan",
                    &target,
                    "`sha256` is not a string",
                ))
            }
        };
        let sent = matches!(head.get("sent"), Some(AttributeValue::Bool(true)));
        let chunks = number("chunks")? as u32;
        let bytes = number("bytes")?;
        let keys = (0..chunks).map(|n| self.chunk_pk(&content_id, n));
        let what = format!("staged message {content_id}");
        let packed = read_chunks(&self.client, &self.table, keys, "body", &what).await?;
        let damaged = |why: String| {
            BackendError::permanent(
                "GetItem",
                &target,
                format!("staged message {content_id} is damaged: {why}"),
            )
        };
        let body = zstd::decode_all(packed.as_slice())
            .map_err(|e| damaged(format!("its body does not decompress: {e}")))?;
        if body.len() as u64 != bytes || sha256_hex(&body) != sha256 {
            return Err(damaged(format!(
                "{} bytes with SHA-256 {}, expected {bytes} bytes with {sha256}",
                body.len(),
                sha256_hex(&body)
            )));
        }
        let body = String::from_utf8(body).map_err(|e| damaged(e.to_string()))?;
        let (message, _) = OutgoingMessage::from_body(body).map_err(|e| damaged(e.to_string()))?;
        if message.content_id != content_id {
            return Err(damaged(format!(
                "its body has content id {}",
                message.content_id
            )));
        }
        Ok(StagedMessage {
            message,
            sent,
            chunks,
        })
    }

    /// Delete staged messages whose versions are now in a saved ledger: those
    /// `loaded` at the start and those this handle staged. Heads first (a
    /// message without a head is gone), then bodies. Best effort: what is
    /// left is found again by the next invocation (its versions count as sent
    /// once more, harmlessly) or expires. Returns how many were deleted.
    pub async fn clear(&self, loaded: &[StagedMessage]) -> usize {
        let mut all: Vec<(String, u32)> = loaded
            .iter()
            .map(|s| (s.message.content_id.clone(), s.chunks))
            .collect();
        all.extend(
            self.staged
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain(..),
        );
        all.sort();
        all.dedup();
        let heads: Vec<String> = all.iter().map(|(c, _)| self.head_pk(c)).collect();
        let gone = self.delete_all(heads).await;
        // Only the bodies of messages whose head is gone: a head left behind
        // must still find its body whole.
        let bodies: Vec<String> = all
            .iter()
            .zip(&gone)
            .filter(|(_, deleted)| **deleted)
            .flat_map(|((c, n), _)| (0..*n).map(move |i| (c.clone(), i)))
            .map(|(c, i)| self.chunk_pk(&c, i))
            .collect();
        self.delete_all(bodies).await;
        gone.iter().filter(|d| **d).count()
    }

    /// Delete `keys`; whether each one was deleted, in order.
    async fn delete_all(&self, keys: Vec<String>) -> Vec<bool> {
        let deletes = keys.into_iter().map(|key| async move {
            let target = self.target(&key);
            idempotent(|| {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key("pk", AttributeValue::S(key.clone()))
                    .send()
                    .map(|r| r.map_err(|e| backend_error("DeleteItem", &target, &e)))
            })
            .await
        });
        let results: Vec<Result<_, BackendError>> = futures::stream::iter(deletes)
            .buffered(PARALLEL_WRITES)
            .collect()
            .await;
        results
            .into_iter()
            .map(|r| match r {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(message = "Could not delete a staged message item; the next invocation finds it again, or it expires.", error = %e);
                    false
                }
            })
            .collect()
    }
}

#[async_trait]
impl Outbox for DynamoOutbox {
    async fn stage(&self, messages: &[OutgoingMessage]) -> Result<(), BackendError> {
        // Bodies first, heads after: a head is only ever read with its body whole.
        let mut bodies = Vec::new();
        let mut heads = Vec::new();
        for m in messages {
            let bytes = m.body.as_bytes();
            let packed = zstd::encode_all(bytes, ZSTD_LEVEL).map_err(|e| {
                BackendError::permanent_from("stage", format!("message {}", m.content_id), e)
            })?;
            let chunks: Vec<&[u8]> = packed.chunks(LEDGER_CHUNK_BYTES).collect();
            for (n, chunk) in chunks.iter().enumerate() {
                bodies.push(
                    self.client
                        .put_item()
                        .table_name(&self.table)
                        .item(
                            "pk",
                            AttributeValue::S(self.chunk_pk(&m.content_id, n as u32)),
                        )
                        .item("body", AttributeValue::B(Blob::new(chunk.to_vec())))
                        .item("expires_at", Self::expires_at()),
                );
            }
            heads.push((
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .item("pk", AttributeValue::S(self.head_pk(&m.content_id)))
                    .item("content_id", AttributeValue::S(m.content_id.clone()))
                    .item("chunks", AttributeValue::N(chunks.len().to_string()))
                    .item("bytes", AttributeValue::N(bytes.len().to_string()))
                    .item("sha256", AttributeValue::S(sha256_hex(bytes)))
                    .item("records", AttributeValue::N(m.record_count.to_string()))
                    .item("sent", AttributeValue::Bool(false))
                    .item("run_id", AttributeValue::S(self.run_id.clone()))
                    .item("staged_at", AttributeValue::S(Utc::now().to_rfc3339()))
                    .item("expires_at", Self::expires_at()),
                m.content_id.clone(),
                chunks.len() as u32,
            ));
        }
        let target = format!("table {} (outbox)", self.table);
        let target = target.as_str();
        let put = |p: PutItemFluentBuilder| async move {
            idempotent(|| {
                p.clone()
                    .send()
                    .map(|r| r.map_err(|e| backend_error("PutItem", target, &e)))
            })
            .await
        };
        let results: Vec<_> = futures::stream::iter(bodies.into_iter().map(put))
            .buffer_unordered(PARALLEL_WRITES)
            .collect()
            .await;
        for r in results {
            r?;
        }
        let mut written = Vec::with_capacity(heads.len());
        let results: Vec<_> = futures::stream::iter(
            heads
                .into_iter()
                .map(|(p, cid, n)| put(p).map(move |r| (r, cid, n))),
        )
        .buffer_unordered(PARALLEL_WRITES)
        .collect()
        .await;
        let mut first_err = None;
        for (r, cid, n) in results {
            match r {
                Ok(_) => written.push((cid, n)),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        // Also on failure: what was staged must be deleted with the rest.
        self.staged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(written);
        first_err.map_or(Ok(()), Err)
    }

    async fn sent(&self, messages: &[OutgoingMessage]) -> Result<(), BackendError> {
        let keys: Vec<String> = messages
            .iter()
            .map(|m| self.head_pk(&m.content_id))
            .collect();
        let updates = keys.into_iter().map(|key| async move {
            let target = self.target(&key);
            idempotent(|| {
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", AttributeValue::S(key.clone()))
                    .update_expression("SET sent = :t")
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_values(":t", AttributeValue::Bool(true))
                    .send()
                    .map(|r| r.map_err(|e| backend_error("UpdateItem", &target, &e)))
            })
            .await
        });
        let results: Vec<_> = futures::stream::iter(updates)
            .buffer_unordered(PARALLEL_WRITES)
            .collect()
            .await;
        for r in results {
            r?;
        }
        Ok(())
    }
}
