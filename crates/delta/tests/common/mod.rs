//! What this crate's integration tests share: a message of one scored
//! record, as the consumer writes it.

use std::path::Path;

use chrono::{DateTime, Utc};
use etl_core::output::{encode_parquet, object_key, to_record_batch};
use etl_core::{Codec, Engine, Label, ScoredRecord, SentimentScore, SourceRecord, WrittenFile};

/// The object of message `content_id` holding one record (`id`, `text`,
/// created and updated at `t`), written under `table` as the consumer's
/// sink would.
pub fn one_record_message(
    table: &Path,
    content_id: &str,
    id: &str,
    text: &str,
    t: DateTime<Utc>,
) -> WrittenFile {
    let row = ScoredRecord {
        record: SourceRecord {
            id: id.to_owned(),
            text: text.to_owned(),
            created_at: t,
            updated_at: t,
            attributes: Default::default(),
        },
        score: SentimentScore {
            label: Label::Neutral,
            positive: 0.1,
            negative: 0.1,
            neutral: 0.8,
            mixed: 0.0,
            compound: Some(0.0),
            language: "en".into(),
            engine: Engine::Vader,
        },
        processed_at: t,
    };
    let body = encode_parquet(&to_record_batch(&[row], true).unwrap(), Codec::Snappy).unwrap();
    let dt = t.date_naive();
    let file = WrittenFile {
        key: object_key(dt, content_id),
        dt,
        body,
    };
    let path = table.join(&file.key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &file.body).unwrap();
    file
}
