//! Typed errors of the core, grouped by what the caller can do about them.
//!
//! Backends convert their private errors into these at the boundary, so the
//! pipeline and the Lambda edges can decide between "retry" and "give up on
//! this record/message" without knowing which backend failed.

use thiserror::Error;

/// A source record that cannot be used. Never retryable: the data is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("record {}: field `{field}`: {reason}", id.as_deref().unwrap_or("<no id>"))]
pub struct RecordError {
    /// The record id, when it could be read.
    pub id: Option<String>,
    /// The offending field (source attribute name), or `<record>` for the whole record.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl RecordError {
    /// Build an error for `field` of the record `id`.
    pub fn new(id: Option<&str>, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            id: id.map(str::to_owned),
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A queue message that cannot be decoded. Never retryable: redelivery would
/// fail the same way, so it belongs in the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageError {
    /// Not JSON, or not the message shape.
    #[error("message is not a valid v1 envelope: {0}")]
    Malformed(String),
    /// A version this build does not understand.
    #[error("unsupported message version {0} (this build reads version 1)")]
    UnsupportedVersion(u64),
    /// The content id does not match the records (corrupted or hand-edited).
    #[error("content id mismatch: message says {claimed}, records hash to {actual}")]
    ContentIdMismatch {
        /// What the message carried.
        claimed: String,
        /// What the records hash to.
        actual: String,
    },
    /// A record inside the message is invalid.
    #[error("record {index} in message: {source}")]
    Record {
        /// Position in the message.
        index: usize,
        /// Why.
        #[source]
        source: RecordError,
    },
    /// One record alone is larger than the queue can carry.
    #[error("record {id} encodes to {bytes} bytes, more than the queue's hard limit of {limit}")]
    RecordTooLarge {
        /// The record id.
        id: String,
        /// Its encoded size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
}

/// Whether a failure may succeed when tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Throttling, unavailability, timeouts: try again (with backoff).
    Retryable,
    /// Bad input or a permanent refusal: trying again cannot help.
    Permanent,
}

/// A failure to score a document (or a whole batch).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("sentiment analysis failed ({code}): {message}")]
pub struct AnalyzeError {
    /// Retry class.
    pub retry: Retry,
    /// A short machine-readable code (e.g. Comprehend's ErrorCode).
    pub code: String,
    /// Human-readable detail.
    pub message: String,
}

impl AnalyzeError {
    /// A permanent failure.
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            retry: Retry::Permanent,
            code: code.into(),
            message: message.into(),
        }
    }
    /// A transient failure.
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            retry: Retry::Retryable,
            code: code.into(),
            message: message.into(),
        }
    }
}

/// A failure of a storage, queue, catalog, query or source backend.
#[derive(Debug, Error)]
#[error("{operation} failed on {target}: {message}")]
pub struct BackendError {
    /// Retry class.
    pub retry: Retry,
    /// What was attempted (`PutObject`, `BatchCreatePartition`, `write`, …).
    pub operation: String,
    /// What it was attempted on (bucket/key, queue URL, table, path).
    pub target: String,
    /// Detail, usually the backend's own error chain.
    pub message: String,
}

impl BackendError {
    /// A permanent backend failure.
    pub fn permanent(
        operation: impl Into<String>,
        target: impl Into<String>,
        message: impl std::fmt::Display,
    ) -> Self {
        Self {
            retry: Retry::Permanent,
            operation: operation.into(),
            target: target.into(),
            message: message.to_string(),
        }
    }
    /// A transient backend failure.
    pub fn retryable(
        operation: impl Into<String>,
        target: impl Into<String>,
        message: impl std::fmt::Display,
    ) -> Self {
        Self {
            retry: Retry::Retryable,
            operation: operation.into(),
            target: target.into(),
            message: message.to_string(),
        }
    }
}

/// Encoding the output (Arrow/Parquet) failed. A bug or resource problem, not bad data.
#[derive(Debug, Error)]
#[error("encoding output failed: {0}")]
pub struct EncodeError(pub String);
