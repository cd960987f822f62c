//! The conformance suite: one module per core trait, a `pub async fn` per
//! behaviour every backend must show (in the manner of object_store's
//! `integration.rs`), so "the local queue behaves like SQS" is a test, not
//! a hope.
//!
//! | module       | trait               | local backend      | AWS backend          |
//! |--------------|---------------------|--------------------|----------------------|
//! | [`queue`]    | `WorkQueue`         | `InProcessQueue`   | `SqsQueue`           |
//! | [`sink`]     | `ObjectSink`        | `FsSink`           | `S3Sink`             |
//! | [`catalog`]  | `Catalog`           | `LocalCatalog`     | `GlueCatalog`        |
//! | [`query`]    | `QueryEngine`       | `DataFusionQuery`  | `AthenaQuery`        |
//! | [`analyzer`] | `SentimentAnalyzer` | `VaderAnalyzer`    | `ComprehendAnalyzer` |
//! | [`source`]   | `RecordSource`      | `FileSource`       | `DynamoSource`       |
//!
//! Callers: `crates/local/tests/contract.rs` and
//! `crates/aws/tests/moto/contract.rs`, one `#[tokio::test]` per behaviour
//! per backend, so a failure names both. Each module also has an `all` that
//! runs its behaviours in sequence on one backend, where that makes sense.
//!
//! Each behaviour takes the backend as a trait object and panics with a
//! message naming what broke. Where the trait cannot observe its own effect
//! (an `ObjectSink` has no get, a `Catalog` no list), the caller passes a
//! small probe it implements for its backend ([`sink::SinkProbe`],
//! [`catalog::CatalogProbe`]). Where backends genuinely differ, the
//! difference is a parameter documented at the function
//! ([`queue::Batching`], [`queue::Visibility`], the text an analyzer
//! refuses), never a silently skipped assertion.
//!
//! Every behaviour keeps the test rules: it never sleeps (waiting happens
//! only inside a backend's own bounded receive or poll), every loop is
//! bounded, and it contacts nothing but the backend it is given, which the
//! caller points at 127.0.0.1.

pub mod analyzer;
pub mod catalog;
pub mod query;
pub mod queue;
pub mod sink;
pub mod source;

use chrono::NaiveDate;
use etl_core::{build_message, OutgoingMessage};

use crate::fixtures::hostile_records;

/// `n` distinct messages of one to three hostile records each (see
/// [`crate::fixtures`]), built as the producer builds them.
pub fn messages(n: usize) -> Vec<OutgoingMessage> {
    let mut records = hostile_records(3 * n).into_iter().map(|f| f.to_record());
    (0..n)
        .map(|i| build_message(records.by_ref().take(1 + i % 3).collect()))
        .collect()
}

/// A date from `YYYY-MM-DD`, for the partition behaviours.
pub fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a YYYY-MM-DD date")
}
