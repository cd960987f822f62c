//! Adapter tests against moto_server (started once for this binary by
//! `etl_testkit::moto`). Each test creates its own tables, queues and
//! buckets, so they run in parallel.
// Test helpers unwrap too: a failed setup is the test failing
// (`allow-unwrap-in-tests` only covers the `#[test]` functions themselves).
#![allow(clippy::unwrap_used)]

mod athena;
mod contract;
mod dynamodb;
mod glue;
mod s3;
mod sqs;
mod state;
