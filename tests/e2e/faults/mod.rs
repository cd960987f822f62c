//! Reliability scenarios: the pipeline under injected faults, each ending
//! with an exact accounting — every source record is exactly once in the
//! lake (read back from Parquet) or in a dead-letter place with a reason,
//! nothing else.
//!
//! AWS scenarios run the real producer and consumer handlers against moto
//! through `etl_testkit::FaultProxy` (throttling, 5xx, connection
//! resets, slow answers, partially failed SQS batches) and, for Comprehend,
//! the loopback `ComprehendStub`. The SQS event source mapping is played by
//! [`drain`]: receive a batch, run the handler, delete what succeeded, make
//! what failed visible again (as its visibility timeout would); moto's
//! redrive policy moves a message to the dead-letter queue after the
//! maximum receive count. Local scenarios run `etl_local` with failing
//! analyzers (`etl_testkit::ScriptedAnalyzer`).
//!
//! * [`harness`]: the AWS environment ([`Aws`]), [`drain`], [`Recorder`].
//! * [`producing`]: the producer interrupted, overlapping, its scan and
//!   sends failing.
//! * [`consuming`]: the consumer crashing before its ack, duplicate
//!   deliveries, a poison message.
//! * [`services`]: Comprehend, S3 and Glue failing for a while.
//! * [`local`]: the local pipeline with a failing analyzer and duplicates.
//! * [`lost_answers`]: lost answers and hangs (a request applied but never
//!   answered, or held until the client's timeout gives up).
//!
//! Source records (`etl_testkit::records`) and the accounting
//! (`etl_testkit::accounting`) are the testkit's. With
//! `RELIABILITY_REPORT=<path>` each scenario appends one JSON line with its
//! figures (faults injected per kind and operation, records accounted);
//! `make reliability` summarises them (tools/reliability_report.py).
//!
//! The scenario modules take everything below with `use super::*`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use etl_aws::{ComprehendAnalyzer, LanguageMode, SqsQueue};
use etl_core::{decode_message, ConsumeOptions, Consumer, SourceRecord, VaderAnalyzer, WorkQueue};
use etl_testkit::accounting::{
    assert_ok, dead_versions, distinct_versions, exactly_once, report, versions, Accounting,
    FromLake, Version,
};
use etl_testkit::records::{ids, pack, plain_records, record, TEXTS};
use etl_testkit::{
    s3_lake, stub_label, ComprehendStub, Fault, Rule, Script, ScriptedAnalyzer, Trigger,
};
use producer::{Request, Status};
use serde_json::json;
use tokio::sync::Notify;

use harness::*;

mod consuming;
mod harness;
mod local;
mod lost_answers;
mod producing;
mod services;
