//! The work queue on Amazon SQS, as a core [`WorkQueue`].
//!
//! Sending is where SQS's limits bite: at most 10 entries and 1 MiB per
//! SendMessageBatch, and a batch can half-succeed. [`SqsQueue::send`] splits
//! by both limits, then resends exactly the entries listed in `Failed` that
//! were not the sender's fault, with jittered backoff and a bounded number of
//! attempts. Receive, ack and release exist for tests and tooling; in Lambda
//! the event source mapping does that work. [`SqsDeadLetters`] puts the
//! records a consumer could not score on the dead-letter queue.
//!
//! So do SQS's characters: a body or attribute value holding one outside
//! `#x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF` fails the whole
//! call, and moto never refuses one. Dead-letter attributes carry record ids
//! and reasons as they came, so they are escaped as bodies are (`\uXXXX`),
//! then bounded; and every body and value is checked before it is sent
//! ([`sqs_refused_char`]), so a miss is a permanent error naming the message
//! instead of a call that fails on AWS alone.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use etl_core::message::{escape_sqs_refused, is_sqs_safe, SQS_MAX_MESSAGE_BYTES};
use etl_core::RetryPolicy;
use etl_core::{
    BackendError, DeadLetterMessage, DeadLetterSink, Delivery, OutgoingMessage, SendReport,
    WorkQueue,
};
use tracing::warn;

use crate::error::backend_error;

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
        for m in messages {
            let what = format!("the body of message {}", m.content_id);
            check_sqs_chars("SendMessageBatch", &self.queue_url, &what, &m.body)?;
        }
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

/// Message attribute: why the records were refused, one line of at most
/// [`MAX_REASON_BYTES`]; a character SQS refuses is written as `\uXXXX`.
pub const ATTR_REASON: &str = "etl-reason";
/// Message attribute: `{"record id": "reason", …}` as JSON of at most
/// [`MAX_REASONS_BYTES`], escaped as bodies are, so that its keys decode to
/// the exact record ids; entries that do not fit are summarised as
/// `"…": "N more"`.
pub const ATTR_REASONS: &str = "etl-reasons";
/// Message attribute: the queue message id the records came from (left out
/// when there is none: SQS refuses an empty String value).
pub const ATTR_SOURCE_MESSAGE_ID: &str = "etl-source-message-id";
/// Message attribute: the content id of the message the records came from
/// (left out when there is none).
pub const ATTR_SOURCE_CONTENT_ID: &str = "etl-source-content-id";
/// Message attribute (Number): how many records the dead letter holds.
pub const ATTR_REFUSED: &str = "etl-refused-records";

/// Cap on the `etl-reason` attribute, escapes included.
pub const MAX_REASON_BYTES: usize = 2_048;
/// Cap on the `etl-reasons` attribute, escapes included.
pub const MAX_REASONS_BYTES: usize = 8 * MAX_REASON_BYTES;
/// Cap on each id attribute, escapes included. SQS message ids are 36
/// characters and content ids 64, so only a foreign id is ever cut.
pub const MAX_ID_ATTR_BYTES: usize = 512;
/// Cap on one record's reason inside `etl-reasons`, escapes included.
const MAX_EACH_REASON_BYTES: usize = 512;
/// Below this much room `etl-reasons` is left out: `{"…":"N more"}` fits.
const MIN_REASONS_BYTES: usize = 64;

/// The first character of `s` that SQS refuses in a message body or an
/// attribute value, with its byte offset.
///
/// SQS accepts only `#x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF`
/// ([`is_sqs_safe`]) and fails the whole call on anything else. moto accepts
/// every character, so no emulator test would see it: the adapters check
/// every body and attribute value with this before they send.
pub fn sqs_refused_char(s: &str) -> Option<(usize, char)> {
    if is_sqs_safe(s) {
        return None;
    }
    s.char_indices()
        .find(|&(_, c)| !is_sqs_safe(c.encode_utf8(&mut [0; 4])))
}

/// A permanent error naming `what` and the character, when `value` holds one
/// SQS refuses: sending it again could never succeed.
fn check_sqs_chars(
    operation: &str,
    target: &str,
    what: &str,
    value: &str,
) -> Result<(), BackendError> {
    match sqs_refused_char(value) {
        None => Ok(()),
        Some((at, c)) => Err(BackendError::permanent(
            operation,
            target,
            format!(
                "{what} holds U+{:04X} at byte {at}, a character SQS refuses",
                u32::from(c)
            ),
        )),
    }
}

/// `value` as a String attribute of at most `max` bytes: each character SQS
/// refuses becomes the `\uXXXX` escape a body would carry for it, everything
/// else stays as it is (a reason keeps its quotes). The cut comes after the
/// escaping and falls between characters and escapes, never inside one.
fn attr_text(value: &str, max: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max));
    for c in value.chars() {
        let mut utf8 = [0; 4];
        let raw: &str = c.encode_utf8(&mut utf8);
        let accepted = is_sqs_safe(raw);
        // Every character SQS refuses is below U+10000: four hex digits.
        let len = if accepted { raw.len() } else { 6 };
        if out.len() + len > max {
            break;
        }
        if accepted {
            out.push(c);
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        }
    }
    out
}

/// `s` as a JSON string literal (quotes included) of at most `max` bytes,
/// escaped exactly as message bodies are: serde_json's escaping, then
/// [`escape_sqs_refused`]. A longer one loses its end, cut between
/// characters and escapes, never inside one. (`max` ≥ 2.)
fn json_str(s: &str, max: usize) -> String {
    let mut buf = Vec::with_capacity(s.len() + 2);
    // Serialising a `&str` cannot fail.
    serde_json::to_writer(&mut buf, s).expect("a string serialises");
    escape_sqs_refused(&mut buf, 0);
    let json = String::from_utf8(buf).expect("serde_json writes UTF-8");
    if json.len() <= max {
        return json;
    }
    let inner = &json[1..json.len() - 1];
    let room = max.saturating_sub(2);
    let mut end = 0;
    while let Some(c) = inner[end..].chars().next() {
        // In serde_json's output a backslash always starts an escape:
        // `\uXXXX`, or a backslash and one more character.
        let step = match (c, inner.as_bytes().get(end + 1)) {
            ('\\', Some(b'u')) => 6,
            ('\\', _) => 2,
            _ => c.len_utf8(),
        };
        if end + step > room {
            break;
        }
        end += step;
    }
    format!("\"{}\"", &inner[..end])
}

/// The `etl-reasons` JSON, in the letter's order, at most `max` bytes (for
/// `max` ≥ [`MIN_REASONS_BYTES`]). Each reason is cut to
/// [`MAX_EACH_REASON_BYTES`]; ids are never cut, so each key decodes to the
/// exact record id, and the entries that do not fit are counted in
/// `"…":"N more"`, for which room is kept until the last entry.
fn reasons_json(reasons: &[(String, String)], max: usize) -> String {
    let more = |n: usize| format!("\"…\":\"{n} more\"");
    let mut out = String::from("{");
    for (n, (id, why)) in reasons.iter().enumerate() {
        let entry = format!(
            "{}:{}",
            json_str(id, usize::MAX),
            json_str(why, MAX_EACH_REASON_BYTES + 2)
        );
        let sep = if n == 0 { "" } else { "," };
        let after = reasons.len() - n - 1;
        let keep = if after == 0 { 0 } else { 1 + more(after).len() };
        out.push_str(sep);
        if out.len() + entry.len() + keep + 1 > max {
            out.push_str(&more(reasons.len() - n));
            break;
        }
        out.push_str(&entry);
    }
    out.push('}');
    out
}

/// One message attribute as sent: name, data type, value.
type Attr = (&'static str, &'static str, String);

/// Attributes within what SQS leaves of a message for them: its 1 MiB limit
/// counts the body and every attribute's name, type and value.
struct Attrs {
    room: usize,
    list: Vec<Attr>,
}

impl Attrs {
    /// Add the value `value` makes for the room left, unless it is empty (SQS
    /// refuses an empty value) or does not fit.
    fn add(&mut self, name: &'static str, kind: &'static str, value: impl FnOnce(usize) -> String) {
        let overhead = name.len() + kind.len();
        let room = self.room.saturating_sub(overhead);
        let value = value(room);
        if value.is_empty() || value.len() > room {
            return;
        }
        self.room -= overhead + value.len();
        self.list.push((name, kind, value));
    }
}

/// A dead letter's attributes, every value escaped for SQS and bounded so
/// that the message stays within SQS's 1 MiB with its body. When the body
/// leaves too little room, the summary goes first, then the reasons: the ids
/// of where the records came from are the last to go.
fn dead_letter_attributes(letter: &DeadLetterMessage) -> Vec<Attr> {
    let mut attrs = Attrs {
        room: SQS_MAX_MESSAGE_BYTES.saturating_sub(letter.message.body.len()),
        list: Vec::with_capacity(5),
    };
    attrs.add(ATTR_REFUSED, "Number", |_| letter.reasons.len().to_string());
    attrs.add(ATTR_SOURCE_MESSAGE_ID, "String", |room| {
        attr_text(&letter.source_message_id, room.min(MAX_ID_ATTR_BYTES))
    });
    attrs.add(ATTR_SOURCE_CONTENT_ID, "String", |room| {
        attr_text(&letter.source_content_id, room.min(MAX_ID_ATTR_BYTES))
    });
    attrs.add(ATTR_REASONS, "String", |room| {
        let room = room.min(MAX_REASONS_BYTES);
        if room < MIN_REASONS_BYTES {
            String::new()
        } else {
            reasons_json(&letter.reasons, room)
        }
    });
    attrs.add(ATTR_REASON, "String", |room| {
        attr_text(&letter.summary(), room.min(MAX_REASON_BYTES))
    });
    attrs.list
}

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

#[async_trait]
impl DeadLetterSink for SqsDeadLetters {
    async fn put(&self, letter: &DeadLetterMessage) -> Result<(), BackendError> {
        let target = format!(
            "{} (dead letter of message {}, content id {})",
            self.queue_url, letter.source_message_id, letter.message.content_id
        );
        check_sqs_chars("SendMessage", &target, "the body", &letter.message.body)?;
        let mut req = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(&letter.message.body);
        for (name, kind, value) in dead_letter_attributes(letter) {
            check_sqs_chars("SendMessage", &target, &format!("attribute {name}"), &value)?;
            let value = MessageAttributeValue::builder()
                .data_type(kind)
                .string_value(value)
                .build()
                .map_err(|e| {
                    BackendError::permanent(
                        "SendMessage",
                        &target,
                        format!("attribute {name}: {e}"),
                    )
                })?;
            req = req.message_attributes(name, value);
        }
        req.send()
            .await
            .map_err(|e| backend_error("SendMessage", &target, &e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use etl_core::{AnalyzeError, Retry, SourceRecord};

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

    /// SQS's rule for bodies and attribute values, written out apart from
    /// `is_sqs_safe` so that the tests do not check the code with itself.
    fn sqs_accepts(s: &str) -> bool {
        s.chars().all(|c| {
            matches!(
                u32::from(c),
                0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF
            )
        })
    }

    /// Ids SQS would refuse raw, the edges of what it accepts, a long
    /// path-like one and emoji.
    fn hostile_ids() -> Vec<String> {
        vec![
            "a\u{FFFE}b".into(),
            "c\u{1}d".into(),
            "\u{D7FF}\u{E000}".into(),
            "\u{FFFF}".into(),
            "tab\there \u{1F} \u{B}".into(),
            "../a b/".repeat(30).chars().take(200).collect(),
            "😀 👩\u{200D}💻".into(),
        ]
    }

    fn letter(ids: &[String], message_id: &str, content_id: &str) -> DeadLetterMessage {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
        let refused = ids
            .iter()
            .map(|id| {
                let record = SourceRecord {
                    id: id.clone(),
                    text: format!("text of {id}"),
                    created_at: t,
                    updated_at: t,
                    attributes: Default::default(),
                };
                let why = format!("bad \u{0} byte \u{FFFF} in {id}");
                (record, AnalyzeError::permanent("InvalidRequest", why))
            })
            .collect();
        DeadLetterMessage::new(message_id, content_id, 1, refused)
    }

    fn attr<'a>(attrs: &'a [Attr], name: &str) -> Option<&'a str> {
        attrs
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, _, v)| v.as_str())
    }

    #[test]
    fn the_validator_refuses_what_sqs_refuses_and_accepts_its_edges() {
        assert_eq!(sqs_refused_char("ok \u{FFFE}"), Some((3, '\u{FFFE}')));
        assert_eq!(sqs_refused_char("é\u{1}"), Some((2, '\u{1}')));
        for c in [
            '\u{0}', '\u{1}', '\u{8}', '\u{B}', '\u{C}', '\u{E}', '\u{1F}', '\u{FFFE}', '\u{FFFF}',
        ] {
            let s = format!("x{c}");
            assert_eq!(sqs_refused_char(&s), Some((1, c)), "U+{:04X}", u32::from(c));
            assert!(!sqs_accepts(&s), "U+{:04X}", u32::from(c));
        }
        let edges = "\t\n\r \u{7F}\u{9F}\u{D7FF}\u{E000}\u{FFFD}\u{10000}\u{1FFFE}\u{10FFFF}";
        assert_eq!(sqs_refused_char(edges), None);
        assert!(sqs_accepts(edges));
        let err =
            check_sqs_chars("SendMessage", "q", "attribute etl-reason", "a\u{FFFE}").unwrap_err();
        assert_eq!(err.retry, Retry::Permanent);
        assert!(
            err.to_string()
                .contains("attribute etl-reason holds U+FFFE at byte 1"),
            "{err}"
        );
    }

    #[test]
    fn dead_letter_attributes_hold_only_what_sqs_accepts_and_decode_to_the_ids() {
        let ids = hostile_ids();
        let dl = letter(&ids, "m\u{FFFE}\u{1}", "");
        assert!(sqs_accepts(&dl.message.body));
        let attrs = dead_letter_attributes(&dl);
        for (name, _, value) in &attrs {
            assert!(!value.is_empty(), "{name} is empty");
            assert!(sqs_accepts(value), "{name}: {value:?}");
            assert_eq!(sqs_refused_char(value), None, "{name}");
        }
        assert_eq!(
            attr(&attrs, ATTR_SOURCE_CONTENT_ID),
            None,
            "an empty id is left out, never sent empty"
        );
        assert_eq!(
            attr(&attrs, ATTR_SOURCE_MESSAGE_ID),
            Some("m\\ufffe\\u0001")
        );
        assert_eq!(attr(&attrs, ATTR_REFUSED), Some("7"));
        let reason = attr(&attrs, ATTR_REASON).unwrap();
        assert!(reason.starts_with("7 records refused: "), "{reason}");
        assert!(
            reason.contains("a\\ufffeb (InvalidRequest: bad \\u0000 byte \\uffff in a\\ufffeb)"),
            "{reason}"
        );
        let reasons: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(attr(&attrs, ATTR_REASONS).unwrap()).unwrap();
        assert_eq!(reasons.len(), ids.len());
        for id in &ids {
            let want = format!("InvalidRequest: bad \u{0} byte \u{FFFF} in {id}");
            assert_eq!(
                reasons.get(id).and_then(|v| v.as_str()),
                Some(want.as_str()),
                "{id:?}"
            );
        }
    }

    #[test]
    fn escaping_comes_before_the_cut_which_never_splits_an_escape() {
        // Pieces of 2, 6, 1 and 4 bytes once escaped.
        let prefixes = ["", "é", "é\\ufffe", "é\\ufffex", "é\\ufffex😀"];
        for max in 0..=14 {
            let cut = attr_text("é\u{FFFE}x😀", max);
            let want = prefixes.iter().rev().find(|p| p.len() <= max).unwrap();
            assert_eq!(cut, *want, "max {max}");
        }
        let controls = "\u{1}".repeat(1_000);
        assert_eq!(attr_text(&controls, MAX_REASON_BYTES).len(), 2_046);

        let s = "é\u{FFFE}\n\u{1}\"\\x😀\u{FFFF}";
        let full = json_str(s, usize::MAX);
        assert_eq!(serde_json::from_str::<String>(&full).unwrap(), s);
        assert!(sqs_accepts(&full), "{full}");
        for max in 2..=full.len() {
            let cut = json_str(s, max);
            assert!(cut.len() <= max && sqs_accepts(&cut), "max {max}: {cut}");
            let back: String = serde_json::from_str(&cut)
                .unwrap_or_else(|e| panic!("max {max}: {cut} is cut inside an escape: {e}"));
            assert!(s.starts_with(&back), "max {max}: {back:?}");
        }
        assert_eq!(json_str(&controls, 2_048).len(), 2 + 2_046);
    }

    #[test]
    fn reason_attributes_are_bounded_after_escaping() {
        let many: Vec<(String, String)> = (0..100)
            .map(|i| (format!("id-{i}"), "é".repeat(600)))
            .collect();
        let json = reasons_json(&many, 4_096);
        assert!(json.len() <= 4_096, "{}", json.len());
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let more = v["…"].as_str().unwrap();
        assert_eq!(
            v.as_object().unwrap().len() - 1
                + more.trim_end_matches(" more").parse::<usize>().unwrap(),
            100
        );
        // Escapes take six bytes for one: the bound holds for what is sent.
        let hostile: Vec<(String, String)> = (0..100)
            .map(|i| (format!("{i}{}", "\u{1}".repeat(50)), "\u{FFFE}".repeat(200)))
            .collect();
        for max in [MIN_REASONS_BYTES, 500, 4_096, MAX_REASONS_BYTES] {
            let json = reasons_json(&hostile, max);
            assert!(
                json.len() <= max && sqs_accepts(&json),
                "{max}: {}",
                json.len()
            );
            let v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&json).unwrap();
            let more = v.get("…").map_or(0, |m| {
                let m = m.as_str().unwrap();
                m.trim_end_matches(" more").parse::<usize>().unwrap()
            });
            let kept: Vec<&String> = v.keys().filter(|k| *k != "…").collect();
            assert_eq!(kept.len() + more, 100, "{max}");
            for k in kept {
                assert!(hostile.iter().any(|(id, _)| id == k), "{k:?} is an id");
            }
        }
    }

    #[test]
    fn a_dead_letter_stays_within_the_message_size_whatever_its_body() {
        let ids: Vec<String> = (0..500).map(|i| format!("{i}\u{1}")).collect();
        let mut dl = letter(&ids, "m-1", &"c".repeat(64));
        dl.message.body = "x".repeat(1_000);
        let attrs = dead_letter_attributes(&dl);
        assert_eq!(attrs.len(), 5, "room for everything");
        assert!(attr(&attrs, ATTR_REASON).unwrap().len() <= MAX_REASON_BYTES);
        assert!(attr(&attrs, ATTR_REASONS).unwrap().len() <= MAX_REASONS_BYTES);
        for body_len in [
            1_000_000,
            SQS_MAX_MESSAGE_BYTES - 5_000,
            SQS_MAX_MESSAGE_BYTES - 200,
            SQS_MAX_MESSAGE_BYTES - 30,
            SQS_MAX_MESSAGE_BYTES,
        ] {
            dl.message.body = "x".repeat(body_len);
            let attrs = dead_letter_attributes(&dl);
            let size = body_len
                + attrs
                    .iter()
                    .map(|(n, k, v)| n.len() + k.len() + v.len())
                    .sum::<usize>();
            assert!(size <= SQS_MAX_MESSAGE_BYTES, "body {body_len}: {size}");
            for (name, _, value) in &attrs {
                assert!(!value.is_empty() && sqs_accepts(value), "{name}");
            }
        }
        dl.message.body = "x".repeat(SQS_MAX_MESSAGE_BYTES - 30);
        let attrs = dead_letter_attributes(&dl);
        assert_eq!(attr(&attrs, ATTR_REFUSED), Some("500"), "the count fits");
        assert_eq!(attrs.len(), 1, "{attrs:?}");
        dl.message.body = "x".repeat(SQS_MAX_MESSAGE_BYTES);
        assert!(dead_letter_attributes(&dl).is_empty());
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
