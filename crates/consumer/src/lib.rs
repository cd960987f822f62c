//! The consumer Lambda function: score the records of each SQS message,
//! write them to the lake as Parquet, register their partitions, and report
//! exactly the messages that failed.
//!
//! `main.rs` only wires things up; [`handler::BatchHandler`] does the work
//! and takes its dependencies as trait objects, so tests run it against moto
//! (or anything else implementing core's traits).
#![warn(missing_docs)]

pub mod config;
pub mod handler;

pub use config::Config;
pub use handler::{BatchHandler, BatchOutcome, BatchStats, Deps};
