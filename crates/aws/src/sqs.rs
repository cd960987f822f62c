//! The work queue on Amazon SQS, as a core [`WorkQueue`].
//!
//! Sending is where SQS's limits bite: at most 10 entries and 1 MiB per
//! SendMessageBatch, and a batch can half-succeed. [`SqsQueue::send`] splits
//! by both limits, then resends exactly the entries listed in `Failed` that
//! were not the sender's fault, with jittered backoff and a bounded number of
//! attempts. Receive, ack and release exist for tests and tooling; in Lambda
//! the event source mapping does that work. [`SqsDeadLetters`] puts the
//! records a consumer could not score on the dead-letter queue.

use std::collections::HashSet;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use etl_core::message::SQS_MAX_MESSAGE_BYTES;
use etl_core::RetryPolicy;
use etl_core::{
    BackendError, DeadLetterMessage, DeadLetterSink, Delivery, OutgoingMessage, SendReport,
    WorkQueue,
};
use tracing::warn;

use crate::error::backend_error;
use etl_core::record::truncate_utf8;

/// SendMessageBatch's entry limit.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// SendMessageBatch's payload limit (sum of the bodies).
pub const MAX_BATCH_BYTES: usize = SQS_MAX_MESSAGE_BYTES;

/// An SQS queue. See the module docs.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    retry: RetryPolicy,
}

impl SqsQueue {
    /// 5 attempts per batch, 100 ms–5 s backoff.
    pub const DEFAULT_RETRY: RetryPolicy =
        RetryPolicy::new(5, Duration::from_millis(100), Duration::from_secs(5));

    /// The queue at `queue_url`, with [`Self::DEFAULT_RETRY`].
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            retry: Self::DEFAULT_RETRY,
        }
    }

    /// Change the retry policy for entries that failed transiently.
    pub fn with_retry(self, max_attempts: u32, base_delay: Duration, max_delay: Duration) -> Self {
        self.with_retry_policy(RetryPolicy::new(max_attempts, base_delay, max_delay))
    }

    /// Change the retry policy for entries that failed transiently.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The queue URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Send one batch (≤ 10 entries, ≤ 1 MiB); returns the calls made.
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
        offset: usize,
    ) -> Result<usize, BackendError> {
        let mut pending: Vec<(String, &OutgoingMessage)> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| (entry_id(offset + i, &m.content_id), m))
            .collect();
        let mut calls = 0;
        for attempt in 0..self.retry.max_attempts {
            let entries = pending
                .iter()
                .map(|(id, m)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(id)
                        .message_body(&m.body)
                        .build()
                        .map_err(|e| {
                            BackendError::permanent("SendMessageBatch", &self.queue_url, e)
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            calls += 1;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| backend_error("SendMessageBatch", &self.queue_url, &e))?;
            if out.failed.is_empty() {
                return Ok(calls);
            }
            let mut retry = HashSet::new();
            for f in &out.failed {
                let content_id = pending
                    .iter()
                    .find(|(id, _)| *id == f.id)
                    .map_or("?", |(_, m)| m.content_id.as_str());
                if f.sender_fault {
                    return Err(BackendError::permanent(
                        "SendMessageBatch",
                        format!(
                            "{} entry {} (content id {content_id})",
                            self.queue_url, f.id
                        ),
                        format!("{}: {}", f.code, f.message.as_deref().unwrap_or("")),
                    ));
                }
                warn!(message = "SQS entry failed, will retry.", queue_url = %self.queue_url, entry_id = %f.id, code = %f.code, attempt);
                retry.insert(f.id.clone());
            }
            pending.retain(|(id, _)| retry.contains(id));
            if !self.retry.is_last(attempt) {
                tokio::time::sleep(self.retry.delay(attempt, jitter_seed())).await;
            }
        }
        let ids: Vec<&str> = pending.iter().map(|(id, _)| id.as_str()).collect();
        Err(BackendError::retryable(
            "SendMessageBatch",
            &self.queue_url,
            format!(
                "{} entries still failing after {} attempts: {}",
                ids.len(),
                self.retry.max_attempts,
                ids.join(", ")
            ),
        ))
    }
}

fn jitter_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A batch entry id from a message's position and content id: SQS allows up
/// to 80 characters of `[A-Za-z0-9_-]`, unique within one call. The position
/// keeps two messages with the same content distinct.
pub fn entry_id(index: usize, content_id: &str) -> String {
    let prefix = format!("{index}-");
    let room = 80 - prefix.len();
    let tail: String = content_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(room)
        .collect();
    prefix + &tail
}

/// Split messages into batches of at most 10 entries and 1 MiB of bodies.
/// A single body over the limit is an error naming its content id.
pub fn split_batches(messages: &[OutgoingMessage]) -> Result<Vec<Range<usize>>, String> {
    let sizes: Vec<usize> = messages.iter().map(|m| m.body.len()).collect();
    split_sizes(&sizes).map_err(|i| {
        format!(
            "message {} is {} bytes, over SQS's limit of {MAX_BATCH_BYTES}",
            messages[i].content_id, sizes[i]
        )
    })
}

/// Split entries of these sizes into SendMessageBatch calls: at most 10
/// entries and 1 MiB each. `Err(i)`: entry `i` alone is over the limit.
pub fn split_sizes(sizes: &[usize]) -> Result<Vec<Range<usize>>, usize> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        if size > MAX_BATCH_BYTES {
            return Err(i);
        }
        if i > start && (i - start == MAX_BATCH_ENTRIES || bytes + size > MAX_BATCH_BYTES) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    Ok(out)
}

#[async_trait]
impl WorkQueue for SqsQueue {
    async fn send(&self, messages: &[OutgoingMessage]) -> Result<SendReport, BackendError> {
        let batches = split_batches(messages)
            .map_err(|e| BackendError::permanent("SendMessageBatch", &self.queue_url, e))?;
        let mut report = SendReport::default();
        for range in batches {
            let n = range.len();
            report.calls += self
                .send_batch(&messages[range.clone()], range.start)
                .await?;
            report.messages += n;
        }
        Ok(report)
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BackendError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| backend_error("ReceiveMessage", &self.queue_url, &e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| Delivery {
                receive_count: m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
                message_id: m.message_id.unwrap_or_default(),
                receipt: m.receipt_handle.unwrap_or_default(),
                body: m.body.unwrap_or_default().into(),
            })
            .collect())
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), BackendError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(&delivery.receipt)
            .send()
            .await
            .map_err(|e| {
                backend_error(
                    "DeleteMessage",
                    format!("{} message {}", self.queue_url, delivery.message_id),
                    &e,
                )
            })?;
        Ok(())
    }

    async fn release(&self, delivery: &Delivery, reason: &str) -> Result<(), BackendError> {
        warn!(message = "Releasing message for redelivery.", queue_url = %self.queue_url, message_id = %delivery.message_id, reason);
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(&delivery.receipt)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| {
                backend_error(
                    "ChangeMessageVisibility",
                    format!("{} message {}", self.queue_url, delivery.message_id),
                    &e,
                )
            })?;
        Ok(())
    }
}

/// Message attribute: why the records were refused (one line, at most
/// [`MAX_REASON_BYTES`]).
pub const ATTR_REASON: &str = "etl-reason";
/// Message attribute: `{"record id": "reason", …}` as JSON (entries beyond
/// [`MAX_REASON_BYTES`] × 8 are summarised as `"…": "N more"`).
pub const ATTR_REASONS: &str = "etl-reasons";
/// Message attribute: the queue message id the records came from.
pub const ATTR_SOURCE_MESSAGE_ID: &str = "etl-source-message-id";
/// Message attribute: the content id of the message the records came from.
pub const ATTR_SOURCE_CONTENT_ID: &str = "etl-source-content-id";
/// Message attribute (Number): how many records the dead letter holds.
pub const ATTR_REFUSED: &str = "etl-refused-records";

/// Cap on the `etl-reason` attribute.
pub const MAX_REASON_BYTES: usize = 2_048;

/// The dead-letter queue as a core [`DeadLetterSink`]: one SendMessage per
/// dead letter, whose body is the v1 message of only the refused records
/// (redrive it to the work queue as it is, once the cause is fixed) and
/// whose attributes carry the reasons and where the records came from.
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
}

impl SqsDeadLetters {
    /// The dead-letter queue at `queue_url`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

fn string_attr(value: impl Into<String>) -> Result<MessageAttributeValue, BackendError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| BackendError::permanent("SendMessage", "message attribute", e))
}

/// The `etl-reasons` JSON, bounded in size.
fn reasons_json(reasons: &[(String, String)], max: usize) -> String {
    let mut map = serde_json::Map::new();
    let mut used = 2;
    for (n, (id, why)) in reasons.iter().enumerate() {
        let why = truncate_utf8(why, 512);
        let cost = id.len() + why.len() + 8;
        if used + cost > max {
            map.insert("…".into(), format!("{} more", reasons.len() - n).into());
            break;
        }
        used += cost;
        map.insert(id.clone(), why.into());
    }
    serde_json::Value::Object(map).to_string()
}

#[async_trait]
impl DeadLetterSink for SqsDeadLetters {
    async fn put(&self, letter: &DeadLetterMessage) -> Result<(), BackendError> {
        let summary = letter.summary();
        let attrs = [
            (
                ATTR_REASON,
                string_attr(truncate_utf8(&summary, MAX_REASON_BYTES))?,
            ),
            (
                ATTR_REASONS,
                string_attr(reasons_json(&letter.reasons, MAX_REASON_BYTES * 8))?,
            ),
            (
                ATTR_SOURCE_MESSAGE_ID,
                string_attr(&letter.source_message_id)?,
            ),
            (
                ATTR_SOURCE_CONTENT_ID,
                string_attr(&letter.source_content_id)?,
            ),
            (
                ATTR_REFUSED,
                MessageAttributeValue::builder()
                    .data_type("Number")
                    .string_value(letter.reasons.len().to_string())
                    .build()
                    .map_err(|e| BackendError::permanent("SendMessage", &self.queue_url, e))?,
            ),
        ];
        let mut req = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(&letter.message.body);
        for (name, value) in attrs {
            req = req.message_attributes(name, value);
        }
        req.send().await.map_err(|e| {
            backend_error(
                "SendMessage",
                format!(
                    "{} (dead letter of message {}, content id {})",
                    self.queue_url, letter.source_message_id, letter.message.content_id
                ),
                &e,
            )
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn msg(id: &str, size: usize) -> OutgoingMessage {
        OutgoingMessage {
            content_id: id.into(),
            body: "x".repeat(size),
            record_count: 1,
            max_updated_at: Utc::now(),
        }
    }

    #[test]
    fn entry_ids_are_short_unique_and_safe() {
        let cid = "a".repeat(64);
        let id = entry_id(9, &cid);
        assert_eq!(id.len(), 66);
        assert_ne!(entry_id(1, &cid), entry_id(2, &cid));
        let long = entry_id(123, &"é/x".repeat(60));
        assert!(long.len() <= 80);
        assert!(
            long.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{long}"
        );
    }

    #[test]
    fn reason_attributes_are_bounded_and_cut_on_char_boundaries() {
        assert_eq!(truncate_utf8("héllo", 2), "h");
        let many: Vec<(String, String)> = (0..100)
            .map(|i| (format!("id-{i}"), "é".repeat(600)))
            .collect();
        let json = reasons_json(&many, 4_096);
        assert!(json.len() <= 4_096 + 64, "{}", json.len());
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let more = v["…"].as_str().unwrap();
        assert_eq!(
            v.as_object().unwrap().len() - 1
                + more.trim_end_matches(" more").parse::<usize>().unwrap(),
            100
        );
    }

    #[test]
    fn batches_respect_count_and_size() {
        let small: Vec<_> = (0..23).map(|i| msg(&i.to_string(), 10)).collect();
        assert_eq!(split_batches(&small).unwrap(), vec![0..10, 10..20, 20..23]);
        // 400 KiB each: only two fit under 1 MiB.
        let big: Vec<_> = (0..5).map(|i| msg(&i.to_string(), 400 * 1024)).collect();
        assert_eq!(split_batches(&big).unwrap(), vec![0..2, 2..4, 4..5]);
        // At the default budget a full message goes alone; smaller ones share.
        let full = etl_core::message::DEFAULT_MESSAGE_BUDGET;
        let mixed = vec![
            msg("a", full),
            msg("b", full),
            msg("c", 20_000),
            msg("d", 20_000),
        ];
        assert_eq!(split_batches(&mixed).unwrap(), vec![0..1, 1..4]);
        let exact = vec![msg("a", MAX_BATCH_BYTES), msg("b", 1)];
        assert_eq!(split_batches(&exact).unwrap(), vec![0..1, 1..2]);
        let err = split_batches(&[msg("huge", MAX_BATCH_BYTES + 1)]).unwrap_err();
        assert!(err.contains("huge"), "{err}");
        assert!(split_batches(&[]).unwrap().is_empty());
    }
}
