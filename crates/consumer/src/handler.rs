//! One consumer invocation: an SQS batch in, a partial batch response out.
//!
//! Each message is consumed on its own Tokio task with core's
//! `Consumer::consume`, a bounded number at a time, so a malformed message, a
//! record Comprehend refuses, or even a panic fails that message alone; the
//! response lists exactly those message ids and SQS redelivers only them
//! (then dead-letters them after `maxReceiveCount`). What no single message
//! owns fails the whole invocation instead: a record without a message id
//! (SQS would not know what to retry) or a Glue table that cannot be created
//! (no partition could be registered). The Athena views are attempted once
//! per container next to the first batch; failing to create them is logged
//! and does not touch the messages.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use etl_aws::emf::{cold_start, Metrics};
use etl_aws::lambda::InvocationError;
use etl_aws::{AthenaQuery, Clients, ComprehendAnalyzer, GlueCatalog, S3Sink};
use etl_core::{
    Catalog, ConsumeError, ConsumeOptions, Consumer, Engine, MessageOutcome, ObjectSink, Retry,
    SentimentAnalyzer, VaderAnalyzer,
};
use futures::StreamExt;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
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
    /// The Comprehend analyzer again, when it is the engine, to read its billing units.
    pub comprehend: Option<Arc<ComprehendAnalyzer>>,
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
}

impl BatchStats {
    /// The invocation's EMF metrics.
    pub fn metrics(&self, cold: u64) -> Metrics {
        Metrics::new("consumer")
            .count("MessagesIn", self.messages_in)
            .count("MessagesFailed", self.messages_failed)
            .count("RecordsOut", self.records_out)
            .count("ComprehendUnits", self.comprehend_units)
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
}

impl BatchHandler {
    /// Wire the consumer to AWS.
    pub fn new(config: &Config, clients: &Clients) -> Self {
        let sink = S3Sink::new(
            clients.s3.clone(),
            &config.output_bucket,
            &config.output_prefix,
        );
        let catalog = GlueCatalog::new(
            clients.glue.clone(),
            &config.glue_database,
            &config.glue_table,
            sink.table_location(),
        );
        let (analyzer, comprehend): (Arc<dyn SentimentAnalyzer>, _) = match config.engine {
            Engine::Comprehend => {
                let c = Arc::new(ComprehendAnalyzer::new(
                    clients.comprehend.clone(),
                    config.language.clone(),
                ));
                (c.clone(), Some(c))
            }
            Engine::Vader => (Arc::new(VaderAnalyzer::new()), None),
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
            catalog: Arc::new(catalog),
            views,
            comprehend,
        };
        let options = ConsumeOptions {
            codec: config.codec,
            include_text: config.include_text,
        };
        Self::from_deps(deps, &config.glue_table, options, config.concurrency)
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
        }
    }

    /// The Lambda entry point: process, log the summary, emit metrics, and
    /// map an invocation failure to `errorType` `Retryable` / `NonRetryable`.
    pub async fn invoke(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, Diagnostic> {
        let cold = cold_start();
        // Boxed: the batch future is deep enough to trip the compiler's layout depth limit.
        match Box::pin(self.handle(event.payload)).await {
            Ok(outcome) => {
                info!(message = "Consumer batch finished.", stats = %serde_json::to_value(&outcome.stats).unwrap_or_default());
                outcome.stats.metrics(cold).emit();
                Ok(outcome.response)
            }
            Err(e) => {
                error!(message = "Consumer invocation failed.", error_type = e.error_type(), error = %e);
                BatchStats::default().metrics(cold).emit();
                Err(Diagnostic {
                    error_type: e.error_type().to_owned(),
                    error_message: e.message,
                })
            }
        }
    }

    /// Process one SQS batch.
    pub async fn handle(&self, event: SqsEvent) -> Result<BatchOutcome, InvocationError> {
        let mut messages = Vec::with_capacity(event.records.len());
        for (i, m) in event.records.into_iter().enumerate() {
            match m.message_id.filter(|id| !id.is_empty()) {
                Some(id) => messages.push((id, m.body.unwrap_or_default())),
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
        let process = futures::stream::iter(messages.into_iter().enumerate())
            .map(|(i, (id, body))| self.process(i, id, body))
            .buffer_unordered(self.concurrency)
            .collect::<Vec<_>>();
        let ((), mut results) = tokio::join!(views, process);
        results.sort_by_key(|(i, _, _)| *i);

        let mut response = SqsBatchResponse::default();
        let mut stats = BatchStats {
            messages_in: total as u64,
            ..BatchStats::default()
        };
        let mut outcomes = Vec::new();
        for (_, id, result) in results {
            match result {
                Ok(o) => {
                    stats.records_out += o.records as u64;
                    stats.objects += o.objects.len() as u64;
                    stats.bytes_written += o.objects.iter().map(|(_, n)| *n as u64).sum::<u64>();
                    outcomes.push(o);
                }
                Err(e) => {
                    let retry = match e.retry() {
                        Retry::Retryable => "retryable",
                        Retry::Permanent => "permanent",
                    };
                    warn!(message = "Message failed; reported for redelivery.", message_id = %id, retry, error = %e);
                    stats.messages_failed += 1;
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = id;
                    response.batch_item_failures.push(failure);
                }
            }
        }
        stats.comprehend_units = self.deps.comprehend.as_ref().map_or(0, |c| c.take_units());
        Ok(BatchOutcome {
            response,
            stats,
            outcomes,
        })
    }

    /// Consume one message on its own task, so a panic fails only this message.
    async fn process(
        &self,
        index: usize,
        id: String,
        body: String,
    ) -> (usize, String, Result<MessageOutcome, ConsumeError>) {
        let deps = self.deps.clone();
        let options = self.options;
        let message_id = id.clone();
        let task = tokio::spawn(async move {
            let consumer = Consumer {
                analyzer: &*deps.analyzer,
                sink: &*deps.sink,
                catalog: &*deps.catalog,
                options,
            };
            consumer.consume(&message_id, &body).await
        });
        let result = match task.await {
            Ok(r) => r,
            Err(join) => Err(ConsumeError::Panicked {
                message_id: id.clone(),
                detail: if join.is_panic() {
                    panic_text(join.into_panic())
                } else {
                    "task cancelled".into()
                },
            }),
        };
        (index, id, result)
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p.downcast_ref::<&str>().map_or_else(
            || "non-string panic payload".to_owned(),
            |s| (*s).to_owned(),
        ),
    }
}
