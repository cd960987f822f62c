//! Local backends of the sentiment ETL: the pipeline on one machine with no
//! AWS account.
//!
//! File sources (JSON lines, CSV), an in-process queue with SQS semantics, a
//! filesystem lake in the S3 Hive layout, a catalog file in Glue's role, and
//! DataFusion in Athena's. [`run::run`] wires them into `etl run`.
#![warn(missing_docs)]

pub mod catalog;
pub mod dead_letter;
pub mod format;
mod fpset;
pub mod history;
pub mod labels;
pub mod lock;
pub mod outbox;
pub mod query;
pub mod queue;
pub mod reconcile;
pub mod redrive;
mod rejects;
pub mod run;
pub mod sink;
pub mod source;
pub mod state;
pub mod status;
pub mod workers;

pub use catalog::LocalCatalog;
pub use dead_letter::DeadLetterFile;
pub use lock::{LakeLock, LockError};
pub use outbox::FileOutbox;
pub use query::DataFusionQuery;
pub use queue::{DeadLetter, InProcessQueue, QueueConfig};
pub use run::{run, run_with, RunConfig, RunCounters, RunError, RunSummary};
pub use sink::FsSink;
pub use source::{FileSource, InputFormat};
pub use state::{LakeState, StateError};
