//! Helpers for the AWS end-to-end tests that drive the `consumer` crate (the
//! testkit may not depend on it). Moto itself, the source records, the lake
//! readers and the accounting are `etl_testkit`'s.

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
    };
    consumer::BatchHandler::from_deps(deps, "sentiment", etl_core::ConsumeOptions::default(), 4)
}
