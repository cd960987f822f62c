//! One consumer invocation: an SQS batch in, a partial batch response out.
//!
//! The batch goes through core's `consume_batch`: a bounded number of
//! messages at a time, each isolated, so a malformed message, a record
//! Comprehend refuses, or even a panic fails that message alone; the
//! response lists exactly those message ids and SQS redelivers only them
//! (then dead-letters them after `maxReceiveCount`). What no single message
//! owns fails the whole invocation instead: a record without a message id
//! (SQS would not know what to retry) or a Glue table that cannot be created
//! (no partition could be registered). The Athena views are attempted once
//! per container next to the first batch; failing to create them is logged
//! and does not touch the messages.
//!
//! Records the analyzer refuses fail alone: with a dead-letter queue
//! configured, core's `Consumer::consume_routed` writes the message's good
//! records and sends only the refused ones, with their reasons, to that
//! queue; the message then succeeds. Records that fail transiently are
//! re-enqueued on the work queue as a new message of only those records.
//! No message is started when the invocation's deadline is closer than the
//! margin: those are reported as failed, untouched and unbilled, rather
//! than cut off by the timeout after Comprehend has been paid for them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use etl_aws::emf::{cold_start, Metrics};
use etl_aws::lambda::InvocationError;
use etl_aws::sqs::SqsDeadLetters;
use etl_aws::{AthenaQuery, Clients, ComprehendAnalyzer, GlueCatalog, RateLimiter, S3Sink};
use etl_core::output::TableFormat;
use etl_core::{
    consume_batch, BackendError, BatchMessage, Catalog, Clock, ConsumeOptions, Consumer,
    DeadLetterSink, Engine, MessageOutcome, MessageResult, ObjectSink, Retry, Routes, ScoreMemo,
    SentimentAnalyzer, VaderAnalyzer, SYSTEM_CLOCK,
};
use etl_delta::DeltaCatalog;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::config::Config;

/// The backends a batch is processed with.
#[derive(Clone)]
pub struct Deps {
    /// Sentiment engine.
    pub analyzer: Arc<dyn SentimentAnalyzer>,
    /// The lake.
    pub sink: Arc<dyn ObjectSink>,
    /// The catalog.
    pub catalog: Arc<dyn Catalog>,
    /// Athena, for the views (`None`: no views).
    pub views: Option<Arc<AthenaQuery>>,
}

/// Counts of one invocation, logged and turned into metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BatchStats {
    /// Messages in the event.
    pub messages_in: u64,
    /// Messages reported as failed.
    pub messages_failed: u64,
    /// Records written.
    pub records_out: u64,
    /// Parquet objects written.
    pub objects: u64,
    /// Bytes of Parquet written.
    pub bytes_written: u64,
    /// Comprehend billing units used.
    pub comprehend_units: u64,
    /// Records refused by the analyzer and sent to the dead-letter queue.
    pub records_refused: u64,
    /// Messages not started because the deadline was near (also in `messages_failed`).
    pub messages_untaken: u64,
}

impl BatchStats {
    /// The invocation's EMF metrics.
    pub fn metrics(&self, cold: u64) -> Metrics {
        Metrics::new("consumer")
            .count("MessagesIn", self.messages_in)
            .count("MessagesFailed", self.messages_failed)
            .count("RecordsOut", self.records_out)
            .count("ComprehendUnits", self.comprehend_units)
            .count("RecordsRefused", self.records_refused)
            .count("MessagesUntaken", self.messages_untaken)
            .bytes("BytesWritten", self.bytes_written)
            .count("ColdStart", cold)
    }
}

/// What a batch produced.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    /// The partial batch response: exactly the failed message ids.
    pub response: SqsBatchResponse,
    /// Counts.
    pub stats: BatchStats,
    /// Per successful message: its outcome.
    pub outcomes: Vec<MessageOutcome>,
}

/// The consumer with its dependencies, built once per container.
pub struct BatchHandler {
    deps: Deps,
    table: String,
    options: ConsumeOptions,
    concurrency: usize,
    views_tried: AtomicBool,
    dead_letters: Option<Arc<dyn DeadLetterSink>>,
    deadline_margin: Duration,
    memo: ScoreMemo,
    clock: &'static dyn Clock,
}

/// Messages whose scores a container keeps when writing or routing them
/// failed after scoring (so their redelivery here is not billed again).
const MEMO_MESSAGES: usize = 32;

/// Why a message was not processed: the deadline was too close to start it.
const UNTAKEN: &str = "not started: the invocation deadline is closer than DEADLINE_MARGIN_MS";

impl BatchHandler {
    /// Wire the consumer to AWS.
    pub async fn new(config: &Config, clients: &Clients) -> Result<Self, BackendError> {
        let sink = S3Sink::new(
            clients.s3.clone(),
            &config.output_bucket,
            &config.output_prefix,
        );
        let catalog: Arc<dyn Catalog> = match config.table_format {
            TableFormat::Hive => Arc::new(GlueCatalog::new(
                clients.glue.clone(),
                &config.glue_database,
                &config.glue_table,
                sink.table_location(),
            )),
            TableFormat::Delta => Arc::new(DeltaCatalog::new(Arc::new(
                etl_aws::delta::delta_lake(
                    &clients.config,
                    &sink.table_location(),
                    config.include_text,
                )
                .await?,
            ))),
        };
        let analyzer: Arc<dyn SentimentAnalyzer> = match config.engine {
            Engine::Comprehend => Arc::new(
                ComprehendAnalyzer::new(clients.comprehend.clone(), config.language.clone())
                    .with_rate_limiter(Arc::new(RateLimiter::per_second(
                        config.comprehend_max_tps,
                    ))),
            ),
            Engine::Vader => Arc::new(VaderAnalyzer::new()),
        };
        let views = config.athena_workgroup.as_ref().map(|wg| {
            let q = AthenaQuery::new(clients.athena.clone(), wg, &config.glue_database);
            Arc::new(match &config.athena_output_location {
                Some(loc) => q.with_output_location(loc),
                None => q,
            })
        });
        let deps = Deps {
            analyzer,
            sink: Arc::new(sink),
            catalog,
            views,
        };
        let options = ConsumeOptions {
            codec: config.codec,
            include_text: config.include_text,
        };
        let mut handler = Self::from_deps(deps, &config.glue_table, options, config.concurrency)
            .with_deadline_margin(config.deadline_margin);
        if let Some(url) = &config.dead_letter_queue_url {
            handler =
                handler.with_dead_letters(Arc::new(SqsDeadLetters::new(clients.sqs.clone(), url)));
        }
        Ok(handler)
    }

    /// Assemble from dependencies (tests inject their own). `table` is the
    /// catalog table the views read.
    pub fn from_deps(deps: Deps, table: &str, options: ConsumeOptions, concurrency: usize) -> Self {
        Self {
            deps,
            table: table.to_owned(),
            options,
            concurrency: concurrency.max(1),
            views_tried: AtomicBool::new(false),
            dead_letters: None,
            deadline_margin: Duration::ZERO,
            memo: ScoreMemo::new(MEMO_MESSAGES),
            clock: &SYSTEM_CLOCK,
        }
    }

    /// Stamp `processed_at` from `clock` (tests pin it).
    pub fn with_clock(mut self, clock: &'static dyn Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Send refused records there instead of failing their message.
    pub fn with_dead_letters(mut self, sink: Arc<dyn DeadLetterSink>) -> Self {
        self.dead_letters = Some(sink);
        self
    }

    /// Start no message when less than `margin` is left before the deadline.
    pub fn with_deadline_margin(mut self, margin: Duration) -> Self {
        self.deadline_margin = margin;
        self
    }

    /// The Lambda entry point: process, log the summary, emit metrics, and
    /// map an invocation failure to `errorType` `Retryable` / `NonRetryable`.
    pub async fn invoke(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, Diagnostic> {
        let cold = cold_start();
        let deadline = deadline_instant(event.context.deadline);
        // Boxed: the batch future is deep enough to trip the compiler's layout depth limit.
        match Box::pin(self.handle_until(event.payload, Some(deadline))).await {
            Ok(outcome) => {
                info!(message = "Consumer batch finished.", stats = %serde_json::to_value(&outcome.stats).unwrap_or_default());
                outcome.stats.metrics(cold).emit();
                Ok(outcome.response)
            }
            Err(e) => {
                error!(message = "Consumer invocation failed.", error_type = e.error_type(), error = %e);
                BatchStats::default().metrics(cold).emit();
                Err(e.into())
            }
        }
    }

    /// Process one SQS batch with no deadline.
    pub async fn handle(&self, event: SqsEvent) -> Result<BatchOutcome, InvocationError> {
        self.handle_until(event, None).await
    }

    /// Process one SQS batch; messages not started `deadline_margin` before
    /// `deadline` are reported as failed without being processed.
    pub async fn handle_until(
        &self,
        event: SqsEvent,
        deadline: Option<Instant>,
    ) -> Result<BatchOutcome, InvocationError> {
        let mut messages = Vec::with_capacity(event.records.len());
        for (i, m) in event.records.into_iter().enumerate() {
            let receive_count = m
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            match m.message_id.filter(|id| !id.is_empty()) {
                Some(id) => messages.push((id, m.body.unwrap_or_default(), receive_count)),
                None => {
                    return Err(InvocationError::permanent(format!(
                        "SQS record {i} has no messageId; cannot report it as a batch item failure"
                    )))
                }
            }
        }
        self.deps.catalog.ensure_table().await?;
        let views = async {
            if let Some(q) = &self.deps.views {
                if !self.views_tried.swap(true, Ordering::Relaxed) {
                    if let Err(e) = q.ensure_views(&self.table).await {
                        warn!(message = "Could not create the Athena views; messages are unaffected.", error = %e);
                    }
                }
            }
        };
        let total = messages.len();
        let start_by = deadline.map(|d| {
            d.checked_sub(self.deadline_margin)
                .unwrap_or_else(Instant::now)
        });
        let may_start = move || start_by.is_none_or(|t| Instant::now() < t);
        let batch: Vec<BatchMessage<'_>> = messages
            .iter()
            .map(|(id, body, receive_count)| BatchMessage {
                message_id: id,
                body,
                receive_count: *receive_count,
            })
            .collect();
        let consumer = Consumer {
            analyzer: &*self.deps.analyzer,
            sink: &*self.deps.sink,
            catalog: &*self.deps.catalog,
            options: self.options,
            clock: self.clock,
        };
        let routes = Routes {
            dead_letters: self.dead_letters.as_deref(),
            receive_count: 1,
            memo: Some(&self.memo),
        };
        let process = consume_batch(&consumer, routes, &batch, self.concurrency, &may_start);
        let ((), results) = tokio::join!(views, process);

        let mut response = SqsBatchResponse::default();
        let mut stats = BatchStats {
            messages_in: total as u64,
            ..BatchStats::default()
        };
        let mut outcomes = Vec::new();
        for ((id, _, _), result) in messages.iter().zip(results) {
            match result {
                MessageResult::NotStarted => {
                    stats.messages_untaken += 1;
                    stats.messages_failed += 1;
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = id.clone();
                    response.batch_item_failures.push(failure);
                }
                MessageResult::Done(o) => {
                    stats.records_out += o.records as u64;
                    stats.records_refused += o.refused.len() as u64;
                    stats.objects += o.objects.len() as u64;
                    stats.bytes_written += o.objects.iter().map(|(_, n)| *n as u64).sum::<u64>();
                    outcomes.push(o);
                }
                MessageResult::Failed(e) => {
                    let retry = match e.retry() {
                        Retry::Retryable => "retryable",
                        Retry::Permanent => "permanent",
                    };
                    warn!(message = "Message failed; reported for redelivery.", message_id = %id, retry, error = %e);
                    stats.messages_failed += 1;
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = id.clone();
                    response.batch_item_failures.push(failure);
                }
            }
        }
        if stats.messages_untaken > 0 {
            warn!(
                message = "Deadline near: messages not started, reported as failed.",
                untaken = stats.messages_untaken,
                reason = UNTAKEN
            );
        }
        stats.comprehend_units = self.deps.analyzer.take_billing_units();
        Ok(BatchOutcome {
            response,
            stats,
            outcomes,
        })
    }
}

/// The invocation deadline from Lambda's `deadline` (epoch milliseconds) as
/// a Tokio instant. Local emulators send a duration (`cargo lambda watch`
/// its timeout) or 0 instead of an absolute time: a value before the year
/// 2000 is read as a duration from now, 0 as Lambda's 15-minute maximum.
pub fn deadline_instant(deadline_ms: u64) -> Instant {
    const Y2000_MS: u64 = 946_684_800_000;
    let left = match deadline_ms {
        0 => Duration::from_secs(900),
        ms if ms < Y2000_MS => Duration::from_millis(ms),
        ms => (SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    };
    Instant::now() + left
}
