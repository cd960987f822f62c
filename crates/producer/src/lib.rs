//! The producer Lambda function: scan the source table, pack records into
//! messages, send them to SQS, and keep the watermark, checkpoint and lock
//! that make runs incremental, resumable and exclusive.
//!
//! `main.rs` only wires things up; [`handler::Producer`] does the work and
//! takes its dependencies as values, so tests run it against moto.
#![warn(missing_docs)]

pub mod config;
pub mod handler;
pub mod request;

pub use config::Config;
pub use handler::{Producer, ProducerState, RunCheckpoint, RunReport, Status, Summary};
pub use request::{Request, RunSpec};
