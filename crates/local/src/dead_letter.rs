//! Refused records on the local lake: the same `_dead_letter/messages.jsonl`
//! the in-process queue writes whole messages to, one [`DeadLetter`] line per
//! refused-records message, whose body is a v1 message of only those
//! records and whose `record_reasons` say why each was refused.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use etl_core::{BackendError, DeadLetterMessage, DeadLetterSink};

use crate::queue::{append_dead_letter, DeadLetter};

/// The lake's dead-letter file as a core [`DeadLetterSink`].
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    letters: AtomicU64,
    records: AtomicU64,
}

impl DeadLetterFile {
    /// Append to `path` (created with its directory on first use).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            letters: AtomicU64::new(0),
            records: AtomicU64::new(0),
        }
    }

    /// Dead letters and records written so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.letters.load(Ordering::Relaxed),
            self.records.load(Ordering::Relaxed),
        )
    }
}

#[async_trait]
impl DeadLetterSink for DeadLetterFile {
    async fn put(&self, letter: &DeadLetterMessage) -> Result<(), BackendError> {
        let dl = DeadLetter {
            message_id: letter.source_message_id.clone(),
            content_id: Some(letter.message.content_id.clone()),
            reason: letter.summary(),
            reasons: letter
                .reasons
                .iter()
                .map(|(id, why)| format!("{id}: {why}"))
                .collect(),
            receive_count: letter.receive_count,
            record_ids: letter.reasons.iter().map(|(id, _)| id.clone()).collect(),
            body: letter.message.body.clone(),
            dead_lettered_at: chrono::Utc::now().to_rfc3339(),
            source_content_id: Some(letter.source_content_id.clone()),
            record_reasons: letter.reasons.iter().cloned().collect(),
        };
        append_dead_letter(&self.path, &dl)?;
        self.letters.fetch_add(1, Ordering::Relaxed);
        self.records
            .fetch_add(letter.reasons.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}
