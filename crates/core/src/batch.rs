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

impl MessageResult {
    /// Whether the message must be given back to the queue (failed or not started).
    pub fn is_failure(&self) -> bool {
        !matches!(self, MessageResult::Done(_))
    }
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
