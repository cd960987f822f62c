//! The two pipeline steps, written once against the backend traits.
//!
//! * [`produce`]: source → (watermark filter) → packer → queue.
//! * [`Consumer::consume`]: one message body → scores → Parquet per partition →
//!   sink → catalog. A failure is confined to its message.

use chrono::NaiveDate;
use serde::Serialize;
use thiserror::Error;
use tracing::{debug, warn};

use crate::backend::{
    Catalog, ObjectSink, Outbox, RecordSource, Rejection, SourceItem, TableCommit, WorkQueue,
    WrittenFile,
};
use crate::clock::Clock;
use crate::dead_letter::{DeadLetterMessage, DeadLetterSink, Triage};
use crate::error::{AnalyzeError, BackendError, EncodeError, MessageError, Retry};
use crate::message::{decode_message, OutgoingMessage, Packer};
use crate::output::{encode_parquet, group_by_partition, to_record_batch, Codec};
use crate::record::SourceRecord;
use crate::sentiment::{Document, SentimentAnalyzer, SentimentScore};

/// Decides which records a producer sends: those it has not sent before.
pub trait ChangeFilter: Send {
    /// Whether the record is new or changed since the last successful run
    /// (or earlier in this run). Takes `&mut self` so a filter can count
    /// what it skipped and why.
    fn is_new(&mut self, r: &SourceRecord) -> bool;
    /// Remember that the record was sent.
    fn observe(&mut self, r: &SourceRecord);
}

/// Counts from a produce run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProduceStats {
    /// Items read from the source (valid or not).
    pub read: u64,
    /// Items rejected as invalid.
    pub rejected: u64,
    /// Valid records skipped because the watermark says they were sent before.
    pub unchanged: u64,
    /// Records sent.
    pub sent_records: u64,
    /// Messages sent.
    pub messages: u64,
    /// Queue API calls.
    pub send_calls: u64,
}

/// Read the whole source and send what `filter` says is new (core's
/// `incremental::LedgerFilter` on AWS, the lake's state locally). `on_reject`
/// sees every rejected item (to log and keep it); the run continues past
/// them. `send_batch` is the number of messages per send call (10 for SQS).
/// Every message is staged in `outbox` before it is sent and marked sent
/// after (see [`Outbox`]): what a failed run sent, or was about to, is
/// re-sent verbatim by the next attempt instead of being packed again.
pub async fn produce_with(
    source: &mut dyn RecordSource,
    queue: &dyn WorkQueue,
    outbox: &dyn Outbox,
    packer: &mut Packer,
    filter: &mut dyn ChangeFilter,
    send_batch: usize,
    mut on_reject: impl FnMut(&Rejection) + Send,
) -> Result<ProduceStats, ProduceError> {
    let mut stats = ProduceStats::default();
    let staging = outbox;
    let mut outbox: Vec<OutgoingMessage> = Vec::with_capacity(send_batch);
    while let Some(chunk) = source.next_chunk().await.map_err(ProduceError::Source)? {
        for item in chunk {
            stats.read += 1;
            match item {
                SourceItem::Rejected(rej) => {
                    stats.rejected += 1;
                    on_reject(&rej);
                }
                SourceItem::Record(r) if !filter.is_new(&r) => stats.unchanged += 1,
                SourceItem::Record(r) => {
                    // Observed before packing: a record too large to send is
                    // rejected (and reported) once, not on every run.
                    filter.observe(&r);
                    match packer.push(r) {
                        Ok(Some(m)) => outbox.push(m),
                        Ok(None) => {}
                        Err(e) => {
                            stats.rejected += 1;
                            let id = match &e {
                                crate::error::MessageError::RecordTooLarge { id, .. } => {
                                    Some(id.clone())
                                }
                                _ => None,
                            };
                            on_reject(&Rejection {
                                location: id.as_deref().map_or_else(
                                    || "record".to_owned(),
                                    |id| format!("record {id}"),
                                ),
                                id,
                                field: Some("text".into()),
                                reason: e.to_string(),
                            });
                        }
                    }
                    if outbox.len() >= send_batch {
                        flush(queue, staging, &mut outbox, &mut stats).await?;
                    }
                }
            }
        }
    }
    while let Some(m) = packer.flush() {
        outbox.push(m);
        if outbox.len() >= send_batch {
            flush(queue, staging, &mut outbox, &mut stats).await?;
        }
    }
    flush(queue, staging, &mut outbox, &mut stats).await?;
    Ok(stats)
}

async fn flush(
    queue: &dyn WorkQueue,
    staging: &dyn Outbox,
    outbox: &mut Vec<OutgoingMessage>,
    stats: &mut ProduceStats,
) -> Result<(), ProduceError> {
    if outbox.is_empty() {
        return Ok(());
    }
    staging.stage(outbox).await.map_err(ProduceError::Outbox)?;
    let report = queue.send(outbox).await.map_err(ProduceError::Queue)?;
    if let Err(e) = staging.sent(outbox).await {
        warn!(message = "Could not mark staged messages as sent; a retry sends the same bodies again (same content ids).", messages = outbox.len(), error = %e);
    }
    stats.messages += outbox.len() as u64;
    stats.sent_records += outbox.iter().map(|m| m.record_count as u64).sum::<u64>();
    stats.send_calls += report.calls as u64;
    outbox.clear();
    Ok(())
}

/// A produce run that could not finish.
#[derive(Debug, Error)]
pub enum ProduceError {
    /// The source could not be read.
    #[error("reading the source: {0}")]
    Source(#[source] BackendError),
    /// Messages could not be sent.
    #[error("sending to the queue: {0}")]
    Queue(#[source] BackendError),
    /// Messages could not be staged before sending (none of them was sent).
    #[error("staging messages in the outbox: {0}")]
    Outbox(#[source] BackendError),
}

impl ProduceError {
    /// The backend error behind it.
    pub fn backend(&self) -> &BackendError {
        match self {
            ProduceError::Source(b) | ProduceError::Queue(b) | ProduceError::Outbox(b) => b,
        }
    }
}

/// Why one message could not be consumed.
#[derive(Debug, Error)]
pub enum ConsumeError {
    /// The message is malformed; redelivery cannot help.
    #[error("message {message_id}: {source}")]
    Decode {
        /// Queue message id.
        message_id: String,
        /// Decoding error.
        #[source]
        source: MessageError,
    },
    /// Scoring failed for a record (or the whole call).
    #[error("message {message_id}: record {record_id}: {source}")]
    Analyze {
        /// Queue message id.
        message_id: String,
        /// The record whose scoring failed (or `*` for the whole call).
        record_id: String,
        /// Analyzer error.
        #[source]
        source: AnalyzeError,
    },
    /// Parquet/Arrow encoding failed.
    #[error("message {message_id}: {source}")]
    Encode {
        /// Queue message id.
        message_id: String,
        /// Encoding error.
        #[source]
        source: EncodeError,
    },
    /// Writing the object or registering the partition failed.
    #[error("message {message_id}: {source}")]
    Storage {
        /// Queue message id.
        message_id: String,
        /// Backend error.
        #[source]
        source: BackendError,
    },
    /// Refused records could not be dead-lettered; the message fails whole
    /// so that nothing is lost.
    #[error("message {message_id}: dead-lettering refused records: {source}")]
    DeadLetter {
        /// Queue message id.
        message_id: String,
        /// Backend error.
        #[source]
        source: BackendError,
    },
    /// Transiently failed records could not be re-enqueued; the message
    /// fails whole so that nothing is lost.
    #[error("message {message_id}: re-enqueuing records that failed transiently: {source}")]
    Requeue {
        /// Queue message id.
        message_id: String,
        /// Backend error.
        #[source]
        source: BackendError,
    },
    /// Processing panicked (a bug); reported per message.
    #[error("message {message_id}: processing panicked: {detail}")]
    Panicked {
        /// Queue message id.
        message_id: String,
        /// Panic payload.
        detail: String,
    },
}

impl ConsumeError {
    /// Whether a redelivery may succeed.
    pub fn retry(&self) -> Retry {
        match self {
            ConsumeError::Decode { .. }
            | ConsumeError::Encode { .. }
            | ConsumeError::Panicked { .. } => Retry::Permanent,
            ConsumeError::Analyze { source, .. } => source.retry,
            ConsumeError::Storage { source, .. }
            | ConsumeError::DeadLetter { source, .. }
            | ConsumeError::Requeue { source, .. } => source.retry,
        }
    }
}

/// What consuming one message produced.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageOutcome {
    /// The message content id.
    pub content_id: String,
    /// Records scored and written.
    pub records: usize,
    /// Objects written: relative key and size in bytes.
    pub objects: Vec<(String, usize)>,
    /// Partitions touched.
    pub partitions: Vec<NaiveDate>,
    /// Records the analyzer refused, `(id, reason)`, sent to the dead-letter
    /// place as one message (see [`crate::dead_letter`]).
    pub refused: Vec<(String, String)>,
    /// Content id of that dead-letter message, when there was one.
    pub dead_letter_content_id: Option<String>,
    /// The table already held this message (a redelivery after its commit):
    /// nothing was scored, written or routed again.
    pub already_committed: bool,
}

/// Settings of the consume step.
#[derive(Debug, Clone, Copy)]
pub struct ConsumeOptions {
    /// Parquet codec.
    pub codec: Codec,
    /// Whether to keep the `text` column.
    pub include_text: bool,
}

impl Default for ConsumeOptions {
    fn default() -> Self {
        Self {
            codec: Codec::Snappy,
            include_text: true,
        }
    }
}

/// The consume step with its dependencies.
pub struct Consumer<'a> {
    /// Sentiment engine.
    pub analyzer: &'a dyn SentimentAnalyzer,
    /// Where Parquet goes.
    pub sink: &'a dyn ObjectSink,
    /// Where partitions are registered.
    pub catalog: &'a dyn Catalog,
    /// Options.
    pub options: ConsumeOptions,
    /// Stamps `processed_at` (passed in so a run can be reproduced byte for byte).
    pub clock: &'a dyn Clock,
}

/// Where one delivery's records that are not scored go.
///
/// * `dead_letters`: records refused permanently. Without one, a refusal
///   fails the whole message (permanently), as the queue's own redrive
///   policy then dead-letters it whole.
/// * Records that failed transiently (after the analyzer's own retries) fail
///   the whole message, which is redelivered with its content id. Nothing of
///   it is written, so a record cannot land once from this delivery and again
///   from another: splitting the message (land what was scored, re-enqueue
///   the rest as a new message) would let a redelivery of the original after
///   a lost acknowledgement land the same records a second time, under
///   another content id. The scores are kept in [`Routes::memo`], so a
///   redelivery to the same container bills only the documents that failed.
#[derive(Clone, Copy, Default)]
pub struct Routes<'a> {
    /// Dead-letter place for refused records.
    pub dead_letters: Option<&'a dyn DeadLetterSink>,
    /// How many times the message has been received (recorded in dead letters).
    pub receive_count: u32,
    /// Where scores are kept when writing or routing fails after scoring.
    pub memo: Option<&'a ScoreMemo>,
}

impl Consumer<'_> {
    /// Decode, score, encode, write and register one message, with no
    /// dead-letter or requeue routes: any record that cannot be scored
    /// fails the message. See [`Consumer::consume_routed`].
    pub async fn consume(
        &self,
        message_id: &str,
        body: &str,
    ) -> Result<MessageOutcome, ConsumeError> {
        self.consume_routed(message_id, body, Routes::default())
            .await
    }

    /// Decode, score, encode, write and register one message; route refused
    /// records as [`Routes`] says. Idempotent per content id: a message the
    /// table already holds is acknowledged without being scored or written
    /// again ([`Catalog::is_committed`]); otherwise the same message writes
    /// the same rows, at keys the table chooses ([`Catalog::object_key`]).
    /// Every document is handed to the analyzer once per call, so none is
    /// billed twice in one delivery. Order: the dead letter first, then the
    /// lake, so that once a message is committed everything it owed is done
    /// (a redelivery that finds it committed has nothing left to do). If a
    /// route or writing fails, or a record failed transiently, the message
    /// fails as a whole (nothing is lost; its redelivery does it again). Its
    /// scores are then kept in [`Routes::memo`], so a redelivery to the
    /// same container is not billed again; a redelivery to another
    /// container scores again, bounded by the queue's maximum receive count.
    pub async fn consume_routed(
        &self,
        message_id: &str,
        body: &str,
        routes: Routes<'_>,
    ) -> Result<MessageOutcome, ConsumeError> {
        let msg = decode_message(body).map_err(|source| ConsumeError::Decode {
            message_id: message_id.to_owned(),
            source,
        })?;
        let committed = self
            .catalog
            .is_committed(&msg.content_id)
            .await
            .map_err(|source| ConsumeError::Storage {
                message_id: message_id.to_owned(),
                source,
            })?;
        if committed {
            debug!(message = "message already committed; acknowledged without scoring or writing", message_id, content_id = %msg.content_id);
            return Ok(MessageOutcome {
                content_id: msg.content_id,
                records: 0,
                objects: Vec::new(),
                partitions: Vec::new(),
                refused: Vec::new(),
                dead_letter_content_id: None,
                already_committed: true,
            });
        }
        let remembered = routes.memo.and_then(|m| m.take(&msg.content_id));
        let results = self.score(message_id, &msg.records, remembered).await?;
        let content_id = msg.content_id.clone();
        let kept = routes.memo.map(|_| results.clone());
        let processed_at = crate::record::truncate_micros(self.clock.now());
        let triage = Triage::new(msg.records, results, processed_at);
        let outcome = self
            .write_and_route(message_id, content_id.clone(), triage, routes)
            .await;
        if let (Err(e), Some(memo), Some(results)) = (&outcome, routes.memo, kept) {
            // Also when transient failures fail the message (no requeue
            // route): its redelivery here analyses only those documents.
            let after_scoring = match e {
                ConsumeError::Storage { .. }
                | ConsumeError::DeadLetter { .. }
                | ConsumeError::Requeue { .. } => true,
                ConsumeError::Analyze { source, .. } => source.retry == Retry::Retryable,
                _ => false,
            };
            if after_scoring {
                memo.keep(&content_id, results);
            }
        }
        outcome
    }

    async fn write_and_route(
        &self,
        message_id: &str,
        content_id: String,
        triage: Triage,
        routes: Routes<'_>,
    ) -> Result<MessageOutcome, ConsumeError> {
        let Triage {
            scored,
            refused,
            deferred,
        } = triage;
        if let Some((record, e)) = refused.first().filter(|_| routes.dead_letters.is_none()) {
            return Err(ConsumeError::Analyze {
                message_id: message_id.to_owned(),
                record_id: record.id.clone(),
                source: e.clone(),
            });
        }
        if let Some((record, e)) = deferred.first() {
            return Err(ConsumeError::Analyze {
                message_id: message_id.to_owned(),
                record_id: record.id.clone(),
                source: e.clone(),
            });
        }
        let mut outcome = MessageOutcome {
            content_id,
            records: scored.len(),
            objects: Vec::new(),
            partitions: Vec::new(),
            refused: Vec::new(),
            dead_letter_content_id: None,
            already_committed: false,
        };
        if let (Some(sink), false) = (routes.dead_letters, refused.is_empty()) {
            let letter = DeadLetterMessage::new(
                message_id,
                &outcome.content_id,
                routes.receive_count,
                refused,
            );
            warn!(message = "Records refused by the analyzer; dead-lettering them alone.", message_id, content_id = %outcome.content_id, reason = %letter.summary());
            sink.put(&letter)
                .await
                .map_err(|source| ConsumeError::DeadLetter {
                    message_id: message_id.to_owned(),
                    source,
                })?;
            outcome.dead_letter_content_id = Some(letter.message.content_id.clone());
            outcome.refused = letter.reasons;
        }
        let mut written = Vec::new();
        for (dt, rows) in group_by_partition(scored) {
            let batch = to_record_batch(&rows, self.options.include_text).map_err(|source| {
                ConsumeError::Encode {
                    message_id: message_id.to_owned(),
                    source,
                }
            })?;
            let bytes = encode_parquet(&batch, self.options.codec).map_err(|source| {
                ConsumeError::Encode {
                    message_id: message_id.to_owned(),
                    source,
                }
            })?;
            let key = self.catalog.object_key(dt, &outcome.content_id);
            let size = bytes.len();
            self.sink
                .put(&key, bytes.clone())
                .await
                .map_err(|source| ConsumeError::Storage {
                    message_id: message_id.to_owned(),
                    source,
                })?;
            debug!(message = "wrote object", location = %self.sink.location(&key), rows = rows.len(), bytes = size);
            written.push(WrittenFile {
                key: key.clone(),
                dt,
                body: bytes,
            });
            outcome.objects.push((key, size));
            outcome.partitions.push(dt);
        }
        if !written.is_empty() {
            let commit = TableCommit {
                content_id: &outcome.content_id,
                files: &written,
            };
            self.catalog
                .commit(&commit)
                .await
                .map_err(|source| ConsumeError::Storage {
                    message_id: message_id.to_owned(),
                    source,
                })?;
        }
        Ok(outcome)
    }

    /// One result per record. With `remembered` results (from an earlier
    /// delivery of the same content), only the documents that failed
    /// transiently then are analysed again.
    async fn score(
        &self,
        message_id: &str,
        records: &[SourceRecord],
        remembered: Option<Vec<Result<SentimentScore, AnalyzeError>>>,
    ) -> Result<Vec<Result<SentimentScore, AnalyzeError>>, ConsumeError> {
        let (mut results, todo): (Vec<_>, Vec<usize>) = match remembered {
            Some(prev) if prev.len() == records.len() => {
                let todo = prev
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| matches!(r, Err(e) if e.retry == Retry::Retryable))
                    .map(|(i, _)| i)
                    .collect();
                (prev, todo)
            }
            _ => (Vec::new(), (0..records.len()).collect()),
        };
        if todo.is_empty() {
            return Ok(results);
        }
        let docs: Vec<Document<'_>> = todo
            .iter()
            .map(|&i| Document {
                id: &records[i].id,
                text: &records[i].text,
            })
            .collect();
        let fresh = match self.analyzer.analyze(&docs).await {
            Ok(fresh) => fresh,
            // The whole call failed: nothing was scored; every document shares the error.
            Err(e) => vec![Err(e); docs.len()],
        };
        if fresh.len() != docs.len() {
            return Err(ConsumeError::Analyze {
                message_id: message_id.to_owned(),
                record_id: "*".into(),
                source: AnalyzeError::permanent(
                    "ResultCountMismatch",
                    format!("{} documents in, {} results out", docs.len(), fresh.len()),
                ),
            });
        }
        if results.is_empty() {
            return Ok(fresh);
        }
        for (i, r) in todo.into_iter().zip(fresh) {
            results[i] = r;
        }
        Ok(results)
    }
}

/// Scores of messages that were scored but could not be written or routed,
/// by content id, so that their redelivery to the same container is not
/// billed again. Bounded: the oldest entries are dropped past `capacity`
/// messages. One per container, shared by its concurrent messages.
#[derive(Debug)]
pub struct ScoreMemo {
    capacity: usize,
    entries: std::sync::Mutex<std::collections::VecDeque<MemoEntry>>,
}

type MemoEntry = (String, Vec<Result<SentimentScore, AnalyzeError>>);

impl ScoreMemo {
    /// A memo of at most `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Default::default(),
        }
    }

    fn take(&self, content_id: &str) -> Option<Vec<Result<SentimentScore, AnalyzeError>>> {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let pos = e.iter().position(|(c, _)| c == content_id)?;
        e.remove(pos).map(|(_, r)| r)
    }

    fn keep(&self, content_id: &str, results: Vec<Result<SentimentScore, AnalyzeError>>) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.retain(|(c, _)| c != content_id);
        if e.len() >= self.capacity {
            e.pop_front();
        }
        e.push_back((content_id.to_owned(), results));
    }

    /// Messages remembered.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
