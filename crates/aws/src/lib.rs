//! AWS backends of the sentiment ETL: one module per service, each
//! implementing a core trait (or, for the producer's state, a small store of
//! its own), all built from one [`SdkConfig`].
//!
//! [`Clients`] loads the configuration once per Lambda container and makes the
//! cheap per-service clients from it. Every client honours `AWS_ENDPOINT_URL`
//! (aws-config reads it natively), which is how tests and `cargo lambda watch`
//! point everything at moto; S3 then switches to path-style addressing because
//! emulators on `127.0.0.1` cannot serve virtual-hosted bucket names. Every
//! client also gets connect, read, attempt and operation timeouts
//! ([`Timeouts`], from `AWS_*_TIMEOUT_MS`), so a lost answer costs one
//! attempt, not the function's whole deadline.
#![warn(missing_docs)]

pub mod athena;
pub mod comprehend;
#[cfg(feature = "delta")]
pub mod delta;
pub mod dynamodb;
pub mod emf;
mod error;
pub mod glue;
pub mod lambda;
pub mod ledger;
pub mod outbox;
pub mod producer_state;
pub mod rate;
pub mod s3;
pub mod sqs;
pub mod state;
pub mod timeouts;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_types::retry::RetryConfig;

pub use athena::AthenaQuery;
pub use comprehend::{ComprehendAnalyzer, LanguageMode};
pub use dynamodb::{DynamoSource, ScanCheckpoint, ScanConfig, SegmentPosition};
pub use glue::GlueCatalog;
pub use outbox::{DynamoOutbox, StagedMessage};
pub use rate::{RateLimiter, DEFAULT_COMPREHEND_TPS};
pub use s3::S3Sink;
pub use sqs::SqsQueue;
pub use state::{LedgerRef, LockOutcome, StateStore, Versioned};
pub use timeouts::Timeouts;

/// One client per service, all from the same [`SdkConfig`]. Clients are cheap
/// handles around shared connection pools; clone them freely.
#[derive(Debug, Clone)]
pub struct Clients {
    /// The configuration every client was built from.
    pub config: SdkConfig,
    /// DynamoDB (source table and producer state).
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SQS (the work queue).
    pub sqs: aws_sdk_sqs::Client,
    /// S3 (the lake).
    pub s3: aws_sdk_s3::Client,
    /// Comprehend (sentiment). Built with SDK retries off: [`ComprehendAnalyzer`]
    /// runs its own bounded, jittered retries and must not multiply with the SDK's.
    pub comprehend: aws_sdk_comprehend::Client,
    /// Glue Data Catalog.
    pub glue: aws_sdk_glue::Client,
    /// Athena.
    pub athena: aws_sdk_athena::Client,
}

impl Clients {
    /// Load the configuration from the environment (region, credentials,
    /// `AWS_ENDPOINT_URL`, the `AWS_*_TIMEOUT_MS` [`Timeouts`], …) and build
    /// every client. Call once per container. An invalid timeout is an error
    /// naming its variable.
    pub async fn from_env() -> Result<Self, lambda::ConfigError> {
        let timeouts = Timeouts::from_env()?;
        let config = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(timeouts.config())
            .load()
            .await;
        Ok(Self::from_conf(&config))
    }

    /// Build every client from an existing configuration (its retry and
    /// timeout settings included: build it with [`Timeouts::config`]).
    pub fn from_conf(config: &SdkConfig) -> Self {
        let s3_conf = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some())
            .build();
        let comprehend_conf = aws_sdk_comprehend::config::Builder::from(config)
            .retry_config(RetryConfig::disabled())
            .build();
        Self {
            config: config.clone(),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            comprehend: aws_sdk_comprehend::Client::from_conf(comprehend_conf),
            glue: aws_sdk_glue::Client::new(config),
            athena: aws_sdk_athena::Client::new(config),
        }
    }
}
