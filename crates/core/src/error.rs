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
///
/// `message` is self-contained (it reads well in a log line on its own);
/// `source`, when the backend had a typed error underneath (an I/O error, a
/// DataFusion or Parquet error), keeps it for callers that inspect it and
/// for [`Chain`], which prints the causes a message does not already say.
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
    /// The typed error underneath, when there was one.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl BackendError {
    /// A permanent backend failure.
    pub fn permanent(
        operation: impl Into<String>,
        target: impl Into<String>,
        message: impl std::fmt::Display,
    ) -> Self {
        Self::new(Retry::Permanent, operation, target, message)
    }

    /// A transient backend failure.
    pub fn retryable(
        operation: impl Into<String>,
        target: impl Into<String>,
        message: impl std::fmt::Display,
    ) -> Self {
        Self::new(Retry::Retryable, operation, target, message)
    }

    /// A failure of the given class.
    pub fn new(
        retry: Retry,
        operation: impl Into<String>,
        target: impl Into<String>,
        message: impl std::fmt::Display,
    ) -> Self {
        Self {
            retry,
            operation: operation.into(),
            target: target.into(),
            message: message.to_string(),
            source: None,
        }
    }

    /// A failure caused by `source`, whose text becomes the message.
    pub fn caused_by<E>(
        retry: Retry,
        operation: impl Into<String>,
        target: impl Into<String>,
        source: E,
    ) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Self::new(retry, operation, target, &source).with_source(source)
    }

    /// A permanent failure caused by `source`.
    pub fn permanent_from<E>(
        operation: impl Into<String>,
        target: impl Into<String>,
        source: E,
    ) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Self::caused_by(Retry::Permanent, operation, target, source)
    }

    /// An I/O failure: retryable when the kind says it may pass (interrupted,
    /// timed out, would block), permanent otherwise.
    pub fn io(
        operation: impl Into<String>,
        target: impl Into<String>,
        source: std::io::Error,
    ) -> Self {
        use std::io::ErrorKind::{Interrupted, TimedOut, WouldBlock};
        let retry = match source.kind() {
            Interrupted | TimedOut | WouldBlock => Retry::Retryable,
            _ => Retry::Permanent,
        };
        Self::caused_by(retry, operation, target, source)
    }

    /// Keep `source` as the cause.
    pub fn with_source<E>(mut self, source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        self.source = Some(Box::new(source));
        self
    }
}

/// An error and its causes on one line, `outer: cause: cause`, leaving out
/// a cause whose text the line already holds (errors here put their cause's
/// text in their own message so that a log line stands alone; this is how
/// the edges print the rest of the chain without saying anything twice).
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut said = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(c) = cause {
            let text = c.to_string();
            if !text.is_empty() && !said.contains(&text) {
                said.push_str(": ");
                said.push_str(&text);
            }
            cause = c.source();
        }
        f.write_str(&said)
    }
}

/// Encoding the output (Arrow/Parquet) failed. A bug or resource problem, not bad data.
#[derive(Debug, Error)]
#[error("encoding output failed: {0}")]
pub struct EncodeError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_error_keeps_its_typed_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no write access");
        let e = BackendError::io("write", "/lake/x.parquet", io);
        assert_eq!(e.retry, Retry::Permanent);
        let cause = std::error::Error::source(&e).expect("a source");
        let io = cause
            .downcast_ref::<std::io::Error>()
            .expect("the io::Error itself");
        assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
        assert_eq!(
            e.to_string(),
            "write failed on /lake/x.parquet: no write access"
        );
        let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow disk");
        assert_eq!(
            BackendError::io("read", "f", timed_out).retry,
            Retry::Retryable
        );
    }

    #[test]
    fn a_chain_says_each_cause_once() {
        #[derive(Debug, Error)]
        #[error("consumer stopped the run")]
        struct Outer(#[source] BackendError);
        let io = std::io::Error::other("disk full");
        let e = Outer(BackendError::io("write", "/lake/a", io));
        assert_eq!(
            Chain(&e).to_string(),
            "consumer stopped the run: write failed on /lake/a: disk full"
        );
    }
}
