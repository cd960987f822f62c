//! Test machinery of the sentiment ETL, kept out of the production crates.
//!
//! * [`contract`]: one conformance suite per core trait (`WorkQueue`,
//!   `ObjectSink`, `Catalog`, `QueryEngine`, `SentimentAnalyzer`,
//!   `RecordSource`), a `pub async fn` per behaviour, called by the tests of
//!   every backend (the local ones in `crates/local/tests/contract.rs`, the
//!   AWS ones against moto in `crates/aws/tests/moto/contract.rs`).
//! * [`moto`]: one moto_server per test binary, clients pointed at it, and
//!   helpers to create tables, queues and buckets with unique names.
//! * [`faults`]: a fault-injecting HTTP proxy in front of moto.
//! * [`ComprehendStub`]: a loopback Comprehend for the batch API.
//! * [`ScriptedAnalyzer`]: wraps an analyzer and fails, refuses, panics or
//!   throttles on cue, counting what it did.
//! * [`fixtures`]: records as production sends them (hostile ids, every kind
//!   of Unicode, timestamps relative to now); [`records`]: the plainer
//!   builders the end-to-end scenarios share.
//! * [`accounting`]: every source version exactly once in the lake or in a
//!   dead-letter place with its reason, read back from real Parquet
//!   ([`lake`] for a local lake, [`s3_lake`] for one on moto's S3).
//!
//! Only ever a dev-dependency: `cargo tree -p consumer -e normal` does not
//! list it.
#![warn(missing_docs)]

pub mod accounting;
mod comprehend_stub;
pub mod contract;
pub mod delta_log;
pub mod faults;
pub mod fixtures;
mod http;
pub mod lake;
pub mod moto;
pub mod records;
pub mod s3_lake;
mod scripted;

pub use comprehend_stub::{stub_label, ComprehendStub, StubCounts};
pub use faults::{Fault, FaultCounts, FaultProxy, Rule, Trigger, MAX_HOLD};
pub use moto::*;
pub use scripted::{Script, ScriptCounts, ScriptedAnalyzer, DEFAULT_REFUSAL_MESSAGE};
