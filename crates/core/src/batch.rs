//! A batch of deliveries through the consume step, the one way both edges
//! do it: the consumer Lambda for an SQS event, and `etl run` for each
//! receive from its in-process queue.
//!
//! Messages are consumed a bounded number at a time, each isolated from the
//! others: an error or even a panic is that message's outcome, never its
//! neighbours'. A message is started only if `may_start` still says so when
//! its turn comes (the Lambda's deadline margin), so what is left untouched
//! is reported as such rather than cut off half-way. Results come back in
//! the order of the input, one per message.

use std::panic::AssertUnwindSafe;

use futures::{FutureExt as _, StreamExt as _};

use crate::pipeline::{ConsumeError, Consumer, MessageOutcome, Routes};

/// One delivered message, as the batch sees it.
#[derive(Debug, Clone, Copy)]
pub struct BatchMessage<'a> {
    /// The queue's message id (what a partial batch response names).
    pub message_id: &'a str,
    /// The body.
    pub body: &'a str,
    /// How many times the queue has delivered it (1 on first delivery).
    pub receive_count: u32,
}

/// What became of one message of a batch.
#[derive(Debug)]
pub enum MessageResult {
    /// Consumed: its records are in the lake (or routed, see [`MessageOutcome`]).
    Done(MessageOutcome),
    /// Consumed and failed; the error says whether a redelivery may succeed.
    Failed(ConsumeError),
    /// Not started: `may_start` said no when its turn came. Untouched and
    /// unbilled; the queue redelivers it.
    NotStarted,
}

/// Consume `messages` with at most `concurrency` in flight, each with
/// `routes` (its own receive count filled in). Returns one result per
/// message, in input order.
pub async fn consume_batch(
    consumer: &Consumer<'_>,
    routes: Routes<'_>,
    messages: &[BatchMessage<'_>],
    concurrency: usize,
    may_start: &(dyn Fn() -> bool + Sync),
) -> Vec<MessageResult> {
    // Collected first: a lazy `map` closure held across the awaits would
    // make the future's `Send` bound unprovable for callers that spawn it.
    let pending: Vec<_> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| consume_one(consumer, routes, i, m, may_start))
        .collect();
    let mut results: Vec<(usize, MessageResult)> = futures::stream::iter(pending)
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

async fn consume_one(
    consumer: &Consumer<'_>,
    routes: Routes<'_>,
    index: usize,
    m: &BatchMessage<'_>,
    may_start: &(dyn Fn() -> bool + Sync),
) -> (usize, MessageResult) {
    // Checked when the message's turn comes, not when the batch arrives.
    if !may_start() {
        return (index, MessageResult::NotStarted);
    }
    let routes = Routes {
        receive_count: m.receive_count,
        ..routes
    };
    let consumed = AssertUnwindSafe(consumer.consume_routed(m.message_id, m.body, routes))
        .catch_unwind()
        .await;
    let result = match consumed {
        Ok(Ok(outcome)) => MessageResult::Done(outcome),
        Ok(Err(e)) => MessageResult::Failed(e),
        Err(panic) => MessageResult::Failed(ConsumeError::Panicked {
            message_id: m.message_id.to_owned(),
            detail: panic_text(panic.as_ref()),
        }),
    };
    (index, result)
}

/// The text of a panic payload (`panic!` with a literal or a format string).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use bytes::Bytes;
    use chrono::{NaiveDate, TimeZone, Utc};

    use super::*;
    use crate::backend::{Catalog, ObjectSink};
    use crate::clock::FixedClock;
    use crate::error::{AnalyzeError, BackendError};
    use crate::message::build_message;
    use crate::pipeline::ConsumeOptions;
    use crate::record::SourceRecord;
    use crate::sentiment::{Document, Engine, SentimentAnalyzer, SentimentScore};
    use crate::vader::VaderAnalyzer;

    /// A sink and catalog that keep nothing.
    struct Discard;

    #[async_trait]
    impl ObjectSink for Discard {
        async fn put(&self, _key: &str, _body: Bytes) -> Result<(), BackendError> {
            Ok(())
        }
        fn location(&self, key: &str) -> String {
            key.to_owned()
        }
    }

    #[async_trait]
    impl Catalog for Discard {
        async fn ensure_table(&self) -> Result<(), BackendError> {
            Ok(())
        }
        async fn add_partitions(&self, _dts: &[NaiveDate]) -> Result<(), BackendError> {
            Ok(())
        }
    }

    /// VADER that panics on a text containing "PANIC" and waits (yields)
    /// longer on earlier messages, so that with concurrency they finish out
    /// of order.
    struct Uneven(VaderAnalyzer);

    #[async_trait]
    impl SentimentAnalyzer for Uneven {
        fn engine(&self) -> Engine {
            Engine::Vader
        }
        async fn analyze(
            &self,
            docs: &[Document<'_>],
        ) -> Result<Vec<Result<SentimentScore, AnalyzeError>>, AnalyzeError> {
            assert!(
                !docs.iter().any(|d| d.text.contains("PANIC")),
                "injected bug"
            );
            let rank: usize = docs[0].id.trim_start_matches('m').parse().unwrap();
            for _ in 0..(10 - rank) * 3 {
                tokio::task::yield_now().await;
            }
            self.0.analyze(docs).await
        }
    }

    fn body(i: usize, text: &str) -> String {
        let t = Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap();
        build_message(vec![SourceRecord {
            id: format!("m{i}"),
            text: text.into(),
            created_at: t,
            updated_at: t,
            attributes: Default::default(),
        }])
        .body
    }

    async fn run(
        bodies: &[String],
        concurrency: usize,
        may_start: &(dyn Fn() -> bool + Sync),
    ) -> Vec<MessageResult> {
        let analyzer = Uneven(VaderAnalyzer::new());
        let clock = FixedClock(Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        let consumer = Consumer {
            analyzer: &analyzer,
            sink: &Discard,
            catalog: &Discard,
            options: ConsumeOptions::default(),
            clock: &clock,
        };
        let ids: Vec<String> = (0..bodies.len()).map(|i| format!("id-{i}")).collect();
        let messages: Vec<BatchMessage<'_>> = bodies
            .iter()
            .zip(&ids)
            .map(|(b, id)| BatchMessage {
                message_id: id,
                body: b,
                receive_count: 1,
            })
            .collect();
        consume_batch(
            &consumer,
            Routes::default(),
            &messages,
            concurrency,
            may_start,
        )
        .await
    }

    #[tokio::test]
    async fn results_come_back_in_input_order_and_a_panic_fails_only_its_message() {
        let bodies: Vec<String> = (0..8)
            .map(|i| {
                body(
                    i,
                    if i == 5 {
                        "this one will PANIC"
                    } else {
                        "a fine day"
                    },
                )
            })
            .collect();
        let results = run(&bodies, 4, &|| true).await;
        assert_eq!(results.len(), 8);
        for (i, r) in results.iter().enumerate() {
            match (i, r) {
                (5, MessageResult::Failed(ConsumeError::Panicked { message_id, detail })) => {
                    assert_eq!(message_id, "id-5");
                    assert!(detail.contains("injected bug"), "{detail}");
                }
                (5, other) => panic!("message 5 should have panicked: {other:?}"),
                (_, MessageResult::Done(o)) => {
                    assert_eq!(o.records, 1);
                    assert_eq!(
                        o.content_id,
                        crate::decode_message(&bodies[i]).unwrap().content_id
                    );
                }
                (_, other) => panic!("message {i} should be done: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn messages_whose_turn_comes_after_may_start_says_no_are_not_started() {
        let bodies: Vec<String> = (0..5).map(|i| body(i, "a fine day")).collect();
        let asked = AtomicUsize::new(0);
        // Yes for the first two turns, then no: the deadline margin has begun.
        let may_start = || asked.fetch_add(1, Ordering::SeqCst) < 2;
        let results = run(&bodies, 1, &may_start).await;
        let kinds: Vec<&str> = results
            .iter()
            .map(|r| match r {
                MessageResult::Done(_) => "done",
                MessageResult::Failed(_) => "failed",
                MessageResult::NotStarted => "not started",
            })
            .collect();
        assert_eq!(
            kinds,
            ["done", "done", "not started", "not started", "not started"]
        );
        assert_eq!(
            asked.load(Ordering::SeqCst),
            5,
            "asked once per message, at its turn"
        );
    }
}
