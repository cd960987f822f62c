//! What both Lambda functions need at their edge, in one place: environment
//! lookups that fail with the variable's name, the invocation error mapped to
//! Lambda's `errorType` (`Retryable` / `NonRetryable`), and JSON logging.

use std::fmt::Display;
use std::str::FromStr;

use etl_core::{BackendError, Retry};
use thiserror::Error;

/// A configuration problem found at init; the message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    /// A variable has a value that cannot be used.
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// Why it cannot be used.
        reason: String,
    },
}

/// Where configuration values come from: the process environment in Lambda,
/// a map in tests.
pub trait Lookup {
    /// The value of `var`, if set.
    fn get(&self, var: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Lookup for ProcessEnv {
    fn get(&self, var: &str) -> Option<String> {
        std::env::var(var).ok()
    }
}

impl<S: std::hash::BuildHasher> Lookup for std::collections::HashMap<String, String, S> {
    fn get(&self, var: &str) -> Option<String> {
        std::collections::HashMap::get(self, var).cloned()
    }
}

/// A variable that must be set (an empty value counts as unset).
pub fn required(env: &dyn Lookup, var: &'static str) -> Result<String, ConfigError> {
    optional(env, var).ok_or(ConfigError::Missing(var))
}

/// A variable that may be unset (empty counts as unset).
pub fn optional(env: &dyn Lookup, var: &str) -> Option<String> {
    env.get(var)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A variable parsed with `FromStr`, `default` when unset.
pub fn parsed<T>(env: &dyn Lookup, var: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    match optional(env, var) {
        None => Ok(default),
        Some(value) => value.parse().map_err(|e: T::Err| ConfigError::Invalid {
            var,
            reason: e.to_string(),
            value,
        }),
    }
}

/// A comma-separated list (empty items dropped).
pub fn list(env: &dyn Lookup, var: &str) -> Vec<String> {
    optional(env, var)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A whole invocation failed. `retry` becomes the Lambda `errorType`, so
/// alarms and retry policies can tell throttling from bad input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct InvocationError {
    /// Retry class.
    pub retry: Retry,
    /// What failed, with the table/queue/bucket/key involved.
    pub message: String,
}

impl InvocationError {
    /// A failure that may succeed when retried.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            retry: Retry::Retryable,
            message: message.into(),
        }
    }

    /// A failure that will not succeed when retried.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            retry: Retry::Permanent,
            message: message.into(),
        }
    }

    /// Lambda's `errorType`: `Retryable` or `NonRetryable`.
    pub fn error_type(&self) -> &'static str {
        match self.retry {
            Retry::Retryable => "Retryable",
            Retry::Permanent => "NonRetryable",
        }
    }
}

/// What the Lambda runtime reports for a failed invocation: `errorType` is
/// the retry class, so alarms and retry policies can tell them apart.
#[cfg(feature = "lambda")]
impl From<InvocationError> for lambda_runtime::Diagnostic {
    fn from(e: InvocationError) -> Self {
        Self {
            error_type: e.error_type().to_owned(),
            error_message: e.message,
        }
    }
}

impl From<BackendError> for InvocationError {
    fn from(e: BackendError) -> Self {
        Self {
            retry: e.retry,
            message: e.to_string(),
        }
    }
}

/// JSON logs to stdout without ANSI colours or timestamps (CloudWatch adds
/// them). Level from `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else `info`.
pub fn init_tracing() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(level.to_ascii_lowercase())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_current_span(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn lookups_name_the_variable() {
        let env: HashMap<String, String> = [
            ("A", "x"),
            ("EMPTY", " "),
            ("N", "12"),
            ("BAD", "zz"),
            ("L", "a, b,,c"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        assert_eq!(required(&env, "A").unwrap(), "x");
        assert_eq!(
            required(&env, "EMPTY").unwrap_err().to_string(),
            "environment variable EMPTY is required but not set"
        );
        assert_eq!(parsed(&env, "N", 4u32).unwrap(), 12);
        assert_eq!(parsed(&env, "MISSING", 4u32).unwrap(), 4);
        let e = parsed(&env, "BAD", 4u32).unwrap_err().to_string();
        assert!(
            e.starts_with("environment variable BAD=\"zz\" is invalid"),
            "{e}"
        );
        assert_eq!(list(&env, "L"), ["a", "b", "c"]);
    }

    #[cfg(feature = "lambda")]
    #[test]
    fn an_invocation_error_becomes_a_diagnostic_with_its_retry_class() {
        let d = lambda_runtime::Diagnostic::from(InvocationError::retryable("GetItem throttled"));
        assert_eq!(
            (d.error_type.as_str(), d.error_message.as_str()),
            ("Retryable", "GetItem throttled")
        );
        let d = lambda_runtime::Diagnostic::from(InvocationError::permanent("bad event"));
        assert_eq!(d.error_type, "NonRetryable");
    }

    #[test]
    fn error_type_follows_retry_class() {
        assert_eq!(InvocationError::retryable("x").error_type(), "Retryable");
        assert_eq!(InvocationError::permanent("x").error_type(), "NonRetryable");
        let b = BackendError::retryable("PutObject", "s3://b/k", "503");
        assert_eq!(
            InvocationError::from(b).message,
            "PutObject failed on s3://b/k: 503"
        );
    }
}
