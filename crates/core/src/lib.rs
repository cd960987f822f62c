//! Core of the sentiment ETL: the domain with no I/O.
//!
//! Records and their validation, sentiment results and the VADER engine,
//! message packing with content ids, the Arrow/Parquet output and its Hive
//! layout, the backend traits and the two pipeline steps. The AWS and local
//! crates implement the traits; the Lambda functions and the `etl` command
//! wire them together.
#![warn(missing_docs)]

pub mod accounting;
pub mod backend;
pub mod batch;
pub mod clock;
pub mod dead_letter;
pub mod error;
pub mod eval;
pub mod incremental;
pub mod message;
pub mod output;
pub mod pipeline;
pub mod record;
pub mod retry;
pub mod sentiment;
pub mod vader;
pub mod views;
pub mod window;

pub use backend::{
    Catalog, Delivery, NoOutbox, ObjectSink, Outbox, QueryEngine, RecordSource, Rejection,
    SendReport, SourceItem, TableCommit, WorkQueue, WrittenFile,
};
pub use batch::{consume_batch, BatchMessage, MessageResult};
pub use clock::{Clock, FixedClock, SystemClock, SYSTEM_CLOCK};
pub use dead_letter::{DeadLetterMessage, DeadLetterSink};
pub use error::{AnalyzeError, BackendError, Chain, EncodeError, MessageError, RecordError, Retry};
pub use incremental::{
    fingerprint, write_ledger, Fingerprint, Ledger, LedgerEntries, LedgerError, LedgerFilter,
    VersionLedger, LEDGER_ENTRY_BYTES,
};
pub use message::{build_message, decode_message, OutgoingMessage, Packer, QueueMessage};
pub use output::{Codec, ScoredRecord};
pub use pipeline::{
    produce_with, ChangeFilter, ConsumeError, ConsumeOptions, Consumer, MessageOutcome,
    ProduceStats, Routes, ScoreMemo,
};
pub use record::{FieldMap, SourceRecord};
pub use retry::RetryPolicy;
pub use sentiment::{Document, Engine, Label, SentimentAnalyzer, SentimentScore};
pub use vader::VaderAnalyzer;
pub use window::{complete_run, Completed, RunKind, RunWindow};
