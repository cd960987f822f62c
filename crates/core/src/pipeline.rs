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
    Catalog, ObjectSink, RecordSource, Rejection, SourceItem, TableCommit, WorkQueue, WrittenFile,
};
use crate::clock::Clock;
use crate::dead_letter::{DeadLetterMessage, DeadLetterSink, Triage};
use crate::error::{AnalyzeError, BackendError, EncodeError, MessageError, Retry};
use crate::message::{build_message, decode_message, OutgoingMessage, Packer};
use crate::output::{encode_parquet, group_by_partition, object_key, to_record_batch, Codec};
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
pub async fn produce_with(
    source: &mut dyn RecordSource,
    queue: &dyn WorkQueue,
    packer: &mut Packer,
    filter: &mut dyn ChangeFilter,
    send_batch: usize,
    mut on_reject: impl FnMut(&Rejection) + Send,
) -> Result<ProduceStats, ProduceError> {
    let mut stats = ProduceStats::default();
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
                        flush(queue, &mut outbox, &mut stats).await?;
                    }
                }
            }
        }
    }
    while let Some(m) = packer.flush() {
        outbox.push(m);
        if outbox.len() >= send_batch {
            flush(queue, &mut outbox, &mut stats).await?;
        }
    }
    flush(queue, &mut outbox, &mut stats).await?;
    Ok(stats)
}

async fn flush(
    queue: &dyn WorkQueue,
    outbox: &mut Vec<OutgoingMessage>,
    stats: &mut ProduceStats,
) -> Result<(), ProduceError> {
    if outbox.is_empty() {
        return Ok(());
    }
    let report = queue.send(outbox).await.map_err(ProduceError::Queue)?;
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
    /// Ids of records that failed transiently and were re-enqueued as a new
    /// message of only those records.
    pub deferred: Vec<String>,
    /// Content id of that re-enqueued message, when there was one.
    pub deferred_content_id: Option<String>,
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
/// * `requeue`: records that failed transiently after the analyzer's own
///   retries. Re-enqueuing only those, as a new message, is the design
///   chosen so that the scored records of the message are not billed again:
///   the message succeeds with what was scored, and the new message carries
///   just the rest (a new content id, hence its own object keys; the
///   original message's objects hold only what was scored in it, so nothing
///   is written twice). When *nothing* was scored or refused the message
///   simply fails and is redelivered: nothing was billed, and a redelivery
///   keeps its content id. Without a `requeue`, any transient failure fails
///   the message (right for a free engine such as VADER).
#[derive(Clone, Copy, Default)]
pub struct Routes<'a> {
    /// Dead-letter place for refused records.
    pub dead_letters: Option<&'a dyn DeadLetterSink>,
    /// Work queue for records that failed transiently.
    pub requeue: Option<&'a dyn WorkQueue>,
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
    /// and transiently failed records as [`Routes`] says. Idempotent: the
    /// same message always writes the same keys. Every document is handed
    /// to the analyzer once per call, so none is billed twice in one
    /// delivery. Order: the lake first, then the dead letter, then the
    /// requeue. If writing or a route fails, the message fails as a whole
    /// (nothing is lost; its redelivery rewrites the same objects). Its
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
        let nothing_done = scored.is_empty() && refused.is_empty();
        if let Some((record, e)) = deferred
            .first()
            .filter(|_| routes.requeue.is_none() || nothing_done)
        {
            return Err(ConsumeError::Analyze {
                message_id: message_id.to_owned(),
                record_id: record.id.clone(),
                source: e.clone(),
            });
        }
        let records = scored.len();
        let mut objects = Vec::new();
        let mut partitions = Vec::new();
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
            let key = object_key(dt, &content_id);
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
            objects.push((key, size));
            partitions.push(dt);
        }
        if !written.is_empty() {
            let commit = TableCommit {
                content_id: &content_id,
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
        let mut outcome = MessageOutcome {
            content_id,
            records,
            objects,
            partitions,
            refused: Vec::new(),
            dead_letter_content_id: None,
            deferred: Vec::new(),
            deferred_content_id: None,
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
        if let (Some(queue), false) = (routes.requeue, deferred.is_empty()) {
            let (records, errors): (Vec<SourceRecord>, Vec<AnalyzeError>) =
                deferred.into_iter().unzip();
            let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
            let again = build_message(records);
            warn!(message = "Records failed transiently; re-enqueued as a new message of only them.", message_id, records = ids.len(), new_content_id = %again.content_id, error = %errors[0]);
            queue
                .send(std::slice::from_ref(&again))
                .await
                .map_err(|source| ConsumeError::Requeue {
                    message_id: message_id.to_owned(),
                    source,
                })?;
            outcome.deferred_content_id = Some(again.content_id);
            outcome.deferred = ids;
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
