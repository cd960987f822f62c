//! Helpers for the AWS end-to-end tests (moto itself is started by
//! `etl_aws::testing`).

pub mod accounting;
pub mod s3_lake;

/// Texts the end-to-end tests cycle through: positive, negative, neutral,
/// "but", and a negated emoticon.
pub const TEXTS: [&str; 5] = [
    "I love this, it is wonderful!",
    "This is terrible and I hate it.",
    "The package arrived on Tuesday.",
    "Great service but awful food.",
    "Not bad at all :)",
];

/// VADER's scores for `docs`, except a permanent `code` error for every
/// document whose text contains `marker` (counted in `refused`): the
/// refusing analyzers of the dead-letter and fault scenarios.
pub fn score_refusing(
    vader: &etl_core::VaderAnalyzer,
    docs: &[etl_core::Document<'_>],
    marker: &str,
    code: &str,
    refused: &std::sync::atomic::AtomicUsize,
) -> Vec<Result<etl_core::SentimentScore, etl_core::AnalyzeError>> {
    docs.iter()
        .map(|d| {
            if d.text.contains(marker) {
                refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Err(etl_core::AnalyzeError::permanent(
                    code,
                    format!("refused {}", d.id),
                ))
            } else {
                Ok(vader.score(d.text))
            }
        })
        .collect()
}
