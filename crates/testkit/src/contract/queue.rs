//! `WorkQueue` conformance: SQS semantics, whichever queue is underneath.
//!
//! Every behaviour expects a new, empty queue and leaves it empty (it acks
//! everything it received), so [`all`] can run them back to back on one
//! queue. A local queue must allow at least [`MESSAGES`] messages in flight
//! and at least three receives before it dead-letters a message.
//!
//! Receives that expect messages wait [`RECEIVE_WAIT`] for the first one
//! (a long poll on SQS, which returns as soon as one is there); receives
//! that expect nothing wait [`EMPTY_WAIT`], a short poll on SQS (it rounds
//! down to whole seconds) and a bounded wait in process.

use std::collections::BTreeSet;
use std::time::Duration;

use etl_core::{Delivery, Retry, WorkQueue};

use super::messages;

/// How long a receive that expects messages waits for the first.
pub const RECEIVE_WAIT: Duration = Duration::from_secs(1);

/// How long a receive that expects nothing waits (waited out in full by a
/// queue that stays empty, so short).
pub const EMPTY_WAIT: Duration = Duration::from_millis(200);

/// Messages sent by the behaviours that need more than one SQS batch.
pub const MESSAGES: usize = 23;

/// The `max` of the contract's receives: not SQS's 10, so that a backend
/// ignoring `max` shows.
pub const RECEIVE_MAX: usize = 7;

/// Receives per drain before the contract gives up.
const MAX_RECEIVES: usize = 60;

/// How a backend batches a send: the `calls` of its [`etl_core::SendReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// One call per send, whatever the number of messages (in process).
    OneCall,
    /// At most this many messages per call (SQS SendMessageBatch: 10), so a
    /// send takes at least `ceil(n / entries)` calls.
    AtMost(usize),
}

/// What happens to a delivery that is neither acknowledged nor released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// It stays in flight until settled. In process, a worker that dies
    /// takes the queue with it, so there is no visibility timeout.
    UntilSettled,
    /// It is visible again after the queue's visibility timeout (SQS). The
    /// value is how long the contract waits for it at most: longer than the
    /// queue's timeout (create the queue with a short one).
    Timeout(Duration),
}

/// Receive until `expect` deliveries arrived (bounded), asserting that no
/// receive returns more than `max`. Panics when fewer or more arrive.
pub async fn receive_exactly(queue: &dyn WorkQueue, expect: usize, max: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    for _ in 0..MAX_RECEIVES {
        if got.len() >= expect {
            break;
        }
        let batch = queue.receive(max, RECEIVE_WAIT).await.expect("receive");
        assert!(
            batch.len() <= max,
            "a receive of at most {max} returned {}",
            batch.len()
        );
        got.extend(batch);
    }
    assert_eq!(
        got.len(),
        expect,
        "deliveries after at most {MAX_RECEIVES} receives"
    );
    got
}

/// Acknowledge every delivery.
pub async fn ack_all(queue: &dyn WorkQueue, deliveries: &[Delivery]) {
    for d in deliveries {
        queue.ack(d).await.expect("ack");
    }
}

/// Assert that a receive with a short wait finds nothing.
pub async fn assert_empty(queue: &dyn WorkQueue, why: &str) {
    let got = queue
        .receive(RECEIVE_MAX, EMPTY_WAIT)
        .await
        .expect("receive on a queue that should be empty");
    let bodies: Vec<&str> = got.iter().map(|d| &*d.body).collect();
    assert!(got.is_empty(), "{why}, yet received {bodies:?}");
}

/// An empty queue's receive returns an empty batch once its wait is over.
pub async fn empty_queue_receives_nothing(queue: &dyn WorkQueue) {
    assert_empty(queue, "nothing was sent").await;
}

/// Sending no messages reports none and enqueues nothing. (`calls` is not
/// checked: SQS makes no call, the in-process queue counts its one.)
pub async fn empty_send_sends_nothing(queue: &dyn WorkQueue) {
    let report = queue.send(&[]).await.expect("send of no messages");
    assert_eq!(report.messages, 0, "{report:?}");
    assert_empty(queue, "an empty send").await;
}

/// A send of [`MESSAGES`] (more than one SQS batch) reports every message
/// and the calls its [`Batching`] implies.
pub async fn send_reports_messages_and_calls(queue: &dyn WorkQueue, batching: Batching) {
    let msgs = messages(MESSAGES);
    let report = queue.send(&msgs).await.expect("send");
    assert_eq!(report.messages, MESSAGES, "{report:?}");
    match batching {
        Batching::OneCall => assert_eq!(report.calls, 1, "{report:?}"),
        Batching::AtMost(entries) => assert!(
            report.calls >= MESSAGES.div_ceil(entries),
            "{MESSAGES} messages at most {entries} per call: {report:?}"
        ),
    }
    let got = receive_exactly(queue, MESSAGES, 10).await;
    ack_all(queue, &got).await;
}

/// Every body sent comes back byte for byte, exactly once, on its first
/// delivery, with distinct message ids and receipts, in receives never
/// larger than asked. The bodies hold astral-plane, combining, RTL and
/// escaped control characters (the fixtures' texts).
pub async fn bodies_round_trip(queue: &dyn WorkQueue) {
    let msgs = messages(MESSAGES);
    queue.send(&msgs).await.expect("send");
    let got = receive_exactly(queue, MESSAGES, RECEIVE_MAX).await;
    let mut sent: Vec<&str> = msgs.iter().map(|m| m.body.as_str()).collect();
    let mut back: Vec<&str> = got.iter().map(|d| &*d.body).collect();
    sent.sort_unstable();
    back.sort_unstable();
    for (i, (b, s)) in back.iter().zip(&sent).enumerate() {
        assert_eq!(b, s, "body {i} (sorted) differs from what was sent");
    }
    let ids: BTreeSet<&str> = got.iter().map(|d| d.message_id.as_str()).collect();
    let receipts: BTreeSet<&str> = got.iter().map(|d| d.receipt.as_str()).collect();
    assert_eq!(ids.len(), MESSAGES, "message ids are distinct");
    assert_eq!(receipts.len(), MESSAGES, "receipts are distinct");
    for d in &got {
        assert_eq!(d.receive_count, 1, "first delivery of {}", d.message_id);
    }
    ack_all(queue, &got).await;
    assert_empty(queue, "every message was acknowledged").await;
}

/// An acknowledged message never comes back, while one left unsettled does
/// (after the visibility timeout, or once released where there is none):
/// so the ack, not the receive, is what removed the first.
pub async fn acked_messages_are_not_redelivered(queue: &dyn WorkQueue, visibility: Visibility) {
    queue.send(&messages(2)).await.expect("send");
    let got = receive_exactly(queue, 2, RECEIVE_MAX).await;
    let (acked, kept) = (&got[0], &got[1]);
    queue.ack(acked).await.expect("ack");
    let receives = match visibility {
        Visibility::UntilSettled => {
            queue
                .release(kept, "contract: settle")
                .await
                .expect("release");
            3
        }
        Visibility::Timeout(t) => t.as_secs() as usize + 3,
    };
    let mut back = Vec::new();
    for _ in 0..receives {
        back.extend(
            queue
                .receive(RECEIVE_MAX, RECEIVE_WAIT)
                .await
                .expect("receive"),
        );
        if !back.is_empty() {
            break;
        }
    }
    assert_eq!(back.len(), 1, "only the unsettled message comes back");
    assert_ne!(
        back[0].message_id, acked.message_id,
        "the acked one came back"
    );
    assert_eq!(back[0].message_id, kept.message_id);
    assert_eq!(back[0].body, kept.body);
    assert_eq!(back[0].receive_count, kept.receive_count + 1);
    ack_all(queue, &back).await;
    assert_empty(queue, "both messages were acknowledged").await;
}

/// A released message is delivered again: same id, same body, its receive
/// count one higher; its neighbour, acknowledged, is not.
pub async fn released_message_is_redelivered(queue: &dyn WorkQueue) {
    queue.send(&messages(2)).await.expect("send");
    let got = receive_exactly(queue, 2, RECEIVE_MAX).await;
    let (released, acked) = (&got[0], &got[1]);
    queue
        .release(released, "contract: released for redelivery")
        .await
        .expect("release");
    queue.ack(acked).await.expect("ack");
    let again = receive_exactly(queue, 1, RECEIVE_MAX).await;
    assert_eq!(again[0].message_id, released.message_id);
    assert_eq!(again[0].body, released.body, "redelivered byte for byte");
    assert_eq!(again[0].receive_count, released.receive_count + 1);
    ack_all(queue, &again).await;
    assert_empty(queue, "the redelivery was acknowledged").await;
}

/// A send the queue refuses for good (a queue that does not exist, one
/// closed for the rest of the run) fails as `Retry::Permanent`, naming the
/// operation and the queue, and nothing is delivered. `queue` must be such
/// a queue.
pub async fn refused_send_is_permanent(queue: &dyn WorkQueue) {
    let err = queue
        .send(&messages(2))
        .await
        .expect_err("a send to a queue that cannot take it fails");
    assert_eq!(err.retry, Retry::Permanent, "{err}");
    assert!(!err.operation.is_empty(), "the operation is named: {err}");
    assert!(!err.target.is_empty(), "the queue is named: {err}");
}

/// Every behaviour, in sequence, on one new queue.
pub async fn all(queue: &dyn WorkQueue, batching: Batching, visibility: Visibility) {
    empty_queue_receives_nothing(queue).await;
    empty_send_sends_nothing(queue).await;
    send_reports_messages_and_calls(queue, batching).await;
    bodies_round_trip(queue).await;
    acked_messages_are_not_redelivered(queue, visibility).await;
    released_message_is_redelivered(queue).await;
}
