//! Helpers for the AWS end-to-end tests (moto itself is started by
//! `etl_testkit`).

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

/// The consumer handler as the template wires it for VADER, writing under
/// `s3://bucket/lake/` and registering partitions in `database.sentiment`.
pub fn vader_consumer(
    clients: &etl_aws::Clients,
    bucket: &str,
    database: &str,
) -> consumer::BatchHandler {
    let sink = etl_aws::S3Sink::new(clients.s3.clone(), bucket, "lake");
    let catalog = etl_aws::GlueCatalog::new(
        clients.glue.clone(),
        database,
        "sentiment",
        sink.table_location(),
    );
    let deps = consumer::Deps {
        analyzer: std::sync::Arc::new(etl_core::VaderAnalyzer::new()),
        sink: std::sync::Arc::new(sink),
        catalog: std::sync::Arc::new(catalog),
        views: None,
        comprehend: None,
    };
    consumer::BatchHandler::from_deps(deps, "sentiment", etl_core::ConsumeOptions::default(), 4)
}
