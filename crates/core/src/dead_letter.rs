//! Where records the analyzer refused go, and how a message's results are
//! split between the lake, the dead-letter place and the work queue.
//!
//! A message is many records. When the analyzer refuses some of them (a
//! Comprehend `ErrorList` entry with a permanent code, a language
//! BatchDetectSentiment does not support, a permanent call failure), those
//! records alone become a [`DeadLetterMessage`]: a valid v1 message of only
//! the refused records (built with [`build_message`], so it can be redriven
//! as it is) with the reason for each one. The good records of the message
//! are written to the lake as usual, and the original message succeeds.
//! Backends implement [`DeadLetterSink`]: the SQS dead-letter queue on AWS,
//! the lake's `_dead_letter/messages.jsonl` locally.

use async_trait::async_trait;

use crate::error::{AnalyzeError, BackendError, Retry};
use crate::message::{build_message, OutgoingMessage};
use crate::output::ScoredRecord;
use crate::record::SourceRecord;
use crate::sentiment::SentimentScore;

/// Refused records of one message, ready to be dead-lettered.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterMessage {
    /// Queue message id of the message the records came from.
    pub source_message_id: String,
    /// Content id of the message the records came from.
    pub source_content_id: String,
    /// How many times the source message had been received.
    pub receive_count: u32,
    /// A v1 message holding only the refused records.
    pub message: OutgoingMessage,
    /// `(record id, reason)` for every refused record, in the message's order.
    pub reasons: Vec<(String, String)>,
}

impl DeadLetterMessage {
    /// Build the dead letter for `refused` (at least one record).
    pub fn new(
        source_message_id: &str,
        source_content_id: &str,
        receive_count: u32,
        refused: Vec<(SourceRecord, AnalyzeError)>,
    ) -> Self {
        let mut reasons: Vec<(String, String)> = refused
            .iter()
            .map(|(r, e)| (r.id.clone(), reason(e)))
            .collect();
        reasons.sort();
        Self {
            source_message_id: source_message_id.to_owned(),
            source_content_id: source_content_id.to_owned(),
            receive_count,
            message: build_message(refused.into_iter().map(|(r, _)| r).collect()),
            reasons,
        }
    }

    /// One line for logs and the `etl-reason` attribute:
    /// `2 records refused: a (CODE: detail); b (CODE: detail)`.
    pub fn summary(&self) -> String {
        let each: Vec<String> = self
            .reasons
            .iter()
            .map(|(id, why)| format!("{id} ({why})"))
            .collect();
        format!(
            "{} record{} refused: {}",
            self.reasons.len(),
            if self.reasons.len() == 1 { "" } else { "s" },
            each.join("; ")
        )
    }
}

/// The reason text recorded for a refused record: `CODE: detail`.
pub fn reason(e: &AnalyzeError) -> String {
    if e.message.is_empty() {
        e.code.clone()
    } else {
        format!("{}: {}", e.code, e.message)
    }
}

/// A dead-letter place for refused records.
#[async_trait]
pub trait DeadLetterSink: Send + Sync {
    /// Store one dead letter durably. An `Err` means it was not stored; the
    /// caller then fails the source message so nothing is lost.
    async fn put(&self, letter: &DeadLetterMessage) -> Result<(), BackendError>;
}

/// A message's records after scoring, by where each one goes.
#[derive(Debug, Default)]
pub struct Triage {
    /// Scored: to the lake.
    pub scored: Vec<ScoredRecord>,
    /// Refused permanently: to the dead-letter place, never retried.
    pub refused: Vec<(SourceRecord, AnalyzeError)>,
    /// Failed transiently (retries exhausted, or never attempted): to be tried again.
    pub deferred: Vec<(SourceRecord, AnalyzeError)>,
}

impl Triage {
    /// Sort each record by its result. `results` pairs with `records` by position.
    pub fn new(
        records: Vec<SourceRecord>,
        results: Vec<Result<SentimentScore, AnalyzeError>>,
        processed_at: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        let mut t = Triage::default();
        for (record, result) in records.into_iter().zip(results) {
            match result {
                Ok(score) => t.scored.push(ScoredRecord {
                    record,
                    score,
                    processed_at,
                }),
                Err(e) if e.retry == Retry::Permanent => t.refused.push((record, e)),
                Err(e) => t.deferred.push((record, e)),
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;
    use bytes::Bytes;
    use chrono::{NaiveDate, TimeZone, Utc};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;
    use crate::backend::{Catalog, ObjectSink, TableCommit};
    use crate::pipeline::{ConsumeError, ConsumeOptions, Consumer, Routes, ScoreMemo};
    use crate::sentiment::{Document, Engine, Label, SentimentAnalyzer};

    fn rec(id: &str, text: &str) -> SourceRecord {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
        SourceRecord {
            id: id.into(),
            text: text.into(),
            created_at: t,
            updated_at: t,
            attributes: Default::default(),
        }
    }

    /// Refuses texts with "REFUSE" (permanent), fails texts with "FLAKY"
    /// transiently while `flaky` is set, scores the rest with fixed numbers,
    /// and counts how often each document id was handed to it.
    #[derive(Default)]
    struct Scripted {
        flaky: std::sync::atomic::AtomicBool,
        seen: Mutex<HashMap<String, usize>>,
    }

    #[async_trait]
    impl SentimentAnalyzer for Scripted {
        fn engine(&self) -> Engine {
            Engine::Comprehend
        }
        async fn analyze(
            &self,
            docs: &[Document<'_>],
        ) -> Result<Vec<Result<SentimentScore, AnalyzeError>>, AnalyzeError> {
            let flaky = self.flaky.load(std::sync::atomic::Ordering::SeqCst);
            let mut seen = self.seen.lock().unwrap();
            Ok(docs
                .iter()
                .map(|d| {
                    *seen.entry(d.id.to_owned()).or_default() += 1;
                    if d.text.contains("REFUSE") {
                        Err(AnalyzeError::permanent("TEXT_SIZE_LIMIT_EXCEEDED", d.id))
                    } else if flaky && d.text.contains("FLAKY") {
                        Err(AnalyzeError::retryable(
                            "ThrottlingException",
                            "rate exceeded",
                        ))
                    } else {
                        let positive = if d.text.contains("good") { 0.75 } else { 0.125 };
                        Ok(SentimentScore {
                            label: Label::Neutral,
                            positive,
                            negative: 0.0625,
                            neutral: 0.5,
                            mixed: 0.0,
                            compound: None,
                            language: "en".into(),
                            engine: Engine::Comprehend,
                        })
                    }
                })
                .collect())
        }
    }

    /// A sink, dead-letter place and table with commits: a content id
    /// committed once is reported committed from then on.
    #[derive(Default)]
    struct Memory {
        objects: Mutex<Vec<(String, Bytes)>>,
        letters: Mutex<Vec<DeadLetterMessage>>,
        committed: Mutex<Vec<String>>,
        fail_letters: bool,
        /// Fail this many dead-letter puts before accepting them.
        fail_first_letters: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl ObjectSink for Memory {
        async fn put(&self, key: &str, body: Bytes) -> Result<(), BackendError> {
            self.objects.lock().unwrap().push((key.to_owned(), body));
            Ok(())
        }
        fn location(&self, key: &str) -> String {
            key.to_owned()
        }
    }

    #[async_trait]
    impl Catalog for Memory {
        async fn ensure_table(&self) -> Result<(), BackendError> {
            Ok(())
        }
        async fn add_partitions(&self, _: &[NaiveDate]) -> Result<(), BackendError> {
            Ok(())
        }
        async fn commit(&self, commit: &TableCommit<'_>) -> Result<(), BackendError> {
            self.committed
                .lock()
                .unwrap()
                .push(commit.content_id.to_owned());
            Ok(())
        }
        async fn is_committed(&self, content_id: &str) -> Result<bool, BackendError> {
            Ok(self
                .committed
                .lock()
                .unwrap()
                .iter()
                .any(|c| c == content_id))
        }
    }

    #[async_trait]
    impl DeadLetterSink for Memory {
        async fn put(&self, letter: &DeadLetterMessage) -> Result<(), BackendError> {
            let flaky = self
                .fail_first_letters
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok();
            if self.fail_letters || flaky {
                return Err(BackendError::retryable("SendMessage", "dlq", "unavailable"));
            }
            self.letters.lock().unwrap().push(letter.clone());
            Ok(())
        }
    }

    /// (id, score_positive) of every row written, sorted by id.
    fn rows(mem: &Memory) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for (_, body) in mem.objects.lock().unwrap().iter() {
            for batch in ParquetRecordBatchReaderBuilder::try_new(body.clone())
                .unwrap()
                .build()
                .unwrap()
            {
                let batch = batch.unwrap();
                let ids = batch.column_by_name("id").unwrap().as_string::<i32>();
                let pos = batch
                    .column_by_name("score_positive")
                    .unwrap()
                    .as_primitive::<Float64Type>();
                for i in 0..batch.num_rows() {
                    out.push((ids.value(i).to_owned(), pos.value(i)));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn consumer<'a>(analyzer: &'a Scripted, mem: &'a Memory) -> Consumer<'a> {
        Consumer {
            analyzer,
            sink: mem,
            catalog: mem,
            options: ConsumeOptions::default(),
            clock: &crate::clock::SYSTEM_CLOCK,
        }
    }

    fn routes(mem: &Memory) -> Routes<'_> {
        Routes {
            dead_letters: Some(mem),
            receive_count: 1,
            memo: None,
        }
    }

    #[tokio::test]
    async fn refused_records_are_dead_lettered_alone_and_their_neighbours_land_with_scores() {
        let body = build_message(vec![
            rec("r1", "good one"),
            rec("r2", "REFUSE me"),
            rec("r3", "meh"),
            rec("r4", "also REFUSE"),
            rec("r5", "good too"),
        ])
        .body;
        let (analyzer, mem) = (Scripted::default(), Memory::default());
        let out = consumer(&analyzer, &mem)
            .consume_routed("m-1", &body, routes(&mem))
            .await
            .unwrap();
        assert_eq!(
            rows(&mem),
            [
                ("r1".to_string(), 0.75),
                ("r3".to_string(), 0.125),
                ("r5".to_string(), 0.75)
            ]
        );
        assert_eq!(out.records, 3);
        let letters = mem.letters.lock().unwrap();
        assert_eq!(letters.len(), 1, "one dead letter per message");
        let dl = &letters[0];
        let inside: Vec<String> = crate::decode_message(&dl.message.body)
            .unwrap()
            .records
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(inside, ["r2", "r4"]);
        assert_eq!(
            dl.reasons,
            [
                ("r2".to_string(), "TEXT_SIZE_LIMIT_EXCEEDED: r2".to_string()),
                ("r4".to_string(), "TEXT_SIZE_LIMIT_EXCEEDED: r4".to_string())
            ]
        );
        assert_eq!(
            (dl.source_message_id.as_str(), dl.receive_count),
            ("m-1", 1)
        );
        assert_eq!(out.refused, dl.reasons);
        assert_eq!(
            out.dead_letter_content_id.as_deref(),
            Some(dl.message.content_id.as_str())
        );
        let seen = analyzer.seen.lock().unwrap();
        assert_eq!(seen.len(), 5);
        assert!(
            seen.values().all(|&n| n == 1),
            "each document analysed once: {seen:?}"
        );
    }

    #[tokio::test]
    async fn transient_failures_fail_the_message_whole_and_its_redelivery_bills_only_them() {
        let body = build_message(vec![
            rec("a", "good"),
            rec("b", "FLAKY"),
            rec("c", "meh"),
            rec("d", "FLAKY good"),
        ])
        .body;
        let (analyzer, mem) = (Scripted::default(), Memory::default());
        analyzer
            .flaky
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let memo = ScoreMemo::new(4);
        let routes = Routes {
            memo: Some(&memo),
            ..routes(&mem)
        };
        let c = consumer(&analyzer, &mem);
        let err = c.consume_routed("m-1", &body, routes).await.unwrap_err();
        assert_eq!(err.retry(), Retry::Retryable);
        assert!(err.to_string().contains("record b"), "{err}");
        assert!(
            mem.objects.lock().unwrap().is_empty(),
            "nothing of a failing message lands: its redelivery lands it whole"
        );
        assert_eq!(memo.len(), 1, "scores kept for the redelivery");
        // Redelivered (same body, same content id) once the analyzer recovered.
        analyzer
            .flaky
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let out = c.consume_routed("m-1", &body, routes).await.unwrap();
        assert_eq!(out.records, 4);
        assert_eq!(
            rows(&mem),
            [
                ("a".to_string(), 0.75),
                ("b".to_string(), 0.125),
                ("c".to_string(), 0.125),
                ("d".to_string(), 0.75)
            ],
            "every record once, in the one object of its message"
        );
        let seen = analyzer.seen.lock().unwrap();
        assert_eq!(
            (seen["a"], seen["b"], seen["c"], seen["d"]),
            (1, 2, 1, 2),
            "the good ones are not analysed again; the failed ones once more"
        );
    }

    #[tokio::test]
    async fn a_redelivery_of_a_committed_message_is_neither_scored_nor_written_nor_dead_lettered_again(
    ) {
        let body = build_message(vec![rec("a", "good"), rec("b", "REFUSE"), rec("c", "meh")]).body;
        let (analyzer, mem) = (Scripted::default(), Memory::default());
        let c = consumer(&analyzer, &mem);
        let first = c.consume_routed("m-1", &body, routes(&mem)).await.unwrap();
        assert!(!first.already_committed);
        assert_eq!((first.records, first.refused.len()), (2, 1));
        // The acknowledgement was lost: the same body comes back.
        let again = c.consume_routed("m-1", &body, routes(&mem)).await.unwrap();
        assert!(again.already_committed, "the table's answer was used");
        assert_eq!((again.records, again.objects.len()), (0, 0));
        assert_eq!(mem.objects.lock().unwrap().len(), 1, "no object rewritten");
        assert_eq!(
            mem.letters.lock().unwrap().len(),
            1,
            "no second dead letter"
        );
        assert!(
            analyzer.seen.lock().unwrap().values().all(|&n| n == 1),
            "nothing billed twice"
        );
        assert_eq!(mem.committed.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn when_nothing_could_be_scored_the_message_fails_for_redelivery() {
        let body = build_message(vec![rec("a", "FLAKY"), rec("b", "FLAKY too")]).body;
        let (analyzer, mem) = (Scripted::default(), Memory::default());
        analyzer
            .flaky
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let err = consumer(&analyzer, &mem)
            .consume_routed("m-1", &body, routes(&mem))
            .await
            .unwrap_err();
        assert_eq!(err.retry(), Retry::Retryable);
        assert!(mem.objects.lock().unwrap().is_empty());
        assert!(mem.committed.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn without_a_dead_letter_place_or_when_it_fails_the_message_fails_whole() {
        let body = build_message(vec![rec("a", "good"), rec("b", "REFUSE")]).body;
        let (analyzer, mem) = (Scripted::default(), Memory::default());
        let err = consumer(&analyzer, &mem)
            .consume("m-1", &body)
            .await
            .unwrap_err();
        assert_eq!(err.retry(), Retry::Permanent);
        assert!(err.to_string().contains("record b"), "{err}");

        let broken = Memory {
            fail_letters: true,
            ..Memory::default()
        };
        let err = consumer(&analyzer, &broken)
            .consume_routed("m-1", &body, routes(&broken))
            .await
            .unwrap_err();
        assert!(matches!(err, ConsumeError::DeadLetter { .. }), "{err}");
        assert_eq!(err.retry(), Retry::Retryable);
    }

    #[tokio::test]
    async fn a_redelivery_after_a_failed_dead_letter_is_not_billed_again_in_the_same_container() {
        let body = build_message(vec![rec("a", "good"), rec("b", "REFUSE"), rec("c", "meh")]).body;
        let (analyzer, mem) = (Scripted::default(), Memory::default());
        mem.fail_first_letters
            .store(1, std::sync::atomic::Ordering::SeqCst);
        let memo = ScoreMemo::new(4);
        let routes = Routes {
            memo: Some(&memo),
            ..routes(&mem)
        };
        let c = consumer(&analyzer, &mem);
        let err = c.consume_routed("m-1", &body, routes).await.unwrap_err();
        assert!(matches!(err, ConsumeError::DeadLetter { .. }), "{err}");
        assert!(
            mem.objects.lock().unwrap().is_empty(),
            "the dead letter goes first: nothing is committed that still owes one"
        );
        assert_eq!(memo.len(), 1, "scores kept for the redelivery");
        let out = c.consume_routed("m-1", &body, routes).await.unwrap();
        assert_eq!((out.records, out.refused.len()), (2, 1));
        let seen = analyzer.seen.lock().unwrap();
        assert_eq!(
            (seen["a"], seen["b"], seen["c"]),
            (1, 1, 1),
            "scored and refused documents are not sent again"
        );
        assert!(memo.is_empty(), "used up");
        assert_eq!(mem.letters.lock().unwrap().len(), 1);
        assert_eq!(mem.objects.lock().unwrap().len(), 1);
        assert_eq!(
            rows(&mem).iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
    }

    #[test]
    fn a_dead_letter_is_a_decodable_message_of_only_the_refused_records() {
        let dl = DeadLetterMessage::new(
            "m-1",
            "cid",
            2,
            vec![
                (
                    rec("b", "x"),
                    AnalyzeError::permanent("UnsupportedLanguage", "sv"),
                ),
                (
                    rec("a", "y"),
                    AnalyzeError::permanent("TEXT_SIZE_LIMIT_EXCEEDED", ""),
                ),
            ],
        );
        let decoded = crate::decode_message(&dl.message.body).unwrap();
        let ids: Vec<_> = decoded.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(decoded.content_id, dl.message.content_id);
        assert_eq!(
            dl.reasons,
            [
                ("a".to_string(), "TEXT_SIZE_LIMIT_EXCEEDED".to_string()),
                ("b".to_string(), "UnsupportedLanguage: sv".to_string())
            ]
        );
        assert_eq!(
            dl.summary(),
            "2 records refused: a (TEXT_SIZE_LIMIT_EXCEEDED); b (UnsupportedLanguage: sv)"
        );
    }
}
