//! Refused records on the local lake: the same `_dead_letter/messages.jsonl`
//! the in-process queue writes whole messages to, one [`DeadLetter`] line per
//! refused-records message, whose body is a v1 message of only those
//! records and whose `record_reasons` say why each was refused.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
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

    /// The ids of the records refused out of the message `source_content_id`,
    /// as the file records them (read line by line; a torn or foreign line
    /// is skipped). A redelivery of a message an interrupted run committed
    /// learns from here what that run refused, since the table holds only
    /// what landed.
    pub fn refused_from(&self, source_content_id: &str) -> std::io::Result<HashSet<String>> {
        let mut ids = HashSet::new();
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(e),
        };
        for line in BufReader::new(file).lines() {
            let line = line?;
            let Ok(dl) = serde_json::from_str::<DeadLetter>(&line) else {
                continue;
            };
            if dl.source_content_id.as_deref() == Some(source_content_id) {
                ids.extend(dl.record_ids);
            }
        }
        Ok(ids)
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

#[cfg(test)]
mod tests {
    use super::*;
    use etl_core::record::SourceRecord;
    use etl_core::AnalyzeError;

    fn refused(id: &str) -> (SourceRecord, AnalyzeError) {
        let at = chrono::Utc::now() - chrono::Duration::hours(3);
        (
            SourceRecord {
                id: id.into(),
                text: format!("text of {id}"),
                created_at: at,
                updated_at: at,
                attributes: Default::default(),
            },
            AnalyzeError::permanent("InvalidRequest", "empty after normalisation"),
        )
    }

    #[tokio::test]
    async fn refused_from_names_only_the_records_of_that_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("_dead_letter/messages.jsonl");
        let file = DeadLetterFile::new(&path);
        assert!(
            file.refused_from("cid-a").unwrap().is_empty(),
            "no file yet"
        );
        let a = DeadLetterMessage::new("m1", "cid-a", 1, vec![refused("a/../1 x"), refused("a2")]);
        let b = DeadLetterMessage::new("m2", "cid-b", 1, vec![refused("b1")]);
        file.put(&a).await.unwrap();
        file.put(&b).await.unwrap();
        // A torn last line (a crash mid-append) is skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"message_id\":\"m3\",\"sou"))
            .unwrap();
        let got = file.refused_from("cid-a").unwrap();
        assert_eq!(got, HashSet::from(["a/../1 x".to_owned(), "a2".to_owned()]));
        assert_eq!(
            file.refused_from("cid-b").unwrap(),
            HashSet::from(["b1".to_owned()])
        );
        assert!(file.refused_from("cid-c").unwrap().is_empty());
    }
}
