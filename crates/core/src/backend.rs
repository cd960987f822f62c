//! The small traits every backend implements (local files and AWS alike).
//!
//! The pipeline steps in [`crate::pipeline`] are written against these, so
//! `etl run` and the Lambda functions execute the same code.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use chrono::NaiveDate;

use crate::error::BackendError;
use crate::message::OutgoingMessage;
use crate::record::SourceRecord;

/// An input item that could not become a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Where it was: `line 12`, `item 3 of page 7`, …
    pub location: String,
    /// The record id, when readable.
    pub id: Option<String>,
    /// The offending field, when known.
    pub field: Option<String>,
    /// Why it was rejected.
    pub reason: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.location)?;
        if let Some(id) = &self.id {
            write!(f, " (id {id})")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// One item from a source: a valid record or a rejection.
#[derive(Debug, Clone)]
pub enum SourceItem {
    /// A valid record.
    Record(SourceRecord),
    /// Input that could not be parsed; the run goes on.
    Rejected(Rejection),
}

/// A stream of input records, read in chunks (a file's lines, a Scan page).
#[async_trait]
pub trait RecordSource: Send {
    /// The next chunk, or `None` at the end. An `Err` is fatal (unreadable input).
    async fn next_chunk(&mut self) -> Result<Option<Vec<SourceItem>>, BackendError>;
}

/// A message received from a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The queue's message id.
    pub message_id: String,
    /// Handle to acknowledge or release this receipt.
    pub receipt: String,
    /// The body, shared: a queue that keeps it for redelivery hands out
    /// the same bytes instead of a copy per receive.
    pub body: Arc<str>,
    /// How many times it has been received (1 on first delivery).
    pub receive_count: u32,
}

/// A queue with SQS semantics: at-least-once delivery, per-message
/// acknowledgement, redelivery of what was not acknowledged, dead letters
/// after a maximum receive count (configured on the queue).
#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Send messages. Implementations batch as the service allows and retry
    /// entries that failed transiently; an `Err` means some were not sent.
    async fn send(&self, messages: &[OutgoingMessage]) -> Result<SendReport, BackendError>;
    /// Receive up to `max` messages, waiting up to `wait` for the first.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BackendError>;
    /// Acknowledge (delete) a processed message.
    async fn ack(&self, delivery: &Delivery) -> Result<(), BackendError>;
    /// Give a message back for redelivery after a failure.
    async fn release(&self, delivery: &Delivery, reason: &str) -> Result<(), BackendError>;
}

/// Where packed messages are kept, durably, between being packed and being
/// known to be sent: the unit of exactly-once on the producer side.
///
/// A version is sent in exactly one message body, ever. Packing depends on
/// the order records arrive in and on what else is in the source, both of
/// which change between a failed attempt and its retry; so a message is
/// staged here *before* it is sent, and an attempt that follows a failure
/// first re-sends what is staged, verbatim (same body, same content id),
/// and treats the versions inside as already sent instead of packing them
/// again. Staged messages are dropped only once the versions they hold are
/// in the durable record of what was sent (the ledger or the lake's state).
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Make `messages` durable. Returns only once a crash can no longer lose
    /// them; an `Err` means they must not be sent.
    async fn stage(&self, messages: &[OutgoingMessage]) -> Result<(), BackendError>;
    /// The queue accepted `messages`: a retry need not send them again (it
    /// still must not pack their versions again). Failing to record this is
    /// not fatal: the retry then re-sends the same bodies, which the
    /// consumer recognises by content id.
    async fn sent(&self, messages: &[OutgoingMessage]) -> Result<(), BackendError>;
}

/// No outbox: for queues whose messages do not outlive the process that
/// packed them (tests of the pipeline steps, a queue rebuilt on every run).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOutbox;

#[async_trait]
impl Outbox for NoOutbox {
    async fn stage(&self, _messages: &[OutgoingMessage]) -> Result<(), BackendError> {
        Ok(())
    }

    async fn sent(&self, _messages: &[OutgoingMessage]) -> Result<(), BackendError> {
        Ok(())
    }
}

/// What a send did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Messages accepted by the queue.
    pub messages: usize,
    /// API calls made (batch sends plus retries).
    pub calls: usize,
}

/// Where Parquet objects go: a bucket prefix or a directory. Keys are relative
/// to the table root (`dt=…/part-….parquet`).
#[async_trait]
pub trait ObjectSink: Send + Sync {
    /// Write (or replace) an object atomically.
    async fn put(&self, key: &str, body: Bytes) -> Result<(), BackendError>;
    /// Human-readable location of a key, for logs and errors.
    fn location(&self, key: &str) -> String;
}

/// One Parquet object a message wrote, as the table commit sees it.
#[derive(Debug, Clone)]
pub struct WrittenFile {
    /// Key relative to the table root (`dt=…/part-….parquet`).
    pub key: String,
    /// Its partition.
    pub dt: NaiveDate,
    /// The object's bytes (a cheap clone of what the sink stored): a table
    /// format reads row counts and column statistics from its footer.
    pub body: Bytes,
}

/// What one message added to the lake, made visible as one unit.
#[derive(Debug, Clone, Copy)]
pub struct TableCommit<'a> {
    /// The message's content id: a redelivery of the same message carries
    /// the same one, so a table format can recognise it as committed.
    pub content_id: &'a str,
    /// The objects, already written.
    pub files: &'a [WrittenFile],
}

impl TableCommit<'_> {
    /// The partitions of the files, each once, in order.
    pub fn partitions(&self) -> Vec<NaiveDate> {
        let mut dts: Vec<NaiveDate> = self.files.iter().map(|f| f.dt).collect();
        dts.sort_unstable();
        dts.dedup();
        dts
    }
}

/// The table catalog: schema, partitions, and what makes written objects
/// part of the table.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// Create the table (and database) with the contract schema when missing.
    async fn ensure_table(&self) -> Result<(), BackendError>;
    /// Register partitions; existing ones are not an error.
    async fn add_partitions(&self, dts: &[NaiveDate]) -> Result<(), BackendError>;
    /// Make one message's objects part of the table. Idempotent per content
    /// id. For a Hive layout an object is visible once written, so this only
    /// registers its partitions; a table format (Delta) commits the files
    /// here, atomically, once per content id.
    async fn commit(&self, commit: &TableCommit<'_>) -> Result<(), BackendError> {
        self.add_partitions(&commit.partitions()).await
    }
    /// Whether the message `content_id` is already part of the table, asked
    /// before anything of it is scored or written. A table format with
    /// commits (Delta) answers from its transactions, so a redelivery after
    /// a lost acknowledgement is neither billed nor written again; a Hive
    /// layout answers `false` (a redelivery rewrites its own objects with the
    /// same rows).
    async fn is_committed(&self, _content_id: &str) -> Result<bool, BackendError> {
        Ok(false)
    }
    /// The key, relative to the table root, of the object a message writes
    /// for partition `dt`. A Hive layout uses one key per content id
    /// ([`crate::output::object_key`]), so a redelivery overwrites its own
    /// object instead of adding a second. A table format whose committed
    /// versions reference objects by path and size (Delta) must never see a
    /// referenced object rewritten: it gives every attempt a key of its own,
    /// and a losing attempt's object, never committed, is left to vacuum.
    fn object_key(&self, dt: NaiveDate, content_id: &str) -> String {
        crate::output::object_key(dt, content_id)
    }
}

/// SQL over the lake.
#[async_trait]
pub trait QueryEngine: Send + Sync {
    /// Run one statement and collect the result.
    async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>, BackendError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_display_names_location_id_and_field() {
        let r = Rejection {
            location: "line 7".into(),
            id: Some("p1".into()),
            field: Some("created_at".into()),
            reason: "unparseable".into(),
        };
        assert_eq!(
            r.to_string(),
            "line 7 (id p1): field `created_at`: unparseable"
        );
    }
}
