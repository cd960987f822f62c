//! An in-process queue with SQS semantics.
//!
//! At-least-once delivery in batches, per-message acknowledgement, release for
//! redelivery, and a dead-letter file once a message has been received
//! `max_receive_count` times. Capacity is bounded so a fast producer waits for
//! the consumers instead of buffering the whole input in memory.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etl_core::{BackendError, Delivery, OutgoingMessage, SendReport, WorkQueue};
use serde::Serialize;
use tokio::sync::{Mutex, Notify, Semaphore};

/// Queue settings.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Receives after which a failing message is dead-lettered (SQS `maxReceiveCount`).
    pub max_receive_count: u32,
    /// Messages held (ready + in flight) before `send` waits.
    pub capacity: usize,
    /// Where dead letters are appended as JSON lines.
    pub dead_letter_path: PathBuf,
}

#[derive(Debug)]
struct Stored {
    message_id: String,
    body: Arc<str>,
    receive_count: u32,
    reasons: Vec<String>,
}

#[derive(Debug, Default)]
struct State {
    ready: VecDeque<Stored>,
    in_flight: HashMap<String, Stored>,
    closed: bool,
    aborted: bool,
    next_id: u64,
    next_receipt: u64,
    dead_letters: u64,
    dead_letter_records: u64,
}

/// One dead-lettered message, as written to the dead-letter file.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct DeadLetter {
    /// Queue message id.
    pub message_id: String,
    /// Content id, when the body could be read.
    pub content_id: Option<String>,
    /// Reason of the last failure.
    pub reason: String,
    /// Every failure reason, in order.
    pub reasons: Vec<String>,
    /// How many times it was received.
    pub receive_count: u32,
    /// Ids of the records inside, when the body could be read.
    pub record_ids: Vec<String>,
    /// The body, kept so the message can be replayed.
    pub body: String,
    /// When it was dead-lettered.
    pub dead_lettered_at: String,
    /// For refused records dead-lettered alone: the content id of the
    /// message they came from (`content_id` is then the dead letter's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_content_id: Option<String>,
    /// For refused records dead-lettered alone: the reason per record id.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub record_reasons: std::collections::BTreeMap<String, String>,
}

/// The queue. Cheap to share behind an `Arc`.
pub struct InProcessQueue {
    cfg: QueueConfig,
    state: Mutex<State>,
    notify: Notify,
    slots: Arc<Semaphore>,
}

impl InProcessQueue {
    /// A new, empty queue.
    pub fn new(cfg: QueueConfig) -> Self {
        let slots = Arc::new(Semaphore::new(cfg.capacity.max(1)));
        Self {
            cfg,
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            slots,
        }
    }

    /// No more messages will be sent; receivers get an empty batch once the
    /// queue is drained (nothing ready and nothing in flight).
    pub async fn close(&self) {
        self.state.lock().await.closed = true;
        self.notify.notify_waiters();
    }

    /// Whether the queue is closed and fully drained (or aborted).
    pub async fn is_drained(&self) -> bool {
        let s = self.state.lock().await;
        s.aborted || (s.closed && s.ready.is_empty() && s.in_flight.is_empty())
    }

    /// Stop everything after a fatal error: pending and future sends fail,
    /// receivers get empty batches. Undelivered messages stay undelivered; the
    /// caller does not advance its watermark, so a re-run sends them again.
    pub async fn abort(&self) {
        let mut s = self.state.lock().await;
        s.aborted = true;
        s.closed = true;
        drop(s);
        self.slots.close();
        self.notify.notify_waiters();
    }

    /// Messages and records dead-lettered so far.
    pub async fn dead_letter_counts(&self) -> (u64, u64) {
        let s = self.state.lock().await;
        (s.dead_letters, s.dead_letter_records)
    }

    fn write_dead_letter(&self, dl: &DeadLetter) -> Result<(), BackendError> {
        append_dead_letter(&self.cfg.dead_letter_path, dl)
    }
}

/// Append one dead letter to the JSON-lines file at `path` and sync it.
pub(crate) fn append_dead_letter(
    path: &std::path::Path,
    dl: &DeadLetter,
) -> Result<(), BackendError> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            BackendError::permanent_from("create dir", dir.display().to_string(), e)
        })?;
    }
    let mut line = serde_json::to_string(dl)
        .map_err(|e| BackendError::permanent_from("encode dead letter", &dl.message_id, e))?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| BackendError::permanent_from("open", path.display().to_string(), e))?;
    f.write_all(line.as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| BackendError::permanent_from("append", path.display().to_string(), e))
}

#[async_trait]
impl WorkQueue for InProcessQueue {
    async fn send(&self, messages: &[OutgoingMessage]) -> Result<SendReport, BackendError> {
        for m in messages {
            let permit = self
                .slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| BackendError::permanent("send", "in-process queue", e))?;
            // The slot is returned when the message is acknowledged or dead-lettered.
            permit.forget();
            let mut s = self.state.lock().await;
            if s.closed {
                return Err(BackendError::permanent(
                    "send",
                    "in-process queue",
                    "queue is closed",
                ));
            }
            s.next_id += 1;
            let message_id = format!(
                "msg-{:08}-{}",
                s.next_id,
                &m.content_id[..m.content_id.len().min(12)]
            );
            s.ready.push_back(Stored {
                message_id,
                body: Arc::from(m.body.as_str()),
                receive_count: 0,
                reasons: Vec::new(),
            });
            drop(s);
            self.notify.notify_one();
        }
        // One in-process call, whatever SQS would need for the same batch
        // (that is counted by the SQS backend, which splits by size as well).
        Ok(SendReport {
            messages: messages.len(),
            calls: 1,
        })
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BackendError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.state.lock().await;
                if s.aborted {
                    return Ok(Vec::new());
                }
                if !s.ready.is_empty() {
                    let mut out = Vec::new();
                    while out.len() < max.max(1) {
                        let Some(mut m) = s.ready.pop_front() else {
                            break;
                        };
                        m.receive_count += 1;
                        s.next_receipt += 1;
                        let receipt = format!("rcpt-{}", s.next_receipt);
                        out.push(Delivery {
                            message_id: m.message_id.clone(),
                            receipt: receipt.clone(),
                            body: m.body.clone(),
                            receive_count: m.receive_count,
                        });
                        s.in_flight.insert(receipt, m);
                    }
                    if !s.ready.is_empty() {
                        self.notify.notify_one();
                    }
                    return Ok(out);
                }
                if s.closed && s.in_flight.is_empty() {
                    return Ok(Vec::new());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), BackendError> {
        let mut s = self.state.lock().await;
        if s.in_flight.remove(&delivery.receipt).is_none() {
            return Err(BackendError::permanent(
                "ack",
                &delivery.message_id,
                "unknown or expired receipt",
            ));
        }
        let drained = s.closed && s.ready.is_empty() && s.in_flight.is_empty();
        drop(s);
        self.slots.add_permits(1);
        if drained {
            self.notify.notify_waiters();
        }
        Ok(())
    }

    async fn release(&self, delivery: &Delivery, reason: &str) -> Result<(), BackendError> {
        let mut s = self.state.lock().await;
        let Some(mut m) = s.in_flight.remove(&delivery.receipt) else {
            return Err(BackendError::permanent(
                "release",
                &delivery.message_id,
                "unknown or expired receipt",
            ));
        };
        m.reasons.push(reason.to_owned());
        if m.receive_count >= self.cfg.max_receive_count {
            let decoded = etl_core::decode_message(&m.body).ok();
            let dl = DeadLetter {
                message_id: m.message_id.clone(),
                content_id: decoded.as_ref().map(|d| d.content_id.clone()),
                reason: reason.to_owned(),
                reasons: m.reasons.clone(),
                receive_count: m.receive_count,
                record_ids: decoded
                    .map(|d| d.records.into_iter().map(|r| r.id).collect())
                    .unwrap_or_default(),
                body: m.body.to_string(),
                dead_lettered_at: chrono::Utc::now().to_rfc3339(),
                source_content_id: None,
                record_reasons: Default::default(),
            };
            s.dead_letters += 1;
            s.dead_letter_records += dl.record_ids.len() as u64;
            let drained = s.closed && s.ready.is_empty() && s.in_flight.is_empty();
            drop(s);
            self.slots.add_permits(1);
            if drained {
                self.notify.notify_waiters();
            }
            tracing::warn!(message = "Message dead-lettered.", message_id = %dl.message_id, receive_count = dl.receive_count, reason = %dl.reason, records = dl.record_ids.len());
            return self.write_dead_letter(&dl);
        }
        s.ready.push_back(m);
        drop(s);
        self.notify.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etl_core::{build_message, SourceRecord};

    fn msg(id: &str) -> OutgoingMessage {
        let t = chrono::Utc::now();
        build_message(vec![SourceRecord {
            id: id.into(),
            text: "hello".into(),
            created_at: t,
            updated_at: t,
            attributes: Default::default(),
        }])
    }

    fn queue(dir: &std::path::Path, cap: usize) -> InProcessQueue {
        InProcessQueue::new(QueueConfig {
            max_receive_count: 3,
            capacity: cap,
            dead_letter_path: dir.join("dlq.jsonl"),
        })
    }

    #[tokio::test]
    async fn delivers_in_batches_and_drains_after_acks() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(dir.path(), 100);
        let msgs: Vec<_> = (0..25).map(|i| msg(&i.to_string())).collect();
        q.send(&msgs).await.unwrap();
        q.close().await;
        let mut seen = 0;
        loop {
            let batch = q.receive(10, Duration::from_secs(1)).await.unwrap();
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() <= 10);
            for d in &batch {
                assert_eq!(d.receive_count, 1);
                q.ack(d).await.unwrap();
            }
            seen += batch.len();
        }
        assert_eq!(seen, 25);
        assert!(q.is_drained().await);
        assert!(q
            .ack(&Delivery {
                message_id: "x".into(),
                receipt: "nope".into(),
                body: "".into(),
                receive_count: 1
            })
            .await
            .is_err());
    }

    #[tokio::test]
    async fn released_message_is_redelivered_then_dead_lettered() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(dir.path(), 10);
        q.send(&[msg("poison"), msg("fine")]).await.unwrap();
        q.close().await;
        let mut receives = Vec::new();
        loop {
            let batch = q.receive(10, Duration::from_secs(1)).await.unwrap();
            if batch.is_empty() {
                break;
            }
            for d in batch {
                if d.body.contains("poison") {
                    receives.push(d.receive_count);
                    q.release(&d, &format!("boom {}", d.receive_count))
                        .await
                        .unwrap();
                } else {
                    q.ack(&d).await.unwrap();
                }
            }
        }
        assert_eq!(receives, vec![1, 2, 3]);
        assert_eq!(q.dead_letter_counts().await, (1, 1));
        let text = std::fs::read_to_string(dir.path().join("dlq.jsonl")).unwrap();
        let dl: DeadLetter = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(dl.record_ids, vec!["poison"]);
        assert_eq!(dl.reason, "boom 3");
        assert_eq!(dl.reasons.len(), 3);
        assert_eq!(dl.receive_count, 3);
    }

    #[tokio::test]
    async fn send_waits_for_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let q = Arc::new(queue(dir.path(), 2));
        q.send(&[msg("a"), msg("b")]).await.unwrap();
        let q2 = q.clone();
        let blocked = tokio::spawn(async move { q2.send(&[msg("c")]).await });
        // Yield until the sender is parked on the semaphore (bounded).
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        assert!(
            !blocked.is_finished(),
            "third send must wait for a free slot"
        );
        let d = q.receive(1, Duration::from_secs(1)).await.unwrap();
        q.ack(&d[0]).await.unwrap();
        blocked.await.unwrap().unwrap();
    }
}
